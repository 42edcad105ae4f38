//! `pgstack drbd ...`: DRBD handlers and recoveries, a thin adapter over
//! `agents::drbd::{fence, recovery}`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::io::Write;

use anyhow::Result;
use clap::Subcommand;

use crate::agents::drbd::fence::{fence_peer, unfence_peer, HandlerEnv};
use crate::agents::drbd::recovery::{self, Operator, RecoveryError, Target};
use crate::sys::cib::CibTool;
use crate::sys::drbd::RealDrbd;

#[derive(Subcommand)]
pub enum DrbdCmd {
    /// DRBD fence-peer handler: forbid promotion anywhere but here while the peer is cut off.
    FencePeer {
        /// Seconds to wait for the cluster to learn the peer's fate.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
        /// Work on a CIB file instead of the live cluster (also taken from CIB_file).
        #[arg(long)]
        cib_file: Option<PathBuf>,
    },
    /// DRBD after-resync-target handler: remove the constraint fence-peer placed.
    UnfencePeer {
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(long)]
        cib_file: Option<PathBuf>,
    },
    /// Recover from a split brain: run on the victim first (its changes since the split are
    /// discarded), then on the survivor.
    SplitBrain {
        #[arg(long)]
        resource: String,
        /// The node whose data is kept.
        #[arg(long)]
        survivor: String,
        /// Volume group on top of DRBD to deactivate on the victim first.
        #[arg(long)]
        vg: Option<String>,
        #[command(flatten)]
        here: Here,
    },
    /// The book's "detach a problematic node": cut the link and force a full resync of
    /// the problem node from the good one (or, with --destroy, wipe the problem node's DRBD
    /// metadata). Run on both nodes.
    DetachNode {
        #[arg(long)]
        resource: String,
        /// The node whose data is good.
        #[arg(long)]
        good: String,
        /// On the problem node: take the resource down and destroy its metadata.
        #[arg(long)]
        destroy: bool,
        #[command(flatten)]
        here: Here,
    },
}

/// Where a recovery runs: this node, its DRBD configuration, and whether to ask.
#[derive(clap::Args)]
pub struct Here {
    /// This node's name (default: crm_node -n, else the host name).
    #[arg(long)]
    node: Option<String>,
    #[arg(long, default_value = "/etc/drbd.conf")]
    drbdconf: PathBuf,
    /// Do not ask for confirmation (on the victim of a split brain, or the problem node).
    #[arg(long)]
    yes: bool,
}

pub fn run(cmd: DrbdCmd, vars: &BTreeMap<String, String>) -> Result<u8> {
    let cib_of = |f: Option<PathBuf>| CibTool {
        file: f.or_else(|| vars.get("CIB_file").map(PathBuf::from)),
    };
    let limit = |s: u64| Duration::from_secs(s.clamp(1, 3600));
    match cmd {
        DrbdCmd::SplitBrain {
            resource,
            survivor,
            vg,
            here,
        } => recover(here, &resource, |t, op| {
            recovery::split_brain(t, &survivor, vg.as_deref(), op)
        }),
        DrbdCmd::DetachNode {
            resource,
            good,
            destroy,
            here,
        } => recover(here, &resource, |t, op| {
            recovery::detach_node(t, &good, destroy, op)
        }),
        DrbdCmd::FencePeer { timeout, cib_file } => handler(vars, |env| {
            let cib = cib_of(cib_file);
            let me = cib.local_node(Instant::now() + Duration::from_secs(5));
            fence_peer(env, &cib, &RealDrbd, &me, limit(timeout))
        }),
        DrbdCmd::UnfencePeer { timeout, cib_file } => handler(vars, |env| {
            unfence_peer(env, &cib_of(cib_file), limit(timeout))
        }),
    }
}

/// Runs a DRBD handler on the variables DRBD set; its exit code goes back to DRBD.
fn handler(
    vars: &BTreeMap<String, String>,
    f: impl FnOnce(&HandlerEnv) -> (u8, String),
) -> Result<u8> {
    let env = match HandlerEnv::from_vars(|k| vars.get(k).cloned()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pgstack drbd: {e}");
            return Ok(1);
        }
    };
    let (code, msg) = f(&env);
    eprintln!("pgstack drbd: {msg} (exit {code})");
    Ok(code)
}

/// The terminal as the recoveries' operator: progress on stdout, confirmation by typing
/// the resource name unless `--yes`.
struct Terminal {
    yes: bool,
}

impl Operator for Terminal {
    fn say(&mut self, line: &str) {
        println!("{line}");
    }

    fn confirm(&mut self, res: &str) -> bool {
        if self.yes {
            return true;
        }
        print!("type the resource name ({res}) to go on: ");
        let mut line = String::new();
        std::io::stdout().flush().is_ok()
            && std::io::stdin().read_line(&mut line).is_ok()
            && line.trim() == res
    }
}

/// Runs a recovery of `res` on this node (`--node`, else what the cluster calls it).
fn recover(
    Here {
        node,
        drbdconf,
        yes,
    }: Here,
    res: &str,
    f: impl FnOnce(&Target, &mut Terminal) -> Result<(), RecoveryError>,
) -> Result<u8> {
    let me = node
        .unwrap_or_else(|| CibTool::default().local_node(Instant::now() + Duration::from_secs(5)));
    let t = Target {
        drbd: &RealDrbd,
        conf: &drbdconf,
        res,
        me: &me,
    };
    f(&t, &mut Terminal { yes })?;
    Ok(0)
}
