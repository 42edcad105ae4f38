//! Network namespaces and veth links for tests, removed on drop.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::sh_ok;

static SEQ: AtomicU32 = AtomicU32::new(0);

pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace `pgst-<tag>-<pid>-<n>` with loopback up.
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "pgst-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        sh_ok(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip -n <ns> args...`, which must succeed.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut argv = vec!["ip", "-n", &self.name];
        argv.extend_from_slice(args);
        sh_ok(&argv)
    }

    /// The argv prefix that runs a command inside this namespace.
    pub fn prefix(&self) -> Vec<&str> {
        vec!["ip", "netns", "exec", &self.name]
    }

    pub fn exec(&self, argv: &[&str]) -> std::process::Output {
        let mut full = self.prefix();
        full.extend_from_slice(argv);
        super::run(&full, &[], Duration::from_secs(60))
    }

    /// Removes `addr` from `dev` `after` from now, on a thread of its own (an old holder
    /// going quiet); joining gives when it was gone, measured from `since`.
    pub fn del_addr_later(
        &self,
        addr: &str,
        dev: &str,
        after: Duration,
        since: Instant,
    ) -> std::thread::JoinHandle<Duration> {
        let argv: Vec<String> = ["ip", "-n", &self.name, "addr", "del", addr, "dev", dev]
            .iter()
            .map(|s| s.to_string())
            .collect();
        std::thread::spawn(move || {
            std::thread::sleep(after);
            let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
            sh_ok(&refs);
            since.elapsed()
        })
    }

    pub fn mac(&self, ifname: &str) -> String {
        let out = self.ip(&["-o", "link", "show", ifname]);
        let i = out.find("link/ether ").expect("an Ethernet link") + 11;
        out[i..i + 17].to_string()
    }

    /// Starts tcpdump on `ifname` printing link-level headers, and waits until it listens.
    pub fn tcpdump(&self, ifname: &str, filter: &[&str]) -> Capture {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.name,
            "tcpdump",
            "-i",
            ifname,
            "-n",
            "-e",
            "-l",
            "-tt",
            "--immediate-mode",
        ])
        .args(filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("tcpdump");
        // tcpdump says "listening on" on stderr once the capture is armed.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("tcpdump did not start listening");
        Capture { child: Some(child) }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A veth pair between two namespaces, both ends up.
pub fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    a.ip(&[
        "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ]);
    for (ns, ifn) in [(a, a_if), (b, b_if)] {
        ns.ip(&["link", "set", ifn, "up"]);
    }
}

/// A running tcpdump; `finish` stops it and returns the captured lines.
pub struct Capture {
    child: Option<Child>,
}

impl Capture {
    pub fn finish(mut self) -> Vec<String> {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while child.try_wait().unwrap().is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
