//! Loop-device file systems for the filesystem tests: a sparse 512 MiB backing file under
//! `/tmp/pgst-fs-*` (xfsprogs refuses smaller XFS without its test-only variables), a loop
//! device, mkfs, and holder processes. Drop unmounts everything below the base directory
//! (deepest first, lazily as a last resort), detaches the loop devices and removes the
//! directory; holders are killed and reaped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::{agent_path, ocf, run, AgentRun};

/// The book's XFS mount options.
pub const BOOK: &str = "noatime,nodiratime,logbsize=256k,allocsize=1m";

/// One action of the installed `filesystem` agent.
pub fn fs(action: &str, params: &[(&str, &str)], extra: &[(&str, &str)]) -> AgentRun {
    ocf(&[], &agent_path("filesystem"), action, params, extra)
}

/// The book's XFS configuration of `dev` on `dir`.
pub fn xfs_params<'a>(dev: &'a str, dir: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("device", dev),
        ("directory", dir),
        ("fstype", "xfs"),
        ("options", BOOK),
    ]
}

#[track_caller]
pub fn expect(r: &AgentRun, code: i32, what: &str) {
    assert_eq!(r.code, code, "{what}: {r:?}");
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A directory `/tmp/pgst-fs-<name>-<pid>-<n>` that owns the loop devices made in it.
pub struct Base {
    pub dir: PathBuf,
    loops: Vec<String>,
}

impl Base {
    pub fn new(name: &str) -> Base {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = PathBuf::from(format!("/tmp/pgst-fs-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Base {
            dir,
            loops: Vec::new(),
        }
    }

    /// A new loop device over a sparse 512 MiB file, formatted as `fstype`.
    pub fn device(&mut self, fstype: &str) -> String {
        let img = self.dir.join(format!("disk{}.img", self.loops.len()));
        let f = fs::File::create(&img).unwrap();
        f.set_len(512 << 20).unwrap();
        drop(f);
        let out = sh(&["losetup", "-f", "--show", img.to_str().unwrap()]);
        let dev = out.trim().to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup said {out:?}");
        self.loops.push(dev.clone());
        match fstype {
            "xfs" => sh(&["mkfs.xfs", "-q", "-f", "-d", "agcount=4", &dev]),
            "ext4" => sh(&["mkfs.ext4", "-q", "-F", &dev]),
            "raw" => String::new(),
            other => panic!("no mkfs for {other}"),
        };
        dev
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        for m in mounts_below(&self.dir) {
            let ok = Command::new("umount")
                .arg(&m)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&m).status();
            }
        }
        for d in &self.loops {
            let _ = Command::new("losetup")
                .arg("-d")
                .arg(d)
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Mount points at or below `dir`, deepest first (from /proc/self/mountinfo, read by
/// the crate's own parser).
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let table = pgstack::sys::mount::mountinfo(None).unwrap();
    let mut v: Vec<PathBuf> = table
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v
}

/// Whether something is mounted exactly on `dir`.
pub fn is_mounted(dir: &Path) -> bool {
    mounts_below(dir).iter().any(|p| p == dir)
}

pub fn sh(argv: &[&str]) -> String {
    let out = run(argv, &[], Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn mount(dev: &str, fstype: &str, dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    sh(&["mount", "-t", fstype, dev, dir.to_str().unwrap()]);
}

/// A process kept for a test; killed and reaped in Drop.
pub struct Holder {
    pub child: Child,
    pub name: &'static str,
}

impl Holder {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    /// Whether it still runs (reaps it when it has ended).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    /// Whether it ended within `t` (polled; a signalled process takes a moment to die).
    pub fn ended_within(&mut self, t: Duration) -> bool {
        let end = std::time::Instant::now() + t;
        loop {
            if !self.alive() {
                return true;
            }
            if std::time::Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sleep` with its cwd in `dir`.
pub fn sleep_in(dir: &Path, name: &'static str) -> Holder {
    let child = Command::new("sleep")
        .arg("300")
        .current_dir(dir)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Holder { child, name }
}

/// `sleep` (cwd /) with `file` open as its standard input.
pub fn sleep_holding(file: &Path, name: &'static str) -> Holder {
    if !file.exists() {
        fs::write(file, b"held\n").unwrap();
    }
    let f = fs::File::open(file).unwrap();
    let child = Command::new("sleep")
        .arg("300")
        .current_dir("/")
        .stdin(Stdio::from(f))
        .spawn()
        .unwrap();
    Holder { child, name }
}

/// A process (cwd /, no open file on the mount) that only maps `file`.
pub fn mapper(file: &Path, name: &'static str) -> Holder {
    fs::write(file, vec![b'x'; 4096]).unwrap();
    let code = "import mmap,sys,time\nf=open(sys.argv[1],'r+b')\nm=mmap.mmap(f.fileno(),4096)\nf.close()\nprint('mapped',flush=True)\ntime.sleep(300)\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", code, file.to_str().unwrap()])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "mapped");
    Holder { child, name }
}

/// `sleep` with cwd in `dir` that ignores the given signals (dispositions survive exec).
pub fn stubborn_in(dir: &Path, ignore: &str, name: &'static str) -> Holder {
    let script = format!("trap '' {ignore}; exec sleep 300");
    let child = Command::new("sh")
        .args(["-c", &script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // The dispositions are set once the shell has exec'd sleep.
    let comm = format!("/proc/{}/comm", child.id());
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(&comm)
        .map(|c| c.trim() != "sleep")
        .unwrap_or(true)
    {
        assert!(std::time::Instant::now() < end, "{script} did not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    Holder { child, name }
}
