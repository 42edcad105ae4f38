//! Malformed parameter values never panic and always map to a documented code.

use std::collections::BTreeMap;

use pgstack::agents::vip::Vip;
use pgstack::ocf::dispatch::run;
use pgstack::ocf::env::OcfEnv;
use pgstack::ocf::log::Logger;
use pgstack::sys::fake::FakeNet;
use proptest::prelude::*;

const NAMES: &[&str] = &[
    "ip",
    "nic",
    "cidr_netmask",
    "broadcast",
    "iflabel",
    "arp_interval",
    "arp_count",
    "arp_count_refresh",
    "arp_bg",
    "arp_mac",
    "arp_sender",
    "arp_mode",
    "run_arping",
    "arp_probe_wait",
    "nodad",
    "noprefixroute",
    "preferred_lft",
    "network_namespace",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[0-9./:a-f]{0,40}",
        Just("10.99.1.50".to_string()),
        Just("fd00:99::50".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        Just("eth0;reboot".to_string()),
        Just("$(id)".to_string()),
        Just("\u{0}".to_string()),
        "\\PC{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn malformed_values_give_documented_codes(
        params in proptest::collection::vec((0..NAMES.len(), value()), 0..6),
        action in prop_oneof![Just("validate-all"), Just("start"), Just("stop"), Just("monitor")],
    ) {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        m.insert("OCF_RESOURCE_INSTANCE".into(), "fuzz".into());
        m.insert("HA_RSCTMP".into(), "/tmp/pgstack-fuzz".into());
        for (i, v) in &params {
            m.insert(format!("OCF_RESKEY_{}", NAMES[*i]), v.clone());
        }
        let net = FakeNet::default()
            .with_link(2, "eth0", true)
            .with_route("10.99.1.0", 24, 2)
            .with_route("fd00:99::", 64, 2);
        let agent = Vip::new(net);
        let log = Logger::silent();
        let out = run(&agent, action, &OcfEnv::from_map(m), &log);
        let code = out.code.as_u8();
        let allowed: &[u8] = match action {
            "validate-all" => &[0, 5, 6],
            "start" => &[0, 1, 5, 6],
            "stop" => &[0],
            _ => &[0, 1, 7],
        };
        prop_assert!(allowed.contains(&code), "{action} gave {code}: {:?}", out.exit_reason);
        if code != 0 && code != 7 {
            prop_assert!(out.exit_reason.is_some_and(|r| !r.is_empty()));
        }
    }
}
