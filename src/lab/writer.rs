//! The writer: a process in the client namespace inserting numbered rows through the VIP,
//! one transaction each, recording every id whose commit was acknowledged. `check` lists
//! the acknowledged ids the database does not have.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{client, proc, run, Lab, LabError, LabResult, NS_CLIENT};
use crate::sys::runner::Cmd;

fn acked(dir: &Path) -> PathBuf {
    dir.join("writer.acked")
}

fn pidfile(dir: &Path) -> PathBuf {
    dir.join("writer.pid")
}

fn running(dir: &Path) -> Option<u32> {
    let pid: u32 = run::read_line(&pidfile(dir))?.parse().ok()?;
    (proc::alive(pid) && proc::cmdline(pid).is_some_and(|c| c.contains(" lab _writer ")))
        .then_some(pid)
}

/// Starts the writer (in the client namespace, detached).
pub fn start(lab: &Lab) -> LabResult<u32> {
    if let Some(p) = running(&lab.dir) {
        return Err(LabError::Invalid(format!(
            "the writer already runs (pid {p})"
        )));
    }
    let exe = lab.cfg.exe.display().to_string();
    let dir = lab.dir.display().to_string();
    let c = Cmd::new("ip").args([
        "netns", "exec", NS_CLIENT, &exe, "lab", "_writer", "--dir", &dir,
    ]);
    let pid = run::spawn_logged(&c, &lab.dir.join("writer.log"))?;
    run::write(&pidfile(&lab.dir), &format!("{pid}\n"))?;
    // Wait for its first acknowledged row.
    super::poll(
        "the writer's first acknowledged row",
        20.0,
        Duration::from_millis(50),
        || (count_acked(&lab.dir) > 0).then_some(()),
    )?;
    Ok(pid)
}

pub fn stop(dir: &Path) -> LabResult<bool> {
    let Some(pid) = running(dir) else {
        return Ok(false);
    };
    proc::signal(pid, Signal::SIGTERM);
    let gone = super::poll(
        "the writer stopping",
        5.0,
        Duration::from_millis(20),
        || (!proc::alive(pid)).then_some(()),
    );
    if gone.is_err() {
        proc::kill9(pid);
    }
    let _ = std::fs::remove_file(pidfile(dir));
    Ok(true)
}

fn count_acked(dir: &Path) -> usize {
    std::fs::read_to_string(acked(dir))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The writer process: never returns while it runs.
pub fn main(dir: &Path) -> LabResult<()> {
    main_to(dir, super::VIP)
}

/// The writer inserting through `host` (the VIP of the lab it runs in).
pub fn main_to(dir: &Path, host: &str) -> LabResult<()> {
    let p = acked(dir);
    let mut f = run::log_file(&p)?;
    let mut id: u64 = std::fs::read_to_string(&p)
        .ok()
        .and_then(|s| s.lines().filter_map(|l| l.parse::<u64>().ok()).max())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::io("tokio runtime", e))?;
    rt.block_on(async {
        let mut conn: Option<tokio_postgres::Client> = None;
        let mut errors = 0u64;
        loop {
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                let mut c = tokio_postgres::Config::new();
                c.host(host)
                    .port(5432)
                    .user("postgres")
                    .dbname("postgres")
                    .application_name("pgstack-lab-writer")
                    .connect_timeout(Duration::from_millis(500));
                match tokio::time::timeout(Duration::from_secs(1), c.connect(tokio_postgres::NoTls)).await {
                    Ok(Ok((client, connection))) => {
                        tokio::spawn(connection);
                        let ddl = "CREATE TABLE IF NOT EXISTS lab_writes (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())";
                        if client.simple_query(ddl).await.is_ok() {
                            conn = Some(client);
                        }
                    }
                    _ => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_ref() else { continue };
            id += 1;
            let sql = format!("INSERT INTO lab_writes (id) VALUES ({id})");
            match tokio::time::timeout(Duration::from_secs(2), c.simple_query(&sql)).await {
                Ok(Ok(_)) => {
                    // Acknowledged: recorded only now.
                    let _ = writeln!(f, "{id}");
                }
                _ => {
                    errors += 1;
                    if errors % 20 == 1 {
                        eprintln!("{:.3} writer: row {id} not acknowledged; reconnecting", super::now_f());
                    }
                    conn = None;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// The result of `writer check`.
#[derive(Debug, Clone)]
pub struct Check {
    pub acked: usize,
    pub present: usize,
    pub missing: Vec<u64>,
}

impl Check {
    pub fn report(&self) -> String {
        if self.missing.is_empty() {
            format!(
                "writer: {} acknowledged rows, all present ({} rows in lab_writes)",
                self.acked, self.present
            )
        } else {
            format!(
                "writer: {} acknowledged rows, {} MISSING (first: {:?})",
                self.acked,
                self.missing.len(),
                &self.missing[..self.missing.len().min(10)]
            )
        }
    }
}

pub fn check(lab: &Lab) -> LabResult<Check> {
    let text = std::fs::read_to_string(acked(&lab.dir)).unwrap_or_default();
    let acked: BTreeSet<u64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
    let rows = client::query("SELECT id FROM lab_writes", Duration::from_secs(10))?
        .map_err(|e| LabError::Invalid(format!("reading lab_writes through the VIP: {e}")))?;
    let present: BTreeSet<u64> = rows.iter().filter_map(|r| r.parse().ok()).collect();
    Ok(Check {
        acked: acked.len(),
        present: present.len(),
        missing: acked.difference(&present).copied().collect(),
    })
}
