//! Failures of the protocol core, and the trait by which every agent error names its
//! exit code. The code is chosen by the same value that carries the exit reason.

use super::code::OcfCode;
use super::params::ParamError;
use crate::sys::SysError;

/// Implemented by every error an agent action can return.
pub trait ExitCode {
    fn code(&self) -> OcfCode;
}

#[derive(Debug, thiserror::Error)]
pub enum OcfError {
    #[error("{0}")]
    Generic(String),
    #[error("{0}")]
    Args(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    Perm(String),
    #[error("{0}")]
    Installed(String),
    #[error("{0}")]
    Configured(String),
    #[error("{0}")]
    FailedPromoted(String),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error("{what}: not done before the operation deadline ({ms} ms)")]
    Deadline { what: String, ms: u128 },
    #[error(transparent)]
    Sys(#[from] SysError),
}

impl ExitCode for OcfError {
    fn code(&self) -> OcfCode {
        match self {
            OcfError::Generic(_) | OcfError::Deadline { .. } | OcfError::Sys(_) => {
                OcfCode::ErrGeneric
            }
            OcfError::Args(_) => OcfCode::ErrArgs,
            OcfError::Unimplemented(_) => OcfCode::ErrUnimplemented,
            OcfError::Perm(_) => OcfCode::ErrPerm,
            OcfError::Installed(_) => OcfCode::ErrInstalled,
            OcfError::Configured(_) | OcfError::Param(_) => OcfCode::ErrConfigured,
            OcfError::FailedPromoted(_) => OcfCode::FailedPromoted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            OcfError::Param(ParamError::Missing { name: "ip" }).code(),
            OcfCode::ErrConfigured
        );
        assert_eq!(
            OcfError::Sys(SysError::Invalid("x".into())).code(),
            OcfCode::ErrGeneric
        );
        assert_eq!(
            OcfError::Installed("x".into()).code(),
            OcfCode::ErrInstalled
        );
        assert_eq!(
            OcfError::Deadline {
                what: "DAD".into(),
                ms: 5
            }
            .to_string(),
            "DAD: not done before the operation deadline (5 ms)"
        );
    }
}
