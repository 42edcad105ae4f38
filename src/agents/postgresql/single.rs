//! Single-instance mode: one server that moves with its storage (the `PGServer` group
//! of a DRBD-backed stack). The server is a primary; there is no promotion.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::instance::{self, Found};
use super::PgConfig;
use crate::ocf::{Ctx, OcfError, Status};
use crate::sys::pg::process::{self, Cluster};
use crate::sys::pg::server::{self, StartSpec};
use crate::sys::pg::{pidfile, ClusterState, PgOs, PostmasterPid, RealPg};

pub fn monitor(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<Status, OcfError> {
    match instance::find(os, cfg) {
        Found::Postmaster { pid, file } => {
            let creds = instance::credentials(cfg).ok();
            let probe = instance::probe(cfg, Some(&file), creds.as_ref())?;
            let answer = os
                .probe(&probe, ctx.deadline.instant())
                .map_err(|e| OcfError::Generic(format!("postmaster {pid} is running but {e}")))?;
            if ctx.env.check_level >= 10 {
                if let Some(creds) = &creds {
                    let c = os.control_data(
                        &cfg.bindir(),
                        &cfg.datadir,
                        creds,
                        ctx.deadline.instant(),
                    )?;
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
        Found::None {
            pidfile,
            stale,
            orphans,
        } => Ok(Status::NotRunning(not_running_reason(
            os, cfg, ctx, pidfile, stale, &orphans,
        )?)),
    }
}

fn standby(pid: u32) -> Status {
    Status::Degraded(format!(
        "postmaster {pid} runs as a standby (recovery; standby.signal in the data \
         directory?); single-instance mode expects a primary"
    ))
}

/// Why nothing runs, for the exit reason: `None` for a clean stop.
fn not_running_reason(
    os: &impl PgOs,
    cfg: &PgConfig,
    ctx: &Ctx,
    pidfile: bool,
    stale: Option<u32>,
    orphans: &[u32],
) -> Result<Option<String>, OcfError> {
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
        Ok(creds) => os.control_data(&bindir, &cfg.datadir, &creds, ctx.deadline.instant()),
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

pub fn start(cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    // The dispatcher validated the configuration just before.
    let creds = instance::credentials(cfg)?;
    match instance::find(&RealPg, cfg) {
        Found::Postmaster { pid, .. } => {
            ctx.log.info(&format!(
                "postmaster {pid} already serves {}",
                cfg.datadir.display()
            ));
            return wait_ready(cfg, pid, ctx);
        }
        Found::None {
            pidfile,
            stale,
            orphans,
        } => {
            if !orphans.is_empty() {
                // They keep the old shared memory attached: the new postmaster would refuse.
                ctx.log.warn(&format!(
                    "killing server processes {orphans:?} left by a dead postmaster"
                ));
                instance::stop_escalating(cfg, None, ctx)?;
            }
            if pidfile {
                let from = pidfile::path(&cfg.datadir);
                let to = cfg.datadir.join("postmaster.pid.stale");
                ctx.log.warn(&format!(
                    "setting aside stale {} (pid {}) as {}",
                    from.display(),
                    stale
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "unreadable".into()),
                    to.display()
                ));
                std::fs::rename(&from, &to).map_err(|e| {
                    OcfError::Generic(format!("cannot move stale {}: {e}", from.display()))
                })?;
            }
        }
    }
    let socket_dir = match &cfg.socketdir {
        Some(s) => {
            ensure_socket_dir(s, &creds)?;
            Some(s.clone())
        }
        None => None,
    };
    if let Some(holder) = port_holder(cfg, ctx)? {
        return Err(OcfError::Generic(format!(
            "port {} is in use: {holder}",
            cfg.port
        )));
    }
    let spec = StartSpec {
        bindir: cfg.bindir(),
        pgdata: cfg.pgdata.clone(),
        port: cfg.port,
        socket_dir,
        config_file: cfg.config.clone(),
        extra_args: cfg.start_args.clone(),
        logfile: cfg.logfile.clone(),
    };
    let pid = server::spawn_postmaster(&spec, &creds)?;
    ctx.log.info(&format!(
        "started postmaster {pid}: {}",
        spec.command().display()
    ));
    wait_ready(cfg, pid, ctx)
}

fn ensure_socket_dir(
    dir: &std::path::Path,
    creds: &crate::sys::runner::Credentials,
) -> Result<(), OcfError> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| OcfError::Generic(format!("creating socketdir {}: {e}", dir.display())))?;
    nix::unistd::chown(dir, Some(creds.uid), Some(creds.gid))
        .map_err(|e| OcfError::Generic(format!("chown of socketdir {}: {e}", dir.display())))?;
    Ok(())
}

/// Who holds the port: a live server named in the socket's lock file, or a TCP
/// listener on the loopback address. A lock file naming anything else (a dead or reused
/// pid) is stale and removed, as the server would otherwise refuse to start.
fn port_holder(cfg: &PgConfig, ctx: &Ctx) -> Result<Option<String>, OcfError> {
    let dir = cfg
        .socketdir
        .clone()
        .unwrap_or_else(|| instance::DEFAULT_SOCKET_DIR.into());
    let lock = dir.join(format!(".s.PGSQL.{}.lock", cfg.port));
    if let Ok(text) = std::fs::read_to_string(&lock) {
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i64>().ok())
            .map(|p| p.unsigned_abs() as u32);
        match pid {
            Some(pid) if process::is_postgres(pid) => {
                let what = crate::sys::proc::cmdline(pid)
                    .map(|c| c.join(" "))
                    .unwrap_or_default();
                return Ok(Some(format!(
                    "{} names the live server {pid} ({what})",
                    lock.display()
                )));
            }
            _ => {
                ctx.log.warn(&format!(
                    "removing stale {} (pid {})",
                    lock.display(),
                    pid.map(|p| p.to_string()).unwrap_or_default()
                ));
                crate::sys::proc::remove_file(&lock)?;
            }
        }
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], cfg.port));
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        return Ok(Some(format!("something listens on 127.0.0.1:{}", cfg.port)));
    }
    Ok(None)
}

/// Waits until the postmaster `pid` reports "ready" in its pid file.
fn wait_ready(cfg: &PgConfig, pid: u32, ctx: &Ctx) -> Result<(), OcfError> {
    let mut nap = Duration::from_millis(5);
    loop {
        if !process::running(pid) {
            let tail = server::log_tail(&cfg.logfile, 3);
            return Err(OcfError::Generic(if tail.is_empty() {
                format!("postgres (pid {pid}) exited during start; set logfile to see why")
            } else {
                format!(
                    "postgres (pid {pid}) exited during start: {}",
                    tail.join(" | ")
                )
            }));
        }
        if let Some(f) = PostmasterPid::read(&cfg.datadir) {
            if f.pid == pid && f.is_ready() {
                ctx.log.info(&format!(
                    "postmaster {pid} accepts connections after {} ms",
                    ctx.deadline.elapsed().as_millis()
                ));
                return Ok(());
            }
        }
        if ctx.deadline.expired() {
            return Err(OcfError::Deadline {
                what: format!(
                    "postmaster {pid} accepting connections (crash recovery may still run)"
                ),
                ms: ctx.deadline.elapsed().as_millis(),
            });
        }
        std::thread::sleep(nap.min(ctx.deadline.remaining()));
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

pub fn stop(cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let pm = match instance::find(&RealPg, cfg) {
        Found::Postmaster { pid, .. } => Some(pid),
        Found::None { orphans, .. } if orphans.is_empty() => return Ok(()),
        Found::None { .. } => None,
    };
    let t = Instant::now();
    instance::stop_escalating(cfg, pm, ctx)?;
    ctx.log.info(&format!(
        "{} stopped in {} ms",
        cfg.datadir.display(),
        t.elapsed().as_millis()
    ));
    Ok(())
}

pub fn reload(cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let creds = instance::credentials(cfg)?;
    match instance::find(&RealPg, cfg) {
        Found::Postmaster { pid, .. } => {
            server::reload(&cfg.bindir(), &cfg.pgdata, &creds, ctx.deadline.instant()).or_else(
                |e| {
                    // pg_ctl looks for postmaster.pid under -D; with a separate
                    // configuration directory signal the verified postmaster.
                    ctx.log.warn(&format!("{e}; sending SIGHUP to {pid}"));
                    process::signal(pid, Signal::SIGHUP)
                },
            )?;
            Ok(())
        }
        Found::None { .. } => Err(OcfError::Generic(format!(
            "cannot reload: no postmaster runs for {}",
            cfg.datadir.display()
        ))),
    }
}

/// The cluster's processes, for callers that must know none is left.
pub fn processes(cfg: &PgConfig) -> Vec<u32> {
    Cluster::new(&cfg.datadir).processes()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ocf::deadline::Deadline;
    use crate::ocf::env::OcfEnv;
    use crate::ocf::log::Logger;
    use crate::ocf::params::Params;
    use crate::ocf::{Action, ExitCode, OcfCode};
    use crate::sys::pg::client::{Answer, ProbeError};
    use crate::sys::pg::fake::FakePg;

    fn cfg() -> PgConfig {
        let env = OcfEnv::from_map(
            [
                ("OCF_RESKEY_pgdata", "/srv/pgst-pg"),
                ("OCF_RESKEY_system_user", "nobody"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
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
        os.pidfile = pidfile(4242);
        os.postmaster = Some(1); // another pid is the (absent) postmaster
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
}
