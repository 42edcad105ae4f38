//! `pgstack vip claim|release|move`: the book's manual VIP move, done safely. Claim and
//! release run the `vip` agent's own start and stop, so they check and announce exactly as
//! the cluster does.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::{Args, Subcommand};

use crate::agents;
use crate::sys::runner::{run as run_cmd, Cmd};

#[derive(Args, Clone)]
pub struct Target {
    /// The address, with an optional prefix length: 10.99.1.50/24.
    #[arg(long)]
    ip: String,
    /// Interface to put it on (found from the routing table when omitted).
    #[arg(long)]
    iface: Option<String>,
    /// Label, as in eth0:<label>.
    #[arg(long)]
    label: Option<String>,
    /// Run inside this network namespace.
    #[arg(long)]
    netns: Option<String>,
}

#[derive(Subcommand)]
pub enum VipCmd {
    /// Add the address here once nobody else answers for it, then announce it.
    Claim {
        #[command(flatten)]
        target: Target,
        /// Gratuitous ARP rounds (arping -A -c N).
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// Skip the duplicate-address probe.
        #[arg(long)]
        no_probe: bool,
        /// Seconds to keep probing while another host still answers for the address.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Remove the address from this host.
    Release {
        #[command(flatten)]
        target: Target,
    },
    /// Release (here, or on the old holder with --release-cmd), then claim the address
    /// here as soon as nobody answers for it.
    Move {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// Seconds for the whole move (release, then waiting for the address to be free).
        #[arg(long, default_value_t = 10)]
        timeout: u64,
        /// Command releasing the address on the old holder, run without a shell
        /// (everything after --), e.g. -- ssh pg1 pgstack vip release --ip 10.99.1.50
        #[arg(last = true)]
        release_cmd: Vec<String>,
    },
}

fn agent_env(
    t: &Target,
    vars: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<BTreeMap<String, String>> {
    let (ip, prefix) = match t.ip.split_once('/') {
        Some((a, p)) => (a.to_string(), Some(p.to_string())),
        None => (t.ip.clone(), None),
    };
    let mut m = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        m.insert(format!("OCF_RESKEY_{k}"), v.to_string());
    };
    set("ip", &ip);
    if let Some(p) = &prefix {
        set("cidr_netmask", p);
    }
    if let Some(i) = &t.iface {
        set("nic", i);
    }
    if let Some(l) = &t.label {
        set("iflabel", l);
    }
    if let Some(n) = &t.netns {
        set("network_namespace", n);
    }
    set("arp_mode", "reply");
    set("arp_bg", "false");
    set("CRM_meta_timeout", &timeout.as_millis().to_string());
    m.insert("OCF_RESOURCE_INSTANCE".into(), format!("pgstack-vip-{ip}"));
    m.insert("HA_LOGFACILITY".into(), "none".into());
    if let Some(v) = vars.get("HA_RSCTMP") {
        m.insert("HA_RSCTMP".into(), v.clone());
    }
    Ok(m)
}

fn agent(action: &str, m: BTreeMap<String, String>) -> Result<()> {
    let (out, _) = agents::run("vip", action, m);
    if out.code.as_u8() == 0 {
        Ok(())
    } else {
        Err(anyhow!(
            "{}: {}",
            out.code,
            out.exit_reason.unwrap_or_default()
        ))
    }
}

/// Runs the agent's start: with `probe`, it keeps probing while another host answers for
/// the address and fails naming that host only when `timeout` is spent.
fn claim(
    t: &Target,
    count: u32,
    probe: bool,
    timeout: Duration,
    vars: &BTreeMap<String, String>,
) -> Result<()> {
    let mut m = agent_env(t, vars, timeout)?;
    m.insert("OCF_RESKEY_arp_count".into(), count.to_string());
    m.insert("OCF_RESKEY_run_arping".into(), probe.to_string());
    m.insert("OCF_RESKEY_arp_probe_wait".into(), "500".into());
    agent("start", m)
}

pub fn run(cmd: VipCmd, vars: BTreeMap<String, String>) -> Result<u8> {
    match cmd {
        VipCmd::Claim {
            target,
            count,
            no_probe,
            timeout,
        } => {
            claim(&target, count, !no_probe, seconds(timeout), &vars)?;
            println!("{} claimed", target.ip);
            Ok(0)
        }
        VipCmd::Release { target } => {
            agent("stop", agent_env(&target, &vars, Duration::from_secs(20))?)?;
            println!("{} released", target.ip);
            Ok(0)
        }
        VipCmd::Move {
            target,
            count,
            timeout,
            release_cmd,
        } => {
            let deadline = Instant::now() + seconds(timeout);
            if let Some((prog, args)) = release_cmd.split_first() {
                let out = run_cmd(&Cmd::new(prog).args(args), deadline)?;
                if !out.success() {
                    bail!(
                        "release command {} failed: {}",
                        release_cmd.join(" "),
                        out.describe()
                    );
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            claim(&target, count, true, left.max(MIN_CLAIM), &vars)?;
            println!("{} moved here", target.ip);
            Ok(0)
        }
    }
}

/// A timeout given in seconds, bounded to what an operator can mean.
fn seconds(s: u64) -> Duration {
    Duration::from_secs(s.clamp(1, 3600))
}

/// The least time a claim gets after a slow release command: one probe and the add.
const MIN_CLAIM: Duration = Duration::from_secs(1);
