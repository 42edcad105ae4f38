//! `ocf:pgstack:vip`: a floating IPv4 or IPv6 address, the replacement of
//! `ocf:heartbeat:IPaddr2` with the same parameter names.
//!
//! **Manages** one address on one link, through rtnetlink (no `ip` command).
//!
//! **Actions**
//! - `start`: finds the link and prefix from the routing table when not given (the longest
//!   matching connected route; an ambiguity is an error naming every candidate), refuses an
//!   IPv4 address another host already answers ARP for (RFC 5227 probe, `run_arping`),
//!   adds the address with its label, waits for IPv6 duplicate address detection within
//!   the deadline (removing the address again if it failed), then announces it: the first
//!   gratuitous ARP (or unsolicited Neighbor Advertisement) goes out at once, the rest
//!   from a detached announcer in a session of its own, so Pacemaker's kill of the action's
//!   process group cannot cut it short.
//! - `stop`: cancels that announcer and removes the address; an absent address is success.
//! - `monitor`: depth 0 checks the address is on the right link with the right label and
//!   the link is up; depth 10 also probes that no other host answers ARP for it. A missing
//!   link or address is "not running", never an error of configuration.
//! - `validate-all`: syntax errors give 6, problems of this node (no such link, no route)
//!   give 5.
//!
//! **Side effects**: the address, and a pid file of the announcer under `$HA_RSCTMP`.
//! Not promotable.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::ocf::agent::FromParams;
use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::{ParamError, ParamSpec, Params};
use crate::ocf::{Action, Agent, Ctx, ExitCode, OcfCode, OcfError, Status};
use crate::sys::arp::{format_mac, parse_mac, ArpMode, Mac, BROADCAST};
use crate::sys::net::{Announce, Net};
use crate::sys::netlink::{
    broadcast_of, contains, Addr, AddrRequest, Link, AF_INET, AF_INET6, IFA_F_DADFAILED,
    IFA_F_NODAD, IFA_F_NOPREFIXROUTE, IFA_F_TENTATIVE, IFF_NOARP, RTN_UNICAST,
};

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string(
        "ip",
        "IPv4 or IPv6 address",
        "The address to manage, in dotted quad (10.99.0.50) or IPv6 notation (fd00::50). \
         A link-local IPv6 address needs nic.",
    )
    .required()
    .unique(),
    ParamSpec::string(
        "nic",
        "Network interface",
        "The base interface the address goes on (eth0). The alias form eth0:1 is accepted \
         as nic=eth0 with iflabel=1. When empty, the interface whose connected route contains the address is used; several such \
         interfaces are an error.",
    ),
    ParamSpec::string(
        "cidr_netmask",
        "Prefix length or netmask",
        "The prefix length (24) or, for IPv4, a dotted netmask (255.255.255.0). When empty, \
         the prefix of the matching connected route is used.",
    ),
    ParamSpec::string(
        "broadcast",
        "IPv4 broadcast address",
        "The broadcast address for IPv4. Empty or '+' computes it from the prefix (none for \
         /31 and /32); '-' sets none.",
    ),
    ParamSpec::string(
        "iflabel",
        "Interface label",
        "An IPv4 address label appended to the interface name (eth0:pgvip), as ifconfig \
         aliases showed it. Letters, digits, '.', '_' and '-'; with the interface name and \
         the colon at most 15 characters. Not available for IPv6.",
    ),
    ParamSpec::integer(
        "arp_interval",
        "Milliseconds between announcements",
        "Interval between gratuitous ARP packets (or unsolicited Neighbor Advertisements), in \
         milliseconds, from 1 to 10000.",
    )
    .default("200"),
    ParamSpec::integer(
        "arp_count",
        "Announcements at start",
        "How many gratuitous ARP rounds (IPv4) or unsolicited Neighbor Advertisements (IPv6) \
         to send after the address is added, from 0 to 1000.",
    )
    .default("5"),
    ParamSpec::integer(
        "arp_count_refresh",
        "Announcements at each monitor",
        "How many announcements to repeat at each recurring monitor (0 for none).",
    )
    .default("0"),
    ParamSpec::boolean(
        "arp_bg",
        "Announce in the background",
        "Send all announcements but the first from a detached process, so start returns at \
         once. When false, start sends them all itself within its timeout.",
    )
    .default("true"),
    ParamSpec::string(
        "arp_mac",
        "Destination MAC of announcements",
        "The Ethernet destination of gratuitous ARP packets.",
    )
    .default("ffffffffffff"),
    ParamSpec::string(
        "arp_sender",
        "ARP sender",
        "Kept for compatibility with IPaddr2: 'native' (the default), 'send_arp', \
         'iputils_arping' and 'libnet_arping' all use the built-in raw-socket sender; \
         'ipoibarping' (InfiniBand) is not supported.",
    )
    .default("native"),
    ParamSpec::string(
        "arp_mode",
        "Gratuitous ARP operation",
        "Which gratuitous ARP packets each round sends: 'request', 'reply' (as arping -A) \
         or 'both'.",
    )
    .default("both"),
    ParamSpec::boolean(
        "run_arping",
        "Refuse addresses in use",
        "Before adding an IPv4 address, probe (RFC 5227) whether another host already answers \
         for it, and fail the start naming that host's MAC address if one does. Unlike \
         IPaddr2 this is on by default.",
    )
    .default("true"),
    ParamSpec::integer(
        "arp_probe_wait",
        "Milliseconds to wait for a conflicting host",
        "How long the duplicate-address probe listens for an answer, from 10 to 10000 \
         milliseconds.",
    )
    .default("200"),
    ParamSpec::boolean(
        "nodad",
        "Skip IPv6 duplicate address detection",
        "Add an IPv6 address without duplicate address detection.",
    )
    .default("false"),
    ParamSpec::boolean(
        "noprefixroute",
        "No prefix route",
        "Do not create the route for the address's prefix.",
    )
    .default("false"),
    ParamSpec::string(
        "preferred_lft",
        "Preferred lifetime",
        "The preferred lifetime of the address in seconds, or 'forever'. 0 marks an IPv6 \
         address deprecated so it is not chosen as a source address.",
    )
    .default("forever"),
    ParamSpec::string(
        "network_namespace",
        "Network namespace",
        "Manage the address inside this named network namespace (/run/netns/NAME).",
    ),
    ParamSpec::refused("lvs_support", "LVS direct routing (moving the address to lo) is not supported", &["false", "no", "0"]),
    ParamSpec::refused("lvs_ipv6_addrlabel", "LVS IPv6 address labels are not supported", &["false", "no", "0"]),
    ParamSpec::refused("lvs_ipv6_addrlabel_value", "LVS IPv6 address labels are not supported", &["99"]),
    ParamSpec::refused("mac", "CLUSTERIP (iptables) load sharing is not supported", &[]),
    ParamSpec::refused("clusterip_hash", "CLUSTERIP (iptables) load sharing is not supported", &["sourceip-sourceport"]),
    ParamSpec::refused("unique_clone_address", "cloned addresses are not supported", &["false", "no", "0"]),
    ParamSpec::refused("send_arp_opts", "the built-in sender takes arp_mode, arp_mac, arp_count and arp_interval instead", &[]),
    ParamSpec::refused("flush_routes", "routes are left to the routing table's owner", &["false", "no", "0"]),
];

static ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 20),
    ActionSpec::new(Action::Stop, 20),
    ActionSpec::new(Action::Monitor, 20).interval(10).depth(0),
    ActionSpec::new(Action::Monitor, 20).interval(30).depth(10),
    ActionSpec::new(Action::MetaData, 5),
    ActionSpec::new(Action::ValidateAll, 20),
];

pub static INFO: AgentInfo = AgentInfo {
    name: "vip",
    shortdesc: "Floating IPv4/IPv6 address with gratuitous ARP or unsolicited NA",
    longdesc: "Manages a floating IP address through rtnetlink: refuses an address another \
        host already uses, waits for IPv6 duplicate address detection, and announces the \
        address with gratuitous ARP (IPv4) or unsolicited Neighbor Advertisements (IPv6) \
        from a sender that outlives the start action. Parameter names follow \
        ocf:heartbeat:IPaddr2.",
    params: PARAMS,
    actions: ACTIONS,
};

/// Start failures that carry the address and what was found.
#[derive(Debug, thiserror::Error)]
pub enum VipFailure {
    #[error("{ip} is already in use by another host ({mac}); not taking it")]
    Conflict { ip: IpAddr, mac: String },
    #[error("{ip}: IPv6 duplicate address detection failed on {link}; address removed")]
    DadFailed { ip: IpAddr, link: String },
}

impl ExitCode for VipFailure {
    fn code(&self) -> OcfCode {
        OcfCode::ErrGeneric
    }
}
crate::agent_failure!(VipFailure);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcast {
    Auto,
    None,
    Addr(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipConfig {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
    pub nic: Option<String>,
    pub broadcast: Broadcast,
    pub iflabel: Option<String>,
    pub announce: Announce,
    pub refresh: u32,
    pub background: bool,
    pub check_conflict: bool,
    pub probe_wait: Duration,
    pub nodad: bool,
    pub noprefixroute: bool,
    pub preferred_lft: Option<u32>,
    pub netns: Option<String>,
}

impl VipConfig {
    fn label(&self, nic: &str) -> Option<String> {
        self.iflabel.as_ref().map(|l| format!("{nic}:{l}"))
    }
    fn family(&self) -> u8 {
        if self.ip.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }
}

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
        if let Some(ns) = &cfg.netns {
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
        let named = match &cfg.nic {
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
        let mut cands: Vec<(u8, u32)> = routes
            .iter()
            .filter(|r| r.kind == RTN_UNICAST && r.gateway.is_none() && r.dst_len > 0)
            .filter_map(|r| Some((r.dst?, r.dst_len, r.oif?)))
            .filter(|(dst, len, _)| contains(*dst, *len, cfg.ip))
            .filter(|(_, _, oif)| named.as_ref().is_none_or(|l| l.index == *oif))
            .filter(|(_, _, oif)| links.iter().any(|l| l.index == *oif && !l.is_loopback()))
            .map(|(_, len, oif)| (len, oif))
            .collect();
        cands.sort();
        cands.dedup();
        let Some(&(best, _)) = cands.iter().max_by_key(|(len, _)| *len) else {
            return Err(OcfError::Installed(match &cfg.nic {
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
        let name_of = |i: u32| {
            links
                .iter()
                .find(|l| l.index == i)
                .map(|l| l.name.clone())
                .unwrap_or_else(|| i.to_string())
        };
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
        let mut flags = 0;
        if cfg.nodad && cfg.ip.is_ipv6() {
            flags |= IFA_F_NODAD;
        }
        if cfg.noprefixroute {
            flags |= IFA_F_NOPREFIXROUTE;
        }
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
            flags,
            preferred_lft: cfg.preferred_lft,
        }
    }

    /// Waits for IPv6 duplicate address detection to finish.
    fn await_dad(&self, cfg: &VipConfig, p: &Placement, ctx: &Ctx) -> Result<(), OcfError> {
        if cfg.ip.is_ipv4() || cfg.nodad {
            return Ok(());
        }
        let mut nap = Duration::from_millis(5);
        loop {
            let a = self
                .find_addr(cfg, ctx)?
                .into_iter()
                .find(|a| a.index == p.link.index);
            let Some(a) = a else {
                return Err(OcfError::Generic(format!(
                    "{} vanished from {} during DAD",
                    cfg.ip, p.link.name
                )));
            };
            if a.flags & IFA_F_DADFAILED != 0 {
                let _ = self.net.del_addr(&a, ctx.deadline.instant());
                return Err(VipFailure::DadFailed {
                    ip: cfg.ip,
                    link: p.link.name.clone(),
                }
                .into());
            }
            if a.flags & IFA_F_TENTATIVE == 0 {
                return Ok(());
            }
            if ctx.deadline.expired() {
                let _ = self
                    .net
                    .del_addr(&a, ctx.deadline.instant() + Duration::from_millis(50));
                return Err(OcfError::Deadline {
                    what: format!("IPv6 duplicate address detection of {}", cfg.ip),
                    ms: ctx.deadline.elapsed().as_millis(),
                });
            }
            std::thread::sleep(nap.min(ctx.deadline.remaining()));
            nap = (nap * 2).min(Duration::from_millis(50));
        }
    }

    fn announce(&self, cfg: &VipConfig, link: &Link, ctx: &Ctx) -> Result<(), OcfError> {
        if cfg.announce.count == 0 || link.flags & IFF_NOARP != 0 || link.mac.is_none() {
            return Ok(());
        }
        let pidfile = Self::pidfile(ctx);
        let _ = self.net.cancel_announcer(&pidfile, cfg.ip);
        let bg = cfg.background.then_some(pidfile.as_path());
        if let Some(pid) =
            self.net
                .announce(link, cfg.ip, &cfg.announce, bg, ctx.deadline.instant())?
        {
            ctx.log
                .debug(&format!("announcer {pid} sends the remaining rounds"));
        }
        Ok(())
    }

    /// Another host's MAC if it answers ARP for the address.
    fn conflicting_host(
        &self,
        cfg: &VipConfig,
        link: &Link,
        ctx: &Ctx,
    ) -> Result<Option<Mac>, OcfError> {
        let IpAddr::V4(v4) = cfg.ip else {
            return Ok(None);
        };
        if link.flags & IFF_NOARP != 0 || link.is_loopback() || link.mac.is_none() {
            return Ok(None);
        }
        let wait = cfg.probe_wait.min(ctx.deadline.remaining());
        Ok(self.net.arp_probe(link, v4, 2, wait)?)
    }
}

fn parse_prefix(v: &str, ip: &IpAddr) -> Result<u8, ParamError> {
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Ok(n) = v.parse::<u8>() {
        if (1..=max).contains(&n) {
            return Ok(n);
        }
        return Err(ParamError::invalid(
            "cidr_netmask",
            v,
            format!("prefix length must be 1 to {max}"),
        ));
    }
    if ip.is_ipv4() {
        if let Ok(m) = v.parse::<Ipv4Addr>() {
            let bits = u32::from(m);
            let n = bits.leading_ones();
            if bits.checked_shl(n).unwrap_or(0) == 0 && n > 0 {
                return Ok(n as u8);
            }
            return Err(ParamError::invalid(
                "cidr_netmask",
                v,
                "not a contiguous netmask",
            ));
        }
    }
    Err(ParamError::invalid(
        "cidr_netmask",
        v,
        "not a prefix length or netmask",
    ))
}

/// Kernel interface names: 1 to 15 bytes, no '/', ':' or white space.
pub fn valid_ifname(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 15
        && n != "."
        && n != ".."
        && n.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

pub fn parse_ip(v: &str) -> Result<IpAddr, ParamError> {
    let ip: IpAddr = v
        .trim()
        .parse()
        .map_err(|_| ParamError::invalid("ip", v, "not an IPv4 or IPv6 address"))?;
    let bad = match ip {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback()
        }
        IpAddr::V6(a) => a.is_unspecified() || a.is_multicast() || a.is_loopback(),
    };
    if bad {
        return Err(ParamError::invalid(
            "ip",
            v,
            "not a unicast address usable as a floating IP",
        ));
    }
    Ok(ip)
}

pub fn configure(p: &Params) -> Result<VipConfig, ParamError> {
    let ip_raw = p.str("ip").unwrap_or_default();
    let ip = parse_ip(ip_raw)?;
    let prefix = p
        .str("cidr_netmask")
        .map(|v| parse_prefix(v.trim(), &ip))
        .transpose()?;
    let mut nic = p.str("nic").map(str::trim).map(str::to_string);
    let mut iflabel = p.str("iflabel").map(str::trim).map(str::to_string);
    // IPaddr2 accepts an alias (eth0:1) as nic and uses the part after the colon as the
    // label; so do we, unless it contradicts iflabel.
    if let Some((base, alias)) = nic.clone().as_deref().and_then(|n| n.split_once(':')) {
        match &iflabel {
            Some(l) if l != alias => {
                return Err(ParamError::invalid(
                    "nic",
                    format!("{base}:{alias}"),
                    format!("its alias contradicts iflabel={l}"),
                ));
            }
            _ => iflabel = Some(alias.to_string()),
        }
        nic = Some(base.to_string());
    }
    if let Some(n) = &nic {
        if !valid_ifname(n) {
            return Err(ParamError::invalid(
                "nic",
                n.as_str(),
                "not a valid interface name",
            ));
        }
    }
    if let IpAddr::V6(v6) = ip {
        if v6.segments()[0] & 0xffc0 == 0xfe80 && nic.is_none() {
            return Err(ParamError::invalid(
                "nic",
                "",
                "a link-local IPv6 address needs nic",
            ));
        }
    }
    let broadcast = match p.str("broadcast").map(str::trim) {
        None | Some("+") => Broadcast::Auto,
        Some("-") => Broadcast::None,
        Some(b) => {
            if ip.is_ipv6() {
                return Err(ParamError::invalid(
                    "broadcast",
                    b,
                    "IPv6 has no broadcast address",
                ));
            }
            Broadcast::Addr(b.parse().map_err(|_| {
                ParamError::invalid("broadcast", b, "not an IPv4 address, '+' or '-'")
            })?)
        }
    };
    if let Some(l) = &iflabel {
        if ip.is_ipv6() {
            return Err(ParamError::invalid(
                "iflabel",
                l.as_str(),
                "labels exist only for IPv4 addresses",
            ));
        }
        if !l
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(ParamError::invalid(
                "iflabel",
                l.as_str(),
                "only letters, digits, '.', '_' and '-' are allowed",
            ));
        }
        if let Some(n) = &nic {
            if n.len() + 1 + l.len() > 15 {
                return Err(ParamError::invalid(
                    "iflabel",
                    l.as_str(),
                    format!("{n}:{l} is longer than 15 characters"),
                ));
            }
        } else if l.len() > 13 {
            return Err(ParamError::invalid(
                "iflabel",
                l.as_str(),
                "longer than any interface label can be",
            ));
        }
    }
    let interval = p.int_in("arp_interval", 1, 10_000)?.unwrap_or(200);
    let count = p.int_in("arp_count", 0, 1000)?.unwrap_or(5);
    let refresh = p.int_in("arp_count_refresh", 0, 1000)?.unwrap_or(0);
    let probe_wait = p.int_in("arp_probe_wait", 10, 10_000)?.unwrap_or(200);
    let mac_raw = p.str("arp_mac").unwrap_or("ffffffffffff");
    let dst = parse_mac(mac_raw)
        .ok_or_else(|| ParamError::invalid("arp_mac", mac_raw, "not a MAC address"))?;
    match p.str("arp_sender").map(str::trim).unwrap_or("native") {
        "native" | "send_arp" | "iputils_arping" | "libnet_arping" => {}
        other => {
            return Err(ParamError::invalid(
                "arp_sender",
                other,
                "supported: native (send_arp, iputils_arping and libnet_arping are aliases)",
            ))
        }
    }
    let mode_raw = p.str("arp_mode").unwrap_or("both");
    let mode = ArpMode::parse(mode_raw.trim())
        .ok_or_else(|| ParamError::invalid("arp_mode", mode_raw, "use request, reply or both"))?;
    let preferred_lft = match p.str("preferred_lft").map(str::trim) {
        None | Some("forever") => None,
        Some(v) => Some(
            v.parse::<u32>()
                .ok()
                .filter(|n| *n != u32::MAX)
                .ok_or_else(|| ParamError::invalid("preferred_lft", v, "seconds or 'forever'"))?,
        ),
    };
    let netns = p
        .str("network_namespace")
        .map(str::trim)
        .map(str::to_string);
    if let Some(ns) = &netns {
        if ns.contains('/') || ns == "." || ns == ".." || ns.len() > 255 {
            return Err(ParamError::invalid(
                "network_namespace",
                ns.as_str(),
                "not a namespace name",
            ));
        }
    }
    Ok(VipConfig {
        ip,
        prefix,
        nic,
        broadcast,
        iflabel,
        announce: Announce {
            mode,
            dst: if dst == [0; 6] { BROADCAST } else { dst },
            count: count as u32,
            interval: Duration::from_millis(interval as u64),
        },
        refresh: refresh as u32,
        background: p.bool("arp_bg"),
        check_conflict: p.bool("run_arping"),
        probe_wait: Duration::from_millis(probe_wait as u64),
        nodad: p.bool("nodad"),
        noprefixroute: p.bool("noprefixroute"),
        preferred_lft,
        netns,
    })
}

impl FromParams for VipConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
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
            if a.flags & IFA_F_DADFAILED == 0 && label_ok && prefix_ok {
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
            if let Some(mac) = self.conflicting_host(cfg, &p.link, ctx)? {
                return Err(VipFailure::Conflict {
                    ip: cfg.ip,
                    mac: format_mac(&mac),
                }
                .into());
            }
        }
        let req = self.request(cfg, &p);
        match self.net.add_addr(&req, ctx.deadline.instant()) {
            Ok(()) => {}
            Err(e) if e.raw_errno() == Some(nix::errno::Errno::EEXIST) => ctx
                .log
                .info(&format!("{} appeared on {} meanwhile", cfg.ip, p.link.name)),
            Err(e) => return Err(e.into()),
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
            if cfg.nic.as_deref().is_some_and(|n| n != name) {
                ctx.log.warn(&format!(
                    "{} is on {name}, not on nic={}: left alone",
                    cfg.ip,
                    cfg.nic.as_deref().unwrap_or("")
                ));
                continue;
            }
            match self.net.del_addr(&a, ctx.deadline.instant()) {
                Ok(()) => ctx
                    .log
                    .info(&format!("{}/{} removed from {name}", a.ip, a.prefix)),
                Err(e) if e.raw_errno() == Some(nix::errno::Errno::EADDRNOTAVAIL) => {}
                Err(e) => return Err(e.into()),
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
        let mine = present.iter().find(|a| match (&cfg.nic, on(a)) {
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
                cfg.nic.as_deref().unwrap_or("")
            );
            if ctx.is_probe() {
                ctx.log.warn(&msg);
                return Ok(Status::NotRunning(None));
            }
            return Err(OcfError::Generic(msg));
        };
        let link = on(a).expect("filtered above");
        if a.flags & IFA_F_DADFAILED != 0 {
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
                return Err(VipFailure::Conflict {
                    ip: cfg.ip,
                    mac: format_mac(&mac),
                }
                .into());
            }
        }
        if cfg.refresh > 0 && !ctx.is_probe() && link.flags & IFF_NOARP == 0 && link.mac.is_some() {
            let a = Announce {
                count: cfg.refresh,
                ..cfg.announce.clone()
            };
            self.net
                .announce(&link, cfg.ip, &a, None, ctx.deadline.instant())?;
        }
        Ok(Status::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocf::deadline::Deadline;
    use crate::ocf::dispatch::run;
    use crate::ocf::env::OcfEnv;
    use crate::ocf::log::Logger;
    use crate::sys::fake::FakeNet;

    fn env(pairs: &[(&str, &str)]) -> OcfEnv {
        let mut m: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| {
                let k = if k.starts_with("OCF_") || k.starts_with("HA_") {
                    k.to_string()
                } else {
                    format!("OCF_RESKEY_{k}")
                };
                (k, v.to_string())
            })
            .collect();
        m.insert("OCF_RESOURCE_INSTANCE".into(), "v".into());
        m.insert("HA_RSCTMP".into(), "/tmp/pgstack-unit".into());
        OcfEnv::from_map(m)
    }

    fn net() -> FakeNet {
        FakeNet::default()
            .with_link(1, "lo", true)
            .with_link(2, "eth0", true)
            .with_link(3, "eth1", true)
            .with_route("10.99.1.0", 24, 2)
            .with_route("10.99.0.0", 16, 3)
            .with_route("fd00:99::", 64, 2)
    }

    fn act(v: &Vip<FakeNet>, action: &str, pairs: &[(&str, &str)]) -> (u8, Option<String>) {
        let log = Logger::silent();
        let o = run(v, action, &env(pairs), &log);
        (o.code.as_u8(), o.exit_reason)
    }

    #[test]
    fn nic_and_prefix_from_the_longest_route() {
        let v = Vip::new(net());
        let e = env(&[("ip", "10.99.1.50")]);
        let log = Logger::silent();
        let ctx = Ctx {
            env: &e,
            action: Action::Start,
            deadline: Deadline::from_timeout(Duration::from_secs(5)),
            log: &log,
        };
        let cfg = configure(&Params::parse(PARAMS, &e).unwrap()).unwrap();
        let p = v.place(&cfg, &ctx).unwrap();
        assert_eq!((p.link.name.as_str(), p.prefix), ("eth0", 24));
        let e = env(&[("ip", "10.99.7.1")]);
        let cfg = configure(&Params::parse(PARAMS, &e).unwrap()).unwrap();
        let p = v.place(&cfg, &ctx).unwrap();
        assert_eq!((p.link.name.as_str(), p.prefix), ("eth1", 16));
    }

    #[test]
    fn ambiguous_routes_name_every_candidate() {
        let v = Vip::new(net().with_route("10.99.1.0", 24, 3));
        let (code, reason) = act(&v, "start", &[("ip", "10.99.1.50")]);
        assert_eq!(code, 5);
        let r = reason.unwrap();
        assert!(
            r.contains("eth0") && r.contains("eth1") && r.contains("set nic"),
            "{r}"
        );
        // Naming the nic resolves it.
        assert_eq!(
            act(&v, "start", &[("ip", "10.99.1.50"), ("nic", "eth1")]).0,
            0
        );
    }

    #[test]
    fn start_is_idempotent_and_stop_removes() {
        let v = Vip::new(net());
        let p = [("ip", "10.99.1.50"), ("iflabel", "pgvip")];
        assert_eq!(act(&v, "start", &p), (0, None));
        assert_eq!(act(&v, "start", &p), (0, None));
        assert_eq!(
            v.net
                .calls
                .borrow()
                .iter()
                .filter(|c| c.starts_with("add"))
                .count(),
            1
        );
        let a = v.net.addrs.borrow()[0].clone();
        assert_eq!(a.label.as_deref(), Some("eth0:pgvip"));
        assert_eq!(a.broadcast, Some("10.99.1.255".parse().unwrap()));
        assert_eq!(act(&v, "monitor", &p).0, 0);
        // five rounds, with the background announcer, and only once (start was idempotent)
        assert_eq!(
            *v.net.announced.borrow(),
            [("bg:eth0".to_string(), a.ip, 5)]
        );
        assert_eq!(act(&v, "stop", &p).0, 0);
        assert!(v.net.addrs.borrow().is_empty());
        assert!(
            v.net.announcers.borrow().is_empty(),
            "stop cancels the announcer"
        );
        assert_eq!(act(&v, "stop", &p).0, 0);
        assert_eq!(act(&v, "monitor", &p).0, 7);
    }

    #[test]
    fn start_replaces_an_address_with_the_wrong_label() {
        let v = Vip::new(net());
        assert_eq!(
            act(&v, "start", &[("ip", "10.99.1.50"), ("iflabel", "old")]).0,
            0
        );
        let p = [("ip", "10.99.1.50"), ("iflabel", "pgvip")];
        assert_eq!(act(&v, "start", &p).0, 0);
        assert_eq!(v.net.addrs.borrow()[0].label.as_deref(), Some("eth0:pgvip"));
        assert_eq!(act(&v, "monitor", &p).0, 0);
    }

    #[test]
    fn conflicting_host_fails_start_naming_its_mac() {
        let v = Vip::new(net());
        *v.net.claimant.borrow_mut() = Some(("10.99.1.50".parse().unwrap(), [2, 0xaa, 0, 0, 0, 1]));
        let (code, reason) = act(&v, "start", &[("ip", "10.99.1.50")]);
        assert_eq!(code, 1);
        assert!(reason.unwrap().contains("02:aa:00:00:00:01"));
        assert!(v.net.addrs.borrow().is_empty());
        assert_eq!(
            act(
                &v,
                "start",
                &[("ip", "10.99.1.50"), ("run_arping", "false")]
            )
            .0,
            0
        );
    }

    #[test]
    fn dad_failure_removes_the_address() {
        let v = Vip::new(net());
        v.net.dad_fails.set(true);
        let (code, reason) = act(&v, "start", &[("ip", "fd00:99::50")]);
        assert_eq!(code, 1);
        assert!(reason
            .unwrap()
            .contains("duplicate address detection failed"));
        assert!(v.net.addrs.borrow().is_empty());
    }

    #[test]
    fn probes_and_stop_never_fail_on_configuration() {
        let v = Vip::new(net());
        assert_eq!(
            act(&v, "monitor", &[("ip", "10.99.1.50"), ("nic", "nosuch0")]).0,
            7
        );
        assert_eq!(act(&v, "monitor", &[("ip", "not-an-ip")]).0, 7);
        assert_eq!(act(&v, "stop", &[("ip", "not-an-ip")]).0, 0);
        assert_eq!(
            act(
                &v,
                "stop",
                &[("ip", "10.99.1.50"), ("network_namespace", "missing")]
            )
            .0,
            0
        );
        assert_eq!(
            act(
                &v,
                "monitor",
                &[("ip", "10.99.1.50"), ("network_namespace", "missing")]
            )
            .0,
            7
        );
        assert_eq!(
            act(
                &v,
                "validate-all",
                &[("ip", "10.99.1.50"), ("nic", "nosuch0")]
            )
            .0,
            5
        );
        assert_eq!(
            act(&v, "start", &[("ip", "10.99.1.50"), ("nic", "nosuch0")]).0,
            5
        );
    }

    #[test]
    fn syntax_errors_are_6_and_name_the_parameter() {
        let v = Vip::new(net());
        for (k, val) in [
            ("ip", "300.1.1.1"),
            ("ip", "224.0.0.1"),
            ("cidr_netmask", "33"),
            ("cidr_netmask", "255.0.255.0"),
            ("iflabel", "a b"),
            ("nic", "a/b"),
            ("iflabel", "bad label"),
            ("iflabel", "muchtoolonglabel"),
            ("arp_count", "-1"),
            ("arp_interval", "0"),
            ("arp_mode", "shout"),
            ("arp_mac", "xyz"),
            ("arp_sender", "ipoibarping"),
            ("preferred_lft", "soon"),
            ("broadcast", "1.2.3"),
            ("network_namespace", "../x"),
            ("arp_bg", "perhaps"),
        ] {
            let mut p = vec![("ip", "10.99.1.50"), ("nic", "eth0")];
            p.retain(|(n, _)| *n != k);
            p.push((k, val));
            let (code, reason) = act(&v, "validate-all", &p);
            assert_eq!(code, 6, "{k}={val}");
            assert!(reason.unwrap().contains(k), "{k}={val}");
        }
        assert_eq!(act(&v, "validate-all", &[]).0, 6);
        // IPaddr2 parameters we do not support are refused unless they ask for nothing.
        assert_eq!(
            act(
                &v,
                "validate-all",
                &[("ip", "10.99.1.50"), ("lvs_support", "false")]
            )
            .0,
            0
        );
        let (code, reason) = act(
            &v,
            "validate-all",
            &[("ip", "10.99.1.50"), ("lvs_support", "true")],
        );
        assert_eq!(code, 6);
        assert!(reason.unwrap().contains("lvs_support"));
        assert_eq!(
            act(
                &v,
                "monitor",
                &[("ip", "10.99.1.50"), ("clusterip_hash", "sourceip")]
            )
            .0,
            7
        );
        // IPaddr2's alias form is accepted as a label, unless it contradicts iflabel.
        let alias = [("ip", "10.99.1.50"), ("nic", "eth0:pg")];
        assert_eq!(act(&v, "validate-all", &alias).0, 0);
        let (code, reason) = act(
            &v,
            "validate-all",
            &[("ip", "10.99.1.50"), ("nic", "eth0:pg"), ("iflabel", "x")],
        );
        assert_eq!(code, 6);
        assert!(reason.unwrap().contains("contradicts iflabel"));
        assert_eq!(
            act(
                &v,
                "validate-all",
                &[("ip", "fd00:99::50"), ("iflabel", "x")]
            )
            .0,
            6
        );
        assert_eq!(act(&v, "validate-all", &[("ip", "fe80::1")]).0, 6);
    }

    #[test]
    fn unknown_action_is_3_and_netmask_forms() {
        let v = Vip::new(net());
        assert_eq!(act(&v, "frobnicate", &[("ip", "10.99.1.50")]).0, 3);
        assert_eq!(act(&v, "promote", &[("ip", "10.99.1.50")]).0, 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(parse_prefix("255.255.255.0", &ip), Ok(24));
        assert_eq!(parse_prefix("255.255.255.255", &ip), Ok(32));
        assert!(parse_prefix("0", &ip).is_err());
    }

    #[test]
    fn monitor_checks_label_and_link_state() {
        let v = Vip::new(net());
        let p = [
            ("ip", "10.99.1.50"),
            ("iflabel", "pgvip"),
            ("nic", "eth0"),
            ("cidr_netmask", "24"),
        ];
        assert_eq!(act(&v, "start", &p).0, 0);
        let (code, reason) = act(
            &v,
            "monitor",
            &[
                ("ip", "10.99.1.50"),
                ("iflabel", "other"),
                ("nic", "eth0"),
                ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ],
        );
        assert_eq!(code, 1);
        assert!(reason.unwrap().contains("label"));
        v.net.links.borrow_mut()[1].flags = 0;
        let (code, reason) = act(&v, "monitor", &p);
        assert_eq!(code, 1);
        assert!(reason.unwrap().contains("down"));
    }

    #[test]
    fn netns_is_entered_first() {
        let v = Vip::new(net());
        assert_eq!(
            act(
                &v,
                "start",
                &[("ip", "10.99.1.50"), ("network_namespace", "pgns")]
            )
            .0,
            0
        );
        assert_eq!(v.net.calls.borrow()[0], "netns pgns");
    }

    #[test]
    fn meta_data_lists_every_parameter_once() {
        let x = INFO.to_xml();
        for p in PARAMS {
            let n = x
                .matches(&format!("<parameter name=\"{}\"", p.name))
                .count();
            assert_eq!(n, if p.is_refused() { 0 } else { 1 }, "{}", p.name);
        }
    }
}
