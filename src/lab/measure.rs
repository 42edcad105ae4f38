//! The lab's two scenarios with their measurements: a managed move and a power cut.

use std::time::{Duration, Instant};

use super::history::{self, Takeover};
use super::{client, cluster, node, poll, repl, Lab, LabError, LabResult, Stack};

pub const GROUP: [&str; 3] = ["pg_fs", "pg_db", "pg_vip"];

pub use super::cluster::Move;

impl Lab {
    /// The node's pacemaker.log, parsed.
    pub fn pacemaker_log(&self, node: &str) -> Vec<history::LogLine> {
        let p = self
            .node_dir(node)
            .join("log-pacemaker")
            .join("pacemaker.log");
        history::parse_pacemaker_log(
            &std::fs::read_to_string(p).unwrap_or_default(),
            history::this_year(),
        )
    }

    /// The CIB with its status, from a live node.
    pub fn cib_query(&self, from: &str) -> LabResult<String> {
        node::exec(self, from, &["cibadmin", "-Q"], Duration::from_secs(10))
    }

    /// `pgstack cib migrate PGServer to` with the measurements of the move.
    pub fn switchover_measured(&self, to: Option<&str>) -> LabResult<Move> {
        let from = self
            .active_node()?
            .ok_or_else(|| LabError::Invalid("the service (pg_vip) runs nowhere".into()))?;
        let to = match to {
            Some(t) => t.to_string(),
            None => self
                .other_node(&from)
                .ok_or_else(|| LabError::Invalid(format!("no other node than {from} is up")))?,
        };
        if to == from {
            return Err(LabError::Invalid(format!(
                "the service already runs on {to}"
            )));
        }
        let t0 = super::now_f() - 0.001;
        let start = Instant::now();
        let output = self.switchover(&to)?;
        let command_secs = start.elapsed().as_secs_f64();
        let after = t0 - 0.001;
        // The move begins with the first stop: the VIP's in the group, the demote of the
        // primary in the replication stack (the VIP stays until it is done).
        let (first_rsc, first_task) = match self.cfg.stack {
            Stack::Shared => ("pg_vip", "stop"),
            Stack::Replication => (repl::PG_RSC, "demote"),
        };
        let (stop_vip, start_vip) = cluster::move_logged(
            self,
            &from,
            (first_task, first_rsc),
            &to,
            after,
            10.0,
            Duration::from_millis(50),
        )?;
        let cib = self.cib_query(&to)?;
        let ops = history::parse_ops(&cib)?;
        let vip_stop_exec = cluster::exec_secs(&ops, &from, first_rsc, first_task);
        // The stack's order, as each node must have done it.
        let (want_from, want_to, target): (&[cluster::Step], &[cluster::Step], _) =
            match self.cfg.stack {
                Stack::Shared => (
                    &[("stop", "pg_vip"), ("stop", "pg_db"), ("stop", "pg_fs")],
                    &[("start", "pg_fs"), ("start", "pg_db"), ("start", "pg_vip")],
                    "PGServer",
                ),
                Stack::Replication => (
                    &[("demote", repl::PG_RSC), ("stop", "pg_vip")],
                    &[("promote", repl::PG_RSC), ("start", "pg_vip")],
                    repl::CLONE,
                ),
            };
        Ok(Move {
            secs: start_vip - (stop_vip - vip_stop_exec),
            command_secs,
            agents_secs: cluster::agents_secs(&ops, &from, want_from, 0)
                + cluster::agents_secs(&ops, &to, want_to, 0),
            on_from: cluster::steps(&ops, &from, want_from),
            on_to: cluster::steps(&ops, &to, want_to),
            want_from: cluster::step_names(want_from),
            want_to: cluster::step_names(want_to),
            demote_before_promote: true,
            constraint_left: cib.contains(&format!("cli-prefer-{target}"))
                || cib.contains(&format!("cli-ban-{target}")),
            output,
            from,
            to,
        })
    }

    /// A power cut of the node running PGServer (or `name`), then the takeover measured:
    /// the first answered query through the VIP and the split from the survivor's events.
    pub fn crash_measured(&self, name: Option<&str>) -> LabResult<(String, String, Takeover)> {
        let victim = match name {
            Some(n) => n.to_string(),
            None => self
                .active_node()?
                .ok_or_else(|| LabError::Invalid("the service (pg_vip) runs nowhere".into()))?,
        };
        if self.other_node(&victim).is_none() {
            return Err(LabError::Invalid(format!(
                "no node but {victim} is up: nothing would take over"
            )));
        }
        let cut = self.crash(&victim)?;
        let answered = client::first_answer(90.0)?;
        let survivor = poll(
            "the survivor running PGServer",
            10.0,
            Duration::from_millis(100),
            || self.active_node().ok().flatten(),
        )?;
        poll(
            "the takeover in the survivor's pacemaker.log",
            10.0,
            Duration::from_millis(50),
            || {
                history::result_logged(
                    &self.pacemaker_log(&survivor),
                    "start",
                    "pg_vip",
                    &survivor,
                    cut - 0.001,
                )
            },
        )?;
        let ops = history::parse_ops(&self.cib_query(&survivor)?)?;
        let t = history::takeover(
            &self.pacemaker_log(&survivor),
            &ops,
            &victim,
            &survivor,
            cut,
            answered,
            match self.cfg.stack {
                Stack::Shared => history::SHARED_STEPS,
                Stack::Replication => history::REPLICATION_STEPS,
            },
        )?;
        Ok((victim, survivor, t))
    }
}
