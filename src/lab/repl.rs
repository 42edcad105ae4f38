//! The replication stack of the lab: one PostgreSQL data directory per node (a primary made
//! by initdb on n1, standbys copied from it by pg_basebackup), the promotable clone of the
//! `replication` template and the VIP on the primary.
//!
//! Each node's `DIR/nI/db` is bind-mounted by its PID 1 on `DIR/db`, so the data directory
//! has the same path on every node (`DIR/db/pgdata`), as on real nodes with their own disks.
//! The node's own settings (`primary_conninfo` with `application_name=<node>`) are in
//! `DIR/db/node.conf`, outside the data directory, included by postgresql.conf: a base
//! backup copies the data directory, never another node's name.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{node, node_index, node_ns, pgsetup, poll, run};
use super::{Lab, LabError, LabResult, PG_BINDIR, PG_SOCKETDIR, SUBNET, VIP};
use crate::sys::runner::{self, Cmd};

/// The promotable clone and its primitive (ids of the `replication` template).
pub const CLONE: &str = "pgsql-ha";
pub const PG_RSC: &str = "pgsqld";
/// The replication role of the lab.
pub const REPL_USER: &str = "replicator";

/// The host path of a node's own disk (bound on [`Lab::mountpoint`] inside the node).
pub fn node_db(lab: &Lab, name: &str) -> PathBuf {
    lab.node_dir(name).join("db")
}

/// The host path of a node's data directory.
pub fn node_pgdata(lab: &Lab, name: &str) -> PathBuf {
    node_db(lab, name).join("pgdata")
}

fn bin(name: &str) -> String {
    format!("{PG_BINDIR}/{name}")
}

/// The settings every node shares (appended to the primary's postgresql.conf before the
/// standbys are copied from it).
fn common_conf(lab: &Lab, sync: bool) -> String {
    let mut s = pgsetup::client_conf();
    s.push_str(
        "# Streaming replication: hints for pg_rewind, WAL kept for standbys that fall\n\
         # behind or come back, the standby's timeline following the new primary.\n\
         wal_level = replica\n\
         wal_log_hints = on\n\
         wal_keep_size = 256MB\n\
         max_wal_senders = 10\n\
         hot_standby = on\n\
         wal_receiver_status_interval = 1s\n\
         # A replication connection to an address that moved is noticed within seconds.\n\
         wal_sender_timeout = 10s\n\
         wal_receiver_timeout = 10s\n\
         recovery_target_timeline = 'latest'\n",
    );
    if sync {
        let names: Vec<String> = lab.node_names();
        s.push_str(&format!(
            "# Zero loss: a commit is acknowledged once a standby has it.\n\
             synchronous_commit = on\n\
             synchronous_standby_names = 'ANY 1 ({})'\n",
            names.join(", ")
        ));
    }
    s.push_str(&format!(
        "# This node's own settings (outside the data directory).\n\
         include_if_exists = '{}'\n",
        lab.mountpoint().join("node.conf").display()
    ));
    s
}

/// The node's own settings: its primary_conninfo names the VIP and itself.
fn node_conf(name: &str) -> String {
    format!(
        "# Written by pgstack lab for {name}.\n\
         primary_conninfo = 'host={VIP} port=5432 user={REPL_USER} application_name={name} connect_timeout=2'\n"
    )
}

/// The functions pg_rewind calls on its source (PostgreSQL 15 documents them): the
/// replication role is granted these alone, not superuser, so that
/// `pgstack lab rejoin NODE --rewind` rewinds from the primary with the conninfo the
/// standbys use (pg_hba.conf lets every role of the lab network in).
pub const REWIND_FUNCTIONS: [&str; 4] = [
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
];

/// The statements making the replication role on the first primary (the standbys are
/// copies: the role and its grants are in the catalog).
fn role_sql() -> Vec<String> {
    let mut v = vec![format!("CREATE ROLE {REPL_USER} REPLICATION LOGIN")];
    v.extend(
        REWIND_FUNCTIONS
            .iter()
            .map(|f| format!("GRANT EXECUTE ON FUNCTION {f} TO {REPL_USER}")),
    );
    v
}

/// Makes every node's disk: initdb on n1, a temporary postmaster on a private socket
/// (no TCP), the replication role, pg_basebackup for the others, the postmaster stopped.
pub fn create(lab: &Lab, sync: bool) -> LabResult<()> {
    let pg = pgsetup::postgres_user()?;
    for n in lab.node_names() {
        let db = node_db(lab, &n);
        run::mkdir(&db)?;
        run::chown(&db, "postgres")?;
        run::write(&db.join("node.conf"), &node_conf(&n))?;
    }
    run::mkdir(&lab.mountpoint())?;
    let first = &lab.node_names()[0];
    let pgdata = node_pgdata(lab, first);
    let pgdata_s = pgdata.display().to_string();
    pgsetup::initdb(&pgdata, &pg)?;
    run::append(&pgdata.join("postgresql.conf"), &common_conf(lab, sync))?;
    run::append(
        &pgdata.join("pg_hba.conf"),
        &format!(
            "{}host replication {REPL_USER} {SUBNET}.0/24 trust\n",
            pgsetup::client_hba()
        ),
    )?;
    let sock = lab.dir.join("setup-sock");
    run::mkdir(&sock)?;
    run::chown(&sock, "postgres")?;
    let sock_s = sock.display().to_string();
    let logp = sock.join("postgres.log");
    let log = std::fs::File::create(&logp)
        .map_err(|e| LabError::io(format!("creating {}", logp.display()), e))?;
    let pm = Cmd::new(bin("postgres"))
        .args([
            "-D",
            &pgdata_s,
            "-c",
            "listen_addresses=",
            // No standby exists yet: the setup's commits must not wait for one (--sync).
            "-c",
            "synchronous_standby_names=",
            "-c",
            &format!("unix_socket_directories={sock_s}"),
        ])
        .run_as(pg.clone())
        .current_dir("/");
    runner::spawn_detached_logged(&pm, log).map_err(|e| LabError::Invalid(e.to_string()))?;
    let r = (|| -> LabResult<()> {
        poll(
            &format!("the first postmaster answering on {sock_s}"),
            60.0,
            Duration::from_millis(100),
            || {
                run::out(
                    &[&bin("pg_isready"), "-q", "-h", &sock_s],
                    Duration::from_secs(5),
                )
                .ok()
                .filter(|o| o.success())
            },
        )?;
        for sql in role_sql() {
            let psql = Cmd::new(bin("psql"))
                .args([
                    "-X",
                    "-q",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    &sock_s,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    &sql,
                ])
                .run_as(pg.clone())
                .current_dir("/");
            run::cmd_ok(&psql, Duration::from_secs(30))?;
        }
        for n in lab.node_names().iter().skip(1) {
            let d = node_pgdata(lab, n).display().to_string();
            let c = Cmd::new(bin("pg_basebackup"))
                .args([
                    "-h",
                    &sock_s,
                    "-U",
                    REPL_USER,
                    "-D",
                    &d,
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-sync",
                ])
                .run_as(pg.clone())
                .current_dir("/");
            run::cmd_ok(&c, Duration::from_secs(120))?;
        }
        Ok(())
    })();
    let stop = Cmd::new(bin("pg_ctl"))
        .args(["-D", &pgdata_s, "-m", "fast", "-w", "-t", "60", "stop"])
        .run_as(pg)
        .current_dir("/");
    let s = run::cmd_ok(&stop, Duration::from_secs(70));
    r?;
    s?;
    let _ = std::fs::remove_dir_all(&sock);
    Ok(())
}

/// `Database cluster state` of a node's data directory (pg_controldata, read on the host).
pub fn controldata_state(lab: &Lab, name: &str) -> Option<String> {
    let d = node_pgdata(lab, name).display().to_string();
    let o = run::out(&[&bin("pg_controldata"), "-D", &d], Duration::from_secs(10)).ok()?;
    o.stdout_str()
        .lines()
        .find_map(|l| l.strip_prefix("Database cluster state:"))
        .map(|s| s.trim().to_string())
}

/// Whether the node's data directory was a primary when the node went down (a crashed or
/// cleanly stopped primary): PAF cannot start it as a standby of the new timeline.
pub fn was_primary(lab: &Lab, name: &str) -> bool {
    matches!(
        controldata_state(lab, name).as_deref(),
        Some("in production") | Some("shut down")
    )
}

/// Rebuilds the data directory of the (powered off) node `name` from the primary through
/// the VIP: pg_basebackup run in the node's network namespace as postgres, into a fresh
/// directory that then replaces the old one. Returns the seconds it took.
pub fn rebuild(lab: &Lab, name: &str) -> LabResult<f64> {
    let i = node_index(name, lab.cfg.nodes)?;
    if node::is_alive(lab, name) {
        return Err(LabError::Invalid(format!(
            "{name} runs: a data directory is rebuilt only while its node is down"
        )));
    }
    let t0 = Instant::now();
    super::net::nic_up(name, i)?;
    let pg = pgsetup::postgres_user()?;
    let db = node_db(lab, name);
    let fresh = db.join("pgdata.new");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh)
            .map_err(|e| LabError::io(format!("removing {}", fresh.display()), e))?;
    }
    let netns = format!("--net=/run/netns/{}", node_ns(name));
    let uid = format!("--setuid={}", pg.uid);
    let gid = format!("--setgid={}", pg.gid);
    let fresh_s = fresh.display().to_string();
    let basebackup = bin("pg_basebackup");
    let c = Cmd::new("nsenter")
        .args([
            netns.as_str(),
            &uid,
            &gid,
            &basebackup,
            "-h",
            VIP,
            "-U",
            REPL_USER,
            "-D",
            &fresh_s,
            "-X",
            "stream",
            "-c",
            "fast",
        ])
        .current_dir("/");
    run::cmd_ok(&c, Duration::from_secs(120))?;
    let old = node_pgdata(lab, name);
    std::fs::remove_dir_all(&old)
        .map_err(|e| LabError::io(format!("removing {}", old.display()), e))?;
    std::fs::rename(&fresh, &old).map_err(|e| {
        LabError::io(
            format!("renaming {} to {}", fresh.display(), old.display()),
            e,
        )
    })?;
    Ok(t0.elapsed().as_secs_f64())
}

/// `pgstack pg rejoin` of `pgdata` for node `name` from the primary through the VIP
/// (application_name: what synchronous_standby_names names; the copy or the rewind
/// writes this conninfo into postgresql.auto.conf), connecting within `connect_timeout`
/// seconds; with `rewind`, pg_rewind instead of a copy (the replication role is granted
/// what pg_rewind reads, [`REWIND_FUNCTIONS`]).
fn rejoin_argv(
    lab: &Lab,
    name: &str,
    pgdata: &str,
    connect_timeout: u32,
    rewind: bool,
) -> Vec<String> {
    let conninfo = format!(
        "host={VIP} port=5432 user={REPL_USER} application_name={name} \
         connect_timeout={connect_timeout}"
    );
    let mut v: Vec<String> = [
        &lab.cfg.exe.display().to_string(),
        "pg",
        "rejoin",
        "--pgdata",
        pgdata,
        "--primary-conninfo",
        &conninfo,
        "--bindir",
        PG_BINDIR,
        "--timeout",
        "120",
    ]
    .map(str::to_string)
    .to_vec();
    if rewind {
        v.push("--rewind".into());
    }
    v
}

/// What `pgstack pg rejoin` did to a data directory (what it printed says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejoinMethod {
    /// It followed the primary: nothing rebuilt.
    Nothing,
    /// pg_rewind from the primary, in place.
    Rewound,
    /// A copy of the primary; the old directory kept aside.
    Copied,
}

impl RejoinMethod {
    /// Read from `pgstack pg rejoin`'s output (its one line, src/cli/pg.rs).
    pub fn of_output(out: &str) -> Option<RejoinMethod> {
        if out.contains(": rewound with pg_rewind;") {
            Some(RejoinMethod::Rewound)
        } else if out.contains(": copied from the primary;") {
            Some(RejoinMethod::Copied)
        } else if out.contains(": nothing to rebuild;") {
            Some(RejoinMethod::Nothing)
        } else {
            None
        }
    }

    /// What `lab rejoin` prints of `method`.
    pub fn describe(method: Option<RejoinMethod>) -> &'static str {
        match method {
            None => "how: not in pgstack pg rejoin's output",
            Some(RejoinMethod::Nothing) => "nothing to rebuild, it followed the primary",
            Some(RejoinMethod::Rewound) => "rewound with pg_rewind",
            Some(RejoinMethod::Copied) => "copied from the primary, the old directory kept aside",
        }
    }
}

/// A rejoin done by [`rejoin`].
#[derive(Debug, Clone)]
pub struct Rejoin {
    /// Seconds of `pgstack pg rejoin`.
    pub secs: f64,
    /// What it did (`None`: its output did not say).
    pub method: Option<RejoinMethod>,
    /// Its output, then the cleanup's.
    pub out: String,
}

/// Before a former primary's node boots under pgstack's agent: `pgstack pg rejoin` of
/// its data directory against the primary through the VIP, run from the node's network
/// namespace (the agent refuses to start a former primary that diverged, as it should;
/// rejoin does nothing when it follows, else copies the primary, keeping the old
/// directory aside). Returns the seconds and what rejoin said.
pub fn rejoin_before_boot(lab: &Lab, name: &str) -> LabResult<(f64, String)> {
    let i = node_index(name, lab.cfg.nodes)?;
    if node::is_alive(lab, name) {
        return Err(LabError::Invalid(format!(
            "{name} runs: a data directory is rejoined only while its node is down"
        )));
    }
    let t0 = Instant::now();
    super::net::nic_up(name, i)?;
    let netns = format!("--net=/run/netns/{}", node_ns(name));
    let pgdata = node_pgdata(lab, name).display().to_string();
    let c = Cmd::new("nsenter")
        .arg(netns)
        .args(rejoin_argv(lab, name, &pgdata, 5, false))
        .current_dir("/");
    let out = run::cmd_ok(&c, Duration::from_secs(130))?;
    Ok((t0.elapsed().as_secs_f64(), out.trim().to_string()))
}

/// The reason Pacemaker recorded for a failed start of the PostgreSQL instance on `name`
/// (`crm_mon`'s failures, read on `name`), if one failed.
pub fn start_failure(lab: &Lab, name: &str) -> Option<String> {
    let x = node::exec(
        lab,
        name,
        &["crm_mon", "-1", "--output-as=xml"],
        Duration::from_secs(30),
    )
    .ok()?;
    let root = crate::cib::xml::parse(&x[x.find("<pacemaker-result")?..]).ok()?;
    let start = format!("{PG_RSC}_start_0");
    root.descendants()
        .into_iter()
        .filter(|e| e.name == "failure" && e.attr("node") == Some(name))
        .find(|e| e.attr("op_key") == Some(start.as_str()))
        .map(|e| e.attr("exitreason").unwrap_or("").to_string())
}

/// What an operator does on `name` after its start was refused: `pgstack pg rejoin` of
/// its (stopped) data directory from the primary through the VIP (with `rewind`:
/// `--rewind`, pg_rewind in place of a copy), then a cleanup of the instance so that
/// Pacemaker starts it again.
pub fn rejoin(lab: &Lab, name: &str, rewind: bool) -> LabResult<Rejoin> {
    node_index(name, lab.cfg.nodes)?;
    let argv = rejoin_argv(lab, name, &lab.pgdata().display().to_string(), 2, rewind);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let mut out = node::exec(lab, name, &argv, Duration::from_secs(130))?;
    let secs = t0.elapsed().as_secs_f64();
    let method = RejoinMethod::of_output(&out);
    out.push_str(&node::exec(
        lab,
        name,
        &[
            "crm_resource",
            "--cleanup",
            "--resource",
            PG_RSC,
            "--node",
            name,
        ],
        Duration::from_secs(30),
    )?);
    Ok(Rejoin { secs, method, out })
}

/// Makes the primary `primary` go on without its standby `standby`: the WAL sender
/// serving that standby (found by its `application_name` in `pg_stat_replication`) is
/// stopped with SIGSTOP, inside the node. Commits are still acknowledged (asynchronous
/// replication) and their WAL stays on the primary only, while both sides still see a
/// streaming connection: the standby's promotion score stays what it was, so a power cut
/// of the primary now fails over to a standby that misses those commits, and the former
/// primary's WAL goes past the fork point of the new timeline. Only for a primary about
/// to be cut (the stopped sender dies with it); within `wal_receiver_timeout` (10 s in
/// the lab) the standby would reconnect and get everything. Returns the sender's pid.
pub fn freeze_wal_sender(lab: &Lab, primary: &str, standby: &str) -> LabResult<u32> {
    node_index(primary, lab.cfg.nodes)?;
    node_index(standby, lab.cfg.nodes)?;
    let out = node_sql(
        lab,
        primary,
        &format!(
            "select pid from pg_stat_replication where application_name = '{standby}' \
             and state = 'streaming'"
        ),
    )?;
    let pids: Vec<u32> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let [pid] = pids[..] else {
        return Err(LabError::Invalid(format!(
            "{primary}: not exactly one WAL sender streaming to {standby}: {:?}",
            out.trim()
        )));
    };
    node::exec(
        lab,
        primary,
        &["kill", "-STOP", &pid.to_string()],
        Duration::from_secs(10),
    )?;
    Ok(pid)
}

/// What one node's PostgreSQL says of itself (asked through its own socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgNode {
    pub name: String,
    /// `pg_is_in_recovery()` is false.
    pub primary: bool,
    /// The primary's current LSN, or the standby's last received / replayed LSN.
    pub current: String,
    pub receive: String,
    pub replay: String,
    pub replay_paused: bool,
    /// On the primary: `application_name state sync_state replay-lag-bytes` per standby.
    pub standbys: Vec<String>,
}

const SELF_SQL: &str = "select pg_is_in_recovery()::text || '|' || \
     coalesce(case when pg_is_in_recovery() then null else pg_current_wal_lsn()::text end, '') || '|' || \
     coalesce(pg_last_wal_receive_lsn()::text, '') || '|' || \
     coalesce(pg_last_wal_replay_lsn()::text, '') || '|' || \
     (case when pg_is_in_recovery() then pg_is_wal_replay_paused()::text else 'false' end) || '|' || \
     coalesce((select string_agg(application_name || ' ' || state || ' ' || sync_state || ' ' || \
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text, '?'), ',' \
       order by application_name) from pg_stat_replication where not pg_is_in_recovery()), '')";

/// Runs SQL as postgres through the node's own socket; the output lines.
pub fn node_sql(lab: &Lab, name: &str, sql: &str) -> LabResult<String> {
    let psql = bin("psql");
    node::exec(
        lab,
        name,
        &[
            &psql,
            "-X",
            "-A",
            "-t",
            "-h",
            PG_SOCKETDIR,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ],
        Duration::from_secs(10),
    )
}

pub fn pg_node(lab: &Lab, name: &str) -> Option<PgNode> {
    let out = node_sql(lab, name, SELF_SQL).ok()?;
    parse_self(name, out.trim())
}

fn parse_self(name: &str, line: &str) -> Option<PgNode> {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() != 6 {
        return None;
    }
    Some(PgNode {
        name: name.to_string(),
        primary: f[0] == "false",
        current: f[1].to_string(),
        receive: f[2].to_string(),
        replay: f[3].to_string(),
        replay_paused: f[4] == "true",
        standbys: f[5]
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

impl PgNode {
    pub fn report(&self) -> String {
        if self.primary {
            format!(
                "primary at {}, standbys: {}",
                self.current,
                if self.standbys.is_empty() {
                    "none".to_string()
                } else {
                    self.standbys
                        .iter()
                        .map(|s| {
                            let w: Vec<&str> = s.split(' ').collect();
                            match w.as_slice() {
                                [n, st, sy, lag] => format!("{n} ({st}, {sy}, lag {lag} B)"),
                                _ => s.clone(),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )
        } else {
            format!(
                "standby: received {}, replayed {}{}",
                if self.receive.is_empty() {
                    "nothing"
                } else {
                    &self.receive
                },
                if self.replay.is_empty() {
                    "nothing"
                } else {
                    &self.replay
                },
                if self.replay_paused {
                    " (replay PAUSED)"
                } else {
                    ""
                }
            )
        }
    }
}

/// The promotable move: `crm_resource --move --promoted` of the clone to `to`, a wait until
/// the cluster is idle, then the constraint cleared (always, also when the wait failed).
pub fn switchover(lab: &Lab, from_node: &str, to: &str) -> LabResult<String> {
    // Pacemaker promotes only a node with a promotion score: right after `up` (or a
    // previous move) the target may not have one yet, and the move would do nothing.
    poll(
        &format!("a promotion score for {to} (the primary's monitor sets it)"),
        60.0,
        Duration::from_millis(500),
        || {
            scores(lab, from_node)
                .into_iter()
                .find(|(n, _)| n == to)
                .and_then(|(_, v)| v)
                .filter(|v| *v > 0)
        },
    )?;
    let lifetime = "PT5M";
    let mut out = node::exec(
        lab,
        from_node,
        &[
            "crm_resource",
            "--move",
            "--promoted",
            "--resource",
            CLONE,
            "--node",
            to,
            "--lifetime",
            lifetime,
        ],
        Duration::from_secs(30),
    )?;
    let waited = node::exec(
        lab,
        from_node,
        &["crm_resource", "--wait", "--timeout=120s"],
        Duration::from_secs(130),
    );
    let cleared = node::exec(
        lab,
        from_node,
        &["crm_resource", "--clear", "--resource", CLONE],
        Duration::from_secs(30),
    );
    out.push_str(&waited?);
    out.push_str(&cleared?);
    Ok(out)
}

/// The promotion scores Pacemaker holds (`master-pgsqld` node attributes), per node: PAF
/// keeps them `forever` (crm_master), pgstack's agent for the node's life (`reboot`).
pub fn scores(lab: &Lab, from_node: &str) -> Vec<(String, Option<i64>)> {
    let name = format!("master-{PG_RSC}");
    lab.node_names()
        .into_iter()
        .map(|n| {
            let v = ["reboot", "forever"].iter().find_map(|lifetime| {
                node::exec(
                    lab,
                    from_node,
                    &[
                        "crm_attribute",
                        "--node",
                        &n,
                        "--name",
                        &name,
                        "--lifetime",
                        lifetime,
                        "--query",
                        "--quiet",
                    ],
                    Duration::from_secs(10),
                )
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
            });
            (n, v)
        })
        .collect()
}

/// The floor of a promotion: the bare `pg_ctl promote -w` on the standby `name`, timed,
/// with the cluster put in maintenance mode first (Pacemaker leaves the resources alone,
/// so it does not fight the second primary). The lab is good for `down` afterwards only.
pub fn promote_floor(lab: &Lab, name: &str) -> LabResult<f64> {
    node_index(name, lab.cfg.nodes)?;
    let me = pg_node(lab, name)
        .ok_or_else(|| LabError::Invalid(format!("{name}: PostgreSQL does not answer")))?;
    if me.primary {
        return Err(LabError::Invalid(format!(
            "{name} is the primary: the floor is measured on a standby"
        )));
    }
    node::exec(
        lab,
        name,
        &[
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "maintenance-mode",
            "--update",
            "true",
        ],
        Duration::from_secs(10),
    )?;
    lab.settle(30)?;
    let pgdata = lab.pgdata().display().to_string();
    let pg_ctl = bin("pg_ctl");
    let t0 = Instant::now();
    node::exec(
        lab,
        name,
        &[
            "setpriv",
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            &pg_ctl,
            "promote",
            "-w",
            "-t",
            "60",
            "-D",
            &pgdata,
        ],
        Duration::from_secs(70),
    )?;
    Ok(t0.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_reports_parse() {
        let p = parse_self(
            "n1",
            "false|0/3000148|||false|n2 streaming async 0,n3 streaming async 128",
        )
        .unwrap();
        assert!(p.primary);
        assert_eq!(p.standbys.len(), 2);
        assert!(p.report().contains("n3 (streaming, async, lag 128 B)"));
        let s = parse_self("n2", "true||0/3000148|0/3000100|true|").unwrap();
        assert!(!s.primary && s.replay_paused && s.standbys.is_empty());
        assert!(s.report().contains("PAUSED"));
        assert!(parse_self("n2", "garbage").is_none());
    }

    #[test]
    fn rejoin_asks_for_pg_rewind_only_with_rewind() {
        let lab = Lab {
            dir: PathBuf::from("/tmp/pgst-lab"),
            cfg: super::super::Config {
                nodes: 2,
                stack: super::super::Stack::Replication,
                token_ms: 1000,
                fencing: true,
                sync: false,
                provider: "pgstack".into(),
                exe: PathBuf::from("/usr/sbin/pgstack"),
            },
        };
        let copy = rejoin_argv(&lab, "n1", "/x/db/pgdata", 2, false);
        let rewind = rejoin_argv(&lab, "n1", "/x/db/pgdata", 2, true);
        assert!(!copy.iter().any(|a| a == "--rewind"), "{copy:?}");
        assert_eq!(rewind.last().map(String::as_str), Some("--rewind"));
        assert_eq!(&rewind[..copy.len()], &copy[..]);
        assert!(copy.iter().any(|a| a.contains("application_name=n1")));
    }

    #[test]
    fn the_rejoin_method_is_read_from_what_pg_rejoin_printed() {
        // The lines `pgstack pg rejoin` prints (src/cli/pg.rs).
        let d = "/srv/pgst/db/pgdata diverged: its timeline 1 goes on to 0/3000100";
        for (line, want) in [
            (
                format!("{d}: rewound with pg_rewind; it starts as a standby"),
                Some(RejoinMethod::Rewound),
            ),
            (
                format!(
                    "{d}: copied from the primary; it starts as a standby; the old directory \
                     is kept at /srv/pgst/db/pgdata.diverged.1"
                ),
                Some(RejoinMethod::Copied),
            ),
            (
                "/srv/pgst/db/pgdata follows the primary (timeline 2, at 0/3000100): nothing \
                 to rebuild; standby.signal is in place"
                    .to_string(),
                Some(RejoinMethod::Nothing),
            ),
            ("garbage".to_string(), None),
        ] {
            assert_eq!(RejoinMethod::of_output(&line), want, "{line}");
        }
    }

    #[test]
    fn the_replication_role_gets_what_pg_rewind_reads_not_superuser() {
        let sql = role_sql();
        assert_eq!(sql[0], format!("CREATE ROLE {REPL_USER} REPLICATION LOGIN"));
        assert!(!sql.iter().any(|s| s.to_uppercase().contains("SUPERUSER")));
        for f in REWIND_FUNCTIONS {
            assert!(
                sql.contains(&format!("GRANT EXECUTE ON FUNCTION {f} TO {REPL_USER}")),
                "{f}"
            );
        }
    }

    #[test]
    fn node_conf_names_the_node_and_the_vip() {
        let c = node_conf("n2");
        assert!(c.contains("application_name=n2"));
        assert!(c.contains(&format!("host={VIP}")));
    }
}
