//! From an action name and an environment to an exit code, for any agent. This is the
//! only place where agent results become OCF codes.

use std::time::Duration;

use super::action::Action;
use super::agent::{Agent, Ctx, Status};
use super::code::OcfCode;
use super::env::OcfEnv;
use super::error::{ExitCode, OcfError};
use super::log::{one_line, Logger};
use super::params::Params;

/// What the process prints and how it exits; applied by `main`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: OcfCode,
    pub stdout: String,
    pub exit_reason: Option<String>,
}

impl Outcome {
    pub fn ok() -> Outcome {
        Outcome {
            code: OcfCode::Success,
            stdout: String::new(),
            exit_reason: None,
        }
    }
    pub fn code(code: OcfCode) -> Outcome {
        Outcome {
            code,
            stdout: String::new(),
            exit_reason: None,
        }
    }
    pub fn fail(code: OcfCode, reason: impl Into<String>) -> Outcome {
        Outcome {
            code,
            stdout: String::new(),
            exit_reason: Some(reason.into()),
        }
    }
    /// The exit-reason line as Pacemaker reads it from stderr: one line, whatever the
    /// reason quotes (see [`one_line`]).
    pub fn exit_reason_line(&self, env: &OcfEnv) -> Option<String> {
        let prefix = env
            .var("OCF_EXIT_REASON_PREFIX")
            .unwrap_or("ocf-exit-reason:");
        self.exit_reason
            .as_ref()
            .map(|r| format!("{}{}", one_line(prefix), one_line(r)))
    }
}

pub fn run<A: Agent>(agent: &A, action_name: &str, env: &OcfEnv, log: &Logger) -> Outcome {
    let info = agent.info();
    let Some(action) = Action::parse(action_name) else {
        return Outcome::fail(
            OcfCode::ErrUnimplemented,
            format!(
                "unknown action {action_name:?}; {}",
                info.usage().trim_end()
            ),
        );
    };
    match action {
        Action::MetaData => {
            return Outcome {
                stdout: info.to_xml(),
                ..Outcome::ok()
            }
        }
        Action::Usage => {
            return Outcome {
                stdout: info.usage(),
                ..Outcome::ok()
            }
        }
        _ => {}
    }
    log.trace_action(action);
    if info.needs_root && action != Action::ValidateAll {
        if let Some(e) = without_root(info.name, action, env) {
            return failure(&e, action, log);
        }
    }
    let timeout = env
        .meta
        .timeout
        .unwrap_or_else(|| Duration::from_secs(info.default_timeout(action) as u64));
    let ctx = Ctx::new(env, action, timeout, log);
    log.debug(&format!(
        "{action} begins (timeout {} ms)",
        timeout.as_millis()
    ));

    let cfg = Params::parse(info.params, env)
        .map_err(OcfError::from)
        .and_then(|p| {
            if matches!(action, Action::Start | Action::ValidateAll) && !p.unknown.is_empty() {
                log.warn(&format!(
                    "ignoring parameters this agent does not know: {}",
                    p.unknown.join(", ")
                ));
            }
            agent.configure(&p, &ctx)
        });
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => return unconfigured(agent, action, &ctx, e),
    };

    let result: Result<Status, OcfError> = match action {
        Action::Start => agent
            .validate(&cfg, &ctx)
            .and_then(|()| agent.start(&cfg, &ctx))
            .map(|()| Status::Running),
        Action::Stop => agent.stop(&cfg, &ctx).map(|()| Status::Running),
        Action::Monitor => agent.monitor(&cfg, &ctx),
        Action::ValidateAll => match without_root(info.name, action, env) {
            Some(e) if info.needs_root => Err(e),
            _ => agent.validate(&cfg, &ctx).map(|()| Status::Running),
        },
        Action::Promote => agent.promote(&cfg, &ctx).map(|()| Status::Running),
        Action::Demote => agent.demote(&cfg, &ctx).map(|()| Status::Running),
        Action::Notify => agent.notify(&cfg, &ctx).map(|()| Status::Running),
        Action::Reload => agent
            .validate(&cfg, &ctx)
            .and_then(|()| agent.reload(&cfg, &ctx))
            .map(|()| Status::Running),
        Action::ReloadAgent => agent.reload_agent(&cfg, &ctx).map(|()| Status::Running),
        Action::MigrateTo => agent.migrate_to(&cfg, &ctx).map(|()| Status::Running),
        Action::MigrateFrom => agent.migrate_from(&cfg, &ctx).map(|()| Status::Running),
        Action::MetaData | Action::Usage => unreachable!("answered above"),
    };
    let out = status_outcome(result, action, log);
    log.debug(&format!(
        "{action} ends: {} after {} ms",
        out.code,
        ctx.deadline.elapsed().as_millis()
    ));
    out
}

/// 4 when the action runs without root: the agent acts on (or reads) what only root
/// may, and an answer found without it ("not running", "stopped") could be false. For
/// validate-all the parameters are checked first, so a configuration error is still
/// reported (6) by anyone; the node checks need root.
fn without_root(agent: &str, action: Action, env: &OcfEnv) -> Option<OcfError> {
    let uid = env.euid.filter(|u| *u != 0)?;
    let what = if action == Action::ValidateAll {
        "the parameters are valid, but checking this node"
    } else {
        "this action"
    };
    Some(OcfError::perm(format!(
        "{agent} {action}: {what} needs root (running as uid {uid}); Pacemaker runs agents as root"
    )))
}

/// The exit code (and reason) of an action's result.
fn status_outcome(result: Result<Status, OcfError>, action: Action, log: &Logger) -> Outcome {
    match result {
        Ok(Status::Running) => Outcome::ok(),
        Ok(Status::Promoted) => Outcome::code(OcfCode::RunningPromoted),
        Ok(Status::NotRunning(note)) => Outcome {
            exit_reason: note,
            ..Outcome::code(OcfCode::NotRunning)
        },
        Ok(Status::Degraded(r)) => Outcome::fail(OcfCode::Degraded, r),
        Ok(Status::DegradedPromoted(r)) => Outcome::fail(OcfCode::DegradedPromoted, r),
        Err(e) => failure(&e, action, log),
    }
}

fn failure(e: &OcfError, action: Action, log: &Logger) -> Outcome {
    let code = e.code();
    let reason = e.to_string();
    if code != OcfCode::ErrUnimplemented {
        log.error(&format!("{action} failed: {reason}"));
    }
    Outcome::fail(code, reason)
}

/// The parameters do not parse. Probes report "not running" (nothing described by an
/// invalid configuration can be running), stop asks the agent (default: success), every
/// other action fails with the configuration error.
fn unconfigured<A: Agent>(agent: &A, action: Action, ctx: &Ctx, e: OcfError) -> Outcome {
    match action {
        // The agent says what it did (the default: nothing to stop).
        Action::Stop => match agent.stop_unconfigured(&e, ctx) {
            Ok(()) => Outcome::ok(),
            Err(e2) => failure(&e2, action, ctx.log),
        },
        Action::Monitor if ctx.is_probe() => {
            status_outcome(agent.probe_unconfigured(&e, ctx), action, ctx.log)
        }
        _ => failure(&e, action, ctx.log),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::ocf::metadata::{ActionSpec, AgentInfo};
    use crate::ocf::params::{ParamError, ParamSpec};
    use crate::ocf::FromParams;

    static PARAMS: &[ParamSpec] = &[ParamSpec::string("dir", "Dir", "A directory.").required()];
    static INFO: AgentInfo = AgentInfo {
        name: "t",
        shortdesc: "test",
        longdesc: "test",
        params: PARAMS,
        actions: &[
            ActionSpec::new(Action::Start, 20),
            ActionSpec::new(Action::Stop, 20),
            ActionSpec::new(Action::Monitor, 20),
            ActionSpec::new(Action::ValidateAll, 20),
            ActionSpec::new(Action::MetaData, 5),
        ],
        needs_root: true,
    };

    struct Cfg;
    impl FromParams for Cfg {
        fn from_params(p: &Params) -> Result<Self, ParamError> {
            let _ = p.str("dir");
            Ok(Cfg)
        }
    }

    /// Records which actions reached it.
    #[derive(Default)]
    struct Rec(RefCell<Vec<&'static str>>);
    impl Agent for Rec {
        type Config = Cfg;
        fn info(&self) -> &'static AgentInfo {
            &INFO
        }
        fn validate(&self, _: &Cfg, _: &Ctx) -> Result<(), OcfError> {
            self.0.borrow_mut().push("validate");
            Ok(())
        }
        fn start(&self, _: &Cfg, _: &Ctx) -> Result<(), OcfError> {
            self.0.borrow_mut().push("start");
            Ok(())
        }
        fn stop(&self, _: &Cfg, _: &Ctx) -> Result<(), OcfError> {
            self.0.borrow_mut().push("stop");
            Ok(())
        }
        fn monitor(&self, _: &Cfg, _: &Ctx) -> Result<Status, OcfError> {
            self.0.borrow_mut().push("monitor");
            Ok(Status::NotRunning(None))
        }
        fn stop_unconfigured(&self, _: &OcfError, _: &Ctx) -> Result<(), OcfError> {
            self.0.borrow_mut().push("stop_unconfigured");
            Ok(())
        }
    }

    /// The exit code of `action`, logging nothing.
    fn code(a: &Rec, action: &str, e: &OcfEnv) -> OcfCode {
        run(a, action, e, &Logger::silent()).code
    }

    fn env(pairs: &[(&str, &str)], euid: Option<u32>) -> OcfEnv {
        let mut e = OcfEnv::from_pairs(pairs);
        e.euid = euid;
        e
    }

    #[test]
    fn without_root_every_acting_action_is_4_and_reaches_nothing() {
        let e = env(&[("OCF_RESKEY_dir", "/srv")], Some(65534));
        for action in ["start", "stop", "monitor", "promote", "demote", "notify"] {
            let a = Rec::default();
            let out = run(&a, action, &e, &Logger::silent());
            assert_eq!(out.code, OcfCode::ErrPerm, "{action}");
            let why = out.exit_reason.unwrap();
            assert!(why.contains("needs root") && why.contains("65534"), "{why}");
            assert!(a.0.borrow().is_empty(), "{action} reached the agent");
        }
        // meta-data and usage need nothing.
        let a = Rec::default();
        assert_eq!(code(&a, "meta-data", &e), OcfCode::Success);
        assert_eq!(code(&a, "usage", &e), OcfCode::Success);
        // An invalid configuration does not turn a non-root stop into a success.
        let a = Rec::default();
        let out = run(&a, "stop", &env(&[], Some(1000)), &Logger::silent());
        assert_eq!(out.code, OcfCode::ErrPerm);
        assert!(a.0.borrow().is_empty());
    }

    #[test]
    fn without_root_validate_all_checks_the_parameters_first() {
        let a = Rec::default();
        let out = run(&a, "validate-all", &env(&[], Some(1000)), &Logger::silent());
        assert_eq!(out.code, OcfCode::ErrConfigured);
        let out = run(
            &a,
            "validate-all",
            &env(&[("OCF_RESKEY_dir", "/srv")], Some(1000)),
            &Logger::silent(),
        );
        assert_eq!(out.code, OcfCode::ErrPerm);
        assert!(a.0.borrow().is_empty());
        // As root (or around fakes) the agent is asked.
        for euid in [Some(0), None] {
            let a = Rec::default();
            let e = env(&[("OCF_RESKEY_dir", "/srv")], euid);
            assert_eq!(code(&a, "validate-all", &e), OcfCode::Success);
            assert_eq!(code(&a, "start", &e), OcfCode::Success);
            assert_eq!(*a.0.borrow(), ["validate", "validate", "start"]);
        }
    }

    #[test]
    fn pacemaker_variables_draw_no_warning() {
        let a = Rec::default();
        let log = Logger::silent();
        let e = env(
            &[
                ("OCF_RESKEY_dir", "/srv"),
                ("OCF_RESKEY_crm_feature_set", "3.16.1"),
                ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ],
            None,
        );
        assert_eq!(run(&a, "start", &e, &log).code, OcfCode::Success);
        assert_eq!(run(&a, "validate-all", &e, &log).code, OcfCode::Success);
        let warned: Vec<_> = log
            .messages()
            .into_iter()
            .filter(|m| m.contains("ignoring"))
            .collect();
        assert!(warned.is_empty(), "{warned:?}");
    }

    #[test]
    fn a_value_that_is_not_utf8_is_6_for_actions_7_for_probes_and_asks_stop() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let e = OcfEnv::from_os([(
            OsString::from("OCF_RESKEY_dir"),
            OsString::from_vec(b"/srv/\xff".to_vec()),
        )]);
        for action in ["start", "validate-all", "stop", "monitor"] {
            let a = Rec::default();
            let out = run(&a, action, &e, &Logger::silent());
            let expect = match action {
                "stop" => OcfCode::Success,
                "monitor" => OcfCode::NotRunning,
                _ => OcfCode::ErrConfigured,
            };
            assert_eq!(out.code, expect, "{action}");
            if expect == OcfCode::ErrConfigured {
                let why = out.exit_reason.unwrap();
                assert!(
                    why.starts_with("parameter dir=") && why.contains("UTF-8"),
                    "{why}"
                );
            }
            let asked: &[&str] = if action == "stop" {
                &["stop_unconfigured"]
            } else {
                &[]
            };
            assert_eq!(*a.0.borrow(), asked, "{action}");
        }
    }

    #[test]
    fn the_exit_reason_is_one_line() {
        let out = Outcome::fail(OcfCode::ErrGeneric, "a\nocf-exit-reason:b\r");
        let l = out.exit_reason_line(&env(&[], None)).unwrap();
        assert_eq!(l, "ocf-exit-reason:a\\nocf-exit-reason:b\\r");
    }
}
