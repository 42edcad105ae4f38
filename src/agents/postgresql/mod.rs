//! `ocf:pgstack:postgresql`: one PostgreSQL server (a "cluster" in PostgreSQL's words),
//! the replacement of `ocf:heartbeat:pgsql` in its single-instance role, with parameter
//! names of pgsql and PAF.
//!
//! **Manages** the postmaster of one data directory, run as the system user (privileges
//! dropped in the child: groups, gid, uid; never `su`).
//!
//! **Actions** (single-instance mode; see [`single`])
//! - `start`: refuses a data directory that is missing, not a cluster, owned by someone
//!   else or not on `expected_mount`; ends processes left by a killed postmaster and
//!   sets aside a stale `postmaster.pid`; refuses a port in use; starts the postmaster
//!   detached (a crashed cluster runs crash recovery) and waits, within the deadline,
//!   until it accepts connections. Starting a running server succeeds.
//! - `stop`: fast shutdown, then immediate shutdown after a share of the budget, then
//!   SIGKILL of the postmaster and every process of the cluster, and checks that none is
//!   left, all before the deadline. Stopping a stopped server succeeds.
//! - `monitor`: the postmaster named by `postmaster.pid` must be this cluster's (the
//!   process runs a postgres binary in the data directory), then one statement over the
//!   native protocol with connect and statement timeouts. Without a postmaster,
//!   `pg_controldata` tells a clean stop from a crash; both are "not running", a crash
//!   with a reason (start then runs crash recovery). A server in recovery
//!   (`pg_is_in_recovery()`, asked in the same session) is degraded (190): this mode
//!   expects a primary. Depth 10
//!   (`OCF_CHECK_LEVEL=10`) also requires `pg_controldata` of the running server to say
//!   "in production".
//! - `reload`: `pg_ctl reload`. `validate-all`: binaries (5), user (5, root 4), data
//!   directory (5), mount, socket directory, password file.
//!
//! **Promotion**: not in this mode; the module is laid out (`single`, `instance`) for a
//! promotable streaming-replication mode beside it, which will add promote, demote and
//! notify. None of them is advertised now.
//!
//! **Side effects**: the server's processes, its log file, the socket directory (created
//! for the system user when missing), a stale `postmaster.pid` renamed to
//! `postmaster.pid.stale`.

pub mod instance;
pub mod lsb;
pub mod single;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ocf::agent::FromParams;
use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::{ParamError, ParamSpec, Params};
use crate::ocf::{Action, Agent, Ctx, ExitCode, OcfCode, OcfError, Status};
use crate::sys::pg::client::ProbeError;
use crate::sys::pg::server::split_words;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string(
        "pgdata",
        "Data (configuration) directory",
        "The directory passed to postgres -D: the data directory, or the directory of \
         postgresql.conf when the data lives elsewhere (see datadir).",
    )
    .default("/var/lib/pgsql/data")
    .unique(),
    ParamSpec::string(
        "datadir",
        "Data directory, when apart from the configuration",
        "The data_directory of the server when pgdata holds only the configuration (the \
         Debian layout: pgdata=/etc/postgresql/15/main, datadir=/var/lib/postgresql/15/main). \
         postmaster.pid and pg_controldata are read here. Defaults to pgdata.",
    ),
    ParamSpec::string(
        "bindir",
        "Directory of the PostgreSQL binaries",
        "Where postgres, pg_ctl and pg_controldata are. When empty: the directory of \
         pgctl if set, else /usr/lib/postgresql/<PG_VERSION of the data directory>/bin \
         when it exists, else the newest /usr/lib/postgresql/<version>/bin, else /usr/bin.",
    ),
    ParamSpec::string(
        "pgctl",
        "Path of pg_ctl",
        "Accepted as in ocf:heartbeat:pgsql: its directory is used as bindir.",
    ),
    ParamSpec::string(
        "psql",
        "Path of psql (unused)",
        "Accepted for compatibility with ocf:heartbeat:pgsql; the monitor speaks the \
         PostgreSQL protocol itself and starts no psql.",
    ),
    ParamSpec::string(
        "system_user",
        "System user of the server",
        "The operating system user postgres runs as (the owner of the data directory). \
         Overrides pgdba. Never root.",
    ),
    ParamSpec::string(
        "pgdba",
        "System user of the server (pgsql name)",
        "The name ocf:heartbeat:pgsql gives system_user.",
    )
    .default("postgres"),
    ParamSpec::integer("pgport", "Port", "The port the server listens on (-p).").default("5432"),
    ParamSpec::string(
        "socketdir",
        "Unix socket directory of the server",
        "Passed to postgres as -k, created for the system user when missing. When empty \
         the server's configuration decides.",
    ),
    ParamSpec::string(
        "pghost",
        "Where the monitor connects",
        "A socket directory (absolute path) or a host name. When empty: socketdir, else \
         the socket directory the running server wrote into postmaster.pid, else \
         /var/run/postgresql.",
    ),
    ParamSpec::string(
        "start_opts",
        "Extra options of postgres",
        "Options appended to the postgres command line, split into words as a shell would \
         quote them but never passed to a shell (-c work_mem=4MB -c 'listen_addresses=').",
    ),
    ParamSpec::string(
        "start_opt",
        "Extra options of postgres (pgsql name)",
        "The name ocf:heartbeat:pgsql gives start_opts; used when start_opts is empty.",
    ),
    ParamSpec::string(
        "config",
        "Path of postgresql.conf",
        "Passed as -c config_file=... when set.",
    ),
    ParamSpec::string(
        "logfile",
        "Server log file",
        "The server's standard output and error are appended here (created for the system \
         user). The tail of this file is quoted when a start fails.",
    )
    .default("/dev/null"),
    ParamSpec::string(
        "pgdb",
        "Database the monitor connects to",
        "The database of the monitor's connection.",
    )
    .default("template1"),
    ParamSpec::string(
        "monitor_user",
        "User of the monitor's connection",
        "The database user of the monitor. When empty, the system user, connecting with \
         that operating system identity (peer authentication works).",
    ),
    ParamSpec::string(
        "monitor_password",
        "Password of the monitor user (discouraged)",
        "Visible in the CIB; prefer monitor_password_file.",
    ),
    ParamSpec::string(
        "monitor_password_file",
        "File holding the monitor user's password",
        "A file readable by root whose first line is the password.",
    ),
    ParamSpec::string(
        "monitor_sql",
        "Monitor statement",
        "The statement the monitor runs. It runs with statement_timeout and lock_timeout \
         set below the monitor's deadline and synchronous_commit=local.",
    )
    .default("select 1"),
    ParamSpec::integer(
        "connect_timeout",
        "Monitor connect timeout (seconds)",
        "The longest the monitor waits for a connection, further capped by the \
         operation's deadline.",
    )
    .default("5"),
    ParamSpec::integer(
        "stop_escalate",
        "Seconds of fast shutdown before immediate",
        "How long stop waits for a fast shutdown before an immediate one, at most half of \
         the stop's remaining time. Immediate shutdown gets half of what then remains, \
         then every process of the cluster is killed.",
    )
    .default("90"),
    ParamSpec::string(
        "expected_mount",
        "Mount point or device the data must be on",
        "When set, start refuses to run unless the data directory is on this mount point \
         (or on a file system mounted from this device): no server is started on an empty \
         directory left by a failed mount.",
    ),
];

static ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 120),
    ActionSpec::new(Action::Stop, 120),
    ActionSpec::new(Action::Monitor, 30).interval(15).depth(0),
    ActionSpec::new(Action::Monitor, 30).interval(60).depth(10),
    ActionSpec::new(Action::Reload, 60),
    ActionSpec::new(Action::MetaData, 5),
    ActionSpec::new(Action::ValidateAll, 20),
];

pub static INFO: AgentInfo = AgentInfo {
    name: "postgresql",
    shortdesc: "PostgreSQL server (single instance)",
    longdesc: "Manages one PostgreSQL server run as its system user: a start bounded by \
        the operation timeout that recovers a crashed cluster, a monitor that checks the \
        postmaster's identity and asks the server over its native protocol, and a stop \
        that escalates from fast to immediate shutdown to SIGKILL and verifies that no \
        process of the cluster is left. Parameter names follow ocf:heartbeat:pgsql and PAF.",
    params: PARAMS,
    actions: ACTIONS,
};

/// A monitor could not get an answer from the server.
impl ExitCode for ProbeError {
    fn code(&self) -> OcfCode {
        OcfCode::ErrGeneric
    }
}
crate::agent_failure!(ProbeError);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    pub pgdata: PathBuf,
    pub datadir: PathBuf,
    pub bindir: Option<PathBuf>,
    pub user: String,
    pub port: u16,
    pub socketdir: Option<PathBuf>,
    pub pghost: Option<String>,
    pub start_args: Vec<String>,
    pub config: Option<PathBuf>,
    pub logfile: PathBuf,
    pub pgdb: String,
    pub monitor_user: Option<String>,
    pub monitor_password: Option<String>,
    pub monitor_password_file: Option<PathBuf>,
    pub monitor_sql: String,
    pub connect_timeout: Duration,
    pub stop_escalate: Duration,
    pub expected_mount: Option<PathBuf>,
}

impl PgConfig {
    /// The binaries' directory, resolved as the bindir parameter describes.
    pub fn bindir(&self) -> PathBuf {
        if let Some(b) = &self.bindir {
            return b.clone();
        }
        if let Ok(v) = std::fs::read_to_string(self.datadir.join("PG_VERSION")) {
            let v = v.trim();
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                let d = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
                if d.join("postgres").exists() {
                    return d;
                }
            }
        }
        // No readable PG_VERSION (the data is not there): the newest Debian install.
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("postgres").exists().then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions
            .pop()
            .map(|(_, b)| b)
            .unwrap_or_else(|| PathBuf::from("/usr/bin"))
    }
}

fn abs_path(name: &'static str, v: &str) -> Result<PathBuf, ParamError> {
    let v = v.trim();
    if !v.starts_with('/') {
        return Err(ParamError::invalid(name, v, "must be an absolute path"));
    }
    if v.contains('\0') {
        return Err(ParamError::invalid(name, v, "contains NUL"));
    }
    let p = PathBuf::from(v);
    Ok(if p.as_os_str().len() > 1 {
        PathBuf::from(v.trim_end_matches('/'))
    } else {
        p
    })
}

fn user_name(name: &'static str, v: &str) -> Result<String, ParamError> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !v.starts_with('-');
    if ok {
        Ok(v.to_string())
    } else {
        Err(ParamError::invalid(name, v, "not a valid user name"))
    }
}

pub fn configure(p: &Params) -> Result<PgConfig, ParamError> {
    let pgdata = abs_path("pgdata", p.str("pgdata").unwrap_or("/var/lib/pgsql/data"))?;
    let datadir = match p.str("datadir") {
        Some(d) => abs_path("datadir", d)?,
        None => pgdata.clone(),
    };
    let bindir = match (p.str("bindir"), p.str("pgctl")) {
        (Some(b), _) => Some(abs_path("bindir", b)?),
        (None, Some(c)) => {
            let c = abs_path("pgctl", c)?;
            Some(c.parent().map(Path::to_path_buf).unwrap_or(c))
        }
        (None, None) => None,
    };
    let user = match p.str("system_user") {
        Some(u) => user_name("system_user", u)?,
        None => user_name("pgdba", p.str("pgdba").unwrap_or("postgres"))?,
    };
    let port = p.int_in("pgport", 1, 65535)?.unwrap_or(5432) as u16;
    let socketdir = p
        .str("socketdir")
        .map(|s| abs_path("socketdir", s))
        .transpose()?;
    let pghost = p.str("pghost").map(|h| h.trim().to_string());
    if let Some(h) = &pghost {
        if h.contains(char::is_whitespace) || h.contains('\0') {
            return Err(ParamError::invalid(
                "pghost",
                h.as_str(),
                "not a host or directory",
            ));
        }
    }
    let (opt_name, opts) = match p.str("start_opts") {
        Some(o) => ("start_opts", Some(o)),
        None => ("start_opt", p.str("start_opt")),
    };
    let start_args = match opts {
        Some(o) => split_words(o).map_err(|why| ParamError::invalid(opt_name, o, why))?,
        None => Vec::new(),
    };
    let config = p.str("config").map(|c| abs_path("config", c)).transpose()?;
    let logfile = abs_path("logfile", p.str("logfile").unwrap_or("/dev/null"))?;
    let pgdb = p.str("pgdb").unwrap_or("template1").trim().to_string();
    let monitor_user = p
        .str("monitor_user")
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    let monitor_password = p.str("monitor_password").map(str::to_string);
    let monitor_password_file = p
        .str("monitor_password_file")
        .map(|f| abs_path("monitor_password_file", f))
        .transpose()?;
    let monitor_sql = p.str("monitor_sql").unwrap_or("select 1").to_string();
    let connect_timeout = p.int_in("connect_timeout", 1, 3600)?.unwrap_or(5);
    let stop_escalate = p.int_in("stop_escalate", 0, 86_400)?.unwrap_or(90);
    let expected_mount = p
        .str("expected_mount")
        .map(|m| abs_path("expected_mount", m))
        .transpose()?;
    Ok(PgConfig {
        pgdata,
        datadir,
        bindir,
        user,
        port,
        socketdir,
        pghost,
        start_args,
        config,
        logfile,
        pgdb,
        monitor_user,
        monitor_password,
        monitor_password_file,
        monitor_sql,
        connect_timeout: Duration::from_secs(connect_timeout as u64),
        stop_escalate: Duration::from_secs(stop_escalate as u64),
        expected_mount,
    })
}

/// The agent. Single-instance mode is the only mode so far.
pub struct Postgresql;

impl FromParams for PgConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
}

impl Agent for Postgresql {
    type Config = PgConfig;

    fn info(&self) -> &'static AgentInfo {
        &INFO
    }

    fn validate(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        instance::validate(cfg, ctx).map(|_| ())
    }

    fn start(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        single::start(cfg, ctx)
    }

    fn stop(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        single::stop(cfg, ctx)
    }

    fn monitor(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<Status, OcfError> {
        single::monitor(&crate::sys::pg::RealPg, cfg, ctx)
    }

    fn reload(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        single::reload(cfg, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocf::env::OcfEnv;

    fn params(pairs: &[(&str, &str)]) -> Result<PgConfig, ParamError> {
        let env = OcfEnv::from_map(
            pairs
                .iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
                .collect(),
        );
        configure(&Params::parse(PARAMS, &env)?)
    }

    #[test]
    fn defaults_follow_pgsql() {
        let c = params(&[]).unwrap();
        assert_eq!(c.pgdata, Path::new("/var/lib/pgsql/data"));
        assert_eq!(c.datadir, c.pgdata);
        assert_eq!(c.user, "postgres");
        assert_eq!(c.port, 5432);
        assert_eq!(c.logfile, Path::new("/dev/null"));
        assert_eq!(c.monitor_sql, "select 1");
        assert_eq!(c.stop_escalate, Duration::from_secs(90));
    }

    #[test]
    fn pgsql_and_paf_names() {
        let c = params(&[
            ("pgctl", "/usr/lib/postgresql/15/bin/pg_ctl"),
            ("pgdba", "dba"),
            ("start_opt", "-c work_mem=4MB"),
        ])
        .unwrap();
        assert_eq!(
            c.bindir.as_deref(),
            Some(Path::new("/usr/lib/postgresql/15/bin"))
        );
        assert_eq!(c.user, "dba");
        assert_eq!(c.start_args, ["-c", "work_mem=4MB"]);
        let c = params(&[
            ("bindir", "/opt/pg/bin/"),
            ("pgctl", "/usr/bin/pg_ctl"),
            ("pgdba", "dba"),
            ("system_user", "pg"),
            ("start_opts", "-c a=1"),
            ("start_opt", "-c b=2"),
        ])
        .unwrap();
        assert_eq!(c.bindir.as_deref(), Some(Path::new("/opt/pg/bin")));
        assert_eq!(c.user, "pg");
        assert_eq!(c.start_args, ["-c", "a=1"]);
    }

    #[test]
    fn bad_values_name_the_parameter() {
        let e = params(&[("pgdata", "relative/dir")]).unwrap_err();
        assert!(e.to_string().contains("pgdata"), "{e}");
        assert!(params(&[("pgport", "70000")]).is_err());
        assert!(params(&[("system_user", "a b")]).is_err());
        assert!(params(&[("system_user", "-x")]).is_err());
        let e = params(&[("start_opts", "-c 'x")]).unwrap_err();
        assert!(e.to_string().contains("unterminated"), "{e}");
    }

    #[test]
    fn promotion_is_not_advertised() {
        for a in [Action::Promote, Action::Demote, Action::Notify] {
            assert!(!INFO.advertises(a));
        }
    }
}
