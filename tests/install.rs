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
    common::sh_ok(&[&bin, args[0], args[1], args[2], args[3], args[4]]);
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
    // The reference agents' type names: the same shim, so `ocf:pgstack:IPaddr2` is vip.
    for alias in ["IPaddr2", "Filesystem", "pgsql", "pgsqlms"] {
        let shim = at(&format!("/usr/lib/ocf/resource.d/pgstack/{alias}"));
        assert_eq!(
            std::fs::read_to_string(&shim).unwrap_or_else(|e| panic!("{}: {e}", shim.display())),
            std::fs::read_to_string(at("/usr/lib/ocf/resource.d/pgstack/vip")).unwrap()
        );
    }
    let man8 = std::fs::read_to_string(at("/opt/pgstack/share/man/man8/pgstack.8")).unwrap();
    assert!(man8.contains(".TH PGSTACK 8"), "{man8}");
    assert!(man8.contains("pgstack cib render"), "{man8}");
    let bash =
        std::fs::read_to_string(at("/opt/pgstack/share/bash-completion/completions/pgstack"))
            .unwrap();
    assert!(bash.contains("complete -F _pgstack"), "{bash}");
    let zsh =
        std::fs::read_to_string(at("/opt/pgstack/share/zsh/vendor-completions/_pgstack")).unwrap();
    assert!(zsh.starts_with("#compdef pgstack"), "{zsh}");
    assert!(at("/etc/init.d/postgresql-ha").exists());
    assert!(at("/usr/lib/pgstack/pgstack-alert").exists());
    // The settings sample sits next to the init script directory, all comments.
    let sample = std::fs::read_to_string(at("/etc/default/postgresql-ha")).unwrap();
    assert!(
        sample.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "{sample}"
    );
    assert!(sample.contains("#PGDATA="), "{sample}");
    // A second install keeps a settings file the operator changed; uninstall keeps it too.
    std::fs::write(at("/etc/default/postgresql-ha"), "PGPORT=5433\n").unwrap();
    let again = common::run(
        &[&bin, args[0], args[1], args[2], args[3], args[4]],
        &[],
        Duration::from_secs(30),
    );
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(at("/etc/default/postgresql-ha")).unwrap(),
        "PGPORT=5433\n"
    );
    common::sh_ok(&[
        &bin,
        args[0],
        args[1],
        args[2],
        args[3],
        args[4],
        "--uninstall",
    ]);
    let left: Vec<_> = walk(&root).into_iter().filter(|p| p.is_file()).collect();
    assert_eq!(
        left,
        vec![at("/etc/default/postgresql-ha")],
        "uninstall left {left:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// ocf-tester's whole sequence through the `IPaddr2` alias of the installed shims, in a
/// network namespace of its own; the meta-data names the agent as it was called.
#[test]
fn ocf_tester_passes_through_the_ipaddr2_alias() {
    common::require_root();
    let ns = common::netns::Netns::new("alias");
    let peer = common::netns::Netns::new("alias");
    common::netns::link(&ns, "va", &peer, "vb");
    ns.ip(&["addr", "add", "10.99.15.10/24", "dev", "va"]);
    peer.ip(&["addr", "add", "10.99.15.20/24", "dev", "vb"]);
    let agent = common::agent_path("IPaddr2");
    let md = common::ocf(&[], &agent, "meta-data", &[], &[]);
    assert_eq!(md.code, 0, "{}", md.stderr);
    assert!(
        md.stdout.contains("<resource-agent name=\"IPaddr2\""),
        "{}",
        md.stdout
    );
    let mut argv = ns.prefix();
    argv.extend_from_slice(&[
        "ocf-tester",
        "-v",
        "-n",
        "pg_vip",
        "-o",
        "ip=10.99.15.50",
        "-o",
        "cidr_netmask=24",
        "-o",
        "nic=va",
        &agent,
    ]);
    common::ocf_tester_passes(&argv, "ocf-tester-IPaddr2.log");
}

/// `pgstack agent --help` is the CLI's help, not an unknown agent called "--help".
#[test]
fn agent_help_is_help() {
    let out = common::run(
        &[&common::bin(), "agent", "--help"],
        &[],
        Duration::from_secs(10),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Usage: pgstack agent <NAME> <ACTION>"),
        "{text}"
    );
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
