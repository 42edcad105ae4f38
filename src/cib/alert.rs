//! The alert agent: Pacemaker runs it once per recipient for each node, fencing, resource
//! and attribute event, with the event in `CRM_alert_*` environment variables. It replaces
//! the book's MailTo resource, which only mailed when the group moved.
//!
//! A recipient starting with `/` is a file: one line per event is appended to it. Otherwise
//! the recipient is a mail address and a complete message goes to the local MTA
//! (`sendmail -oi -- RECIPIENT`, the message on stdin, no shell). Instance attributes of the
//! alert arrive as environment variables too: `PGSTACK_ALERT_SENDMAIL` (absolute path of the
//! MTA's sendmail, default `/usr/sbin/sendmail`) and `PGSTACK_ALERT_FROM` (a From address).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::validate::Kind;
use super::CibError;

pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// One event, as Pacemaker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// node, fencing, resource or attribute.
    pub kind: String,
    /// Every `CRM_alert_*` variable, without the prefix.
    pub vars: BTreeMap<String, String>,
}

/// Where an event goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    File(PathBuf),
    Mail {
        sendmail: PathBuf,
        to: String,
        from: Option<String>,
    },
}

/// Keeps a value on one line and printable: no header injection, no broken log lines.
fn one_line(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Like [`one_line`], ASCII only (mail headers).
fn header_value(v: &str) -> String {
    one_line(v)
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

/// RFC 5322 line limits: a line must not exceed 998 octets and should not exceed 78.
const LINE_MAX: usize = 998;
const LINE_SOFT: usize = 78;
/// A longer subject is cut (and marked `...`): the whole event is in the body.
const SUBJECT_MAX: usize = 200;

/// `name: value` as header lines: the value made one ASCII line ([`header_value`]),
/// folded before a word once a line passes 78 octets, a word longer than a line split.
fn header(name: &str, value: &str) -> String {
    let value = header_value(value);
    let mut out = format!("{name}:");
    let mut line = out.len();
    let mut first = true;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        // ASCII: every byte is a char boundary.
        for chunk in word.as_bytes().chunks(LINE_SOFT - 1) {
            let chunk = std::str::from_utf8(chunk).unwrap_or_default();
            if !first && line + 1 + chunk.len() > LINE_SOFT {
                out.push_str("\r\n");
                line = 0;
            }
            out.push(' ');
            out.push_str(chunk);
            line += 1 + chunk.len();
            first = false;
        }
    }
    out.push_str("\r\n");
    out
}

/// `text` cut to at most `max` bytes on a character boundary, marked `...` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// A body line (CRLF-terminated), wrapped so that no line exceeds [`LINE_MAX`] octets.
fn push_body_line(m: &mut String, text: &str) {
    let mut rest = text;
    loop {
        let mut end = rest.len().min(LINE_MAX);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        m.push_str(&rest[..end]);
        m.push_str("\r\n");
        rest = &rest[end..];
        if rest.is_empty() {
            break;
        }
    }
}

impl Event {
    /// Reads the event from the environment Pacemaker gave the agent.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Event, CibError> {
        let vars: BTreeMap<String, String> = env
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("CRM_alert_")?.to_string(), v.clone())))
            .collect();
        let kind = vars.get("kind").cloned().ok_or_else(|| {
            CibError::Invalid(
                "CRM_alert_kind is not set: pgstack alert is run by Pacemaker as an alert agent"
                    .into(),
            )
        })?;
        if !["node", "fencing", "resource", "attribute"].contains(&kind.as_str()) {
            return Err(CibError::Invalid(format!(
                "unknown CRM_alert_kind {:?}",
                one_line(&kind)
            )));
        }
        Ok(Event { kind, vars })
    }

    fn get(&self, k: &str) -> String {
        self.vars.get(k).map(|v| one_line(v)).unwrap_or_default()
    }

    /// One line saying what happened.
    pub fn summary(&self) -> String {
        let node = self.get("node");
        let desc = self.get("desc");
        match self.kind.as_str() {
            "node" => format!("node {node} is now {desc}"),
            "fencing" => format!("fencing of {node} ({}): {desc}", self.get("task")),
            "resource" => {
                let interval = self.get("interval");
                let task = match interval.as_str() {
                    "" | "0" => self.get("task"),
                    ms => format!("{} (every {ms} ms)", self.get("task")),
                };
                format!("{} {task} on {node}: {desc}", self.get("rsc"))
            }
            _ => format!(
                "attribute {}={} on {node}",
                self.get("attribute_name"),
                self.get("attribute_value")
            ),
        }
    }

    /// Whether the event reports a failure (a failed fencing or resource action).
    pub fn is_failure(&self) -> bool {
        match self.kind.as_str() {
            "fencing" => self.get("rc") != "0",
            "resource" => {
                let rc = self.get("rc");
                let target = self.get("target_rc");
                self.get("status") != "0" || (!target.is_empty() && rc != target)
            }
            "node" => self.get("desc") == "lost",
            _ => false,
        }
    }

    /// The line appended to a file: timestamp, then key=value pairs (values quoted when
    /// they contain blanks), newline-terminated.
    pub fn file_line(&self) -> String {
        let mut s = self.get("timestamp");
        if s.is_empty() {
            s = rfc3339_utc(SystemTime::now());
        }
        for k in [
            "kind",
            "node",
            "nodeid",
            "rsc",
            "task",
            "interval",
            "rc",
            "target_rc",
            "status",
            "attribute_name",
            "attribute_value",
            "desc",
        ] {
            if let Some(v) = self.vars.get(k) {
                let v = one_line(v);
                if v.contains(' ') || v.contains('"') || v.is_empty() {
                    s.push_str(&format!(" {k}=\"{}\"", v.replace('"', "'")));
                } else {
                    s.push_str(&format!(" {k}={v}"));
                }
            }
        }
        s.push('\n');
        s
    }

    /// A complete RFC 5322 message: no header can be injected, no line is longer than
    /// 998 octets, header lines are folded at 78, the subject is at most 200 characters.
    pub fn mail(&self, to: &str, from: Option<&str>, now: SystemTime) -> String {
        let mut m = String::new();
        if let Some(f) = from {
            m.push_str(&header("From", f));
        }
        let tag = if self.is_failure() { "FAILED: " } else { "" };
        m.push_str(&header("To", to));
        let subject = format!("[pgstack] {tag}{}", header_value(&self.summary()));
        m.push_str(&header("Subject", &cut(&subject, SUBJECT_MAX)));
        m.push_str(&format!("Date: {}\r\n", rfc2822_utc(now)));
        m.push_str("MIME-Version: 1.0\r\n");
        m.push_str("Content-Type: text/plain; charset=utf-8\r\n");
        m.push_str("Content-Transfer-Encoding: 8bit\r\n");
        m.push_str("Auto-Submitted: auto-generated\r\n");
        m.push_str(&header("X-Pgstack-Alert-Kind", &self.kind));
        m.push_str("\r\n");
        push_body_line(&mut m, &one_line(&self.summary()));
        m.push_str("\r\n");
        for (k, v) in &self.vars {
            push_body_line(&mut m, &format!("CRM_alert_{k}: {}", one_line(v)));
        }
        m
    }
}

/// Chooses the delivery for a recipient.
pub fn delivery(env: &BTreeMap<String, String>) -> Result<Delivery, CibError> {
    let to = env.get("CRM_alert_recipient").cloned().unwrap_or_default();
    if to.is_empty() {
        return Err(CibError::Invalid(
            "no recipient (CRM_alert_recipient): give the alert a <recipient> (a mail address or a file)"
                .into(),
        ));
    }
    Kind::Recipient
        .check(&to)
        .map_err(CibError::bad_value("CRM_alert_recipient", &one_line(&to)))?;
    if to.starts_with('/') {
        return Ok(Delivery::File(PathBuf::from(to)));
    }
    let sendmail = env
        .get("PGSTACK_ALERT_SENDMAIL")
        .cloned()
        .unwrap_or_else(|| DEFAULT_SENDMAIL.into());
    Kind::Path.check(&sendmail).map_err(CibError::bad_value(
        "PGSTACK_ALERT_SENDMAIL",
        &one_line(&sendmail),
    ))?;
    let from = match env.get("PGSTACK_ALERT_FROM") {
        Some(f) if !f.is_empty() => {
            Kind::Recipient
                .check(f)
                .ok()
                .filter(|()| !f.starts_with('/'))
                .ok_or_else(|| CibError::BadValue {
                    name: "PGSTACK_ALERT_FROM".into(),
                    value: one_line(f),
                    why: "expected a mail address".into(),
                })?;
            Some(f.clone())
        }
        _ => None,
    };
    Ok(Delivery::Mail {
        sendmail: PathBuf::from(sendmail),
        to,
        from,
    })
}

/// The UTC calendar date and time of `t` (the epoch for a time before it): year, month,
/// day, hour, minute, second and weekday (0 is Sunday).
fn civil(t: SystemTime) -> (i64, u32, u32, u64, u64, u64, u64) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Howard Hinnant's days-to-civil, for the Date header without a time crate.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    let weekday = ((days + 4).rem_euclid(7)) as u64; // 1970-01-01 was a Thursday
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60, weekday)
}

/// `Wed, 25 Nov 2026 22:10:00 +0000`
pub fn rfc2822_utc(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, wd) = civil(t);
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {hh:02}:{mm:02}:{ss:02} +0000",
        DAYS[wd as usize],
        MONTHS[(m - 1) as usize]
    )
}

/// `2026-11-25T22:10:00Z`
pub fn rfc3339_utc(t: SystemTime) -> String {
    let (y, m, d, hh, mm, ss, _) = civil(t);
    format!("{y}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_644_600);
        assert_eq!(rfc3339_utc(t), "2026-11-25T22:10:00Z");
        assert_eq!(rfc2822_utc(t), "Wed, 25 Nov 2026 22:10:00 +0000");
        assert_eq!(rfc2822_utc(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn summaries() {
        let e = Event::from_env(&env(&[
            ("CRM_alert_kind", "resource"),
            ("CRM_alert_node", "pg2"),
            ("CRM_alert_rsc", "pg_vip"),
            ("CRM_alert_task", "start"),
            ("CRM_alert_desc", "ok"),
            ("CRM_alert_rc", "0"),
            ("CRM_alert_target_rc", "0"),
            ("CRM_alert_status", "0"),
        ]))
        .unwrap();
        assert_eq!(e.summary(), "pg_vip start on pg2: ok");
        assert!(!e.is_failure());
        let f = Event::from_env(&env(&[
            ("CRM_alert_kind", "fencing"),
            ("CRM_alert_node", "pg1"),
            ("CRM_alert_task", "reboot"),
            ("CRM_alert_desc", "Operation reboot of pg1 by pg2: OK"),
            ("CRM_alert_rc", "0"),
        ]))
        .unwrap();
        assert_eq!(
            f.summary(),
            "fencing of pg1 (reboot): Operation reboot of pg1 by pg2: OK"
        );
        assert!(Event::from_env(&env(&[])).is_err());
        assert!(Event::from_env(&env(&[("CRM_alert_kind", "x")])).is_err());
    }

    #[test]
    fn headers_cannot_be_injected() {
        let e = Event::from_env(&env(&[
            ("CRM_alert_kind", "node"),
            ("CRM_alert_node", "pg1\r\nBcc: evil@example.org"),
            ("CRM_alert_desc", "lost"),
        ]))
        .unwrap();
        let m = e.mail("dba@example.org", None, UNIX_EPOCH);
        assert!(!m.contains("\r\nBcc:"), "{m}");
        assert!(
            m.contains("Subject: [pgstack] FAILED: node pg1 Bcc: evil@example.org is now lost\r\n"),
            "{m}"
        );
    }

    #[test]
    fn a_huge_subject_is_cut_and_every_line_is_within_rfc5322_limits() {
        let long = format!(
            "{}\r\nBcc: evil@example.org {}",
            "x".repeat(50_000),
            "é ".repeat(25_000)
        );
        let e = Event::from_env(&env(&[
            ("CRM_alert_kind", "node"),
            ("CRM_alert_node", &long),
            ("CRM_alert_desc", "lost"),
        ]))
        .unwrap();
        let m = e.mail("dba@example.org", Some("ha@example.org"), UNIX_EPOCH);
        let (head, body) = m.split_once("\r\n\r\n").unwrap();
        for l in m.split("\r\n") {
            assert!(l.len() <= LINE_MAX, "a line of {} octets", l.len());
        }
        for l in head.split("\r\n") {
            assert!(
                l.len() <= LINE_SOFT,
                "a header line of {} octets: {l}",
                l.len()
            );
            assert!(!l.starts_with("Bcc"), "{l}");
        }
        let subject: String = head
            .split("\r\n")
            .skip_while(|l| !l.starts_with("Subject:"))
            .take_while(|l| l.starts_with("Subject:") || l.starts_with(' '))
            .collect();
        assert!(subject.len() < SUBJECT_MAX + 20, "{}", subject.len());
        assert!(subject.ends_with("..."), "{subject}");
        assert!(subject.starts_with("Subject: [pgstack] FAILED: node xxx"));
        // Nothing is lost from the body: the event is all there, wrapped.
        assert!(body.replace("\r\n", "").contains(&"x".repeat(50_000)));
        // A short subject is one line, unchanged.
        let e = Event::from_env(&env(&[
            ("CRM_alert_kind", "node"),
            ("CRM_alert_node", "pg1"),
            ("CRM_alert_desc", "member"),
        ]))
        .unwrap();
        assert!(e
            .mail("a@b.c", None, UNIX_EPOCH)
            .contains("\r\nSubject: [pgstack] node pg1 is now member\r\nDate:"));
    }

    #[test]
    fn deliveries() {
        assert_eq!(
            delivery(&env(&[("CRM_alert_recipient", "/var/log/x.log")])).unwrap(),
            Delivery::File("/var/log/x.log".into())
        );
        assert_eq!(
            delivery(&env(&[("CRM_alert_recipient", "dba@example.org")])).unwrap(),
            Delivery::Mail {
                sendmail: DEFAULT_SENDMAIL.into(),
                to: "dba@example.org".into(),
                from: None
            }
        );
        assert!(delivery(&env(&[])).is_err());
        assert!(delivery(&env(&[("CRM_alert_recipient", "-oQ/tmp@x")])).is_err());
        assert!(delivery(&env(&[
            ("CRM_alert_recipient", "a@b.c"),
            ("PGSTACK_ALERT_SENDMAIL", "sendmail")
        ]))
        .is_err());
    }
}
