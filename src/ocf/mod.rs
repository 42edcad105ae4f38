//! The OCF resource agent protocol: actions, exit codes, the calling environment,
//! parameter tables and meta-data, deadlines, logging, clone notifications, promotion
//! scores and the dispatcher that ties them to an [`agent::Agent`].

pub mod action;
pub mod agent;
pub mod code;
pub mod deadline;
pub mod dispatch;
pub mod env;
pub mod error;
pub mod log;
pub mod metadata;
pub mod notify;
pub mod params;
pub mod promotion;

pub use action::Action;
pub use agent::{Agent, Ctx, FromParams, Status};
pub use code::OcfCode;
pub use error::{ExitCode, OcfError};
