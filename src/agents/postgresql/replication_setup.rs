//! The replication mode's standby settings (the agent's configuration file) and its
//! validation: split from [`super::replication`], whose documentation describes both.

#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::instance::{self, Found};
use super::replication::{cell, state};
use super::PgConfig;
use crate::ocf::{Action, Ctx, OcfError};
use crate::sys::pg::client::Probe;
use crate::sys::pg::wal::Replica;
use crate::sys::pg::PgOs;

/// A connection string value, quoted when it must be.
fn conninfo_value(v: &str) -> String {
    if !v.is_empty() && !v.contains([' ', '\'', '\\']) {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A string setting of postgresql.conf.
pub(super) fn guc_string(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// `primary_conninfo` from the parameters (`None` without `master_ip`).
pub fn primary_conninfo(cfg: &PgConfig) -> Option<String> {
    let host = cfg.repl.upstream.host.as_deref()?;
    let mut w = vec![
        format!("host={}", conninfo_value(host)),
        format!("port={}", cfg.port),
        format!("user={}", conninfo_value(&cfg.repl.upstream.user)),
        format!("application_name={}", conninfo_value(&cfg.repl.node)),
    ];
    // Later keywords win: a port= here names the primary's port.
    w.extend(cfg.repl.upstream.opts.clone());
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
    // Before the include, so the user's own setting wins: a standby whose primary just
    // moved (a switchover, a failover) retries every second instead of PostgreSQL's 5 s,
    // so it streams again, and a synchronous primary commits again, that much sooner.
    s.push_str("wal_retrieve_retry_interval = '1s'\n");
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
        "maxlag_time",
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
        None if cfg.repl.upstream.host.is_none() => {
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

/// `synchronous_standby_names` the primary should have (see [`super::replication`]).
pub fn wanted_sync_names(cfg: &PgConfig, standbys: &[Replica]) -> String {
    if !cfg.repl.lone_primary_writes {
        return "ANY 1 (*)".into();
    }
    let names: BTreeSet<&str> = standbys
        .iter()
        .filter(|s| s.state == "streaming")
        .map(|s| s.application_name.as_str())
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
pub(super) fn manage_sync(
    os: &impl PgOs,
    admin: &Probe,
    cfg: &PgConfig,
    standbys: &[Replica],
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
