//! The Debian package (`make deb`): built by `packaging/build-deb` from the installed
//! binary's `pgstack install --destdir` tree, checked by lintian, then installed, listed
//! and removed with dpkg and apt in an isolated root: a private mount namespace with an
//! overlay over `/` whose upper layer is a tmpfs, entered with chroot. Nothing reaches the
//! host's root (its own install, used by the other tests, is not disturbed), and the
//! namespace, with every mount in it, is gone when the command ends, failed or not.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Builds the package once per test run (target/test-artifacts/deb/pgstack_*.deb).
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let out = common::artifacts().join("deb");
        let _ = std::fs::remove_dir_all(&out);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/build-deb");
        let text = common::sh_ok(&[script, &common::bin(), out.to_str().unwrap()]);
        let path = PathBuf::from(text.trim());
        assert!(path.is_file(), "build-deb printed {text:?}");
        path
    })
}

#[test]
fn lintian_reports_no_error() {
    let out = common::run(
        &[
            "lintian",
            "--tag-display-limit",
            "0",
            "--info",
            deb().to_str().unwrap(),
        ],
        &[],
        Duration::from_secs(300),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    std::fs::write(common::artifacts().join("lintian.txt"), text.as_bytes()).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    assert!(
        out.status.success(),
        "lintian failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn package_contents_are_the_install_tree() {
    let out = common::sh_ok(&["dpkg-deb", "--contents", deb().to_str().unwrap()]);
    // The agents and the alert agent are links to the binary, relative within /usr
    // (Debian Policy 10.5).
    for (p, to) in [
        (
            "./usr/lib/ocf/resource.d/pgstack/vip",
            "../../../../sbin/pgstack",
        ),
        (
            "./usr/lib/ocf/resource.d/pgstack/lvm",
            "../../../../sbin/pgstack",
        ),
        (
            "./usr/lib/ocf/resource.d/pgstack/IPaddr2",
            "../../../../sbin/pgstack",
        ),
        ("./usr/lib/pgstack/pgstack-alert", "../../sbin/pgstack"),
    ] {
        let line = format!("{p} -> {to}");
        assert!(
            out.lines()
                .any(|l| l.starts_with('l') && l.ends_with(&line)),
            "{line} missing:\n{out}"
        );
    }
    for p in [
        "./usr/sbin/pgstack",
        "./etc/init.d/postgresql-ha",
        "./etc/default/postgresql-ha",
        "./usr/share/man/man8/pgstack.8.gz",
        "./usr/share/man/man7/ocf_pgstack_vip.7.gz",
        "./usr/share/bash-completion/completions/pgstack",
        "./usr/share/zsh/vendor-completions/_pgstack",
        "./usr/share/doc/pgstack/copyright",
        "./usr/share/doc/pgstack/changelog.gz",
    ] {
        assert!(out.lines().any(|l| l.ends_with(p)), "{p} missing:\n{out}");
    }
    let fields = common::sh_ok(&["dpkg-deb", "--field", deb().to_str().unwrap(), "Depends"]);
    for d in ["libc6 (>= ", "pacemaker-cli-utils", "iproute2"] {
        assert!(fields.contains(d), "Depends: {fields}");
    }
    let conffiles = common::sh_ok(&[
        "sh",
        "-c",
        "dpkg-deb --ctrl-tarfile \"$1\" | tar -xO ./conffiles",
        "sh",
        deb().to_str().unwrap(),
    ]);
    assert_eq!(
        conffiles,
        "/etc/default/postgresql-ha\n/etc/init.d/postgresql-ha\n"
    );
}

/// A directory in /tmp for the namespace's mounts; removed on drop (its mounts live only
/// in the namespace, which dies with the command).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs in the isolated root: install, list, ask dpkg who owns each file, read an alias's
/// meta-data as Pacemaker does, remove, purge. Sections are marked for the test to read.
const INSIDE: &str = r#"
set -eu
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
deb=$1
# man-db rebuilds its whole index on every install and removal unless this file is gone
# (in the overlay only): most of this test's time otherwise.
rm -f /var/lib/man-db/auto-update
dpkg -i --force-confnew "$deb" >/dev/null
echo "== files"
dpkg -L pgstack | while read -r f; do [ -d "$f" ] || echo "$f"; done
echo "== owners"
dpkg -L pgstack | while read -r f; do [ -d "$f" ] || dpkg -S "$f"; done
echo "== conffiles"
dpkg-query -W -f='${Conffiles}\n' pgstack | awk 'NF { print $1 }'
echo "== links"
readlink -f /usr/lib/ocf/resource.d/pgstack/IPaddr2 /usr/lib/pgstack/pgstack-alert
echo "== metadata"
crm_resource --show-metadata ocf:pgstack:IPaddr2 | head -n 4
echo "== remove"
apt-get remove -y -q pgstack >/dev/null
dpkg-query -W -f='${db:Status-Abbrev}\n' pgstack
dpkg -L pgstack | while read -r f; do [ -d "$f" ] || { [ ! -e "$f" ] && [ ! -L "$f" ]; } || echo "left $f"; done
echo "== purge"
apt-get purge -y -q pgstack >/dev/null
dpkg-query -W -f='${db:Status-Abbrev}\n' pgstack 2>/dev/null || echo gone
echo "== end"
"#;

/// Builds the isolated root and runs INSIDE in it (the namespace ends with `sh`).
const OUTSIDE: &str = r#"
set -eu
dir=$1; deb=$2; inside=$3
mount -t tmpfs pgst-deb "$dir"
mkdir "$dir/upper" "$dir/work" "$dir/root"
mount -t overlay pgst-deb -o "lowerdir=/,upperdir=$dir/upper,workdir=$dir/work" "$dir/root"
mount --rbind /dev "$dir/root/dev"
mount -t proc proc "$dir/root/proc"
mount -t tmpfs pgst-deb-run "$dir/root/run"
mkdir -p "$dir/root/tmp/pgst-pkg"
cp "$deb" "$dir/root/tmp/pgst-pkg/pgstack.deb"
exec chroot "$dir/root" /bin/sh -c "$inside" sh /tmp/pgst-pkg/pgstack.deb
"#;

fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let start = format!("== {name}");
    text.lines()
        .skip_while(|l| *l != start)
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

#[test]
fn installs_lists_and_removes_in_an_isolated_root() {
    common::require_root();
    let deb = deb();
    let dir = Scratch(std::env::temp_dir().join(format!("pgst-deb-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let out = common::run(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            OUTSIDE,
            "sh",
            dir.0.to_str().unwrap(),
            deb.to_str().unwrap(),
            INSIDE,
        ],
        &[],
        Duration::from_secs(300),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::write(common::artifacts().join("deb-isolated.txt"), &text).unwrap();
    assert!(
        out.status.success() && text.contains("== end"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = section(&text, "files");
    let expected = common::sh_ok(&["dpkg-deb", "--contents", deb.to_str().unwrap()]);
    // Regular files and links (a link's line ends with "PATH -> TARGET").
    let regular: Vec<&str> = expected
        .lines()
        .filter(|l| l.starts_with('-') || l.starts_with('l'))
        .filter_map(|l| l.split(" -> ").next()?.split_whitespace().last())
        .map(|p| p.trim_start_matches('.'))
        .collect();
    assert!(
        regular.contains(&"/usr/lib/ocf/resource.d/pgstack/lvm"),
        "{regular:?}"
    );
    assert_eq!(
        section(&text, "links"),
        ["/usr/sbin/pgstack", "/usr/sbin/pgstack"],
        "{text}"
    );
    assert_eq!(files.len(), regular.len(), "{files:?} vs {regular:?}");
    for f in &regular {
        assert!(files.contains(f), "dpkg -L lacks {f}");
    }
    let owners = section(&text, "owners");
    assert_eq!(owners.len(), files.len(), "{owners:?}");
    for (o, f) in owners.iter().zip(&files) {
        assert_eq!(*o, format!("pgstack: {f}"), "dpkg -S {f}");
    }
    let meta = section(&text, "metadata").join("\n");
    assert!(meta.contains("<resource-agent name=\"IPaddr2\""), "{meta}");
    // Debian's remove keeps configuration files (both in /etc); purge removes them.
    let conffiles = section(&text, "conffiles");
    assert_eq!(
        conffiles,
        ["/etc/default/postgresql-ha", "/etc/init.d/postgresql-ha"]
    );
    let removed = section(&text, "remove");
    assert_eq!(removed.first(), Some(&"rc "), "{removed:?}");
    let left: Vec<&&str> = removed.iter().filter(|l| l.starts_with("left ")).collect();
    let left_conf: Vec<String> = conffiles.iter().map(|c| format!("left {c}")).collect();
    assert!(
        left.iter().all(|l| left_conf.iter().any(|c| c == **l)),
        "apt-get remove left {left:?}"
    );
    assert_eq!(section(&text, "purge"), ["gone"], "{text}");
}
