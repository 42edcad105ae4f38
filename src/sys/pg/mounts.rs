//! Which mount holds a path, from `/proc/self/mountinfo` (for `expected_mount`).

use std::path::{Path, PathBuf};

use crate::sys::mount;

/// The mount point and source of the mount holding `path` (from `/proc/self/mountinfo`).
pub fn mount_of(path: &Path) -> Option<(PathBuf, String)> {
    let path = std::fs::canonicalize(path).ok()?;
    let table = mount::mountinfo(None).ok()?;
    // The last matching line of the longest prefix is the mount on top.
    let mut best: Option<&mount::MountEntry> = None;
    for m in table.iter().filter(|m| path.starts_with(&m.mount_point)) {
        if best.is_none_or(|b| m.mount_point.as_os_str().len() >= b.mount_point.as_os_str().len()) {
            best = Some(m);
        }
    }
    best.map(|m| (m.mount_point.clone(), m.source.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_mounted_and_missing_paths_have_no_mount() {
        let (mp, _) = mount_of(Path::new("/")).unwrap();
        assert_eq!(mp, Path::new("/"));
        assert_eq!(mount_of(Path::new("/nonexistent/pgst-pg")), None);
    }
}
