//! `pgstack install` / `--uninstall` (what `make install` and `make uninstall` run), into a
//! staging root so the test touches nothing of the system.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A scratch directory under /tmp (pgst-*), removed when the test ends, failed or not.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("pgst-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn install_puts_every_file_in_place_and_uninstall_removes_them() {
    let scratch = Scratch::new("install");
    let root = scratch.0.clone();
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
    // The agents are links to the binary of the prefix (absolute: the staging root is
    // not part of it), and the binary picks the agent from the link's name.
    for agent in ["vip", "filesystem", "postgresql", "drbd", "lvm"] {
        let link = at(&format!("/usr/lib/ocf/resource.d/pgstack/{agent}"));
        assert_eq!(
            std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display())),
            Path::new("/opt/pgstack/sbin/pgstack")
        );
        let man = at(&format!(
            "/opt/pgstack/share/man/man7/ocf_pgstack_{agent}.7"
        ));
        assert!(std::fs::read_to_string(&man)
            .unwrap()
            .starts_with(".TH OCF_PGSTACK_"));
    }
    // The reference agents' type names: the same link, so `ocf:pgstack:IPaddr2` is vip.
    for alias in [
        "IPaddr2",
        "Filesystem",
        "pgsql",
        "pgsqlms",
        "LVM",
        "LVM-activate",
    ] {
        let link = at(&format!("/usr/lib/ocf/resource.d/pgstack/{alias}"));
        assert_eq!(
            std::fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display())),
            Path::new("/opt/pgstack/sbin/pgstack")
        );
    }
    assert_eq!(
        std::fs::read_link(at("/usr/lib/pgstack/pgstack-alert")).unwrap(),
        Path::new("/opt/pgstack/sbin/pgstack")
    );
    // Nothing but the links (no temporary link left) in the agents' directory.
    let names: Vec<String> = std::fs::read_dir(at("/usr/lib/ocf/resource.d/pgstack"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
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
    // The init script stays a shim: its LSB header is read by the init tools.
    let initd = std::fs::read_to_string(at("/etc/init.d/postgresql-ha")).unwrap();
    assert!(initd.contains("### BEGIN INIT INFO"), "{initd}");
    assert!(
        initd.contains("exec /opt/pgstack/sbin/pgstack lsb postgresql-ha \"$@\""),
        "{initd}"
    );
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
    let left: Vec<_> = walk(&root)
        .into_iter()
        .filter(|p| p.is_file() || p.is_symlink())
        .collect();
    assert_eq!(
        left,
        vec![at("/etc/default/postgresql-ha")],
        "uninstall left {left:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// An install over the shims of an earlier one replaces them by links; a file there
/// that is not pgstack's stops the install before anything is written, and uninstall
/// leaves it (and a link that points elsewhere) in place.
#[test]
fn install_replaces_old_shims_and_refuses_foreign_files() {
    let scratch = Scratch::new("install-old");
    let root = scratch.0.clone();
    let d = root.to_str().unwrap();
    let bin = common::bin();
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let ocf = at("/usr/lib/ocf/resource.d/pgstack");
    std::fs::create_dir_all(&ocf).unwrap();
    let old_shim = "#!/bin/sh\n# OCF resource agent shim of pgstack: the agent is chosen by the name this\n# file is installed under; the work is done by the pgstack binary.\nexec /usr/sbin/pgstack ocf \"$0\" \"$@\"\n";
    std::fs::write(ocf.join("vip"), old_shim).unwrap();
    std::fs::write(ocf.join("lvm"), "#!/bin/sh\necho someone else's\n").unwrap();
    let install = |extra: &[&str]| {
        let mut argv = vec![
            bin.as_str(),
            "install",
            "--prefix",
            "/opt/pgstack",
            "--destdir",
            d,
        ];
        argv.extend_from_slice(extra);
        common::run(&argv, &[], Duration::from_secs(30))
    };
    let refused = install(&[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("lvm") && err.contains("nothing installed"),
        "{err}"
    );
    assert!(
        !at("/opt/pgstack/sbin/pgstack").exists(),
        "the refused install wrote the binary"
    );
    assert_eq!(std::fs::read_to_string(ocf.join("vip")).unwrap(), old_shim);
    std::fs::remove_file(ocf.join("lvm")).unwrap();
    std::os::unix::fs::symlink("/bin/true", ocf.join("lvm")).unwrap();
    assert!(install(&[]).status.success());
    for name in ["vip", "lvm"] {
        assert_eq!(
            std::fs::read_link(ocf.join(name)).unwrap(),
            Path::new("/opt/pgstack/sbin/pgstack"),
            "{name}"
        );
    }
    // Uninstall removes the links to the binary, never another file or link.
    std::fs::remove_file(ocf.join("drbd")).unwrap();
    std::os::unix::fs::symlink("/bin/true", ocf.join("drbd")).unwrap();
    std::fs::remove_file(ocf.join("pgsql")).unwrap();
    std::fs::write(ocf.join("pgsql"), "#!/bin/sh\nexit 0\n").unwrap();
    let out = install(&["--uninstall"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("kept") && said.contains("drbd"), "{said}");
    assert_eq!(
        std::fs::read_link(ocf.join("drbd")).unwrap(),
        Path::new("/bin/true")
    );
    assert_eq!(
        std::fs::read_to_string(ocf.join("pgsql")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    assert!(!ocf.join("vip").exists() && !ocf.join("vip").is_symlink());
    std::fs::remove_dir_all(&root).unwrap();
}

/// Each agent called through a link named after it, in a directory of its own (not
/// resource.d), runs that agent; another name is the operator CLI.
#[test]
fn a_link_runs_the_agent_it_is_named_after() {
    let scratch = Scratch::new("links");
    let dir = scratch.0.clone();
    let bin = common::bin();
    for (name, agent) in [
        ("vip", "vip"),
        ("filesystem", "filesystem"),
        ("postgresql", "postgresql"),
        ("drbd", "drbd"),
        ("lvm", "lvm"),
        ("IPaddr2", "IPaddr2"),
        ("LVM-activate", "LVM-activate"),
    ] {
        let link = dir.join(name);
        std::os::unix::fs::symlink(&bin, &link).unwrap();
        let out = common::run(
            &[link.to_str().unwrap(), "meta-data"],
            &[],
            Duration::from_secs(30),
        );
        assert!(out.status.success(), "{name}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("<resource-agent name=\"{agent}\"")),
            "{name}: {text}"
        );
    }
    let other = dir.join("pgstack-tool");
    std::os::unix::fs::symlink(&bin, &other).unwrap();
    let out = common::run(
        &[other.to_str().unwrap(), "--build-id"],
        &[],
        Duration::from_secs(30),
    );
    assert!(out.status.success());
    let direct = common::sh_ok(&[&bin, "--build-id"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), direct);
    std::fs::remove_dir_all(&dir).unwrap();
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
