//! Two User-Mode-Linux guests for what the host kernel cannot do (DRBD, device-mapper,
//! LVM activation). Each guest boots with the host's `/` as a read-only hostfs root under a
//! private tmpfs overlay, so it runs the host's own binaries (drbdadm, lvm, the installed
//! pgstack) while nothing it writes reaches the host. The guests share an Ethernet on a
//! `uml_switch` unix socket (10.99.0.1 and 10.99.0.2 exist only there) and take commands
//! through a mailbox directory on a hostfs share. Everything is removed in `Drop`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

pub const NODES: [&str; 2] = ["n1", "n2"];

/// Stage 1 runs as PID 1 on the read-only host root: it builds an overlay root with a
/// writable tmpfs upper layer, pivots into it and hands over to stage 2.
const STAGE1: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
insmod /usr/lib/uml/modules/$(uname -r)/kernel/fs/overlayfs/overlay.ko
mount -t tmpfs -o size=256m tmpfs /media
mkdir -p /media/upper /media/work /media/root
if ! mount -t overlay overlay -o lowerdir=/,upperdir=/media/upper,workdir=/media/work /media/root; then
  echo "stage1: overlay failed"; echo o > /proc/sysrq-trigger; sleep 30
fi
cd /media/root && mkdir -p oldroot && pivot_root . oldroot
exec chroot . /bin/sh "$stage2" </dev/console >/dev/console 2>&1
"#;

/// Stage 2: pseudo file systems, the guest kernel's modules, the switch network, the
/// share, then the mailbox loop (one command at a time, in order).
const STAGE2: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export DM_DISABLE_UDEV=1
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run; mkdir -p /run/lock /run/lvm /run/resource-agents
mount -t tmpfs tmpfs /tmp
KV=$(uname -r); mkdir -p /lib/modules; ln -sfn /usr/lib/uml/modules/$KV /lib/modules/$KV
hostname "$node"; echo "$node" > /etc/hostname
ip link set lo up; ip link set eth0 up; ip addr add "$ip/24" dev eth0
mkdir -p /shared; mount -t hostfs -o "$share" none /shared
modprobe drbd; modprobe dm-mod; modprobe dm-snapshot
# LVM inside the guest: no udev, no lvmetad, only the guest's own disk.
mkdir -p /etc/lvm
cat > /etc/lvm/lvm.conf <<EOF
devices { filter = [ "a|^/dev/ubd|", "a|^/dev/drbd|", "r|.*|" ] write_cache_state = 0 }
activation { udev_sync = 0 udev_rules = 0 }
global { use_lvmetad = 0 }
EOF
d=/shared/$node; mkdir -p $d; echo ready > $d/state
n=0
while :; do
  if [ -e $d/cmd.$n ]; then
    sh $d/cmd.$n > $d/out.$n 2>&1 </dev/null; echo $? > $d/rc.tmp.$n; mv $d/rc.tmp.$n $d/rc.$n
    n=$((n+1))
  elif [ -e $d/halt ]; then break
  else sleep 0.05; fi
done
sync
echo o > /proc/sysrq-trigger; sleep 30
"#;

pub struct Guest {
    pub name: &'static str,
    child: Child,
    seq: u32,
}

pub struct UmlPair {
    pub dir: PathBuf,
    umid: String,
    switch: Option<Child>,
    pub guests: Vec<Guest>,
}

/// The DRBD resource `r0` on `vg0/lv0` of each guest's own disk (/dev/ubdb), 10.99.0.1-2.
pub const DRBD_R0: &str = "global { usage-count no; }
common {
  net { protocol C; connect-int 2; }
  disk { c-plan-ahead 0; resync-rate 100M; }
}
resource r0 {
  device /dev/drbd0;
  disk /dev/vg0/lv0;
  meta-disk internal;
  on n1 { address 10.99.0.1:7789; }
  on n2 { address 10.99.0.2:7789; }
}
";

/// Output of a guest command.
#[derive(Debug)]
pub struct GuestRun {
    pub rc: i32,
    pub out: String,
}

fn wait_file(p: &Path, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if p.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

impl UmlPair {
    /// Boots both guests (memory per guest, disk size for /dev/ubdb in MiB) and waits for
    /// their mailboxes.
    pub fn boot(tag: &str, mem: &str, disk_mb: u64) -> UmlPair {
        Self::boot_with(tag, mem, disk_mb, None)
    }

    /// Like [`boot`], plus one disk of `shared_mb` MiB that both guests see as
    /// `/dev/ubdc` (the same file, UML's shared mode: no file lock), the stand-in for a SAN
    /// LUN both nodes can reach.
    pub fn boot_shared(tag: &str, mem: &str, disk_mb: u64, shared_mb: u64) -> UmlPair {
        Self::boot_with(tag, mem, disk_mb, Some(shared_mb))
    }

    fn boot_with(tag: &str, mem: &str, disk_mb: u64, shared_mb: Option<u64>) -> UmlPair {
        let umid = format!(
            "pgst-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = PathBuf::from(format!("/tmp/{umid}"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("shared")).unwrap();
        for (name, body) in [("stage1.sh", STAGE1), ("stage2.sh", STAGE2)] {
            let p = dir.join(name);
            fs::write(&p, body).unwrap();
            let mut perm = fs::metadata(&p).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            fs::set_permissions(&p, perm).unwrap();
        }
        let ctl = dir.join("sw.ctl");
        let switch = Command::new("uml_switch")
            .args(["-unix", ctl.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("uml_switch");
        let mut pair = UmlPair {
            dir: dir.clone(),
            umid: umid.clone(),
            switch: Some(switch),
            guests: Vec::new(),
        };
        assert!(
            wait_file(&ctl, Duration::from_secs(10)),
            "uml_switch did not start"
        );
        let shared_img = dir.join("shared-disk.img");
        if let Some(mb) = shared_mb {
            fs::File::create(&shared_img)
                .unwrap()
                .set_len(mb << 20)
                .unwrap();
        }
        for (i, name) in NODES.iter().enumerate() {
            let img = dir.join(format!("{name}.img"));
            fs::File::create(&img)
                .unwrap()
                .set_len(disk_mb << 20)
                .unwrap();
            fs::create_dir_all(dir.join("shared").join(name)).unwrap();
            let log = fs::File::create(dir.join(format!("{name}.log"))).unwrap();
            let child = Command::new("setsid")
                .arg("linux.uml")
                .arg(format!("umid={umid}-{name}"))
                .arg(format!("mem={mem}"))
                .args(["rootfstype=hostfs", "rootflags=/", "ro"])
                .arg(format!("init={}", dir.join("stage1.sh").display()))
                .arg(format!("ubdb={}", img.display()))
                .args(shared_mb.map(|_| format!("ubdcc={}", shared_img.display())))
                .arg(format!(
                    "eth0=daemon,02:00:00:99:00:0{},unix,{}",
                    i + 1,
                    ctl.display()
                ))
                .arg(format!("node={name}"))
                .arg(format!("ip=10.99.0.{}", i + 1))
                .arg(format!("share={}", dir.join("shared").display()))
                .arg(format!("stage2={}", dir.join("stage2.sh").display()))
                .args(["con0=null,fd:1", "con=null"])
                .env("TMPDIR", "/dev/shm")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("linux.uml");
            pair.guests.push(Guest {
                name,
                child,
                seq: 0,
            });
        }
        for name in NODES {
            let state = dir.join("shared").join(name).join("state");
            if !wait_file(&state, Duration::from_secs(120)) {
                let log = fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                panic!("guest {name} did not boot:\n{}", tail(&log, 30));
            }
        }
        pair
    }

    /// Runs a shell script on guest `i` (0 or 1) and returns its exit code and output.
    pub fn exec(&mut self, i: usize, script: &str, timeout: Duration) -> GuestRun {
        let g = &mut self.guests[i];
        let d = self.dir.join("shared").join(g.name);
        let n = g.seq;
        g.seq += 1;
        let tmp = d.join(format!("cmd.tmp.{n}"));
        fs::write(&tmp, script).unwrap();
        fs::rename(&tmp, d.join(format!("cmd.{n}"))).unwrap();
        let rc = d.join(format!("rc.{n}"));
        if !wait_file(&rc, timeout) {
            panic!(
                "guest {} did not finish within {timeout:?}: {script}",
                g.name
            );
        }
        let out = fs::read_to_string(d.join(format!("out.{n}"))).unwrap_or_default();
        let rc = fs::read_to_string(&rc)
            .unwrap()
            .trim()
            .parse()
            .unwrap_or(-1);
        GuestRun { rc, out }
    }

    /// Like [`exec`], but the script must succeed.
    pub fn ok(&mut self, i: usize, script: &str) -> String {
        let r = self.exec(i, script, Duration::from_secs(120));
        assert_eq!(r.rc, 0, "on {}: {script}\n{}", NODES[i], r.out);
        r.out
    }

    /// LVM below DRBD on both guests (vg0/lv0 of `lv_mb` MiB), DRBD `conf` (with
    /// resource r0) up, initial sync done, n1 Primary.
    pub fn provision_drbd(&mut self, conf: &str, lv_mb: u32) {
        fs::write(self.shared("drbd.conf"), conf).unwrap();
        for i in 0..2 {
            self.ok(
                i,
                &format!(
                    "set -e
                cp /shared/drbd.conf /etc/drbd.conf
                pvcreate -q /dev/ubdb; vgcreate -q vg0 /dev/ubdb; lvcreate -q -y -L {lv_mb}M -n lv0 vg0
                drbdadm -- --force create-md r0 >/dev/null 2>&1
                drbdadm up r0"
                ),
            );
        }
        self.ok(0, "i=0; until grep -q cs:Connected /proc/drbd; do sleep 0.1; i=$((i+1)); [ $i -gt 600 ] && exit 1; done; drbdadm primary --force r0");
        for i in 0..2 {
            self.ok(i, "i=0; until grep -q ds:UpToDate/UpToDate /proc/drbd; do sleep 0.2; i=$((i+1)); [ $i -gt 1500 ] && { cat /proc/drbd; exit 1; }; done; true");
        }
    }

    /// A path on the share, seen as `/shared/<rel>` inside the guests.
    pub fn shared(&self, rel: &str) -> PathBuf {
        self.dir.join("shared").join(rel)
    }

    pub fn console(&self, i: usize) -> String {
        fs::read_to_string(self.dir.join(format!("{}.log", NODES[i]))).unwrap_or_default()
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for UmlPair {
    fn drop(&mut self) {
        for g in &self.guests {
            let _ = fs::write(self.dir.join("shared").join(g.name).join("halt"), "");
        }
        let end = Instant::now() + Duration::from_secs(10);
        for g in &mut self.guests {
            while Instant::now() < end {
                if let Ok(Some(_)) = g.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = g.child.kill();
            let _ = g.child.wait();
        }
        // UML's helper processes (one per guest thread) belong to each guest's session.
        let _ = Command::new("pkill")
            .args(["-9", "-f", &format!("umid={}-", self.umid)])
            .status();
        if let Some(mut s) = self.switch.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        if let Ok(home) = std::env::var("HOME") {
            for n in NODES {
                let _ = fs::remove_dir_all(format!("{home}/.uml/{}-{n}", self.umid));
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
