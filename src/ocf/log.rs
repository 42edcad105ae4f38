//! The logging facade: every line an agent logs, to syslog, `HA_LOGFILE`, `HA_DEBUGLOG`
//! and standard error, under the rules resource agents follow, plus the per-action trace
//! (`trace_ra`).
//!
//! Each line starts with its level word (`CRIT:`, `ERROR:`, `WARNING:`, `INFO:`,
//! `DEBUG:`) and carries the tag `<agent>(<instance>)[pid]` (or `HA_LOGTAG`). Where a
//! line goes:
//! - syslog, at the level's priority, when `HA_LOGFACILITY` (or `HA_logfacility`) names a
//!   facility; unset, empty or `none` means no syslog;
//! - `HA_LOGFILE` (or `HA_logfile`), when set;
//! - `HA_DEBUGLOG` (or `HA_debuglog`), when set and not the same file as `HA_LOGFILE`;
//! - standard error only when there is neither a facility nor a log file.
//!
//! Debug lines exist only with `HA_debug` on; they go to syslog at debug priority and to
//! `HA_DEBUGLOG` when set, otherwise where the other lines go. When standard input is a
//! terminal (an operator running an action by hand), every line goes to standard error
//! and nowhere else. The `ocf-exit-reason:` line is not a log line: the face always
//! prints it on standard error.
//!
//! With `trace_ra` on ([`OcfEnv::trace_ra`]), [`Logger::trace_action`] opens a trace
//! file for the action; every log line (debug included), the environment the action was
//! given and every step the child runner reports ([`crate::sys::runner::set_trace`]) are
//! written there.
//!
//! Every message and the tag are made one line ([`one_line`]) before they are written:
//! Pacemaker takes any stderr line starting `ocf-exit-reason:` as the exit reason, so a
//! newline in the instance name or in a parameter value must never start a line. The
//! syslog connection is opened on the first message, so an action that logs nothing
//! costs nothing.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use syslog::{Facility, LogFormat, LoggerBackend, Severity};

use super::env::{is_false, OcfEnv};
use crate::sys::runner;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
    Crit,
}

impl Level {
    /// The word a line starts with, as `ocf_log` writes it for `debug`, `info`, `warn`,
    /// `err` and `crit`.
    pub fn word(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARNING",
            Level::Error => "ERROR",
            Level::Crit => "CRIT",
        }
    }
}

/// RFC 3164 lines with our tag as it is (`vip(pg_vip)[1234]`, or `HA_LOGTAG`).
#[derive(Clone)]
struct TagFormat {
    facility: Facility,
    tag: String,
}

impl LogFormat<String> for TagFormat {
    fn format<W: Write>(&self, w: &mut W, severity: Severity, msg: String) -> syslog::Result<()> {
        write!(
            w,
            "<{}>{} {}: {msg}",
            self.facility as u8 | severity as u8,
            rfc3164_date(unix_now().0),
            self.tag
        )
        .map_err(syslog::Error::Write)
    }
}

type Syslog = syslog::Logger<LoggerBackend, TagFormat>;

/// The line written for `level` and `msg` in each place (`date` is [`hadate`]).
pub mod line {
    use super::Level;

    /// Syslog's message part: the level word, then the message.
    pub fn body(level: Level, msg: &str) -> String {
        format!("{}: {msg}", level.word())
    }
    /// A line of `HA_LOGFILE`.
    pub fn logfile(date: &str, tag: &str, level: Level, msg: &str) -> String {
        format!("{date} {tag}:    {}", body(level, msg))
    }
    /// A line of `HA_DEBUGLOG`.
    pub fn debuglog(date: &str, tag: &str, level: Level, msg: &str) -> String {
        format!("{tag}:\t{date} {}", body(level, msg))
    }
    /// A line on standard error when there is no facility and no log file.
    pub fn stderr(date: &str, tag: &str, level: Level, msg: &str) -> String {
        if level == Level::Debug {
            debuglog(date, tag, level, msg)
        } else {
            format!("{date} {}", body(level, msg))
        }
    }
    /// A line on standard error when standard input is a terminal.
    pub fn interactive(tag: &str, level: Level, msg: &str) -> String {
        format!("{tag}: {}", body(level, msg))
    }
}

pub struct Logger {
    agent: String,
    process: String,
    tag_override: Option<String>,
    facility: Option<Facility>,
    logfile: Option<String>,
    debuglog: Option<String>,
    debug: bool,
    /// Standard input is a terminal: lines go to standard error only.
    interactive: bool,
    /// Whether anything reaches standard error (off for [`Logger::silent`]).
    stderr: bool,
    syslog: RefCell<Option<Option<Syslog>>>,
    trace_env: Option<OcfEnv>,
    trace: RefCell<Option<(Arc<Trace>, runner::TraceSink)>>,
    /// Messages kept in memory (tests and the CLI read them back).
    pub captured: RefCell<Vec<(Level, String)>>,
}

impl Logger {
    pub fn new(agent: &str, env: &OcfEnv) -> Logger {
        let var = |a: &str, b: &str| {
            env.var(a)
                .or_else(|| env.var(b))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let facility = match var("HA_LOGFACILITY", "HA_logfacility") {
            None | Some("none") => None,
            Some(f) => f.parse().ok().or(Some(Facility::LOG_DAEMON)),
        };
        let process = if env.instance.is_empty() {
            one_line(agent).into_owned()
        } else {
            format!("{}({})", one_line(agent), env.instance_line())
        };
        let logfile = var("HA_LOGFILE", "HA_logfile").map(str::to_string);
        let debuglog = var("HA_DEBUGLOG", "HA_debuglog")
            .map(str::to_string)
            .filter(|d| Some(d) != logfile.as_ref());
        Logger {
            agent: agent.to_string(),
            process,
            tag_override: env.var("HA_LOGTAG").map(|t| one_line(t).into_owned()),
            facility,
            logfile,
            debuglog,
            debug: var("HA_debug", "HA_DEBUG").is_some_and(|v| v != "0" && !is_false(v)),
            interactive: std::io::stdin().is_terminal(),
            stderr: true,
            syslog: RefCell::new(None),
            trace_env: env.trace_ra().then(|| env.clone()),
            trace: RefCell::new(None),
            captured: RefCell::new(Vec::new()),
        }
    }

    /// A logger that only keeps messages in memory.
    pub fn silent() -> Logger {
        Logger {
            agent: "test".into(),
            process: "test".into(),
            tag_override: None,
            facility: None,
            logfile: None,
            debuglog: None,
            debug: true,
            interactive: false,
            stderr: false,
            syslog: RefCell::new(None),
            trace_env: None,
            trace: RefCell::new(None),
            captured: RefCell::new(Vec::new()),
        }
    }

    pub fn tag(&self) -> String {
        match &self.tag_override {
            Some(t) => t.clone(),
            None => format!("{}[{}]", self.process, std::process::id()),
        }
    }

    pub fn log(&self, level: Level, msg: &str) {
        let msg: &str = &one_line(msg);
        if let Some((t, _)) = self.trace.borrow().as_ref() {
            t.line(&line::body(level, msg));
        }
        if level == Level::Debug && !self.debug {
            return;
        }
        self.captured.borrow_mut().push((level, msg.to_string()));
        let tag = self.tag();
        if self.interactive {
            if self.stderr {
                let _ = writeln!(std::io::stderr(), "{}", line::interactive(&tag, level, msg));
            }
            return;
        }
        let date = hadate();
        let debug = level == Level::Debug;
        if let Some(facility) = self.facility {
            self.syslog(facility, &tag, level, msg);
        }
        let logfile = self
            .logfile
            .as_ref()
            .filter(|_| !debug || self.debuglog.is_none());
        if let Some(f) = logfile {
            append(f, &line::logfile(&date, &tag, level, msg));
        }
        if let Some(f) = &self.debuglog {
            append(f, &line::debuglog(&date, &tag, level, msg));
        }
        let nowhere_else = if debug {
            self.debuglog.is_none() && self.logfile.is_none()
        } else {
            self.logfile.is_none()
        };
        if self.stderr && self.facility.is_none() && nowhere_else {
            let _ = writeln!(
                std::io::stderr(),
                "{}",
                line::stderr(&date, &tag, level, msg)
            );
        }
    }

    fn syslog(&self, facility: Facility, tag: &str, level: Level, msg: &str) {
        let mut slot = self.syslog.borrow_mut();
        let conn = slot.get_or_insert_with(|| {
            syslog::unix(TagFormat {
                facility,
                tag: tag.to_string(),
            })
            .ok()
        });
        if let Some(c) = conn {
            let body = line::body(level, msg);
            let _ = match level {
                Level::Debug => c.debug(body),
                Level::Info => c.info(body),
                Level::Warn => c.warning(body),
                Level::Error => c.err(body),
                Level::Crit => c.crit(body),
            };
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
    pub fn crit(&self, msg: &str) {
        self.log(Level::Crit, msg)
    }

    pub fn messages(&self) -> Vec<String> {
        self.captured
            .borrow()
            .iter()
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The trace hook: called by the dispatcher as an action (other than `meta-data` and
    /// `usage`) begins. With `trace_ra` on, opens the action's trace, writes the
    /// environment into it and has the child runner report there until this logger is
    /// dropped. Without it, does nothing.
    pub fn trace_action(&self, action: impl Display) {
        let Some(env) = &self.trace_env else { return };
        let action = action.to_string();
        let dest = trace_destination(env, &self.agent, &action, self.interactive);
        let sink = match &dest {
            TraceDest::Stderr => Ok(Sink::Stderr),
            TraceDest::File(p) => open_trace_file(p).map(Sink::File),
        };
        let (dest, warning) = match (dest, sink) {
            (_, Ok(s)) => (Some(s), None),
            (TraceDest::File(p), Err(e)) => (
                None,
                Some(format!(
                    "cannot write the trace file {}: {e}; no trace of this {action}",
                    p.display()
                )),
            ),
            (TraceDest::Stderr, Err(_)) => (None, None),
        };
        if let Some(w) = env.trace_file_warning() {
            self.warn(&w);
        }
        if let Some(w) = warning {
            self.warn(&w);
        }
        let Some(sink) = dest else { return };
        let trace = Arc::new(Trace {
            sink: Mutex::new(sink),
            start: Instant::now(),
        });
        trace.line(&format!(
            "trace of {} {action}: pid {}, euid {}",
            self.tag(),
            std::process::id(),
            env.euid.map_or("?".to_string(), |u| u.to_string())
        ));
        for (k, v) in env.vars_lossy() {
            let v = if is_secret(&k) { "(hidden)".into() } else { v };
            trace.line(&format!("env {k}={v}"));
        }
        let t = trace.clone();
        let sink: runner::TraceSink = Arc::new(move |s: &str| t.line(s));
        runner::set_trace(Some(sink.clone()));
        *self.trace.borrow_mut() = Some((trace, sink));
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if let Some((t, sink)) = self.trace.borrow_mut().take() {
            t.line("trace ends");
            runner::clear_trace(&sink);
        }
    }
}

/// A variable whose value a trace does not show (a password parameter, say).
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let n = n.strip_prefix("ocf_reskey_").unwrap_or(&n);
    ["pass", "secret", "token"].iter().any(|w| n.contains(w))
}

enum Sink {
    Stderr,
    File(File),
}

struct Trace {
    sink: Mutex<Sink>,
    start: Instant,
}

impl Trace {
    fn line(&self, text: &str) {
        let ms = self.start.elapsed().as_micros() as f64 / 1000.0;
        let l = format!("{} +{ms:.3}ms {}\n", clock(), one_line(text));
        if let Ok(mut s) = self.sink.lock() {
            let _ = match &mut *s {
                Sink::Stderr => std::io::stderr().write_all(l.as_bytes()),
                Sink::File(f) => f.write_all(l.as_bytes()),
            };
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceDest {
    Stderr,
    File(PathBuf),
}

/// Where the trace of `action` goes: `OCF_TRACE_FILE` when it is a descriptor (3-9, open
/// for writing) or an absolute path; otherwise standard error on a terminal, else
/// `<trace_dir>/<type>/<instance>.<action>.<YYYY-MM-DD.HH:MM:SS>`.
pub fn trace_destination(env: &OcfEnv, agent: &str, action: &str, tty: bool) -> TraceDest {
    match env.trace_file() {
        Some(f) if f.len() == 1 && ('3'..='9').contains(&f.chars().next().unwrap_or('0')) => {
            return TraceDest::File(PathBuf::from(format!("/proc/self/fd/{f}")))
        }
        Some(f) if f.starts_with('/') && f[1..].contains('/') => {
            return TraceDest::File(PathBuf::from(f))
        }
        _ => {}
    }
    if tty {
        return TraceDest::Stderr;
    }
    let ty = env.resource_type().unwrap_or(agent);
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c == '/' || c.is_control() { '_' } else { c })
            .collect()
    };
    let instance = if env.instance.is_empty() {
        "default".to_string()
    } else {
        clean(&env.instance)
    };
    let (date, time) = civil(unix_now());
    TraceDest::File(
        env.trace_dir()
            .join(clean(ty))
            .join(format!("{instance}.{}.{date}.{time}", clean(action))),
    )
}

/// Creates (mode 0600) or appends to a trace file, never through a symbolic link at
/// its name; creates the directories above it. A descriptor is written as it is.
fn open_trace_file(p: &Path) -> std::io::Result<File> {
    if p.starts_with("/proc/self/fd") {
        // A descriptor the caller opened for writing (the name is a link by nature).
        return OpenOptions::new().append(true).open(p);
    }
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(p)
}

fn append(path: &str, line: &str) {
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{line}");
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

fn unix_now() -> (i64, u32) {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() as i64, d.subsec_millis()))
        .unwrap_or((0, 0))
}

/// UTC date `YYYY-MM-DD` and time `HH:MM:SS`, without a time-zone database.
fn civil((secs, _): (i64, u32)) -> (String, String) {
    let (y, m, d, rem) = ymd(secs);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

fn ymd(secs: i64) -> (i64, i64, i64, i64) {
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
    (y, m, d, rem)
}

/// The time as resource agents date their lines (`%b %d %T`, `Dec 01 10:04:33`), in UTC.
pub fn hadate() -> String {
    hadate_at(unix_now().0)
}

fn hadate_at(secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, m, d, rem) = ymd(secs);
    format!(
        "{} {d:02} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Syslog's timestamp (RFC 3164: the day padded with a space, `Dec  1 10:04:33`), UTC.
fn rfc3164_date(secs: i64) -> String {
    let d = hadate_at(secs);
    match d.as_bytes().get(4) {
        Some(b'0') => format!("{} {}", &d[..4], &d[5..]),
        _ => d,
    }
}

/// `HH:MM:SS.mmm` UTC, for trace lines.
fn clock() -> String {
    let (s, ms) = unix_now();
    let (_, t) = civil((s, ms));
    format!("{t}.{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> OcfEnv {
        OcfEnv::from_pairs(pairs)
    }

    fn quiet(agent: &str, pairs: &[(&str, &str)]) -> Logger {
        let mut l = Logger::new(agent, &env(pairs));
        l.stderr = false;
        l.interactive = false;
        l
    }

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("pgst-log-{}-{name}", std::process::id()))
    }

    #[test]
    fn level_words_as_ocf_log_writes_them() {
        let words: Vec<_> = [
            Level::Crit,
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
        ]
        .iter()
        .map(|l| line::body(*l, "m"))
        .collect();
        assert_eq!(
            words,
            ["CRIT: m", "ERROR: m", "WARNING: m", "INFO: m", "DEBUG: m"]
        );
    }

    #[test]
    fn line_shapes() {
        let d = "Dec 01 10:04:33";
        let t = "vip(v)[7]";
        for (got, want) in [
            (
                line::logfile(d, t, Level::Error, "x"),
                "Dec 01 10:04:33 vip(v)[7]:    ERROR: x",
            ),
            (
                line::debuglog(d, t, Level::Info, "x"),
                "vip(v)[7]:\tDec 01 10:04:33 INFO: x",
            ),
            (
                line::stderr(d, t, Level::Warn, "x"),
                "Dec 01 10:04:33 WARNING: x",
            ),
            (
                line::stderr(d, t, Level::Debug, "x"),
                "vip(v)[7]:\tDec 01 10:04:33 DEBUG: x",
            ),
        ] {
            assert_eq!(got, want);
        }
        assert_eq!(line::interactive(t, Level::Info, "x"), "vip(v)[7]: INFO: x");
        let f = TagFormat {
            facility: Facility::LOG_LOCAL3,
            tag: t.into(),
        };
        let mut out = Vec::new();
        f.format(&mut out, Severity::LOG_ERR, line::body(Level::Error, "x"))
            .unwrap();
        let out = String::from_utf8(out).unwrap();
        // local3 (19 << 3) | err (3)
        assert!(out.starts_with("<155>"), "{out}");
        assert!(out.ends_with(" vip(v)[7]: ERROR: x"), "{out}");
    }

    #[test]
    fn dates() {
        assert_eq!(hadate_at(0), "Jan 01 00:00:00");
        assert_eq!(hadate_at(1_796_119_473), "Dec 01 10:04:33");
        assert_eq!(rfc3164_date(1_796_119_473), "Dec  1 10:04:33");
        assert_eq!(rfc3164_date(1_796_119_473 + 20 * 86400), "Dec 21 10:04:33");
        assert_eq!(
            civil((1_796_119_473, 0)),
            ("2026-12-01".to_string(), "10:04:33".to_string())
        );
        assert_eq!(hadate().len(), 15);
        assert_eq!(clock().len(), 12);
    }

    #[test]
    fn tag_and_switches() {
        let l = quiet(
            "vip",
            &[
                ("OCF_RESOURCE_INSTANCE", "pg_vip"),
                ("HA_LOGFACILITY", "none"),
            ],
        );
        assert!(l.tag().starts_with("vip(pg_vip)["));
        assert!(l.facility.is_none());
        assert!(!l.debug);
        let l = quiet("vip", &[("HA_logfacility", "local3"), ("HA_debug", "1")]);
        assert!(matches!(l.facility, Some(Facility::LOG_LOCAL3)));
        assert!(l.debug);
        // Unset or empty: no syslog, as resource agents do.
        assert!(quiet("vip", &[]).facility.is_none());
        assert!(quiet("vip", &[("HA_LOGFACILITY", "")]).facility.is_none());
        assert!(!quiet("vip", &[("HA_debug", "0")]).debug);
        assert!(!quiet("vip", &[("HA_debug", "no")]).debug);
        assert_eq!(quiet("vip", &[("HA_LOGTAG", "mine")]).tag(), "mine");
        let l = quiet("vip", &[("HA_LOGFILE", "/a"), ("HA_DEBUGLOG", "/a")]);
        assert!(l.debuglog.is_none(), "the same file is written once");
    }

    #[test]
    fn logfile_and_debuglog() {
        let (f, d) = (temp("file"), temp("debug"));
        let l = quiet(
            "vip",
            &[
                ("OCF_RESOURCE_INSTANCE", "v"),
                ("HA_LOGFILE", f.to_str().unwrap()),
                ("HA_DEBUGLOG", d.to_str().unwrap()),
                ("HA_debug", "1"),
            ],
        );
        l.warn("hello");
        l.debug("details");
        let file = std::fs::read_to_string(&f).unwrap();
        let debug = std::fs::read_to_string(&d).unwrap();
        let _ = (std::fs::remove_file(&f), std::fs::remove_file(&d));
        assert_eq!(file.lines().count(), 1, "{file}");
        assert!(
            file.contains(" vip(v)[") && file.ends_with("]:    WARNING: hello\n"),
            "{file}"
        );
        let dl: Vec<_> = debug.lines().collect();
        assert_eq!(dl.len(), 2, "{debug}");
        assert!(
            dl[0].starts_with("vip(v)[") && dl[0].ends_with(" WARNING: hello"),
            "{debug}"
        );
        assert!(
            dl[1].contains("]:\t") && dl[1].ends_with(" DEBUG: details"),
            "{debug}"
        );
    }

    #[test]
    fn debug_goes_to_the_log_file_without_a_debug_log() {
        let f = temp("nodebuglog");
        let l = quiet(
            "vip",
            &[("HA_LOGFILE", f.to_str().unwrap()), ("HA_debug", "1")],
        );
        l.debug("details");
        quiet("vip", &[("HA_LOGFILE", f.to_str().unwrap())]).debug("hidden");
        let text = std::fs::read_to_string(&f).unwrap();
        let _ = std::fs::remove_file(&f);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("DEBUG: details"), "{text}");
    }

    #[test]
    fn nothing_logged_can_start_a_line() {
        let l = quiet(
            "vip",
            &[
                (
                    "OCF_RESOURCE_INSTANCE",
                    "x\nocf-exit-reason:forged\r\u{1b}[2J",
                ),
                ("HA_LOGFACILITY", "none"),
                ("HA_LOGTAG", "t\nocf-exit-reason:x"),
            ],
        );
        assert_eq!(l.tag(), "t\\nocf-exit-reason:x");
        let l = quiet(
            "vip",
            &[(
                "OCF_RESOURCE_INSTANCE",
                "x\nocf-exit-reason:forged\r\u{1b}[2J",
            )],
        );
        assert!(!l.tag().contains(['\n', '\r', '\u{1b}']), "{}", l.tag());
        assert!(l
            .tag()
            .starts_with("vip(x\\nocf-exit-reason:forged\\r\\u{1b}[2J)["));
        l.warn("value \"a\nocf-exit-reason:b\"");
        assert_eq!(l.messages(), ["value \"a\\nocf-exit-reason:b\""]);
        assert!(matches!(one_line("plain"), Cow::Borrowed("plain")));
        assert_eq!(one_line("tab\there"), "tab\\there");
    }

    #[test]
    fn trace_destinations() {
        let e = env(&[
            ("OCF_RESOURCE_INSTANCE", "db/1"),
            ("OCF_RESOURCE_TYPE", "IPaddr2"),
            ("HA_VARLIB", "/srv/ha"),
        ]);
        let TraceDest::File(p) = trace_destination(&e, "vip", "start", false) else {
            panic!()
        };
        let name = p.to_str().unwrap();
        assert!(
            name.starts_with("/srv/ha/trace_ra/IPaddr2/db_1.start.20"),
            "{name}"
        );
        assert_eq!(
            name.len(),
            "/srv/ha/trace_ra/IPaddr2/db_1.start.".len() + 19,
            "{name}"
        );
        assert_eq!(
            trace_destination(&e, "vip", "start", true),
            TraceDest::Stderr
        );
        let e = env(&[("OCF_TRACE_FILE", "/tmp/t.log")]);
        assert_eq!(
            trace_destination(&e, "vip", "stop", true),
            TraceDest::File("/tmp/t.log".into())
        );
        let e = env(&[("OCF_TRACE_FILE", "7")]);
        assert_eq!(
            trace_destination(&e, "vip", "stop", false),
            TraceDest::File("/proc/self/fd/7".into())
        );
        let e = env(&[("OCF_TRACE_FILE", "rel"), ("OCF_RESOURCE_INSTANCE", "r")]);
        let TraceDest::File(p) = trace_destination(&e, "vip", "stop", false) else {
            panic!()
        };
        assert!(p.starts_with("/var/lib/heartbeat/trace_ra/vip/"), "{p:?}");
        assert!(is_secret("OCF_RESKEY_monitor_password") && !is_secret("OCF_RESKEY_ip"));
    }

    #[test]
    fn a_traced_action_writes_lines_env_and_children() {
        let _one = runner::TRACE_TEST_LOCK
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let dir = temp("trace");
        let l = quiet(
            "vip",
            &[
                ("OCF_RESOURCE_INSTANCE", "v"),
                ("OCF_RESKEY_trace_ra", "1"),
                ("OCF_RESKEY_trace_dir", dir.to_str().unwrap()),
                ("OCF_RESKEY_monitor_password", "sekrit"),
            ],
        );
        l.debug("before the action: not traced");
        l.trace_action("monitor");
        l.debug("seen without HA_debug");
        let marker = format!("pgst-log-trace-{}", std::process::id());
        let out = runner::run(
            &runner::Cmd::new("true").arg(&marker),
            Instant::now() + std::time::Duration::from_secs(5),
        );
        assert!(out.unwrap().success());
        drop(l);
        let sub = dir.join("vip");
        let files: Vec<_> = std::fs::read_dir(&sub).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let p = files[0].path();
        let text = std::fs::read_to_string(&p).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        let _ = std::fs::remove_dir_all(&dir);
        assert!(p
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("v.monitor.20"));
        assert_eq!(mode, 0o600);
        assert!(text.contains(" trace of vip(v)["), "{text}");
        assert!(text.contains(" env OCF_RESKEY_trace_ra=1\n"), "{text}");
        assert!(
            text.contains(" env OCF_RESKEY_monitor_password=(hidden)\n"),
            "{text}"
        );
        assert!(!text.contains("sekrit"), "{text}");
        assert!(!text.contains("before the action"), "{text}");
        assert!(text.contains(" DEBUG: seen without HA_debug\n"), "{text}");
        assert!(text.contains(&format!(" run true {marker}\n")), "{text}");
        assert!(text.contains(" exit 0 after "), "{text}");
        assert!(text.ends_with(" trace ends\n"), "{text}");
        // Each line: time, offset, text.
        let first = text.lines().next().unwrap();
        assert!(first.len() > 13 && first.as_bytes()[12] == b' ', "{first}");
    }

    #[test]
    fn an_unwritable_trace_is_a_warning() {
        let l = quiet(
            "vip",
            &[
                ("OCF_RESKEY_trace_ra", "1"),
                ("OCF_TRACE_FILE", "/proc/pgst-no-such-dir/trace"),
            ],
        );
        l.trace_action("start");
        assert!(l.trace.borrow().is_none());
        let m = l.messages();
        assert!(
            m[0].starts_with("cannot write the trace file /proc/pgst-no-such-dir/trace"),
            "{m:?}"
        );
    }
}
