//! The postgresql agent as a hostile environment or a careless configuration would try it,
//! against real PostgreSQL 15 clusters (root: initdb as postgres). Each test is the
//! regression test of one defect: a symlinked log file, a malformed unrelated parameter,
//! a resolver that does not answer, a data directory reached through another path, a
//! non-root caller, a socket directory named only by pghost, and the reload semantics
//! Pacemaker reads from the meta-data.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::pg::{alive, postgres_processes_under, PgCluster};
use common::{agent_path, ocf, AgentRun};

/// Root-only: a test that cannot run fails, it never passes unseen.
fn need_root() {
    common::require_root();
}

fn params_of(c: &PgCluster, over: &[(&str, &str)], drop: &[&str]) -> Vec<(String, String)> {
    let mut p = c.params();
    p.retain(|(k, _)| !drop.contains(&k.as_str()));
    for (k, v) in over {
        p.retain(|(pk, _)| pk != k);
        p.push((k.to_string(), v.to_string()));
    }
    p
}

fn run_as(
    prefix: &[&str],
    c: &PgCluster,
    action: &str,
    over: &[(&str, &str)],
    drop: &[&str],
    extra: &[(&str, &str)],
) -> AgentRun {
    let p = params_of(c, over, drop);
    let refs: Vec<(&str, &str)> = p.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ocf(prefix, &agent_path("postgresql"), action, &refs, extra)
}

fn act(c: &PgCluster, action: &str, over: &[(&str, &str)]) -> AgentRun {
    run_as(&[], c, action, over, &[], &[])
}

fn probe(c: &PgCluster, over: &[(&str, &str)]) -> AgentRun {
    run_as(
        &[],
        c,
        "monitor",
        over,
        &[],
        &[("OCF_RESKEY_CRM_meta_interval", "0")],
    )
}

fn reason(r: &AgentRun) -> String {
    r.exit_reason().unwrap_or_default()
}

/// Issue 9 #6: the log file is opened by the system user, never by root through a link.
#[test]
fn a_log_file_symlinked_to_a_root_file_is_never_written_as_root() {
    need_root();
    let c = PgCluster::new(30);
    // A file only root may write, and a directory only root may create files in.
    let victim = c.dir.join("root-owned");
    std::fs::write(&victim, "root's data\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let rootdir = c.dir.join("rootdir");
    std::fs::create_dir(&rootdir).unwrap();
    std::fs::set_permissions(&rootdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The links sit in the socket directory, which postgres owns and could plant them in.
    let link = c.sock().join("log-to-root-file");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let link2 = c.sock().join("log-to-root-dir");
    std::os::unix::fs::symlink(rootdir.join("created.log"), &link2).unwrap();
    for l in [&link, &link2] {
        let r = act(&c, "start", &[("logfile", l.to_str().unwrap())]);
        let _ = act(&c, "stop", &[]);
        assert_ne!(r.code, 0, "start through {} succeeded: {r:?}", l.display());
        assert!(
            reason(&r).contains(l.to_str().unwrap()),
            "the reason names the log file: {r:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root's data\n",
        "root's file was written"
    );
    assert!(
        !rootdir.join("created.log").exists(),
        "a file was created in a directory postgres cannot write"
    );
    assert!(postgres_processes_under(&c.dir).is_empty());
    // A log file the system user may write still works, created owned by it.
    let own = c.sock().join("server.log");
    let r = act(&c, "start", &[("logfile", own.to_str().unwrap())]);
    assert_eq!(r.code, 0, "{r:?}");
    let m = std::fs::metadata(&own).unwrap();
    let pg_uid = std::fs::metadata(c.data()).unwrap().uid();
    assert_eq!(m.uid(), pg_uid, "the log belongs to the system user");
    assert_eq!(act(&c, "stop", &[]).code, 0);
}

/// Issue 9 #7: a running server is found from pgdata and its pid file whatever an
/// unrelated parameter says; validate-all and start report the bad value.
#[test]
fn a_malformed_unrelated_parameter_never_makes_a_running_server_look_stopped() {
    need_root();
    let c = PgCluster::new(31);
    assert_eq!(act(&c, "start", &[]).code, 0);
    let bad_opts = [("start_opts", "-c 'work_mem=4MB")];
    let r = probe(&c, &bad_opts);
    assert_eq!(r.code, 0, "probe with a bad start_opts: {r:?}");
    let r = act(&c, "monitor", &bad_opts);
    assert_eq!(r.code, 0, "monitor with a bad start_opts: {r:?}");
    for action in ["validate-all", "start"] {
        let r = act(&c, action, &bad_opts);
        assert_eq!(r.code, 6, "{action}: {r:?}");
        assert!(reason(&r).contains("start_opts"), "{action}: {r:?}");
    }
    // A parameter of the monitor itself: the server runs, the configuration cannot
    // monitor it; never "not running".
    let r = probe(&c, &[("connect_timeout", "0")]);
    assert_eq!(r.code, 6, "probe with connect_timeout=0: {r:?}");
    assert!(reason(&r).contains("connect_timeout"), "{r:?}");
    for bad in [("connect_timeout", "0"), ("connect_timeout", "five")] {
        let r = act(&c, "validate-all", &[bad]);
        assert_eq!(r.code, 6, "validate-all with {bad:?}: {r:?}");
        assert!(reason(&r).contains("connect_timeout"), "{r:?}");
    }
    let pm = c.pidfile_pid().unwrap();
    assert!(alive(pm));
    // Stop finds the server whatever the bad value, and really stops it.
    let r = act(&c, "stop", &bad_opts);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(PgCluster::wait(|| !alive(pm)), "postmaster {pm} still runs");
    assert!(postgres_processes_under(&c.dir).is_empty());
    // Also when the bad value does not even have the declared type: the probe still
    // finds the running server (and says so), stop still stops it.
    assert_eq!(act(&c, "start", &[]).code, 0);
    let pm = c.pidfile_pid().unwrap();
    let r = probe(&c, &[("connect_timeout", "five")]);
    assert_eq!(r.code, 0, "probe with connect_timeout=five: {r:?}");
    let r = act(&c, "stop", &[("connect_timeout", "five")]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(PgCluster::wait(|| !alive(pm)), "postmaster {pm} still runs");
    assert!(postgres_processes_under(&c.dir).is_empty());
}

/// /etc/netns/<ns>/resolv.conf (bind-mounted by `ip netns exec`), removed on drop.
struct NetnsResolv(PathBuf);

impl NetnsResolv {
    fn new(ns: &Netns, text: &str) -> NetnsResolv {
        let dir = PathBuf::from(format!("/etc/netns/{}", ns.name));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
        NetnsResolv(dir)
    }
}

impl Drop for NetnsResolv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child killed on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 9 #9: a host name whose resolver never answers: the monitor ends at its
/// deadline, not when the resolver gives up.
#[test]
fn a_resolver_that_never_answers_does_not_hold_the_monitor_past_its_deadline() {
    need_root();
    let c = PgCluster::new(32);
    assert_eq!(act(&c, "start", &[]).code, 0);
    let ns = Netns::new("pg-dns");
    let _resolv = NetnsResolv::new(&ns, "nameserver 127.0.0.1\noptions timeout:20 attempts:1\n");
    // A name server that reads every question and answers none.
    let mut silent = Reaped(
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, "/usr/bin/python3", "-c"])
            .arg(
                "import socket,time\n\
                 s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 s.bind(('127.0.0.1',53))\n\
                 print('ready',flush=True)\n\
                 while True: s.recv(4096)\n",
            )
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    let mut out = std::io::BufReader::new(silent.0.stdout.as_mut().unwrap());
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let t = Instant::now();
    let r = run_as(
        &ns.prefix(),
        &c,
        "monitor",
        &[("pghost", "pgst-pg-db.example")],
        &[],
        &[("OCF_RESKEY_CRM_meta_timeout", "3000")],
    );
    let took = t.elapsed();
    eprintln!("monitor (timeout 3000 ms) with a silent resolver took {took:?}");
    assert_eq!(r.code, 1, "{r:?}");
    assert!(reason(&r).contains("pgst-pg-db.example"), "{r:?}");
    assert!(took < Duration::from_secs(3), "the monitor took {took:?}");
    drop(silent);
    assert_eq!(act(&c, "stop", &[]).code, 0);
}

/// A bind mount removed (lazily) on drop.
struct Bind(PathBuf);

impl Bind {
    fn new(from: &Path, to: &Path) -> Bind {
        std::fs::create_dir_all(to).unwrap();
        common::sh_ok(&[
            "mount",
            "--bind",
            from.to_str().unwrap(),
            to.to_str().unwrap(),
        ]);
        Bind(to.to_path_buf())
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = common::run(
            &["umount", "-l", self.0.to_str().unwrap()],
            &[],
            Duration::from_secs(20),
        );
    }
}

/// Issue 9 #10: the data directory of a live server, reached through a bind mount or a
/// symlink, is recognised by device and inode; its pid file is never set aside.
#[test]
fn a_live_server_reached_through_a_bind_mount_or_symlink_is_recognised() {
    need_root();
    let c = PgCluster::new(33);
    assert_eq!(act(&c, "start", &[]).code, 0);
    let pm = c.pidfile_pid().unwrap();
    let link = c.dir.join("data-link");
    std::os::unix::fs::symlink(c.data(), &link).unwrap();
    let bind = Bind::new(&c.data(), &c.dir.join("data-bind"));
    for other in [link.clone(), bind.0.clone()] {
        let o = [("pgdata", other.to_str().unwrap())];
        let r = probe(&c, &o);
        assert_eq!(r.code, 0, "probe through {}: {r:?}", other.display());
        let r = act(&c, "start", &o);
        assert_eq!(r.code, 0, "start through {}: {r:?}", other.display());
        assert_eq!(c.pidfile_pid(), Some(pm), "the pid file of the live server");
        assert!(!c.data().join("postmaster.pid.stale").exists());
        assert!(alive(pm));
        assert_eq!(act(&c, "monitor", &o).code, 0);
    }
    assert_eq!(c.psql("select 1"), (true, "1".into()));
    let r = act(&c, "stop", &[("pgdata", bind.0.to_str().unwrap())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(PgCluster::wait(|| !alive(pm)));
    assert!(postgres_processes_under(&c.dir).is_empty());
}

/// Issue 9 #11: run as a user other than root, every action that looks at the server
/// says 4 with a reason, never "stopped".
#[test]
fn run_as_nobody_every_action_is_refused_not_a_false_state() {
    need_root();
    let c = PgCluster::new(34);
    assert_eq!(act(&c, "start", &[]).code, 0);
    let pm = c.pidfile_pid().unwrap();
    let nobody = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
    ];
    let probe_env = [("OCF_RESKEY_CRM_meta_interval", "0")];
    for (action, extra) in [
        ("monitor", &probe_env[..]),
        ("monitor", &[][..]),
        ("stop", &[][..]),
        ("start", &[][..]),
        ("validate-all", &[][..]),
    ] {
        let r = run_as(&nobody, &c, action, &[], &[], extra);
        assert_eq!(r.code, 4, "{action} {extra:?} as nobody: {r:?}");
        assert!(reason(&r).contains("root"), "{r:?}");
    }
    assert!(alive(pm), "the server must survive");
    assert_eq!(act(&c, "monitor", &[]).code, 0);
    assert_eq!(act(&c, "stop", &[]).code, 0);
}

/// Issue 9 #12: pghost naming a socket directory while socketdir is empty: the server
/// listens where the monitor connects.
#[test]
fn pghost_as_socket_directory_is_where_the_server_listens() {
    need_root();
    let c = PgCluster::new(35);
    let sock = c.sock().display().to_string();
    let r = run_as(&[], &c, "start", &[("pghost", &sock)], &["socketdir"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_as(
        &[],
        &c,
        "monitor",
        &[("pghost", &sock)],
        &["socketdir"],
        &[],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(c.sock().join(format!(".s.PGSQL.{}", c.port)).exists());
    let r = run_as(&[], &c, "stop", &[("pghost", &sock)], &["socketdir"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(postgres_processes_under(&c.dir).is_empty());
}

/// Issue 9 #19: OCF 1.1 reload-agent, `reloadable` only where a reload applies the
/// change; the legacy `reload` that Pacemaker would use for any change is gone from
/// the meta-data, which stays valid for ocf-tester's DTD check.
#[test]
fn meta_data_offers_reload_agent_for_reloadable_parameters_only() {
    let md = ocf(&[], &agent_path("postgresql"), "meta-data", &[], &[]);
    assert_eq!(md.code, 0);
    let x = &md.stdout;
    assert!(x.contains("<version>1.1</version>"), "{x}");
    assert!(x.contains("<action name=\"reload-agent\""), "{x}");
    assert!(!x.contains("<action name=\"reload\""), "{x}");
    let param = |name: &str| {
        let start = x
            .find(&format!("<parameter name=\"{name}\""))
            .unwrap_or_else(|| panic!("no parameter {name}"));
        x[start..start + x[start..].find('>').unwrap()].to_string()
    };
    for p in [
        "pgport",
        "start_opts",
        "pgdata",
        "socketdir",
        "pghost",
        "logfile",
    ] {
        assert!(!param(p).contains("reloadable=\"1\""), "{}", param(p));
    }
    for p in ["monitor_sql", "connect_timeout", "stop_escalate", "pgdb"] {
        assert!(param(p).contains("reloadable=\"1\""), "{}", param(p));
    }
    // ocf-tester's check: xmllint --valid with the DOCTYPE's DTD.
    let file = common::meta_data_file("postgresql", x);
    common::sh_ok(&[
        "sh",
        "-c",
        "cd /usr/share/resource-agents && xmllint --noout --valid - < \"$1\"",
        "sh",
        &file,
    ]);
}

/// Pacemaker's own tool reads the agent through the provider directory; a private
/// mount namespace shows it this build's shims without touching /usr for anyone else.
#[test]
fn crm_resource_reads_the_ocf_1_1_meta_data() {
    need_root();
    let script = format!(
        "mount --make-rprivate / && mount --bind {} /usr/lib/ocf/resource.d/pgstack && \
         crm_resource --show-metadata ocf:pgstack:postgresql",
        common::ocf_dir()
    );
    let out = common::run(
        &["unshare", "-m", "sh", "-c", &script],
        &[],
        Duration::from_secs(30),
    );
    let x = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(x.contains("<version>1.1</version>"), "{x}");
    assert!(
        x.contains("name=\"monitor_sql\" unique=\"0\" required=\"0\" reloadable=\"1\""),
        "{x}"
    );
    assert!(
        x.contains("<parameter name=\"pgport\" unique=\"0\" required=\"0\">"),
        "{x}"
    );
    assert!(x.contains("<action name=\"reload-agent\""), "{x}");
}
