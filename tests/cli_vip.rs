//! The operator commands: `pgstack arp announce|probe` and `pgstack vip claim|release|move`
//! between two network namespaces, the book's manual VIP move done safely.

mod common;

use std::time::Duration;

use common::bin;
use common::netns::{link, Netns};

fn pair(tag: &str) -> (Netns, Netns) {
    let a = Netns::new(tag);
    let b = Netns::new(tag);
    link(&a, "va", &b, "vb");
    a.ip(&["addr", "add", "10.99.1.10/24", "dev", "va"]);
    b.ip(&["addr", "add", "10.99.1.20/24", "dev", "vb"]);
    (a, b)
}

fn pg(ns: &Netns, args: &[&str]) -> (i32, String) {
    let b = bin();
    let mut argv = vec![b.as_str()];
    argv.extend_from_slice(args);
    let out = ns.exec(&argv);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// [`pg`] with the arguments given as one line of words (none contains a space).
fn pg_words(ns: &Netns, line: &str) -> (i32, String) {
    pg(ns, &line.split_whitespace().collect::<Vec<_>>())
}

#[test]
fn arp_probe_reports_free_taken_and_errors() {
    common::require_root();
    let (a, b) = pair("probe");
    b.ip(&["addr", "add", "10.99.1.60/24", "dev", "vb"]);
    let mac_b = b.mac("vb");
    let (code, text) = pg(
        &a,
        &[
            "arp",
            "probe",
            "--iface",
            "va",
            "--ip",
            "10.99.1.60",
            "--wait",
            "500",
        ],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&mac_b), "{text}");
    let (code, text) = pg(
        &a,
        &[
            "arp",
            "probe",
            "--iface",
            "va",
            "--ip",
            "10.99.1.61",
            "--wait",
            "300",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = pg(
        &a,
        &["arp", "probe", "--iface", "nosuch0", "--ip", "10.99.1.61"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("nosuch0"), "{text}");
    let (code, _) = pg(&a, &["arp", "probe", "--iface", "va", "--ip", "not-an-ip"]);
    assert_eq!(code, 2);
}

#[test]
fn arp_announce_sends_gratuitous_replies() {
    common::require_root();
    let (a, b) = pair("annc");
    let cap = b.tcpdump("vb", &["arp"]);
    let (code, text) = pg(
        &a,
        &[
            "arp",
            "announce",
            "--iface",
            "va",
            "--ip",
            "10.99.1.10",
            "--count",
            "3",
            "--interval",
            "50",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let lines = cap.finish();
    let replies = lines
        .iter()
        .filter(|l| l.contains("Reply 10.99.1.10 is-at"))
        .count();
    assert_eq!(replies, 3, "{lines:#?}");
    let (code, _) = pg(
        &a,
        &[
            "arp",
            "announce",
            "--iface",
            "va",
            "--ip",
            "10.99.1.10",
            "--mode",
            "shout",
        ],
    );
    assert_eq!(code, 1);
}

#[test]
fn vip_move_releases_on_the_old_holder_then_claims() {
    common::require_root();
    let (a, b) = pair("move");
    let (code, text) = pg(
        &a,
        &[
            "vip",
            "claim",
            "--ip",
            "10.99.1.70/24",
            "--iface",
            "va",
            "--label",
            "pgvip",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("va:pgvip"));
    let cap = a.tcpdump("va", &["arp"]);
    let b_bin = bin();
    let (code, text) = pg(
        &b,
        &[
            "vip",
            "move",
            "--ip",
            "10.99.1.70/24",
            "--iface",
            "vb",
            "--label",
            "pgvip",
            "--timeout",
            "10",
            "--",
            "ip",
            "netns",
            "exec",
            &a.name,
            &b_bin,
            "vip",
            "release",
            "--ip",
            "10.99.1.70",
            "--iface",
            "va",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(!a
        .ip(&["-o", "addr", "show", "dev", "va"])
        .contains("10.99.1.70"));
    let addr = b.ip(&["-o", "addr", "show", "dev", "vb"]);
    assert!(
        addr.contains("10.99.1.70/24") && addr.contains("vb:pgvip"),
        "{addr}"
    );
    // The old holder learnt the new location (arping -A: gratuitous replies).
    let lines = cap.finish();
    let mac_b = b.mac("vb");
    assert!(
        lines
            .iter()
            .filter(|l| l.contains(&mac_b) && l.contains("Reply 10.99.1.70 is-at"))
            .count()
            >= 3,
        "{lines:#?}"
    );
}

#[test]
fn vip_move_refuses_while_the_old_holder_keeps_the_address() {
    common::require_root();
    let (a, b) = pair("stuck");
    a.ip(&["addr", "add", "10.99.1.71/24", "dev", "va"]);
    let mac_a = a.mac("va");
    let t = std::time::Instant::now();
    let (code, text) = pg(
        &b,
        &[
            "vip",
            "move",
            "--ip",
            "10.99.1.71/24",
            "--iface",
            "vb",
            "--timeout",
            "2",
        ],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&mac_a) && text.contains("still"), "{text}");
    assert!(t.elapsed() < Duration::from_secs(8));
    assert!(!b
        .ip(&["-o", "addr", "show", "dev", "vb"])
        .contains("10.99.1.71"));
    // A release command that fails stops the move too.
    let (code, text) = pg(
        &b,
        &[
            "vip",
            "move",
            "--ip",
            "10.99.1.71/24",
            "--iface",
            "vb",
            "--timeout",
            "2",
            "--",
            "false",
        ],
    );
    assert_eq!(code, 1);
    assert!(text.contains("release command false failed"), "{text}");
    // claim refuses as well, naming the holder, once no full probe (500 ms) fits in its
    // timeout (2 s less the 10 % margin).
    let t = std::time::Instant::now();
    let (code, text) = pg_words(&b, "vip claim --ip 10.99.1.71/24 --iface vb --timeout 2");
    assert_eq!(code, 1, "{text}");
    assert!(text.contains(&mac_a), "{text}");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1150) && took < Duration::from_secs(3),
        "claim gave up after {took:?}"
    );
}

#[test]
fn vip_claim_takes_the_address_once_the_old_holder_goes_quiet() {
    common::require_root();
    // The same rule as the agent's start (the same code): keep probing, claim as soon as
    // nobody answers.
    let (a, b) = pair("quiet");
    a.ip(&["addr", "add", "10.99.1.72/24", "dev", "va"]);
    let t = std::time::Instant::now();
    let releaser = a.del_addr_later("10.99.1.72/24", "va", Duration::from_millis(1500), t);
    let (code, text) = pg_words(&b, "vip claim --ip 10.99.1.72/24 --iface vb --timeout 8");
    let took = t.elapsed();
    let released = releaser.join().unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(
        took > released && took < Duration::from_secs(7),
        "{took:?} {released:?}"
    );
    assert!(b
        .ip(&["-o", "addr", "show", "dev", "vb"])
        .contains("10.99.1.72/24"));
}
