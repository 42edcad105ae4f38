//! The actions: state from `drbdsetup events2`, changes through `drbdadm`, scores from
//! data currency.

use std::time::{Duration, Instant};

use super::config::DrbdConfig;
use super::INFO;
use crate::ocf::metadata::AgentInfo;
use crate::ocf::notify::When;
use crate::ocf::promotion::{clear_score, set_score};
use crate::ocf::{Agent, Ctx, OcfError, Status};
use crate::sys::cluster::Cluster;
use crate::sys::drbd::{check_resource_name, AdmError, Disk, Drbd, Refusal, Role, State, Version};
use crate::sys::SysError;
use crate::wait::{poll_until, Backoff};

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
        self.drbd
            .state(&cfg.res, ctx.deadline.instant())
            .map_err(installed_or_sys)
    }

    fn publish(&self, cfg: &DrbdConfig, st: Option<&State>, ctx: &Ctx) {
        match st.map(|s| score(s, cfg.tiers)).unwrap_or(0) {
            0 => clear_score(&self.cluster, ctx),
            s => set_score(&self.cluster, ctx, s),
        };
    }

    /// `drbdadm <args> <res>`: `Err(Ok(failure))` when drbdadm answered with a failure,
    /// `Err(Err(_))` when it could not be asked.
    fn adm(
        &self,
        cfg: &DrbdConfig,
        args: &[&str],
        ctx: &Ctx,
    ) -> Result<(), Result<AdmError, OcfError>> {
        match self
            .drbd
            .adm(&cfg.conf, args, &cfg.res, ctx.deadline.instant())
        {
            Ok(_) => Ok(()),
            Err(SysError::Drbd(e)) => Err(Ok(e)),
            Err(e) => Err(Err(installed_or_sys(e))),
        }
    }

    fn adm_ok(&self, cfg: &DrbdConfig, args: &[&str], ctx: &Ctx) -> Result<(), OcfError> {
        self.adm(cfg, args, ctx).map_err(|e| match e {
            Ok(failed) => OcfError::generic(failed.to_string()),
            Err(e) => e,
        })
    }

    /// Runs `drbdadm <args>` until it succeeds, `stop_early` says give up, or shortly
    /// before the deadline (a last drbdadm run needs time to answer).
    fn retry(
        &self,
        cfg: &DrbdConfig,
        args: &[&str],
        ctx: &Ctx,
        stop_early: impl Fn(&AdmError) -> Option<String>,
    ) -> Result<(), OcfError> {
        let mut last: Option<AdmError> = None;
        let done = poll_until(before_end(ctx, 1200), Backoff::every(1000), || {
            match self.adm(cfg, args, ctx) {
                Ok(()) => Ok(Some(())),
                Err(Ok(failed)) => {
                    if let Some(why) = stop_early(&failed) {
                        return Err(OcfError::Generic(why));
                    }
                    ctx.log.info(&format!("{failed}; retrying"));
                    last = Some(failed);
                    Ok(None)
                }
                Err(Err(e)) => Err(e),
            }
        })?;
        match (done, last) {
            (Some(()), _) => Ok(()),
            (None, Some(failed)) => Err(OcfError::Generic(format!(
                "{} kept failing until the operation deadline: {}",
                failed.command, failed.detail
            ))),
            (None, None) => Err(OcfError::Deadline {
                what: format!("drbdadm {} {}", args.join(" "), cfg.res),
                ms: ctx.deadline.elapsed().as_millis(),
            }),
        }
    }

    /// Reads the state until `done` holds for it, or shortly before the deadline.
    fn wait_until(
        &self,
        cfg: &DrbdConfig,
        ctx: &Ctx,
        what: &str,
        done: impl Fn(Option<&State>) -> bool,
    ) -> Result<Option<State>, OcfError> {
        poll_until(before_end(ctx, 300), Backoff::millis(50, 200), || {
            let st = self.state(cfg, ctx)?;
            Ok::<_, OcfError>(done(st.as_ref()).then_some(st))
        })?
        .ok_or_else(|| OcfError::Deadline {
            what: format!("{} {what}", cfg.res),
            ms: ctx.deadline.elapsed().as_millis(),
        })
    }
}

/// `ms` before the end of the action's deadline.
fn before_end(ctx: &Ctx, ms: u64) -> Instant {
    let end = ctx.deadline.instant();
    end.checked_sub(Duration::from_millis(ms)).unwrap_or(end)
}

/// A missing program or module is "not installed here" (5); other OS failures are 1.
fn installed_or_sys(e: SysError) -> OcfError {
    match e {
        SysError::NotInstalled { .. } | SysError::ModuleMissing { .. } => {
            OcfError::installed(e.to_string())
        }
        e => OcfError::Sys(e),
    }
}

fn version_str(v: Version) -> String {
    format!("{}.{}.{}", v.0, v.1, v.2)
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
        let v = self
            .drbd
            .module(ctx.deadline.instant())
            .map_err(installed_or_sys)?
            .version;
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
        match self
            .drbd
            .check_defined(&cfg.conf, &cfg.res, ctx.deadline.instant())
        {
            Err(e @ SysError::NotConfigured { .. }) => Err(OcfError::configured(e.to_string())),
            other => other.map_err(installed_or_sys),
        }
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
        // A name that is not a resource name cannot name a running resource.
        let Some(res) = ctx
            .env
            .raw_param("drbd_resource")
            .map(str::trim)
            .filter(|r| check_resource_name(r).is_ok())
        else {
            return Ok(());
        };
        let down = |what: &str| -> Result<bool, OcfError> {
            let st = self.drbd.state(res, ctx.deadline.instant()).map_err(|e| {
                OcfError::generic(format!("{what}: reading the state of {res}: {e}"))
            })?;
            Ok(st.is_none())
        };
        if down("stop with an invalid configuration")? {
            clear_score(&self.cluster, ctx);
            return Ok(());
        }
        ctx.log.warn(&format!(
            "stop with an invalid configuration ({err}): taking {res} down anyway"
        ));
        // The configured file if its name is usable, else the declared default.
        let declared = INFO
            .params
            .iter()
            .find(|p| p.name == "drbdconf")
            .and_then(|p| p.default)
            .unwrap_or_default();
        let conf = ctx
            .env
            .raw_param("drbdconf")
            .filter(|c| c.starts_with('/'))
            .unwrap_or(declared);
        let conf = std::path::Path::new(conf);
        let mut failures = Vec::new();
        for step in ["secondary", "down"] {
            if let Err(e) = self.drbd.adm(conf, &[step], res, ctx.deadline.instant()) {
                failures.push(e.to_string());
            }
        }
        // Success only when the resource is really gone, whatever drbdadm said.
        if !down("after drbdadm down")? {
            let said = if failures.is_empty() {
                "drbdadm reported success".to_string()
            } else {
                failures.join("; ")
            };
            return Err(OcfError::generic(format!(
                "{res} is still up after drbdadm down ({said}); the configuration is invalid: {err}"
            )));
        }
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
        self.retry(cfg, &["primary"], ctx, |failed| {
            let why = match failed.refusal {
                Refusal::PeerPrimary if fail_early => "a peer is Primary",
                Refusal::NoQuorum => "no quorum",
                Refusal::NoUpToDateData => "no access to UpToDate data",
                _ => return None,
            };
            Some(format!("{}: {why}: {}", cfg.res, failed.detail))
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
    use super::super::fake::FakeDrbd;
    use super::*;
    use crate::ocf::dispatch::run;
    use crate::ocf::env::OcfEnv;
    use crate::ocf::log::Logger;
    use crate::sys::drbd::Module;
    use crate::sys::fake::FakeCluster;

    fn act(
        a: &DrbdAgent<FakeDrbd, FakeCluster>,
        action: &str,
        extra: &[(&str, &str)],
    ) -> (u8, String) {
        let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let mut vars: Vec<(String, String)> = vec![
            ("OCF_RESKEY_drbd_resource".into(), "r0".into()),
            ("OCF_RESKEY_drbdconf".into(), conf.into()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), "5000".into()),
        ];
        for (k, v) in extra {
            vars.retain(|(n, _)| n != k);
            vars.push((k.to_string(), v.to_string()));
        }
        let env = OcfEnv::from_map(vars.into_iter().collect());
        let o = run(a, action, &env, &Logger::silent());
        (o.code.as_u8(), o.exit_reason.unwrap_or_default())
    }

    fn agent(drbd: FakeDrbd) -> DrbdAgent<FakeDrbd, FakeCluster> {
        DrbdAgent::new(drbd, FakeCluster::default())
    }

    const PROBE: (&str, &str) = ("OCF_RESKEY_CRM_meta_interval", "0");

    #[test]
    fn without_the_module_nothing_runs_and_nothing_starts() {
        let a = agent(FakeDrbd::default());
        assert_eq!(act(&a, "monitor", &[PROBE]).0, 7);
        assert_eq!(act(&a, "stop", &[]).0, 0);
        let (code, why) = act(&a, "start", &[]);
        assert_eq!(code, 5, "{why}");
        assert!(why.contains("drbd kernel module"), "{why}");
        assert_eq!(act(&a, "validate-all", &[]).0, 5);
        assert!(a.drbd.runs().is_empty(), "{:?}", a.drbd.runs());
    }

    #[test]
    fn an_unconfigured_stop_succeeds_only_once_the_resource_is_down() {
        let bogus = ("OCF_RESKEY_adjust_master_score", "bogus");
        let d = FakeDrbd::with_fixture("84-connected-primary.txt");
        d.answers
            .borrow_mut()
            .extend([Err(Refusal::HeldOpen), Err(Refusal::HeldOpen)]);
        let a = agent(d);
        let (code, why) = act(&a, "stop", &[bogus]);
        assert_eq!(code, 1);
        assert!(
            why.contains("still up") && why.contains("adjust_master_score"),
            "{why}"
        );
        assert_eq!(a.drbd.runs(), ["secondary r0", "down r0"]);
        assert_eq!(act(&a, "stop", &[bogus]).0, 0);
        assert!(a.drbd.state.borrow().is_none());
        // `all` names nothing that runs: nothing is run.
        let a = agent(FakeDrbd::with_fixture("84-connected-primary.txt"));
        assert_eq!(act(&a, "stop", &[("OCF_RESKEY_drbd_resource", "all")]).0, 0);
        assert!(a.drbd.runs().is_empty());
    }

    #[test]
    fn promote_stops_early_on_typed_refusals_and_retries_others() {
        let mut st = FakeDrbd::with_fixture("84-primary-peer-down.txt");
        st.module = Some(Module {
            version: (8, 4, 11),
            loaded: true,
        });
        st.state.borrow_mut().as_mut().unwrap().role = Role::Secondary;
        st.answers.borrow_mut().push_back(Err(Refusal::PeerPrimary));
        let a = agent(st);
        let (code, why) = act(&a, "promote", &[]);
        assert_eq!(code, 1);
        assert!(why.contains("a peer is Primary"), "{why}");
        assert_eq!(a.drbd.runs(), ["primary r0"]);
        a.drbd.answers.borrow_mut().push_back(Err(Refusal::Other));
        assert_eq!(act(&a, "promote", &[]).0, 0);
        assert_eq!(a.drbd.runs(), ["primary r0", "primary r0", "primary r0"]);
    }
}
