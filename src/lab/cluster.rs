//! What the lab asks of a running cluster whatever its nodes are (the namespace nodes of
//! [`super::Lab`], the UML guests of [`super::advanced::Advanced`]): Pacemaker's view and
//! the waits on it. A kind of node only says which nodes run and how a command runs on one.

#![forbid(unsafe_code)]

use std::time::Duration;

use super::history::{self, ClusterStatus};
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
