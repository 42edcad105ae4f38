//! Running the lab's commands through the crate's child runner, and small file utilities.

use std::path::Path;
use std::time::{Duration, Instant};

use super::{LabError, LabResult};
use crate::sys::runner::{self, Cmd, Outcome};

/// Runs `argv` (no shell) within `limit`; a non-zero exit is an error naming the command.
pub fn ok(argv: &[&str], limit: Duration) -> LabResult<String> {
    let o = out(argv, limit)?;
    if o.success() {
        Ok(o.stdout_str())
    } else {
        Err(LabError::Command {
            cmd: argv.join(" "),
            outcome: o.describe(),
        })
    }
}

/// Runs `argv` within `limit` and returns how it ended.
pub fn out(argv: &[&str], limit: Duration) -> LabResult<Outcome> {
    cmd_out(&cmd(argv), limit)
}

pub fn cmd(argv: &[&str]) -> Cmd {
    Cmd::new(argv[0]).args(&argv[1..])
}

pub fn cmd_out(c: &Cmd, limit: Duration) -> LabResult<Outcome> {
    runner::run(c, Instant::now() + limit).map_err(|e| LabError::Invalid(e.to_string()))
}

pub fn cmd_ok(c: &Cmd, limit: Duration) -> LabResult<String> {
    let o = cmd_out(c, limit)?;
    if o.success() {
        Ok(o.stdout_str())
    } else {
        Err(LabError::Command {
            cmd: c.display(),
            outcome: o.describe(),
        })
    }
}

pub fn write(p: &Path, text: &str) -> LabResult<()> {
    std::fs::write(p, text).map_err(|e| LabError::io(format!("writing {}", p.display()), e))
}

/// Appends `text` to an existing file (a configuration the lab extends).
pub fn append(p: &Path, text: &str) -> LabResult<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(p)
        .map_err(|e| LabError::io(format!("opening {}", p.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| LabError::io(format!("writing {}", p.display()), e))
}

/// Opens a log file for appending (created when missing).
pub fn log_file(p: &Path) -> LabResult<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .map_err(|e| LabError::io(format!("opening {}", p.display()), e))
}

/// Starts `c` detached (its own session), its output appended to the log `log`; its pid.
pub fn spawn_logged(c: &Cmd, log: &Path) -> LabResult<u32> {
    runner::spawn_detached_logged(c, log_file(log)?).map_err(|e| LabError::Invalid(e.to_string()))
}

/// Creates the directory `p` that is a lab's lock: mkdir is atomic, so a second `up`
/// finds it and is refused ([`LabError::Busy`]).
pub fn create_lock_dir(p: &Path) -> LabResult<()> {
    match std::fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(LabError::Busy(p.to_path_buf()))
        }
        Err(e) => Err(LabError::io(format!("creating {}", p.display()), e)),
    }
}

/// `p` as a word a shell line or a command line carries unquoted: an absolute path of
/// letters, digits and `/._-+` only.
pub fn plain_path(p: &Path) -> LabResult<String> {
    let s = p.to_str().unwrap_or("");
    if s.starts_with('/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        Ok(s.to_string())
    } else {
        Err(LabError::Invalid(format!(
            "{}: a path the lab's scripts and command lines cannot carry (letters, digits and /._-+ only)",
            p.display()
        )))
    }
}

pub fn mkdir(p: &Path) -> LabResult<()> {
    std::fs::create_dir_all(p).map_err(|e| LabError::io(format!("creating {}", p.display()), e))
}

pub fn chown(p: &Path, user: &str) -> LabResult<()> {
    let creds = runner::Credentials::of_user(user)?
        .ok_or_else(|| LabError::Invalid(format!("user {user} does not exist")))?;
    nix::unistd::chown(p, Some(creds.uid), Some(creds.gid))
        .map_err(|e| LabError::errno(format!("chown {user} {}", p.display()), e))
}

pub fn chmod(p: &Path, mode: u32) -> LabResult<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(format!("chmod {mode:o} {}", p.display()), e))
}

/// The first line of a file, trimmed; None when it cannot be read.
pub fn read_line(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.lines().next().map(|l| l.trim().to_string()))
}
