//! The OS boundary. Every external command, syscall, netlink message and raw socket of
//! the program goes through this module; it returns typed results and knows nothing of OCF.
//!
//! Agents reach it through traits ([`net::Net`], [`cluster::Cluster`], [`mount::Mounts`])
//! with a real implementation here and recording fakes in `fake`, injected by whoever
//! builds the agent. The fakes are compiled for unit tests and, through the
//! `test-support` feature, for the integration tests; never into the shipped binary.

pub mod arp;
pub mod attrd;
pub mod blockio;
pub mod cib;
pub mod cluster;
pub mod drbd;
pub mod error;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod lock;
pub mod lvm;
pub mod mount;
pub mod net;
pub mod netlink;
pub mod pacemaker;
pub mod pg;
pub mod proc;
pub mod procwalk;
pub mod runner;
pub mod safefs;

pub use error::{SysError, SysResult};

/// The effective uid of this process.
pub fn effective_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}
