//! The OS boundary. Every external command, syscall, netlink message and raw socket of
//! the program goes through this module; it returns typed results and knows nothing of OCF.
//!
//! Agents reach it through traits ([`net::Net`], [`cluster::Cluster`]) with a real
//! implementation here and recording fakes in `fake`, injected by whoever builds the agent.

pub mod arp;
pub mod blockio;
pub mod cib;
pub mod cluster;
pub mod drbd;
pub mod error;
pub mod fake;
pub mod lvm;
pub mod mount;
pub mod net;
pub mod netlink;
pub mod pacemaker;
pub mod pg;
pub mod proc;
pub mod procwalk;
pub mod runner;

pub use error::{SysError, SysResult};
