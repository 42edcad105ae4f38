//! Which mount holds a path, from `/proc/self/mountinfo` (for `expected_mount`).

use std::path::{Path, PathBuf};

/// The mount point and source of the mount holding `path` (from `/proc/self/mountinfo`).
pub fn mount_of(path: &Path) -> Option<(PathBuf, String)> {
    let path = std::fs::canonicalize(path).ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(PathBuf, String)> = None;
    for line in text.lines() {
        let (left, right) = line.split_once(" - ")?;
        let mp = unescape(left.split_whitespace().nth(4)?);
        let src = right.split_whitespace().nth(1).unwrap_or("").to_string();
        let mp = PathBuf::from(mp);
        // The last matching line of the longest prefix is the mount on top.
        if path.starts_with(&mp)
            && best
                .as_ref()
                .is_none_or(|(b, _)| mp.as_os_str().len() >= b.as_os_str().len())
        {
            best = Some((mp, src));
        }
    }
    best
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_mounted_and_octal_escapes_are_decoded() {
        let (mp, _) = mount_of(Path::new("/")).unwrap();
        assert_eq!(mp, Path::new("/"));
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(mount_of(Path::new("/nonexistent/pgst-pg")), None);
    }
}
