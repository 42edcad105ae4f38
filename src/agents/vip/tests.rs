use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::config::parse_prefix;
use super::*;
use crate::ocf::dispatch::run;
use crate::ocf::env::OcfEnv;
use crate::ocf::log::Logger;
use crate::ocf::params::Params;
use crate::ocf::{Action, Agent, Ctx, ExitCode, OcfCode};
use crate::sys::fake::FakeNet;

fn env(pairs: &[(&str, &str)]) -> OcfEnv {
    let mut m: std::collections::BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| {
            let k = if k.starts_with("OCF_") || k.starts_with("HA_") {
                k.to_string()
            } else {
                format!("OCF_RESKEY_{k}")
            };
            (k, v.to_string())
        })
        .collect();
    m.insert("OCF_RESOURCE_INSTANCE".into(), "v".into());
    m.insert("HA_RSCTMP".into(), "/tmp/pgstack-unit".into());
    OcfEnv::from_map(m)
}

/// An action, its parameters, the exit code it must give and a part of its reason.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], u8, &'a str);

/// The configuration the parameters of `e` describe (they must be valid).
fn config(e: &OcfEnv) -> VipConfig {
    configure(&Params::parse(PARAMS, e).unwrap()).unwrap()
}

fn net() -> FakeNet {
    FakeNet::default()
        .with_link(1, "lo", true)
        .with_link(2, "eth0", true)
        .with_link(3, "eth1", true)
        .with_route("10.99.1.0", 24, 2)
        .with_route("10.99.0.0", 16, 3)
        .with_route("fd00:99::", 64, 2)
}

fn act(v: &Vip<FakeNet>, action: &str, pairs: &[(&str, &str)]) -> (u8, Option<String>) {
    let log = Logger::silent();
    let o = run(v, action, &env(pairs), &log);
    (o.code.as_u8(), o.exit_reason)
}

#[test]
fn nic_and_prefix_from_the_longest_route() {
    let v = Vip::new(net());
    let e = env(&[("ip", "10.99.1.50")]);
    let log = Logger::silent();
    let ctx = Ctx::new(&e, Action::Start, Duration::from_secs(5), &log);
    let cfg = config(&e);
    let p = v.place(&cfg, &ctx).unwrap();
    assert_eq!((p.link.name.as_str(), p.prefix), ("eth0", 24));
    let e = env(&[("ip", "10.99.7.1")]);
    let cfg = config(&e);
    let p = v.place(&cfg, &ctx).unwrap();
    assert_eq!((p.link.name.as_str(), p.prefix), ("eth1", 16));
}

#[test]
fn a_prefix_wider_than_the_connected_network_needs_nic() {
    let v = Vip::new(net());
    let ctx_env = env(&[]);
    let log = Logger::silent();
    let ctx = Ctx::new(&ctx_env, Action::Start, Duration::from_secs(5), &log);
    let place = |pairs: &[(&str, &str)]| {
        let e = env(pairs);
        let cfg = config(&e);
        v.place(&cfg, &ctx)
            .map(|p| (p.link.name, p.prefix))
            .map_err(|e| (e.code(), e.to_string()))
    };
    // Narrower than eth0's /24: still eth0. As wide as eth1's /16: eth1 holds it all.
    let ip = ("ip", "10.99.1.50");
    assert_eq!(
        place(&[ip, ("cidr_netmask", "28")]),
        Ok(("eth0".into(), 28))
    );
    assert_eq!(
        place(&[ip, ("cidr_netmask", "16")]),
        Ok(("eth1".into(), 16))
    );
    let (code, msg) = place(&[ip, ("cidr_netmask", "12")]).unwrap_err();
    assert_eq!(code, OcfCode::ErrInstalled);
    assert!(
        msg.contains("cidr_netmask=12 is wider than 10.99.1.0/24") && msg.contains("eth0"),
        "{msg}"
    );
    // An explicit nic places it anyway, as IPaddr2 does.
    assert_eq!(
        place(&[ip, ("cidr_netmask", "12"), ("nic", "eth0")]),
        Ok(("eth0".into(), 12))
    );
    assert_eq!(act(&v, "validate-all", &[ip, ("cidr_netmask", "12")]).0, 5);
}

#[test]
fn ambiguous_routes_name_every_candidate() {
    let v = Vip::new(net().with_route("10.99.1.0", 24, 3));
    let (code, reason) = act(&v, "start", &[("ip", "10.99.1.50")]);
    assert_eq!(code, 5);
    let r = reason.unwrap();
    assert!(
        r.contains("eth0") && r.contains("eth1") && r.contains("set nic"),
        "{r}"
    );
    // Naming the nic resolves it.
    assert_eq!(
        act(&v, "start", &[("ip", "10.99.1.50"), ("nic", "eth1")]).0,
        0
    );
}

#[test]
fn start_is_idempotent_and_stop_removes() {
    let v = Vip::new(net());
    let p = [("ip", "10.99.1.50"), ("iflabel", "pgvip")];
    assert_eq!(act(&v, "start", &p), (0, None));
    assert_eq!(act(&v, "start", &p), (0, None));
    assert_eq!(
        v.net()
            .calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("add"))
            .count(),
        1
    );
    let a = v.net().addrs.borrow()[0].clone();
    assert_eq!(a.label.as_deref(), Some("eth0:pgvip"));
    assert_eq!(a.broadcast, Some("10.99.1.255".parse().unwrap()));
    assert_eq!(act(&v, "monitor", &p).0, 0);
    // five rounds, with the background announcer, and only once (start was idempotent)
    assert_eq!(
        *v.net().announced.borrow(),
        [("bg:eth0".to_string(), a.ip, 5)]
    );
    assert_eq!(act(&v, "stop", &p).0, 0);
    assert!(v.net().addrs.borrow().is_empty());
    assert!(
        v.net().announcers.borrow().is_empty(),
        "stop cancels the announcer"
    );
    assert_eq!(act(&v, "stop", &p).0, 0);
    assert_eq!(act(&v, "monitor", &p).0, 7);
}

#[test]
fn start_replaces_an_address_with_the_wrong_label() {
    let v = Vip::new(net());
    assert_eq!(
        act(&v, "start", &[("ip", "10.99.1.50"), ("iflabel", "old")]).0,
        0
    );
    let p = [("ip", "10.99.1.50"), ("iflabel", "pgvip")];
    assert_eq!(act(&v, "start", &p).0, 0);
    assert_eq!(
        v.net().addrs.borrow()[0].label.as_deref(),
        Some("eth0:pgvip")
    );
    assert_eq!(act(&v, "monitor", &p).0, 0);
}

#[test]
fn conflicting_host_fails_start_naming_its_mac() {
    let v = Vip::new(net());
    *v.net().claimant.borrow_mut() = Some(("10.99.1.50".parse().unwrap(), [2, 0xaa, 0, 0, 0, 1]));
    let t = Instant::now();
    let (code, reason) = act(
        &v,
        "start",
        &[
            ("ip", "10.99.1.50"),
            ("OCF_RESKEY_CRM_meta_timeout", "1000"),
        ],
    );
    assert_eq!(code, 1);
    assert!(reason.unwrap().contains("02:aa:00:00:00:01"));
    assert!(v.net().addrs.borrow().is_empty());
    // It kept probing until its deadline (900 ms), not only once.
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    let probes = |v: &Vip<FakeNet>| {
        v.net()
            .calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("probe"))
            .count()
    };
    assert!(probes(&v) > 2);
    assert_eq!(
        act(
            &v,
            "start",
            &[("ip", "10.99.1.50"), ("run_arping", "false")]
        )
        .0,
        0
    );
}

#[test]
fn start_claims_once_the_holder_stops_answering() {
    let v = Vip::new(net());
    *v.net().claimant.borrow_mut() = Some(("10.99.1.50".parse().unwrap(), [2, 0xaa, 0, 0, 0, 1]));
    v.net().claimant_answers.set(Some(3));
    let e = env(&[("ip", "10.99.1.50")]);
    let log = Logger::silent();
    let ctx = Ctx::new(&e, Action::Start, Duration::from_secs(20), &log);
    let cfg = config(&e);
    v.start(&cfg, &ctx).unwrap();
    assert_eq!(v.net().addrs.borrow().len(), 1);
    let logged = log.messages().join("\n");
    assert!(
        logged.contains("still answered by 02:aa:00:00:00:01"),
        "{logged}"
    );
    assert_eq!(logged.matches("still answered").count(), 1, "{logged}");
    assert!(ctx.deadline.elapsed() < Duration::from_secs(2));
}

#[test]
fn dad_failure_removes_the_address() {
    let v = Vip::new(net());
    v.net().dad_fails.set(true);
    let (code, reason) = act(&v, "start", &[("ip", "fd00:99::50")]);
    assert_eq!(code, 1);
    assert!(reason
        .unwrap()
        .contains("duplicate address detection failed"));
    assert!(v.net().addrs.borrow().is_empty());
}

#[test]
fn probes_and_stop_never_fail_on_configuration() {
    let v = Vip::new(net());
    assert_eq!(
        act(&v, "monitor", &[("ip", "10.99.1.50"), ("nic", "nosuch0")]).0,
        7
    );
    assert_eq!(act(&v, "monitor", &[("ip", "not-an-ip")]).0, 7);
    assert_eq!(act(&v, "stop", &[("ip", "not-an-ip")]).0, 0);
    assert_eq!(
        act(
            &v,
            "stop",
            &[("ip", "10.99.1.50"), ("network_namespace", "missing")]
        )
        .0,
        0
    );
    assert_eq!(
        act(
            &v,
            "monitor",
            &[("ip", "10.99.1.50"), ("network_namespace", "missing")]
        )
        .0,
        7
    );
    assert_eq!(
        act(
            &v,
            "validate-all",
            &[("ip", "10.99.1.50"), ("nic", "nosuch0")]
        )
        .0,
        5
    );
    assert_eq!(
        act(&v, "start", &[("ip", "10.99.1.50"), ("nic", "nosuch0")]).0,
        5
    );
}

#[test]
fn syntax_errors_are_6_and_name_the_parameter() {
    let v = Vip::new(net());
    for (k, val) in [
        ("ip", "300.1.1.1"),
        ("ip", "224.0.0.1"),
        ("cidr_netmask", "33"),
        ("cidr_netmask", "255.0.255.0"),
        ("iflabel", "a b"),
        ("nic", "a/b"),
        ("iflabel", "bad label"),
        ("iflabel", "muchtoolonglabel"),
        ("arp_count", "-1"),
        ("arp_interval", "0"),
        ("arp_mode", "shout"),
        ("arp_mac", "xyz"),
        ("arp_sender", "ipoibarping"),
        ("preferred_lft", "soon"),
        ("broadcast", "1.2.3"),
        ("network_namespace", "../x"),
        ("arp_bg", "perhaps"),
    ] {
        let mut p = vec![("ip", "10.99.1.50"), ("nic", "eth0")];
        p.retain(|(n, _)| *n != k);
        p.push((k, val));
        let (code, reason) = act(&v, "validate-all", &p);
        assert_eq!(code, 6, "{k}={val}");
        assert!(reason.unwrap().contains(k), "{k}={val}");
    }
    assert_eq!(act(&v, "validate-all", &[]).0, 6);
    // IPaddr2 parameters we do not support are refused unless they ask for nothing;
    // IPaddr2's alias form is accepted as a label, unless it contradicts iflabel.
    let ip = ("ip", "10.99.1.50");
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("validate-all", &[ip, ("lvs_support", "false")], 0, ""),
        ("validate-all", &[ip, ("lvs_support", "true")], 6, "lvs_support"),
        ("monitor", &[ip, ("clusterip_hash", "sourceip")], 7, ""),
        ("validate-all", &[ip, ("nic", "eth0:pg")], 0, ""),
        ("validate-all", &[ip, ("nic", "eth0:pg"), ("iflabel", "x")], 6, "contradicts iflabel"),
        ("validate-all", &[("ip", "fd00:99::50"), ("iflabel", "x")], 6, ""),
        ("validate-all", &[("ip", "fe80::1")], 6, ""),
    ];
    for (action, p, code, says) in cases {
        let (c, reason) = act(&v, action, p);
        assert_eq!(c, *code, "{action} {p:?}");
        assert!(reason.unwrap_or_default().contains(says), "{action} {p:?}");
    }
}

#[test]
fn unknown_action_is_3_and_netmask_forms() {
    let v = Vip::new(net());
    assert_eq!(act(&v, "frobnicate", &[("ip", "10.99.1.50")]).0, 3);
    assert_eq!(act(&v, "promote", &[("ip", "10.99.1.50")]).0, 3);
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    assert_eq!(parse_prefix("255.255.255.0", &ip), Ok(24));
    assert_eq!(parse_prefix("255.255.255.255", &ip), Ok(32));
    assert!(parse_prefix("0", &ip).is_err());
}

#[test]
fn monitor_checks_label_and_link_state() {
    let v = Vip::new(net());
    let p = [
        ("ip", "10.99.1.50"),
        ("iflabel", "pgvip"),
        ("nic", "eth0"),
        ("cidr_netmask", "24"),
    ];
    assert_eq!(act(&v, "start", &p).0, 0);
    let (code, reason) = act(
        &v,
        "monitor",
        &[
            ("ip", "10.99.1.50"),
            ("iflabel", "other"),
            ("nic", "eth0"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
        ],
    );
    assert_eq!(code, 1);
    assert!(reason.unwrap().contains("label"));
    v.net().links.borrow_mut()[1].flags = 0;
    let (code, reason) = act(&v, "monitor", &p);
    assert_eq!(code, 1);
    assert!(reason.unwrap().contains("down"));
}

#[test]
fn netns_is_entered_first() {
    let v = Vip::new(net());
    assert_eq!(
        act(
            &v,
            "start",
            &[("ip", "10.99.1.50"), ("network_namespace", "pgns")]
        )
        .0,
        0
    );
    assert_eq!(v.net().calls.borrow()[0], "netns pgns");
}

#[test]
fn meta_data_lists_every_parameter_once() {
    let x = INFO.to_xml();
    for p in PARAMS {
        let n = x
            .matches(&format!("<parameter name=\"{}\"", p.name))
            .count();
        assert_eq!(n, 1, "{}", p.name);
    }
}
