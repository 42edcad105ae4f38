//! Where a server stands in the WAL, and the tools that move a data directory between
//! histories: what the election and the rejoin of a former primary read and run.
//!
//! - [`Lsn`]: a WAL location, printed as PostgreSQL prints it (`X/Y`).
//! - [`Checkpoints`]: the checkpoint, recovery and safety fields of `pg_controldata`.
//! - [`WalState`]: one SQL round trip on a running server: in recovery or not, the
//!   primary's flushed location, a standby's received and replayed locations, its WAL
//!   receiver and the control file's recovery point.
//! - [`Replica`]: the rows of `pg_stat_replication` on a primary.
//! - [`shutdown_checkpoint_in`]: `pg_waldump` over a WAL range, looking for a shutdown
//!   checkpoint record (the planned-switchover check).
//! - [`History`]: a timeline history file, read from a server over a replication
//!   connection (`TIMELINE_HISTORY`) with `psql`.
//! - [`rewind`], [`basebackup`]: `pg_rewind` and `pg_basebackup` as the system user.
//!
//! Nothing here decides; it reads and runs, with typed results.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::client::{self, Probe, ProbeError};
use super::control::{self, parse_lsn, ClusterState};
use crate::sys::error::{SysError, SysResult};
use crate::sys::runner::{self, Cmd, Credentials, Outcome};

/// A WAL location (64 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `X/Y`.
    pub fn parse(s: &str) -> Option<Lsn> {
        parse_lsn(s).map(Lsn)
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// The fields of `pg_controldata` the election and the rejoin use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoints {
    pub state: ClusterState,
    /// `Database system identifier`.
    pub system_identifier: String,
    /// `Latest checkpoint location`.
    pub checkpoint: Lsn,
    /// `Latest checkpoint's REDO location`.
    pub redo: Lsn,
    /// `Latest checkpoint's TimeLineID`.
    pub timeline: u32,
    /// `Minimum recovery ending location` (0/0 outside recovery).
    pub min_recovery: Lsn,
    /// `Min recovery ending loc's timeline` (0 outside recovery).
    pub min_recovery_timeline: u32,
    /// `wal_log_hints setting`.
    pub wal_log_hints: bool,
    /// `Data page checksum version` is not 0.
    pub checksums: bool,
}

impl Checkpoints {
    /// Parses the output of `LC_ALL=C pg_controldata`.
    pub fn parse(text: &str) -> SysResult<Checkpoints> {
        let mut f = std::collections::BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                f.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let get = |k: &str| -> SysResult<&str> {
            f.get(k)
                .map(String::as_str)
                .ok_or_else(|| SysError::Invalid(format!("pg_controldata printed no {k:?}")))
        };
        let lsn = |k: &str| -> SysResult<Lsn> {
            let v = get(k)?;
            Lsn::parse(v).ok_or_else(|| {
                SysError::Invalid(format!("pg_controldata: {k} {v:?} is not an LSN"))
            })
        };
        let num = |k: &str| -> SysResult<u32> {
            let v = get(k)?;
            v.parse().map_err(|_| {
                SysError::Invalid(format!("pg_controldata: {k} {v:?} is not a number"))
            })
        };
        Ok(Checkpoints {
            state: ClusterState::parse(get("Database cluster state")?),
            system_identifier: get("Database system identifier")?.to_string(),
            checkpoint: lsn("Latest checkpoint location")?,
            redo: lsn("Latest checkpoint's REDO location")?,
            timeline: num("Latest checkpoint's TimeLineID")?,
            min_recovery: lsn("Minimum recovery ending location")?,
            min_recovery_timeline: num("Min recovery ending loc's timeline")?,
            wal_log_hints: get("wal_log_hints setting")? == "on",
            checksums: num("Data page checksum version")? != 0,
        })
    }

    /// Runs `pg_controldata` on the data directory as its owner.
    pub fn read(at: &Local, deadline: Instant) -> SysResult<Checkpoints> {
        Checkpoints::parse(&control::text(at.bindir, at.datadir, at.creds, deadline)?)
    }
}

/// A stopped (or crashed) data directory and the installation that reads it: where its
/// control file and its own WAL are read from, with which tools, as which user.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    pub bindir: &'a Path,
    pub datadir: &'a Path,
    /// The data directory's owner: the tools run as this user.
    pub creds: &'a Credentials,
}

/// The current primary as this node reaches it over a replication connection: with the
/// local installation's psql, run as the data directory's owner.
#[derive(Debug, Clone, Copy)]
pub struct Primary<'a> {
    pub bindir: &'a Path,
    /// libpq connection string of the primary.
    pub conninfo: &'a str,
    pub creds: &'a Credentials,
}

/// A running server's WAL, read in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalState {
    pub in_recovery: bool,
    /// A primary's flushed location (`pg_current_wal_flush_lsn()`); `None` on a standby.
    pub flushed: Option<Lsn>,
    /// A standby's last received location (`None` when nothing was streamed since start).
    pub received: Option<Lsn>,
    /// A standby's last replayed location.
    pub replayed: Option<Lsn>,
    /// The WAL receiver's status (`streaming`, ...) when there is one.
    pub receiver: Option<String>,
    /// The timeline the receiver last received on.
    pub received_timeline: Option<u32>,
    /// The timeline of the latest checkpoint (or restartpoint) in the control file.
    pub checkpoint_timeline: u32,
    /// The control file's minimum recovery point and its timeline (0/0 and 0 on a primary).
    pub min_recovery: Lsn,
    pub min_recovery_timeline: u32,
    /// A primary's current timeline (from its current WAL file name).
    pub primary_timeline: Option<u32>,
}

/// The statement of [`wal_state`]: every column is text, so the answer reads the same
/// through the simple query protocol.
pub const WAL_STATE_SQL: &str = "select pg_is_in_recovery(), \
     case when pg_is_in_recovery() then null else pg_current_wal_flush_lsn() end, \
     pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn(), \
     (select status from pg_stat_wal_receiver), \
     (select received_tli from pg_stat_wal_receiver), \
     (select timeline_id from pg_control_checkpoint()), \
     (select min_recovery_end_lsn from pg_control_recovery()), \
     (select min_recovery_end_timeline from pg_control_recovery()), \
     case when pg_is_in_recovery() then null \
          else ('x' || substr(pg_walfile_name(pg_current_wal_flush_lsn()), 1, 8))::bit(32)::int end";

/// Reads the text columns of one row, naming the server and the column in an error.
struct Cols<'a> {
    target: &'a str,
    row: &'a client::Row,
}

impl Cols<'_> {
    /// Column `i` as text (`None` for NULL or a missing column).
    fn text(&self, i: usize) -> Option<String> {
        self.row.get(i).cloned().flatten()
    }

    /// Column `i` decoded with `parse`; NULL and a value that does not decode are `None`.
    fn lenient<T>(&self, i: usize, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        self.text(i).and_then(|v| parse(&v))
    }

    fn bad(&self, what: &str, v: &Option<String>) -> ProbeError {
        ProbeError::Query {
            target: self.target.to_string(),
            msg: format!("unexpected {what}: {v:?}"),
        }
    }

    /// Column `i` decoded with `parse` (`None` for NULL); a value that does not decode is
    /// an error naming `what`.
    fn decoded<T>(
        &self,
        i: usize,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, ProbeError> {
        match self.text(i) {
            None => Ok(None),
            Some(v) => parse(&v).map(Some).ok_or_else(|| self.bad(what, &Some(v))),
        }
    }

    fn lsn(&self, i: usize, what: &str) -> Result<Option<Lsn>, ProbeError> {
        self.decoded(i, what, Lsn::parse)
    }

    fn num<T: std::str::FromStr>(&self, i: usize, what: &str) -> Result<Option<T>, ProbeError> {
        self.decoded(i, what, |v| v.parse().ok())
    }
}

impl WalState {
    /// Reads one row of [`WAL_STATE_SQL`].
    pub fn from_row(target: &str, r: &client::Row) -> Result<WalState, ProbeError> {
        let c = Cols { target, row: r };
        let in_recovery = match c.text(0).as_deref() {
            Some("t") => true,
            Some("f") => false,
            _ => return Err(c.bad("pg_is_in_recovery()", &c.text(0))),
        };
        Ok(WalState {
            in_recovery,
            flushed: c.lsn(1, "flush location")?,
            received: c.lsn(2, "received location")?,
            replayed: c.lsn(3, "replayed location")?,
            receiver: c.text(4),
            received_timeline: c.num(5, "received timeline")?,
            checkpoint_timeline: c.num(6, "checkpoint timeline")?.unwrap_or(0),
            min_recovery: c.lsn(7, "minimum recovery point")?.unwrap_or_default(),
            min_recovery_timeline: c.num(8, "minimum recovery timeline")?.unwrap_or(0),
            primary_timeline: c.num(9, "current timeline")?,
        })
    }
}

/// Runs [`WAL_STATE_SQL`] on the server `base` connects to (its `sql` is replaced).
pub fn wal_state(base: &Probe, deadline: Instant) -> Result<WalState, ProbeError> {
    let p = Probe {
        sql: WAL_STATE_SQL.into(),
        ..base.clone()
    };
    let rows = client::rows(&p, deadline)?;
    let r = rows.first().ok_or_else(|| ProbeError::Query {
        target: p.target(),
        msg: "no row".into(),
    })?;
    WalState::from_row(&p.target(), r)
}

/// Asks for a checkpoint (a restartpoint on a standby), so the control file shows the
/// latest timeline and checkpoint.
pub fn checkpoint(base: &Probe, deadline: Instant) -> Result<(), ProbeError> {
    let p = Probe {
        sql: "checkpoint".into(),
        ..base.clone()
    };
    client::rows(&p, deadline).map(|_| ())
}

/// The locations a standby reported to the primary: written, flushed, replayed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reached {
    pub write: Option<Lsn>,
    pub flush: Option<Lsn>,
    pub replay: Option<Lsn>,
}

/// How far a standby is behind the primary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Lag {
    /// Bytes the standby's written WAL is behind the primary's current location.
    pub bytes: Option<u64>,
    /// `replay_lag` in seconds (NULL once the standby is idle and caught up).
    pub replay_s: Option<f64>,
}

/// One row of `pg_stat_replication`, as a primary sees a standby.
#[derive(Debug, Clone, PartialEq)]
pub struct Replica {
    pub application_name: String,
    /// `startup`, `catchup`, `streaming`, `backup`, `stopping`.
    pub state: String,
    /// `async`, `potential`, `sync`, `quorum`.
    pub sync_state: String,
    pub reached: Reached,
    pub lag: Lag,
}

/// The statement of [`replicas`].
pub const REPLICAS_SQL: &str = "select application_name, state, sync_state, \
     write_lsn, flush_lsn, replay_lsn, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::bigint, \
     extract(epoch from replay_lag)::float8 \
     from pg_stat_replication";

impl Replica {
    /// Reads one row of [`REPLICAS_SQL`]; only the name is required, a value that does
    /// not decode reads as unknown.
    pub fn from_row(target: &str, r: &client::Row) -> Result<Replica, ProbeError> {
        let c = Cols { target, row: r };
        let lsn = |i: usize| c.lenient(i, Lsn::parse);
        Ok(Replica {
            application_name: c.text(0).ok_or_else(|| c.bad("application_name", &None))?,
            state: c.text(1).unwrap_or_default(),
            sync_state: c.text(2).unwrap_or_default(),
            reached: Reached {
                write: lsn(3),
                flush: lsn(4),
                replay: lsn(5),
            },
            lag: Lag {
                bytes: c
                    .lenient(6, |v| v.parse::<i64>().ok())
                    .map(|v| v.max(0) as u64),
                replay_s: c.lenient(7, |v| v.parse().ok()),
            },
        })
    }
}

/// The standbys connected to the primary `base` connects to.
pub fn replicas(base: &Probe, deadline: Instant) -> Result<Vec<Replica>, ProbeError> {
    let p = Probe {
        sql: REPLICAS_SQL.into(),
        ..base.clone()
    };
    let target = p.target();
    client::rows(&p, deadline)?
        .iter()
        .map(|r| Replica::from_row(&target, r))
        .collect()
}

/// The major version in `PG_VERSION` of a data directory.
pub fn major_version(datadir: &Path) -> SysResult<u32> {
    let p = datadir.join("PG_VERSION");
    let t = std::fs::read_to_string(&p)
        .map_err(|e| SysError::io(format!("reading {}", p.display()), e))?;
    t.trim()
        .split('.')
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| SysError::Invalid(format!("{}: not a version: {t:?}", p.display())))
}

/// Finds a shutdown checkpoint record on `timeline` in `pg_waldump` output; returns
/// its location. Reads both spellings: `CHECKPOINT_SHUTDOWN redo ...` (PostgreSQL 9.5
/// and later) and `checkpoint: redo ...; shutdown` (older).
pub fn find_shutdown_checkpoint(waldump: &str, timeline: u32) -> Option<Lsn> {
    waldump.lines().find_map(|l| {
        let desc = l.split_once("desc: ")?.1;
        let shutdown = desc.starts_with("CHECKPOINT_SHUTDOWN")
            || (desc.starts_with("checkpoint: ") && desc.trim_end().ends_with("shutdown"));
        if !shutdown || !l.trim_start().starts_with("rmgr: XLOG") {
            return None;
        }
        let tli: u32 = desc
            .split("; ")
            .find_map(|p| p.strip_prefix("tli "))?
            .trim()
            .parse()
            .ok()?;
        if tli != timeline {
            return None;
        }
        let lsn = l.split_once("lsn: ")?.1.split(',').next()?;
        Lsn::parse(lsn)
    })
}

/// Runs `pg_waldump` (`pg_xlogdump` before 10) as the owner on the data directory's
/// WAL, on `timeline` from `start`, with `until` (`--end L` or `--limit N`). Any exit
/// counts: the callers read what it printed; running out of time is an error.
fn waldump(
    at: &Local,
    timeline: u32,
    start: Lsn,
    until: [&str; 2],
    deadline: Instant,
) -> SysResult<Outcome> {
    let old = major_version(at.datadir)? < 10;
    let cmd = Cmd::new(
        at.bindir
            .join(if old { "pg_xlogdump" } else { "pg_waldump" }),
    )
    .arg("--path")
    .arg(at.datadir.join(if old { "pg_xlog" } else { "pg_wal" }))
    .args(["--timeline", &timeline.to_string()])
    .args(["--start", &start.to_string()])
    .args(until)
    .current_dir("/")
    .run_as(at.creds.clone());
    let out = runner::run(&cmd, deadline)?;
    if let Outcome::TimedOut { .. } = out {
        return Err(SysError::Timeout {
            what: cmd.display(),
        });
    }
    Ok(out)
}

/// Runs `pg_waldump` (`pg_xlogdump` before 10) on the data directory's WAL in `range`
/// on `timeline` and looks for a shutdown checkpoint record.
pub fn shutdown_checkpoint_in(
    at: &Local,
    timeline: u32,
    range: Range<Lsn>,
    deadline: Instant,
) -> SysResult<Option<Lsn>> {
    let end = range.end.to_string();
    let out = waldump(at, timeline, range.start, ["--end", &end], deadline)?;
    // pg_waldump exits 1 when the range ends inside a record it cannot read to the end
    // (the normal case at the end of streamed WAL); the records it printed still count.
    Ok(find_shutdown_checkpoint(&out.stdout_str(), timeline))
}

/// The location of the first record `pg_waldump -n 1` prints.
pub fn first_record(waldump: &str) -> Option<Lsn> {
    waldump.lines().find_map(|l| {
        if !l.trim_start().starts_with("rmgr: ") {
            return None;
        }
        Lsn::parse(l.split_once("lsn: ")?.1.split(',').next()?)
    })
}

/// The first WAL record at or after `from` on `timeline` in the data directory's own
/// WAL (`None` when its WAL ends before): where a crashed server's WAL goes on past
/// a point.
pub fn record_from(
    at: &Local,
    timeline: u32,
    from: Lsn,
    deadline: Instant,
) -> SysResult<Option<Lsn>> {
    let out = waldump(at, timeline, from, ["--limit", "1"], deadline)?;
    // No record there is exit 1 with "could not find a valid record after ...".
    Ok(first_record(&out.stdout_str()).filter(|l| *l >= from))
}

/// A timeline history file: for each earlier timeline, where the next one branched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// The timeline this history leads to.
    pub timeline: u32,
    /// (parent timeline, switch point), oldest first.
    pub forks: Vec<(u32, Lsn)>,
}

impl History {
    /// Parses the content of `0000000N.history` for timeline `timeline`.
    pub fn parse(timeline: u32, text: &str) -> SysResult<History> {
        let mut forks = Vec::new();
        for l in text.lines().map(str::trim) {
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut w = l.split_whitespace();
            let (Some(t), Some(at)) = (w.next(), w.next()) else {
                return Err(SysError::Invalid(format!(
                    "timeline {timeline} history: unexpected line {l:?}"
                )));
            };
            let t: u32 = t.parse().map_err(|_| {
                SysError::Invalid(format!(
                    "timeline {timeline} history: bad timeline in {l:?}"
                ))
            })?;
            let at = Lsn::parse(at).ok_or_else(|| {
                SysError::Invalid(format!(
                    "timeline {timeline} history: bad location in {l:?}"
                ))
            })?;
            forks.push((t, at));
        }
        Ok(History { timeline, forks })
    }

    /// Where `tli` ended in this history: `Some(switch point)` for an ancestor,
    /// `None` for the history's own timeline (it has not ended) or a timeline that
    /// is not an ancestor.
    pub fn end_of(&self, tli: u32) -> Option<Lsn> {
        self.forks
            .iter()
            .find(|(t, _)| *t == tli)
            .map(|(_, at)| *at)
    }

    /// Whether `tli` is this history's timeline or one of its ancestors.
    pub fn contains(&self, tli: u32) -> bool {
        tli == self.timeline || self.end_of(tli).is_some()
    }
}

/// A server's identity over the replication protocol (`IDENTIFY_SYSTEM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub system_identifier: String,
    pub timeline: u32,
    pub position: Lsn,
}

/// `conninfo` with `replication=true` added: a physical replication connection, the one
/// a standby's WAL receiver makes, so the `replication` lines of pg_hba.conf admit it
/// and no database is needed (`replication=database` would connect to the database
/// named like the user, which a replication role seldom has). IDENTIFY_SYSTEM and
/// TIMELINE_HISTORY are replication commands psql runs on it. The conninfo is one
/// argument to psql, never a shell string.
fn replication_conninfo(conninfo: &str) -> String {
    format!("{conninfo} replication=true")
}

fn psql_replication(primary: &Primary, command: &str, deadline: Instant) -> SysResult<String> {
    let cmd = Cmd::new(primary.bindir.join("psql"))
        .args(["-X", "-A", "-t", "-F", "\u{1f}", "-v", "ON_ERROR_STOP=1"])
        .arg("-d")
        .arg(replication_conninfo(primary.conninfo))
        .args(["-c", command])
        .current_dir("/")
        .run_as(primary.creds.clone());
    let out = runner::run(&cmd, deadline)?;
    match &out {
        Outcome::TimedOut { .. } => Err(SysError::Timeout {
            what: format!("{command} on the primary"),
        }),
        o if o.success() => Ok(o.stdout_str()),
        o => Err(SysError::Invalid(format!(
            "{command} on the primary ({}): {}",
            primary.bindir.join("psql").display(),
            o.describe()
        ))),
    }
}

/// `IDENTIFY_SYSTEM` on the primary.
pub fn identify(primary: &Primary, deadline: Instant) -> SysResult<Identity> {
    let t = psql_replication(primary, "IDENTIFY_SYSTEM", deadline)?;
    let line = t.lines().next().unwrap_or("");
    let f: Vec<&str> = line.split('\u{1f}').collect();
    let bad = || SysError::Invalid(format!("IDENTIFY_SYSTEM answered {line:?}"));
    if f.len() < 3 {
        return Err(bad());
    }
    Ok(Identity {
        system_identifier: f[0].to_string(),
        timeline: f[1].parse().map_err(|_| bad())?,
        position: Lsn::parse(f[2]).ok_or_else(bad)?,
    })
}

/// The history of `timeline` on the primary (timeline 1 has none).
pub fn timeline_history(primary: &Primary, timeline: u32, deadline: Instant) -> SysResult<History> {
    if timeline <= 1 {
        return Ok(History {
            timeline,
            forks: Vec::new(),
        });
    }
    let t = psql_replication(primary, &format!("TIMELINE_HISTORY {timeline}"), deadline)?;
    let content = t
        .split_once('\u{1f}')
        .map(|(_, c)| c)
        .ok_or_else(|| SysError::Invalid(format!("TIMELINE_HISTORY answered {t:?}")))?;
    History::parse(timeline, content)
}

/// How a `pg_rewind` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewound {
    /// Rewound (or, with `dry_run`, would be).
    Done,
    /// The servers did not diverge: nothing to do.
    NotNeeded,
}

/// The source of a `pg_rewind`: `conninfo` with `dbname=postgres` put first. pg_rewind
/// reads the primary's files over a normal connection, which needs a database, while the
/// conninfo a standby is given (a replication role's) seldom names one, and libpq would
/// then take the database named like the role. Put first, it is only a default: libpq
/// keeps the last value of a keyword, so a `dbname` the conninfo names wins. The role
/// must be a superuser or be granted `pg_ls_dir`, `pg_stat_file` and
/// `pg_read_binary_file`. PostgreSQL leaves `dbname` out of the primary_conninfo that
/// `--write-recovery-conf` writes. A connection URI is passed as it is (it names its
/// database in its path).
fn rewind_source(conninfo: &str) -> String {
    let uri = ["postgresql://", "postgres://"]
        .iter()
        .any(|p| conninfo.trim_start().starts_with(p));
    if uri {
        conninfo.to_string()
    } else {
        format!("dbname=postgres {conninfo}")
    }
}

/// `pg_rewind --target-pgdata DATADIR --source-server CONNINFO --write-recovery-conf
/// [--dry-run]` as `creds` (the connection settings land in `postgresql.auto.conf`;
/// CONNINFO as [`rewind_source`] makes it).
/// The target must be stopped; pg_rewind refuses a target without `wal_log_hints` or
/// checksums (the caller checks that first, to say so plainly).
pub fn rewind(
    bindir: &Path,
    datadir: &Path,
    conninfo: &str,
    dry_run: bool,
    creds: &Credentials,
    deadline: Instant,
) -> SysResult<Rewound> {
    let mut cmd = Cmd::new(bindir.join("pg_rewind"))
        .arg("--target-pgdata")
        .arg(datadir)
        .arg("--source-server")
        .arg(rewind_source(conninfo))
        .arg("--write-recovery-conf")
        .current_dir("/")
        .run_as(creds.clone());
    if dry_run {
        cmd = cmd.arg("--dry-run");
    }
    let out = runner::run(&cmd, deadline)?;
    let text = String::from_utf8_lossy(out.stderr()).into_owned() + &out.stdout_str();
    match &out {
        Outcome::TimedOut { .. } => Err(SysError::Timeout {
            what: cmd.display(),
        }),
        o if o.success() && text.contains("no rewind required") => Ok(Rewound::NotNeeded),
        o if o.success() => Ok(Rewound::Done),
        o => {
            // pg_rewind's last line is often only a detail: keep the few lines before it.
            let err = String::from_utf8_lossy(o.stderr());
            let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
            Err(SysError::Invalid(format!(
                "pg_rewind of {}: exit {}: {}",
                datadir.display(),
                o.code().unwrap_or(-1),
                lines[lines.len().saturating_sub(4)..].join(" / ")
            )))
        }
    }
}

/// `pg_basebackup -D DIR -d CONNINFO -X stream -c fast --write-recovery-conf` as
/// `creds` into an empty directory.
pub fn basebackup(
    bindir: &Path,
    dir: &Path,
    conninfo: &str,
    creds: &Credentials,
    deadline: Instant,
) -> SysResult<()> {
    let cmd = Cmd::new(bindir.join("pg_basebackup"))
        .arg("-D")
        .arg(dir)
        .arg("-d")
        .arg(conninfo)
        .args([
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-password",
            "--write-recovery-conf",
        ])
        .current_dir("/")
        .run_as(creds.clone());
    let out = runner::run(&cmd, deadline)?;
    match &out {
        Outcome::TimedOut { .. } => Err(SysError::Timeout {
            what: cmd.display(),
        }),
        o if o.success() => Ok(()),
        o => Err(SysError::Invalid(format!(
            "pg_basebackup into {}: {}",
            dir.display(),
            o.describe()
        ))),
    }
}

/// A free name beside `datadir` to move it aside to: `DATADIR.diverged.N`.
pub fn aside_name(datadir: &Path) -> PathBuf {
    let base = datadir
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches('/')
        .to_string();
    (1..)
        .map(|n| PathBuf::from(format!("{base}.diverged.{n}")))
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .expect("an unused name")
}

/// The history of `timeline` in the data directory's own `pg_wal` (`None` for timeline
/// 1 or when the file is gone).
pub fn local_history(datadir: &Path, timeline: u32) -> SysResult<Option<History>> {
    if timeline <= 1 {
        return Ok(None);
    }
    let p = datadir
        .join("pg_wal")
        .join(format!("{timeline:08X}.history"));
    match std::fs::read_to_string(&p) {
        Ok(t) => History::parse(timeline, &t).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysError::io(format!("reading {}", p.display()), e)),
    }
}

/// The highest timeline of a WAL segment file in the data directory's own `pg_wal`
/// (`pg_xlog` before PostgreSQL 10); `None` when it holds none. A primary cut soon after
/// its promotion still names the old timeline in its control file (the promotion's
/// checkpoint is spread over minutes) while its WAL already goes on in the new one.
pub fn local_wal_timeline(datadir: &Path) -> SysResult<Option<u32>> {
    let mut best = None;
    for sub in ["pg_wal", "pg_xlog"] {
        let d = datadir.join(sub);
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SysError::io(format!("reading {}", d.display()), e)),
        };
        for e in rd {
            let e = e.map_err(|e| SysError::io(format!("reading {}", d.display()), e))?;
            if let Some(t) = e.file_name().to_str().and_then(segment_timeline) {
                best = best.max(Some(t));
            }
        }
    }
    Ok(best)
}

/// The timeline of a WAL segment file name (24 hex digits: timeline, log, segment).
fn segment_timeline(name: &str) -> Option<u32> {
    (name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(&name[..8], 16).ok())
        .flatten()
        .filter(|t| *t > 0)
}

fn split(datadir: &Path) -> SysResult<(&Path, &std::ffi::OsStr)> {
    match (datadir.parent(), datadir.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(SysError::Invalid(format!(
            "{}: not a directory below another",
            datadir.display()
        ))),
    }
}

/// Renames `datadir` to a free `DATADIR.diverged.N` beside it (below the parent's
/// descriptor, links never followed); returns the new path.
pub fn move_aside(datadir: &Path) -> SysResult<PathBuf> {
    let (parent, _) = split(datadir)?;
    let aside = aside_name(datadir);
    rename_below(parent, datadir, &aside)?;
    Ok(aside)
}

/// Renames `from` back to `to` (both in the same parent), undoing [`move_aside`].
pub fn move_back(from: &Path, to: &Path) -> SysResult<()> {
    let (parent, _) = split(to)?;
    rename_below(parent, from, to)
}

fn rename_below(parent: &Path, from: &Path, to: &Path) -> SysResult<()> {
    use std::os::fd::AsRawFd;
    let (_, a) = split(from)?;
    let (_, b) = split(to)?;
    let dir = crate::sys::safefs::open_dir(parent)?;
    let fd = dir.as_raw_fd();
    nix::fcntl::renameat(Some(fd), a, Some(fd), b).map_err(|e| {
        SysError::errno(
            format!("renaming {} to {}", from.display(), to.display()),
            e,
        )
    })
}

/// Creates an empty data directory (mode 0700) owned by `creds`, below its parent's
/// descriptor.
pub fn make_datadir(datadir: &Path, creds: &Credentials) -> SysResult<()> {
    use std::os::fd::AsFd;
    let (parent, name) = split(datadir)?;
    let dir = crate::sys::safefs::open_dir(parent)?;
    let fd = crate::sys::safefs::mkdir_beneath(
        dir.as_fd(),
        parent,
        name,
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    )?;
    std::os::unix::fs::fchown(&fd, Some(creds.uid.as_raw()), Some(creds.gid.as_raw())).map_err(
        |e| {
            SysError::io(
                format!("giving {} to uid {}", datadir.display(), creds.uid),
                e,
            )
        },
    )
}

/// Removes a data directory this program created and filled only partly (a failed
/// copy), never one it did not make.
pub fn remove_partial_copy(datadir: &Path) -> SysResult<()> {
    std::fs::remove_dir_all(datadir).map_err(|e| {
        SysError::io(
            format!("removing the partial copy {}", datadir.display()),
            e,
        )
    })
}

/// Creates `standby.signal` in the data directory (owned by `creds`), without
/// following a link.
pub fn write_standby_signal(datadir: &Path, creds: &Credentials) -> SysResult<()> {
    use nix::fcntl::OFlag;
    let f = crate::sys::safefs::open_below(
        datadir,
        Path::new("standby.signal"),
        None,
        OFlag::O_WRONLY | OFlag::O_CREAT,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )?;
    std::os::unix::fs::fchown(&f, Some(creds.uid.as_raw()), Some(creds.gid.as_raw())).map_err(|e| {
        SysError::io(
            format!(
                "giving {}/standby.signal to uid {}",
                datadir.display(),
                creds.uid
            ),
            e,
        )
    })
}

/// The reads and tools the election and the rejoin need, behind a trait so their
/// decisions are unit-tested with [`fake::FakeWal`]; [`RealWal`] is the system.
pub trait WalOs {
    fn wal_state(&self, base: &Probe, deadline: Instant) -> Result<WalState, ProbeError>;
    fn checkpoint(&self, base: &Probe, deadline: Instant) -> Result<(), ProbeError>;
    fn replicas(&self, base: &Probe, deadline: Instant) -> Result<Vec<Replica>, ProbeError>;
    fn checkpoints(&self, at: &Local, deadline: Instant) -> SysResult<Checkpoints>;
    /// A shutdown checkpoint record in `start..end` of the local WAL on `timeline`.
    fn shutdown_checkpoint_in(
        &self,
        at: &Local,
        timeline: u32,
        range: Range<Lsn>,
        deadline: Instant,
    ) -> SysResult<Option<Lsn>>;
    fn record_from(
        &self,
        at: &Local,
        timeline: u32,
        from: Lsn,
        deadline: Instant,
    ) -> SysResult<Option<Lsn>>;
    fn identify(&self, primary: &Primary, deadline: Instant) -> SysResult<Identity>;
    fn timeline_history(
        &self,
        primary: &Primary,
        timeline: u32,
        deadline: Instant,
    ) -> SysResult<History>;
}

/// The real system.
pub struct RealWal;

impl WalOs for RealWal {
    fn wal_state(&self, base: &Probe, deadline: Instant) -> Result<WalState, ProbeError> {
        wal_state(base, deadline)
    }
    fn checkpoint(&self, base: &Probe, deadline: Instant) -> Result<(), ProbeError> {
        checkpoint(base, deadline)
    }
    fn replicas(&self, base: &Probe, deadline: Instant) -> Result<Vec<Replica>, ProbeError> {
        replicas(base, deadline)
    }
    fn checkpoints(&self, at: &Local, deadline: Instant) -> SysResult<Checkpoints> {
        Checkpoints::read(at, deadline)
    }
    fn shutdown_checkpoint_in(
        &self,
        at: &Local,
        timeline: u32,
        range: Range<Lsn>,
        deadline: Instant,
    ) -> SysResult<Option<Lsn>> {
        shutdown_checkpoint_in(at, timeline, range, deadline)
    }
    fn record_from(
        &self,
        at: &Local,
        timeline: u32,
        from: Lsn,
        deadline: Instant,
    ) -> SysResult<Option<Lsn>> {
        record_from(at, timeline, from, deadline)
    }
    fn identify(&self, primary: &Primary, deadline: Instant) -> SysResult<Identity> {
        identify(primary, deadline)
    }
    fn timeline_history(
        &self,
        primary: &Primary,
        timeline: u32,
        deadline: Instant,
    ) -> SysResult<History> {
        timeline_history(primary, timeline, deadline)
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! Scripted answers for the election's and the rejoin's unit tests; calls recorded.
    use std::cell::RefCell;

    use super::*;

    #[derive(Default)]
    pub struct FakeWal {
        pub state: Option<WalState>,
        pub replicas: Vec<Replica>,
        pub checkpoints: Option<Checkpoints>,
        /// What pg_waldump finds.
        pub shutdown_checkpoint: Option<Lsn>,
        /// The first local record at or after the point asked for.
        pub record_from: Option<Lsn>,
        pub identity: Option<Identity>,
        pub history: Option<History>,
        pub calls: RefCell<Vec<String>>,
    }

    impl FakeWal {
        fn call(&self, c: String) {
            self.calls.borrow_mut().push(c);
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    fn gone() -> ProbeError {
        ProbeError::Connect {
            target: "fake".into(),
            msg: "no server".into(),
        }
    }

    impl WalOs for FakeWal {
        fn wal_state(&self, _: &Probe, _: Instant) -> Result<WalState, ProbeError> {
            self.call("wal_state".into());
            self.state.clone().ok_or_else(gone)
        }
        fn checkpoint(&self, _: &Probe, _: Instant) -> Result<(), ProbeError> {
            self.call("checkpoint".into());
            self.state.as_ref().map(|_| ()).ok_or_else(gone)
        }
        fn replicas(&self, _: &Probe, _: Instant) -> Result<Vec<Replica>, ProbeError> {
            self.call("replicas".into());
            Ok(self.replicas.clone())
        }
        fn checkpoints(&self, _: &Local, _: Instant) -> SysResult<Checkpoints> {
            self.call("pg_controldata".into());
            self.checkpoints
                .clone()
                .ok_or_else(|| SysError::Invalid("pg_controldata: no data directory".into()))
        }
        fn shutdown_checkpoint_in(
            &self,
            _: &Local,
            timeline: u32,
            range: Range<Lsn>,
            _: Instant,
        ) -> SysResult<Option<Lsn>> {
            let Range { start, end } = range;
            self.call(format!("pg_waldump tli {timeline} {start}..{end}"));
            Ok(self.shutdown_checkpoint)
        }
        fn record_from(
            &self,
            _: &Local,
            timeline: u32,
            from: Lsn,
            _: Instant,
        ) -> SysResult<Option<Lsn>> {
            self.call(format!("pg_waldump tli {timeline} from {from}"));
            Ok(self.record_from)
        }
        fn identify(&self, _: &Primary, _: Instant) -> SysResult<Identity> {
            self.call("IDENTIFY_SYSTEM".into());
            self.identity
                .clone()
                .ok_or_else(|| SysError::Invalid("IDENTIFY_SYSTEM: cannot connect".into()))
        }
        fn timeline_history(&self, _: &Primary, timeline: u32, _: Instant) -> SysResult<History> {
            self.call(format!("TIMELINE_HISTORY {timeline}"));
            self.history
                .clone()
                .ok_or_else(|| SysError::Invalid("TIMELINE_HISTORY: cannot connect".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_is_asked_over_a_physical_replication_connection() {
        assert_eq!(
            replication_conninfo("host=10.0.0.5 user=replicator"),
            "host=10.0.0.5 user=replicator replication=true"
        );
    }

    #[test]
    fn pg_rewind_connects_to_a_database_unless_the_conninfo_names_one() {
        // A replication role's conninfo: the database is postgres, not "replicator".
        assert_eq!(
            rewind_source("host=10.0.0.5 user=replicator application_name=n1"),
            "dbname=postgres host=10.0.0.5 user=replicator application_name=n1"
        );
        // Named in the conninfo: it comes last, so libpq keeps it.
        let s = rewind_source("host=10.0.0.5 dbname=app user=rewinder");
        assert!(s.rfind("dbname=app") > s.rfind("dbname=postgres"), "{s}");
        // A URI cannot take a keyword before it: left as it is.
        let uri = "postgresql://rewinder@10.0.0.5/app";
        assert_eq!(rewind_source(uri), uri);
    }

    #[test]
    fn the_wal_timeline_is_the_highest_segment_timeline() {
        assert_eq!(segment_timeline("000000030000000000000004"), Some(3));
        assert_eq!(segment_timeline("0000000A0000000100000004"), Some(10));
        assert_eq!(segment_timeline("00000002.history"), None);
        assert_eq!(segment_timeline("000000020000000000000003.partial"), None);
        assert_eq!(segment_timeline("archive_status"), None);
        let d = std::env::temp_dir().join(format!("pgst-waltl-{}", std::process::id()));
        let w = d.join("pg_wal");
        std::fs::create_dir_all(w.join("archive_status")).unwrap();
        assert_eq!(local_wal_timeline(&d).unwrap(), None);
        for f in [
            "000000020000000000000003.partial",
            "000000030000000000000003",
            "000000030000000000000004",
            "000000020000000000000002",
            "00000004.history",
        ] {
            std::fs::write(w.join(f), "").unwrap();
        }
        assert_eq!(local_wal_timeline(&d).unwrap(), Some(3));
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(local_wal_timeline(&d).unwrap(), None);
    }

    #[test]
    fn lsns_print_as_postgresql_does() {
        assert_eq!(Lsn(0x1_0000_00A0).to_string(), "1/A0");
        assert_eq!(Lsn(0x3000148).to_string(), "0/3000148");
        assert_eq!(Lsn::parse("0/3000148"), Some(Lsn(0x3000148)));
        assert!(Lsn(5) < Lsn(0x1_0000_0000));
    }

    #[test]
    fn controldata_checkpoints() {
        let c = Checkpoints::parse(&crate::fixture("pg_controldata/shut-down.txt")).unwrap();
        assert_eq!(c.state, ClusterState::ShutDown);
        assert_eq!(c.redo, Lsn(0x1511A88));
        assert_eq!(c.timeline, 1);
        assert_eq!(c.min_recovery, Lsn(0));
        assert!(!c.wal_log_hints);
        assert!(!c.checksums);
        assert!(Checkpoints::parse("Database cluster state: shut down\n").is_err());
    }

    #[test]
    fn wal_state_rows() {
        let s = |v: &str| Some(v.to_string());
        let standby = vec![
            s("t"),
            None,
            s("0/3000148"),
            s("0/3000100"),
            s("streaming"),
            s("2"),
            s("1"),
            s("0/3000060"),
            s("2"),
            None,
        ];
        let w = WalState::from_row("t", &standby).unwrap();
        assert!(w.in_recovery);
        assert_eq!(w.received, Some(Lsn(0x3000148)));
        assert_eq!(w.received_timeline, Some(2));
        assert_eq!(w.min_recovery_timeline, 2);
        let mut primary = vec![None; 10];
        primary[0] = s("f");
        primary[1] = s("0/5000000");
        primary[6] = s("3");
        primary[7] = s("0/0");
        primary[8] = s("0");
        primary[9] = s("3");
        let w = WalState::from_row("t", &primary).unwrap();
        assert_eq!(w.flushed, Some(Lsn(0x5000000)));
        assert_eq!(w.primary_timeline, Some(3));
        primary[0] = s("maybe");
        assert!(WalState::from_row("t", &primary).is_err());
    }

    #[test]
    fn replica_rows() {
        let s = |v: &str| Some(v.to_string());
        let r = Replica::from_row(
            "t",
            &vec![
                s("pg2"),
                s("streaming"),
                s("async"),
                s("0/3000148"),
                s("0/3000148"),
                s("0/3000100"),
                s("1024"),
                None,
            ],
        )
        .unwrap();
        assert_eq!(r.lag.bytes, Some(1024));
        assert_eq!(r.lag.replay_s, None);
        assert!(Replica::from_row("t", &vec![None; 8]).is_err());
    }

    #[test]
    fn shutdown_checkpoints_in_waldump_output() {
        let new = "rmgr: Standby     len (rec/tot):     50/    50, tx:          0, lsn: 0/03000028, prev 0/02000110, desc: RUNNING_XACTS nextXid 735\n\
                   rmgr: XLOG        len (rec/tot):    114/   114, tx:          0, lsn: 0/030000D8, prev 0/030000A0, desc: CHECKPOINT_SHUTDOWN redo 0/30000D8; tli 1; prev tli 1; fpw true; xid 0:735; oid 16384; multi 1; offset 0; oldest xid 723 in DB 1; oldest multi 1 in DB 1; oldest/newest commit timestamp xid: 0/0; oldest running xid 0; shutdown\n";
        assert_eq!(find_shutdown_checkpoint(new, 1), Some(Lsn(0x30000D8)));
        assert_eq!(find_shutdown_checkpoint(new, 2), None);
        let online = new
            .replace("CHECKPOINT_SHUTDOWN", "CHECKPOINT_ONLINE")
            .replace("; shutdown", "; online");
        assert_eq!(find_shutdown_checkpoint(&online, 1), None);
        let old = "rmgr: XLOG        len (rec/tot):     72/   104, tx:          0, lsn: 0/03000028, prev 0/02000110, desc: checkpoint: redo 0/3000028; tli 1; prev tli 1; fpw true; xid 0/735; shutdown\n";
        assert_eq!(find_shutdown_checkpoint(old, 1), Some(Lsn(0x3000028)));
    }

    #[test]
    fn first_records() {
        let out = "rmgr: Heap        len (rec/tot):     59/    59, tx:        740, lsn: 0/03000148, prev 0/03000110, desc: INSERT off 2\n";
        assert_eq!(first_record(out), Some(Lsn(0x3000148)));
        assert_eq!(
            first_record("pg_waldump: error: could not find a valid record after 0/3000100\n"),
            None
        );
    }

    #[test]
    fn history_files() {
        let h = History::parse(
            3,
            "1\t0/3000060\tno recovery target specified\n\n2\t0/5000A8\tno recovery target specified\n",
        )
        .unwrap();
        assert_eq!(h.end_of(1), Some(Lsn(0x3000060)));
        assert_eq!(h.end_of(2), Some(Lsn(0x5000A8)));
        assert_eq!(h.end_of(3), None);
        assert!(h.contains(3) && h.contains(1) && !h.contains(4));
        assert!(History::parse(2, "x y\n").is_err());
    }
}
