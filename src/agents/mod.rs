//! The agents, one module each, and the registry that finds them by name.

pub mod drbd;
pub mod filesystem;
pub mod lvm;
pub mod postgresql;
pub mod vip;

use std::collections::BTreeMap;

use crate::ocf::dispatch::{self, Outcome};
use crate::ocf::env::OcfEnv;
use crate::ocf::log::Logger;
use crate::ocf::metadata::AgentInfo;
use crate::ocf::OcfCode;
use crate::sys::cluster::CrmTools;
use crate::sys::drbd::RealDrbd;
use crate::sys::lvm::RealLvm;
use crate::sys::mount::RealMounts;
use crate::sys::net::RealNet;

/// Every agent this binary provides.
pub static AGENTS: &[&AgentInfo] = &[
    &drbd::INFO,
    &filesystem::INFO,
    &lvm::INFO,
    &postgresql::INFO,
    &vip::INFO,
];

pub fn info(name: &str) -> Option<&'static AgentInfo> {
    AGENTS.iter().copied().find(|a| a.name == name)
}

/// Runs `action` of the agent `name` against the real system.
pub fn run(name: &str, action: &str, vars: BTreeMap<String, String>) -> (Outcome, OcfEnv) {
    let env = OcfEnv::from_map(vars);
    let log = Logger::new(name, &env);
    let out = match name {
        "postgresql" => dispatch::run(&postgresql::Postgresql, action, &env, &log),
        "vip" => dispatch::run(&vip::Vip::new(RealNet), action, &env, &log),
        "drbd" => dispatch::run(
            &drbd::DrbdAgent::new(RealDrbd, CrmTools::default()),
            action,
            &env,
            &log,
        ),
        "filesystem" => dispatch::run(&filesystem::Filesystem::new(RealMounts), action, &env, &log),
        "lvm" => dispatch::run(&lvm::LvmAgent::new(RealLvm::default()), action, &env, &log),
        _ => Outcome::fail(
            OcfCode::ErrInstalled,
            format!(
                "unknown agent {name:?}; this pgstack provides: {}",
                names().join(", ")
            ),
        ),
    };
    (out, env)
}

pub fn names() -> Vec<&'static str> {
    AGENTS.iter().map(|a| a.name).collect()
}

/// The text of the shim installed as `/usr/lib/ocf/resource.d/pgstack/<agent>`.
pub fn shim(binary: &str) -> String {
    format!(
        "#!/bin/sh\n# OCF resource agent shim of pgstack: the agent is chosen by the name this\n# file is installed under; the work is done by the pgstack binary.\nexec {binary} ocf \"$0\" \"$@\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_agent_is_5() {
        let (o, _) = run("nosuch", "start", BTreeMap::new());
        assert_eq!(o.code, OcfCode::ErrInstalled);
        assert!(o.exit_reason.unwrap().contains("vip"));
    }

    #[test]
    fn meta_data_needs_no_environment_and_touches_nothing() {
        for name in names() {
            let (o, _) = run(name, "meta-data", BTreeMap::new());
            assert_eq!(o.code, OcfCode::Success);
            assert!(o.stdout.starts_with("<?xml"));
        }
    }

    #[test]
    fn committed_shims_and_docs_match_the_tables() {
        let root = env!("CARGO_MANIFEST_DIR");
        for a in AGENTS {
            let shim_path = format!("{root}/agents/ocf/pgstack/{}", a.name);
            assert_eq!(
                std::fs::read_to_string(&shim_path).unwrap(),
                shim("/usr/sbin/pgstack"),
                "{shim_path}"
            );
            let md = format!("{root}/docs/agents/{}.md", a.name);
            assert_eq!(
                std::fs::read_to_string(&md).unwrap(),
                a.to_markdown(),
                "{md} is stale: run pgstack docs"
            );
            let man = format!("{root}/docs/man/ocf_pgstack_{}.7", a.name);
            assert_eq!(
                std::fs::read_to_string(&man).unwrap(),
                a.to_man(),
                "{man} is stale: run pgstack docs"
            );
        }
    }
}
