//! `ocf:pgstack:drbd`: a DRBD resource as a promotable clone, the replacement of
//! `ocf:linbit:drbd` with the same parameter names.
//!
//! **Manages** one DRBD resource (all its volumes) on this node through `drbdadm`; state is
//! read with `drbdsetup events2 --now` into the typed model of `sys::drbd`.
//!
//! **Actions**
//! - `start`: `drbdadm up` (or `adjust` when already configured), waits within the deadline
//!   until the local disk has attached, then publishes the promotion score.
//! - `stop`: demotes if needed, `drbdadm down`, checks the resource is gone, removes the
//!   score. With a configuration that does not parse it still takes the named resource
//!   down, and succeeds only when it is gone.
//! - On a node without a loaded DRBD module nothing is up: probes say 7 and stop 0 without
//!   running drbdsetup (which would try to load the module); start and validate-all say 5
//!   when the module is not even installed.
//! - `promote`: `drbdadm primary`, retried until the deadline; fails at once when a peer is
//!   already Primary or the resource has lost quorum. `demote`: `drbdadm secondary`, retried.
//! - `monitor`: 8 Primary, 0 Secondary, 7 down, 1 for a failed or missing local disk; every
//!   monitor (and notify) refreshes the promotion score.
//! - `validate-all`: resource name, configuration file, drbdadm, the kernel module version
//!   range, and the clone meta attributes a DRBD clone needs.
//!
//! **Promotion** follows data currency with the `adjust_master_score` tiers (only
//! consistent data, remote access only, local UpToDate with peers unknown, as good as it
//! gets). A node whose data is not UpToDate never gets a score while a peer's is, and a score
//! of 0 removes the attribute (Pacemaker then will not promote there).
//!
//! **Side effects**: the DRBD resource's state; the node attribute `master-<resource>`.

#![forbid(unsafe_code)]

mod actions;
mod config;
#[cfg(test)]
mod fake;
pub mod fence;
pub mod recovery;

pub use actions::{score, DrbdAgent};
pub use config::{configure, DrbdConfig};

use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::ParamSpec;
use crate::ocf::Action;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string(
        "drbd_resource",
        "DRBD resource name",
        "The name of the DRBD resource from the DRBD configuration.",
    )
    .required()
    .unique(),
    ParamSpec::string(
        "drbdconf",
        "DRBD configuration file",
        "Full path to the DRBD configuration file.",
    )
    .default("/etc/drbd.conf"),
    ParamSpec::string(
        "adjust_master_score",
        "Promotion score tiers",
        "Four increasing scores, separated by spaces: (1) only Consistent local data and \
         no peer known, (2) local data not UpToDate but a peer's is (kept for \
         compatibility; such nodes get no score), (3) local data UpToDate, some peer \
         unknown, (4) as good as it gets: Primary and UpToDate, or UpToDate with every \
         peer known. 0 means no score (not promotable).",
    )
    .default("0 10 1000 10000"),
    ParamSpec::boolean(
        "stop_outdates_secondary",
        "Outdate an unconnected Secondary on stop",
        "When stopping a Secondary that is not connected to its peer, mark its data \
         Outdated so it cannot later be promoted over newer data.",
    )
    .default("false"),
    ParamSpec::string(
        "require_drbd_module_version_ge",
        "Lowest DRBD module version",
        "Refuse to run (OCF_ERR_INSTALLED) unless the loaded DRBD module is at least this \
         version, e.g. 8.4.0.",
    ),
    ParamSpec::string(
        "require_drbd_module_version_lt",
        "Version the DRBD module must be below",
        "Refuse to run (OCF_ERR_INSTALLED) unless the loaded DRBD module is below this \
         version, e.g. 9.3.0.",
    ),
    ParamSpec::boolean(
        "fail_promote_early_if_peer_primary",
        "Fail promote at once if a peer is Primary",
        "When DRBD still sees a Primary peer (a cluster split brain, say), promote fails \
         at once instead of retrying until its timeout.",
    )
    .default("true"),
    ParamSpec::refused("ignore_missing_notifications", "accepted and ignored: scores are refreshed by every monitor, so a missed notification costs nothing", &["*"]),
    ParamSpec::refused("wfc_timeout", "accepted and ignored: start does not wait for the peer, only for the local disk", &["*"]),
    ParamSpec::refused("remove_master_score_if_peer_primary", "not supported; promote refuses a Primary peer instead (fail_promote_early_if_peer_primary)", &["false", "no", "0"]),
    ParamSpec::refused("unfence_if_all_uptodate", "not supported; the after-resync-target handler (pgstack drbd unfence-peer) removes the constraint", &["false", "no", "0"]),
    ParamSpec::refused("unfence_extra_args", "accepted and ignored: it only sets the arguments of the unfence_if_all_uptodate hook, which is not supported", &["*"]),
    ParamSpec::refused("connect_only_after_promote", "the resource connects to its peer at start, never deferred until a promote", &["false", "no", "0"]),
];

static ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 240),
    ActionSpec::new(Action::Promote, 90),
    ActionSpec::new(Action::Demote, 90),
    ActionSpec::new(Action::Notify, 90),
    ActionSpec::new(Action::Stop, 100),
    ActionSpec::new(Action::Monitor, 20)
        .interval(29)
        .role("Promoted"),
    ActionSpec::new(Action::Monitor, 20)
        .interval(31)
        .role("Unpromoted"),
    ActionSpec::new(Action::MetaData, 5),
    ActionSpec::new(Action::ValidateAll, 30),
];

pub static INFO: AgentInfo = AgentInfo {
    name: "drbd",
    shortdesc: "DRBD resource as a promotable clone",
    longdesc: "Manages a DRBD resource as a promotable clone: brings it up and down, promotes \
        and demotes it, and publishes promotion scores that follow data currency, so \
        Pacemaker promotes the node with the best data and never one whose data is older \
        than a peer's. Parameter names follow ocf:linbit:drbd. The clone needs notify=true, \
        clone-node-max=1 and promoted-node-max=1.",
    params: PARAMS,
    actions: ACTIONS,
    needs_root: true,
};

#[cfg(test)]
mod tests {
    use super::config::parse_version;
    use super::*;
    use crate::ocf::params::Params;
    use crate::sys::drbd::{parse_events2, Disk, Peer, Role, State};

    fn fixture(name: &str) -> State {
        let t = crate::fixture(&format!("drbdsetup_events2/{name}"));
        parse_events2(&t, "r0").unwrap()
    }

    const T: [i64; 4] = [0, 10, 1000, 10000];

    #[test]
    fn scores_follow_data_currency() {
        assert_eq!(score(&fixture("84-connected-primary.txt"), T), 10000);
        assert_eq!(score(&fixture("84-connected-secondary.txt"), T), 10000);
        // Primary whose peer vanished keeps the top score; a Secondary in that state has
        // good data but cannot know about the peer's.
        assert_eq!(score(&fixture("84-primary-peer-down.txt"), T), 10000);
        let mut s = fixture("84-primary-peer-down.txt");
        s.role = Role::Secondary;
        assert_eq!(score(&s, T), 1000);
        // Not UpToDate while a peer is: never a score.
        let mut s = fixture("84-connected-secondary.txt");
        s.disk = Disk::Inconsistent;
        assert_eq!(score(&s, T), 0);
        s.disk = Disk::Consistent;
        assert_eq!(score(&s, T), 0);
        s.peers[0] = Peer {
            disk: Disk::DUnknown,
            connection: "Connecting".into(),
            ..s.peers[0].clone()
        };
        assert_eq!(score(&s, [5, 10, 1000, 10000]), 5);
        s.disk = Disk::Outdated;
        assert_eq!(score(&s, T), 0);
        s.disk = Disk::UpToDate;
        s.quorum = false;
        assert_eq!(score(&s, T), 0);
    }

    #[test]
    fn configuration_checks() {
        use crate::ocf::params::test_env as env;
        let p = |pairs: &[(&str, &str)]| {
            Params::parse(PARAMS, &env(pairs))
                .map_err(|e| e.to_string())
                .and_then(|p| configure(&p).map_err(|e| e.to_string()))
        };
        let c = p(&[("drbd_resource", "pg")]).unwrap();
        assert_eq!(c.tiers, T);
        assert!(c.fail_early);
        for (k, v) in [
            ("drbd_resource", "pg;reboot"),
            ("drbd_resource", "$(id)"),
            ("drbd_resource", "all"),
            ("adjust_master_score", "1 2 3"),
            ("adjust_master_score", "10 5 1 0"),
            ("adjust_master_score", "a b c d"),
            ("drbdconf", "etc/drbd.conf"),
            ("require_drbd_module_version_ge", "eight"),
        ] {
            let mut pairs = vec![("drbd_resource", "pg")];
            pairs.retain(|(n, _)| *n != k);
            pairs.push((k, v));
            let e = p(&pairs).unwrap_err();
            assert!(e.contains(k), "{k}={v}: {e}");
        }
        assert_eq!(parse_version("x", "8.4").unwrap(), (8, 4, 0));
    }
}
