//! Addresses, links, routes and link-layer announcements, behind one trait so agent logic
//! can be unit-tested against [`super::fake::FakeNet`].

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::Signal;

use super::arp::{format_mac, ArpMode, Mac, Sender};
use super::error::{SysError, SysResult};
use super::netlink::{Added, Addr, AddrRequest, Family, Link, Netlink, Removed, Route};
use super::proc;
use super::runner::{spawn_detached, Cmd};

/// How to announce an address on the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub mode: ArpMode,
    pub dst: Mac,
    pub count: u32,
    pub interval: Duration,
}

/// An RFC 5227 probe: `tries` probes spread over `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpProbe {
    pub tries: u32,
    pub wait: Duration,
}

/// What [`Net::announce`] sends: `how.count` announcements of `ip` on `link`; with
/// `background`, all but the first from a detached announcer recorded in that pid file.
#[derive(Debug, Clone, Copy)]
pub struct Announcement<'a> {
    pub link: &'a Link,
    pub ip: IpAddr,
    pub how: &'a Announce,
    pub background: Option<&'a Path>,
}

pub trait Net {
    /// Moves this process into the named network namespace (`/run/netns/<name>`).
    fn enter_netns(&self, name: &str) -> SysResult<()>;
    fn links(&self, deadline: Instant) -> SysResult<Vec<Link>>;
    fn addrs(&self, family: Family, deadline: Instant) -> SysResult<Vec<Addr>>;
    fn routes(&self, family: Family, deadline: Instant) -> SysResult<Vec<Route>>;
    /// Adds the address; one the link already has is [`Added::Existed`], not an error.
    fn add_addr(&self, req: &AddrRequest, deadline: Instant) -> SysResult<Added>;
    /// Removes the address; one already gone is [`Removed::WasAbsent`], not an error.
    fn del_addr(&self, addr: &Addr, deadline: Instant) -> SysResult<Removed>;
    /// Probes `ip` on `link` and returns the MAC of another host that claims it, if one
    /// does.
    fn arp_probe(&self, link: &Link, ip: Ipv4Addr, p: ArpProbe) -> SysResult<Option<Mac>>;
    /// Sends the announcements (ARP for IPv4, unsolicited NA for IPv6) `how.interval`
    /// apart. The first goes out at once; with `background`, the rest come from a detached
    /// announcer (its pid is returned), otherwise from here, stopping at `deadline`.
    fn announce(&self, a: &Announcement, deadline: Instant) -> SysResult<Option<u32>>;
    /// Stops the announcer recorded in `pidfile` (only if it is one of ours for `ip`).
    fn cancel_announcer(&self, pidfile: &Path, ip: IpAddr) -> SysResult<bool>;
}

/// The real network: rtnetlink and `AF_PACKET` sockets.
pub struct RealNet;

impl Net for RealNet {
    fn enter_netns(&self, name: &str) -> SysResult<()> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(SysError::Invalid(format!(
                "invalid network namespace name {name:?}"
            )));
        }
        let path = PathBuf::from("/run/netns").join(name);
        let f = File::open(&path)
            .map_err(|e| SysError::io(format!("opening {}", path.display()), e))?;
        setns(f, CloneFlags::CLONE_NEWNET)
            .map_err(|e| SysError::errno(format!("entering network namespace {name}"), e))
    }

    fn links(&self, deadline: Instant) -> SysResult<Vec<Link>> {
        Netlink::open(deadline)?.links()
    }

    fn addrs(&self, family: Family, deadline: Instant) -> SysResult<Vec<Addr>> {
        Netlink::open(deadline)?.addrs(family)
    }

    fn routes(&self, family: Family, deadline: Instant) -> SysResult<Vec<Route>> {
        Netlink::open(deadline)?.routes(family)
    }

    fn add_addr(&self, req: &AddrRequest, deadline: Instant) -> SysResult<Added> {
        Netlink::open(deadline)?.add_addr(req)
    }

    fn del_addr(&self, addr: &Addr, deadline: Instant) -> SysResult<Removed> {
        Netlink::open(deadline)?.del_addr(addr)
    }

    fn arp_probe(&self, link: &Link, ip: Ipv4Addr, p: ArpProbe) -> SysResult<Option<Mac>> {
        let raw = match take_probe_socket(link) {
            Some(s) => s,
            None => Sender::open_listening(link)?,
        };
        let start = Instant::now();
        let tries = p.tries.max(1);
        let step = p.wait / tries;
        let mut found = None;
        for i in 0..tries {
            raw.arp_probe(ip)?;
            let until = start + step * (i + 1);
            found = raw.wait_for_claim(ip, until)?;
            if found.is_some() {
                break;
            }
        }
        keep_probe_socket(raw);
        Ok(found)
    }

    fn announce(&self, an: &Announcement, deadline: Instant) -> SysResult<Option<u32>> {
        let Announcement {
            link,
            ip,
            how: a,
            background,
        } = *an;
        if a.count == 0 {
            return Ok(None);
        }
        // The probe's socket when there is one: a new one, or closing that one, would
        // cost start a grace period (see [`Sender`]).
        let sender = match take_probe_socket(link) {
            Some(s) => {
                s.stop_listening()?;
                s
            }
            None => Sender::open(link)?,
        };
        send_rounds(&sender, ip, a, 1, Instant::now(), deadline)?;
        if a.count == 1 {
            return Ok(None);
        }
        let rest = Announce {
            count: a.count - 1,
            ..a.clone()
        };
        if let Some(pidfile) = background {
            // The announcer inherits the socket: closing an AF_PACKET socket waits for an
            // RCU grace period (milliseconds), which the announcer then pays, not start.
            if let Ok(pid) = spawn_announcer(link, ip, &rest, &sender, pidfile) {
                return Ok(Some(pid));
            }
        }
        let next = Instant::now() + a.interval;
        send_rounds(&sender, ip, &rest, rest.count, next, deadline)?;
        Ok(None)
    }

    fn cancel_announcer(&self, pidfile: &Path, ip: IpAddr) -> SysResult<bool> {
        let Some(pid) = proc::read_pidfile(pidfile) else {
            return Ok(false);
        };
        let ours = proc::cmdline(pid).is_some_and(|argv| is_announcer(&argv, ip));
        if ours {
            proc::signal(pid, Signal::SIGTERM)?;
        }
        proc::remove_file(pidfile)?;
        Ok(ours)
    }
}

/// The listening socket of the last ARP probe, kept for the next probe round and for the
/// announcement that follows a free address, so that a start opens one raw socket and
/// hands it to the background announcer rather than closing it.
static PROBE_SOCKET: std::sync::Mutex<Option<Sender>> = std::sync::Mutex::new(None);

fn take_probe_socket(link: &Link) -> Option<Sender> {
    let mut slot = PROBE_SOCKET.lock().unwrap_or_else(|e| e.into_inner());
    match slot.take() {
        Some(s) if s.is_on(link) => Some(s),
        other => {
            *slot = other;
            None
        }
    }
}

fn keep_probe_socket(s: Sender) {
    *PROBE_SOCKET.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
}

/// Sends `count` rounds from `first` on, `a.interval` apart, none after `deadline`.
pub fn send_rounds(
    sender: &Sender,
    ip: IpAddr,
    a: &Announce,
    count: u32,
    first: Instant,
    deadline: Instant,
) -> SysResult<u32> {
    let mut sent = 0;
    let mut next = first;
    while sent < count {
        if next > deadline {
            break;
        }
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        match ip {
            IpAddr::V4(v4) => sender.gratuitous_arp(v4, a.mode, a.dst)?,
            IpAddr::V6(v6) => sender.unsolicited_na(v6)?,
        }
        sent += 1;
        next += a.interval;
    }
    Ok(sent)
}

fn spawn_announcer(
    link: &Link,
    ip: IpAddr,
    a: &Announce,
    sender: &Sender,
    pidfile: &Path,
) -> SysResult<u32> {
    let exe = std::env::current_exe().map_err(|e| SysError::io("locating our own binary", e))?;
    let fd = sender.raw_fd();
    let cmd = Cmd::new(exe)
        .args(["arp", "announce", "--iface", &link.name])
        .args(["--ip", &ip.to_string(), "--count", &a.count.to_string()])
        .args(["--interval", &a.interval.as_millis().to_string()])
        .args(["--delay", &a.interval.as_millis().to_string()])
        .args(["--mode", a.mode.name(), "--dst-mac", &format_mac(&a.dst)])
        .args(["--socket-fd", &fd.to_string()])
        .inherit_fd(fd);
    let pid = spawn_detached(&cmd)?;
    proc::write_pidfile(pidfile, pid)?;
    Ok(pid)
}

/// True when `argv` is our announcer for `ip` (a recycled pid must never be killed).
pub fn is_announcer(argv: &[String], ip: IpAddr) -> bool {
    let ip = ip.to_string();
    argv.windows(2).any(|w| w[0] == "arp" && w[1] == "announce")
        && argv.windows(2).any(|w| w[0] == "--ip" && w[1] == ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcer_recognition() {
        let ip: IpAddr = "10.99.1.50".parse().unwrap();
        let argv: Vec<String> = [
            "/usr/sbin/pgstack",
            "arp",
            "announce",
            "--iface",
            "e0",
            "--ip",
            "10.99.1.50",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(is_announcer(&argv, ip));
        assert!(!is_announcer(&argv, "10.99.1.51".parse().unwrap()));
        assert!(!is_announcer(&["sleep".into(), "10".into()], ip));
    }
}
