//! The faces of the binary: OCF agent (by the name it is called through, or the shims'
//! `ocf` entry), the development entry `pgstack agent <name> <action>`, and the operator
//! commands (clap). Operator commands use `anyhow`; agents never do.

pub mod alert;
pub mod arp;
pub mod cib;
pub mod drbd;
pub mod install;
pub mod lvm;
pub mod vip;
pub mod xfs;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap::{Parser, Subcommand};

use crate::agents;
use crate::agents::postgresql::lsb;
use crate::ocf::OcfCode;

static PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Runs `f`, turning a panic into exit code 1 with an exit reason (never Rust's 101).
pub fn guarded(exit_reason_prefix: &str, f: impl FnOnce() -> u8 + std::panic::UnwindSafe) -> u8 {
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "panic".into()),
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = PANIC.lock() {
            *slot = Some(format!("{msg}{at}"));
        }
    }));
    match std::panic::catch_unwind(f) {
        Ok(code) => code,
        Err(_) => {
            let msg = PANIC
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_default();
            eprintln!("{exit_reason_prefix}internal error: {msg}");
            OcfCode::ErrGeneric.as_u8()
        }
    }
}

/// Picks the face and runs it; returns the exit code for `main`.
pub fn entry(args: Vec<OsString>, vars: BTreeMap<String, String>) -> u8 {
    let arg = |i: usize| args.get(i).and_then(|a| a.to_str()).map(str::to_string);
    let argv0 = arg(0).unwrap_or_default();
    let base = Path::new(&argv0)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    if agents::info(base).is_some() {
        return ocf_face(base, arg(1), vars);
    }
    // The init script: called as postgresql-ha (a link) or through the installed shim
    // (`pgstack lsb postgresql-ha <action>`).
    if base == lsb::NAME {
        return lsb_face(arg(1), vars);
    }
    if arg(1).as_deref() == Some("lsb") && arg(2).as_deref() == Some(lsb::NAME) {
        return lsb_face(arg(3), vars);
    }
    if argv0.contains("/resource.d/") {
        return unknown_agent(base, &vars);
    }
    match arg(1).as_deref() {
        // The installed shims: pgstack ocf /usr/lib/ocf/resource.d/pgstack/<agent> <action>
        Some("ocf") => {
            let path = arg(2).unwrap_or_default();
            let name = Path::new(&path)
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            if agents::info(&name).is_none() {
                return unknown_agent(&name, &vars);
            }
            ocf_face(&name, arg(3), vars)
        }
        Some("agent") => {
            let name = arg(2).unwrap_or_default();
            if agents::info(&name).is_none() {
                return unknown_agent(&name, &vars);
            }
            ocf_face(&name, arg(3), vars)
        }
        _ => operator(args, vars),
    }
}

/// Environment variable naming another defaults file for the LSB face (tests).
pub const LSB_DEFAULTS_ENV: &str = "PGSTACK_POSTGRESQL_HA_DEFAULTS";

fn lsb_face(action: Option<String>, vars: BTreeMap<String, String>) -> u8 {
    let defaults = vars
        .get(LSB_DEFAULTS_ENV)
        .cloned()
        .unwrap_or_else(|| lsb::DEFAULTS.to_string());
    let base: BTreeMap<String, String> = vars
        .iter()
        .filter(|(k, _)| k.starts_with("HA_") || *k == "OCF_EXIT_REASON_PREFIX")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let r = lsb::run(action.as_deref(), Path::new(&defaults), &base, &|a, v| {
        agents::run("postgresql", a, v).0
    });
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    r.code
}

fn unknown_agent(name: &str, vars: &BTreeMap<String, String>) -> u8 {
    let (out, env) = agents::run(name, "start", vars.clone());
    if let Some(l) = out.exit_reason_line(&env) {
        eprintln!("{l}");
    }
    out.code.as_u8()
}

fn ocf_face(name: &str, action: Option<String>, vars: BTreeMap<String, String>) -> u8 {
    let Some(action) = action else {
        let info = agents::info(name).expect("checked by the caller");
        eprint!("{}", info.usage());
        return OcfCode::ErrArgs.as_u8();
    };
    let (out, env) = agents::run(name, &action, vars);
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.stdout.as_bytes());
    let _ = so.flush();
    if let Some(l) = out.exit_reason_line(&env) {
        eprintln!("{l}");
    }
    out.code.as_u8()
}

#[derive(Parser)]
#[command(
    name = "pgstack",
    version,
    about = "PostgreSQL high availability under Pacemaker/Corosync"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run an OCF agent action (development; Pacemaker uses the installed shims).
    Agent {
        /// Agent name (vip, ...).
        name: String,
        /// Action (start, stop, monitor, meta-data, validate-all, ...).
        action: String,
    },
    /// Gratuitous ARP / unsolicited NA and duplicate-address probes.
    #[command(subcommand)]
    Arp(arp::ArpCmd),
    /// DRBD fencing handlers and recipes.
    #[command(subcommand)]
    Drbd(drbd::DrbdCmd),
    /// The book's LVM advice (check-config) and snapshot recipe.
    #[command(subcommand)]
    Lvm(lvm::LvmCmd),
    /// Claim, release or move a virtual IP by hand, safely.
    #[command(subcommand)]
    Vip(vip::VipCmd),
    /// The book's XFS settings: format a device, print mount options.
    #[command(subcommand)]
    Xfs(xfs::XfsCmd),
    /// CIB templates, checks and simulations with Pacemaker's offline tools, safe migration.
    #[command(subcommand)]
    Cib(cib::CibCmd),
    /// The alert agent Pacemaker runs (CRM_alert_* variables): mail or append to a file.
    Alert(alert::AlertArgs),
    /// Install the binary, the OCF shims and the man pages.
    Install(install::InstallArgs),
    /// Write docs/agents/<agent>.md and docs/man/ocf_pgstack_<agent>.7 from the agents' tables.
    Docs {
        /// Project directory to write into.
        #[arg(long, default_value = ".")]
        out: String,
    },
}

fn operator(args: Vec<OsString>, vars: BTreeMap<String, String>) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let r = match cli.cmd {
        Cmd::Agent { name, action } => return ocf_face(&name, Some(action), vars),
        Cmd::Arp(c) => arp::run(c),
        Cmd::Vip(c) => vip::run(c, vars),
        Cmd::Drbd(c) => drbd::run(c, &vars),
        Cmd::Xfs(c) => xfs::run(c),
        Cmd::Lvm(c) => lvm::run(c),
        Cmd::Cib(c) => cib::run(c),
        Cmd::Alert(a) => alert::run(a, vars),
        Cmd::Install(a) => install::run(a),
        Cmd::Docs { out } => install::docs(&out).map(|()| 0),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgstack: error: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_exit_1() {
        assert_eq!(guarded("ocf-exit-reason:", || panic!("boom")), 1);
        assert_eq!(
            PANIC
                .lock()
                .unwrap()
                .as_deref()
                .map(|m| m.starts_with("boom at ")),
            Some(true)
        );
        assert_eq!(guarded("ocf-exit-reason:", || 7), 7);
    }
}
