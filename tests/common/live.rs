//! A live one-node Pacemaker 2.1.5: corosync and pacemakerd in network, mount, pid and
//! uts namespaces of their own, with private corosync and pacemaker directories below a
//! test directory and, when asked, this build's OCF shims bind-mounted over the pgstack
//! provider directory (inside the node's mount namespace only). Killed with everything
//! in its pid namespace when dropped, before its network namespace goes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::netns::Netns;

/// PID 1 of the node's namespaces: private directories, the optional shims ($3), then
/// the daemons; it reaps until they are gone.
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
if [ -n "$3" ]; then mount --bind "$3" /usr/lib/ocf/resource.d/pgstack; fi
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/lock /run/resource-agents
mount -t tmpfs tmpfs /dev/shm
/usr/sbin/corosync -f > "$D/corosync.out" 2>&1 &
i=0; while [ $i -lt 100 ] && ! corosync-cfgtool -s >/dev/null 2>&1; do sleep 0.1; i=$((i+1)); done
/usr/sbin/pacemakerd > "$D/pacemakerd.out" 2>&1 &
wait
"#;

/// What the node is made of.
pub struct Spec<'a> {
    /// Tag of the network namespace (`pgst-<tag>-...`).
    pub tag: &'a str,
    /// The node's name (its host name, in corosync's node list).
    pub node: &'a str,
    /// Its ring address, in 10.99.0.0/16, put on the namespace's loopback.
    pub addr: &'a str,
    pub cluster_name: &'a str,
    /// The test directory that holds the node's private directories and logs.
    pub dir: &'a Path,
    /// The CIB the node boots with.
    pub cib: &'a str,
    /// A directory of OCF shims to bind over /usr/lib/ocf/resource.d/pgstack.
    pub shims: Option<&'a str>,
}

pub struct LiveNode {
    child: Child,
    pub dir: PathBuf,
    // Dropped after the node's processes are gone.
    _ns: Netns,
}

/// corosync.conf of a one-node cluster.
pub fn corosync_conf(cluster_name: &str, node: &str, addr: &str) -> String {
    format!(
        "totem {{\n version: 2\n cluster_name: {cluster_name}\n crypto_cipher: none\n crypto_hash: none\n}}\n\
         nodelist {{\n node {{\n  ring0_addr: {addr}\n  name: {node}\n  nodeid: 1\n }}\n}}\n\
         quorum {{\n provider: corosync_votequorum\n}}\n\
         logging {{\n to_stderr: yes\n to_syslog: no\n}}\n"
    )
}

impl LiveNode {
    /// Writes the configuration and boots the node (returns at once; wait for what the
    /// test needs).
    pub fn start(s: &Spec) -> LiveNode {
        let d = |p: &str| s.dir.join(p);
        std::fs::create_dir_all(d("etc-corosync")).unwrap();
        std::fs::create_dir_all(d("var-lib-pacemaker/cib")).unwrap();
        std::fs::write(
            d("etc-corosync/corosync.conf"),
            corosync_conf(s.cluster_name, s.node, s.addr),
        )
        .unwrap();
        std::fs::write(d("var-lib-pacemaker/cib/cib.xml"), s.cib).unwrap();
        let ns = Netns::new(s.tag);
        ns.ip(&["addr", "add", &format!("{}/32", s.addr), "dev", "lo"]);
        let child = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "unshare", "--mount", "--uts", "--pid", "--fork",
            ])
            .args(["--kill-child", "--mount-proc", "sh", "-c", INIT, "sh"])
            .arg(s.dir)
            .arg(s.node)
            .arg(s.shims.unwrap_or(""))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        LiveNode {
            child,
            dir: s.dir.to_path_buf(),
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

    /// The argv prefix that runs a command inside the node's namespaces (waiting, at
    /// most 10 s, for the node's init to exist).
    pub fn prefix(&self) -> Vec<String> {
        let t = std::time::Instant::now();
        let pid = loop {
            match self.init_pid() {
                Some(p) => break p.to_string(),
                None if t.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                None => panic!("the node's init did not appear within 10 s"),
            }
        };
        ["nsenter", "-t", &pid, "-m", "-n", "-u", "-p"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// Runs a command inside the node's namespaces.
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.exec_env(argv, &[], Duration::from_secs(60))
    }

    pub fn exec_env(&self, argv: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
        let p = self.prefix();
        let mut full: Vec<&str> = p.iter().map(String::as_str).collect();
        full.extend_from_slice(argv);
        super::run(&full, env, timeout)
    }

    /// Pacemaker's log inside the node.
    pub fn log(&self) -> PathBuf {
        self.dir.join("log-pacemaker/pacemaker.log")
    }
}

impl Drop for LiveNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Give the kernel a moment to tear the pid namespace down.
        std::thread::sleep(Duration::from_millis(200));
    }
}
