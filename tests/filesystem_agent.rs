//! Black-box tests of the `filesystem` agent on real XFS and ext4 file systems on loop
//! devices (root only), through the installed shim.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::loopfs::{
    self, expect, fs, is_mounted, mapper, sleep_holding, sleep_in, stubborn_in, xfs_params, Base,
};

fn depth(d: &'static str) -> [(&'static str, &'static str); 2] {
    [
        ("OCF_CHECK_LEVEL", d),
        ("OCF_RESKEY_CRM_meta_interval", "20000"),
    ]
}

#[test]
fn xfs_life_cycle_with_the_books_options_and_a_path_with_spaces() {
    common::require_root();
    let mut b = Base::new("cycle");
    let dev = b.device("xfs");
    let dir = b.path("pg data");
    let d = dir.to_str().unwrap();
    let p = xfs_params(&dev, d);
    expect(&fs("monitor", &p, &[]), 7, "probe before start");
    expect(&fs("validate-all", &p, &[]), 0, "validate-all");
    expect(&fs("start", &p, &[]), 0, "start (creates the directory)");
    assert!(is_mounted(&dir));
    let table = pgstack::sys::mount::mountinfo(None).unwrap();
    let m = pgstack::sys::mount::mount_at(&table, &dir).unwrap();
    assert!(
        m.options.contains("noatime") && m.options.contains("nodiratime"),
        "{m:?}"
    );
    assert!(
        m.super_options.contains("logbsize=256k") && m.super_options.contains("allocsize=1024k"),
        "{m:?}"
    );
    expect(&fs("start", &p, &[]), 0, "second start");
    for level in ["0", "10", "20"] {
        expect(
            &fs("monitor", &p, &depth(level)),
            0,
            &format!("monitor depth {level}"),
        );
    }
    let status = dir.join(".Filesystem_status");
    // DirEntry keeps the directory open: keep only names, or the mount stays busy.
    let names: Vec<String> = std::fs::read_dir(&status)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("test_"), "{names:?}");
    assert!(std::fs::read(status.join(&names[0]))
        .unwrap()
        .starts_with(b"test\n"));
    expect(
        &fs("monitor", &p, &[("OCF_CHECK_LEVEL", "15")]),
        6,
        "unsupported depth",
    );
    expect(&fs("stop", &p, &[]), 0, "stop");
    assert!(!is_mounted(&dir));
    expect(&fs("stop", &p, &[]), 0, "second stop");
    expect(&fs("monitor", &p, &[]), 7, "monitor after stop");
}

#[test]
fn ext4_with_fsck_and_uuid_device() {
    common::require_root();
    let mut b = Base::new("ext4");
    let dev = b.device("ext4");
    let uuid = loopfs::sh(&["blkid", "-o", "value", "-s", "UUID", &dev]);
    let spec = format!("UUID={}", uuid.trim());
    let dir = b.path("mnt");
    let d = dir.to_str().unwrap();
    let p = [
        ("device", spec.as_str()),
        ("directory", d),
        ("fstype", "ext4"),
        ("run_fsck", "force"),
    ];
    expect(&fs("start", &p, &[]), 0, "start by UUID with fsck");
    assert!(is_mounted(&dir));
    expect(&fs("monitor", &p, &depth("20")), 0, "depth 20 on ext4");
    expect(&fs("stop", &p, &[]), 0, "stop");
    let p = [
        ("device", "UUID=00000000-1111-2222-3333-444444444444"),
        ("directory", d),
        ("fstype", "ext4"),
    ];
    let r = fs("start", &p, &[]);
    expect(&r, 5, "unknown UUID");
    assert!(r.exit_reason().unwrap().contains("UUID=00000000"), "{r:?}");
    expect(&fs("monitor", &p, &[]), 7, "probe of an unknown UUID");
}

/// The busy stop: holders by cwd, open file, mmap and in a sub-mount die; a holder
/// of a sibling mount below the same parent and a process with its cwd in the parent live.
#[test]
fn busy_stop_kills_exactly_the_holders_of_the_mount() {
    common::require_root();
    let mut b = Base::new("busy");
    let dev = b.device("xfs");
    let other = b.device("ext4");
    let dir = b.path("data");
    let sibling = b.path("other");
    let d = dir.to_str().unwrap();
    // Every holder here dies on the first signal: with a long signal_delay, a stop that
    // waited for the second round would take over 10 s, however loaded the machine is.
    let mut p = xfs_params(&dev, d);
    p.push(("signal_delay", "10"));
    expect(&fs("start", &p, &[]), 0, "start");
    loopfs::mount(&other, "ext4", &sibling);
    let sub = dir.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    loopfs::sh(&["mount", "-t", "tmpfs", "pgst-fs-sub", sub.to_str().unwrap()]);

    let mut cwd = sleep_in(&dir, "cwd in the mount");
    let mut file = sleep_holding(&dir.join("open-file"), "open file");
    let mut map = mapper(&dir.join("mapped"), "mmap only");
    let mut deep = sleep_in(&sub, "cwd in a sub-mount");
    let mut sib = sleep_holding(&sibling.join("f"), "file on the sibling mount");
    let mut parent = sleep_in(&b.dir, "cwd in the parent directory");

    let t0 = Instant::now();
    let r = fs("stop", &p, &[]);
    let took = t0.elapsed();
    expect(&r, 0, "busy stop");
    for h in [&mut cwd, &mut file, &mut map, &mut deep] {
        assert!(
            h.ended_within(Duration::from_secs(5)),
            "{} (pid {}) survived: {}",
            h.name,
            h.pid(),
            r.stderr
        );
    }
    for h in [&mut sib, &mut parent] {
        assert!(
            h.alive(),
            "{} (pid {}) was killed: {}",
            h.name,
            h.pid(),
            r.stderr
        );
    }
    assert!(!is_mounted(&dir) && !is_mounted(&sub));
    assert!(is_mounted(&sibling), "the sibling mount must stay");
    assert!(
        took < Duration::from_secs(10),
        "busy stop took {took:?}: it waited for the second round of signals"
    );
    eprintln!("busy stop with 4 holders and a sub-mount: {took:?}");
}

#[test]
fn term_ignored_escalates_to_kill() {
    common::require_root();
    let mut b = Base::new("kill");
    let dev = b.device("xfs");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    let mut p = xfs_params(&dev, d);
    p.push(("fast_stop", "true"));
    expect(&fs("start", &p, &[]), 0, "start");
    let mut h = stubborn_in(&dir, "TERM", "ignores TERM");
    let t0 = Instant::now();
    let r = fs("stop", &p, &[]);
    let took = t0.elapsed();
    expect(&r, 0, "stop");
    // The mount is free once the holder's files are closed, a moment before it can be
    // reaped.
    assert!(h.ended_within(Duration::from_secs(2)));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(
        r.stderr.contains("SIGTERM") && r.stderr.contains("SIGKILL"),
        "{}",
        r.stderr
    );
}

#[test]
fn unkillable_holder_fails_within_the_timeout_naming_it() {
    common::require_root();
    let mut b = Base::new("stuck");
    let dev = b.device("xfs");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    let mut p = xfs_params(&dev, d);
    p.push(("kill_signals", "HUP"));
    p.push(("signal_delay", "0"));
    expect(&fs("start", &p, &[]), 0, "start");
    let mut h = stubborn_in(&dir, "TERM HUP", "ignores TERM and HUP");
    let t0 = Instant::now();
    let r = fs("stop", &p, &[("OCF_RESKEY_CRM_meta_timeout", "3000")]);
    let took = t0.elapsed();
    expect(&r, 1, "stop that cannot finish");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let reason = r.exit_reason().unwrap();
    assert!(
        reason.contains(&h.pid().to_string()) && reason.contains("sleep"),
        "{reason}"
    );
    assert!(h.alive());
    assert!(is_mounted(&dir));
    drop(h);
    let p2 = xfs_params(&dev, d);
    expect(&fs("stop", &p2, &[]), 0, "stop once the holder is gone");
    // force_unmount=false never signals.
    expect(&fs("start", &p2, &[]), 0, "start");
    let mut h = sleep_in(&dir, "cwd");
    let mut p3 = xfs_params(&dev, d);
    p3.push(("force_unmount", "false"));
    let r = fs("stop", &p3, &[]);
    expect(&r, 1, "busy stop without force_unmount");
    assert!(r.exit_reason().unwrap().contains(&h.pid().to_string()));
    assert!(h.alive());
}

#[test]
fn forced_shutdown_is_caught_at_depth_10_and_20() {
    common::require_root();
    let mut b = Base::new("shut");
    let dev = b.device("xfs");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    let p = xfs_params(&dev, d);
    expect(&fs("start", &p, &[]), 0, "start");
    expect(&fs("monitor", &p, &depth("20")), 0, "healthy depth 20");
    loopfs::sh(&["xfs_io", "-x", "-c", "shutdown", d]);
    expect(
        &fs("monitor", &p, &depth("0")),
        0,
        "depth 0 sees only the mount",
    );
    for level in ["10", "20"] {
        let r = fs("monitor", &p, &depth(level));
        expect(&r, 1, &format!("depth {level} after shutdown"));
        assert!(r.exit_reason().unwrap().contains("I/O error"), "{r:?}");
    }
    expect(&fs("stop", &p, &[]), 0, "stop of a shut-down file system");
    assert!(!is_mounted(&dir));
}

#[test]
fn bad_input_gives_reasons_and_the_right_codes() {
    common::require_root();
    let mut b = Base::new("bad");
    let dev = b.device("xfs");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, i32, &'a str);
    let cases: &[Case] = &[
        (
            "start",
            vec![
                ("device", "/dev/pgst-fs-nosuch"),
                ("directory", d),
                ("fstype", "xfs"),
            ],
            5,
            "/dev/pgst-fs-nosuch",
        ),
        (
            "monitor",
            vec![
                ("device", "/dev/pgst-fs-nosuch"),
                ("directory", d),
                ("fstype", "xfs"),
            ],
            7,
            "",
        ),
        (
            "start",
            vec![
                ("device", &dev),
                ("directory", "relative/dir"),
                ("fstype", "xfs"),
            ],
            6,
            "relative/dir",
        ),
        (
            "start",
            vec![("device", &dev), ("directory", d), ("fstype", "nosuchfs")],
            5,
            "nosuchfs",
        ),
        (
            "start",
            vec![
                ("device", &dev),
                ("directory", d),
                ("fstype", "xfs"),
                ("options", "noatime;reboot"),
            ],
            6,
            "noatime;reboot",
        ),
        (
            "start",
            vec![
                ("device", &dev),
                ("directory", d),
                ("fstype", "xfs"),
                ("options", "noatime -o remount"),
            ],
            6,
            "remount",
        ),
        (
            "start",
            vec![("device", &dev), ("directory", "/"), ("fstype", "xfs")],
            6,
            "root",
        ),
        (
            "start",
            vec![("directory", d), ("fstype", "xfs")],
            6,
            "device",
        ),
        (
            "stop",
            vec![("device", &dev), ("directory", d), ("fstype", "xfs")],
            0,
            "",
        ),
        (
            "start",
            vec![("device", &dev), ("directory", d), ("fstype", "xfs")],
            0,
            "",
        ),
        (
            "stop",
            vec![("device", &dev), ("directory", d), ("options", "x;y")],
            0,
            "",
        ),
    ];
    for (action, p, code, needle) in cases {
        let r = fs(action, p, &[]);
        expect(&r, *code, &format!("{action} {p:?}"));
        if !needle.is_empty() {
            let reason = r.exit_reason().unwrap_or_default();
            assert!(reason.contains(needle), "{action} {p:?}: {reason}");
        }
    }
    assert!(!is_mounted(&dir), "stop with a bad configuration unmounts");
    let file = b.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let r = fs(
        "start",
        &[
            ("device", &dev),
            ("directory", file.to_str().unwrap()),
            ("fstype", "xfs"),
        ],
        &[],
    );
    expect(&r, 5, "directory is a file");
    assert!(r.exit_reason().unwrap().contains("a-file"));
}

#[test]
fn another_device_on_the_directory_is_an_error_and_left_alone() {
    common::require_root();
    let mut b = Base::new("foreign");
    let dev = b.device("xfs");
    let other = b.device("ext4");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    loopfs::mount(&other, "ext4", Path::new(d));
    let p = xfs_params(&dev, d);
    let r = fs("monitor", &p, &[]);
    expect(&r, 1, "monitor");
    assert!(r.exit_reason().unwrap().contains(&other), "{r:?}");
    expect(&fs("start", &p, &[]), 1, "start");
    expect(&fs("stop", &p, &[]), 0, "stop");
    assert!(is_mounted(&dir), "a foreign mount is not ours to unmount");
}

#[test]
fn clones_of_xfs_are_refused_unless_forced() {
    common::require_root();
    let mut b = Base::new("clone");
    let dev = b.device("xfs");
    let d = b.path("data");
    let d = d.to_str().unwrap();
    let clone = [
        ("OCF_RESKEY_CRM_meta_clone", "0"),
        ("OCF_RESKEY_CRM_meta_clone_max", "2"),
    ];
    let r = fs("start", &xfs_params(&dev, d), &clone);
    expect(&r, 6, "xfs clone");
    assert!(r.exit_reason().unwrap().contains("cluster-aware"));
    let mut p = xfs_params(&dev, d);
    p.push(("force_clones", "true"));
    expect(&fs("start", &p, &clone), 0, "forced clone");
    expect(&fs("stop", &p, &clone), 0, "stop");
}

/// Thaws a frozen file system in Drop, so a failing test leaves nothing blocked.
struct Frozen(String);

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("fsfreeze")
            .args(["-u", &self.0])
            .status();
    }
}

/// A frozen file system blocks writers in the kernel, as a hung device does: depth 20
/// must give up at its deadline with a reason, long before the operation timeout would
/// have Pacemaker kill it; depth 0 and 10 (reads) still pass.
#[test]
fn a_hung_write_fails_depth_20_before_the_timeout() {
    common::require_root();
    let mut b = Base::new("frozen");
    let dev = b.device("xfs");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    let p = xfs_params(&dev, d);
    expect(&fs("start", &p, &[]), 0, "start");
    let frozen = Frozen(d.to_string());
    loopfs::sh(&["fsfreeze", "-f", d]);
    expect(
        &fs("monitor", &p, &depth("10")),
        0,
        "reads work on a frozen file system",
    );
    let t0 = Instant::now();
    let r = fs(
        "monitor",
        &p,
        &[
            ("OCF_CHECK_LEVEL", "20"),
            ("OCF_RESKEY_CRM_meta_interval", "20000"),
            ("OCF_RESKEY_CRM_meta_timeout", "2000"),
        ],
    );
    let took = t0.elapsed();
    expect(&r, 1, "depth 20 on a frozen file system");
    assert!(
        r.exit_reason().unwrap().contains("no answer within"),
        "{r:?}"
    );
    assert!(took < Duration::from_millis(2000), "gave up after {took:?}");
    drop(frozen);
    expect(&fs("monitor", &p, &depth("20")), 0, "after thawing");
    expect(&fs("stop", &p, &[]), 0, "stop");
}

/// `fstype=none` bind-mounts a directory; mountinfo shows the device and the path within
/// it, which is how the mount is recognised.
#[test]
fn bind_mount_of_a_directory() {
    common::require_root();
    let mut b = Base::new("bind");
    let dev = b.device("xfs");
    let lower = b.path("lower");
    loopfs::mount(&dev, "xfs", &lower);
    let src = lower.join("pgdata");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), b"x").unwrap();
    let dir = b.path("bound");
    let p = [
        ("device", src.to_str().unwrap()),
        ("directory", dir.to_str().unwrap()),
        ("fstype", "none"),
    ];
    expect(&fs("start", &p, &[]), 0, "bind start");
    assert!(dir.join("marker").exists());
    expect(&fs("monitor", &p, &[]), 0, "bind monitor");
    let other = lower.join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    let q = [
        ("device", other.to_str().unwrap()),
        ("directory", dir.to_str().unwrap()),
        ("fstype", "none"),
    ];
    expect(&fs("monitor", &q, &[]), 1, "another directory bound here");
    let mut h = sleep_in(&dir, "cwd in the bind mount");
    let mut keep = sleep_in(&lower, "cwd in the underlying mount");
    expect(&fs("stop", &p, &[]), 0, "bind stop");
    assert!(
        h.ended_within(Duration::from_secs(5)),
        "the holder of the bind mount is signalled"
    );
    assert!(keep.alive(), "a user of the underlying mount is not");
    assert!(!is_mounted(&dir) && is_mounted(&lower));
}
