//! Mounts: `/proc/<pid>/mountinfo` parsing, mount(2) and umount2(2), device look-ups
//! (`UUID=`/`LABEL=` through blkid), the file-system checkers and mkfs.
//!
//! Mounting goes through the syscall for local block file systems (xfs, ext2/3/4,
//! btrfs) and bind mounts: the VFS flags of the option string become `MS_*` flags and
//! the rest (`logbsize=256k`, `allocsize=1m`, `nouuid`, ...) is passed unchanged as the
//! file system's data. Other types (nfs, cifs, fuse, ...) need their userspace helpers and
//! go through `mount -t TYPE -o OPTIONS` (arguments, never a shell string).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::mount::{MntFlags, MsFlags};

use super::error::{SysError, SysResult};
use super::runner::{run, Cmd, Outcome};

/// One line of mountinfo (proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u32,
    pub parent: u32,
    pub major: u32,
    pub minor: u32,
    /// The directory of the file system mounted here (not `/` for bind mounts).
    pub root: String,
    pub mount_point: PathBuf,
    pub options: String,
    pub fstype: String,
    pub source: String,
    pub super_options: String,
}

impl MountEntry {
    pub fn dev(&self) -> (u32, u32) {
        (self.major, self.minor)
    }
}

/// Undoes the octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if v <= 255 {
                    out.push(v as u8);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bad(line: &str, why: &str) -> SysError {
    SysError::Invalid(format!("mountinfo line {line:?}: {why}"))
}

/// Parses mountinfo text; lines are kept in order (a later mount on the same point hides
/// an earlier one).
pub fn parse_mountinfo(text: &str) -> SysResult<Vec<MountEntry>> {
    let mut v = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(' ').collect();
        let sep = f
            .iter()
            .position(|x| *x == "-")
            .ok_or_else(|| bad(line, "no ' - ' separator"))?;
        if sep < 6 || f.len() < sep + 4 {
            return Err(bad(line, "too few fields"));
        }
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad(line, "not a number"));
        let (maj, min) = f[2]
            .split_once(':')
            .ok_or_else(|| bad(line, "no major:minor"))?;
        v.push(MountEntry {
            id: num(f[0])?,
            parent: num(f[1])?,
            major: num(maj)?,
            minor: num(min)?,
            root: unescape(f[3]),
            mount_point: PathBuf::from(unescape(f[4])),
            options: f[5].to_string(),
            fstype: unescape(f[sep + 1]),
            source: unescape(f[sep + 2]),
            super_options: f[sep + 3..].join(" "),
        });
    }
    Ok(v)
}

/// The mount table of `pid` (`None`: this process).
pub fn mountinfo(pid: Option<u32>) -> SysResult<Vec<MountEntry>> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/mountinfo"),
        None => "/proc/self/mountinfo".to_string(),
    };
    let text = fs::read_to_string(&path).map_err(|e| SysError::io(format!("reading {path}"), e))?;
    parse_mountinfo(&text)
}

/// The visible (topmost) mount at exactly `dir`.
pub fn mount_at<'a>(table: &'a [MountEntry], dir: &Path) -> Option<&'a MountEntry> {
    table.iter().rev().find(|m| m.mount_point == dir)
}

/// Every mount strictly below `dir`, deepest first.
pub fn mounts_below<'a>(table: &'a [MountEntry], dir: &Path) -> Vec<&'a MountEntry> {
    let mut v: Vec<&MountEntry> = table
        .iter()
        .filter(|m| m.mount_point != dir && m.mount_point.starts_with(dir))
        .collect();
    // Deeper paths first; among equal depth, later mounts (on top) first.
    let order: Vec<u32> = v.iter().map(|m| m.id).collect();
    v.sort_by_key(|m| {
        let pos = order.iter().position(|i| *i == m.id).unwrap_or(0);
        (
            std::cmp::Reverse(m.mount_point.components().count()),
            std::cmp::Reverse(pos),
        )
    });
    v
}

/// Every mount stacked on or below the mount `top` (by parent ID, so a mount hidden
/// under `top` on the directory beneath it is not one of them), deepest first.
pub fn submounts(table: &[MountEntry], top: u32) -> Vec<&MountEntry> {
    let mut found: Vec<&MountEntry> = Vec::new();
    let mut frontier = vec![top];
    while let Some(p) = frontier.pop() {
        for m in table.iter().filter(|m| m.parent == p && m.id != p) {
            if !found.iter().any(|f| f.id == m.id) {
                found.push(m);
                frontier.push(m.id);
            }
        }
    }
    let order: Vec<u32> = table.iter().map(|m| m.id).collect();
    found.sort_by_key(|m| {
        let pos = order.iter().position(|i| *i == m.id).unwrap_or(0);
        (
            std::cmp::Reverse(m.mount_point.components().count()),
            std::cmp::Reverse(pos),
        )
    });
    found
}

/// The one canonical form of an absolute path, resolved once: every symbolic link on
/// the way is followed (at most 40), `.` and `..` applied; what does not exist yet is
/// appended as given (a start creates it). A component that is a mount point in `table`
/// is a directory and is not looked at, so resolving a mounted directory does not
/// touch its (possibly hung) file system.
pub fn resolve_path(path: &Path, table: &[MountEntry]) -> SysResult<PathBuf> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    use std::path::Component;
    if !path.is_absolute() {
        return Err(SysError::Invalid(format!(
            "{}: not an absolute path",
            path.display()
        )));
    }
    let parts = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect()
    };
    let mut todo: VecDeque<OsString> = parts(path).into();
    let mut out = PathBuf::from("/");
    let mut links = 0;
    let mut missing = false;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&c);
        if missing || table.iter().any(|m| m.mount_point == next) {
            out = next;
            continue;
        }
        match fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(SysError::errno(
                        format!("resolving {}", path.display()),
                        nix::errno::Errno::ELOOP,
                    ));
                }
                let target = fs::read_link(&next)
                    .map_err(|e| SysError::io(format!("reading link {}", next.display()), e))?;
                if target.is_absolute() {
                    out = PathBuf::from("/");
                }
                for t in parts(&target).into_iter().rev() {
                    todo.push_front(t);
                }
            }
            Ok(_) => out = next,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing = true;
                out = next;
            }
            Err(e) => {
                return Err(SysError::io(
                    format!("resolving {} at {}", path.display(), next.display()),
                    e,
                ))
            }
        }
    }
    Ok(out)
}

/// What a bind mount of the directory `src` shows in mountinfo: the device of the mount
/// holding `src` and the path of `src` within that file system (the `root` field).
pub fn bind_origin(table: &[MountEntry], src: &Path) -> Option<((u32, u32), PathBuf)> {
    let m = table
        .iter()
        .filter(|m| src.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())?;
    let rel = src.strip_prefix(&m.mount_point).ok()?;
    let mut root = PathBuf::from(&m.root);
    root.extend(rel.components());
    Some((m.dev(), root))
}

/// The file-system types the kernel knows (`/proc/filesystems`).
pub fn kernel_filesystems() -> SysResult<Vec<String>> {
    let t = fs::read_to_string("/proc/filesystems")
        .map_err(|e| SysError::io("reading /proc/filesystems", e))?;
    Ok(parse_filesystems(&t))
}

pub fn parse_filesystems(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

/// A block device node: its path and device number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
}

/// What a device path is, without opening it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevKind {
    Block(BlockDev),
    Missing,
    NotBlock,
}

pub fn block_device(path: &Path) -> SysResult<DevKind> {
    match fs::metadata(path) {
        Ok(m) if m.file_type().is_block_device() => {
            let rdev = m.rdev();
            Ok(DevKind::Block(BlockDev {
                path: path.to_path_buf(),
                major: nix::sys::stat::major(rdev) as u32,
                minor: nix::sys::stat::minor(rdev) as u32,
            }))
        }
        Ok(_) => Ok(DevKind::NotBlock),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DevKind::Missing),
        Err(e) => Err(SysError::io(format!("examining {}", path.display()), e)),
    }
}

/// Size in bytes of the block device `major:minor`, from sysfs.
pub fn block_size_bytes(major: u32, minor: u32) -> SysResult<u64> {
    let p = format!("/sys/dev/block/{major}:{minor}/size");
    let t = fs::read_to_string(&p).map_err(|e| SysError::io(format!("reading {p}"), e))?;
    t.trim()
        .parse::<u64>()
        .map(|s| s * 512)
        .map_err(|_| SysError::Invalid(format!("{p}: not a number: {t:?}")))
}

/// Resolves `UUID=...` or `LABEL=...` to a device path with `blkid -U`/`-L`; `None`
/// when no device carries it.
pub fn find_tagged(tag: &str, value: &str, deadline: Instant) -> SysResult<Option<PathBuf>> {
    let flag = match tag {
        "UUID" => "-U",
        "LABEL" => "-L",
        _ => return Err(SysError::Invalid(format!("unknown device tag {tag}"))),
    };
    let out = run(&Cmd::new("blkid").arg(flag).arg(value), deadline)?;
    match out {
        Outcome::Exited { code: 0, .. } => {
            let s = out.stdout_str();
            let p = s.lines().next().unwrap_or("").trim();
            Ok((!p.is_empty()).then(|| PathBuf::from(p)))
        }
        // blkid: 2 means "no such token".
        Outcome::Exited { code: 2, .. } => Ok(None),
        other => Err(SysError::Invalid(format!(
            "blkid {flag} {value}: {}",
            other.describe()
        ))),
    }
}

/// The option string, split into VFS flags and the file system's own data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub flags: MsFlags,
    pub data: Vec<String>,
    pub bind: bool,
    pub read_only: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            data: Vec::new(),
            bind: false,
            read_only: false,
        }
    }
}

impl MountOptions {
    pub fn ms_flags(&self) -> MsFlags {
        self.flags
    }
    pub fn data_string(&self) -> String {
        self.data.join(",")
    }
}

/// Splits a mount(8)-style option list. Userspace-only options (`defaults`, `auto`,
/// `nofail`, `_netdev`, `x-*`, ...) are dropped; `remount` and `move` are refused
/// (the agent mounts, it never changes another mount).
pub fn split_options(opts: &str) -> Result<MountOptions, String> {
    let mut m = MountOptions::default();
    let set = |f: MsFlags, on: bool, m: &mut MountOptions| {
        if on {
            m.flags.insert(f);
        } else {
            m.flags.remove(f);
        }
    };
    for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match o {
            "ro" => {
                set(MsFlags::MS_RDONLY, true, &mut m);
                m.read_only = true;
            }
            "rw" => {
                set(MsFlags::MS_RDONLY, false, &mut m);
                m.read_only = false;
            }
            "noatime" => set(MsFlags::MS_NOATIME, true, &mut m),
            "atime" => set(MsFlags::MS_NOATIME, false, &mut m),
            "nodiratime" => set(MsFlags::MS_NODIRATIME, true, &mut m),
            "diratime" => set(MsFlags::MS_NODIRATIME, false, &mut m),
            "relatime" => set(MsFlags::MS_RELATIME, true, &mut m),
            "norelatime" => set(MsFlags::MS_RELATIME, false, &mut m),
            "strictatime" => set(MsFlags::MS_STRICTATIME, true, &mut m),
            "nosuid" => set(MsFlags::MS_NOSUID, true, &mut m),
            "suid" => set(MsFlags::MS_NOSUID, false, &mut m),
            "nodev" => set(MsFlags::MS_NODEV, true, &mut m),
            "dev" => set(MsFlags::MS_NODEV, false, &mut m),
            "noexec" => set(MsFlags::MS_NOEXEC, true, &mut m),
            "exec" => set(MsFlags::MS_NOEXEC, false, &mut m),
            "sync" => set(MsFlags::MS_SYNCHRONOUS, true, &mut m),
            "async" => set(MsFlags::MS_SYNCHRONOUS, false, &mut m),
            "dirsync" => set(MsFlags::MS_DIRSYNC, true, &mut m),
            "lazytime" => set(MsFlags::MS_LAZYTIME, true, &mut m),
            "nolazytime" => set(MsFlags::MS_LAZYTIME, false, &mut m),
            "silent" => set(MsFlags::MS_SILENT, true, &mut m),
            "loud" => set(MsFlags::MS_SILENT, false, &mut m),
            "bind" => m.bind = true,
            "rbind" => {
                m.bind = true;
                set(MsFlags::MS_REC, true, &mut m);
            }
            "defaults" | "auto" | "noauto" | "nofail" | "_netdev" | "user" | "nouser" | "users"
            | "owner" | "group" | "comment" => {}
            o if o.starts_with("x-") || o.starts_with("comment=") => {}
            "remount" | "move" | "rmove" => {
                return Err(format!("{o} is not an option for mounting a resource"))
            }
            "loop" => {
                return Err(
                    "loop devices are not set up by this agent; give the loop device as device"
                        .into(),
                )
            }
            o if o.starts_with("loop=")
                || o.starts_with("offset=")
                || o.starts_with("sizelimit=") =>
            {
                return Err(format!("{o}: loop devices are not set up by this agent"))
            }
            o => m.data.push(o.to_string()),
        }
    }
    Ok(m)
}

/// Local types that mount(2) handles without a helper.
pub fn syscall_type(fstype: &str) -> bool {
    matches!(
        fstype,
        "xfs" | "ext2" | "ext3" | "ext4" | "btrfs" | "tmpfs" | "vfat" | "none"
    )
}

/// One mount to make: `source` on `target` as `fstype`, with the option string
/// `raw_options` and its split form `opts`.
#[derive(Debug, Clone, Copy)]
pub struct MountSpec<'a> {
    pub source: &'a str,
    pub target: &'a Path,
    pub fstype: &'a str,
    pub opts: &'a MountOptions,
    pub raw_options: &'a str,
}

/// Mounts `m.source` on `m.target`.
pub fn mount(m: &MountSpec, deadline: Instant) -> SysResult<()> {
    let MountSpec {
        source,
        target,
        fstype,
        opts,
        raw_options,
    } = *m;
    if opts.bind || fstype == "none" {
        let mut f = opts.ms_flags() | MsFlags::MS_BIND;
        nix::mount::mount(Some(source), target, None::<&str>, f, None::<&str>).map_err(|e| {
            SysError::errno(format!("bind-mounting {source} on {}", target.display()), e)
        })?;
        // Flags other than MS_BIND/MS_REC need a remount of the bind mount.
        f.remove(MsFlags::MS_BIND | MsFlags::MS_REC);
        if !f.is_empty() {
            nix::mount::mount(
                None::<&str>,
                target,
                None::<&str>,
                f | MsFlags::MS_BIND | MsFlags::MS_REMOUNT,
                None::<&str>,
            )
            .map_err(|e| SysError::errno(format!("setting flags on {}", target.display()), e))?;
        }
        return Ok(());
    }
    if syscall_type(fstype) {
        let data = opts.data_string();
        return nix::mount::mount(
            Some(source),
            target,
            Some(fstype),
            opts.ms_flags(),
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(|e| {
            SysError::errno(
                format!("mounting {source} ({fstype}) on {}", target.display()),
                e,
            )
        });
    }
    let mut c = typed(Cmd::new("mount"), fstype);
    if !raw_options.is_empty() {
        c = c.arg("-o").arg(raw_options);
    }
    let what = format!("mount -t {fstype} {source} {}", target.display());
    run_ok(&c.arg("--").arg(source).arg(target), &what, deadline).map(drop)
}

/// `c -t fstype`, or `c` alone when the type is left to the tool.
fn typed(c: Cmd, fstype: &str) -> Cmd {
    if fstype.is_empty() {
        c
    } else {
        c.arg("-t").arg(fstype)
    }
}

/// Runs `c`; exiting other than 0 is `SysError::Invalid` naming `what` and how it ended.
fn run_ok(c: &Cmd, what: &str, deadline: Instant) -> SysResult<Outcome> {
    let out = run(c, deadline)?;
    if out.success() {
        Ok(out)
    } else {
        Err(SysError::Invalid(format!("{what}: {}", out.describe())))
    }
}

/// What an unmount did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Umount {
    Done,
    /// Nothing is mounted there (any more): EINVAL or ENOENT.
    NotMounted,
    /// EBUSY: the mount is in use.
    Busy,
}

/// umount2(2) of `target` (a link there is not followed). `force` (MNT_FORCE) aborts
/// pending requests of network file systems.
pub fn umount(target: &Path, force: bool) -> SysResult<Umount> {
    let f = if force {
        MntFlags::MNT_FORCE | MntFlags::UMOUNT_NOFOLLOW
    } else {
        MntFlags::UMOUNT_NOFOLLOW
    };
    match nix::mount::umount2(target, f) {
        Ok(()) => Ok(Umount::Done),
        Err(nix::errno::Errno::EBUSY) => Ok(Umount::Busy),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(Umount::NotMounted),
        Err(e) => Err(SysError::errno(
            format!("unmounting {}", target.display()),
            e,
        )),
    }
}

/// Result of a file-system check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsckResult {
    Clean,
    /// Errors were corrected (ext fsck exit 1 or 2).
    Corrected(i32),
    /// Not checked, and why (an XFS log that the mount will replay).
    Skipped(String),
    Failed(String),
}

/// `fsck -t TYPE -p DEVICE` for ext file systems; exit codes of 4 and more are failures.
pub fn fsck(device: &Path, fstype: &str, deadline: Instant) -> SysResult<FsckResult> {
    let out = run(
        &typed(Cmd::new("fsck"), fstype).arg("-p").arg(device),
        deadline,
    )?;
    Ok(match out.code() {
        Some(0) => FsckResult::Clean,
        Some(n @ 1..=3) => FsckResult::Corrected(n),
        _ => FsckResult::Failed(format!("fsck -p {}: {}", device.display(), out.describe())),
    })
}

/// `xfs_repair -n DEVICE`: a read-only check, never a repair. Exit 2 means a dirty log
/// (after a crash): the check cannot run, and mounting replays the log, so that is no
/// reason to refuse a failover.
pub fn xfs_check(device: &Path, deadline: Instant) -> SysResult<FsckResult> {
    let out = run(&Cmd::new("xfs_repair").arg("-n").arg(device), deadline)?;
    Ok(if out.success() {
        FsckResult::Clean
    } else if out.code() == Some(2) {
        FsckResult::Skipped(format!(
            "xfs_repair -n {}: the log is dirty; mounting replays it",
            device.display()
        ))
    } else {
        FsckResult::Failed(format!(
            "xfs_repair -n {}: {}",
            device.display(),
            out.describe()
        ))
    })
}

/// `mkfs.xfs [extra...] -d agcount=N DEVICE`.
pub fn mkfs_xfs(
    device: &Path,
    agcount: u32,
    extra: &[String],
    deadline: Instant,
) -> SysResult<String> {
    let c = Cmd::new("mkfs.xfs")
        .args(extra)
        .arg("-d")
        .arg(format!("agcount={agcount}"))
        .arg(device);
    Ok(run_ok(&c, &c.display(), deadline)?.stdout_str())
}

/// What the mount point's path is, from lstat of the path (never of anything below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Missing,
    Dir,
    /// A symbolic link to a directory.
    LinkToDir,
    Other,
}

pub fn path_kind(p: &Path) -> PathKind {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => PathKind::Dir,
        Ok(m) if m.file_type().is_symlink() && p.is_dir() => PathKind::LinkToDir,
        Ok(_) => PathKind::Other,
        Err(_) => PathKind::Missing,
    }
}

/// Everything the filesystem agent asks of the system, so its logic can be unit-tested
/// with a fake ([`super::fake::FakeMounts`]); [`RealMounts`] is the system.
pub trait Mounts {
    fn mountinfo(&self) -> SysResult<Vec<MountEntry>>;
    /// Serialises the actions of one resource instance (see [`super::lock`]).
    fn lock(&self, instance: &str, until: Instant) -> SysResult<super::lock::InstanceLock>;
    fn block_device(&self, path: &Path) -> SysResult<DevKind>;
    fn find_tagged(&self, tag: &str, value: &str, deadline: Instant) -> SysResult<Option<PathBuf>>;
    /// The kernel's file-system types; with `load`, after trying to load its module.
    fn kernel_filesystems(&self, load: Option<&str>, deadline: Instant) -> SysResult<Vec<String>>;
    fn path_kind(&self, path: &Path) -> PathKind;
    /// This node's host name (names the depth-20 status file).
    fn hostname(&self) -> String;
    /// See [`resolve_path`].
    fn resolve_path(&self, path: &Path, table: &[MountEntry]) -> SysResult<PathBuf>;
    fn create_dir_all(&self, path: &Path) -> SysResult<()>;
    fn mount(&self, m: &MountSpec, deadline: Instant) -> SysResult<()>;
    fn umount(&self, target: &Path, force: bool) -> SysResult<Umount>;
    fn fsck(&self, device: &Path, fstype: &str, deadline: Instant) -> SysResult<FsckResult>;
    fn xfs_check(&self, device: &Path, deadline: Instant) -> SysResult<FsckResult>;
    fn holders(&self, t: &super::procwalk::Target) -> Vec<super::procwalk::Holder>;
    fn protected_holders(&self, t: &super::procwalk::Target) -> Vec<super::procwalk::Holder>;
    fn signal(&self, pid: u32, sig: nix::sys::signal::Signal) -> SysResult<()>;
    fn live(&self, pid: u32) -> bool;
    fn probe(
        &self,
        ops: &[super::blockio::Op],
        deadline: Instant,
    ) -> Result<(), super::blockio::ProbeError>;
}

/// The real system.
pub struct RealMounts;

impl Mounts for RealMounts {
    fn mountinfo(&self) -> SysResult<Vec<MountEntry>> {
        mountinfo(None)
    }
    fn lock(&self, instance: &str, until: Instant) -> SysResult<super::lock::InstanceLock> {
        super::lock::instance_lock("filesystem", instance, until)
    }
    fn block_device(&self, path: &Path) -> SysResult<DevKind> {
        block_device(path)
    }
    fn find_tagged(&self, tag: &str, value: &str, deadline: Instant) -> SysResult<Option<PathBuf>> {
        find_tagged(tag, value, deadline)
    }
    fn kernel_filesystems(&self, load: Option<&str>, deadline: Instant) -> SysResult<Vec<String>> {
        if let Some(m) = load {
            let _ = run(&Cmd::new("modprobe").arg("-q").arg("--").arg(m), deadline);
        }
        kernel_filesystems()
    }
    fn path_kind(&self, path: &Path) -> PathKind {
        path_kind(path)
    }
    fn hostname(&self) -> String {
        nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".into())
    }
    fn resolve_path(&self, path: &Path, table: &[MountEntry]) -> SysResult<PathBuf> {
        resolve_path(path, table)
    }
    fn create_dir_all(&self, path: &Path) -> SysResult<()> {
        fs::create_dir_all(path)
            .map_err(|e| SysError::io(format!("creating {}", path.display()), e))
    }
    fn mount(&self, m: &MountSpec, deadline: Instant) -> SysResult<()> {
        mount(m, deadline)
    }
    fn umount(&self, target: &Path, force: bool) -> SysResult<Umount> {
        umount(target, force)
    }
    fn fsck(&self, device: &Path, fstype: &str, deadline: Instant) -> SysResult<FsckResult> {
        fsck(device, fstype, deadline)
    }
    fn xfs_check(&self, device: &Path, deadline: Instant) -> SysResult<FsckResult> {
        xfs_check(device, deadline)
    }
    fn holders(&self, t: &super::procwalk::Target) -> Vec<super::procwalk::Holder> {
        super::procwalk::holders(t)
    }
    fn protected_holders(&self, t: &super::procwalk::Target) -> Vec<super::procwalk::Holder> {
        super::procwalk::protected_holders(t)
    }
    fn signal(&self, pid: u32, sig: nix::sys::signal::Signal) -> SysResult<()> {
        super::proc::signal(pid, sig)
    }
    fn live(&self, pid: u32) -> bool {
        super::procwalk::live(pid)
    }
    fn probe(
        &self,
        ops: &[super::blockio::Op],
        deadline: Instant,
    ) -> Result<(), super::blockio::ProbeError> {
        super::blockio::probe(ops, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn captured_mountinfo_with_spaces_and_loop_xfs() {
        let t = parse_mountinfo(&fixture("mountinfo/loop-xfs-space.txt")).unwrap();
        let m = mount_at(&t, Path::new("/tmp/pgst-fs-fix/mnt with space")).unwrap();
        assert_eq!(m.fstype, "xfs");
        assert!(m.source.starts_with("/dev/loop"));
        assert!(m.super_options.contains("logbsize=256k"));
        assert!(m.options.contains("noatime"));
        let root = mount_at(&t, Path::new("/")).unwrap();
        assert_ne!(root.id, m.id);
        let below = mounts_below(&t, Path::new("/tmp/pgst-fs-fix/mnt with space"));
        assert_eq!(below.len(), 2);
        assert!(
            below[0].mount_point.components().count() >= below[1].mount_point.components().count()
        );
        assert!(below[0].mount_point.ends_with("deeper"));
    }

    #[test]
    fn bind_mount_origin() {
        let t = parse_mountinfo(&fixture("mountinfo/loop-xfs-space.txt")).unwrap();
        let (dev, root) = bind_origin(
            &t,
            Path::new("/tmp/pgst-fs-fix/mnt with space/sub/deeper/x/y"),
        )
        .unwrap();
        assert_eq!(dev, (7, 1));
        assert_eq!(root, PathBuf::from("/x/y"));
        let (_, root) = bind_origin(&t, Path::new("/tmp/pgst-fs-fix/mnt with space")).unwrap();
        assert_eq!(root, PathBuf::from("/"));
    }

    #[test]
    fn paths_resolve_once_through_links_with_a_missing_tail() {
        let d = std::env::temp_dir().join(format!("pgst-fs-resolve-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("real/sub")).unwrap();
        let d = fs::canonicalize(&d).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("abs")).unwrap();
        std::os::unix::fs::symlink("real/./sub/..", d.join("rel")).unwrap();
        std::os::unix::fs::symlink("/", d.join("root")).unwrap();
        std::os::unix::fs::symlink("loop", d.join("loop")).unwrap();
        let r = |p: &str| resolve_path(&d.join(p), &[]);
        assert_eq!(r("abs/sub").unwrap(), d.join("real/sub"));
        assert_eq!(r("abs/new/deeper").unwrap(), d.join("real/new/deeper"));
        assert_eq!(r("rel").unwrap(), d.join("real"));
        assert_eq!(r("root").unwrap(), Path::new("/"));
        assert_eq!(r("root/.").unwrap(), Path::new("/"));
        assert!(r("loop/x").is_err());
        // A mount point is taken as it is, without looking at it.
        let t = parse_mountinfo(&fixture("mountinfo/loop-xfs-space.txt")).unwrap();
        let m = Path::new("/tmp/pgst-fs-fix/mnt with space");
        assert_eq!(resolve_path(m, &t).unwrap(), m);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn submounts_follow_parent_ids() {
        let t = parse_mountinfo(&fixture("mountinfo/loop-xfs-space.txt")).unwrap();
        let top = mount_at(&t, Path::new("/tmp/pgst-fs-fix/mnt with space")).unwrap();
        let subs = submounts(&t, top.id);
        assert_eq!(subs.len(), 2);
        assert!(subs[0].mount_point.ends_with("deeper"));
        assert!(submounts(&t, subs[0].id).is_empty());
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"/plain\04"), r"/plain\04");
        assert_eq!(unescape(r"\"), r"\");
    }

    #[test]
    fn broken_lines_are_errors_not_panics() {
        assert!(parse_mountinfo("1 2 3").is_err());
        assert!(parse_mountinfo("a 2 8:1 / / rw - xfs /dev/x rw").is_err());
        assert!(parse_mountinfo("1 2 81 / / rw - xfs /dev/x rw").is_err());
        assert!(parse_mountinfo("").unwrap().is_empty());
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let o =
            split_options("noatime,nodiratime,logbsize=256k,allocsize=1m,defaults,x-systemd.foo")
                .unwrap();
        assert_eq!(o.data, ["logbsize=256k", "allocsize=1m"]);
        assert!(o
            .ms_flags()
            .contains(MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME));
        let o = split_options("ro,nouuid").unwrap();
        assert!(o.read_only && o.data == ["nouuid"]);
        assert!(split_options("remount").is_err());
        assert!(split_options("loop").is_err());
        assert!(split_options("bind").unwrap().bind);
    }

    #[test]
    fn filesystems_list() {
        let l = parse_filesystems(&fixture("proc/filesystems.txt"));
        assert!(l.iter().any(|f| f == "xfs"));
        assert!(l.iter().any(|f| f == "proc"));
    }
}
