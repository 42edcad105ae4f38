//! The contract every agent implements. The required actions have no default; optional
//! ones answer "unimplemented" unless the agent overrides them.

use std::time::Duration;

use super::action::Action;
use super::deadline::Deadline;
use super::env::OcfEnv;
use super::error::OcfError;
use super::log::Logger;
use super::metadata::AgentInfo;
use super::params::{ParamError, Params};

/// What a monitor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running,
    Promoted,
    /// Cleanly stopped; the note (a crashed instance, say) becomes the exit reason.
    NotRunning(Option<String>),
    Degraded(String),
    DegradedPromoted(String),
}

/// Everything an action may consult besides its configuration.
pub struct Ctx<'a> {
    pub env: &'a OcfEnv,
    pub action: Action,
    pub deadline: Deadline,
    pub log: &'a Logger,
}

impl<'a> Ctx<'a> {
    /// The context of `action`, its deadline `timeout` from now (less the margin).
    pub fn new(env: &'a OcfEnv, action: Action, timeout: Duration, log: &'a Logger) -> Ctx<'a> {
        Ctx {
            env,
            action,
            deadline: Deadline::from_timeout(timeout),
            log,
        }
    }

    pub fn is_probe(&self) -> bool {
        self.env.is_probe(self.action)
    }
}

/// A configuration built from the parameters alone: syntax only, no look at the system.
pub trait FromParams: Sized {
    fn from_params(p: &Params) -> Result<Self, ParamError>;
}

/// Every action returns [`OcfError`], the one error that names its exit code.
pub trait Agent {
    /// The validated configuration, built from the parameters.
    type Config: FromParams;

    fn info(&self) -> &'static AgentInfo;

    /// Parses the parameters into a configuration; agents that need the environment
    /// (clone meta, the node name) override it.
    fn configure(&self, params: &Params, _ctx: &Ctx) -> Result<Self::Config, OcfError> {
        Ok(Self::Config::from_params(params)?)
    }
    /// Checks that the configuration can work on this node (binaries, devices, links).
    fn validate(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<(), OcfError>;
    fn start(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<(), OcfError>;
    fn stop(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<(), OcfError>;
    fn monitor(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<Status, OcfError>;

    fn promote(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), OcfError> {
        Err(unimplemented(Action::Promote))
    }
    fn demote(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), OcfError> {
        Err(unimplemented(Action::Demote))
    }
    fn notify(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), OcfError> {
        Err(unimplemented(Action::Notify))
    }
    fn reload(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), OcfError> {
        Err(unimplemented(Action::Reload))
    }
    fn reload_agent(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), OcfError> {
        Err(unimplemented(Action::ReloadAgent))
    }
    fn migrate_to(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), OcfError> {
        Err(unimplemented(Action::MigrateTo))
    }
    fn migrate_from(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), OcfError> {
        Err(unimplemented(Action::MigrateFrom))
    }

    /// A probe when the parameters do not parse. The default: nothing an invalid
    /// configuration describes can be running (7). Agents that can still find their
    /// resource from the parameters that identify it override it, so a running resource
    /// is never reported stopped because of an unrelated value.
    fn probe_unconfigured(&self, err: &OcfError, ctx: &Ctx) -> Result<Status, OcfError> {
        ctx.log
            .warn(&format!("probe with an invalid configuration: {err}"));
        Ok(Status::NotRunning(None))
    }

    /// Stop when the parameters do not parse. Nothing this configuration describes can
    /// have been started by us, so the default reports success; agents that can still
    /// clean up (unmount what is mounted, say) override it.
    fn stop_unconfigured(&self, err: &OcfError, ctx: &Ctx) -> Result<(), OcfError> {
        ctx.log.warn(&format!(
            "stop with an invalid configuration ({err}): nothing to stop"
        ));
        Ok(())
    }
}

fn unimplemented(a: Action) -> OcfError {
    OcfError::Unimplemented(format!("action {a} is not implemented by this agent"))
}
