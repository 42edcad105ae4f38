//! `pgstack lab`: a live Corosync/Pacemaker cluster on this machine (see `crate::lab`).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};

use crate::lab::advanced::Advanced;
use crate::lab::{self, Lab, Options, Stack, Steps};

#[derive(Args)]
pub struct LabArgs {
    /// State directory of the lab.
    #[arg(long, hide = true, global = true)]
    dir: Option<PathBuf>,
    /// Act on the advanced stack's lab (UML guests, /tmp/pgst-adv) even when the
    /// namespace lab is up too.
    #[arg(long, global = true)]
    advanced: bool,
    #[command(subcommand)]
    cmd: LabCmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum StackArg {
    Shared,
    Replication,
    /// The book's chapters 9-10 (DRBD, LVM, XFS, PostgreSQL, VIP) in two UML guests.
    Advanced,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum WriterAction {
    Start,
    Stop,
    Check,
}

#[derive(Subcommand)]
enum LabCmd {
    /// Start the cluster, its storage, PostgreSQL and the VIP; wait until it answers.
    Up {
        #[arg(long, default_value_t = 2)]
        nodes: u8,
        #[arg(long, value_enum, default_value = "replication")]
        stack: StackArg,
        /// Corosync token timeout (ms).
        #[arg(long, default_value_t = 1000)]
        token: u32,
        /// The book's stonith-enabled=false (a node that stops answering keeps its resources).
        #[arg(long)]
        no_fencing: bool,
        /// Replication stack: synchronous replication (a commit is acknowledged once a
        /// standby has it).
        #[arg(long)]
        sync: bool,
        /// Template variables (provider=heartbeat runs the reference agents).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Nodes, Pacemaker's view, VIP holders (addresses and ARP), postmasters.
    Status,
    /// psql through the VIP from the client namespace (interactive without SQL).
    Psql { sql: Option<String> },
    /// Move PGServer (replication: the promoted role) to NODE (default: the other node),
    /// constraint always cleared.
    #[command(visible_alias = "migrate")]
    Switchover { node: Option<String> },
    /// Power cut of NODE (default: where PGServer runs), then the takeover measured.
    Crash {
        node: Option<String>,
        /// Do not wait for the takeover.
        #[arg(long)]
        no_wait: bool,
    },
    /// Replication stack: time a bare `pg_ctl promote -w` on the standby NODE (the floor
    /// of a promotion). Puts the cluster in maintenance mode: only `down` follows.
    PromoteFloor { node: String },
    /// Replication stack: `pgstack pg rejoin` of NODE's data directory from the primary
    /// (its start refused: diverged, or the primary did not answer), then a cleanup of
    /// the instance so that Pacemaker starts it again. Prints how it was rejoined.
    Rejoin {
        node: String,
        /// Rewind it in place with pg_rewind (`pgstack pg rejoin --rewind`) instead of
        /// copying the primary.
        #[arg(long)]
        rewind: bool,
    },
    /// SIGKILL corosync on NODE only.
    KillCorosync { node: String },
    /// Boot NODE again (default: every node that is down). Replication stack: a former
    /// primary's data directory is first made a standby of the primary (pgstack:
    /// `pgstack pg rejoin`; PAF: pg_basebackup).
    Restore {
        node: Option<String>,
        /// Boot with the data directory as the crash left it (no rejoin before the boot):
        /// the cluster's own start meets it, and pgstack's agent refuses a former primary
        /// that diverged (then `pgstack lab rejoin NODE`).
        #[arg(long)]
        as_is: bool,
    },
    /// The writer: start, stop, or check that no acknowledged row is missing.
    Writer {
        #[arg(value_enum)]
        action: WriterAction,
    },
    /// Remove everything the lab made.
    Down,
    /// The lab's fence agent (fence-agents protocol; what fence_pgstack_lab runs).
    #[command(hide = true)]
    FenceAgent {
        /// Ask through this mailbox directory instead of the fence daemon's socket.
        #[arg(long)]
        mailbox: Option<PathBuf>,
        /// The agent's name (in its meta-data and messages).
        #[arg(long, default_value = "fence_pgstack_lab")]
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    #[command(hide = true, name = "_init")]
    Init { node: String },
    #[command(hide = true, name = "_fenced")]
    Fenced,
    #[command(hide = true, name = "_writer")]
    Writer_ {
        /// The address to write through (default: the netns lab's VIP).
        #[arg(long)]
        host: Option<String>,
    },
    #[command(hide = true, name = "_umlfenced")]
    UmlFenced,
}

/// The advanced lab to act on, when it is the one meant: `--dir` naming it, `--advanced`,
/// or no namespace lab up while it is.
fn advanced_lab(dir: &Option<PathBuf>, flag: bool) -> Result<Option<Advanced>> {
    if let Some(d) = dir {
        if d.join("advanced.conf").exists() {
            return Ok(Some(Advanced::open(d)?));
        }
        return Ok(None);
    }
    let adv = std::path::Path::new(lab::advanced::DIR);
    if flag {
        return Ok(Some(Advanced::open(adv)?));
    }
    if !std::path::Path::new(lab::DIR).join("lab.conf").exists()
        && adv.join("advanced.conf").exists()
    {
        return Ok(Some(Advanced::open(adv)?));
    }
    Ok(None)
}

/// What `restore` says, in either lab, once the cluster is idle.
fn restored(nodes: &[String], kind: &str) -> Result<u8> {
    if nodes.is_empty() {
        println!("every {kind} is up");
    } else {
        println!("{}: booted, online, the cluster idle", nodes.join(", "));
    }
    Ok(0)
}

/// What `writer stop` says, in either lab.
fn writer_stopped(was: bool) -> Result<u8> {
    println!(
        "{}",
        if was {
            "writer stopped"
        } else {
            "no writer was running"
        }
    );
    Ok(0)
}

/// What `writer check` says, in either lab: exit 1 when an acknowledged row is missing.
fn writer_checked(c: &lab::writer::Check) -> Result<u8> {
    println!("{}", c.report());
    Ok(if c.missing.is_empty() { 0 } else { 1 })
}

fn advanced(cmd: LabCmd, adv: Advanced) -> Result<u8> {
    match cmd {
        LabCmd::Status => {
            print!("{}", adv.status_report());
            Ok(0)
        }
        LabCmd::Psql { sql } => {
            let Some(sql) = sql else {
                bail!("the advanced lab's psql runs one statement: pgstack lab psql 'SQL'");
            };
            let from = adv
                .alive()
                .first()
                .map(|s| s.to_string())
                .ok_or_else(|| anyhow::anyhow!("no guest is running"))?;
            for l in adv.sql(&from, &sql)? {
                println!("{l}");
            }
            Ok(0)
        }
        LabCmd::Switchover { node } => {
            let to = match node {
                Some(n) => n,
                None => {
                    let at = lab::advanced::group_node(&adv.cluster_status()?)
                        .ok_or_else(|| anyhow::anyhow!("PGServer is not running on one node"))?;
                    lab::advanced::other(&at)
                }
            };
            let m = adv.migrate(&to)?;
            print!("{}", m.output);
            println!("{}", m.report());
            print!("{}", adv.status_report());
            Ok(if m.in_order() && !m.constraint_left {
                0
            } else {
                1
            })
        }
        LabCmd::Crash { node, no_wait } => {
            if no_wait {
                let n = match node {
                    Some(n) => n,
                    None => lab::advanced::group_node(&adv.cluster_status()?)
                        .ok_or_else(|| anyhow::anyhow!("PGServer is not running on one node"))?,
                };
                let t = adv.crash(&n)?;
                println!("{n}: power cut at {t:.3} (every process of the guest killed)");
                return Ok(0);
            }
            let t = adv.crash_measured(node.as_deref())?;
            println!("{}", t.report());
            print!("{}", adv.status_report());
            Ok(0)
        }
        LabCmd::KillCorosync { node } => {
            adv.on(&node, "kill -9 $(pidof corosync)", 30)?;
            println!("{node}: corosync killed");
            Ok(0)
        }
        // The guests' data directories are never touched by a restore: --as-is is theirs.
        LabCmd::Restore { node, as_is: _ } => {
            let nodes: Vec<String> = match node {
                Some(n) => vec![n],
                None => lab::uml::NODES
                    .iter()
                    .filter(|n| !adv.pair.is_alive(n))
                    .map(|n| n.to_string())
                    .collect(),
            };
            for n in &nodes {
                adv.restore(n)?;
            }
            adv.settle(240)?;
            restored(&nodes, "guest")
        }
        LabCmd::Writer { action } => match action {
            WriterAction::Start => {
                let at = lab::advanced::group_node(&adv.cluster_status()?)
                    .ok_or_else(|| anyhow::anyhow!("PGServer is not running on one node"))?;
                let from = lab::advanced::other(&at);
                adv.writer_start(&from)?;
                println!(
                    "writer running on {from}, inserting through {}",
                    lab::advanced::VIP
                );
                Ok(0)
            }
            WriterAction::Stop => writer_stopped(adv.writer_stop()?),
            WriterAction::Check => writer_checked(&adv.writer_check()?),
        },
        LabCmd::Down => {
            let d = adv.pair.dir.clone();
            Advanced::down_dir(&d)?;
            println!("down: the guests, switches and {} removed", d.display());
            Ok(0)
        }
        _ => bail!("not a command of the advanced lab"),
    }
}

pub fn run(a: LabArgs) -> Result<u8> {
    let internal = matches!(
        a.cmd,
        LabCmd::Up { .. }
            | LabCmd::FenceAgent { .. }
            | LabCmd::Init { .. }
            | LabCmd::Fenced
            | LabCmd::Writer_ { .. }
            | LabCmd::UmlFenced
    );
    if !internal {
        if let Some(adv) = advanced_lab(&a.dir, a.advanced)? {
            return advanced(a.cmd, adv);
        }
        // A pair of UML guests whose advanced lab never got its configuration (an `up`
        // cut short): `down` removes that pair, never the namespace lab's namespaces.
        if let (LabCmd::Down, Some(d)) = (&a.cmd, &a.dir) {
            if d.join("pair.conf").exists() {
                Advanced::down_dir(d)?;
                println!("down: the guests, switches and {} removed", d.display());
                return Ok(0);
            }
        }
    }
    let explicit_dir = a.dir.clone();
    let dir = a.dir.unwrap_or_else(|| PathBuf::from(lab::DIR));
    match a.cmd {
        LabCmd::Up {
            nodes,
            stack,
            token,
            no_fencing,
            sync,
            sets,
        } => {
            let mut pairs = Vec::new();
            for s in sets {
                let Some((k, v)) = s.split_once('=') else {
                    bail!("--set {s:?}: expected KEY=VALUE");
                };
                pairs.push((k.to_string(), v.to_string()));
            }
            if matches!(stack, StackArg::Advanced) {
                let exe =
                    std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/sbin/pgstack"));
                let mut o = lab::advanced::Options::for_exe(&exe);
                o.sets = pairs;
                if let Some(d) = explicit_dir {
                    o.dir = d;
                }
                if no_fencing || nodes != 2 || token != 1000 {
                    bail!("--stack advanced has two nodes, fencing and corosync's own token: --nodes, --token and --no-fencing do not apply");
                }
                let steps = Steps::new(false);
                let adv = Advanced::up(&o, &steps)?;
                steps.say(&format!("up in {:.2} s", steps.elapsed().as_secs_f64()));
                print!("{}", adv.status_report());
                println!(
                    "try: pgstack lab writer start; pgstack lab migrate; pgstack lab crash; \
                     pgstack lab restore; pgstack lab writer check; pgstack lab down"
                );
                return Ok(0);
            }
            let opts = Options {
                nodes,
                stack: match stack {
                    StackArg::Shared => Stack::Shared,
                    StackArg::Replication => Stack::Replication,
                    StackArg::Advanced => unreachable!("handled above"),
                },
                token_ms: token,
                fencing: !no_fencing,
                sync,
                sets: pairs,
                dir,
                ..Options::default()
            };
            if no_fencing {
                eprintln!(
                    "pgstack: warning: fencing is off (stonith-enabled=false): a node that stops \
                     answering keeps its resources while another takes them over (split brain)"
                );
            }
            let steps = Steps::new(false);
            let lab = Lab::up(&opts, &steps)?;
            steps.say(&format!("up in {:.2} s", steps.elapsed().as_secs_f64()));
            print!("{}", lab.status()?.report());
            println!(
                "connect: pgstack lab psql   (or: ip netns exec {} psql -h {} -U postgres)\n\
                 try:     pgstack lab writer start; pgstack lab switchover; pgstack lab crash; \
                 pgstack lab writer check; pgstack lab down",
                lab::NS_CLIENT,
                lab::VIP
            );
            Ok(0)
        }
        LabCmd::Status => {
            let lab = Lab::open(&dir)?;
            let st = lab.status()?;
            print!("{}", st.report());
            Ok(if st.split_brain() { 3 } else { 0 })
        }
        LabCmd::Psql { sql } => {
            Lab::open(&dir)?;
            Ok(lab::client::psql(sql.as_deref())?)
        }
        LabCmd::Switchover { node } => {
            let lab = Lab::open(&dir)?;
            let m = lab.switchover_measured(node.as_deref())?;
            print!("{}", m.output);
            println!("{}", m.report());
            print!("{}", lab.status()?.report());
            Ok(0)
        }
        LabCmd::Crash { node, no_wait } => {
            let lab = Lab::open(&dir)?;
            if no_wait {
                let n = match node {
                    Some(n) => n,
                    None => lab.active_node()?.unwrap_or_default(),
                };
                let t = lab.crash(&n)?;
                println!("{n}: power cut at {t:.3} (processes killed, NIC down)");
                return Ok(0);
            }
            let (victim, survivor, t) = lab.crash_measured(node.as_deref())?;
            println!("{victim}: power cut; {survivor} took over");
            println!("{}", t.report());
            print!("{}", lab.status()?.report());
            Ok(0)
        }
        LabCmd::PromoteFloor { node } => {
            let lab = Lab::open(&dir)?;
            if lab.cfg.stack != Stack::Replication {
                bail!("promote-floor needs the replication stack (lab up --stack replication)");
            }
            let secs = lab::repl::promote_floor(&lab, &node)?;
            println!(
                "pg_ctl promote -w on {node}: {secs:.3} s (maintenance mode on: `pgstack lab down` next)"
            );
            Ok(0)
        }
        LabCmd::Rejoin { node, rewind } => {
            let lab = Lab::open(&dir)?;
            if lab.cfg.stack != Stack::Replication {
                bail!("rejoin needs the replication stack (lab up --stack replication)");
            }
            let r = lab::repl::rejoin(&lab, &node, rewind)?;
            print!("{}", r.out);
            println!(
                "{node}: rejoined in {:.2} s ({}); its instance cleaned up",
                r.secs,
                lab::repl::RejoinMethod::describe(r.method)
            );
            Ok(0)
        }
        LabCmd::KillCorosync { node } => {
            let lab = Lab::open(&dir)?;
            let t = lab.kill_corosync(&node)?;
            println!("{node}: corosync killed at {t:.3}");
            Ok(0)
        }
        LabCmd::Restore { node, as_is } => {
            let lab = Lab::open(&dir)?;
            let data = if as_is {
                lab::DataDir::AsIs
            } else {
                lab::DataDir::Mend
            };
            let nodes = match node {
                Some(n) => vec![n],
                None => lab
                    .node_names()
                    .into_iter()
                    .filter(|n| !lab::node::is_alive(&lab, n))
                    .collect(),
            };
            for n in &nodes {
                if let Some(secs) = lab.restore_with(n, data)? {
                    println!(
                        "{n}: its data directory was a primary's: rejoined to the primary \
                         (PAF: rebuilt with pg_basebackup; pgstack: pgstack pg rejoin) in {secs:.2} s"
                    );
                }
            }
            lab.wait_online(&nodes, 60.0)?;
            lab.settle(60)?;
            if as_is && lab.cfg.stack == Stack::Replication {
                for n in &nodes {
                    if let Some(why) = lab::repl::start_failure(&lab, n) {
                        println!(
                            "{n}: its start was refused: {why}\n{n}: `pgstack lab rejoin {n}` \
                             rebuilds it from the primary (--rewind: with pg_rewind)"
                        );
                    }
                }
            }
            restored(&nodes, "node")
        }
        LabCmd::Writer { action } => {
            let lab = Lab::open(&dir)?;
            match action {
                WriterAction::Start => {
                    let pid = lab::writer::start(&lab)?;
                    println!("writer running (pid {pid}), inserting through {}", lab::VIP);
                    Ok(0)
                }
                WriterAction::Stop => writer_stopped(lab::writer::stop(&lab.dir)?),
                WriterAction::Check => writer_checked(&lab::writer::check(&lab)?),
            }
        }
        LabCmd::Down => {
            let steps = Steps::new(false);
            Lab::down_dir(&dir, &steps)?;
            Ok(0)
        }
        LabCmd::FenceAgent {
            mailbox,
            name,
            args,
        } => {
            let needs_stdin = !args.iter().any(|a| a == "-o" || a.starts_with("--action="));
            let mut input = String::new();
            if needs_stdin {
                let _ = std::io::stdin().read_to_string(&mut input);
            }
            let ch = match mailbox {
                Some(m) => lab::fence::Channel::Mailbox(m),
                None => lab::fence::Channel::Socket(dir.clone()),
            };
            let (out, err, code) =
                lab::fence::agent_via(&ch, &name, &args, needs_stdin.then_some(input.as_str()));
            print!("{out}");
            eprint!("{err}");
            Ok(code)
        }
        LabCmd::Init { node } => {
            lab::node::init(&dir, &node)?;
            Ok(0)
        }
        LabCmd::Fenced => {
            lab::fence::daemon(&dir)?;
            Ok(0)
        }
        LabCmd::Writer_ { host } => {
            match host {
                Some(h) => lab::writer::main_to(&dir, &h)?,
                None => lab::writer::main(&dir)?,
            }
            Ok(0)
        }
        LabCmd::UmlFenced => {
            lab::advanced::fence_daemon(&dir)?;
            Ok(0)
        }
    }
}
