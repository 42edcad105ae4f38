//! Processes seen from the host's /proc: identity checks before any signal, the lab's
//! postmasters per network namespace.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The command line of `pid`, arguments separated by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Parent pid and start time (clock ticks since boot) from /proc/PID/stat.
pub fn stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state(0) ppid(1) ... starttime is field 22 of stat = index 19 here.
    let ppid = f.get(1)?.parse().ok()?;
    let start = f.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// The session id of `pid` (field 6 of /proc/PID/stat).
pub fn session(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

pub fn all_pids() -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

pub fn children(ppid: u32) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|p| stat(*p).map(|(pp, _)| pp) == Some(ppid))
        .collect()
}

/// The inode of a namespace file (/proc/PID/ns/net, /run/netns/NAME).
pub fn ns_inode(p: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).ok().map(|m| m.ino())
}

/// Processes whose network namespace is the named one.
pub fn in_netns(ns: &str) -> Vec<u32> {
    let Some(want) = ns_inode(&Path::new("/run/netns").join(ns)) else {
        return Vec::new();
    };
    all_pids()
        .into_iter()
        .filter(|p| ns_inode(Path::new(&format!("/proc/{p}/ns/net"))) == Some(want))
        .collect()
}

/// Postmasters (a postgres process whose parent is not postgres) in a named netns.
pub fn postmasters_in(ns: &str) -> Vec<u32> {
    in_netns(ns)
        .into_iter()
        .filter(|p| comm(*p).as_deref() == Some("postgres"))
        .filter(|p| {
            stat(*p)
                .and_then(|(pp, _)| comm(pp))
                .is_none_or(|c| c != "postgres")
        })
        .collect()
}

/// Processes of the lab in `dir` that are not in a lab namespace any more: node inits
/// (`lab _init --dir DIR`), the fence daemon, the writer.
pub fn lab_processes(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let tag = format!("--dir {}", dir.display());
    all_pids()
        .into_iter()
        .filter(|p| *p != me)
        .filter(|p| cmdline(*p).is_some_and(|c| c.contains(" lab _") && c.contains(&tag)))
        .collect()
}

pub fn kill9(pid: u32) {
    if pid > 1 {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

pub fn signal(pid: u32, sig: Signal) -> bool {
    pid > 1 && kill(Pid::from_raw(pid as i32), sig).is_ok()
}

/// The process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    pid > 1
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rfind(')')
                .and_then(|i| s.get(i + 2..))
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
}
