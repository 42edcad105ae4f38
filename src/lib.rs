//! pgstack: PostgreSQL high availability under Pacemaker/Corosync.
//!
//! Data flows one way: environment -> typed parameters -> agent -> `sys` -> typed
//! outcome -> exit code (applied only in `main`).

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod agents;
pub mod cib;
pub mod cli;
pub mod fence;
pub mod ocf;
pub mod sys;
pub mod wait;
