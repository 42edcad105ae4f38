//! `pgstack install` and `pgstack docs`: files derived from the agents' declarations.
//!
//! [`entries`] is the one list of installed files: `install`, `--uninstall`, the Debian
//! package (built from `install --destdir`) and the tests all follow it.
//!
//! The OCF agents (and the alert agent) are symbolic links to the binary, which picks
//! its face from the name it is called by: Pacemaker execs the link and one process image
//! does the work, where a `/bin/sh` shim cost a shell start first. The init script stays
//! a shim: the LSB header is read by the tools that manage init scripts.

use std::fs;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::docs;
use crate::agents::postgresql::{self, lsb};
use crate::agents::{installed_names, shim, AGENTS};

/// The name the alert agent is installed under (a link to the binary; see `cli::entry`).
pub const ALERT_NAME: &str = "pgstack-alert";

pub const OCF_DIR: &str = "/usr/lib/ocf/resource.d/pgstack";
pub const INITD_DIR: &str = "/etc/init.d";
/// Directory of the alert agent shim the CIB templates name (`alert_path`).
pub const ALERT_DIR: &str = "/usr/lib/pgstack";

/// The alert agent shim earlier installs put in place (an alert path takes no arguments):
/// recognised as pgstack's and replaced by a link.
pub fn alert_shim(binary: &str) -> String {
    format!(
        "#!/bin/sh\n# Pacemaker alert agent of pgstack: the event is in the CRM_alert_* variables;\n# the work is done by the pgstack binary.\nexec {binary} alert \"$@\"\n"
    )
}

/// The commented sample of the LSB face's settings file: every setting with the agent
/// parameter it sets and that parameter's default, all commented out (the defaults apply).
pub fn defaults_sample() -> String {
    let mut s = format!(
        "# Settings of the init script {} (pgstack's LSB face of the postgresql agent).\n\
         # KEY=value lines, optionally quoted; nothing here is executed. Each setting is\n\
         # the postgresql agent parameter named after it (see ocf_pgstack_postgresql(7));\n\
         # a commented setting takes the agent's default.\n",
        lsb::NAME
    );
    for (key, param) in lsb::SETTINGS {
        let spec = postgresql::INFO.params.iter().find(|p| p.name == *param);
        s.push('\n');
        if let Some(p) = spec {
            s.push_str(&format!("# {}: {}\n", p.name, p.shortdesc));
        }
        s.push_str(&format!(
            "#{key}={}\n",
            spec.and_then(|p| p.default).unwrap_or("")
        ));
    }
    s
}

/// The default `--prefix`: the binary is `/usr/sbin/pgstack`, the path the `advanced`
/// template's DRBD handlers name by default.
pub const DEFAULT_PREFIX: &str = "/usr";

#[derive(Args)]
pub struct InstallArgs {
    /// Installation prefix of the binary and man pages.
    #[arg(long, default_value = DEFAULT_PREFIX)]
    prefix: String,
    /// Staging root prepended to every path (packaging).
    #[arg(long, default_value = "")]
    destdir: String,
    /// Directory of the OCF agents, links to the binary (Pacemaker looks only in the
    /// default).
    #[arg(long, default_value = OCF_DIR)]
    ocf_dir: String,
    /// Directory of the init script postgresql-ha (Pacemaker's lsb class looks here).
    #[arg(long, default_value = INITD_DIR)]
    initd_dir: String,
    /// Directory of the alert agent `pgstack-alert` (a link to the binary).
    #[arg(long, default_value = ALERT_DIR)]
    alert_dir: String,
    /// Directory of the sample settings file postgresql-ha [default: `default` next to
    /// the init script directory, /etc/default for /etc/init.d].
    #[arg(long)]
    default_dir: Option<String>,
    /// Remove what install puts in place.
    #[arg(long)]
    uninstall: bool,
}

/// Where each kind of file goes (absolute paths, without the staging root).
#[derive(Debug, Clone)]
pub struct Layout {
    pub prefix: String,
    pub ocf_dir: String,
    pub initd_dir: String,
    pub alert_dir: String,
    pub default_dir: String,
}

impl Layout {
    fn from_args(a: &InstallArgs) -> Layout {
        let t = |s: &str| s.trim_end_matches('/').to_string();
        let initd_dir = t(&a.initd_dir);
        let default_dir = match &a.default_dir {
            Some(d) => t(d),
            None => Path::new(&initd_dir)
                .parent()
                .unwrap_or(Path::new("/"))
                .join("default")
                .to_string_lossy()
                .into_owned(),
        };
        Layout {
            prefix: t(&a.prefix),
            ocf_dir: t(&a.ocf_dir),
            initd_dir,
            alert_dir: t(&a.alert_dir),
            default_dir,
        }
    }

    pub fn binary(&self) -> String {
        format!("{}/sbin/pgstack", self.prefix)
    }
}

/// What a file is, for install and uninstall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The pgstack binary itself (copied from the running executable).
    Binary,
    /// A generated file, replaced on every install.
    Generated,
    /// A settings sample: written only when absent, removed only when unchanged.
    Sample,
    /// A symbolic link to the binary (`data` is its absolute path): replaces a link or a
    /// shim of an earlier install, never another file; removed only while it is ours.
    Link,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
    pub kind: Kind,
}

/// Every file install puts in place (the binary's content is left empty).
pub fn entries(l: &Layout) -> Vec<Entry> {
    let bin = l.binary();
    let mut out = vec![Entry {
        path: bin.clone(),
        data: Vec::new(),
        mode: 0o755,
        kind: Kind::Binary,
    }];
    for (name, _) in installed_names() {
        out.push(link_entry(format!("{}/{name}", l.ocf_dir), &bin));
    }
    out.push(link_entry(format!("{}/{ALERT_NAME}", l.alert_dir), &bin));
    let mut gen = |path: String, data: String, mode: u32| {
        out.push(Entry {
            path,
            data: data.into_bytes(),
            mode,
            kind: Kind::Generated,
        })
    };
    for agent in AGENTS {
        gen(
            format!("{}/share/man/man7/ocf_pgstack_{}.7", l.prefix, agent.name),
            agent.to_man(),
            0o644,
        );
    }
    gen(
        format!("{}/share/man/man8/pgstack.8", l.prefix),
        docs::man_page(),
        0o644,
    );
    for (shell, _, dir) in docs::COMPLETIONS {
        gen(
            format!("{}/share/{dir}", l.prefix),
            docs::completion(*shell),
            0o644,
        );
    }
    gen(
        format!("{}/{}", l.initd_dir, lsb::NAME),
        lsb::initd_shim(&bin),
        0o755,
    );
    out.push(Entry {
        path: format!("{}/{}", l.default_dir, lsb::NAME),
        data: defaults_sample().into_bytes(),
        mode: 0o644,
        kind: Kind::Sample,
    });
    out
}

fn link_entry(path: String, binary: &str) -> Entry {
    Entry {
        path,
        data: binary.as_bytes().to_vec(),
        mode: 0o777,
        kind: Kind::Link,
    }
}

/// Whether `text` is a shim an earlier pgstack install wrote (an OCF agent's or the
/// alert agent's, for any binary path).
fn is_our_shim(text: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(text) else {
        return false;
    };
    let Some(exec) = text.lines().last().and_then(|l| l.strip_prefix("exec ")) else {
        return false;
    };
    [" ocf \"$0\" \"$@\"", " alert \"$@\""].iter().any(|tail| {
        exec.strip_suffix(tail)
            .is_some_and(|bin| !bin.is_empty() && (text == shim(bin) || text == alert_shim(bin)))
    })
}

/// What is at the place of a link entry now.
#[derive(Debug, PartialEq, Eq)]
enum AtLink {
    Absent,
    /// A symbolic link, with its target.
    Link(PathBuf),
    /// A shim of an earlier install.
    OurShim,
    /// Anything else: never replaced or removed.
    Foreign(&'static str),
}

fn at_link(path: &Path) -> Result<AtLink> {
    let m = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AtLink::Absent),
        r => r.with_context(|| format!("inspecting {}", path.display()))?,
    };
    let t = m.file_type();
    if t.is_symlink() {
        let to = fs::read_link(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(AtLink::Link(to));
    }
    if !t.is_file() {
        let what = if t.is_dir() {
            "a directory"
        } else if t.is_socket() || t.is_fifo() {
            "a socket or fifo"
        } else {
            "a special file"
        };
        return Ok(AtLink::Foreign(what));
    }
    // A shim is a few hundred bytes: a large file is not one, and is not read.
    if m.len() > 4096 {
        return Ok(AtLink::Foreign("a file that is not a pgstack shim"));
    }
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(if is_our_shim(&text) {
        AtLink::OurShim
    } else {
        AtLink::Foreign("a file that is not a pgstack shim")
    })
}

/// Puts a link to `target` at `path`, atomically (a new link beside it, renamed over
/// it): Pacemaker never finds the agent missing or half written. Refuses to replace a
/// file that is neither a link nor a shim of an earlier install.
fn link(path: &Path, target: &str) -> Result<()> {
    if let AtLink::Foreign(what) = at_link(path)? {
        anyhow::bail!(
            "{} is {what}: not replaced by a link to {target} (move it away first)",
            path.display()
        );
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.pgstack-new"));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", tmp.display()))
        }
        _ => {}
    }
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating {} -> {target}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("installing {}", path.display()))?;
    Ok(())
}

fn under(destdir: &str, p: &str) -> PathBuf {
    PathBuf::from(format!("{destdir}{p}"))
}

fn write(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    if let Some(d) = path.parent() {
        fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = path.with_extension("pgstack-new");
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, path).with_context(|| format!("installing {}", path.display()))?;
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => {
            println!("removed {}", path.display());
            Ok(())
        }
    }
}

pub fn run(a: InstallArgs) -> Result<u8> {
    let layout = Layout::from_args(&a);
    let files = entries(&layout);
    if a.uninstall {
        for e in &files {
            let p = under(&a.destdir, &e.path);
            if e.kind == Kind::Link {
                let target = String::from_utf8_lossy(&e.data).into_owned();
                match at_link(&p)? {
                    AtLink::Absent => continue,
                    AtLink::Link(to) if to == Path::new(&target) => {}
                    AtLink::OurShim => {}
                    AtLink::Link(to) => {
                        println!(
                            "kept {} (a link to {}, not to {target})",
                            p.display(),
                            to.display()
                        );
                        continue;
                    }
                    AtLink::Foreign(what) => {
                        println!("kept {} ({what})", p.display());
                        continue;
                    }
                }
            }
            if e.kind == Kind::Sample {
                match fs::read(&p) {
                    Ok(now) if now != e.data => {
                        println!("kept {} (changed since install)", p.display());
                        continue;
                    }
                    _ => {}
                }
            }
            remove(&p)?;
        }
        for d in [&layout.ocf_dir, &layout.alert_dir] {
            let _ = fs::remove_dir(under(&a.destdir, d));
        }
        return Ok(0);
    }
    // Every link's place is checked before anything is written: a refused install
    // leaves the previous one whole.
    for e in files.iter().filter(|e| e.kind == Kind::Link) {
        let p = under(&a.destdir, &e.path);
        if let AtLink::Foreign(what) = at_link(&p)? {
            anyhow::bail!(
                "{} is {what}: not replaced by a link to the binary (move it away first); nothing installed",
                p.display()
            );
        }
    }
    let exe = std::env::current_exe().context("locating the running binary")?;
    let binary = fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?;
    for e in &files {
        let p = under(&a.destdir, &e.path);
        match e.kind {
            Kind::Binary => write(&p, &binary, e.mode)?,
            Kind::Link => {
                let target = String::from_utf8_lossy(&e.data).into_owned();
                link(&p, &target)?;
                println!("installed {} -> {target}", p.display());
                continue;
            }
            Kind::Sample if p.exists() => {
                println!("kept {}", p.display());
                continue;
            }
            _ => write(&p, &e.data, e.mode)?,
        }
        println!("installed {}", p.display());
    }
    Ok(0)
}

/// The files `pgstack docs` keeps in the source tree, relative to its root.
pub fn committed_docs() -> Vec<(String, String, u32)> {
    let mut out = vec![(
        format!("agents/init.d/{}", lsb::NAME),
        lsb::initd_shim("/usr/sbin/pgstack"),
        0o755,
    )];
    for a in AGENTS {
        out.push((format!("docs/agents/{}.md", a.name), a.to_markdown(), 0o644));
        out.push((
            format!("docs/man/ocf_pgstack_{}.7", a.name),
            a.to_man(),
            0o644,
        ));
    }
    out.push(("docs/man/pgstack.8".into(), docs::man_page(), 0o644));
    for (shell, file, _) in docs::COMPLETIONS {
        out.push((
            format!("docs/completion/{file}"),
            docs::completion(*shell),
            0o644,
        ));
    }
    out
}

/// The links `pgstack docs` keeps in the source tree (path relative to its root, target):
/// `agents/ocf/pgstack/` is what the default install puts in
/// /usr/lib/ocf/resource.d/pgstack, every name a link to /usr/sbin/pgstack.
pub fn committed_links() -> Vec<(String, String)> {
    let bin = format!("{DEFAULT_PREFIX}/sbin/pgstack");
    installed_names()
        .into_iter()
        .map(|(name, _)| (format!("agents/ocf/pgstack/{name}"), bin.clone()))
        .collect()
}

pub fn docs(out: &str) -> Result<()> {
    let root = Path::new(out);
    for (path, text, mode) in committed_docs() {
        write(&root.join(path), text.as_bytes(), mode)?;
    }
    for (path, target) in committed_links() {
        link(&root.join(path), &target)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_man_page_completions_and_alias_shims_are_current() {
        let root = env!("CARGO_MANIFEST_DIR");
        for (path, text, _) in committed_docs() {
            let p = format!("{root}/{path}");
            let now = std::fs::read_to_string(&p).unwrap_or_default();
            assert!(now == text, "{p} is stale: run pgstack docs");
        }
        for (path, target) in committed_links() {
            let p = format!("{root}/{path}");
            let now = std::fs::read_link(&p).unwrap_or_default();
            assert!(
                now == Path::new(&target),
                "{p} is not a link to {target}: run pgstack docs"
            );
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pgst-unit-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn shims_of_earlier_installs_are_recognised_and_nothing_else() {
        for bin in ["/usr/sbin/pgstack", "/opt/pgst-x/sbin/pgstack"] {
            assert!(is_our_shim(shim(bin).as_bytes()));
            assert!(is_our_shim(alert_shim(bin).as_bytes()));
        }
        assert!(!is_our_shim(
            b"#!/bin/sh\nexec /usr/sbin/pgstack ocf \"$0\" \"$@\"\n"
        ));
        assert!(!is_our_shim(
            format!("{}rm -rf /\n", shim("/usr/sbin/pgstack")).as_bytes()
        ));
        assert!(!is_our_shim(b"\xff\xfe"));
        assert!(!is_our_shim(b""));
    }

    #[test]
    fn a_link_replaces_a_link_or_our_shim_atomically_and_nothing_else() {
        let d = scratch("link");
        let target = "/opt/pgst-x/sbin/pgstack";
        let p = d.join("vip");
        link(&p, target).unwrap();
        assert_eq!(fs::read_link(&p).unwrap(), Path::new(target));
        // Again, over its own link, and over a link elsewhere.
        link(&p, target).unwrap();
        std::os::unix::fs::symlink("/bin/true", d.join("lvm")).unwrap();
        link(&d.join("lvm"), target).unwrap();
        assert_eq!(fs::read_link(d.join("lvm")).unwrap(), Path::new(target));
        // The shim of an earlier install.
        fs::write(d.join("drbd"), shim("/usr/sbin/pgstack")).unwrap();
        link(&d.join("drbd"), target).unwrap();
        assert_eq!(fs::read_link(d.join("drbd")).unwrap(), Path::new(target));
        // Someone else's agent, a directory: left alone, named in the error.
        fs::write(d.join("mine"), "#!/bin/sh\nexit 0\n").unwrap();
        let e = link(&d.join("mine"), target).unwrap_err().to_string();
        assert!(
            e.contains("mine") && e.contains("not a pgstack shim"),
            "{e}"
        );
        assert_eq!(fs::read(d.join("mine")).unwrap(), b"#!/bin/sh\nexit 0\n");
        fs::create_dir(d.join("dir")).unwrap();
        assert!(link(&d.join("dir"), target).is_err());
        assert!(d.join("dir").is_dir());
        // No temporary link is left behind.
        let names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.contains("pgstack-new")),
            "{names:?}"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn agents_are_links_to_the_binary_of_the_prefix() {
        let l = Layout {
            prefix: "/opt/pgst-x".into(),
            ocf_dir: "/opt/pgst-x/ocf".into(),
            initd_dir: "/opt/pgst-x/init.d".into(),
            alert_dir: "/opt/pgst-x/lib".into(),
            default_dir: "/opt/pgst-x/default".into(),
        };
        let links: Vec<(String, String)> = entries(&l)
            .into_iter()
            .filter(|e| e.kind == Kind::Link)
            .map(|e| (e.path, String::from_utf8(e.data).unwrap()))
            .collect();
        assert_eq!(links.len(), installed_names().len() + 1, "{links:?}");
        for (path, target) in &links {
            assert_eq!(target, "/opt/pgst-x/sbin/pgstack", "{path}");
        }
        for p in [
            "/opt/pgst-x/ocf/lvm",
            "/opt/pgst-x/ocf/IPaddr2",
            "/opt/pgst-x/lib/pgstack-alert",
        ] {
            assert!(links.iter().any(|(x, _)| x == p), "{p} not in {links:?}");
        }
        // The init script keeps its LSB header: a shim.
        let initd = entries(&l)
            .into_iter()
            .find(|e| e.path == "/opt/pgst-x/init.d/postgresql-ha")
            .unwrap();
        assert_eq!(initd.kind, Kind::Generated);
    }

    #[test]
    fn every_alias_is_installed_and_the_sample_is_all_comments() {
        let l = Layout {
            prefix: "/usr".into(),
            ocf_dir: OCF_DIR.into(),
            initd_dir: INITD_DIR.into(),
            alert_dir: ALERT_DIR.into(),
            default_dir: "/etc/default".into(),
        };
        let paths: Vec<String> = entries(&l).into_iter().map(|e| e.path).collect();
        for p in [
            "/usr/lib/ocf/resource.d/pgstack/IPaddr2",
            "/usr/lib/ocf/resource.d/pgstack/pgsqlms",
            "/usr/share/man/man8/pgstack.8",
            "/usr/share/bash-completion/completions/pgstack",
            "/usr/share/zsh/vendor-completions/_pgstack",
            "/etc/default/postgresql-ha",
        ] {
            assert!(paths.iter().any(|x| x == p), "{p} not in {paths:?}");
        }
        let sample = defaults_sample();
        assert!(sample.lines().all(|l| l.is_empty() || l.starts_with('#')));
        assert!(lsb::parse_defaults(&sample).is_empty());
        assert!(sample.contains("#PGDATA="), "{sample}");
    }
}
