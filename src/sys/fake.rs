//! Recording fakes of the OS traits, for unit tests of agent logic only. Every behaviour
//! tested here is also tested against the real system in `tests/`.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::arp::Mac;
use super::cluster::Cluster;
use super::error::{SysError, SysResult};
use super::net::{Announce, Net};
use super::netlink::{Addr, AddrRequest, Link, Route, IFA_F_DADFAILED, IFA_F_NODAD};

#[derive(Default)]
pub struct FakeCluster {
    pub scores: RefCell<Vec<(String, Option<i64>)>>,
    pub fail: Cell<bool>,
}

impl Cluster for FakeCluster {
    fn promotion_score(&self, instance: &str, score: Option<i64>, _d: Instant) -> SysResult<()> {
        if self.fail.get() {
            return Err(SysError::Invalid(
                "crm_attribute: exit 102: could not connect".into(),
            ));
        }
        self.scores.borrow_mut().push((instance.to_string(), score));
        Ok(())
    }
}

#[derive(Default)]
pub struct FakeNet {
    pub links: RefCell<Vec<Link>>,
    pub addrs: RefCell<Vec<Addr>>,
    pub routes: RefCell<Vec<Route>>,
    /// Another host answering ARP for this address.
    pub claimant: RefCell<Option<(Ipv4Addr, Mac)>>,
    /// IPv6 duplicate address detection fails for every new address.
    pub dad_fails: Cell<bool>,
    pub announced: RefCell<Vec<(String, IpAddr, u32)>>,
    pub announcers: RefCell<Vec<PathBuf>>,
    pub netns: RefCell<Option<String>>,
    pub calls: RefCell<Vec<String>>,
}

impl FakeNet {
    pub fn with_link(self, index: u32, name: &str, up: bool) -> FakeNet {
        self.links.borrow_mut().push(Link {
            index,
            name: name.into(),
            flags: if up {
                super::netlink::IFF_UP | super::netlink::IFF_LOWER_UP
            } else {
                0
            },
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            operstate: 6,
        });
        self
    }
    pub fn with_route(self, dst: &str, len: u8, oif: u32) -> FakeNet {
        let dst: IpAddr = dst.parse().unwrap();
        self.routes.borrow_mut().push(Route {
            family: if dst.is_ipv4() { 2 } else { 10 },
            dst: Some(dst),
            dst_len: len,
            oif: Some(oif),
            gateway: None,
            prefsrc: None,
            table: super::netlink::RT_TABLE_MAIN,
            kind: super::netlink::RTN_UNICAST,
            scope: 253,
        });
        self
    }
    fn call(&self, s: String) {
        self.calls.borrow_mut().push(s);
    }
}

impl Net for FakeNet {
    fn enter_netns(&self, name: &str) -> SysResult<()> {
        self.call(format!("netns {name}"));
        if name == "missing" {
            return Err(SysError::Invalid(
                "/run/netns/missing: No such file or directory".into(),
            ));
        }
        *self.netns.borrow_mut() = Some(name.into());
        Ok(())
    }
    fn links(&self, _d: Instant) -> SysResult<Vec<Link>> {
        Ok(self.links.borrow().clone())
    }
    fn addrs(&self, family: u8, _d: Instant) -> SysResult<Vec<Addr>> {
        Ok(self
            .addrs
            .borrow()
            .iter()
            .filter(|a| family == 0 || (a.ip.is_ipv4() == (family == 2)))
            .cloned()
            .collect())
    }
    fn routes(&self, family: u8, _d: Instant) -> SysResult<Vec<Route>> {
        Ok(self
            .routes
            .borrow()
            .iter()
            .filter(|r| r.family == family)
            .cloned()
            .collect())
    }
    fn add_addr(&self, req: &AddrRequest, _d: Instant) -> SysResult<()> {
        self.call(format!("add {}/{} dev {}", req.ip, req.prefix, req.index));
        if self
            .addrs
            .borrow()
            .iter()
            .any(|a| a.ip == req.ip && a.index == req.index)
        {
            return Err(SysError::errno("adding", nix::errno::Errno::EEXIST));
        }
        let mut flags = req.flags;
        if req.ip.is_ipv6() && self.dad_fails.get() && flags & IFA_F_NODAD == 0 {
            flags |= IFA_F_DADFAILED;
        }
        self.addrs.borrow_mut().push(Addr {
            index: req.index,
            ip: req.ip,
            prefix: req.prefix,
            label: req.label.clone(),
            broadcast: req.broadcast,
            flags,
            scope: 0,
            preferred_lft: req.preferred_lft,
            valid_lft: None,
        });
        Ok(())
    }
    fn del_addr(&self, addr: &Addr, _d: Instant) -> SysResult<()> {
        self.call(format!(
            "del {}/{} dev {}",
            addr.ip, addr.prefix, addr.index
        ));
        let before = self.addrs.borrow().len();
        self.addrs
            .borrow_mut()
            .retain(|a| !(a.ip == addr.ip && a.index == addr.index));
        if self.addrs.borrow().len() == before {
            return Err(SysError::errno(
                "removing",
                nix::errno::Errno::EADDRNOTAVAIL,
            ));
        }
        Ok(())
    }
    fn arp_probe(&self, _l: &Link, ip: Ipv4Addr, _t: u32, _w: Duration) -> SysResult<Option<Mac>> {
        self.call(format!("probe {ip}"));
        Ok(self
            .claimant
            .borrow()
            .filter(|(i, _)| *i == ip)
            .map(|(_, m)| m))
    }
    fn announce(
        &self,
        link: &Link,
        ip: IpAddr,
        a: &Announce,
        background: Option<&Path>,
        _d: Instant,
    ) -> SysResult<Option<u32>> {
        let tag = if background.is_some() { "bg:" } else { "" };
        self.announced
            .borrow_mut()
            .push((format!("{tag}{}", link.name), ip, a.count));
        if let Some(p) = background.filter(|_| a.count > 1) {
            self.announcers.borrow_mut().push(p.to_path_buf());
            return Ok(Some(4242));
        }
        Ok(None)
    }
    fn cancel_announcer(&self, pidfile: &Path, _ip: IpAddr) -> SysResult<bool> {
        let mut v = self.announcers.borrow_mut();
        let before = v.len();
        v.retain(|p| p != pidfile);
        Ok(v.len() != before)
    }
}
