//! The `filesystem` agent against a hostile environment, on real XFS and ext4 loop
//! devices (root only): mount directories reached through symbolic links, spellings of
//! `/`, a stop that must not touch a mount it cannot identify, links planted where the
//! depth-20 monitor writes, and concurrent starts of one resource.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::loopfs::{self, expect, fs, is_mounted, mounts_below, sleep_in, xfs_params, Base};
use common::{agent_path, ocf};

const DEPTH_20: [(&str, &str); 2] = [
    ("OCF_CHECK_LEVEL", "20"),
    ("OCF_RESKEY_CRM_meta_interval", "20000"),
];

/// How many mounts sit exactly on `dir` (stacked mounts count each).
fn mounts_on(dir: &Path) -> usize {
    mounts_below(dir)
        .iter()
        .filter(|p| p.as_path() == dir)
        .count()
}

/// A directory outside the test base (e.g. under /run), unmounted and removed in Drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        for m in mounts_below(&self.0) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&m)
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn cycle(dev: &str, dir: &str, mounted_at: &Path) {
    let p = xfs_params(dev, dir);
    expect(&fs("start", &p, &[]), 0, &format!("start on {dir}"));
    assert!(
        is_mounted(mounted_at),
        "{} not mounted",
        mounted_at.display()
    );
    assert_eq!(mounts_on(mounted_at), 1);
    expect(&fs("start", &p, &[]), 0, "second start");
    assert_eq!(mounts_on(mounted_at), 1, "the second start mounted again");
    expect(&fs("monitor", &p, &[]), 0, "monitor");
    expect(&fs("monitor", &p, &DEPTH_20), 0, "monitor depth 20");
    expect(&fs("stop", &p, &[]), 0, "stop");
    assert!(
        !is_mounted(mounted_at),
        "stop left {}",
        mounted_at.display()
    );
    expect(&fs("monitor", &p, &[]), 7, "monitor after stop");
}

/// Issue 9, defect 1: `/var/run/x` (Debian's `/var/run -> /run`) and `/db -> /srv/db`.
#[test]
fn a_directory_reached_through_symbolic_links_is_managed_by_its_real_path() {
    common::require_root();
    let mut b = Base::new("symdir");
    let dev = b.device("xfs");
    let real = b.mkdir("real");
    // A link on the way (`/var/run -> /run`): the directory below it is created.
    symlink(&real, b.path("via")).unwrap();
    let d = b.path("via/mnt");
    cycle(&dev, d.to_str().unwrap(), &real.join("mnt"));
    // A link as the last component, to a directory that does not exist yet.
    symlink(real.join("srvdb"), b.path("db")).unwrap();
    let d = b.path("db");
    cycle(&dev, d.to_str().unwrap(), &real.join("srvdb"));
    // The same with a relative link and `.`/`//` spellings.
    symlink("real/./rel", b.path("rel")).unwrap();
    let d = format!("{}//./rel/", b.dir.display());
    cycle(&dev, &d, &real.join("rel"));
    // Debian's own link.
    if std::fs::read_link("/var/run").is_ok_and(|t| t == Path::new("/run")) {
        let name = format!("pgst-fs-varrun-{}", std::process::id());
        let scratch = Scratch(Path::new("/run").join(&name));
        std::fs::create_dir_all(&scratch.0).unwrap();
        let d = format!("/var/run/{name}/t");
        cycle(&dev, &d, &scratch.0.join("t"));
    }
}

fn isolated() -> [&'static str; 6] {
    // A mount and PID namespace of its own: whatever the agent unmounts or signals,
    // it is not the host's.
    [
        "unshare",
        "--mount",
        "--propagation=private",
        "--pid",
        "--fork",
        "--mount-proc",
    ]
}

/// Issue 9, defect 2: every spelling of `/` is refused like `/`, and stop touches nothing.
#[test]
fn every_spelling_of_the_root_is_refused() {
    common::require_root();
    let mut b = Base::new("rootdir");
    let dev = b.device("xfs");
    symlink("/", b.path("toroot")).unwrap();
    symlink("/tmp/..", b.path("tmpup")).unwrap();
    let link = b.path("toroot");
    let up = b.path("tmpup");
    let spellings = [
        "/",
        "/.",
        "/./",
        "//.//",
        "/./.",
        link.to_str().unwrap(),
        up.to_str().unwrap(),
    ];
    let agent = agent_path("filesystem");
    for dir in spellings {
        let p = [
            ("device", dev.as_str()),
            ("directory", dir),
            ("fstype", "xfs"),
        ];
        for action in ["validate-all", "start"] {
            let r = ocf(&isolated(), &agent, action, &p, &[]);
            expect(&r, 6, &format!("{action} directory={dir}"));
            assert!(
                r.exit_reason().unwrap_or_default().contains("root"),
                "{action} {dir}: {r:?}"
            );
        }
        let r = ocf(&isolated(), &agent, "stop", &p, &[]);
        expect(&r, 0, &format!("stop directory={dir}"));
        assert!(
            !r.stderr.contains("unmounted") && !r.stderr.contains("sent SIG"),
            "stop directory={dir} acted: {}",
            r.stderr
        );
    }
}

/// Issue 9, defect 3: stop with a device it cannot find (a missing path, the UUID of an
/// absent disk) or with parameters that do not parse leaves another device's mount,
/// and its holders, alone.
#[test]
fn stop_never_unmounts_what_it_cannot_identify() {
    common::require_root();
    let mut b = Base::new("unknown");
    let ours = b.device("xfs");
    let other = b.device("ext4");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    loopfs::mount(&other, "ext4", &dir);
    let mut h = sleep_in(&dir, "holder of the other mount");
    type Case<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<Case> = vec![
        vec![
            ("device", "/dev/pgst-fs-nosuch"),
            ("directory", d),
            ("fstype", "xfs"),
        ],
        vec![
            ("device", "UUID=00000000-1111-2222-3333-444444444444"),
            ("directory", d),
            ("fstype", "xfs"),
        ],
        vec![
            ("device", "LABEL=pgst-fs-nosuch"),
            ("directory", d),
            ("fstype", "xfs"),
        ],
        vec![
            ("device", "/dev/pgst-fs-nosuch"),
            ("directory", d),
            ("options", "a;b"),
        ],
        vec![
            ("device", ours.as_str()),
            ("directory", d),
            ("fstype", "xfs"),
            ("options", "a;b"),
        ],
        vec![("directory", d), ("fstype", "xfs")],
        vec![
            ("device", ours.as_str()),
            ("directory", d),
            ("signal_delay", "many"),
        ],
    ];
    for p in &cases {
        let r = fs("stop", p, &[]);
        expect(&r, 0, &format!("stop {p:?}"));
        assert!(is_mounted(&dir), "stop {p:?} unmounted the other device");
        assert!(h.alive(), "stop {p:?} killed a holder of the other device");
        assert!(
            r.stderr.contains("left alone") || r.stderr.contains("not ours"),
            "stop {p:?} did not say it left the mount: {}",
            r.stderr
        );
    }
    // Identified: the right device with a typo elsewhere is still unmounted.
    drop(h);
    loopfs::sh(&["umount", d]);
    expect(&fs("start", &xfs_params(&ours, d), &[]), 0, "start");
    let bad = [
        ("device", ours.as_str()),
        ("directory", d),
        ("options", "a;b"),
    ];
    expect(&fs("stop", &bad, &[]), 0, "stop of our mount, bad options");
    assert!(!is_mounted(&dir));
}

/// The name of the depth-20 status file of instance `test` on this node.
fn status_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    format!("test_{}", host.trim())
}

/// Issue 9, defect 4: links planted by a user who can write the file system's root are
/// refused, never followed, by the depth-20 monitor.
#[test]
fn depth_20_never_writes_through_a_planted_link() {
    common::require_root();
    let mut b = Base::new("plant");
    let dev = b.device("xfs");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    let p = xfs_params(&dev, d);
    expect(&fs("start", &p, &[]), 0, "start");
    let victim = b.path("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let elsewhere = b.mkdir("elsewhere");
    let status = dir.join(".Filesystem_status");
    let file = status.join(status_name());

    // The status directory is a link to a directory elsewhere.
    symlink(&elsewhere, &status).unwrap();
    let r = fs("monitor", &p, &DEPTH_20);
    expect(&r, 1, "depth 20 with the status directory a link");
    assert!(r.exit_reason().unwrap().contains("link"), "{r:?}");
    assert!(std::fs::read_dir(&elsewhere).unwrap().next().is_none());
    std::fs::remove_file(&status).unwrap();

    // The status file is a link to a file elsewhere (and a dangling one).
    std::fs::create_dir(&status).unwrap();
    symlink(&victim, &file).unwrap();
    let r = fs("monitor", &p, &DEPTH_20);
    expect(&r, 1, "depth 20 with the status file a link");
    assert!(r.exit_reason().unwrap().contains("link"), "{r:?}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    std::fs::remove_file(&file).unwrap();
    symlink(b.path("created"), &file).unwrap();
    expect(&fs("monitor", &p, &DEPTH_20), 1, "dangling link");
    assert!(
        !b.path("created").exists(),
        "root created the link's target"
    );
    std::fs::remove_file(&file).unwrap();

    // The status file is a hard link to another file of the file system.
    let precious = dir.join("pg_control");
    std::fs::write(&precious, b"precious").unwrap();
    std::fs::hard_link(&precious, &file).unwrap();
    let r = fs("monitor", &p, &DEPTH_20);
    expect(&r, 1, "depth 20 with the status file a hard link");
    assert!(r.exit_reason().unwrap().contains("hard link"), "{r:?}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"precious");
    std::fs::remove_file(&file).unwrap();

    expect(&fs("monitor", &p, &DEPTH_20), 0, "depth 20 once cleaned");
    assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
    expect(&fs("stop", &p, &[]), 0, "stop");
}

/// Issue 9, defect 5: two starts of one resource at the same time give one mount.
#[test]
fn concurrent_starts_of_one_resource_mount_once() {
    common::require_root();
    let mut b = Base::new("race");
    let dev = b.device("xfs");
    let dir = b.path("data");
    let d = dir.to_str().unwrap();
    let p = xfs_params(&dev, d);
    let tries = 25;
    for i in 0..tries {
        let (r1, r2) = std::thread::scope(|s| {
            let a = s.spawn(|| fs("start", &p, &[]));
            let c = s.spawn(|| fs("start", &p, &[]));
            (a.join().unwrap(), c.join().unwrap())
        });
        expect(&r1, 0, "first start");
        expect(&r2, 0, "second start");
        assert_eq!(
            mounts_on(&dir),
            1,
            "try {i}: concurrent starts stacked mounts"
        );
        expect(&fs("stop", &p, &[]), 0, "stop");
        assert_eq!(mounts_on(&dir), 0);
    }
    eprintln!("{tries} pairs of concurrent starts: one mount each time");
}
