//! Recording fakes of the OS traits, for unit tests of agent logic only. Every behaviour
//! tested here is also tested against the real system in `tests/`.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::arp::Mac;
use super::cluster::{Cluster, ScoreOf};
use super::error::{SysError, SysResult};
use super::net::{Announcement, ArpProbe, Net};
use super::netlink::{Added, Addr, AddrRequest, Family, Link, Removed, Route, IFA_F_DADFAILED};

#[derive(Default)]
pub struct FakeCluster {
    pub scores: RefCell<Vec<(String, Option<i64>)>>,
    pub fail: Cell<bool>,
}

impl Cluster for FakeCluster {
    fn promotion_score(&self, of: ScoreOf, score: Option<i64>, _d: Instant) -> SysResult<()> {
        if self.fail.get() {
            return Err(SysError::Invalid(
                "crm_attribute: exit 102: could not connect".into(),
            ));
        }
        self.scores
            .borrow_mut()
            .push((of.instance.to_string(), score));
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
    /// The claimant answers only this many more probes, then is gone (None: forever).
    pub claimant_answers: Cell<Option<u32>>,
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
    fn addrs(&self, family: Family, _d: Instant) -> SysResult<Vec<Addr>> {
        Ok(self
            .addrs
            .borrow()
            .iter()
            .filter(|a| Family::of(&a.ip) == family)
            .cloned()
            .collect())
    }
    fn routes(&self, family: Family, _d: Instant) -> SysResult<Vec<Route>> {
        Ok(self
            .routes
            .borrow()
            .iter()
            .filter(|r| r.family == family.raw())
            .cloned()
            .collect())
    }
    fn add_addr(&self, req: &AddrRequest, _d: Instant) -> SysResult<Added> {
        self.call(format!("add {}/{} dev {}", req.ip, req.prefix, req.index));
        if self
            .addrs
            .borrow()
            .iter()
            .any(|a| a.ip == req.ip && a.index == req.index)
        {
            return Ok(Added::Existed);
        }
        let mut flags = req.flags();
        if req.ip.is_ipv6() && self.dad_fails.get() && !req.options.nodad {
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
            preferred_lft: req.options.preferred_lft,
            valid_lft: None,
        });
        Ok(Added::New)
    }
    fn del_addr(&self, addr: &Addr, _d: Instant) -> SysResult<Removed> {
        self.call(format!(
            "del {}/{} dev {}",
            addr.ip, addr.prefix, addr.index
        ));
        let before = self.addrs.borrow().len();
        self.addrs
            .borrow_mut()
            .retain(|a| !(a.ip == addr.ip && a.index == addr.index));
        if self.addrs.borrow().len() == before {
            return Ok(Removed::WasAbsent);
        }
        Ok(Removed::Gone)
    }
    fn arp_probe(&self, _l: &Link, ip: Ipv4Addr, _p: ArpProbe) -> SysResult<Option<Mac>> {
        self.call(format!("probe {ip}"));
        match self.claimant_answers.get() {
            Some(0) => return Ok(None),
            Some(n) => self.claimant_answers.set(Some(n - 1)),
            None => {}
        }
        Ok(self
            .claimant
            .borrow()
            .filter(|(i, _)| *i == ip)
            .map(|(_, m)| m))
    }
    fn announce(&self, an: &Announcement, _d: Instant) -> SysResult<Option<u32>> {
        let (link, ip, a, background) = (an.link, an.ip, an.how, an.background);
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

fn fake_entry(
    id: u32,
    parent: u32,
    dev: (u32, u32),
    dir: &str,
    source: &str,
) -> super::mount::MountEntry {
    super::mount::MountEntry {
        id,
        parent,
        major: dev.0,
        minor: dev.1,
        root: "/".into(),
        mount_point: PathBuf::from(dir),
        options: "rw".into(),
        fstype: "xfs".into(),
        source: source.into(),
        super_options: "rw".into(),
    }
}

/// A process of [`FakeMounts`]: holds one mount, dies of any signal it does not ignore.
#[derive(Debug, Clone)]
pub struct FakeProc {
    pub pid: u32,
    pub comm: String,
    pub mount_id: u32,
    pub ignores: Vec<nix::sys::signal::Signal>,
    pub alive: bool,
    /// Never to be signalled (a cluster daemon, an ancestor).
    pub protected: bool,
}

/// A mount table with processes holding mounts, for unit tests of the filesystem agent.
/// umount refuses (EBUSY) while a mount has a live holder or a mount on top of it.
#[derive(Default)]
pub struct FakeMounts {
    pub table: RefCell<Vec<super::mount::MountEntry>>,
    pub devices: RefCell<Vec<(PathBuf, super::mount::DevKind)>>,
    pub procs: RefCell<Vec<FakeProc>>,
    pub probe_error: RefCell<Option<super::blockio::ProbeError>>,
    pub probes: RefCell<Vec<Vec<super::blockio::Op>>>,
    pub calls: RefCell<Vec<String>>,
    /// Symbolic links: a path prefix and what it points to (absolute).
    pub links: RefCell<Vec<(PathBuf, PathBuf)>>,
    /// Where the next mount really lands (a link swapped in under the agent's feet).
    pub mount_lands_at: RefCell<Option<PathBuf>>,
}

impl FakeMounts {
    pub fn with_mount(
        self,
        id: u32,
        parent: u32,
        dev: (u32, u32),
        dir: &str,
        source: &str,
    ) -> Self {
        self.table
            .borrow_mut()
            .push(fake_entry(id, parent, dev, dir, source));
        self
    }
    pub fn with_device(self, path: &str, dev: (u32, u32)) -> Self {
        self.devices.borrow_mut().push((
            PathBuf::from(path),
            super::mount::DevKind::Block(super::mount::BlockDev {
                path: PathBuf::from(path),
                major: dev.0,
                minor: dev.1,
            }),
        ));
        self
    }
    pub fn with_proc(self, pid: u32, mount_id: u32, ignores: &[nix::sys::signal::Signal]) -> Self {
        self.procs.borrow_mut().push(FakeProc {
            pid,
            comm: format!("proc{pid}"),
            mount_id,
            ignores: ignores.to_vec(),
            alive: true,
            protected: false,
        });
        self
    }
    pub fn with_link(self, from: &str, to: &str) -> Self {
        self.links
            .borrow_mut()
            .push((PathBuf::from(from), PathBuf::from(to)));
        self
    }
    pub fn protect(self, pid: u32) -> Self {
        for p in self.procs.borrow_mut().iter_mut().filter(|p| p.pid == pid) {
            p.protected = true;
        }
        self
    }
    pub fn alive(&self, pid: u32) -> bool {
        self.procs.borrow().iter().any(|p| p.pid == pid && p.alive)
    }
    fn held(&self, t: &super::procwalk::Target, protected: bool) -> Vec<super::procwalk::Holder> {
        self.procs
            .borrow()
            .iter()
            .filter(|p| p.alive && p.protected == protected && t.mount_ids.contains(&p.mount_id))
            .map(|p| super::procwalk::Holder {
                pid: p.pid,
                comm: p.comm.clone(),
                how: "cwd".into(),
            })
            .collect()
    }
}

impl super::mount::Mounts for FakeMounts {
    fn mountinfo(&self) -> SysResult<Vec<super::mount::MountEntry>> {
        Ok(self.table.borrow().clone())
    }
    fn lock(&self, _instance: &str, _until: Instant) -> SysResult<super::lock::InstanceLock> {
        Ok(super::lock::InstanceLock::none())
    }
    fn block_device(&self, path: &Path) -> SysResult<super::mount::DevKind> {
        Ok(self
            .devices
            .borrow()
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, k)| k.clone())
            .unwrap_or(super::mount::DevKind::Missing))
    }
    fn find_tagged(&self, _tag: &str, _value: &str, _d: Instant) -> SysResult<Option<PathBuf>> {
        Ok(None)
    }
    fn kernel_filesystems(&self, _load: Option<&str>, _d: Instant) -> SysResult<Vec<String>> {
        Ok(vec!["xfs".into(), "ext4".into()])
    }
    fn path_kind(&self, _path: &Path) -> super::mount::PathKind {
        super::mount::PathKind::Dir
    }
    fn hostname(&self) -> String {
        "node1".into()
    }
    fn resolve_path(&self, path: &Path, _t: &[super::mount::MountEntry]) -> SysResult<PathBuf> {
        let mut p: PathBuf = path.components().collect();
        for _ in 0..40 {
            let links = self.links.borrow();
            let Some((from, to)) = links.iter().find(|(f, _)| p.starts_with(f)) else {
                return Ok(p);
            };
            p = to.join(p.strip_prefix(from).unwrap_or(Path::new("")));
        }
        Err(SysError::errno("resolve", nix::errno::Errno::ELOOP))
    }
    fn create_dir_all(&self, path: &Path) -> SysResult<()> {
        self.calls
            .borrow_mut()
            .push(format!("mkdir {}", path.display()));
        Ok(())
    }
    fn mount(&self, m: &super::mount::MountSpec, _d: Instant) -> SysResult<()> {
        let (source, target) = (m.source, m.target);
        self.calls
            .borrow_mut()
            .push(format!("mount {source} {}", target.display()));
        let dev = match self.block_device(Path::new(source))? {
            super::mount::DevKind::Block(b) => (b.major, b.minor),
            _ => (0, 99),
        };
        let id = self.table.borrow().iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let at = self
            .mount_lands_at
            .borrow_mut()
            .take()
            .unwrap_or_else(|| target.to_path_buf());
        self.table
            .borrow_mut()
            .push(fake_entry(id, 1, dev, &at.display().to_string(), source));
        Ok(())
    }
    fn umount(&self, target: &Path, _force: bool) -> SysResult<super::mount::Umount> {
        self.calls
            .borrow_mut()
            .push(format!("umount {}", target.display()));
        let mut table = self.table.borrow_mut();
        let Some(pos) = table.iter().rposition(|m| m.mount_point == target) else {
            return Ok(super::mount::Umount::NotMounted);
        };
        let id = table[pos].id;
        let busy = table.iter().any(|m| m.parent == id)
            || self
                .procs
                .borrow()
                .iter()
                .any(|p| p.alive && p.mount_id == id);
        if busy {
            return Ok(super::mount::Umount::Busy);
        }
        table.remove(pos);
        Ok(super::mount::Umount::Done)
    }
    fn fsck(&self, device: &Path, _t: &str, _d: Instant) -> SysResult<super::mount::FsckResult> {
        self.calls
            .borrow_mut()
            .push(format!("fsck {}", device.display()));
        Ok(super::mount::FsckResult::Clean)
    }
    fn xfs_check(&self, device: &Path, _d: Instant) -> SysResult<super::mount::FsckResult> {
        self.calls
            .borrow_mut()
            .push(format!("xfs_repair -n {}", device.display()));
        Ok(super::mount::FsckResult::Clean)
    }
    fn holders(&self, t: &super::procwalk::Target) -> Vec<super::procwalk::Holder> {
        self.held(t, false)
    }
    fn protected_holders(&self, t: &super::procwalk::Target) -> Vec<super::procwalk::Holder> {
        self.held(t, true)
    }
    fn signal(&self, pid: u32, sig: nix::sys::signal::Signal) -> SysResult<()> {
        self.calls.borrow_mut().push(format!("kill {sig} {pid}"));
        for p in self.procs.borrow_mut().iter_mut().filter(|p| p.pid == pid) {
            assert!(!p.protected, "signalled protected pid {pid}");
            if !p.ignores.contains(&sig) {
                p.alive = false;
            }
        }
        Ok(())
    }
    fn live(&self, pid: u32) -> bool {
        self.alive(pid)
    }
    fn probe(
        &self,
        ops: &[super::blockio::Op],
        _d: Instant,
    ) -> Result<(), super::blockio::ProbeError> {
        self.probes.borrow_mut().push(ops.to_vec());
        match self.probe_error.borrow().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
