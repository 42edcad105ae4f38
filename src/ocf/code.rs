//! OCF exit codes. The numeric value is applied in exactly one place: `main`.

use std::fmt;

/// Declares the codes once: variant, value and the spec's name, so the enum, [`OcfCode::ALL`]
/// and [`OcfCode::name`] cannot disagree.
macro_rules! ocf_codes {
    ($($variant:ident: $value:literal => $name:literal,)+) => {
        /// Exit codes of the OCF resource agent API 1.1.
        #[repr(u8)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum OcfCode {
            $($variant = $value,)+
        }

        impl OcfCode {
            pub const ALL: [OcfCode; [$($value),+].len()] = [$(OcfCode::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(OcfCode::$variant => $name,)+
                }
            }
        }
    };
}

ocf_codes! {
    Success: 0 => "OCF_SUCCESS",
    ErrGeneric: 1 => "OCF_ERR_GENERIC",
    ErrArgs: 2 => "OCF_ERR_ARGS",
    ErrUnimplemented: 3 => "OCF_ERR_UNIMPLEMENTED",
    ErrPerm: 4 => "OCF_ERR_PERM",
    ErrInstalled: 5 => "OCF_ERR_INSTALLED",
    ErrConfigured: 6 => "OCF_ERR_CONFIGURED",
    NotRunning: 7 => "OCF_NOT_RUNNING",
    RunningPromoted: 8 => "OCF_RUNNING_PROMOTED",
    FailedPromoted: 9 => "OCF_FAILED_PROMOTED",
    Degraded: 190 => "OCF_DEGRADED",
    DegradedPromoted: 191 => "OCF_DEGRADED_PROMOTED",
}

impl OcfCode {
    pub fn as_u8(self) -> u8 {
        self as u8
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
