//! `pgstack cib templates|render|verify|simulate|migrate`: thin adapters over `crate::cib`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};

use crate::cib::scenario::{self, Scenario};
use crate::cib::{self, template, Format, RenderOptions};
use crate::sys::pacemaker as pcmk;

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// A complete CIB (cibadmin --replace --scope configuration --xml-file FILE).
    Xml,
    /// A crm shell script (crm -f FILE).
    Crm,
    /// A pcs script (sh FILE CIB_FILE).
    Pcs,
    /// The DRBD resource file with its fencing handlers (advanced template).
    Drbd,
    /// corosync.conf with the two-node quorum settings.
    Corosync,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScenarioArg {
    /// Only bring the CIB to its steady state (use with --save).
    Steady,
    /// Move the main resource (or --resource) to the other node (or --node), then clear.
    Migrate,
    /// The active node (or --node) fails; with fencing on it is fenced first.
    NodeFail,
    /// The active node (or --node) goes to standby.
    Standby,
    /// The active node (or --node) fails, is fenced and returns.
    Fence,
}

#[derive(Subcommand)]
pub enum CibCmd {
    /// List the templates and their variables.
    Templates,
    /// Render a template as CIB XML, a crm script or a pcs script.
    Render {
        /// Template name (see `pgstack cib templates`).
        #[arg(long)]
        template: String,
        /// A variable: --set vip=10.99.0.50 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        #[arg(long, value_enum, default_value = "xml")]
        format: FormatArg,
        /// No stonith devices, stonith-enabled=false, no-quorum-policy=ignore (the book's
        /// settings). Risks split brain and data loss: prints a warning.
        #[arg(long)]
        no_fencing: bool,
        /// Add node states (every node online) for offline tools (crm_verify, crm_simulate).
        #[arg(long)]
        online_status: bool,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a CIB file with crm_verify (a CIB without node states is checked with every
    /// node online).
    Verify {
        file: PathBuf,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Do not fail when an agent the configuration names is not installed here
        /// (rendering on a workstation).
        #[arg(long)]
        allow_missing_agents: bool,
    },
    /// Run a scenario with crm_simulate on a copy of a CIB file and print the ordered actions.
    Simulate {
        file: PathBuf,
        #[arg(long, value_enum)]
        scenario: ScenarioArg,
        /// Node the scenario acts on (default: where the main resource runs; for migrate,
        /// the other node).
        #[arg(long)]
        node: Option<String>,
        /// Resource to migrate (default: the first group).
        #[arg(long)]
        resource: Option<String>,
        /// Node whose promotion score is seeded higher in a fresh CIB (default: the first).
        #[arg(long)]
        primary: Option<String>,
        /// Lifetime of the move constraint (ISO 8601, e.g. PT30M).
        #[arg(long)]
        lifetime: Option<String>,
        /// Show every action (probes, monitors, notifications, pseudo actions) and the
        /// transitions to the steady state.
        #[arg(long)]
        all: bool,
        /// Save the final state (a CIB with node states) to this file.
        #[arg(long)]
        save: Option<PathBuf>,
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Do not fail when an agent the configuration names is not installed here.
        #[arg(long)]
        allow_missing_agents: bool,
    },
    /// Move RESOURCE to NODE and always clear the move constraint afterwards.
    Migrate {
        resource: String,
        node: String,
        /// Lifetime of the move constraint (ISO 8601): it expires even if pgstack is killed
        /// before clearing it.
        #[arg(long, default_value = "PT30M")]
        lifetime: String,
        /// Work on this CIB file (with node states) instead of the live cluster.
        #[arg(long)]
        cib_file: Option<PathBuf>,
        /// Seconds to wait for the cluster to settle (live cluster).
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
}

fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>> {
    sets.iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => bail!("--set {s:?}: expected KEY=VALUE"),
        })
        .collect()
}

fn print_actions(actions: &[pcmk::Action], all: bool) {
    let shown: Vec<&pcmk::Action> = actions
        .iter()
        .filter(|a| all || scenario::is_main(a))
        .collect();
    if shown.is_empty() {
        println!("   (no action)");
    }
    for (i, a) in shown.iter().enumerate() {
        println!("  {:2}. {a}", i + 1);
    }
}

fn placement(p: &pcmk::Placement) -> String {
    if p.is_empty() {
        return "stopped".into();
    }
    p.iter()
        .map(|(n, promoted)| {
            if *promoted {
                format!("{n} (promoted)")
            } else {
                n.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that every agent `file` names is installed here; prints the missing ones.
/// `Ok(false)` when some are missing and that is not allowed.
fn agents_here(file: &Path, allow: bool, deadline: Instant) -> Result<bool> {
    let text = pcmk::read_file(file)?;
    let cib = cib::xml::parse(&text)?;
    let missing = cib::agents::missing_agents(&cib, deadline)?;
    if missing.is_empty() {
        return Ok(true);
    }
    let what = if allow { "warning" } else { "error" };
    for a in &missing {
        println!("  {what}: resource agent {a} is not installed on this host");
    }
    Ok(allow)
}

pub fn run(c: CibCmd) -> Result<u8> {
    match c {
        CibCmd::Templates => {
            for name in template::names() {
                let b = template::Bundle::load(name)?;
                let main = b.parts.last().expect("a bundle has its template");
                println!("{name}: {}", main.about);
                for v in b.vars() {
                    let default = if v.default.is_empty() {
                        "(empty)".to_string()
                    } else {
                        v.default.clone()
                    };
                    println!(
                        "    {:<22} {:<22} default {default}: {}",
                        v.name,
                        format!("<{}>", v.kind.describe()),
                        v.about
                    );
                }
                println!();
            }
            Ok(0)
        }
        CibCmd::Render {
            template,
            sets,
            format,
            no_fencing,
            online_status,
            out,
        } => {
            let sets = parse_sets(&sets)?;
            if online_status && !matches!(format, FormatArg::Xml) {
                bail!("--online-status applies to --format xml only");
            }
            if no_fencing {
                eprintln!(
                    "pgstack: WARNING: rendering without fencing (stonith-enabled=false, \
                     no-quorum-policy=ignore). A node that stops answering keeps its resources \
                     while the other node takes them over: both write to the data (split brain, \
                     data loss). Use this only on a test cluster."
                );
            }
            let r = cib::render(
                &template,
                &sets,
                RenderOptions {
                    fencing: !no_fencing,
                },
            )?;
            let text = match format {
                FormatArg::Xml if online_status => {
                    let mut doc = cib::xml::parse(&r.xml)?;
                    scenario::bring_online(&mut doc)?;
                    format!("<?xml version=\"1.0\"?>\n{}", doc.to_xml())
                }
                FormatArg::Xml => r.format(Format::Xml)?,
                FormatArg::Crm => r.format(Format::Crm)?,
                FormatArg::Pcs => r.format(Format::Pcs)?,
                FormatArg::Drbd => r.format(Format::Drbd)?,
                FormatArg::Corosync => r.format(Format::Corosync)?,
            };
            match out {
                Some(p) => pcmk::write_file(&p, &text)
                    .with_context(|| format!("writing {}", p.display()))?,
                None => print!("{text}"),
            }
            Ok(0)
        }
        CibCmd::Verify {
            file,
            timeout,
            allow_missing_agents,
        } => {
            let deadline = Instant::now() + Duration::from_secs(timeout);
            let agents_ok = agents_here(&file, allow_missing_agents, deadline)?;
            let (v, online) = scenario::verify(&file, deadline)?;
            if online {
                println!(
                    "{}: no node states; checked with every node online",
                    file.display()
                );
            }
            for m in &v.messages {
                println!("  {m}");
            }
            if v.valid() && !agents_ok {
                println!(
                    "{}: NOT usable here: crm_verify accepts it, but agents are missing",
                    file.display()
                );
                Ok(1)
            } else if v.valid() {
                println!("{}: valid (crm_verify exit 0)", file.display());
                Ok(0)
            } else {
                println!("{}: NOT valid (crm_verify exit {})", file.display(), v.code);
                Ok(1)
            }
        }
        CibCmd::Simulate {
            file,
            scenario: which,
            node,
            resource,
            primary,
            lifetime,
            all,
            save,
            timeout,
            allow_missing_agents,
        } => {
            let deadline = Instant::now() + Duration::from_secs(timeout);
            if !agents_here(&file, allow_missing_agents, deadline)? {
                bail!(
                    "{}: agents it names are not installed on this host (--allow-missing-agents to simulate anyway)",
                    file.display()
                );
            }
            if let Some(l) = &lifetime {
                cib::migrate::check_lifetime(l)?;
            }
            if resource.is_some() && !matches!(which, ScenarioArg::Migrate) {
                bail!("--resource applies to --scenario migrate only");
            }
            let sc = match which {
                ScenarioArg::Steady => Scenario::Steady,
                ScenarioArg::Migrate => Scenario::Migrate {
                    resource,
                    node,
                    lifetime,
                },
                ScenarioArg::NodeFail => Scenario::NodeFail { node },
                ScenarioArg::Standby => Scenario::Standby { node },
                ScenarioArg::Fence => Scenario::Fence { node },
            };
            let text = pcmk::read_file(&file)?;
            let rep = scenario::simulate(
                &text,
                &sc,
                primary.as_deref(),
                save.as_deref().map(Path::new),
                deadline,
            )?;
            let n_bring_up = rep
                .steps
                .iter()
                .take_while(|s| s.title.contains("steady state"))
                .count();
            for (i, step) in rep.steps.iter().enumerate() {
                if i < n_bring_up && !all && !matches!(sc, Scenario::Steady) {
                    continue;
                }
                println!("{}:", step.title);
                print_actions(&step.actions, all);
            }
            println!(
                "{}: before {}; after {}",
                rep.main,
                placement(&rep.before),
                placement(&rep.after)
            );
            Ok(0)
        }
        CibCmd::Migrate {
            resource,
            node,
            lifetime,
            cib_file,
            wait,
        } => {
            let deadline = Instant::now() + Duration::from_secs(wait + 60);
            let o = cib::migrate::migrate(
                cib_file.as_deref(),
                &resource,
                &node,
                &lifetime,
                wait,
                deadline,
            )?;
            for l in o.moved.lines().chain(o.cleared.lines()) {
                if !l.trim().is_empty() {
                    println!("  {}", l.trim());
                }
            }
            if cib_file.is_some() {
                println!("transition:");
                print_actions(&o.actions, false);
            }
            println!(
                "{resource} now runs on: {}; the move constraint is cleared",
                placement(&o.placement)
            );
            Ok(0)
        }
    }
}
