//! Two User-Mode-Linux guests for what the host kernel cannot do (DRBD, device-mapper,
//! LVM activation, a Pacemaker cluster on real block devices).
//!
//! Each guest boots with the host's `/` as a read-only hostfs root under a private tmpfs
//! overlay, so it runs the host's own binaries (drbdadm, lvm, corosync, pacemakerd, the
//! installed pgstack) while nothing it writes reaches the host. The guests share two
//! Ethernets on `uml_switch` unix sockets (10.99.0.1/.2 on eth0, 10.99.1.1/.2 on eth1:
//! those addresses exist only there) and take commands through a mailbox directory on a
//! hostfs share (`DIR/shared/<node>/q`: the host writes `ID.cmd`, the guest runs it and
//! writes `ID.out` and `ID.rc`; commands run concurrently).
//!
//! The guests and switches are detached processes (their own sessions) recorded in the
//! state directory, so a pair outlives the process that booted it (`pgstack lab up`) and
//! any process can drive it ([`Pair::open`]). [`Pair::down_dir`] removes everything: it
//! kills only processes whose session leader is a recorded guest or switch (checked by
//! start time and command line), then the directory.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{poll, proc, run, LabError, LabResult};
use crate::sys::runner::Cmd;

/// The guests' names; guest i is 10.99.0.(i+1) on eth0 and 10.99.1.(i+1) on eth1.
pub const NODES: [&str; 2] = ["n1", "n2"];
/// The UML kernel and the switch (Debian's user-mode-linux and uml-utilities).
pub const LINUX: &str = "/usr/bin/linux.uml";
pub const SWITCH: &str = "/usr/bin/uml_switch";
/// The guests' networks: the cluster (corosync, the VIP) and the replication link.
pub const NET_CLUSTER: &str = "10.99.0";
pub const NET_REPL: &str = "10.99.1";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Stage 1 runs as PID 1 on the read-only host root: it builds an overlay root with a
/// writable tmpfs upper layer, pivots into it and hands over to stage 2.
const STAGE1: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
insmod /usr/lib/uml/modules/$(uname -r)/kernel/fs/overlayfs/overlay.ko
mount -t tmpfs -o size=384m tmpfs /media
mkdir -p /media/upper /media/work /media/root
if ! mount -t overlay overlay -o lowerdir=/,upperdir=/media/upper,workdir=/media/work /media/root; then
  echo "stage1: overlay failed"; echo o > /proc/sysrq-trigger; sleep 30
fi
cd /media/root && mkdir -p oldroot && pivot_root . oldroot
exec chroot . /bin/sh "$stage2" </dev/console >/dev/console 2>&1
"#;

/// Stage 2: pseudo file systems, the guest kernel's modules, the two networks, the
/// share, LVM's configuration (the book's filter: only the raw disks and DRBD devices,
/// never the LVs below DRBD), then the mailbox loop.
const STAGE2: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run; mkdir -p /run/lock /run/lvm /run/resource-agents /run/crm
mount -t tmpfs tmpfs /tmp
KV=$(uname -r); mkdir -p /lib/modules; ln -sfn /usr/lib/uml/modules/$KV /lib/modules/$KV
hostname "$node"; echo "$node" > /etc/hostname
ip link set lo up
ip link set eth0 up; ip addr add "$ip/24" dev eth0
if [ -n "$ip1" ]; then ip link set eth1 up; ip addr add "$ip1/24" dev eth1; fi
mkdir -p /shared; mount -t hostfs -o "$share" none /shared
modprobe drbd; modprobe dm-mod; modprobe dm-snapshot
mkdir -p /etc/lvm
cat > /etc/lvm/lvm.conf <<EOF
devices { filter = [ "a|^/dev/ubd|", "a|^/dev/drbd|", "r|.*|" ] write_cache_state = 0 }
activation { udev_sync = 0 udev_rules = 0 }
global { use_lvmetad = 0 }
EOF
rm -f /etc/lvm/cache/.cache
d=/shared/$node; q=$d/q; mkdir -p $q
echo "$boot" > $d/state
while :; do
  for f in $q/*.cmd; do
    [ -e "$f" ] || continue
    id=${f%.cmd}; mv "$f" "$id.run" || continue
    ( sh "$id.run" > "$id.out" 2>&1 </dev/null; echo $? > "$id.rc.tmp"; mv "$id.rc.tmp" "$id.rc" ) &
  done
  [ -e $d/halt ] && break
  sleep 0.05
done
sync
echo o > /proc/sysrq-trigger; sleep 30
"#;

/// How a pair is made.
#[derive(Debug, Clone)]
pub struct Spec {
    /// State directory (must not exist: it is the pair's lock).
    pub dir: PathBuf,
    /// UML instance id prefix (`pgst-...`); guest ids are `<umid>-n1`, `<umid>-n2`.
    pub umid: String,
    /// Guest memory (`256M`; Pacemaker and corosync need `1024M`).
    pub mem: String,
    /// Size of each guest's own disk, /dev/ubdb, in MiB.
    pub disk_mb: u64,
    /// A disk both guests see as /dev/ubdc (UML's shared mode), in MiB.
    pub shared_mb: Option<u64>,
    /// A second network (eth1, [`NET_REPL`]) for replication.
    pub second_net: bool,
}

impl Spec {
    /// A pair with a fresh, unique state directory `/tmp/pgst-<tag>-<pid>-<n>`.
    pub fn unique(tag: &str, mem: &str, disk_mb: u64) -> Spec {
        let umid = format!(
            "pgst-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        Spec {
            dir: PathBuf::from(format!("/tmp/{umid}")),
            umid,
            mem: mem.to_string(),
            disk_mb,
            shared_mb: None,
            second_net: false,
        }
    }
}

/// A handle on a pair recorded in a state directory.
#[derive(Debug, Clone)]
pub struct Pair {
    pub dir: PathBuf,
    pub umid: String,
    pub mem: String,
    pub second_net: bool,
    shared_disk: bool,
}

/// Output of a guest command.
#[derive(Debug, Clone)]
pub struct GuestRun {
    pub rc: i32,
    pub out: String,
}

/// Why this machine cannot run the guests, if it cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("UML guests need root".into());
    }
    let missing: Vec<&str> = [LINUX, SWITCH, "/usr/bin/setsid"]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing {} (Debian packages user-mode-linux, uml-utilities)",
            missing.join(", ")
        ));
    }
    let mods = Path::new("/usr/lib/uml/modules");
    if !mods.is_dir() {
        return Some(format!("{} is missing (user-mode-linux)", mods.display()));
    }
    None
}

/// A process recorded as `pid starttime` (so a reused pid is never taken for it).
fn record(p: &Path, pid: u32) -> LabResult<()> {
    let (_, start) = proc::stat(pid)
        .ok_or_else(|| LabError::Invalid(format!("process {pid} vanished at its start")))?;
    run::write(p, &format!("{pid} {start}\n"))
}

/// The recorded process in `p` when it still runs and its command line contains `tag`.
fn recorded(p: &Path, tag: &str) -> Option<u32> {
    let line = run::read_line(p)?;
    let mut w = line.split_whitespace();
    let pid: u32 = w.next()?.parse().ok()?;
    let start: u64 = w.next()?.parse().ok()?;
    let (_, s) = proc::stat(pid)?;
    (s == start && proc::alive(pid) && proc::cmdline(pid).is_some_and(|c| c.contains(tag)))
        .then_some(pid)
}

/// Every process of the session led by `leader` whose command line contains `tag`
/// (a UML guest is many host processes, all in the session `setsid` gave it).
fn session_members(leader: u32, tag: &str) -> Vec<u32> {
    proc::all_pids()
        .into_iter()
        .filter(|p| proc::session(*p) == Some(leader))
        .filter(|p| proc::cmdline(*p).is_some_and(|c| c.contains(tag)))
        .collect()
}

impl Pair {
    /// Creates the state directory, the switches and both disks, and boots both guests.
    /// On failure everything made so far is removed.
    pub fn create(spec: &Spec) -> LabResult<Pair> {
        if let Some(why) = unavailable() {
            return Err(LabError::Invalid(why));
        }
        run::plain_path(&spec.dir)?;
        if !spec.umid.starts_with("pgst-")
            || !spec
                .umid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(LabError::Invalid(format!(
                "UML id {:?}: pgst-[a-z0-9-]* expected",
                spec.umid
            )));
        }
        run::create_lock_dir(&spec.dir)?;
        let pair = Pair {
            dir: spec.dir.clone(),
            umid: spec.umid.clone(),
            mem: spec.mem.clone(),
            second_net: spec.second_net,
            shared_disk: spec.shared_mb.is_some(),
        };
        match pair.make(spec) {
            Ok(()) => Ok(pair),
            Err(e) => {
                let _ = Pair::down_dir(&spec.dir);
                Err(e)
            }
        }
    }

    fn make(&self, spec: &Spec) -> LabResult<()> {
        run::write(
            &self.dir.join("pair.conf"),
            &format!(
                "umid={}\nmem={}\nsecond_net={}\nshared_disk={}\n",
                self.umid, self.mem, self.second_net, self.shared_disk
            ),
        )?;
        run::mkdir(&self.dir.join("uml"))?;
        for (name, body) in [("stage1.sh", STAGE1), ("stage2.sh", STAGE2)] {
            let p = self.dir.join(name);
            run::write(&p, body)?;
            run::chmod(&p, 0o755)?;
        }
        for n in NODES {
            run::mkdir(&self.shared(n))?;
        }
        let nets: &[&str] = if self.second_net { &["0", "1"] } else { &["0"] };
        for k in nets {
            let ctl = self.dir.join(format!("sw{k}.ctl"));
            let c = Cmd::new(SWITCH).args(["-unix", &run::plain_path(&ctl)?]);
            let pid = run::spawn_logged(&c, &self.dir.join(format!("switch{k}.log")))?;
            record(&self.dir.join(format!("switch{k}.pid")), pid)?;
            poll(
                &format!("uml_switch {}", ctl.display()),
                10.0,
                Duration::from_millis(20),
                || ctl.exists().then_some(()),
            )?;
        }
        for n in NODES {
            let img = self.dir.join(format!("{n}.img"));
            std::fs::File::create(&img)
                .and_then(|f| f.set_len(spec.disk_mb << 20))
                .map_err(|e| LabError::io(format!("creating {}", img.display()), e))?;
        }
        if let Some(mb) = spec.shared_mb {
            let img = self.dir.join("shared-disk.img");
            std::fs::File::create(&img)
                .and_then(|f| f.set_len(mb << 20))
                .map_err(|e| LabError::io(format!("creating {}", img.display()), e))?;
        }
        self.start(&NODES)?;
        Ok(())
    }

    /// Opens the pair recorded in `dir`.
    pub fn open(dir: &Path) -> LabResult<Pair> {
        let p = dir.join("pair.conf");
        let text = std::fs::read_to_string(&p).map_err(|_| LabError::NotUp(p.clone()))?;
        let m: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let bad = || LabError::Invalid(format!("{}: unreadable record", p.display()));
        Ok(Pair {
            dir: dir.to_path_buf(),
            umid: m.get("umid").ok_or_else(bad)?.to_string(),
            mem: m.get("mem").ok_or_else(bad)?.to_string(),
            second_net: m.get("second_net") == Some(&"true"),
            shared_disk: m.get("shared_disk") == Some(&"true"),
        })
    }

    /// The index of a guest name.
    pub fn index(name: &str) -> LabResult<usize> {
        NODES.iter().position(|n| *n == name).ok_or_else(|| {
            LabError::Invalid(format!(
                "unknown node {name:?}: the guests are {}",
                NODES.join(", ")
            ))
        })
    }

    fn guest_tag(&self, name: &str) -> String {
        format!("umid={}-{name}", self.umid)
    }

    /// The host pid of the guest's main UML process, when it runs.
    pub fn guest_pid(&self, name: &str) -> Option<u32> {
        recorded(&self.dir.join(format!("{name}.pid")), &self.guest_tag(name))
    }

    pub fn is_alive(&self, name: &str) -> bool {
        self.guest_pid(name).is_some()
    }

    /// Boots the named guests (not running) and waits until their mailboxes answer.
    pub fn start(&self, names: &[&str]) -> LabResult<()> {
        let mut boots = Vec::new();
        for name in names {
            let i = Pair::index(name)?;
            if self.is_alive(name) {
                return Err(LabError::Invalid(format!("{name} is already running")));
            }
            let d = self.shared(name);
            let _ = std::fs::remove_file(d.join("state"));
            let _ = std::fs::remove_file(d.join("halt"));
            let _ = std::fs::remove_dir_all(d.join("q"));
            let boot_id = format!("{}-{}", std::process::id(), super::now_f());
            let mac = |k: usize| format!("02:00:00:99:0{k}:0{}", i + 1);
            let mut c = Cmd::new(LINUX)
                .arg(format!("umid={}-{name}", self.umid))
                .arg(format!(
                    "uml_dir={}",
                    run::plain_path(&self.dir.join("uml"))?
                ))
                .arg(format!("mem={}", self.mem))
                .args(["rootfstype=hostfs", "rootflags=/", "ro"])
                .arg(format!(
                    "init={}",
                    run::plain_path(&self.dir.join("stage1.sh"))?
                ))
                .arg(format!(
                    "ubdb={}",
                    run::plain_path(&self.dir.join(format!("{name}.img")))?
                ));
            if self.shared_disk {
                c = c.arg(format!(
                    "ubdcc={}",
                    run::plain_path(&self.dir.join("shared-disk.img"))?
                ));
            }
            c = c.arg(format!(
                "eth0=daemon,{},unix,{}",
                mac(0),
                run::plain_path(&self.dir.join("sw0.ctl"))?
            ));
            if self.second_net {
                c = c.arg(format!(
                    "eth1=daemon,{},unix,{}",
                    mac(1),
                    run::plain_path(&self.dir.join("sw1.ctl"))?
                ));
            }
            c = c
                .arg(format!("node={name}"))
                .arg(format!("ip={NET_CLUSTER}.{}", i + 1));
            if self.second_net {
                c = c.arg(format!("ip1={NET_REPL}.{}", i + 1));
            }
            c = c
                .arg(format!(
                    "share={}",
                    run::plain_path(&self.dir.join("shared"))?
                ))
                .arg(format!(
                    "stage2={}",
                    run::plain_path(&self.dir.join("stage2.sh"))?
                ))
                .arg(format!("boot={boot_id}"))
                .args(["con0=null,fd:1", "con=null"])
                // UML backs guest memory with an unlinked file in TMPDIR: keep it in RAM.
                .env("TMPDIR", "/dev/shm");
            let pid = run::spawn_logged(&c, &self.dir.join(format!("{name}.log")))?;
            record(&self.dir.join(format!("{name}.pid")), pid)?;
            boots.push((name.to_string(), boot_id));
        }
        for (name, id) in boots {
            let state = self.shared(&name).join("state");
            let r = poll(
                &format!("guest {name} booting"),
                180.0,
                Duration::from_millis(50),
                || (run::read_line(&state).as_deref() == Some(id.as_str())).then_some(()),
            );
            if let Err(e) = r {
                let log = self.console(&name);
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                return Err(LabError::Invalid(format!(
                    "{e}; the end of its console:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )));
            }
        }
        Ok(())
    }

    /// A power cut: every host process of the guest gets SIGKILL at once. Returns the
    /// time of the cut ([`super::now_f`]).
    pub fn power_off(&self, name: &str) -> LabResult<f64> {
        Pair::index(name)?;
        let tag = self.guest_tag(name);
        let Some(pid) = self.guest_pid(name) else {
            return Ok(super::now_f());
        };
        let members = session_members(pid, &tag);
        for p in &members {
            proc::kill9(*p);
        }
        let t = super::now_f();
        poll(
            &format!("{name} powered off"),
            10.0,
            Duration::from_millis(10),
            || {
                let left = session_members(pid, &tag);
                for p in &left {
                    proc::kill9(*p);
                }
                left.is_empty().then_some(())
            },
        )?;
        Ok(t)
    }

    fn queue(&self, name: &str) -> PathBuf {
        self.shared(name).join("q")
    }

    /// Runs a shell script in the guest within `timeout`; its exit code and output.
    pub fn exec(&self, name: &str, script: &str, timeout: Duration) -> LabResult<GuestRun> {
        Pair::index(name)?;
        let q = self.queue(name);
        if !q.is_dir() || !self.is_alive(name) {
            return Err(LabError::Invalid(format!("{name} is not running")));
        }
        let id = format!(
            "{:016.6}-{}-{}",
            super::now_f(),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let tmp = q.join(format!("{id}.tmp"));
        run::write(&tmp, script)?;
        std::fs::rename(&tmp, q.join(format!("{id}.cmd")))
            .map_err(|e| LabError::io(format!("queueing {}", tmp.display()), e))?;
        let rc = q.join(format!("{id}.rc"));
        let until = Instant::now() + timeout;
        let mut step = Duration::from_millis(5);
        while !rc.exists() {
            if Instant::now() >= until {
                return Err(LabError::Timeout {
                    what: format!("on {name}: {}", script.lines().next().unwrap_or("")),
                    secs: timeout.as_secs_f64(),
                });
            }
            if !self.is_alive(name) {
                return Err(LabError::Invalid(format!(
                    "{name} went down while running: {}",
                    script.lines().next().unwrap_or("")
                )));
            }
            std::thread::sleep(step);
            step = (step * 2).min(Duration::from_millis(50));
        }
        let out = std::fs::read_to_string(q.join(format!("{id}.out"))).unwrap_or_default();
        let code = run::read_line(&rc)
            .and_then(|l| l.parse().ok())
            .unwrap_or(-1);
        for ext in ["run", "out", "rc"] {
            let _ = std::fs::remove_file(q.join(format!("{id}.{ext}")));
        }
        Ok(GuestRun { rc: code, out })
    }

    /// [`Pair::exec`] that must exit 0; its output.
    pub fn ok(&self, name: &str, script: &str, timeout: Duration) -> LabResult<String> {
        let r = self.exec(name, script, timeout)?;
        if r.rc == 0 {
            Ok(r.out)
        } else {
            Err(LabError::Command {
                cmd: format!("on {name}: {}", script.trim()),
                outcome: format!("exit {}: {}", r.rc, r.out.trim()),
            })
        }
    }

    /// A path on the share, seen as `/shared/<rel>` inside the guests.
    pub fn shared(&self, rel: &str) -> PathBuf {
        self.dir.join("shared").join(rel)
    }

    /// The guest's console (kernel messages and the init scripts' output).
    pub fn console(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Stops the pair in `dir` and removes the directory: a clean halt first, then
    /// SIGKILL to whatever of a recorded guest or switch is left. Does nothing when
    /// nothing is there.
    pub fn down_dir(dir: &Path) -> LabResult<()> {
        if !dir.exists() {
            return Ok(());
        }
        if let Ok(p) = Pair::open(dir) {
            let alive: Vec<(&str, u32)> = NODES
                .iter()
                .filter_map(|n| p.guest_pid(n).map(|pid| (*n, pid)))
                .collect();
            for (n, _) in &alive {
                let _ = std::fs::write(p.shared(n).join("halt"), "");
            }
            let _ = poll("guests halting", 5.0, Duration::from_millis(50), || {
                alive.iter().all(|(n, _)| !p.is_alive(n)).then_some(())
            });
            for (n, _) in &alive {
                let _ = p.power_off(n);
            }
            for k in ["0", "1"] {
                if let Some(pid) = recorded(&dir.join(format!("switch{k}.pid")), SWITCH) {
                    proc::kill9(pid);
                    let _ = poll("uml_switch gone", 5.0, Duration::from_millis(20), || {
                        (!proc::alive(pid)).then_some(())
                    });
                }
            }
        }
        std::fs::remove_dir_all(dir)
            .map_err(|e| LabError::io(format!("removing {}", dir.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_specs_are_pgst_and_distinct() {
        let a = Spec::unique("t", "256M", 64);
        let b = Spec::unique("t", "256M", 64);
        assert!(a.umid.starts_with("pgst-t-"));
        assert_ne!(a.dir, b.dir);
        assert!(run::plain_path(&a.dir).is_ok());
        assert!(run::plain_path(Path::new("/tmp/a b")).is_err());
        assert!(run::plain_path(Path::new("rel")).is_err());
    }

    #[test]
    fn guest_names_are_checked() {
        assert_eq!(Pair::index("n2").unwrap(), 1);
        assert!(Pair::index("n3").is_err());
    }
}
