//! The rendered alert section in a live Pacemaker: a one-node cluster (corosync and
//! pacemakerd in namespaces of their own: network, mount, pid, uts) runs a Dummy resource;
//! Pacemaker itself executes the installed `pgstack-alert` (as hacluster) for the resource
//! events and the lines land in the recipient file. Root only.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cib::{alert_path, pgstack, TempDir};
use common::netns::Netns;

const NODE: &str = "pgst-cib-n1";
const ADDR: &str = "10.99.63.1";

/// PID 1 of the node's namespaces: private corosync and pacemaker directories, then the
/// daemons; it reaps until they are gone.
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
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/resource-agents
mount -t tmpfs tmpfs /dev/shm
/usr/sbin/corosync -f > "$D/corosync.out" 2>&1 &
i=0; while [ $i -lt 100 ] && ! corosync-cfgtool -s >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done
/usr/sbin/pacemakerd > "$D/pacemakerd.out" 2>&1 &
wait
"#;

/// The node: killed with everything in its pid namespace when dropped (unshare
/// --kill-child), before its network namespace goes.
struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the kernel a moment to tear the pid namespace down.
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn corosync_conf() -> String {
    format!(
        "totem {{\n version: 2\n cluster_name: pgstcib\n crypto_cipher: none\n crypto_hash: none\n}}\n\
         nodelist {{\n node {{\n  ring0_addr: {ADDR}\n  name: {NODE}\n  nodeid: 1\n }}\n}}\n\
         quorum {{\n provider: corosync_votequorum\n}}\n\
         logging {{\n to_stderr: yes\n to_syslog: no\n}}\n"
    )
}

fn seed_cib(alerts: &str) -> String {
    format!(
        "<cib validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\">\n\
         <configuration><crm_config><cluster_property_set id=\"cib-bootstrap-options\">\
         <nvpair id=\"o1\" name=\"stonith-enabled\" value=\"false\"/>\
         <nvpair id=\"o2\" name=\"dc-deadtime\" value=\"2s\"/>\
         </cluster_property_set></crm_config><nodes/>\
         <resources><primitive id=\"dummy\" class=\"ocf\" provider=\"heartbeat\" type=\"Dummy\">\
         <operations><op id=\"dummy-monitor\" name=\"monitor\" interval=\"10s\"/></operations>\
         </primitive></resources><constraints/>\n{alerts}</configuration><status/></cib>\n"
    )
}

#[test]
fn pacemaker_runs_the_rendered_alert_agent() {
    common::require_root();
    let tmp = TempDir::new("live");
    let drop_box = tmp.path("alerts");
    std::fs::create_dir(&drop_box).unwrap();
    // Pacemaker runs alert agents as hacluster: the recipient's directory must let it write.
    std::fs::set_permissions(
        &drop_box,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let log = drop_box.join("alerts.log");
    // The alerts section exactly as the template renders it.
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "render",
            "--template",
            "replication",
            "--no-fencing",
            "--set",
            &format!("alert_path={}", alert_path()),
            "--set",
            &format!("alert_recipient={}", log.display()),
        ],
    )
    .ok();
    let (a, b) = (
        r.stdout.find("<alerts>").unwrap(),
        r.stdout.find("</alerts>").unwrap(),
    );
    let alerts = &r.stdout[a..b + "</alerts>".len()];
    std::fs::create_dir_all(tmp.path("etc-corosync")).unwrap();
    std::fs::create_dir_all(tmp.path("var-lib-pacemaker/cib")).unwrap();
    std::fs::write(tmp.path("etc-corosync/corosync.conf"), corosync_conf()).unwrap();
    std::fs::write(tmp.path("var-lib-pacemaker/cib/cib.xml"), seed_cib(alerts)).unwrap();

    let ns = Netns::new("cib-live");
    ns.ip(&["addr", "add", &format!("{ADDR}/32"), "dev", "lo"]);
    let child = Command::new("ip")
        .args([
            "netns", "exec", &ns.name, "unshare", "--mount", "--uts", "--pid", "--fork",
        ])
        .args([
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            INIT,
            "sh",
            &tmp.file(""),
            NODE,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let node = Node { child };

    let t0 = Instant::now();
    let mut text = String::new();
    while t0.elapsed() < Duration::from_secs(90) {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("rsc=dummy task=monitor interval=10000") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let took = t0.elapsed();
    drop(node);
    let diag = || {
        let p = std::fs::read_to_string(tmp.path("pacemakerd.out")).unwrap_or_default();
        let c = std::fs::read_to_string(tmp.path("corosync.out")).unwrap_or_default();
        let l =
            std::fs::read_to_string(tmp.path("log-pacemaker/pacemaker.log")).unwrap_or_default();
        let tail: Vec<&str> = l.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "alerts:\n{text}\npacemakerd:\n{p}\ncorosync:\n{c}\npacemaker.log (end):\n{}",
            tail.join("\n")
        )
    };
    let start = text
        .lines()
        .find(|l| l.contains("rsc=dummy task=start"))
        .unwrap_or_else(|| panic!("no start alert within 90 s\n{}", diag()));
    assert!(
        start.contains(&format!(
            "kind=resource node={NODE} rsc=dummy task=start interval=0 rc=0 target_rc=0 status=0 desc=ok"
        )),
        "{start}"
    );
    // The first result of the recurring monitor is reported too, after the start.
    // Pacemaker runs alert agents concurrently: the lines may land in any order, the
    // timestamps (Pacemaker's, microseconds) give the order of the events.
    let stamp = |l: &str| l.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let monitor = text
        .lines()
        .find(|l| l.contains("rsc=dummy task=monitor interval=10000 rc=0"))
        .unwrap_or_else(|| panic!("no monitor alert\n{}", diag()));
    assert!(stamp(monitor) > stamp(start), "{}", diag());
    // The timestamp is Pacemaker's, in the template's timestamp-format.
    let ts = start.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(ts.len(), "2026-11-25 22:10:00.123456".len(), "{start}");
    eprintln!("first alerts after {took:?}");
}
