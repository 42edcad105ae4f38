//! The contract every agent implements. The required actions have no default; optional
//! ones answer "unimplemented" unless the agent overrides them.

use super::action::Action;
use super::deadline::Deadline;
use super::env::OcfEnv;
use super::error::{ExitCode, OcfError};
use super::log::Logger;
use super::metadata::AgentInfo;
use super::params::Params;

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

impl Ctx<'_> {
    pub fn is_probe(&self) -> bool {
        self.env.is_probe(self.action)
    }
}

pub trait Agent {
    /// The validated configuration, built from the parameters.
    type Config;
    type Error: std::error::Error + ExitCode + From<OcfError>;

    fn info(&self) -> &'static AgentInfo;

    /// Parses the parameters into a configuration: syntax only, no look at the system.
    fn configure(&self, params: &Params, ctx: &Ctx) -> Result<Self::Config, Self::Error>;
    /// Checks that the configuration can work on this node (binaries, devices, links).
    fn validate(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<(), Self::Error>;
    fn start(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<(), Self::Error>;
    fn stop(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<(), Self::Error>;
    fn monitor(&self, cfg: &Self::Config, ctx: &Ctx) -> Result<Status, Self::Error>;

    fn promote(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), Self::Error> {
        Err(unimplemented(Action::Promote))
    }
    fn demote(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), Self::Error> {
        Err(unimplemented(Action::Demote))
    }
    fn notify(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), Self::Error> {
        Err(unimplemented(Action::Notify))
    }
    fn reload(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), Self::Error> {
        Err(unimplemented(Action::Reload))
    }
    fn reload_agent(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), Self::Error> {
        Err(unimplemented(Action::ReloadAgent))
    }
    fn migrate_to(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), Self::Error> {
        Err(unimplemented(Action::MigrateTo))
    }
    fn migrate_from(&self, _cfg: &Self::Config, _ctx: &Ctx) -> Result<(), Self::Error> {
        Err(unimplemented(Action::MigrateFrom))
    }

    /// Stop when the parameters do not parse. Nothing this configuration describes can
    /// have been started by us, so the default reports success; agents that can still
    /// clean up (unmount what is mounted, say) override it.
    fn stop_unconfigured(&self, _err: &Self::Error, _ctx: &Ctx) -> Result<(), Self::Error> {
        Ok(())
    }
}

fn unimplemented<E: From<OcfError>>(a: Action) -> E {
    OcfError::Unimplemented(format!("action {a} is not implemented by this agent")).into()
}
