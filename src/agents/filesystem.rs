//! `ocf:pgstack:filesystem`: one mounted file system (XFS first, ext4 too), the
//! replacement of `ocf:heartbeat:Filesystem` with the same parameter names.
//!
//! **Manages** the mount of `device` on `directory`, as read from `/proc/self/mountinfo`
//! (mount IDs and `major:minor`, so a symlinked device name or a path with spaces is
//! matched exactly). Another device mounted on the directory is an error with a reason,
//! never "running". `/` is never managed.
//!
//! **Actions**
//! - `start`: checks the device (a path, `UUID=` or `LABEL=`) and the directory (created
//!   when missing), runs `fsck -p` for ext file systems (`run_fsck`; XFS is never repaired,
//!   `run_fsck=force` runs the read-only `xfs_repair -n`), mounts through mount(2) with the
//!   VFS flags taken from `options` and the rest passed as file-system data, and verifies
//!   the result in mountinfo.
//! - `stop`: unmounts the deepest sub-mounts first, then the mount itself. A busy mount's
//!   holders are found by walking `/proc` (cwd, root, exe, open files by mount ID, mappings
//!   by device number) for that mount only: never the parent mount or `/`, never by
//!   stat-ing a path on it. PID 1, the agent and its ancestors, Pacemaker's daemons and
//!   corosync are never signalled. `term_signals` then `kill_signals` are sent, `signal_delay`
//!   apart, within one deadline for all sub-mounts; if the mount stays busy the action
//!   fails naming the remaining holders. A foreign device on the directory is left alone.
//! - `monitor`: depth 0 checks the mount and its device; depth 10 adds an O_DIRECT read of
//!   the device and a read of the mount's root directory; depth 20 adds an O_DIRECT write,
//!   fsync and read-back of a per-node status file. The I/O runs in a forked child with
//!   the operation's deadline, so a hung device gives an error with a reason before
//!   Pacemaker's timeout, and an XFS forced shutdown (EIO) is reported.
//! - `validate-all`: syntax errors give 6, a missing device, directory or kernel support
//!   gives 5.
//!
//! **Side effects**: the mount, the directory (created by start), the status directory
//! and file of depth-20 monitors, and signals to the holders of a busy mount at stop.
//! Not promotable; refuses to run as a clone of a non-cluster file system unless
//! `force_clones` is set.

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::ocf::agent::FromParams;
use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::{ParamError, ParamSpec, Params};
use crate::ocf::{Action, Agent, Ctx, ExitCode, OcfCode, OcfError, Status};
use crate::sys::blockio::{Op, ProbeError};
use crate::sys::mount::{
    self, BlockDev, DevKind, FsckResult, MountEntry, MountOptions, Mounts, PathKind,
};
use crate::sys::procwalk::{Holder, Target};

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string(
        "device",
        "Block device",
        "The device to mount: a path (/dev/VG_POSTGRES/LV_DATA), UUID=... or LABEL=..., \
         or a source of a network or bind mount.",
    )
    .required(),
    ParamSpec::string(
        "directory",
        "Mount point",
        "The absolute path to mount on; created at start when missing. Trailing slashes are \
         ignored; '/' is refused.",
    )
    .required(),
    ParamSpec::string(
        "fstype",
        "File system type",
        "The type (xfs, ext4, ...). Empty lets mount(8) detect it. 'none' bind-mounts \
         device on directory.",
    ),
    ParamSpec::string(
        "options",
        "Mount options",
        "Comma-separated mount options, as for mount -o. VFS flags (noatime, nodiratime, ro, \
         nosuid, ...) become mount flags, the rest (logbsize=256k, allocsize=1m, nouuid, ...) \
         is passed to the file system. White space and shell separators are refused.",
    ),
    ParamSpec::string(
        "statusfile_prefix",
        "Status file directory",
        "Where the depth-20 monitor writes its status file, relative to directory; the \
         file is named after the instance (and clone number) and the node.",
    )
    .default(".Filesystem_status/"),
    ParamSpec::string(
        "run_fsck",
        "Check before mounting",
        "'auto' runs fsck -p for ext2/3/4 and nothing for XFS; 'force' also runs the \
         read-only xfs_repair -n for XFS; 'no' never checks.",
    )
    .default("auto"),
    ParamSpec::boolean(
        "fast_stop",
        "Escalate quickly",
        "When true, holders of a busy mount get one round of term_signals, then \
         kill_signals. When false, term_signals are repeated for half of the stop timeout \
         before kill_signals.",
    )
    .default("no"),
    ParamSpec::boolean(
        "force_clones",
        "Allow clones of local file systems",
        "Allow this resource in a clone although the file system (xfs, ext4) is not \
         cluster-aware. Only for configurations that guarantee a single writer.",
    )
    .default("false"),
    ParamSpec::string(
        "force_unmount",
        "Kill holders at stop",
        "'true' (or 'safe', the same here: holders are always found without touching the \
         file system) signals the processes holding a busy mount; 'false' only tries to \
         unmount.",
    )
    .default("true"),
    ParamSpec::string(
        "term_signals",
        "First signals",
        "Signals sent first to the holders of a busy mount, by name or number, separated \
         by commas or spaces.",
    )
    .default("TERM"),
    ParamSpec::string(
        "kill_signals",
        "Last signals",
        "Signals sent when term_signals did not free the mount.",
    )
    .default("KILL"),
    ParamSpec::integer(
        "signal_delay",
        "Seconds between signals",
        "How long to wait for holders to go after each round of signals, from 0 to 60 \
         seconds (the mount is retried every few milliseconds meanwhile).",
    )
    .default("1"),
];

static ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 60),
    ActionSpec::new(Action::Stop, 60),
    ActionSpec::new(Action::Monitor, 40).interval(20).depth(0),
    ActionSpec::new(Action::Monitor, 40).interval(60).depth(10),
    ActionSpec::new(Action::Monitor, 40).interval(120).depth(20),
    ActionSpec::new(Action::MetaData, 5),
    ActionSpec::new(Action::ValidateAll, 10),
];

pub static INFO: AgentInfo = AgentInfo {
    name: "filesystem",
    shortdesc: "Mounted file system (XFS, ext4) with a safe, bounded stop",
    longdesc: "Mounts a block device (XFS, ext4, ...) on a directory. Stop unmounts sub-mounts \
        first and signals only the processes that hold the mount itself, found without \
        touching the file system, within the operation's timeout. Deep monitors read and \
        write with O_DIRECT under a deadline, so a hung or shut-down file system is \
        reported before Pacemaker's timeout. Parameter names follow \
        ocf:heartbeat:Filesystem.",
    params: PARAMS,
    actions: ACTIONS,
};

/// A stop that could not free the mount, with the holders that remain.
#[derive(Debug, thiserror::Error)]
#[error("{dir}: still busy, not unmounted; remaining holders: {holders}")]
pub struct Busy {
    pub dir: String,
    pub holders: String,
}

impl ExitCode for Busy {
    fn code(&self) -> OcfCode {
        OcfCode::ErrGeneric
    }
}
crate::agent_failure!(Busy);

/// A deep monitor's I/O probe failed: the file system does not serve I/O.
impl ExitCode for ProbeError {
    fn code(&self) -> OcfCode {
        OcfCode::ErrGeneric
    }
}
crate::agent_failure!(ProbeError);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Path(PathBuf),
    Uuid(String),
    Label(String),
    /// A network or pseudo source (server:/export, //server/share, tmpfs name).
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsck {
    Auto,
    Force,
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    pub device: DeviceSpec,
    pub directory: PathBuf,
    pub fstype: String,
    pub options: String,
    pub opts: MountOptions,
    pub statusfile_prefix: PathBuf,
    pub run_fsck: Fsck,
    pub fast_stop: bool,
    pub force_clones: bool,
    pub force_unmount: bool,
    pub term_signals: Vec<Signal>,
    pub kill_signals: Vec<Signal>,
    pub signal_delay: Duration,
}

/// Types backed by a local block device.
fn block_type(fstype: &str) -> bool {
    matches!(
        fstype,
        "xfs" | "ext2" | "ext3" | "ext4" | "btrfs" | "jfs" | "reiserfs" | "vfat"
    )
}

/// Types whose concurrent mount on two nodes corrupts them.
fn local_only(fstype: &str) -> bool {
    matches!(
        fstype,
        "xfs" | "ext2" | "ext3" | "ext4" | "btrfs" | "jfs" | "reiserfs"
    )
}

/// An absolute directory, trailing slashes removed; `/`, `.` and `..` refused.
pub fn parse_directory(v: &str) -> Result<PathBuf, ParamError> {
    let bad = |why: &str| ParamError::invalid("directory", v, why);
    if v.chars().any(|c| c.is_control()) {
        return Err(bad("contains control characters"));
    }
    if !v.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    let t = v.trim_end_matches('/');
    if t.is_empty() {
        return Err(bad("refusing to manage the root file system"));
    }
    let p = Path::new(t);
    if p.components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(bad("must not contain . or .. components"));
    }
    Ok(p.components().collect())
}

pub fn parse_device(v: &str) -> Result<DeviceSpec, ParamError> {
    let v = v.trim();
    if v.is_empty() || v.chars().any(|c| c.is_control()) {
        return Err(ParamError::invalid("device", v, "not a device"));
    }
    if let Some(u) = v.strip_prefix("UUID=") {
        return Ok(DeviceSpec::Uuid(u.trim_matches('"').to_string()));
    }
    if let Some(l) = v.strip_prefix("LABEL=") {
        return Ok(DeviceSpec::Label(l.trim_matches('"').to_string()));
    }
    if v.starts_with('/') && !v.starts_with("//") {
        return Ok(DeviceSpec::Path(PathBuf::from(v)));
    }
    Ok(DeviceSpec::Other(v.to_string()))
}

pub fn parse_options(v: &str) -> Result<MountOptions, ParamError> {
    if let Some(c) = v
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || ";|&$`<>'\"\\(){}*?!#".contains(*c))
    {
        return Err(ParamError::invalid(
            "options",
            v,
            format!("contains {c:?}; give one comma-separated list without separators"),
        ));
    }
    mount::split_options(v).map_err(|why| ParamError::invalid("options", v, why))
}

pub fn parse_signals(name: &'static str, v: &str) -> Result<Vec<Signal>, ParamError> {
    let mut out = Vec::new();
    for s in v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let sig = if let Ok(n) = s.parse::<i32>() {
            Signal::try_from(n).ok()
        } else {
            let up = s.to_ascii_uppercase();
            let full = if up.starts_with("SIG") {
                up
            } else {
                format!("SIG{up}")
            };
            Signal::from_str(&full).ok()
        };
        match sig {
            Some(Signal::SIGSTOP) | None => {
                return Err(ParamError::invalid(
                    name,
                    v,
                    format!("{s} is not a usable signal"),
                ))
            }
            Some(sig) => out.push(sig),
        }
    }
    if out.is_empty() {
        return Err(ParamError::invalid(name, v, "no signal given"));
    }
    Ok(out)
}

pub fn configure(p: &Params) -> Result<FsConfig, ParamError> {
    let device = parse_device(p.str("device").unwrap_or_default())?;
    let directory = parse_directory(p.str("directory").unwrap_or_default())?;
    let fstype = p.str("fstype").unwrap_or("").trim().to_string();
    if !fstype
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b))
    {
        return Err(ParamError::invalid(
            "fstype",
            fstype.as_str(),
            "not a file-system type name",
        ));
    }
    let options = p.str("options").unwrap_or("").trim().to_string();
    let opts = parse_options(&options)?;
    let prefix_raw = p.str("statusfile_prefix").unwrap_or(".Filesystem_status/");
    let prefix = PathBuf::from(prefix_raw);
    if prefix.is_absolute()
        || prefix
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        || prefix_raw.chars().any(|c| c.is_control())
    {
        return Err(ParamError::invalid(
            "statusfile_prefix",
            prefix_raw,
            "must be a relative path below directory, without . or ..",
        ));
    }
    let run_fsck = match p.str("run_fsck").unwrap_or("auto").trim() {
        "auto" => Fsck::Auto,
        "force" => Fsck::Force,
        "no" => Fsck::No,
        other => {
            return Err(ParamError::invalid(
                "run_fsck",
                other,
                "use auto, force or no",
            ))
        }
    };
    let force_unmount = match p.str("force_unmount").unwrap_or("true").trim() {
        "safe" => true,
        v if crate::ocf::env::is_true(v) => true,
        v if crate::ocf::env::is_false(v) => false,
        other => {
            return Err(ParamError::invalid(
                "force_unmount",
                other,
                "use true, safe or false",
            ))
        }
    };
    let term_signals = parse_signals("term_signals", p.str("term_signals").unwrap_or("TERM"))?;
    let kill_signals = parse_signals("kill_signals", p.str("kill_signals").unwrap_or("KILL"))?;
    let delay = p.int_in("signal_delay", 0, 60)?.unwrap_or(1);
    if matches!(device, DeviceSpec::Other(_)) && block_type(&fstype) {
        return Err(ParamError::invalid(
            "device",
            p.str("device").unwrap_or_default(),
            format!("{fstype} needs a device path, UUID= or LABEL="),
        ));
    }
    Ok(FsConfig {
        device,
        directory,
        fstype,
        options,
        opts,
        statusfile_prefix: prefix,
        run_fsck,
        fast_stop: p.bool("fast_stop"),
        force_clones: p.bool("force_clones"),
        force_unmount,
        term_signals,
        kill_signals,
        signal_delay: Duration::from_secs(delay as u64),
    })
}

/// The device as resolved on this node.
#[derive(Debug, Clone)]
enum Resolved {
    Block(BlockDev),
    /// No such device (path missing, or no device carries the UUID/label).
    Missing(String),
    /// A path that is not a block device.
    NotBlock(PathBuf),
    /// A source that is not a local device.
    Source(String),
}

pub struct Filesystem<M: Mounts> {
    sys: M,
}

impl<M: Mounts> Filesystem<M> {
    pub fn new(sys: M) -> Self {
        Filesystem { sys }
    }

    fn resolve(&self, cfg: &FsConfig, deadline: Instant) -> Result<Resolved, OcfError> {
        let path = match &cfg.device {
            DeviceSpec::Other(s) => return Ok(Resolved::Source(s.clone())),
            DeviceSpec::Path(p) => p.clone(),
            DeviceSpec::Uuid(u) => match self.sys.find_tagged("UUID", u, deadline)? {
                Some(p) => p,
                None => return Ok(Resolved::Missing(format!("no device has UUID={u}"))),
            },
            DeviceSpec::Label(l) => match self.sys.find_tagged("LABEL", l, deadline)? {
                Some(p) => p,
                None => return Ok(Resolved::Missing(format!("no device has LABEL={l}"))),
            },
        };
        Ok(match self.sys.block_device(&path)? {
            DevKind::Block(b) => Resolved::Block(b),
            DevKind::Missing => {
                Resolved::Missing(format!("device {} does not exist", path.display()))
            }
            DevKind::NotBlock => Resolved::NotBlock(path),
        })
    }

    /// Whether the mount `m` is of our device.
    fn ours(m: &MountEntry, r: &Resolved, table: &[MountEntry]) -> bool {
        match r {
            Resolved::Block(b) => m.dev() == (b.major, b.minor) || Path::new(&m.source) == b.path,
            // A bind mount shows the device and the path within it, not the source.
            Resolved::NotBlock(p) => {
                Path::new(&m.source) == p
                    || mount::bind_origin(table, p)
                        .is_some_and(|(dev, root)| dev == m.dev() && root == Path::new(&m.root))
            }
            Resolved::Source(s) => &m.source == s,
            Resolved::Missing(_) => false,
        }
    }

    fn source_of(r: &Resolved) -> Option<String> {
        match r {
            Resolved::Block(b) => Some(b.path.display().to_string()),
            Resolved::NotBlock(p) => Some(p.display().to_string()),
            Resolved::Source(s) => Some(s.clone()),
            Resolved::Missing(_) => None,
        }
    }

    fn check_clone(cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        if ctx.env.meta.clone.is_some() || ctx.env.meta.clone_max.is_some() {
            let t = if cfg.fstype.is_empty() {
                "this file system"
            } else {
                &cfg.fstype
            };
            if (local_only(&cfg.fstype) || cfg.fstype.is_empty())
                && !cfg.force_clones
                && !cfg.opts.read_only
            {
                return Err(OcfError::Configured(format!(
                    "{t} on {} is not cluster-aware: refusing to run as a clone (set force_clones only if a single writer is guaranteed)",
                    cfg.device_text()
                )));
            }
        }
        Ok(())
    }

    fn check_fstype(&self, cfg: &FsConfig, deadline: Instant) -> Result<(), OcfError> {
        if cfg.fstype.is_empty() || cfg.fstype == "none" {
            return Ok(());
        }
        let known = |fs: &[String]| {
            fs.iter().any(|f| f == &cfg.fstype)
                || (cfg.fstype.starts_with("fuse") && fs.iter().any(|f| f == "fuse"))
        };
        if known(&self.sys.kernel_filesystems(None, deadline)?) {
            return Ok(());
        }
        // A module may provide it.
        if known(&self.sys.kernel_filesystems(Some(&cfg.fstype), deadline)?) {
            return Ok(());
        }
        Err(OcfError::Installed(format!(
            "fstype={}: not supported by this kernel (not in /proc/filesystems)",
            cfg.fstype
        )))
    }

    /// The mount point must be a directory (or absent, to be created), not a symbolic
    /// link: mountinfo shows where a link points, so the mount could not be recognised.
    fn check_directory(&self, cfg: &FsConfig) -> Result<PathKind, OcfError> {
        match self.sys.path_kind(&cfg.directory) {
            PathKind::Other => Err(OcfError::Installed(format!(
                "directory {} exists and is not a directory",
                cfg.directory.display()
            ))),
            PathKind::LinkToDir => Err(OcfError::Configured(format!(
                "directory {} is a symbolic link; give the path it points to",
                cfg.directory.display()
            ))),
            k => Ok(k),
        }
    }

    fn status_file(cfg: &FsConfig, ctx: &Ctx) -> (Vec<PathBuf>, PathBuf) {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into());
        let mut name = ctx.env.instance_file_name();
        if let Some(c) = ctx.env.meta.clone {
            name = format!("{name}_{c}");
        }
        let name = format!("{name}_{host}");
        let mut dirs = Vec::new();
        let mut d = cfg.directory.clone();
        for c in cfg.statusfile_prefix.components() {
            d.push(c);
            dirs.push(d.clone());
        }
        (dirs, d.join(name))
    }

    /// Frees and unmounts `m`, signalling its holders, within `deadline`.
    fn unmount_one(
        &self,
        cfg: &FsConfig,
        m: &MountEntry,
        devs_shared: bool,
        ctx: &Ctx,
    ) -> Result<(), OcfError> {
        let dl = ctx.deadline.instant();
        let force = matches!(
            m.fstype.as_str(),
            "nfs" | "nfs4" | "cifs" | "smb3" | "smbfs"
        );
        let try_umount = || self.sys.umount(&m.mount_point, force);
        match try_umount() {
            Ok(()) => return Ok(()),
            Err(e)
                if matches!(
                    e.raw_errno(),
                    Some(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT)
                ) =>
            {
                // Already gone (unmounted meanwhile, or hidden).
                return Ok(());
            }
            Err(e) if e.raw_errno() != Some(nix::errno::Errno::EBUSY) => return Err(e.into()),
            Err(_) => {}
        }
        let target = Target {
            mount_ids: vec![m.id],
            // Mappings carry only a device number: used unless another mount shares it.
            devs: if m.major != 0 && !devs_shared {
                vec![m.dev()]
            } else {
                vec![]
            },
        };
        let dir = m.mount_point.display().to_string();
        if !cfg.force_unmount {
            let hs = self.sys.holders(&target);
            return Err(Busy {
                dir,
                holders: describe(&hs) + " (force_unmount=false)",
            }
            .into());
        }
        // Term rounds: one with fast_stop, else until half of the remaining budget.
        let start = Instant::now();
        let term_until = if cfg.fast_stop {
            start
        } else {
            start + (dl.saturating_duration_since(start) / 2)
        };
        let mut round = 0u32;
        loop {
            let now = Instant::now();
            if now >= dl {
                break;
            }
            let use_term = round == 0 || (now < term_until && !cfg.fast_stop);
            let sigs = if use_term {
                &cfg.term_signals
            } else {
                &cfg.kill_signals
            };
            let hs = self.sys.holders(&target);
            for h in &hs {
                for s in sigs {
                    match self.sys.signal(h.pid, *s) {
                        Ok(()) => ctx.log.info(&format!(
                            "sent {s} to {} ({}, {}) holding {dir}",
                            h.pid, h.comm, h.how
                        )),
                        Err(e) => ctx.log.debug(&format!("{e}")),
                    }
                }
            }
            if hs.is_empty() {
                ctx.log.debug(&format!(
                    "{dir} is busy without a process holding it; retrying"
                ));
            }
            // Wait for the holders to go, retrying the unmount meanwhile.
            let until = dl.min(Instant::now() + cfg.signal_delay.max(Duration::from_millis(20)));
            let mut nap = Duration::from_millis(1);
            loop {
                match try_umount() {
                    Ok(()) => return Ok(()),
                    Err(e)
                        if matches!(
                            e.raw_errno(),
                            Some(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT)
                        ) =>
                    {
                        return Ok(())
                    }
                    Err(e) if e.raw_errno() != Some(nix::errno::Errno::EBUSY) => {
                        return Err(e.into())
                    }
                    Err(_) => {}
                }
                if Instant::now() >= until {
                    break;
                }
                // Every holder gone but the mount still busy: look again at once (a
                // holder may have left a child behind) rather than sleeping out the delay.
                if !hs.is_empty() && hs.iter().all(|h| !self.sys.live(h.pid)) {
                    break;
                }
                std::thread::sleep(nap.min(until.saturating_duration_since(Instant::now())));
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            round += 1;
        }
        let mut holders = describe(&self.sys.holders(&target));
        let kept = self.sys.protected_holders(&target);
        if !kept.is_empty() {
            holders = format!(
                "{holders}; never signalled (PID 1, this agent's ancestors, cluster daemons): {}",
                describe(&kept)
            );
        }
        Err(Busy { dir, holders }.into())
    }

    /// Unmounts everything at and below `dir`: deepest first, one deadline for all.
    fn unmount_tree(&self, cfg: &FsConfig, r: &Resolved, ctx: &Ctx) -> Result<(), OcfError> {
        for _pass in 0..16 {
            let table = self.sys.mountinfo()?;
            let top = mount::mount_at(&table, &cfg.directory);
            if let Some(t) = top {
                if !Self::ours(t, r, &table) && !matches!(r, Resolved::Missing(_)) {
                    ctx.log.warn(&format!(
                        "{} is mounted from {}, not from {}: left alone",
                        cfg.directory.display(),
                        t.source,
                        cfg.device_text()
                    ));
                    return Ok(());
                }
            }
            let mut todo: Vec<MountEntry> = mount::mounts_below(&table, &cfg.directory)
                .into_iter()
                .cloned()
                .collect();
            if let Some(t) = top {
                todo.push(t.clone());
            }
            if todo.is_empty() {
                return Ok(());
            }
            for m in &todo {
                let shared = table.iter().filter(|o| o.dev() == m.dev()).count() > 1;
                self.unmount_one(cfg, m, shared, ctx)?;
                ctx.log
                    .info(&format!("unmounted {}", m.mount_point.display()));
            }
        }
        Err(OcfError::Generic(format!(
            "{}: mounts keep reappearing",
            cfg.directory.display()
        )))
    }
}

fn describe(hs: &[Holder]) -> String {
    if hs.is_empty() {
        return "none found".into();
    }
    hs.iter()
        .map(|h| format!("{} ({}, {})", h.pid, h.comm, h.how))
        .collect::<Vec<_>>()
        .join(", ")
}

impl FsConfig {
    fn device_text(&self) -> String {
        match &self.device {
            DeviceSpec::Path(p) => p.display().to_string(),
            DeviceSpec::Uuid(u) => format!("UUID={u}"),
            DeviceSpec::Label(l) => format!("LABEL={l}"),
            DeviceSpec::Other(s) => s.clone(),
        }
    }
}

impl FromParams for FsConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
}

impl<M: Mounts> Agent for Filesystem<M> {
    type Config = FsConfig;

    fn info(&self) -> &'static AgentInfo {
        &INFO
    }

    fn validate(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        Self::check_clone(cfg, ctx)?;
        self.check_fstype(cfg, ctx.deadline.instant())?;
        match self.resolve(cfg, ctx.deadline.instant())? {
            Resolved::Missing(why) => return Err(OcfError::Installed(why)),
            Resolved::NotBlock(p) if block_type(&cfg.fstype) => {
                return Err(OcfError::Installed(format!(
                    "device {} is not a block device",
                    p.display()
                )))
            }
            _ => {}
        }
        self.check_directory(cfg).map(|_| ())
    }

    fn start(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let dl = ctx.deadline.instant();
        let r = self.resolve(cfg, dl)?;
        let table = self.sys.mountinfo()?;
        if let Some(m) = mount::mount_at(&table, &cfg.directory) {
            if Self::ours(m, &r, &table) {
                ctx.log
                    .info(&format!("{} is already mounted", cfg.directory.display()));
                return Ok(());
            }
            return Err(OcfError::Generic(format!(
                "another device ({}) is mounted on {}",
                m.source,
                cfg.directory.display()
            )));
        }
        if let Some(b) = mount::mounts_below(&table, &cfg.directory).first() {
            return Err(OcfError::Configured(format!(
                "{} has a mount below it ({}) but is not mounted itself",
                cfg.directory.display(),
                b.mount_point.display()
            )));
        }
        let source = Self::source_of(&r).ok_or_else(|| OcfError::Installed(cfg.device_text()))?;
        if let Resolved::Block(b) = &r {
            let ext = matches!(cfg.fstype.as_str(), "ext2" | "ext3" | "ext4");
            let res = match (cfg.run_fsck, cfg.fstype.as_str()) {
                (Fsck::No, _) => None,
                (Fsck::Force, "xfs") => Some(self.sys.xfs_check(&b.path, dl)?),
                (Fsck::Auto | Fsck::Force, _) if ext => {
                    Some(self.sys.fsck(&b.path, &cfg.fstype, dl)?)
                }
                _ => None,
            };
            match res {
                Some(FsckResult::Failed(why)) => return Err(OcfError::Generic(why)),
                Some(FsckResult::Skipped(why)) => ctx.log.warn(&why),
                Some(FsckResult::Corrected(n)) => ctx.log.warn(&format!(
                    "fsck corrected errors on {} (exit {n})",
                    b.path.display()
                )),
                _ => {}
            }
        }
        if self.check_directory(cfg)? == PathKind::Missing {
            self.sys.create_dir_all(&cfg.directory).map_err(|e| {
                OcfError::Installed(format!(
                    "cannot create directory {}: {e}",
                    cfg.directory.display()
                ))
            })?;
        }
        self.sys
            .mount(
                &source,
                &cfg.directory,
                &cfg.fstype,
                &cfg.opts,
                &cfg.options,
                dl,
            )
            .map_err(|e| OcfError::Generic(e.to_string()))?;
        let table = self.sys.mountinfo()?;
        match mount::mount_at(&table, &cfg.directory) {
            Some(m) if Self::ours(m, &r, &table) || matches!(r, Resolved::Source(_)) => {
                ctx.log.info(&format!(
                    "mounted {source} on {} ({}, {})",
                    cfg.directory.display(),
                    m.fstype,
                    m.options
                ));
                Ok(())
            }
            Some(m) => Err(OcfError::Generic(format!(
                "after mounting, {} shows {} instead of {source}",
                cfg.directory.display(),
                m.source
            ))),
            None => Err(OcfError::Generic(format!(
                "mounted {source}, but {} does not appear in mountinfo",
                cfg.directory.display()
            ))),
        }
    }

    fn stop(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let r = self
            .resolve(cfg, ctx.deadline.instant())
            .unwrap_or_else(|e| Resolved::Missing(e.to_string()));
        self.unmount_tree(cfg, &r, ctx)
    }

    fn monitor(&self, cfg: &FsConfig, ctx: &Ctx) -> Result<Status, OcfError> {
        let table = self.sys.mountinfo()?;
        let Some(m) = mount::mount_at(&table, &cfg.directory) else {
            return Ok(Status::NotRunning(None));
        };
        let r = self.resolve(cfg, ctx.deadline.instant())?;
        if let Resolved::Missing(why) = &r {
            return Err(OcfError::Generic(format!(
                "{} is mounted from {}, but {why}",
                cfg.directory.display(),
                m.source
            )));
        }
        if !Self::ours(m, &r, &table) {
            return Err(OcfError::Generic(format!(
                "another device ({}) is mounted on {}, not {}",
                m.source,
                cfg.directory.display(),
                cfg.device_text()
            )));
        }
        let level = ctx.env.check_level;
        if level == 0 {
            return Ok(Status::Running);
        }
        if level != 10 && level != 20 {
            return Err(OcfError::Configured(format!(
                "unsupported monitor depth {level} (use 0, 10 or 20)"
            )));
        }
        let mut ops = Vec::new();
        if let Resolved::Block(b) = &r {
            ops.push(Op::ReadDevice(b.path.clone()));
        }
        ops.push(Op::ReadDir(cfg.directory.clone()));
        if level == 20 && !cfg.opts.read_only {
            let (dirs, file) = Self::status_file(cfg, ctx);
            let nonce = format!(
                "{}\n{} {}\n",
                ctx.env.instance,
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            );
            ops.push(Op::WriteStatus {
                dirs,
                file,
                content: nonce.into_bytes(),
            });
        }
        match self.sys.probe(&ops, ctx.deadline.instant()) {
            Ok(()) => Ok(Status::Running),
            Err(ProbeError::Failed {
                step,
                path,
                errno: nix::errno::Errno::EIO,
            }) => Err(OcfError::Generic(format!(
                "{step} {path}: I/O error (file system shut down or device failing)"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// The parameters do not parse: still unmount whatever is mounted on the directory,
    /// if it names one.
    fn stop_unconfigured(&self, err: &OcfError, ctx: &Ctx) -> Result<(), OcfError> {
        let Some(dir) = ctx
            .env
            .raw_param("directory")
            .and_then(|d| parse_directory(d).ok())
        else {
            ctx.log.warn(&format!("stop with an invalid configuration ({err}) and no usable directory: nothing to unmount"));
            return Ok(());
        };
        let cfg = FsConfig {
            device: DeviceSpec::Other(String::new()),
            directory: dir,
            fstype: String::new(),
            options: String::new(),
            opts: MountOptions::default(),
            statusfile_prefix: PathBuf::from(".Filesystem_status"),
            run_fsck: Fsck::No,
            fast_stop: false,
            force_clones: false,
            force_unmount: true,
            term_signals: vec![Signal::SIGTERM],
            kill_signals: vec![Signal::SIGKILL],
            signal_delay: Duration::from_secs(1),
        };
        self.unmount_tree(&cfg, &Resolved::Missing(String::new()), ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocf::dispatch::run;
    use crate::ocf::env::OcfEnv;
    use crate::ocf::log::Logger;
    use crate::sys::fake::FakeMounts;

    fn act(fs: &Filesystem<FakeMounts>, action: &str, pairs: &[(&str, &str)]) -> (u8, String) {
        let mut m: std::collections::BTreeMap<String, String> = [
            ("device", "/dev/loop7"),
            ("directory", "/srv/db"),
            ("fstype", "xfs"),
            ("signal_delay", "0"),
        ]
        .iter()
        .chain(pairs.iter().filter(|(k, _)| !k.starts_with("OCF_")))
        .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
        .collect();
        for (k, v) in pairs.iter().filter(|(k, _)| k.starts_with("OCF_")) {
            m.insert(k.to_string(), v.to_string());
        }
        m.insert("OCF_RESOURCE_INSTANCE".into(), "fs".into());
        let o = run(fs, action, &OcfEnv::from_map(m), &Logger::silent());
        (o.code.as_u8(), o.exit_reason.unwrap_or_default())
    }

    /// / (1), /srv (20) with /srv/db (30, ours) holding /srv/db/a (31) and /srv/db/a/b
    /// (32), and a sibling /srv/other (40) on another device.
    fn tree() -> FakeMounts {
        FakeMounts::default()
            .with_device("/dev/loop7", (7, 7))
            .with_device("/dev/loop8", (7, 8))
            .with_mount(1, 0, (8, 1), "/", "/dev/vda")
            .with_mount(20, 1, (8, 2), "/srv", "/dev/vdb")
            .with_mount(30, 20, (7, 7), "/srv/db", "/dev/loop7")
            .with_mount(31, 30, (0, 50), "/srv/db/a", "tmpfs")
            .with_mount(32, 31, (0, 51), "/srv/db/a/b", "tmpfs")
            .with_mount(40, 20, (7, 8), "/srv/other", "/dev/loop8")
    }

    #[test]
    fn stop_goes_deepest_first_escalates_and_spares_the_rest() {
        let sys = tree()
            .with_proc(100, 32, &[])
            .with_proc(101, 30, &[Signal::SIGTERM])
            .with_proc(102, 40, &[])
            .with_proc(103, 20, &[]);
        let fs = Filesystem::new(sys);
        let (code, why) = act(&fs, "stop", &[("fast_stop", "true")]);
        assert_eq!(code, 0, "{why}");
        let calls = fs.sys.calls.borrow().clone();
        let pos = |c: &str| {
            calls
                .iter()
                .position(|x| x == c)
                .unwrap_or_else(|| panic!("{c} not in {calls:?}"))
        };
        assert!(pos("kill SIGTERM 100") < pos("kill SIGTERM 101"));
        assert!(pos("kill SIGTERM 101") < pos("kill SIGKILL 101"));
        let unmounted: Vec<&String> = calls.iter().filter(|c| c.starts_with("umount")).collect();
        assert_eq!(unmounted.first().unwrap().as_str(), "umount /srv/db/a/b");
        assert!(
            !calls
                .iter()
                .any(|c| c.ends_with(" 102") || c.ends_with(" 103")),
            "{calls:?}"
        );
        let left: Vec<u32> = fs.sys.table.borrow().iter().map(|m| m.id).collect();
        assert_eq!(left, [1, 20, 40]);
        assert!(fs.sys.alive(102) && fs.sys.alive(103));
    }

    #[test]
    fn an_unkillable_holder_fails_the_stop_in_time_naming_it_and_protected_ones() {
        let fs = Filesystem::new(
            tree()
                .with_proc(101, 30, &[Signal::SIGTERM, Signal::SIGKILL])
                .with_proc(105, 30, &[])
                .protect(105),
        );
        let t0 = Instant::now();
        let (code, why) = act(&fs, "stop", &[("OCF_RESKEY_CRM_meta_timeout", "600")]);
        assert_eq!(code, 1);
        assert!(
            t0.elapsed() < Duration::from_millis(600),
            "{:?}",
            t0.elapsed()
        );
        assert!(why.contains("101 (proc101"), "{why}");
        assert!(
            why.contains("never signalled") && why.contains("105"),
            "{why}"
        );
        assert!(!fs.sys.calls.borrow().iter().any(|c| c.ends_with(" 105")));
    }

    #[test]
    fn force_unmount_false_signals_nobody() {
        let fs = Filesystem::new(tree().with_proc(101, 30, &[]));
        let (code, why) = act(&fs, "stop", &[("force_unmount", "false")]);
        assert_eq!(code, 1);
        assert!(
            why.contains("101") && why.contains("force_unmount=false"),
            "{why}"
        );
        assert!(fs.sys.alive(101));
        assert!(!fs.sys.calls.borrow().iter().any(|c| c.starts_with("kill")));
    }

    #[test]
    fn a_foreign_device_is_reported_and_left_mounted() {
        let fs = Filesystem::new(tree());
        let (code, why) = act(&fs, "monitor", &[("device", "/dev/loop8")]);
        assert_eq!(code, 1);
        assert!(
            why.contains("/dev/loop7") && why.contains("another device"),
            "{why}"
        );
        let (code, _) = act(&fs, "stop", &[("device", "/dev/loop8")]);
        assert_eq!(code, 0);
        assert!(!fs
            .sys
            .calls
            .borrow()
            .iter()
            .any(|c| c.starts_with("umount")));
    }

    #[test]
    fn monitor_depths_and_probe_errors() {
        let fs = Filesystem::new(tree());
        assert_eq!(act(&fs, "monitor", &[("directory", "/srv/nothere")]).0, 7);
        assert_eq!(act(&fs, "monitor", &[]).0, 0);
        assert!(fs.sys.probes.borrow().is_empty(), "depth 0 does no I/O");
        assert_eq!(act(&fs, "monitor", &[("OCF_CHECK_LEVEL", "20")]).0, 0);
        let ops = fs.sys.probes.borrow()[0].clone();
        assert!(matches!(&ops[0], Op::ReadDevice(p) if p == Path::new("/dev/loop7")));
        assert!(matches!(&ops[1], Op::ReadDir(p) if p == Path::new("/srv/db")));
        match &ops[2] {
            Op::WriteStatus {
                dirs,
                file,
                content,
            } => {
                assert_eq!(dirs, &[PathBuf::from("/srv/db/.Filesystem_status")]);
                assert!(file
                    .to_string_lossy()
                    .starts_with("/srv/db/.Filesystem_status/fs_"));
                assert!(content.starts_with(b"fs\n"));
            }
            o => panic!("{o:?}"),
        }
        *fs.sys.probe_error.borrow_mut() = Some(ProbeError::Failed {
            step: "writing",
            path: "/srv/db/x".into(),
            errno: nix::errno::Errno::EIO,
        });
        let (code, why) = act(&fs, "monitor", &[("OCF_CHECK_LEVEL", "10")]);
        assert_eq!(code, 1);
        assert!(why.contains("shut down"), "{why}");
        *fs.sys.probe_error.borrow_mut() = Some(ProbeError::TimedOut {
            path: "/dev/loop7".into(),
            ms: 900,
        });
        let (code, why) = act(&fs, "monitor", &[("OCF_CHECK_LEVEL", "10")]);
        assert_eq!((code, why.contains("hung")), (1, true), "{why}");
    }

    #[test]
    fn start_mounts_once_and_stop_with_bad_parameters_still_unmounts() {
        let fs = Filesystem::new(
            FakeMounts::default()
                .with_device("/dev/loop7", (7, 7))
                .with_mount(1, 0, (8, 1), "/", "/dev/vda"),
        );
        assert_eq!(act(&fs, "start", &[]).0, 0);
        assert_eq!(act(&fs, "start", &[]).0, 0);
        let mounts = fs
            .sys
            .calls
            .borrow()
            .iter()
            .filter(|c| c.starts_with("mount"))
            .count();
        assert_eq!(mounts, 1);
        let (code, why) = act(&fs, "start", &[("options", "a;b")]);
        assert_eq!(code, 6, "{why}");
        assert_eq!(act(&fs, "stop", &[("options", "a;b")]).0, 0);
        assert!(fs.sys.calls.borrow().iter().any(|c| c == "umount /srv/db"));
        assert_eq!(act(&fs, "monitor", &[]).0, 7);
        assert_eq!(act(&fs, "start", &[("device", "/dev/loop9")]).0, 5);
        assert_eq!(act(&fs, "monitor", &[("device", "/dev/loop9")]).0, 7);
    }

    fn params(pairs: &[(&str, &str)]) -> Result<FsConfig, ParamError> {
        let env = OcfEnv::from_map(
            pairs
                .iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
                .collect(),
        );
        configure(&Params::parse(PARAMS, &env)?)
    }

    #[test]
    fn book_configuration() {
        let c = params(&[
            ("device", "/dev/VG_POSTGRES/LV_DATA"),
            ("directory", "/db//"),
            ("fstype", "xfs"),
            (
                "options",
                "noatime,nodiratime,logbufs=8,logbsize=256k,attr2,allocsize=1m",
            ),
        ])
        .unwrap();
        assert_eq!(c.directory, PathBuf::from("/db"));
        assert_eq!(
            c.opts.data,
            ["logbufs=8", "logbsize=256k", "attr2", "allocsize=1m"]
        );
        assert_eq!(c.term_signals, [Signal::SIGTERM]);
        assert_eq!(c.kill_signals, [Signal::SIGKILL]);
        assert_eq!(c.signal_delay, Duration::from_secs(1));
        assert!(c.force_unmount && !c.fast_stop);
    }

    #[test]
    fn bad_input_names_the_value() {
        let e = params(&[("device", "/dev/x"), ("directory", "db")]).unwrap_err();
        assert!(e.to_string().contains("\"db\"") && e.to_string().contains("absolute"));
        let e = params(&[("device", "/dev/x"), ("directory", "/")]).unwrap_err();
        assert!(e.to_string().contains("root"));
        let e = params(&[
            ("device", "/dev/x"),
            ("directory", "/d"),
            ("options", "noatime -o remount"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("options"));
        let e = params(&[
            ("device", "/dev/x"),
            ("directory", "/d"),
            ("options", "noatime;reboot"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("';'"), "{e}");
        let e = params(&[
            ("device", "/dev/x"),
            ("directory", "/d"),
            ("fstype", "XFS;x"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("fstype"));
        let e = params(&[
            ("device", "/dev/x"),
            ("directory", "/d"),
            ("term_signals", "TERM,BOGUS"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("BOGUS"));
        let e = params(&[
            ("device", "/dev/x"),
            ("directory", "/d"),
            ("statusfile_prefix", "../x"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("statusfile_prefix"));
        assert!(params(&[("directory", "/d")]).is_err());
        let e =
            params(&[("device", "srv:/x"), ("directory", "/d"), ("fstype", "xfs")]).unwrap_err();
        assert!(e.to_string().contains("device path"));
    }

    #[test]
    fn devices_and_signals() {
        assert_eq!(
            parse_device("UUID=ab-cd").unwrap(),
            DeviceSpec::Uuid("ab-cd".into())
        );
        assert_eq!(
            parse_device("LABEL=\"pg\"").unwrap(),
            DeviceSpec::Label("pg".into())
        );
        assert_eq!(
            parse_device("srv:/e").unwrap(),
            DeviceSpec::Other("srv:/e".into())
        );
        assert_eq!(
            parse_signals("term_signals", "TERM, SIGINT 1").unwrap(),
            [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP]
        );
        assert!(parse_signals("kill_signals", "STOP").is_err());
        assert!(parse_signals("kill_signals", "").is_err());
    }

    #[test]
    fn paths_with_spaces_are_kept() {
        assert_eq!(
            parse_directory("/srv/pg data/").unwrap(),
            PathBuf::from("/srv/pg data")
        );
        assert!(parse_directory("/srv/../etc").is_err());
    }
}
