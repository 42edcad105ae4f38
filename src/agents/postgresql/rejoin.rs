//! A former primary that diverged from the current primary is never silently re-joined
//! as its standby.
//!
//! # Divergence ([`divergence`], read by [`check`])
//! The former primary's stopped data directory says where its history ended: the latest
//! checkpoint (for a clean shutdown the last record written) and the minimum recovery
//! point, on its timeline. The current primary says, over a replication connection,
//! its system identifier, its timeline and that timeline's history (where each earlier
//! timeline was forked off). Then:
//! - another system identifier: [`Divergence::OtherSystem`];
//! - the former's timeline is the primary's, with the same history, and it did not
//!   get further than the primary: [`Divergence::Follows`] (it can stream);
//! - the same timeline but further than the primary: [`Divergence::Ahead`];
//! - an ancestor timeline of the primary's whose WAL goes past the fork point (a
//!   checkpoint record at or after it, or a recovery point after it):
//!   [`Divergence::Diverged`]; before the fork point: `Follows` after a clean shutdown;
//!   after a crash the control file cannot tell ([`Divergence::Uncertain`]), so
//!   [`check`] and [`guard`] read the instance's own WAL at the fork point
//!   (`pg_waldump --start FORK --limit 1`): a record there is `Diverged`, none `Follows`;
//! - a timeline the primary's history does not contain, or the same number with a
//!   different history (two promotions): [`Divergence::Unrelated`].
//!
//! [`guard`] gives the start action its reason to refuse such an instance, and the
//! monitor its reason to fail a standby that cannot stream; a primary that does not
//! answer is no verdict ([`Guard::NoAnswer`]): the caller decides.
//!
//! # Rejoin ([`rejoin`], `pgstack pg rejoin`)
//! The data directory must be stopped (a `postmaster.pid` a crash left is set aside
//! as `postmaster.pid.stale` before pg_rewind). Nothing to rebuild when it follows. Otherwise,
//! with `rewind`: only when `wal_log_hints` is on or data checksums are enabled
//! (checked first; pg_rewind cannot work without), `pg_rewind --write-recovery-conf`
//! from the primary. Without `rewind`: the old directory is renamed
//! `DATADIR.diverged.N` (never deleted), an empty one is made for the system user and
//! `pg_basebackup --write-recovery-conf` fills it; a failed copy is removed and the old
//! directory renamed back. Either way the result holds `standby.signal`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sys::error::SysError;
use crate::sys::pg::wal::{self, Checkpoints, History, Identity, Lsn, WalOs};
use crate::sys::pg::ClusterState;
use crate::sys::runner::Credentials;

/// How a former primary stands against the current primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    Follows {
        timeline: u32,
        at: Lsn,
    },
    Ahead {
        timeline: u32,
        former: Lsn,
        primary: Lsn,
    },
    Diverged {
        timeline: u32,
        fork: Lsn,
        ended: Lsn,
        primary_timeline: u32,
    },
    Unrelated {
        timeline: u32,
        primary_timeline: u32,
    },
    Uncertain {
        timeline: u32,
        fork: Lsn,
        checkpoint: Lsn,
    },
    OtherSystem {
        former: String,
        primary: String,
    },
}

impl Divergence {
    /// Whether the instance can stream from the primary as it is.
    pub fn follows(&self) -> bool {
        matches!(self, Divergence::Follows { .. })
    }

    pub fn describe(&self) -> String {
        match self {
            Divergence::Follows { timeline, at } => {
                format!("follows the primary (timeline {timeline}, at {at})")
            }
            Divergence::Ahead {
                timeline,
                former,
                primary,
            } => format!(
                "is ahead of the primary on timeline {timeline} ({former} > {primary}): \
                 it holds WAL the primary never had"
            ),
            Divergence::Diverged {
                timeline,
                fork,
                ended,
                primary_timeline,
            } => format!(
                "diverged: its timeline {timeline} goes on to {ended}, past {fork} where the \
                 primary's timeline {primary_timeline} forked off"
            ),
            Divergence::Unrelated {
                timeline,
                primary_timeline,
            } => format!(
                "diverged: its timeline {timeline} is not in the history of the primary's \
                 timeline {primary_timeline}"
            ),
            Divergence::Uncertain {
                timeline,
                fork,
                checkpoint,
            } => format!(
                "may have diverged: it crashed on timeline {timeline} after its last \
                 checkpoint {checkpoint}, before the fork point {fork}; what it wrote after \
                 that checkpoint is not known"
            ),
            Divergence::OtherSystem { former, primary } => {
                format!("is another database system (identifier {former}, the primary's {primary})")
            }
        }
    }
}

/// The decision (see the module documentation). `former_history` is the history file
/// of the former's own timeline, when it has one.
pub fn divergence(
    former: &Checkpoints,
    former_history: Option<&History>,
    primary: &Identity,
    primary_history: &History,
) -> Divergence {
    if former.system_identifier != primary.system_identifier {
        return Divergence::OtherSystem {
            former: former.system_identifier.clone(),
            primary: primary.system_identifier.clone(),
        };
    }
    let tli = former.timeline.max(former.min_recovery_timeline);
    // Where the former's WAL ends, as far as the control file tells.
    let ended = former.checkpoint.max(former.min_recovery);
    let unrelated = Divergence::Unrelated {
        timeline: tli,
        primary_timeline: primary.timeline,
    };
    // The former's ancestors must be the primary's, forked at the same points.
    if let Some(h) = former_history {
        let same = h
            .forks
            .iter()
            .all(|(t, at)| primary_history.end_of(*t) == Some(*at));
        if !same {
            return unrelated;
        }
    }
    if tli == primary.timeline {
        return if ended > primary.position {
            Divergence::Ahead {
                timeline: tli,
                former: ended,
                primary: primary.position,
            }
        } else {
            Divergence::Follows {
                timeline: tli,
                at: ended,
            }
        };
    }
    let Some(fork) = primary_history.end_of(tli) else {
        return unrelated;
    };
    if former.checkpoint >= fork || former.min_recovery > fork {
        return Divergence::Diverged {
            timeline: tli,
            fork,
            ended,
            primary_timeline: primary.timeline,
        };
    }
    if former.state.is_clean_shutdown() {
        Divergence::Follows {
            timeline: tli,
            at: ended,
        }
    } else {
        Divergence::Uncertain {
            timeline: tli,
            fork,
            checkpoint: former.checkpoint,
        }
    }
}

/// The former's control file with the timeline its own WAL is on, when that is later
/// (`wal_timeline`, the highest timeline of a segment in its pg_wal). A primary cut
/// seconds after its promotion still has its standby restartpoint, on the timeline before,
/// as its latest checkpoint: judged on that timeline it seemed to end before the fork,
/// while its WAL had gone on past the fork of the timeline it was really on.
pub fn on_own_timeline(mut c: Checkpoints, wal_timeline: Option<u32>) -> Checkpoints {
    if let Some(t) = wal_timeline {
        if t > c.timeline.max(c.min_recovery_timeline) {
            c.timeline = t;
        }
    }
    c
}

/// Where the instance and the primary are.
#[derive(Debug, Clone)]
pub struct Tools<'a> {
    pub bindir: &'a Path,
    pub datadir: &'a Path,
    /// libpq connection string of the current primary.
    pub conninfo: &'a str,
    pub creds: &'a Credentials,
}

impl Tools<'_> {
    /// The instance's own data directory, as the WAL reads take it.
    fn local(&self) -> wal::Local<'_> {
        wal::Local {
            bindir: self.bindir,
            datadir: self.datadir,
            creds: self.creds,
        }
    }

    /// The primary, asked with this instance's tools.
    fn primary(&self) -> wal::Primary<'_> {
        wal::Primary {
            bindir: self.bindir,
            conninfo: self.conninfo,
            creds: self.creds,
        }
    }
}

/// Reads both sides and decides.
pub fn check(wal: &dyn WalOs, t: &Tools, deadline: Instant) -> Result<Divergence, SysError> {
    let former = on_own_timeline(
        wal.checkpoints(&t.local(), deadline)?,
        wal::local_wal_timeline(t.datadir)?,
    );
    let primary = wal.identify(&t.primary(), deadline)?;
    let history = wal.timeline_history(&t.primary(), primary.timeline, deadline)?;
    let own = wal::local_history(t.datadir, former.timeline)?;
    refine(
        wal,
        t,
        divergence(&former, own.as_ref(), &primary, &history),
        &primary,
        deadline,
    )
}

/// An uncertain answer (a crash before the fork point) made certain by reading the
/// instance's own WAL: a record at or after the fork point means it diverged.
fn refine(
    wal: &dyn WalOs,
    t: &Tools,
    d: Divergence,
    primary: &Identity,
    deadline: Instant,
) -> Result<Divergence, SysError> {
    let Divergence::Uncertain {
        timeline,
        fork,
        checkpoint,
    } = d
    else {
        return Ok(d);
    };
    Ok(
        match wal.record_from(&t.local(), timeline, fork, deadline)? {
            Some(at) => Divergence::Diverged {
                timeline,
                fork,
                ended: at,
                primary_timeline: primary.timeline,
            },
            None => Divergence::Follows {
                timeline,
                at: checkpoint,
            },
        },
    )
}

/// What [`guard`] found: whether this instance may stream from the primary.
#[derive(Debug)]
pub enum Guard {
    /// Its history is the primary's: it can stream.
    Follows,
    /// It must not stream from the primary; the reason names `pgstack pg rejoin`.
    Diverged(String),
    /// The primary did not answer (its identity or its timeline history): no verdict.
    NoAnswer(SysError),
}

/// The start's and the monitor's guard against the primary `conninfo` names. An error
/// is this instance's own data directory or WAL that could not be read: no verdict
/// either, but not for want of a primary.
pub fn guard(wal: &dyn WalOs, t: &Tools, deadline: Instant) -> Result<Guard, SysError> {
    let former = on_own_timeline(
        wal.checkpoints(&t.local(), deadline)?,
        wal::local_wal_timeline(t.datadir)?,
    );
    let primary = match wal.identify(&t.primary(), deadline) {
        Ok(p) => p,
        Err(e) => return Ok(Guard::NoAnswer(e)),
    };
    let history = match wal.timeline_history(&t.primary(), primary.timeline, deadline) {
        Ok(h) => h,
        Err(e) => return Ok(Guard::NoAnswer(e)),
    };
    let own = wal::local_history(t.datadir, former.timeline)?;
    let d = divergence(&former, own.as_ref(), &primary, &history);
    let d = refine(wal, t, d, &primary, deadline)?;
    Ok(if d.follows() {
        Guard::Follows
    } else {
        // The remedy first: Pacemaker keeps only the first 128 bytes of an exit reason
        // (what crm_mon and pcs show); the whole text is in the agent's log.
        Guard::Diverged(format!(
            "`pgstack pg rejoin` must rebuild {} (--rewind: pg_rewind): it {}; \
             `pgstack pg rejoin --pgdata {} --primary-conninfo ...`",
            t.datadir.display(),
            d.describe(),
            t.datadir.display()
        ))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RejoinError {
    #[error("{0}: the server is running; stop it first")]
    Running(PathBuf),
    #[error(
        "{datadir}: pg_rewind needs wal_log_hints=on or data checksums, and neither is \
         enabled; rejoin without --rewind to copy the primary (the old directory is kept aside)"
    )]
    RewindImpossible { datadir: String },
    #[error("{datadir} {why}; pg_rewind cannot repair that: rejoin without --rewind to copy the primary")]
    RewindUseless { datadir: String, why: String },
    #[error(transparent)]
    Sys(#[from] SysError),
}

/// How the rejoin was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejoined {
    /// It followed already: only `standby.signal` was made sure of.
    NothingToDo(Divergence),
    Rewound(Divergence),
    /// Copied from the primary; the old directory is at `aside`.
    Copied {
        found: Divergence,
        aside: PathBuf,
    },
}

/// What [`rejoin`] will do for a divergence (pure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Nothing,
    Rewind,
    Copy,
}

pub fn method(
    d: &Divergence,
    c: &Checkpoints,
    rewind: bool,
    datadir: &Path,
) -> Result<Method, RejoinError> {
    if d.follows() {
        return Ok(Method::Nothing);
    }
    if !rewind {
        return Ok(Method::Copy);
    }
    if matches!(d, Divergence::Ahead { .. } | Divergence::OtherSystem { .. }) {
        return Err(RejoinError::RewindUseless {
            datadir: datadir.display().to_string(),
            why: d.describe(),
        });
    }
    if !(c.wal_log_hints || c.checksums) {
        return Err(RejoinError::RewindImpossible {
            datadir: datadir.display().to_string(),
        });
    }
    Ok(Method::Rewind)
}

/// Rebuilds a stopped former primary as a standby of the primary (see the module
/// documentation). `running` says whether a postmaster serves the data directory.
pub fn rejoin(
    wal: &dyn WalOs,
    t: &Tools,
    rewind: bool,
    running: bool,
    deadline: Instant,
) -> Result<Rejoined, RejoinError> {
    if running {
        return Err(RejoinError::Running(t.datadir.to_path_buf()));
    }
    let c = wal.checkpoints(&t.local(), deadline)?;
    if !matches!(
        c.state,
        ClusterState::ShutDown
            | ClusterState::ShutDownInRecovery
            | ClusterState::InProduction
            | ClusterState::InArchiveRecovery
            | ClusterState::InCrashRecovery
    ) {
        return Err(RejoinError::Sys(SysError::Invalid(format!(
            "{}: cluster state {:?}: neither stopped nor crashed",
            t.datadir.display(),
            c.state.as_str()
        ))));
    }
    let d = check(wal, t, deadline)?;
    let how = method(&d, &c, rewind, t.datadir)?;
    // The caller found no postmaster serving the directory: a pid file left by a crash
    // would make pg_rewind's recovery (or the next start) take it for a live server.
    if how == Method::Rewind && crate::sys::pg::pidfile::path(t.datadir).exists() {
        crate::sys::pg::pidfile::set_aside(t.datadir)?;
    }
    match how {
        Method::Nothing => {
            wal::write_standby_signal(t.datadir, t.creds)?;
            Ok(Rejoined::NothingToDo(d))
        }
        Method::Rewind => {
            wal::rewind(t.bindir, t.datadir, t.conninfo, false, t.creds, deadline)?;
            wal::write_standby_signal(t.datadir, t.creds)?;
            Ok(Rejoined::Rewound(d))
        }
        Method::Copy => {
            let aside = wal::move_aside(t.datadir)?;
            let copied = wal::make_datadir(t.datadir, t.creds).and_then(|()| {
                wal::basebackup(t.bindir, t.datadir, t.conninfo, t.creds, deadline)?;
                wal::write_standby_signal(t.datadir, t.creds)
            });
            if let Err(e) = copied {
                // Undo: the partial copy goes, the old directory comes back.
                if t.datadir.exists() {
                    wal::remove_partial_copy(t.datadir)?;
                }
                wal::move_back(&aside, t.datadir)?;
                return Err(e.into());
            }
            Ok(Rejoined::Copied { found: d, aside })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Credentials {
        Credentials {
            uid: nix::unistd::Uid::from_raw(0),
            gid: nix::unistd::Gid::from_raw(0),
            groups: vec![],
        }
    }
    /// Tools in /bin over `datadir`, against a primary at "host=x".
    fn tools<'a>(creds: &'a Credentials, datadir: &'a str) -> Tools<'a> {
        Tools {
            bindir: Path::new("/bin"),
            datadir: Path::new(datadir),
            conninfo: "host=x",
            creds,
        }
    }
    fn former(state: ClusterState, tli: u32, ckpt: u64, min: u64) -> Checkpoints {
        Checkpoints {
            state,
            system_identifier: "7300".into(),
            checkpoint: Lsn(ckpt),
            redo: Lsn(ckpt),
            timeline: tli,
            min_recovery: Lsn(min),
            min_recovery_timeline: 0,
            wal_log_hints: false,
            checksums: false,
        }
    }
    fn primary(tli: u32, at: u64) -> Identity {
        Identity {
            system_identifier: "7300".into(),
            timeline: tli,
            position: Lsn(at),
        }
    }
    fn history(tli: u32, forks: &[(u32, u64)]) -> History {
        History {
            timeline: tli,
            forks: forks.iter().map(|(t, a)| (*t, Lsn(*a))).collect(),
        }
    }

    /// Promoted to timeline 3 at 0x3000100 (a switchover), cut before the promotion's
    /// checkpoint ended: the control file still says timeline 2 (its restartpoint), its
    /// pg_wal has timeline 3. The new primary forked timeline 4 off 3 at 0x3800000.
    #[test]
    fn a_primary_cut_soon_after_its_promotion_is_judged_on_its_wal_timeline() {
        use ClusterState::*;
        let h4 = history(4, &[(1, 0x2000000), (2, 0x3000100), (3, 0x3800000)]);
        let c = former(InProduction, 2, 0x3000028, 0);
        // On the control file's timeline alone: the fork of 2 (0x3000100), the wrong one;
        // on the WAL's timeline: the fork of 3, where its WAL must be read.
        let by_control = (c.clone(), 2, Lsn(0x3000100));
        let by_wal = (on_own_timeline(c, Some(3)), 3, Lsn(0x3800000));
        for (c, tli, at) in [by_control, by_wal] {
            let d = divergence(&c, None, &primary(4, 0x3900000), &h4);
            assert!(
                matches!(d, Divergence::Uncertain { timeline, fork, .. } if timeline == tli && fork == at),
                "{d:?}"
            );
        }
        // An older or equal segment timeline changes nothing.
        assert_eq!(
            on_own_timeline(former(InProduction, 3, 1, 0), Some(2)).timeline,
            3
        );
        assert_eq!(
            on_own_timeline(former(InProduction, 3, 1, 0), None).timeline,
            3
        );
    }

    #[test]
    fn divergence_cases() {
        use ClusterState::*;
        let h1 = history(1, &[]);
        let h2 = history(2, &[(1, 0x3000100)]);
        let own = history(2, &[(1, 0x2800000)]);
        // The primaries: an identity and a history.
        let late2 = (primary(2, 0x5000000), &h2);
        let early2 = (primary(2, 0x200), &h2);
        let on1 = (primary(1, 0x200), &h1);
        // The former primary's state, timeline and checkpoint, its own history of that
        // timeline, the primary, the verdict.
        type Case<'a> = (
            ClusterState,
            u32,
            u64,
            Option<&'a History>,
            &'a (Identity, &'a History),
            &'a str,
        );
        let cases: &[Case] = &[
            // Its shutdown checkpoint was the last thing the new primary received.
            (ShutDown, 1, 0x30000D8, None, &late2, "Follows"),
            // It went on writing after the fork.
            (ShutDown, 1, 0x3000100, None, &late2, "Diverged"),
            // Crashed before the fork: unknown.
            (InProduction, 1, 0x2000000, None, &late2, "Uncertain"),
            // Same timeline, behind or ahead.
            (ShutDown, 1, 0x100, None, &on1, "Follows"),
            (ShutDown, 1, 0x300, None, &on1, "Ahead"),
            // A timeline the primary never had, and two promotions to the same number.
            (ShutDown, 3, 0x100, None, &early2, "Unrelated"),
            (ShutDown, 2, 0x100, Some(&own), &late2, "Unrelated"),
        ];
        for (state, tli, ckpt, own, (p, h), want) in cases {
            let d = divergence(&former(state.clone(), *tli, *ckpt, 0), *own, p, h);
            assert!(format!("{d:?}").starts_with(want), "{want}: {d:?}");
        }
        let d = divergence(
            &former(ShutDown, 1, 0x3000100, 0),
            None,
            &primary(2, 0x5000000),
            &h2,
        );
        assert!(
            matches!(
                d,
                Divergence::Diverged {
                    fork: Lsn(0x3000100),
                    ..
                }
            ),
            "{d:?}"
        );
        assert!(d.describe().contains("forked off"));
        let mut other = former(ShutDown, 1, 0x100, 0);
        other.system_identifier = "1".into();
        assert!(matches!(
            divergence(&other, None, &primary(1, 0x200), &h1),
            Divergence::OtherSystem { .. }
        ));
    }

    #[test]
    fn methods() {
        let dir = Path::new("/srv/pgst");
        let c = former(ClusterState::ShutDown, 1, 0x100, 0);
        let diverged = Divergence::Diverged {
            timeline: 1,
            fork: Lsn(1),
            ended: Lsn(2),
            primary_timeline: 2,
        };
        assert_eq!(method(&diverged, &c, false, dir).unwrap(), Method::Copy);
        let e = method(&diverged, &c, true, dir).unwrap_err();
        assert!(matches!(e, RejoinError::RewindImpossible { .. }));
        assert!(e.to_string().contains("wal_log_hints"), "{e}");
        let hints = Checkpoints {
            wal_log_hints: true,
            ..c.clone()
        };
        assert_eq!(
            method(&diverged, &hints, true, dir).unwrap(),
            Method::Rewind
        );
        let sums = Checkpoints {
            checksums: true,
            ..c.clone()
        };
        assert_eq!(method(&diverged, &sums, true, dir).unwrap(), Method::Rewind);
        let ahead = Divergence::Ahead {
            timeline: 1,
            former: Lsn(2),
            primary: Lsn(1),
        };
        assert!(matches!(
            method(&ahead, &hints, true, dir),
            Err(RejoinError::RewindUseless { .. })
        ));
        let follows = Divergence::Follows {
            timeline: 1,
            at: Lsn(1),
        };
        assert_eq!(method(&follows, &c, true, dir).unwrap(), Method::Nothing);
    }

    #[test]
    fn a_running_server_is_refused_before_anything() {
        let w = wal::fake::FakeWal::default();
        let creds = root();
        let t = tools(&creds, "/srv/pgst");
        let e = rejoin(&w, &t, false, true, Instant::now()).unwrap_err();
        assert!(matches!(e, RejoinError::Running(_)));
        assert!(w.calls().is_empty());
    }

    #[test]
    fn after_a_crash_the_own_wal_at_the_fork_point_decides() {
        let creds = root();
        let t = tools(&creds, "/nonexistent/pgst");
        let mut w = wal::fake::FakeWal {
            checkpoints: Some(former(ClusterState::InProduction, 1, 0x2000000, 0)),
            identity: Some(primary(2, 0x5000000)),
            history: Some(history(2, &[(1, 0x3000100)])),
            record_from: Some(Lsn(0x3000100)),
            ..Default::default()
        };
        let d = check(&w, &t, Instant::now()).unwrap();
        assert!(
            matches!(
                d,
                Divergence::Diverged {
                    ended: Lsn(0x3000100),
                    ..
                }
            ),
            "{d:?}"
        );
        assert!(w
            .calls()
            .contains(&"pg_waldump tli 1 from 0/3000100".to_string()));
        w.record_from = None;
        assert!(check(&w, &t, Instant::now()).unwrap().follows());
        assert!(matches!(
            guard(&w, &t, Instant::now()).unwrap(),
            Guard::Follows
        ));
    }

    #[test]
    fn an_unreachable_primary_is_no_verdict() {
        let mut w = wal::fake::FakeWal {
            checkpoints: Some(former(ClusterState::ShutDown, 1, 0x3000100, 0)),
            ..Default::default()
        };
        let creds = root();
        let t = tools(&creds, "/nonexistent/pgst");
        assert!(matches!(
            guard(&w, &t, Instant::now()).unwrap(),
            Guard::NoAnswer(_)
        ));
        // Its identity answered, its history did not: still no verdict.
        w.identity = Some(primary(2, 0x5000000));
        assert!(matches!(
            guard(&w, &t, Instant::now()).unwrap(),
            Guard::NoAnswer(_)
        ));
        w.history = Some(history(2, &[(1, 0x3000100)]));
        let Guard::Diverged(r) = guard(&w, &t, Instant::now()).unwrap() else {
            panic!("not refused");
        };
        assert!(
            r.contains("diverged") && r.contains("pgstack pg rejoin"),
            "{r}"
        );
        // What Pacemaker keeps of an exit reason (its first 128 bytes) names the remedy
        // and the verdict, for a data directory with a path longer than Debian's.
        let t = tools(&creds, "/nonexistent/postgresql/15/main");
        let Guard::Diverged(r) = guard(&w, &t, Instant::now()).unwrap() else {
            panic!("not refused");
        };
        let kept = &r[..128.min(r.len())];
        assert!(
            kept.contains("diverged") && kept.contains("pgstack pg rejoin"),
            "{kept}"
        );
    }
}
