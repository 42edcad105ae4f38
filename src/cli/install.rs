//! `pgstack install` and `pgstack docs`: files derived from the agents' declarations.
//!
//! [`entries`] is the one list of installed files: `install`, `--uninstall`, the Debian
//! package (built from `install --destdir`) and the tests all follow it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use super::docs;
use crate::agents::postgresql::{self, lsb};
use crate::agents::{installed_names, shim, AGENTS};

pub const OCF_DIR: &str = "/usr/lib/ocf/resource.d/pgstack";
pub const INITD_DIR: &str = "/etc/init.d";
/// Directory of the alert agent shim the CIB templates name (`alert_path`).
pub const ALERT_DIR: &str = "/usr/lib/pgstack";

/// The alert agent Pacemaker execs (an alert path takes no arguments).
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
    /// Directory of the OCF shims (Pacemaker looks only in the default).
    #[arg(long, default_value = OCF_DIR)]
    ocf_dir: String,
    /// Directory of the init script postgresql-ha (Pacemaker's lsb class looks here).
    #[arg(long, default_value = INITD_DIR)]
    initd_dir: String,
    /// Directory of the alert agent shim `pgstack-alert`.
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
    let mut gen = |path: String, data: String, mode: u32| {
        out.push(Entry {
            path,
            data: data.into_bytes(),
            mode,
            kind: Kind::Generated,
        })
    };
    for (name, _) in installed_names() {
        gen(format!("{}/{name}", l.ocf_dir), shim(&bin), 0o755);
    }
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
    gen(
        format!("{}/pgstack-alert", l.alert_dir),
        alert_shim(&bin),
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
    let exe = std::env::current_exe().context("locating the running binary")?;
    let binary = fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?;
    for e in &files {
        let p = under(&a.destdir, &e.path);
        match e.kind {
            Kind::Binary => write(&p, &binary, e.mode)?,
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
    for (name, _) in installed_names() {
        out.push((
            format!("agents/ocf/pgstack/{name}"),
            shim("/usr/sbin/pgstack"),
            0o755,
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

pub fn docs(out: &str) -> Result<()> {
    let root = Path::new(out);
    for (path, text, mode) in committed_docs() {
        write(&root.join(path), text.as_bytes(), mode)?;
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
    }

    #[test]
    fn every_alias_gets_a_shim_and_the_sample_is_all_comments() {
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
