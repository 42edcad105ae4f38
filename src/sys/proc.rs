//! Processes and pid files, read from `/proc`.

use std::fs;
use std::io::Write;
use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::error::{SysError, SysResult};

/// The argument vector of `pid`, or `None` when no such process exists (or it is a zombie).
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    nix::unistd::Uid::effective().as_raw()
}

/// `/proc/<pid>/stat`: state letter and parent pid.
pub fn stat(pid: u32) -> Option<(char, u32)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: split at the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The one "is this process alive" of the crate: it exists and is not a zombie (a
/// zombie has exited; it only waits for its parent to collect the status). Read from
/// `/proc`, so it also holds for processes this one may not signal.
pub fn alive(pid: u32) -> bool {
    pid > 0 && stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// The parent of a live or zombie process.
pub fn parent(pid: u32) -> Option<u32> {
    stat(pid).map(|(_, p)| p)
}

pub fn signal(pid: u32, sig: Signal) -> SysResult<()> {
    if pid == 0 || pid > i32::MAX as u32 {
        return Err(SysError::Invalid(format!("refusing to signal pid {pid}")));
    }
    kill(Pid::from_raw(pid as i32), sig)
        .map_err(|e| SysError::errno(format!("kill -{sig} {pid}"), e))
}

/// Writes a pid file atomically (temporary file, then rename), creating its directory.
pub fn write_pidfile(path: &Path, pid: u32) -> SysResult<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| SysError::io(format!("creating {}", dir.display()), e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)
        .map_err(|e| SysError::io(format!("creating {}", tmp.display()), e))?;
    writeln!(f, "{pid}").map_err(|e| SysError::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| SysError::io(format!("renaming to {}", path.display()), e))
}

/// The pid in a pid file; `None` when the file is absent or holds no number.
pub fn read_pidfile(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

pub fn remove_file(path: &Path) -> SysResult<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SysError::io(format!("removing {}", path.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cmdline_and_liveness() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(!alive(0));
        assert!(!alive(u32::MAX - 1));
        assert!(parent(me).is_some_and(|p| p > 0));
        assert!(!cmdline(me).unwrap().is_empty());
        assert_eq!(cmdline(u32::MAX - 1), None);
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not waited for: once it exits it stays a zombie until collected.
        assert!(crate::wait::until(
            std::time::Instant::now() + std::time::Duration::from_secs(10),
            crate::wait::Backoff::FAST,
            || stat(pid).is_some_and(|(s, _)| s == 'Z')
        ));
        assert!(!alive(pid));
        let mut child = child;
        child.wait().unwrap();
    }

    #[test]
    fn pidfile_round_trip() {
        let dir = std::env::temp_dir().join(format!("pgstack-pidfile-{}", std::process::id()));
        let p = dir.join("x.pid");
        write_pidfile(&p, 4242).unwrap();
        assert_eq!(read_pidfile(&p), Some(4242));
        remove_file(&p).unwrap();
        remove_file(&p).unwrap();
        assert_eq!(read_pidfile(&p), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn never_signals_process_groups() {
        assert!(signal(0, Signal::SIGTERM).is_err());
        assert!(signal(u32::MAX, Signal::SIGTERM).is_err());
    }
}
