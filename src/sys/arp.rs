//! Raw link-layer frames: gratuitous ARP, ARP probes (RFC 5227) and unsolicited IPv6
//! Neighbor Advertisements, sent and received on an `AF_PACKET` socket through pnet.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use pnet_base::MacAddr;
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use pnet_packet::arp::{
    ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket,
};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::Packet;

use super::error::{SysError, SysResult};
use super::netlink::Link;

pub type Mac = [u8; 6];
pub const BROADCAST: Mac = [0xff; 6];

/// Which gratuitous ARP frames an announcement sends each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpMode {
    Request,
    Reply,
    Both,
}

impl ArpMode {
    pub fn parse(s: &str) -> Option<ArpMode> {
        match s {
            "request" => Some(ArpMode::Request),
            "reply" => Some(ArpMode::Reply),
            "both" => Some(ArpMode::Both),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            ArpMode::Request => "request",
            ArpMode::Reply => "reply",
            ArpMode::Both => "both",
        }
    }
}

pub fn format_mac(m: &Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Option<Mac> {
    let hex: String = s.chars().filter(|c| *c != ':' && *c != '-').collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, b) in m.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(m)
}

/// The link-layer address of `link`; an error naming it when it has none.
fn link_mac(link: &Link) -> SysResult<Mac> {
    link.mac
        .ok_or_else(|| SysError::Invalid(format!("{} has no link-layer address", link.name)))
}

/// A raw socket bound to one interface.
pub struct RawLink {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    mac: Mac,
    name: String,
}

impl RawLink {
    /// Opens the interface. Receives wait at most `poll` before the caller's loop re-checks
    /// its deadline.
    pub fn open(link: &Link) -> SysResult<RawLink> {
        let mac = link_mac(link)?;
        let iface = NetworkInterface {
            name: link.name.clone(),
            description: String::new(),
            index: link.index,
            mac: Some(MacAddr::from(mac)),
            ips: Vec::new(),
            flags: link.flags,
        };
        let cfg = pnet_datalink::Config {
            read_timeout: Some(Duration::from_millis(10)),
            promiscuous: false,
            ..Default::default()
        };
        match pnet_datalink::channel(&iface, cfg) {
            Ok(Channel::Ethernet(tx, rx)) => Ok(RawLink {
                tx,
                rx,
                mac,
                name: link.name.clone(),
            }),
            Ok(_) => Err(SysError::Invalid(format!(
                "{}: not an Ethernet channel",
                link.name
            ))),
            Err(e) => Err(SysError::io(
                format!("opening a raw socket on {}", link.name),
                e,
            )),
        }
    }

    fn send(&mut self, frame: &[u8], what: &str) -> SysResult<()> {
        match self.tx.send_to(frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(SysError::io(format!("sending {what} on {}", self.name), e)),
            None => Err(SysError::Invalid(format!(
                "sending {what} on {}: no buffer",
                self.name
            ))),
        }
    }

    /// Sends [`probe_frame`] for `ip`.
    pub fn arp_probe(&mut self, ip: Ipv4Addr) -> SysResult<()> {
        self.send(&probe_frame(self.mac, ip), "an ARP probe")
    }

    /// Waits until `until` for an ARP frame from another host that claims `ip`; returns its MAC.
    pub fn wait_for_claim(&mut self, ip: Ipv4Addr, until: Instant) -> SysResult<Option<Mac>> {
        while Instant::now() < until {
            match self.rx.next() {
                Ok(frame) => {
                    if let Some(mac) = claimant(frame, ip, self.mac) {
                        return Ok(Some(mac));
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(e) => {
                    return Err(SysError::io(format!("receiving on {}", self.name), e));
                }
            }
        }
        Ok(None)
    }
}

/// A raw socket bound to one interface, for sending (protocol 0: no receive hook) or, from
/// [`Sender::open_listening`], also receiving ARP. Closing any `AF_PACKET` socket waits
/// for an RCU grace period (about 16 ms here, over 100 ms on a loaded machine), and so does
/// binding a socket that already has a receive hook (a socket created for `ETH_P_ALL` and
/// then bound to an interface, as [`RawLink`] is): callers that care hand the socket to a
/// process that lives on (the background announcer) instead of closing it.
pub struct Sender {
    fd: std::os::fd::OwnedFd,
    mac: Mac,
    name: String,
    index: u32,
}

impl Sender {
    /// A send-only socket.
    pub fn open(link: &Link) -> SysResult<Sender> {
        Self::bound(link, 0)
    }

    /// A socket that also receives the link's ARP frames (no others). It is created with
    /// no protocol and bound once with `ETH_P_ARP`, so the hook is registered without the
    /// grace period that re-binding a hooked socket costs.
    pub fn open_listening(link: &Link) -> SysResult<Sender> {
        Self::bound(link, (libc::ETH_P_ARP as u16).to_be())
    }

    /// `protocol` in network byte order (0: no receive hook).
    fn bound(link: &Link, protocol: u16) -> SysResult<Sender> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        use std::os::fd::AsRawFd;
        let mac = link_mac(link)?;
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| SysError::errno(format!("opening a raw socket on {}", link.name), e))?;
        // SAFETY: sockaddr_ll is plain old data, fully initialised here (zeroed, then the
        // family, protocol and interface index set); bind reads exactly size_of::<sockaddr_ll>() bytes
        // of it and fd is an open socket we own.
        let rc = unsafe {
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = protocol;
            sll.sll_ifindex = link.index as i32;
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        os_result(rc, || format!("binding a raw socket to {}", link.name))?;
        Ok(Sender {
            fd,
            mac,
            name: link.name.clone(),
            index: link.index,
        })
    }

    /// Takes over a socket opened by [`Sender::open`] in the process that started us and
    /// handed down as `fd` (the background announcer).
    pub fn adopt(fd: std::os::fd::RawFd, link: &Link) -> SysResult<Sender> {
        use std::os::fd::{AsRawFd, FromRawFd};
        let mac = link_mac(link)?;
        let st = nix::sys::stat::fstat(fd)
            .map_err(|e| SysError::errno(format!("inherited socket {fd}"), e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFSOCK {
            return Err(SysError::Invalid(format!(
                "inherited fd {fd} is not a socket"
            )));
        }
        // SAFETY: fd is open (fstat succeeded) and was handed to this process for it alone;
        // nothing else in this process owns or closes it.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let domain = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SockType);
        if domain != Ok(nix::sys::socket::SockType::Raw) {
            return Err(SysError::Invalid(format!(
                "inherited fd {} is not a raw socket",
                fd.as_raw_fd()
            )));
        }
        Ok(Sender {
            fd,
            mac,
            name: link.name.clone(),
            index: link.index,
        })
    }

    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    fn send(&self, frame: &[u8], what: &str) -> SysResult<()> {
        use std::os::fd::AsRawFd;
        nix::sys::socket::send(
            self.fd.as_raw_fd(),
            frame,
            nix::sys::socket::MsgFlags::empty(),
        )
        .map(|_| ())
        .map_err(|e| SysError::errno(format!("sending {what} on {}", self.name), e))
    }

    /// Sends [`probe_frame`] for `ip`.
    pub fn arp_probe(&self, ip: Ipv4Addr) -> SysResult<()> {
        self.send(&probe_frame(self.mac, ip), "an ARP probe")
    }

    /// Waits until `until` for an ARP frame from another host that claims `ip`; returns
    /// its MAC. Needs a socket from [`Sender::open_listening`].
    pub fn wait_for_claim(&self, ip: Ipv4Addr, until: Instant) -> SysResult<Option<Mac>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use nix::sys::socket::{recv, MsgFlags};
        use std::os::fd::{AsFd, AsRawFd};
        let mut buf = [0u8; 128];
        loop {
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let left = (until - now).as_millis().clamp(1, i32::MAX as u128) as i32;
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(
                &mut fds,
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
            ) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => {
                    return Err(SysError::errno(format!("waiting on {}", self.name), e));
                }
            }
            // Every frame queued so far, then back to waiting.
            loop {
                match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => {
                        if let Some(mac) = claimant(&buf[..n.min(buf.len())], ip, self.mac) {
                            return Ok(Some(mac));
                        }
                    }
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => {
                        return Err(SysError::errno(format!("receiving on {}", self.name), e));
                    }
                }
            }
        }
    }

    /// Stops queueing received frames (a filter that drops every frame), without the
    /// grace period that unbinding would cost: for a listening socket handed on to a
    /// process that only sends.
    pub fn stop_listening(&self) -> SysResult<()> {
        use std::os::fd::AsRawFd;
        let mut drop_all = [libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        }];
        let prog = libc::sock_fprog {
            len: 1,
            filter: drop_all.as_mut_ptr(),
        };
        // SAFETY: prog points at a one-instruction program that lives until setsockopt
        // returns (the kernel copies it); the option length is that of sock_fprog; fd is
        // an open socket we own.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog as *const libc::sock_fprog as *const libc::c_void,
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        os_result(rc, || format!("filtering the raw socket on {}", self.name))
    }

    /// Whether the socket is bound to `link` (its index and address).
    pub fn is_on(&self, link: &Link) -> bool {
        self.index == link.index && Some(self.mac) == link.mac
    }

    /// One round of gratuitous ARP for `ip`: a request, a reply, or both.
    pub fn gratuitous_arp(&self, ip: Ipv4Addr, mode: ArpMode, dst: Mac) -> SysResult<()> {
        if matches!(mode, ArpMode::Request | ArpMode::Both) {
            let f = arp_frame(self.mac, dst, ArpOperations::Request, ip, [0; 6], ip);
            self.send(&f, "a gratuitous ARP request")?;
        }
        if matches!(mode, ArpMode::Reply | ArpMode::Both) {
            let f = arp_frame(self.mac, dst, ArpOperations::Reply, ip, BROADCAST, ip);
            self.send(&f, "a gratuitous ARP reply")?;
        }
        Ok(())
    }

    /// An unsolicited Neighbor Advertisement for `ip` to all nodes (RFC 4861 7.2.6).
    pub fn unsolicited_na(&self, ip: Ipv6Addr) -> SysResult<()> {
        let f = na_frame(self.mac, ip);
        self.send(&f, "an unsolicited neighbor advertisement")
    }
}

/// A libc call's return code: 0 is success, anything else the thread's errno, with
/// `what` failed as the context.
fn os_result(rc: libc::c_int, what: impl FnOnce() -> String) -> SysResult<()> {
    if rc == 0 {
        return Ok(());
    }
    // Read before `what` allocates, which may change errno.
    let e = std::io::Error::last_os_error();
    Err(SysError::io(what(), e))
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::Interrupted
    )
}

/// The sender MAC of an ARP frame in which another host says it has `ip`.
pub fn claimant(frame: &[u8], ip: Ipv4Addr, own: Mac) -> Option<Mac> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    let sha: Mac = arp.get_sender_hw_addr().octets();
    if sha == own || arp.get_sender_proto_addr() != ip {
        return None;
    }
    // A reply, or a request (gratuitous or ordinary) sent from that address: either way
    // another host uses it.
    Some(sha)
}

pub fn arp_frame(
    src: Mac,
    dst: Mac,
    op: ArpOperation,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let mut buf = vec![0u8; 42];
    {
        let mut eth = MutableEthernetPacket::new(&mut buf).expect("42 bytes hold an ARP frame");
        eth.set_destination(MacAddr::from(dst));
        eth.set_source(MacAddr::from(src));
        eth.set_ethertype(EtherTypes::Arp);
    }
    {
        let mut arp = MutableArpPacket::new(&mut buf[14..]).expect("28 bytes hold ARP");
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(op);
        arp.set_sender_hw_addr(MacAddr::from(src));
        arp.set_sender_proto_addr(sender_ip);
        arp.set_target_hw_addr(MacAddr::from(target_mac));
        arp.set_target_proto_addr(target_ip);
    }
    buf
}

/// An RFC 5227 probe from `src`: "who has `ip`?" from 0.0.0.0, so no cache learns from it.
pub fn probe_frame(src: Mac, ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        src,
        BROADCAST,
        ArpOperations::Request,
        Ipv4Addr::UNSPECIFIED,
        [0; 6],
        ip,
    )
}

/// Ethernet + IPv6 + ICMPv6 Neighbor Advertisement (override flag, target link-layer
/// address option) from `ip` to ff02::1, hop limit 255.
pub fn na_frame(src: Mac, ip: Ipv6Addr) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = vec![0u8; 32];
    icmp[0] = 136; // Neighbor Advertisement
    icmp[4] = 0x20; // Override; not Router, not Solicited
    icmp[8..24].copy_from_slice(&ip.octets());
    icmp[24] = 2; // target link-layer address
    icmp[25] = 1; // 8 bytes
    icmp[26..32].copy_from_slice(&src);
    let sum = icmpv6_checksum(&ip, &all_nodes, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(58); // ICMPv6
    f.push(255); // hop limit, required for ND
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&all_nodes.octets());
    f.extend_from_slice(&icmp);
    f
}

pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, body: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += w as u32;
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(body);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Mac = [0x02, 0, 0, 0, 0, 1];
    const OTHER: Mac = [0x02, 0, 0, 0, 0, 2];

    #[test]
    fn mac_parsing_and_formatting() {
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Some([2, 0, 0, 0, 0, 10]));
        assert_eq!(parse_mac("ffffffffffff"), Some(BROADCAST));
        assert_eq!(parse_mac("02:00:00:00:00"), None);
        assert_eq!(parse_mac("zz:00:00:00:00:00"), None);
        assert_eq!(format_mac(&[2, 0, 0, 0, 0, 10]), "02:00:00:00:00:0a");
    }

    #[test]
    fn gratuitous_request_layout() {
        let ip: Ipv4Addr = "10.99.1.50".parse().unwrap();
        let f = arp_frame(OWN, BROADCAST, ArpOperations::Request, ip, [0; 6], ip);
        assert_eq!(&f[0..6], &BROADCAST);
        assert_eq!(&f[6..12], &OWN);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1]); // request
        assert_eq!(&f[28..32], &ip.octets()); // sender IP
        assert_eq!(&f[38..42], &ip.octets()); // target IP
    }

    #[test]
    fn claimant_sees_other_hosts_only() {
        let ip: Ipv4Addr = "10.99.1.50".parse().unwrap();
        let reply = arp_frame(
            OTHER,
            OWN,
            ArpOperations::Reply,
            ip,
            OWN,
            Ipv4Addr::UNSPECIFIED,
        );
        assert_eq!(claimant(&reply, ip, OWN), Some(OTHER));
        let ours = arp_frame(OWN, BROADCAST, ArpOperations::Reply, ip, BROADCAST, ip);
        assert_eq!(claimant(&ours, ip, OWN), None);
        let probe = probe_frame(OTHER, ip);
        assert_eq!(claimant(&probe, ip, OWN), None, "a probe claims nothing");
        assert_eq!(claimant(&[0u8; 10], ip, OWN), None);
    }

    #[test]
    fn na_checksum_verifies() {
        let ip: Ipv6Addr = "fd00:99::50".parse().unwrap();
        let f = na_frame(OWN, ip);
        let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        // Recomputing over a body that includes its checksum gives zero.
        assert_eq!(icmpv6_checksum(&ip, &dst, &f[54..]), 0);
        assert_eq!(f[54], 136);
        assert_eq!(f[21], 255);
    }
}
