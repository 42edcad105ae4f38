//! The parameters of `vip`, decoded once into a [`VipConfig`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::ocf::agent::FromParams;
use crate::ocf::params::{ParamError, Params};
use crate::sys::arp::{parse_mac, ArpMode, BROADCAST};
use crate::sys::net::Announce;
use crate::sys::netlink::{AddrOptions, Family};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broadcast {
    Auto,
    None,
    Addr(Ipv4Addr),
}

/// The link the address goes on: `nic` (`None`: the one whose routes reach the address),
/// looked for inside the network namespace `netns` (`None`: this one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipLink {
    pub nic: Option<String>,
    pub netns: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipConfig {
    pub ip: IpAddr,
    pub prefix: Option<u8>,
    pub link: VipLink,
    pub broadcast: Broadcast,
    pub iflabel: Option<String>,
    pub announce: Announce,
    pub refresh: u32,
    pub background: bool,
    pub check_conflict: bool,
    pub probe_wait: Duration,
    /// nodad, noprefixroute and preferred_lft, as the address is added.
    pub options: AddrOptions,
}

impl VipConfig {
    pub(super) fn label(&self, nic: &str) -> Option<String> {
        self.iflabel.as_ref().map(|l| format!("{nic}:{l}"))
    }
    pub(super) fn family(&self) -> Family {
        Family::of(&self.ip)
    }
}

pub(super) fn parse_prefix(v: &str, ip: &IpAddr) -> Result<u8, ParamError> {
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
    let interval = p.int_in("arp_interval", 1, 10_000)?;
    let count = p.int_in("arp_count", 0, 1000)?;
    let refresh = p.int_in("arp_count_refresh", 0, 1000)?;
    let probe_wait = p.int_in("arp_probe_wait", 10, 10_000)?;
    let mac_raw = p.str_value("arp_mac");
    let dst = parse_mac(mac_raw)
        .ok_or_else(|| ParamError::invalid("arp_mac", mac_raw, "not a MAC address"))?;
    match p.str_value("arp_sender").trim() {
        "native" | "send_arp" | "iputils_arping" | "libnet_arping" => {}
        other => {
            return Err(ParamError::invalid(
                "arp_sender",
                other,
                "supported: native (send_arp, iputils_arping and libnet_arping are aliases)",
            ))
        }
    }
    let mode_raw = p.str_value("arp_mode");
    let mode = ArpMode::parse(mode_raw.trim())
        .ok_or_else(|| ParamError::invalid("arp_mode", mode_raw, "use request, reply or both"))?;
    let preferred_lft = match p.str_value("preferred_lft").trim() {
        "forever" => None,
        v => Some(
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
        link: VipLink { nic, netns },
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
        options: AddrOptions {
            nodad: p.bool("nodad"),
            noprefixroute: p.bool("noprefixroute"),
            preferred_lft,
        },
    })
}

impl FromParams for VipConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
}
