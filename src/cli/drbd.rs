//! `pgstack drbd ...`: DRBD handlers and recipes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use clap::Subcommand;

use crate::agents::drbd::fence::{fence_peer, unfence_peer, HandlerEnv};
use crate::sys::cib::CibTool;
use crate::sys::drbd::{check_resource_name, Drbd, RealDrbd, Role};
use crate::sys::runner::{run as run_cmd, Cmd};

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
        /// This node's name (default: crm_node -n, else the host name).
        #[arg(long)]
        node: Option<String>,
        #[arg(long, default_value = "/etc/drbd.conf")]
        drbdconf: PathBuf,
        /// Do not ask for confirmation on the victim.
        #[arg(long)]
        yes: bool,
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
        #[arg(long)]
        node: Option<String>,
        #[arg(long, default_value = "/etc/drbd.conf")]
        drbdconf: PathBuf,
        #[arg(long)]
        yes: bool,
    },
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
            node,
            drbdconf,
            yes,
        } => split_brain(&resource, &survivor, vg.as_deref(), node, &drbdconf, yes),
        DrbdCmd::DetachNode {
            resource,
            good,
            destroy,
            node,
            drbdconf,
            yes,
        } => detach_node(&resource, &good, destroy, node, &drbdconf, yes),
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

fn adm(conf: &std::path::Path, args: &[&str], res: &str) -> Result<()> {
    RealDrbd.adm(conf, args, res, Instant::now() + Duration::from_secs(60))?;
    println!("drbdadm {} {res}: done", args.join(" "));
    Ok(())
}

/// The book's split-brain recovery. The victim drops its changes; the survivor reconnects
/// last, so the decision can be aborted until then.
fn split_brain(
    res: &str,
    survivor: &str,
    vg: Option<&str>,
    node: Option<String>,
    conf: &std::path::Path,
    yes: bool,
) -> Result<u8> {
    if let Err(why) = check_resource_name(res) {
        bail!("--resource {res:?} refused: {why}");
    }
    let me = node
        .unwrap_or_else(|| CibTool::default().local_node(Instant::now() + Duration::from_secs(5)));
    let st = RealDrbd
        .state(res, Instant::now() + Duration::from_secs(30))?
        .ok_or_else(|| anyhow!("{res} is not up on this node"))?;
    if st.peers.iter().any(|p| p.connected()) {
        bail!("{res} is connected to its peer: there is no split brain to resolve here");
    }
    if me == survivor {
        println!("{me} is the survivor: its data is kept");
        if st.peers.iter().any(|p| p.connection == "StandAlone") {
            adm(conf, &["connect"], res)?;
        } else {
            println!("{res} is already waiting for its peer");
        }
        return Ok(0);
    }
    println!("{me} is the victim: every change made here since the split brain is discarded, {survivor}'s data is kept");
    confirm(res, yes)?;
    if let Some(vg) = vg {
        if !vg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
            || vg.starts_with('-')
        {
            bail!("--vg {vg:?} is not a volume group name");
        }
        let out = run_cmd(
            &Cmd::new("vgchange").args(["-a", "n", vg]),
            Instant::now() + Duration::from_secs(60),
        )?;
        if !out.success() {
            bail!("vgchange -a n {vg}: {}", out.describe());
        }
        println!("vgchange -a n {vg}: done");
    }
    if st.role == Role::Primary {
        adm(conf, &["secondary"], res)?;
    }
    if st.peers.iter().any(|p| p.connection != "StandAlone") {
        adm(conf, &["disconnect"], res)?;
    }
    adm(conf, &["connect", "--discard-my-data"], res)?;
    println!(
        "now run on {survivor}: pgstack drbd split-brain --resource {res} --survivor {survivor}"
    );
    Ok(0)
}

/// Asks for the resource name on the terminal unless `yes`.
fn confirm(res: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    print!("type the resource name ({res}) to go on: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if line.trim() != res {
        bail!("not confirmed; nothing changed");
    }
    Ok(())
}

fn detach_node(
    res: &str,
    good: &str,
    destroy: bool,
    node: Option<String>,
    conf: &std::path::Path,
    yes: bool,
) -> Result<u8> {
    if let Err(why) = check_resource_name(res) {
        bail!("--resource {res:?} refused: {why}");
    }
    let me = node
        .unwrap_or_else(|| CibTool::default().local_node(Instant::now() + Duration::from_secs(5)));
    let st = RealDrbd.state(res, Instant::now() + Duration::from_secs(30))?;
    if me == good {
        if destroy {
            bail!("--destroy belongs on the problem node, not on {good}");
        }
        let st = st.ok_or_else(|| anyhow!("{res} is not up on {me}, the good node"))?;
        if st.disk != crate::sys::drbd::Disk::UpToDate {
            bail!(
                "{res} on {me} is {:?}, not UpToDate: it cannot be the good node",
                st.disk
            );
        }
        if st.peers.iter().any(|p| p.connection != "StandAlone") {
            adm(conf, &["disconnect"], res)?;
        }
        adm(conf, &["invalidate-remote"], res)?;
        println!("{res}: the peer will be fully resynced from {me} when it reconnects (drbdadm connect {res} on both)");
        return Ok(0);
    }
    println!(
        "{me} is the problem node: its copy of {res} will be {}",
        if destroy {
            "destroyed"
        } else {
            "overwritten by a full resync from the good node"
        }
    );
    confirm(res, yes)?;
    if destroy {
        let lower = RealDrbd
            .adm(
                conf,
                &["sh-ll-dev"],
                res,
                Instant::now() + Duration::from_secs(30),
            )
            .map_err(|e| anyhow!("cannot find the backing device of {res}: {e}"))?;
        let dev = lower.lines().next().unwrap_or("").trim().to_string();
        if !dev.starts_with("/dev/") {
            bail!("cannot find the backing device of {res}: drbdadm sh-ll-dev printed {dev:?}");
        }
        if st.is_some() {
            adm(conf, &["down"], res)?;
        }
        adm(conf, &["--", "--force", "wipe-md"], res)?;
        zero_first_mib(&dev)?;
        println!("{res}: metadata wiped and the first MiB of {dev} zeroed");
        return Ok(0);
    }
    let st = st.ok_or_else(|| anyhow!("{res} is not up on {me}"))?;
    if st.role == Role::Primary {
        bail!("{res} is Primary on {me}: demote it (or stop the cluster resource) first");
    }
    if st.peers.iter().any(|p| p.connection != "StandAlone") {
        adm(conf, &["disconnect"], res)?;
    }
    adm(conf, &["invalidate"], res)?;
    println!("{res}: local data marked invalid; it is resynced from {good} when both reconnect");
    Ok(0)
}

fn zero_first_mib(dev: &str) -> Result<()> {
    use std::fs::OpenOptions;
    let mut f = OpenOptions::new()
        .write(true)
        .open(dev)
        .map_err(|e| anyhow!("opening {dev}: {e}"))?;
    f.write_all(&vec![0u8; 1 << 20])
        .map_err(|e| anyhow!("writing {dev}: {e}"))?;
    f.sync_all().map_err(|e| anyhow!("syncing {dev}: {e}"))?;
    Ok(())
}
