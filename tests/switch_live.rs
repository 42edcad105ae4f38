//! The no-restart switch on a live lab cluster: `pgstack lab up` with the reference agents
//! (`--set provider=heartbeat`), then the procedure of docs/migrating.md (maintenance mode,
//! `pgstack migrate-cib --live`, `crm_resource --refresh`, leave maintenance mode) switches
//! PGServer to pgstack's agents while the resources keep running: the same postmaster PID,
//! the same mount (its mount id in the postmaster's mount namespace), and the VIP answers
//! ARP from the client namespace at every probe (one every 100 ms) throughout.
//!
//! Root only; the lab's agents are those installed under /usr/lib/ocf/resource.d (the
//! nodes see the host's /usr). The lab's names are fixed, so a lab already running (another
//! run's) makes this test fail without touching it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgstack::cib::xml;
use pgstack::lab::{self, client, node, node_ns, proc, Lab, Options, Stack, Steps};

mod common;

/// The installed binary, checked to be the build of this tree.
fn exe() -> PathBuf {
    PathBuf::from(common::bin())
}

fn prerequisites() {
    common::require_root();
    exe();
    for a in ["Filesystem", "pgsql", "IPaddr2"] {
        for p in ["heartbeat", "pgstack"] {
            let f = format!("{}/{p}/{a}", lab::OCF_ROOT);
            common::require_file(&f);
        }
    }
    assert!(
        !Path::new(lab::DIR).exists(),
        "NOT RUN: a lab is running ({} exists); it is left alone",
        lab::DIR
    );
}

/// The lab, removed when dropped (also when the test panics).
struct Guard(Lab);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.0.down(&Steps::new(true)) {
            eprintln!("lab down: {e}");
        }
    }
}

/// Probes the VIP from the client every 100 ms until dropped; counts the probes nobody
/// answered.
struct ArpWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u32, Vec<String>)>>,
}

impl ArpWatch {
    fn start() -> ArpWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut probes, mut missed) = (0u32, Vec::new());
            while !s.load(Ordering::Relaxed) {
                let t = Instant::now();
                probes += 1;
                match client::arp_holders(Duration::from_millis(80)) {
                    Ok(m) if !m.is_empty() => {}
                    Ok(_) => {
                        missed.push(format!("probe {probes}: no answer at {:.3}", lab::now_f()))
                    }
                    Err(e) => missed.push(format!("probe {probes}: {e}")),
                }
                std::thread::sleep(Duration::from_millis(100).saturating_sub(t.elapsed()));
            }
            (probes, missed)
        });
        ArpWatch {
            stop,
            thread: Some(thread),
        }
    }
    fn finish(mut self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for ArpWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The id of the mount on `dir` as the process `pid` sees it (its mount namespace).
fn mount_id(pid: u32, dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    let d = dir.to_string_lossy();
    text.lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(&*d))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
}

fn sh(l: &Lab, n: &str, argv: &[&str]) -> String {
    node::exec(l, n, argv, Duration::from_secs(90))
        .unwrap_or_else(|e| panic!("{argv:?} on {n}: {e}"))
}

/// The primitives crm_mon reports: (id, agent, active, failed).
fn resources(l: &Lab, n: &str) -> Vec<(String, String, bool, bool)> {
    let out = sh(l, n, &["crm_mon", "-1", "-r", "--output-as=xml"]);
    let doc = xml::parse(&out).expect("crm_mon XML");
    doc.descendants()
        .into_iter()
        .filter(|e| e.name == "resource")
        .map(|e| {
            (
                e.attr("id").unwrap_or("").to_string(),
                e.attr("resource_agent").unwrap_or("").to_string(),
                e.attr("active") == Some("true"),
                e.attr("failed") == Some("true"),
            )
        })
        .collect()
}

#[test]
fn the_documented_procedure_switches_a_running_cluster_without_a_restart() {
    prerequisites();
    let opts = Options {
        stack: Stack::Shared,
        fencing: true,
        exe: exe(),
        sets: vec![("provider".into(), "heartbeat".into())],
        ..Options::default()
    };
    let l = Guard(Lab::up(&opts, &Steps::new(false)).expect("pgstack lab up"));
    let lab = &l.0;
    let active = lab.active_node().unwrap().expect("PGServer runs");
    let before = resources(lab, &active);
    assert!(
        before.iter().any(|r| r.1 == "ocf:heartbeat:pgsql" && r.2),
        "the lab does not run the reference agents: {before:?}"
    );
    let pms = proc::postmasters_in(&node_ns(&active));
    assert_eq!(pms.len(), 1, "postmasters on {active}: {pms:?}");
    let pm = pms[0];
    let mnt = mount_id(pm, &lab.mountpoint()).expect("the data mount");
    let watch = ArpWatch::start();
    std::thread::sleep(Duration::from_millis(500));

    let t0 = Instant::now();
    let exe = exe().display().to_string();
    sh(
        lab,
        &active,
        &[
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "maintenance-mode",
            "--update",
            "true",
        ],
    );
    let report = sh(lab, &active, &[&exe, "migrate-cib", "--live"]);
    eprintln!("migrate-cib --live:\n{report}");
    sh(lab, &active, &["crm_resource", "--refresh"]);
    let seen = lab::poll(
        "every resource probed running with pgstack's agent",
        60.0,
        Duration::from_millis(250),
        || {
            let r = resources(lab, &active);
            let prims: Vec<_> = r.iter().filter(|x| x.1.starts_with("ocf:")).collect();
            (!prims.is_empty()
                && prims
                    .iter()
                    .all(|x| x.1.starts_with("ocf:pgstack:") && x.2 && !x.3))
            .then_some(r)
        },
    )
    .expect("probes");
    sh(
        lab,
        &active,
        &[
            "crm_attribute",
            "--type",
            "crm_config",
            "--name",
            "maintenance-mode",
            "--update",
            "false",
        ],
    );
    lab.settle(60).expect("cluster idle after maintenance mode");
    let switch_s = t0.elapsed().as_secs_f64();
    // A few monitors of the new agents.
    std::thread::sleep(Duration::from_secs(3));
    let (probes, missed) = watch.finish();

    let after = resources(lab, &active);
    assert!(
        after
            .iter()
            .filter(|x| x.1.starts_with("ocf:"))
            .all(|x| x.1.starts_with("ocf:pgstack:") && x.2 && !x.3),
        "after: {after:?}"
    );
    assert!(proc::alive(pm), "the postmaster {pm} is gone");
    assert_eq!(
        proc::postmasters_in(&node_ns(&active)),
        vec![pm],
        "postmaster changed"
    );
    assert_eq!(
        mount_id(pm, &lab.mountpoint()).as_deref(),
        Some(mnt.as_str()),
        "the mount changed"
    );
    assert!(
        missed.is_empty(),
        "VIP absent at {} of {probes} probes: {missed:?}",
        missed.len()
    );
    assert!(client::query("select 1", Duration::from_secs(5))
        .unwrap()
        .is_ok());
    eprintln!(
        "switched in {switch_s:.2} s (maintenance on -> cluster idle); {probes} ARP probes, all answered; postmaster {pm}, mount {mnt}; {seen:?}"
    );
}
