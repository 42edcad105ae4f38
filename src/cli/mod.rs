//! The faces of the binary: OCF agent (by the name it is called through, or the shims'
//! `ocf` entry), the development entry `pgstack agent <name> <action>`, and the operator
//! commands (clap). Operator commands use `anyhow`; agents never do.

pub mod alert;
pub mod arp;
pub mod cib;
pub mod install;
pub mod vip;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap::{Parser, Subcommand};

use crate::agents;
use crate::ocf::OcfCode;

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
    /// Claim, release or move a virtual IP by hand, safely.
    #[command(subcommand)]
    Vip(vip::VipCmd),
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
