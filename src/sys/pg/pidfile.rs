//! `postmaster.pid`: the lock file a running postmaster keeps in its data directory.
//! Line 1 pid, 2 data directory, 3 start time, 4 port, 5 first socket directory, 6
//! listen address, 7 shared memory key, 8 status (`starting`, `ready`, `stopping`,
//! `standby`; PostgreSQL 10 and later).

use std::path::{Path, PathBuf};

/// The lines of the file this program reads (the start time, listen address and
/// shared memory key are not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostmasterPid {
    pub pid: u32,
    pub datadir: PathBuf,
    pub port: Option<u16>,
    pub socket_dir: Option<PathBuf>,
    pub status: Option<String>,
}

impl PostmasterPid {
    /// Parses the file's text; `None` when line 1 is not a pid (a file being written or
    /// garbage), which callers treat as "no usable pid file".
    pub fn parse(text: &str) -> Option<PostmasterPid> {
        let lines: Vec<&str> = text.lines().collect();
        let pid: i64 = lines.first()?.trim().parse().ok()?;
        // A negative pid marks a single-user backend; it is still the lock owner.
        let pid = u32::try_from(pid.unsigned_abs()).ok().filter(|p| *p > 0)?;
        let line = |i: usize| {
            lines
                .get(i)
                .map(|l| l.trim())
                .filter(|l| !l.is_empty())
                .map(str::to_string)
        };
        Some(PostmasterPid {
            pid,
            datadir: PathBuf::from(line(1).unwrap_or_default()),
            port: line(3).and_then(|s| s.parse().ok()),
            socket_dir: line(4).map(PathBuf::from),
            status: line(7),
        })
    }

    /// The pid file of `datadir`, if present and parseable.
    pub fn read(datadir: &Path) -> Option<PostmasterPid> {
        std::fs::read_to_string(path(datadir))
            .ok()
            .and_then(|t| PostmasterPid::parse(&t))
    }

    /// "ready" (also a hot standby accepting connections) or "standby".
    pub fn is_ready(&self) -> bool {
        matches!(self.status.as_deref(), Some("ready") | Some("standby"))
    }
}

pub fn path(datadir: &Path) -> PathBuf {
    datadir.join("postmaster.pid")
}

/// Renames a stale `postmaster.pid` to `postmaster.pid.stale`; returns the new path.
pub fn set_aside(datadir: &Path) -> crate::sys::error::SysResult<PathBuf> {
    let (from, to) = (path(datadir), datadir.join("postmaster.pid.stale"));
    std::fs::rename(&from, &to).map_err(|e| {
        crate::sys::error::SysError::io(format!("moving stale {} aside", from.display()), e)
    })?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_from_a_running_server() {
        let p = format!(
            "{}/tests/fixtures/postmaster.pid/running-unix-socket-only.pid",
            env!("CARGO_MANIFEST_DIR")
        );
        let pm = PostmasterPid::parse(&std::fs::read_to_string(p).unwrap()).unwrap();
        assert!(pm.pid > 0);
        assert_eq!(pm.datadir, Path::new("/tmp/pgst-pg-fx/data"));
        assert_eq!(pm.port, Some(56499));
        assert_eq!(
            pm.socket_dir.as_deref(),
            Some(Path::new("/tmp/pgst-pg-fx/sock"))
        );
        assert_eq!(pm.status.as_deref(), Some("ready"));
        assert!(pm.is_ready());
    }

    #[test]
    fn partial_and_bad_files() {
        assert_eq!(PostmasterPid::parse(""), None);
        assert_eq!(PostmasterPid::parse("abc\n/x\n"), None);
        assert_eq!(PostmasterPid::parse("0\n"), None);
        let pm = PostmasterPid::parse("4242\n/srv/pg\n").unwrap();
        assert_eq!(pm.pid, 4242);
        assert_eq!(pm.status, None);
        assert!(!pm.is_ready());
        assert_eq!(PostmasterPid::parse("-17\n/srv/pg\n").unwrap().pid, 17);
    }
}
