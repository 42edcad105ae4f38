//! The postgresql agent under a live one-node Pacemaker 2.1.5 (corosync and pacemakerd
//! in network, mount, pid and uts namespaces of their own; this build's shims bind-mounted
//! over the provider directory inside the node's mount namespace only). What Pacemaker
//! makes of the OCF 1.1 meta-data: a change of a reloadable parameter runs reload-agent
//! and keeps the postmaster, a change of pgport restarts it on the new port. Root only.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::pg::{postgres_processes_under, PgCluster};

const NODE: &str = "pgst-pg-n1";
const ADDR: &str = "10.99.64.1";

/// PID 1 of the node's namespaces (as in tests/cib_alert_live.rs), plus the bind mount
/// of this build's OCF shims.
const INIT: &str = r#"set -e
D=$1
hostname "$2"
mount --make-rprivate /
mkdir -p "$D/var-lib-corosync" "$D/log-pacemaker" "$D/log-corosync"
mkdir -p "$D/var-lib-pacemaker/pengine" "$D/var-lib-pacemaker/blackbox" "$D/var-lib-pacemaker/cores" "$D/var-lib-pacemaker/bundles"
chown -R hacluster:haclient "$D/var-lib-pacemaker" "$D/log-pacemaker"
chmod 0750 "$D/var-lib-pacemaker/cib" "$D/var-lib-pacemaker/pengine"
mount --bind "$D/etc-corosync" /etc/corosync
mount --bind "$D/var-lib-corosync" /var/lib/corosync
mount --bind "$D/var-lib-pacemaker" /var/lib/pacemaker
mount --bind "$D/log-pacemaker" /var/log/pacemaker
mount --bind "$D/log-corosync" /var/log/corosync
mount --bind "$3" /usr/lib/ocf/resource.d/pgstack
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/resource-agents
mount -t tmpfs tmpfs /dev/shm
/usr/sbin/corosync -f > "$D/corosync.out" 2>&1 &
i=0; while [ $i -lt 100 ] && ! corosync-cfgtool -s >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done
/usr/sbin/pacemakerd > "$D/pacemakerd.out" 2>&1 &
wait
"#;

/// The node, killed with everything in its pid namespace when dropped.
struct Node {
    child: Child,
}

impl Node {
    /// The node's PID 1 (the shell `unshare --fork` started).
    fn init_pid(&self) -> Option<u32> {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid: u32 = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == self.child.id()).then_some(pid)
        })
    }

    /// Runs a command inside the node's namespaces.
    fn exec(&self, argv: &[&str]) -> std::process::Output {
        let pid = self.init_pid().expect("the node's init").to_string();
        let mut full = vec!["nsenter", "-t", &pid, "-m", "-n", "-u", "-p", "-r"];
        full.extend_from_slice(argv);
        common::run(&full, &[], Duration::from_secs(60))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(200));
    }
}

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

fn corosync_conf() -> String {
    format!(
        "totem {{\n version: 2\n cluster_name: pgstpg\n crypto_cipher: none\n crypto_hash: none\n}}\n\
         nodelist {{\n node {{\n  ring0_addr: {ADDR}\n  name: {NODE}\n  nodeid: 1\n }}\n}}\n\
         quorum {{\n provider: corosync_votequorum\n}}\n\
         logging {{\n to_stderr: yes\n to_syslog: no\n}}\n"
    )
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
    let d = |p: &str| tmp.0.join(p);
    std::fs::create_dir_all(d("etc-corosync")).unwrap();
    std::fs::create_dir_all(d("var-lib-pacemaker/cib")).unwrap();
    std::fs::write(d("etc-corosync/corosync.conf"), corosync_conf()).unwrap();
    std::fs::write(d("var-lib-pacemaker/cib/cib.xml"), seed_cib(&c)).unwrap();
    let ns = Netns::new("pg-live");
    ns.ip(&["addr", "add", &format!("{ADDR}/32"), "dev", "lo"]);
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "unshare", "--mount", "--uts", "--pid", "--fork",
        ])
        .args(["--kill-child", "--mount-proc", "sh", "-c", INIT, "sh"])
        .arg(&tmp.0)
        .arg(NODE)
        .arg(common::ocf_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node { child };
    let log = d("log-pacemaker/pacemaker.log");
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
