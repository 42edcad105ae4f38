//! DRBD: one typed model of a resource's state, read from `drbdsetup events2 --now`
//! (which drbd-utils 9 answers for DRBD 9 and 8.4 kernels alike), the module version from
//! `/proc/drbd`, and `drbdadm` runs. The fence handlers use the same model.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::error::{SysError, SysResult};
use super::runner::{run, Cmd, Outcome, SpawnError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Secondary,
    Unknown,
}

impl Role {
    fn parse(s: &str) -> Role {
        match s {
            "Primary" => Role::Primary,
            "Secondary" => Role::Secondary,
            _ => Role::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disk {
    Diskless,
    Attaching,
    Detaching,
    Failed,
    Negotiating,
    Inconsistent,
    Outdated,
    DUnknown,
    Consistent,
    UpToDate,
}

impl Disk {
    pub fn parse(s: &str) -> Disk {
        match s {
            "Diskless" => Disk::Diskless,
            "Attaching" => Disk::Attaching,
            "Detaching" => Disk::Detaching,
            "Failed" => Disk::Failed,
            "Negotiating" => Disk::Negotiating,
            "Inconsistent" => Disk::Inconsistent,
            "Outdated" => Disk::Outdated,
            "Consistent" => Disk::Consistent,
            "UpToDate" => Disk::UpToDate,
            _ => Disk::DUnknown,
        }
    }
}

/// One peer as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node_id: String,
    pub name: String,
    /// `Connected`, `Connecting` (8.4: WFConnection), `StandAlone`, ...
    pub connection: String,
    pub role: Role,
    /// Worst disk state over this peer's volumes.
    pub disk: Disk,
    /// `Established`, `SyncSource`, `SyncTarget`, `Off`, ...
    pub replication: String,
}

impl Peer {
    pub fn connected(&self) -> bool {
        self.connection == "Connected"
    }
}

/// A configured resource. `None` from the readers means the resource is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub name: String,
    pub role: Role,
    /// Worst local disk state over the volumes.
    pub disk: Disk,
    pub peers: Vec<Peer>,
    pub quorum: bool,
}

impl State {
    pub fn peer_primary(&self) -> bool {
        self.peers.iter().any(|p| p.role == Role::Primary)
    }
    pub fn all_peers_up_to_date(&self) -> bool {
        !self.peers.is_empty() && self.peers.iter().all(|p| p.disk == Disk::UpToDate)
    }
    pub fn any_peer_up_to_date(&self) -> bool {
        self.peers.iter().any(|p| p.disk == Disk::UpToDate)
    }
    pub fn syncing(&self) -> bool {
        self.peers
            .iter()
            .any(|p| p.replication.starts_with("Sync") || p.replication.starts_with("PausedSync"))
    }
}

fn fields(line: &str) -> BTreeMap<&str, &str> {
    line.split_whitespace()
        .filter_map(|w| w.split_once(':'))
        .collect()
}

/// Parses `drbdsetup events2 --now <res>` output. Only lines for `res` are used; a lone
/// `exists -` (or nothing) means the resource is not configured.
pub fn parse_events2(text: &str, res: &str) -> Option<State> {
    let mut st: Option<State> = None;
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    let mut disks: Vec<Disk> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("exists") {
            continue;
        }
        let Some(kind) = words.next() else { continue };
        let f = fields(line);
        if f.get("name") != Some(&res) {
            continue;
        }
        match kind {
            "resource" => {
                st = Some(State {
                    name: res.to_string(),
                    role: Role::parse(f.get("role").copied().unwrap_or("")),
                    disk: Disk::DUnknown,
                    peers: Vec::new(),
                    quorum: f.get("quorum") != Some(&"no"),
                })
            }
            "device" => {
                if let Some(s) = st.as_mut() {
                    if f.get("quorum") == Some(&"no") {
                        s.quorum = false;
                    }
                }
                disks.push(Disk::parse(f.get("disk").copied().unwrap_or("")));
            }
            "connection" => {
                let id = f.get("peer-node-id").copied().unwrap_or("").to_string();
                let p = peers.entry(id.clone()).or_insert_with(|| Peer {
                    node_id: id,
                    name: String::new(),
                    connection: String::new(),
                    role: Role::Unknown,
                    disk: Disk::UpToDate,
                    replication: String::new(),
                });
                p.name = f.get("conn-name").copied().unwrap_or("").to_string();
                p.connection = f.get("connection").copied().unwrap_or("").to_string();
                p.role = Role::parse(f.get("role").copied().unwrap_or(""));
            }
            "peer-device" => {
                let id = f.get("peer-node-id").copied().unwrap_or("").to_string();
                if let Some(p) = peers.get_mut(&id) {
                    let d = Disk::parse(f.get("peer-disk").copied().unwrap_or(""));
                    p.disk = p.disk.min(d);
                    // Several volumes: a resync on any of them is the peer's state.
                    let busy = |r: &str| r.starts_with("Sync") || r.starts_with("PausedSync");
                    if !busy(&p.replication) {
                        p.replication = f.get("replication").copied().unwrap_or("").to_string();
                    }
                }
            }
            _ => {}
        }
    }
    let mut st = st?;
    st.disk = disks.into_iter().min().unwrap_or(Disk::Diskless);
    st.peers = peers
        .into_values()
        .map(|mut p| {
            if !p.connected() {
                p.disk = Disk::DUnknown;
            }
            p
        })
        .collect();
    Some(st)
}

/// A module version: (major, minor, patch).
pub type Version = (u32, u32, u32);

/// The loaded module's version from `/proc/drbd` ("version: 8.4.11 (api:1/...)").
pub fn parse_module_version(proc_drbd: &str) -> Option<Version> {
    let line = proc_drbd.lines().find(|l| l.starts_with("version:"))?;
    parse_version_word(line.split_whitespace().nth(1)?)
}

/// "8.4.11", "9.2.12-1" or "8.4": the version `modinfo -F version` prints.
fn parse_version_word(v: &str) -> Option<Version> {
    let mut it = v.trim().split(['.', '-']).map(|p| p.parse::<u32>().ok());
    Some((it.next()??, it.next()??, it.next().flatten().unwrap_or(0)))
}

/// `all` means every resource to drbdadm, never one resource.
pub const RESERVED_RESOURCE_NAME: &str = "all";

/// The one rule for DRBD resource names this program passes to drbdadm (the agent's
/// `drbd_resource`, the CIB template variable, the CLI's `--resource`, the handlers'
/// `DRBD_RESOURCE`): what DRBD itself allows, never a shell word, an option or a word
/// drbdadm gives a meaning of its own. `Err` says why not.
pub fn check_resource_name(s: &str) -> Result<(), &'static str> {
    if s == RESERVED_RESOURCE_NAME {
        return Err("\"all\" names every DRBD resource to drbdadm, not one resource");
    }
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.+".contains(&b))
        && !s.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err("a DRBD resource name has 1 to 128 letters, digits, '_', '-', '.' or '+', and does not start with '-' or '.'")
    }
}

pub fn valid_resource_name(s: &str) -> bool {
    check_resource_name(s).is_ok()
}

/// Why a `drbdadm` command failed, read from DRBD's answer here so that callers never
/// look at its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A peer is Primary and the configuration allows one Primary (state change -1).
    PeerPrimary,
    /// The resource has lost quorum.
    NoQuorum,
    /// Neither this node nor a connected peer has UpToDate data (state change -2).
    NoUpToDateData,
    /// The device is held open: mounted, or opened by a process (state change -12).
    HeldOpen,
    /// The command did not finish before the deadline.
    TimedOut,
    /// Anything else (the detail says what).
    Other,
}

impl Refusal {
    fn of(out: &Outcome) -> Refusal {
        if matches!(out, Outcome::TimedOut { .. }) {
            return Refusal::TimedOut;
        }
        let err = String::from_utf8_lossy(out.stderr()).to_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| err.contains(w));
        if has(&["multiple primaries", "peer is primary", "(-1)"]) {
            Refusal::PeerPrimary
        } else if has(&["quorum"]) {
            Refusal::NoQuorum
        } else if has(&["need access to uptodate data", "(-2)"]) {
            Refusal::NoUpToDateData
        } else if has(&["held open", "(-12)"]) {
            Refusal::HeldOpen
        } else {
            Refusal::Other
        }
    }
}

/// A `drbdadm` (or `drbdsetup`) command that did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: {detail}")]
pub struct AdmError {
    /// The command as a line for messages ("drbdadm primary r0").
    pub command: String,
    pub refusal: Refusal,
    /// Exit status and DRBD's last line of complaint.
    pub detail: String,
}

/// The DRBD kernel module of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module {
    pub version: Version,
    /// Loaded now (`/proc/drbd`), or only installed (`modinfo`; drbdadm loads it on `up`).
    pub loaded: bool,
}

pub trait Drbd {
    /// The resource's state, `None` when it is down (no DRBD module loaded: down too).
    fn state(&self, res: &str, deadline: Instant) -> SysResult<Option<State>>;
    /// `drbdadm -c <conf> <args> <res>`: its standard output, or [`SysError::Drbd`] when it
    /// failed, [`SysError::NotInstalled`] without drbdadm.
    fn adm(&self, conf: &Path, args: &[&str], res: &str, deadline: Instant) -> SysResult<String>;
    /// The DRBD kernel module, loaded or installed; [`SysError::ModuleMissing`] when neither.
    fn module(&self, deadline: Instant) -> SysResult<Module>;
    /// `Ok` when `res` is defined for this node in `conf` (`drbdadm sh-minor`);
    /// [`SysError::NotConfigured`] when it is not.
    fn check_defined(&self, conf: &Path, res: &str, deadline: Instant) -> SysResult<()>;
}

/// Runs a DRBD tool; a missing program is [`SysError::NotInstalled`].
fn run_tool(cmd: &Cmd, deadline: Instant) -> SysResult<Outcome> {
    run(cmd, deadline).map_err(|e| match e {
        SpawnError::NotFound { program } => SysError::NotInstalled { program },
        other => other.into(),
    })
}

const PROC_DRBD: &str = "/proc/drbd";

pub struct RealDrbd;

impl Drbd for RealDrbd {
    fn state(&self, res: &str, deadline: Instant) -> SysResult<Option<State>> {
        // Without the module nothing of DRBD is up; asking drbdsetup would make it try
        // modprobe, a side effect no probe or stop should have.
        if !Path::new(PROC_DRBD).exists() {
            return Ok(None);
        }
        let out = run_tool(
            &Cmd::new("drbdsetup").args(["events2", "--now", res]),
            deadline,
        )?;
        match &out {
            Outcome::Exited {
                code: 0, stdout, ..
            } => Ok(parse_events2(&String::from_utf8_lossy(stdout), res)),
            // drbdsetup says "no such resource" with exit 10 on some versions.
            Outcome::Exited { code: 10, .. } => Ok(None),
            _ => Err(SysError::Invalid(format!(
                "drbdsetup events2 --now {res}: {}",
                out.describe()
            ))),
        }
    }

    fn adm(&self, conf: &Path, args: &[&str], res: &str, deadline: Instant) -> SysResult<String> {
        let cmd = Cmd::new("drbdadm").arg("-c").arg(conf).args(args).arg(res);
        let out = run_tool(&cmd, deadline)?;
        if out.success() {
            return Ok(out.stdout_str());
        }
        Err(SysError::Drbd(AdmError {
            command: format!("drbdadm {} {res}", args.join(" ")),
            refusal: Refusal::of(&out),
            detail: out.describe(),
        }))
    }

    fn module(&self, deadline: Instant) -> SysResult<Module> {
        if let Ok(text) = std::fs::read_to_string(PROC_DRBD) {
            let version = parse_module_version(&text)
                .ok_or_else(|| SysError::Invalid(format!("{PROC_DRBD}: no \"version:\" line")))?;
            return Ok(Module {
                version,
                loaded: true,
            });
        }
        let missing = |detail: String| SysError::ModuleMissing {
            module: "drbd".into(),
            detail,
        };
        let out = match run_tool(
            &Cmd::new("modinfo").args(["-F", "version", "drbd"]),
            deadline,
        ) {
            Ok(out) => out,
            Err(e @ SysError::NotInstalled { .. }) => return Err(missing(e.to_string())),
            Err(e) => return Err(e),
        };
        match parse_version_word(&out.stdout_str()) {
            Some(version) if out.success() => Ok(Module {
                version,
                loaded: false,
            }),
            _ => Err(missing(format!(
                "no {PROC_DRBD}; modinfo -F version drbd: {}",
                out.describe()
            ))),
        }
    }

    fn check_defined(&self, conf: &Path, res: &str, deadline: Instant) -> SysResult<()> {
        match self.adm(conf, &["sh-minor"], res, deadline) {
            Ok(_) => Ok(()),
            Err(SysError::Drbd(e)) => Err(SysError::NotConfigured {
                what: format!(
                    "resource {res} is not defined for this node in {}: {}",
                    conf.display(),
                    e.detail
                ),
            }),
            Err(e) => Err(e),
        }
    }
}

/// Deactivates a volume group that sits on top of DRBD (`vgchange -a n <vg>`), so DRBD
/// can change role under it (split-brain recovery).
pub fn deactivate_vg(vg: &str, deadline: Instant) -> SysResult<()> {
    let cmd = Cmd::new("vgchange").args(["-a", "n", vg]);
    let out = run_tool(&cmd, deadline)?;
    if out.success() {
        Ok(())
    } else {
        Err(SysError::Invalid(format!(
            "vgchange -a n {vg}: {}",
            out.describe()
        )))
    }
}

/// Overwrites the first `bytes` of a DRBD backing device with zeros and syncs (what is
/// left of DRBD's signature after `wipe-md`).
pub fn zero_head(dev: &Path, bytes: usize) -> SysResult<()> {
    use std::io::Write;
    let name = dev.display().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dev)
        .map_err(|e| SysError::io(format!("opening {name}"), e))?;
    f.write_all(&vec![0u8; bytes])
        .map_err(|e| SysError::io(format!("writing {name}"), e))?;
    f.sync_all()
        .map_err(|e| SysError::io(format!("syncing {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn connected_primary_and_secondary() {
        let p =
            parse_events2(&fixture("drbdsetup_events2/84-connected-primary.txt"), "r0").unwrap();
        assert_eq!(p.role, Role::Primary);
        assert_eq!(p.disk, Disk::UpToDate);
        assert_eq!(p.peers.len(), 1);
        assert!(p.peers[0].connected());
        assert_eq!(p.peers[0].role, Role::Secondary);
        assert_eq!(p.peers[0].disk, Disk::UpToDate);
        assert!(p.all_peers_up_to_date() && !p.peer_primary() && !p.syncing());
        let s = parse_events2(
            &fixture("drbdsetup_events2/84-connected-secondary.txt"),
            "r0",
        )
        .unwrap();
        assert_eq!(s.role, Role::Secondary);
        assert!(s.peer_primary());
    }

    #[test]
    fn peer_gone_is_unknown() {
        let p =
            parse_events2(&fixture("drbdsetup_events2/84-primary-peer-down.txt"), "r0").unwrap();
        assert_eq!(p.peers[0].connection, "Connecting");
        assert_eq!(p.peers[0].disk, Disk::DUnknown);
        assert!(!p.any_peer_up_to_date());
    }

    #[test]
    fn down_resource_and_other_names() {
        assert_eq!(parse_events2("exists -\n", "r0"), None);
        assert_eq!(parse_events2("", "r0"), None);
        assert_eq!(
            parse_events2(&fixture("drbdsetup_events2/84-connected-primary.txt"), "r1"),
            None
        );
    }

    #[test]
    fn drbd9_several_peers_and_volumes() {
        let s = parse_events2(
            &fixture("drbdsetup_events2/9-three-nodes-synctarget.txt"),
            "pg",
        )
        .unwrap();
        assert_eq!(s.role, Role::Secondary);
        // worst local volume
        assert_eq!(s.disk, Disk::Inconsistent);
        assert_eq!(s.peers.len(), 2);
        assert!(s.peer_primary() && s.syncing() && s.any_peer_up_to_date());
        assert!(!s.all_peers_up_to_date(), "pg3 is not connected");
        assert_eq!(s.peers[1].disk, Disk::DUnknown);
        assert!(s.quorum);
        let q = parse_events2(
            &fixture("drbdsetup_events2/9-primary-lost-quorum.txt"),
            "pg",
        )
        .unwrap();
        assert_eq!(q.role, Role::Primary);
        assert!(!q.quorum);
    }

    #[test]
    fn module_versions() {
        assert_eq!(
            parse_module_version(&fixture("proc_drbd/connected-primary.txt")),
            Some((8, 4, 11))
        );
        assert_eq!(
            parse_module_version("version: 9.2.12 (api:2/proto:86-122)\n"),
            Some((9, 2, 12))
        );
        assert_eq!(parse_module_version("nothing"), None);
    }

    #[test]
    fn resource_names() {
        assert!(valid_resource_name("pg"));
        assert!(valid_resource_name("r0.data-1"));
        assert!(
            valid_resource_name("All"),
            "only drbdadm's own word is reserved"
        );
        for bad in ["", "-x", "a b", "a;b", "$(id)", "a/b", ".hidden", "all"] {
            assert!(!valid_resource_name(bad), "{bad}");
        }
        assert!(check_resource_name("all")
            .unwrap_err()
            .contains("every DRBD resource"));
    }

    #[test]
    fn refusals_are_typed() {
        let failed = |stderr: &str| Outcome::Exited {
            code: 11,
            stdout: Vec::new(),
            stderr: stderr.as_bytes().to_vec(),
        };
        for (text, want) in [
            (
                "0: State change failed: (-1) Multiple primaries not allowed by config",
                Refusal::PeerPrimary,
            ),
            (
                "0: State change failed: (-2) Need access to UpToDate data",
                Refusal::NoUpToDateData,
            ),
            (
                "pg: State change failed: (-12) Device is held open by someone",
                Refusal::HeldOpen,
            ),
            ("pg: State change failed: No quorum", Refusal::NoQuorum),
            (
                "'r9' not defined in your config (for this host).",
                Refusal::Other,
            ),
        ] {
            assert_eq!(Refusal::of(&failed(text)), want, "{text}");
        }
        let slow = Outcome::TimedOut {
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        assert_eq!(Refusal::of(&slow), Refusal::TimedOut);
        assert_eq!(parse_version_word("8.4.11\n"), Some((8, 4, 11)));
        assert_eq!(parse_version_word("modinfo: ERROR"), None);
    }
}
