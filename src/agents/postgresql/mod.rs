//! `ocf:pgstack:postgresql`: one PostgreSQL server (a "cluster" in PostgreSQL's words),
//! the replacement of `ocf:heartbeat:pgsql` in its single-instance role and of PAF's
//! `pgsqlms` as a promotable clone, with parameter names of pgsql and PAF.
//!
//! **Modes**: single-instance (below, [`single`]) or streaming replication
//! ([`replication`]), chosen by `mode` (auto, single, replication): auto is replication
//! when the resource is a promotable clone (`CRM_meta_promotable=true`) or `rep_mode` is
//! async or sync.
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
//! - `reload-agent` (OCF 1.1): the parameters marked reloadable are read by the agent
//!   alone (the monitor's connection and statement, the stop escalation,
//!   expected_mount), so a change of only those is validated and takes effect from
//!   the next action, without touching the server; a change of any other parameter
//!   (pgport, start_opts, ...) restarts it. `reload` (`pg_ctl reload`, the server
//!   re-reads its own configuration files) is still accepted, for the LSB face and by
//!   hand, but not advertised: Pacemaker would use it for parameter changes.
//!   `validate-all`: binaries (5), user (5, root 4), data directory (5), mount, socket
//!   directory, password file.
//!
//! **Identity and refusals**: every action but meta-data needs root (4 otherwise: as
//! another user the data directory and the server's processes are not visible). Only
//! pgdata and datadir identify the server (compared by device and inode); a bad value
//! of another parameter is refused by validate-all, start and reload (6), by a monitor
//! only when it is one the monitor uses, and never makes a running server look
//! stopped (see [`config`]).
//!
//! **Promotion** (replication mode; see [`replication`]): start always makes a standby
//! (`standby.signal`, and the agent's own `pgstack-replication.conf` as the server's
//! `config_file`, including the user's configuration and setting `primary_conninfo` with
//! the node name as `application_name`); promote runs `pg_promote()` within the
//! deadline; demote is a fast shutdown and a start as a standby; monitor answers 8 for a
//! primary, 0 for a standby, 7 stopped, 9 for a crashed primary only when Pacemaker
//! expects it promoted; the primary sets promotion scores and, with `rep_mode=sync`,
//! `synchronous_standby_names`. validate-all (and start) refuse a clone without
//! `notify=true` or with `promoted-max` above 1 (6) and a missing or wrong
//! `recovery_template` (2). promote, demote and notify are always advertised (crm and
//! pcs accept a promotable clone of the agent); in single mode they answer 3.
//!
//! **Side effects**: the server's processes, its log file, the socket directory (created
//! for the system user when missing), a stale `postmaster.pid` renamed to
//! `postmaster.pid.stale`.

#![forbid(unsafe_code)]

pub mod config;
pub mod election;
pub mod instance;
pub mod lsb;
pub mod rejoin;
pub mod replication;
mod replication_setup;
pub mod scores;
pub mod single;
pub mod standby_guard;
pub mod words;

pub use config::{configure, configure_from_env, PgConfig, MONITOR_PARAMS};

use crate::ocf::agent::FromParams;
use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::{ParamError, ParamSpec, Params};
use crate::ocf::{Action, Agent, Ctx, OcfError, Status};
use crate::sys::pg::client::ProbeError;
use crate::sys::pg::{PgOs, RealPg};

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
    )
    .reloadable(),
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
        "Passed to postgres as -k, created for the system user when missing. When empty: \
         pghost when it is a directory (the server listens where the monitor connects), \
         else the server's configuration decides.",
    ),
    ParamSpec::string(
        "pghost",
        "Where the monitor connects",
        "A socket directory (absolute path) or a host name. When empty: socketdir, else \
         the socket directory the running server wrote into postmaster.pid, else \
         /var/run/postgresql. A directory here with socketdir empty is also passed to \
         postgres as -k.",
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
        "The server's standard output and error are appended here. The file is opened \
         (created when missing) by the system user after the privilege drop, never by \
         root: it must be a file, or in a directory, that user may write. The tail of \
         this file is quoted when a start fails.",
    )
    .default("/dev/null"),
    ParamSpec::string(
        "pgdb",
        "Database the monitor connects to",
        "The database of the monitor's connection.",
    )
    .default("template1")
    .reloadable(),
    ParamSpec::string(
        "monitor_user",
        "User of the monitor's connection",
        "The database user of the monitor. When empty, the system user, connecting with \
         that operating system identity (peer authentication works).",
    )
    .reloadable(),
    ParamSpec::string(
        "monitor_password",
        "Password of the monitor user (discouraged)",
        "Visible in the CIB; prefer monitor_password_file.",
    )
    .reloadable(),
    ParamSpec::string(
        "monitor_password_file",
        "File holding the monitor user's password",
        "A file readable by root whose first line is the password.",
    )
    .reloadable(),
    ParamSpec::string(
        "monitor_sql",
        "Monitor statement",
        "The statement the monitor runs. It runs with statement_timeout and lock_timeout \
         set below the monitor's deadline and synchronous_commit=local.",
    )
    .default("select 1")
    .reloadable(),
    ParamSpec::integer(
        "connect_timeout",
        "Monitor connect timeout (seconds)",
        "The longest the monitor waits for a connection, further capped by the \
         operation's deadline.",
    )
    .default("5")
    .reloadable(),
    ParamSpec::integer(
        "stop_escalate",
        "Seconds of fast shutdown before immediate",
        "How long stop waits for a fast shutdown before an immediate one, at most half of \
         the stop's remaining time. Immediate shutdown gets half of what then remains, \
         then every process of the cluster is killed.",
    )
    .default("90")
    .reloadable(),
    ParamSpec::string(
        "expected_mount",
        "Mount point or device the data must be on",
        "When set, start refuses to run unless the data directory is on this mount point \
         (or on a file system mounted from this device): no server is started on an empty \
         directory left by a failed mount.",
    )
    .reloadable(),
    ParamSpec::string(
        "mode",
        "Mode: auto, single or replication",
        "single: one server, always a primary. replication: a promotable clone of \
         streaming-replication instances (started as standbys, one promoted by Pacemaker). \
         auto: replication when the resource is a promotable clone (or rep_mode is async \
         or sync), else single.",
    )
    .default("auto"),
    ParamSpec::string(
        "rep_mode",
        "Replication (pgsql name): none, async or sync",
        "The name ocf:heartbeat:pgsql gives the replication mode. async or sync selects the \
         replication mode (with mode=auto); sync also makes the primary manage \
         synchronous_standby_names (ALTER SYSTEM and a reload) as standbys join and leave.",
    )
    .default("none"),
    ParamSpec::string(
        "master_ip",
        "Host of the primary (replication mode)",
        "The address standbys stream from: the service address that follows the primary. \
         Written with pgport, repuser and the node name (application_name) into the \
         primary_conninfo of the file the agent owns (pgstack-replication.conf in the data \
         directory). Either this or recovery_template is needed in replication mode.",
    ),
    ParamSpec::string(
        "repuser",
        "Replication user (replication mode)",
        "The user of a standby's replication connection. Its password belongs in the \
         system user's ~/.pgpass (or passfile= in primary_conninfo_opt), never in the CIB.",
    )
    .default("postgres"),
    ParamSpec::string(
        "primary_conninfo_opt",
        "Further primary_conninfo options (replication mode)",
        "key=value words added to primary_conninfo (keepalives_idle=60 sslmode=require); \
         host, user and application_name are set by the agent; port= names the primary's \
         port when it is not pgport.",
    ),
    ParamSpec::string(
        "recovery_template",
        "File of standby settings (replication mode, PAF name)",
        "A file whose settings (primary_conninfo with application_name=<node name>, \
         restore_command, ...) a standby reads: the agent's file includes it, in place of the \
         primary_conninfo it writes from master_ip. PAF's recovery.conf.pcmk works as it is; \
         standby_mode and recovery_target_timeline lines are not needed (PostgreSQL 12+: \
         standby.signal, and the timeline is always 'latest').",
    ),
    ParamSpec::integer(
        "maxlag",
        "Largest lag of a promotion candidate (bytes)",
        "A standby more than this many bytes of WAL behind the primary gets a negative \
         promotion score (0: no limit), as in PAF.",
    )
    .default("0"),
    ParamSpec::integer(
        "maxlag_time",
        "Largest replay lag of a promotion candidate (seconds)",
        "A standby whose replay_lag in the primary's pg_stat_replication exceeds this many \
         seconds gets a negative promotion score, as with maxlag (0: no limit). Applied \
         together with maxlag: either limit exceeded is enough. PostgreSQL reports no \
         replay_lag for a standby that is idle and caught up, which is never beyond it.",
    )
    .default("0"),
    ParamSpec::boolean(
        "lone_primary_writes",
        "With rep_mode=sync: a primary alone keeps accepting writes",
        "When no standby streams, the primary empties synchronous_standby_names and goes on \
         committing without a standby's confirmation (the data of those commits exists on \
         one node only). Off (the default): commits wait until a standby is back.",
    )
    .default("false"),
    // Parameters of ocf:heartbeat:pgsql and PAF (pgsqlms) this agent has no use for:
    // declared, so an existing configuration loads as it is.
    ParamSpec::refused("ctl_opt", "accepted and ignored: the server is started and stopped without pg_ctl, so there are no pg_ctl options to pass", &["*"]),
    ParamSpec::refused("pglibs", "accepted and ignored: no psql is run, and the server binaries find their own libraries", &["*"]),
    ParamSpec::refused("tmpdir", "accepted and ignored: it holds pgsql's replication state files; this agent keeps its state in the server and in node attributes", &["*"]),
    ParamSpec::refused("node_list", "accepted and ignored: the clone's instances are the nodes", &["*"]),
    ParamSpec::refused("restore_command", "accepted and ignored: put it in recovery_template or postgresql.conf", &["*"]),
    ParamSpec::refused("archive_cleanup_command", "accepted and ignored: put it in recovery_template or postgresql.conf", &["*"]),
    ParamSpec::refused("recovery_end_command", "accepted and ignored: put it in recovery_template or postgresql.conf", &["*"]),
    ParamSpec::refused("restart_on_promote", "accepted and ignored: promotion never restarts the server", &["*"]),
    ParamSpec::refused("replication_slot_name", "accepted and ignored: replication slots are not managed", &["*"]),
    ParamSpec::refused("xlog_check_count", "accepted and ignored: pgsql's repeated WAL position checks", &["*"]),
    ParamSpec::refused("crm_attr_timeout", "accepted and ignored: node attribute updates are bounded by the action's deadline", &["*"]),
    ParamSpec::refused("stop_escalate_in_slave", "accepted and ignored: a standby stops as a primary does (stop_escalate)", &["*"]),
    ParamSpec::refused("check_wal_receiver", "accepted and ignored: the WAL receiver is always checked in replication mode", &["*"]),
];

static ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 120),
    ActionSpec::new(Action::Stop, 120),
    ActionSpec::new(Action::Monitor, 30).interval(15).depth(0),
    ActionSpec::new(Action::Monitor, 30).interval(60).depth(10),
    // Replication mode (a promotable clone).
    ActionSpec::new(Action::Monitor, 30)
        .interval(15)
        .depth(0)
        .role("Promoted"),
    ActionSpec::new(Action::Monitor, 30)
        .interval(16)
        .depth(0)
        .role("Unpromoted"),
    ActionSpec::new(Action::Promote, 30),
    ActionSpec::new(Action::Demote, 120),
    ActionSpec::new(Action::Notify, 60),
    ActionSpec::new(Action::ReloadAgent, 20),
    ActionSpec::new(Action::MetaData, 5),
    ActionSpec::new(Action::ValidateAll, 20),
];

pub static INFO: AgentInfo = AgentInfo {
    name: "postgresql",
    shortdesc: "PostgreSQL server (single instance or streaming replication)",
    longdesc: "Manages one PostgreSQL server run as its system user: a start bounded by \
        the operation timeout that recovers a crashed cluster, a monitor that checks the \
        postmaster's identity and asks the server over its native protocol, and a stop \
        that escalates from fast to immediate shutdown to SIGKILL and verifies that no \
        process of the cluster is left. As a promotable clone (or with mode=replication) \
        each instance starts as a streaming standby (standby.signal and the agent's own \
        configuration file, which includes the user's), promote runs pg_promote within \
        the operation timeout, demote restarts the primary as a standby, and the monitor \
        reports primary (8), standby (0), stopped (7) and a crashed primary (9, only on \
        the promoted monitor). Parameter names follow ocf:heartbeat:pgsql and PAF.",
    params: PARAMS,
    actions: ACTIONS,
    needs_root: true,
};

/// The live cluster's attribute tools (this node's name kept for the action).
static ATTRD: crate::sys::attrd::Tools = crate::sys::attrd::Tools::new();

/// The live cluster's attributes and the server's WAL.
fn real_peers() -> replication::Peers<'static> {
    replication::Peers {
        attrd: &ATTRD,
        wal: &crate::sys::pg::wal::RealWal,
    }
}

/// Promote, demote and notify of the single-instance mode: not implemented (3), so a
/// conformance test sees a non-promotable agent.
fn single_mode(a: Action) -> OcfError {
    OcfError::Unimplemented(format!(
        "{a} needs the replication mode (a promotable clone, or mode=replication)"
    ))
}

// A monitor could not get an answer from the server.
crate::agent_failure!(ProbeError => ErrGeneric);

/// The agent, in either mode.
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

    /// The mode comes from `mode` and the clone meta-data; replication mode also needs
    /// this node's name (`CRM_meta_on_node`, else the cluster's or the host's name).
    fn configure(&self, params: &Params, ctx: &Ctx) -> Result<PgConfig, OcfError> {
        let mut cfg = configure(params)?;
        cfg.replication = replication::selected(&cfg, ctx.env);
        if cfg.replication {
            cfg.repl.node = match &ctx.env.meta.on_node {
                Some(n) => {
                    ATTRD.assume_local_name(n);
                    n.clone()
                }
                None => RealPg.node_name(ctx.deadline.instant()),
            };
        }
        Ok(cfg)
    }

    fn validate(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        if cfg.replication {
            // The clone and replication settings first: they need no root.
            replication::validate(&RealPg, cfg, ctx)?;
        }
        instance::require_root()?;
        cfg.check(None)?;
        instance::validate(cfg, ctx).map(|_| ())
    }

    fn start(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        if cfg.replication {
            return replication::start(&RealPg, &real_peers(), cfg, ctx);
        }
        single::start(&RealPg, cfg, ctx)
    }

    fn promote(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        instance::require_root()?;
        if !cfg.replication {
            return Err(single_mode(Action::Promote));
        }
        replication::promote(&RealPg, &real_peers(), cfg, ctx)
    }

    fn demote(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        instance::require_root()?;
        if !cfg.replication {
            return Err(single_mode(Action::Demote));
        }
        replication::demote(&RealPg, &real_peers(), cfg, ctx)
    }

    fn notify(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        if !cfg.replication {
            return Err(single_mode(Action::Notify));
        }
        replication::notify(&RealPg, &real_peers(), cfg, ctx)
    }

    fn stop(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        instance::require_root()?;
        single::stop(&RealPg, cfg, ctx)
    }

    fn monitor(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<Status, OcfError> {
        instance::require_root()?;
        if cfg.replication {
            return replication::monitor(&RealPg, &real_peers(), cfg, ctx);
        }
        single::monitor(&RealPg, cfg, ctx)
    }

    fn reload(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        single::reload(&RealPg, cfg, ctx)
    }

    /// Only the agent reads the reloadable parameters: validated, they apply from the
    /// next action on; the server is not touched.
    fn reload_agent(&self, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
        self.validate(cfg, ctx)?;
        ctx.log
            .info("reloadable parameters validated; they apply from the next action");
        Ok(())
    }

    /// Parameters that do not even parse: a probe still finds the server of pgdata and
    /// datadir, so a running server is never reported stopped (the recurring monitor
    /// then reports the configuration error).
    fn probe_unconfigured(&self, err: &OcfError, ctx: &Ctx) -> Result<Status, OcfError> {
        instance::require_root()?;
        let Some(cfg) = configure_from_env(ctx.env) else {
            ctx.log
                .warn(&format!("probe with an invalid configuration: {err}"));
            return Ok(Status::NotRunning(None));
        };
        match instance::find(&RealPg, &cfg) {
            instance::Found::Postmaster { pid, .. } => {
                ctx.log.warn(&format!(
                    "probe with an invalid configuration ({err}): postmaster {pid} of {} runs",
                    cfg.datadir.display()
                ));
                Ok(Status::Running)
            }
            instance::Found::None(instance::Left { orphans, .. }) if !orphans.is_empty() => {
                Err(OcfError::generic(format!(
                    "invalid configuration ({err}) and server processes of {} without a postmaster: {orphans:?}",
                    cfg.datadir.display()
                )))
            }
            instance::Found::None { .. } => Ok(Status::NotRunning(None)),
        }
    }

    /// Parameters that do not even parse: stop still finds the server of pgdata and
    /// datadir (a running server must never be left behind by a "successful" stop).
    fn stop_unconfigured(&self, err: &OcfError, ctx: &Ctx) -> Result<(), OcfError> {
        instance::require_root()?;
        match configure_from_env(ctx.env) {
            Some(cfg) => {
                ctx.log.warn(&format!(
                    "stopping despite an invalid configuration ({err}): looking for the server of {}",
                    cfg.datadir.display()
                ));
                single::stop(&RealPg, &cfg, ctx)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_and_the_promotable_roles_are_advertised() {
        for a in [Action::Promote, Action::Demote, Action::Notify] {
            assert!(INFO.advertises(a), "{a}");
        }
        let x = INFO.to_xml();
        assert!(
            x.contains("interval=\"15s\" depth=\"0\" role=\"Promoted\""),
            "{x}"
        );
        assert!(
            x.contains("interval=\"16s\" depth=\"0\" role=\"Unpromoted\""),
            "{x}"
        );
    }

    #[test]
    fn the_single_mode_does_not_promote() {
        let e = single_mode(Action::Promote);
        assert_eq!(
            crate::ocf::ExitCode::code(&e),
            crate::ocf::OcfCode::ErrUnimplemented
        );
    }
}
