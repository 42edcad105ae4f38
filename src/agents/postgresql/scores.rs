//! The promotion scores of the promotable mode: what the primary's monitor sets for
//! every node, the record it leaves on a standby it cannot see, and the rules by which a
//! standby left without a primary makes itself promotable. The election
//! ([`super::election`]) then checks the node Pacemaker picked from these scores.
//!
//! # Scores (set by the primary's monitor: [`apply_scores`], planned by [`plan_scores`])
//! - the primary itself: 1001;
//! - each standby in `pg_stat_replication` whose name is a node of the partition, in
//!   state `startup` or `backup`: -1 (not promotable);
//! - the others ranked by written location (highest first, ties by name):
//!   1000 - 10 x rank; negated when its write lag exceeds `maxlag` bytes or its replay
//!   lag `maxlag_time` seconds (either limit, when set);
//! - a node of the partition without a row: -1000 (not connected, so not current);
//! - a known node outside the partition (it left, or was fenced): its score is
//!   removed, so a stale positive score never outlives its node's departure.
//!
//! A score is written only when it changes. With every -1000 the primary also records
//! its own position (`timeline#LSN`) on that node, as the private attribute
//! `pgstack-primary-at-RSC` ([`seen_attr`]), kept up to date while the node stays
//! unconnected and removed once it has a row again. The record lives on the standby's
//! node, so it outlives the primary's departure.
//!
//! # Survivor rules ([`apply_survivor_rules`]), when no node of the partition holds the
//! primary's score (it crashed, left, was fenced), on a standby that does not stream:
//! - **two-node rule** ([`two_node_rule`]): in a cluster of exactly two nodes, a healthy
//!   standby whose peer has left the partition (with fencing enabled, Pacemaker has
//!   fenced it before it recovers resources) and which has no promotion score sets its
//!   own to 1, so it can be promoted instead of staying a standby with no primary;
//! - **evidence rule** ([`evidence_rule`]): a standby the last primary scored negative
//!   takes 1 only when that primary's record on its node is there and this standby's
//!   position is at least the recorded one: it holds everything the primary had when it
//!   last found it not connected. That -1000 was then a primary that looked before the
//!   standby had (re)connected, the window just after a promotion or a switchover, when
//!   the old primary and the other standbys reconnect; a primary lost inside that window
//!   still fails over. Without a record (a negative score for lag beyond `maxlag`, for
//!   a standby in `startup`), or behind the record, the score stands: that primary saw
//!   it behind. The election then still picks the best of several such standbys.
//!
//! # First start ([`first_start_score`])
//! When no node of the partition has a score and this instance was a cleanly shut down
//! primary, it takes 1, so a new cluster (or one whose every node rebooted) can elect.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use super::election::{Position, Reading};
use crate::ocf::deadline::Deadline;
use crate::sys::attrd::{AttrResult, Attrd, Found, Member, ScoreOf};
use crate::sys::pg::wal::{Lag, Replica};

/// Scores (see the module documentation).
pub const PRIMARY_SCORE: i64 = 1001;
pub const STANDBY_BEST: i64 = 1000;
pub const RANK_STEP: i64 = 10;
/// A standby in `startup` or `backup`.
pub const NOT_READY: i64 = -1;
/// A node of the partition that is not connected to the primary.
pub const NOT_CONNECTED: i64 = -1000;

/// `maxlag` of the agent: bytes (0 = off) and optionally seconds of replay lag.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LagPolicy {
    pub max_bytes: u64,
    pub max_seconds: Option<f64>,
}

impl LagPolicy {
    fn exceeded(&self, lag: &Lag) -> bool {
        let bytes = self.max_bytes > 0 && lag.bytes.is_some_and(|l| l > self.max_bytes);
        let secs = self
            .max_seconds
            .is_some_and(|m| lag.replay_s.is_some_and(|l| l > m));
        bytes || secs
    }
}

/// One score to write (`to` `None`: remove it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreChange {
    pub node: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub why: String,
}

/// What the primary `me` should set, from its `pg_stat_replication` rows, the nodes of
/// its partition, every known node, and the scores as they are.
pub fn plan_scores(
    me: &str,
    rows: &[Replica],
    partition: &[String],
    members: &[Member],
    current: &BTreeMap<String, i64>,
    lag: LagPolicy,
) -> Vec<ScoreChange> {
    let in_partition: BTreeSet<&str> = partition.iter().map(String::as_str).collect();
    let mut want: BTreeMap<String, (i64, String)> = BTreeMap::new();
    want.insert(me.into(), (PRIMARY_SCORE, "the primary".into()));
    let mut ready: Vec<&Replica> = Vec::new();
    for r in rows {
        let n = r.application_name.as_str();
        if n == me || !in_partition.contains(n) || want.contains_key(n) {
            continue;
        }
        if r.state == "startup" || r.state == "backup" {
            want.insert(n.into(), (NOT_READY, format!("in state {}", r.state)));
        } else if !ready.iter().any(|x| x.application_name == n) {
            ready.push(r);
        }
    }
    ready.sort_by(|a, b| {
        b.reached
            .write
            .cmp(&a.reached.write)
            .then(a.application_name.cmp(&b.application_name))
    });
    for (rank, r) in ready.iter().enumerate() {
        let base = STANDBY_BEST - RANK_STEP * rank as i64;
        let (score, why) = if lag.exceeded(&r.lag) {
            (
                -base,
                format!(
                    "lag {} bytes / {:?} s beyond maxlag",
                    r.lag.bytes.unwrap_or(0),
                    r.lag.replay_s
                ),
            )
        } else {
            (base, format!("rank {rank} by written location"))
        };
        want.insert(r.application_name.clone(), (score, why));
    }
    for n in partition {
        want.entry(n.clone())
            .or_insert((NOT_CONNECTED, "not connected to the primary".into()));
    }
    let mut out: Vec<ScoreChange> = want
        .into_iter()
        .filter(|(n, (s, _))| current.get(n) != Some(s))
        .map(|(n, (s, why))| ScoreChange {
            from: current.get(&n).copied(),
            node: n,
            to: Some(s),
            why,
        })
        .collect();
    for m in members {
        if !in_partition.contains(m.name.as_str()) && current.contains_key(&m.name) {
            out.push(ScoreChange {
                node: m.name.clone(),
                from: current.get(&m.name).copied(),
                to: None,
                why: "left the partition".into(),
            });
        }
    }
    out
}

/// The private attribute, on a standby's node, holding the primary's position when it
/// last scored that standby [`NOT_CONNECTED`] (see the module documentation).
pub fn seen_attr(resource: &str) -> String {
    format!("pgstack-primary-at-{resource}")
}

/// The nodes of the partition, other than the primary `me`, without a row of their own
/// in `pg_stat_replication`: the ones [`plan_scores`] scores [`NOT_CONNECTED`].
pub fn unconnected(me: &str, rows: &[Replica], partition: &[String]) -> BTreeSet<String> {
    partition
        .iter()
        .filter(|n| *n != me && !rows.iter().any(|r| &r.application_name == *n))
        .cloned()
        .collect()
}

/// The primary's scoring: reads membership and scores, plans, writes the changes; then
/// records its own position (`position`, read only when needed) on every node it found
/// not connected, and removes that record from the others (see the module
/// documentation). The records are looked at only when a score changes or a node is, or
/// was, not connected, so a steady healthy cluster costs no extra call.
pub fn apply_scores(
    attrd: &dyn Attrd,
    resource: &str,
    me: &str,
    rows: &[Replica],
    lag: LagPolicy,
    position: &dyn Fn() -> Option<Position>,
    deadline: &Deadline,
) -> AttrResult<Vec<ScoreChange>> {
    let d = deadline.instant();
    // Every node with a score, in one call: the known nodes that matter here (a node
    // outside the partition without a score has nothing to remove).
    let (partition, current) = attrd.partition_and_scores(resource, d)?;
    let members: Vec<Member> = current
        .keys()
        .map(|n| Member {
            id: 0,
            name: n.clone(),
            state: String::new(),
        })
        .collect();
    let changes = plan_scores(me, rows, &partition, &members, &current, lag);
    for c in &changes {
        match c.to {
            Some(s) => attrd.set_score(ScoreOf::on(resource, &c.node), s, d)?,
            None => attrd.delete_score(ScoreOf::on(resource, &c.node), d)?,
        }
    }
    let away = unconnected(me, rows, &partition);
    let was_away = current.values().any(|s| *s == NOT_CONNECTED);
    if changes.is_empty() && away.is_empty() && !was_away {
        return Ok(changes);
    }
    let name = seen_attr(resource);
    let recorded = attrd.query_all(&name, d)?;
    let at = if away.is_empty() {
        None
    } else {
        position().map(|p| p.to_string())
    };
    for n in &away {
        match &at {
            Some(v) if recorded.get(n) != Some(v) => attrd.set_private(&name, Some(n), v, d)?,
            Some(_) => {}
            // The primary's position could not be read: an older record would let the
            // node pass for more current than it is.
            None if recorded.contains_key(n) => attrd.delete(&name, Some(n), d)?,
            None => {}
        }
    }
    for n in recorded.keys().filter(|n| !away.contains(*n)) {
        attrd.delete(&name, Some(n), d)?;
    }
    Ok(changes)
}

/// Another node of the partition holding the primary's promotion score (the node that
/// a standby of `me` should stream from), if any.
pub fn primary_elsewhere(
    attrd: &dyn Attrd,
    resource: &str,
    me: &str,
    deadline: &Deadline,
) -> AttrResult<Option<String>> {
    let d = deadline.instant();
    let scores = attrd.scores(resource, d)?;
    if !scores.iter().any(|(n, s)| n != me && *s >= PRIMARY_SCORE) {
        return Ok(None);
    }
    Ok(attrd
        .partition(d)?
        .into_iter()
        .find(|n| n != me && scores.get(n).is_some_and(|s| *s >= PRIMARY_SCORE)))
}

/// The two-node rule's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Survivor {
    /// Set this node's score to the value.
    Promotable(i64),
    /// The rule does not apply (why).
    NotApplicable(String),
}

/// The two-node rule (see the module documentation).
pub fn two_node_rule(
    me: &str,
    members: &[Member],
    partition: &[String],
    own_score: Option<i64>,
    healthy_standby: bool,
) -> Survivor {
    let no = |w: &str| Survivor::NotApplicable(w.to_string());
    if members.len() != 2 || !members.iter().any(|m| m.name == me) {
        return no("the cluster does not have exactly two nodes");
    }
    if !healthy_standby {
        return no("this instance is not a healthy standby");
    }
    let peer_here = members
        .iter()
        .any(|m| m.name != me && partition.contains(&m.name));
    if peer_here {
        return no("the peer is in the partition");
    }
    match own_score {
        Some(s) if s < 0 => Survivor::NotApplicable(format!(
            "the last primary scored this node {s} (behind or disconnected)"
        )),
        Some(s) => Survivor::NotApplicable(format!("this node already has score {s}")),
        None => Survivor::Promotable(1),
    }
}

/// The rule for a standby that the last primary scored negative (see the module
/// documentation): `primary_at` is that primary's record on this node, `mine` this
/// node's position (read only when there is a record).
pub fn evidence_rule(
    own_score: i64,
    primary_at: Option<Position>,
    mine: Option<&Reading>,
) -> Survivor {
    let no = Survivor::NotApplicable;
    let Some(at) = primary_at else {
        return no(format!(
            "the last primary scored this node {own_score} (behind or disconnected)"
        ));
    };
    match mine {
        None => no(format!(
            "the last primary was at {at} when it scored this node {own_score}, and this \
             node's position cannot be read"
        )),
        Some(r) if r.primary || !r.consistent => no(format!(
            "this instance is not a consistent standby (at {})",
            r.position
        )),
        Some(r) if r.position < at => no(format!(
            "the last primary was at {at} when it found this node not connected; this node \
             is at {} (behind)",
            r.position
        )),
        Some(_) => Survivor::Promotable(1),
    }
}

/// The survivor rules on this node, a standby whose partition has no node holding the
/// primary's promotion score (the caller checks that): the two-node rule for a node
/// without a score, [`evidence_rule`] for one the last primary scored negative. `mine`
/// reads this node's position (called only when the evidence rule needs it).
pub fn apply_survivor_rules(
    attrd: &dyn Attrd,
    resource: &str,
    me: &str,
    mine: &dyn Fn() -> Option<Reading>,
    deadline: &Deadline,
) -> AttrResult<Survivor> {
    let d = deadline.instant();
    let own = attrd.score(ScoreOf::here(resource), d).found()?;
    let v = match own {
        Some(s) if s < 0 => {
            let at = attrd
                .query(&seen_attr(resource), None, d)
                .found()?
                .as_deref()
                .and_then(Position::parse);
            let r = at.and_then(|_| mine());
            evidence_rule(s, at, r.as_ref())
        }
        Some(s) => Survivor::NotApplicable(format!("this node already has score {s}")),
        None => {
            let members = attrd.members(d)?;
            if members.len() != 2 {
                return Ok(two_node_rule(me, &members, &[], None, true));
            }
            let partition = attrd.partition(d)?;
            two_node_rule(me, &members, &partition, own, true)
        }
    };
    if let Survivor::Promotable(s) = v {
        attrd.set_score(ScoreOf::here(resource), s, d)?;
    }
    Ok(v)
}

/// PAF's first-start rule: `Some(1)` when no node of the partition has a score and this
/// instance was a cleanly shut down primary.
pub fn first_start_score(was_clean_primary: bool, any_score: bool) -> Option<i64> {
    (was_clean_primary && !any_score).then_some(1)
}

/// Whether any node of the partition has a promotion score of 0 or more.
pub fn any_score(attrd: &dyn Attrd, resource: &str, deadline: &Deadline) -> AttrResult<bool> {
    let d = deadline.instant();
    for n in attrd.partition(d)? {
        if attrd
            .score(ScoreOf::on(resource, &n), d)
            .found()?
            .is_some_and(|s| s >= 0)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::postgresql::election::tests::{pos, soon};
    use crate::sys::attrd::fake::FakeAttrd;
    use crate::sys::pg::wal::{Lsn, Reached};

    fn row(name: &str, state: &str, write: &str, lag: u64) -> Replica {
        Replica {
            application_name: name.into(),
            state: state.into(),
            sync_state: "async".into(),
            reached: Reached {
                write: Lsn::parse(write),
                flush: Lsn::parse(write),
                replay: Lsn::parse(write),
            },
            lag: Lag {
                bytes: Some(lag),
                replay_s: None,
            },
        }
    }

    fn members(v: &[&str]) -> Vec<Member> {
        FakeAttrd::new("x", v).members
    }

    fn planned(c: &[ScoreChange]) -> BTreeMap<String, Option<i64>> {
        c.iter().map(|c| (c.node.clone(), c.to)).collect()
    }

    #[test]
    fn scores_follow_paf() {
        let part: Vec<String> = ["pg1", "pg2", "pg3", "pg4", "pg5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = [
            row("pg3", "streaming", "0/500", 0),
            row("pg2", "streaming", "0/500", 0),
            row("pg4", "catchup", "0/100", 4000),
            row("pg5", "backup", "0/0", 0),
            row("stranger", "streaming", "0/900", 0),
            row("pg1", "streaming", "0/900", 0),
        ];
        let c = plan_scores(
            "pg1",
            &rows,
            &part,
            &members(&["pg1", "pg2", "pg3", "pg4", "pg5", "pg6"]),
            &BTreeMap::new(),
            LagPolicy::default(),
        );
        let p = planned(&c);
        assert_eq!(p["pg1"], Some(1001));
        assert_eq!(p["pg2"], Some(1000), "ties by name");
        assert_eq!(p["pg3"], Some(990));
        assert_eq!(p["pg4"], Some(980));
        assert_eq!(p["pg5"], Some(-1));
        assert!(!p.contains_key("stranger"));
        assert!(!p.contains_key("pg6"), "no score to remove");
        // maxlag: pg4 is 4000 bytes behind.
        let lag = LagPolicy {
            max_bytes: 1000,
            max_seconds: None,
        };
        let p = planned(&plan_scores(
            "pg1",
            &rows,
            &part,
            &[],
            &BTreeMap::new(),
            lag,
        ));
        assert_eq!(p["pg4"], Some(-980));
        assert_eq!(p["pg2"], Some(1000));
        // maxlag in seconds.
        let mut slow = row("pg2", "streaming", "0/500", 0);
        slow.lag.replay_s = Some(12.5);
        let lag = LagPolicy {
            max_bytes: 0,
            max_seconds: Some(10.0),
        };
        let p = planned(&plan_scores(
            "pg1",
            &[slow],
            &part,
            &[],
            &BTreeMap::new(),
            lag,
        ));
        assert_eq!(p["pg2"], Some(-1000));
        assert_eq!(p["pg3"], Some(NOT_CONNECTED));
    }

    #[test]
    fn unchanged_scores_are_not_written_and_departed_nodes_lose_theirs() {
        let part = vec!["pg1".to_string(), "pg2".to_string()];
        let rows = [row("pg2", "streaming", "0/500", 0)];
        let current: BTreeMap<String, i64> = [("pg1", 1001), ("pg2", 1000), ("pg3", 990)]
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect();
        let c = plan_scores(
            "pg1",
            &rows,
            &part,
            &members(&["pg1", "pg2", "pg3"]),
            &current,
            LagPolicy::default(),
        );
        assert_eq!(
            c,
            vec![ScoreChange {
                node: "pg3".into(),
                from: Some(990),
                to: None,
                why: "left the partition".into()
            }]
        );
    }

    fn at(p: &str) -> Option<Position> {
        Some(pos(p))
    }

    #[test]
    fn the_primary_applies_its_plan() {
        let a = FakeAttrd::new("pg1", &["pg1", "pg2", "pg3"]);
        a.put_score("pg", "pg3", 990);
        let rows = [row("pg2", "streaming", "0/500", 0)];
        // pg1's monitor with these rows, its position read by `at`.
        let monitor = |rows: &[Replica], at: &dyn Fn() -> Option<Position>| {
            apply_scores(&a, "pg", "pg1", rows, LagPolicy::default(), at, &soon()).unwrap()
        };
        let here = || at("1#0/600");
        let c = monitor(&rows, &here);
        assert_eq!(c.len(), 3);
        assert_eq!(a.score_of("pg", "pg1"), Some(1001));
        assert_eq!(a.score_of("pg", "pg2"), Some(1000));
        assert_eq!(a.score_of("pg", "pg3"), Some(NOT_CONNECTED));
        // The primary's position is recorded on the node it found not connected only.
        let seen = seen_attr("pg");
        assert_eq!(a.private_of(&seen, "pg3").as_deref(), Some("1#0/600"));
        assert_eq!(a.private_of(&seen, "pg2"), None);
        // Second pass: no score changes; the record follows the primary's position.
        let before = a.calls().len();
        let later = || at("1#0/700");
        let c = monitor(&rows, &later);
        assert!(c.is_empty());
        assert!(!a.calls()[before..]
            .iter()
            .any(|c| c.starts_with("set score")));
        assert_eq!(a.private_of(&seen, "pg3").as_deref(), Some("1#0/700"));
        // pg3 connects: its record goes, with its -1000.
        let rows = [rows[0].clone(), row("pg3", "streaming", "0/700", 0)];
        monitor(&rows, &later);
        assert_eq!(a.score_of("pg", "pg3"), Some(1000));
        assert_eq!(a.score_of("pg", "pg2"), Some(990));
        assert_eq!(a.private_of(&seen, "pg3"), None);
        // Steady and healthy: scores and records are read, nothing else.
        let before = a.calls().len();
        let never = || -> Option<Position> { panic!("the position is not needed") };
        assert!(monitor(&rows, &never).is_empty());
        assert!(
            a.calls()[before..]
                .iter()
                .all(|c| c.starts_with("score") || c == "partition"),
            "{:?}",
            &a.calls()[before..]
        );
    }

    #[test]
    fn a_record_never_outlives_what_it_vouches_for() {
        let a = FakeAttrd::new("pg1", &["pg1", "pg2"]);
        let seen = seen_attr("pg");
        let here = || at("1#0/600");
        apply_scores(&a, "pg", "pg1", &[], LagPolicy::default(), &here, &soon()).unwrap();
        assert_eq!(a.private_of(&seen, "pg2").as_deref(), Some("1#0/600"));
        // pg2 reconnects beyond maxlag (rank 0 negated: -1000 again, no score change):
        // the record goes all the same.
        let lagging = [row("pg2", "streaming", "0/100", 5000)];
        let lag = LagPolicy {
            max_bytes: 1000,
            max_seconds: None,
        };
        let c = apply_scores(&a, "pg", "pg1", &lagging, lag, &here, &soon()).unwrap();
        assert!(c.is_empty(), "{c:?}");
        assert_eq!(a.score_of("pg", "pg2"), Some(-1000));
        assert_eq!(a.private_of(&seen, "pg2"), None);
        // Not connected and the primary's position unreadable: an older record is removed.
        a.put_private(&seen, "pg2", "1#0/100");
        let unknown = || None;
        apply_scores(
            &a,
            "pg",
            "pg1",
            &[],
            LagPolicy::default(),
            &unknown,
            &soon(),
        )
        .unwrap();
        assert_eq!(a.private_of(&seen, "pg2"), None);
    }

    fn standby_at(p: &str) -> Reading {
        Reading {
            position: pos(p),
            primary: false,
            streaming: false,
            consistent: true,
        }
    }

    #[test]
    fn evidence_rule() {
        let r = standby_at("2#0/3000300");
        // Caught up with what the primary had when it scored this node: promotable.
        for p in ["2#0/3000300", "2#0/3000200", "1#0/3000400"] {
            assert_eq!(
                super::evidence_rule(-1000, at(p), Some(&r)),
                Survivor::Promotable(1),
                "{p}"
            );
        }
        // Behind it, no record, unreadable, not a consistent standby: the score stands.
        let inconsistent = Reading {
            consistent: false,
            ..r.clone()
        };
        let primary = Reading {
            primary: true,
            ..r.clone()
        };
        for (p, mine) in [
            (at("2#0/3000400"), Some(&r)),
            (at("3#0/1000000"), Some(&r)),
            (None, Some(&r)),
            (at("2#0/3000300"), None),
            (at("2#0/3000300"), Some(&inconsistent)),
            (at("2#0/3000300"), Some(&primary)),
        ] {
            assert!(
                matches!(
                    super::evidence_rule(-1000, p, mine),
                    Survivor::NotApplicable(_)
                ),
                "{p:?} {mine:?}"
            );
        }
    }

    #[test]
    fn two_node_rule() {
        let m = members(&["pg1", "pg2"]);
        let alone = vec!["pg2".to_string()];
        assert_eq!(
            super::two_node_rule("pg2", &m, &alone, None, true),
            Survivor::Promotable(1)
        );
        for (part, own, healthy) in [
            (vec!["pg1".to_string(), "pg2".to_string()], None, true),
            (alone.clone(), Some(-1000), true),
            (alone.clone(), Some(1000), true),
            (alone.clone(), None, false),
        ] {
            assert!(matches!(
                super::two_node_rule("pg2", &m, &part, own, healthy),
                Survivor::NotApplicable(_)
            ));
        }
        let three = members(&["pg1", "pg2", "pg3"]);
        assert!(matches!(
            super::two_node_rule("pg2", &three, &alone, None, true),
            Survivor::NotApplicable(_)
        ));
    }

    #[test]
    fn survivor_rules_through_the_attributes() {
        let no_read = || -> Option<Reading> { panic!("the position is not needed") };
        // No score, the peer gone: the two-node rule.
        let mut a = FakeAttrd::new("pg2", &["pg1", "pg2"]);
        a.partition = vec!["pg2".to_string()];
        assert_eq!(
            apply_survivor_rules(&a, "pg", "pg2", &no_read, &soon()).unwrap(),
            Survivor::Promotable(1)
        );
        assert_eq!(a.score_of("pg", "pg2"), Some(1));
        // Already scored: nothing read, nothing written.
        assert!(matches!(
            apply_survivor_rules(&a, "pg", "pg2", &no_read, &soon()).unwrap(),
            Survivor::NotApplicable(_)
        ));
        // Scored -1000 by a primary that looked before this node reconnected, and this
        // node holds what that primary had then: promotable, in a three-node cluster too.
        let mut a = FakeAttrd::new("pg2", &["pg1", "pg2", "pg3"]);
        a.partition = vec!["pg2".to_string(), "pg3".to_string()];
        a.put_score("pg", "pg2", NOT_CONNECTED);
        a.put_private(&seen_attr("pg"), "pg2", "2#0/3000200");
        let caught_up = || Some(standby_at("2#0/3000300"));
        assert_eq!(
            apply_survivor_rules(&a, "pg", "pg2", &caught_up, &soon()).unwrap(),
            Survivor::Promotable(1)
        );
        assert_eq!(a.score_of("pg", "pg2"), Some(1));
        // Behind the record: the score stands.
        a.put_score("pg", "pg2", NOT_CONNECTED);
        let behind = || Some(standby_at("2#0/3000100"));
        assert!(matches!(
            apply_survivor_rules(&a, "pg", "pg2", &behind, &soon()).unwrap(),
            Survivor::NotApplicable(_)
        ));
        assert_eq!(a.score_of("pg", "pg2"), Some(NOT_CONNECTED));
        // No record (a negative score for lag): the position is not even read.
        a.private.borrow_mut().clear();
        assert!(matches!(
            apply_survivor_rules(&a, "pg", "pg2", &no_read, &soon()).unwrap(),
            Survivor::NotApplicable(_)
        ));
        assert_eq!(a.score_of("pg", "pg2"), Some(NOT_CONNECTED));
    }

    #[test]
    fn first_start() {
        assert_eq!(first_start_score(true, false), Some(1));
        assert_eq!(first_start_score(true, true), None);
        assert_eq!(first_start_score(false, false), None);
        let a = FakeAttrd::new("pg1", &["pg1", "pg2"]);
        assert!(!any_score(&a, "pg", &soon()).unwrap());
        a.put_score("pg", "pg2", -1);
        assert!(!any_score(&a, "pg", &soon()).unwrap());
        a.put_score("pg", "pg2", 0);
        assert!(any_score(&a, "pg", &soon()).unwrap());
    }
}
