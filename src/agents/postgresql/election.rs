//! The election of the promotable mode: which standby may become the primary, and the
//! promotion scores that tell Pacemaker so.
//!
//! # Positions
//! A node's [`Position`] is `timeline#LSN` (`3#0/5000A8`, the LSN as PostgreSQL prints
//! it). A primary's is its flushed WAL location on its current timeline. A standby's is
//! the highest of its received and replayed locations and of the control file's minimum
//! recovery point (a standby restarted before it reached consistency has replayed WAL up
//! to there even though it received nothing since), on the highest of the receiver's
//! timeline, the minimum recovery point's timeline and the latest restartpoint's. A
//! standby whose receiver has no timeline first asks for a restartpoint, so the control
//! file names the timeline it replays. Positions compare by timeline, then LSN.
//!
//! # The election (pre-promote notify, then promote)
//! 1. [`pre_promote`], on every node: removes what an earlier election left, publishes
//!    this node's position as the private transient attribute `pgstack-position-RSC`
//!    (waiting, within the deadline, until attrd shows it), and on the promote target
//!    the electors (`pgstack-electors-RSC`: active and starting instances, minus those
//!    stopping, minus itself).
//! 2. [`promote_check`], in the target's promote: waits for every elector's position
//!    (at most half of what remains of the deadline, so the promotion itself keeps the
//!    rest), then decides with [`decide`]:
//!    - [`Verdict::Best`]: no elector is strictly ahead; promote.
//!    - [`Verdict::NotBest`]: an elector is strictly ahead. The target's score becomes 1
//!      and the best elector's 1000, so the caller fails the promote and Pacemaker's
//!      next transition promotes that node. Among several nodes ahead the highest
//!      position wins, ties to the lowest node name; a node level with the target never
//!      displaces it (a switchover's old primary, level after its shutdown checkpoint,
//!      must not take the promotion back).
//!    - [`Verdict::Fallback`]: some electors published nothing before the wait ended (their
//!      server is down, attrd is late) and none of those that did is ahead; the
//!      caller promotes on Pacemaker's choice, i.e. the scores, with a warning. The
//!      promotion never hangs on a missing peer.
//!    - Without a pre-promote notification (a manual promote, notify=false) there are
//!      no electors: `Fallback` too.
//! 3. [`post_promote`], on every node: removes the attributes.
//!
//! A recovery of the primary in place (the same node demoted and promoted) is elected
//! like any other promotion: when a standby moved ahead meanwhile, it wins.
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
//!
//! # Switchover ([`check_switchover`])
//! In a planned switchover (one primary demoted and one standby promoted in the same
//! transition, the old primary not stopping: [`is_switchover`]), the target checks in its
//! pre-promote that it received the old primary's shutdown checkpoint: a restartpoint,
//! then `pg_waldump` (`pg_xlogdump` before 10) over its WAL from the latest REDO
//! location to the last received location on its timeline, looking for a shutdown
//! checkpoint record. Without it the old primary may hold WAL the target lacks: the
//! target records the verdict ([`cancel_switchover`], the private transient attribute
//! `pgstack-switchover-RSC`, removed by every pre-promote and post-promote) and sets its
//! own promotion score to -1; its promote in the same transition reads the verdict
//! ([`switchover_cancelled`]) and fails with OCF_ERR_GENERIC before the election's
//! check. Pacemaker then aborts the transition, counts the failure (on-fail=restart of
//! promote: the instance is recovered as a standby, not banned) and plans again from the
//! scores: the old primary, now a standby that still holds all of its WAL and its score
//! 1001, is promoted back unless a constraint forces the target; a forced target meets
//! the election next, where the old primary's position (after its shutdown checkpoint)
//! is ahead, so the target yields again. A check that could not be made (`Unknown`) does
//! not stop the promotion.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use crate::ocf::deadline::{Backoff, Deadline};
use crate::ocf::notify::Notify;
use crate::sys::attrd::{AttrResult, Attrd, Found, Member, ScoreOf};
use crate::sys::pg::client::{Probe, ProbeError};
use crate::sys::pg::wal::{Lsn, Replica, WalOs, WalState};
use crate::sys::runner::Credentials;

/// Where a node stands: timeline, then LSN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub timeline: u32,
    pub lsn: Lsn,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.timeline, self.lsn)
    }
}

impl Position {
    /// Reads `timeline#X/Y`; PAF's `timeline#decimal` is read too.
    pub fn parse(s: &str) -> Option<Position> {
        let (t, l) = s.trim().split_once('#')?;
        let timeline = t.parse().ok()?;
        let lsn = Lsn::parse(l).or_else(|| l.parse::<u64>().ok().map(Lsn))?;
        Some(Position { timeline, lsn })
    }
}

/// A position with how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub position: Position,
    pub primary: bool,
    /// The WAL receiver streams.
    pub streaming: bool,
    /// A standby that has not replayed up to its minimum recovery point yet.
    pub consistent: bool,
}

/// The position a [`WalState`] shows (see the module documentation).
pub fn position_of(w: &WalState) -> Reading {
    if !w.in_recovery {
        return Reading {
            position: Position {
                timeline: w.primary_timeline.unwrap_or(w.checkpoint_timeline),
                lsn: w.flushed.unwrap_or_default(),
            },
            primary: true,
            streaming: false,
            consistent: true,
        };
    }
    let seen = w.received.max(w.replayed).unwrap_or_default();
    let timeline = w
        .received_timeline
        .unwrap_or(0)
        .max(w.min_recovery_timeline)
        .max(w.checkpoint_timeline);
    Reading {
        position: Position {
            timeline,
            lsn: seen.max(w.min_recovery),
        },
        primary: false,
        streaming: w.receiver.as_deref() == Some("streaming"),
        consistent: w.replayed.unwrap_or_default() >= w.min_recovery,
    }
}

/// Reads this server's position; a standby without a receiver timeline asks for a
/// restartpoint first (see the module documentation).
pub fn read_position(
    wal: &dyn WalOs,
    probe: &Probe,
    deadline: &Deadline,
) -> Result<Reading, ProbeError> {
    let w = wal.wal_state(probe, deadline.instant())?;
    if w.in_recovery && w.received_timeline.is_none() {
        wal.checkpoint(probe, deadline.instant())?;
        return Ok(position_of(&wal.wal_state(probe, deadline.instant())?));
    }
    Ok(position_of(&w))
}

/// The private attribute holding a node's position during an election.
pub fn position_attr(resource: &str) -> String {
    format!("pgstack-position-{resource}")
}

/// The private attribute (on the promote target) listing the electors.
pub fn electors_attr(resource: &str) -> String {
    format!("pgstack-electors-{resource}")
}

/// The private attribute (on a switchover's target) holding an unsafe verdict of
/// [`check_switchover`] until the promote of the same transition reads it.
pub fn switchover_attr(resource: &str) -> String {
    format!("pgstack-switchover-{resource}")
}

/// Records on this node that its switchover check found the promotion unsafe (`why`),
/// waiting (within `deadline`) until attrd shows it.
pub fn cancel_switchover(
    attrd: &dyn Attrd,
    resource: &str,
    why: &str,
    deadline: &Deadline,
) -> AttrResult<bool> {
    set_and_confirm(attrd, &switchover_attr(resource), why, deadline)
}

/// The unsafe verdict recorded by this transition's pre-promote on this node, if any;
/// it is removed once read, so it stops one promote only.
pub fn switchover_cancelled(
    attrd: &dyn Attrd,
    resource: &str,
    deadline: &Deadline,
) -> AttrResult<Option<String>> {
    let name = switchover_attr(resource);
    let d = deadline.instant();
    let v = attrd.query(&name, None, d).found()?;
    if v.is_some() {
        attrd.delete(&name, None, d)?;
    }
    Ok(v)
}

/// The electors of a pre-promote notification: active and starting instances, minus
/// the stopping ones, minus `me`.
pub fn electors(n: &Notify, me: &str) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = n.active.union(&n.start).cloned().collect();
    for x in &n.stop {
        s.remove(x);
    }
    s.remove(me);
    s
}

/// The outcome of the target's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No elector is ahead.
    Best {
        mine: Position,
        peers: BTreeMap<String, Position>,
    },
    /// `better` is ahead: fail the promote so Pacemaker re-plans.
    NotBest {
        better: String,
        theirs: Position,
        mine: Position,
    },
    /// Not every elector answered (or there was no election); none that did is ahead.
    Fallback {
        missing: BTreeSet<String>,
        reason: String,
    },
}

/// Whether a peer is ahead of the target: strictly greater positions only; among them
/// the highest, ties to the lowest name.
pub fn decide(mine: Position, peers: &BTreeMap<String, Position>) -> Verdict {
    let best = peers
        .iter()
        .filter(|(_, p)| **p > mine)
        // Highest position first; for equal positions the lower name first.
        .min_by(|(na, pa), (nb, pb)| pb.cmp(pa).then(na.cmp(nb)));
    match best {
        Some((n, p)) => Verdict::NotBest {
            better: n.clone(),
            theirs: *p,
            mine,
        },
        None => Verdict::Best {
            mine,
            peers: peers.clone(),
        },
    }
}

/// Sets a private attribute and waits (within `deadline`) until attrd shows it.
fn set_and_confirm(
    attrd: &dyn Attrd,
    name: &str,
    value: &str,
    deadline: &Deadline,
) -> AttrResult<bool> {
    attrd.set_private(name, None, value, deadline.instant())?;
    let seen = deadline.poll(Backoff::every(50), || {
        let v = attrd.query(name, None, deadline.instant()).found()?;
        Ok::<_, crate::sys::attrd::AttrError>((v.as_deref() == Some(value)).then_some(()))
    })?;
    Ok(seen.is_some())
}

/// The pre-promote notification on this node (see the module documentation). `position`
/// is `None` when this node's server could not be read: it then publishes nothing, and
/// the target's wait for it ends in `Fallback`. Returns whether attrd confirmed the
/// published values before the deadline.
pub fn pre_promote(
    attrd: &dyn Attrd,
    resource: &str,
    me: &str,
    n: &Notify,
    position: Option<Position>,
    deadline: &Deadline,
) -> AttrResult<bool> {
    let (pos, elec) = (position_attr(resource), electors_attr(resource));
    attrd.delete(&pos, None, deadline.instant())?;
    attrd.delete(&elec, None, deadline.instant())?;
    attrd.delete(&switchover_attr(resource), None, deadline.instant())?;
    let mut confirmed = true;
    if let Some(p) = position {
        confirmed &= set_and_confirm(attrd, &pos, &p.to_string(), &deadline.share(0.5))?;
    }
    if n.promote.contains(me) {
        let list: Vec<String> = electors(n, me).into_iter().collect();
        // An empty list is stored as "-" (attrd treats an empty value as deleted).
        let v = if list.is_empty() {
            "-".to_string()
        } else {
            list.join(" ")
        };
        confirmed &= set_and_confirm(attrd, &elec, &v, deadline)?;
    }
    Ok(confirmed)
}

/// The score the target leaves itself when a better node exists, and the score it
/// gives that node (PAF's values), so the next transition promotes the better one.
pub const YIELD_OWN: i64 = 1;
pub const YIELD_TO: i64 = 1000;

/// The target's check in promote (see the module documentation). On `NotBest` the
/// scores are already moved.
pub fn promote_check(
    attrd: &dyn Attrd,
    resource: &str,
    deadline: &Deadline,
) -> AttrResult<Verdict> {
    let d = deadline.instant();
    let Some(list) = attrd.query(&electors_attr(resource), None, d).found()? else {
        return Ok(Verdict::Fallback {
            missing: BTreeSet::new(),
            reason: "no pre-promote election ran (notify disabled or a manual promote)".into(),
        });
    };
    let Some(mine) = attrd
        .query(&position_attr(resource), None, d)
        .found()?
        .as_deref()
        .and_then(Position::parse)
    else {
        return Ok(Verdict::Fallback {
            missing: BTreeSet::new(),
            reason: "this node published no position".into(),
        });
    };
    let wanted: BTreeSet<String> = list
        .split_whitespace()
        .filter(|s| *s != "-")
        .map(str::to_string)
        .collect();
    let read = || -> AttrResult<BTreeMap<String, Position>> {
        Ok(attrd
            .query_all(&position_attr(resource), d)?
            .into_iter()
            .filter(|(n, _)| wanted.contains(n))
            .filter_map(|(n, v)| Position::parse(&v).map(|p| (n, p)))
            .collect())
    };
    if wanted.is_empty() {
        // No elector (a lone node, or every peer stopping): nothing to wait for.
        return Ok(decide(mine, &BTreeMap::new()));
    }
    let wait = deadline.share(0.5);
    let mut last = BTreeMap::new();
    let all = wait.poll(Backoff::every(100), || {
        let peers = read()?;
        let complete = peers.len() == wanted.len();
        last = peers;
        Ok::<_, crate::sys::attrd::AttrError>(complete.then(|| last.clone()))
    })?;
    let peers = all.unwrap_or_else(|| last.clone());
    let verdict = match decide(mine, &peers) {
        Verdict::Best { .. } if peers.len() < wanted.len() => Verdict::Fallback {
            missing: wanted
                .iter()
                .filter(|n| !peers.contains_key(*n))
                .cloned()
                .collect(),
            reason: format!(
                "no position from every elector within {} ms",
                wait.elapsed().as_millis()
            ),
        },
        v => v,
    };
    if let Verdict::NotBest { better, .. } = &verdict {
        attrd.set_score(ScoreOf::here(resource), YIELD_OWN, d)?;
        attrd.set_score(ScoreOf::on(resource, better), YIELD_TO, d)?;
    }
    Ok(verdict)
}

/// The post-promote notification: removes this node's election attributes.
pub fn post_promote(attrd: &dyn Attrd, resource: &str, deadline: &Deadline) -> AttrResult<()> {
    let d = deadline.instant();
    attrd.delete(&position_attr(resource), None, d)?;
    attrd.delete(&electors_attr(resource), None, d)?;
    attrd.delete(&switchover_attr(resource), None, d)
}

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
    fn exceeded(&self, r: &Replica) -> bool {
        let bytes = self.max_bytes > 0 && r.lag_bytes.is_some_and(|l| l > self.max_bytes);
        let secs = self
            .max_seconds
            .is_some_and(|m| r.replay_lag_s.is_some_and(|l| l > m));
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
        b.write
            .cmp(&a.write)
            .then(a.application_name.cmp(&b.application_name))
    });
    for (rank, r) in ready.iter().enumerate() {
        let base = STANDBY_BEST - RANK_STEP * rank as i64;
        let (score, why) = if lag.exceeded(r) {
            (
                -base,
                format!(
                    "lag {} bytes / {:?} s beyond maxlag",
                    r.lag_bytes.unwrap_or(0),
                    r.replay_lag_s
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
    let no = |w: String| Survivor::NotApplicable(w);
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

/// A planned switchover to `me`: one primary demoted (and not stopped), `me` a
/// standby being promoted, one promotion.
pub fn is_switchover(n: &Notify, me: &str) -> bool {
    let [old] = n.promoted.iter().collect::<Vec<_>>()[..] else {
        return false;
    };
    n.demote.len() == 1
        && n.promote.len() == 1
        && n.demote.contains(old)
        && n.unpromoted.contains(me)
        && n.promote.contains(me)
        && !n.stop.contains(old)
}

/// The switchover check's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switchover {
    /// The old primary's shutdown checkpoint is in this node's WAL.
    Safe { checkpoint: Lsn },
    /// It is not, between the latest REDO location and the last received location.
    Unsafe { timeline: u32, from: Lsn, to: Lsn },
    /// The check itself failed (why).
    Unknown(String),
}

impl Switchover {
    pub fn describe(&self) -> String {
        match self {
            Switchover::Safe { checkpoint } => {
                format!("received the old primary's shutdown checkpoint at {checkpoint}")
            }
            Switchover::Unsafe { timeline, from, to } => format!(
                "did not receive the old primary's shutdown checkpoint \
                 (no such record on timeline {timeline} from {from} to {to})"
            ),
            Switchover::Unknown(w) => format!("cannot check the switchover: {w}"),
        }
    }
}

/// The switchover check on this standby (see the module documentation).
pub fn check_switchover(
    wal: &dyn WalOs,
    probe: &Probe,
    bindir: &Path,
    datadir: &Path,
    creds: &Credentials,
    deadline: &Deadline,
) -> Switchover {
    let d = deadline.instant();
    if let Err(e) = wal.checkpoint(probe, d) {
        return Switchover::Unknown(format!("restartpoint: {e}"));
    }
    let c = match wal.checkpoints(bindir, datadir, creds, d) {
        Ok(c) => c,
        Err(e) => return Switchover::Unknown(e.to_string()),
    };
    let received = match wal.wal_state(probe, d) {
        Ok(WalState {
            received: Some(r), ..
        }) => r,
        Ok(_) => return Switchover::Unknown("no WAL received from the old primary".into()),
        Err(e) => return Switchover::Unknown(e.to_string()),
    };
    match wal.shutdown_checkpoint_in(bindir, datadir, c.timeline, c.redo, received, creds, d) {
        Ok(Some(at)) => Switchover::Safe { checkpoint: at },
        Ok(None) => Switchover::Unsafe {
            timeline: c.timeline,
            from: c.redo,
            to: received,
        },
        Err(e) => Switchover::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::attrd::fake::FakeAttrd;
    use crate::sys::pg::wal::fake::FakeWal;
    use crate::sys::pg::wal::Checkpoints;
    use crate::sys::pg::ClusterState;
    use std::time::Duration;

    fn pos(s: &str) -> Position {
        Position::parse(s).unwrap()
    }
    fn soon() -> Deadline {
        Deadline::from_timeout(Duration::from_secs(2))
    }
    fn peers(v: &[(&str, &str)]) -> BTreeMap<String, Position> {
        v.iter().map(|(n, p)| (n.to_string(), pos(p))).collect()
    }
    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn positions_print_parse_and_order() {
        let p = pos("3#0/5000A8");
        assert_eq!(p.timeline, 3);
        assert_eq!(p.to_string(), "3#0/5000A8");
        assert_eq!(pos("6#4362076160").lsn, Lsn(4362076160));
        assert!(pos("2#0/1") > pos("1#9/0"), "the timeline comes first");
        assert!(pos("2#0/2") > pos("2#0/1"));
        for bad in ["", "3", "x#0/1", "3#zz", "3#0/"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }

    fn standby(received: Option<&str>, replayed: &str, min: &str, tli: Option<u32>) -> WalState {
        WalState {
            in_recovery: true,
            flushed: None,
            received: received.and_then(Lsn::parse),
            replayed: Lsn::parse(replayed),
            receiver: tli.map(|_| "streaming".to_string()),
            received_timeline: tli,
            checkpoint_timeline: 1,
            min_recovery: Lsn::parse(min).unwrap(),
            min_recovery_timeline: 1,
            primary_timeline: None,
        }
    }

    #[test]
    fn a_standby_stands_at_the_highest_of_received_replayed_and_recovery_point() {
        let r = position_of(&standby(Some("0/500"), "0/400", "0/300", Some(2)));
        assert_eq!(r.position, pos("2#0/500"));
        assert!(r.streaming && r.consistent && !r.primary);
        // Restarted, nothing received yet: the replayed location counts (PAF #9, #131).
        let r = position_of(&standby(None, "0/400", "0/300", None));
        assert_eq!(r.position, pos("1#0/400"));
        // Not consistent yet: the recovery point is ahead of what was replayed.
        let r = position_of(&standby(None, "0/100", "0/300", None));
        assert_eq!(r.position, pos("1#0/300"));
        assert!(!r.consistent);
        let mut p = standby(None, "0/0", "0/0", None);
        p.in_recovery = false;
        p.flushed = Lsn::parse("0/900");
        p.primary_timeline = Some(4);
        let r = position_of(&p);
        assert_eq!(r.position, pos("4#0/900"));
        assert!(r.primary);
    }

    #[test]
    fn a_standby_without_a_receiver_asks_for_a_restartpoint_first() {
        let w = FakeWal {
            state: Some(standby(None, "0/400", "0/300", None)),
            ..FakeWal::default()
        };
        let probe = test_probe();
        read_position(&w, &probe, &soon()).unwrap();
        assert_eq!(w.calls(), ["wal_state", "checkpoint", "wal_state"]);
        let w = FakeWal {
            state: Some(standby(Some("0/500"), "0/400", "0/300", Some(1))),
            ..FakeWal::default()
        };
        read_position(&w, &probe, &soon()).unwrap();
        assert_eq!(w.calls(), ["wal_state"]);
    }

    fn test_probe() -> Probe {
        Probe {
            host: "/run/pgst".into(),
            port: 5432,
            user: "postgres".into(),
            password: None,
            dbname: "postgres".into(),
            sql: String::new(),
            connect_timeout: Duration::from_secs(1),
            as_uid: None,
        }
    }

    #[test]
    fn decisions() {
        let me = pos("2#0/500");
        assert!(matches!(decide(me, &peers(&[])), Verdict::Best { .. }));
        // Level peers never displace the target.
        assert!(matches!(
            decide(me, &peers(&[("a", "2#0/500"), ("b", "2#0/400")])),
            Verdict::Best { .. }
        ));
        // The highest wins; among equals ahead, the lowest name.
        let v = decide(
            me,
            &peers(&[("c", "2#0/600"), ("b", "2#0/700"), ("a", "2#0/700")]),
        );
        assert_eq!(
            v,
            Verdict::NotBest {
                better: "a".into(),
                theirs: pos("2#0/700"),
                mine: me
            }
        );
        // A higher timeline beats any LSN.
        let v = decide(me, &peers(&[("z", "3#0/1"), ("a", "2#F/0")]));
        assert!(matches!(v, Verdict::NotBest { better, .. } if better == "z"));
    }

    fn notify(active: &[&str], start: &[&str], stop: &[&str], promote: &[&str]) -> Notify {
        Notify {
            active: set(active),
            start: set(start),
            stop: set(stop),
            promote: set(promote),
            ..Notify::default()
        }
    }

    #[test]
    fn electors_are_active_and_starting_minus_stopping_and_self() {
        let n = notify(&["pg1", "pg2"], &["pg3"], &["pg1"], &["pg2"]);
        assert_eq!(electors(&n, "pg2"), set(&["pg3"]));
    }

    /// Every node's pre-promote, then the target's check.
    fn election(
        a: &FakeAttrd,
        n: &Notify,
        positions: &[(&str, Option<&str>)],
    ) -> AttrResult<Verdict> {
        for (node, p) in positions {
            // Each node writes for itself; the fake sees them all.
            if let Some(p) = p {
                a.put_private(&position_attr("pg"), node, p);
            }
        }
        let me = a.me.clone();
        let own = positions
            .iter()
            .find(|(n, _)| *n == me)
            .and_then(|(_, p)| p.map(pos));
        pre_promote(a, "pg", &me, n, own, &soon())?;
        promote_check(a, "pg", &soon())
    }

    #[test]
    fn the_best_standby_is_promoted_and_a_stale_target_yields() {
        let n = notify(&["pg1", "pg2", "pg3"], &[], &["pg1"], &["pg2"]);
        let a = FakeAttrd::new("pg2", &["pg2", "pg3"]);
        a.put_score("pg", "pg2", 1000);
        a.put_score("pg", "pg3", 990);
        // PAF #195/#225 shape: the target has the higher score but pg3 replayed more.
        let v = election(
            &a,
            &n,
            &[("pg2", Some("1#0/300")), ("pg3", Some("1#0/500"))],
        )
        .unwrap();
        assert!(
            matches!(&v, Verdict::NotBest { better, .. } if better == "pg3"),
            "{v:?}"
        );
        assert_eq!(a.score_of("pg", "pg2"), Some(YIELD_OWN));
        assert_eq!(a.score_of("pg", "pg3"), Some(YIELD_TO));
        // The next transition, on pg3: it is the best.
        let a3 = FakeAttrd::new("pg3", &["pg2", "pg3"]);
        let n3 = notify(&["pg2", "pg3"], &[], &[], &["pg3"]);
        let v = election(
            &a3,
            &n3,
            &[("pg2", Some("1#0/300")), ("pg3", Some("1#0/500"))],
        )
        .unwrap();
        assert!(matches!(v, Verdict::Best { .. }), "{v:?}");
        post_promote(&a3, "pg", &soon()).unwrap();
        assert_eq!(a3.private_of(&position_attr("pg"), "pg3"), None);
        assert_eq!(a3.private_of(&electors_attr("pg"), "pg3"), None);
    }

    #[test]
    fn a_late_peer_is_waited_for() {
        let n = notify(&["pg1", "pg2", "pg3"], &[], &["pg1"], &["pg2"]);
        let a = FakeAttrd::new("pg2", &["pg2", "pg3"]);
        a.late
            .borrow_mut()
            .insert((position_attr("pg"), "pg3".into()), (3, "1#0/900".into()));
        let v = election(&a, &n, &[("pg2", Some("1#0/300"))]).unwrap();
        assert!(
            matches!(&v, Verdict::NotBest { better, .. } if better == "pg3"),
            "{v:?}"
        );
    }

    #[test]
    fn a_silent_peer_ends_in_fallback_within_the_deadline() {
        let n = notify(&["pg1", "pg2", "pg3"], &[], &["pg1"], &["pg2"]);
        let a = FakeAttrd::new("pg2", &["pg2", "pg3"]);
        let t = std::time::Instant::now();
        let v = election(&a, &n, &[("pg2", Some("1#0/300")), ("pg3", None)]).unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(
            v,
            Verdict::Fallback {
                missing: set(&["pg3"]),
                reason: match &v {
                    Verdict::Fallback { reason, .. } => reason.clone(),
                    _ => unreachable!(),
                }
            }
        );
        // A peer that did answer and is ahead still wins over the fallback.
        let n = notify(&["pg2", "pg3", "pg4"], &[], &[], &["pg2"]);
        let a = FakeAttrd::new("pg2", &["pg2", "pg3", "pg4"]);
        let v = election(
            &a,
            &n,
            &[
                ("pg2", Some("1#0/300")),
                ("pg3", None),
                ("pg4", Some("1#0/301")),
            ],
        )
        .unwrap();
        assert!(
            matches!(&v, Verdict::NotBest { better, .. } if better == "pg4"),
            "{v:?}"
        );
    }

    #[test]
    fn without_an_election_the_promote_falls_back_to_the_scores() {
        let a = FakeAttrd::new("pg2", &["pg2"]);
        let v = promote_check(&a, "pg", &soon()).unwrap();
        assert!(matches!(v, Verdict::Fallback { ref missing, .. } if missing.is_empty()));
        // A lone target has electors "-" and is best.
        let n = notify(&["pg2"], &[], &[], &["pg2"]);
        let v = election(&a, &n, &[("pg2", Some("1#0/1"))]).unwrap();
        assert!(matches!(v, Verdict::Best { .. }), "{v:?}");
    }

    #[test]
    fn a_cluster_that_does_not_answer_is_an_error_not_a_verdict() {
        let a = FakeAttrd::new("pg2", &["pg2"]);
        a.down.set(true);
        assert!(promote_check(&a, "pg", &soon()).is_err());
    }

    fn row(name: &str, state: &str, write: &str, lag: u64) -> Replica {
        Replica {
            application_name: name.into(),
            state: state.into(),
            sync_state: "async".into(),
            write: Lsn::parse(write),
            flush: Lsn::parse(write),
            replay: Lsn::parse(write),
            lag_bytes: Some(lag),
            replay_lag_s: None,
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
        slow.replay_lag_s = Some(12.5);
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
        let here = || at("1#0/600");
        let c = apply_scores(&a, "pg", "pg1", &rows, LagPolicy::default(), &here, &soon()).unwrap();
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
        let c = apply_scores(
            &a,
            "pg",
            "pg1",
            &rows,
            LagPolicy::default(),
            &later,
            &soon(),
        )
        .unwrap();
        assert!(c.is_empty());
        assert!(!a.calls()[before..]
            .iter()
            .any(|c| c.starts_with("set score")));
        assert_eq!(a.private_of(&seen, "pg3").as_deref(), Some("1#0/700"));
        // pg3 connects: its record goes, with its -1000.
        let rows = [rows[0].clone(), row("pg3", "streaming", "0/700", 0)];
        apply_scores(
            &a,
            "pg",
            "pg1",
            &rows,
            LagPolicy::default(),
            &later,
            &soon(),
        )
        .unwrap();
        assert_eq!(a.score_of("pg", "pg3"), Some(1000));
        assert_eq!(a.score_of("pg", "pg2"), Some(990));
        assert_eq!(a.private_of(&seen, "pg3"), None);
        // Steady and healthy: scores and records are read, nothing else.
        let before = a.calls().len();
        let never = || -> Option<Position> { panic!("the position is not needed") };
        assert!(apply_scores(
            &a,
            "pg",
            "pg1",
            &rows,
            LagPolicy::default(),
            &never,
            &soon()
        )
        .unwrap()
        .is_empty());
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

    #[test]
    fn switchovers_are_recognised() {
        let n = Notify {
            promoted: set(&["pg1"]),
            unpromoted: set(&["pg2", "pg3"]),
            demote: set(&["pg1"]),
            promote: set(&["pg2"]),
            ..Notify::default()
        };
        assert!(is_switchover(&n, "pg2"));
        assert!(!is_switchover(&n, "pg3"));
        let failover = Notify {
            stop: set(&["pg1"]),
            ..n.clone()
        };
        assert!(!is_switchover(&failover, "pg2"));
    }

    fn checkpoints() -> Checkpoints {
        Checkpoints {
            state: ClusterState::InArchiveRecovery,
            system_identifier: "7300".into(),
            checkpoint: Lsn(0x3000100),
            redo: Lsn(0x3000100),
            timeline: 1,
            min_recovery: Lsn(0),
            min_recovery_timeline: 0,
            wal_log_hints: false,
            checksums: false,
        }
    }

    #[test]
    fn switchover_verdicts() {
        let run = |w: &FakeWal| {
            check_switchover(
                w,
                &test_probe(),
                Path::new("/bin"),
                Path::new("/data"),
                &Credentials {
                    uid: nix::unistd::Uid::from_raw(0),
                    gid: nix::unistd::Gid::from_raw(0),
                    groups: vec![],
                },
                &soon(),
            )
        };
        let mut w = FakeWal {
            state: Some(standby(Some("0/3000200"), "0/3000200", "0/0", Some(1))),
            checkpoints: Some(checkpoints()),
            shutdown_checkpoint: Some(Lsn(0x3000180)),
            ..FakeWal::default()
        };
        assert_eq!(
            run(&w),
            Switchover::Safe {
                checkpoint: Lsn(0x3000180)
            }
        );
        assert_eq!(
            w.calls(),
            [
                "checkpoint",
                "pg_controldata",
                "wal_state",
                "pg_waldump tli 1 0/3000100..0/3000200"
            ]
        );
        w.shutdown_checkpoint = None;
        let v = run(&w);
        assert!(matches!(v, Switchover::Unsafe { timeline: 1, .. }), "{v:?}");
        assert!(v.describe().contains("did not receive"));
        w.state = Some(standby(None, "0/3000200", "0/0", None));
        assert!(matches!(run(&w), Switchover::Unknown(_)));
        w.state = None;
        assert!(matches!(run(&w), Switchover::Unknown(_)));
    }
}
