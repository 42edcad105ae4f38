//! Stop: the mount and the mounts on top of it, deepest first, freed by signalling
//! exactly their holders within one deadline.

use std::time::{Duration, Instant};

use super::config::FsConfig;
use super::node::Resolved;
use super::Filesystem;
use crate::ocf::{Ctx, OcfError};
use crate::sys::mount::{self, MountEntry, Mounts, Umount};
use crate::sys::procwalk::{Holder, Target};
use crate::wait::{poll_until, Backoff};

/// How one round of waiting for the holders of a busy mount ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundEnd {
    Unmounted,
    HoldersGone,
}

/// A stop that could not free the mount, with the holders that remain.
#[derive(Debug, thiserror::Error)]
#[error("{dir}: still busy, not unmounted; remaining holders: {holders}")]
pub struct Busy {
    pub dir: String,
    pub holders: String,
}

crate::agent_failure!(Busy => ErrGeneric);

impl<M: Mounts> Filesystem<M> {
    /// Frees and unmounts `m`, signalling its holders, within the operation deadline.
    pub(super) fn unmount_one(
        &self,
        cfg: &FsConfig,
        m: &MountEntry,
        devs_shared: bool,
        ctx: &Ctx,
    ) -> Result<(), OcfError> {
        let dl = ctx.deadline.instant();
        let force = matches!(
            m.fstype.as_str(),
            "nfs" | "nfs4" | "cifs" | "smb3" | "smbfs"
        );
        // `true` once the mount is gone (unmounted now, or meanwhile by someone else).
        let try_umount = || -> Result<bool, OcfError> {
            Ok(match self.sys.umount(&m.mount_point, force)? {
                Umount::Done | Umount::NotMounted => true,
                Umount::Busy => false,
            })
        };
        if try_umount()? {
            return Ok(());
        }
        let target = Target {
            mount_ids: vec![m.id],
            // Mappings carry only a device number: used unless another mount shares it.
            devs: if m.major != 0 && !devs_shared {
                vec![m.dev()]
            } else {
                vec![]
            },
        };
        let dir = m.mount_point.display().to_string();
        if !cfg.force_unmount {
            let hs = self.sys.holders(&target);
            return Err(Busy {
                dir,
                holders: describe(&hs) + " (force_unmount=false)",
            }
            .into());
        }
        // Term rounds: one with fast_stop, else until half of the remaining budget.
        let start = Instant::now();
        let term_until = if cfg.fast_stop {
            start
        } else {
            start + (dl.saturating_duration_since(start) / 2)
        };
        let mut round = 0u32;
        // The failure report walks /proc twice after the last round: the rounds end early
        // enough for it to fit before the deadline (as long as the slowest walk seen).
        let mut walk = Duration::ZERO;
        let rounds_end = |walk: Duration| dl.checked_sub(walk * 2).unwrap_or(dl);
        while Instant::now() < rounds_end(walk) {
            let use_term = round == 0 || (Instant::now() < term_until && !cfg.fast_stop);
            let sigs = if use_term {
                &cfg.signals.term
            } else {
                &cfg.signals.kill
            };
            let t = Instant::now();
            let hs = self.sys.holders(&target);
            walk = walk.max(t.elapsed());
            for h in &hs {
                for s in sigs {
                    match self.sys.signal(h.pid, *s) {
                        Ok(()) => ctx.log.info(&format!(
                            "sent {s} to {} ({}, {}) holding {dir}",
                            h.pid, h.comm, h.how
                        )),
                        Err(e) => ctx.log.debug(&format!("{e}")),
                    }
                }
            }
            if hs.is_empty() {
                ctx.log.debug(&format!(
                    "{dir} is busy without a process holding it; retrying"
                ));
            }
            // Wait for the holders to go, retrying the unmount meanwhile. Every holder
            // gone but the mount still busy: look again at once (a holder may have left
            // a child behind) rather than sleeping out the delay.
            let until = rounds_end(walk)
                .min(Instant::now() + cfg.signals.delay.max(Duration::from_millis(20)));
            let round_end = poll_until(until, Backoff::millis(1, 20), || {
                if try_umount()? {
                    return Ok(Some(RoundEnd::Unmounted));
                }
                let all_gone = !hs.is_empty() && hs.iter().all(|h| !self.sys.live(h.pid));
                Ok::<_, OcfError>(all_gone.then_some(RoundEnd::HoldersGone))
            })?;
            if round_end == Some(RoundEnd::Unmounted) {
                return Ok(());
            }
            round += 1;
        }
        let mut holders = describe(&self.sys.holders(&target));
        let kept = self.sys.protected_holders(&target);
        if !kept.is_empty() {
            holders = format!(
                "{holders}; never signalled (PID 1, this agent's ancestors, cluster daemons): {}",
                describe(&kept)
            );
        }
        Err(Busy { dir, holders }.into())
    }

    /// Unmounts the mount on the directory and every mount on top of it, deepest first,
    /// with one deadline for all, but only when the mount on the directory is positively
    /// identified as this device: another device, or one that cannot be identified (the
    /// device is missing here), is left alone and said so.
    pub(super) fn unmount_tree(
        &self,
        cfg: &FsConfig,
        r: &Resolved,
        ctx: &Ctx,
    ) -> Result<(), OcfError> {
        let dir = cfg.directory.display();
        for pass in 0..16 {
            let table = self.sys.mountinfo()?;
            let Some(top) = mount::mount_at(&table, &cfg.directory) else {
                if let Some(b) = mount::mounts_below(&table, &cfg.directory).first() {
                    if pass == 0 {
                        ctx.log.warn(&format!(
                            "{dir} is not mounted, but {} below it is: not this resource's, left alone",
                            b.mount_point.display()
                        ));
                    }
                }
                return Ok(());
            };
            if !Self::ours(top, r, &table) {
                ctx.log.warn(&match r {
                    Resolved::Missing(why) => format!(
                        "{dir} is mounted from {}, which cannot be identified as {} ({why}): left alone",
                        top.source,
                        cfg.device_text()
                    ),
                    _ => format!(
                        "{dir} is mounted from {}, not from {}: left alone",
                        top.source,
                        cfg.device_text()
                    ),
                });
                return Ok(());
            }
            let mut todo: Vec<MountEntry> = mount::submounts(&table, top.id)
                .into_iter()
                .cloned()
                .collect();
            todo.push(top.clone());
            for m in &todo {
                let shared = table.iter().filter(|o| o.dev() == m.dev()).count() > 1;
                self.unmount_one(cfg, m, shared, ctx)?;
                ctx.log
                    .info(&format!("unmounted {}", m.mount_point.display()));
            }
        }
        Err(OcfError::Generic(format!("{dir}: mounts keep reappearing")))
    }
}

fn describe(hs: &[Holder]) -> String {
    if hs.is_empty() {
        return "none found".into();
    }
    hs.iter()
        .map(|h| format!("{} ({}, {})", h.pid, h.comm, h.how))
        .collect::<Vec<_>>()
        .join(", ")
}
