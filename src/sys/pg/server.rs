//! Starting the postmaster and asking it to reload, as the cluster's system user.
//!
//! The postmaster is started directly (not through `pg_ctl start`, which hands its `-o`
//! options to `/bin/sh`): the options are split into words here, without a shell, and the
//! server runs detached in a session of its own, its output appended to the log file
//! this process opened.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::sys::error::{SysError, SysResult};
use crate::sys::runner::{self, Cmd, Credentials};

/// How to start one postmaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartSpec {
    pub bindir: PathBuf,
    /// `-D`: the configuration directory (the data directory unless the configuration
    /// lives elsewhere).
    pub pgdata: PathBuf,
    pub port: u16,
    pub socket_dir: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub extra_args: Vec<String>,
    pub logfile: PathBuf,
}

impl StartSpec {
    pub fn command(&self) -> Cmd {
        let mut c = Cmd::new(self.bindir.join("postgres"))
            .arg("-D")
            .arg(&self.pgdata)
            .arg("-p")
            .arg(self.port.to_string());
        if let Some(k) = &self.socket_dir {
            c = c.arg("-k").arg(k);
        }
        if let Some(cf) = &self.config_file {
            let mut kv = std::ffi::OsString::from("config_file=");
            kv.push(cf);
            c = c.arg("-c").arg(kv);
        }
        c.args(&self.extra_args).current_dir("/")
    }
}

/// Opens (appending, creating it owned by the system user) the server's log file.
pub fn open_log(path: &Path, creds: &Credentials) -> SysResult<File> {
    let existed = path.exists();
    let f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| SysError::io(format!("opening the log file {}", path.display()), e))?;
    if !existed {
        nix::unistd::fchown(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            Some(creds.uid),
            Some(creds.gid),
        )
        .map_err(|e| SysError::errno(format!("chown of {}", path.display()), e))?;
    }
    Ok(f)
}

/// Starts the postmaster detached; returns its pid.
pub fn spawn_postmaster(spec: &StartSpec, creds: &Credentials) -> SysResult<u32> {
    let log = open_log(&spec.logfile, creds)?;
    let cmd = spec.command().run_as(creds.clone());
    Ok(runner::spawn_detached_logged(&cmd, log)?)
}

/// `pg_ctl reload`.
pub fn reload(
    bindir: &Path,
    pgdata: &Path,
    creds: &Credentials,
    deadline: Instant,
) -> SysResult<()> {
    let prog = bindir.join("pg_ctl");
    let cmd = Cmd::new(&prog)
        .arg("reload")
        .arg("-D")
        .arg(pgdata)
        .current_dir("/")
        .run_as(creds.clone());
    let out = runner::run(&cmd, deadline)?;
    if out.success() {
        Ok(())
    } else {
        Err(SysError::Invalid(format!(
            "{}: {}",
            cmd.display(),
            out.describe()
        )))
    }
}

/// The last `n` non-empty lines of a log file (for exit reasons); empty for devices.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    if !path.is_file() {
        return Vec::new();
    }
    let Ok(data) = std::fs::read(path) else {
        return Vec::new();
    };
    let from = data.len().saturating_sub(16 * 1024);
    let text = String::from_utf8_lossy(&data[from..]);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line() {
        let s = StartSpec {
            bindir: "/usr/lib/postgresql/15/bin".into(),
            pgdata: "/srv/pg".into(),
            port: 5433,
            socket_dir: Some("/run/pg".into()),
            config_file: Some("/etc/pg/postgresql.conf".into()),
            extra_args: vec!["-c".into(), "work_mem=4MB".into()],
            logfile: "/dev/null".into(),
        };
        assert_eq!(
            s.command().display(),
            "/usr/lib/postgresql/15/bin/postgres -D /srv/pg -p 5433 -k /run/pg \
             -c config_file=/etc/pg/postgresql.conf -c work_mem=4MB"
        );
    }
}
