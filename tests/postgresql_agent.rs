//! The postgresql agent against real PostgreSQL 15 clusters (root: initdb as postgres).

mod common;

use std::time::{Duration, Instant};

use common::pg::{alive, postgres_processes_under, Bystander, PgCluster};
use common::{agent_path, ocf, AgentRun};

fn act(c: &PgCluster, action: &str, over: &[(&str, &str)], extra: &[(&str, &str)]) -> AgentRun {
    let mut p = c.params();
    for (k, v) in over {
        p.retain(|(pk, _)| pk != k);
        p.push((k.to_string(), v.to_string()));
    }
    let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ocf(&[], &agent_path("postgresql"), action, &refs, extra)
}

fn probe(c: &PgCluster) -> AgentRun {
    act(c, "monitor", &[], &[("OCF_RESKEY_CRM_meta_interval", "0")])
}

#[test]
fn ocf_tester_passes() {
    common::require_root();
    let c = PgCluster::new(1);
    let mut argv: Vec<String> = vec!["ocf-tester".into(), "-n".into(), "pgst-pg-ocft".into()];
    for (k, v) in c.params() {
        argv.push("-o".into());
        argv.push(format!("{k}={v}"));
    }
    argv.push(agent_path("postgresql"));
    let refs: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
    let out = common::run(&refs, &[], Duration::from_secs(300));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(common::artifacts().join("ocf-tester-postgresql.txt"), &text).unwrap();
    assert!(out.status.success(), "ocf-tester failed:\n{text}");
    assert!(text.contains("passed all tests"), "{text}");
    assert!(
        postgres_processes_under(&c.dir).is_empty(),
        "server left running"
    );
}

#[test]
fn start_monitor_stop_are_idempotent_and_data_survives() {
    common::require_root();
    let c = PgCluster::new(2);
    let r = probe(&c);
    assert_eq!(r.code, 7, "{r:?}");
    assert_eq!(r.exit_reason(), None, "a clean stop has no reason: {r:?}");
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    let first = c.pidfile_pid().unwrap();
    let r = act(&c, "start", &[], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        c.pidfile_pid(),
        Some(first),
        "second start must not restart"
    );
    assert_eq!(act(&c, "monitor", &[], &[]).code, 0);
    assert!(c.psql("create table t(x int); insert into t values (42)").0);
    // The server runs as postgres, not as root.
    let st = std::fs::read_to_string(format!("/proc/{first}/status")).unwrap();
    let uid = st.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(!uid.split_whitespace().skip(1).any(|u| u == "0"), "{uid}");
    assert_eq!(act(&c, "reload", &[], &[]).code, 0);
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
    assert!(postgres_processes_under(&c.dir).is_empty());
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
    assert_eq!(act(&c, "monitor", &[], &[]).code, 7);
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    assert_eq!(c.psql("select x from t"), (true, "42".into()));
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
}

#[test]
fn kill_9_of_the_postmaster_is_not_running_with_a_reason_and_start_recovers() {
    common::require_root();
    let c = PgCluster::new(3);
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    assert!(c.psql("create table t(x int); insert into t values (7)").0);
    let pm = c.pidfile_pid().unwrap();
    common::sh_ok(&["kill", "-9", &pm.to_string()]);
    assert!(PgCluster::wait(|| !alive(pm)));
    let r = act(&c, "monitor", &[], &[]);
    assert_eq!(r.code, 7, "{r:?}");
    let reason = r.exit_reason().unwrap_or_default();
    assert!(reason.contains("crashed"), "{r:?}");
    let r = act(&c, "start", &[], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(act(&c, "monitor", &[], &[]).code, 0);
    assert_eq!(c.psql("select x from t"), (true, "7".into()));
    assert!(std::fs::read_to_string(c.log())
        .unwrap()
        .contains("not properly shut down"));
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
}

#[test]
fn stale_pid_file_naming_an_unrelated_process_is_not_running_and_spares_it() {
    common::require_root();
    let c = PgCluster::new(4);
    let other = Bystander::new();
    let pf = format!(
        "{}\n{}\n1700000000\n{}\n{}\n\n  5432001  0\nready   \n",
        other.pid(),
        c.data().display(),
        c.port,
        c.sock().display()
    );
    std::fs::write(c.data().join("postmaster.pid"), pf).unwrap();
    let r = probe(&c);
    assert_eq!(r.code, 7, "{r:?}");
    assert!(
        r.exit_reason().unwrap_or_default().contains("stale"),
        "{r:?}"
    );
    assert_eq!(act(&c, "monitor", &[], &[]).code, 7);
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
    assert!(
        alive(other.pid()),
        "stop must not touch an unrelated process"
    );
    let r = act(&c, "start", &[], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_ne!(c.pidfile_pid(), Some(other.pid()));
    assert_eq!(act(&c, "monitor", &[], &[]).code, 0);
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
    assert!(
        alive(other.pid()),
        "the unrelated process must survive start and stop"
    );
}

#[test]
fn stop_ends_long_queries_and_idle_transactions_within_the_timeout() {
    common::require_root();
    let c = PgCluster::new(5);
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    let _long = c.session("select pg_sleep(600);\n");
    let _idle = c.session("begin;\ncreate table held(x int);\ninsert into held values (1);\n");
    assert!(PgCluster::wait(|| {
        c.psql("select count(*) from pg_stat_activity where state in ('active', 'idle in transaction') and backend_type = 'client backend' and pid <> pg_backend_pid()").1 == "2"
    }));
    let t = Instant::now();
    let r = act(&c, "stop", &[], &[("OCF_RESKEY_CRM_meta_timeout", "20000")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert!(postgres_processes_under(&c.dir).is_empty());
}

#[test]
fn a_postmaster_that_ignores_shutdown_is_killed_with_its_children_inside_the_deadline() {
    common::require_root();
    let c = PgCluster::new(6);
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    let _long = c.session("select pg_sleep(600);\n");
    let pm = c.pidfile_pid().unwrap();
    // A stopped process handles no signal but SIGKILL.
    common::sh_ok(&["kill", "-STOP", &pm.to_string()]);
    let t = Instant::now();
    let r = act(
        &c,
        "stop",
        &[("stop_escalate", "1")],
        &[("OCF_RESKEY_CRM_meta_timeout", "8000"), ("HA_debug", "1")],
    );
    let took = t.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(r.stderr.contains("immediate shutdown"), "{}", r.stderr);
    assert!(r.stderr.contains("SIGKILL"), "{}", r.stderr);
    assert!(postgres_processes_under(&c.dir).is_empty());
    // And the next start recovers.
    let r = act(&c, "start", &[], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
}

#[test]
fn bad_input_gives_reasons_and_codes_and_touches_no_data() {
    common::require_root();
    let c = PgCluster::new(7);
    let before = std::fs::read_dir(c.data()).unwrap().count();
    let check = |over: &[(&str, &str)], action: &str, code: i32, words: &str| {
        let r = if action == "probe" {
            act(
                &c,
                "monitor",
                over,
                &[("OCF_RESKEY_CRM_meta_interval", "0")],
            )
        } else {
            act(&c, action, over, &[])
        };
        assert_eq!(r.code, code, "{action} {over:?}: {r:?}");
        if !words.is_empty() {
            let reason = r.exit_reason().unwrap_or_default();
            assert!(reason.contains(words), "{action} {over:?}: {reason:?}");
        }
    };
    let missing = "/tmp/pgst-pg-7/nonexistent";
    check(
        &[("bindir", "/tmp/pgst-pg-7/nobin")],
        "start",
        5,
        "nobin/postgres",
    );
    check(
        &[("bindir", "/tmp/pgst-pg-7/nobin")],
        "validate-all",
        5,
        "not executable",
    );
    check(&[("pgdata", missing)], "probe", 7, "does not exist");
    check(&[("pgdata", missing)], "start", 5, missing);
    check(
        &[("pgdata", "/tmp/pgst-pg-7/sock")],
        "probe",
        7,
        "not a PostgreSQL data directory",
    );
    check(
        &[("pgdata", "/tmp/pgst-pg-7/sock")],
        "start",
        5,
        "not a PostgreSQL data directory",
    );
    check(
        &[("system_user", "pgst-pg-nosuchuser")],
        "start",
        5,
        "does not exist",
    );
    check(&[("system_user", "root")], "start", 4, "root");
    check(&[("pgdata", "relative")], "start", 6, "pgdata");
    check(
        &[("expected_mount", "/tmp/pgst-pg-7/not-a-mount")],
        "start",
        5,
        "expected_mount",
    );
    std::fs::create_dir_all("/tmp/pgst-pg-7/rootsock").unwrap();
    check(
        &[("socketdir", "/tmp/pgst-pg-7/rootsock")],
        "start",
        5,
        "not writable",
    );
    assert!(postgres_processes_under(&c.dir).is_empty());
    assert_eq!(
        std::fs::read_dir(c.data()).unwrap().count(),
        before,
        "data touched"
    );
    // A server that refuses its options: the reason quotes the server's log.
    check(
        &[("start_opts", "-c pgst_no_such_setting=1")],
        "start",
        1,
        "pgst_no_such_setting",
    );
    assert!(postgres_processes_under(&c.dir).is_empty());

    // A port held by another server: refused with a reason, the other server untouched.
    let other = PgCluster::new(8);
    assert_eq!(act(&other, "start", &[], &[]).code, 0);
    let other_pm = other.pidfile_pid().unwrap();
    let p8 = other.port_s();
    let s8 = other.sock().display().to_string();
    check(&[("pgport", &p8), ("socketdir", &s8)], "start", 1, "in use");
    assert!(alive(other_pm));
    assert_eq!(act(&other, "monitor", &[], &[]).code, 0);
    assert_eq!(act(&other, "stop", &[], &[]).code, 0);
    assert!(postgres_processes_under(&c.dir).is_empty());
}

#[test]
fn monitor_authenticates_by_peer_or_by_password_file() {
    common::require_root();
    let c = PgCluster::with_auth(9, "peer");
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    // Peer authentication: root cannot connect as postgres, the monitor (root, taking the
    // system user's identity for the connection) can.
    let sock = c.sock().display().to_string();
    let port = c.port_s();
    let out = common::run(
        &[
            "psql", "-X", "-h", &sock, "-p", &port, "-U", "postgres", "-d", "postgres", "-c",
            "select 1",
        ],
        &[],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Peer authentication failed"));
    let r = act(&c, "monitor", &[], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    // A password user, checked by scram ahead of the peer rule.
    assert!(
        c.psql("create role pgst_mon login password 'pgst-secret'")
            .0
    );
    let hba = c.data().join("pg_hba.conf");
    let old = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("local all pgst_mon scram-sha-256\n{old}")).unwrap();
    assert_eq!(act(&c, "reload", &[], &[]).code, 0);
    let good = c.dir.join("monpass");
    std::fs::write(&good, "pgst-secret\n").unwrap();
    let bad = c.dir.join("badpass");
    std::fs::write(&bad, "wrong\n").unwrap();
    let (g, b) = (good.display().to_string(), bad.display().to_string());
    std::thread::sleep(Duration::from_millis(300));
    let r = act(
        &c,
        "monitor",
        &[("monitor_user", "pgst_mon"), ("monitor_password_file", &g)],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = act(
        &c,
        "monitor",
        &[("monitor_user", "pgst_mon"), ("monitor_password_file", &b)],
        &[],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.exit_reason()
            .unwrap_or_default()
            .contains("authentication"),
        "{r:?}"
    );
    // A statement that outlives the deadline ends at it, not later.
    let t = Instant::now();
    let r = act(
        &c,
        "monitor",
        &[("monitor_sql", "select pg_sleep(30)")],
        &[("OCF_RESKEY_CRM_meta_timeout", "2000")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
}

#[test]
fn expected_mount_accepts_the_mount_point_or_device_of_the_data() {
    common::require_root();
    let c = PgCluster::new(10);
    let data = c.data().display().to_string();
    let target = common::sh_ok(&["findmnt", "-n", "-o", "TARGET", "-T", &data]);
    let source = common::sh_ok(&["findmnt", "-n", "-o", "SOURCE", "-T", &data]);
    let r = act(&c, "start", &[("expected_mount", target.trim())], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
    // findmnt shows a bind mount's source as "device[root path]": the device is the part
    // before the bracket.
    let device = source.trim().split('[').next().unwrap_or("");
    if device.starts_with("/dev/") {
        let r = act(&c, "start", &[("expected_mount", device)], &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(act(&c, "stop", &[], &[]).code, 0);
    }
}

#[test]
fn deep_monitor_cross_checks_pg_controldata_and_a_standby_is_degraded() {
    common::require_root();
    let c = PgCluster::new(11);
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    let r = act(&c, "monitor", &[], &[("OCF_CHECK_LEVEL", "10")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
    // A data directory with standby.signal comes up in recovery: not what this mode runs.
    let sig = c.data().join("standby.signal");
    std::fs::write(&sig, "").unwrap();
    common::sh_ok(&["chown", "postgres:postgres", sig.to_str().unwrap()]);
    assert_eq!(act(&c, "start", &[], &[]).code, 0);
    for level in ["0", "10"] {
        let r = act(&c, "monitor", &[], &[("OCF_CHECK_LEVEL", level)]);
        assert_eq!(r.code, 190, "depth {level}: {r:?}");
        assert!(
            r.exit_reason().unwrap_or_default().contains("standby"),
            "{r:?}"
        );
    }
    assert_eq!(act(&c, "stop", &[], &[]).code, 0);
}
