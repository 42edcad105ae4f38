//! The one binary. It picks its face from how it was called (an OCF agent name, the
//! `ocf`/`agent` entry of the shims, or the operator CLI), turns a panic into exit 1 with
//! an exit reason, and is the only place that exits.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    // As bytes: a value that is not UTF-8 must reach the agent (as an error naming the
    // parameter), never vanish so that a default is used instead.
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let prefix = vars
        .iter()
        .find(|(k, _)| k == "OCF_EXIT_REASON_PREFIX")
        .and_then(|(_, v)| v.to_str())
        .map(|p| pgstack::ocf::log::one_line(p).into_owned())
        .unwrap_or_else(|| "ocf-exit-reason:".into());
    ExitCode::from(pgstack::cli::guarded(&prefix, move || {
        pgstack::cli::entry(args, vars)
    }))
}
