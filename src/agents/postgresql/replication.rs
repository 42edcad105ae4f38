//! Replication mode: a promotable clone of streaming-replication instances, one per
//! node, each in its own data directory. Every instance starts as a standby; Pacemaker
//! promotes one.
//!
//! **Standby settings** (PostgreSQL 12+): the agent never edits the user's
//! configuration. Before each start as a standby it writes `standby.signal` and its own
//! file, `pgstack-replication.conf`, in the data directory (mode 0600, owned by the
//! system user), and starts the postmaster with `-c config_file=` that file. Its first
//! line includes the user's configuration (`config`, else `<pgdata>/postgresql.conf`);
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
//! recovery as a standby. A standby whose WAL receiver is not streaming is 0 with a
//! warning and the lowest positive promotion score: Pacemaker 2.1 would take 190 as
//! success too, but ocf-tester requires 0 from every started instance, and an instance
//! tested alone never streams.
//!
//! **Scores** (until node attributes carry the WAL positions, see [`local_scores`]): the
//! primary's monitor gives itself 1001 and each standby it sees streaming
//! `1000 - 10 * rank` by lag (a standby more than `maxlag` bytes behind, or not
//! streaming, -1); a standby that does not stream gives itself 1, so an instance stays
//! promotable after the primary is lost.
//!
//! **Synchronous replication** (`rep_mode=sync`): the primary keeps
//! `synchronous_standby_names` (ALTER SYSTEM, then `pg_reload_conf()`) at `ANY 1 (*)`,
//! so every commit waits for one standby, or, with `lone_primary_writes`, at
//! `ANY 1 (<the standbys streaming now>)`, emptied when none streams so that a lone
//! primary goes on committing.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::instance::{self, Found};
use super::{single, PgConfig};
use crate::ocf::{Action, Ctx, OcfError, Status};
use crate::sys::cluster::Cluster;
use crate::sys::pg::client::{Probe, Rows};
use crate::sys::pg::{ClusterState, PgOs, PostmasterPid};
use crate::sys::runner::Credentials;

/// The agent's configuration file in the data directory.
pub const OWN_CONF: &str = "pgstack-replication.conf";
pub const STANDBY_SIGNAL: &str = "standby.signal";

/// Promotion scores (PAF's scale).
pub const SCORE_PRIMARY: i64 = 1001;
pub const SCORE_BEST_STANDBY: i64 = 1000;
pub const SCORE_NOT_STREAMING: i64 = 1;
pub const SCORE_REFUSED: i64 = -1;

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
    env.var("OCF_RESKEY_CRM_meta_promotable")
        .is_some_and(crate::ocf::env::is_true)
}

/// Pacemaker expects this instance promoted (the promoted role's recurring monitor).
pub fn expects_promoted(ctx: &Ctx) -> bool {
    matches!(
        ctx.env.var("OCF_RESKEY_CRM_meta_role").map(str::trim),
        Some("Promoted" | "Master")
    )
}

/// A connection string value, quoted when it must be.
fn conninfo_value(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '\'', '\\']) {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A string setting of postgresql.conf.
fn guc_string(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// `primary_conninfo` from the parameters (`None` without `master_ip`).
pub fn primary_conninfo(cfg: &PgConfig) -> Option<String> {
    let host = cfg.repl.primary_host.as_deref()?;
    let mut w = vec![
        format!("host={}", conninfo_value(host)),
        format!("port={}", cfg.port),
        format!("user={}", conninfo_value(&cfg.repl.repuser)),
        format!("application_name={}", conninfo_value(&cfg.repl.node)),
    ];
    // Later keywords win: a port= here names the primary's port.
    w.extend(cfg.repl.conninfo_opt.clone());
    Some(w.join(" "))
}

/// The user's configuration file the agent's file includes.
pub fn user_conf(cfg: &PgConfig) -> PathBuf {
    cfg.config
        .clone()
        .unwrap_or_else(|| cfg.pgdata.join("postgresql.conf"))
}

/// The settings a standby takes from `recovery_template`: every line but those
/// PostgreSQL 12 refuses (`standby_mode`) or the agent's file sets itself.
fn template_settings(path: &Path) -> Result<String, OcfError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| OcfError::Args(format!("recovery_template {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .filter(|l| {
            let k = l.trim_start();
            !(k.starts_with("standby_mode") || k.starts_with("recovery_target_timeline"))
        })
        .map(|l| format!("{l}\n"))
        .collect())
}

/// The `application_name` of a `primary_conninfo` line of a template, if any.
fn template_application_name(settings: &str) -> Option<String> {
    let line = settings
        .lines()
        .find(|l| l.trim_start().starts_with("primary_conninfo"))?;
    let at = line.find("application_name=")? + "application_name=".len();
    let rest = &line[at..];
    let rest = rest.trim_start_matches(['\'', '"', '\\']);
    Some(
        rest.chars()
            .take_while(|c| !c.is_whitespace() && !"'\"\\".contains(*c))
            .collect(),
    )
}

/// The content of the agent's configuration file.
pub fn own_conf(cfg: &PgConfig) -> Result<String, OcfError> {
    let mut s = String::from(
        "# Written by ocf:pgstack:postgresql (replication mode) before each start as a\n\
         # standby; the server reads it as its config_file. Edits are lost at the next start.\n",
    );
    s.push_str(&format!(
        "include {}\n",
        guc_string(&user_conf(cfg).display().to_string())
    ));
    match (&cfg.repl.recovery_template, primary_conninfo(cfg)) {
        (Some(t), _) => {
            s.push_str(&format!("# from recovery_template {}\n", t.display()));
            s.push_str(&template_settings(t)?);
        }
        (None, Some(ci)) => s.push_str(&format!("primary_conninfo = {}\n", guc_string(&ci))),
        (None, None) => {
            return Err(OcfError::Configured(
                "replication mode needs master_ip (the primary's address) or recovery_template"
                    .into(),
            ))
        }
    }
    s.push_str("recovery_target_timeline = 'latest'\n");
    Ok(s)
}

/// Checks of the replication mode, after those of every mode. Never run by stop or a
/// probe (the dispatcher validates only for start, reload and validate-all).
pub fn validate(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let meta = &ctx.env.meta;
    if let Some(n) = meta.promoted_max.filter(|n| *n > 1) {
        return Err(OcfError::Configured(format!(
            "promoted-max is {n}: streaming replication has one primary (set promoted-max=1)"
        )));
    }
    if let Some(n) = meta.promoted_node_max.filter(|n| *n > 1) {
        return Err(OcfError::Configured(format!(
            "promoted-node-max is {n}; set promoted-node-max=1"
        )));
    }
    let is_clone = meta.clone.is_some() || meta.clone_max.is_some();
    if is_clone && !meta.notify {
        return Err(OcfError::Configured(
            "the clone must have notify=true: promotion is prepared in the pre-promote \
             notification"
                .into(),
        ));
    }
    if is_clone
        && ctx
            .env
            .var("OCF_RESKEY_CRM_meta_promotable")
            .is_some_and(|v| !crate::ocf::env::is_true(v))
    {
        return Err(OcfError::Configured(
            "mode=replication needs a promotable clone (promotable=true)".into(),
        ));
    }
    cfg.check(Some(&[
        "mode",
        "rep_mode",
        "master_ip",
        "repuser",
        "primary_conninfo_opt",
        "recovery_template",
        "maxlag",
    ]))?;
    let node = &cfg.repl.node;
    if node.is_empty() {
        return Err(OcfError::Configured(
            "cannot tell this node's name (no CRM_meta_on_node, crm_node -n failed)".into(),
        ));
    }
    match &cfg.repl.recovery_template {
        Some(t) => {
            let settings = template_settings(t)?;
            match template_application_name(&settings) {
                Some(a) if &a == node => {}
                Some(a) => {
                    return Err(OcfError::Args(format!(
                        "recovery_template {}: primary_conninfo has application_name={a}, \
                         not this node's name {node}",
                        t.display()
                    )))
                }
                None => {
                    return Err(OcfError::Args(format!(
                        "recovery_template {} must set primary_conninfo with \
                         application_name={node}",
                        t.display()
                    )))
                }
            }
        }
        None if cfg.repl.primary_host.is_none() => {
            return Err(OcfError::Configured(
                "replication mode needs master_ip (the primary's address) or \
                 recovery_template"
                    .into(),
            ))
        }
        None => {}
    }
    if let Ok(auto) = std::fs::read_to_string(cfg.datadir.join("postgresql.auto.conf")) {
        if auto
            .lines()
            .any(|l| l.trim_start().starts_with("primary_conninfo"))
        {
            ctx.log.warn(&format!(
                "{}/postgresql.auto.conf sets primary_conninfo, which overrides the \
                 agent's (ALTER SYSTEM RESET primary_conninfo)",
                cfg.datadir.display()
            ));
        }
    }
    if ctx.action == Action::ValidateAll && ctx.env.check_level >= 10 {
        if let Found::Postmaster { pid, file } = instance::find(os, cfg) {
            let creds = instance::credentials(cfg)?;
            let s = state(os, cfg, &file, &creds, ctx)
                .map_err(|e| OcfError::Generic(format!("postmaster {pid}: {e}")))?;
            if s.in_recovery && s.receiver.as_deref() != Some("streaming") {
                return Err(OcfError::Args(format!(
                    "standby {pid} does not stream from its primary ({}): check master_ip, \
                     repuser, the password file and pg_hba.conf on the primary (the \
                     server log says why)",
                    primary_conninfo(cfg).unwrap_or_else(|| "recovery_template".into())
                )));
            }
        }
    }
    Ok(())
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

/// A connected standby as the primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standby {
    pub name: String,
    pub state: String,
    /// Bytes of WAL the standby has not flushed yet.
    pub lag: Option<u64>,
}

/// What the server says about its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleState {
    pub in_recovery: bool,
    /// `pg_stat_wal_receiver.status` of a standby (`streaming`, ...).
    pub receiver: Option<String>,
    pub standbys: Vec<Standby>,
}

const STATE_SQL: &str =
    "select pg_is_in_recovery(), (select status from pg_stat_wal_receiver limit 1)";
const STANDBYS_SQL: &str = "select application_name, state, case when pg_is_in_recovery() \
     then null else pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint end \
     from pg_stat_replication where application_name <> ''";

fn cell(rows: Option<&Rows>, r: usize, c: usize) -> Option<String> {
    rows?.get(r)?.get(c)?.clone()
}

fn parse_state(all: &[Rows], base: usize) -> RoleState {
    let st = all.get(base);
    RoleState {
        in_recovery: cell(st, 0, 0).as_deref() == Some("t"),
        receiver: cell(st, 0, 1),
        standbys: all
            .get(base + 1)
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| {
                        Some(Standby {
                            name: r.first()?.clone()?,
                            state: r.get(1).cloned().flatten().unwrap_or_default(),
                            lag: r.get(2).cloned().flatten().and_then(|v| v.parse().ok()),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// The role state over the system user's connection.
fn state(
    os: &impl PgOs,
    cfg: &PgConfig,
    file: &PostmasterPid,
    creds: &Credentials,
    ctx: &Ctx,
) -> Result<RoleState, OcfError> {
    let p = admin_probe(cfg, file, creds)?;
    let all = os
        .query(
            &p,
            &[STATE_SQL.into(), STANDBYS_SQL.into()],
            ctx.deadline.instant(),
        )
        .map_err(|e| OcfError::Generic(e.to_string()))?;
    Ok(parse_state(&all, 0))
}

/// Promotion scores the primary gives, by node: streaming standbys ranked by lag (then
/// name) get `1000 - 10 * rank`; one beyond `maxlag` (when set) or not streaming, -1.
pub fn local_scores(standbys: &[Standby], maxlag: u64) -> Vec<(String, i64)> {
    let mut ok: Vec<&Standby> = standbys
        .iter()
        .filter(|s| s.state == "streaming" && (maxlag == 0 || s.lag.unwrap_or(u64::MAX) <= maxlag))
        .collect();
    ok.sort_by(|a, b| a.lag.cmp(&b.lag).then(a.name.cmp(&b.name)));
    let mut out: Vec<(String, i64)> = ok
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), SCORE_BEST_STANDBY - 10 * i as i64))
        .collect();
    for s in standbys {
        if !out.iter().any(|(n, _)| n == &s.name) {
            out.push((s.name.clone(), SCORE_REFUSED));
        }
    }
    out
}

fn set_node_score(cluster: &dyn Cluster, ctx: &Ctx, node: &str, score: i64) {
    if let Err(e) = cluster.promotion_score(
        ctx.env.instance_base(),
        Some(node),
        Some(score),
        ctx.deadline.instant(),
    ) {
        ctx.log.warn(&format!(
            "could not set the promotion score of {node} to {score} (not in a cluster?): {e}"
        ));
    }
}

/// `synchronous_standby_names` the primary should have (see the module documentation).
pub fn wanted_sync_names(cfg: &PgConfig, standbys: &[Standby]) -> String {
    if !cfg.repl.lone_primary_writes {
        return "ANY 1 (*)".into();
    }
    let names: BTreeSet<&str> = standbys
        .iter()
        .filter(|s| s.state == "streaming")
        .map(|s| s.name.as_str())
        .collect();
    if names.is_empty() {
        return String::new();
    }
    let list: Vec<String> = names
        .iter()
        .map(|n| format!("\"{}\"", n.replace('"', "")))
        .collect();
    format!("ANY 1 ({})", list.join(", "))
}

/// Sets `synchronous_standby_names` when it differs from what is wanted.
fn manage_sync(
    os: &impl PgOs,
    admin: &Probe,
    cfg: &PgConfig,
    standbys: &[Standby],
    ctx: &Ctx,
) -> Result<(), OcfError> {
    let want = wanted_sync_names(cfg, standbys);
    let d = ctx.deadline.instant();
    let q = |stmts: Vec<String>| {
        os.query(admin, &stmts, d)
            .map_err(|e| OcfError::Generic(format!("synchronous_standby_names: {e}")))
    };
    let now = q(vec!["show synchronous_standby_names".into()])?;
    let current = cell(now.first(), 0, 0).unwrap_or_default();
    if current == want {
        return Ok(());
    }
    q(vec![
        format!(
            "alter system set synchronous_standby_names = {}",
            guc_string(&want)
        ),
        "select pg_reload_conf()".into(),
    ])?;
    ctx.log.info(&format!(
        "synchronous_standby_names: {current:?} -> {want:?}"
    ));
    Ok(())
}

pub fn monitor(
    os: &impl PgOs,
    cluster: &dyn Cluster,
    cfg: &PgConfig,
    ctx: &Ctx,
) -> Result<Status, OcfError> {
    let (pid, file) = match instance::find(os, cfg) {
        Found::Postmaster { pid, file } => (pid, file),
        Found::None {
            pidfile,
            stale,
            orphans,
        } => return not_running(os, cfg, ctx, pidfile, stale, &orphans),
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
            &[
                cfg.monitor_sql.clone(),
                STATE_SQL.into(),
                STANDBYS_SQL.into(),
            ],
            ctx.deadline.instant(),
        )
        .map_err(|e| OcfError::Generic(format!("postmaster {pid} is running but {e}")))?;
    let st = parse_state(&all, 1);
    if st.in_recovery {
        if st.receiver.as_deref() == Some("streaming") {
            return Ok(Status::Running);
        }
        ctx.log.warn(&format!(
            "standby {pid} does not stream from a primary (WAL receiver: {}); promotion \
             score {SCORE_NOT_STREAMING}",
            st.receiver.as_deref().unwrap_or("none")
        ));
        crate::ocf::promotion::set_score(cluster, ctx, SCORE_NOT_STREAMING);
        return Ok(Status::Running);
    }
    crate::ocf::promotion::set_score(cluster, ctx, SCORE_PRIMARY);
    for (node, score) in local_scores(&st.standbys, cfg.repl.maxlag) {
        set_node_score(cluster, ctx, &node, score);
    }
    if cfg.repl.sync {
        let admin = admin_probe(cfg, &file, &creds)?;
        if let Err(e) = manage_sync(os, &admin, cfg, &st.standbys, ctx) {
            ctx.log.warn(&e.to_string());
        }
    }
    Ok(Status::Promoted)
}

fn not_running(
    os: &impl PgOs,
    cfg: &PgConfig,
    ctx: &Ctx,
    pidfile: bool,
    stale: Option<u32>,
    orphans: &[u32],
) -> Result<Status, OcfError> {
    if expects_promoted(ctx) {
        if let Ok(creds) = instance::credentials(cfg) {
            let c = os.control_data(&cfg.bindir(), &cfg.datadir, &creds, ctx.deadline.instant());
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
        os, cfg, ctx, pidfile, stale, orphans,
    )?))
}

/// Starts as a standby: the agent's file and `standby.signal`, then the postmaster with
/// that file as its configuration. A server already running is left as it is.
pub fn start(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let creds = instance::credentials(cfg)?;
    if let Found::Postmaster { pid, .. } = instance::find(os, cfg) {
        ctx.log.info(&format!(
            "postmaster {pid} already serves {}; left in its role",
            cfg.datadir.display()
        ));
        return single::start_with(os, cfg, ctx, cfg.config.clone());
    }
    let conf = own_conf(cfg)?;
    os.write_owned(&cfg.datadir, OWN_CONF, &conf, &creds)?;
    os.write_owned(&cfg.datadir, STANDBY_SIGNAL, "", &creds)?;
    ctx.log.info(&format!(
        "starting {} as a standby ({} and {})",
        cfg.datadir.display(),
        STANDBY_SIGNAL,
        OWN_CONF
    ));
    single::start_with(os, cfg, ctx, Some(cfg.datadir.join(OWN_CONF)))
}

/// Promotes a standby with `pg_promote`, waiting at most what the deadline leaves, and
/// checks that the server left recovery. A primary is left as it is.
pub fn promote(
    os: &impl PgOs,
    cluster: &dyn Cluster,
    cfg: &PgConfig,
    ctx: &Ctx,
) -> Result<(), OcfError> {
    let Found::Postmaster { pid, file } = instance::find(os, cfg) else {
        return Err(OcfError::Generic(format!(
            "cannot promote {}: no postmaster runs",
            cfg.datadir.display()
        )));
    };
    let creds = instance::credentials(cfg)?;
    let admin = admin_probe(cfg, &file, &creds)?;
    let st = state(os, cfg, &file, &creds, ctx)?;
    if !st.in_recovery {
        ctx.log
            .info(&format!("postmaster {pid} is already a primary"));
        crate::ocf::promotion::set_score(cluster, ctx, SCORE_PRIMARY);
        return Ok(());
    }
    promote_allowed(ctx)?;
    // pg_promote waits in whole seconds; leave a margin for the answer and the check.
    let secs = (ctx.deadline.remaining().as_secs_f64() * 0.8)
        .floor()
        .max(1.0) as u64;
    let all = os
        .query(
            &admin,
            &[
                format!("select pg_promote(true, {secs})"),
                "select pg_is_in_recovery()".into(),
            ],
            ctx.deadline.instant(),
        )
        .map_err(|e| OcfError::Generic(format!("promoting postmaster {pid}: {e}")))?;
    let promoted = cell(all.first(), 0, 0).as_deref() == Some("t");
    let in_recovery = cell(all.get(1), 0, 0).as_deref() != Some("f");
    if !promoted || in_recovery {
        return Err(OcfError::Generic(format!(
            "postmaster {pid} was not promoted within {secs} s (pg_promote: {}, still in \
             recovery: {in_recovery})",
            if promoted { "true" } else { "false" }
        )));
    }
    ctx.log.info(&format!(
        "postmaster {pid} promoted in {} ms",
        ctx.deadline.elapsed().as_millis()
    ));
    crate::ocf::promotion::set_score(cluster, ctx, SCORE_PRIMARY);
    if cfg.repl.sync {
        if let Err(e) = manage_sync(os, &admin, cfg, &[], ctx) {
            ctx.log.warn(&e.to_string());
        }
    }
    Ok(())
}

/// The election's last word before a promotion (the target must still be the best
/// candidate). Until WAL positions are published, every promotion Pacemaker asks for
/// goes ahead.
fn promote_allowed(_ctx: &Ctx) -> Result<(), OcfError> {
    Ok(())
}

/// Demotes a primary: fast shutdown (escalating within a share of the deadline), then a
/// start as a standby. A standby, or nothing running, is already demoted.
pub fn demote(os: &impl PgOs, cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
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
    start(os, cfg, ctx)
}

/// Notifications: the election's steps hook in here (pre-promote publishes WAL
/// positions, post-promote clears them). Never fails.
pub fn notify(_os: &impl PgOs, _cfg: &PgConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let n = ctx.env.notify();
    ctx.log.debug(&format!(
        "notify {:?}-{}: promote {:?}, demote {:?}, start {:?}, stop {:?}",
        n.when,
        n.operation.as_deref().unwrap_or("?"),
        n.promote,
        n.demote,
        n.start,
        n.stop
    ));
    Ok(())
}

#[cfg(test)]
#[path = "replication_tests.rs"]
mod tests;
