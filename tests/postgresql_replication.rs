//! The replication mode on real PostgreSQL 15 (root only): a primary and a standby made
//! by `pg_basebackup`, both on loopback with their own ports and directories
//! (`/tmp/pgst-pg-<n>`), driven through the installed shim. Every server and directory
//! is removed by the `PgCluster` guards, whatever the outcome.

mod common;

use std::time::{Duration, Instant};

use common::pg::{PgCluster, BINDIR};

/// Loopback listeners, so a standby can stream from the primary over TCP.
fn tcp_params(c: &PgCluster) -> Vec<(String, String)> {
    let mut p = c.params();
    for kv in p.iter_mut().filter(|(k, _)| k == "start_opts") {
        kv.1 = "-c listen_addresses=127.0.0.1".into();
    }
    p
}

/// Replication-mode parameters of `c`, streaming from the server on `primary_port`.
fn repl_params(c: &PgCluster, primary_port: u16) -> Vec<(String, String)> {
    let mut p = tcp_params(c);
    p.push(("mode".into(), "replication".into()));
    p.push(("master_ip".into(), "127.0.0.1".into()));
    p.push((
        "primary_conninfo_opt".into(),
        format!("port={primary_port} connect_timeout=2"),
    ));
    p
}

fn act(params: &[(String, String)], action: &str, extra: &[(&str, &str)]) -> common::AgentRun {
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    common::ocf(&[], &common::agent_path("postgresql"), action, &refs, extra)
}

const NODE: (&str, &str) = ("OCF_RESKEY_CRM_meta_on_node", "pgst-standby");
const RECURRING: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "15000");

/// A primary started in single mode, and an empty cluster directory for a standby
/// filled by pg_basebackup from it.
fn primary_and_copy(p: u16, s: u16) -> (PgCluster, PgCluster) {
    let primary = PgCluster::new(p);
    let r = act(&tcp_params(&primary), "start", &[]);
    assert_eq!(r.code, 0, "primary start: {r:?}");
    let standby = PgCluster::new(s);
    std::fs::remove_dir_all(standby.data()).unwrap();
    let out = common::run(
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            &format!("{BINDIR}/pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            &primary.port_s(),
            "-U",
            "postgres",
            "-D",
            standby.data().to_str().unwrap(),
            "-X",
            "stream",
            "--no-sync",
        ],
        &[],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (primary, standby)
}

fn streaming_to(primary: &PgCluster, name: &str) -> bool {
    primary
        .psql("select application_name || ':' || state from pg_stat_replication")
        .1
        .lines()
        .any(|l| l == format!("{name}:streaming"))
}

#[test]
fn standby_streams_is_promoted_and_a_demoted_primary_runs_as_a_standby() {
    common::require_root();
    let (primary, standby) = primary_and_copy(81, 82);
    let sp = repl_params(&standby, primary.port);
    let pp = repl_params(&primary, standby.port);

    // Start: always a standby, streaming under the node's name.
    let conf_before = std::fs::read(standby.data().join("postgresql.conf")).unwrap();
    let r = act(&sp, "start", &[NODE]);
    assert_eq!(r.code, 0, "standby start: {r:?}");
    assert!(standby.data().join("standby.signal").exists());
    let own = std::fs::read_to_string(standby.data().join("pgstack-replication.conf")).unwrap();
    assert!(own.contains("application_name=pgst-standby"), "{own}");
    common::wait_for("the standby streams", Duration::from_secs(20), || {
        streaming_to(&primary, "pgst-standby")
    });
    assert_eq!(standby.psql("select pg_is_in_recovery()").1, "t");
    // The agent's default retry interval (1 s, not PostgreSQL's 5 s) is what the server
    // runs with (the user's configuration sets none here; below, one that does wins).
    assert_eq!(standby.psql("show wal_retrieve_retry_interval").1, "1s");
    // The user's postgresql.conf is untouched.
    let conf = std::fs::read(standby.data().join("postgresql.conf")).unwrap();
    assert!(conf == conf_before, "postgresql.conf was edited");

    // Monitor: 8 on the primary, 0 on the standby.
    let r = act(
        &pp,
        "monitor",
        &[RECURRING, ("OCF_RESKEY_CRM_meta_on_node", "pgst-primary")],
    );
    assert_eq!(r.code, 8, "primary monitor: {r:?}");
    assert_eq!(act(&sp, "monitor", &[RECURRING, NODE]).code, 0);
    assert_eq!(act(&sp, "monitor", &[NODE]).code, 0, "probe of a standby");

    // Promote within the deadline.
    let t = Instant::now();
    let r = act(
        &sp,
        "promote",
        &[NODE, ("OCF_RESKEY_CRM_meta_timeout", "30000")],
    );
    let promote_ms = t.elapsed().as_millis();
    assert_eq!(r.code, 0, "promote: {r:?}");
    assert!(promote_ms < 30_000, "{promote_ms} ms");
    assert_eq!(standby.psql("select pg_is_in_recovery()").1, "f");
    assert_eq!(act(&sp, "monitor", &[RECURRING, NODE]).code, 8);
    eprintln!("promote took {promote_ms} ms (agent process included)");

    // Demote of a primary: still running, now in recovery. Its user's configuration sets
    // the retry interval: that one wins over the agent's default.
    let mut user_conf = std::fs::read_to_string(primary.data().join("postgresql.conf")).unwrap();
    user_conf.push_str("\nwal_retrieve_retry_interval = '3s'\n");
    std::fs::write(primary.data().join("postgresql.conf"), user_conf).unwrap();
    let pid_before = primary.pidfile_pid().unwrap();
    let r = act(
        &pp,
        "demote",
        &[("OCF_RESKEY_CRM_meta_on_node", "pgst-primary")],
    );
    assert_eq!(r.code, 0, "demote: {r:?}");
    let pid_after = primary
        .pidfile_pid()
        .expect("a demoted primary keeps running");
    assert_ne!(pid_before, pid_after, "restarted as a standby");
    assert_eq!(primary.psql("select pg_is_in_recovery()").1, "t");
    assert_eq!(primary.psql("show wal_retrieve_retry_interval").1, "3s");
    // The standby was promoted while this primary still ran (no cluster orders them
    // here): the demoted primary wrote past the fork of the new timeline (its shutdown
    // checkpoint at least), so it cannot follow, and its monitor says so, naming the
    // command that rebuilds it.
    let r = act(
        &pp,
        "monitor",
        &[RECURRING, ("OCF_RESKEY_CRM_meta_on_node", "pgst-primary")],
    );
    assert_eq!(r.code, 1, "monitor of the diverged demoted primary: {r:?}");
    let why = r.exit_reason().unwrap_or_default();
    assert!(
        why.contains("diverged") && why.contains("pgstack pg rejoin"),
        "{r:?}"
    );
    // Demoting a standby changes nothing.
    assert_eq!(
        act(
            &pp,
            "demote",
            &[("OCF_RESKEY_CRM_meta_on_node", "pgst-primary")]
        )
        .code,
        0
    );
    assert_eq!(primary.pidfile_pid(), Some(pid_after));

    // Stopped: 7.
    assert_eq!(act(&pp, "stop", &[]).code, 0);
    assert_eq!(act(&pp, "monitor", &[RECURRING]).code, 7);

    // A crashed primary: 9 when Pacemaker expects it promoted, else 7 with a reason.
    standby.kill_all();
    common::wait_for(
        "the primary's processes are gone",
        Duration::from_secs(10),
        || common::pg::postgres_processes_under(&standby.dir).is_empty(),
    );
    let promoted = ("OCF_RESKEY_CRM_meta_role", "Promoted");
    let r = act(&sp, "monitor", &[RECURRING, NODE, promoted]);
    assert_eq!(r.code, 9, "crashed primary, expected promoted: {r:?}");
    assert!(
        r.exit_reason().unwrap_or_default().contains("crashed"),
        "{r:?}"
    );
    let r = act(&sp, "monitor", &[NODE]);
    assert_eq!(r.code, 7, "crashed primary, probe: {r:?}");
    assert!(
        r.exit_reason().unwrap_or_default().contains("crashed"),
        "{r:?}"
    );
    // Start recovers it as a standby.
    let r = act(&sp, "start", &[NODE]);
    assert_eq!(r.code, 0, "start after a crash: {r:?}");
    assert_eq!(standby.psql("select pg_is_in_recovery()").1, "t");
    assert_eq!(act(&sp, "stop", &[]).code, 0);
}

#[test]
fn validate_all_reports_bad_replication_settings_but_stop_and_probes_do_not() {
    common::require_root();
    let c = PgCluster::new(85);
    let mut p = repl_params(&c, 5432);
    let clone = [
        ("OCF_RESKEY_CRM_meta_clone_max", "2"),
        ("OCF_RESKEY_CRM_meta_promotable", "true"),
        NODE,
    ];
    let mut bad = clone.to_vec();
    bad.push(("OCF_RESKEY_CRM_meta_notify", "false"));
    let r = act(&p, "validate-all", &bad);
    assert_eq!(r.code, 6, "{r:?}");
    assert!(r.exit_reason().unwrap().contains("notify=true"), "{r:?}");
    let mut bad = clone.to_vec();
    bad.extend([
        ("OCF_RESKEY_CRM_meta_notify", "true"),
        ("OCF_RESKEY_CRM_meta_promoted_max", "2"),
    ]);
    assert_eq!(act(&p, "validate-all", &bad).code, 6);
    // Neither stop nor a probe validates.
    assert_eq!(act(&p, "stop", &bad).code, 0);
    assert_eq!(act(&p, "monitor", &bad).code, 7);
    // A missing recovery_template is an argument error.
    p.push((
        "recovery_template".into(),
        c.dir.join("recovery.conf.pcmk").display().to_string(),
    ));
    let r = act(&p, "validate-all", &[NODE]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.exit_reason().unwrap().contains("recovery.conf.pcmk"),
        "{r:?}"
    );
}

#[test]
fn ocf_tester_passes_for_the_promotable_mode() {
    common::require_root();
    common::require_file("/usr/sbin/ocf-tester");
    let (primary, standby) = primary_and_copy(83, 84);
    // ocf-tester promotes the instance under test, and no cluster keeps the primary of
    // the copy from running meanwhile: the promoted copy would diverge from it, and the
    // agent rightly refuses to start it again as that primary's standby. The copy is
    // tested with its primary down: a lone standby, as ocf-tester expects.
    assert_eq!(
        act(&tcp_params(&primary), "stop", &[]).code,
        0,
        "primary stop"
    );
    let mut argv: Vec<String> = vec![
        "ocf-tester".into(),
        "-v".into(),
        "-n".into(),
        "pgsqld".into(),
    ];
    let mut params = repl_params(&standby, primary.port);
    params.retain(|(k, _)| k != "mode");
    for (k, v) in params.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain([
        ("CRM_meta_on_node", "pgst-standby"),
        ("CRM_meta_promotable", "true"),
        ("CRM_meta_clone_max", "2"),
        ("CRM_meta_clone_node_max", "1"),
        ("CRM_meta_master_max", "1"),
        ("CRM_meta_master_node_max", "1"),
        ("CRM_meta_notify", "true"),
    ]) {
        argv.push("-o".into());
        argv.push(format!("{k}={v}"));
    }
    argv.push(common::agent_path("postgresql"));
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = common::run(
        &refs,
        &[("OCF_ROOT", "/usr/lib/ocf")],
        Duration::from_secs(300),
    );
    let text = format!(
        "$ {}\n{}{}exit: {}\n",
        argv.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    );
    std::fs::write(
        common::artifacts().join("ocf-tester-postgresql-replication.txt"),
        &text,
    )
    .unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed all tests"), "{text}");
    // Promote and demote were exercised, not skipped as unsupported.
    assert!(!text.contains("does not support the promote"), "{text}");
    assert!(!text.contains("does not support the notify"), "{text}");
    assert!(
        text.contains("Testing: promotion of promoted resource"),
        "{text}"
    );
    assert!(
        common::pg::postgres_processes_under(&standby.dir).is_empty(),
        "ocf-tester ends with a stop"
    );
}
