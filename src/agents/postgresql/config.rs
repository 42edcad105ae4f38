//! The configuration of one instance, decoded from the parameter table: the one place
//! where a parameter value becomes a typed setting. Only pgdata and datadir identify
//! the server; a bad value of any other parameter is recorded, not fatal, so probes and
//! stop still find a running server (see [`PgConfig::check`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{words, PARAMS};
use crate::ocf::env::OcfEnv;
use crate::ocf::params::{ParamError, ParamType, Params};
use crate::ocf::OcfError;
use crate::sys::pg::PgDir;
use crate::sys::runner::Credentials;

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
    /// How the monitor connects and what it asks.
    pub monitor: MonitorConn,
    pub stop_escalate: Duration,
    pub expected_mount: Option<PathBuf>,
    /// The replication parameters, decoded in every mode.
    pub repl: Repl,
    /// The promotable streaming-replication mode (see [`super::replication`]), chosen
    /// from `mode` and the clone meta-data by the agent's `configure`.
    pub replication: bool,
    /// Parameters whose values do not decode (name, error). validate-all, start and
    /// reload refuse any of them, the monitor those of [`MONITOR_PARAMS`] once it found
    /// a server; probes and stop still find the server from pgdata and datadir.
    pub invalid: Vec<(&'static str, ParamError)>,
}

impl PgConfig {
    /// The first invalid parameter among `names` (among all with `None`), as the
    /// configuration error naming it.
    pub fn check(&self, names: Option<&[&str]>) -> Result<(), OcfError> {
        match self
            .invalid
            .iter()
            .find(|(n, _)| names.is_none_or(|ns| ns.contains(n)))
        {
            Some((_, e)) => Err(OcfError::Param(e.clone())),
            None => Ok(()),
        }
    }

    /// The data directory with the binaries, as the system user `creds`.
    pub fn pg_dir<'a>(&'a self, creds: &'a Credentials) -> PgDir<'a> {
        PgDir {
            bindir: self.bindir(),
            datadir: &self.datadir,
            creds,
        }
    }

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

/// The monitor's connection: the database, the role and its password (`None`: the
/// system user, over the socket), the statement and how long a connection may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConn {
    pub pgdb: String,
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub sql: String,
    pub connect_timeout: Duration,
}

impl MonitorConn {
    /// The password: the first line of `monitor_password_file`, else `monitor_password`.
    pub fn password(&self) -> Result<Option<String>, OcfError> {
        let Some(f) = &self.password_file else {
            return Ok(self.password.clone());
        };
        let text = std::fs::read_to_string(f).map_err(|e| {
            OcfError::Installed(format!("monitor_password_file {}: {e}", f.display()))
        })?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }
}

fn monitor_params(p: &Params, bad: &mut Vec<(&'static str, ParamError)>) -> MonitorConn {
    let password_file = opt_path(p, "monitor_password_file");
    let connect_timeout = p.int_in("connect_timeout", 1, 3600);
    MonitorConn {
        pgdb: p.str_value("pgdb").trim().to_string(),
        user: p
            .str("monitor_user")
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty()),
        password: p.str("monitor_password").map(str::to_string),
        password_file: lenient(bad, password_file, None),
        sql: p.str_value("monitor_sql").to_string(),
        connect_timeout: Duration::from_secs(lenient(bad, connect_timeout, 1) as u64),
    }
}

/// `mode`: which mode the agent runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeParam {
    /// Replication in a promotable clone (or with `rep_mode` async or sync), else single.
    Auto,
    Single,
    Replication,
}

/// The parts of a standby's `primary_conninfo` the parameters give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The primary's host (the service address) standbys stream from (`master_ip`).
    pub host: Option<String>,
    /// `repuser`.
    pub user: String,
    /// Further `key=value` words (`primary_conninfo_opt`).
    pub opts: Option<String>,
}

/// How far behind a standby may be and still be a promotion candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagLimits {
    /// Bytes of lag (`maxlag`; 0: no limit).
    pub bytes: u64,
    /// Seconds of replay lag (`maxlag_time`; 0: no limit).
    pub seconds: u64,
}

/// The settings of the replication mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repl {
    pub mode: ModeParam,
    /// `rep_mode` async or sync (pgsql's names) asks for replication; sync also manages
    /// `synchronous_standby_names`.
    pub rep_mode: Option<String>,
    /// How a standby connects to the primary.
    pub upstream: Upstream,
    pub recovery_template: Option<PathBuf>,
    /// `maxlag` and `maxlag_time`.
    pub lag: LagLimits,
    /// Manage `synchronous_standby_names` on the primary.
    pub sync: bool,
    /// With `sync`: a primary without any streaming standby goes on accepting writes
    /// (its synchronous_standby_names emptied); otherwise writes wait for a standby.
    pub lone_primary_writes: bool,
    /// This node's name: `application_name` of its `primary_conninfo`. Set by the
    /// agent's `configure` (from `CRM_meta_on_node` or the cluster).
    pub node: String,
}

fn conninfo_words(name: &'static str, v: &str) -> Result<Option<String>, ParamError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    for w in v.split_whitespace() {
        let Some((k, val)) = w.split_once('=') else {
            return Err(ParamError::invalid(name, v, "words must be key=value"));
        };
        if k.is_empty() || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(ParamError::invalid(name, v, "not a connection keyword"));
        }
        if val.contains(['\'', '\\']) {
            return Err(ParamError::invalid(
                name,
                v,
                "quotes and backslashes are not accepted",
            ));
        }
        if ["host", "user", "application_name"].contains(&k) {
            return Err(ParamError::invalid(
                name,
                v,
                "host, user and application_name are set by the agent \
                 (master_ip, repuser, the node name)",
            ));
        }
    }
    Ok(Some(v.split_whitespace().collect::<Vec<_>>().join(" ")))
}

fn host_name(name: &'static str, v: &str) -> Result<Option<String>, ParamError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let ok = v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:_".contains(&b));
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(ParamError::invalid(name, v, "not a host name or address"))
    }
}

fn repl_params(p: &Params, bad: &mut Vec<(&'static str, ParamError)>) -> Repl {
    let mode = match p.str_value("mode").trim() {
        "auto" | "" => Ok(ModeParam::Auto),
        "single" => Ok(ModeParam::Single),
        "replication" => Ok(ModeParam::Replication),
        other => Err(ParamError::invalid(
            "mode",
            other,
            "must be auto, single or replication",
        )),
    };
    let mode = lenient(bad, mode, ModeParam::Auto);
    let rep_mode = match p.str_value("rep_mode").trim() {
        "none" | "" => Ok(None),
        m @ ("async" | "sync") => Ok(Some(m.to_string())),
        other => Err(ParamError::invalid(
            "rep_mode",
            other,
            "must be none, async or sync",
        )),
    };
    let rep_mode = lenient(bad, rep_mode, None);
    let primary_host = host_name("master_ip", p.str("master_ip").unwrap_or(""));
    let primary_host = lenient(bad, primary_host, None);
    let repuser = user_name("repuser", p.str_value("repuser"));
    let repuser = lenient(bad, repuser, String::new());
    let conninfo_opt = conninfo_words(
        "primary_conninfo_opt",
        p.str("primary_conninfo_opt").unwrap_or(""),
    );
    let conninfo_opt = lenient(bad, conninfo_opt, None);
    let recovery_template = p
        .str("recovery_template")
        .filter(|t| !t.trim().is_empty())
        .map(|t| abs_path("recovery_template", t))
        .transpose();
    let recovery_template = lenient(bad, recovery_template, None);
    let maxlag = p.int_in("maxlag", 0, i64::MAX).map(|v| v as u64);
    let maxlag = lenient(bad, maxlag, 0);
    let maxlag_time = p
        .int_in("maxlag_time", 0, i64::from(u32::MAX))
        .map(|v| v as u64);
    let maxlag_time = lenient(bad, maxlag_time, 0);
    Repl {
        mode,
        sync: rep_mode.as_deref() == Some("sync"),
        rep_mode,
        upstream: Upstream {
            host: primary_host,
            user: repuser,
            opts: conninfo_opt,
        },
        recovery_template,
        lag: LagLimits {
            bytes: maxlag,
            seconds: maxlag_time,
        },
        lone_primary_writes: p.bool("lone_primary_writes"),
        node: String::new(),
    }
}

pub fn abs_path(name: &'static str, v: &str) -> Result<PathBuf, ParamError> {
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

/// An optional absolute path parameter.
fn opt_path(p: &Params, name: &'static str) -> Result<Option<PathBuf>, ParamError> {
    p.str(name).map(|v| abs_path(name, v)).transpose()
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

/// The parameters a monitor uses besides the identity of the data directory.
pub const MONITOR_PARAMS: &[&str] = &[
    "pgport",
    "socketdir",
    "pghost",
    "pgdb",
    "monitor_user",
    "monitor_password",
    "monitor_password_file",
    "monitor_sql",
    "connect_timeout",
    "system_user",
    "pgdba",
    "bindir",
    "pgctl",
];

/// The value of a parameter that decodes, or `fallback` with the error recorded: only
/// pgdata and datadir identify the server, so a bad value elsewhere must not hide a
/// running one (the actions that use the value refuse it, see [`PgConfig::check`]).
fn lenient<T>(
    bad: &mut Vec<(&'static str, ParamError)>,
    r: Result<T, ParamError>,
    fallback: T,
) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            bad.push((e.name(), e));
            fallback
        }
    }
}

pub fn configure(p: &Params) -> Result<PgConfig, ParamError> {
    let pgdata = abs_path("pgdata", p.str_value("pgdata"))?;
    let datadir = match p.str("datadir") {
        Some(d) => abs_path("datadir", d)?,
        None => pgdata.clone(),
    };
    let mut bad = Vec::new();
    let bindir = match (p.str("bindir"), p.str("pgctl")) {
        (Some(b), _) => abs_path("bindir", b).map(Some),
        (None, Some(c)) => {
            abs_path("pgctl", c).map(|c| Some(c.parent().map(Path::to_path_buf).unwrap_or(c)))
        }
        (None, None) => Ok(None),
    };
    let bindir = lenient(&mut bad, bindir, None);
    let user = match p.str("system_user") {
        Some(u) => user_name("system_user", u),
        None => user_name("pgdba", p.str_value("pgdba")),
    };
    let user = lenient(&mut bad, user, String::new());
    let port = p.int_in("pgport", 1, 65535).map(|v| v as u16);
    let port = lenient(&mut bad, port, 0);
    let socketdir = opt_path(p, "socketdir");
    let socketdir = lenient(&mut bad, socketdir, None);
    let pghost = p.str("pghost").map(|h| h.trim().to_string());
    let pghost =
        match pghost {
            Some(h) if h.contains(char::is_whitespace) || h.contains('\0') => Err(
                ParamError::invalid("pghost", h.as_str(), "not a host or directory"),
            ),
            Some(h) if h.starts_with('/') => {
                abs_path("pghost", &h).map(|d| Some(d.display().to_string()))
            }
            other => Ok(other),
        };
    let pghost = lenient(&mut bad, pghost, None);
    // A socket directory named only by pghost is where the server must listen too.
    let socketdir = socketdir.or_else(|| {
        pghost
            .as_deref()
            .filter(|h| h.starts_with('/'))
            .map(PathBuf::from)
    });
    let (opt_name, opts) = match p.str("start_opts") {
        Some(o) => ("start_opts", Some(o)),
        None => ("start_opt", p.str("start_opt")),
    };
    let start_args = match opts {
        Some(o) => words::split(o).map_err(|why| ParamError::invalid(opt_name, o, why)),
        None => Ok(Vec::new()),
    };
    let start_args = lenient(&mut bad, start_args, Vec::new());
    let config = opt_path(p, "config");
    let config = lenient(&mut bad, config, None);
    let logfile = abs_path("logfile", p.str_value("logfile"));
    let logfile = lenient(&mut bad, logfile, PathBuf::new());
    let monitor = monitor_params(p, &mut bad);
    let stop_escalate = p.int_in("stop_escalate", 0, 86_400);
    let stop_escalate = lenient(&mut bad, stop_escalate, 86_400);
    let expected_mount = opt_path(p, "expected_mount");
    let expected_mount = lenient(&mut bad, expected_mount, None);
    let repl = repl_params(p, &mut bad);
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
        monitor,
        stop_escalate: Duration::from_secs(stop_escalate as u64),
        expected_mount,
        repl,
        replication: false,
        invalid: bad,
    })
}

/// The configuration of a stop whose parameters did not even parse (an integer
/// parameter that is not a number): the same decoding without the values of the
/// declared type that failed, which are recorded as invalid. `None` when the data
/// directory itself cannot be decoded: nothing is identified, nothing is touched.
pub fn configure_from_env(env: &OcfEnv) -> Option<PgConfig> {
    let mut vars = std::collections::BTreeMap::new();
    let mut bad = Vec::new();
    for (k, v) in env.raw_params() {
        let spec = PARAMS.iter().find(|s| s.name == k);
        if let Some(spec) = spec {
            if spec.ty == ParamType::Integer
                && !v.trim().is_empty()
                && v.trim().parse::<i64>().is_err()
            {
                bad.push((
                    spec.name,
                    ParamError::invalid(spec.name, v, "not an integer"),
                ));
                continue;
            }
        }
        vars.insert(format!("OCF_RESKEY_{k}"), v.to_string());
    }
    let params = Params::parse(PARAMS, &OcfEnv::from_map(vars)).ok()?;
    let mut cfg = configure(&params).ok()?;
    cfg.invalid.extend(bad);
    Some(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocf::params::test_env;
    use crate::ocf::{ExitCode, OcfCode};

    fn params(pairs: &[(&str, &str)]) -> Result<PgConfig, ParamError> {
        configure(&Params::parse(PARAMS, &test_env(pairs))?)
    }

    #[test]
    fn defaults_follow_pgsql() {
        let c = params(&[]).unwrap();
        assert_eq!(c.pgdata, Path::new("/var/lib/pgsql/data"));
        assert_eq!(c.datadir, c.pgdata);
        assert_eq!(c.user, "postgres");
        assert_eq!(c.port, 5432);
        assert_eq!(c.logfile, Path::new("/dev/null"));
        assert_eq!(c.monitor.sql, "select 1");
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
        let refused = |pairs: &[(&str, &str)]| params(pairs).unwrap().check(None).unwrap_err();
        assert!(refused(&[("pgport", "70000")])
            .to_string()
            .contains("pgport"));
        assert!(refused(&[("system_user", "a b")])
            .to_string()
            .contains("system_user"));
        assert!(refused(&[("system_user", "-x")])
            .to_string()
            .contains("system_user"));
        let e = refused(&[("start_opts", "-c 'x")]);
        assert!(e.to_string().contains("unterminated"), "{e}");
    }

    #[test]
    fn an_unrelated_bad_value_keeps_the_identity_and_is_refused_where_used() {
        let c = params(&[
            ("pgdata", "/srv/pg"),
            ("start_opts", "-c 'x"),
            ("connect_timeout", "0"),
        ])
        .unwrap();
        assert_eq!(c.datadir, Path::new("/srv/pg"));
        assert!(c.check(Some(&["stop_escalate"])).is_ok());
        let e = c.check(Some(MONITOR_PARAMS)).unwrap_err();
        assert!(e.to_string().contains("connect_timeout"), "{e}");
        assert_eq!(e.code(), OcfCode::ErrConfigured);
        assert!(c.check(None).is_err());
        // Not even an integer: the stop of an unparsable configuration still finds pgdata.
        let env = test_env(&[("pgdata", "/srv/pg"), ("pgport", "five")]);
        assert!(Params::parse(PARAMS, &env).is_err());
        let c = configure_from_env(&env).unwrap();
        assert_eq!(c.datadir, Path::new("/srv/pg"));
        assert!(c.check(None).unwrap_err().to_string().contains("pgport"));
        let env = test_env(&[("pgdata", "rel")]);
        assert_eq!(configure_from_env(&env), None);
    }

    #[test]
    fn a_socket_directory_in_pghost_is_where_the_server_listens() {
        let c = params(&[("pghost", "/run/pg/")]).unwrap();
        assert_eq!(c.socketdir.as_deref(), Some(Path::new("/run/pg")));
        let c = params(&[("pghost", "/run/pg"), ("socketdir", "/run/other")]).unwrap();
        assert_eq!(c.socketdir.as_deref(), Some(Path::new("/run/other")));
        let c = params(&[("pghost", "db.example")]).unwrap();
        assert_eq!(c.socketdir, None);
    }
}
