//! `pgstack xfs format|mount-options` on a real loop device (root only for format).

mod common;

use std::time::Duration;

use common::loopfs::{self, Base};

#[test]
fn mount_options_are_the_books_and_nobarrier_warns() {
    let out = common::run(
        &[&common::bin(), "xfs", "mount-options"],
        &[],
        Duration::from_secs(10),
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "noatime,nodiratime,logbsize=256k,allocsize=1m"
    );
    let out = common::run(
        &[&common::bin(), "xfs", "mount-options", "--nobarrier"],
        &[],
        Duration::from_secs(10),
    );
    assert!(String::from_utf8_lossy(&out.stdout)
        .trim()
        .ends_with(",nobarrier"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn format_computes_agcount_from_cpus_and_size() {
    common::require_root();
    let mut b = Base::new("mkfs");
    let dev = b.device("raw");
    let out = common::run(
        &[&common::bin(), "xfs", "format", &dev],
        &[],
        Duration::from_secs(120),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // 512 MiB holds at most 7 groups big enough for the 64 MiB log (256 is reduced).
    assert!(text.contains("agcount=7"), "{text}");
    let dir = b.mkdir("m");
    loopfs::mount(&dev, "xfs", &dir);
    let info = loopfs::sh(&["xfs_info", dir.to_str().unwrap()]);
    assert!(info.contains("agcount=7"), "{info}");
    let out = common::run(
        &[&common::bin(), "xfs", "format", "--force", &dev],
        &[],
        Duration::from_secs(60),
    );
    assert!(
        !out.status.success(),
        "formatting a mounted device must be refused"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("is mounted"));
    loopfs::sh(&["umount", dir.to_str().unwrap()]);
    // An existing file system is kept unless --force.
    let out = common::run(
        &[&common::bin(), "xfs", "format", &dev],
        &[],
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let out = common::run(
        &[
            &common::bin(),
            "xfs",
            "format",
            "--force",
            "--cpus",
            "2",
            &dev,
        ],
        &[],
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
