//! The LSB face `postgresql-ha` (an init script for Pacemaker's `lsb` class) over the
//! postgresql agent. Settings come from a shell-style defaults file
//! (`/etc/default/postgresql-ha`: PGDATA, PGPORT, ...), whose path the caller passes.
//!
//! Exit codes (LSB): start 0 also when running; stop 0 also when stopped; status 0
//! running, 3 stopped, 1 dead but `postmaster.pid` left, 4 unknown (no usable
//! configuration, or a server that does not answer). Other failures: 1, or the LSB
//! codes 2 (invalid argument), 3 (unimplemented), 4 (privilege), 5 (not installed),
//! 6 (not configured).

use std::collections::BTreeMap;
use std::path::Path;

use crate::ocf::dispatch::Outcome;
use crate::ocf::OcfCode;

pub const NAME: &str = "postgresql-ha";
pub const DEFAULTS: &str = "/etc/default/postgresql-ha";

/// Settings of the defaults file and the agent parameters they set.
pub static SETTINGS: &[(&str, &str)] = &[
    ("PGDATA", "pgdata"),
    ("DATADIR", "datadir"),
    ("PGBIN", "bindir"),
    ("PGUSER", "system_user"),
    ("PGPORT", "pgport"),
    ("PGSOCKETDIR", "socketdir"),
    ("PGHOST", "pghost"),
    ("PGOPTS", "start_opts"),
    ("PGCONFIG", "config"),
    ("PGLOG", "logfile"),
    ("PGDATABASE", "pgdb"),
    ("EXPECTED_MOUNT", "expected_mount"),
    ("STOP_ESCALATE", "stop_escalate"),
];

/// Parses `KEY=value` lines (optionally `export`ed) as a shell assignment would read
/// them: quotes removed, a trailing `# comment` dropped (see [`super::words`]). Nothing
/// is expanded or executed; lines that are not one plain assignment are ignored.
pub fn parse_defaults(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        if line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.is_empty()
            || k.starts_with(|c: char| c.is_ascii_digit())
            || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        if let Ok(v) = super::words::assignment_value(v) {
            m.insert(k.to_string(), v);
        }
    }
    m
}

/// The LSB status code for a monitor outcome.
pub fn status_code(out: &Outcome, pidfile_left: bool) -> u8 {
    match out.code {
        OcfCode::Success => 0,
        OcfCode::NotRunning if pidfile_left => 1,
        OcfCode::NotRunning => 3,
        _ => 4,
    }
}

/// The LSB code of any other action.
pub fn action_code(out: &Outcome) -> u8 {
    match out.code {
        OcfCode::Success => 0,
        OcfCode::ErrArgs => 2,
        OcfCode::ErrUnimplemented => 3,
        OcfCode::ErrPerm => 4,
        OcfCode::ErrInstalled => 5,
        OcfCode::ErrConfigured => 6,
        _ => 1,
    }
}

/// What the face prints and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsbResult {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

/// Runs one init-script action. `run_agent(action, vars)` runs the postgresql agent.
pub fn run(
    action: Option<&str>,
    defaults: &Path,
    base: &BTreeMap<String, String>,
    run_agent: &dyn Fn(&str, BTreeMap<String, String>) -> Outcome,
) -> LsbResult {
    let usage =
        format!("usage: {NAME} {{start|stop|status|restart|try-restart|reload|force-reload}}\n");
    let Some(action) = action else {
        return LsbResult {
            code: 2,
            stdout: String::new(),
            stderr: usage,
        };
    };
    const ACTIONS: &[&str] = &[
        "start",
        "stop",
        "status",
        "restart",
        "try-restart",
        "condrestart",
        "reload",
        "force-reload",
    ];
    if !ACTIONS.contains(&action) {
        return LsbResult {
            code: 2,
            stdout: String::new(),
            stderr: usage,
        };
    }
    let is_status = action == "status";
    let text = match std::fs::read_to_string(defaults) {
        Ok(t) => t,
        Err(e) => {
            let msg = format!("{NAME}: cannot read {}: {e}\n", defaults.display());
            let code = match action {
                "status" => 4,
                // Nothing configured can be running.
                "stop" => 0,
                _ => 6,
            };
            return LsbResult {
                code,
                stdout: String::new(),
                stderr: msg,
            };
        }
    };
    let settings = parse_defaults(&text);
    let mut vars = base.clone();
    vars.insert("OCF_RESOURCE_INSTANCE".into(), NAME.into());
    for (k, p) in SETTINGS {
        if let Some(v) = settings.get(*k) {
            vars.insert(format!("OCF_RESKEY_{p}"), v.clone());
        }
    }
    let pgdata = settings
        .get("DATADIR")
        .or_else(|| settings.get("PGDATA"))
        .cloned()
        .unwrap_or_default();
    let reason = |o: &Outcome| {
        o.exit_reason
            .as_ref()
            .map(|r| format!("{NAME}: {r}\n"))
            .unwrap_or_default()
    };
    let one = |a: &str| run_agent(a, vars.clone());
    let (code, out) = match action {
        "start" | "stop" | "reload" | "force-reload" => {
            let a = if action == "force-reload" {
                "reload"
            } else {
                action
            };
            let o = one(a);
            (action_code(&o), o)
        }
        "restart" => {
            let o = one("stop");
            if o.code != OcfCode::Success {
                (action_code(&o), o)
            } else {
                let o = one("start");
                (action_code(&o), o)
            }
        }
        "try-restart" | "condrestart" => {
            let s = one("monitor");
            if s.code != OcfCode::Success {
                (0, Outcome::ok())
            } else {
                let o = one("stop");
                let o = if o.code == OcfCode::Success {
                    one("start")
                } else {
                    o
                };
                (action_code(&o), o)
            }
        }
        "status" => {
            let o = one("monitor");
            let left = !pgdata.is_empty() && Path::new(&pgdata).join("postmaster.pid").exists();
            (status_code(&o, left), o)
        }
        _ => unreachable!("checked above"),
    };
    let word = match (is_status, code) {
        (true, 0) => "running",
        (true, 1) => "dead, but postmaster.pid exists",
        (true, 3) => "not running",
        (true, _) => "status unknown",
        (false, 0) => "ok",
        (false, _) => "failed",
    };
    LsbResult {
        code,
        stdout: format!("{NAME} {action}: {word}\n"),
        stderr: reason(&out),
    }
}

/// The init script installed as `/etc/init.d/postgresql-ha`: LSB header for the tools
/// that read it, and the pgstack binary doing the work.
pub fn initd_shim(binary: &str) -> String {
    format!(
        "#!/bin/sh\n\
         ### BEGIN INIT INFO\n\
         # Provides:          {NAME}\n\
         # Required-Start:    $local_fs $remote_fs $network\n\
         # Required-Stop:     $local_fs $remote_fs $network\n\
         # Default-Start:\n\
         # Default-Stop:\n\
         # Short-Description: PostgreSQL for Pacemaker's lsb class (pgstack)\n\
         # Description:       Starts, stops and checks the PostgreSQL server configured in\n\
         #                    {DEFAULTS} with the exit codes Pacemaker expects.\n\
         ### END INIT INFO\n\
         exec {binary} lsb {NAME} \"$@\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_is_parsed_not_executed() {
        let m = parse_defaults(
            "# comment\nPGDATA=/srv/pg/data\nexport PGPORT=\"5433\" # port\nPGOPTS='-c a=1'\n\
             PGUSER=postgres # trailing\n$(reboot)\nBAD KEY=1\nPGLOG='/var/log/pg.log'  # log\n\
             PGHOST=a b\nPGDATABASE=\"un # balanced\n",
        );
        assert_eq!(m["PGDATA"], "/srv/pg/data");
        assert_eq!(m["PGPORT"], "5433");
        assert_eq!(m["PGOPTS"], "-c a=1");
        assert_eq!(m["PGUSER"], "postgres");
        assert_eq!(m["PGLOG"], "/var/log/pg.log");
        assert_eq!(m.len(), 5, "{m:?}");
    }

    #[test]
    fn codes() {
        let o = |c| Outcome::code(c);
        assert_eq!(status_code(&o(OcfCode::Success), false), 0);
        assert_eq!(status_code(&o(OcfCode::NotRunning), false), 3);
        assert_eq!(status_code(&o(OcfCode::NotRunning), true), 1);
        assert_eq!(status_code(&o(OcfCode::ErrGeneric), true), 4);
        assert_eq!(action_code(&o(OcfCode::ErrInstalled)), 5);
        assert_eq!(action_code(&o(OcfCode::ErrConfigured)), 6);
        assert_eq!(action_code(&o(OcfCode::NotRunning)), 1);
    }

    #[test]
    fn committed_init_script_matches() {
        let p = format!("{}/agents/init.d/{NAME}", env!("CARGO_MANIFEST_DIR"));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            initd_shim("/usr/sbin/pgstack"),
            "{p} is stale: run pgstack docs"
        );
    }

    #[test]
    fn missing_configuration() {
        let none = Path::new("/nonexistent/pgst-pg-defaults");
        let agent = |_: &str, _: BTreeMap<String, String>| -> Outcome { panic!("not reached") };
        let b = BTreeMap::new();
        assert_eq!(run(Some("status"), none, &b, &agent).code, 4);
        assert_eq!(run(Some("stop"), none, &b, &agent).code, 0);
        assert_eq!(run(Some("start"), none, &b, &agent).code, 6);
        assert_eq!(run(Some("bogus"), none, &b, &agent).code, 2);
        assert_eq!(run(None, none, &b, &agent).code, 2);
    }
}
