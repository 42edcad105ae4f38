//! A live one-node cluster: corosync and pacemakerd under a PID 1 of their own, in
//! network, mount, pid and uts namespaces of their own, with private corosync and
//! pacemaker directories below the test's directory. Root only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::netns::Netns;

/// PID 1 of the node's namespaces: private corosync and pacemaker directories, this
/// build's OCF shims over the provider directory (when `$3` names them), then the
/// daemons. With a command after the first three arguments, that command runs once
/// `cibadmin -Q` answers (bounded), its output and exit status in `after-cib.out`,
/// `after-cib.err` and `after-cib.rc` of the node's directory. It reaps until the
/// daemons are gone.
const INIT: &str = r#"set -e
D=$1; OCF=$3
hostname "$2"
shift 3
mount --make-rprivate /
mkdir -p "$D/var-lib-corosync" "$D/log-pacemaker" "$D/log-corosync" "$D/var-lib-pacemaker/cib"
mkdir -p "$D/var-lib-pacemaker/pengine" "$D/var-lib-pacemaker/blackbox" "$D/var-lib-pacemaker/cores" "$D/var-lib-pacemaker/bundles"
chown -R hacluster:haclient "$D/var-lib-pacemaker" "$D/log-pacemaker"
chmod 0750 "$D/var-lib-pacemaker/cib" "$D/var-lib-pacemaker/pengine"
mount --bind "$D/etc-corosync" /etc/corosync
mount --bind "$D/var-lib-corosync" /var/lib/corosync
mount --bind "$D/var-lib-pacemaker" /var/lib/pacemaker
mount --bind "$D/log-pacemaker" /var/log/pacemaker
mount --bind "$D/log-corosync" /var/log/corosync
if [ -n "$OCF" ]; then mount --bind "$OCF" /usr/lib/ocf/resource.d/pgstack; fi
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/resource-agents
mount -t tmpfs tmpfs /dev/shm
/usr/sbin/corosync -f > "$D/corosync.out" 2>&1 &
i=0; while [ $i -lt 100 ] && ! corosync-cfgtool -s >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done
/usr/sbin/pacemakerd > "$D/pacemakerd.out" 2>&1 &
if [ $# -gt 0 ]; then
  i=0; while [ $i -lt 300 ] && ! cibadmin -Q >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done
  set +e
  "$@" > "$D/after-cib.out" 2> "$D/after-cib.err"
  echo $? > "$D/after-cib.rc.new"
  mv "$D/after-cib.rc.new" "$D/after-cib.rc"
fi
wait
"#;

/// What the node is.
pub struct Spec<'a> {
    /// The tag of its network namespace (`pgst-<tag>-...`).
    pub tag: &'a str,
    /// Its host name and node name.
    pub node: &'a str,
    /// Its ring address, on its loopback.
    pub addr: &'a str,
    pub cluster_name: &'a str,
    /// The CIB it starts with.
    pub cib: String,
    /// The directory of OCF shims it sees as the `pgstack` provider, if any.
    pub ocf_dir: Option<&'a str>,
    /// A command to run inside the node once its CIB answers (see [`Node::after_cib`]).
    pub after_cib: &'a [&'a str],
}

/// The running node: killed with everything in its pid namespace when dropped (unshare
/// --kill-child), before its network namespace goes.
pub struct Node {
    child: Child,
    dir: PathBuf,
    _ns: Netns,
}

/// A CIB that disables fencing and shortens the DC wait, with `resources` and `rest`
/// (more sections of the configuration, such as alerts) in its configuration.
pub fn seed_cib(resources: &str, rest: &str) -> String {
    format!(
        "<cib validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\">\n\
         <configuration><crm_config><cluster_property_set id=\"cib-bootstrap-options\">\
         <nvpair id=\"o1\" name=\"stonith-enabled\" value=\"false\"/>\
         <nvpair id=\"o2\" name=\"dc-deadtime\" value=\"2s\"/>\
         </cluster_property_set></crm_config><nodes/>\
         <resources>{resources}</resources><constraints/>{rest}</configuration><status/></cib>\n"
    )
}

impl Node {
    /// Writes the node's corosync.conf and CIB below `dir` and starts it.
    pub fn start(dir: &Path, spec: &Spec) -> Node {
        let Spec {
            tag,
            node,
            addr,
            cluster_name,
            ..
        } = spec;
        let corosync = format!(
            "totem {{\n version: 2\n cluster_name: {cluster_name}\n crypto_cipher: none\n crypto_hash: none\n}}\n\
             nodelist {{\n node {{\n  ring0_addr: {addr}\n  name: {node}\n  nodeid: 1\n }}\n}}\n\
             quorum {{\n provider: corosync_votequorum\n}}\n\
             logging {{\n to_stderr: yes\n to_syslog: no\n}}\n"
        );
        std::fs::create_dir_all(dir.join("etc-corosync")).unwrap();
        std::fs::create_dir_all(dir.join("var-lib-pacemaker/cib")).unwrap();
        std::fs::write(dir.join("etc-corosync/corosync.conf"), corosync).unwrap();
        std::fs::write(dir.join("var-lib-pacemaker/cib/cib.xml"), &spec.cib).unwrap();
        let ns = Netns::new(tag);
        ns.ip(&["addr", "add", &format!("{addr}/32"), "dev", "lo"]);
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "unshare", "--mount", "--uts"])
            .args(["--pid", "--fork", "--kill-child", "--mount-proc"])
            .args(["sh", "-c", INIT, "sh"])
            .arg(dir)
            .arg(node)
            .arg(spec.ocf_dir.unwrap_or(""))
            .args(spec.after_cib)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Node {
            child,
            dir: dir.to_path_buf(),
            _ns: ns,
        }
    }

    /// The node's PID 1 (the shell `unshare --fork` started).
    pub fn init_pid(&self) -> Option<u32> {
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

    /// Runs a command inside the node's namespaces (and its root directory).
    pub fn exec(&self, argv: &[&str]) -> std::process::Output {
        self.exec_env(argv, &[], Duration::from_secs(60))
    }

    /// [`Node::exec`] with more environment and its own time limit; waits (at most 10 s)
    /// for the node's PID 1 to exist.
    pub fn exec_env(
        &self,
        argv: &[&str],
        env: &[(&str, &str)],
        timeout: Duration,
    ) -> std::process::Output {
        let mut pid = None;
        super::wait_for("the node's PID 1", Duration::from_secs(10), || {
            pid = self.init_pid();
            pid.is_some()
        });
        let pid = pid.unwrap().to_string();
        let mut full = vec!["nsenter", "-t", &pid, "-m", "-n", "-u", "-p", "-r"];
        full.extend_from_slice(argv);
        super::run(&full, env, timeout)
    }

    /// What the `after_cib` command gave once it ended: exit status, stdout, stderr;
    /// `None` while it runs.
    pub fn after_cib(&self) -> Option<(i32, String, String)> {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f));
        let code = read("after-cib.rc").ok()?.trim().parse().ok()?;
        Some((
            code,
            read("after-cib.out").ok()?,
            read("after-cib.err").ok()?,
        ))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the kernel a moment to tear the pid namespace down.
        std::thread::sleep(Duration::from_millis(200));
    }
}
