//! Starting the postmaster and asking it to reload, as the cluster's system user.
//!
//! The postmaster is started directly (not through `pg_ctl start`, which hands its `-o`
//! options to `/bin/sh`): the options are split into words here, without a shell, and the
//! server runs detached in a session of its own, its output appended to the log file,
//! which the child opens after dropping privileges (root never opens it: the file and
//! the directories leading to it may be the system user's, links included).

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

/// Starts the postmaster detached; returns its pid.
pub fn spawn_postmaster(spec: &StartSpec, creds: &Credentials) -> SysResult<u32> {
    let cmd = spec
        .command()
        .append_output_to(&spec.logfile)
        .run_as(creds.clone());
    runner::spawn_detached(&cmd).map_err(|e| {
        SysError::Invalid(format!(
            "{e} (as uid {}, output appended to {}, which that user must be able to \
             open or create)",
            creds.uid,
            spec.logfile.display()
        ))
    })
}

/// Writes `content` to the file `name` of the directory `dir` (created mode 0600, or
/// truncated), then gives it to the system user: a file the server reads from its data
/// directory. Neither the directory nor the file is followed if it is a link.
pub fn write_owned(dir: &Path, name: &str, content: &str, creds: &Credentials) -> SysResult<()> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use std::io::Write;
    use std::os::fd::AsFd;
    let full = dir.join(name);
    let d = crate::sys::safefs::open_dir(dir)?;
    let mut f = crate::sys::safefs::open_beneath(
        d.as_fd(),
        dir,
        std::ffi::OsStr::new(name),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC,
        Mode::from_bits_truncate(0o600),
    )?;
    f.write_all(content.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| SysError::io(format!("writing {}", full.display()), e))?;
    nix::unistd::fchown(
        std::os::fd::AsRawFd::as_raw_fd(&f),
        Some(creds.uid),
        Some(creds.gid),
    )
    .map_err(|e| SysError::errno(format!("chown of {}", full.display()), e))
}

/// Removes the file `name` of `dir` when it exists; whether there was one.
pub fn remove_in(dir: &Path, name: &str) -> SysResult<bool> {
    let full = dir.join(name);
    let existed = full.symlink_metadata().is_ok();
    crate::sys::proc::remove_file(&full)?;
    Ok(existed)
}

/// Creates a missing socket directory for the system user (the last component is
/// never followed if it is a link).
pub fn ensure_socket_dir(dir: &Path, creds: &Credentials) -> SysResult<()> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| SysError::io(format!("creating socketdir {}", dir.display()), e))?;
    std::os::unix::fs::lchown(dir, Some(creds.uid.as_raw()), Some(creds.gid.as_raw()))
        .map_err(|e| SysError::io(format!("chown of socketdir {}", dir.display()), e))
}

/// Whether a port is free for a new server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortUse {
    /// Free; `removed` is a stale socket lock file that was removed (it names a dead or
    /// reused pid, and the server would refuse to start beside it).
    Free {
        removed: Option<(PathBuf, Option<u32>)>,
    },
    /// Held: by whom.
    Held(String),
}

/// Who holds `port`: a live server named in the socket lock file of `socket_dir`, or a
/// TCP listener on the loopback address.
pub fn port_use(socket_dir: &Path, port: u16) -> SysResult<PortUse> {
    let lock = socket_dir.join(format!(".s.PGSQL.{port}.lock"));
    let mut removed = None;
    if let Ok(text) = std::fs::read_to_string(&lock) {
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i64>().ok())
            .and_then(|p| u32::try_from(p.unsigned_abs()).ok());
        match pid {
            Some(pid) if super::process::is_postgres(pid) => {
                let what = crate::sys::proc::cmdline(pid)
                    .map(|c| c.join(" "))
                    .unwrap_or_default();
                return Ok(PortUse::Held(format!(
                    "{} names the live server {pid} ({what})",
                    lock.display()
                )));
            }
            _ => {
                crate::sys::proc::remove_file(&lock)?;
                removed = Some((lock, pid));
            }
        }
    }
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    if std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).is_ok() {
        return Ok(PortUse::Held(format!(
            "something listens on 127.0.0.1:{port}"
        )));
    }
    Ok(PortUse::Free { removed })
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

/// The last `n` non-empty lines of a log file (for exit reasons): only from a regular
/// file owned by `owner`, opened without following a link, so a log pointed elsewhere
/// never puts another file's text into an exit reason.
pub fn log_tail(path: &Path, n: usize, owner: nix::unistd::Uid) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    else {
        return Vec::new();
    };
    let Ok(m) = f.metadata() else {
        return Vec::new();
    };
    if !m.is_file() || m.uid() != owner.as_raw() {
        return Vec::new();
    }
    let from = m.len().saturating_sub(16 * 1024);
    let mut data = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut data).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&data);
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
    fn the_log_tail_is_read_only_from_the_owners_file_never_through_a_link() {
        let dir = std::env::temp_dir().join(format!("pgst-pg-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        std::fs::write(&log, "one\n\ntwo\nthree\n").unwrap();
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&log, &link).unwrap();
        let me = nix::unistd::Uid::effective();
        assert_eq!(log_tail(&log, 2, me), ["two", "three"]);
        assert!(log_tail(&link, 2, me).is_empty());
        let other = nix::unistd::Uid::from_raw(me.as_raw() + 1);
        assert!(log_tail(&log, 2, other).is_empty());
        assert!(log_tail(Path::new("/dev/null"), 2, me).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
