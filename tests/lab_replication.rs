//! End-to-end: the lab's replication stack (`pgstack lab up --stack replication`), a live
//! Corosync/Pacemaker cluster in namespaces running PostgreSQL 15 as a promotable clone with
//! the VIP on the primary, first with PAF (`--set provider=heartbeat`: ocf:heartbeat:pgsqlms
//! and IPaddr2), then with pgstack's own agents. Root only; a test that cannot run fails.
//! Every lab is removed in Drop.
//!
//! The tests share the lab's namespace names and state directory, so they run one at a
//! time (a lock).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use pgstack::lab::{self, client, repl, writer, Lab, Options, Stack, Steps};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn exe() -> PathBuf {
    PathBuf::from(common::bin())
}

/// A running lab, removed when dropped (also when the test panics).
struct Guard(Lab);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = writer::stop(&self.0.dir);
        // A failed run keeps the nodes' pacemaker.log (the agents' own lines) for reading.
        if std::thread::panicking() {
            let keep = PathBuf::from(format!("/tmp/pgst-lab-failed-{}", std::process::id()));
            for n in self.0.node_names() {
                let from = self
                    .0
                    .node_dir(&n)
                    .join("log-pacemaker")
                    .join("pacemaker.log");
                let _ = std::fs::create_dir_all(&keep);
                if std::fs::copy(&from, keep.join(format!("{n}-pacemaker.log"))).is_ok() {
                    eprintln!("kept {n}'s pacemaker.log in {}", keep.display());
                }
            }
        }
        if let Err(e) = self.0.down(&Steps::new(true)) {
            eprintln!("lab down: {e}");
        }
    }
}

const PAF: &str = "/usr/lib/ocf/resource.d/heartbeat/pgsqlms";

/// The promotable mode of pgstack's agent is there: its meta-data advertises promote.
/// Until it is, the pgstack variants fail at once with this message instead of waiting for
/// a promotion that cannot come.
fn require_pgstack_promotable() {
    let agent = format!("{}/postgresql", common::ocf_dir());
    let out = std::process::Command::new(&agent)
        .arg("meta-data")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .output()
        .unwrap_or_else(|e| panic!("NOT RUN: cannot run {agent}: {e}"));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("<action name=\"promote\""),
        "NOT READY: {agent} does not advertise promote in its meta-data: the promotable \
         mode of ocf:pgstack:postgresql is not in this build, so the replication stack \
         cannot run with provider=pgstack yet"
    );
}

fn up(provider: &str, nodes: u8, sync: bool) -> Guard {
    common::require_root();
    if provider == "heartbeat" {
        common::require_file(PAF);
    } else {
        require_pgstack_promotable();
    }
    // A lab left by a killed run must not make this one fail to start.
    let _ = Lab::down_dir(Path::new(lab::DIR), &Steps::new(true));
    let opts = Options {
        nodes,
        stack: Stack::Replication,
        sync,
        exe: exe(),
        sets: vec![("provider".into(), provider.into())],
        ..Options::default()
    };
    let steps = Steps::new(false);
    let l = Lab::up(&opts, &steps).expect("pgstack lab up --stack replication");
    eprintln!(
        "up ({provider}, {nodes} nodes{}): {:.2} s",
        if sync { ", sync" } else { "" },
        steps.elapsed().as_secs_f64()
    );
    Guard(l)
}

/// Exactly one primary (PostgreSQL's own view on every live node), and it holds the VIP,
/// the only MAC answering ARP for it; every other live node is a standby. Returns the
/// primary. Bounded retries: just after a move an old ARP answer can linger for an instant.
fn one_primary(l: &Lab, when: &str) -> String {
    let mut last = String::new();
    for _ in 0..40 {
        let st = l.status().unwrap();
        let prim = st.primaries();
        let live_pg = st.nodes.iter().filter(|n| n.pg.is_some()).count();
        let live = st.nodes.iter().filter(|n| n.alive).count();
        if prim.len() == 1
            && st.vip_holders() == prim
            && st.arp.len() == 1
            && live_pg == live
            && !st.split_brain()
        {
            return prim[0].to_string();
        }
        // Never two primaries, even for an instant.
        assert!(prim.len() < 2, "{when}: TWO PRIMARIES:\n{}", st.report());
        last = st.report();
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{when}: not exactly one primary holding the VIP:\n{last}");
}

/// Every standby streams from the primary (the primary lists it as streaming).
fn standbys_stream(l: &Lab, primary: &str, when: &str) {
    let r = lab::poll(
        &format!("{when}: every standby streaming"),
        60.0,
        Duration::from_millis(500),
        || all_stream(l, primary).then_some(()),
    );
    if let Err(e) = r {
        panic!("{e}:\n{}", l.status().unwrap().report());
    }
}

/// Before a crash: every standby has a positive promotion score (after a switchover the
/// demoted node's score is negative until the primary's monitor refreshes it).
fn promotable(l: &Lab, primary: &str) {
    let r = lab::poll(
        "every standby promotable (score > 0)",
        60.0,
        Duration::from_millis(500),
        || {
            let s = repl::scores(l, primary);
            s.iter()
                .filter(|(n, _)| n != primary && lab::node::is_alive(l, n))
                .all(|(_, v)| v.is_some_and(|v| v > 0))
                .then_some(())
        },
    );
    if let Err(e) = r {
        panic!("{e}: {:?}", repl::scores(l, primary));
    }
}

/// Restores `victim` (PAF: rebuilt from the primary first) and waits until it streams.
fn restore(l: &Lab, victim: &str, when: &str) -> Option<f64> {
    let rebuilt = l.restore(victim).expect("restore");
    l.wait_online(&[victim.to_string()], 60.0).unwrap();
    l.settle(90).unwrap();
    let p = one_primary(l, &format!("{when}, {victim} restored"));
    assert_ne!(
        p, victim,
        "{when}: the restored node came back as the primary"
    );
    standbys_stream(l, &p, &format!("{when}, {victim} restored"));
    rebuilt
}

/// What became of a crashed former primary restored with pgstack's agents.
#[derive(Debug)]
enum Back {
    /// It had not diverged: it streams as it is.
    Streams,
    /// Its start was refused with this reason; `pgstack lab rejoin` rebuilt it (seconds).
    Rejoined { reason: String, secs: f64 },
}

/// Whether every standby streams from `primary` now.
fn all_stream(l: &Lab, primary: &str) -> bool {
    let Ok(st) = l.status() else { return false };
    let Some(p) = st
        .nodes
        .iter()
        .find(|n| n.name == primary)
        .and_then(|n| n.pg.clone())
    else {
        return false;
    };
    let want = st.nodes.iter().filter(|n| n.alive).count() - 1;
    p.standbys
        .iter()
        .filter(|s| s.split(' ').nth(1) == Some("streaming"))
        .count()
        == want
}

/// Restores the crashed former primary `victim` (pgstack): either it streams (it had not
/// diverged), or its start is refused with a reason naming `pgstack pg rejoin` (its
/// history went past the fork point of the new primary's timeline, or the primary did
/// not answer the check), then `pgstack lab rejoin` rebuilds it and it streams. Bounded.
fn restore_or_rejoin(l: &Lab, primary: &str, victim: &str) -> Back {
    l.restore(victim).expect("restore");
    l.wait_online(&[victim.to_string()], 60.0).unwrap();
    let _ = l.settle(90);
    let seen = lab::poll(
        &format!("{victim} streaming or its start refused"),
        90.0,
        Duration::from_millis(500),
        || {
            if all_stream(l, primary) {
                return Some(None);
            }
            repl::start_failure(l, victim).map(Some)
        },
    );
    let back = match seen {
        Ok(None) => Back::Streams,
        Ok(Some(reason)) => {
            assert!(
                reason.contains("pgstack pg rejoin")
                    && (reason.contains("diverged") || reason.contains("did not answer")),
                "{victim}: its start failed for another reason: {reason:?}\n{}",
                l.status().unwrap().report()
            );
            let r = repl::rejoin(l, victim, false).expect("pgstack lab rejoin");
            let secs = r.secs;
            eprintln!("{victim} rejoined in {secs:.2} s: {}", r.out.trim());
            let _ = l.settle(90);
            Back::Rejoined { reason, secs }
        }
        Err(e) => panic!("{e}:\n{}", l.status().unwrap().report()),
    };
    let p = one_primary(l, &format!("after the crash, {victim} back"));
    assert_eq!(p, primary, "the primary moved when {victim} came back");
    standbys_stream(l, &p, &format!("after the crash, {victim} back"));
    back
}

/// A switchover and a crash failover: exactly one primary after each; the crashed
/// primary comes back as a standby.
fn switchover_and_failover(provider: &str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = up(provider, 2, false);
    let l = &g.0;
    let p0 = one_primary(l, "after up");
    standbys_stream(l, &p0, "after up");
    writer::start(l).expect("writer");

    let m = l.switchover_measured(None).expect("switchover");
    eprintln!("{provider}: {}", m.report());
    assert!(m.in_order(), "{}", m.report());
    assert!(!m.constraint_left, "{}", m.report());
    let p1 = one_primary(l, "after the switchover");
    assert_ne!(p1, p0, "the switchover left the primary on {p0}");
    standbys_stream(l, &p1, "after the switchover");

    if provider == "heartbeat" {
        promotable(l, &p1);
    } else {
        // pgstack: the power cut comes at once, while the new primary may still hold the
        // demoted node's -1000 from its first monitor (before that node reconnected):
        // a primary lost right after a switchover must fail over all the same.
        eprintln!(
            "{provider}: promotion scores at the cut: {:?}",
            repl::scores(l, &p1)
        );
    }
    let (victim, survivor, t) = l.crash_measured(None).expect("crash failover");
    eprintln!(
        "{provider}: {victim} cut, {survivor} promoted: {}",
        t.report()
    );
    assert_eq!(victim, p1);
    let p2 = one_primary(l, "after the crash");
    assert_eq!(p2, survivor);
    if provider == "heartbeat" {
        let rebuilt = restore(l, &victim, "after the crash");
        eprintln!(
            "{provider}: {victim} back as a standby{}",
            match rebuilt {
                Some(s) => format!(" (rebuilt with pg_basebackup in {s:.2} s)"),
                None => String::new(),
            }
        );
    } else {
        match restore_or_rejoin(l, &p2, &victim) {
            Back::Streams => {
                eprintln!("{provider}: {victim} back as a standby: it had not diverged, it streams")
            }
            Back::Rejoined { reason, secs } => eprintln!(
                "{provider}: {victim} refused ({reason}), rejoined in {secs:.2} s, streams"
            ),
        }
    }
    let c = writer::check(l).unwrap();
    // Asynchronous replication: a crash may lose the last acknowledged commits (what the
    // zero-loss run excludes with synchronous replication); recorded here.
    eprintln!(
        "{provider}: after a switchover and an asynchronous crash failover: {}",
        c.report()
    );
    assert!(c.acked > 20, "{}", c.report());
}

/// Holds the standby `held` back. The standby the scores favour (PAF: 1000 for the first
/// by name on equal positions), with `stop_receive`, stops receiving WAL (its
/// primary_conninfo emptied over the agent's own setting: ALTER SYSTEM wins, the reload
/// ends the WAL receiver); pausing only its replay would not do, as it keeps receiving
/// everything the primary sends. Its score stays what the primary's last monitor set:
/// stale, while the writer goes on.
fn hold(l: &Lab, held: &str, stop_receive: bool) {
    if stop_receive {
        for sql in [
            "alter system set primary_conninfo = ''",
            "select pg_reload_conf()",
        ] {
            repl::node_sql(l, held, sql).expect("stop the held standby's WAL receiver");
        }
        lab::poll(
            "the held standby's WAL receiver gone",
            20.0,
            Duration::from_millis(200),
            || {
                let r =
                    repl::node_sql(l, held, "select count(*) from pg_stat_wal_receiver").ok()?;
                (r.trim() == "0").then_some(())
            },
        )
        .expect("the WAL receiver of the held standby stops");
    } else {
        // The shape first recorded with PAF: only the replay is held (the standby still
        // receives everything the primary sends).
        repl::node_sql(l, held, "select pg_wal_replay_pause()").expect("pause replay");
    }
}

/// The stale-score setup: 3 nodes up, every standby streaming and promotable, the first
/// standby by name held back ([`hold`]), the writer running for 3 s. Returns the lock, the
/// lab, the primary and the standbys (the held one first).
fn held_back(
    provider: &str,
    stop_receive: bool,
) -> (MutexGuard<'static, ()>, Guard, String, Vec<String>) {
    let one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = up(provider, 3, false);
    let l = &g.0;
    let p = one_primary(l, "after up");
    standbys_stream(l, &p, "after up");
    promotable(l, &p);
    let standbys: Vec<String> = l.node_names().into_iter().filter(|n| *n != p).collect();
    hold(l, &standbys[0], stop_receive);
    writer::start(l).expect("writer");
    std::thread::sleep(Duration::from_secs(3));
    (one, g, p, standbys)
}

/// PAF #195/#225's shape: three nodes, one standby's replay held back with
/// pg_wal_replay_pause() (its score, from the primary's view of what it received, says it
/// is current), the primary crashed. Records which standby is promoted and whether rows
/// are lost; returns (promoted, the standbys' LSNs before the crash, missing rows).
fn stale_score(provider: &str, stop_receive: bool) -> (String, Vec<repl::PgNode>, usize) {
    let (_one, g, p, standbys) = held_back(provider, stop_receive);
    let l = &g.0;
    let held = standbys[0].clone();
    let before: Vec<repl::PgNode> = standbys
        .iter()
        .filter_map(|n| repl::pg_node(l, n))
        .collect();
    let scores = repl::scores(l, &p);
    for s in &before {
        eprintln!("{provider}: before the crash {}: {}", s.name, s.report());
    }
    eprintln!("{provider}: promotion scores before the crash: {scores:?}");
    let (victim, survivor, t) = l.crash_measured(Some(&p)).expect("crash failover");
    eprintln!(
        "{provider}: {victim} cut, {survivor} promoted: {}",
        t.report()
    );
    let now = one_primary(l, "after the crash");
    assert_eq!(now, survivor);
    let c = writer::check(l).unwrap();
    eprintln!(
        "{provider}: stale-score case: replay held on {held}, {survivor} promoted; {}",
        c.report()
    );
    // Whether the other standby follows the new primary (it cannot when it had more WAL).
    let follows = lab::poll(
        "the other standby streaming from the new primary",
        20.0,
        Duration::from_millis(500),
        || {
            let p = repl::pg_node(l, &survivor)?;
            p.standbys
                .iter()
                .any(|s| s.split(' ').nth(1) == Some("streaming"))
                .then_some(())
        },
    );
    eprintln!(
        "{provider}: the other standby {} the new primary:\n{}",
        if follows.is_ok() {
            "streams from"
        } else {
            "does NOT stream from"
        },
        l.status().unwrap().report()
    );
    (survivor, before, c.missing.len())
}

/// With synchronous replication, `cycles` switchovers and crash failovers alternating
/// (crashed nodes restored as standbys) under the writer: no acknowledged row missing and
/// never two primaries at any check.
fn zero_loss(provider: &str, cycles: usize) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let g = up(provider, 2, true);
    let l = &g.0;
    let p = one_primary(l, "after up");
    standbys_stream(l, &p, "after up");
    writer::start(l).expect("writer");
    for k in 0..cycles {
        let p = one_primary(l, &format!("cycle {k}"));
        if k % 2 == 0 {
            let m = l.switchover_measured(None).expect("switchover");
            eprintln!("{provider} cycle {k}: {}", m.report());
            assert!(m.in_order() && !m.constraint_left, "{}", m.report());
            let q = one_primary(l, &format!("cycle {k}, after the switchover"));
            assert_ne!(q, p);
            standbys_stream(l, &q, &format!("cycle {k}"));
        } else {
            promotable(l, &p);
            let (v, s, t) = l.crash_measured(None).expect("crash failover");
            eprintln!(
                "{provider} cycle {k}: {v} cut, {s} promoted: {}",
                t.report()
            );
            assert_eq!(one_primary(l, &format!("cycle {k}, after the crash")), s);
            if provider == "heartbeat" {
                restore(l, &v, &format!("cycle {k}"));
            } else {
                // A commit's WAL is written on the primary before a standby has it: a
                // crashed primary may have diverged with synchronous replication too.
                let back = restore_or_rejoin(l, &s, &v);
                eprintln!("{provider} cycle {k}: {v} back: {back:?}");
            }
        }
        let c = writer::check(l).unwrap();
        eprintln!("{provider} cycle {k}: {}", c.report());
        assert!(c.missing.is_empty(), "cycle {k}: {}", c.report());
    }
    let c = writer::check(l).unwrap();
    assert!(c.acked > 100, "{}", c.report());
    assert!(c.missing.is_empty(), "{}", c.report());
}

#[test]
fn paf_switchover_and_crash_failover_leave_exactly_one_primary() {
    switchover_and_failover("heartbeat");
}

#[test]
fn paf_stale_score_case_is_recorded() {
    let (promoted, before, missing) = stale_score("heartbeat", false);
    // PAF's behaviour is recorded (docs/compatibility.md), not judged: one primary came out.
    eprintln!(
        "PAF promoted {promoted}; standbys before: {:?}; {missing} acknowledged rows missing",
        before
            .iter()
            .map(|s| format!("{} recv {} replay {}", s.name, s.receive, s.replay))
            .collect::<Vec<_>>()
    );
}

/// PAF in the stale-score shape with the favoured standby's receive stopped (what the
/// pgstack case runs): the primary cut, then 90 s of watching. Prints when (and whether)
/// the VIP answers again, which node Pacemaker promotes, and what PAF logged on the
/// survivors (its promote, its notifies, the failed actions); asserts what PAF did.
#[test]
fn paf_stale_score_case_with_the_receive_stopped_is_recorded() {
    let (_one, g, p, standbys) = held_back("heartbeat", true);
    let l = &g.0;
    let held = standbys[0].clone();
    let other = standbys[1].clone();
    for n in &standbys {
        if let Some(s) = repl::pg_node(l, n) {
            eprintln!("PAF: before the crash {}: {}", s.name, s.report());
        }
    }
    eprintln!(
        "PAF: promotion scores before the crash: {:?}",
        repl::scores(l, &p)
    );
    let cut = l.crash(&p).expect("power cut");
    let answered = client::first_answer(90.0);
    let after = lab::now_f() - cut;
    match &answered {
        Ok(t) => eprintln!(
            "PAF: first answer through the VIP {:.2} s after the cut",
            t - cut
        ),
        Err(e) => eprintln!("PAF: no answer through the VIP within {after:.0} s: {e}"),
    }
    let _ = l.settle(60);
    let st = l.status().unwrap();
    eprintln!("PAF: after the crash:\n{}", st.report());
    for n in [&held, &other] {
        if let Ok(out) = lab::node::exec(
            l,
            n,
            &["crm_mon", "-1", "-f", "-r"],
            Duration::from_secs(10),
        ) {
            eprintln!("PAF: crm_mon on {n}:\n{out}");
            break;
        }
    }
    for n in [&held, &other] {
        let log = l.node_dir(n).join("log-pacemaker").join("pacemaker.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .filter(|x| {
                x.contains("pgsqlms")
                    || (x.contains("pgsqld")
                        && (x.contains("promote")
                            || x.contains("Result of")
                            || x.contains("error")
                            || x.contains("fail")))
            })
            .collect();
        let tail = &lines[lines.len().saturating_sub(80)..];
        eprintln!(
            "PAF: {n}'s pacemaker.log, pgsqlms and pgsqld lines (last {}):",
            tail.len()
        );
        for x in tail {
            eprintln!("  {x}");
        }
    }
    eprintln!(
        "PAF: receive stopped on {held} (the stale score); promoted now: {:?}",
        st.primaries()
    );
    // What PAF does here (seen in every run so far): its validation, run by every action,
    // requires application_name=<node> in primary_conninfo, so the held standby's next
    // monitor fails with 2 (invalid parameter, a hard failure) and so does its stop
    // (PAF #156): Pacemaker fences it. With the primary cut too, the last standby is one
    // node of three, without quorum: nothing is promoted and the VIP stays down.
    let log = std::fs::read_to_string(
        l.node_dir(&held)
            .join("log-pacemaker")
            .join("pacemaker.log"),
    )
    .unwrap_or_default();
    assert!(
        log.contains(&format!(
            "primary_conninfo\" MUST contain 'application_name={held}'"
        )),
        "PAF did not refuse the emptied primary_conninfo on {held}"
    );
    assert!(
        answered.is_err() && st.primaries().is_empty(),
        "PAF promoted {:?} this time (the record in docs/compatibility.md says: none)",
        st.primaries()
    );
}

/// The zero-loss run with PAF: long (20 cycles), run on request with `--ignored`
/// (its figures are in docs/benchmarks.md and docs/compatibility.md).
#[test]
#[ignore]
fn paf_zero_loss_with_synchronous_replication_over_20_switchovers_and_failovers() {
    zero_loss("heartbeat", 20);
}

#[test]
fn pgstack_switchover_and_crash_failover_leave_exactly_one_primary() {
    switchover_and_failover("pgstack");
}

#[test]
fn pgstack_stale_score_case_promotes_the_standby_with_the_highest_lsn() {
    let (promoted, before, _) = stale_score("pgstack", true);
    let lsn = |s: &str| -> u64 {
        let (a, b) = s.split_once('/').unwrap_or(("0", "0"));
        (u64::from_str_radix(a, 16).unwrap_or(0) << 32) | u64::from_str_radix(b, 16).unwrap_or(0)
    };
    let best = |n: &repl::PgNode| lsn(&n.receive).max(lsn(&n.replay));
    let top = before.iter().map(best).max().unwrap();
    let chosen = before.iter().find(|n| n.name == promoted).unwrap();
    assert_eq!(
        best(chosen),
        top,
        "{promoted} promoted, but another standby had more WAL: {before:?}"
    );
}

#[test]
#[ignore = "long (20 cycles, 4-9 minutes); run with --ignored (figures in docs/benchmarks.md)"]
fn pgstack_zero_loss_with_synchronous_replication_over_20_switchovers_and_failovers() {
    zero_loss("pgstack", 20);
}

/// The main job as the README runs it: `make lab-run`, the scenario of `make lab` on the
/// installed binary with the Makefile's default LAB_ARGS (the replication stack,
/// synchronous): up, a writer, a switchover, a power cut of the primary, the crashed node
/// restored, the acknowledged-row check, down, every step exiting 0.
#[test]
fn make_lab_runs_the_main_job() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    common::require_root();
    require_pgstack_promotable();
    let dir = Path::new(lab::DIR);
    let _ = Lab::down_dir(dir, &Steps::new(true));
    // make's own trap removes the lab; this one covers a make killed at the time limit.
    struct Down;
    impl Drop for Down {
        fn drop(&mut self) {
            let _ = Lab::down_dir(Path::new(lab::DIR), &Steps::new(true));
        }
    }
    let _down = Down;
    let pgstack = format!("PGSTACK={}", exe().display());
    let out = common::run(
        &[
            "make",
            "--no-print-directory",
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "lab-run",
            &pgstack,
        ],
        &[],
        Duration::from_secs(480),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    assert!(out.status.success(), "make lab-run failed:\n{text}");
    for want in [
        "synchronous replication",
        "in order; constraint cleared",
        "takeover ",
        "acknowledged rows, all present",
        "down:",
    ] {
        assert!(text.contains(want), "no {want:?} in the output:\n{text}");
    }
    assert!(!text.contains("MISSING"), "{text}");
    assert!(!dir.exists(), "the lab's directory is left");
    let left = lab::net::lab_namespaces().unwrap();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}

/// Rows of `what` in the test's table on `node` (`None`: PostgreSQL does not answer there).
fn rows(l: &Lab, node: &str, what: &str) -> Option<u64> {
    repl::node_sql(
        l,
        node,
        &format!("select count(*) from pgst_rejoin where what = '{what}'"),
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

/// The divergence, for certain (2 nodes, asynchronous): the test's table with 10 rows
/// `before`, then [`diverge`]. Returns the lab, the old primary (down), the new primary
/// and the takeover's seconds.
fn diverged(provider: &str) -> (Guard, String, String, f64) {
    let g = up(provider, 2, false);
    let l = &g.0;
    let old = one_primary(l, "after up");
    let new = l.other_node(&old).unwrap();
    repl::node_sql(
        l,
        &old,
        "create table pgst_rejoin (id serial primary key, what text not null); \
         insert into pgst_rejoin (what) select 'before' from generate_series(1, 10)",
    )
    .expect("the test's table");
    lab::poll(
        "the table's first rows on the standby",
        20.0,
        Duration::from_millis(200),
        || (rows(l, &new, "before") == Some(10)).then_some(()),
    )
    .unwrap();
    let failover = diverge(l, &old, &new, 1);
    (g, old, new, failover)
}

/// Round `round` of the divergence of the primary `old` from its standby `new`: the WAL
/// sender to the standby stopped ([`repl::freeze_wal_sender`]), 100 rows
/// `diverged<round>` committed on the primary that the standby never receives, the
/// primary cut; the standby is promoted on a new timeline and gets 20 rows
/// `after<round>` of its own. Returns the takeover's seconds.
fn diverge(l: &Lab, old: &str, new: &str, round: u32) -> f64 {
    standbys_stream(l, old, &format!("round {round}, before the divergence"));
    promotable(l, old);
    let pid = repl::freeze_wal_sender(l, old, new).expect("stop the WAL sender");
    repl::node_sql(
        l,
        old,
        &format!(
            "insert into pgst_rejoin (what) select 'diverged{round}' \
             from generate_series(1, 100)"
        ),
    )
    .expect("the diverged rows, committed on the primary");
    let (p, s) = (
        repl::pg_node(l, old).unwrap(),
        repl::pg_node(l, new).unwrap(),
    );
    eprintln!(
        "round {round}: WAL sender {pid} on {old} stopped; {old}: {}; {new}: {}",
        p.report(),
        s.report()
    );
    let diverged = format!("diverged{round}");
    assert_eq!(rows(l, old, &diverged), Some(100));
    assert_eq!(
        rows(l, new, &diverged),
        Some(0),
        "{new} has the rows committed after its WAL sender stopped"
    );
    assert_ne!(
        p.current, s.receive,
        "{new} received everything {old} wrote"
    );

    let (victim, survivor, t) = l.crash_measured(Some(old)).expect("crash failover");
    eprintln!(
        "round {round}: {victim} cut, {survivor} promoted: {}",
        t.report()
    );
    assert_eq!((victim.as_str(), survivor.as_str()), (old, new));
    assert_eq!(one_primary(l, "after the crash"), new);
    repl::node_sql(
        l,
        new,
        &format!(
            "insert into pgst_rejoin (what) select 'after{round}' from generate_series(1, 20)"
        ),
    )
    .expect("rows on the new primary");
    t.total
}

/// The test's rows on `node`, counted by what they are.
fn table(l: &Lab, node: &str) -> String {
    repl::node_sql(
        l,
        node,
        "select string_agg(what || '=' || n, ' ' order by what) from \
         (select what, count(*) n from pgst_rejoin group by what) c",
    )
    .unwrap_or_default()
    .trim()
    .to_string()
}

/// The timeline the primary `node` writes on (its current WAL file's).
fn primary_timeline(l: &Lab, node: &str) -> u32 {
    let f = repl::node_sql(l, node, "select pg_walfile_name(pg_current_wal_lsn())").unwrap();
    u32::from_str_radix(&f.trim()[..8], 16).unwrap()
}

/// The data directories kept aside beside `node`'s (a copy's `pgdata.diverged.N`).
fn kept_aside(l: &Lab, node: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repl::node_db(l, node))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pgdata.diverged"))
        .collect();
    v.sort();
    v
}

/// `pgstack lab rejoin NODE [--rewind]`, the operator's command (the installed binary):
/// its output and the seconds of the rejoin it prints.
fn lab_rejoin(l: &Lab, node: &str, rewind: bool) -> (String, f64) {
    let exe = exe();
    let dir = l.dir.display().to_string();
    let mut argv = vec![exe.to_str().unwrap(), "lab", "--dir", &dir, "rejoin", node];
    if rewind {
        argv.push("--rewind");
    }
    let out = common::run(&argv, &[], Duration::from_secs(180));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{argv:?} failed:\n{text}");
    let secs = text
        .split_once(&format!("{node}: rejoined in "))
        .and_then(|(_, t)| t.split_once(" s")?.0.parse().ok())
        .unwrap_or_else(|| panic!("{argv:?} did not say how long: {text}"));
    (text, secs)
}

/// After round `round` of [`diverge`]: the old primary booted with its data directory as
/// the crash left it (`restore --as-is`): the cluster's start there is refused with a
/// reason naming `pgstack pg rejoin`, it neither streams nor is promoted, the new primary
/// stays. `pgstack lab rejoin NODE` (`rewind`: `--rewind`) then rebuilds it: rewound in place
/// (the same directory, nothing kept aside) or copied (a new directory, the old one kept
/// aside); it streams from the new primary on the new primary's timeline, and holds
/// every row the new primary has (the rows written there after the failover, a row
/// written after the rejoin) and none of the diverged ones.
fn refused_then_rejoined(l: &Lab, old: &str, new: &str, round: u32, rewind: bool) -> String {
    use std::os::unix::fs::MetadataExt;
    // Back with its data directory as the crash left it: the cluster's own start meets
    // the divergence.
    let t0 = std::time::Instant::now();
    l.restore_with(old, lab::DataDir::AsIs)
        .expect("restore --as-is");
    l.wait_online(&[old.to_string()], 60.0).unwrap();
    let reason = lab::poll(
        &format!("{old}'s start refused"),
        90.0,
        Duration::from_millis(500),
        || repl::start_failure(l, old),
    )
    .unwrap_or_else(|e| panic!("{e}:\n{}", l.status().unwrap().report()));
    let refused = t0.elapsed().as_secs_f64();
    eprintln!(
        "round {round}: {old} booted as it was; its start refused {refused:.2} s after the \
         restore: {reason}"
    );
    assert!(
        reason.contains("pgstack pg rejoin") && reason.contains("diverged"),
        "{old}: its start failed for another reason: {reason:?}"
    );
    let _ = l.settle(60);
    let st = l.status().unwrap();
    assert_eq!(st.primaries(), [new], "{}", st.report());
    assert_eq!(st.vip_holders(), [new], "{}", st.report());
    let on_old = st.nodes.iter().find(|n| n.name == old).unwrap();
    assert!(
        on_old.alive && on_old.pg.is_none() && on_old.postmasters == 0,
        "{old} runs PostgreSQL after its start was refused:\n{}",
        st.report()
    );
    assert!(!all_stream(l, new), "{old} streams:\n{}", st.report());

    let pgdata = repl::node_pgdata(l, old);
    let inode = std::fs::metadata(&pgdata).unwrap().ino();
    let aside_before = kept_aside(l, old);
    let (out, secs) = lab_rejoin(l, old, rewind);
    let method = repl::RejoinMethod::of_output(&out);
    eprintln!("round {round}: {}", out.trim());
    let aside = kept_aside(l, old);
    let same_dir = std::fs::metadata(&pgdata).unwrap().ino() == inode;
    if rewind {
        assert_eq!(method, Some(repl::RejoinMethod::Rewound), "{out}");
        assert!(
            out.contains(&format!("{old}: rejoined in"))
                && out.contains("(rewound with pg_rewind)")
                && !out.contains("copied"),
            "{out}"
        );
        assert!(same_dir, "{old}: its data directory was replaced");
        assert_eq!(
            aside, aside_before,
            "{old}: a rewind kept a directory aside"
        );
    } else {
        assert_eq!(method, Some(repl::RejoinMethod::Copied), "{out}");
        assert!(out.contains("(copied from the primary"), "{out}");
        assert!(!same_dir, "{old}: a copy left the same data directory");
        assert_eq!(
            aside.len(),
            aside_before.len() + 1,
            "{old}: the old data directory is not kept aside: {aside:?}"
        );
    }
    let t1 = std::time::Instant::now();
    standbys_stream(l, new, "after the rejoin");
    let streaming = t1.elapsed().as_secs_f64();
    eprintln!("round {round}: {old} streams from {new} {streaming:.2} s after the rejoin");
    assert_eq!(one_primary(l, "after the rejoin"), new);
    let pg = repl::pg_node(l, old).unwrap();
    assert!(!pg.primary, "{old}: {}", pg.report());
    // On the new primary's timeline.
    let tli = primary_timeline(l, new);
    let received = repl::node_sql(
        l,
        old,
        "select status || ' ' || received_tli from pg_stat_wal_receiver",
    )
    .unwrap();
    assert_eq!(
        received.trim(),
        format!("streaming {tli}"),
        "{old}: not streaming the new primary's timeline {tli}"
    );
    // A row written on the new primary now reaches the rejoined node.
    let streamed = format!("streamed{round}");
    repl::node_sql(
        l,
        new,
        &format!("insert into pgst_rejoin (what) values ('{streamed}')"),
    )
    .unwrap();
    lab::poll(
        &format!("the new primary's rows on {old}"),
        20.0,
        Duration::from_millis(200),
        || (rows(l, old, &streamed) == Some(1)).then_some(()),
    )
    .unwrap();
    // What a rejoin means: every row the new primary has, and the old primary's commits
    // past the fork point discarded (they were never on the new primary's timeline).
    let (on_old, on_new) = (table(l, old), table(l, new));
    eprintln!("round {round}: rows on {old}: {on_old}; on {new}: {on_new}");
    assert_eq!(on_old, on_new, "{old} and {new} hold other rows");
    assert_eq!(rows(l, old, "before"), Some(10));
    assert_eq!(rows(l, old, &format!("after{round}")), Some(20));
    assert_eq!(
        rows(l, old, &format!("diverged{round}")),
        Some(0),
        "{old} still holds the diverged rows"
    );
    format!(
        "refusal seen {refused:.2} s after the restore, rejoin ({}) {:.2} s, streaming \
         {streaming:.2} s after it on timeline {tli}; kept aside: {aside:?}",
        repl::RejoinMethod::describe(method),
        secs
    )
}

/// The diverged former primary refused, then rejoined, both ways in one lab: round 1,
/// the old primary rewound with pg_rewind (`lab rejoin --rewind`); round 2, the same
/// case the other way round (the rewound node, now the standby, promoted when the
/// primary is cut after diverging), the old primary copied (`lab rejoin`).
#[test]
fn pgstack_diverged_former_primary_is_refused_then_rejoined() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (g, n_old, n_new, failover) = diverged("pgstack");
    let l = &g.0;
    let rewound = refused_then_rejoined(l, &n_old, &n_new, 1, true);
    eprintln!("round 1 (rewind): failover {failover:.2} s, {rewound}");
    // The rewound node takes over in its turn; the other is refused, then copied.
    let failover2 = diverge(l, &n_new, &n_old, 2);
    let copied = refused_then_rejoined(l, &n_new, &n_old, 2, false);
    eprintln!("round 1 (rewind): failover {failover:.2} s, {rewound}");
    eprintln!("round 2 (copy): failover {failover2:.2} s, {copied}");
}

/// PAF in the same case, recorded (docs/compatibility.md): the diverged old primary
/// booted as the crash left it (`restore --as-is`, no pg_basebackup first); what pgsqlms
/// and Pacemaker make of it within 60 s. Asserts only that the new primary keeps the role
/// alone.
#[test]
fn paf_diverged_former_primary_restored_as_is_is_recorded() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (g, old, new, failover) = diverged("heartbeat");
    let l = &g.0;
    eprintln!("PAF: failover {failover:.2} s");
    l.restore_with(&old, lab::DataDir::AsIs)
        .expect("restore --as-is");
    l.wait_online(std::slice::from_ref(&old), 60.0).unwrap();
    let _ = l.settle(60);
    // Fenced (powered off by the lab's fence agent) or still up.
    let fenced = lab::poll(
        &format!("{old} fenced"),
        30.0,
        Duration::from_millis(500),
        || (!lab::node::is_alive(l, &old)).then_some(()),
    )
    .is_ok();
    let st = l.status().unwrap();
    eprintln!(
        "PAF: {old} booted as it was, then {}:\n{}",
        if fenced { "fenced" } else { "still up" },
        st.report()
    );
    if let Ok(out) = lab::node::exec(
        l,
        &new,
        &["crm_mon", "-1", "-f", "-r"],
        Duration::from_secs(10),
    ) {
        eprintln!("PAF: crm_mon on {new}:\n{out}");
    }
    let log = std::fs::read_to_string(l.node_dir(&old).join("log-pacemaker").join("pacemaker.log"))
        .unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|x| x.contains("pgsqlms") || (x.contains("pgsqld") && x.contains("Result of")))
        .collect();
    for x in &lines[lines.len().saturating_sub(40)..] {
        eprintln!("  {x}");
    }
    eprintln!(
        "PAF: on {old} the diverged rows: {:?}, the new primary's: {:?}",
        rows(l, &old, "diverged1"),
        rows(l, &old, "after1")
    );
    assert_eq!(st.primaries(), [new.as_str()], "{}", st.report());
    // What PAF did in every run so far: its probe finds the control file "in production"
    // and answers 9 (a crashed primary), the demote and the stop fail on it, and Pacemaker
    // fences the node (PAF #162/#173's shape); it never starts it as a standby.
    assert!(
        log.contains("controldata indicates a running primary instance"),
        "PAF did not take {old} for a crashed primary"
    );
}
