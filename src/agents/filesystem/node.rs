//! What the parameters mean on this node: the directory and device in their canonical
//! form, the device found by path, UUID or label, and whether a mount is this one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::config::{local_only, DeviceSpec, FsConfig};
use super::Filesystem;
use crate::ocf::{Ctx, OcfError};
use crate::sys::mount::{self, BlockDev, DevKind, MountEntry, Mounts, PathKind};

/// The device as resolved on this node.
#[derive(Debug, Clone)]
pub(super) enum Resolved {
    Block(BlockDev),
    /// No such device (path missing, or no device carries the UUID/label).
    Missing(String),
    /// A path that is not a block device.
    NotBlock(PathBuf),
    /// A source that is not a local device.
    Source(String),
}

impl<M: Mounts> Filesystem<M> {
    pub(super) fn resolve(&self, cfg: &FsConfig, deadline: Instant) -> Result<Resolved, OcfError> {
        let path = match &cfg.device {
            DeviceSpec::Other(s) => return Ok(Resolved::Source(s.clone())),
            DeviceSpec::Path(p) => p.clone(),
            DeviceSpec::Uuid(u) => match self.sys.find_tagged("UUID", u, deadline)? {
                Some(p) => self.sys.resolve_path(&p, &[])?,
                None => return Ok(Resolved::Missing(format!("no device has UUID={u}"))),
            },
            DeviceSpec::Label(l) => match self.sys.find_tagged("LABEL", l, deadline)? {
                Some(p) => self.sys.resolve_path(&p, &[])?,
                None => return Ok(Resolved::Missing(format!("no device has LABEL={l}"))),
            },
        };
        Ok(match self.sys.block_device(&path)? {
            DevKind::Block(b) => Resolved::Block(b),
            DevKind::Missing => {
                Resolved::Missing(format!("device {} does not exist", path.display()))
            }
            DevKind::NotBlock => Resolved::NotBlock(path),
        })
    }

    /// `cfg` with `directory` (and a device path) in their one canonical form, resolved
    /// once per action and used for every later step and comparison (mountinfo shows
    /// canonical paths); `None` when the directory resolves to `/`.
    pub(super) fn canonical(
        &self,
        cfg: &FsConfig,
        table: &[MountEntry],
    ) -> Result<Option<FsConfig>, OcfError> {
        let directory = self.sys.resolve_path(&cfg.directory, table)?;
        if directory == Path::new("/") {
            return Ok(None);
        }
        let device = match &cfg.device {
            DeviceSpec::Path(p) => DeviceSpec::Path(self.sys.resolve_path(p, &[])?),
            d => d.clone(),
        };
        Ok(Some(FsConfig {
            directory,
            device,
            ..cfg.clone()
        }))
    }

    /// [`Self::canonical`], refusing a directory that resolves to `/`.
    pub(super) fn canonical_or_refuse(
        &self,
        cfg: &FsConfig,
        table: &[MountEntry],
    ) -> Result<FsConfig, OcfError> {
        self.canonical(cfg, table)?.ok_or_else(|| {
            OcfError::Configured(format!(
                "directory {} resolves to /: refusing to manage the root file system",
                cfg.directory.display()
            ))
        })
    }

    /// Whether the mount `m` is of our device.
    pub(super) fn ours(m: &MountEntry, r: &Resolved, table: &[MountEntry]) -> bool {
        match r {
            Resolved::Block(b) => m.dev() == (b.major, b.minor) || Path::new(&m.source) == b.path,
            // A bind mount shows the device and the path within it, not the source.
            Resolved::NotBlock(p) => {
                Path::new(&m.source) == p
                    || mount::bind_origin(table, p)
                        .is_some_and(|(dev, root)| dev == m.dev() && root == Path::new(&m.root))
            }
            Resolved::Source(s) => &m.source == s,
            Resolved::Missing(_) => false,
        }
    }

    pub(super) fn source_of(r: &Resolved) -> Option<String> {
        match r {
            Resolved::Block(b) => Some(b.path.display().to_string()),
            Resolved::NotBlock(p) => Some(p.display().to_string()),
            Resolved::Source(s) => Some(s.clone()),
            Resolved::Missing(_) => None,
        }
    }

    pub(super) fn check_clone(cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        if ctx.env.meta.clone.is_some() || ctx.env.meta.clone_max.is_some() {
            let t = if cfg.fstype.is_empty() {
                "this file system"
            } else {
                &cfg.fstype
            };
            if (local_only(&cfg.fstype) || cfg.fstype.is_empty())
                && !cfg.force_clones
                && !cfg.opts.read_only
            {
                return Err(OcfError::Configured(format!(
                    "{t} on {} is not cluster-aware: refusing to run as a clone (set force_clones only if a single writer is guaranteed)",
                    cfg.device_text()
                )));
            }
        }
        Ok(())
    }

    pub(super) fn check_fstype(&self, cfg: &FsConfig, deadline: Instant) -> Result<(), OcfError> {
        if cfg.fstype.is_empty() || cfg.fstype == "none" {
            return Ok(());
        }
        let known = |fs: &[String]| {
            fs.iter().any(|f| f == &cfg.fstype)
                || (cfg.fstype.starts_with("fuse") && fs.iter().any(|f| f == "fuse"))
        };
        if known(&self.sys.kernel_filesystems(None, deadline)?) {
            return Ok(());
        }
        // A module may provide it.
        if known(&self.sys.kernel_filesystems(Some(&cfg.fstype), deadline)?) {
            return Ok(());
        }
        Err(OcfError::Installed(format!(
            "fstype={}: not supported by this kernel (not in /proc/filesystems)",
            cfg.fstype
        )))
    }

    /// The (canonical) mount point must be a directory, or absent to be created. A link
    /// there now was put there after the path was resolved: refused.
    pub(super) fn check_directory(&self, cfg: &FsConfig) -> Result<PathKind, OcfError> {
        match self.sys.path_kind(&cfg.directory) {
            PathKind::Other => Err(OcfError::Installed(format!(
                "directory {} exists and is not a directory",
                cfg.directory.display()
            ))),
            PathKind::LinkToDir => Err(OcfError::Generic(format!(
                "directory {} became a symbolic link while starting",
                cfg.directory.display()
            ))),
            k => Ok(k),
        }
    }

    /// The status directories below the mount (one name each) and the file's name.
    pub(super) fn status_file(&self, cfg: &FsConfig, ctx: &Ctx) -> (Vec<OsString>, OsString) {
        let host = self.sys.hostname();
        let mut name = ctx.env.instance_file_name();
        if let Some(c) = ctx.env.meta.clone {
            name = format!("{name}_{c}");
        }
        let name = format!("{name}_{host}").replace('/', "_");
        let dirs = cfg
            .statusfile_prefix
            .components()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        (dirs, name.into())
    }
}
