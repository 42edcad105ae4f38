//! The `vip` agent on real links: two network namespaces joined by a veth pair, the agent
//! in one, tcpdump and the neighbour table of the other as witnesses.

mod common;

use std::time::{Duration, Instant};

use common::netns::{link, Netns};
use common::wait_for;
use common::{agent_path, ocf, AgentRun};

struct Pair {
    a: Netns,
    b: Netns,
}

fn pair(tag: &str) -> Pair {
    let a = Netns::new(tag);
    let b = Netns::new(tag);
    link(&a, "va", &b, "vb");
    a.ip(&["addr", "add", "10.99.1.10/24", "dev", "va"]);
    b.ip(&["addr", "add", "10.99.1.20/24", "dev", "vb"]);
    Pair { a, b }
}

impl Pair {
    fn vip(&self, action: &str, params: &[(&str, &str)]) -> AgentRun {
        self.vip_env(action, params, &[])
    }
    fn vip_env(&self, action: &str, params: &[(&str, &str)], extra: &[(&str, &str)]) -> AgentRun {
        let rsctmp = format!("/tmp/{}", self.a.name);
        let mut e: Vec<(&str, &str)> = vec![("HA_RSCTMP", &rsctmp)];
        e.extend_from_slice(extra);
        ocf(&self.a.prefix(), &agent_path("vip"), action, params, &e)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/tmp/{}", self.a.name));
    }
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

fn announcer_running(ip: &str) -> bool {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("arp announce .*--ip {ip}( |$)")])
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn gratuitous_arp_reaches_the_peer_and_moves_its_neighbour_entry() {
    common::require_root();
    let p = pair("garp");
    let mac_a = p.a.mac("va");
    // The peer still believes the address is at the old holder's MAC.
    p.b.ip(&[
        "neigh",
        "replace",
        "10.99.1.50",
        "lladdr",
        "02:00:00:00:99:99",
        "dev",
        "vb",
        "nud",
        "stale",
    ]);
    std::thread::sleep(Duration::from_millis(1100)); // past the neighbour locktime
    let cap = p.b.tcpdump("vb", &["arp"]);
    let params = [
        ("ip", "10.99.1.50"),
        ("cidr_netmask", "24"),
        ("nic", "va"),
        ("iflabel", "pgvip"),
        ("arp_count", "3"),
        ("arp_interval", "100"),
        ("arp_mode", "request"),
    ];
    let r = p.vip("start", &params);
    assert_eq!(r.code, 0, "{r:?}");
    wait_for("the announcer to finish", Duration::from_secs(5), || {
        !announcer_running("10.99.1.50")
    });
    std::thread::sleep(Duration::from_millis(100));
    let lines = cap.finish();
    let garp = lines
        .iter()
        .filter(|l| l.contains(&mac_a) && l.contains("Request who-has 10.99.1.50 tell 10.99.1.50"))
        .count();
    assert_eq!(garp, 3, "{lines:#?}");
    assert_eq!(
        count(&lines, "Reply 10.99.1.50"),
        0,
        "request mode sends no replies"
    );
    let neigh = p.b.ip(&["neigh", "show", "10.99.1.50", "dev", "vb"]);
    assert!(neigh.contains(&mac_a), "peer still has {neigh}");
    // The label is the book's eth0:pgvip form, and ip(8) agrees on the prefix and broadcast.
    let addr = p.a.ip(&["-4", "-o", "addr", "show", "dev", "va"]);
    assert!(
        addr.contains("inet 10.99.1.50/24 brd 10.99.1.255 scope global secondary va:pgvip"),
        "{addr}"
    );
    assert_eq!(p.vip("monitor", &params).code, 0);
    assert_eq!(p.vip("stop", &params).code, 0);
    assert!(!p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.50"));
}

#[test]
fn reply_and_both_modes() {
    common::require_root();
    let p = pair("mode");
    let cap = p.b.tcpdump("vb", &["arp"]);
    let params = [
        ("ip", "10.99.1.51"),
        ("nic", "va"),
        ("arp_count", "2"),
        ("arp_interval", "50"),
        ("arp_mode", "both"),
        ("arp_bg", "false"),
    ];
    assert_eq!(p.vip("start", &params).code, 0);
    let lines = cap.finish();
    assert_eq!(
        count(&lines, "Request who-has 10.99.1.51 tell 10.99.1.51"),
        2,
        "{lines:#?}"
    );
    assert_eq!(count(&lines, "Reply 10.99.1.51 is-at"), 2, "{lines:#?}");
    assert_eq!(p.vip("stop", &params).code, 0);
}

#[test]
fn announcer_outlives_a_group_kill_and_stop_cancels_it() {
    common::require_root();
    let p = pair("bg");
    let params = [
        ("ip", "10.99.1.52"),
        ("nic", "va"),
        ("arp_count", "100"),
        ("arp_interval", "50"),
        ("arp_mode", "reply"),
    ];
    // Run start as Pacemaker does, in a process group of its own, then kill the whole group.
    let rsctmp = format!("/tmp/{}", p.a.name);
    let mut argv: Vec<String> = vec!["setsid".into(), "--wait".into()];
    argv.extend(p.a.prefix().iter().map(|s| s.to_string()));
    argv.extend([
        "env".into(),
        "-i".into(),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "HA_LOGFACILITY=none".into(),
        "OCF_RESOURCE_INSTANCE=bg".into(),
        format!("HA_RSCTMP={rsctmp}"),
    ]);
    argv.extend(params.iter().map(|(k, v)| format!("OCF_RESKEY_{k}={v}")));
    argv.extend([agent_path("vip"), "start".into()]);
    let child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .spawn()
        .unwrap();
    let pgid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    // Only the group setsid made: its id is the start action's pid, never ours.
    assert_ne!(nix::unistd::getpgrp().as_raw(), pgid as i32);
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pgid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(
        announcer_running("10.99.1.52"),
        "the announcer died with the start action"
    );
    let cap = p.b.tcpdump("vb", &["arp"]);
    std::thread::sleep(Duration::from_millis(300));
    let r = p.vip_env("stop", &params, &[("OCF_RESOURCE_INSTANCE", "bg")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !announcer_running("10.99.1.52"),
        "stop left the announcer running"
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = cap.finish();
    assert!(
        count(&lines, "Reply 10.99.1.52 is-at") >= 3,
        "announcer was not sending: {lines:#?}"
    );
    // Nothing after stop.
    let after = p.b.tcpdump("vb", &["arp"]);
    std::thread::sleep(Duration::from_millis(250));
    assert_eq!(count(&after.finish(), "10.99.1.52"), 0);
}

#[test]
fn a_conflicting_holder_makes_start_fail_naming_its_mac() {
    common::require_root();
    let p = pair("dup");
    p.b.ip(&["addr", "add", "10.99.1.53/24", "dev", "vb"]);
    let mac_b = p.b.mac("vb");
    let params = [("ip", "10.99.1.53"), ("cidr_netmask", "24"), ("nic", "va")];
    // A holder that never leaves: start keeps probing and fails only at its deadline
    // (3 s less the 10 % margin), naming the holder.
    let t = Instant::now();
    let r = p.vip_env("start", &params, &[("OCF_RESKEY_CRM_meta_timeout", "3000")]);
    let took = t.elapsed();
    assert_eq!(r.code, 1, "{r:?}");
    let reason = r.exit_reason().unwrap();
    assert!(
        reason.contains(&mac_b) && reason.contains("in use by another host"),
        "{reason}"
    );
    // Not before its last full probe round (2.7 s less one round and 100 ms), and within the 3 s
    // timeout plus what starting a process through `ip netns exec` costs here.
    assert!(
        took >= Duration::from_millis(2400) && took < Duration::from_millis(3200),
        "start gave up after {took:?}, not at its deadline"
    );
    assert!(!p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.53"));
    // The check can be disabled, as IPaddr2's default is.
    let mut off = params.to_vec();
    off.push(("run_arping", "false"));
    assert_eq!(p.vip("start", &off).code, 0);
    // Now two hosts answer: a depth-10 monitor sees it, depth 0 does not look.
    let deep = p.vip_env(
        "monitor",
        &off,
        &[
            ("OCF_CHECK_LEVEL", "10"),
            ("OCF_RESKEY_CRM_meta_interval", "30000"),
        ],
    );
    assert_eq!(deep.code, 1, "{deep:?}");
    assert!(deep.exit_reason().unwrap().contains(&mac_b));
    assert_eq!(p.vip("monitor", &off).code, 0);
    assert_eq!(p.vip("stop", &off).code, 0);
}

#[test]
fn start_claims_the_address_once_the_old_holder_goes_quiet() {
    common::require_root();
    // The old holder (a node being fenced, or hung but still answering ARP) lets the
    // address go 2 s after our start began: start keeps probing, logs who still answers,
    // and claims the address within its timeout instead of failing at the first answer.
    let p = pair("leave");
    p.b.ip(&["addr", "add", "10.99.1.56/24", "dev", "vb"]);
    let mac_b = p.b.mac("vb");
    let params = [
        ("ip", "10.99.1.56"),
        ("cidr_netmask", "24"),
        ("nic", "va"),
        ("arp_bg", "false"),
        ("arp_count", "1"),
    ];
    let t = Instant::now();
    let releaser =
        p.b.del_addr_later("10.99.1.56/24", "vb", Duration::from_secs(2), t);
    let r = p.vip_env(
        "start",
        &params,
        &[("OCF_RESKEY_CRM_meta_timeout", "10000")],
    );
    let took = t.elapsed();
    let released = releaser.join().unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        took > released && took < Duration::from_secs(9),
        "start took {took:?}, the holder left after {released:?}"
    );
    assert!(
        r.stderr.contains(&mac_b) && r.stderr.contains("still answered"),
        "who still answered is not logged: {}",
        r.stderr
    );
    assert!(p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.56/24"));
    assert_eq!(p.vip("monitor", &params).code, 0);
    assert_eq!(p.vip("stop", &params).code, 0);
}

#[test]
fn ipv6_start_waits_for_dad_and_sends_unsolicited_na() {
    common::require_root();
    let p = pair("v6");
    let cap = p.b.tcpdump("vb", &["icmp6"]);
    let params = [
        ("ip", "fd00:99::50"),
        ("cidr_netmask", "64"),
        ("nic", "va"),
        ("arp_count", "2"),
        ("arp_interval", "100"),
    ];
    let t = Instant::now();
    let r = p.vip("start", &params);
    assert_eq!(r.code, 0, "{r:?}");
    let addr = p.a.ip(&["-6", "-o", "addr", "show", "dev", "va"]);
    let ours = addr
        .lines()
        .find(|l| l.contains("fd00:99::50/64"))
        .unwrap_or_else(|| panic!("{addr}"));
    assert!(
        !ours.contains("tentative") && !ours.contains("dadfailed"),
        "{ours}"
    );
    assert!(t.elapsed() < Duration::from_secs(15));
    wait_for("the announcer to finish", Duration::from_secs(5), || {
        !announcer_running("fd00:99::50")
    });
    let lines = cap.finish();
    let na = lines
        .iter()
        .filter(|l| l.contains("neighbor advertisement") && l.contains("tgt is fd00:99::50"))
        .count();
    assert_eq!(na, 2, "{lines:#?}");
    assert_eq!(p.vip("monitor", &params).code, 0);
    assert_eq!(p.vip("stop", &params).code, 0);
    assert_eq!(p.vip("monitor", &params).code, 7);
}

#[test]
fn ipv6_dad_failure_fails_start_and_removes_the_address() {
    common::require_root();
    let p = pair("dad");
    p.b.ip(&["addr", "add", "fd00:99::51/64", "dev", "vb", "nodad"]);
    let params = [("ip", "fd00:99::51"), ("cidr_netmask", "64"), ("nic", "va")];
    let r = p.vip("start", &params);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r
        .exit_reason()
        .unwrap()
        .contains("duplicate address detection failed"));
    assert!(!p
        .a
        .ip(&["-6", "-o", "addr", "show", "dev", "va"])
        .contains("fd00:99::51"));
}

#[test]
fn nic_and_prefix_come_from_the_routing_table() {
    common::require_root();
    let p = pair("route");
    let r = p.vip("start", &[("ip", "10.99.1.54")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.54/24"));
    assert_eq!(p.vip("stop", &[("ip", "10.99.1.54")]).code, 0);
    // A /16 on the /24 network of va would send all of 10.99/16 out of va: refused
    // without nic (5, naming the network), placed as asked with it.
    let wide = [("ip", "10.99.1.54"), ("cidr_netmask", "16")];
    let r = p.vip("start", &wide);
    assert_eq!(r.code, 5, "{r:?}");
    let reason = r.exit_reason().unwrap();
    assert!(
        reason.contains("wider than 10.99.1.0/24") && reason.contains("va"),
        "{reason}"
    );
    assert!(!p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.54"));
    let wide_nic = [("ip", "10.99.1.54"), ("cidr_netmask", "16"), ("nic", "va")];
    assert_eq!(p.vip("start", &wide_nic).code, 0);
    assert!(p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.54/16"));
    assert_eq!(p.vip("stop", &wide_nic).code, 0);
    // A second link with the same subnet makes the choice ambiguous: the reason lists both.
    p.a.ip(&["link", "add", "vc", "type", "veth", "peer", "name", "vd"]);
    p.a.ip(&["link", "set", "vc", "up"]);
    p.a.ip(&["addr", "add", "10.99.1.11/24", "dev", "vc"]);
    let r = p.vip("start", &[("ip", "10.99.1.54")]);
    assert_eq!(r.code, 5, "{r:?}");
    let reason = r.exit_reason().unwrap();
    assert!(reason.contains("va") && reason.contains("vc"), "{reason}");
}

#[test]
fn network_namespace_parameter() {
    common::require_root();
    let p = pair("nsparam");
    // Run from the host namespace; the agent enters the namespace itself.
    let params = [
        ("ip", "10.99.1.55"),
        ("nic", "va"),
        ("network_namespace", p.a.name.as_str()),
    ];
    let rsctmp = format!("/tmp/{}", p.a.name);
    let r = ocf(
        &[],
        &agent_path("vip"),
        "start",
        &params,
        &[("HA_RSCTMP", &rsctmp)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.55"));
    assert_eq!(
        ocf(&[], &agent_path("vip"), "monitor", &params, &[]).code,
        0
    );
    assert_eq!(
        ocf(
            &[],
            &agent_path("vip"),
            "stop",
            &params,
            &[("HA_RSCTMP", &rsctmp)]
        )
        .code,
        0
    );
    assert!(!p
        .a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.55"));
    let missing = [
        ("ip", "10.99.1.55"),
        ("network_namespace", "pgst-no-such-ns"),
    ];
    assert_eq!(
        ocf(&[], &agent_path("vip"), "monitor", &missing, &[]).code,
        7
    );
    assert_eq!(ocf(&[], &agent_path("vip"), "stop", &missing, &[]).code, 0);
    assert_eq!(ocf(&[], &agent_path("vip"), "start", &missing, &[]).code, 5);
}
