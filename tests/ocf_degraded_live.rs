//! What a live one-node Pacemaker 2.1.5 makes of OCF 1.1's "degraded" result (190): a
//! small agent of the test's own answers 190 to every monitor of a started resource,
//! recurring monitors and probes alike. The replication mode's non-streaming standby
//! relies on what this shows: the result counts as success (no recovery: one start, no
//! stop, fail count 0, the resource Started and not failed), for the recurring monitor
//! and for a probe after `crm_resource --refresh`; crm_mon lists the result under
//! "Failed Resource Actions" ("returned 'OCF_DEGRADED'") until a cleanup. Root only.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::cib::TempDir;
use common::cluster1::{seed_cib, Node, Spec};

const NODE: &str = "pgst-deg-n1";
const ADDR: &str = "10.99.66.1";

/// The agent: a state file in the node's private /run, every call logged to `log`.
const AGENT: &str = r#"#!/bin/sh
S=/run/pgst-degraded-$OCF_RESOURCE_INSTANCE
echo "$1 ${OCF_RESKEY_CRM_meta_interval:-0}" >> "$OCF_RESKEY_log"
case "$1" in
meta-data) cat <<'XML'
<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="degraded" version="1">
<version>1.1</version>
<longdesc lang="en">Answers 190 to the monitor of a started resource.</longdesc>
<shortdesc lang="en">Always degraded</shortdesc>
<parameters>
<parameter name="log"><longdesc lang="en">Call log</longdesc><shortdesc lang="en">Call log</shortdesc><content type="string"/></parameter>
</parameters>
<actions>
<action name="start" timeout="20s"/>
<action name="stop" timeout="20s"/>
<action name="monitor" timeout="20s" interval="2s"/>
<action name="meta-data" timeout="5s"/>
<action name="validate-all" timeout="5s"/>
</actions>
</resource-agent>
XML
  exit 0;;
start) touch "$S"; exit 0;;
stop) rm -f "$S"; exit 0;;
monitor) [ -e "$S" ] || exit 7; exit 190;;
validate-all) exit 0;;
*) exit 3;;
esac
"#;

fn calls(log: &std::path::Path, what: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == what)
        .count()
}

fn wait(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn pacemaker_takes_190_for_success_from_a_recurring_monitor_and_a_probe() {
    common::require_root();
    let tmp = TempDir::new("degraded");
    let ocf = tmp.path("ocf");
    std::fs::create_dir_all(&ocf).unwrap();
    let agent = ocf.join("degraded");
    std::fs::write(&agent, AGENT).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = tmp.path("calls.log");
    let cib = seed_cib(
        &format!(
            "<primitive id=\"deg\" class=\"ocf\" provider=\"pgstack\" type=\"degraded\">\
             <instance_attributes id=\"deg-ia\"><nvpair id=\"deg-log\" name=\"log\" \
             value=\"{}\"/></instance_attributes>\
             <operations><op id=\"deg-monitor\" name=\"monitor\" interval=\"2s\"/></operations>\
             </primitive>",
            log.display()
        ),
        "",
    );
    let ocf_s = ocf.display().to_string();
    let node = Node::start(
        &tmp.0,
        &Spec {
            tag: "degraded",
            node: NODE,
            addr: ADDR,
            cluster_name: "pgstdeg",
            cib,
            ocf_dir: Some(&ocf_s),
            after_cib: &[],
        },
    );
    // Started, then at least three recurring monitors answered 190.
    wait("the start and three recurring monitors", 90, || {
        calls(&log, "start 0") >= 1 && calls(&log, "monitor 2000") >= 3
    });
    let mon = node.exec(&["crm_mon", "-1", "--include=all"]);
    let xml = node.exec(&["crm_mon", "-1", "--output-as=xml"]);
    let fails = node.exec(&["crm_failcount", "--query", "-r", "deg", "-N", NODE]);
    let pe_log = std::fs::read_to_string(tmp.path("log-pacemaker/pacemaker.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("deg_monitor") || l.contains("of deg ") || l.contains(" deg "))
        .map(str::to_string)
        .collect::<Vec<_>>();
    let report = format!(
        "$ crm_mon -1 --include=all\n{}\n$ crm_mon -1 --output-as=xml\n{}\n$ crm_failcount\n{}\n\
         pacemaker.log (deg):\n{}\n",
        text(&mon),
        text(&xml),
        text(&fails),
        pe_log[pe_log.len().saturating_sub(30)..].join("\n")
    );
    eprintln!("{report}");
    std::fs::write(common::artifacts().join("ocf-degraded-live.txt"), &report).unwrap();
    let x = text(&xml);
    assert!(x.contains("id=\"deg\""), "{report}");
    assert!(x.contains("role=\"Started\""), "{report}");
    assert!(x.contains("failed=\"false\""), "{report}");
    // 2.1.5 shows the degraded result as a "failed action" (the CIB's last_failure
    // entry, kept until a cleanup) while the resource stays Started and unfailed.
    assert!(x.contains("exitstatus=\"OCF_DEGRADED\""), "{report}");
    assert!(text(&mon).contains("returned 'OCF_DEGRADED'"), "{report}");
    assert!(text(&fails).contains("value=0"), "{report}");
    assert_eq!(calls(&log, "start 0"), 1, "recovered:\n{report}");
    assert_eq!(calls(&log, "stop 0"), 0, "recovered:\n{report}");

    // A probe of the started resource answering 190: still running, nothing recovered.
    let probes = calls(&log, "monitor 0");
    let r = node.exec(&["crm_resource", "--refresh", "-r", "deg"]);
    assert!(r.status.success(), "{}", text(&r));
    wait("the probe after --refresh", 60, || {
        calls(&log, "monitor 0") > probes
    });
    let monitors = calls(&log, "monitor 2000");
    wait("recurring monitors after the probe", 60, || {
        calls(&log, "monitor 2000") >= monitors + 2
    });
    let xml = text(&node.exec(&["crm_mon", "-1", "--output-as=xml"]));
    eprintln!("after the probe:\n{xml}");
    assert!(xml.contains("role=\"Started\""), "{xml}");
    assert!(xml.contains("failed=\"false\""), "{xml}");
    assert_eq!(calls(&log, "start 0"), 1, "the probe's 190 led to a start");
    assert_eq!(calls(&log, "stop 0"), 0, "the probe's 190 led to a stop");
    drop(node);
}
