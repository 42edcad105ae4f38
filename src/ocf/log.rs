//! The logging facade: syslog with the `<agent>(<instance>)[pid]` tag, an optional log
//! file, and standard error (which Pacemaker keeps in its own log).
//!
//! Honours `HA_LOGFACILITY`/`HA_logfacility` (`none` turns syslog off), `HA_LOGFILE`/
//! `HA_logfile` and `HA_debug`. The syslog connection is opened on the first message,
//! so an action that logs nothing costs nothing.
//!
//! Every message and the tag are made one line ([`one_line`]) before they are written:
//! Pacemaker takes any stderr line starting `ocf-exit-reason:` as the exit reason, so a
//! newline in the instance name or in a parameter value must never start a line.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::OpenOptions;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use syslog::{Facility, Formatter3164, LoggerBackend};

use super::env::{is_true, OcfEnv};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

type Syslog = syslog::Logger<LoggerBackend, Formatter3164>;

pub struct Logger {
    process: String,
    facility: Option<Facility>,
    logfile: Option<String>,
    debug: bool,
    stderr: bool,
    syslog: RefCell<Option<Option<Syslog>>>,
    /// Messages kept in memory (tests and the CLI read them back).
    pub captured: RefCell<Vec<(Level, String)>>,
}

impl Logger {
    pub fn new(agent: &str, env: &OcfEnv) -> Logger {
        let var = |a: &str, b: &str| env.var(a).or_else(|| env.var(b)).map(str::trim);
        let facility = match var("HA_LOGFACILITY", "HA_logfacility") {
            Some("none") | Some("") => None,
            Some(f) => f.parse().ok().or(Some(Facility::LOG_DAEMON)),
            None => Some(Facility::LOG_DAEMON),
        };
        let process = if env.instance.is_empty() {
            one_line(agent).into_owned()
        } else {
            format!("{}({})", one_line(agent), env.instance_line())
        };
        Logger {
            process,
            facility,
            logfile: var("HA_LOGFILE", "HA_logfile")
                .filter(|f| !f.is_empty())
                .map(str::to_string),
            debug: var("HA_debug", "HA_DEBUG").is_some_and(is_true),
            stderr: true,
            syslog: RefCell::new(None),
            captured: RefCell::new(Vec::new()),
        }
    }

    /// A logger that only keeps messages in memory.
    pub fn silent() -> Logger {
        Logger {
            process: "test".into(),
            facility: None,
            logfile: None,
            debug: true,
            stderr: false,
            syslog: RefCell::new(None),
            captured: RefCell::new(Vec::new()),
        }
    }

    pub fn tag(&self) -> String {
        format!("{}[{}]", self.process, std::process::id())
    }

    pub fn log(&self, level: Level, msg: &str) {
        if level == Level::Debug && !self.debug {
            return;
        }
        let msg: &str = &one_line(msg);
        self.captured.borrow_mut().push((level, msg.to_string()));
        if self.stderr {
            let _ = writeln!(std::io::stderr(), "{}: {}: {msg}", self.tag(), level.name());
        }
        if let Some(f) = &self.logfile {
            if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(f) {
                let _ = writeln!(
                    file,
                    "{} {}: {}: {msg}",
                    timestamp(),
                    self.tag(),
                    level.name()
                );
            }
        }
        if let Some(facility) = self.facility {
            let mut slot = self.syslog.borrow_mut();
            let conn = slot.get_or_insert_with(|| {
                syslog::unix(Formatter3164 {
                    facility,
                    hostname: None,
                    process: self.process.clone(),
                    pid: std::process::id(),
                })
                .ok()
            });
            if let Some(c) = conn {
                let _ = match level {
                    Level::Debug => c.debug(msg),
                    Level::Info => c.info(msg),
                    Level::Warn => c.warning(msg),
                    Level::Error => c.err(msg),
                };
            }
        }
    }

    pub fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg)
    }
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg)
    }
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warn, msg)
    }
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg)
    }

    pub fn messages(&self) -> Vec<String> {
        self.captured
            .borrow()
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }
}

/// `s` on one line: control characters (newline, carriage return, escape, ...) are
/// written as Rust escapes (`\n`, `\u{1b}`), so nothing a value contains can start a
/// line or move the terminal cursor. Borrowed when there is nothing to escape.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// UTC time as `YYYY-MM-DDTHH:MM:SSZ`, without a time-zone database.
fn timestamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> OcfEnv {
        OcfEnv::from_pairs(pairs)
    }

    #[test]
    fn tag_and_switches() {
        let l = Logger::new(
            "vip",
            &env(&[
                ("OCF_RESOURCE_INSTANCE", "pg_vip"),
                ("HA_LOGFACILITY", "none"),
            ]),
        );
        assert!(l.tag().starts_with("vip(pg_vip)["));
        assert!(l.facility.is_none());
        assert!(!l.debug);
        let l = Logger::new(
            "vip",
            &env(&[("HA_logfacility", "local3"), ("HA_debug", "1")]),
        );
        assert!(matches!(l.facility, Some(Facility::LOG_LOCAL3)));
        assert!(l.debug);
    }

    #[test]
    fn logfile_gets_the_tagged_line() {
        let path = std::env::temp_dir().join(format!("pgstack-log-{}", std::process::id()));
        let p = path.to_str().unwrap();
        let mut l = Logger::new(
            "vip",
            &env(&[
                ("OCF_RESOURCE_INSTANCE", "v"),
                ("HA_LOGFACILITY", "none"),
                ("HA_LOGFILE", p),
            ]),
        );
        l.stderr = false;
        l.warn("hello");
        l.debug("not shown");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(
            text.contains("vip(v)[") && text.contains("WARNING: hello"),
            "{text}"
        );
    }

    #[test]
    fn nothing_logged_can_start_a_line() {
        let l = Logger::new(
            "vip",
            &env(&[
                (
                    "OCF_RESOURCE_INSTANCE",
                    "x\nocf-exit-reason:forged\r\u{1b}[2J",
                ),
                ("HA_LOGFACILITY", "none"),
            ]),
        );
        assert!(!l.tag().contains(['\n', '\r', '\u{1b}']), "{}", l.tag());
        assert!(l
            .tag()
            .starts_with("vip(x\\nocf-exit-reason:forged\\r\\u{1b}[2J)["));
        let mut l = l;
        l.stderr = false;
        l.warn("value \"a\nocf-exit-reason:b\"");
        assert_eq!(l.messages(), ["value \"a\\nocf-exit-reason:b\""]);
        assert!(matches!(one_line("plain"), Cow::Borrowed("plain")));
        assert_eq!(one_line("tab\there"), "tab\\there");
    }

    #[test]
    fn timestamp_shape() {
        let t = timestamp();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
