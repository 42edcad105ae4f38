//! The actions: validate-all, start (with its undo), stop, monitor.

use super::config::{block_type, fallback_config, FsConfig, Fsck};
use super::node::Resolved;
use super::{Filesystem, INFO};
use crate::ocf::metadata::AgentInfo;
use crate::ocf::{Agent, Ctx, OcfError, Status};
use crate::sys::blockio::Op;
use crate::sys::mount::{self, FsckResult, MountEntry, Mounts, PathKind, Umount};

impl<M: Mounts> Filesystem<M> {
    /// Unmounts what this start mounted (the new mounts of the device or on the
    /// directory), after a failure.
    pub(super) fn undo_mount(
        &self,
        before: &[MountEntry],
        r: &Resolved,
        cfg: &FsConfig,
        ctx: &Ctx,
    ) {
        let Ok(after) = self.sys.mountinfo() else {
            return;
        };
        let mine: Vec<&MountEntry> = after
            .iter()
            .filter(|m| !before.iter().any(|b| b.id == m.id))
            .filter(|m| m.mount_point == cfg.directory || Self::ours(m, r, &after))
            .collect();
        for m in mine.iter().rev() {
            match self.sys.umount(&m.mount_point, false) {
                Ok(Umount::Done) => ctx.log.warn(&format!(
                    "start failed after mounting: unmounted {} again",
                    m.mount_point.display()
                )),
                Ok(Umount::NotMounted) => {}
                Ok(Umount::Busy) => ctx.log.error(&format!(
                    "start failed after mounting, and {} is busy: left mounted",
                    m.mount_point.display()
                )),
                Err(e) => ctx.log.error(&format!(
                    "start failed after mounting, and undoing it failed too: {e}"
                )),
            }
        }
    }
}

impl<M: Mounts> Agent for Filesystem<M> {
    type Config = FsConfig;

    fn info(&self) -> &'static AgentInfo {
        &INFO
    }

    fn validate(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let cfg = &self.canonical_or_refuse(cfg, &self.sys.mountinfo()?)?;
        Self::check_clone(cfg, ctx)?;
        self.check_fstype(cfg, ctx.deadline.instant())?;
        match self.resolve(cfg, ctx.deadline.instant())? {
            Resolved::Missing(why) => return Err(OcfError::Installed(why)),
            Resolved::NotBlock(p) if block_type(&cfg.fstype) => {
                return Err(OcfError::Installed(format!(
                    "device {} is not a block device",
                    p.display()
                )))
            }
            _ => {}
        }
        self.check_directory(cfg).map(|_| ())
    }

    fn start(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let dl = ctx.deadline.instant();
        // Two starts of this resource at once would both see it unmounted and mount twice.
        let _lock = self.sys.lock(&ctx.env.instance_file_name(), dl)?;
        let table = self.sys.mountinfo()?;
        let cfg = &self.canonical_or_refuse(cfg, &table)?;
        let r = self.resolve(cfg, dl)?;
        if let Some(m) = mount::mount_at(&table, &cfg.directory) {
            if Self::ours(m, &r, &table) {
                ctx.log
                    .info(&format!("{} is already mounted", cfg.directory.display()));
                return Ok(());
            }
            return Err(OcfError::Generic(format!(
                "another device ({}) is mounted on {}",
                m.source,
                cfg.directory.display()
            )));
        }
        if let Some(b) = mount::mounts_below(&table, &cfg.directory).first() {
            return Err(OcfError::Configured(format!(
                "{} has a mount below it ({}) but is not mounted itself",
                cfg.directory.display(),
                b.mount_point.display()
            )));
        }
        let source = Self::source_of(&r).ok_or_else(|| OcfError::Installed(cfg.device_text()))?;
        if let Resolved::Block(b) = &r {
            let ext = matches!(cfg.fstype.as_str(), "ext2" | "ext3" | "ext4");
            let res = match (cfg.run_fsck, cfg.fstype.as_str()) {
                (Fsck::No, _) => None,
                (Fsck::Force, "xfs") => Some(self.sys.xfs_check(&b.path, dl)?),
                (Fsck::Auto | Fsck::Force, _) if ext => {
                    Some(self.sys.fsck(&b.path, &cfg.fstype, dl)?)
                }
                _ => None,
            };
            match res {
                Some(FsckResult::Failed(why)) => return Err(OcfError::Generic(why)),
                Some(FsckResult::Skipped(why)) => ctx.log.warn(&why),
                Some(FsckResult::Corrected(n)) => ctx.log.warn(&format!(
                    "fsck corrected errors on {} (exit {n})",
                    b.path.display()
                )),
                _ => {}
            }
        }
        if self.check_directory(cfg)? == PathKind::Missing {
            self.sys.create_dir_all(&cfg.directory).map_err(|e| {
                OcfError::Installed(format!(
                    "cannot create directory {}: {e}",
                    cfg.directory.display()
                ))
            })?;
        }
        let spec = mount::MountSpec {
            source: &source,
            target: &cfg.directory,
            fstype: &cfg.fstype,
            opts: &cfg.opts,
            raw_options: &cfg.options,
        };
        self.sys
            .mount(&spec, dl)
            .map_err(|e| OcfError::Generic(e.to_string()))?;
        let after = self.sys.mountinfo()?;
        let failure = match mount::mount_at(&after, &cfg.directory) {
            Some(m) if Self::ours(m, &r, &after) || matches!(r, Resolved::Source(_)) => {
                ctx.log.info(&format!(
                    "mounted {source} on {} ({}, {})",
                    cfg.directory.display(),
                    m.fstype,
                    m.options
                ));
                return Ok(());
            }
            Some(m) => format!(
                "after mounting, {} shows {} instead of {source}",
                cfg.directory.display(),
                m.source
            ),
            None => format!(
                "mounted {source}, but {} does not appear in mountinfo",
                cfg.directory.display()
            ),
        };
        self.undo_mount(&table, &r, cfg, ctx);
        Err(OcfError::Generic(failure))
    }

    fn stop(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let _lock = self
            .sys
            .lock(&ctx.env.instance_file_name(), ctx.deadline.instant())?;
        let Some(cfg) = &self.canonical(cfg, &self.sys.mountinfo()?)? else {
            ctx.log.warn(&format!(
                "directory {} resolves to /: nothing of this resource is mounted there; left alone",
                cfg.directory.display()
            ));
            return Ok(());
        };
        // A device that cannot be looked up cannot be identified: nothing is unmounted.
        let r = self
            .resolve(cfg, ctx.deadline.instant())
            .unwrap_or_else(|e| Resolved::Missing(e.to_string()));
        self.unmount_tree(cfg, &r, ctx)
    }

    fn monitor(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<Status, OcfError> {
        let table = self.sys.mountinfo()?;
        let cfg = &self.canonical_or_refuse(cfg, &table)?;
        let Some(m) = mount::mount_at(&table, &cfg.directory) else {
            return Ok(Status::NotRunning(None));
        };
        let r = self.resolve(cfg, ctx.deadline.instant())?;
        if let Resolved::Missing(why) = &r {
            return Err(OcfError::Generic(format!(
                "{} is mounted from {}, but {why}",
                cfg.directory.display(),
                m.source
            )));
        }
        if !Self::ours(m, &r, &table) {
            return Err(OcfError::Generic(format!(
                "another device ({}) is mounted on {}, not {}",
                m.source,
                cfg.directory.display(),
                cfg.device_text()
            )));
        }
        let level = ctx.env.check_level;
        if level == 0 {
            return Ok(Status::Running);
        }
        if level != 10 && level != 20 {
            return Err(OcfError::Configured(format!(
                "unsupported monitor depth {level} (use 0, 10 or 20)"
            )));
        }
        let mut ops = Vec::new();
        if let Resolved::Block(b) = &r {
            ops.push(Op::ReadDevice(b.path.clone()));
        }
        ops.push(Op::ReadDir(cfg.directory.clone()));
        if level == 20 && !cfg.opts.read_only {
            let (subdirs, name) = self.status_file(cfg, ctx);
            let nonce = format!(
                "{}\n{} {}\n",
                ctx.env.instance,
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            );
            ops.push(Op::WriteStatus {
                dir: cfg.directory.clone(),
                subdirs,
                name,
                content: nonce.into_bytes(),
            });
        }
        self.sys.probe(&ops, ctx.deadline.instant())?;
        Ok(Status::Running)
    }

    /// The parameters do not parse: stop as the parameters that do parse (defaults for
    /// the others) describe it, if they still name a device and a directory; the mount is
    /// unmounted only when it is positively identified as that device.
    fn stop_unconfigured(&self, err: &OcfError, ctx: &Ctx) -> Result<(), OcfError> {
        match fallback_config(ctx.env) {
            Some(cfg) => {
                ctx.log.warn(&format!(
                    "stop with an invalid configuration ({err}): unmounting {} only if {} is mounted there",
                    cfg.directory.display(),
                    cfg.device_text()
                ));
                self.stop(&cfg, ctx)
            }
            None => {
                ctx.log.warn(&format!(
                    "stop with an invalid configuration ({err}) that names no usable device and directory: whatever is mounted on {} is left alone",
                    ctx.env.raw_param("directory").unwrap_or("the directory")
                ));
                Ok(())
            }
        }
    }
}
