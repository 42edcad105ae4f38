//! `ocf:pgstack:vip`: a floating IPv4 or IPv6 address, the replacement of
//! `ocf:heartbeat:IPaddr2` with the same parameter names.
//!
//! **Manages** one address on one link, through rtnetlink (no `ip` command).
//!
//! **Actions**
//! - `start`: finds the link and prefix from the routing table when not given (the longest
//!   matching connected route; an ambiguity is an error naming every candidate), waits
//!   while another host still answers ARP for an IPv4 address (RFC 5227 probes until the
//!   deadline, `run_arping`; it fails naming that host only then), adds the address with its label, waits for IPv6 duplicate address detection within
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
//!
//! Here: the parameter table, INFO and the failures that carry data; `config` decodes
//! the parameters, `actions` places the address and runs the actions.

#![forbid(unsafe_code)]

mod actions;
mod config;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::ParamSpec;
use crate::ocf::Action;

pub use actions::{Placement, Vip};
pub use config::{configure, parse_ip, valid_ifname, Broadcast, VipConfig};

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
         the prefix of the matching connected route is used. Without nic, the address goes \
         only on an interface whose connected network holds all of ip/cidr_netmask: a prefix \
         wider than that network is refused (set nic to place it there anyway).",
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
         for it. While one does (an old holder being fenced, say), start logs its MAC address \
         and keeps probing; it adds the address as soon as nobody answers and fails, naming \
         that MAC address, only when no probe fits before its timeout. Unlike IPaddr2 this \
         is on by default.",
    )
    .default("true"),
    ParamSpec::integer(
        "arp_probe_wait",
        "Milliseconds to wait for a conflicting host",
        "How long one round of the duplicate-address probe listens for an answer, from 10 \
         to 10000 milliseconds; its two probes go out at the start and half-way. A host on \
         the same LAN answers within a millisecond; raise it for links or virtual machines \
         that answer more slowly.",
    )
    .default("100"),
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
    needs_root: true,
};

/// Start failures that carry the address and what was found.
#[derive(Debug, thiserror::Error)]
pub enum VipFailure {
    #[error(
        "{ip} is still in use by another host ({mac}) after {ms} ms of probing; not taking it"
    )]
    Conflict { ip: IpAddr, mac: String, ms: u128 },
    #[error("{ip} is also answered by another host ({mac})")]
    InUse { ip: IpAddr, mac: String },
    #[error("{ip}: IPv6 duplicate address detection failed on {link}; address removed")]
    DadFailed { ip: IpAddr, link: String },
}

crate::agent_failure!(VipFailure => ErrGeneric);
