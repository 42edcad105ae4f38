//! From an action name and an environment to an exit code, for any agent. This is the
//! only place where agent results become OCF codes.

use std::time::Duration;

use super::action::Action;
use super::agent::{Agent, Ctx, Status};
use super::code::OcfCode;
use super::deadline::Deadline;
use super::env::OcfEnv;
use super::error::{ExitCode, OcfError};
use super::log::Logger;
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
    /// The exit-reason line as Pacemaker reads it from stderr.
    pub fn exit_reason_line(&self, env: &OcfEnv) -> Option<String> {
        let prefix = env
            .var("OCF_EXIT_REASON_PREFIX")
            .unwrap_or("ocf-exit-reason:");
        self.exit_reason
            .as_ref()
            .map(|r| format!("{prefix}{}", r.replace('\n', " ")))
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
    let timeout = env
        .meta
        .timeout
        .unwrap_or_else(|| Duration::from_secs(info.default_timeout(action) as u64));
    let ctx = Ctx {
        env,
        action,
        deadline: Deadline::from_timeout(timeout),
        log,
    };
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
        Action::ValidateAll => agent.validate(&cfg, &ctx).map(|()| Status::Running),
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
    let out = match result {
        Ok(Status::Running) => Outcome::ok(),
        Ok(Status::Promoted) => Outcome::code(OcfCode::RunningPromoted),
        Ok(Status::NotRunning(note)) => Outcome {
            exit_reason: note,
            ..Outcome::code(OcfCode::NotRunning)
        },
        Ok(Status::Degraded(r)) => Outcome::fail(OcfCode::Degraded, r),
        Ok(Status::DegradedPromoted(r)) => Outcome::fail(OcfCode::DegradedPromoted, r),
        Err(e) => failure(&e, action, log),
    };
    log.debug(&format!(
        "{action} ends: {} after {} ms",
        out.code,
        ctx.deadline.elapsed().as_millis()
    ));
    out
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
        Action::Stop => match agent.stop_unconfigured(&e, ctx) {
            Ok(()) => {
                ctx.log.warn(&format!(
                    "stop with an invalid configuration ({e}): nothing to stop"
                ));
                Outcome::ok()
            }
            Err(e2) => failure(&e2, action, ctx.log),
        },
        Action::Monitor if ctx.is_probe() => {
            ctx.log
                .warn(&format!("probe with an invalid configuration: {e}"));
            Outcome::code(OcfCode::NotRunning)
        }
        _ => failure(&e, action, ctx.log),
    }
}
