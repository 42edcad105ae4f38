//! PostgreSQL test clusters: `initdb` as user postgres under `/tmp/pgst-pg-<n>/` (data,
//! socket directory, log), on port 56400 + n. The guard stops the server (immediate
//! shutdown, then SIGKILL of every postgres process whose working directory is in the
//! test directory) and removes the directory in `Drop`; `tests/cleanup` does the same
//! for killed runs.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{run, sh_ok};

pub const BINDIR: &str = "/usr/lib/postgresql/15/bin";

pub struct PgCluster {
    pub n: u16,
    pub dir: PathBuf,
    pub port: u16,
}

fn chown_postgres(p: &Path) {
    sh_ok(&["chown", "postgres:postgres", p.to_str().unwrap()]);
}

/// Every process running a postgres binary with its working directory under `dir`.
pub fn postgres_processes_under(dir: &Path) -> Vec<u32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        let name = exe.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("postgres") && cwd.starts_with(dir) {
            v.push(pid);
        }
    }
    v
}

/// Alive and not a zombie.
#[allow(unused_imports)]
pub use pgstack::sys::proc::alive;

impl PgCluster {
    /// A fresh cluster, not started, trusting local connections.
    pub fn new(n: u16) -> PgCluster {
        PgCluster::with_auth(n, "trust")
    }

    /// A fresh cluster whose local connections use `auth` (peer: Debian's default).
    pub fn with_auth(n: u16, auth: &str) -> PgCluster {
        let dir = PathBuf::from(format!("/tmp/pgst-pg-{n}"));
        let c = PgCluster {
            n,
            dir: dir.clone(),
            port: 56400 + n,
        };
        c.kill_all();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown_postgres(&dir);
        chown_postgres(&dir.join("sock"));
        let out = run(
            &[
                "runuser",
                "-u",
                "postgres",
                "--",
                &format!("{BINDIR}/initdb"),
                "-D",
                c.data().to_str().unwrap(),
                "-A",
                auth,
                "--no-sync",
                "-U",
                "postgres",
            ],
            &[("LC_ALL", "C")],
            Duration::from_secs(120),
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    pub fn sock(&self) -> PathBuf {
        self.dir.join("sock")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }
    pub fn port_s(&self) -> String {
        self.port.to_string()
    }

    /// The agent's parameters for this cluster.
    pub fn params(&self) -> Vec<(String, String)> {
        vec![
            ("pgdata".into(), self.data().display().to_string()),
            ("pgport".into(), self.port_s()),
            ("socketdir".into(), self.sock().display().to_string()),
            ("logfile".into(), self.log().display().to_string()),
            ("start_opts".into(), "-c listen_addresses=''".into()),
        ]
    }

    /// The postmaster's pid, from postmaster.pid.
    pub fn pidfile_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Runs SQL with psql as postgres; returns (success, stdout).
    pub fn psql(&self, sql: &str) -> (bool, String) {
        let out = run(
            &[
                "runuser",
                "-u",
                "postgres",
                "--",
                "psql",
                "-X",
                "-h",
                self.sock().to_str().unwrap(),
                "-p",
                &self.port_s(),
                "-d",
                "postgres",
                "-Atc",
                sql,
            ],
            &[],
            Duration::from_secs(30),
        );
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    }

    /// A psql session in the background, fed `input` and kept open.
    pub fn session(&self, input: &str) -> Session {
        let mut child = Command::new("runuser")
            .args(["-u", "postgres", "--", "psql", "-X", "-q", "-h"])
            .arg(self.sock())
            .args(["-p", &self.port_s(), "-d", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        Session(child)
    }

    pub fn kill_all(&self) {
        for p in postgres_processes_under(&self.dir) {
            let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
        }
    }

    /// Waits (up to 10 s) until `cond` holds.
    pub fn wait(cond: impl Fn() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if cond() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let _ = run(
                &[
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    &format!("{BINDIR}/pg_ctl"),
                    "stop",
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "10",
                    "-D",
                    self.data().to_str().unwrap(),
                ],
                &[],
                Duration::from_secs(20),
            );
        }
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A background client, killed in `Drop`.
pub struct Session(pub Child);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An unrelated long-lived process (for stale pid files), killed in `Drop`.
pub struct Bystander(pub Child);

impl Bystander {
    pub fn new() -> Bystander {
        Bystander(Command::new("sleep").arg("600").spawn().unwrap())
    }
    /// The same, owned by the postgres user (a reused pid the server's user could signal).
    pub fn as_postgres() -> Bystander {
        Bystander(
            Command::new("setpriv")
                .args([
                    "--reuid",
                    "postgres",
                    "--regid",
                    "postgres",
                    "--clear-groups",
                    "sleep",
                    "600",
                ])
                .spawn()
                .unwrap(),
        )
    }
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
