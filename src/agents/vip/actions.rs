//! The actions of `vip`: where the address goes, start, stop and monitor.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Broadcast, VipConfig, VipFailure, INFO};
use crate::ocf::metadata::AgentInfo;
use crate::ocf::{Agent, Ctx, OcfError, Status};
use crate::sys::arp::{format_mac, Mac};
use crate::sys::net::{Announce, Announcement, ArpProbe, Net};
use crate::sys::netlink::{broadcast_of, contains, Added, Addr, AddrRequest, Link, Removed};
use crate::sys::SysError;
use crate::wait::{self, Backoff};

/// Where the address goes: the link and the prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub link: Link,
    pub prefix: u8,
}

pub struct Vip<N: Net> {
    net: N,
}

impl<N: Net> Vip<N> {
    pub fn new(net: N) -> Self {
        Vip { net }
    }

    pub fn net(&self) -> &N {
        &self.net
    }

    fn enter(&self, cfg: &VipConfig) -> Result<(), OcfError> {
        if let Some(ns) = &cfg.link.netns {
            self.net
                .enter_netns(ns)
                .map_err(|e| OcfError::Installed(format!("network_namespace={ns}: {e}")))?;
        }
        Ok(())
    }

    fn pidfile(ctx: &Ctx) -> PathBuf {
        PathBuf::from(ctx.env.rsc_tmp()).join(format!(
            "pgstack-vip-{}.announcer",
            ctx.env.instance_file_name()
        ))
    }

    /// The link and prefix for the address, as IPaddr2's findif decides them.
    pub fn place(&self, cfg: &VipConfig, ctx: &Ctx) -> Result<Placement, OcfError> {
        let d = ctx.deadline.instant();
        let links = self.net.links(d)?;
        let named = match &cfg.link.nic {
            Some(n) => Some(
                links
                    .iter()
                    .find(|l| &l.name == n)
                    .cloned()
                    .ok_or_else(|| {
                        OcfError::Installed(format!("nic={n}: no such interface on this node"))
                    })?,
            ),
            None => None,
        };
        if let (Some(link), Some(prefix)) = (&named, cfg.prefix) {
            return Ok(Placement {
                link: link.clone(),
                prefix,
            });
        }
        let routes = self.net.routes(cfg.family(), d)?;
        let name_of = |i: u32| {
            links
                .iter()
                .find(|l| l.index == i)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| i.to_string())
        };
        let mut holding: Vec<(u8, u32, IpAddr)> = routes
            .iter()
            .filter_map(|r| r.connected())
            .filter(|(dst, len, _)| contains(*dst, *len, cfg.ip))
            .filter(|(_, _, oif)| named.as_ref().is_none_or(|l| l.index == *oif))
            .filter(|(_, _, oif)| links.iter().any(|l| l.index == *oif && !l.is_loopback()))
            .map(|(dst, len, oif)| (len, oif, dst))
            .collect();
        holding.sort();
        holding.dedup();
        // A prefix wider than the connected network would send the whole wider range out
        // of that interface (its prefix route shadows the gateway's): as IPaddr2's findif,
        // only a network that holds all of ip/cidr_netmask places an address without nic.
        let mut cands: Vec<(u8, u32)> = holding
            .iter()
            .filter(|(len, _, _)| cfg.prefix.is_none_or(|p| *len <= p))
            .map(|(len, oif, _)| (*len, *oif))
            .collect();
        cands.dedup();
        let Some(&(best, _)) = cands.iter().max_by_key(|(len, _)| *len) else {
            if let (Some(p), Some((len, oif, dst))) = (cfg.prefix, holding.last()) {
                return Err(OcfError::Installed(format!(
                    "cidr_netmask={p} is wider than {dst}/{len}, the connected network of {} \
                     that holds {}; use a prefix of {len} or more, or set nic to place it \
                     there anyway",
                    name_of(*oif),
                    cfg.ip
                )));
            }
            return Err(OcfError::Installed(match &cfg.link.nic {
                Some(n) => format!(
                    "no connected route on {n} contains {}; set cidr_netmask",
                    cfg.ip
                ),
                None => format!(
                    "no interface has a connected route containing {}; set nic and cidr_netmask",
                    cfg.ip
                ),
            }));
        };
        let top: Vec<u32> = cands
            .iter()
            .filter(|(l, _)| *l == best)
            .map(|(_, o)| *o)
            .collect();
        if top.len() > 1 {
            let list: Vec<String> = top.iter().map(|i| name_of(*i)).collect();
            return Err(OcfError::Installed(format!(
                "{} matches a /{best} route on several interfaces ({}); set nic",
                cfg.ip,
                list.join(", ")
            )));
        }
        let link = match named {
            Some(l) => l,
            None => links
                .iter()
                .find(|l| l.index == top[0])
                .cloned()
                .ok_or_else(|| OcfError::Installed(format!("interface {} vanished", top[0])))?,
        };
        Ok(Placement {
            link,
            prefix: cfg.prefix.unwrap_or(best),
        })
    }

    fn find_addr(&self, cfg: &VipConfig, ctx: &Ctx) -> Result<Vec<Addr>, OcfError> {
        Ok(self
            .net
            .addrs(cfg.family(), ctx.deadline.instant())?
            .into_iter()
            .filter(|a| a.ip == cfg.ip)
            .collect())
    }

    fn request(&self, cfg: &VipConfig, p: &Placement) -> AddrRequest {
        let broadcast = match (&cfg.broadcast, cfg.ip) {
            (Broadcast::Auto, IpAddr::V4(v4)) => broadcast_of(v4, p.prefix),
            (Broadcast::Addr(b), _) => Some(*b),
            _ => None,
        };
        AddrRequest {
            index: p.link.index,
            ip: cfg.ip,
            prefix: p.prefix,
            label: if cfg.ip.is_ipv4() {
                cfg.label(&p.link.name)
            } else {
                None
            },
            broadcast,
            options: cfg.options,
        }
    }

    /// Waits for IPv6 duplicate address detection to finish; a failed or unfinished
    /// detection removes the address again.
    fn await_dad(&self, cfg: &VipConfig, p: &Placement, ctx: &Ctx) -> Result<(), OcfError> {
        if cfg.ip.is_ipv4() || cfg.options.nodad {
            return Ok(());
        }
        let mut last: Option<Addr> = None;
        let settled = ctx.deadline.poll(Backoff::millis(5, 50), || {
            let a = self
                .find_addr(cfg, ctx)?
                .into_iter()
                .find(|a| a.index == p.link.index);
            let Some(a) = a else {
                return Err(OcfError::generic(format!(
                    "{} vanished from {} during DAD",
                    cfg.ip, p.link.name
                )));
            };
            if a.dad_failed() {
                let _ = self.net.del_addr(&a, ctx.deadline.instant());
                return Err(VipFailure::DadFailed {
                    ip: cfg.ip,
                    link: p.link.name.clone(),
                }
                .into());
            }
            let done = !a.is_tentative();
            last = Some(a);
            Ok(done.then_some(()))
        })?;
        if settled.is_some() {
            return Ok(());
        }
        if let Some(a) = last {
            // The deadline has passed: give the removal a moment of its own.
            let _ = self
                .net
                .del_addr(&a, Instant::now() + Duration::from_millis(50));
        }
        Err(OcfError::Deadline {
            what: format!("IPv6 duplicate address detection of {}", cfg.ip),
            ms: ctx.deadline.elapsed().as_millis(),
        })
    }

    fn announce(&self, cfg: &VipConfig, link: &Link, ctx: &Ctx) -> Result<(), OcfError> {
        if cfg.announce.count == 0 || !can_announce(link) {
            return Ok(());
        }
        let pidfile = Self::pidfile(ctx);
        let _ = self.net.cancel_announcer(&pidfile, cfg.ip);
        let bg = cfg.background.then_some(pidfile.as_path());
        let a = Announcement {
            link,
            ip: cfg.ip,
            how: &cfg.announce,
            background: bg,
        };
        if let Some(pid) = self.net.announce(&a, ctx.deadline.instant())? {
            ctx.log
                .debug(&format!("announcer {pid} sends the remaining rounds"));
        }
        Ok(())
    }

    /// Probes (RFC 5227) until no other host answers for the address, and fails only
    /// when one still does at the deadline. An old holder that is being fenced, or hung
    /// but still answering, goes quiet seconds later; failing at its first answer would
    /// leave the address down for good (a failed start bans the node). The last probe
    /// gets its full listening time and ends [`CLAIM_RESERVE`] before the deadline, so
    /// the address can still be added after it.
    fn await_free(&self, cfg: &VipConfig, link: &Link, ctx: &Ctx) -> Result<(), OcfError> {
        let IpAddr::V4(v4) = cfg.ip else {
            return Ok(());
        };
        if !can_probe(link) {
            return Ok(());
        }
        let listen = cfg.probe_wait.min(ctx.deadline.remaining());
        let now = Instant::now();
        let last = ctx
            .deadline
            .instant()
            .checked_sub(listen + CLAIM_RESERVE)
            .filter(|t| *t > now)
            .unwrap_or(now);
        let mut holder: Option<Mac> = None;
        let free = wait::poll_until(last, Backoff::millis(50, 100), || {
            match self.net.arp_probe(
                link,
                v4,
                ArpProbe {
                    tries: 2,
                    wait: listen,
                },
            )? {
                None => Ok(Some(())),
                Some(mac) => {
                    if holder != Some(mac) {
                        ctx.log.warn(&format!(
                            "{} is still answered by {} on {}; probing until the start \
                             deadline ({} ms left)",
                            cfg.ip,
                            format_mac(&mac),
                            link.name,
                            ctx.deadline.remaining().as_millis()
                        ));
                    }
                    holder = Some(mac);
                    Ok::<_, SysError>(None)
                }
            }
        })?;
        match (free, holder) {
            (Some(()), Some(mac)) => {
                ctx.log.info(&format!(
                    "{} is no longer answered by {} after {} ms: claiming it",
                    cfg.ip,
                    format_mac(&mac),
                    ctx.deadline.elapsed().as_millis()
                ));
                Ok(())
            }
            (Some(()), None) => Ok(()),
            (None, mac) => Err(VipFailure::Conflict {
                ip: cfg.ip,
                mac: mac.map(|m| format_mac(&m)).unwrap_or_default(),
                ms: ctx.deadline.elapsed().as_millis(),
            }
            .into()),
        }
    }

    /// Another host's MAC if it answers ARP for the address (one probe round).
    fn conflicting_host(
        &self,
        cfg: &VipConfig,
        link: &Link,
        ctx: &Ctx,
    ) -> Result<Option<Mac>, OcfError> {
        let IpAddr::V4(v4) = cfg.ip else {
            return Ok(None);
        };
        if !can_probe(link) {
            return Ok(None);
        }
        let wait = cfg.probe_wait.min(ctx.deadline.remaining());
        Ok(self.net.arp_probe(link, v4, ArpProbe { tries: 2, wait })?)
    }
}

/// Time kept after the last duplicate-address probe to add and announce the address.
const CLAIM_RESERVE: Duration = Duration::from_millis(100);

/// Announcements need an ARP-speaking link with a hardware address.
fn can_announce(link: &Link) -> bool {
    !link.is_noarp() && link.mac.is_some()
}

/// ARP probes need the same, and a link other hosts are on.
fn can_probe(link: &Link) -> bool {
    can_announce(link) && !link.is_loopback()
}

impl<N: Net> Agent for Vip<N> {
    type Config = VipConfig;

    fn info(&self) -> &'static AgentInfo {
        &INFO
    }

    fn validate(&self, cfg: &VipConfig, ctx: &Ctx) -> Result<(), OcfError> {
        self.enter(cfg)?;
        let p = self.place(cfg, ctx)?;
        if cfg.check_conflict && cfg.ip.is_ipv4() && p.link.mac.is_none() && !p.link.is_loopback() {
            ctx.log.warn(&format!(
                "{} has no MAC address: no duplicate-address probe possible",
                p.link.name
            ));
        }
        Ok(())
    }

    fn start(&self, cfg: &VipConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let p = self.place(cfg, ctx)?;
        if !p.link.is_up() {
            return Err(OcfError::Generic(format!(
                "interface {} is down",
                p.link.name
            )));
        }
        let present = self.find_addr(cfg, ctx)?;
        if let Some(a) = present.iter().find(|a| a.index == p.link.index) {
            let want = self.request(cfg, &p);
            let label = |l: &Option<String>| l.clone().unwrap_or_else(|| p.link.name.clone());
            let label_ok = cfg.ip.is_ipv6() || label(&a.label) == label(&want.label);
            let prefix_ok = cfg.prefix.is_none() || a.prefix == p.prefix;
            if !a.dad_failed() && label_ok && prefix_ok {
                ctx.log
                    .info(&format!("{} is already on {}", cfg.ip, p.link.name));
                return Ok(());
            }
            ctx.log.info(&format!(
                "{} is on {} with another label or prefix, or failed DAD: re-adding it",
                cfg.ip, p.link.name
            ));
            self.net.del_addr(a, ctx.deadline.instant())?;
        } else if let Some(a) = present.first() {
            return Err(OcfError::Generic(format!(
                "{} is already configured on another interface (index {}); not adding it to {}",
                cfg.ip, a.index, p.link.name
            )));
        }
        if cfg.check_conflict {
            self.await_free(cfg, &p.link, ctx)?;
        }
        let req = self.request(cfg, &p);
        if self.net.add_addr(&req, ctx.deadline.instant())? == Added::Existed {
            ctx.log
                .info(&format!("{} appeared on {} meanwhile", cfg.ip, p.link.name));
        }
        self.await_dad(cfg, &p, ctx)?;
        self.announce(cfg, &p.link, ctx)?;
        ctx.log
            .info(&format!("{}/{} added to {}", cfg.ip, p.prefix, p.link.name));
        Ok(())
    }

    fn stop(&self, cfg: &VipConfig, ctx: &Ctx) -> Result<(), OcfError> {
        if let Err(e) = self.enter(cfg) {
            ctx.log.warn(&format!("{e}: nothing to stop"));
            return Ok(());
        }
        if let Err(e) = self.net.cancel_announcer(&Self::pidfile(ctx), cfg.ip) {
            ctx.log.warn(&format!("cancelling the announcer: {e}"));
        }
        let links = self.net.links(ctx.deadline.instant())?;
        for a in self.find_addr(cfg, ctx)? {
            let name = links
                .iter()
                .find(|l| l.index == a.index)
                .map(|l| l.name.as_str())
                .unwrap_or("?");
            if cfg.link.nic.as_deref().is_some_and(|n| n != name) {
                ctx.log.warn(&format!(
                    "{} is on {name}, not on nic={}: left alone",
                    cfg.ip,
                    cfg.link.nic.as_deref().unwrap_or("")
                ));
                continue;
            }
            if self.net.del_addr(&a, ctx.deadline.instant())? == Removed::Gone {
                ctx.log
                    .info(&format!("{}/{} removed from {name}", a.ip, a.prefix));
            }
        }
        Ok(())
    }

    fn monitor(&self, cfg: &VipConfig, ctx: &Ctx) -> Result<Status, OcfError> {
        if self.enter(cfg).is_err() {
            return Ok(Status::NotRunning(None));
        }
        let present = self.find_addr(cfg, ctx)?;
        if present.is_empty() {
            return Ok(Status::NotRunning(None));
        }
        let links = self.net.links(ctx.deadline.instant())?;
        let on = |a: &Addr| links.iter().find(|l| l.index == a.index).cloned();
        let mine = present.iter().find(|a| match (&cfg.link.nic, on(a)) {
            (Some(n), Some(l)) => &l.name == n,
            (None, Some(_)) => true,
            _ => false,
        });
        let Some(a) = mine else {
            let where_ = present
                .iter()
                .filter_map(on)
                .map(|l| l.name)
                .collect::<Vec<_>>()
                .join(", ");
            let msg = format!(
                "{} is on {where_}, not on nic={}",
                cfg.ip,
                cfg.link.nic.as_deref().unwrap_or("")
            );
            if ctx.is_probe() {
                ctx.log.warn(&msg);
                return Ok(Status::NotRunning(None));
            }
            return Err(OcfError::Generic(msg));
        };
        let link = on(a).expect("filtered above");
        if a.dad_failed() {
            return Err(VipFailure::DadFailed {
                ip: cfg.ip,
                link: link.name,
            }
            .into());
        }
        if cfg.ip.is_ipv4() {
            let want = cfg.label(&link.name).unwrap_or_else(|| link.name.clone());
            let have = a.label.clone().unwrap_or_else(|| link.name.clone());
            if want != have {
                return Err(OcfError::Generic(format!(
                    "{} on {} has label {have}, expected {want}",
                    cfg.ip, link.name
                )));
            }
        }
        if !link.is_up() {
            return Err(OcfError::Generic(format!(
                "{} is on {}, but the interface is down",
                cfg.ip, link.name
            )));
        }
        if ctx.env.check_level >= 10 {
            if let Some(mac) = self.conflicting_host(cfg, &link, ctx)? {
                return Err(VipFailure::InUse {
                    ip: cfg.ip,
                    mac: format_mac(&mac),
                }
                .into());
            }
        }
        if cfg.refresh > 0 && !ctx.is_probe() && can_announce(&link) {
            let a = Announce {
                count: cfg.refresh,
                ..cfg.announce.clone()
            };
            let a = Announcement {
                link: &link,
                ip: cfg.ip,
                how: &a,
                background: None,
            };
            self.net.announce(&a, ctx.deadline.instant())?;
        }
        Ok(Status::Running)
    }
}
