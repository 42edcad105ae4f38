//! I/O probes of a device or file system that may hang: O_DIRECT reads of a block device,
//! a directory read, and an O_DIRECT write, fsync and read-back of a status file.
//!
//! The probe runs in a forked child, and the caller waits for its answer on a pipe only
//! until the deadline. A thread would not do: a thread stuck in uninterruptible I/O keeps
//! the whole process from being reaped, so Pacemaker would not see the agent's exit code
//! until the device came back. A stuck child is sent SIGKILL and left behind (it is
//! reaped by init whenever its I/O returns); its standard streams point at /dev/null so
//! it keeps no pipe of Pacemaker's open.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{fork, ForkResult};

const BLOCK: usize = 4096;

/// One probe step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read the first 4 KiB of a block device with O_DIRECT.
    ReadDevice(PathBuf),
    /// Read the entries of a directory (fails with EIO on a shut-down XFS).
    ReadDir(PathBuf),
    /// Create the directories, write `content` (padded to 4 KiB) with O_DIRECT (O_SYNC
    /// where the file system has no O_DIRECT), fsync,
    /// read it back with O_DIRECT and compare.
    WriteStatus {
        dirs: Vec<PathBuf>,
        file: PathBuf,
        content: Vec<u8>,
    },
}

impl Op {
    fn target(&self) -> &Path {
        match self {
            Op::ReadDevice(p) | Op::ReadDir(p) => p,
            Op::WriteStatus { file, .. } => file,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("{step} {path}: {errno}")]
    Failed {
        step: &'static str,
        path: String,
        errno: nix::errno::Errno,
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

struct Buf {
    ptr: *mut u8,
    layout: Layout,
}

impl Buf {
    fn new() -> Buf {
        let layout = Layout::from_size_align(BLOCK, BLOCK).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory");
        Buf { ptr, layout }
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// What the child was given, prepared before the fork (no allocation after it).
enum Prepared {
    Read(CString),
    Dir(CString),
    Write { dirs: Vec<CString>, file: CString },
}

fn cstr(p: &Path) -> Result<CString, ProbeError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ProbeError::Setup(format!("{} contains NUL", p.display())))
}

/// Runs `ops` in order in a child; the first failure is returned.
pub fn probe(ops: &[Op], deadline: Instant) -> Result<(), ProbeError> {
    let started = Instant::now();
    let mut prepared = Vec::new();
    for op in ops {
        prepared.push(match op {
            Op::ReadDevice(p) => Prepared::Read(cstr(p)?),
            Op::ReadDir(p) => Prepared::Dir(cstr(p)?),
            Op::WriteStatus { dirs, file, .. } => Prepared::Write {
                dirs: dirs.iter().map(|d| cstr(d)).collect::<Result<_, _>>()?,
                file: cstr(file)?,
            },
        });
    }
    let wbuf = Buf::new();
    let rbuf = Buf::new();
    let content: &[u8] = ops
        .iter()
        .find_map(|o| match o {
            Op::WriteStatus { content, .. } => Some(content.as_slice()),
            _ => None,
        })
        .unwrap_or(&[]);
    let n = content.len().min(BLOCK);
    // SAFETY: wbuf holds BLOCK bytes; n <= BLOCK.
    unsafe { std::ptr::copy_nonoverlapping(content.as_ptr(), wbuf.ptr, n) };
    let devnull = CString::new("/dev/null").expect("no NUL");
    let (rd, wr) = nix::unistd::pipe().map_err(|e| ProbeError::Setup(format!("pipe: {e}")))?;
    // SAFETY: the child only makes async-signal-safe system calls on data prepared
    // above and leaves with _exit; it never returns into Rust code of the parent.
    let child = match unsafe { fork() } {
        Err(e) => return Err(ProbeError::Setup(format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            // SAFETY: raw system calls on prepared, valid pointers; see above.
            unsafe {
                let null = libc::open(devnull.as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::dup2(null, 1);
                    libc::dup2(null, 2);
                }
                let w = wr.as_raw_fd_i32();
                let (idx, step, errno) = child_run(&prepared, wbuf.ptr, rbuf.ptr, w);
                let rec: [u8; 7] = {
                    let e = errno.to_ne_bytes();
                    [b'!', idx, step, e[0], e[1], e[2], e[3]]
                };
                libc::write(w, rec.as_ptr() as *const libc::c_void, rec.len());
                libc::_exit(0);
            }
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(wr);
    let (done, answer) = wait_answer(&rd, deadline);
    match answer {
        Some(rec) => {
            let _ = waitpid(child, None);
            let (idx, step) = (rec[0], rec[1]);
            if idx == u8::MAX {
                return Ok(());
            }
            let errno = i32::from_ne_bytes([rec[2], rec[3], rec[4], rec[5]]);
            let path = ops
                .get(idx as usize)
                .map(|o| o.target().display().to_string())
                .unwrap_or_default();
            if step == 6 {
                return Err(ProbeError::Mismatch { path });
            }
            Err(ProbeError::Failed {
                step: STEPS.get(step as usize).copied().unwrap_or("?"),
                path,
                errno: nix::errno::Errno::from_raw(errno),
            })
        }
        None => {
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, Some(WaitPidFlag::WNOHANG));
            // The first step that did not report completion is the one that hangs.
            let path = ops
                .get(done)
                .or(ops.last())
                .map(|o| o.target().display().to_string())
                .unwrap_or_default();
            Err(ProbeError::TimedOut {
                path,
                ms: started.elapsed().as_millis(),
            })
        }
    }
}

trait RawI32 {
    fn as_raw_fd_i32(&self) -> i32;
}
impl RawI32 for std::os::fd::OwnedFd {
    fn as_raw_fd_i32(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

/// Reads the child's reports until the deadline: one `.` per finished step, then `!` and
/// a 6-byte record. Returns the finished steps and the record, if it came.
fn wait_answer(rd: &std::os::fd::OwnedFd, deadline: Instant) -> (usize, Option<[u8; 6]>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let mut done = 0;
    let mut rec = [0u8; 6];
    let mut have: Option<usize> = None;
    loop {
        if have == Some(6) {
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
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return (done, None),
        }
        let mut buf = [0u8; 64];
        match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(rd), &mut buf) {
            Ok(0) => return (done, None),
            Ok(n) => {
                for &byte in &buf[..n] {
                    match have {
                        None if byte == b'.' => done += 1,
                        None if byte == b'!' => have = Some(0),
                        None => {}
                        Some(i) if i < 6 => {
                            rec[i] = byte;
                            have = Some(i + 1);
                        }
                        Some(_) => {}
                    }
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return (done, None),
        }
    }
}

/// The child's work: (op index, step, errno); index 255 means success.
///
/// Runs only in the forked child: system calls, no allocation.
fn child_run(ops: &[Prepared], wbuf: *mut u8, rbuf: *mut u8, report: i32) -> (u8, u8, i32) {
    // SAFETY: `wbuf` and `rbuf` are live buffers of BLOCK bytes (see `probe`), the paths
    // are NUL-terminated CStrings; every call is a plain system call.
    unsafe { child_ops(ops, wbuf, rbuf, report) }
}

unsafe fn child_ops(ops: &[Prepared], wbuf: *mut u8, rbuf: *mut u8, report: i32) -> (u8, u8, i32) {
    // SAFETY: the caller passes buffers of BLOCK bytes and NUL-terminated paths; only
    // system calls are made and errno is read right after the failing call.
    unsafe {
        let err = || *libc::__errno_location();
        for (i, op) in ops.iter().enumerate() {
            let i = i as u8;
            match op {
                Prepared::Read(dev) => {
                    let fd = libc::open(
                        dev.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECT | libc::O_CLOEXEC,
                    );
                    if fd < 0 {
                        return (i, 0, err());
                    }
                    let n = libc::pread(fd, rbuf as *mut libc::c_void, BLOCK, 0);
                    if n < 0 {
                        return (i, 1, err());
                    }
                    if (n as usize) < BLOCK {
                        return (i, 7, 0);
                    }
                    libc::close(fd);
                }
                Prepared::Dir(dir) => {
                    let fd = libc::open(
                        dir.as_ptr(),
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    );
                    if fd < 0 {
                        return (i, 0, err());
                    }
                    let n = libc::syscall(libc::SYS_getdents64, fd, rbuf, BLOCK);
                    if n < 0 {
                        return (i, 5, err());
                    }
                    libc::close(fd);
                }
                Prepared::Write { dirs, file } => {
                    for d in dirs {
                        if libc::mkdir(d.as_ptr(), 0o755) < 0 && err() != libc::EEXIST {
                            return (i, 4, err());
                        }
                    }
                    let mut fd = libc::open(
                        file.as_ptr(),
                        libc::O_RDWR | libc::O_CREAT | libc::O_DIRECT | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd < 0 && err() == libc::EINVAL {
                        // No O_DIRECT on this file system (some network and FUSE
                        // types): synchronous writes instead.
                        fd = libc::open(
                            file.as_ptr(),
                            libc::O_RDWR | libc::O_CREAT | libc::O_SYNC | libc::O_CLOEXEC,
                            0o644,
                        );
                    }
                    if fd < 0 {
                        return (i, 0, err());
                    }
                    let n = libc::pwrite(fd, wbuf as *const libc::c_void, BLOCK, 0);
                    if n < 0 {
                        return (i, 2, err());
                    }
                    if (n as usize) < BLOCK {
                        return (i, 7, 0);
                    }
                    if libc::fsync(fd) < 0 {
                        return (i, 3, err());
                    }
                    libc::memset(rbuf as *mut libc::c_void, 0, BLOCK);
                    let n = libc::pread(fd, rbuf as *mut libc::c_void, BLOCK, 0);
                    if n < 0 {
                        return (i, 1, err());
                    }
                    if (n as usize) < BLOCK {
                        return (i, 7, 0);
                    }
                    if libc::memcmp(
                        wbuf as *const libc::c_void,
                        rbuf as *const libc::c_void,
                        BLOCK,
                    ) != 0
                    {
                        return (i, 6, 0);
                    }
                    libc::close(fd);
                }
            }
            libc::write(report, b".".as_ptr() as *const libc::c_void, 1);
        }
        (u8::MAX, 0, 0)
    }
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
        let r = probe(
            &[
                Op::ReadDir(d.clone()),
                Op::WriteStatus {
                    dirs: vec![d.join("st")],
                    file: file.clone(),
                    content: b"inst\n".to_vec(),
                },
            ],
            far,
        );
        // tmpfs refuses O_DIRECT on older kernels: the write falls back to O_SYNC.
        r.unwrap();
        assert!(std::fs::read(&file).unwrap().starts_with(b"inst\n"));
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
