//! `pgstack arp announce|probe`: the `arping -A` of the book's recipe, and an RFC 5227
//! duplicate-address probe, on raw sockets.

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;

use crate::sys::arp::{format_mac, parse_mac, ArpMode, Sender};
use crate::sys::net::{send_rounds, Announce, ArpProbe, Net, RealNet};
use crate::sys::netlink::Link;

#[derive(Subcommand)]
pub enum ArpCmd {
    /// Send gratuitous ARP (IPv4) or unsolicited Neighbor Advertisements (IPv6) for an address.
    Announce {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        ip: IpAddr,
        #[arg(long, default_value_t = 3)]
        count: u32,
        /// Milliseconds between rounds.
        #[arg(long, default_value_t = 200)]
        interval: u64,
        /// reply (as arping -A), request, or both.
        #[arg(long, default_value = "reply")]
        mode: String,
        /// Ethernet destination.
        #[arg(long, default_value = "ff:ff:ff:ff:ff:ff")]
        dst_mac: String,
        /// Milliseconds to wait before the first round.
        #[arg(long, default_value_t = 0)]
        delay: u64,
        /// Run inside this network namespace.
        #[arg(long)]
        netns: Option<String>,
        /// Send on this inherited raw socket (the vip agent's background announcer).
        #[arg(long, hide = true)]
        socket_fd: Option<i32>,
    },
    /// Ask whether another host answers ARP for an IPv4 address: exit 0 free, 1 taken, 2 error.
    Probe {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        ip: IpAddr,
        /// Milliseconds to listen for an answer.
        #[arg(long, default_value_t = 1000)]
        wait: u64,
        /// Probes sent within that time.
        #[arg(long, default_value_t = 3)]
        count: u32,
        #[arg(long)]
        netns: Option<String>,
    },
}

pub fn link_named(net: &dyn Net, name: &str) -> Result<Link> {
    let links = net.links(Instant::now() + Duration::from_secs(5))?;
    links
        .into_iter()
        .find(|l| l.name == name)
        .ok_or_else(|| anyhow!("no interface named {name:?}"))
}

pub fn run(cmd: ArpCmd) -> Result<u8> {
    let net = RealNet;
    match cmd {
        ArpCmd::Announce {
            iface,
            ip,
            count,
            interval,
            mode,
            dst_mac,
            delay,
            netns,
            socket_fd,
        } => {
            if let Some(ns) = netns {
                net.enter_netns(&ns)?;
            }
            let mode = ArpMode::parse(&mode)
                .ok_or_else(|| anyhow!("--mode {mode:?}: use reply, request or both"))?;
            let dst = parse_mac(&dst_mac)
                .ok_or_else(|| anyhow!("--dst-mac {dst_mac:?} is not a MAC address"))?;
            if interval == 0 || interval > 60_000 {
                bail!("--interval {interval}: must be 1 to 60000 ms");
            }
            let link = link_named(&net, &iface)?;
            let sender = match socket_fd {
                Some(fd) => Sender::adopt(fd, &link)?,
                None => Sender::open(&link)?,
            };
            let a = Announce {
                mode,
                dst,
                count,
                interval: Duration::from_millis(interval),
            };
            let first = Instant::now() + Duration::from_millis(delay.min(60_000));
            let budget = Duration::from_millis(interval) * count + Duration::from_secs(5);
            let sent = send_rounds(&sender, ip, &a, count, first, first + budget)
                .with_context(|| format!("announcing {ip} on {iface}"))?;
            if sent < count {
                bail!("only {sent} of {count} announcements sent");
            }
            Ok(0)
        }
        ArpCmd::Probe {
            iface,
            ip,
            wait,
            count,
            netns,
        } => {
            let r = (|| -> Result<Option<[u8; 6]>> {
                if let Some(ns) = netns {
                    net.enter_netns(&ns)?;
                }
                let IpAddr::V4(v4) = ip else {
                    bail!("ARP probes are for IPv4; IPv6 uses duplicate address detection")
                };
                let link = link_named(&net, &iface)?;
                let p = ArpProbe {
                    tries: count.max(1),
                    wait: Duration::from_millis(wait.clamp(1, 60_000)),
                };
                Ok(net.arp_probe(&link, v4, p)?)
            })();
            match r {
                Ok(None) => {
                    println!("{ip} is free on {iface}");
                    Ok(0)
                }
                Ok(Some(mac)) => {
                    println!("{ip} is in use by {}", format_mac(&mac));
                    Ok(1)
                }
                Err(e) => {
                    eprintln!("pgstack: error: {e:#}");
                    Ok(2)
                }
            }
        }
    }
}
