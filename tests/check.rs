//! `pgstack check` on files: each misconfiguration is found in a seeded bad CIB,
//! corosync.conf and DRBD configuration; the rendered templates (with their own
//! corosync.conf and DRBD file) give none. The installed agents are the ones the tests
//! use (PGSTACK_OCF_DIR), seen through a private OCF root.

mod common;

use common::cib::{pgstack, render, Ran, TempDir};
use common::cluster1::{seed_cib, Node, Spec};

/// A private OCF root whose `pgstack` provider is the installed shims' directory.
fn ocf_root(tmp: &TempDir) -> String {
    let root = tmp.path("ocf");
    if !root.exists() {
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(common::ocf_dir(), root.join("pgstack")).unwrap();
    }
    root.to_string_lossy().into_owned()
}

/// An lvm.conf that follows the book's advice (the PV devices only, no device cache).
const GOOD_LVM_CONF: &str = "devices {\n    filter = [ \"a|^/dev/sd.*|\", \"a|^/dev/drbd.*|\", \"r|.*|\" ]\n    write_cache_state = 0\n}\n";

/// A directory `name` below the test's holding `lvm.conf` (an LVM_SYSTEM_DIR): the checks
/// never read the host's /etc/lvm.
fn lvm_dir(tmp: &TempDir, name: &str, conf: &str) -> String {
    std::fs::create_dir_all(tmp.path(name)).unwrap();
    std::fs::write(tmp.path(name).join("lvm.conf"), conf).unwrap();
    tmp.file(name)
}

fn check(tmp: &TempDir, cib: &str, corosync: &str, drbd: &str, json: bool) -> Ran {
    let lvm = lvm_dir(tmp, "lvm-good", GOOD_LVM_CONF);
    check_lvm(tmp, cib, corosync, drbd, json, Some(&lvm))
}

fn check_lvm(
    tmp: &TempDir,
    cib: &str,
    corosync: &str,
    drbd: &str,
    json: bool,
    lvm: Option<&str>,
) -> Ran {
    let root = ocf_root(tmp);
    let mut args = vec![
        "check",
        "--cib",
        cib,
        "--corosync-conf",
        corosync,
        "--drbd-conf",
        drbd,
        "--ocf-root",
        &root,
    ];
    if json {
        args.extend_from_slice(&["--format", "json"]);
    }
    if let Some(dir) = lvm {
        args.extend_from_slice(&["--lvm-system-dir", dir]);
    }
    pgstack(tmp, &args)
}

fn findings(r: &Ran) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", r.stdout, r.stderr));
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert!(!f["reason"].as_str().unwrap().is_empty());
            assert!(!f["fix"].as_str().unwrap().is_empty());
            (
                f["check"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
                f["subject"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Whether the binary provides the lvm agent (it is registered separately; until then the
/// advanced template's `ocf:pgstack:lvm` is, rightly, an unknown agent).
fn has_lvm() -> bool {
    common::run(
        &[&common::bin(), "agent", "lvm", "meta-data"],
        &[],
        std::time::Duration::from_secs(10),
    )
    .status
    .success()
}

fn template_findings(template: &str) -> Vec<(String, String, String)> {
    let tmp = TempDir::new("check");
    let cib = render(&tmp, "cib.xml", template, &[]);
    let corosync = render(&tmp, "corosync.conf", template, &["--format", "corosync"]);
    let drbd = tmp.path("drbd.d");
    std::fs::create_dir_all(&drbd).unwrap();
    if template == "advanced" {
        let res = render(&tmp, "drbd.d/pg.res", template, &["--format", "drbd"]);
        assert!(res.exists());
    }
    let r = check(
        &tmp,
        cib.to_str().unwrap(),
        corosync.to_str().unwrap(),
        drbd.to_str().unwrap(),
        true,
    );
    let f = findings(&r);
    let expected_code = if f.iter().any(|x| x.1 == "error") {
        2
    } else if f.is_empty() {
        0
    } else {
        1
    };
    assert_eq!(r.code, expected_code, "{}", r.stdout);
    f.into_iter()
        .filter(|(c, _, s)| has_lvm() || !(c == "agent-unknown" && s.contains("(pg_lvm)")))
        .collect()
}

#[test]
fn the_advanced_template_passes() {
    let f = template_findings("advanced");
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn the_replication_template_passes() {
    let f = template_findings("replication");
    assert!(f.is_empty(), "{f:?}");
}

/// The advanced template manages a VG: `pgstack check` reads this node's effective LVM
/// configuration (`lvmconfig` on an lvm.conf of the test's own) and reports a seeded bad
/// filter, device cache and lvmetad; a good lvm.conf gives none; a missing one a warning.
#[test]
fn the_lvm_conf_advice_is_checked_when_the_cib_has_a_vg() {
    common::require_file("/usr/sbin/lvmconfig");
    let tmp = TempDir::new("check");
    let cib = render(&tmp, "cib.xml", "advanced", &[]);
    let corosync = render(&tmp, "corosync.conf", "advanced", &["--format", "corosync"]);
    std::fs::create_dir_all(tmp.path("drbd.d")).unwrap();
    render(&tmp, "drbd.d/pg.res", "advanced", &["--format", "drbd"]);
    let (cib, corosync, drbd) = (
        cib.to_str().unwrap(),
        corosync.to_str().unwrap(),
        tmp.file("drbd.d"),
    );
    let lvm_findings = |lvm: Option<&str>| -> (i32, Vec<(String, String, String)>) {
        let r = check_lvm(&tmp, cib, corosync, &drbd, true, lvm);
        let f: Vec<_> = findings(&r)
            .into_iter()
            .filter(|x| x.0.starts_with("lvm"))
            .collect();
        (r.code, f)
    };
    let bad = lvm_dir(
        &tmp,
        "lvm-bad",
        "devices {\n    filter = [ \"a|.*|\" ]\n    write_cache_state = 1\n}\n",
    );
    let (code, f) = lvm_findings(Some(&bad));
    assert_eq!(code, 2, "{f:?}");
    let subject = format!("{bad}/lvm.conf: devices/filter");
    assert!(
        f.contains(&("lvm-filter".into(), "error".into(), subject)),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|x| x.0 == "lvm-write-cache" && x.1 == "warning"),
        "{f:?}"
    );
    // No filter at all is the same error (every device is scanned).
    let none = lvm_dir(
        &tmp,
        "lvm-none",
        "devices {\n    write_cache_state = 0\n}\n",
    );
    let (_, f) = lvm_findings(Some(&none));
    assert_eq!(
        f.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
        ["lvm-filter"]
    );
    // A filter that accepts the PV devices and rejects the rest: nothing.
    let good = lvm_dir(&tmp, "lvm-good", GOOD_LVM_CONF);
    let (code, f) = lvm_findings(Some(&good));
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(code, 0);
    let (code, f) = lvm_findings(Some(&tmp.file("no-such-dir")));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].0.as_str(), f[0].1.as_str()),
        ("lvm-conf-unreadable", "warning")
    );
    assert_eq!(code, 1);
}

/// A CIB without an LVM resource: lvm.conf is not read unless asked for.
#[test]
fn the_lvm_conf_is_not_read_for_a_cib_without_lvm() {
    common::require_file("/usr/sbin/lvmconfig");
    let tmp = TempDir::new("check");
    let cib = render(&tmp, "cib.xml", "fencing", &[]);
    let bad = lvm_dir(
        &tmp,
        "lvm-bad",
        "devices {\n    filter = [ \"a|.*|\" ]\n}\n",
    );
    let c = tmp.file("none");
    let r = check_lvm(&tmp, cib.to_str().unwrap(), &c, &c, true, None);
    assert!(
        !findings(&r).iter().any(|x| x.0.starts_with("lvm")),
        "{}",
        r.stdout
    );
    let r = check_lvm(&tmp, cib.to_str().unwrap(), &c, &c, true, Some(&bad));
    assert!(
        findings(&r).iter().any(|x| x.0 == "lvm-filter"),
        "{}",
        r.stdout
    );
}

const BAD_CIB: &str = include_str!("fixtures/check/bad-cib.xml");

const BAD_COROSYNC: &str = "totem {\n    version: 2\n    cluster_name: pg\n}\nnodelist {\n    node {\n        name: pg1\n        nodeid: 1\n    }\n    node {\n        name: pg2\n        nodeid: 2\n    }\n}\nquorum {\n    provider: corosync_votequorum\n}\n";

const BAD_DRBD: &str = "common {\n  handlers { fence-peer \"/usr/lib/drbd/crm-fence-peer.sh\"; }\n}\nresource pg {\n  device minor 0;\n  disk /dev/vg/lv;\n  meta-disk internal;\n  disk { fencing resource-only; }\n  on pg1 { address 10.99.15.1:7788; }\n  on pg2 { address 10.99.15.2:7788; }\n}\n";

#[test]
fn every_seeded_misconfiguration_is_found() {
    let tmp = TempDir::new("check");
    std::fs::write(tmp.path("cib.xml"), BAD_CIB).unwrap();
    std::fs::write(tmp.path("corosync.conf"), BAD_COROSYNC).unwrap();
    std::fs::create_dir_all(tmp.path("drbd.d")).unwrap();
    std::fs::write(tmp.path("drbd.d/global_common.conf"), "").unwrap();
    std::fs::write(tmp.path("drbd.d/pg.res"), BAD_DRBD).unwrap();
    let r = check(
        &tmp,
        &tmp.file("cib.xml"),
        &tmp.file("corosync.conf"),
        &tmp.file("drbd.d"),
        true,
    );
    assert_eq!(r.code, 2, "{}\n{}", r.stdout, r.stderr);
    let f = findings(&r);
    let has = |check: &str, severity: &str, subject: &str| {
        assert!(
            f.iter()
                .any(|(c, s, x)| c == check && s == severity && x.contains(subject)),
            "{check} {severity} {subject} not in {f:#?}"
        );
    };
    has("fencing-disabled", "error", "stonith-enabled");
    has("fencing-device-missing", "error", "node pg2");
    has("two-node-quorum", "error", "corosync.conf");
    has("drbd-fencing-policy", "error", "DRBD resource pg");
    has("drbd-unfence-handler", "error", "DRBD resource pg");
    has("drbd-resource-unknown", "error", "DRBD resource other");
    has("op-timeout-below-minimum", "warning", "pg_vip op start");
    has(
        "agent-not-installed",
        "error",
        "ocf:heartbeat:pgstNoSuchAgent",
    );
    has("agent-unknown", "error", "ocf:pgstack:nosuch");
    has(
        "stickiness-property",
        "error",
        "default-resource-stickiness",
    );
    has("stickiness-missing", "warning", "rsc_defaults");
    // The fence-peer handler comes from `common`; the alias IPaddr2 is installed; the
    // monitor's 20s meets the vip's minimum; pg1 has its device.
    assert!(!f.iter().any(|x| x.0 == "drbd-fence-peer-handler"), "{f:?}");
    assert!(!f.iter().any(|x| x.2.contains("(pg_vip)")), "{f:?}");
    assert!(!f.iter().any(|x| x.2.contains("monitor")), "{f:?}");
    assert!(!f.iter().any(|x| x.2 == "node pg1"), "{f:?}");

    // The text report gives each finding with its fix, and the same exit code.
    let text = check(
        &tmp,
        &tmp.file("cib.xml"),
        &tmp.file("corosync.conf"),
        &tmp.file("drbd.d"),
        false,
    );
    assert_eq!(text.code, 2);
    assert_eq!(
        text.stdout.matches("\n  fix: ").count(),
        f.len(),
        "{}",
        text.stdout
    );
}

#[test]
fn wait_for_all_off_is_an_error_and_warnings_alone_exit_1() {
    let tmp = TempDir::new("check");
    let cib = render(&tmp, "cib.xml", "fencing", &[]);
    let mut corosync = std::fs::read_to_string(render(
        &tmp,
        "corosync.conf",
        "advanced",
        &["--format", "corosync"],
    ))
    .unwrap();
    let clean = check(
        &tmp,
        cib.to_str().unwrap(),
        &tmp.file("corosync.conf"),
        &tmp.file("none"),
        true,
    );
    // The fencing part alone sets no stickiness: a warning, exit 1.
    assert_eq!(
        findings(&clean),
        [(
            "stickiness-missing".to_string(),
            "warning".to_string(),
            "rsc_defaults".to_string()
        )]
    );
    assert_eq!(clean.code, 1, "{}", clean.stdout);
    corosync = corosync.replace("two_node: 1", "two_node: 1\n    wait_for_all: 0");
    std::fs::write(tmp.path("corosync.conf"), corosync).unwrap();
    let tmp2 = TempDir::new("check");
    let r = check(
        &tmp2,
        cib.to_str().unwrap(),
        &tmp.file("corosync.conf"),
        &tmp.file("none"),
        true,
    );
    assert_eq!(r.code, 2);
    assert!(findings(&r).iter().any(|x| x.0 == "two-node-wait-for-all"));
}

#[test]
fn an_unreadable_cib_is_exit_2_with_one_error_line() {
    let tmp = TempDir::new("check");
    let r = check(
        &tmp,
        &tmp.file("missing.xml"),
        &tmp.file("c"),
        &tmp.file("d"),
        false,
    );
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("missing.xml"), "{}", r.stderr);
}

#[test]
fn checks_a_live_cluster_through_cibadmin() {
    common::require_root();
    let tmp = TempDir::new("check-live");
    let resources = "<primitive id=\"dummy\" class=\"ocf\" provider=\"heartbeat\" type=\"Dummy\">\
        <operations><op id=\"dummy-monitor\" name=\"monitor\" interval=\"10s\"/></operations>\
        </primitive>";
    let bin = common::bin();
    let no_drbd = tmp.file("no-drbd");
    let node = Node::start(
        &tmp.0,
        &Spec {
            tag: "check-live",
            node: "pgst-check-n1",
            addr: "10.99.15.101",
            cluster_name: "pgstcheck",
            cib: seed_cib(resources, ""),
            ocf_dir: None,
            after_cib: &[&bin, "check", "--format", "json", "--drbd-conf", &no_drbd],
        },
    );
    let mut done = None;
    common::wait_for(
        "pgstack check in the live node",
        std::time::Duration::from_secs(60),
        || {
            done = node.after_cib();
            done.is_some()
        },
    );
    drop(node);
    let (code, stdout, stderr) = done.unwrap();
    let ran = Ran {
        code,
        stdout,
        stderr,
    };
    assert_eq!(ran.code, 2, "{}\n{}", ran.stdout, ran.stderr);
    let f = findings(&ran);
    assert!(f.iter().any(|x| x.0 == "fencing-disabled"), "{f:?}");
    assert!(f.iter().any(|x| x.0 == "stickiness-missing"), "{f:?}");
    // One node: no two-node quorum rule applies; Dummy is installed; no DRBD in the CIB.
    assert!(
        !f.iter().any(|x| x.0.starts_with("two-node")
            || x.0.starts_with("agent-")
            || x.0.starts_with("drbd")
            || x.0.starts_with("corosync")),
        "{f:?}"
    );
}
