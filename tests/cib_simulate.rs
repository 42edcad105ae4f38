//! The templates under Pacemaker's own scheduler (crm_simulate), through
//! `pgstack cib simulate` and `pgstack cib migrate`: the book's migration order, fencing
//! before promotion, standby, stickiness when a failed node returns, replication failover.

mod common;

use common::cib::{pgstack, render, run_env, steps, TempDir};

fn simulate(tmp: &TempDir, file: &std::path::Path, args: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut a = vec!["cib", "simulate", file.to_str().unwrap()];
    a.extend_from_slice(args);
    let r = pgstack(tmp, &a).ok();
    steps(&r.stdout)
}

fn step<'a>(s: &'a [(String, Vec<String>)], title: &str) -> &'a [String] {
    &s.iter()
        .find(|(t, _)| t == title)
        .unwrap_or_else(|| panic!("no step {title:?} in {s:?}"))
        .1
}

fn pos(actions: &[String], a: &str) -> usize {
    actions
        .iter()
        .position(|x| x == a)
        .unwrap_or_else(|| panic!("{a:?} not in {actions:?}"))
}

/// The book, chapter 10, "managed migration": stop vip, postgresql, filesystem, lvm on pg1;
/// demote DRBD on pg1; promote on pg2; start lvm, filesystem, postgresql, vip on pg2.
/// (The book's mail resource is now a Pacemaker alert, not a resource.)
const BOOK_MIGRATION: &[&str] = &[
    "stop pg_vip on pg1",
    "stop pg_db on pg1",
    "stop pg_fs on pg1",
    "stop pg_lvm on pg1",
    "demote drbd_pg on pg1",
    "promote drbd_pg on pg2",
    "start pg_lvm on pg2",
    "start pg_fs on pg2",
    "start pg_db on pg2",
    "start pg_vip on pg2",
];

#[test]
fn migration_follows_the_books_order_and_the_constraint_is_cleared() {
    let tmp = TempDir::new("sim-migrate");
    for provider in ["pgstack", "heartbeat"] {
        let f = render(
            &tmp,
            "a.xml",
            "advanced",
            &["--set", &format!("provider={provider}")],
        );
        let s = simulate(&tmp, &f, &["--scenario", "migrate", "--lifetime", "PT10M"]);
        assert_eq!(
            step(&s, "crm_resource --move PGServer to pg2"),
            BOOK_MIGRATION,
            "{provider}"
        );
        // After --clear nothing moves back: stickiness holds the group on pg2.
        assert!(
            step(&s, "crm_resource --clear PGServer").is_empty(),
            "{s:?}"
        );
    }
}

#[test]
fn node_failure_fences_before_promoting_the_peer() {
    let tmp = TempDir::new("sim-fail");
    let f = render(&tmp, "a.xml", "advanced", &[]);
    let s = simulate(&tmp, &f, &["--scenario", "node-fail"]);
    let a = step(&s, "pg1 fails");
    assert_eq!(a[0], "fence (reboot) pg1", "{a:?}");
    let fence = pos(a, "fence (reboot) pg1");
    let promote = pos(a, "promote drbd_pg on pg2");
    assert!(fence < promote);
    let starts: Vec<&String> = a.iter().filter(|x| x.starts_with("start pg_")).collect();
    assert_eq!(
        starts,
        [
            "start pg_lvm on pg2",
            "start pg_fs on pg2",
            "start pg_db on pg2",
            "start pg_vip on pg2"
        ]
    );
    assert!(promote < pos(a, "start pg_lvm on pg2"));
    // Nothing runs on the failed node in the meantime: no real action on pg1.
    assert!(!a.iter().any(|x| x.ends_with("on pg1")), "{a:?}");
}

#[test]
fn without_fencing_the_failed_node_is_not_fenced() {
    let tmp = TempDir::new("sim-nofence");
    let f = render(&tmp, "a.xml", "advanced", &["--no-fencing"]);
    let s = simulate(&tmp, &f, &["--scenario", "node-fail"]);
    let a = step(&s, "pg1 fails");
    assert!(!a.iter().any(|x| x.starts_with("fence")), "{a:?}");
    pos(a, "promote drbd_pg on pg2");
}

#[test]
fn standby_of_the_active_node_moves_everything() {
    let tmp = TempDir::new("sim-standby");
    let f = render(&tmp, "a.xml", "advanced", &[]);
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "simulate",
            f.to_str().unwrap(),
            "--scenario",
            "standby",
        ],
    )
    .ok();
    let s = steps(&r.stdout);
    let a = step(&s, "pg1 goes to standby");
    for want in BOOK_MIGRATION {
        pos(a, want);
    }
    // The book's order holds within the standby transition too.
    let idx: Vec<usize> = BOOK_MIGRATION.iter().map(|w| pos(a, w)).collect();
    assert!(idx.windows(2).all(|w| w[0] < w[1]), "{a:?}");
    // Everything leaves pg1: DRBD stops there, and so does the fencing device it ran.
    pos(a, "stop drbd_pg on pg1");
    pos(a, "stop fence_pg2 on pg1");
    assert!(
        !a.iter()
            .any(|x| x.starts_with("start") && x.ends_with("on pg1")),
        "{a:?}"
    );
    assert!(
        r.stdout.contains("PGServer: before pg1; after pg2"),
        "{}",
        r.stdout
    );
}

#[test]
fn stickiness_keeps_resources_in_place_when_the_fenced_node_returns() {
    let tmp = TempDir::new("sim-return");
    let f = render(&tmp, "a.xml", "advanced", &[]);
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "simulate",
            f.to_str().unwrap(),
            "--scenario",
            "fence",
        ],
    )
    .ok();
    let s = steps(&r.stdout);
    pos(step(&s, "pg1 fails"), "fence (reboot) pg1");
    let back = step(&s, "pg1 returns after fencing");
    // pg1 only gets back what belongs there: its DRBD instance (unpromoted) and the device
    // that fences pg2. The group and the promotion stay on pg2.
    let mut got = back.to_vec();
    got.sort();
    assert_eq!(
        got,
        ["start drbd_pg on pg1", "start fence_pg2 on pg1"],
        "{back:?}"
    );
    // Its DRBD agent then reports the promotion score that made pg1 the preferred node at
    // the start: stickiness (100 on each of the four group members) outweighs it.
    assert!(
        step(&s, "pg1 reports its promotion scores again").is_empty(),
        "{s:?}"
    );
    assert!(
        r.stdout.contains("PGServer: before pg1; after pg2"),
        "{}",
        r.stdout
    );
}

#[test]
fn without_stickiness_the_group_would_move_back() {
    // The counter-proof of the test above: the same return with resource-stickiness=0 and a
    // promotion score preferring pg1 moves everything back (a second outage).
    let tmp = TempDir::new("sim-nosticky");
    let f = render(&tmp, "a.xml", "advanced", &["--set", "stickiness=0"]);
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "simulate",
            f.to_str().unwrap(),
            "--scenario",
            "fence",
        ],
    )
    .ok();
    let s = steps(&r.stdout);
    let back = step(&s, "pg1 reports its promotion scores again");
    let want: Vec<String> = BOOK_MIGRATION
        .iter()
        .map(|a| {
            a.replace("pg1", "PGX")
                .replace("pg2", "pg1")
                .replace("PGX", "pg2")
        })
        .collect();
    assert_eq!(back, want);
    assert!(
        r.stdout.contains("PGServer: before pg1; after pg1"),
        "{}",
        r.stdout
    );
}

#[test]
fn replication_failover_promotes_the_standby_then_moves_the_vip() {
    let tmp = TempDir::new("sim-repl");
    for provider in ["pgstack", "heartbeat"] {
        let f = render(
            &tmp,
            "r.xml",
            "replication",
            &["--set", &format!("provider={provider}")],
        );
        let r = pgstack(
            &tmp,
            &[
                "cib",
                "simulate",
                f.to_str().unwrap(),
                "--scenario",
                "node-fail",
            ],
        )
        .ok();
        let s = steps(&r.stdout);
        let a = step(&s, "pg1 fails");
        assert_eq!(
            a,
            [
                "fence (reboot) pg1",
                "promote pgsqld on pg2",
                "start pg_vip on pg2"
            ],
            "{provider}"
        );
        assert!(
            r.stdout.contains("pg_vip: before pg1; after pg2"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn replication_switchover_demotes_before_stopping_the_vip() {
    let tmp = TempDir::new("sim-repl-mv");
    let f = render(&tmp, "r.xml", "replication", &[]);
    let s = simulate(&tmp, &f, &["--scenario", "migrate", "--resource", "pg_vip"]);
    let a = step(&s, "crm_resource --move pg_vip to pg2");
    let stop_vip = pos(a, "stop pg_vip on pg1");
    let demote = pos(a, "demote pgsqld on pg1");
    let promote = pos(a, "promote pgsqld on pg2");
    let start_vip = pos(a, "start pg_vip on pg2");
    // The VIP carries the standby's replication connection: it stays until the demoted
    // primary has handed its shutdown checkpoint over (PAF's documented order).
    assert!(
        demote < stop_vip && stop_vip < start_vip && promote < start_vip,
        "{a:?}"
    );
}

#[test]
fn primary_option_chooses_where_the_stack_starts() {
    let tmp = TempDir::new("sim-primary");
    let f = render(&tmp, "a.xml", "advanced", &[]);
    let s = simulate(&tmp, &f, &["--scenario", "migrate", "--primary", "pg2"]);
    pos(
        step(&s, "crm_resource --move PGServer to pg1"),
        "promote drbd_pg on pg1",
    );
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "simulate",
            f.to_str().unwrap(),
            "--scenario",
            "standby",
            "--node",
            "pg9",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("pg9 is not a node"), "{}", r.stderr);
}

#[test]
fn migrate_command_moves_and_always_clears_the_constraint() {
    let tmp = TempDir::new("migrate");
    let f = render(&tmp, "a.xml", "advanced", &[]);
    let state = tmp.file("state.xml");
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "simulate",
            f.to_str().unwrap(),
            "--scenario",
            "steady",
            "--save",
            &state,
        ],
    )
    .ok();
    assert!(
        r.stdout.contains("PGServer: before pg1; after pg1"),
        "{}",
        r.stdout
    );
    let r = pgstack(
        &tmp,
        &["cib", "migrate", "PGServer", "pg2", "--cib-file", &state],
    )
    .ok();
    let s = steps(&r.stdout);
    assert_eq!(step(&s, "transition"), BOOK_MIGRATION);
    assert!(
        r.stdout.contains("PGServer now runs on: pg2"),
        "{}",
        r.stdout
    );
    // Pacemaker's own tools on the file: no move constraint is left, the group is on pg2.
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(!text.contains("cli-prefer"), "constraint left behind");
    let loc = run_env(
        &["crm_resource", "--locate", "--resource", "PGServer"],
        &[("CIB_file", &state)],
    );
    assert!(loc.stdout.contains("is running on: pg2"), "{}", loc.stdout);
    // A move refused by crm_resource (unknown node) leaves nothing behind either.
    let r = pgstack(
        &tmp,
        &["cib", "migrate", "PGServer", "pg7", "--cib-file", &state],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(!std::fs::read_to_string(&state)
        .unwrap()
        .contains("cli-prefer"));
    // Bad arguments are refused before any tool runs.
    for (rsc, node, lifetime, want) in [
        (
            "PG Server",
            "pg2",
            "PT30M",
            "resource=\"PG Server\" refused",
        ),
        ("PGServer", "pg_2", "PT30M", "node=\"pg_2\" refused"),
        ("PGServer", "pg2", "30 minutes", "ISO 8601"),
    ] {
        let r = pgstack(
            &tmp,
            &[
                "cib",
                "migrate",
                rsc,
                node,
                "--lifetime",
                lifetime,
                "--cib-file",
                &state,
            ],
        );
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
    }
    // A plain render has no state to move in.
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "migrate",
            "PGServer",
            "pg2",
            "--cib-file",
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no node states"), "{}", r.stderr);
}
