//! The postgresql agent under a live one-node Pacemaker 2.1.5 (corosync and pacemakerd
//! in network, mount, pid and uts namespaces of their own; this build's shims bind-mounted
//! over the provider directory inside the node's mount namespace only). What Pacemaker
//! makes of the OCF 1.1 meta-data: a change of a reloadable parameter runs reload-agent
//! and keeps the postmaster, a change of pgport restarts it on the new port. Root only.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::live::{LiveNode, Spec};
use common::pg::{postgres_processes_under, PgCluster};

const NODE: &str = "pgst-pg-n1";
const ADDR: &str = "10.99.64.1";

/// The server ran in the node's pid namespace: its postmaster.pid names a pid of that
/// namespace, which must never reach pg_ctl on the host. Removed once the node is gone.
struct ForeignPidFile(PathBuf);

impl Drop for ForeignPidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn seed_cib(c: &PgCluster) -> String {
    let nv: String = c
        .params()
        .iter()
        .map(|(k, v)| {
            format!(
                "<nvpair id=\"pg-{k}\" name=\"{k}\" value=\"{}\"/>",
                v.replace('\'', "&apos;")
            )
        })
        .collect();
    format!(
        "<cib validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\">\n\
         <configuration><crm_config><cluster_property_set id=\"cib-bootstrap-options\">\
         <nvpair id=\"o1\" name=\"stonith-enabled\" value=\"false\"/>\
         <nvpair id=\"o2\" name=\"dc-deadtime\" value=\"2s\"/>\
         </cluster_property_set></crm_config><nodes/>\
         <resources><primitive id=\"pg\" class=\"ocf\" provider=\"pgstack\" type=\"postgresql\">\
         <instance_attributes id=\"pg-ia\">{nv}</instance_attributes>\
         <operations><op id=\"pg-monitor\" name=\"monitor\" interval=\"5s\"/></operations>\
         </primitive></resources><constraints/></configuration><status/></cib>\n"
    )
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if f() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {secs} s");
}

#[test]
fn pacemaker_reloads_a_reloadable_change_and_restarts_on_a_pgport_change() {
    common::require_root();
    let c = PgCluster::new(36);
    let tmp = Dir(c.dir.join("node"));
    let _pidfile = ForeignPidFile(c.data().join("postmaster.pid"));
    let cib = seed_cib(&c);
    let shims = common::ocf_dir();
    let node = LiveNode::start(&Spec {
        tag: "pg-live",
        node: NODE,
        addr: ADDR,
        cluster_name: "pgstpg",
        dir: &tmp.0,
        cib: &cib,
        shims: Some(&shims),
    });
    let log = node.log();
    let pm = || c.pidfile_pid();
    let ready = |port: u16| {
        c.sock().join(format!(".s.PGSQL.{port}")).exists()
            && std::fs::read_to_string(c.data().join("postmaster.pid"))
                .is_ok_and(|t| t.contains("ready"))
    };
    let up = wait_for("the server started by Pacemaker", 120, || ready(c.port));
    eprintln!("cluster up and server started after {up:?}");
    let first = pm().unwrap();
    let ops = |op: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("Result of {op} operation for pg ")))
            .count()
    };
    let diag = || {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        let pg: Vec<&str> = l
            .lines()
            .filter(|l| l.contains(" pg") || l.contains("pg_") || l.contains("metadata"))
            .collect();
        pg[pg.len().saturating_sub(40)..].join("\n")
    };
    // The recurring monitor runs: the start's digests are recorded.
    wait_for("the first monitor", 60, || ops("monitor") >= 1);
    let starts = ops("start");
    // A reloadable parameter: reload-agent, the same postmaster.
    let out = node.exec(&[
        "crm_resource",
        "--resource",
        "pg",
        "--set-parameter",
        "monitor_sql",
        "--parameter-value",
        "select 2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = Instant::now();
    while ops("reload-agent") < 1 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no reload-agent within 60 s:\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t = t.elapsed();
    eprintln!("reload-agent after {t:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        pm(),
        Some(first),
        "a reloadable change restarted the server"
    );
    assert_eq!(
        ops("start"),
        starts,
        "a reloadable change started the resource again"
    );
    // pgport: a restart onto the new port.
    let new_port = c.port + 100;
    let out = node.exec(&[
        "crm_resource",
        "--resource",
        "pg",
        "--set-parameter",
        "pgport",
        "--parameter-value",
        &new_port.to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = wait_for("the restart on the new port", 60, || ready(new_port));
    eprintln!("restart on port {new_port} after {t:?}");
    assert_ne!(pm(), Some(first), "a pgport change must restart the server");
    assert!(ops("start") > starts, "{}", ops("start"));
    assert_eq!(ops("reload-agent"), 1, "a pgport change was reloaded");
    assert!(!c.sock().join(format!(".s.PGSQL.{}", c.port)).exists());
    // Stopped by Pacemaker before the node goes.
    let out = node.exec(&[
        "crm_resource",
        "--resource",
        "pg",
        "--meta",
        "--set-parameter",
        "target-role",
        "--parameter-value",
        "Stopped",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the stop", 60, || {
        postgres_processes_under(&c.dir).is_empty()
    });
    drop(node);
}
