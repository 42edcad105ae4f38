//! I/O probes of a device or file system that may hang: O_DIRECT reads of a block device,
//! a directory read, and an O_DIRECT write, fsync and read-back of a status file.
//!
//! The probe runs in a forked child, and the caller waits for its answer on a pipe only
//! until the deadline. A thread would not do: a thread stuck in uninterruptible I/O keeps
//! the whole process from being reaped, so Pacemaker would not see the agent's exit code
//! until the device came back. A stuck child is sent SIGKILL and left behind (it is
//! reaped by init whenever its I/O returns); its standard streams point at /dev/null so
//! it keeps no pipe of Pacemaker's open.

use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::sys::uio::{pread, pwrite};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{dup2, fork, fsync, write, ForkResult};

use super::safefs;

const BLOCK: usize = 4096;

/// One probe step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read the first 4 KiB of a block device with O_DIRECT (its canonical path: a link
    /// there is not followed).
    ReadDevice(PathBuf),
    /// Read the entries of a directory (fails with EIO on a shut-down XFS); canonical
    /// path, a link there is not followed.
    ReadDir(PathBuf),
    /// Below the directory `dir` (opened without following a link), open or create the
    /// sub-directories `subdirs` (one name each) and the file `name` without following
    /// links ([`safefs`]), write `content` (padded to 4 KiB) with O_DIRECT (O_SYNC where
    /// the file system has no O_DIRECT), fsync, read it back with O_DIRECT and compare.
    WriteStatus {
        dir: PathBuf,
        subdirs: Vec<OsString>,
        name: OsString,
        content: Vec<u8>,
    },
}

impl Op {
    /// The path of the op, or of its `part`-th sub-directory.
    fn target(&self, part: Option<usize>) -> PathBuf {
        match self {
            Op::ReadDevice(p) | Op::ReadDir(p) => p.clone(),
            Op::WriteStatus {
                dir, subdirs, name, ..
            } => {
                let mut p = dir.clone();
                match part {
                    Some(k) => p.extend(subdirs.iter().take(k + 1)),
                    None => {
                        p.extend(subdirs);
                        p.push(name);
                    }
                }
                p
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// EIO: the file system is shut down or the device fails.
    #[error("{step} {path}: I/O error (file system shut down or device failing)")]
    Io { step: &'static str, path: String },
    /// A link (or other non-file) where the status file or its directory goes.
    #[error("{path} {why}: refusing to write there")]
    Refused { path: String, why: &'static str },
    #[error("{step} {path}: {errno}")]
    Failed {
        step: &'static str,
        path: String,
        errno: Errno,
    },
    #[error("{path}: read back different content than was written")]
    Mismatch { path: String },
    #[error("{path}: no answer within {ms} ms (I/O hung)")]
    TimedOut { path: String, ms: u128 },
    #[error("cannot start the I/O probe: {0}")]
    Setup(String),
}

const STEPS: [&str; 8] = [
    "opening",
    "reading",
    "writing",
    "fsync of",
    "creating",
    "reading directory",
    "comparing",
    "short I/O on",
];
const STEP_CREATE: u8 = 4;
const STEP_COMPARE: u8 = 6;
/// The record's part byte when the failure is not in a sub-directory.
const WHOLE: u8 = u8::MAX;

/// One O_DIRECT-aligned block.
#[repr(C, align(4096))]
struct Block([u8; BLOCK]);

/// What the child was given, prepared before the fork (no allocation after it).
enum Prepared {
    Read(CString),
    Dir(CString),
    Write {
        dir: CString,
        subdirs: Vec<CString>,
        name: CString,
    },
}

fn cstr(p: &[u8], what: &Path) -> Result<CString, ProbeError> {
    CString::new(p).map_err(|_| ProbeError::Setup(format!("{} contains NUL", what.display())))
}

/// Runs `ops` in order in a child; the first failure is returned.
pub fn probe(ops: &[Op], deadline: Instant) -> Result<(), ProbeError> {
    let started = Instant::now();
    let mut prepared = Vec::new();
    for op in ops {
        let t = op.target(None);
        prepared.push(match op {
            Op::ReadDevice(p) => Prepared::Read(cstr(p.as_os_str().as_bytes(), &t)?),
            Op::ReadDir(p) => Prepared::Dir(cstr(p.as_os_str().as_bytes(), &t)?),
            Op::WriteStatus {
                dir, subdirs, name, ..
            } => Prepared::Write {
                dir: cstr(dir.as_os_str().as_bytes(), &t)?,
                subdirs: subdirs
                    .iter()
                    .map(|d| cstr(d.as_bytes(), &t))
                    .collect::<Result<_, _>>()?,
                name: cstr(name.as_bytes(), &t)?,
            },
        });
    }
    let mut wbuf = Box::new(Block([0; BLOCK]));
    let mut rbuf = Box::new(Block([0; BLOCK]));
    let content: &[u8] = ops
        .iter()
        .find_map(|o| match o {
            Op::WriteStatus { content, .. } => Some(content.as_slice()),
            _ => None,
        })
        .unwrap_or(&[]);
    let n = content.len().min(BLOCK);
    wbuf.0[..n].copy_from_slice(&content[..n]);
    let (rd, wr) = nix::unistd::pipe().map_err(|e| ProbeError::Setup(format!("pipe: {e}")))?;
    // SAFETY: after the fork the child runs only `child_main`, which makes system calls
    // on data prepared above (no allocation, no lock) and leaves with _exit; it never
    // returns into Rust code of the parent.
    let child = match unsafe { fork() } {
        Err(e) => return Err(ProbeError::Setup(format!("fork: {e}"))),
        Ok(ForkResult::Child) => child_main(&prepared, &wbuf, &mut rbuf, wr.as_fd()),
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(wr);
    let (done, answer) = wait_answer(&rd, deadline);
    match answer {
        Some(rec) => {
            let _ = waitpid(child, None);
            let (idx, step, part) = (rec[0], rec[1], rec[2]);
            if idx == u8::MAX {
                return Ok(());
            }
            let errno = Errno::from_raw(i32::from_ne_bytes([rec[3], rec[4], rec[5], rec[6]]));
            let path = ops
                .get(idx as usize)
                .map(|o| o.target((part != WHOLE).then_some(part as usize)))
                .unwrap_or_default()
                .display()
                .to_string();
            let step = STEPS.get(step as usize).copied().unwrap_or("?");
            Err(match (step, errno) {
                ("comparing", _) => ProbeError::Mismatch { path },
                (_, Errno::EIO) => ProbeError::Io { step, path },
                (_, e) => match safefs::refusal(e) {
                    Some(why) => ProbeError::Refused { path, why },
                    None => ProbeError::Failed { step, path, errno },
                },
            })
        }
        None => {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
            // The first step that did not report completion is the one that hangs.
            let path = ops
                .get(done)
                .or(ops.last())
                .map(|o| o.target(None).display().to_string())
                .unwrap_or_default();
            Err(ProbeError::TimedOut {
                path,
                ms: started.elapsed().as_millis(),
            })
        }
    }
}

/// Reads the child's reports until the deadline: one `.` per finished step, then `!` and
/// a 7-byte record. Returns the finished steps and the record, if it came.
fn wait_answer(rd: &OwnedFd, deadline: Instant) -> (usize, Option<[u8; 7]>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut done = 0;
    let mut rec = [0u8; 7];
    let mut have: Option<usize> = None;
    loop {
        if have == Some(rec.len()) {
            return (done, Some(rec));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (done, None);
        }
        let ms = left.min(Duration::from_secs(3600)).as_millis().max(1) as i32;
        let mut fds = [PollFd::new(rd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return (done, None),
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => return (done, None),
        }
        let mut buf = [0u8; 64];
        match nix::unistd::read(rd.as_raw_fd(), &mut buf) {
            Ok(0) => return (done, None),
            Ok(n) => {
                for &byte in &buf[..n] {
                    match have {
                        None if byte == b'.' => done += 1,
                        None if byte == b'!' => have = Some(0),
                        None => {}
                        Some(i) if i < rec.len() => {
                            rec[i] = byte;
                            have = Some(i + 1);
                        }
                        Some(_) => {}
                    }
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => return (done, None),
        }
    }
}

/// The forked child: standard streams to /dev/null (no pipe of Pacemaker's is kept
/// open), the ops, one record on `report`, `_exit`.
fn child_main(ops: &[Prepared], wbuf: &Block, rbuf: &mut Block, report: BorrowedFd) -> ! {
    if let Ok(null) = open_raw(None, c"/dev/null", OFlag::O_RDWR) {
        for n in 0..3 {
            let _ = dup2(null.as_raw_fd(), n);
        }
    }
    let (idx, step, part, errno) = match child_run(ops, wbuf, rbuf, report) {
        Ok(()) => (u8::MAX, 0, WHOLE, 0),
        Err(f) => (f.idx, f.step, f.part, f.errno as i32),
    };
    let e = errno.to_ne_bytes();
    let _ = write(report, &[b'!', idx, step, part, e[0], e[1], e[2], e[3]]);
    // SAFETY: _exit ends the child without running the parent's exit handlers or
    // destructors (which may hold locks copied at the fork).
    unsafe { nix::libc::_exit(0) }
}

/// Where the child stopped: op index, step, sub-directory (or [`WHOLE`]), errno.
struct Fail {
    idx: u8,
    step: u8,
    part: u8,
    errno: Errno,
}

fn open_raw(dir: Option<RawFd>, path: &CStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    let fd = openat(dir, path, flags | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: `fd` was just returned by a successful openat(2) and is owned here alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Fills `buf` from the start of `fd`; a short read is a failure of its own.
fn read_block(fd: BorrowedFd, buf: &mut [u8]) -> Result<(), (u8, Errno)> {
    match pread(fd, buf, 0) {
        Ok(n) if n == buf.len() => Ok(()),
        Ok(_) => Err((7, Errno::from_raw(0))),
        Err(e) => Err((1, e)),
    }
}

/// The child's work. Runs only in the forked child: system calls on prepared data and
/// the two blocks, no allocation.
fn child_run(
    ops: &[Prepared],
    wbuf: &Block,
    rbuf: &mut Block,
    report: BorrowedFd,
) -> Result<(), Fail> {
    for (i, op) in ops.iter().enumerate() {
        let at = |step: u8, part: u8| {
            let i = i as u8;
            move |errno: Errno| Fail {
                idx: i,
                step,
                part,
                errno,
            }
        };
        // Read-only opens of the path itself, never through a final link.
        let open_ro = |path: &CStr, kind: OFlag| {
            open_raw(None, path, OFlag::O_RDONLY | kind | OFlag::O_NOFOLLOW).map_err(at(0, WHOLE))
        };
        match op {
            Prepared::Read(dev) => {
                let fd = open_ro(dev, OFlag::O_DIRECT)?;
                read_block(fd.as_fd(), &mut rbuf.0).map_err(|(s, e)| at(s, WHOLE)(e))?;
            }
            Prepared::Dir(dir) => {
                let fd = open_ro(dir, OFlag::O_DIRECTORY)?;
                // SAFETY: getdents64(2) writes at most BLOCK bytes into `rbuf`, which is
                // BLOCK bytes long and exclusively borrowed; `fd` is an open directory.
                let n = unsafe {
                    nix::libc::syscall(
                        nix::libc::SYS_getdents64,
                        fd.as_raw_fd(),
                        rbuf.0.as_mut_ptr(),
                        BLOCK,
                    )
                };
                if n < 0 {
                    return Err(at(5, WHOLE)(Errno::last()));
                }
            }
            Prepared::Write { dir, subdirs, name } => {
                let mut d = safefs::open_dir_raw(dir).map_err(at(0, WHOLE))?;
                for (k, sub) in subdirs.iter().enumerate() {
                    d = safefs::mkdir_beneath_raw(d.as_fd(), sub, Mode::from_bits_truncate(0o755))
                        .map_err(at(STEP_CREATE, k as u8))?;
                }
                let rw = OFlag::O_RDWR | OFlag::O_CREAT;
                let mode = Mode::from_bits_truncate(0o644);
                let fd =
                    match safefs::open_beneath_raw(d.as_fd(), name, rw | OFlag::O_DIRECT, mode) {
                        // No O_DIRECT on this file system (some network and FUSE types):
                        // synchronous writes instead.
                        Err(Errno::EINVAL) => {
                            safefs::open_beneath_raw(d.as_fd(), name, rw | OFlag::O_SYNC, mode)
                        }
                        other => other,
                    }
                    .map_err(at(0, WHOLE))?;
                match pwrite(fd.as_fd(), &wbuf.0, 0) {
                    Ok(BLOCK) => {}
                    Ok(_) => return Err(at(7, WHOLE)(Errno::from_raw(0))),
                    Err(e) => return Err(at(2, WHOLE)(e)),
                }
                fsync(fd.as_raw_fd()).map_err(at(3, WHOLE))?;
                rbuf.0.fill(0);
                read_block(fd.as_fd(), &mut rbuf.0).map_err(|(s, e)| at(s, WHOLE)(e))?;
                if rbuf.0 != wbuf.0 {
                    return Err(at(STEP_COMPARE, WHOLE)(Errno::from_raw(0)));
                }
            }
        }
        let _ = write(report, b".");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pgst-fs-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn status_file_round_trip_and_missing_paths() {
        let d = tmp("rt");
        let file = d.join("st/x");
        let far = Instant::now() + Duration::from_secs(10);
        let write = Op::WriteStatus {
            dir: d.clone(),
            subdirs: vec!["st".into()],
            name: "x".into(),
            content: b"inst\n".to_vec(),
        };
        let r = probe(&[Op::ReadDir(d.clone()), write.clone()], far);
        // tmpfs refuses O_DIRECT on older kernels: the write falls back to O_SYNC.
        r.unwrap();
        assert!(std::fs::read(&file).unwrap().starts_with(b"inst\n"));
        // A link planted as the file, or as its directory, is refused, never followed.
        let victim = d.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink(&victim, &file).unwrap();
        let e = probe(std::slice::from_ref(&write), far).unwrap_err();
        assert!(
            matches!(&e, ProbeError::Refused { path, .. } if path.ends_with("st/x")),
            "{e}"
        );
        std::fs::remove_file(&file).unwrap();
        std::fs::remove_dir(d.join("st")).unwrap();
        std::os::unix::fs::symlink("/", d.join("st")).unwrap();
        let e = probe(std::slice::from_ref(&write), far).unwrap_err();
        assert!(
            matches!(&e, ProbeError::Refused { path, .. } if path.ends_with("/st")),
            "{e}"
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let e = probe(&[Op::ReadDevice(d.join("nosuch"))], far).unwrap_err();
        assert!(
            e.to_string().contains("nosuch") && e.to_string().contains("ENOENT"),
            "{e}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    /// Opening a FIFO without a writer blocks forever: a stand-in for a hung device.
    #[test]
    fn a_blocked_probe_gives_up_at_the_deadline() {
        let d = tmp("fifo");
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let t0 = Instant::now();
        let e = probe(
            &[Op::ReadDir(d.clone()), Op::ReadDevice(fifo.clone())],
            t0 + Duration::from_millis(300),
        )
        .unwrap_err();
        let took = t0.elapsed();
        match &e {
            ProbeError::TimedOut { path, .. } => assert_eq!(path, &fifo.display().to_string()),
            e => panic!("{e}"),
        }
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "{took:?}"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
