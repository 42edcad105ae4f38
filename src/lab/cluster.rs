//! What the lab asks of a running cluster whatever its nodes are (the namespace nodes of
//! [`super::Lab`], the UML guests of [`super::advanced::Advanced`]): Pacemaker's view and
//! the waits on it. A kind of node only says which nodes run and how a command runs on one.

#![forbid(unsafe_code)]

use std::time::Duration;

use super::history::{self, ClusterStatus, LogLine, Op};
use super::{poll, LabError, LabResult};

/// The nodes of a running lab.
pub trait Nodes {
    /// What one node is called in messages ("node", "guest").
    const KIND: &'static str;
    /// How often a wait asks the cluster again.
    const POLL: Duration;
    /// How long one `crm_mon` may take on a node.
    const CRM_MON_LIMIT: Duration;
    /// The nodes that run, in name order.
    fn live(&self) -> Vec<String>;
    /// Runs `argv` (fixed words, nothing a user gave) on `node`; its stdout when it exits 0.
    fn exec(&self, node: &str, argv: &[&str], limit: Duration) -> LabResult<String>;
    /// The node's pacemaker.log, parsed.
    fn log(&self, node: &str) -> LabResult<Vec<LogLine>>;
}

/// Pacemaker's view, from the DC when it answers (a node that is just joining may not know
/// the resources' state yet), else from the first node whose pacemaker answers.
pub fn status<C: Nodes>(c: &C) -> LabResult<ClusterStatus> {
    let mut last = LabError::Invalid(format!("no {} is running", C::KIND));
    let mut first = None;
    for n in c.live() {
        match c
            .exec(&n, &["crm_mon", "-1", "--output-as=xml"], C::CRM_MON_LIMIT)
            .and_then(|xml| history::parse_crm_mon(&xml, &n))
        {
            Ok(st) if st.dc.as_deref() == Some(n.as_str()) => return Ok(st),
            Ok(st) => {
                first.get_or_insert(st);
            }
            Err(e) => last = e,
        }
    }
    first.ok_or(last)
}

/// Pacemaker's view in the lab's status: who sees it, who is online, the DC, where `what`
/// runs (`at`), then each resource and where it runs.
pub fn report(st: &ClusterStatus, what: &str, at: &str) -> String {
    let mut s = format!(
        "pacemaker (seen from {}): online [{}], DC {}, {what} on {at}\n",
        st.seen_from,
        st.online.join(" "),
        st.dc.as_deref().unwrap_or("none"),
    );
    for (r, n) in &st.resources {
        s.push_str(&format!("  {r:<12} {n}\n"));
    }
    s
}

/// Waits until Pacemaker (seen from any live node) reports `names` online.
pub fn wait_online<C: Nodes, S: AsRef<str>>(c: &C, names: &[S], secs: f64) -> LabResult<()> {
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    poll(
        &format!("nodes {} online", names.join(", ")),
        secs,
        C::POLL,
        || {
            let st = status(c).ok()?;
            names
                .iter()
                .all(|n| st.online.iter().any(|o| o == n))
                .then_some(())
        },
    )
}

/// A managed move, as the cluster recorded it.
#[derive(Debug, Clone)]
pub struct Move {
    pub from: String,
    pub to: String,
    /// The first step began on `from` -> the VIP's start done on `to` (the nodes' logs).
    pub secs: f64,
    /// The migrate command, wall clock (includes its --wait and the clear).
    pub command_secs: f64,
    /// The exec times of the move's steps (the agents' own share of it).
    pub agents_secs: f64,
    /// What `from` did (its stops, a demote), in call-id order.
    pub on_from: Vec<(String, i64)>,
    /// What `to` did (a promote, its starts), in call-id order.
    pub on_to: Vec<(String, i64)>,
    /// The stack's order: what `from`, then `to`, must have done.
    pub want_from: Vec<String>,
    pub want_to: Vec<String>,
    /// The demote on `from` was logged done before the promote on `to` (where the stack
    /// checks it).
    pub demote_before_promote: bool,
    /// A cli-prefer/cli-ban constraint is still in the CIB.
    pub constraint_left: bool,
    pub output: String,
}

impl Move {
    /// Both nodes did the stack's steps in its order.
    pub fn in_order(&self) -> bool {
        let names = |v: &[(String, i64)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        names(&self.on_from) == self.want_from
            && names(&self.on_to) == self.want_to
            && self.demote_before_promote
    }

    pub fn report(&self) -> String {
        let steps = |v: &[(String, i64)]| {
            v.iter()
                .map(|(n, c)| format!("{n} ({c})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "move {} -> {}: {:.2} s (first stop on {} to VIP started on {}; command {:.2} s; \
             agents' own steps {:.2} s); \
             on {}: {}; on {}: {} (call ids), {}; constraint {}",
            self.from,
            self.to,
            self.secs,
            self.from,
            self.to,
            self.command_secs,
            self.agents_secs,
            self.from,
            steps(&self.on_from),
            self.to,
            steps(&self.on_to),
            if self.in_order() {
                "in order"
            } else {
                "OUT OF ORDER"
            },
            if self.constraint_left {
                "LEFT BEHIND"
            } else {
                "cleared"
            }
        )
    }
}

/// One step of a move: an operation and its resource (`("stop", "pg_vip")`).
pub type Step<'a> = (&'a str, &'a str);

/// The last successful call of each of `want` on `node`, named `op rsc`, in
/// call-id order: what the node did, in the order it did it.
pub fn steps(ops: &[Op], node: &str, want: &[Step]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = want
        .iter()
        .filter_map(|(op, r)| {
            history::last_call(ops, node, r, op).map(|c| (format!("{op} {r}"), c))
        })
        .collect();
    v.sort_by_key(|(_, c)| *c);
    v
}

/// The agents' own time in `want` on `node`: the sum of the exec times the CIB records
/// for the last successful run of each step changed at `since` (epoch seconds) or later.
pub fn agents_secs(ops: &[Op], node: &str, want: &[Step], since: u64) -> f64 {
    let ms: u64 = want
        .iter()
        .map(|(op, r)| {
            ops.iter()
                .filter(|o| o.node == node && history::rsc_is(&o.rsc, r) && o.op == *op)
                .filter(|o| o.rc == 0 && o.last_rc_change >= since)
                .max_by_key(|o| o.call_id)
                .map_or(0, |o| o.exec_ms)
        })
        .sum();
    ms as f64 / 1000.0
}

/// `want` as the names [`steps`] gives.
pub fn step_names(want: &[Step]) -> Vec<String> {
    want.iter().map(|(op, r)| format!("{op} {r}")).collect()
}

/// Waits (`secs`, every `step`) until `from`'s log has the result of the move's first step
/// (`task` of `rsc`) and `to`'s the VIP's start, both after `after`; their times.
pub fn move_logged<C: Nodes>(
    c: &C,
    from: &str,
    (task, rsc): (&str, &str),
    to: &str,
    after: f64,
    secs: f64,
    step: Duration,
) -> LabResult<(f64, f64)> {
    poll(
        "the move's results in the pacemaker logs",
        secs,
        step,
        || {
            let a = history::result_logged(&c.log(from).ok()?, task, rsc, from, after)?;
            let b = history::result_logged(&c.log(to).ok()?, "start", "pg_vip", to, after)?;
            Some((a, b))
        },
    )
}

/// How long `op` of `rsc` ran on `node` (the longest the CIB's history records), in s.
pub fn exec_secs(ops: &[Op], node: &str, rsc: &str, op: &str) -> f64 {
    ops.iter()
        .filter(|o| o.node == node && history::rsc_is(&o.rsc, rsc) && o.op == op)
        .map(|o| o.exec_ms)
        .max()
        .unwrap_or(0) as f64
        / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(node: &str, rsc: &str, op: &str, call_id: i64) -> Op {
        Op {
            node: node.into(),
            rsc: rsc.into(),
            op: op.into(),
            call_id,
            rc: 0,
            last_rc_change: 0,
            exec_ms: 0,
        }
    }

    #[test]
    fn a_move_is_in_order_when_each_node_did_its_steps_in_the_stacks_order() {
        // The replication stack's order, the clone's instances named as in the CIB.
        let from = [("demote", "pgsqld"), ("stop", "pg_vip")];
        let to = [("promote", "pgsqld"), ("start", "pg_vip")];
        let ops = vec![
            op("n1", "pgsqld:0", "demote", 14),
            op("n1", "pg_vip", "stop", 15),
            op("n2", "pgsqld:1", "promote", 20),
            op("n2", "pg_vip", "start", 19),
        ];
        let mut m = Move {
            from: "n1".into(),
            to: "n2".into(),
            secs: 1.0,
            command_secs: 2.0,
            agents_secs: agents_secs(&ops, "n1", &from, 0) + agents_secs(&ops, "n2", &to, 0),
            on_from: steps(&ops, "n1", &from),
            on_to: steps(&ops, "n2", &to),
            want_from: step_names(&from),
            want_to: step_names(&to),
            demote_before_promote: true,
            constraint_left: false,
            output: String::new(),
        };
        assert_eq!(m.on_from[0], ("demote pgsqld".to_string(), 14));
        // The VIP started on n2 before the promote.
        assert!(!m.in_order(), "{}", m.report());
        assert!(m.report().contains("OUT OF ORDER"));
        m.on_to
            .sort_by_key(|(n, _)| to.iter().position(|(o, r)| format!("{o} {r}") == *n));
        assert!(m.in_order());
        assert!(
            m.report()
                .contains("(call ids), in order; constraint cleared"),
            "{}",
            m.report()
        );
        m.demote_before_promote = false;
        assert!(!m.in_order());
    }
}
