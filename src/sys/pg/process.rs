//! The processes of one cluster, found in `/proc`. A PostgreSQL server process runs the
//! `postgres` binary with its working directory in the data directory (the postmaster
//! changes into it at start and its children inherit it), which identifies every process
//! of the cluster, orphans of a killed postmaster included, and nothing else: a reused
//! pid of an unrelated program fails the check and is never signalled. Directories are
//! compared by device and inode, so a data directory reached through a symlink or a
//! bind mount is the same directory.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::sys::error::SysResult;
use crate::sys::proc;
use crate::wait::{self, Backoff};

/// Alive and not a zombie (the crate's one rule, [`proc::alive`]).
pub fn running(pid: u32) -> bool {
    proc::alive(pid)
}

/// Whether `pid` is a live (not zombie) process running a PostgreSQL server binary.
pub fn is_postgres(pid: u32) -> bool {
    running(pid) && fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| is_postgres_exe(&e))
}

/// Whether `exe` names a PostgreSQL server binary (also after a package upgrade replaced
/// it: the link then ends in " (deleted)").
fn is_postgres_exe(exe: &Path) -> bool {
    let name = exe
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .trim_end_matches(" (deleted)");
    name == "postgres" || name == "postmaster"
}

/// Device and inode of what `p` names (symlinks followed).
fn file_id(p: &Path) -> Option<(u64, u64)> {
    fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// What identifies one cluster's processes.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The data directory, canonical (for messages).
    pub datadir: PathBuf,
    /// Its device and inode; `None` when it does not exist (then nothing is its).
    id: Option<(u64, u64)>,
}

impl Cluster {
    pub fn new(datadir: &Path) -> Cluster {
        Cluster {
            datadir: fs::canonicalize(datadir).unwrap_or_else(|_| datadir.to_path_buf()),
            id: file_id(datadir),
        }
    }

    /// Whether `pid` is a live PostgreSQL server process of this cluster.
    pub fn owns(&self, pid: u32) -> bool {
        let Some(id) = self.id else {
            return false;
        };
        if !running(pid) {
            return false;
        }
        let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) else {
            return false;
        };
        if !is_postgres_exe(&exe) {
            return false;
        }
        let cwd = PathBuf::from(format!("/proc/{pid}/cwd"));
        if file_id(&cwd) == Some(id) {
            return true;
        }
        // Not yet changed into the data directory (the first instants of a start):
        // accept the -D argument naming it (relative to the process's directory).
        let args = proc::cmdline(pid).unwrap_or_default();
        args.windows(2)
            .any(|w| w[0] == "-D" && file_id(&cwd.join(&w[1])) == Some(id))
    }

    /// Whether `pid` is this cluster's postmaster: one of its processes whose parent is not.
    pub fn is_postmaster(&self, pid: u32) -> bool {
        self.owns(pid) && proc::parent(pid).is_none_or(|pp| !self.owns(pp))
    }

    /// Every live process of this cluster.
    pub fn processes(&self) -> Vec<u32> {
        let Ok(dir) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|p: &u32| self.owns(*p))
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The postmaster named by `postmaster.pid`, when that process really is it.
    pub fn postmaster(&self, pidfile_pid: Option<u32>) -> Option<u32> {
        pidfile_pid.filter(|p| self.is_postmaster(*p))
    }

    /// Sends `sig` to every process of the cluster; returns how many were signalled.
    pub fn signal_all(&self, sig: Signal) -> usize {
        self.processes()
            .into_iter()
            .filter(|p| proc::signal(*p, sig).is_ok())
            .count()
    }

    /// Waits until `pid` is gone (or a zombie); false when `until` passed first.
    pub fn wait_gone(pid: u32, until: Instant) -> bool {
        wait::until(until, Backoff::FAST, || !running(pid))
    }

    /// Waits until no process of the cluster is left.
    pub fn wait_all_gone(&self, until: Instant) -> bool {
        wait::until(until, Backoff::FAST, || self.processes().is_empty())
    }
}

/// Signals one verified process.
pub fn signal(pid: u32, sig: Signal) -> SysResult<()> {
    proc::signal(pid, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unrelated_process_is_never_a_postmaster() {
        let me = std::process::id();
        let c = Cluster::new(Path::new("/"));
        assert!(running(me));
        assert!(!c.owns(me));
        assert!(!c.is_postmaster(me));
        assert_eq!(c.postmaster(Some(me)), None);
        assert!(!running(u32::MAX - 1));
    }

    #[test]
    fn server_binary_names() {
        assert!(is_postgres_exe(Path::new(
            "/usr/lib/postgresql/15/bin/postgres"
        )));
        assert!(is_postgres_exe(Path::new(
            "/usr/lib/postgresql/15/bin/postgres (deleted)"
        )));
        assert!(!is_postgres_exe(Path::new("/usr/bin/sleep")));
        assert!(!is_postgres_exe(Path::new("/usr/bin/postgres-wrapper")));
    }
}
