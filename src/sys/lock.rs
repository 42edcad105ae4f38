//! One action at a time per resource instance: an exclusive `flock(2)` on
//! `/run/pgstack/<agent>-<instance>.lock`, held until the guard is dropped (or the
//! process dies: the kernel releases it), waited for only until the deadline.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use super::error::{SysError, SysResult};
use super::safefs;
use crate::wait::{poll_until, Backoff};

/// Where the locks live (root-only, on tmpfs: nothing survives a reboot).
pub const LOCK_DIR: &str = "/run/pgstack";

/// A held lock (or none, for fakes); released on drop.
pub struct InstanceLock {
    _held: Option<Flock<File>>,
    pub path: PathBuf,
}

impl InstanceLock {
    /// A guard that holds nothing (for recording fakes).
    pub fn none() -> InstanceLock {
        InstanceLock {
            _held: None,
            path: PathBuf::new(),
        }
    }
}

/// Takes the lock of `name` (a file-name-safe instance name) in `dir`, waiting until
/// `until` for another holder to finish. The directory and file are opened without
/// following links.
pub fn lock_in(dir: &Path, name: &str, until: Instant) -> SysResult<InstanceLock> {
    let base = dir.parent().unwrap_or(Path::new("/"));
    let leaf = dir.file_name().unwrap_or(OsStr::new("pgstack"));
    let file = safefs::open_below(
        base,
        &Path::new(leaf).join(format!("{name}.lock")),
        Some(Mode::from_bits_truncate(0o755)),
        OFlag::O_RDWR | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o600),
    )?;
    let path = dir.join(format!("{name}.lock"));
    let mut file = Some(file);
    let held = poll_until(until, Backoff::millis(1, 20), || {
        let f = file.take().expect("the file is put back on every retry");
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(Some(l)),
            Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) => {
                file = Some(f);
                Ok(None)
            }
            Err((_, e)) => Err(SysError::errno(format!("locking {}", path.display()), e)),
        }
    })?;
    match held {
        Some(l) => Ok(InstanceLock {
            _held: Some(l),
            path,
        }),
        None => Err(SysError::Timeout {
            what: format!(
                "waiting for {} (another action of this resource is running)",
                path.display()
            ),
        }),
    }
}

/// [`lock_in`] under [`LOCK_DIR`], named `<agent>-<instance>`.
pub fn instance_lock(agent: &str, instance: &str, until: Instant) -> SysResult<InstanceLock> {
    lock_in(Path::new(LOCK_DIR), &format!("{agent}-{instance}"), until)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_until_the_deadline_then_gets_it_once_free() {
        let d = std::env::temp_dir().join(format!("pgst-fs-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let dir = d.join("locks");
        let far = Instant::now() + Duration::from_secs(5);
        let first = lock_in(&dir, "x", far).unwrap();
        let t0 = Instant::now();
        let e = lock_in(&dir, "x", t0 + Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(matches!(e, SysError::Timeout { .. }), "{e}");
        assert!(t0.elapsed() >= Duration::from_millis(100));
        assert!(lock_in(&dir, "other", far).is_ok());
        let path = first.path.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(first);
        });
        let second = lock_in(&dir, "x", far).unwrap();
        assert_eq!(second.path, path);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
