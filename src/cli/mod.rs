//! The faces of the binary: OCF agent (by the file name it is called through: the
//! installed agents are links to the binary; or the `ocf` entry of the shims earlier
//! installs wrote), the alert agent (by name too), the development entry `pgstack agent
//! <name> <action>`, and the operator commands (clap). Operator commands use `anyhow`;
//! agents never do.

pub mod alert;
pub mod arp;
pub mod check;
pub mod cib;
pub mod docs;
pub mod drbd;
pub mod install;
pub mod lab;
pub mod lvm;
pub mod migrate_cib;
pub mod pg;
pub mod vip;
pub mod xfs;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;

use clap::{Parser, Subcommand};

use crate::agents;
use crate::agents::postgresql::lsb;
use crate::ocf::env::OcfEnv;
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
            let msg = crate::ocf::log::one_line(&msg);
            eprintln!("{exit_reason_prefix}internal error: {msg}");
            OcfCode::ErrGeneric.as_u8()
        }
    }
}

/// Picks the face and runs it; returns the exit code for `main`. `os_vars` is the
/// process environment as bytes: the OCF face gets all of it; the operator CLI and the
/// LSB face, which read only their own variables, get the ones that decode.
pub fn entry(args: Vec<OsString>, os_vars: Vec<(OsString, OsString)>) -> u8 {
    let vars: BTreeMap<String, String> = os_vars
        .iter()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v.to_str()?.to_string())))
        .collect();
    let ocf_env = move || OcfEnv::from_os(os_vars);
    let arg = |i: usize| args.get(i).and_then(|a| a.to_str()).map(str::to_string);
    let argv0 = arg(0).unwrap_or_default();
    let base = Path::new(&argv0)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("");
    // The installed agents are links to this binary: the file name of argv[0] (the path
    // Pacemaker execs) names the agent, whatever directory the link is in.
    if agents::resolve(base).is_some() {
        return ocf_face(base, arg(1), ocf_env());
    }
    // The alert agent, a link too: Pacemaker passes no arguments, the event is in the
    // environment; any arguments given go to `pgstack alert` (`--print`).
    if base == install::ALERT_NAME {
        let mut cli: Vec<OsString> = vec!["pgstack".into(), "alert".into()];
        cli.extend(args.iter().skip(1).cloned());
        return operator(cli, vars, ocf_env());
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
        return unknown_agent(base, ocf_env());
    }
    match arg(1).as_deref() {
        // The digest of the sources this binary was built from (build.rs): the tests
        // refuse to run an install that is not the tree under test.
        Some("--build-id") if args.len() == 2 => {
            println!("{}", env!("PGSTACK_BUILD_ID"));
            0
        }
        // The shims earlier installs wrote (install replaces them by links):
        // pgstack ocf /usr/lib/ocf/resource.d/pgstack/<agent> <action>
        Some("ocf") => {
            let path = arg(2).unwrap_or_default();
            let name = Path::new(&path)
                .file_name()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_string();
            if agents::resolve(&name).is_none() {
                return unknown_agent(&name, ocf_env());
            }
            ocf_face(&name, arg(3), ocf_env())
        }
        // `pgstack agent --help` (or no agent at all) is the operator CLI's business.
        Some("agent") if arg(2).is_some_and(|a| !a.starts_with('-')) => {
            let name = arg(2).unwrap_or_default();
            if agents::resolve(&name).is_none() {
                return unknown_agent(&name, ocf_env());
            }
            ocf_face(&name, arg(3), ocf_env())
        }
        _ => operator(args, vars, ocf_env()),
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

fn unknown_agent(name: &str, env: OcfEnv) -> u8 {
    let (out, env) = agents::run_env(name, "start", env);
    if let Some(l) = out.exit_reason_line(&env) {
        eprintln!("{l}");
    }
    out.code.as_u8()
}

/// Runs an action of the agent called `name` (its own name or an alias).
fn ocf_face(name: &str, action: Option<String>, env: OcfEnv) -> u8 {
    let Some(info) = agents::resolve(name) else {
        return unknown_agent(name, env);
    };
    let Some(action) = action else {
        eprint!("{}", info.usage());
        return OcfCode::ErrArgs.as_u8();
    };
    let (mut out, env) = agents::run_env(info.name, &action, env);
    if name != info.name && action == "meta-data" {
        out.stdout = called_as(&out.stdout, info.name, name);
    }
    let mut so = std::io::stdout().lock();
    let _ = so.write_all(out.stdout.as_bytes());
    let _ = so.flush();
    if let Some(l) = out.exit_reason_line(&env) {
        eprintln!("{l}");
    }
    out.code.as_u8()
}

/// Meta-data names the agent as it was called: `crm_resource --show-metadata
/// ocf:pgstack:IPaddr2` reads `<resource-agent name="IPaddr2">`.
fn called_as(meta: &str, agent: &str, alias: &str) -> String {
    meta.replacen(
        &format!("<resource-agent name=\"{agent}\""),
        &format!("<resource-agent name=\"{alias}\""),
        1,
    )
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
    /// Run an OCF agent action (development; Pacemaker execs the installed links).
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
    /// Preflight of this node and its cluster: fencing, quorum, DRBD, op timeouts, agents,
    /// stickiness. Exit 0 clean, 1 warnings, 2 errors.
    Check(check::CheckArgs),
    /// Switch resources between the reference agents and pgstack's by provider alone
    /// (ocf:heartbeat:IPaddr2 <-> ocf:pgstack:IPaddr2), reporting each parameter whose
    /// meaning changes. Exit 1 when a resource had to stay on its agent.
    MigrateCib(migrate_cib::MigrateCibArgs),
    /// A former PostgreSQL primary against the current primary: divergence, rejoin.
    #[command(subcommand)]
    Pg(pg::PgCmd),
    /// The alert agent Pacemaker runs (CRM_alert_* variables): mail or append to a file.
    Alert(alert::AlertArgs),
    /// Install the binary, the OCF agents (links to it) and the man pages.
    Install(install::InstallArgs),
    /// A live Corosync/Pacemaker cluster on this machine running PGServer (namespaces).
    Lab(lab::LabArgs),
    /// Write the agents' pages and man pages, pgstack(8), the shell completions, the init
    /// script and the agents' links from the agents' tables and these definitions.
    Docs {
        /// Project directory to write into.
        #[arg(long, default_value = ".")]
        out: String,
    },
}

/// The operator CLI's clap definition (man page and completions are generated from it).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

fn operator(args: Vec<OsString>, vars: BTreeMap<String, String>, env: OcfEnv) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let r = match cli.cmd {
        Cmd::Agent { name, action } => return ocf_face(&name, Some(action), env),
        Cmd::Arp(c) => arp::run(c),
        Cmd::Vip(c) => vip::run(c, vars),
        Cmd::Drbd(c) => drbd::run(c, &vars),
        Cmd::Xfs(c) => xfs::run(c),
        Cmd::Lvm(c) => lvm::run(c),
        Cmd::Cib(c) => cib::run(c),
        Cmd::Check(a) => return check::run(a),
        Cmd::MigrateCib(a) => migrate_cib::run(a),
        Cmd::Alert(a) => alert::run(a, vars),
        Cmd::Pg(c) => pg::run(c),
        Cmd::Install(a) => install::run(a),
        Cmd::Lab(a) => lab::run(a),
        Cmd::Docs { out } => install::docs(&out).map(|()| 0),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pgstack: error: {}", error_chain(&e));
            1
        }
    }
}

/// The error and its causes on one line, each cause once: an error whose message already
/// quotes its source (`reading F: No such file...`) does not get it repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let inner = anyhow::Error::new(io).context("reading /x: entity not found");
        assert_eq!(error_chain(&inner), "reading /x: entity not found");
        let outer = anyhow::anyhow!("disk full").context("writing /y");
        assert_eq!(error_chain(&outer), "writing /y: disk full");
    }

    #[test]
    fn an_alias_names_itself_in_the_meta_data() {
        let meta = "<?xml version=\"1.0\"?>\n<resource-agent name=\"vip\" version=\"1\">\n";
        assert!(called_as(meta, "vip", "IPaddr2").contains("<resource-agent name=\"IPaddr2\" "));
    }

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

    /// The handlers `--format drbd` writes for provider=pgstack are commands of this binary
    /// at the path `pgstack install` puts it (the default prefix), for both DRBD syntaxes;
    /// provider=heartbeat keeps LINBIT's scripts.
    #[test]
    fn drbd_handlers_of_the_advanced_template_are_pgstack_commands() {
        use crate::cib::{render, Format, RenderOptions};
        let installed = format!("{}/sbin/pgstack", install::DEFAULT_PREFIX);
        for (version, unfence) in [("8.4", "after-resync-target"), ("9", "unfence-peer")] {
            let sets = |provider: &str| {
                vec![
                    ("drbd_version".to_string(), version.to_string()),
                    ("provider".to_string(), provider.to_string()),
                ]
            };
            let text = render("advanced", &sets("pgstack"), RenderOptions::default())
                .unwrap()
                .format(Format::Drbd)
                .unwrap();
            assert!(!text.contains("crm-"), "{text}");
            for (handler, sub) in [("fence-peer", "fence-peer"), (unfence, "unfence-peer")] {
                let line = format!("    {handler} \"{installed} drbd {sub}\";");
                assert!(text.contains(&line), "{version}: no {line:?} in\n{text}");
                Cli::try_parse_from(["pgstack", "drbd", sub])
                    .unwrap_or_else(|e| panic!("pgstack drbd {sub}: {e}"));
            }
            let linbit = render("advanced", &sets("heartbeat"), RenderOptions::default())
                .unwrap()
                .format(Format::Drbd)
                .unwrap();
            // LINBIT's .9 scripts serve DRBD 8.4 too (they read DRBD_PEER when no node
            // ids are passed).
            for script in [
                "fence-peer \"/usr/lib/drbd/crm-fence-peer.9.sh\";".to_string(),
                format!("{unfence} \"/usr/lib/drbd/crm-unfence-peer.9.sh\";"),
            ] {
                assert!(
                    linbit.contains(&script),
                    "{version}: no {script:?} in\n{linbit}"
                );
            }
            assert!(!linbit.contains("pgstack drbd"), "{linbit}");
            let own = vec![
                ("drbd_version".to_string(), version.to_string()),
                (
                    "pgstack_bin".to_string(),
                    "/opt/pgst-x/sbin/pgstack".to_string(),
                ),
            ];
            let moved = render("advanced", &own, RenderOptions::default())
                .unwrap()
                .format(Format::Drbd)
                .unwrap();
            assert!(
                moved.contains("fence-peer \"/opt/pgst-x/sbin/pgstack drbd fence-peer\";"),
                "{moved}"
            );
        }
    }
}
