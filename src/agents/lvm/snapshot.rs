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

fn report<L: Lvm>(lvm: &L, vg: &str, deadline: Instant) -> Result<VgReport, SnapshotError> {
    check("volume group", vg)?;
    lvm.report(vg, &Overrides::default(), deadline)?
        .ok_or_else(|| SnapshotError::Refused(format!("volume group {vg} not found")))
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

/// Creates snapshot `name` of `vg/origin`; returns its device path.
pub fn create<L: Lvm>(
    lvm: &L,
    vg: &str,
    origin: &str,
    name: &str,
    size: &str,
    deadline: Instant,
) -> Result<PathBuf, SnapshotError> {
    check("snapshot name", name)?;
    check("logical volume", origin)?;
    if !valid_size(size) {
        return Err(SnapshotError::Refused(format!(
            "size {size:?}: use N%FREE, N%ORIGIN or a size like 512M"
        )));
    }
    let rep = report(lvm, vg, deadline)?;
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
    let c = Change::Snapshot {
        vg: vg.into(),
        origin: origin.into(),
        name: name.into(),
        size: size.into(),
    };
    match lvm.change(&c, &Overrides::default(), deadline)? {
        Changed::Done => Ok(PathBuf::from(format!("/dev/{vg}/{name}"))),
        Changed::Failed(why) => Err(SnapshotError::Failed(why)),
    }
}

/// The snapshot LV `vg/name`, refusing anything that is not one.
fn snapshot_lv<L: Lvm>(
    lvm: &L,
    vg: &str,
    name: &str,
    deadline: Instant,
) -> Result<Lv, SnapshotError> {
    check("snapshot name", name)?;
    let rep = report(lvm, vg, deadline)?;
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
pub fn mount<L: Lvm>(
    lvm: &L,
    vg: &str,
    name: &str,
    dir: &Path,
    extra: &str,
    deadline: Instant,
) -> Result<String, SnapshotError> {
    let l = snapshot_lv(lvm, vg, name, deadline)?;
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
    lvm.mount(&spec, deadline)?;
    Ok(raw)
}

/// Removes snapshot `name`, refusing while it is mounted.
pub fn remove<L: Lvm>(
    lvm: &L,
    vg: &str,
    name: &str,
    deadline: Instant,
) -> Result<(), SnapshotError> {
    let l = snapshot_lv(lvm, vg, name, deadline)?;
    if let Some(dev) = l.kernel {
        let m = lvm.mounts_of(dev);
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
    match lvm.change(
        &Change::Remove {
            vg: vg.into(),
            lv: name.into(),
        },
        &Overrides::default(),
        deadline,
    )? {
        Changed::Done => Ok(()),
        Changed::Failed(why) => Err(SnapshotError::Failed(why)),
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
