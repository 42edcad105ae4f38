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

/// The reference agents' type names each agent is also installed under, (alias, agent):
/// switching `ocf:heartbeat:IPaddr2` to `ocf:pgstack:IPaddr2` is then a change of provider
/// only. An alias of an agent this binary does not provide is left out everywhere.
pub static ALIASES: &[(&str, &str)] = &[
    ("IPaddr2", "vip"),
    ("Filesystem", "filesystem"),
    ("pgsql", "postgresql"),
    ("pgsqlms", "postgresql"),
    ("LVM-activate", "lvm"),
    ("LVM", "lvm"),
];

/// The agent called `name`: its own name or an alias of a provided agent.
pub fn resolve(name: &str) -> Option<&'static AgentInfo> {
    info(name).or_else(|| {
        ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .and_then(|(_, agent)| info(agent))
    })
}

/// Every name an agent is installed under (its own first, then its aliases), with the agent.
pub fn installed_names() -> Vec<(&'static str, &'static AgentInfo)> {
    let mut out: Vec<(&'static str, &'static AgentInfo)> =
        AGENTS.iter().map(|a| (a.name, *a)).collect();
    out.extend(
        ALIASES
            .iter()
            .filter_map(|(alias, agent)| info(agent).map(|a| (*alias, a))),
    );
    out
}

/// Runs `action` of the agent `name` against the real system.
pub fn run(name: &str, action: &str, vars: BTreeMap<String, String>) -> (Outcome, OcfEnv) {
    run_env(name, action, OcfEnv::from_map(vars))
}

/// [`run`] with an environment as the process got it (values that are not UTF-8
/// included, see [`OcfEnv::from_os`]). The real system needs the real privileges, so
/// the effective uid is always this process's own.
pub fn run_env(name: &str, action: &str, mut env: OcfEnv) -> (Outcome, OcfEnv) {
    env.euid = Some(crate::sys::effective_uid());
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

/// The shim earlier installs put at `/usr/lib/ocf/resource.d/pgstack/<agent>` (a `/bin/sh`
/// exec of `pgstack ocf "$0"`): `pgstack install` now puts a link to the binary there,
/// recognises this text as its own and replaces it; the `ocf` entry still serves it.
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
    fn committed_links_and_docs_match_the_tables() {
        let root = env!("CARGO_MANIFEST_DIR");
        for a in AGENTS {
            let link = format!("{root}/agents/ocf/pgstack/{}", a.name);
            assert_eq!(
                std::fs::read_link(&link).ok(),
                Some(std::path::PathBuf::from("/usr/sbin/pgstack")),
                "{link}: run pgstack docs"
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
