//! OCF exit codes. The numeric value is applied in exactly one place: `main`.

use std::fmt;

/// Exit codes of the OCF resource agent API 1.1.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OcfCode {
    Success = 0,
    ErrGeneric = 1,
    ErrArgs = 2,
    ErrUnimplemented = 3,
    ErrPerm = 4,
    ErrInstalled = 5,
    ErrConfigured = 6,
    NotRunning = 7,
    RunningPromoted = 8,
    FailedPromoted = 9,
    Degraded = 190,
    DegradedPromoted = 191,
}

impl OcfCode {
    pub const ALL: [OcfCode; 12] = [
        OcfCode::Success,
        OcfCode::ErrGeneric,
        OcfCode::ErrArgs,
        OcfCode::ErrUnimplemented,
        OcfCode::ErrPerm,
        OcfCode::ErrInstalled,
        OcfCode::ErrConfigured,
        OcfCode::NotRunning,
        OcfCode::RunningPromoted,
        OcfCode::FailedPromoted,
        OcfCode::Degraded,
        OcfCode::DegradedPromoted,
    ];

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn name(self) -> &'static str {
        match self {
            OcfCode::Success => "OCF_SUCCESS",
            OcfCode::ErrGeneric => "OCF_ERR_GENERIC",
            OcfCode::ErrArgs => "OCF_ERR_ARGS",
            OcfCode::ErrUnimplemented => "OCF_ERR_UNIMPLEMENTED",
            OcfCode::ErrPerm => "OCF_ERR_PERM",
            OcfCode::ErrInstalled => "OCF_ERR_INSTALLED",
            OcfCode::ErrConfigured => "OCF_ERR_CONFIGURED",
            OcfCode::NotRunning => "OCF_NOT_RUNNING",
            OcfCode::RunningPromoted => "OCF_RUNNING_PROMOTED",
            OcfCode::FailedPromoted => "OCF_FAILED_PROMOTED",
            OcfCode::Degraded => "OCF_DEGRADED",
            OcfCode::DegradedPromoted => "OCF_DEGRADED_PROMOTED",
        }
    }
}

impl fmt::Display for OcfCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_ocf_spec() {
        let v: Vec<u8> = OcfCode::ALL.iter().map(|c| c.as_u8()).collect();
        assert_eq!(v, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 190, 191]);
        assert_eq!(OcfCode::NotRunning.to_string(), "OCF_NOT_RUNNING (7)");
    }
}
