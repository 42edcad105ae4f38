//! The election's and the rejoin's readings on real PostgreSQL 15: a primary and a
//! `pg_basebackup` standby streaming over the primary's unix socket, positions and
//! `pg_stat_replication` read from both, the switchover check after a clean stop of the
//! primary, a deliberately forked pair (the standby promoted while the primary keeps
//! writing) found diverged, rejoined with pg_rewind when wal_log_hints is on, refused
//! without it, and copied with `pgstack pg rejoin` keeping the old directory aside.
//! Root only (the servers run as postgres).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::pg::{PgCluster, BINDIR};
use pgstack::agents::postgresql::election::{self, LagPolicy, Position, Switchover};
use pgstack::agents::postgresql::rejoin::{self, Divergence, RejoinError, Rejoined, Tools};
use pgstack::ocf::deadline::Deadline;
use pgstack::sys::pg::client::Probe;
use pgstack::sys::pg::wal::{self, RealWal};
use pgstack::sys::runner::Credentials;

fn creds() -> Credentials {
    Credentials::of_user("postgres").unwrap().unwrap()
}

fn pg_ctl(c: &PgCluster, args: &[&str]) -> std::process::Output {
    let data = c.data();
    let mut argv = vec![
        "runuser".to_string(),
        "-u".into(),
        "postgres".into(),
        "--".into(),
        format!("{BINDIR}/pg_ctl"),
        "-D".into(),
        data.display().to_string(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let v: Vec<&str> = argv.iter().map(String::as_str).collect();
    common::run(&v, &[], Duration::from_secs(90))
}

/// Starts the server on its port and socket, no TCP, with `extra` settings.
fn start(c: &PgCluster, name: &str, extra: &str) {
    let opts = format!(
        "-p {} -k {} -c listen_addresses='' -c cluster_name={name} {extra}",
        c.port,
        c.sock().display()
    );
    let out = pg_ctl(
        c,
        &[
            "-l",
            c.log().to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "-o",
            &opts,
            "start",
        ],
    );
    assert!(
        out.status.success(),
        "starting {name}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(c.log()).unwrap_or_default()
    );
}

fn stop(c: &PgCluster) {
    let out = pg_ctl(c, &["-m", "fast", "-w", "-t", "60", "stop"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn conninfo(c: &PgCluster) -> String {
    format!("host={} port={} user=postgres", c.sock().display(), c.port)
}

/// A standby of `primary` in /tmp/pgst-pg-<n>, copied with pg_basebackup -R.
fn standby_of(n: u16, primary: &PgCluster) -> PgCluster {
    let dir = PathBuf::from(format!("/tmp/pgst-pg-{n}"));
    let c = PgCluster {
        n,
        dir: dir.clone(),
        port: 56400 + n,
    };
    c.kill_all();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sock")).unwrap();
    common::sh_ok(&["chown", "-R", "postgres:postgres", dir.to_str().unwrap()]);
    common::sh_ok(&["chmod", "0755", dir.to_str().unwrap()]);
    let out = common::run(
        &[
            "runuser",
            "-u",
            "postgres",
            "--",
            &format!("{BINDIR}/pg_basebackup"),
            "-D",
            c.data().to_str().unwrap(),
            "-d",
            &conninfo(primary),
            "-X",
            "stream",
            "-c",
            "fast",
            "-R",
        ],
        &[],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c
}

fn probe(c: &PgCluster) -> Probe {
    Probe {
        host: c.sock().display().to_string(),
        port: c.port,
        user: "postgres".into(),
        password: None,
        dbname: "postgres".into(),
        sql: String::new(),
        connect_timeout: Duration::from_secs(5),
        as_uid: None,
    }
}

fn deadline() -> Deadline {
    Deadline::from_timeout(Duration::from_secs(60))
}

fn sql(c: &PgCluster, q: &str) -> String {
    let (ok, out) = c.psql(q);
    assert!(ok, "{q}: {out}");
    out
}

fn lsn(c: &PgCluster, q: &str) -> wal::Lsn {
    wal::Lsn::parse(&sql(c, q)).unwrap()
}

/// Waits until the standby replayed what the primary flushed.
fn caught_up(p: &PgCluster, s: &PgCluster) {
    let target = lsn(p, "select pg_current_wal_flush_lsn()");
    common::wait_for("the standby to replay", Duration::from_secs(30), || {
        wal::Lsn::parse(&s.psql("select pg_last_wal_replay_lsn()").1).is_some_and(|l| l >= target)
    });
}

/// A primary (wal_log_hints as asked) and its streaming standby, both running, with
/// a table written and replayed.
fn pair(n: u16, hints: bool) -> (PgCluster, PgCluster) {
    let p = PgCluster::new(n);
    // pg_rewind reads the target's WAL back to the last checkpoint before the fork:
    // keep it (a production setup keeps it with wal_keep_size or a restore_command).
    // In postgresql.conf, not on the command line: pg_rewind's crash recovery of a
    // crashed target runs the server with the configuration files only.
    if hints {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(p.data().join("postgresql.conf"))
            .unwrap();
        writeln!(f, "wal_log_hints = on\nwal_keep_size = 128MB").unwrap();
    }
    let extra = "";
    start(&p, "pgst-n1", extra);
    sql(&p, "create table t (i int); insert into t values (1)");
    let s = standby_of(n + 1, &p);
    start(&s, "pgst-n2", extra);
    common::wait_for("the standby to stream", Duration::from_secs(30), || {
        p.psql("select count(*) from pg_stat_replication where state = 'streaming'")
            .1
            == "1"
    });
    caught_up(&p, &s);
    (p, s)
}

fn tools<'a>(data: &'a Path, primary: &'a str, cr: &'a Credentials) -> Tools<'a> {
    Tools {
        bindir: Path::new(BINDIR),
        datadir: data,
        conninfo: primary,
        creds: cr,
    }
}

/// Promotes the standby while the primary keeps running, then writes on both.
fn fork(p: &PgCluster, s: &PgCluster) {
    let out = pg_ctl(s, &["-w", "-t", "60", "promote"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sql(s, "insert into t select generate_series(1, 1000)");
    sql(
        p,
        "insert into t select generate_series(1, 5000); checkpoint",
    );
    sql(s, "checkpoint");
}

#[test]
fn positions_scores_and_the_switchover_check_on_a_real_pair() {
    common::require_root();
    let (p, s) = pair(170, false);
    let d = deadline();
    let rp = election::read_position(&RealWal, &probe(&p), &d).unwrap();
    let flushed = lsn(&p, "select pg_current_wal_flush_lsn()");
    assert!(rp.primary);
    assert_eq!(rp.position.timeline, 1);
    assert!(
        rp.position.lsn <= flushed && rp.position.lsn.0 > 0,
        "{rp:?}"
    );
    let rs = election::read_position(&RealWal, &probe(&s), &d).unwrap();
    assert!(!rs.primary && rs.streaming && rs.consistent, "{rs:?}");
    assert_eq!(rs.position.timeline, 1);
    assert!(rs.position.lsn >= rp.position.lsn, "{rs:?} vs {rp:?}");
    // The attribute form goes and comes back.
    assert_eq!(Position::parse(&rs.position.to_string()), Some(rs.position));

    let rows = wal::replicas(&probe(&p), d.instant()).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].application_name, "pgst-n2");
    assert_eq!(rows[0].state, "streaming");
    let part = vec!["pgst-n1".to_string(), "pgst-n2".to_string()];
    let plan = election::plan_scores(
        "pgst-n1",
        &rows,
        &part,
        &[],
        &Default::default(),
        LagPolicy::default(),
    );
    let score = |n: &str| plan.iter().find(|c| c.node == n).and_then(|c| c.to);
    assert_eq!(score("pgst-n1"), Some(1001));
    assert_eq!(score("pgst-n2"), Some(1000));

    // A planned switchover: the primary stops cleanly, the standby checks it received
    // the shutdown checkpoint.
    stop(&p);
    let t = Instant::now();
    let v = election::check_switchover(
        &RealWal,
        &probe(&s),
        Path::new(BINDIR),
        &s.data(),
        &creds(),
        &d,
    );
    let took = t.elapsed();
    assert!(matches!(v, Switchover::Safe { .. }), "{v:?}");
    eprintln!("switchover check: {} in {took:?}", v.describe());

    // Promoted after that, the new primary's old primary follows it: nothing diverged.
    let out = pg_ctl(&s, &["-w", "-t", "60", "promote"]);
    assert!(out.status.success());
    sql(&s, "insert into t values (2)");
    let cr = creds();
    let ci = conninfo(&s);
    let data = p.data();
    let d = rejoin::check(&RealWal, &tools(&data, &ci, &cr), deadline().instant()).unwrap();
    assert!(d.follows(), "{d:?}");
    assert!(matches!(
        rejoin::guard(&RealWal, &tools(&data, &ci, &cr), deadline().instant()).unwrap(),
        rejoin::Guard::Follows
    ));
}

#[test]
fn a_forked_pair_is_refused_then_rejoined_with_pg_rewind() {
    common::require_root();
    let (p, s) = pair(172, true);
    fork(&p, &s);
    stop(&p);
    let cr = creds();
    let ci = conninfo(&s);
    let data = p.data();
    let t = tools(&data, &ci, &cr);
    let d = rejoin::check(&RealWal, &t, deadline().instant()).unwrap();
    assert!(
        matches!(
            d,
            Divergence::Diverged {
                timeline: 1,
                primary_timeline: 2,
                ..
            }
        ),
        "{d:?}"
    );
    let rejoin::Guard::Diverged(why) = rejoin::guard(&RealWal, &t, deadline().instant()).unwrap()
    else {
        panic!("a diverged instance is refused");
    };
    assert!(why.contains("diverged"), "{why}");

    let started = Instant::now();
    let r = rejoin::rejoin(&RealWal, &t, true, false, deadline().instant()).unwrap();
    eprintln!("pg_rewind rejoin took {:?}", started.elapsed());
    assert!(matches!(r, Rejoined::Rewound(_)), "{r:?}");
    assert!(data.join("standby.signal").exists());
    // It starts as a standby of the new primary and has the new primary's rows.
    start(&p, "pgst-n1", "");
    assert_eq!(sql(&p, "select pg_is_in_recovery()"), "t");
    caught_up(&s, &p);
    assert_eq!(
        sql(&p, "select count(*) from t"),
        sql(&s, "select count(*) from t")
    );
    stop(&p);
    let d = rejoin::check(&RealWal, &t, deadline().instant()).unwrap();
    assert!(d.follows(), "{d:?}");
}

#[test]
fn without_wal_log_hints_rewind_is_refused_and_the_copy_keeps_the_old_directory() {
    common::require_root();
    let (p, s) = pair(174, false);
    fork(&p, &s);
    stop(&p);
    let cr = creds();
    let ci = conninfo(&s);
    let data = p.data();
    let t = tools(&data, &ci, &cr);
    let e = rejoin::rejoin(&RealWal, &t, true, false, deadline().instant()).unwrap_err();
    assert!(matches!(e, RejoinError::RewindImpossible { .. }), "{e}");
    assert!(
        !data.join("standby.signal").exists(),
        "refused means untouched"
    );

    // The operator command copies the primary and keeps the old directory aside.
    let out = common::run(
        &[
            &common::bin(),
            "pg",
            "rejoin",
            "--pgdata",
            data.to_str().unwrap(),
            "--primary-conninfo",
            &ci,
        ],
        &[],
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let aside = PathBuf::from(format!("{}.diverged.1", data.display()));
    assert!(text.contains(aside.to_str().unwrap()), "{text}");
    assert!(
        aside.join("PG_VERSION").exists(),
        "the old directory is kept"
    );
    assert!(data.join("standby.signal").exists());
    start(&p, "pgst-n1", "");
    assert_eq!(sql(&p, "select pg_is_in_recovery()"), "t");
    caught_up(&s, &p);
    assert_eq!(
        sql(&p, "select count(*) from t"),
        sql(&s, "select count(*) from t")
    );
    // `pgstack pg diverged` agrees once it is stopped again.
    stop(&p);
    let out = common::run(
        &[
            &common::bin(),
            "pg",
            "diverged",
            "--pgdata",
            data.to_str().unwrap(),
            "--primary-conninfo",
            &ci,
        ],
        &[],
        Duration::from_secs(60),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_crashed_forked_primary_is_found_diverged_from_its_own_wal_and_rewound() {
    common::require_root();
    let (p, s) = pair(176, true);
    fork(&p, &s);
    // A crash: its last checkpoint may lie before the fork; its WAL goes on past it.
    p.kill_all();
    common::wait_for("the old primary to die", Duration::from_secs(10), || {
        common::pg::postgres_processes_under(&p.dir).is_empty()
    });
    let cr = creds();
    let ci = conninfo(&s);
    let data = p.data();
    let t = tools(&data, &ci, &cr);
    let d = rejoin::check(&RealWal, &t, deadline().instant()).unwrap();
    assert!(
        matches!(d, Divergence::Diverged { timeline: 1, .. }),
        "{d:?}"
    );
    let r = rejoin::rejoin(&RealWal, &t, true, false, deadline().instant()).unwrap();
    assert!(matches!(r, Rejoined::Rewound(_)), "{r:?}");
    start(&p, "pgst-n1", "");
    assert_eq!(sql(&p, "select pg_is_in_recovery()"), "t");
    caught_up(&s, &p);
    assert_eq!(
        sql(&p, "select count(*) from t"),
        sql(&s, "select count(*) from t")
    );
}

/// `maxlag_time`'s input from a real primary: a standby applying WAL 3 s late
/// (recovery_min_apply_delay) shows a replay_lag of seconds while WAL keeps coming, and
/// the scores negate it beyond the limit. Then the primary stops with an immediate
/// shutdown (no shutdown checkpoint): the standby's switchover check finds the
/// switchover unsafe, the verdict on which the promote of that transition fails.
#[test]
fn replay_lag_in_seconds_and_an_unsafe_switchover_on_a_real_pair() {
    common::require_root();
    let (p, s) = pair(186, false);
    let d = deadline();
    // Every record applied 3 s after its commit: replay_lag shows about 3 s while WAL
    // keeps coming (an idle, caught-up standby reports none).
    sql(&s, "alter system set recovery_min_apply_delay = '3s'");
    sql(&s, "select pg_reload_conf()");
    let mut rows = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        sql(&p, "insert into t values (4)");
        rows = wal::replicas(&probe(&p), d.instant()).unwrap();
        if rows
            .first()
            .and_then(|r| r.lag.replay_s)
            .is_some_and(|l| l >= 2.0)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let lag = rows.first().and_then(|r| r.lag.replay_s);
    eprintln!("replay_lag with recovery_min_apply_delay 3 s: {lag:?}");
    assert!(lag.is_some_and(|l| l >= 2.0), "{rows:?}");
    let part = vec!["pgst-n1".to_string(), "pgst-n2".to_string()];
    let score = |max: f64| {
        let plan = election::plan_scores(
            "pgst-n1",
            &rows,
            &part,
            &[],
            &Default::default(),
            LagPolicy {
                max_bytes: 0,
                max_seconds: Some(max),
            },
        );
        plan.iter().find(|c| c.node == "pgst-n2").and_then(|c| c.to)
    };
    assert_eq!(score(1.0), Some(-1000));
    assert_eq!(score(3600.0), Some(1000));

    sql(&s, "alter system reset recovery_min_apply_delay");
    sql(&s, "select pg_reload_conf()");
    caught_up(&p, &s);
    let out = pg_ctl(&p, &["-m", "immediate", "-w", "-t", "60", "stop"]);
    assert!(out.status.success());
    let v = election::check_switchover(
        &RealWal,
        &probe(&s),
        Path::new(BINDIR),
        &s.data(),
        &creds(),
        &d,
    );
    eprintln!("after an immediate stop: {}", v.describe());
    assert!(matches!(v, Switchover::Unsafe { .. }), "{v:?}");
}
