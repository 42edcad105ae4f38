//! The one error of every agent action, and the trait by which an error names its exit
//! code. The code is chosen by the same value that carries the exit reason. Agents use
//! the kinds below; a failure that carries data of its own (an address conflict, a busy
//! mount) is a small agent type implementing [`ExitCode`], boxed into [`OcfError::Agent`].

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
    /// A failure with data of the agent's own: it names its exit code itself.
    #[error("{0}")]
    Agent(Box<dyn AgentFailure>),
}

/// A failure type of one agent (see [`OcfError::Agent`]); implement [`ExitCode`] and
/// `std::error::Error`, then convert with `?` after [`agent_failure!`].
pub trait AgentFailure: std::error::Error + ExitCode + Send + Sync + 'static {}
impl<T: std::error::Error + ExitCode + Send + Sync + 'static> AgentFailure for T {}

/// `impl From<$t> for OcfError`, so an agent's own failure type converts with `?`;
/// `agent_failure!(T => ErrGeneric)` also implements [`ExitCode`] with that one code.
#[macro_export]
macro_rules! agent_failure {
    ($t:ty => $code:ident) => {
        impl $crate::ocf::ExitCode for $t {
            fn code(&self) -> $crate::ocf::OcfCode {
                $crate::ocf::OcfCode::$code
            }
        }
        $crate::agent_failure!($t);
    };
    ($t:ty) => {
        impl From<$t> for $crate::ocf::OcfError {
            fn from(e: $t) -> Self {
                $crate::ocf::OcfError::Agent(Box::new(e))
            }
        }
    };
}

impl OcfError {
    /// 1: the action failed here (what failed, named).
    pub fn generic(msg: impl Into<String>) -> OcfError {
        OcfError::Generic(msg.into())
    }
    /// 5: this node lacks something (a binary, device, link, module).
    pub fn installed(msg: impl Into<String>) -> OcfError {
        OcfError::Installed(msg.into())
    }
    /// 6: the configuration cannot work anywhere.
    pub fn configured(msg: impl Into<String>) -> OcfError {
        OcfError::Configured(msg.into())
    }
    /// 4: not allowed (e.g. the agent runs without root).
    pub fn perm(msg: impl Into<String>) -> OcfError {
        OcfError::Perm(msg.into())
    }
    /// The agent's own failure, if this is one of type `T`.
    pub fn agent_failure<T: AgentFailure>(&self) -> Option<&T> {
        match self {
            OcfError::Agent(b) => {
                let e: &dyn std::error::Error = b.as_ref();
                e.downcast_ref::<T>()
            }
            _ => None,
        }
    }
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
            OcfError::Agent(e) => e.code(),
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

    #[derive(Debug, thiserror::Error)]
    #[error("busy: {0}")]
    struct Busy(u32);
    crate::agent_failure!(Busy => ErrGeneric);

    #[test]
    fn an_agent_failure_keeps_its_code_message_and_data() {
        fn act() -> Result<(), OcfError> {
            Err(Busy(7))?
        }
        let e = act().unwrap_err();
        assert_eq!(e.code(), OcfCode::ErrGeneric);
        assert_eq!(e.to_string(), "busy: 7");
        assert_eq!(e.agent_failure::<Busy>().map(|b| b.0), Some(7));
        assert!(OcfError::installed("x").agent_failure::<Busy>().is_none());
    }
}
