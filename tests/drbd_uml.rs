//! Real DRBD 8.4 between two User-Mode-Linux guests.

mod common;

use std::time::Duration;

use common::root;
use common::uml::UmlPair;

pub const DRBD_CONF: &str = "global { usage-count no; }
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

/// LVM below DRBD on both guests, metadata, up, initial sync with n1 Primary.
fn provision(p: &mut UmlPair) {
    std::fs::write(p.shared("drbd.conf"), DRBD_CONF).unwrap();
    for i in 0..2 {
        p.ok(
            i,
            "set -e
            cp /shared/drbd.conf /etc/drbd.conf
            pvcreate -q /dev/ubdb; vgcreate -q vg0 /dev/ubdb; lvcreate -q -y -L 64M -n lv0 vg0
            drbdadm -- --force create-md r0 >/dev/null 2>&1
            drbdadm up r0",
        );
    }
    p.ok(0, "i=0; until grep -q cs:Connected /proc/drbd; do sleep 0.1; i=$((i+1)); [ $i -gt 600 ] && exit 1; done; drbdadm primary --force r0");
    for i in 0..2 {
        p.ok(i, "i=0; until grep -q ds:UpToDate/UpToDate /proc/drbd; do sleep 0.2; i=$((i+1)); [ $i -gt 1500 ] && { cat /proc/drbd; exit 1; }; done; true");
    }
}

#[test]
fn harness_role_swap_keeps_the_data() {
    if !root() {
        return;
    }
    let t = std::time::Instant::now();
    let mut p = UmlPair::boot("drbd", "256M", 256);
    provision(&mut p);
    let synced = t.elapsed();
    assert!(synced < Duration::from_secs(60), "{synced:?}");
    let sum = p.ok(
        0,
        "set -e; export TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1
        mkfs.xfs -f -q /dev/drbd0; mkdir -p /mnt/r0; mount -t xfs /dev/drbd0 /mnt/r0
        dd if=/dev/urandom of=/mnt/r0/payload bs=1M count=8 status=none
        md5sum /mnt/r0/payload | cut -d' ' -f1; umount /mnt/r0; drbdadm secondary r0",
    );
    let sum2 = p.ok(
        1,
        "set -e; drbdadm primary r0; mkdir -p /mnt/r0; mount -t xfs /dev/drbd0 /mnt/r0
        md5sum /mnt/r0/payload | cut -d' ' -f1; umount /mnt/r0; drbdadm secondary r0",
    );
    assert_eq!(sum.trim(), sum2.trim());
    assert_eq!(sum.trim().len(), 32);
    eprintln!("both UpToDate, n1 Primary after {synced:?}");
}
