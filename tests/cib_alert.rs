//! The alert agent as Pacemaker runs it: the installed `pgstack-alert` path, executed with
//! a cleared environment holding the `CRM_alert_*` variables, once per recipient. File
//! mode is tested for real; mail mode hands the message to a recording sendmail, and the
//! message itself is checked by Python's standard mail parser in strict mode.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::cib::{alert_path, crm_verify, render, run_env, Ran, TempDir};

/// A resource event as Pacemaker describes it.
const START_OK: &[(&str, &str)] = &[
    ("CRM_alert_kind", "resource"),
    ("CRM_alert_version", "2.1.5"),
    ("CRM_alert_node", "pg2"),
    ("CRM_alert_nodeid", "2"),
    ("CRM_alert_rsc", "pg_vip"),
    ("CRM_alert_task", "start"),
    ("CRM_alert_interval", "0"),
    ("CRM_alert_desc", "ok"),
    ("CRM_alert_rc", "0"),
    ("CRM_alert_target_rc", "0"),
    ("CRM_alert_status", "0"),
    ("CRM_alert_timestamp", "2026-11-25 22:10:00.123456"),
    ("CRM_alert_node_sequence", "7"),
];

const FENCED: &[(&str, &str)] = &[
    ("CRM_alert_kind", "fencing"),
    ("CRM_alert_node", "pg1"),
    ("CRM_alert_task", "reboot"),
    (
        "CRM_alert_desc",
        "Operation reboot of pg1 by pg2 for pacemaker-controld.1234: OK",
    ),
    ("CRM_alert_rc", "0"),
    ("CRM_alert_timestamp", "2026-11-25 22:10:01.000000"),
];

/// Runs `path` as Pacemaker does: no arguments, only the alert's variables.
fn exec_alert(path: &str, event: &[(&str, &str)], extra: &[(&str, &str)]) -> Ran {
    let mut argv = vec!["env".to_string(), "-i".to_string()];
    for (k, v) in event.iter().chain(extra) {
        argv.push(format!("{k}={v}"));
    }
    argv.push(path.to_string());
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    run_env(&refs, &[])
}

#[test]
fn file_recipient_gets_one_line_per_event() {
    let tmp = TempDir::new("alert-file");
    let log = tmp.file("alerts.log");
    let to = [("CRM_alert_recipient", log.as_str())];
    exec_alert(&alert_path(), START_OK, &to).ok();
    exec_alert(&alert_path(), FENCED, &to).ok();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines[0],
        "2026-11-25 22:10:00.123456 kind=resource node=pg2 nodeid=2 rsc=pg_vip task=start \
         interval=0 rc=0 target_rc=0 status=0 desc=ok"
    );
    assert_eq!(
        lines[1],
        "2026-11-25 22:10:01.000000 kind=fencing node=pg1 task=reboot rc=0 \
         desc=\"Operation reboot of pg1 by pg2 for pacemaker-controld.1234: OK\""
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn the_rendered_alert_section_runs_the_installed_agent() {
    // Render with the installed shim and a file recipient, check the CIB, then run exactly
    // the path and recipient the CIB names, the way Pacemaker's alert code does.
    let tmp = TempDir::new("alert-cib");
    let log = tmp.file("from-cib.log");
    let path_set = format!("alert_path={}", alert_path());
    let to_set = format!("alert_recipient={log}");
    let f = render(
        &tmp,
        "a.xml",
        "advanced",
        &["--set", &path_set, "--set", &to_set, "--online-status"],
    );
    assert_eq!(crm_verify(&f).0, 0);
    let xml = std::fs::read_to_string(&f).unwrap();
    let path = between(&xml, "<alert id=\"pg_alert\" path=\"", "\"");
    let recipient = between(&xml, "<recipient id=\"pg_alert-recipient\" value=\"", "\"");
    assert_eq!(path, alert_path());
    assert_eq!(recipient, log);
    exec_alert(&path, START_OK, &[("CRM_alert_recipient", &recipient)]).ok();
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("rsc=pg_vip task=start"));
}

fn between(s: &str, a: &str, b: &str) -> String {
    let i = s.find(a).unwrap_or_else(|| panic!("{a} not in the CIB")) + a.len();
    let j = s[i..].find(b).unwrap() + i;
    s[i..j].to_string()
}

/// A sendmail that records its arguments and its input, then exits with `code`.
fn fake_sendmail(tmp: &TempDir, code: i32) -> String {
    let p = tmp.file("sendmail");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {dir}/args\ncat > {dir}/message\nexit {code}\n",
            dir = tmp.0.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// Parses a message with Python's email package, strict policy: prints the headers the
/// test checks and the body; fails on any defect.
fn parse_mail(path: &str) -> String {
    let script = "import sys, email, email.policy\n\
        raw = open(sys.argv[1], 'rb').read()\n\
        m = email.message_from_bytes(raw, policy=email.policy.strict)\n\
        assert not m.defects, m.defects\n\
        for h in ('To', 'Subject', 'Date', 'Content-Type', 'Auto-Submitted'):\n\
        \x20   print(h + ': ' + str(m[h]))\n\
        d = m['Date'].datetime\n\
        assert d.tzinfo is not None\n\
        print('BODY:' + m.get_content())\n";
    let r = run_env(&["python3", "-c", script, path], &[]);
    assert_eq!(r.code, 0, "the message is not valid mail: {}", r.stderr);
    r.stdout
}

#[test]
fn mail_recipient_gets_a_valid_message_through_sendmail() {
    let tmp = TempDir::new("alert-mail");
    let sendmail = fake_sendmail(&tmp, 0);
    let env = [
        ("CRM_alert_recipient", "dba@example.org"),
        ("PGSTACK_ALERT_SENDMAIL", sendmail.as_str()),
    ];
    exec_alert(&alert_path(), FENCED, &env).ok();
    let args = std::fs::read_to_string(tmp.path("args")).unwrap();
    assert_eq!(
        args, "-oi\n--\ndba@example.org\n",
        "recipient after --, never an option"
    );
    let parsed = parse_mail(&tmp.file("message"));
    assert!(parsed.contains("To: dba@example.org\n"), "{parsed}");
    assert!(
        parsed
            .contains("Subject: [pgstack] fencing of pg1 (reboot): Operation reboot of pg1 by pg2"),
        "{parsed}"
    );
    assert!(
        parsed.contains("Content-Type: text/plain; charset=\"utf-8\""),
        "{parsed}"
    );
    assert!(
        parsed.contains("Auto-Submitted: auto-generated"),
        "{parsed}"
    );
    assert!(parsed.contains("CRM_alert_task: reboot"), "{parsed}");
    // --print shows the same message (Date aside) without sending it.
    let mut printed_env: Vec<(&str, &str)> = FENCED.to_vec();
    printed_env.extend(env);
    let r = run_env(&[&common::bin(), "alert", "--print"], &printed_env).ok();
    let sent = std::fs::read_to_string(tmp.path("message")).unwrap();
    let strip = |m: &str| {
        m.lines()
            .filter(|l| !l.starts_with("Date:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&r.stdout), strip(&sent));
}

#[test]
fn a_failed_resource_action_is_flagged_in_the_subject() {
    let tmp = TempDir::new("alert-fail");
    let sendmail = fake_sendmail(&tmp, 0);
    let mut ev: Vec<(&str, &str)> = START_OK.to_vec();
    ev.retain(|(k, _)| !["CRM_alert_rc", "CRM_alert_desc", "CRM_alert_task"].contains(k));
    ev.extend([
        ("CRM_alert_rc", "7"),
        ("CRM_alert_desc", "not running"),
        ("CRM_alert_task", "monitor"),
    ]);
    exec_alert(
        &alert_path(),
        &ev,
        &[
            ("CRM_alert_recipient", "dba@example.org"),
            ("PGSTACK_ALERT_SENDMAIL", &sendmail),
        ],
    )
    .ok();
    let parsed = parse_mail(&tmp.file("message"));
    assert!(
        parsed.contains("Subject: [pgstack] FAILED: pg_vip monitor on pg2: not running"),
        "{parsed}"
    );
}

#[test]
fn a_100_kb_subject_is_folded_cut_and_valid_mail() {
    let tmp = TempDir::new("alert-huge");
    let sendmail = fake_sendmail(&tmp, 0);
    let huge = format!("pg1 {}", "node-name-".repeat(10_000));
    let mut ev: Vec<(&str, &str)> = FENCED.to_vec();
    ev.retain(|(k, _)| *k != "CRM_alert_node");
    ev.push(("CRM_alert_node", &huge));
    exec_alert(
        &alert_path(),
        &ev,
        &[
            ("CRM_alert_recipient", "dba@example.org"),
            ("PGSTACK_ALERT_SENDMAIL", &sendmail),
        ],
    )
    .ok();
    let raw = std::fs::read_to_string(tmp.path("message")).unwrap();
    for l in raw.split("\r\n") {
        assert!(l.len() <= 998, "a line of {} octets", l.len());
    }
    let head = raw.split("\r\n\r\n").next().unwrap();
    assert!(head.len() < 2000, "headers of {} octets", head.len());
    let parsed = parse_mail(&tmp.file("message"));
    let subject = parsed.lines().find(|l| l.starts_with("Subject: ")).unwrap();
    assert!(
        subject.starts_with("Subject: [pgstack] fencing of pg1 node-name-")
            && subject.ends_with("..."),
        "{subject}"
    );
    assert!(subject.len() <= 220, "{}", subject.len());
}

#[test]
fn delivery_failures_are_reported() {
    let tmp = TempDir::new("alert-err");
    // The MTA refuses (EX_TEMPFAIL): exit 1, the message names sendmail and the event.
    let sendmail = fake_sendmail(&tmp, 75);
    let r = exec_alert(
        &alert_path(),
        START_OK,
        &[
            ("CRM_alert_recipient", "dba@example.org"),
            ("PGSTACK_ALERT_SENDMAIL", &sendmail),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("exit 75") && r.stderr.contains("pg_vip start on pg2"),
        "{}",
        r.stderr
    );
    // No such MTA.
    let r = exec_alert(
        &alert_path(),
        START_OK,
        &[
            ("CRM_alert_recipient", "dba@example.org"),
            ("PGSTACK_ALERT_SENDMAIL", "/nonexistent/sendmail"),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/nonexistent/sendmail"), "{}", r.stderr);
    // A file that cannot be written.
    let r = exec_alert(
        &alert_path(),
        START_OK,
        &[("CRM_alert_recipient", "/nonexistent/dir/a.log")],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/nonexistent/dir/a.log"), "{}", r.stderr);
    // A recipient that could pass for an option, no recipient, no event.
    let r = exec_alert(
        &alert_path(),
        START_OK,
        &[("CRM_alert_recipient", "-oQ/tmp")],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
    let r = exec_alert(&alert_path(), START_OK, &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no recipient"), "{}", r.stderr);
    let r = exec_alert(&alert_path(), &[], &[("CRM_alert_recipient", "/tmp/x")]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("CRM_alert_kind is not set"),
        "{}",
        r.stderr
    );
}
