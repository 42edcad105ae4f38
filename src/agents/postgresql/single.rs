//! Single-instance mode: one server that moves with its storage (the `PGServer` group
//! of a DRBD-backed stack). The server is a primary; there is no promotion.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::instance::{self, Found, Left};
use super::PgConfig;
use crate::ocf::{Ctx, OcfError, Status};
use crate::sys::pg::server::{PortUse, StartSpec};
use crate::sys::pg::{pidfile, ClusterState, PgDir, PgOs};
use crate::wait::Backoff;

pub fn monitor(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<Status, OcfError> {
    match instance::find(os, cfg) {
        Found::Postmaster { pid, file } => {
            // Found from pgdata alone: a bad value of the monitor's own parameters is
            // reported as such, never as "not running".
            cfg.check(Some(super::MONITOR_PARAMS)).map_err(|e| {
                OcfError::Configured(format!(
                    "postmaster {pid} serves {}, but it cannot be monitored: {e}",
                    cfg.datadir.display()
                ))
            })?;
            if let Some((_, e)) = cfg.invalid.first() {
                ctx.log
                    .warn(&format!("{e}; the next start or reload will refuse it"));
            }
            let creds = instance::credentials(cfg).ok();
            let probe = instance::probe(cfg, Some(&file), creds.as_ref())?;
            let answer = os
                .probe(&probe, ctx.deadline.instant())
                .map_err(|e| OcfError::Generic(format!("postmaster {pid} is running but {e}")))?;
            if ctx.env.check_level >= 10 {
                if let Some(creds) = &creds {
                    let c = os.control_data(&cfg.pg_dir(creds), ctx.deadline.instant())?;
                    if c.state == ClusterState::InArchiveRecovery {
                        return Ok(standby(pid));
                    }
                    if c.state != ClusterState::InProduction {
                        return Err(OcfError::Generic(format!(
                            "postmaster {pid} answers but pg_controldata says \"{}\"",
                            c.state.as_str()
                        )));
                    }
                }
            }
            if answer.in_recovery {
                return Ok(standby(pid));
            }
            Ok(Status::Running)
        }
        Found::None(left) => Ok(Status::NotRunning(not_running_reason(os, cfg, ctx, &left)?)),
    }
}

fn standby(pid: u32) -> Status {
    Status::Degraded(format!(
        "postmaster {pid} runs as a standby (recovery; standby.signal in the data \
         directory?); single-instance mode expects a primary"
    ))
}

/// Why nothing runs, for the exit reason: `None` for a clean stop.
pub(super) fn not_running_reason(
    os: &impl PgOs,
    cfg: &PgConfig,
    ctx: &Ctx,
    left: &Left,
) -> Result<Option<String>, OcfError> {
    let Left {
        pidfile,
        stale,
        orphans,
    } = left;
    let d = cfg.datadir.display();
    let (exists, is_cluster) = os.datadir_state(&cfg.datadir);
    if !exists {
        return Ok(Some(format!("data directory {d} does not exist")));
    }
    if !is_cluster {
        return Ok(Some(format!("{d} is not a PostgreSQL data directory")));
    }
    if !orphans.is_empty() {
        return Ok(Some(format!(
            "crashed: the postmaster of {d} is gone but server processes {orphans:?} are \
             left; start ends them and runs crash recovery"
        )));
    }
    let bindir = cfg.bindir();
    let state = match instance::credentials(cfg) {
        Ok(creds) => os.control_data(&cfg.pg_dir(&creds), ctx.deadline.instant()),
        Err(e) => return Ok(Some(format!("not running ({e})"))),
    };
    let state = match state {
        Ok(c) => c.state,
        Err(e) if ctx.is_probe() => return Ok(Some(format!("not running; {e}"))),
        Err(e) if !bindir.join("pg_controldata").exists() => {
            return Err(OcfError::Installed(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    if !state.is_clean_shutdown() {
        return Ok(Some(format!(
            "crashed: no postmaster for {d} but pg_controldata says \"{}\"; \
             start runs crash recovery",
            state.as_str()
        )));
    }
    Ok(match (pidfile, stale) {
        (true, Some(p)) => Some(format!(
            "not running; stale postmaster.pid names pid {p}, which is not this cluster's postmaster"
        )),
        (true, None) => Some("not running; unreadable postmaster.pid left".to_string()),
        _ => None,
    })
}

pub fn start(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    start_with(os, cfg, ctx, cfg.config.clone())
}

/// [`start`] with `config_file` as the server's configuration file (the replication
/// mode's own file).
pub(super) fn start_with(
    os: &impl PgOs,
    cfg: &PgConfig,
    ctx: &Ctx,
    config_file: Option<std::path::PathBuf>,
) -> Result<(), OcfError> {
    // The dispatcher validated the configuration just before.
    let creds = instance::credentials(cfg)?;
    match instance::find(os, cfg) {
        Found::Postmaster { pid, .. } => {
            ctx.log.info(&format!(
                "postmaster {pid} already serves {}",
                cfg.datadir.display()
            ));
            return wait_ready(os, cfg, pid, ctx);
        }
        Found::None(Left {
            pidfile,
            stale,
            orphans,
        }) => {
            if !orphans.is_empty() {
                // They keep the old shared memory attached: the new postmaster would refuse.
                ctx.log.warn(&format!(
                    "killing server processes {orphans:?} left by a dead postmaster"
                ));
                instance::stop_escalating(os, cfg, None, ctx)?;
            }
            if let Some(p) = stale.filter(|p| os.is_postgres(*p)) {
                // A live server process this cluster does not recognise as its own:
                // perhaps another cluster's, perhaps this one seen through a path that
                // does not lead to it. Never take its pid file away.
                return Err(OcfError::Generic(format!(
                    "{} names the live PostgreSQL process {p}, which is not the postmaster \
                     of {}; refusing to set it aside",
                    pidfile::path(&cfg.datadir).display(),
                    cfg.datadir.display()
                )));
            }
            if pidfile {
                let to = os.set_aside_pidfile(&cfg.datadir)?;
                ctx.log.warn(&format!(
                    "set aside stale {} (pid {}) as {}",
                    pidfile::path(&cfg.datadir).display(),
                    stale
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "unreadable".into()),
                    to.display()
                ));
            }
        }
    }
    if let Some(s) = &cfg.socketdir {
        os.ensure_socket_dir(s, &creds)?;
    }
    let lock_dir = cfg
        .socketdir
        .clone()
        .unwrap_or_else(|| instance::DEFAULT_SOCKET_DIR.into());
    match os.port_use(&lock_dir, cfg.port)? {
        PortUse::Held(holder) => {
            return Err(OcfError::Generic(format!(
                "port {} is in use: {holder}",
                cfg.port
            )))
        }
        PortUse::Free {
            removed: Some((lock, pid)),
        } => ctx.log.warn(&format!(
            "removed stale {} (pid {})",
            lock.display(),
            pid.map(|p| p.to_string()).unwrap_or_default()
        )),
        PortUse::Free { removed: None } => {}
    }
    let spec = StartSpec {
        bindir: cfg.bindir(),
        pgdata: cfg.pgdata.clone(),
        port: cfg.port,
        socket_dir: cfg.socketdir.clone(),
        config_file,
        extra_args: cfg.start_args.clone(),
        logfile: cfg.logfile.clone(),
    };
    let pid = os.spawn_postmaster(&spec, &creds)?;
    ctx.log.info(&format!(
        "started postmaster {pid}: {}",
        spec.command().display()
    ));
    wait_ready(os, cfg, pid, ctx)
}

/// How often the start looks at the pid file: from 2 ms up to 10 ms. The postmaster writes
/// "ready" into it when it begins accepting connections (after any crash recovery); a look is one read of a small file and one `kill(pid, 0)`, so every 10 ms
/// costs nothing measurable, while a 50 ms cap added 25 ms on average to every start.
const READY_POLL: Backoff = Backoff::millis(2, 10);

/// Waits until the postmaster `pid` reports "ready" in its pid file.
fn wait_ready(os: &impl PgOs, cfg: &PgConfig, pid: u32, ctx: &Ctx) -> Result<(), OcfError> {
    let ready = ctx.deadline.poll(READY_POLL, || {
        if !os.running(pid) {
            let owner = instance::credentials(cfg)?.uid;
            let tail = os.log_tail(&cfg.logfile, 3, owner);
            return Err(OcfError::Generic(if tail.is_empty() {
                format!("postgres (pid {pid}) exited during start; set logfile to see why")
            } else {
                format!(
                    "postgres (pid {pid}) exited during start: {}",
                    tail.join(" | ")
                )
            }));
        }
        Ok(os
            .pidfile(&cfg.datadir)
            .flatten()
            .filter(|f| f.pid == pid && f.is_ready())
            .map(|_| ()))
    })?;
    match ready {
        Some(()) => {
            ctx.log.info(&format!(
                "postmaster {pid} accepts connections after {} ms",
                ctx.deadline.elapsed().as_millis()
            ));
            Ok(())
        }
        None => Err(OcfError::Deadline {
            what: format!("postmaster {pid} accepting connections (crash recovery may still run)"),
            ms: ctx.deadline.elapsed().as_millis(),
        }),
    }
}

pub fn stop(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    if let Err(e) = cfg.check(Some(&["stop_escalate"])) {
        ctx.log.warn(&format!(
            "{e}; fast shutdown for half of the time left, then immediate"
        ));
    }
    let pm = match instance::find(os, cfg) {
        Found::Postmaster { pid, .. } => Some(pid),
        Found::None(Left { orphans, .. }) if orphans.is_empty() => return Ok(()),
        Found::None { .. } => None,
    };
    let t = Instant::now();
    instance::stop_escalating(os, cfg, pm, ctx)?;
    ctx.log.info(&format!(
        "{} stopped in {} ms",
        cfg.datadir.display(),
        t.elapsed().as_millis()
    ));
    Ok(())
}

pub fn reload(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let creds = instance::credentials(cfg)?;
    match instance::find(os, cfg) {
        Found::Postmaster { pid, .. } => {
            let conf = PgDir {
                datadir: &cfg.pgdata,
                ..cfg.pg_dir(&creds)
            };
            os.reload(&conf, ctx.deadline.instant()).or_else(|e| {
                // pg_ctl looks for postmaster.pid under -D; with a separate
                // configuration directory signal the verified postmaster.
                ctx.log.warn(&format!("{e}; sending SIGHUP to {pid}"));
                os.signal(pid, Signal::SIGHUP)
            })?;
            Ok(())
        }
        Found::None { .. } => Err(OcfError::Generic(format!(
            "cannot reload: no postmaster runs for {}",
            cfg.datadir.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::ocf::deadline::Deadline;
    use crate::ocf::env::OcfEnv;
    use crate::ocf::log::Logger;
    use crate::ocf::params::Params;
    use crate::ocf::{Action, ExitCode, OcfCode};
    use crate::sys::pg::client::{Answer, ProbeError};
    use crate::sys::pg::fake::{FakePg, SPAWNED};
    use crate::sys::pg::server::PortUse;
    use crate::sys::pg::PostmasterPid;

    fn cfg() -> PgConfig {
        let env =
            crate::ocf::params::test_env(&[("pgdata", "/srv/pgst-pg"), ("system_user", "nobody")]);
        super::super::configure(&Params::parse(super::super::INFO.params, &env).unwrap()).unwrap()
    }

    fn monitor_of(os: &FakePg, probe: bool, level: u32) -> Result<Status, OcfError> {
        let mut vars = BTreeMap::new();
        if !probe {
            vars.insert("OCF_RESKEY_CRM_meta_interval".into(), "15000".into());
        }
        vars.insert("OCF_CHECK_LEVEL".into(), level.to_string());
        let env = OcfEnv::from_map(vars);
        let log = Logger::silent();
        let ctx = Ctx {
            env: &env,
            action: Action::Monitor,
            deadline: Deadline::from_timeout(Duration::from_secs(5)),
            log: &log,
        };
        monitor(os, &cfg(), &ctx)
    }

    fn pidfile(pid: u32) -> Option<Option<PostmasterPid>> {
        Some(PostmasterPid::parse(&format!("{pid}\n/srv/pgst-pg\n")))
    }

    fn stopped(state: ClusterState) -> FakePg {
        FakePg {
            datadir: (true, true),
            state: Some(state),
            ..FakePg::default()
        }
    }

    fn reason(s: Status) -> Option<String> {
        match s {
            Status::NotRunning(r) => r,
            other => panic!("expected not running, got {other:?}"),
        }
    }

    #[test]
    fn a_clean_stop_is_not_running_without_a_reason() {
        let r = monitor_of(&stopped(ClusterState::ShutDown), false, 0).unwrap();
        assert_eq!(reason(r), None);
    }

    #[test]
    fn no_postmaster_but_in_production_is_a_crash_with_a_reason() {
        let mut os = stopped(ClusterState::InProduction);
        os.pidfile = pidfile(4242);
        let r = reason(monitor_of(&os, false, 0).unwrap()).unwrap();
        assert!(
            r.starts_with("crashed") && r.contains("in production"),
            "{r}"
        );
        os.processes = vec![11, 12];
        let r = reason(monitor_of(&os, false, 0).unwrap()).unwrap();
        assert!(r.contains("[11, 12]"), "{r}");
    }

    #[test]
    fn a_pid_that_is_not_this_postmaster_is_stale_and_never_probed() {
        let mut os = stopped(ClusterState::ShutDown);
        os.pidfile = pidfile(4242); // not the postmaster of this cluster: nothing is
        let r = reason(monitor_of(&os, false, 0).unwrap()).unwrap();
        assert!(r.contains("stale") && r.contains("4242"), "{r}");
    }

    #[test]
    fn missing_or_foreign_data_is_not_running() {
        let os = FakePg {
            datadir: (false, false),
            ..FakePg::default()
        };
        let r = reason(monitor_of(&os, true, 0).unwrap()).unwrap();
        assert!(r.contains("does not exist"), "{r}");
        let os = FakePg {
            datadir: (true, false),
            ..FakePg::default()
        };
        let r = reason(monitor_of(&os, true, 0).unwrap()).unwrap();
        assert!(r.contains("not a PostgreSQL data directory"), "{r}");
    }

    #[test]
    fn unreadable_control_data_is_not_running_on_a_probe_and_an_error_otherwise() {
        let os = FakePg {
            datadir: (true, true),
            ..FakePg::default()
        };
        assert!(matches!(
            monitor_of(&os, true, 0).unwrap(),
            Status::NotRunning(Some(_))
        ));
        assert!(monitor_of(&os, false, 0).is_err());
    }

    #[test]
    fn a_live_postmaster_is_judged_by_the_probe() {
        let mut os = stopped(ClusterState::InProduction);
        os.pidfile = pidfile(4242);
        os.postmaster = Some(4242);
        os.probe = Some(Ok(Answer { in_recovery: false }));
        assert_eq!(monitor_of(&os, false, 0).unwrap(), Status::Running);
        assert_eq!(monitor_of(&os, false, 10).unwrap(), Status::Running);
        os.probe = Some(Ok(Answer { in_recovery: true }));
        assert!(matches!(
            monitor_of(&os, false, 0).unwrap(),
            Status::Degraded(_)
        ));
        os.probe = Some(Err(ProbeError::NotAccepting {
            target: "/run/x/.s.PGSQL.5432".into(),
            msg: "FATAL: the database system is shutting down".into(),
        }));
        let e = monitor_of(&os, false, 0).unwrap_err();
        assert_eq!(e.code(), OcfCode::ErrGeneric);
        assert!(e.to_string().contains("postmaster 4242"), "{e}");
        // Depth 10: pg_controldata must agree with a running primary.
        os.probe = Some(Ok(Answer { in_recovery: false }));
        os.state = Some(ClusterState::ShuttingDown);
        assert!(monitor_of(&os, false, 10).is_err());
        assert_eq!(monitor_of(&os, false, 0).unwrap(), Status::Running);
    }

    /// Runs `f` with a context for `action` whose deadline is `ms` from now.
    fn with_ctx<T>(action: Action, ms: u64, f: impl FnOnce(&Ctx) -> T) -> T {
        let env = OcfEnv::from_map(BTreeMap::new());
        let log = Logger::silent();
        let ctx = Ctx {
            env: &env,
            action,
            deadline: Deadline::from_timeout(Duration::from_millis(ms)),
            log: &log,
        };
        f(&ctx)
    }

    fn start_of(os: &FakePg) -> Result<(), OcfError> {
        with_ctx(Action::Start, 2000, |ctx| start(os, &cfg(), ctx))
    }

    fn stop_of(os: &FakePg, ms: u64) -> Result<(), OcfError> {
        with_ctx(Action::Stop, ms, |ctx| stop(os, &cfg(), ctx))
    }

    #[test]
    fn start_after_a_crash_kills_the_orphans_sets_the_pid_file_aside_then_starts() {
        let mut os = stopped(ClusterState::InProduction);
        os.pidfile = pidfile(4242); // the dead postmaster
        os.processes = vec![11, 12]; // its children, still attached to shared memory
        start_of(&os).unwrap();
        assert_eq!(
            os.calls(),
            ["SIGKILL all [11, 12]", "set aside postmaster.pid", "spawn"]
        );
        assert!(os.is_postmaster(Path::new("/srv/pgst-pg"), SPAWNED));
        assert!(!os.running(11) && !os.running(12));
    }

    #[test]
    fn a_stale_pid_file_naming_a_live_unrelated_process_is_set_aside_and_the_process_spared() {
        let mut os = stopped(ClusterState::ShutDown);
        os.pidfile = pidfile(777);
        os.others = vec![777]; // a reused pid: some other program
        start_of(&os).unwrap();
        assert_eq!(os.calls(), ["set aside postmaster.pid", "spawn"]);
        assert!(os.running(777));
        // Stop with that pid file signals nothing.
        let mut os = stopped(ClusterState::ShutDown);
        os.pidfile = pidfile(777);
        os.others = vec![777];
        stop_of(&os, 2000).unwrap();
        assert!(os.calls().is_empty(), "{:?}", os.calls());
    }

    #[test]
    fn a_pid_file_naming_another_clusters_live_server_is_never_set_aside() {
        let mut os = stopped(ClusterState::InProduction);
        os.pidfile = pidfile(888);
        os.other_postgres = vec![888];
        let e = start_of(&os).unwrap_err();
        assert!(e.to_string().contains("888"), "{e}");
        assert!(os.calls().is_empty(), "{:?}", os.calls());
    }

    #[test]
    fn start_of_a_running_server_starts_nothing_and_a_held_port_is_refused() {
        let mut os = stopped(ClusterState::InProduction);
        os.pidfile = Some(PostmasterPid::parse(
            "4242\n/srv/pgst-pg\n1\n5432\n/run/x\n\n1 2\nready\n",
        ));
        os.postmaster = Some(4242);
        start_of(&os).unwrap();
        assert!(os.calls().is_empty(), "{:?}", os.calls());
        let mut os = stopped(ClusterState::ShutDown);
        os.port = Some(PortUse::Held("something listens on 127.0.0.1:5432".into()));
        let e = start_of(&os).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        assert!(!os.calls().contains(&"spawn".to_string()));
    }

    #[test]
    fn start_reports_a_server_that_does_not_come_up() {
        let mut os = stopped(ClusterState::ShutDown);
        os.spawn_fails = true;
        assert!(start_of(&os).is_err());
    }

    fn running(obeys: &[Signal]) -> FakePg {
        let mut os = stopped(ClusterState::InProduction);
        os.pidfile = pidfile(4242);
        os.postmaster = Some(4242);
        os.processes = vec![4243, 4244];
        os.obeys = obeys.to_vec();
        os
    }

    #[test]
    fn stop_is_a_fast_shutdown_when_the_server_obeys() {
        let os = running(&[Signal::SIGINT]);
        stop_of(&os, 2000).unwrap();
        assert_eq!(os.calls(), ["SIGINT 4242"]);
        assert!(!os.running(4242) && !os.running(4243));
    }

    #[test]
    fn stop_escalates_to_immediate_then_to_sigkill_within_the_deadline() {
        let os = running(&[Signal::SIGQUIT]);
        let mut cfg = cfg();
        cfg.stop_escalate = Duration::from_millis(50);
        with_ctx(Action::Stop, 1000, |ctx| stop(&os, &cfg, ctx)).unwrap();
        assert_eq!(os.calls(), ["SIGINT 4242", "SIGQUIT 4242"]);
        let os = running(&[]);
        let t = Instant::now();
        with_ctx(Action::Stop, 1000, |ctx| stop(&os, &cfg, ctx)).unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(
            os.calls(),
            [
                "SIGINT 4242",
                "SIGQUIT 4242",
                "SIGKILL all [4242, 4243, 4244]"
            ]
        );
        // Processes that survive SIGKILL (uninterruptible I/O): a failure, at the deadline.
        let mut os = running(&[]);
        os.unkillable = true;
        let e = with_ctx(Action::Stop, 600, |ctx| stop(&os, &cfg, ctx)).unwrap_err();
        assert!(e.to_string().contains("still alive"), "{e}");
    }

    #[test]
    fn stop_without_a_postmaster_kills_only_this_clusters_orphans() {
        let mut os = stopped(ClusterState::InProduction);
        os.processes = vec![11, 12];
        os.others = vec![13];
        stop_of(&os, 2000).unwrap();
        assert_eq!(os.calls(), ["SIGKILL all [11, 12]"]);
        assert!(os.running(13));
        let os = stopped(ClusterState::ShutDown);
        stop_of(&os, 2000).unwrap();
        assert!(os.calls().is_empty());
    }

    #[test]
    fn reload_falls_back_to_sighup_of_the_verified_postmaster() {
        let os = running(&[]);
        with_ctx(Action::Reload, 2000, |ctx| reload(&os, &cfg(), ctx)).unwrap();
        assert_eq!(os.calls(), ["pg_ctl reload"]);
        let mut os = running(&[]);
        os.reload_fails = true;
        with_ctx(Action::Reload, 2000, |ctx| reload(&os, &cfg(), ctx)).unwrap();
        assert_eq!(os.calls(), ["pg_ctl reload", "SIGHUP 4242"]);
        let os = stopped(ClusterState::ShutDown);
        assert!(with_ctx(Action::Reload, 2000, |ctx| reload(&os, &cfg(), ctx)).is_err());
    }
}
