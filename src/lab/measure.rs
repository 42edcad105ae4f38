//! The lab's two scenarios with their measurements: a managed move and a power cut.

use std::time::{Duration, Instant};

use super::history::{self, Takeover};
use super::{client, node, poll, repl, Lab, LabError, LabResult, Stack};

pub const GROUP: [&str; 3] = ["pg_fs", "pg_db", "pg_vip"];

/// A managed move, as the cluster recorded it.
#[derive(Debug, Clone)]
pub struct Move {
    pub from: String,
    pub to: String,
    /// The VIP's stop began on `from` -> the VIP's start done on `to` (the nodes' logs).
    pub secs: f64,
    /// The migrate command, wall clock (includes its --wait and the clear).
    pub command_secs: f64,
    /// Stops on `from` in call-id order.
    pub stops: Vec<(String, i64)>,
    /// Starts on `to` in call-id order.
    pub starts: Vec<(String, i64)>,
    /// A cli-prefer/cli-ban constraint is still in the CIB.
    pub constraint_left: bool,
    pub output: String,
}

impl Move {
    pub fn in_order(&self) -> bool {
        let names = |v: &[(String, i64)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let shared = names(&self.stops) == ["pg_vip", "pg_db", "pg_fs"]
            && names(&self.starts) == ["pg_fs", "pg_db", "pg_vip"];
        let replication = names(&self.stops) == ["pgsqld demote", "pg_vip stop"]
            && names(&self.starts) == ["pgsqld promote", "pg_vip start"];
        shared || replication
    }
    pub fn report(&self) -> String {
        format!(
            "move {} -> {}: {:.2} s (VIP stop on {} to VIP started on {}; command {:.2} s); \
             stops {:?}, starts {:?} (call ids){}; constraint {}",
            self.from,
            self.to,
            self.secs,
            self.from,
            self.to,
            self.command_secs,
            self.stops,
            self.starts,
            if self.in_order() {
                ", in order"
            } else {
                ", OUT OF ORDER"
            },
            if self.constraint_left {
                "LEFT BEHIND"
            } else {
                "cleared"
            }
        )
    }
}

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
        let (stop_vip, start_vip) = poll(
            "the move's results in the pacemaker logs",
            10.0,
            Duration::from_millis(50),
            || {
                let a = history::result_logged(
                    &self.pacemaker_log(&from),
                    first_task,
                    first_rsc,
                    &from,
                    after,
                )?;
                let b = history::result_logged(
                    &self.pacemaker_log(&to),
                    "start",
                    "pg_vip",
                    &to,
                    after,
                )?;
                Some((a, b))
            },
        )?;
        let cib = self.cib_query(&to)?;
        let ops = history::parse_ops(&cib)?;
        let vip_stop_exec = ops
            .iter()
            .filter(|o| o.node == from && history::rsc_is(&o.rsc, first_rsc) && o.op == first_task)
            .map(|o| o.exec_ms)
            .max()
            .unwrap_or(0) as f64
            / 1000.0;
        let (stops, starts, target) = match self.cfg.stack {
            Stack::Shared => (
                history::order_of(&ops, &from, "stop", &GROUP),
                history::order_of(&ops, &to, "start", &GROUP),
                "PGServer",
            ),
            Stack::Replication => {
                let pick = |node: &str, steps: &[(&str, &str)]| {
                    let mut v: Vec<(String, i64)> = steps
                        .iter()
                        .filter_map(|(r, op)| {
                            history::last_call(&ops, node, r, op).map(|c| (format!("{r} {op}"), c))
                        })
                        .collect();
                    v.sort_by_key(|(_, c)| *c);
                    v
                };
                (
                    pick(&from, &[(repl::PG_RSC, "demote"), ("pg_vip", "stop")]),
                    pick(&to, &[(repl::PG_RSC, "promote"), ("pg_vip", "start")]),
                    repl::CLONE,
                )
            }
        };
        Ok(Move {
            secs: start_vip - (stop_vip - vip_stop_exec),
            command_secs,
            stops,
            starts,
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
