//! The init script postgresql-ha: LSB exit codes, the book's three checks, and
//! Pacemaker's lsb class (crm_resource --force-*) against a real PostgreSQL 15 cluster.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pg::{alive, postgres_processes_under, PgCluster};

const DEFAULTS_ENV: &str = "PGSTACK_POSTGRESQL_HA_DEFAULTS";

fn script() -> String {
    format!("{}/postgresql-ha", common::initd_dir())
}

/// Writes the cluster's defaults file; returns its path.
fn defaults(c: &PgCluster) -> String {
    let p = c.dir.join("postgresql-ha.defaults");
    std::fs::write(
        &p,
        format!(
            "# test settings\nPGDATA={}\nPGPORT={}\nPGSOCKETDIR={}\nPGLOG={}\n\
             PGOPTS=\"-c listen_addresses=''\"\n",
            c.data().display(),
            c.port,
            c.sock().display(),
            c.log().display()
        ),
    )
    .unwrap();
    p.display().to_string()
}

fn lsb(defaults: &str, action: &str) -> (i32, String) {
    let out = common::run(
        &[&script(), action],
        &[(DEFAULTS_ENV, defaults)],
        Duration::from_secs(120),
    );
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_books_three_checks_and_lsb_codes() {
    common::require_root();
    let c = PgCluster::new(20);
    let d = defaults(&c);
    // The book: start -> 0, stop -> 0, status when stopped -> 3.
    assert_eq!(lsb(&d, "start").0, 0);
    assert_eq!(c.psql("select 1"), (true, "1".into()));
    assert_eq!(lsb(&d, "stop").0, 0);
    let (code, text) = lsb(&d, "status");
    assert_eq!(code, 3, "{text}");
    // Idempotence and the running status.
    assert_eq!(lsb(&d, "stop").0, 0, "stop when stopped");
    assert_eq!(lsb(&d, "start").0, 0);
    let pm = c.pidfile_pid().unwrap();
    assert_eq!(lsb(&d, "start").0, 0, "start when running");
    assert_eq!(c.pidfile_pid(), Some(pm));
    assert_eq!(lsb(&d, "status").0, 0);
    assert_eq!(lsb(&d, "reload").0, 0);
    assert_eq!(lsb(&d, "force-reload").0, 0);
    assert_eq!(lsb(&d, "restart").0, 0);
    assert_ne!(c.pidfile_pid(), Some(pm), "restart gives a new postmaster");
    assert_eq!(lsb(&d, "try-restart").0, 0);
    // Dead with a pid file: 1; start recovers.
    let pm = c.pidfile_pid().unwrap();
    common::sh_ok(&["kill", "-9", &pm.to_string()]);
    assert!(PgCluster::wait(|| !alive(pm)));
    let (code, text) = lsb(&d, "status");
    assert_eq!(code, 1, "{text}");
    assert_eq!(lsb(&d, "start").0, 0);
    assert_eq!(lsb(&d, "status").0, 0);
    assert_eq!(lsb(&d, "stop").0, 0);
    assert!(postgres_processes_under(&c.dir).is_empty());
    assert_eq!(
        lsb(&d, "try-restart").0,
        0,
        "try-restart of a stopped service"
    );
    assert_eq!(lsb(&d, "status").0, 3, "try-restart must not start it");
    // Usage and configuration errors.
    assert_eq!(lsb(&d, "bogus").0, 2);
    let none = c.dir.join("no-such-defaults").display().to_string();
    assert_eq!(lsb(&none, "status").0, 4);
    assert_eq!(lsb(&none, "start").0, 6);
    assert_eq!(lsb(&none, "stop").0, 0);
    // A defaults file naming no cluster: start fails as not installed, status says stopped.
    let bad = c.dir.join("bad.defaults");
    std::fs::write(
        &bad,
        format!("PGDATA={}/missing\nPGPORT={}\n", c.dir.display(), c.port),
    )
    .unwrap();
    let bad = bad.display().to_string();
    assert_eq!(lsb(&bad, "start").0, 5);
    assert_eq!(lsb(&bad, "status").0, 3);
}

#[test]
fn pacemakers_lsb_class_agrees() {
    common::require_root();
    let c = PgCluster::new(21);
    let d = defaults(&c);
    let script = script();
    assert!(Path::new(&script).exists(), "{script} not installed");
    let crm = |op: &str| {
        let out = common::run(
            &["crm_resource", op, "--class", "lsb", "--agent", &script],
            &[(DEFAULTS_ENV, &d)],
            Duration::from_secs(120),
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    };
    // crm_resource maps LSB status 3 to OCF 7 (not running).
    let (code, text) = crm("--force-check");
    assert_eq!(code, 7, "{text}");
    let (code, text) = crm("--force-start");
    assert_eq!(code, 0, "{text}");
    assert_eq!(crm("--force-check").0, 0);
    assert_eq!(crm("--force-start").0, 0, "start when running");
    let (code, text) = crm("--force-stop");
    assert_eq!(code, 0, "{text}");
    assert_eq!(crm("--force-stop").0, 0, "stop when stopped");
    assert_eq!(crm("--force-check").0, 7);
    assert!(postgres_processes_under(&c.dir).is_empty());
}

/// Issue 9 #8: values quoted, or followed by a `# comment`, mean what a shell assignment
/// would make of them (quotes removed, comment dropped), and nothing is executed.
#[test]
fn quoted_and_commented_defaults_are_read_as_a_shell_would() {
    common::require_root();
    let c = PgCluster::new(22);
    let marker = c.dir.join("executed");
    let p = c.dir.join("commented.defaults");
    let settings = |user: &str| {
        format!(
            "# settings with comments and quotes\n\
             PGDATA=\"{}\" # the data\n\
             export PGPORT='{}'   # the port\n\
             PGSOCKETDIR='{}' # sockets\n\
             PGLOG=\"{}\"\n\
             PGOPTS=\"-c listen_addresses=''\" # unix socket only\n\
             PGUSER={user}\n",
            c.data().display(),
            c.port,
            c.sock().display(),
            c.log().display(),
        )
    };
    // A command substitution is taken literally: no such user, and nothing ran.
    let evil = format!("postgres$(touch\\ {})", marker.display());
    std::fs::write(&p, settings(&evil)).unwrap();
    let d = p.display().to_string();
    let (code, text) = lsb(&d, "start");
    assert_eq!(code, 6, "{text}");
    assert!(!marker.exists(), "the defaults file was executed");
    std::fs::write(&p, settings("postgres # the system user")).unwrap();
    let (code, text) = lsb(&d, "start");
    assert_eq!(code, 0, "{text}");
    let (code, text) = lsb(&d, "status");
    assert_eq!(code, 0, "a running server is running: {text}");
    assert_eq!(c.psql("select 1"), (true, "1".into()));
    assert_eq!(lsb(&d, "stop").0, 0);
    assert_eq!(lsb(&d, "status").0, 3);
    assert!(postgres_processes_under(&c.dir).is_empty());
}
