//! A small rtnetlink client: links, addresses and routes, encoded and decoded here.
//!
//! Only the handful of messages the agents need (RTM_GET/NEW/DELADDR, RTM_GETLINK,
//! RTM_GETROUTE) are implemented, so the whole wire format is visible in one file and no
//! `ip` output is ever parsed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, sendto, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr,
    SockFlag, SockProtocol, SockType,
};
use nix::sys::time::TimeVal;

use super::error::{SysError, SysResult};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_OPERSTATE: u16 = 16;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_BROADCAST: u16 = 4;
const IFA_CACHEINFO: u16 = 6;
const IFA_FLAGS: u16 = 8;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;

pub(super) const AF_INET: u8 = 2;
pub(super) const AF_INET6: u8 = 10;

/// Interface flags (`IFF_*`).
pub(super) const IFF_UP: u32 = 0x1;
pub(super) const IFF_LOOPBACK: u32 = 0x8;
pub(super) const IFF_NOARP: u32 = 0x80;
#[cfg(any(test, feature = "test-support"))]
pub(super) const IFF_LOWER_UP: u32 = 0x10000;

/// Address flags (`IFA_F_*`).
pub(super) const IFA_F_NODAD: u32 = 0x02;
pub(super) const IFA_F_DADFAILED: u32 = 0x08;
pub(super) const IFA_F_DEPRECATED: u32 = 0x20;
pub(super) const IFA_F_TENTATIVE: u32 = 0x40;
pub(super) const IFA_F_NOPREFIXROUTE: u32 = 0x200;

#[cfg(any(test, feature = "test-support"))]
pub(super) const RT_TABLE_MAIN: u32 = 254;
pub(super) const RTN_UNICAST: u8 = 1;

/// An infinite address lifetime.
pub(super) const LIFETIME_FOREVER: u32 = u32::MAX;

/// An address family, as the kernel numbers it only inside this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        }
    }
    pub fn raw(self) -> u8 {
        match self {
            Family::Inet => AF_INET,
            Family::Inet6 => AF_INET6,
        }
    }
}

/// What adding an address found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// The kernel already had it on that link (EEXIST).
    Existed,
}

/// What removing an address found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    Gone,
    /// It was not there (EADDRNOTAVAIL): someone else removed it first.
    WasAbsent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub flags: u32,
    pub mac: Option<[u8; 6]>,
    pub operstate: u8,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }
    pub fn is_loopback(&self) -> bool {
        self.flags & IFF_LOOPBACK != 0
    }
    /// The link does not speak ARP (`ip link set arp off`, point-to-point tunnels).
    pub fn is_noarp(&self) -> bool {
        self.flags & IFF_NOARP != 0
    }
}

impl Addr {
    /// IPv6 duplicate address detection is still running.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }
    /// IPv6 duplicate address detection found another holder.
    pub fn dad_failed(&self) -> bool {
        self.flags & IFA_F_DADFAILED != 0
    }
    /// Not to be chosen as a source address (preferred lifetime over).
    pub fn is_deprecated(&self) -> bool {
        self.flags & IFA_F_DEPRECATED != 0
    }
    /// Added without duplicate address detection.
    pub fn is_nodad(&self) -> bool {
        self.flags & IFA_F_NODAD != 0
    }
    pub fn is_noprefixroute(&self) -> bool {
        self.flags & IFA_F_NOPREFIXROUTE != 0
    }
}

impl Route {
    /// A directly connected unicast network (no gateway, not the default route): its
    /// address, prefix length and outgoing link.
    pub fn connected(&self) -> Option<(IpAddr, u8, u32)> {
        if self.kind != RTN_UNICAST || self.gateway.is_some() || self.dst_len == 0 {
            return None;
        }
        Some((self.dst?, self.dst_len, self.oif?))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
    pub label: Option<String>,
    pub broadcast: Option<Ipv4Addr>,
    pub flags: u32,
    pub scope: u8,
    pub preferred_lft: Option<u32>,
    pub valid_lft: Option<u32>,
}

/// What to add with [`add_addr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrRequest {
    pub index: u32,
    pub ip: IpAddr,
    pub prefix: u8,
    pub label: Option<String>,
    pub broadcast: Option<Ipv4Addr>,
    pub options: AddrOptions,
}

/// How an address is added: its flags and lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOptions {
    /// Skip IPv6 duplicate address detection.
    pub nodad: bool,
    /// Create no route for the address's prefix.
    pub noprefixroute: bool,
    /// Preferred lifetime in seconds; `None` is forever.
    pub preferred_lft: Option<u32>,
}

impl AddrRequest {
    /// What identifies `a` for its removal: link, address and prefix.
    pub fn removal(a: &Addr) -> AddrRequest {
        AddrRequest {
            index: a.index,
            ip: a.ip,
            prefix: a.prefix,
            label: None,
            broadcast: None,
            options: AddrOptions::default(),
        }
    }
    /// The `IFA_F_*` flags the request asks for (no DAD to skip on IPv4).
    pub(crate) fn flags(&self) -> u32 {
        let mut f = 0;
        if self.options.nodad && self.ip.is_ipv6() {
            f |= IFA_F_NODAD;
        }
        if self.options.noprefixroute {
            f |= IFA_F_NOPREFIXROUTE;
        }
        f
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub family: u8,
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    pub table: u32,
    pub kind: u8,
    pub scope: u8,
}

/// An open rtnetlink socket. Every receive is bounded by the deadline given at open.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    deadline: Instant,
}

impl Netlink {
    pub fn open(deadline: Instant) -> SysResult<Netlink> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| SysError::errno("opening a netlink socket", e))?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))
            .map_err(|e| SysError::errno("binding the netlink socket", e))?;
        Ok(Netlink {
            fd,
            seq: 1,
            deadline,
        })
    }

    fn exchange(&mut self, kind: u16, flags: u16, body: &[u8], what: &str) -> SysResult<Vec<Msg>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut buf = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        let len = (NLMSG_HDRLEN + body.len()) as u32;
        buf.extend_from_slice(&len.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(body);
        sendto(
            self.fd.as_raw_fd(),
            &buf,
            &NetlinkAddr::new(0, 0),
            MsgFlags::empty(),
        )
        .map_err(|e| SysError::errno(format!("netlink {what}: send"), e))?;

        let mut out = Vec::new();
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SysError::Timeout {
                    what: format!("netlink {what}"),
                });
            }
            let tv = TimeVal::new(left.as_secs() as _, left.subsec_micros().max(1) as _);
            setsockopt(&self.fd, sockopt::ReceiveTimeout, &tv)
                .map_err(|e| SysError::errno("netlink: setting the receive timeout", e))?;
            let n = match recv(self.fd.as_raw_fd(), &mut rbuf, MsgFlags::empty()) {
                Ok(n) => n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                Err(e) => return Err(SysError::errno(format!("netlink {what}: receive"), e)),
            };
            if let Some(done) = absorb(&rbuf[..n], seq, flags, &mut out, what) {
                return done.map(|()| out);
            }
        }
    }

    pub fn links(&mut self) -> SysResult<Vec<Link>> {
        let body = [0u8; 16];
        let msgs = self.exchange(RTM_GETLINK, NLM_F_DUMP, &body, "link dump")?;
        Ok(msgs
            .iter()
            .filter(|m| m.kind == RTM_NEWLINK)
            .filter_map(|m| parse_link(&m.body))
            .collect())
    }

    pub fn addrs(&mut self, family: Family) -> SysResult<Vec<Addr>> {
        let body = [family.raw(), 0, 0, 0, 0, 0, 0, 0];
        let msgs = self.exchange(RTM_GETADDR, NLM_F_DUMP, &body, "address dump")?;
        Ok(msgs
            .iter()
            .filter(|m| m.kind == RTM_NEWADDR)
            .filter_map(|m| parse_addr(&m.body))
            .collect())
    }

    pub fn routes(&mut self, family: Family) -> SysResult<Vec<Route>> {
        let mut body = [0u8; 12];
        body[0] = family.raw();
        let msgs = self.exchange(RTM_GETROUTE, NLM_F_DUMP, &body, "route dump")?;
        Ok(msgs
            .iter()
            .filter(|m| m.kind == RTM_NEWROUTE)
            .filter_map(|m| parse_route(&m.body))
            .collect())
    }

    pub fn add_addr(&mut self, req: &AddrRequest) -> SysResult<Added> {
        let body = encode_addr_request(req);
        let r = self.exchange(
            RTM_NEWADDR,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &body,
            &format!("adding {}/{}", req.ip, req.prefix),
        );
        added(r.map(|_| ()))
    }

    pub fn del_addr(&mut self, a: &Addr) -> SysResult<Removed> {
        let body = encode_addr_request(&AddrRequest::removal(a));
        let r = self.exchange(
            RTM_DELADDR,
            NLM_F_ACK,
            &body,
            &format!("removing {}/{}", a.ip, a.prefix),
        );
        removed(r.map(|_| ()))
    }
}

/// The outcome of an RTM_NEWADDR: EEXIST means the link already has the address.
fn added(ack: SysResult<()>) -> SysResult<Added> {
    match ack {
        Ok(()) => Ok(Added::New),
        Err(e) if e.raw_errno() == Some(Errno::EEXIST) => Ok(Added::Existed),
        Err(e) => Err(e),
    }
}

/// The outcome of an RTM_DELADDR: EADDRNOTAVAIL means the address was not there.
fn removed(ack: SysResult<()>) -> SysResult<Removed> {
    match ack {
        Ok(()) => Ok(Removed::Gone),
        Err(e) if e.raw_errno() == Some(Errno::EADDRNOTAVAIL) => Ok(Removed::WasAbsent),
        Err(e) => Err(e),
    }
}

/// Folds one received datagram of the reply to request `seq` into `out`: `Some` once the
/// reply is complete (the end of a dump, an acknowledgement, or the kernel's error).
fn absorb(
    datagram: &[u8],
    seq: u32,
    flags: u16,
    out: &mut Vec<Msg>,
    what: &str,
) -> Option<SysResult<()>> {
    let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
    for m in split(datagram) {
        if m.seq != seq {
            continue;
        }
        match m.kind {
            NLMSG_DONE => return Some(Ok(())),
            NLMSG_ERROR => {
                let code = m
                    .body
                    .get(..4)
                    .map(|b| i32::from_ne_bytes(b.try_into().unwrap()))
                    .unwrap_or(-(Errno::EIO as i32));
                if code != 0 {
                    return Some(Err(SysError::errno(
                        format!("netlink {what}"),
                        Errno::from_raw(-code),
                    )));
                }
                if !dump {
                    return Some(Ok(()));
                }
            }
            _ => {
                out.push(m);
                if !dump && flags & NLM_F_ACK == 0 {
                    return Some(Ok(()));
                }
            }
        }
    }
    None
}

#[derive(Debug)]
struct Msg {
    kind: u16,
    seq: u32,
    body: Vec<u8>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn split(mut buf: &[u8]) -> Vec<Msg> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        out.push(Msg {
            kind: u16::from_ne_bytes(buf[4..6].try_into().unwrap()),
            seq: u32::from_ne_bytes(buf[8..12].try_into().unwrap()),
            body: buf[NLMSG_HDRLEN..len].to_vec(),
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

/// Iterates the route attributes that follow a fixed header.
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((kind, &buf[4..len]));
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

fn ip_bytes(ip: &IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn ip_from(family: u8, b: &[u8]) -> Option<IpAddr> {
    match (family, b.len()) {
        (AF_INET, 4) => Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        (AF_INET6, 16) => {
            let a: [u8; 16] = b.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(a)))
        }
        _ => None,
    }
}

fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

pub fn encode_addr_request(req: &AddrRequest) -> Vec<u8> {
    let family = if req.ip.is_ipv4() { AF_INET } else { AF_INET6 };
    let flags = req.flags();
    let mut b = vec![family, req.prefix, (flags & 0xff) as u8, 0];
    b.extend_from_slice(&req.index.to_ne_bytes());
    let ip = ip_bytes(&req.ip);
    push_attr(&mut b, IFA_LOCAL, &ip);
    push_attr(&mut b, IFA_ADDRESS, &ip);
    if let Some(bc) = req.broadcast {
        push_attr(&mut b, IFA_BROADCAST, &bc.octets());
    }
    if let Some(l) = &req.label {
        let mut v = l.as_bytes().to_vec();
        v.push(0);
        push_attr(&mut b, IFA_LABEL, &v);
    }
    if flags != 0 {
        push_attr(&mut b, IFA_FLAGS, &flags.to_ne_bytes());
    }
    if let Some(p) = req.options.preferred_lft {
        let mut ci = Vec::with_capacity(16);
        ci.extend_from_slice(&p.to_ne_bytes());
        ci.extend_from_slice(&LIFETIME_FOREVER.to_ne_bytes());
        ci.extend_from_slice(&[0u8; 8]);
        push_attr(&mut b, IFA_CACHEINFO, &ci);
    }
    b
}

pub(crate) fn parse_link(body: &[u8]) -> Option<Link> {
    if body.len() < 16 {
        return None;
    }
    let index = i32::from_ne_bytes(body[4..8].try_into().ok()?) as u32;
    let flags = u32_at(body, 8)?;
    let mut link = Link {
        index,
        name: String::new(),
        flags,
        mac: None,
        operstate: 0,
    };
    for (k, v) in attrs(&body[16..]) {
        match k {
            IFLA_IFNAME => link.name = cstr(v),
            IFLA_ADDRESS if v.len() == 6 => link.mac = v.try_into().ok(),
            IFLA_OPERSTATE if !v.is_empty() => link.operstate = v[0],
            _ => {}
        }
    }
    Some(link)
}

pub(crate) fn parse_addr(body: &[u8]) -> Option<Addr> {
    if body.len() < 8 {
        return None;
    }
    let family = body[0];
    let mut a = Addr {
        index: u32_at(body, 4)?,
        ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix: body[1],
        label: None,
        broadcast: None,
        flags: body[2] as u32,
        scope: body[3],
        preferred_lft: None,
        valid_lft: None,
    };
    let (mut local, mut address) = (None, None);
    for (k, v) in attrs(&body[8..]) {
        match k {
            IFA_LOCAL => local = ip_from(family, v),
            IFA_ADDRESS => address = ip_from(family, v),
            IFA_LABEL => a.label = Some(cstr(v)),
            IFA_BROADCAST => {
                if let Some(IpAddr::V4(b)) = ip_from(AF_INET, v) {
                    a.broadcast = Some(b)
                }
            }
            IFA_FLAGS => a.flags = u32_at(v, 0).unwrap_or(a.flags),
            IFA_CACHEINFO => {
                a.preferred_lft = u32_at(v, 0);
                a.valid_lft = u32_at(v, 4);
            }
            _ => {}
        }
    }
    // For point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
    a.ip = local.or(address)?;
    Some(a)
}

pub(crate) fn parse_route(body: &[u8]) -> Option<Route> {
    if body.len() < 12 {
        return None;
    }
    let family = body[0];
    let mut r = Route {
        family,
        dst: None,
        dst_len: body[1],
        oif: None,
        gateway: None,
        prefsrc: None,
        table: body[4] as u32,
        kind: body[7],
        scope: body[6],
    };
    for (k, v) in attrs(&body[12..]) {
        match k {
            RTA_DST => r.dst = ip_from(family, v),
            RTA_OIF => r.oif = u32_at(v, 0),
            RTA_GATEWAY => r.gateway = ip_from(family, v),
            RTA_PREFSRC => r.prefsrc = ip_from(family, v),
            RTA_TABLE => r.table = u32_at(v, 0).unwrap_or(r.table),
            _ => {}
        }
    }
    Some(r)
}

/// True when `ip` lies in `net/len`.
pub fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = len.min(32) as u32;
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = len.min(128) as u32;
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The broadcast address of `ip/prefix` (none for /31 and /32, RFC 3021).
pub fn broadcast_of(ip: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let host = u32::MAX >> prefix;
    Some(Ipv4Addr::from(u32::from(ip) | host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_request_round_trips_through_the_decoder() {
        let req = AddrRequest {
            index: 7,
            ip: "10.99.1.50".parse().unwrap(),
            prefix: 24,
            label: Some("veth0:pgvip".into()),
            broadcast: Some("10.99.1.255".parse().unwrap()),
            options: AddrOptions {
                nodad: false,
                noprefixroute: true,
                preferred_lft: Some(0),
            },
        };
        let body = encode_addr_request(&req);
        assert_eq!(body.len() % 4, 0);
        let a = parse_addr(&body).unwrap();
        assert_eq!(a.index, 7);
        assert_eq!(a.ip, req.ip);
        assert_eq!(a.prefix, 24);
        assert_eq!(a.label.as_deref(), Some("veth0:pgvip"));
        assert_eq!(a.broadcast, req.broadcast);
        assert!(a.is_noprefixroute() && !a.is_nodad() && !a.is_tentative());
        assert_eq!(a.preferred_lft, Some(0));
        assert_eq!(a.valid_lft, Some(LIFETIME_FOREVER));
    }

    #[test]
    fn ipv6_address_decodes() {
        let req = AddrRequest {
            index: 3,
            ip: "fd00:99::50".parse().unwrap(),
            prefix: 64,
            label: None,
            broadcast: None,
            options: AddrOptions {
                nodad: true,
                ..AddrOptions::default()
            },
        };
        let a = parse_addr(&encode_addr_request(&req)).unwrap();
        assert_eq!(a.ip, req.ip);
        assert!(a.is_nodad());
        assert_eq!(a.label, None);
    }

    #[test]
    fn truncated_messages_are_ignored_not_panicked_on() {
        let body = encode_addr_request(&AddrRequest {
            index: 1,
            ip: "10.99.0.1".parse().unwrap(),
            prefix: 16,
            label: Some("x".into()),
            broadcast: None,
            options: AddrOptions::default(),
        });
        for n in 0..body.len() {
            let _ = parse_addr(&body[..n]);
            let _ = parse_link(&body[..n]);
            let _ = parse_route(&body[..n]);
            let _ = split(&body[..n]);
        }
    }

    #[test]
    fn prefix_containment_and_broadcast() {
        let net: IpAddr = "10.99.1.0".parse().unwrap();
        assert!(contains(net, 24, "10.99.1.200".parse().unwrap()));
        assert!(!contains(net, 24, "10.99.2.1".parse().unwrap()));
        assert!(contains(net, 0, "1.2.3.4".parse().unwrap()));
        assert!(!contains(net, 24, "fd00::1".parse().unwrap()));
        let n6: IpAddr = "fd00:99::".parse().unwrap();
        assert!(contains(n6, 64, "fd00:99::50".parse().unwrap()));
        assert!(!contains(n6, 64, "fd00:98::50".parse().unwrap()));
        assert_eq!(
            broadcast_of("10.99.1.50".parse().unwrap(), 24),
            Some("10.99.1.255".parse().unwrap())
        );
        assert_eq!(broadcast_of("10.99.1.50".parse().unwrap(), 31), None);
    }

    /// Replays a reply captured from the kernel (tests/fixtures/netlink/README.md) through
    /// the receive path: the request's sequence number is the first message's.
    fn replay(fixture: &[u8], flags: u16) -> SysResult<Vec<Msg>> {
        let seq = u32_at(fixture, 8).unwrap();
        let mut out = Vec::new();
        match absorb(fixture, seq, flags, &mut out, "replay") {
            Some(r) => r.map(|()| out),
            None => panic!("the captured reply has no end"),
        }
    }

    fn dump(fixture: &[u8], kind: u16) -> Vec<Vec<u8>> {
        let msgs = replay(fixture, NLM_F_DUMP).unwrap();
        assert!(!msgs.is_empty());
        assert!(msgs.iter().all(|m| m.kind == kind), "other message kinds");
        msgs.into_iter().map(|m| m.body).collect()
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/netlink/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap()
    }

    fn captured_links() -> Vec<Link> {
        dump(&fixture("link-dump.bin"), RTM_NEWLINK)
            .iter()
            .map(|b| parse_link(b).unwrap())
            .collect()
    }

    fn index_of(links: &[Link], name: &str) -> u32 {
        links.iter().find(|l| l.name == name).unwrap().index
    }

    #[test]
    fn captured_link_dump_decodes() {
        let links = captured_links();
        let mut names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        names.sort();
        assert_eq!(names, ["lo", "va", "vm", "vn"]);
        let named = |n: &str| links.iter().find(|l| l.name == n).unwrap();
        let lo = named("lo");
        assert!(lo.is_loopback() && lo.is_up() && lo.index == 1);
        let va = named("va");
        assert_eq!(va.mac, Some([0x02, 0x99, 0, 0, 0, 0x0a]));
        assert!(va.is_up() && !va.is_loopback() && !va.is_noarp());
        let vn = named("vn");
        assert!(vn.is_noarp() && vn.is_up());
        assert_eq!(vn.mac, Some([0x02, 0x99, 0, 0, 0, 0x0c]));
        assert!(!named("vm").is_noarp());
    }

    #[test]
    fn captured_ipv4_address_dump_decodes() {
        let va = index_of(&captured_links(), "va");
        let addrs: Vec<Addr> = dump(&fixture("addr4-dump.bin"), RTM_NEWADDR)
            .iter()
            .map(|b| parse_addr(b).unwrap())
            .collect();
        let at = |ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            addrs.iter().find(|a| a.ip == ip).unwrap().clone()
        };
        let lo = at("127.0.0.1");
        assert_eq!(
            (lo.index, lo.prefix, lo.label.as_deref()),
            (1, 8, Some("lo"))
        );
        let base = at("10.99.1.10");
        assert_eq!((base.index, base.prefix), (va, 24));
        assert_eq!(base.label.as_deref(), Some("va"));
        assert_eq!(base.broadcast, Some(Ipv4Addr::new(10, 99, 1, 255)));
        assert_eq!(base.preferred_lft, Some(LIFETIME_FOREVER));
        let vip = at("10.99.1.50");
        assert_eq!((vip.index, vip.prefix), (va, 24));
        assert_eq!(vip.label.as_deref(), Some("va:pgvip"));
        // preferred_lft 0 on a permanent address: the kernel keeps the lifetimes at
        // forever and marks the address deprecated instead.
        assert!(vip.is_deprecated() && !base.is_deprecated());
        assert_eq!(vip.preferred_lft, Some(LIFETIME_FOREVER));
        assert_eq!(vip.valid_lft, Some(LIFETIME_FOREVER));
        assert!(!vip.is_tentative() && !vip.dad_failed());
        assert_eq!(addrs.len(), 3);
    }

    #[test]
    fn captured_ipv6_address_dump_decodes_dad_states() {
        let va = index_of(&captured_links(), "va");
        let addrs: Vec<Addr> = dump(&fixture("addr6-dump.bin"), RTM_NEWADDR)
            .iter()
            .map(|b| parse_addr(b).unwrap())
            .collect();
        let at = |ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            let a = addrs.iter().find(|a| a.ip == ip).unwrap().clone();
            assert_eq!((a.index, a.prefix, a.label.as_deref()), (va, 64, None));
            a
        };
        let settled = at("fd00:99::50");
        assert!(settled.is_nodad() && !settled.is_tentative() && !settled.dad_failed());
        let pending = at("fd00:99::51");
        assert!(pending.is_tentative() && !pending.dad_failed());
        let dup = at("fd00:99::52");
        assert!(dup.dad_failed() && dup.is_tentative());
        let quiet = at("fd00:99::53");
        assert!(quiet.is_nodad() && quiet.is_noprefixroute());
        assert!(addrs
            .iter()
            .any(|a| a.ip == "::1".parse::<IpAddr>().unwrap() && a.index == 1));
        assert!(addrs.iter().any(|a| matches!(a.ip, IpAddr::V6(v6)
            if v6.segments()[0] == 0xfe80 && a.index == va)));
    }

    #[test]
    fn captured_route_dumps_give_the_connected_networks() {
        let links = captured_links();
        let va = index_of(&links, "va");
        let routes: Vec<Route> = dump(&fixture("route4-dump.bin"), RTM_NEWROUTE)
            .iter()
            .map(|b| parse_route(b).unwrap())
            .collect();
        let connected: Vec<_> = routes
            .iter()
            .filter(|r| r.table == RT_TABLE_MAIN)
            .filter_map(Route::connected)
            .collect();
        assert_eq!(connected, [("10.99.1.0".parse().unwrap(), 24, va)]);
        let default = routes
            .iter()
            .find(|r| r.dst_len == 0 && r.table == RT_TABLE_MAIN)
            .unwrap();
        assert_eq!(default.gateway, Some("10.99.1.1".parse().unwrap()));
        assert_eq!(default.connected(), None);
        let via = routes
            .iter()
            .find(|r| r.dst == Some("10.99.7.0".parse().unwrap()))
            .unwrap();
        assert_eq!((via.dst_len, via.oif), (24, Some(va)));
        assert_eq!(via.gateway, Some("10.99.1.20".parse().unwrap()));
        assert_eq!(via.connected(), None);
        // The local table's own-address routes are not networks to place an address on.
        let local = routes
            .iter()
            .find(|r| r.dst == Some("10.99.1.50".parse().unwrap()))
            .unwrap();
        assert_ne!(local.table, RT_TABLE_MAIN);
        assert_eq!(local.connected(), None);
        // A secondary address's local route names the primary as its source.
        assert_eq!(local.prefsrc, Some("10.99.1.10".parse().unwrap()));

        let routes6: Vec<Route> = dump(&fixture("route6-dump.bin"), RTM_NEWROUTE)
            .iter()
            .map(|b| parse_route(b).unwrap())
            .collect();
        let net6: IpAddr = "fd00:99::".parse().unwrap();
        assert!(routes6
            .iter()
            .filter_map(Route::connected)
            .any(|c| c == (net6, 64, va)));
        assert!(routes6.iter().all(|r| r.family == AF_INET6));
    }

    #[test]
    fn captured_kernel_acks_become_typed_outcomes() {
        let exists = replay(
            &fixture("addr-exists-ack.bin"),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        assert_eq!(added(exists.map(|_| ())).unwrap(), Added::Existed);
        let absent = replay(&fixture("addr-absent-ack.bin"), NLM_F_ACK);
        assert_eq!(removed(absent.map(|_| ())).unwrap(), Removed::WasAbsent);
        assert_eq!(added(Ok(())).unwrap(), Added::New);
        let other = added(Err(SysError::errno("x", Errno::EPERM))).unwrap_err();
        assert_eq!(other.raw_errno(), Some(Errno::EPERM));
    }

    #[test]
    fn live_loopback_is_listed() {
        let mut nl = Netlink::open(Instant::now() + std::time::Duration::from_secs(5)).unwrap();
        let links = nl.links().unwrap();
        let lo = links.iter().find(|l| l.name == "lo").expect("lo");
        assert!(lo.is_loopback());
        let addrs = nl.addrs(Family::Inet).unwrap();
        // lo carries 127.0.0.1 whenever it is up.
        if lo.is_up() {
            assert!(addrs
                .iter()
                .any(|a| a.index == lo.index && a.ip == IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
    }
}
