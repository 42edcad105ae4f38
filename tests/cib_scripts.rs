//! The crm and pcs renders, applied by crmsh (`crm -f`) and pcs (`pcs -f`) to the CIB of a
//! freshly started cluster, give the same configuration as the XML render.
//!
//! Every agent the templates name is installed (resource-agents, drbd-utils, fence-agents
//! and pgstack's own shims, `ocf:pgstack:lvm` included), so crmsh and pcs check each
//! agent's meta-data and parameter names, and every case runs without any force option
//! (`crm -F`, pcs `--force`): the replication template's promotable clone of
//! `ocf:pgstack:postgresql` included, since the agent advertises promote, demote, notify
//! and the promoted and unpromoted monitors. `pgstack cib verify` fails, listing them,
//! when a configuration names an agent that is not installed here.

mod common;

use common::cib::{
    crm, diff, fresh_cluster_cib, normal_configuration, pgstack, render, run_env, TempDir,
};

fn expected(tmp: &TempDir, name: &str, template: &str, extra: &[&str]) -> String {
    let f = render(tmp, name, template, extra);
    let text = std::fs::read_to_string(f).unwrap();
    // The render's nodes are those of the fresh cluster (pg1=1, pg2=2).
    assert!(text.contains("<node id=\"1\" uname=\"pg1\"/>"));
    normal_configuration(&text)
}

fn fresh(tmp: &TempDir, name: &str) -> String {
    let p = tmp.file(name);
    std::fs::write(&p, fresh_cluster_cib()).unwrap();
    p
}

fn apply_crm(tmp: &TempDir, tag: &str, template: &str, extra: &[&str], force: bool) -> String {
    let mut args = extra.to_vec();
    args.extend(["--format", "crm"]);
    let script = render(tmp, &format!("{tag}.crm"), template, &args);
    let cib = fresh(tmp, &format!("{tag}-crm.xml"));
    let s = script.to_str().unwrap();
    let argv: Vec<&str> = if force {
        vec!["-F", "-f", s]
    } else {
        vec!["-f", s]
    };
    let r = crm(tmp, &argv, &cib);
    assert_eq!(r.code, 0, "crm -f {tag}: {}\n{}", r.stdout, r.stderr);
    if !force {
        assert!(!r.stderr.contains("ERROR"), "crm -f {tag}: {}", r.stderr);
    }
    std::fs::read_to_string(&cib).unwrap()
}

fn apply_pcs(tmp: &TempDir, tag: &str, template: &str, extra: &[&str], force: bool) -> String {
    let mut args = extra.to_vec();
    args.extend(["--format", "pcs"]);
    let script = render(tmp, &format!("{tag}.sh"), template, &args);
    let cib = fresh(tmp, &format!("{tag}-pcs.xml"));
    let env: Vec<(&str, &str)> = if force {
        vec![("FORCE", "--force")]
    } else {
        vec![]
    };
    let r = run_env(&["sh", script.to_str().unwrap(), &cib], &env);
    assert_eq!(r.code, 0, "pcs script {tag}: {}\n{}", r.stdout, r.stderr);
    std::fs::read_to_string(&cib).unwrap()
}

fn same(tag: &str, want: &str, got_cib: &str) {
    let got = normal_configuration(got_cib);
    assert!(
        want == got,
        "{tag}: configurations differ\n{}",
        diff(want, &got)
    );
}

#[test]
fn crm_scripts_give_the_xml_configuration() {
    let tmp = TempDir::new("crm");
    for (tag, template, extra, force) in [
        (
            "adv-hb",
            "advanced",
            vec!["--set", "provider=heartbeat"],
            false,
        ),
        (
            "adv-hb-nofence",
            "advanced",
            vec!["--set", "provider=heartbeat", "--no-fencing"],
            false,
        ),
        (
            "repl-hb",
            "replication",
            vec![
                "--set",
                "provider=heartbeat",
                "--set",
                "alert_recipient=/var/log/pg-alerts.log",
            ],
            false,
        ),
        ("adv-pgstack", "advanced", vec![], false),
        ("repl-pgstack", "replication", vec![], false),
    ] {
        let want = expected(&tmp, &format!("{tag}.xml"), template, &extra);
        same(tag, &want, &apply_crm(&tmp, tag, template, &extra, force));
    }
}

#[test]
fn every_agent_of_the_templates_is_installed_here() {
    // crmsh looks each primitive's agent up; without -F any missing one is an ERROR.
    let tmp = TempDir::new("crm-noforce");
    let script = render(&tmp, "a.crm", "advanced", &["--format", "crm"]);
    let cib = fresh(&tmp, "a.xml");
    let r = crm(&tmp, &["-f", script.to_str().unwrap()], &cib);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let errors: Vec<&str> = r.stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "crmsh refused: {errors:?}");
    // And pgstack's own check agrees.
    let xml = render(&tmp, "a-render.xml", "advanced", &[]);
    let v = pgstack(&tmp, &["cib", "verify", xml.to_str().unwrap()]);
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    assert!(!v.stdout.contains("not installed"), "{}", v.stdout);
}

#[test]
fn verify_and_simulate_fail_listing_agents_not_installed_here() {
    let tmp = TempDir::new("agents-missing");
    let xml = render(&tmp, "a.xml", "advanced", &[]);
    let text = std::fs::read_to_string(&xml).unwrap();
    let bad = tmp.file("bad.xml");
    std::fs::write(
        &bad,
        text.replace("type=\"lvm\"", "type=\"pgst-nosuch-agent\""),
    )
    .unwrap();
    let v = pgstack(&tmp, &["cib", "verify", &bad]);
    assert_eq!(v.code, 1, "{}\n{}", v.stdout, v.stderr);
    assert!(
        v.stdout
            .contains("resource agent ocf:pgstack:pgst-nosuch-agent is not installed"),
        "{}",
        v.stdout
    );
    assert_eq!(
        v.stdout.matches("is not installed").count(),
        1,
        "{}",
        v.stdout
    );
    let v = pgstack(&tmp, &["cib", "verify", "--allow-missing-agents", &bad]);
    assert_eq!(v.code, 0, "{}\n{}", v.stdout, v.stderr);
    let s = pgstack(&tmp, &["cib", "simulate", &bad, "--scenario", "steady"]);
    assert_eq!(s.code, 1, "{}\n{}", s.stdout, s.stderr);
    assert!(s.stderr.contains("not installed"), "{}", s.stderr);
    let s = pgstack(
        &tmp,
        &[
            "cib",
            "simulate",
            &bad,
            "--scenario",
            "steady",
            "--allow-missing-agents",
        ],
    );
    assert_eq!(s.code, 0, "{}\n{}", s.stdout, s.stderr);
}

#[test]
fn pcs_script_gives_the_xml_configuration_with_installed_agents() {
    let tmp = TempDir::new("pcs-hb");
    let extra = ["--set", "provider=heartbeat"];
    let want = expected(&tmp, "a.xml", "advanced", &extra);
    same(
        "pcs adv-hb",
        &want,
        &apply_pcs(&tmp, "adv-hb", "advanced", &extra, false),
    );
}

#[test]
fn pcs_script_gives_the_xml_configuration_with_pgstack_agents() {
    let tmp = TempDir::new("pcs-pgstack");
    let extra = ["--set", "alert_recipient=/var/log/pgstack/alerts.log"];
    let want = expected(&tmp, "r.xml", "replication", &extra);
    same(
        "pcs repl-pgstack",
        &want,
        &apply_pcs(&tmp, "repl", "replication", &extra, false),
    );
    let want = expected(&tmp, "a.xml", "advanced", &[]);
    same(
        "pcs adv-pgstack",
        &want,
        &apply_pcs(&tmp, "adv", "advanced", &[], false),
    );
}

#[test]
fn the_comparison_sees_a_difference() {
    // The normal form drops generated ids and meaningless order only: one changed value,
    // one role or one reordered group member is a difference.
    let tmp = TempDir::new("crm-diff");
    let a = render(&tmp, "a.xml", "advanced", &[]);
    let a = std::fs::read_to_string(a).unwrap();
    let base = normal_configuration(&a);
    for (from, to) in [
        ("value=\"100\"", "value=\"101\""),
        ("with-rsc-role=\"Promoted\"", "with-rsc-role=\"Unpromoted\""),
        ("id=\"nvpair-x\"", "id=\"nvpair-x\""),
    ] {
        let changed = normal_configuration(&a.replacen(from, to, 1));
        assert_eq!(changed == base, from == to, "{from} -> {to}");
    }
    // Swapping two group members changes the start order: a difference.
    let fs_start = a.find("<primitive id=\"pg_fs\"").unwrap();
    let db_start = a.find("<primitive id=\"pg_db\"").unwrap();
    let vip_start = a.find("<primitive id=\"pg_vip\"").unwrap();
    let swapped = format!(
        "{}{}{}{}",
        &a[..fs_start],
        &a[db_start..vip_start],
        &a[fs_start..db_start],
        &a[vip_start..]
    );
    assert_ne!(normal_configuration(&swapped), base);
    // And the ids that name things count.
    assert_ne!(
        normal_configuration(&a.replace("id=\"ord_pg\"", "id=\"ord_x\"")),
        base
    );
    // Ids of attribute sets do not.
    assert_eq!(
        normal_configuration(&a.replace("id=\"rsc-options\"", "id=\"build-resource-defaults\"")),
        base
    );
}
