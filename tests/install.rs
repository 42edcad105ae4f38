//! `pgstack install` / `--uninstall` (what `make install` and `make uninstall` run), into a
//! staging root so the test touches nothing of the system.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

#[test]
fn install_puts_every_file_in_place_and_uninstall_removes_them() {
    let root = std::env::temp_dir().join(format!("pgst-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let d = root.to_str().unwrap();
    let bin = common::bin();
    let args = ["install", "--prefix", "/opt/pgstack", "--destdir", d];
    let out = common::run(
        &[&bin, args[0], args[1], args[2], args[3], args[4]],
        &[],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let exe = at("/opt/pgstack/sbin/pgstack");
    assert_eq!(
        std::fs::metadata(&exe).unwrap().permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(std::fs::read(&exe).unwrap(), std::fs::read(&bin).unwrap());
    for agent in ["vip", "filesystem", "postgresql", "drbd"] {
        let shim = at(&format!("/usr/lib/ocf/resource.d/pgstack/{agent}"));
        let text =
            std::fs::read_to_string(&shim).unwrap_or_else(|e| panic!("{}: {e}", shim.display()));
        assert!(text.starts_with("#!/bin/sh\n"), "{text}");
        assert!(
            text.contains("exec /opt/pgstack/sbin/pgstack ocf \"$0\" \"$@\""),
            "{text}"
        );
        assert_eq!(
            std::fs::metadata(&shim).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let man = at(&format!(
            "/opt/pgstack/share/man/man7/ocf_pgstack_{agent}.7"
        ));
        assert!(std::fs::read_to_string(&man)
            .unwrap()
            .starts_with(".TH OCF_PGSTACK_"));
    }
    assert!(at("/etc/init.d/postgresql-ha").exists());
    assert!(at("/usr/lib/pgstack/pgstack-alert").exists());
    let out = common::run(
        &[
            &bin,
            args[0],
            args[1],
            args[2],
            args[3],
            args[4],
            "--uninstall",
        ],
        &[],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = walk(&root).into_iter().filter(|p| p.is_file()).collect();
    assert!(left.is_empty(), "uninstall left {left:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            out.extend(walk(&e.path()));
        }
    }
    out
}
