//! `pgstack check`: reads the CIB (live or a file), corosync.conf, the DRBD files and the
//! effective lvm.conf (when the CIB has an LVM resource), runs
//! the checks of [`crate::check`] and prints the report. Exit 0 clean, 1 warnings, 2 errors
//! (also when the CIB itself cannot be read).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use crate::check::{self, Inputs, LvmConf, Node, Text};
use crate::cib::model::AgentRef;
use crate::sys::cib::CibTool;
use crate::sys::lvm::effective_config;
use crate::sys::pacemaker::read_file;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Check this CIB file instead of the live cluster's (`cibadmin -Q`).
    #[arg(long)]
    cib: Option<PathBuf>,
    /// corosync.conf to check.
    #[arg(long, default_value = "/etc/corosync/corosync.conf")]
    corosync_conf: PathBuf,
    /// Directory of the DRBD resource files (`*.res`, `*.conf`).
    #[arg(long, default_value = "/etc/drbd.d")]
    drbd_conf: PathBuf,
    /// Where OCF agents are installed (`PROVIDER/TYPE` below it).
    #[arg(long, default_value = "/usr/lib/ocf/resource.d")]
    ocf_root: PathBuf,
    /// Directory of this node's lvm.conf (as LVM_SYSTEM_DIR; default /etc/lvm). Its
    /// advice is checked when the CIB has an LVM resource, or always when this is given.
    #[arg(long)]
    lvm_system_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Answers from this node's file system.
struct ThisNode {
    ocf_root: PathBuf,
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl Node for ThisNode {
    fn has_agent(&self, agent: &AgentRef) -> bool {
        let (class, provider, kind) = (
            agent.class.as_str(),
            agent.provider.as_deref(),
            agent.kind.as_str(),
        );
        if kind.contains('/') || provider.is_some_and(|p| p.contains('/')) {
            return false;
        }
        match (class, provider) {
            ("ocf", Some(p)) => executable(&self.ocf_root.join(p).join(kind)),
            ("stonith", _) => ["/usr/sbin", "/usr/bin", "/sbin"]
                .iter()
                .any(|d| executable(&Path::new(d).join(kind))),
            ("lsb", _) => executable(&Path::new("/etc/init.d").join(kind)),
            // systemd and service units: not checked here.
            _ => true,
        }
    }
}

fn text(p: &Path) -> Text {
    match read_file(p) {
        Ok(text) => Text::Read {
            origin: p.display().to_string(),
            text,
        },
        Err(e) => Text::Missing {
            origin: p.display().to_string(),
            why: e.to_string(),
        },
    }
}

fn drbd_files(dir: &Path) -> Vec<Text> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return vec![Text::Missing {
                origin: dir.display().to_string(),
                why: format!("reading {}: {e}", dir.display()),
            }]
        }
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "res" || x == "conf"))
        .collect();
    paths.sort();
    paths.iter().map(|p| text(p)).collect()
}

/// This node's effective LVM configuration (`lvmconfig`, so the defaults count too).
fn lvm_conf(system_dir: Option<&Path>) -> LvmConf {
    let path = system_dir.unwrap_or(Path::new("/etc/lvm")).join("lvm.conf");
    let origin = path.display().to_string();
    if let Err(e) = std::fs::metadata(&path) {
        return LvmConf::Missing {
            why: format!("reading {origin}: {e}"),
            origin,
        };
    }
    match effective_config(system_dir, Instant::now() + Duration::from_secs(30)) {
        Ok(text) => LvmConf::Read { origin, text },
        Err(e) => LvmConf::Missing {
            origin,
            why: e.to_string(),
        },
    }
}

pub fn run(a: CheckArgs) -> u8 {
    match report(&a) {
        Ok(r) => {
            match a.format {
                Format::Text => print!("{}", r.to_text()),
                Format::Json => print!("{}", r.to_json()),
            }
            r.exit_code()
        }
        Err(e) => {
            eprintln!("pgstack: error: {}", super::error_chain(&e));
            2
        }
    }
}

fn report(a: &CheckArgs) -> Result<check::Report> {
    let cib = match &a.cib {
        Some(f) => read_file(f)?,
        None => CibTool::default()
            .query(Instant::now() + Duration::from_secs(30))
            .context("reading the live CIB (or pass --cib FILE)")?,
    };
    let lvm = if a.lvm_system_dir.is_some() || check::uses_lvm(&cib)? {
        Some(lvm_conf(a.lvm_system_dir.as_deref()))
    } else {
        None
    };
    let inputs = Inputs {
        cib: &cib,
        corosync: text(&a.corosync_conf),
        drbd: drbd_files(&a.drbd_conf),
        lvm,
    };
    let node = ThisNode {
        ocf_root: a.ocf_root.clone(),
    };
    Ok(check::run(&inputs, &node)?)
}
