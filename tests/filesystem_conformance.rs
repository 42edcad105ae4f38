//! `ocf-tester` on the `filesystem` agent with the book's XFS configuration, on a real
//! XFS on a loop device (root only). The tool's output is kept in target/test-artifacts/.

mod common;

use std::time::Duration;

use common::loopfs::{is_mounted, Base};

#[test]
fn ocf_tester_passes_for_xfs_with_the_books_options() {
    common::require_root();
    let mut b = Base::new("tester");
    let dev = b.device("xfs");
    let dir = b.path("db");
    let agent = common::agent_path("filesystem");
    let argv = [
        "ocf-tester",
        "-n",
        "pg_fs",
        "-o",
        &format!("device={dev}"),
        "-o",
        &format!("directory={}", dir.display()),
        "-o",
        "fstype=xfs",
        "-o",
        "options=noatime,nodiratime,logbsize=256k,allocsize=1m",
        &agent,
    ];
    let out = common::run(
        &argv,
        &[("OCF_ROOT", "/usr/lib/ocf")],
        Duration::from_secs(300),
    );
    let text = format!(
        "$ {}\n{}{}exit: {}\n",
        argv.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        out.status
    );
    std::fs::write(common::artifacts().join("ocf-tester-filesystem.txt"), &text).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed all tests"), "{text}");
    assert!(!is_mounted(&dir), "ocf-tester ends with a stop");
}
