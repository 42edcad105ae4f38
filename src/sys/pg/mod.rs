//! PostgreSQL seen from the OS: `postmaster.pid`, `pg_controldata`, the server's processes
//! in `/proc`, starting and signalling the postmaster as the system user, and the
//! native-protocol probe used by the monitor. Nothing here knows OCF codes.

pub mod client;
pub mod control;
pub mod pidfile;
pub mod process;
pub mod server;

pub use control::{ClusterState, ControlData};
pub use pidfile::PostmasterPid;
