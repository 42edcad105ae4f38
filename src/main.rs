//! The one binary. It picks its face from how it was called (an OCF agent name, the
//! `ocf`/`agent` entry of the shims, or the operator CLI), turns a panic into exit 1 with
//! an exit reason, and is the only place that exits.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Mutex;

static PANIC: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    std::panic::set_hook(Box::new(|info| {
        let msg = match info.payload().downcast_ref::<&str>() {
            Some(s) => s.to_string(),
            None => info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "panic".into()),
        };
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut slot) = PANIC.lock() {
            *slot = Some(format!("{msg}{at}"));
        }
    }));
    let prefix = vars
        .get("OCF_EXIT_REASON_PREFIX")
        .cloned()
        .unwrap_or_else(|| "ocf-exit-reason:".into());
    match std::panic::catch_unwind(move || pgstack::cli::entry(args, vars)) {
        Ok(code) => ExitCode::from(code),
        Err(_) => {
            let msg = PANIC
                .lock()
                .ok()
                .and_then(|s| s.clone())
                .unwrap_or_default();
            eprintln!("{prefix}internal error: {msg}");
            ExitCode::from(1)
        }
    }
}
