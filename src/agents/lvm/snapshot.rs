//! The book's snapshot recipe (a consistent copy of the data volume for a backup):
//! create a snapshot of an LV with all the free space of the VG, mount it (XFS needs
//! `nouuid`: the snapshot carries the origin's UUID), remove it, never while mounted and
//! never an LV that is not a snapshot.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sys::lvm::{valid_name, Change, Changed, Lv, Lvm, Overrides, VgReport};
use crate::sys::{mount, SysError};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Sys(#[from] SysError),
}

fn check(what: &str, n: &str) -> Result<(), SnapshotError> {
    if valid_name(n) {
        Ok(())
    } else {
        Err(SnapshotError::Refused(format!(
            "{what} {n:?}: letters, digits, '_', '.', '+' and '-' only"
        )))
    }
}

fn find<'a>(rep: &'a VgReport, lv: &str) -> Result<&'a Lv, SnapshotError> {
    rep.lvs.iter().find(|l| l.name == lv).ok_or_else(|| {
        SnapshotError::Refused(format!("logical volume {}/{lv} not found", rep.vg.name))
    })
}

/// The size argument: `100%FREE` (the default), `N%FREE`, `N%ORIGIN` or an absolute size
/// like `512M`.
pub fn valid_size(s: &str) -> bool {
    let pct = |rest: &str| rest.parse::<u32>().is_ok_and(|n| (1..=100).contains(&n));
    if let Some(n) = s
        .strip_suffix("%FREE")
        .or_else(|| s.strip_suffix("%ORIGIN"))
    {
        return pct(n);
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    !num.is_empty()
        && num.chars().all(|c| c.is_ascii_digit() || c == '.')
        && matches!(unit, "k" | "K" | "m" | "M" | "g" | "G" | "t" | "T")
}

/// The snapshots of one volume group, each step bounded by `deadline`.
pub struct Snapshots<'a, L: Lvm> {
    pub lvm: &'a L,
    pub vg: &'a str,
    pub deadline: Instant,
}

impl<L: Lvm> Snapshots<'_, L> {
    fn report(&self) -> Result<VgReport, SnapshotError> {
        let vg = self.vg;
        check("volume group", vg)?;
        self.lvm
            .report(vg, &Overrides::default(), self.deadline)?
            .ok_or_else(|| SnapshotError::Refused(format!("volume group {vg} not found")))
    }

    fn change(&self, c: &Change) -> Result<(), SnapshotError> {
        match self.lvm.change(c, &Overrides::default(), self.deadline)? {
            Changed::Done => Ok(()),
            Changed::Failed(why) => Err(SnapshotError::Failed(why)),
        }
    }

    /// Creates snapshot `name` of `origin`; returns its device path.
    pub fn create(&self, origin: &str, name: &str, size: &str) -> Result<PathBuf, SnapshotError> {
        let vg = self.vg;
        check("snapshot name", name)?;
        check("logical volume", origin)?;
        if !valid_size(size) {
            return Err(SnapshotError::Refused(format!(
                "size {size:?}: use N%FREE, N%ORIGIN or a size like 512M"
            )));
        }
        let rep = self.report()?;
        let o = find(&rep, origin)?;
        if !o.origin.is_empty() {
            return Err(SnapshotError::Refused(format!(
                "{vg}/{origin} is itself a snapshot"
            )));
        }
        if rep.lvs.iter().any(|l| l.name == name) {
            return Err(SnapshotError::Refused(format!(
                "{vg}/{name} exists already"
            )));
        }
        self.change(&Change::Snapshot {
            vg: vg.into(),
            origin: origin.into(),
            name: name.into(),
            size: size.into(),
        })?;
        Ok(PathBuf::from(format!("/dev/{vg}/{name}")))
    }

    /// The snapshot LV `name`, refusing anything that is not one.
    fn snapshot_lv(&self, name: &str) -> Result<Lv, SnapshotError> {
        check("snapshot name", name)?;
        let rep = self.report()?;
        let l = find(&rep, name)?;
        if l.origin.is_empty() {
            return Err(SnapshotError::Refused(format!(
                "{}/{name} is not a snapshot; refusing",
                rep.vg.name
            )));
        }
        Ok(l.clone())
    }

    /// Mounts snapshot `name` on `dir`; XFS gets `nouuid`. Returns the options used.
    pub fn mount(&self, name: &str, dir: &Path, extra: &str) -> Result<String, SnapshotError> {
        let (lvm, vg) = (self.lvm, self.vg);
        let l = self.snapshot_lv(name)?;
        let Some(dev) = l.kernel else {
            return Err(SnapshotError::Refused(format!("{vg}/{name} is not active")));
        };
        if let Some(m) = lvm.mounts_of(dev).first() {
            return Err(SnapshotError::Refused(format!(
                "{vg}/{name} is mounted on {} already",
                m.display()
            )));
        }
        let path = PathBuf::from(format!("/dev/{vg}/{name}"));
        let fstype = lvm.fs_type(&path).ok_or_else(|| {
            SnapshotError::Refused(format!(
                "{}: no XFS or ext4 file system found",
                path.display()
            ))
        })?;
        let mut opts: Vec<&str> = extra.split(',').filter(|o| !o.is_empty()).collect();
        if fstype == "xfs" && !opts.contains(&"nouuid") {
            opts.push("nouuid");
        }
        let raw = opts.join(",");
        let opts = mount::split_options(&raw)
            .map_err(|e| SysError::Invalid(format!("mount options {raw:?}: {e}")))?;
        let spec = mount::MountSpec {
            source: &path.to_string_lossy(),
            target: dir,
            fstype,
            opts: &opts,
            raw_options: &raw,
        };
        lvm.mount(&spec, self.deadline)?;
        Ok(raw)
    }

    /// Removes snapshot `name`, refusing while it is mounted.
    pub fn remove(&self, name: &str) -> Result<(), SnapshotError> {
        let vg = self.vg;
        let l = self.snapshot_lv(name)?;
        if let Some(dev) = l.kernel {
            let m = self.lvm.mounts_of(dev);
            if !m.is_empty() {
                return Err(SnapshotError::Refused(format!(
                    "{vg}/{name} is mounted on {}; unmount it first",
                    m.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        self.change(&Change::Remove {
            vg: vg.into(),
            lv: name.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for ok in ["100%FREE", "50%FREE", "20%ORIGIN", "512M", "1G", "1.5g"] {
            assert!(valid_size(ok), "{ok}");
        }
        for bad in ["", "0%FREE", "101%FREE", "%FREE", "1", "1X", "-1G", "1G;x"] {
            assert!(!valid_size(bad), "{bad}");
        }
    }
}
