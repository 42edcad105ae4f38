//! Who holds a mount: a walk of `/proc` that never touches the file system in question.
//!
//! A process holds a mount when its cwd, root, executable or an open file lives on it, or
//! when it maps a file from it. Open files are matched by the `mnt_id` of
//! `/proc/<pid>/fdinfo/<fd>`; cwd, root and exe by opening the magic link with `O_PATH`
//! (which resolves the kernel's reference without calling into the file system) and
//! reading the `mnt_id` of our own descriptor; mappings by the device number of
//! `/proc/<pid>/maps`. No path on the target is ever stat-ed, so a hung device cannot
//! block the walk.
//!
//! Never reported: PID 1, this process and its ancestors, kernel threads, and
//! Pacemaker's and Corosync's daemons.

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// A process found holding a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
    /// What holds it: "cwd", "root", "exe", "fd 3", "mmap".
    pub how: String,
}

/// What to look for: mount IDs, and device numbers for mappings.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub mount_ids: Vec<u32>,
    pub devs: Vec<(u32, u32)>,
}

/// `mnt_id` from an fdinfo text.
pub fn parse_fdinfo_mnt_id(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Device numbers of file-backed mappings in a maps text (field 4, hex `major:minor`).
pub fn parse_maps_devs(text: &str) -> Vec<(u32, u32)> {
    let mut v: Vec<(u32, u32)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let dev = f.nth(3)?;
            let ino: u64 = f.next()?.parse().ok()?;
            if ino == 0 {
                return None;
            }
            let (a, b) = dev.split_once(':')?;
            Some((
                u32::from_str_radix(a, 16).ok()?,
                u32::from_str_radix(b, 16).ok()?,
            ))
        })
        .filter(|d| *d != (0, 0))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `(ppid, comm)` from a stat text; the comm may contain spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<(u32, String)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let ppid = rest.get(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// Daemons never signalled, whatever they hold.
pub fn protected_comm(comm: &str) -> bool {
    comm.starts_with("pacemaker")
        || matches!(
            comm,
            "corosync" | "crmd" | "cib" | "lrmd" | "stonithd" | "attrd" | "pengine" | "stonith-ng"
        )
}

fn stat_of(pid: u32) -> Option<(u32, String)> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This process and its ancestors up to PID 1.
pub fn ancestry() -> Vec<u32> {
    let mut v = vec![std::process::id()];
    let mut p = std::process::id();
    for _ in 0..64 {
        match stat_of(p) {
            Some((pp, _)) if pp > 0 => {
                v.push(pp);
                if pp == 1 {
                    break;
                }
                p = pp;
            }
            _ => break,
        }
    }
    v
}

/// The mount ID a magic link (`/proc/<pid>/cwd`, ...) points into, without resolving it
/// through the file system (`O_PATH` takes the kernel's reference as it is).
fn link_mnt_id(path: &str) -> Option<u32> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH)
        .open(path)
        .ok()?;
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{}", f.as_raw_fd())).ok()?;
    parse_fdinfo_mnt_id(&info)
}

fn kernel_thread(pid: u32) -> bool {
    // Kernel threads have no address space: an empty cmdline and no exe link.
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| c.is_empty())
        .unwrap_or(true)
        && fs::read_link(format!("/proc/{pid}/exe")).is_err()
}

/// Every process (but the excluded ones) holding one of `t`.
pub fn holders(t: &Target) -> Vec<Holder> {
    walk(t, false)
}

/// The processes holding one of `t` that are never signalled (PID 1, this process and
/// its ancestors, cluster daemons): named when a stop fails.
pub fn protected_holders(t: &Target) -> Vec<Holder> {
    walk(t, true)
}

fn walk(t: &Target, protected: bool) -> Vec<Holder> {
    let skip = ancestry();
    let mut out = Vec::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let is_protected = pid == 1
            || skip.contains(&pid)
            || stat_of(pid).is_some_and(|(_, c)| protected_comm(&c));
        if is_protected != protected {
            continue;
        }
        if let Some(h) = holder_any(pid, t) {
            out.push(h);
        }
    }
    out.sort_by_key(|h| h.pid);
    out
}

/// Whether `pid` holds one of `t`, and how (`None` for protected daemons).
pub fn holder(pid: u32, t: &Target) -> Option<Holder> {
    let (_, comm) = stat_of(pid)?;
    if protected_comm(&comm) {
        return None;
    }
    holder_any(pid, t)
}

fn holder_any(pid: u32, t: &Target) -> Option<Holder> {
    let (_, comm) = stat_of(pid)?;
    if kernel_thread(pid) {
        return None;
    }
    let mk = |how: String| Holder {
        pid,
        comm: comm.clone(),
        how,
    };
    for link in ["cwd", "root", "exe"] {
        if let Some(id) = link_mnt_id(&format!("/proc/{pid}/{link}")) {
            if t.mount_ids.contains(&id) {
                return Some(mk(link.to_string()));
            }
        }
    }
    if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for f in fds.flatten() {
            let name = f.file_name();
            let Ok(text) = fs::read_to_string(f.path()) else {
                continue;
            };
            if parse_fdinfo_mnt_id(&text).is_some_and(|id| t.mount_ids.contains(&id)) {
                return Some(mk(format!("fd {}", name.to_string_lossy())));
            }
        }
    }
    if !t.devs.is_empty() {
        if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
            if parse_maps_devs(&maps).iter().any(|d| t.devs.contains(d)) {
                return Some(mk("mmap".to_string()));
            }
        }
    }
    None
}

/// Whether the process still exists as more than a zombie (the crate's one rule).
pub use super::proc::alive as live;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn captured_fdinfo_and_maps() {
        assert_eq!(
            parse_fdinfo_mnt_id(&fixture("fdinfo/xfs-file.txt")),
            Some(74)
        );
        assert_eq!(parse_fdinfo_mnt_id("pos: 0\n"), None);
        let devs = parse_maps_devs(&fixture("maps/python-mmap.txt"));
        assert!(devs.contains(&(7, 0)), "{devs:?}");
        assert!(!devs.contains(&(0, 0)));
    }

    #[test]
    fn stat_with_odd_comm() {
        assert_eq!(
            parse_stat("42 (a) b (c)) S 7 42 42 0 -1"),
            Some((7, "a) b (c)".to_string()))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn protected_daemons() {
        assert!(protected_comm("pacemaker-execd"));
        assert!(protected_comm("corosync"));
        assert!(!protected_comm("postgres"));
    }

    #[test]
    fn our_own_cwd_is_found_by_mount_id_but_we_are_excluded() {
        let me = std::process::id();
        let id = link_mnt_id(&format!("/proc/{me}/cwd")).unwrap();
        let t = Target {
            mount_ids: vec![id],
            devs: vec![],
        };
        assert!(holders(&t).iter().all(|h| h.pid != me));
        assert!(protected_holders(&t)
            .iter()
            .any(|h| h.pid == me && h.how == "cwd"));
        assert!(ancestry().contains(&me));
        assert!(live(me));
    }
}
