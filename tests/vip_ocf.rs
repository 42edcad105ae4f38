//! OCF conformance of the installed `vip` agent: ocf-tester, the DTD, Pacemaker's own
//! meta-data readers, and the dispatch rules of the binary.

mod common;

use common::netns::{link, Netns};
use common::{agent_path, artifacts, bin, ocf, run};
use std::time::Duration;

fn two_hosts(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(tag);
    let b = Netns::new(tag);
    link(&a, "va", &b, "vb");
    a.ip(&["addr", "add", "10.99.1.10/24", "dev", "va"]);
    b.ip(&["addr", "add", "10.99.1.20/24", "dev", "vb"]);
    (a, b)
}

#[test]
fn ocf_tester_passes_in_a_namespace() {
    common::require_root();
    let (a, _b) = two_hosts("ocft");
    let mut argv = a.prefix();
    let agent = agent_path("vip");
    argv.extend_from_slice(&[
        "ocf-tester",
        "-v",
        "-n",
        "vip",
        "-o",
        "ip=10.99.1.50",
        "-o",
        "cidr_netmask=24",
        "-o",
        "nic=va",
        &agent,
    ]);
    common::ocf_tester_passes(&argv, "ocf-tester-vip.log");
    // The address is gone after ocf-tester's final stop.
    assert!(!a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.50"));
}

#[test]
fn meta_data_is_valid_against_the_ocf_dtd() {
    let md = ocf(&[], &agent_path("vip"), "meta-data", &[], &[]);
    assert_eq!(md.code, 0);
    let file = common::meta_data_file("vip", &md.stdout);
    common::sh_ok(&[
        "xmllint",
        "--noout",
        "--dtdvalid",
        "/usr/share/resource-agents/ra-api-1.dtd",
        &file,
    ]);
}

#[test]
fn meta_data_works_as_nobody_with_an_empty_environment() {
    common::require_root();
    let agent = agent_path("vip");
    let out = common::sh_ok(&[
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "env",
        "-i",
        &agent,
        "meta-data",
    ]);
    assert!(out.contains("<resource-agent name=\"vip\""));
}

/// Pacemaker finds agents only in its own directory; these run only against the real
/// install, and fail (not run) against another one.
fn system_install() {
    assert_eq!(
        common::ocf_dir(),
        "/usr/lib/ocf/resource.d/pgstack",
        "NOT RUN: agents are installed in {}, not where Pacemaker looks",
        common::ocf_dir()
    );
}

#[test]
fn pacemaker_tools_read_the_meta_data_without_warnings() {
    system_install();
    let out = run(
        &["crm_resource", "--show-metadata", "ocf:pgstack:vip"],
        &[],
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("network_namespace"));
    let out = run(
        &["pcs", "resource", "describe", "ocf:pgstack:vip"],
        &[],
        Duration::from_secs(60),
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(artifacts().join("pcs-describe-vip.txt"), &all).unwrap();
    assert!(out.status.success(), "{all}");
    assert!(!all.to_lowercase().contains("warning"), "{all}");
    assert!(all.contains("arp_count"), "{all}");
    let out = run(
        &["crm", "ra", "info", "ocf:pgstack:vip"],
        &[("TERM", "dumb")],
        Duration::from_secs(60),
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{all}");
    assert!(!all.to_lowercase().contains("warning"), "{all}");
    assert!(all.contains("iflabel"), "{all}");
}

#[test]
fn crm_resource_validate_runs_validate_all() {
    system_install();
    let ok = run(
        &[
            "crm_resource",
            "--validate",
            "--class",
            "ocf",
            "--provider",
            "pgstack",
            "--agent",
            "vip",
            "--option",
            "ip=10.99.1.50",
            "--option",
            "cidr_netmask=24",
            "--option",
            "nic=lo",
        ],
        &[],
        Duration::from_secs(30),
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = run(
        &[
            "crm_resource",
            "--validate",
            "--class",
            "ocf",
            "--provider",
            "pgstack",
            "--agent",
            "vip",
            "--option",
            "ip=300.1.1.1",
        ],
        &[],
        Duration::from_secs(30),
    );
    assert!(!bad.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(all.contains("300.1.1.1"), "{all}");
}

#[test]
fn dispatch_by_name_unknown_agents_and_actions() {
    let b = bin();
    // Unknown agent: 5, through the development entry and through a shim-like path.
    let out = run(
        &[&b, "agent", "nosuch", "start"],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ocf-exit-reason:unknown agent"));
    let out = run(
        &[
            &b,
            "ocf",
            "/usr/lib/ocf/resource.d/pgstack/nosuch",
            "monitor",
        ],
        &[],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(5));
    // Unknown action: 3 with a reason.
    let r = ocf(
        &[],
        &agent_path("vip"),
        "frobnicate",
        &[("ip", "10.99.1.50")],
        &[],
    );
    assert_eq!(r.code, 3);
    assert!(r.exit_reason().unwrap().contains("frobnicate"));
    // No action: usage and 2.
    let out = run(&[&agent_path("vip")], &[], Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(2));
    // Called through a link named after the agent (exact name match).
    let dir = std::env::temp_dir().join(format!("pgst-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let l = dir.join("vip");
    let _ = std::fs::remove_file(&l);
    std::os::unix::fs::symlink(&b, &l).unwrap();
    let out = run(
        &[l.to_str().unwrap(), "meta-data"],
        &[],
        Duration::from_secs(10),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("<resource-agent name=\"vip\""));
    // The exit-reason prefix can be changed by Pacemaker.
    let r = ocf(
        &[],
        &agent_path("vip"),
        "validate-all",
        &[],
        &[("OCF_EXIT_REASON_PREFIX", "REASON>")],
    );
    assert_eq!(r.code, 6);
    assert!(
        r.stderr.contains("REASON>required parameter ip"),
        "{}",
        r.stderr
    );
}

#[test]
fn logging_honours_ha_logfile_and_debug() {
    let f = std::env::temp_dir().join(format!("pgst-log-{}.log", std::process::id()));
    let p = f.to_str().unwrap();
    let r = ocf(
        &[],
        &agent_path("vip"),
        "validate-all",
        &[("ip", "bogus")],
        &[
            ("HA_LOGFILE", p),
            ("HA_debug", "1"),
            ("OCF_RESOURCE_INSTANCE", "pg_vip"),
        ],
    );
    assert_eq!(r.code, 6);
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::remove_file(&f).unwrap();
    assert!(text.contains("vip(pg_vip)["), "{text}");
    assert!(text.contains("DEBUG: validate-all begins"), "{text}");
    assert!(
        text.contains("ERROR: validate-all failed: parameter ip=\"bogus\""),
        "{text}"
    );
}
