//! The build id: a digest of the sources a binary is built from (every file under `src/`,
//! by path and content, and `Cargo.lock`). build.rs embeds it (`pgstack --build-id`); the
//! black-box tests take it of the tree under test and refuse a stale install. FNV-1a, 64
//! bits: a fingerprint, not a security measure.

use std::path::{Path, PathBuf};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// The id of the tree at `root`, as 16 hex digits.
pub fn of_tree(root: &Path) -> String {
    let mut all = Vec::new();
    files(&root.join("src"), &mut all);
    all.push(root.join("Cargo.lock"));
    all.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for p in &all {
        let rel = p.strip_prefix(root).unwrap_or(p);
        feed(rel.to_string_lossy().as_bytes());
        feed(&[0]);
        feed(&std::fs::read(p).unwrap_or_default());
        feed(&[0]);
    }
    format!("{h:016x}")
}
