//! The `shared` template (the lab's CIB: filesystem -> postgresql -> vip on a shared disk,
//! one stonith device for every node) under Pacemaker's offline tools: crm_verify for
//! every variant, crm_simulate for the move and the node failure.

mod common;

use common::cib::{crm_verify, pgstack, render, steps, TempDir};

fn variants() -> Vec<Vec<&'static str>> {
    vec![
        vec![],
        vec!["--no-fencing"],
        vec!["--set", "provider=heartbeat"],
        vec![
            "--set",
            "node1=n1",
            "--set",
            "node2=n2",
            "--set",
            "node3=n3",
            "--set",
            "node3_id=3",
            "--set",
            "device=/dev/loop7",
            "--set",
            "directory=/tmp/pgst-lab/db",
            "--set",
            "pgdata=/tmp/pgst-lab/db/pgdata",
            "--set",
            "vip=10.99.50.50",
            "--set",
            "vip_nic=eth0",
            "--set",
            "fence_action=off",
            "--set",
            "dc_deadtime=2s",
            "--set",
            "alert_recipient=/var/log/pacemaker/pgstack-alerts.log",
        ],
    ]
}

#[test]
fn every_variant_passes_crm_verify() {
    let tmp = TempDir::new("shared-verify");
    for (i, extra) in variants().into_iter().enumerate() {
        let mut args = extra.clone();
        args.push("--online-status");
        let f = render(&tmp, &format!("{i}.xml"), "shared", &args);
        let (code, err) = crm_verify(&f);
        assert_eq!(code, 0, "shared {extra:?}: crm_verify exit {code}\n{err}");
        let text = std::fs::read_to_string(&f).unwrap();
        let fencing = !extra.contains(&"--no-fencing");
        assert_eq!(text.contains("class=\"stonith\""), fencing, "{extra:?}");
        assert_eq!(
            text.contains("name=\"stonith-enabled\" value=\"true\""),
            fencing
        );
        if extra.contains(&"node3=n3") {
            assert!(text.contains("value=\"n1 n2 n3\""), "{text}");
            assert!(text.contains("<node id=\"3\" uname=\"n3\"/>"), "{text}");
        }
    }
}

#[test]
fn pgdata_must_be_on_the_shared_disk() {
    let tmp = TempDir::new("shared-bad");
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "render",
            "--template",
            "shared",
            "--set",
            "pgdata=/var/lib/postgresql/15/main",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not under"), "{}", r.stderr);
}

/// The lab's fence agent exists only while a lab runs (`lab up` installs it), so the
/// offline simulation allows that one agent to be missing; every other agent the
/// template names must be installed.
fn simulate(tmp: &TempDir, file: &std::path::Path, scenario: &str) -> Vec<(String, Vec<String>)> {
    let strict = pgstack(
        tmp,
        &[
            "cib",
            "simulate",
            file.to_str().unwrap(),
            "--scenario",
            scenario,
        ],
    );
    if strict.code != 0 {
        let missing: Vec<&str> = strict
            .stderr
            .lines()
            .chain(strict.stdout.lines())
            .filter(|l| l.contains("is not installed"))
            .collect();
        assert!(
            !missing.is_empty()
                && missing
                    .iter()
                    .all(|l| l.contains("stonith:fence_pgstack_lab")),
            "simulate failed for another reason: {}\n{}",
            strict.stdout,
            strict.stderr
        );
    }
    let r = pgstack(
        tmp,
        &[
            "cib",
            "simulate",
            file.to_str().unwrap(),
            "--scenario",
            scenario,
            "--allow-missing-agents",
        ],
    )
    .ok();
    steps(&r.stdout)
}

fn group_actions(a: &[String]) -> Vec<String> {
    a.iter()
        .filter(|x| x.contains(" pg_") || x.starts_with("fence"))
        .cloned()
        .collect()
}

#[test]
fn the_group_moves_in_order_and_a_failed_node_is_fenced_first() {
    let tmp = TempDir::new("shared-sim");
    for provider in ["pgstack", "heartbeat"] {
        let f = render(
            &tmp,
            "s.xml",
            "shared",
            &["--set", &format!("provider={provider}")],
        );
        let s = simulate(&tmp, &f, "migrate");
        let (_, moved) = s
            .iter()
            .find(|(t, _)| t.starts_with("crm_resource --move"))
            .unwrap_or_else(|| panic!("{s:?}"));
        // The steady state puts the group on either node (the stonith device balances it).
        let moved = group_actions(moved);
        let from = moved[0].rsplit(' ').next().unwrap().to_string();
        let to = if from == "pg1" { "pg2" } else { "pg1" };
        let order = |a: &str, b: &str| {
            vec![
                format!("stop pg_vip on {a}"),
                format!("stop pg_db on {a}"),
                format!("stop pg_fs on {a}"),
                format!("start pg_fs on {b}"),
                format!("start pg_db on {b}"),
                format!("start pg_vip on {b}"),
            ]
        };
        assert_eq!(moved, order(&from, to), "{provider}");
        let s = simulate(&tmp, &f, "node-fail");
        let (title, failed) = s
            .iter()
            .find(|(t, _)| t.ends_with(" fails"))
            .unwrap_or_else(|| panic!("{s:?}"));
        let dead = title.trim_end_matches(" fails");
        let alive = if dead == "pg1" { "pg2" } else { "pg1" };
        assert_eq!(
            group_actions(failed),
            [
                format!("fence (reboot) {dead}"),
                format!("start pg_fs on {alive}"),
                format!("start pg_db on {alive}"),
                format!("start pg_vip on {alive}")
            ],
            "{provider}"
        );
    }
    // Without fencing the failed node is not fenced; the group starts on the survivor.
    let f = render(&tmp, "n.xml", "shared", &["--no-fencing"]);
    let s = simulate(&tmp, &f, "node-fail");
    let (_, failed) = s.iter().find(|(t, _)| t.ends_with(" fails")).unwrap();
    assert!(!failed.iter().any(|x| x.starts_with("fence")), "{failed:?}");
}
