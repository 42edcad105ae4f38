//! The agent's parameters, decoded once into [`DrbdConfig`].

use std::path::PathBuf;

use crate::ocf::agent::FromParams;
use crate::ocf::params::{ParamError, Params};
use crate::sys::drbd::check_resource_name;
use crate::sys::drbd::Version;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdConfig {
    pub res: String,
    pub conf: PathBuf,
    pub tiers: [i64; 4],
    pub stop_outdates_secondary: bool,
    pub version_ge: Option<Version>,
    pub version_lt: Option<Version>,
    pub fail_early: bool,
}

pub(super) fn parse_version(name: &'static str, v: &str) -> Result<Version, ParamError> {
    let parts: Vec<&str> = v.trim().split('.').collect();
    let num = |i: usize| parts.get(i).map(|p| p.parse::<u32>()).unwrap_or(Ok(0));
    match (parts.len(), num(0), num(1), num(2)) {
        (1..=3, Ok(a), Ok(b), Ok(c)) => Ok((a, b, c)),
        _ => Err(ParamError::invalid(name, v, "not a version like 8.4.0")),
    }
}

pub fn configure(p: &Params) -> Result<DrbdConfig, ParamError> {
    let res = p
        .str("drbd_resource")
        .unwrap_or_default()
        .trim()
        .to_string();
    if let Err(why) = check_resource_name(&res) {
        return Err(ParamError::invalid("drbd_resource", res, why));
    }
    let conf = p.str_value("drbdconf");
    if !conf.starts_with('/') {
        return Err(ParamError::invalid(
            "drbdconf",
            conf,
            "must be an absolute path",
        ));
    }
    let raw = p.str_value("adjust_master_score");
    let nums: Result<Vec<i64>, _> = raw.split_whitespace().map(str::parse::<i64>).collect();
    let tiers: [i64; 4] = match nums {
        Ok(v)
            if v.len() == 4
                && v.windows(2).all(|w| w[0] <= w[1])
                && v.iter().all(|n| (0..=1_000_000).contains(n)) =>
        {
            [v[0], v[1], v[2], v[3]]
        }
        _ => {
            return Err(ParamError::invalid(
                "adjust_master_score",
                raw,
                "four increasing numbers from 0 to 1000000",
            ))
        }
    };
    Ok(DrbdConfig {
        res,
        conf: PathBuf::from(conf),
        tiers,
        stop_outdates_secondary: p.bool("stop_outdates_secondary"),
        version_ge: p
            .str("require_drbd_module_version_ge")
            .map(|v| parse_version("require_drbd_module_version_ge", v))
            .transpose()?,
        version_lt: p
            .str("require_drbd_module_version_lt")
            .map(|v| parse_version("require_drbd_module_version_lt", v))
            .transpose()?,
        fail_early: p.bool("fail_promote_early_if_peer_primary"),
    })
}

impl FromParams for DrbdConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
}
