//! The same cases against `ocf:heartbeat:Filesystem` and `ocf:pgstack:filesystem` on the
//! same loop-backed XFS (root only): exit codes agree, except for the deliberate
//! differences listed in docs/compatibility.md, which are asserted here as such.

mod common;

use common::loopfs::{self, is_mounted, sleep_in, Base};
use common::{agent_path, ocf, AgentRun};

const REFERENCE: &str = "/usr/lib/ocf/resource.d/heartbeat/Filesystem";
const BOOK: &str = "noatime,nodiratime,logbsize=256k,allocsize=1m";

fn both(
    action: &str,
    p: &[(&str, &str)],
    extra: &[(&str, &str)],
    reset: &dyn Fn(),
) -> (AgentRun, AgentRun) {
    reset();
    let theirs = ocf(&[], REFERENCE, action, p, extra);
    reset();
    let ours = ocf(&[], &agent_path("filesystem"), action, p, extra);
    (theirs, ours)
}

#[test]
fn exit_codes_agree_with_the_reference_agent() {
    common::require_root();
    common::require_file(REFERENCE);
    let mut b = Base::new("sbs");
    let dev = b.device("xfs");
    let dir = b.path("db");
    let d = dir.to_str().unwrap().to_string();
    let file = b.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    let ok = vec![
        ("device", dev.as_str()),
        ("directory", d.as_str()),
        ("fstype", "xfs"),
        ("options", BOOK),
    ];
    let mount_it = || {
        if !is_mounted(&dir) {
            loopfs::sh(&["mount", "-t", "xfs", "-o", BOOK, &dev, &d]);
        }
    };
    let unmount_it = || {
        if is_mounted(&dir) {
            loopfs::sh(&["umount", &d]);
        }
    };
    let shut_down = || {
        unmount_it();
        mount_it();
        loopfs::sh(&["xfs_io", "-x", "-c", "shutdown", &d]);
    };
    std::fs::create_dir_all(&dir).unwrap();
    let l20 = [
        ("OCF_CHECK_LEVEL", "20"),
        ("OCF_RESKEY_CRM_meta_interval", "20000"),
    ];
    let l10 = [
        ("OCF_CHECK_LEVEL", "10"),
        ("OCF_RESKEY_CRM_meta_interval", "20000"),
    ];
    let missing = vec![
        ("device", "/dev/pgst-fs-nosuch"),
        ("directory", d.as_str()),
        ("fstype", "xfs"),
    ];
    let on_file = vec![
        ("device", dev.as_str()),
        ("directory", file.to_str().unwrap()),
        ("fstype", "xfs"),
    ];
    let bad_type = vec![
        ("device", dev.as_str()),
        ("directory", d.as_str()),
        ("fstype", "nosuchfs"),
    ];
    let no_device = vec![("directory", d.as_str()), ("fstype", "xfs")];
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a [(&'a str, &'a str)],
        &'a dyn Fn(),
        i32,
    );
    let cases: Vec<Case> = vec![
        (
            "probe, unmounted",
            "monitor",
            ok.clone(),
            &[],
            &unmount_it,
            7,
        ),
        ("start", "start", ok.clone(), &[], &unmount_it, 0),
        (
            "start, already mounted",
            "start",
            ok.clone(),
            &[],
            &mount_it,
            0,
        ),
        ("monitor", "monitor", ok.clone(), &[], &mount_it, 0),
        (
            "monitor depth 10",
            "monitor",
            ok.clone(),
            &l10,
            &mount_it,
            0,
        ),
        (
            "monitor depth 20",
            "monitor",
            ok.clone(),
            &l20,
            &mount_it,
            0,
        ),
        ("stop", "stop", ok.clone(), &[], &mount_it, 0),
        ("stop, unmounted", "stop", ok.clone(), &[], &unmount_it, 0),
        (
            "start, missing device",
            "start",
            missing.clone(),
            &[],
            &unmount_it,
            5,
        ),
        (
            "probe, missing device",
            "monitor",
            missing.clone(),
            &[],
            &unmount_it,
            7,
        ),
        (
            "stop, missing device",
            "stop",
            missing.clone(),
            &[],
            &unmount_it,
            0,
        ),
        (
            "start, directory is a file",
            "start",
            on_file.clone(),
            &[],
            &unmount_it,
            5,
        ),
        (
            "start, unknown fstype",
            "start",
            bad_type.clone(),
            &[],
            &unmount_it,
            5,
        ),
        (
            "start, no device parameter",
            "start",
            no_device.clone(),
            &[],
            &unmount_it,
            6,
        ),
        (
            "monitor, no device parameter",
            "monitor",
            no_device.clone(),
            &l20,
            &unmount_it,
            6,
        ),
        (
            "monitor depth 20, XFS shut down",
            "monitor",
            ok.clone(),
            &l20,
            &shut_down,
            1,
        ),
    ];
    let mut table = String::from("| case | heartbeat | pgstack |\n|---|---|---|\n");
    let mut bad = Vec::new();
    for (name, action, p, extra, reset, want) in &cases {
        let (t, o) = both(action, p, extra, *reset);
        table.push_str(&format!("| {name} | {} | {} |\n", t.code, o.code));
        if t.code != *want || o.code != *want {
            bad.push(format!(
                "{name}: heartbeat {} ({:?}), pgstack {} ({:?}), expected {want}",
                t.code,
                t.exit_reason(),
                o.code,
                o.exit_reason()
            ));
        }
    }
    unmount_it();
    // A busy stop: both kill the holder and succeed.
    for agent in [REFERENCE.to_string(), agent_path("filesystem")] {
        mount_it();
        let mut h = sleep_in(&dir, "cwd in the mount");
        let r = ocf(&[], &agent, "stop", &ok, &[]);
        let ended = h.ended_within(std::time::Duration::from_secs(5));
        table.push_str(&format!(
            "| busy stop ({agent}) | {} | holder alive: {} |\n",
            r.code, !ended
        ));
        if r.code != 0 || !ended || is_mounted(&dir) {
            bad.push(format!("busy stop by {agent}: {r:?}"));
        }
    }
    std::fs::write(
        common::artifacts().join("filesystem-side-by-side.md"),
        &table,
    )
    .unwrap();
    assert!(bad.is_empty(), "{}\n{table}", bad.join("\n"));
}

/// Where pgstack deliberately differs (docs/compatibility.md, "filesystem").
#[test]
fn documented_differences() {
    common::require_root();
    common::require_file(REFERENCE);
    let mut b = Base::new("sbsdiff");
    let dev = b.device("xfs");
    let other = b.device("ext4");
    let dir = b.path("db");
    let d = dir.to_str().unwrap().to_string();
    std::fs::create_dir_all(&dir).unwrap();
    let unmount_it = || {
        for m in loopfs::mounts_below(&dir) {
            loopfs::sh(&["umount", m.to_str().unwrap()]);
        }
    };
    let foreign = || {
        if !is_mounted(&dir) {
            loopfs::sh(&["mount", "-t", "ext4", &other, &d]);
        }
    };
    let ok = vec![
        ("device", dev.as_str()),
        ("directory", d.as_str()),
        ("fstype", "xfs"),
    ];
    // 1. Another device on the directory: the reference reports "running".
    let (t, o) = both("monitor", &ok, &[], &foreign);
    assert_eq!((t.code, o.code), (0, 1), "{t:?} {o:?}");
    let (t, o) = both("start", &ok, &[], &foreign);
    assert_eq!((t.code, o.code), (0, 1), "{t:?} {o:?}");
    // 2. Options with shell separators: the reference hands them to mount(8), which fails.
    let inj = vec![
        ("device", dev.as_str()),
        ("directory", d.as_str()),
        ("fstype", "xfs"),
        ("options", "noatime;nosuid"),
    ];
    let (t, o) = both("start", &inj, &[], &unmount_it);
    assert_eq!((t.code, o.code), (1, 6), "{t:?} {o:?}");
    // 3. A relative directory is a configuration error here; the reference mounts it
    //    below its working directory (run in the test's base directory).
    let rel = vec![
        ("device", dev.as_str()),
        ("directory", "pgst-fs-relative"),
        ("fstype", "xfs"),
    ];
    let base = b.dir.to_str().unwrap().to_string();
    let in_base = ["env", "-C", base.as_str()];
    let t = ocf(&in_base, REFERENCE, "start", &rel, &[]);
    let o = ocf(&in_base, &agent_path("filesystem"), "start", &rel, &[]);
    assert_eq!(o.code, 6, "{o:?}");
    assert!(o.exit_reason().unwrap().contains("absolute"), "{o:?}");
    eprintln!(
        "relative directory: heartbeat {} pgstack {}",
        t.code, o.code
    );
    for m in loopfs::mounts_below(&b.dir) {
        loopfs::sh(&["umount", m.to_str().unwrap()]);
    }
    // 4. Depth 10 after an XFS forced shutdown: the reference reads only the device.
    let shut = || {
        unmount_it();
        loopfs::sh(&["mount", "-t", "xfs", &dev, &d]);
        loopfs::sh(&["xfs_io", "-x", "-c", "shutdown", &d]);
    };
    let l10 = [
        ("OCF_CHECK_LEVEL", "10"),
        ("OCF_RESKEY_CRM_meta_interval", "20000"),
    ];
    let (t, o) = both("monitor", &ok, &l10, &shut);
    assert_eq!((t.code, o.code), (0, 1), "{t:?} {o:?}");
    unmount_it();
}
