//! End-to-end: a live 2-node Corosync/Pacemaker cluster in namespaces (`pgstack::lab`, the
//! harness `pgstack lab` runs), PGServer on a shared XFS loop device, a writer in the client
//! namespace. Root only; a test that cannot run fails. Every lab is removed in Drop.
//!
//! The tests share one set of namespace names, so they run one at a time (a lock).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgstack::lab::{self, client, fence, net, proc, storage, writer, Lab, Options, Stack, Steps};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

mod common;

/// The installed binary, checked to be the build of this tree.
fn exe() -> PathBuf {
    PathBuf::from(common::bin())
}

fn must_be_root() {
    common::require_root();
    exe();
}

/// A running lab, removed when dropped (also when the test panics).
struct Guard(Lab);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = writer::stop(&self.0.dir);
        if let Err(e) = self.0.down(&Steps::new(true)) {
            eprintln!("lab down: {e}");
        }
    }
}

fn up(fencing: bool) -> (Guard, f64) {
    up_with(fencing, &[])
}

fn up_with(fencing: bool, sets: &[(&str, &str)]) -> (Guard, f64) {
    // A lab left by a killed run must not make this one fail to start.
    let _ = Lab::down_dir(Path::new(lab::DIR), &Steps::new(true));
    // These tests are of the shared stack (PGServer on a shared disk), named explicitly.
    let opts = Options {
        stack: Stack::Shared,
        fencing,
        exe: exe(),
        sets: sets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    };
    let steps = Steps::new(false);
    let l = Lab::up(&opts, &steps).expect("pgstack lab up");
    (Guard(l), steps.elapsed().as_secs_f64())
}

/// Everything `down` must have removed.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for ns in net::lab_namespaces().unwrap() {
        v.push(format!("namespace {ns}"));
    }
    for p in proc::lab_processes(dir) {
        v.push(format!(
            "process {p}: {}",
            proc::cmdline(p).unwrap_or_default()
        ));
    }
    for p in proc::all_pids() {
        let c = proc::cmdline(p).unwrap_or_default();
        if c.contains(&dir.display().to_string()) && p != std::process::id() {
            v.push(format!("process {p}: {c}"));
        }
        let mi = std::fs::read_to_string(format!("/proc/{p}/mountinfo")).unwrap_or_default();
        if mi.contains(&dir.display().to_string()) {
            v.push(format!("mount under {} seen by pid {p}", dir.display()));
        }
    }
    for l in storage::loops_of(dir) {
        v.push(format!("loop device {l}"));
    }
    if dir.exists() {
        v.push(format!("directory {}", dir.display()));
    }
    if Path::new(lab::FENCE_AGENT).exists() {
        v.push(lab::FENCE_AGENT.to_string());
    }
    v.sort();
    v.dedup();
    v
}

/// Exactly one VIP holder (host view and ARP from the client) and one postmaster.
fn one_of_everything(l: &Lab, when: &str) {
    // Just after a move the old holder's ARP entry can still be answered for an instant:
    // bounded retries, then the assertion.
    let mut last = String::new();
    for _ in 0..20 {
        let st = l.status().unwrap();
        let holders = st.vip_holders().len();
        if holders == 1 && st.arp.len() == 1 && st.postmasters() == 1 {
            return;
        }
        last = st.report();
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{when}: not exactly one VIP holder / ARP answer / postmaster:\n{last}");
}

#[test]
fn up_answers_through_the_vip_within_30s_and_down_leaves_nothing_also_after_a_failed_or_killed_up()
{
    must_be_root();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(lab::DIR);
    let (g, secs) = up(true);
    eprintln!("up from nothing to an answer through the VIP: {secs:.2} s");
    let rows = client::query("select 42", Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(rows, ["42"]);
    assert!(secs < 30.0, "up took {secs:.2} s (bound 30 s)");
    // A second up is refused while this one runs.
    let e = Lab::up(
        &Options {
            stack: Stack::Shared,
            exe: exe(),
            ..Options::default()
        },
        &Steps::new(true),
    )
    .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(net::lab_namespaces().unwrap().len() >= 4);
    let t = Instant::now();
    drop(g);
    eprintln!("down: {:.2} s", t.elapsed().as_secs_f64());
    let left = leftovers(&dir);
    assert!(left.is_empty(), "down left: {left:#?}");

    // A failed up (the template refuses a value after the network and the disk exist)
    // removes what it made itself.
    let e = Lab::up(
        &Options {
            stack: Stack::Shared,
            exe: exe(),
            sets: vec![("vip_cidr".into(), "33".into())],
            ..Options::default()
        },
        &Steps::new(false),
    )
    .unwrap_err();
    assert!(e.to_string().contains("vip_cidr"), "{e}");
    let left = leftovers(&dir);
    assert!(left.is_empty(), "a failed up left: {left:#?}");

    // An interrupted up (SIGKILL while the nodes boot): down removes everything.
    let mut child = std::process::Command::new(exe())
        .args(["lab", "up", "--stack", "shared"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let booting = lab::poll("nodes booting", 60.0, Duration::from_millis(20), || {
        dir.join("n1").join("init.pid").exists().then_some(())
    });
    let _ = child.kill();
    let _ = child.wait();
    booting.expect("the interrupted up reached the nodes' boot");
    Lab::down_dir(&dir, &Steps::new(false)).expect("down after an interrupted up");
    let left = leftovers(&dir);
    assert!(
        left.is_empty(),
        "down after an interrupted up left: {left:#?}"
    );
}

#[test]
fn moves_crashes_and_a_writer_lose_no_acknowledged_row_and_fencing_ends_a_split() {
    must_be_root();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (g, _) = up(true);
    let l = &g.0;
    writer::start(l).expect("writer");
    one_of_everything(l, "after up");

    // Managed move, read from the cluster's own history.
    let m = l.switchover_measured(None).expect("switchover");
    eprintln!("{}", m.report());
    assert!(m.in_order(), "{}", m.report());
    assert!(!m.constraint_left, "{}", m.report());
    one_of_everything(l, "after the managed move");

    // Power cut of the active node.
    let (victim, survivor, t) = l.crash_measured(None).expect("crash takeover");
    eprintln!("{victim} cut, {survivor} took over: {}", t.report());
    assert_ne!(victim, survivor);
    let rows = client::query("select 1", Duration::from_secs(5)).unwrap();
    assert!(
        rows.is_ok(),
        "no answer through the VIP from the survivor: {rows:?}"
    );
    one_of_everything(l, "after the crash");
    l.restore(&victim).unwrap();
    l.wait_online(std::slice::from_ref(&victim), 60.0).unwrap();
    l.settle(60).unwrap();

    // Ten consecutive moves and crashes, alternating nodes (moves in both directions,
    // crashes of n1 and n2 in turn), crashed nodes restored.
    for k in 0..10 {
        if k % 4 == 0 || k % 4 == 3 {
            let m = l.switchover_measured(None).expect("switchover");
            eprintln!("cycle {k}: {}", m.report());
            assert!(m.in_order() && !m.constraint_left, "{}", m.report());
        } else {
            let (v, s, t) = l.crash_measured(None).expect("crash takeover");
            eprintln!("cycle {k}: {v} cut, {s} took over: {}", t.report());
            one_of_everything(l, &format!("cycle {k}, before restoring {v}"));
            l.restore(&v).unwrap();
            l.wait_online(std::slice::from_ref(&v), 60.0).unwrap();
            l.settle(60).unwrap();
        }
        one_of_everything(l, &format!("cycle {k}"));
    }
    let c = writer::check(l).unwrap();
    eprintln!("{}", c.report());
    assert!(c.acked > 50, "{}", c.report());
    assert!(c.missing.is_empty(), "{}", c.report());

    // With fencing, killing corosync on the active node ends with it fenced and the stack
    // on the other node.
    let active = l.active_node().unwrap().expect("PGServer runs");
    let other = l.other_node(&active).unwrap();
    l.kill_corosync(&active).unwrap();
    let fenced = lab::poll("the node fenced", 60.0, Duration::from_millis(200), || {
        fence::events(&l.dir)
            .iter()
            .any(|e| e.contains(&format!("off {active} -> ok")))
            .then_some(())
    });
    assert!(
        fenced.is_ok(),
        "{active} not fenced: {:?}",
        fence::events(&l.dir)
    );
    let on_other = lab::poll(
        "the stack on the other node",
        60.0,
        Duration::from_millis(200),
        || (l.active_node().ok().flatten().as_deref() == Some(other.as_str())).then_some(()),
    );
    assert!(on_other.is_ok(), "{}", l.status().unwrap().report());
    client::first_answer(30.0).unwrap();
    let st = l.status().unwrap();
    eprintln!("{}", st.report());
    assert!(!st.nodes.iter().find(|n| n.name == active).unwrap().alive);
    one_of_everything(l, "after kill-corosync with fencing");
    let c = writer::check(l).unwrap();
    assert!(c.missing.is_empty(), "{}", c.report());
}

#[test]
fn without_fencing_a_killed_corosync_is_a_split_brain_that_status_reports() {
    must_be_root();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (g, _) = up(false);
    let l = &g.0;
    let active = l.active_node().unwrap().expect("PGServer runs");
    l.kill_corosync(&active).unwrap();
    let split = lab::poll("a split brain", 60.0, Duration::from_millis(250), || {
        let st = l.status().ok()?;
        (st.split_brain() && st.postmasters() >= 2).then_some(st)
    });
    let st = match split {
        Ok(st) => st,
        Err(e) => panic!("{e}:\n{}", l.status().unwrap().report()),
    };
    let report = st.report();
    eprintln!("{report}");
    assert!(report.contains("SPLIT BRAIN"), "{report}");
    // The node whose corosync died keeps everything it ran.
    let n = st.nodes.iter().find(|n| n.name == active).unwrap();
    assert!(n.alive && n.holds_vip && n.postmasters == 1, "{report}");
}

#[test]
fn without_fencing_the_reference_ipaddr2_puts_the_vip_on_both_nodes() {
    must_be_root();
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (g, _) = up_with(false, &[("provider", "heartbeat")]);
    let l = &g.0;
    let active = l.active_node().unwrap().expect("PGServer runs");
    l.kill_corosync(&active).unwrap();
    let split = lab::poll("two VIP holders", 60.0, Duration::from_millis(250), || {
        let st = l.status().ok()?;
        (st.vip_holders().len() == 2 && st.arp.len() == 2).then_some(st)
    });
    let st = match split {
        Ok(st) => st,
        Err(e) => panic!("{e}:\n{}", l.status().unwrap().report()),
    };
    let report = st.report();
    eprintln!("{report}");
    assert!(report.contains("SPLIT BRAIN"), "{report}");
}
