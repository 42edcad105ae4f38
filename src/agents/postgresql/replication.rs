//! Replication mode: a promotable clone of streaming-replication instances, one per
//! node, each in its own data directory. Every instance starts as a standby; Pacemaker
//! promotes one.
//!
//! **Standby settings** (PostgreSQL 12+): the agent never edits the user's
//! configuration. Before each start as a standby it writes `standby.signal` and its own
//! file, `pgstack-replication.conf`, in the data directory (mode 0600, owned by the
//! system user), and starts the postmaster with `-c config_file=` that file. It sets
//! `wal_retrieve_retry_interval = '1s'` (PostgreSQL's default is 5 s: how long a standby
//! whose primary moved waits before it connects again), then includes the user's
//! configuration (`config`, else `<pgdata>/postgresql.conf`), whose own setting wins;
//! then come either the settings of `recovery_template` (copied, without the
//! `standby_mode` and `recovery_target_timeline` lines PostgreSQL 12 refuses or this file
//! sets), or a `primary_conninfo` built from `master_ip`, `pgport` (or `port=` of
//! `primary_conninfo_opt`), `repuser` and the node name as `application_name`; and
//! `recovery_target_timeline = 'latest'`. The file stays the server's configuration
//! after a promotion (a primary ignores `primary_conninfo`). `postgresql.auto.conf` is
//! read after it: a `primary_conninfo` there (what `pg_basebackup -R` writes) wins, and
//! validate-all warns about it.
//!
//! **States** (monitor): a primary is 8, a standby 0, nothing running 7. A crashed
//! primary (no postmaster, `pg_controldata` "in production") is 9 only when Pacemaker
//! expects the instance promoted (`CRM_meta_role=Promoted`, the promoted monitor);
//! otherwise a crash is 7 with the reason, as in single mode, and start runs crash
//! recovery as a standby. A standby whose WAL receiver is not streaming is first
//! compared with the primary (diverged: 1, see below); otherwise it answers 0 with a
//! warning that names the node holding the primary's promotion score, if one does. Not
//! 190 (OCF_DEGRADED): Pacemaker 2.1.5 takes 190 for success (`tests/ocf_degraded_live.rs`)
//! but records it as the resource's last failure, and a crash failover in the lab after
//! such a record stalled once the peer was fenced. Its promotion
//! score is the primary's business, -1000 for a partition node the primary does not see
//! streaming, so it is scored lower in every case; with no primary left in the
//! partition the survivor rules of [`election`] apply to it (in its monitor, and in the
//! post-stop and post-demote notifications of a failover).
//!
//! **Election and scores** ([`super::election`]): the pre-promote notification publishes
//! this node's `timeline#LSN` position, promote first checks that this node is the best
//! of the electors (else it fails, the scores already moved, so Pacemaker re-plans),
//! post-promote removes the attributes. The primary's monitor sets every node's score
//! (1001 for itself, `1000 - 10 * rank` by lag, `maxlag` (bytes) and `maxlag_time`
//! (seconds of replay lag) applied, stale scores of departed nodes removed); a standby that does not stream applies the two-node rule;
//! a start of a cleanly shut down primary takes 1 when no node has a score (first start).
//! A data directory whose history diverged from the primary's is refused at start, and a
//! standby that does not stream because of it fails its monitor (1, the reason naming
//! `pgstack pg rejoin`) ([`super::standby_guard`]).
//!
//! **Synchronous replication** (`rep_mode=sync`): the primary keeps
//! `synchronous_standby_names` (ALTER SYSTEM, then `pg_reload_conf()`) at `ANY 1 (*)`,
//! so every commit waits for one standby, or, with `lone_primary_writes`, at
//! `ANY 1 (<the standbys streaming now>)`, emptied when none streams so that a lone
//! primary goes on committing.

#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::time::Duration;

use super::election::{self, LagPolicy, PromoteCheck, Verdict};
use super::instance::{self, Found, Left};
use super::replication_setup::manage_sync;
pub use super::replication_setup::{own_conf, primary_conninfo, user_conf, validate};
use super::{single, standby_guard, PgConfig};
use crate::ocf::notify::When;
use crate::ocf::{Action, Ctx, OcfError, Status};
use crate::sys::attrd::{Attrd, Pending, ScoreOf};
use crate::sys::pg::client::{Probe, Rows, Until};
use crate::sys::pg::wal::WalOs;
use crate::sys::pg::{ClusterState, PgOs, PostmasterPid};
use crate::sys::runner::Credentials;

/// What the replication mode consults besides the server: the cluster's node attributes
/// and the server's WAL.
pub struct Peers<'a> {
    pub attrd: &'a dyn Attrd,
    pub wal: &'a dyn WalOs,
}

/// The agent's configuration file in the data directory.
pub const OWN_CONF: &str = "pgstack-replication.conf";
pub const STANDBY_SIGNAL: &str = "standby.signal";

/// Whether this configuration runs in replication mode in this environment.
pub fn selected(cfg: &PgConfig, env: &crate::ocf::env::OcfEnv) -> bool {
    use super::config::ModeParam;
    match cfg.repl.mode {
        ModeParam::Single => false,
        ModeParam::Replication => true,
        ModeParam::Auto => promotable(env) || cfg.repl.rep_mode.is_some(),
    }
}

fn promotable(env: &crate::ocf::env::OcfEnv) -> bool {
    // Pacemaker passes `promotable` only when the clone's meta attributes name it, but
    // always passes the promoted-instance counts of a promotable clone (2.1 both the new
    // and the old spelling).
    env.var("OCF_RESKEY_CRM_meta_promotable")
        .is_some_and(crate::ocf::env::is_true)
        || [
            "OCF_RESKEY_CRM_meta_promoted_max",
            "OCF_RESKEY_CRM_meta_master_max",
        ]
        .iter()
        .any(|v| env.var(v).is_some_and(|x| !x.trim().is_empty()))
}

/// Pacemaker expects this instance promoted (the promoted role's recurring monitor).
pub fn expects_promoted(ctx: &Ctx) -> bool {
    matches!(
        ctx.env.var("OCF_RESKEY_CRM_meta_role").map(str::trim),
        Some("Promoted" | "Master")
    )
}

/// A connection for what only the system user may do (pg_promote, ALTER SYSTEM): its
/// own identity over the socket directory, whatever the monitor's user is.
fn admin_probe(
    cfg: &PgConfig,
    file: &PostmasterPid,
    creds: &Credentials,
) -> Result<Probe, OcfError> {
    let mut p = instance::probe(cfg, Some(file), Some(creds))?;
    let host = cfg
        .socketdir
        .clone()
        .or_else(|| file.socket_dir.clone())
        .map(|s| s.display().to_string())
        .unwrap_or_else(|| instance::DEFAULT_SOCKET_DIR.to_string());
    p.host = host;
    p.user = cfg.user.clone();
    p.password = None;
    p.as_uid = Some(creds.uid);
    Ok(p)
}

/// What the server says about its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    pub in_recovery: bool,
    /// `pg_stat_wal_receiver.status` of a standby (`streaming`, ...).
    pub receiver: Option<String>,
}

const STATE_SQL: &str =
    "select pg_is_in_recovery(), (select status from pg_stat_wal_receiver limit 1)";

pub(super) fn cell(rows: Option<&Rows>, r: usize, c: usize) -> Option<String> {
    rows?.get(r)?.get(c)?.clone()
}

fn parse_state(all: &[Rows], at: usize) -> RoleState {
    let st = all.get(at);
    RoleState {
        in_recovery: cell(st, 0, 0).as_deref() == Some("t"),
        receiver: cell(st, 0, 1),
    }
}

/// The role state over the system user's connection.
pub(super) fn state(
    os: &impl PgOs,
    cfg: &PgConfig,
    file: &PostmasterPid,
    creds: &Credentials,
    ctx: &Ctx,
) -> Result<RoleState, OcfError> {
    let p = admin_probe(cfg, file, creds)?;
    let all = os
        .query(&p, &[STATE_SQL.into()], ctx.deadline.instant())
        .map_err(|e| OcfError::Generic(e.to_string()))?;
    Ok(parse_state(&all, 0))
}

pub fn monitor(
    os: &impl PgOs,
    peers: &Peers,
    cfg: &PgConfig,
    ctx: &Ctx,
) -> Result<Status, OcfError> {
    let (pid, file) = match instance::find(os, cfg) {
        Found::Postmaster { pid, file } => (pid, file),
        Found::None(left) => return not_running(os, cfg, ctx, &left),
    };
    cfg.check(Some(super::MONITOR_PARAMS)).map_err(|e| {
        OcfError::Configured(format!(
            "postmaster {pid} serves {}, but it cannot be monitored: {e}",
            cfg.datadir.display()
        ))
    })?;
    let creds = instance::credentials(cfg)?;
    let probe = instance::probe(cfg, Some(&file), Some(&creds))?;
    let all = os
        .query(
            &probe,
            &[cfg.monitor.sql.clone(), STATE_SQL.into()],
            ctx.deadline.instant(),
        )
        .map_err(|e| OcfError::Generic(format!("postmaster {pid} is running but {e}")))?;
    let st = parse_state(&all, 1);
    let (resource, me) = (ctx.env.instance_base(), cfg.repl.node.as_str());
    if st.in_recovery {
        if st.receiver.as_deref() == Some("streaming") {
            return Ok(Status::Running);
        }
        let receiver = st.receiver.as_deref().unwrap_or("none");
        let why = format!(
            "standby (postmaster {pid}) does not stream from a primary (WAL receiver: \
             {receiver})"
        );
        // The primary is looked for in the cluster's attributes first: when they show
        // none in the partition, the primary's address is not asked whether this
        // standby diverged (a lost primary would hold the monitor, and the
        // notifications queued behind it, until the connection timed out).
        let elsewhere = election::primary_elsewhere(peers.attrd, resource, me, &ctx.deadline);
        if !matches!(elsewhere, Ok(None)) {
            if let Some(diverged) = standby_guard::stuck(peers.wal, cfg, &creds, ctx) {
                let on = match &elsewhere {
                    Ok(Some(node)) => format!(" on {node}"),
                    _ => String::new(),
                };
                return Err(OcfError::Generic(format!(
                    "standby (postmaster {pid}) cannot stream from the primary{on} (WAL \
                     receiver: {receiver}): {diverged}"
                )));
            }
        }
        match elsewhere {
            // Not 190 (OCF_DEGRADED): Pacemaker 2.1.5 takes it for success but records
            // it as the resource's last failure, and a lab crash failover after such a
            // record stalled after the fencing (the promote was never scheduled). A
            // warning instead.
            Ok(Some(node)) => ctx.log.warn(&format!(
                "{why} while {node} holds the primary's promotion score"
            )),
            Ok(None) => {
                ctx.log.warn(&format!(
                    "{why}; no node of the partition holds the primary's promotion score"
                ));
                survive(peers, cfg, ctx, &file, &creds);
            }
            Err(e) => {
                ctx.log.warn(&why);
                ctx.log
                    .debug(&format!("no primary looked for in the cluster: {e}"));
            }
        }
        return Ok(Status::Running);
    }
    let admin = admin_probe(cfg, &file, &creds)?;
    let replicas = match peers.wal.replicas(&admin, ctx.deadline.instant()) {
        Ok(r) => r,
        Err(e) => {
            ctx.log.warn(&format!("pg_stat_replication of {pid}: {e}"));
            return Ok(Status::Promoted);
        }
    };
    let lag = lag_policy(cfg);
    let position = || {
        election::read_position(peers.wal, &admin, &ctx.deadline.share(0.3))
            .map_err(|e| ctx.log.warn(&format!("own position not read: {e}")))
            .ok()
            .map(|r| r.position)
    };
    match election::apply_scores(
        peers.attrd,
        resource,
        me,
        &replicas,
        lag,
        &position,
        &ctx.deadline,
    ) {
        Ok(changes) => {
            for c in changes {
                ctx.log.info(&format!(
                    "promotion score of {}: {:?} -> {:?} ({})",
                    c.node, c.from, c.to, c.why
                ));
            }
        }
        Err(e) => ctx.log.warn(&format!(
            "could not set promotion scores (not in a cluster?): {e}"
        )),
    }
    if cfg.repl.sync {
        if let Err(e) = manage_sync(os, &admin, cfg, &replicas, ctx) {
            ctx.log.warn(&e.to_string());
        }
    }
    Ok(Status::Promoted)
}

/// The survivor rules on a standby whose partition has no primary
/// ([`election::apply_survivor_rules`]); only logs, never fails the action.
fn survive(peers: &Peers, cfg: &PgConfig, ctx: &Ctx, file: &PostmasterPid, creds: &Credentials) {
    let (resource, me) = (ctx.env.instance_base(), cfg.repl.node.as_str());
    let mine = || {
        let p = admin_probe(cfg, file, creds).ok()?;
        election::read_position(peers.wal, &p, &ctx.deadline.share(0.3))
            .map_err(|e| ctx.log.warn(&format!("own position not read: {e}")))
            .ok()
    };
    match election::apply_survivor_rules(peers.attrd, resource, me, &mine, &ctx.deadline) {
        Ok(election::Survivor::Promotable(s)) => ctx.log.warn(&format!(
            "no primary in the partition and this standby may take over: promotion score {s}"
        )),
        Ok(election::Survivor::NotApplicable(why)) => ctx
            .log
            .info(&format!("survivor rules: not promotable: {why}")),
        Err(e) => ctx.log.debug(&format!("survivor rules not applied: {e}")),
    }
}

/// `maxlag` and `maxlag_time` as the scores apply them.
pub fn lag_policy(cfg: &PgConfig) -> LagPolicy {
    LagPolicy {
        max_bytes: cfg.repl.lag.bytes,
        max_seconds: (cfg.repl.lag.seconds > 0).then_some(cfg.repl.lag.seconds as f64),
    }
}

fn not_running(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx, left: &Left) -> Result<Status, OcfError> {
    let orphans = &left.orphans;
    if expects_promoted(ctx) {
        if let Ok(creds) = instance::credentials(cfg) {
            let c = os.control_data(&cfg.pg_dir(&creds), ctx.deadline.instant());
            if let Ok(c) = c {
                if c.state == ClusterState::InProduction {
                    return Err(OcfError::FailedPromoted(format!(
                        "the primary of {} crashed: no postmaster, pg_controldata says \
                         \"in production\"{}",
                        cfg.datadir.display(),
                        if orphans.is_empty() {
                            String::new()
                        } else {
                            format!(", server processes {orphans:?} left")
                        }
                    )));
                }
            }
        }
    }
    Ok(Status::NotRunning(single::not_running_reason(
        os, cfg, ctx, left,
    )?))
}

/// Starts as a standby: the agent's file and `standby.signal`, then the postmaster with
/// that file as its configuration. A server already running is left as it is.
pub fn start(os: &impl PgOs, peers: &Peers, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let creds = instance::credentials(cfg)?;
    if let Found::Postmaster { pid, .. } = instance::find(os, cfg) {
        ctx.log.info(&format!(
            "postmaster {pid} already serves {}; left in its role",
            cfg.datadir.display()
        ));
        return single::start_with(os, cfg, ctx, cfg.config.clone());
    }
    let state = os
        .control_data(&cfg.pg_dir(&creds), ctx.deadline.instant())
        .map(|c| c.state)
        .ok();
    // A data directory whose history diverged from the primary's must not start as its
    // standby ([`super::standby_guard`]). A demote restarts the primary it just stopped:
    // nothing to compare yet.
    if let (Action::Start, Some(st)) = (ctx.action, &state) {
        standby_guard::before_start(peers.wal, peers.attrd, cfg, &creds, st, ctx)?;
    }
    let conf = own_conf(cfg)?;
    let dir = cfg.pg_dir(&creds);
    os.write_owned(&dir, OWN_CONF, &conf)?;
    os.write_owned(&dir, STANDBY_SIGNAL, "")?;
    ctx.log.info(&format!(
        "starting {} as a standby ({} and {})",
        cfg.datadir.display(),
        STANDBY_SIGNAL,
        OWN_CONF
    ));
    single::start_with(os, cfg, ctx, Some(cfg.datadir.join(OWN_CONF)))?;
    // First start of a cluster: a cleanly shut down primary takes 1 when nobody scores.
    if state == Some(ClusterState::ShutDown) {
        let resource = ctx.env.instance_base();
        if let Ok(any) = election::any_score(peers.attrd, resource, &ctx.deadline) {
            if let Some(s) = election::first_start_score(true, any) {
                match peers
                    .attrd
                    .set_score(ScoreOf::here(resource), s, ctx.deadline.instant())
                {
                    Ok(()) => ctx.log.info(&format!("first start: promotion score {s}")),
                    Err(e) => ctx.log.warn(&format!("first start score: {e}")),
                }
            }
        }
    }
    Ok(())
}

/// Promotes a standby with `pg_promote`, waiting at most what the deadline leaves, and
/// checks that the server left recovery. A primary is left as it is.
pub fn promote(os: &impl PgOs, peers: &Peers, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    // The ballots are asked for first: the query runs while the server is found.
    let check = PromoteCheck::start(peers.attrd, ctx.env.instance_base(), &ctx.deadline);
    let Found::Postmaster { pid, file } = instance::find(os, cfg) else {
        return Err(OcfError::Generic(format!(
            "cannot promote {}: no postmaster runs",
            cfg.datadir.display()
        )));
    };
    let creds = instance::credentials(cfg)?;
    let admin = admin_probe(cfg, &file, &creds)?;
    // A hot standby says so in its pid file (status `standby`, PostgreSQL 10+): no
    // connection is needed to know it is in recovery. Any other status is asked of the
    // server; pg_promote refuses a server that is not in recovery anyway.
    let in_recovery = file.status.as_deref() == Some("standby")
        || state(os, cfg, &file, &creds, ctx)?.in_recovery;
    if !in_recovery {
        ctx.log
            .info(&format!("postmaster {pid} is already a primary"));
        set_own_score(peers, ctx, election::PRIMARY_SCORE);
        return Ok(());
    }
    promote_allowed(check, ctx)?;
    // Signalled, then asked every few milliseconds on the same connection whether
    // recovery ended (pg_promote(true) and `pg_ctl promote -w` look every 100 ms);
    // a share of the deadline, leaving a margin for the score. A signalled promotion
    // cannot be taken back: the score 1001 is written while recovery ends.
    let wait = ctx.deadline.share(0.8);
    let score = RefCell::new(None);
    let start_score = |rows: &[Rows]| {
        if signalled(rows) {
            *score.borrow_mut() = Some(start_own_score(peers, ctx, election::PRIMARY_SCORE));
        }
    };
    let r = os.query_until_false(
        &admin,
        &["select pg_promote(false)".into()],
        Until {
            sql: "select pg_is_in_recovery()",
            every: Duration::from_millis(2),
            max_every: Duration::from_millis(10),
            meanwhile: Some(&start_score),
        },
        wait.instant(),
    );
    if let Some(w) = score.into_inner() {
        finish_own_score(w, ctx);
    }
    let (all, ended) =
        r.map_err(|e| OcfError::Generic(format!("promoting postmaster {pid}: {e}")))?;
    let signalled = signalled(&all);
    if !signalled || !ended {
        return Err(OcfError::Generic(format!(
            "postmaster {pid} was not promoted within {} ms (pg_promote: {}, still in \
             recovery: {})",
            wait.elapsed().as_millis(),
            if signalled {
                "signalled"
            } else {
                "not signalled"
            },
            !ended
        )));
    }
    ctx.log.info(&format!(
        "postmaster {pid} promoted in {} ms",
        ctx.deadline.elapsed().as_millis()
    ));
    if cfg.repl.sync {
        if let Err(e) = manage_sync(os, &admin, cfg, &[], ctx) {
            ctx.log.warn(&e.to_string());
        }
    }
    Ok(())
}

/// Whether the first statement's answer is `t` (`pg_promote(false)` signalled).
fn signalled(rows: &[Rows]) -> bool {
    cell(rows.first(), 0, 0).as_deref() == Some("t")
}

fn set_own_score(peers: &Peers, ctx: &Ctx, score: i64) {
    finish_own_score(start_own_score(peers, ctx, score), ctx);
}

/// Starts writing this node's promotion score; the write runs until
/// [`finish_own_score`].
fn start_own_score(peers: &Peers, ctx: &Ctx, score: i64) -> (i64, Pending<()>) {
    let w = peers.attrd.start_set_score(
        ScoreOf::here(ctx.env.instance_base()),
        score,
        ctx.deadline.instant(),
    );
    (score, w)
}

/// Waits for a score write; a failure is only a warning (outside a cluster, say).
fn finish_own_score((score, w): (i64, Pending<()>), ctx: &Ctx) {
    if let Err(e) = w.wait() {
        ctx.log.warn(&format!(
            "could not set the promotion score {score} (not in a cluster?): {e}"
        ));
    }
}

/// The election's last word before a promotion: this node must still be the best of
/// the electors of the pre-promote notification (at most half of the deadline).
fn promote_allowed(check: PromoteCheck, ctx: &Ctx) -> Result<(), OcfError> {
    match check.verdict(&ctx.deadline) {
        Ok(Verdict::Cancelled { why }) => Err(OcfError::Generic(format!(
            "switchover cancelled: this node {why} (found in pre-promote); the old \
             primary keeps WAL this node lacks, so Pacemaker must plan again"
        ))),
        Ok(Verdict::Best { mine, peers }) => {
            ctx.log.info(&format!(
                "election: {mine} is the best position (electors {peers:?})"
            ));
            Ok(())
        }
        Ok(Verdict::NotBest {
            better,
            theirs,
            mine,
        }) => Err(OcfError::Generic(format!(
            "not promoting: {better} is ahead ({theirs} against this node's {mine}); \
             its promotion score is raised so that Pacemaker promotes it instead"
        ))),
        Ok(Verdict::Fallback { missing, reason }) => {
            ctx.log.warn(&format!(
                "election incomplete ({reason}; no position from {missing:?}): promoting \
                 on Pacemaker's choice"
            ));
            Ok(())
        }
        Err(e) => {
            ctx.log.warn(&format!(
                "election not checked ({e}): promoting on Pacemaker's choice"
            ));
            Ok(())
        }
    }
}

/// Demotes a primary: fast shutdown (escalating within a share of the deadline), then a
/// start as a standby. A standby, or nothing running, is already demoted.
pub fn demote(os: &impl PgOs, peers: &Peers, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let (pid, file) = match instance::find(os, cfg) {
        Found::Postmaster { pid, file } => (pid, file),
        Found::None { .. } => {
            ctx.log.info(&format!(
                "nothing runs for {}: not promoted",
                cfg.datadir.display()
            ));
            return Ok(());
        }
    };
    let creds = instance::credentials(cfg)?;
    match state(os, cfg, &file, &creds, ctx) {
        Ok(s) if s.in_recovery => {
            ctx.log
                .info(&format!("postmaster {pid} is already a standby"));
            return Ok(());
        }
        Ok(_) => {}
        // A primary that does not answer is stopped all the same.
        Err(e) => ctx.log.warn(&format!(
            "{e}; stopping postmaster {pid} to restart it as a standby"
        )),
    }
    let stop_ctx = Ctx {
        env: ctx.env,
        action: ctx.action,
        deadline: ctx.deadline.share(0.6),
        log: ctx.log,
    };
    instance::stop_escalating(os, cfg, Some(pid), &stop_ctx)?;
    ctx.log.info(&format!(
        "primary {pid} stopped after {} ms; starting as a standby",
        ctx.deadline.elapsed().as_millis()
    ));
    start(os, peers, cfg, ctx)
}

/// Notifications: pre-promote publishes this node's position (and, on a switchover's
/// target, checks it received the old primary's shutdown checkpoint); post-promote
/// removes the election's attributes. Never fails: a notification that cannot do its
/// part leaves the promote's check to fall back on the scores.
pub fn notify(os: &impl PgOs, peers: &Peers, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let n = ctx.env.notify();
    let (resource, me) = (ctx.env.instance_base(), cfg.repl.node.as_str());
    ctx.log.debug(&format!(
        "notify {:?}-{}: promote {:?}, demote {:?}, start {:?}, stop {:?}",
        n.when,
        n.operation.as_deref().unwrap_or("?"),
        n.promote,
        n.demote,
        n.start,
        n.stop
    ));
    match (n.when, n.operation.as_deref()) {
        (Some(When::Pre), Some("promote")) => {
            let server = match instance::find(os, cfg) {
                Found::Postmaster { file, .. } => instance::credentials(cfg)
                    .ok()
                    .and_then(|c| admin_probe(cfg, &file, &c).ok().map(|p| (p, c))),
                Found::None { .. } => None,
            };
            let position = server.as_ref().and_then(|(p, _)| {
                election::read_position(peers.wal, p, &ctx.deadline.share(0.3))
                    .map_err(|e| ctx.log.warn(&format!("position not published: {e}")))
                    .ok()
                    .map(|r| r.position)
            });
            let verdict = match (election::is_switchover(&n, me), &server) {
                (true, Some((p, creds))) => Some(election::check_switchover(
                    peers.wal,
                    p,
                    &cfg.bindir(),
                    &cfg.datadir,
                    creds,
                    &ctx.deadline.share(0.4),
                )),
                _ => None,
            };
            if let Some(v) = &verdict {
                if !matches!(v, election::Switchover::Unsafe { .. }) {
                    ctx.log.info(&format!("switchover: {}", v.describe()));
                }
            }
            let unsafe_verdict = match &verdict {
                Some(v @ election::Switchover::Unsafe { .. }) => {
                    ctx.log.error(&format!(
                        "switchover: {}; the promote of this transition is cancelled and \
                         the promotion score of this node is -1",
                        v.describe()
                    ));
                    set_own_score(peers, ctx, -1);
                    Some(v.describe())
                }
                _ => None,
            };
            match election::pre_promote(
                peers.attrd,
                resource,
                me,
                &n,
                position,
                unsafe_verdict.as_deref(),
                &ctx.deadline,
            ) {
                Ok(true) => ctx.log.info(&format!(
                    "pre-promote: published {}",
                    position
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "nothing".into())
                )),
                Ok(false) => ctx.log.warn("pre-promote: attrd did not confirm in time"),
                Err(e) => ctx.log.warn(&format!("pre-promote: {e}")),
            }
        }
        (Some(When::Post), Some("promote")) => {
            if let Err(e) = election::post_promote(peers.attrd, resource, &ctx.deadline) {
                ctx.log.warn(&format!("post-promote: {e}"));
            }
        }
        // An instance was stopped or demoted (a fenced primary's implied stop and demote
        // come here too): a standby left without a primary applies the survivor rules
        // now, so the promotion is planned without waiting for its next monitor.
        (Some(When::Post), Some("stop" | "demote")) => {
            let Found::Postmaster { file, .. } = instance::find(os, cfg) else {
                return Ok(());
            };
            let Ok(creds) = instance::credentials(cfg) else {
                return Ok(());
            };
            let orphaned = state(os, cfg, &file, &creds, ctx)
                .is_ok_and(|r| r.in_recovery && r.receiver.as_deref() != Some("streaming"))
                && matches!(
                    election::primary_elsewhere(peers.attrd, resource, me, &ctx.deadline),
                    Ok(None)
                );
            if orphaned {
                survive(peers, cfg, ctx, &file, &creds);
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;
