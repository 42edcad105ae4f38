//! Opening files as root in directories that other users can write, without ever
//! following a link.
//!
//! A root process that opens `/srv/db/.status/x` by path follows whatever symbolic link a
//! user planted at `.status` or `x`, and overwrites the file it points to. Here every step
//! goes below a directory descriptor: the directory is opened with
//! `O_DIRECTORY|O_NOFOLLOW`, each name below it with `openat(2)`/`mkdirat(2)` and
//! `O_NOFOLLOW`, one component at a time. A file opened this way must be a regular file
//! with one link (a hard link to another file is refused as a symbolic link is).
//!
//! Two layers: the `*_raw` functions take NUL-terminated names and return an errno only,
//! so they allocate nothing and may run in a forked child (see `blockio`); the
//! path-taking functions name what was refused in a [`SysError`].

use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};

use super::error::{SysError, SysResult};

/// What a `*_raw` call answers when it refuses a name (the kernel's ELOOP for a symbolic
/// link, and two codes of this module's own).
pub const REFUSED_LINK: Errno = Errno::ELOOP;
/// The file has more than one hard link.
pub const REFUSED_HARD_LINK: Errno = Errno::EMLINK;
/// The name is not a regular file (a FIFO, a device node, a socket).
pub const REFUSED_NOT_REGULAR: Errno = Errno::EMEDIUMTYPE;

/// Why an errno of a `*_raw` call is a refusal, if it is one.
pub fn refusal(e: Errno) -> Option<&'static str> {
    match e {
        REFUSED_LINK => Some("is a symbolic link (never followed)"),
        REFUSED_HARD_LINK => Some("has more than one hard link (never written through)"),
        REFUSED_NOT_REGULAR => Some("is not a regular file"),
        Errno::ENOTDIR => Some("is not a directory"),
        _ => None,
    }
}

fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful openat(2) and is owned by nobody
    // else; the OwnedFd closes it exactly once.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// One path component: not empty, not `.` or `..`, no `/`.
fn single(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/')
}

/// Opens the directory `path` with `O_DIRECTORY|O_NOFOLLOW`: its last component must not
/// be a link (give the canonical path). No allocation.
pub fn open_dir_raw(path: &CStr) -> Result<OwnedFd, Errno> {
    let fd = openat(
        None,
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(owned(fd))
}

/// Opens the sub-directory `name` of `dir`, creating it (mode `mode`) when missing;
/// a link or a non-directory at `name` is refused. No allocation.
pub fn mkdir_beneath_raw(dir: BorrowedFd, name: &CStr, mode: Mode) -> Result<OwnedFd, Errno> {
    if !single(name.to_bytes()) {
        return Err(Errno::EINVAL);
    }
    match mkdirat(Some(dir.as_raw_fd()), name, mode) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    subdir_raw(dir, name)
}

/// Opens the existing sub-directory `name` of `dir` (`O_DIRECTORY|O_NOFOLLOW`); a link
/// there is [`REFUSED_LINK`], whatever it points to. No allocation.
pub fn subdir_raw(dir: BorrowedFd, name: &CStr) -> Result<OwnedFd, Errno> {
    if !single(name.to_bytes()) {
        return Err(Errno::EINVAL);
    }
    match openat(
        Some(dir.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(owned(fd)),
        // O_DIRECTORY answers ENOTDIR for a link to a directory: say what it is.
        Err(Errno::ENOTDIR) => {
            match fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK =>
                {
                    Err(REFUSED_LINK)
                }
                _ => Err(Errno::ENOTDIR),
            }
        }
        Err(e) => Err(e),
    }
}

/// Opens the file `name` of `dir` with `flags` (plus `O_NOFOLLOW`, `O_NONBLOCK`,
/// `O_NOCTTY` and `O_CLOEXEC`; `mode` applies with `O_CREAT`). A link, a file with more
/// than one hard link and anything but a regular file are refused. No allocation.
pub fn open_beneath_raw(
    dir: BorrowedFd,
    name: &CStr,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, Errno> {
    if !single(name.to_bytes()) {
        return Err(Errno::EINVAL);
    }
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
    let fd = owned(openat(Some(dir.as_raw_fd()), name, flags, mode)?);
    let st = fstat(fd.as_raw_fd())?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(REFUSED_NOT_REGULAR);
    }
    if st.st_nlink != 1 {
        return Err(REFUSED_HARD_LINK);
    }
    Ok(fd)
}

fn cname(what: &Path, name: &OsStr) -> SysResult<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| SysError::Invalid(format!("{}: contains NUL", what.display())))
}

fn failed(path: &Path, e: Errno) -> SysError {
    match refusal(e) {
        Some(why) => SysError::Refused {
            path: path.display().to_string(),
            why,
        },
        None => SysError::errno(format!("opening {}", path.display()), e),
    }
}

/// [`open_dir_raw`] for a path.
pub fn open_dir(path: &Path) -> SysResult<OwnedFd> {
    let c = cname(path, path.as_os_str())?;
    open_dir_raw(&c).map_err(|e| failed(path, e))
}

/// [`mkdir_beneath_raw`]; `dir_path` is the path of `dir`, for messages only.
pub fn mkdir_beneath(
    dir: BorrowedFd,
    dir_path: &Path,
    name: &OsStr,
    mode: Mode,
) -> SysResult<OwnedFd> {
    let full = dir_path.join(name);
    let c = cname(&full, name)?;
    mkdir_beneath_raw(dir, &c, mode).map_err(|e| failed(&full, e))
}

/// [`open_beneath_raw`] as a [`File`]; `dir_path` is the path of `dir`, for messages
/// only.
pub fn open_beneath(
    dir: BorrowedFd,
    dir_path: &Path,
    name: &OsStr,
    flags: OFlag,
    mode: Mode,
) -> SysResult<File> {
    let full = dir_path.join(name);
    let c = cname(&full, name)?;
    open_beneath_raw(dir, &c, flags, mode)
        .map(File::from)
        .map_err(|e| failed(&full, e))
}

/// Opens `rel` (relative, components only) below the directory `base`: every directory
/// on the way is opened (created with `dir_mode` when `create_dirs`) without following
/// a link, then the file as [`open_beneath`] does.
pub fn open_below(
    base: &Path,
    rel: &Path,
    create_dirs: Option<Mode>,
    flags: OFlag,
    mode: Mode,
) -> SysResult<File> {
    let mut names: Vec<&OsStr> = Vec::new();
    for c in rel.components() {
        match c {
            std::path::Component::Normal(n) => names.push(n),
            _ => {
                return Err(SysError::Invalid(format!(
                    "{}: only plain names below {}",
                    rel.display(),
                    base.display()
                )))
            }
        }
    }
    let Some((file, dirs)) = names.split_last() else {
        return Err(SysError::Invalid(format!(
            "no file name below {}",
            base.display()
        )));
    };
    let mut fd = open_dir(base)?;
    let mut at = base.to_path_buf();
    for d in dirs {
        fd = match create_dirs {
            Some(m) => mkdir_beneath(fd.as_fd(), &at, d, m)?,
            None => {
                let full = at.join(d);
                let c = cname(&full, d)?;
                subdir_raw(fd.as_fd(), &c).map_err(|e| failed(&full, e))?
            }
        };
        at.push(d);
    }
    open_beneath(fd.as_fd(), &at, file, flags, mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("pgst-safefs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const RW: OFlag = OFlag::O_RDWR.union(OFlag::O_CREAT);

    fn mode() -> Mode {
        Mode::from_bits_truncate(0o644)
    }

    #[test]
    fn creates_and_reopens_a_file_below_new_directories() {
        let d = tmp("create");
        let dm = Some(Mode::from_bits_truncate(0o755));
        let mut f = open_below(&d, Path::new("a/b/file"), dm, RW, mode()).unwrap();
        f.write_all(b"x").unwrap();
        let mut f = open_below(&d, Path::new("a/b/file"), None, OFlag::O_RDONLY, mode()).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "x");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn links_are_refused_at_every_step_and_their_targets_untouched() {
        let d = tmp("links");
        let victim = d.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let outside = d.join("outside");
        std::fs::create_dir(&outside).unwrap();
        let base = d.join("base");
        std::fs::create_dir(&base).unwrap();
        let dm = Some(Mode::from_bits_truncate(0o755));

        // A link as the file.
        std::fs::create_dir(base.join("st")).unwrap();
        symlink(&victim, base.join("st/file")).unwrap();
        let e = open_below(&base, Path::new("st/file"), dm, RW, mode()).unwrap_err();
        assert!(
            matches!(&e, SysError::Refused { path, .. } if path.ends_with("st/file")),
            "{e}"
        );
        // A dangling link as the file: O_CREAT must not create its target.
        symlink(d.join("created"), base.join("st/dangling")).unwrap();
        assert!(open_below(&base, Path::new("st/dangling"), dm, RW, mode()).is_err());
        assert!(!d.join("created").exists());
        // A link as a directory on the way, with and without creation.
        symlink(&outside, base.join("dirlink")).unwrap();
        let e = open_below(&base, Path::new("dirlink/file"), dm, RW, mode()).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(open_below(&base, Path::new("dirlink/file"), None, RW, mode()).is_err());
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
        // A hard link to another file.
        std::fs::hard_link(&victim, base.join("st/hard")).unwrap();
        let e = open_below(&base, Path::new("st/hard"), dm, RW, mode()).unwrap_err();
        assert!(e.to_string().contains("hard link"), "{e}");
        // A FIFO: refused, and opening it does not block.
        nix::unistd::mkfifo(&base.join("st/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let e = open_below(&base, Path::new("st/fifo"), dm, RW, mode()).unwrap_err();
        assert!(e.to_string().contains("regular"), "{e}");
        // The base itself as a link.
        let e = open_below(&d.join("dirlink-base"), Path::new("x"), dm, RW, mode());
        assert!(e.is_err());
        symlink(&base, d.join("baselink")).unwrap();
        let e = open_below(&d.join("baselink"), Path::new("st/new"), dm, RW, mode());
        assert!(matches!(e, Err(SysError::Refused { .. })), "{e:?}");

        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn names_must_be_single_components() {
        let d = tmp("names");
        let fd = open_dir(&d).unwrap();
        for bad in [&b".."[..], b".", b"a/b", b""] {
            let c = CString::new(bad).unwrap();
            assert_eq!(
                open_beneath_raw(fd.as_fd(), &c, RW, mode()).unwrap_err(),
                Errno::EINVAL
            );
            assert_eq!(
                mkdir_beneath_raw(fd.as_fd(), &c, mode()).unwrap_err(),
                Errno::EINVAL
            );
        }
        assert!(open_below(&d, Path::new("../x"), None, RW, mode()).is_err());
        std::fs::remove_dir_all(d).unwrap();
    }
}
