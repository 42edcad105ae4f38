//! The replication mode's decisions against the recording fake.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::super::replication_setup::wanted_sync_names;
use super::*;
use crate::ocf::deadline::Deadline;
use crate::ocf::env::OcfEnv;
use crate::ocf::log::Logger;
use crate::ocf::params::Params;
use crate::ocf::{ExitCode, OcfCode};
use crate::sys::attrd::fake::FakeAttrd;
use crate::sys::pg::client::ProbeError;
use crate::sys::pg::fake::{FakePg, SqlFn, SPAWNED};
use crate::sys::pg::wal::fake::FakeWal;
use crate::sys::pg::wal::{Lag, Lsn, Reached, Replica};

const BASE: &[(&str, &str)] = &[
    ("OCF_RESKEY_pgdata", "/srv/pgst-pg"),
    ("OCF_RESKEY_system_user", "nobody"),
    ("OCF_RESKEY_mode", "replication"),
    ("OCF_RESKEY_master_ip", "10.99.0.50"),
    ("OCF_RESOURCE_INSTANCE", "pgsqld:0"),
];

fn env(extra: &[(&str, &str)]) -> OcfEnv {
    let mut m: BTreeMap<String, String> = BASE
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.retain(|_, v| !v.is_empty());
    OcfEnv::from_map(m)
}

fn cfg_of(e: &OcfEnv) -> PgConfig {
    let mut c =
        super::super::configure(&Params::parse(super::super::INFO.params, e).unwrap()).unwrap();
    c.replication = selected(&c, e);
    c.repl.node = "pgst-node1".into();
    c
}

fn with<T>(extra: &[(&str, &str)], action: Action, f: impl FnOnce(&PgConfig, &Ctx) -> T) -> T {
    let e = env(extra);
    let log = Logger::silent();
    let ctx = Ctx {
        env: &e,
        action,
        deadline: Deadline::from_timeout(Duration::from_secs(5)),
        log: &log,
    };
    f(&cfg_of(&e), &ctx)
}

fn rows(v: &[&[Option<&str>]]) -> Rows {
    v.iter()
        .map(|r| r.iter().map(|c| c.map(str::to_string)).collect())
        .collect()
}

/// A server answering as a primary (`primary`) or a streaming standby.
fn answers(primary: bool) -> SqlFn {
    Box::new(move |s: &str| {
        Ok(if s.starts_with("select pg_is_in_recovery(), ") {
            if primary {
                rows(&[&[Some("f"), None]])
            } else {
                rows(&[&[Some("t"), Some("streaming")]])
            }
        } else if s.starts_with("select application_name") && primary {
            rows(&[
                &[Some("pgst-node3"), Some("streaming"), Some("4096")],
                &[Some("pgst-node2"), Some("streaming"), Some("0")],
            ])
        } else if s.starts_with("select pg_promote") {
            rows(&[&[Some("t")]])
        } else if s == "select pg_is_in_recovery()" {
            rows(&[&[Some("f")]])
        } else {
            Vec::new()
        })
    })
}

fn replica(name: &str, state: &str, write: u64) -> Replica {
    Replica {
        application_name: name.into(),
        state: state.into(),
        sync_state: "async".into(),
        reached: Reached {
            write: Some(Lsn(write)),
            flush: Some(Lsn(write)),
            replay: Some(Lsn(write)),
        },
        lag: Lag {
            bytes: Some(0),
            replay_s: None,
        },
    }
}

/// A three-node partition seen from pgst-node1, whose primary sees both standbys.
fn cluster() -> (FakeAttrd, FakeWal) {
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2", "pgst-node3"]);
    let w = FakeWal {
        replicas: vec![
            replica("pgst-node3", "streaming", 4096),
            replica("pgst-node2", "streaming", 8192),
        ],
        ..FakeWal::default()
    };
    (a, w)
}

fn peers<'a>(a: &'a FakeAttrd, w: &'a FakeWal) -> Peers<'a> {
    Peers { attrd: a, wal: w }
}

fn stopped(state: ClusterState) -> FakePg {
    FakePg {
        datadir: (true, true),
        state: Some(state),
        ..FakePg::default()
    }
}

fn running(primary: bool) -> FakePg {
    let mut os = stopped(ClusterState::InProduction);
    os.pidfile = Some(PostmasterPid::parse(
        "4242\n/srv/pgst-pg\n1\n5432\n/run/pgst-pg\n\n1 2\nready\n",
    ));
    os.postmaster = Some(4242);
    os.processes = vec![4243];
    os.obeys = vec![Signal::SIGINT];
    os.sql = Some(answers(primary));
    os
}

/// A running standby that streams nothing: its WAL receiver is absent (`None`) or in
/// `receiver` state, and it answers no other query.
fn standby_without_stream(receiver: Option<&'static str>) -> FakePg {
    let mut os = running(false);
    os.sql = Some(Box::new(move |s: &str| {
        Ok(if s.starts_with("select pg_is_in_recovery(), ") {
            rows(&[&[Some("t"), receiver]])
        } else {
            Vec::new()
        })
    }));
    os
}

#[test]
fn the_mode_comes_from_the_clone_meta_and_mode_overrides_it() {
    let c = cfg_of(&env(&[("OCF_RESKEY_mode", "")]));
    assert!(!c.replication);
    let c = cfg_of(&env(&[
        ("OCF_RESKEY_mode", ""),
        ("OCF_RESKEY_CRM_meta_promotable", "true"),
    ]));
    assert!(c.replication);
    let c = cfg_of(&env(&[
        ("OCF_RESKEY_mode", ""),
        ("OCF_RESKEY_rep_mode", "async"),
    ]));
    assert!(c.replication);
    let c = cfg_of(&env(&[
        ("OCF_RESKEY_mode", "single"),
        ("OCF_RESKEY_CRM_meta_promotable", "true"),
    ]));
    assert!(!c.replication);
    // What Pacemaker 2.1 passes a promotable clone's instance without a `promotable`
    // meta attribute of its own: the promoted-instance counts.
    for count in [
        "OCF_RESKEY_CRM_meta_promoted_max",
        "OCF_RESKEY_CRM_meta_master_max",
    ] {
        let c = cfg_of(&env(&[("OCF_RESKEY_mode", ""), (count, "1")]));
        assert!(c.replication, "{count}");
    }
}

#[test]
fn start_writes_the_agents_file_and_standby_signal_then_starts_with_that_file() {
    let os = stopped(ClusterState::ShutDownInRecovery);
    let (a, w) = cluster();
    with(&[], Action::Start, |c, ctx| {
        start(&os, &peers(&a, &w), c, ctx)
    })
    .unwrap();
    assert_eq!(
        os.calls(),
        [
            "write pgstack-replication.conf",
            "write standby.signal",
            "spawn"
        ]
    );
    let spec = os.started.borrow().clone().unwrap();
    assert_eq!(
        spec.config_file.as_deref(),
        Some(Path::new("/srv/pgst-pg/pgstack-replication.conf"))
    );
    let conf = os.written.borrow()["pgstack-replication.conf"].clone();
    let lines: Vec<&str> = conf.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            // A default before the include: the user's configuration overrides it.
            "wal_retrieve_retry_interval = '1s'",
            "include '/srv/pgst-pg/postgresql.conf'",
            "primary_conninfo = 'host=10.99.0.50 port=5432 user=postgres application_name=pgst-node1'",
            "recovery_target_timeline = 'latest'",
        ]
    );
    // A primary's port and further options; quotes are doubled for the file.
    let c = with(
        &[
            (
                "OCF_RESKEY_primary_conninfo_opt",
                "port=5433 keepalives_idle=60",
            ),
            ("OCF_RESKEY_config", "/etc/pgst-pg/it's.conf"),
        ],
        Action::Start,
        |c, _| own_conf(c).unwrap(),
    );
    assert!(c.contains("include '/etc/pgst-pg/it''s.conf'\n"), "{c}");
    assert!(
        c.contains("application_name=pgst-node1 port=5433 keepalives_idle=60'"),
        "{c}"
    );
}

#[test]
fn a_running_server_is_not_restarted_by_start() {
    let os = running(true);
    let (a, w) = cluster();
    with(&[], Action::Start, |c, ctx| {
        start(&os, &peers(&a, &w), c, ctx)
    })
    .unwrap();
    assert!(os.calls().is_empty(), "{:?}", os.calls());
    // A cleanly shut down primary's first start takes 1 when nobody has a score.
    let os = stopped(ClusterState::ShutDown);
    with(&[], Action::Start, |c, ctx| {
        start(&os, &peers(&a, &w), c, ctx)
    })
    .unwrap();
    assert_eq!(a.score_of("pgsqld", "pgst-node1"), Some(1));
}

#[test]
fn promote_signals_pg_promote_and_asks_until_recovery_ended() {
    let os = running(false);
    let (a, w) = cluster();
    let cl = peers(&a, &w);
    with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).unwrap();
    let calls = os.calls();
    let at = calls
        .iter()
        .position(|c| c == "sql select pg_promote(false)")
        .unwrap();
    assert_eq!(calls[at + 1], "sql select pg_is_in_recovery()", "{calls:?}");
    assert!(calls
        .iter()
        .any(|c| c.starts_with("sql select pg_is_in_recovery(), ")));
    assert_eq!(a.score_of("pgsqld", "pgst-node1"), Some(1001));
    // A hot standby's pid file says `standby`: promoted without asking its role first.
    let mut os = running(false);
    os.pidfile = Some(PostmasterPid::parse(
        "4242\n/srv/pgst-pg\n1\n5432\n/run/pgst-pg\n\n1 2\nstandby\n",
    ));
    with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).unwrap();
    let calls = os.calls();
    assert!(
        calls.contains(&"sql select pg_promote(false)".to_string()),
        "{calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("sql select pg_is_in_recovery(), ")),
        "{calls:?}"
    );
    // A standby whose pg_promote and recovery check answer `answer`: the promote's error.
    let promote_error = |answer: &'static str| {
        let mut os = running(false);
        os.sql = Some(Box::new(move |s: &str| {
            Ok(if s.starts_with("select pg_is_in_recovery(), ") {
                rows(&[&[Some("t"), None]])
            } else {
                rows(&[&[Some(answer)]])
            })
        }));
        with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).unwrap_err()
    };
    // Recovery did not end before the deadline: a failure, never a success. The score
    // was written as soon as the promotion was signalled (it cannot be taken back).
    a.put_score("pgsqld", "pgst-node1", 5);
    let e = promote_error("t");
    assert_eq!(e.code(), OcfCode::ErrGeneric);
    assert!(e.to_string().contains("not promoted"), "{e}");
    assert!(e.to_string().contains("still in recovery: true"), "{e}");
    assert_eq!(a.score_of("pgsqld", "pgst-node1"), Some(1001));
    // The signal was refused (pg_promote answered false, so recovery's end is never
    // reached): a failure too, and the score stays what it was.
    a.put_score("pgsqld", "pgst-node1", 5);
    let e = promote_error("f");
    assert!(e.to_string().contains("not signalled"), "{e}");
    assert_eq!(a.score_of("pgsqld", "pgst-node1"), Some(5));
    // Nothing to promote.
    let os = stopped(ClusterState::ShutDown);
    assert!(with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).is_err());
    // A primary is promoted already: no pg_promote.
    let os = running(true);
    with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).unwrap();
    assert!(!os.calls().iter().any(|c| c.contains("pg_promote")));
}

#[test]
fn demote_stops_a_primary_fast_and_starts_it_as_a_standby() {
    let os = running(true);
    let (a, w) = cluster();
    let p = peers(&a, &w);
    with(&[], Action::Demote, |c, ctx| demote(&os, &p, c, ctx)).unwrap();
    let calls: Vec<String> = os
        .calls()
        .into_iter()
        .filter(|c| !c.starts_with("sql "))
        .collect();
    assert_eq!(
        calls,
        [
            "SIGINT 4242",
            "write pgstack-replication.conf",
            "write standby.signal",
            // The fake's pid file outlives its postmaster (a real one removes it).
            "set aside postmaster.pid",
            "spawn"
        ]
    );
    assert!(os.is_postmaster(Path::new("/srv/pgst-pg"), SPAWNED));
    // A standby, or nothing at all, is demoted already.
    let os = running(false);
    with(&[], Action::Demote, |c, ctx| demote(&os, &p, c, ctx)).unwrap();
    assert!(os.calls().iter().all(|c| c.starts_with("sql ")));
    let os = stopped(ClusterState::ShutDown);
    with(&[], Action::Demote, |c, ctx| demote(&os, &p, c, ctx)).unwrap();
    assert!(os.calls().is_empty());
}

fn monitor_code(os: &FakePg, extra: &[(&str, &str)]) -> (OcfCode, FakeAttrd) {
    let (a, w) = cluster();
    let cl = peers(&a, &w);
    let code = with(extra, Action::Monitor, |c, ctx| {
        match monitor(os, &cl, c, ctx) {
            Ok(Status::Promoted) => OcfCode::RunningPromoted,
            Ok(Status::Running) => OcfCode::Success,
            Ok(Status::NotRunning(_)) => OcfCode::NotRunning,
            Ok(Status::Degraded(_)) => OcfCode::Degraded,
            Ok(other) => panic!("{other:?}"),
            Err(e) => e.code(),
        }
    });
    (code, a)
}

#[test]
fn monitor_maps_primary_8_standby_0_stopped_7_crashed_primary_9_when_expected() {
    let interval = ("OCF_RESKEY_CRM_meta_interval", "15000");
    let (code, cl) = monitor_code(&running(true), &[interval]);
    assert_eq!(code, OcfCode::RunningPromoted);
    // The primary scores itself and the standbys it sees, by position.
    assert_eq!(cl.score_of("pgsqld", "pgst-node1"), Some(1001));
    assert_eq!(cl.score_of("pgsqld", "pgst-node2"), Some(1000));
    assert_eq!(cl.score_of("pgsqld", "pgst-node3"), Some(990));
    assert_eq!(
        monitor_code(&running(false), &[interval]).0,
        OcfCode::Success
    );
    let os = stopped(ClusterState::ShutDown);
    assert_eq!(monitor_code(&os, &[interval]).0, OcfCode::NotRunning);
    let promoted = ("OCF_RESKEY_CRM_meta_role", "Promoted");
    assert_eq!(
        monitor_code(&os, &[interval, promoted]).0,
        OcfCode::NotRunning
    );
    // Crashed (no postmaster, "in production"): 9 only when expected promoted.
    let mut os = stopped(ClusterState::InProduction);
    os.processes = vec![11];
    assert_eq!(
        monitor_code(&os, &[interval, promoted]).0,
        OcfCode::FailedPromoted
    );
    assert_eq!(
        monitor_code(&os, &[interval, ("OCF_RESKEY_CRM_meta_role", "Master")]).0,
        OcfCode::FailedPromoted
    );
    assert_eq!(monitor_code(&os, &[interval]).0, OcfCode::NotRunning);
    // A crashed standby is not a failed primary.
    let os = stopped(ClusterState::InArchiveRecovery);
    assert_eq!(
        monitor_code(&os, &[interval, promoted]).0,
        OcfCode::NotRunning
    );
}

#[test]
fn a_standby_that_does_not_stream_is_running() {
    let os = standby_without_stream(None);
    let (code, cl) = monitor_code(&os, &[]);
    assert_eq!(code, OcfCode::Success);
    // Three nodes: the two-node rule does not apply, no score is set.
    assert_eq!(cl.score_of("pgsqld", "pgst-node1"), None);
    // No primary anywhere: the recurring monitor answers 0 too.
    let interval = ("OCF_RESKEY_CRM_meta_interval", "16000");
    assert_eq!(monitor_code(&os, &[interval]).0, OcfCode::Success);
    // A server that does not answer is an error, not "stopped".
    let mut os = running(false);
    os.sql = Some(Box::new(|_: &str| {
        Err(ProbeError::Connect {
            target: "/run/pgst-pg/.s.PGSQL.5432".into(),
            msg: "refused".into(),
        })
    }));
    assert_eq!(monitor_code(&os, &[]).0, OcfCode::ErrGeneric);
}

fn validate_code(extra: &[(&str, &str)]) -> Result<(), OcfError> {
    let os = stopped(ClusterState::ShutDown);
    with(extra, Action::ValidateAll, |c, ctx| validate(&os, c, ctx))
}

#[test]
fn validate_refuses_wrong_clone_meta_and_missing_primary_settings() {
    let clone = [
        ("OCF_RESKEY_CRM_meta_clone_max", "2"),
        ("OCF_RESKEY_CRM_meta_notify", "true"),
        ("OCF_RESKEY_CRM_meta_promotable", "true"),
        ("OCF_RESKEY_CRM_meta_promoted_max", "1"),
    ];
    validate_code(&clone).unwrap();
    let with_one = |k: &'static str, v: &'static str| {
        let mut e: Vec<(&str, &str)> = clone.iter().filter(|(n, _)| *n != k).copied().collect();
        e.push((k, v));
        validate_code(&e).unwrap_err()
    };
    let e = with_one("OCF_RESKEY_CRM_meta_promoted_max", "2");
    assert_eq!(e.code(), OcfCode::ErrConfigured);
    assert!(e.to_string().contains("promoted-max is 2"), "{e}");
    let e = with_one("OCF_RESKEY_CRM_meta_notify", "false");
    assert_eq!(e.code(), OcfCode::ErrConfigured);
    assert!(e.to_string().contains("notify=true"), "{e}");
    let e = with_one("OCF_RESKEY_CRM_meta_promotable", "false");
    assert_eq!(e.code(), OcfCode::ErrConfigured);
    let e = validate_code(&[("OCF_RESKEY_master_ip", "")]).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrConfigured);
    assert!(e.to_string().contains("master_ip"), "{e}");
    let e =
        validate_code(&[("OCF_RESKEY_primary_conninfo_opt", "application_name=x")]).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrConfigured);
    assert!(e.to_string().contains("primary_conninfo_opt"), "{e}");
    let e = validate_code(&[("OCF_RESKEY_repuser", "a b")]).unwrap_err();
    assert!(e.to_string().contains("repuser"), "{e}");
}

#[test]
fn validate_checks_the_recovery_template_and_its_application_name() {
    let dir = std::env::temp_dir().join(format!("pgst-repl-tpl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.conf");
    let e =
        validate_code(&[("OCF_RESKEY_recovery_template", missing.to_str().unwrap())]).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrArgs);
    assert!(e.to_string().contains("missing.conf"), "{e}");
    let tpl = dir.join("recovery.conf.pcmk");
    std::fs::write(
        &tpl,
        "standby_mode = on\nprimary_conninfo = 'host=10.99.0.50 application_name=pgst-node2'\n\
         recovery_target_timeline = 'latest'\n",
    )
    .unwrap();
    let t = ("OCF_RESKEY_recovery_template", tpl.to_str().unwrap());
    let e = validate_code(&[t]).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrArgs);
    assert!(e.to_string().contains("application_name=pgst-node2"), "{e}");
    std::fs::write(
        &tpl,
        "standby_mode = on\nprimary_conninfo = 'host=10.99.0.50 application_name=pgst-node1'\n\
         restore_command = 'cp /a/%f %p'\n",
    )
    .unwrap();
    validate_code(&[t, ("OCF_RESKEY_master_ip", "")]).unwrap();
    // Its settings are copied, without the lines PostgreSQL 12 refuses.
    let conf = with(&[t], Action::Start, |c, _| own_conf(c).unwrap());
    assert!(!conf.contains("standby_mode"), "{conf}");
    assert!(
        conf.contains("application_name=pgst-node1'\nrestore_command"),
        "{conf}"
    );
    assert_eq!(
        conf.matches("recovery_target_timeline").count(),
        1,
        "{conf}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn synchronous_standby_names_follow_the_operators_choice() {
    let st = |name: &str| replica(name, "streaming", 0);
    let c = cfg_of(&env(&[("OCF_RESKEY_rep_mode", "sync")]));
    assert!(c.repl.sync);
    assert_eq!(wanted_sync_names(&c, &[]), "ANY 1 (*)");
    let c = cfg_of(&env(&[
        ("OCF_RESKEY_rep_mode", "sync"),
        ("OCF_RESKEY_lone_primary_writes", "true"),
    ]));
    assert_eq!(wanted_sync_names(&c, &[]), "");
    assert_eq!(
        wanted_sync_names(&c, &[st("pgst-b"), st("pgst-a")]),
        "ANY 1 (\"pgst-a\", \"pgst-b\")"
    );
}

#[test]
fn a_primary_with_rep_mode_sync_sets_synchronous_standby_names_once() {
    let mut os = running(true);
    let inner = answers(true);
    os.sql = Some(Box::new(move |s: &str| {
        if s == "show synchronous_standby_names" {
            Ok(rows(&[&[Some("")]]))
        } else {
            inner(s)
        }
    }));
    let (code, _) = monitor_code(&os, &[("OCF_RESKEY_rep_mode", "sync")]);
    assert_eq!(code, OcfCode::RunningPromoted);
    let calls = os.calls();
    assert!(
        calls.contains(&"sql alter system set synchronous_standby_names = 'ANY 1 (*)'".into()),
        "{calls:?}"
    );
    assert!(calls.contains(&"sql select pg_reload_conf()".into()));
}

#[test]
fn promote_fails_when_the_election_finds_a_standby_ahead() {
    let os = running(false);
    let (a, w) = cluster();
    a.put_private(
        &election::position_attr("pgsqld"),
        "pgst-node1",
        "1#0/3000000 electors=pgst-node2",
    );
    a.put_private(
        &election::position_attr("pgsqld"),
        "pgst-node2",
        "1#0/5000000",
    );
    let e = with(&[], Action::Promote, |c, ctx| {
        promote(&os, &peers(&a, &w), c, ctx)
    })
    .unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrGeneric);
    assert!(e.to_string().contains("pgst-node2 is ahead"), "{e}");
    assert!(!os.calls().iter().any(|c| c.contains("pg_promote")));
    assert_eq!(a.score_of("pgsqld", "pgst-node2"), Some(election::YIELD_TO));
}

#[test]
fn maxlag_time_lowers_a_standby_whose_replay_lags_in_seconds() {
    let os = running(true);
    let (a, mut w) = cluster();
    w.replicas[1].lag.replay_s = Some(12.5);
    let interval = ("OCF_RESKEY_CRM_meta_interval", "15000");
    let score = |extra: &[(&str, &str)]| {
        let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2", "pgst-node3"]);
        let cl = peers(&a, &w);
        let st = with(extra, Action::Monitor, |c, ctx| monitor(&os, &cl, c, ctx)).unwrap();
        assert_eq!(st, Status::Promoted);
        (
            a.score_of("pgsqld", "pgst-node2"),
            a.score_of("pgsqld", "pgst-node3"),
        )
    };
    // No limit: ranked by written location only.
    assert_eq!(score(&[interval]), (Some(1000), Some(990)));
    assert_eq!(
        score(&[interval, ("OCF_RESKEY_maxlag_time", "10")]),
        (Some(-1000), Some(990))
    );
    assert_eq!(
        score(&[interval, ("OCF_RESKEY_maxlag_time", "20")]),
        (Some(1000), Some(990))
    );
    drop(a);
    // A bad value is a configuration error of validate-all.
    let e = validate_code(&[
        ("OCF_RESKEY_maxlag_time", "-3"),
        ("OCF_RESKEY_CRM_meta_on_node", "pgst-node1"),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("maxlag_time"), "{e}");
}

/// A switchover from pgst-node2 to this node (pgst-node1), as the pre-promote sees it.
const SWITCHOVER: &[(&str, &str)] = &[
    ("OCF_RESKEY_CRM_meta_notify_type", "pre"),
    ("OCF_RESKEY_CRM_meta_notify_operation", "promote"),
    ("OCF_RESKEY_CRM_meta_notify_promoted_uname", "pgst-node2"),
    (
        "OCF_RESKEY_CRM_meta_notify_unpromoted_uname",
        "pgst-node1 pgst-node3",
    ),
    (
        "OCF_RESKEY_CRM_meta_notify_active_uname",
        "pgst-node1 pgst-node2 pgst-node3",
    ),
    ("OCF_RESKEY_CRM_meta_notify_demote_uname", "pgst-node2"),
    ("OCF_RESKEY_CRM_meta_notify_promote_uname", "pgst-node1"),
];

fn switchover_wal(checkpoint: Option<Lsn>) -> FakeWal {
    use crate::sys::pg::wal::WalState;
    FakeWal {
        state: Some(WalState {
            in_recovery: true,
            flushed: None,
            received: Some(Lsn(0x3000200)),
            replayed: Some(Lsn(0x3000200)),
            receiver: Some("streaming".into()),
            received_timeline: Some(1),
            checkpoint_timeline: 1,
            min_recovery: Lsn(0),
            min_recovery_timeline: 1,
            primary_timeline: None,
        }),
        checkpoints: Some(super::super::election::tests::checkpoints()),
        shutdown_checkpoint: checkpoint,
        ..FakeWal::default()
    }
}

#[test]
fn an_unsafe_switchover_fails_the_promote_of_its_transition() {
    let os = running(false);
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2", "pgst-node3"]);
    let w = switchover_wal(None);
    let cl = peers(&a, &w);
    with(SWITCHOVER, Action::Notify, |c, ctx| {
        notify(&os, &cl, c, ctx)
    })
    .unwrap();
    let cancelled = |a: &FakeAttrd| {
        a.private_of(&election::position_attr("pgsqld"), "pgst-node1")
            .and_then(|v| election::Ballot::parse(&v))
            .and_then(|b| b.cancelled)
    };
    let verdict = cancelled(&a);
    assert!(
        verdict
            .as_deref()
            .is_some_and(|v| v.contains("did not receive")),
        "{verdict:?}"
    );
    assert_eq!(a.score_of("pgsqld", "pgst-node1"), Some(-1));
    let e = with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrGeneric);
    assert!(e.to_string().contains("switchover cancelled"), "{e}");
    assert!(!os.calls().iter().any(|c| c.contains("pg_promote")));
    // Read once: it stops that promote only.
    assert_eq!(cancelled(&a), None);
    with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).unwrap();
    assert!(os.calls().iter().any(|c| c.contains("pg_promote")));

    // A safe switchover records nothing and promotes.
    let os = running(false);
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2", "pgst-node3"]);
    let w = switchover_wal(Some(Lsn(0x3000180)));
    let cl = peers(&a, &w);
    with(SWITCHOVER, Action::Notify, |c, ctx| {
        notify(&os, &cl, c, ctx)
    })
    .unwrap();
    assert_eq!(cancelled(&a), None);
    assert_eq!(a.score_of("pgsqld", "pgst-node1"), None);
    // The election of that notification is complete only with pgst-node2's and
    // pgst-node3's positions; give them, level with this node.
    for n in ["pgst-node2", "pgst-node3"] {
        a.put_private(&election::position_attr("pgsqld"), n, "1#0/3000200");
    }
    with(&[], Action::Promote, |c, ctx| promote(&os, &cl, c, ctx)).unwrap();
    assert!(os.calls().iter().any(|c| c.contains("pg_promote")));
}

#[test]
fn a_standby_that_does_not_stream_while_a_primary_is_expected_answers_0_with_a_warning() {
    let os = standby_without_stream(Some("waiting"));
    let (a, w) = cluster();
    a.put_score("pgsqld", "pgst-node2", election::PRIMARY_SCORE);
    let cl = peers(&a, &w);
    let interval = ("OCF_RESKEY_CRM_meta_interval", "16000");
    let st = with(&[interval], Action::Monitor, |c, ctx| {
        monitor(&os, &cl, c, ctx)
    })
    .unwrap();
    assert_eq!(st, Status::Running);
    // A probe: 0.
    let st = with(&[], Action::Monitor, |c, ctx| monitor(&os, &cl, c, ctx)).unwrap();
    assert_eq!(st, Status::Running);
    // Its own primary's score is not "a primary elsewhere".
    let (a, w) = cluster();
    a.put_score("pgsqld", "pgst-node1", election::PRIMARY_SCORE);
    let cl = peers(&a, &w);
    let st = with(&[interval], Action::Monitor, |c, ctx| {
        monitor(&os, &cl, c, ctx)
    })
    .unwrap();
    assert_eq!(st, Status::Running);
}

/// The former primary of the lab's crash (timeline 1, crashed after its last checkpoint)
/// against the new primary on timeline 2, forked at 0/3000100; `wrote_past_fork` says
/// whether its own WAL holds a record there.
fn crashed_former(wrote_past_fork: bool, primary_answers: bool) -> FakeWal {
    use crate::sys::pg::wal::{Checkpoints, History, Identity};
    FakeWal {
        checkpoints: Some(Checkpoints {
            state: ClusterState::InProduction,
            system_identifier: "7300".into(),
            checkpoint: Lsn(0x2000000),
            redo: Lsn(0x2000000),
            timeline: 1,
            min_recovery: Lsn(0),
            min_recovery_timeline: 0,
            wal_log_hints: false,
            checksums: false,
        }),
        record_from: wrote_past_fork.then_some(Lsn(0x3000100)),
        identity: primary_answers.then(|| Identity {
            system_identifier: "7300".into(),
            timeline: 2,
            position: Lsn(0x30DB780),
        }),
        history: primary_answers.then(|| History {
            timeline: 2,
            forks: vec![(1, Lsn(0x3000100))],
        }),
        ..FakeWal::default()
    }
}

fn start_with_timeout(os: &FakePg, a: &FakeAttrd, w: &FakeWal, secs: u64) -> Result<(), OcfError> {
    let e = env(&[]);
    let log = Logger::silent();
    let ctx = Ctx {
        env: &e,
        action: Action::Start,
        deadline: Deadline::from_timeout(Duration::from_secs(secs)),
        log: &log,
    };
    start(os, &peers(a, w), &cfg_of(&e), &ctx)
}

fn spawned(os: &FakePg) -> bool {
    os.calls().iter().any(|c| c == "spawn")
}

#[test]
fn a_crashed_former_primary_that_diverged_is_refused_and_one_that_follows_starts() {
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2"]);
    a.put_score("pgsqld", "pgst-node2", 1001);
    let os = stopped(ClusterState::InProduction);
    let e = start_with_timeout(&os, &a, &crashed_former(true, true), 5).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrGeneric);
    let why = e.to_string();
    assert!(
        why.contains("diverged") && why.contains("pgstack pg rejoin"),
        "{why}"
    );
    assert!(!spawned(&os), "{:?}", os.calls());
    // No record of its own past the fork point: it follows and starts.
    let os = stopped(ClusterState::InProduction);
    start_with_timeout(&os, &a, &crashed_former(false, true), 5).unwrap();
    assert!(spawned(&os), "{:?}", os.calls());
    // A standby's directory that diverged (stopped after it could not follow) too.
    let os = stopped(ClusterState::ShutDownInRecovery);
    let e = start_with_timeout(&os, &a, &crashed_former(true, true), 5).unwrap_err();
    assert!(e.to_string().contains("pgstack pg rejoin"), "{e}");
    assert!(!spawned(&os));
}

#[test]
fn a_former_primary_waits_for_an_unanswering_primary_then_fails_the_start() {
    // A primary runs on pgst-node2 (its promotion score) but does not answer.
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2"]);
    a.put_score("pgsqld", "pgst-node2", 1001);
    let w = crashed_former(true, false);
    let os = stopped(ClusterState::InProduction);
    let t0 = std::time::Instant::now();
    let e = start_with_timeout(&os, &a, &w, 4).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrGeneric);
    let why = e.to_string();
    assert!(
        why.contains("pgst-node2") && why.contains("cannot be") && why.contains("not started"),
        "{why}"
    );
    assert!(!spawned(&os), "{:?}", os.calls());
    // It waited (asked more than once), within half of the start's time.
    let asked = w.calls().iter().filter(|c| *c == "IDENTIFY_SYSTEM").count();
    assert!(asked >= 2, "{:?}", w.calls());
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn with_no_primary_anywhere_a_former_primary_starts_as_a_standby() {
    // No other node holds the primary's score (a whole cluster restarted, the first
    // start): nothing to compare with yet.
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2"]);
    a.put_score("pgsqld", "pgst-node2", 1000);
    let os = stopped(ClusterState::InProduction);
    start_with_timeout(&os, &a, &crashed_former(true, false), 5).unwrap();
    assert!(spawned(&os));
    // No cluster at all (ocf-tester): a cleanly stopped primary starts.
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1"]);
    a.down.set(true);
    let os = stopped(ClusterState::ShutDown);
    start_with_timeout(&os, &a, &FakeWal::default(), 5).unwrap();
    assert!(spawned(&os));
    // A standby waits for its primary as PostgreSQL does.
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2"]);
    a.put_score("pgsqld", "pgst-node2", 1001);
    let os = stopped(ClusterState::ShutDownInRecovery);
    start_with_timeout(&os, &a, &crashed_former(true, false), 5).unwrap();
    assert!(spawned(&os));
    // A former primary whose own WAL cannot be read is refused; a standby's starts.
    let mut w = crashed_former(true, true);
    w.checkpoints = None;
    let os = stopped(ClusterState::InProduction);
    let e = start_with_timeout(&os, &a, &w, 5).unwrap_err();
    assert!(e.to_string().contains("cannot be told"), "{e}");
    // A former primary whose primary does not answer within the start is refused, the
    // remedies within the 128 bytes Pacemaker keeps of an exit reason.
    let os = stopped(ClusterState::InProduction);
    let e = start_with_timeout(&os, &a, &crashed_former(true, false), 3)
        .unwrap_err()
        .to_string();
    let head = &e[..128.min(e.len())];
    assert!(
        head.contains("pgstack pg rejoin") && head.contains("did not answer"),
        "{e}"
    );
    assert!(!spawned(&os));
    let os = stopped(ClusterState::ShutDownInRecovery);
    start_with_timeout(&os, &a, &w, 5).unwrap();
    // A demote's restart is not checked.
    let os = running(true);
    let p = peers(&a, &w);
    with(&[], Action::Demote, |c, ctx| demote(&os, &p, c, ctx)).unwrap();
    assert!(
        !w.calls().iter().any(|c| c == "IDENTIFY_SYSTEM"),
        "{:?}",
        w.calls()
    );
}

#[test]
fn a_standby_stuck_on_a_diverged_history_fails_its_monitor_with_the_rejoin_reason() {
    let os = standby_without_stream(None);
    let a = FakeAttrd::new("pgst-node1", &["pgst-node1", "pgst-node2"]);
    let code = |w: &FakeWal| {
        with(&[], Action::Monitor, |c, ctx| {
            monitor(&os, &peers(&a, w), c, ctx)
        })
    };
    // No node holds the primary's score (it crashed, or left): the primary is not asked
    // at all, so a lost one cannot hold the monitor until its connection times out.
    let w = crashed_former(true, true);
    assert!(matches!(code(&w), Ok(Status::Running)));
    assert!(
        !w.calls().iter().any(|c| c == "IDENTIFY_SYSTEM"),
        "{:?}",
        w.calls()
    );
    a.put_score("pgsqld", "pgst-node2", 1001);
    let e = code(&crashed_former(true, true)).unwrap_err();
    assert_eq!(e.code(), OcfCode::ErrGeneric);
    let why = e.to_string();
    assert!(
        why.contains("cannot stream") && why.contains("pgstack pg rejoin"),
        "{why}"
    );
    // Following (nothing past the fork) or no primary answering: a running standby.
    assert!(matches!(
        code(&crashed_former(false, true)),
        Ok(Status::Running)
    ));
    assert!(matches!(
        code(&crashed_former(true, false)),
        Ok(Status::Running)
    ));
    // A streaming standby is not checked at all.
    let w = crashed_former(true, true);
    let os = running(false);
    let r = with(&[], Action::Monitor, |c, ctx| {
        monitor(&os, &peers(&a, &w), c, ctx)
    });
    assert!(matches!(r, Ok(Status::Running)));
    assert!(w.calls().is_empty(), "{:?}", w.calls());
}
