//! Unit tests of the agent's decisions against the recording fake of [`Mounts`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::*;
use crate::ocf::dispatch::run;
use crate::ocf::env::OcfEnv;
use crate::ocf::log::Logger;
use crate::ocf::params::ParamError;
use crate::sys::blockio::{Op, ProbeError};
use crate::sys::fake::FakeMounts;

fn act(fs: &Filesystem<FakeMounts>, action: &str, pairs: &[(&str, &str)]) -> (u8, String) {
    let mut m: std::collections::BTreeMap<String, String> = [
        ("device", "/dev/loop7"),
        ("directory", "/srv/db"),
        ("fstype", "xfs"),
        ("signal_delay", "0"),
    ]
    .iter()
    .chain(pairs.iter().filter(|(k, _)| !k.starts_with("OCF_")))
    .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
    .collect();
    for (k, v) in pairs.iter().filter(|(k, _)| k.starts_with("OCF_")) {
        m.insert(k.to_string(), v.to_string());
    }
    m.insert("OCF_RESOURCE_INSTANCE".into(), "fs".into());
    let o = run(fs, action, &OcfEnv::from_map(m), &Logger::silent());
    (o.code.as_u8(), o.exit_reason.unwrap_or_default())
}

/// / (1), /srv (20) with /srv/db (30, ours) holding /srv/db/a (31) and /srv/db/a/b
/// (32), and a sibling /srv/other (40) on another device.
/// Whether the agent made a call that `pred` accepts.
fn called(fs: &Filesystem<FakeMounts>, pred: impl Fn(&String) -> bool) -> bool {
    fs.sys.calls.borrow().iter().any(pred)
}

/// The device /dev/loop7 with nothing mounted but the root.
fn unmounted() -> FakeMounts {
    FakeMounts::default()
        .with_device("/dev/loop7", (7, 7))
        .with_mount(1, 0, (8, 1), "/", "/dev/vda")
}

fn tree() -> FakeMounts {
    FakeMounts::default()
        .with_device("/dev/loop7", (7, 7))
        .with_device("/dev/loop8", (7, 8))
        .with_mount(1, 0, (8, 1), "/", "/dev/vda")
        .with_mount(20, 1, (8, 2), "/srv", "/dev/vdb")
        .with_mount(30, 20, (7, 7), "/srv/db", "/dev/loop7")
        .with_mount(31, 30, (0, 50), "/srv/db/a", "tmpfs")
        .with_mount(32, 31, (0, 51), "/srv/db/a/b", "tmpfs")
        .with_mount(40, 20, (7, 8), "/srv/other", "/dev/loop8")
}

#[test]
fn stop_goes_deepest_first_escalates_and_spares_the_rest() {
    let sys = tree()
        .with_proc(100, 32, &[])
        .with_proc(101, 30, &[Signal::SIGTERM])
        .with_proc(102, 40, &[])
        .with_proc(103, 20, &[]);
    let fs = Filesystem::new(sys);
    let (code, why) = act(&fs, "stop", &[("fast_stop", "true")]);
    assert_eq!(code, 0, "{why}");
    let calls = fs.sys.calls.borrow().clone();
    let pos = |c: &str| {
        calls
            .iter()
            .position(|x| x == c)
            .unwrap_or_else(|| panic!("{c} not in {calls:?}"))
    };
    assert!(pos("kill SIGTERM 100") < pos("kill SIGTERM 101"));
    assert!(pos("kill SIGTERM 101") < pos("kill SIGKILL 101"));
    let unmounted: Vec<&String> = calls.iter().filter(|c| c.starts_with("umount")).collect();
    assert_eq!(unmounted.first().unwrap().as_str(), "umount /srv/db/a/b");
    assert!(
        !calls
            .iter()
            .any(|c| c.ends_with(" 102") || c.ends_with(" 103")),
        "{calls:?}"
    );
    let left: Vec<u32> = fs.sys.table.borrow().iter().map(|m| m.id).collect();
    assert_eq!(left, [1, 20, 40]);
    assert!(fs.sys.alive(102) && fs.sys.alive(103));
}

#[test]
fn an_unkillable_holder_fails_the_stop_in_time_naming_it_and_protected_ones() {
    let fs = Filesystem::new(
        tree()
            .with_proc(101, 30, &[Signal::SIGTERM, Signal::SIGKILL])
            .with_proc(105, 30, &[])
            .protect(105),
    );
    let t0 = Instant::now();
    let (code, why) = act(&fs, "stop", &[("OCF_RESKEY_CRM_meta_timeout", "600")]);
    assert_eq!(code, 1);
    assert!(
        t0.elapsed() < Duration::from_millis(600),
        "{:?}",
        t0.elapsed()
    );
    assert!(why.contains("101 (proc101"), "{why}");
    assert!(
        why.contains("never signalled") && why.contains("105"),
        "{why}"
    );
    assert!(!called(&fs, |c| c.ends_with(" 105")));
}

#[test]
fn force_unmount_false_signals_nobody() {
    let fs = Filesystem::new(tree().with_proc(101, 30, &[]));
    let (code, why) = act(&fs, "stop", &[("force_unmount", "false")]);
    assert_eq!(code, 1);
    assert!(
        why.contains("101") && why.contains("force_unmount=false"),
        "{why}"
    );
    assert!(fs.sys.alive(101));
    assert!(!called(&fs, |c| c.starts_with("kill")));
}

#[test]
fn a_foreign_device_is_reported_and_left_mounted() {
    let fs = Filesystem::new(tree());
    let (code, why) = act(&fs, "monitor", &[("device", "/dev/loop8")]);
    assert_eq!(code, 1);
    assert!(
        why.contains("/dev/loop7") && why.contains("another device"),
        "{why}"
    );
    let (code, _) = act(&fs, "stop", &[("device", "/dev/loop8")]);
    assert_eq!(code, 0);
    assert!(!called(&fs, |c| c.starts_with("umount")));
}

#[test]
fn monitor_depths_and_probe_errors() {
    let fs = Filesystem::new(tree());
    assert_eq!(act(&fs, "monitor", &[("directory", "/srv/nothere")]).0, 7);
    assert_eq!(act(&fs, "monitor", &[]).0, 0);
    assert!(fs.sys.probes.borrow().is_empty(), "depth 0 does no I/O");
    assert_eq!(act(&fs, "monitor", &[("OCF_CHECK_LEVEL", "20")]).0, 0);
    let ops = fs.sys.probes.borrow()[0].clone();
    assert!(matches!(&ops[0], Op::ReadDevice(p) if p == Path::new("/dev/loop7")));
    assert!(matches!(&ops[1], Op::ReadDir(p) if p == Path::new("/srv/db")));
    match &ops[2] {
        Op::WriteStatus {
            dir,
            subdirs,
            name,
            content,
        } => {
            assert_eq!(dir, Path::new("/srv/db"));
            assert_eq!(subdirs, &[OsString::from(".Filesystem_status")]);
            assert!(name.to_string_lossy().starts_with("fs_"));
            assert!(content.starts_with(b"fs\n"));
        }
        o => panic!("{o:?}"),
    }
    *fs.sys.probe_error.borrow_mut() = Some(ProbeError::Io {
        step: "writing",
        path: "/srv/db/x".into(),
    });
    let (code, why) = act(&fs, "monitor", &[("OCF_CHECK_LEVEL", "10")]);
    assert_eq!(code, 1);
    assert!(why.contains("shut down"), "{why}");
    *fs.sys.probe_error.borrow_mut() = Some(ProbeError::TimedOut {
        path: "/dev/loop7".into(),
        ms: 900,
    });
    let (code, why) = act(&fs, "monitor", &[("OCF_CHECK_LEVEL", "10")]);
    assert_eq!((code, why.contains("hung")), (1, true), "{why}");
}

#[test]
fn start_mounts_once_and_stop_with_bad_parameters_still_unmounts() {
    let fs = Filesystem::new(unmounted());
    assert_eq!(act(&fs, "start", &[]).0, 0);
    assert_eq!(act(&fs, "start", &[]).0, 0);
    let mounts = fs
        .sys
        .calls
        .borrow()
        .iter()
        .filter(|c| c.starts_with("mount"))
        .count();
    assert_eq!(mounts, 1);
    let (code, why) = act(&fs, "start", &[("options", "a;b")]);
    assert_eq!(code, 6, "{why}");
    assert_eq!(act(&fs, "stop", &[("options", "a;b")]).0, 0);
    assert!(called(&fs, |c| c == "umount /srv/db"));
    assert_eq!(act(&fs, "monitor", &[]).0, 7);
    assert_eq!(act(&fs, "start", &[("device", "/dev/loop9")]).0, 5);
    assert_eq!(act(&fs, "monitor", &[("device", "/dev/loop9")]).0, 7);
}

#[test]
fn a_directory_and_device_through_links_are_used_in_their_canonical_form() {
    let fs = Filesystem::new(
        unmounted()
            .with_link("/var/run", "/run")
            .with_link("/dev/disk/pg", "/dev/loop7"),
    );
    let p = [("directory", "/var/run/db"), ("device", "/dev/disk/pg")];
    assert_eq!(act(&fs, "start", &p).0, 0);
    assert!(called(&fs, |c| c == "mount /dev/loop7 /run/db"));
    assert_eq!(act(&fs, "monitor", &p).0, 0);
    assert_eq!(act(&fs, "stop", &p).0, 0);
    assert!(called(&fs, |c| c == "umount /run/db"));
    assert_eq!(act(&fs, "monitor", &p).0, 7);
}

#[test]
fn a_start_that_fails_after_mounting_unmounts_again() {
    let fs = Filesystem::new(unmounted());
    *fs.sys.mount_lands_at.borrow_mut() = Some(PathBuf::from("/elsewhere"));
    let (code, why) = act(&fs, "start", &[]);
    assert_eq!(code, 1);
    assert!(why.contains("does not appear"), "{why}");
    assert!(called(&fs, |c| c == "umount /elsewhere"));
    assert_eq!(fs.sys.table.borrow().len(), 1);
}

#[test]
fn every_spelling_of_the_root_is_refused() {
    for d in ["/", "/.", "/./", "//.//", "/./."] {
        let e = parse_directory(d).unwrap_err();
        assert!(e.to_string().contains("root"), "{d}: {e}");
    }
    assert_eq!(
        parse_directory("/srv/./db").unwrap(),
        PathBuf::from("/srv/db")
    );
    let fs = Filesystem::new(tree().with_link("/toroot", "/").with_proc(100, 1, &[]));
    let p = [("directory", "/toroot")];
    let (code, why) = act(&fs, "validate-all", &p);
    assert_eq!((code, why.contains("root")), (6, true), "{why}");
    assert_eq!(act(&fs, "start", &p).0, 6);
    assert_eq!(act(&fs, "monitor", &p).0, 6);
    assert_eq!(act(&fs, "stop", &p).0, 0);
    assert!(
        fs.sys.calls.borrow().is_empty(),
        "{:?}",
        fs.sys.calls.borrow()
    );
}

#[test]
fn stop_leaves_alone_what_it_cannot_identify() {
    for p in [
        vec![("device", "/dev/loop9")],
        vec![("device", "UUID=0000")],
        vec![("device", "/dev/loop9"), ("options", "a;b")],
        vec![("device", "/dev/loop8"), ("signal_delay", "x")],
        vec![("device", "")],
    ] {
        let fs = Filesystem::new(tree().with_proc(101, 30, &[]));
        assert_eq!(act(&fs, "stop", &p).0, 0, "{p:?}");
        let calls = fs.sys.calls.borrow();
        assert!(calls.is_empty(), "stop {p:?}: {calls:?}");
    }
    // Our device with a typo elsewhere: identified, unmounted.
    let fs = Filesystem::new(tree());
    assert_eq!(act(&fs, "stop", &[("signal_delay", "x")]).0, 0);
    assert!(called(&fs, |c| c == "umount /srv/db"));
}

fn params(pairs: &[(&str, &str)]) -> Result<FsConfig, ParamError> {
    crate::ocf::params::test_config(PARAMS, configure, pairs)
}

#[test]
fn book_configuration() {
    let c = params(&[
        ("device", "/dev/VG_POSTGRES/LV_DATA"),
        ("directory", "/db//"),
        ("fstype", "xfs"),
        (
            "options",
            "noatime,nodiratime,logbufs=8,logbsize=256k,attr2,allocsize=1m",
        ),
    ])
    .unwrap();
    assert_eq!(c.directory, PathBuf::from("/db"));
    assert_eq!(
        c.opts.data,
        ["logbufs=8", "logbsize=256k", "attr2", "allocsize=1m"]
    );
    assert_eq!(c.signals.term, [Signal::SIGTERM]);
    assert_eq!(c.signals.kill, [Signal::SIGKILL]);
    assert_eq!(c.signals.delay, Duration::from_secs(1));
    assert!(c.force_unmount && !c.fast_stop);
}

#[test]
fn bad_input_names_the_value() {
    let e = params(&[("device", "/dev/x"), ("directory", "db")]).unwrap_err();
    assert!(e.to_string().contains("\"db\"") && e.to_string().contains("absolute"));
    let e = params(&[("device", "/dev/x"), ("directory", "/")]).unwrap_err();
    assert!(e.to_string().contains("root"));
    // One bad parameter beside a good device and directory: the message names it.
    for (name, value, named) in [
        ("options", "noatime -o remount", "options"),
        ("options", "noatime;reboot", "';'"),
        ("fstype", "XFS;x", "fstype"),
        ("term_signals", "TERM,BOGUS", "BOGUS"),
        ("statusfile_prefix", "../x", "statusfile_prefix"),
    ] {
        let e = params(&[("device", "/dev/x"), ("directory", "/d"), (name, value)]).unwrap_err();
        assert!(e.to_string().contains(named), "{name}={value}: {e}");
    }
    assert!(params(&[("directory", "/d")]).is_err());
    let e = params(&[("device", "srv:/x"), ("directory", "/d"), ("fstype", "xfs")]).unwrap_err();
    assert!(e.to_string().contains("device path"));
}

#[test]
fn devices_and_signals() {
    assert_eq!(
        parse_device("UUID=ab-cd").unwrap(),
        DeviceSpec::Uuid("ab-cd".into())
    );
    assert_eq!(
        parse_device("LABEL=\"pg\"").unwrap(),
        DeviceSpec::Label("pg".into())
    );
    assert_eq!(
        parse_device("srv:/e").unwrap(),
        DeviceSpec::Other("srv:/e".into())
    );
    assert_eq!(
        parse_signals("term_signals", "TERM, SIGINT 1").unwrap(),
        [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]
    );
    assert!(parse_signals("kill_signals", "STOP").is_err());
    assert!(parse_signals("kill_signals", "").is_err());
}

#[test]
fn paths_with_spaces_are_kept() {
    assert_eq!(
        parse_directory("/srv/pg data/").unwrap(),
        PathBuf::from("/srv/pg data")
    );
    assert!(parse_directory("/srv/../etc").is_err());
}

mod spellings {
    use super::*;
    use proptest::prelude::*;

    fn spelling() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just("//"),
                Just("."),
                Just(".."),
                Just("db"),
                Just("pg data"),
                Just("./"),
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        /// No spelling of a directory parses to `/`, a relative path or one with `.`
        /// or `..` left in it; whatever parses, stop of a directory whose links lead
        /// to `/` touches nothing.
        #[test]
        fn no_spelling_parses_to_the_root_or_keeps_dots(s in spelling()) {
            if let Ok(p) = parse_directory(&s) {
                prop_assert!(p.is_absolute());
                prop_assert!(p != Path::new("/"));
                prop_assert!(p.components().skip(1).all(|c| matches!(c, std::path::Component::Normal(_))));
            }
            let d = format!("/toroot/{s}");
            let fs = Filesystem::new(tree().with_link("/toroot", "/").with_proc(100, 1, &[]));
            let (code, _) = act(&fs, "stop", &[("directory", d.as_str())]);
            prop_assert_eq!(code, 0);
            let calls = fs.sys.calls.borrow();
            prop_assert!(
                calls.iter().all(|c| c != "umount /" && !c.starts_with("kill")),
                "{}: {:?}", d, calls
            );
        }
    }
}
