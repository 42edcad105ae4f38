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
//! 1. [`pre_promote`], on every node: publishes this node's [`Ballot`] as the private
//!    transient attribute `pgstack-position-RSC` (waiting, within the deadline, until
//!    attrd shows it), replacing what an earlier election left: its position, and on
//!    the promote target the electors too (active and starting instances, minus those
//!    stopping, minus itself) and the switchover check's unsafe verdict, if any.
//! 2. [`promote_check`], in the target's promote: reads every ballot in one query and
//!    waits for every elector's position
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
//! 3. [`post_promote`], on every node: removes its ballot.
//!
//! A recovery of the primary in place (the same node demoted and promoted) is elected
//! like any other promotion: when a standby moved ahead meanwhile, it wins.
//!
//! The promotion scores the election starts from, and the survivor rules, are in
//! [`super::scores`] (re-exported here).
//!
//! # Switchover ([`check_switchover`])
//! In a planned switchover (one primary demoted and one standby promoted in the same
//! transition, the old primary not stopping: [`is_switchover`]), the target checks in its
//! pre-promote that it received the old primary's shutdown checkpoint: a restartpoint,
//! then `pg_waldump` (`pg_xlogdump` before 10) over its WAL from the latest REDO
//! location to the last received location on its timeline, looking for a shutdown
//! checkpoint record. Without it the old primary may hold WAL the target lacks: the
//! target publishes the verdict in its ballot and sets its own promotion score to -1;
//! its promote in the same transition reads the verdict ([`promote_check`]:
//! [`Verdict::Cancelled`], removed once read) and fails with OCF_ERR_GENERIC.
//! Pacemaker then aborts the transition, counts the failure (on-fail=restart of
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
use crate::sys::attrd::{AttrResult, Attrd, Found, Pending, ScoreOf};
use crate::sys::pg::client::{Probe, ProbeError};
use crate::sys::pg::wal::{Lsn, WalOs, WalState};
use crate::sys::runner::Credentials;

pub use super::scores::*;

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

/// The private attribute holding what a node published in an election ([`Ballot`]).
pub fn position_attr(resource: &str) -> String {
    format!("pgstack-position-{resource}")
}

/// What a node publishes in an election, as the value of [`position_attr`]: its
/// position (`-` when its server could not be read) and, on the promote target, the
/// electors and an unsafe verdict of [`check_switchover`]:
/// `3#0/5000A8 electors=pg1,pg3 cancelled=did not receive ...`. One attribute, so the
/// target's promote reads its own ballot and every elector's position in one query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ballot {
    pub position: Option<Position>,
    /// Only on the promote target (empty: a lone target).
    pub electors: Option<BTreeSet<String>>,
    /// Only on a switchover's target whose check found the promotion unsafe.
    pub cancelled: Option<String>,
}

impl Ballot {
    pub fn render(&self) -> String {
        let mut v = self
            .position
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        if let Some(e) = &self.electors {
            v.push_str(" electors=");
            v.push_str(&e.iter().cloned().collect::<Vec<_>>().join(","));
        }
        if let Some(why) = &self.cancelled {
            v.push_str(" cancelled=");
            v.push_str(why);
        }
        v
    }

    /// Reads a rendered ballot; a bare position (what every other node publishes) is one.
    pub fn parse(s: &str) -> Option<Ballot> {
        let (head, cancelled) = match s.split_once(" cancelled=") {
            Some((h, why)) => (h, Some(why.to_string())),
            None => (s, None),
        };
        let mut words = head.split_whitespace();
        let position = match words.next()? {
            "-" => None,
            p => Some(Position::parse(p)?),
        };
        let mut electors = None;
        for w in words {
            let list = w.strip_prefix("electors=")?;
            electors = Some(
                list.split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
        }
        Some(Ballot {
            position,
            electors,
            cancelled,
        })
    }

    /// Whether there is anything to publish.
    fn is_empty(&self) -> bool {
        self.position.is_none() && self.electors.is_none() && self.cancelled.is_none()
    }
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
    /// This transition's switchover check on this node found the promotion unsafe.
    Cancelled { why: String },
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

/// The pre-promote notification on this node (see the module documentation): publishes
/// its [`Ballot`], replacing what an earlier election left. `position` is `None` when
/// this node's server could not be read (the target's wait for it then ends in
/// `Fallback`); `cancelled` is the target's unsafe switchover verdict. Returns whether
/// attrd confirmed the ballot before the deadline.
pub fn pre_promote(
    attrd: &dyn Attrd,
    resource: &str,
    me: &str,
    n: &Notify,
    position: Option<Position>,
    cancelled: Option<&str>,
    deadline: &Deadline,
) -> AttrResult<bool> {
    let ballot = Ballot {
        position,
        electors: n.promote.contains(me).then(|| electors(n, me)),
        cancelled: cancelled.map(str::to_string),
    };
    let name = position_attr(resource);
    if ballot.is_empty() {
        attrd.delete(&name, None, deadline.instant())?;
        return Ok(true);
    }
    set_and_confirm(attrd, &name, &ballot.render(), deadline)
}

/// The score the target leaves itself when a better node exists, and the score it
/// gives that node (PAF's values), so the next transition promotes the better one.
pub const YIELD_OWN: i64 = 1;
pub const YIELD_TO: i64 = 1000;

/// The target's check in promote (see the module documentation). On `NotBest` the
/// scores are already moved. A cancelled verdict is removed once read, so it stops one
/// promote only.
pub fn promote_check(
    attrd: &dyn Attrd,
    resource: &str,
    deadline: &Deadline,
) -> AttrResult<Verdict> {
    PromoteCheck::start(attrd, resource, deadline).verdict(deadline)
}

/// [`promote_check`] in two steps: the ballots are asked for as the promote begins
/// ([`PromoteCheck::start`]), and read when the promote needs its verdict, so the
/// query runs while the promote finds its server.
pub struct PromoteCheck<'a> {
    attrd: &'a dyn Attrd,
    resource: String,
    ballots: Pending<BTreeMap<String, String>>,
}

impl<'a> PromoteCheck<'a> {
    pub fn start(attrd: &'a dyn Attrd, resource: &str, deadline: &Deadline) -> PromoteCheck<'a> {
        let ballots = attrd.start_query_all(&position_attr(resource), deadline.instant());
        PromoteCheck {
            attrd,
            resource: resource.to_string(),
            ballots,
        }
    }

    pub fn verdict(self, deadline: &Deadline) -> AttrResult<Verdict> {
        let PromoteCheck {
            attrd,
            resource,
            ballots,
        } = self;
        verdict(attrd, &resource, ballots, deadline)
    }
}

fn verdict(
    attrd: &dyn Attrd,
    resource: &str,
    ballots: Pending<BTreeMap<String, String>>,
    deadline: &Deadline,
) -> AttrResult<Verdict> {
    let d = deadline.instant();
    let name = position_attr(resource);
    let me = attrd.local_name(d)?;
    let first = ballots.wait()?;
    let Some(own) = first.get(&me).and_then(|v| Ballot::parse(v)) else {
        return Ok(no_election());
    };
    if let Some(why) = own.cancelled.clone() {
        let rest = Ballot {
            cancelled: None,
            ..own
        };
        attrd.set_private(&name, None, &rest.render(), d)?;
        return Ok(Verdict::Cancelled { why });
    }
    let Some(wanted) = own.electors else {
        return Ok(no_election());
    };
    let Some(mine) = own.position else {
        return Ok(Verdict::Fallback {
            missing: BTreeSet::new(),
            reason: "this node published no position".into(),
        });
    };
    let positions = |all: BTreeMap<String, String>| -> BTreeMap<String, Position> {
        all.into_iter()
            .filter(|(n, _)| wanted.contains(n))
            .filter_map(|(n, v)| Ballot::parse(&v)?.position.map(|p| (n, p)))
            .collect()
    };
    let mut last = positions(first);
    let wait = deadline.share(0.5);
    if last.len() < wanted.len() {
        wait.poll(Backoff::every(100), || {
            let peers = positions(attrd.query_all(&name, d)?);
            let complete = peers.len() == wanted.len();
            last = peers;
            Ok::<_, crate::sys::attrd::AttrError>(complete.then_some(()))
        })?;
    }
    let peers = last;
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

fn no_election() -> Verdict {
    Verdict::Fallback {
        missing: BTreeSet::new(),
        reason: "no pre-promote election ran (notify disabled or a manual promote)".into(),
    }
}

/// The post-promote notification: removes this node's ballot.
pub fn post_promote(attrd: &dyn Attrd, resource: &str, deadline: &Deadline) -> AttrResult<()> {
    attrd.delete(&position_attr(resource), None, deadline.instant())
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
    let local = crate::sys::pg::wal::Local {
        bindir,
        datadir,
        creds,
    };
    let c = match wal.checkpoints(&local, d) {
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
    match wal.shutdown_checkpoint_in(&local, c.timeline, c.redo..received, d) {
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
pub(super) mod tests {
    use super::*;
    use crate::sys::attrd::fake::FakeAttrd;
    use crate::sys::pg::wal::fake::FakeWal;
    use crate::sys::pg::wal::Checkpoints;
    use crate::sys::pg::ClusterState;
    use std::time::Duration;

    pub(in crate::agents::postgresql) fn pos(s: &str) -> Position {
        Position::parse(s).unwrap()
    }
    pub(in crate::agents::postgresql) fn soon() -> Deadline {
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
    fn ballots_render_and_read_back() {
        let full = Ballot {
            position: Some(pos("3#0/5000A8")),
            electors: Some(set(&["pg1", "pg3"])),
            cancelled: Some("did not receive it (no such record on timeline 3)".into()),
        };
        assert_eq!(
            full.render(),
            "3#0/5000A8 electors=pg1,pg3 cancelled=did not receive it (no such record on \
             timeline 3)"
        );
        for b in [
            full,
            Ballot {
                position: None,
                electors: Some(BTreeSet::new()),
                cancelled: None,
            },
            Ballot {
                position: Some(pos("1#0/1")),
                ..Ballot::default()
            },
        ] {
            assert_eq!(
                Ballot::parse(&b.render()),
                Some(b.clone()),
                "{}",
                b.render()
            );
        }
        // Every other node publishes a bare position, PAF's decimal LSN included.
        assert_eq!(
            Ballot::parse("2#83886248").and_then(|b| b.position),
            Some(pos("2#0/50000A8"))
        );
        for bad in ["", "x#1", "1#0/1 voters=pg2", "1#0/1 electors"] {
            assert_eq!(Ballot::parse(bad), None, "{bad}");
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
        pre_promote(a, "pg", &me, n, own, None, &soon())?;
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

    pub(in crate::agents::postgresql) fn checkpoints() -> Checkpoints {
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
