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

/// The text of `tests/fixtures/<rel>`, a captured output for unit tests; panics naming
/// the file when it cannot be read.
#[cfg(test)]
pub(crate) fn fixture(rel: &str) -> String {
    let p = format!("{}/tests/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}
