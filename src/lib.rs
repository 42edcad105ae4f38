//! pgstack: PostgreSQL high availability under Pacemaker/Corosync.
//!
//! Data flows one way: environment -> typed parameters -> agent -> `sys` -> typed
//! outcome -> exit code (applied only in `main`).

//!
//! Unsafe code lives only in [`sys`], each block with a `SAFETY:` comment (clippy's
//! `undocumented_unsafe_blocks` is denied in `Cargo.toml`); every other module forbids it.

#![forbid(unsafe_op_in_unsafe_fn)]

#[forbid(unsafe_code)]
pub mod agents;
#[forbid(unsafe_code)]
pub mod check;
#[forbid(unsafe_code)]
pub mod cib;
#[forbid(unsafe_code)]
pub mod cli;
#[forbid(unsafe_code)]
pub mod lab;
#[forbid(unsafe_code)]
pub mod ocf;
pub mod sys;
#[forbid(unsafe_code)]
pub mod wait;
