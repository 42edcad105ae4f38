//! Two User-Mode-Linux guests for what the host kernel cannot do (DRBD, device-mapper,
//! LVM activation): the tests' side of `pgstack::lab::uml` (boot, mailbox, power cut,
//! removal), where any failure is a panic and everything is removed in `Drop`.

use std::time::Duration;

use pgstack::lab::uml::{Pair, Spec};

pub use pgstack::lab::uml::{GuestRun, NODES};

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

/// A booted pair, removed when dropped (also when the test panics).
pub struct UmlPair {
    pub pair: Pair,
}

impl UmlPair {
    /// Boots both guests (memory per guest, disk size for /dev/ubdb in MiB).
    pub fn boot(tag: &str, mem: &str, disk_mb: u64) -> UmlPair {
        Self::boot_spec(Spec::unique(tag, mem, disk_mb))
    }

    /// Like [`UmlPair::boot`], plus one disk of `shared_mb` MiB that both guests see as
    /// `/dev/ubdc` (the same file, UML's shared mode), the stand-in for a SAN LUN.
    pub fn boot_shared(tag: &str, mem: &str, disk_mb: u64, shared_mb: u64) -> UmlPair {
        let mut spec = Spec::unique(tag, mem, disk_mb);
        spec.shared_mb = Some(shared_mb);
        Self::boot_spec(spec)
    }

    pub fn boot_spec(spec: Spec) -> UmlPair {
        match Pair::create(&spec) {
            Ok(pair) => UmlPair { pair },
            Err(e) => panic!("booting the guests in {}: {e}", spec.dir.display()),
        }
    }

    /// Runs a shell script on guest `i` (0 or 1) and returns its exit code and output.
    pub fn exec(&mut self, i: usize, script: &str, timeout: Duration) -> GuestRun {
        self.pair
            .exec(NODES[i], script, timeout)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`UmlPair::exec`], but the script must succeed.
    pub fn ok(&mut self, i: usize, script: &str) -> String {
        let r = self.exec(i, script, Duration::from_secs(120));
        assert_eq!(r.rc, 0, "on {}: {script}\n{}", NODES[i], r.out);
        r.out
    }

    /// LVM below DRBD on both guests (vg0/lv0 of `lv_mb` MiB), DRBD `conf` (with
    /// resource r0) up, initial sync done, n1 Primary.
    pub fn provision_drbd(&mut self, conf: &str, lv_mb: u32) {
        std::fs::write(self.shared("drbd.conf"), conf).unwrap();
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
    pub fn shared(&self, rel: &str) -> std::path::PathBuf {
        self.pair.shared(rel)
    }

    pub fn console(&self, i: usize) -> String {
        self.pair.console(NODES[i])
    }
}

impl Drop for UmlPair {
    fn drop(&mut self) {
        if let Err(e) = Pair::down_dir(&self.pair.dir) {
            eprintln!("removing the guests: {e}");
        }
    }
}
