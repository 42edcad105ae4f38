//! The one binary. It picks its face from how it was called (an OCF agent name, the
//! `ocf`/`agent` entry of the shims, or the operator CLI), turns a panic into exit 1 with
//! an exit reason, and is the only place that exits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let prefix = vars
        .get("OCF_EXIT_REASON_PREFIX")
        .cloned()
        .unwrap_or_else(|| "ocf-exit-reason:".into());
    ExitCode::from(pgstack::cli::guarded(&prefix, move || {
        pgstack::cli::entry(args, vars)
    }))
}
