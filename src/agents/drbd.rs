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
//!   score. With a configuration that does not parse it still tries `drbdadm down`.
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

use std::path::PathBuf;
use std::time::Duration;

use crate::ocf::agent::FromParams;
use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::notify::When;
use crate::ocf::params::{ParamError, ParamSpec, Params};
use crate::ocf::promotion::{clear_score, set_score};
use crate::ocf::{Action, Agent, Ctx, OcfError, Status};
use crate::sys::cluster::Cluster;
use crate::sys::drbd::{valid_resource_name, Disk, Drbd, Role, State};
use crate::sys::runner::Outcome;

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
    ParamSpec::refused("unfence_extra_args", "accepted and ignored (belongs to unfence_if_all_uptodate)", &["*"]),
    ParamSpec::refused("connect_only_after_promote", "not supported", &["false", "no", "0"]),
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
};

type Version = (u32, u32, u32);

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

fn parse_version(name: &'static str, v: &str) -> Result<Version, ParamError> {
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
    if !valid_resource_name(&res) {
        return Err(ParamError::invalid(
            "drbd_resource",
            res,
            "letters, digits, '_', '-', '.' and '+' only",
        ));
    }
    let conf = p.str("drbdconf").unwrap_or("/etc/drbd.conf");
    if !conf.starts_with('/') {
        return Err(ParamError::invalid(
            "drbdconf",
            conf,
            "must be an absolute path",
        ));
    }
    let raw = p.str("adjust_master_score").unwrap_or("0 10 1000 10000");
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

/// The promotion score of this node for `st`, from the four tiers.
pub fn score(st: &State, tiers: [i64; 4]) -> i64 {
    let [only_consistent, _only_remote, local_ok, best] = tiers;
    if !st.quorum {
        return 0;
    }
    match st.disk {
        Disk::UpToDate => {
            let all_known = st.peers.iter().all(|p| p.connected());
            if st.role == Role::Primary || all_known {
                best
            } else {
                local_ok
            }
        }
        // Older or unknown-quality data: never promotable while a peer has UpToDate data.
        _ if st.any_peer_up_to_date() => 0,
        Disk::Consistent => only_consistent,
        _ => 0,
    }
}

pub struct DrbdAgent<D: Drbd, C: Cluster> {
    drbd: D,
    cluster: C,
}

impl<D: Drbd, C: Cluster> DrbdAgent<D, C> {
    pub fn new(drbd: D, cluster: C) -> Self {
        DrbdAgent { drbd, cluster }
    }

    fn state(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<Option<State>, OcfError> {
        Ok(self.drbd.state(&cfg.res, ctx.deadline.instant())?)
    }

    fn publish(&self, cfg: &DrbdConfig, st: Option<&State>, ctx: &Ctx) {
        match st.map(|s| score(s, cfg.tiers)).unwrap_or(0) {
            0 => clear_score(&self.cluster, ctx),
            s => set_score(&self.cluster, ctx, s),
        };
    }

    fn adm(&self, cfg: &DrbdConfig, args: &[&str], ctx: &Ctx) -> Result<Outcome, OcfError> {
        Ok(self
            .drbd
            .adm(&cfg.conf, args, &cfg.res, ctx.deadline.instant())?)
    }

    fn adm_ok(&self, cfg: &DrbdConfig, args: &[&str], ctx: &Ctx) -> Result<(), OcfError> {
        let out = self.adm(cfg, args, ctx)?;
        if out.success() {
            Ok(())
        } else {
            Err(OcfError::Generic(format!(
                "drbdadm {} {}: {}",
                args.join(" "),
                cfg.res,
                out.describe()
            )))
        }
    }

    /// Runs `drbdadm <args>` until it succeeds, `stop_early` says give up, or the deadline.
    fn retry(
        &self,
        cfg: &DrbdConfig,
        args: &[&str],
        ctx: &Ctx,
        stop_early: impl Fn(&Outcome) -> Option<String>,
    ) -> Result<(), OcfError> {
        loop {
            let out = self.adm(cfg, args, ctx)?;
            if out.success() {
                return Ok(());
            }
            if let Some(why) = stop_early(&out) {
                return Err(OcfError::Generic(why));
            }
            if ctx.deadline.remaining() < Duration::from_millis(1200) {
                return Err(OcfError::Generic(format!(
                    "drbdadm {} {} kept failing until the operation deadline: {}",
                    args.join(" "),
                    cfg.res,
                    out.describe()
                )));
            }
            ctx.log.info(&format!(
                "drbdadm {} {}: {}; retrying",
                args.join(" "),
                cfg.res,
                out.describe()
            ));
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn wait_until(
        &self,
        cfg: &DrbdConfig,
        ctx: &Ctx,
        what: &str,
        done: impl Fn(Option<&State>) -> bool,
    ) -> Result<Option<State>, OcfError> {
        loop {
            let st = self.state(cfg, ctx)?;
            if done(st.as_ref()) {
                return Ok(st);
            }
            if ctx.deadline.remaining() < Duration::from_millis(300) {
                return Err(OcfError::Deadline {
                    what: format!("{} {what}", cfg.res),
                    ms: ctx.deadline.elapsed().as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn version_str(v: Version) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
}

impl FromParams for DrbdConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
}

impl<D: Drbd, C: Cluster> Agent for DrbdAgent<D, C> {
    type Config = DrbdConfig;

    fn info(&self) -> &'static AgentInfo {
        &INFO
    }

    fn validate(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let m = &ctx.env.meta;
        if m.clone_max.is_some() {
            if m.clone_node_max.unwrap_or(1) != 1 {
                return Err(OcfError::Configured(
                    "clone-node-max must be 1 for a DRBD clone".into(),
                ));
            }
            if m.promoted_node_max.unwrap_or(1) != 1 {
                return Err(OcfError::Configured(
                    "promoted-node-max must be 1 for a DRBD clone".into(),
                ));
            }
            if m.promoted_max.unwrap_or(1) > 1 {
                return Err(OcfError::Configured("promoted-max above 1 needs dual-primary DRBD, which this agent does not manage".into()));
            }
            if !m.notify {
                return Err(OcfError::Configured(
                    "the DRBD clone needs notify=true".into(),
                ));
            }
        }
        if !cfg.conf.exists() {
            return Err(OcfError::Installed(format!(
                "drbdconf={}: no such file",
                cfg.conf.display()
            )));
        }
        let v = self.drbd.module_version().ok_or_else(|| {
            OcfError::Installed(
                "the DRBD kernel module is not loaded (/proc/drbd is missing)".into(),
            )
        })?;
        if let Some(ge) = cfg.version_ge.filter(|ge| v < *ge) {
            return Err(OcfError::Installed(format!(
                "DRBD module {} is older than require_drbd_module_version_ge={}",
                version_str(v),
                version_str(ge)
            )));
        }
        if let Some(lt) = cfg.version_lt.filter(|lt| v >= *lt) {
            return Err(OcfError::Installed(format!(
                "DRBD module {} is not below require_drbd_module_version_lt={}",
                version_str(v),
                version_str(lt)
            )));
        }
        let out = match self.adm(cfg, &["sh-minor"], ctx) {
            Err(OcfError::Sys(e)) if e.to_string().contains("not found") => {
                return Err(OcfError::Installed(format!(
                    "drbdadm is not installed: {e}"
                )))
            }
            other => other?,
        };
        if !out.success() {
            return Err(OcfError::Configured(format!(
                "resource {} is not defined for this node in {}: {}",
                cfg.res,
                cfg.conf.display(),
                out.describe()
            )));
        }
        Ok(())
    }

    fn start(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let up = self.state(cfg, ctx)?.is_some();
        self.adm_ok(cfg, &[if up { "adjust" } else { "up" }], ctx)?;
        let st = self.wait_until(cfg, ctx, "to attach its disk", |s| {
            s.is_some_and(|s| {
                !matches!(
                    s.disk,
                    Disk::Attaching | Disk::Negotiating | Disk::Detaching
                )
            })
        })?;
        if let Some(s) = &st {
            if matches!(s.disk, Disk::Failed | Disk::Diskless) {
                return Err(OcfError::Generic(format!(
                    "{} is up but its local disk is {:?}",
                    cfg.res, s.disk
                )));
            }
        }
        self.publish(cfg, st.as_ref(), ctx);
        Ok(())
    }

    fn stop(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let Some(st) = self.state(cfg, ctx)? else {
            clear_score(&self.cluster, ctx);
            return Ok(());
        };
        if st.role == Role::Primary {
            self.retry(cfg, &["secondary"], ctx, |_| None)?;
        }
        let unconnected_secondary = !st.peers.iter().any(|p| p.connected());
        self.adm_ok(cfg, &["down"], ctx)?;
        self.wait_until(cfg, ctx, "to go down", |s| s.is_none())?;
        if cfg.stop_outdates_secondary && unconnected_secondary && st.disk == Disk::UpToDate {
            if let Err(e) = self.adm_ok(cfg, &["outdate"], ctx) {
                ctx.log.warn(&format!("could not outdate {}: {e}", cfg.res));
            }
        }
        clear_score(&self.cluster, ctx);
        Ok(())
    }

    fn stop_unconfigured(&self, err: &OcfError, ctx: &Ctx) -> Result<(), OcfError> {
        // Best effort: a valid resource name is enough to take it down.
        let Some(res) = ctx
            .env
            .raw_param("drbd_resource")
            .map(str::trim)
            .filter(|r| valid_resource_name(r))
        else {
            return Ok(());
        };
        ctx.log.warn(&format!(
            "stop with an invalid configuration ({err}): taking {res} down anyway"
        ));
        let conf = std::path::Path::new("/etc/drbd.conf");
        let _ = self
            .drbd
            .adm(conf, &["secondary"], res, ctx.deadline.instant());
        let _ = self.drbd.adm(conf, &["down"], res, ctx.deadline.instant());
        clear_score(&self.cluster, ctx);
        Ok(())
    }

    fn monitor(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<Status, OcfError> {
        let Some(st) = self.state(cfg, ctx)? else {
            if !ctx.is_probe() {
                clear_score(&self.cluster, ctx);
            }
            return Ok(Status::NotRunning(None));
        };
        self.publish(cfg, Some(&st), ctx);
        if matches!(st.disk, Disk::Failed | Disk::Diskless) {
            return Err(OcfError::Generic(format!(
                "{}: local disk is {:?}",
                cfg.res, st.disk
            )));
        }
        Ok(if st.role == Role::Primary {
            Status::Promoted
        } else {
            Status::Running
        })
    }

    fn promote(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let Some(st) = self.state(cfg, ctx)? else {
            return Err(OcfError::Generic(format!("{} is not started", cfg.res)));
        };
        if st.role == Role::Primary {
            return Ok(());
        }
        if !st.quorum {
            return Err(OcfError::Generic(format!(
                "{} has no quorum; not promoting",
                cfg.res
            )));
        }
        if cfg.fail_early && st.peer_primary() {
            return Err(OcfError::Generic(format!(
                "a peer of {} is still Primary; not promoting",
                cfg.res
            )));
        }
        let fail_early = cfg.fail_early;
        self.retry(cfg, &["primary"], ctx, |out| {
            let err = String::from_utf8_lossy(out.stderr()).to_lowercase();
            if fail_early
                && (err.contains("multiple primaries")
                    || err.contains("peer is primary")
                    || err.contains("(-1)"))
            {
                Some(format!(
                    "{}: a peer is Primary: {}",
                    cfg.res,
                    out.describe()
                ))
            } else if err.contains("quorum") {
                Some(format!("{}: no quorum: {}", cfg.res, out.describe()))
            } else if err.contains("need access to uptodate data") || err.contains("(-2)") {
                Some(format!(
                    "{}: no access to UpToDate data: {}",
                    cfg.res,
                    out.describe()
                ))
            } else {
                None
            }
        })?;
        let st = self.state(cfg, ctx)?;
        self.publish(cfg, st.as_ref(), ctx);
        Ok(())
    }

    fn demote(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let Some(st) = self.state(cfg, ctx)? else {
            return Err(OcfError::Generic(format!("{} is not started", cfg.res)));
        };
        if st.role != Role::Primary {
            return Ok(());
        }
        self.retry(cfg, &["secondary"], ctx, |_| None)?;
        let st = self.state(cfg, ctx)?;
        self.publish(cfg, st.as_ref(), ctx);
        Ok(())
    }

    fn notify(&self, cfg: &DrbdConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let n = ctx.env.notify();
        ctx.log
            .debug(&format!("notify {:?} {:?}", n.when, n.operation));
        if n.when == Some(When::Post) {
            let st = self.state(cfg, ctx)?;
            if st.is_some() {
                self.publish(cfg, st.as_ref(), ctx);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::drbd::{parse_events2, Peer};

    fn fixture(name: &str) -> State {
        let t = std::fs::read_to_string(format!(
            "{}/tests/fixtures/drbdsetup_events2/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
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
        use crate::ocf::env::OcfEnv;
        let env = |pairs: &[(&str, &str)]| {
            OcfEnv::from_map(
                pairs
                    .iter()
                    .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
                    .collect(),
            )
        };
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
