//! Errors of the OS boundary. They name what failed; they never know OCF codes.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {errno}")]
    Errno {
        context: String,
        errno: nix::errno::Errno,
    },
    #[error("{what}: no answer before the deadline")]
    Timeout { what: String },
    #[error("{0}")]
    Invalid(String),
    /// A name in a directory others can write that root refuses to open (a link).
    #[error("{path} {why}")]
    Refused { path: String, why: &'static str },
    /// A kernel module is neither loaded nor installed on this node.
    #[error("the {module} kernel module is neither loaded nor installed on this node ({detail})")]
    ModuleMissing { module: String, detail: String },
    /// A program is not installed (not found in the fixed `PATH`).
    #[error(
        "{program}: not installed (not found in {})",
        super::runner::FIXED_PATH
    )]
    NotInstalled { program: String },
    /// The named object is not defined in the configuration a tool read.
    #[error("{what}")]
    NotConfigured { what: String },
    /// A DRBD command failed; the failure says why, typed.
    #[error(transparent)]
    Drbd(#[from] super::drbd::AdmError),
}

impl SysError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        SysError::Io {
            context: context.into(),
            source,
        }
    }
    pub fn errno(context: impl Into<String>, errno: nix::errno::Errno) -> Self {
        SysError::Errno {
            context: context.into(),
            errno,
        }
    }
    /// The errno behind this error, when there is one.
    pub fn raw_errno(&self) -> Option<nix::errno::Errno> {
        match self {
            SysError::Errno { errno, .. } => Some(*errno),
            SysError::Io { source, .. } => source.raw_os_error().map(nix::errno::Errno::from_raw),
            _ => None,
        }
    }
}

pub type SysResult<T> = Result<T, SysError>;
