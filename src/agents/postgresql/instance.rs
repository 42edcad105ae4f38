//! What every mode needs about one instance: the checks before a start, the system
//! user, which postmaster (if any) serves the data directory, the monitor's connection
//! and the escalating stop, used by both modes.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Instant;

use nix::sys::signal::Signal;

use super::{OcfError, PgConfig};
use crate::ocf::Ctx;
use crate::sys::pg::client::Probe;
use crate::sys::pg::{PgOs, PostmasterPid};
use crate::sys::runner::Credentials;
use crate::wait::{self, Backoff};

/// Where the monitor looks when nothing says otherwise (Debian's compiled-in default).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// Every action but meta-data runs as root: the data directory belongs to the system
/// user, its processes are signalled and the server is started with that user's
/// identity. Run as anyone else, what this process can see is not the server's state.
pub fn require_root() -> Result<(), OcfError> {
    match crate::sys::proc::effective_uid() {
        0 => Ok(()),
        uid => Err(OcfError::Perm(format!(
            "the postgresql agent must run as root (it runs as uid {uid}): it reads the \
             system user's data directory and signals and starts the server"
        ))),
    }
}

/// The system user, refused when unknown (5) or root (4).
pub fn credentials(cfg: &PgConfig) -> Result<Credentials, OcfError> {
    cfg.check(Some(&["system_user", "pgdba"]))?;
    let c = Credentials::of_user(&cfg.user)?
        .ok_or_else(|| OcfError::Installed(format!("system user {:?} does not exist", cfg.user)))?;
    if c.uid.is_root() {
        return Err(OcfError::Perm(format!(
            "system user {:?} has uid 0; PostgreSQL never runs as root",
            cfg.user
        )));
    }
    Ok(c)
}

fn executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether a user with `c` may create files in a directory with metadata `m`.
fn writable_by(m: &std::fs::Metadata, c: &Credentials) -> bool {
    let mode = m.permissions().mode();
    if m.uid() == c.uid.as_raw() {
        mode & 0o300 == 0o300
    } else if m.gid() == c.gid.as_raw() || c.groups.iter().any(|g| g.as_raw() == m.gid()) {
        mode & 0o030 == 0o030
    } else {
        mode & 0o003 == 0o003
    }
}

/// Checks that this node can run the instance; returns the system user's credentials.
pub fn validate(cfg: &PgConfig, ctx: &Ctx) -> Result<Credentials, OcfError> {
    let bindir = cfg.bindir();
    for prog in ["postgres", "pg_ctl", "pg_controldata"] {
        let p = bindir.join(prog);
        if !executable(&p) {
            return Err(OcfError::Installed(format!(
                "{} is missing or not executable (set bindir)",
                p.display()
            )));
        }
    }
    let creds = credentials(cfg)?;
    check_datadir(cfg, &creds)?;
    if let Some(dir) = &cfg.socketdir {
        match std::fs::metadata(dir) {
            Ok(m) if !m.is_dir() => {
                return Err(OcfError::Installed(format!(
                    "socketdir {} is not a directory",
                    dir.display()
                )))
            }
            Ok(m) if !writable_by(&m, &creds) => {
                return Err(OcfError::Installed(format!(
                    "socketdir {} is not writable by {}",
                    dir.display(),
                    cfg.user
                )))
            }
            _ => {}
        }
    }
    cfg.monitor.password()?;
    if cfg.monitor.password.is_some() {
        ctx.log
            .debug("monitor_password is visible in the CIB; prefer monitor_password_file");
    }
    Ok(creds)
}

/// The data directory exists, is a cluster, belongs to the system user, and is on the
/// expected mount.
pub fn check_datadir(cfg: &PgConfig, creds: &Credentials) -> Result<(), OcfError> {
    let d = &cfg.datadir;
    let m = std::fs::metadata(d)
        .map_err(|e| OcfError::Installed(format!("data directory {}: {e}", d.display())))?;
    if !m.is_dir() {
        return Err(OcfError::Installed(format!(
            "{} is not a directory",
            d.display()
        )));
    }
    if !d.join("PG_VERSION").is_file() || !d.join("global").is_dir() {
        return Err(OcfError::Installed(format!(
            "{} is not a PostgreSQL data directory (no PG_VERSION or global/)",
            d.display()
        )));
    }
    if m.uid() != creds.uid.as_raw() {
        return Err(OcfError::Perm(format!(
            "data directory {} belongs to uid {}, not to {} ({})",
            d.display(),
            m.uid(),
            cfg.user,
            creds.uid
        )));
    }
    if cfg.pgdata != cfg.datadir && !cfg.pgdata.is_dir() {
        return Err(OcfError::Installed(format!(
            "configuration directory {} does not exist",
            cfg.pgdata.display()
        )));
    }
    if let Some(want) = &cfg.expected_mount {
        let (mp, src) = crate::sys::pg::mounts::mount_of(d).ok_or_else(|| {
            OcfError::Installed(format!("cannot find the mount of {}", d.display()))
        })?;
        let dev_match = std::fs::canonicalize(want)
            .ok()
            .zip(std::fs::canonicalize(&src).ok())
            .is_some_and(|(a, b)| a == b);
        if &mp != want && !dev_match {
            return Err(OcfError::Installed(format!(
                "data directory {} is on {} (from {src}), not on expected_mount {}; \
                 refusing to start on a directory whose file system is not mounted",
                d.display(),
                mp.display(),
                want.display()
            )));
        }
    }
    Ok(())
}

/// What is running for the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `postmaster.pid` names this cluster's live postmaster.
    Postmaster { pid: u32, file: PostmasterPid },
    /// No postmaster; what is left of one.
    None(Left),
}

/// What a cluster without a postmaster left: `pidfile` tells whether `postmaster.pid`
/// exists, `stale` the pid it names (not this cluster's postmaster); `orphans` are server
/// processes of the cluster still alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub pidfile: bool,
    pub stale: Option<u32>,
    pub orphans: Vec<u32>,
}

pub fn find(os: &impl PgOs, cfg: &PgConfig) -> Found {
    let file = os.pidfile(&cfg.datadir);
    match file {
        Some(Some(f)) if os.is_postmaster(&cfg.datadir, f.pid) => Found::Postmaster {
            pid: f.pid,
            file: f,
        },
        other => Found::None(Left {
            pidfile: other.is_some(),
            stale: other.flatten().map(|f| f.pid),
            orphans: os.processes(&cfg.datadir),
        }),
    }
}

/// The monitor's connection.
pub fn probe(
    cfg: &PgConfig,
    file: Option<&PostmasterPid>,
    creds: Option<&Credentials>,
) -> Result<Probe, OcfError> {
    let host = cfg
        .pghost
        .clone()
        .or_else(|| cfg.socketdir.as_ref().map(|s| s.display().to_string()))
        .or_else(|| {
            file.and_then(|f| f.socket_dir.as_ref())
                .map(|s| s.display().to_string())
        })
        .unwrap_or_else(|| DEFAULT_SOCKET_DIR.to_string());
    let m = &cfg.monitor;
    let as_system_user = m.user.is_none() || m.user.as_deref() == Some(&cfg.user);
    Ok(Probe {
        host,
        port: cfg.port,
        user: m.user.clone().unwrap_or_else(|| cfg.user.clone()),
        password: m.password()?,
        dbname: m.pgdb.clone(),
        sql: m.sql.clone(),
        connect_timeout: m.connect_timeout,
        as_uid: if as_system_user {
            creds.map(|c| c.uid)
        } else {
            None
        },
    })
}

/// Escalating stop of a verified postmaster (fast, then immediate shutdown), then
/// SIGKILL of every process of the cluster left; Ok when none remains.
pub fn stop_escalating(
    os: &impl PgOs,
    cfg: &PgConfig,
    pm: Option<u32>,
    ctx: &Ctx,
) -> Result<(), OcfError> {
    let log = ctx.log;
    let gone = |pid: u32, until: Instant| wait::until(until, Backoff::FAST, || !os.running(pid));
    if let Some(pid) = pm {
        let fast_until = ctx
            .deadline
            .share(0.5)
            .instant()
            .min(Instant::now() + cfg.stop_escalate);
        log.info(&format!("fast shutdown of postmaster {pid}"));
        let _ = os.signal(pid, Signal::SIGINT);
        if !gone(pid, fast_until) {
            log.warn(&format!(
                "postmaster {pid} still running after fast shutdown ({} ms); immediate shutdown",
                ctx.deadline.elapsed().as_millis()
            ));
            if os.is_postmaster(&cfg.datadir, pid) {
                let _ = os.signal(pid, Signal::SIGQUIT);
            }
            if !gone(pid, ctx.deadline.share(0.5).instant()) {
                log.warn(&format!(
                    "postmaster {pid} still running after immediate shutdown; killing the cluster's processes"
                ));
            }
        }
    }
    // Whatever is left (a postmaster that would not stop, children of a killed one).
    if !os.processes(&cfg.datadir).is_empty() {
        let n = os.signal_all(&cfg.datadir, Signal::SIGKILL);
        log.warn(&format!(
            "sent SIGKILL to {n} process(es) of {}",
            cfg.datadir.display()
        ));
    }
    let all_gone = wait::until(ctx.deadline.instant(), Backoff::FAST, || {
        os.processes(&cfg.datadir).is_empty()
    });
    if !all_gone {
        let left = os.processes(&cfg.datadir);
        return Err(OcfError::Generic(format!(
            "processes {:?} of {} are still alive at the stop deadline",
            left,
            cfg.datadir.display()
        )));
    }
    Ok(())
}
