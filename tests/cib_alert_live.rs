//! The rendered alert section in a live Pacemaker: a one-node cluster (corosync and
//! pacemakerd in namespaces of their own: network, mount, pid, uts) runs a Dummy resource;
//! Pacemaker itself executes the installed `pgstack-alert` (as hacluster) for the resource
//! events and the lines land in the recipient file. Root only.

mod common;

use std::time::{Duration, Instant};

use common::cib::{alert_path, pgstack, TempDir};
use common::live::{LiveNode, Spec};

const NODE: &str = "pgst-cib-n1";
const ADDR: &str = "10.99.63.1";

fn seed_cib(alerts: &str) -> String {
    format!(
        "<cib validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\">\n\
         <configuration><crm_config><cluster_property_set id=\"cib-bootstrap-options\">\
         <nvpair id=\"o1\" name=\"stonith-enabled\" value=\"false\"/>\
         <nvpair id=\"o2\" name=\"dc-deadtime\" value=\"2s\"/>\
         </cluster_property_set></crm_config><nodes/>\
         <resources><primitive id=\"dummy\" class=\"ocf\" provider=\"heartbeat\" type=\"Dummy\">\
         <operations><op id=\"dummy-monitor\" name=\"monitor\" interval=\"10s\"/></operations>\
         </primitive></resources><constraints/>\n{alerts}</configuration><status/></cib>\n"
    )
}

#[test]
fn pacemaker_runs_the_rendered_alert_agent() {
    common::require_root();
    let tmp = TempDir::new("live");
    let drop_box = tmp.path("alerts");
    std::fs::create_dir(&drop_box).unwrap();
    // Pacemaker runs alert agents as hacluster: the recipient's directory must let it write.
    std::fs::set_permissions(
        &drop_box,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let log = drop_box.join("alerts.log");
    // The alerts section exactly as the template renders it.
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "render",
            "--template",
            "replication",
            "--no-fencing",
            "--set",
            &format!("alert_path={}", alert_path()),
            "--set",
            &format!("alert_recipient={}", log.display()),
        ],
    )
    .ok();
    let (a, b) = (
        r.stdout.find("<alerts>").unwrap(),
        r.stdout.find("</alerts>").unwrap(),
    );
    let alerts = &r.stdout[a..b + "</alerts>".len()];
    let cib = seed_cib(alerts);
    let root = tmp.path("");
    let node = LiveNode::start(&Spec {
        tag: "cib-live",
        node: NODE,
        addr: ADDR,
        cluster_name: "pgstcib",
        dir: &root,
        cib: &cib,
        shims: None,
    });

    let t0 = Instant::now();
    let mut text = String::new();
    while t0.elapsed() < Duration::from_secs(90) {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("rsc=dummy task=monitor interval=10000") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = t0.elapsed();
    drop(node);
    let diag = || {
        let p = std::fs::read_to_string(tmp.path("pacemakerd.out")).unwrap_or_default();
        let c = std::fs::read_to_string(tmp.path("corosync.out")).unwrap_or_default();
        let l =
            std::fs::read_to_string(tmp.path("log-pacemaker/pacemaker.log")).unwrap_or_default();
        let tail: Vec<&str> = l.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "alerts:\n{text}\npacemakerd:\n{p}\ncorosync:\n{c}\npacemaker.log (end):\n{}",
            tail.join("\n")
        )
    };
    let start = text
        .lines()
        .find(|l| l.contains("rsc=dummy task=start"))
        .unwrap_or_else(|| panic!("no start alert within 90 s\n{}", diag()));
    assert!(
        start.contains(&format!(
            "kind=resource node={NODE} rsc=dummy task=start interval=0 rc=0 target_rc=0 status=0 desc=ok"
        )),
        "{start}"
    );
    // The first result of the recurring monitor is reported too, after the start.
    // Pacemaker runs alert agents concurrently: the lines may land in any order, the
    // timestamps (Pacemaker's, microseconds) give the order of the events.
    let stamp = |l: &str| l.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let monitor = text
        .lines()
        .find(|l| l.contains("rsc=dummy task=monitor interval=10000 rc=0"))
        .unwrap_or_else(|| panic!("no monitor alert\n{}", diag()));
    assert!(stamp(monitor) > stamp(start), "{}", diag());
    // The timestamp is Pacemaker's, in the template's timestamp-format.
    let ts = start.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(ts.len(), "2026-11-25 22:10:00.123456".len(), "{start}");
    eprintln!("first alerts after {took:?}");
}
