//! `pgstack install` and `pgstack docs`: files derived from the agents' declarations.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;

use crate::agents::postgresql::lsb;
use crate::agents::{shim, AGENTS};

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

#[derive(Args)]
pub struct InstallArgs {
    /// Installation prefix of the binary and man pages.
    #[arg(long, default_value = "/usr")]
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
    /// Remove what install puts in place.
    #[arg(long)]
    uninstall: bool,
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
    let bin = format!("{}/sbin/pgstack", a.prefix.trim_end_matches('/'));
    let mut files: Vec<(PathBuf, Vec<u8>, u32)> = Vec::new();
    if !a.uninstall {
        let exe = std::env::current_exe().context("locating the running binary")?;
        files.push((
            under(&a.destdir, &bin),
            fs::read(&exe).with_context(|| format!("reading {}", exe.display()))?,
            0o755,
        ));
    }
    for agent in AGENTS {
        files.push((
            under(
                &a.destdir,
                &format!("{}/{}", a.ocf_dir.trim_end_matches('/'), agent.name),
            ),
            shim(&bin).into_bytes(),
            0o755,
        ));
        let man = format!(
            "{}/share/man/man7/ocf_pgstack_{}.7",
            a.prefix.trim_end_matches('/'),
            agent.name
        );
        files.push((under(&a.destdir, &man), agent.to_man().into_bytes(), 0o644));
    }
    files.push((
        under(&a.destdir, &format!("{}/{}", a.initd_dir, lsb::NAME)),
        lsb::initd_shim(&bin).into_bytes(),
        0o755,
    ));
    files.push((
        under(&a.destdir, &format!("{}/pgstack-alert", a.alert_dir)),
        alert_shim(&bin).into_bytes(),
        0o755,
    ));
    if a.uninstall {
        files.push((under(&a.destdir, &bin), Vec::new(), 0));
        for (p, _, _) in &files {
            remove(p)?;
        }
        let _ = fs::remove_dir(under(&a.destdir, &a.ocf_dir));
        let _ = fs::remove_dir(under(&a.destdir, &a.alert_dir));
    } else {
        for (p, data, mode) in &files {
            write(p, data, *mode)?;
            println!("installed {}", p.display());
        }
    }
    Ok(0)
}

pub fn docs(out: &str) -> Result<()> {
    let root = Path::new(out);
    write(
        &root.join(format!("agents/init.d/{}", lsb::NAME)),
        lsb::initd_shim("/usr/sbin/pgstack").as_bytes(),
        0o755,
    )?;
    for a in AGENTS {
        write(
            &root.join(format!("docs/agents/{}.md", a.name)),
            a.to_markdown().as_bytes(),
            0o644,
        )?;
        write(
            &root.join(format!("docs/man/ocf_pgstack_{}.7", a.name)),
            a.to_man().as_bytes(),
            0o644,
        )?;
        write(
            &root.join(format!("agents/ocf/pgstack/{}", a.name)),
            shim("/usr/sbin/pgstack").as_bytes(),
            0o755,
        )?;
    }
    Ok(())
}
