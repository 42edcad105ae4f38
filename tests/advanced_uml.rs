//! End-to-end: the book's advanced stack (chapters 9 and 10) under a live Pacemaker in two
//! UML guests (`pgstack::lab::advanced`, what `pgstack lab up --stack advanced` runs):
//! LVM -> DRBD -> LVM -> XFS -> PostgreSQL -> VIP, the `advanced` template with the
//! installed `ocf:pgstack:*` agents and pgstack's DRBD fence handlers, a fence device
//! that powers the other guest off.
//!
//! One cluster boot serves every scenario, in order: managed migration, DRBD disconnect
//! while primary (fence-peer, unfence after resync), standby and stickiness, outage (power
//! cut with a writer). Root only; a test that cannot run fails. Everything (guests,
//! switches, fence daemon, files) is removed in Drop, also on failure.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use pgstack::lab::advanced::{self, group_node, other, Advanced, Options};
use pgstack::lab::Steps;

fn require_uml() {
    common::require_root();
    common::require_file("/usr/bin/linux.uml");
    common::require_file("/usr/bin/uml_switch");
    common::require_file("/usr/sbin/pacemakerd");
    common::require_file(&common::bin());
}

fn options(tag: &str) -> Options {
    let exe = PathBuf::from(common::bin());
    let mut o = Options::for_exe(&exe);
    o.ocf_dir = PathBuf::from(common::ocf_dir());
    o.umid = format!("pgst-{tag}-{}", std::process::id());
    o.dir = PathBuf::from(format!("/tmp/{}", o.umid));
    o
}

/// The running lab, removed when dropped.
struct Guard(Advanced);

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in ["n1", "n2"] {
                let c = self.0.pair.console(n);
                let tail: Vec<&str> = c.lines().rev().take(15).collect();
                eprintln!(
                    "--- {n} console (end)\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        if let Err(e) = Advanced::down_dir(&self.0.pair.dir) {
            eprintln!("removing the lab: {e}");
        }
    }
}

fn timing(line: &str) {
    eprintln!("TIMING {line}");
    let p = common::artifacts().join("advanced-uml-timings.txt");
    let mut old = std::fs::read_to_string(&p).unwrap_or_default();
    old.push_str(line);
    old.push('\n');
    let _ = std::fs::write(p, old);
}

/// Polls `f` every `step` for at most `secs`.
fn wait<T>(what: &str, secs: u64, step: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "{what}: not within {secs} s");
        std::thread::sleep(step);
    }
}

/// Waits at most `secs` until `victim`'s disk is UpToDate on both sides; shows the resync's
/// progress (/proc/drbd of both nodes) every 20 s, and on a timeout in the failure.
fn resynced(a: &Advanced, victim: &str, survivor: &str, secs: u64) {
    let t0 = Instant::now();
    let mut shown = Instant::now();
    let proc_drbd = |n: &str| {
        a.on(n, "cat /proc/drbd", 30)
            .unwrap_or_else(|e| e.to_string())
    };
    loop {
        let state = a.drbd_state(victim).unwrap_or_default();
        if state.contains("ds:UpToDate/UpToDate") {
            eprintln!("resynced in {:.1} s: {state}", t0.elapsed().as_secs_f64());
            return;
        }
        if shown.elapsed() >= Duration::from_secs(20) {
            eprintln!(
                "[{:.0} s] resync: {victim}: {} / {survivor}: {}",
                t0.elapsed().as_secs_f64(),
                proc_drbd(victim).trim(),
                proc_drbd(survivor).trim()
            );
            shown = Instant::now();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "the restored node resynced: not within {secs} s; {victim}: {} / {survivor}: {}",
            proc_drbd(victim).trim(),
            proc_drbd(survivor).trim()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn constraints(a: &Advanced, from: &str) -> String {
    a.on(from, "cibadmin -Q -o constraints", 60).unwrap()
}

/// The promotion score crm_simulate gives the clone instance on `node` (live CIB).
fn promotion_score(a: &Advanced, from: &str, node: &str) -> String {
    let out = a.on(from, "crm_simulate -Ls 2>/dev/null", 120).unwrap();
    out.lines()
        .filter(|l| l.contains("promotion score on"))
        .find(|l| l.contains(&format!("on {node}:")))
        .map(|l| l.rsplit(':').next().unwrap().trim().to_string())
        .unwrap_or_else(|| "none".into())
}

/// The alert agent's file on `node`: the resource events it was given, in order.
fn alerts(a: &Advanced, node: &str, since: &str) -> Vec<String> {
    let text = a
        .on(node, &format!("cat {}", advanced::ALERT_FILE), 60)
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.as_bytes() >= since.as_bytes())
        .filter(|l| l.contains("kind=resource") && l.contains("desc=ok"))
        .filter(|l| !l.contains("task=monitor") && !l.contains("task=notify"))
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_string))
            };
            Some(format!("{} {}", field("task")?, field("rsc")?))
        })
        .collect()
}

fn utc_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_second_up_is_refused_while_one_runs() {
    require_uml();
    let o = options("advlock");
    std::fs::create_dir(&o.dir).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rm = Rm(o.dir.clone());
    let e = Advanced::up(&o, &Steps::new(true)).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("down"), "{e}");
    assert!(o.dir.exists(), "the other lab's directory was touched");
    assert!(
        std::fs::read_dir(&o.dir).unwrap().next().is_none(),
        "something was written into the other lab's directory"
    );
}

#[test]
fn the_books_advanced_stack_under_pacemaker() {
    require_uml();
    let o = options("advt");
    let _ = Advanced::down_dir(&o.dir);
    let t = Instant::now();
    let adv = Advanced::up(&o, &Steps::new(false)).expect("the advanced lab's up");
    let g = Guard(adv);
    let a = &g.0;
    timing(&format!(
        "advanced-uml pgstack up (boot, provision, cluster, first answer): {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let res_file = a.on("n1", "cat /etc/drbd.d/pg.res", 30).unwrap();
    let pgstack_handlers = res_file.contains("drbd fence-peer");
    eprintln!("DRBD resource file:\n{res_file}");

    // --- managed migration (the book's recipe) --------------------------------------
    let st = a.cluster_status().unwrap();
    let from = group_node(&st).expect("PGServer on one node");
    let to = other(&from);
    a.sql(
        &to,
        "CREATE TABLE book (v int); INSERT INTO book VALUES (4242)",
    )
    .unwrap();
    let since = utc_now();
    let m = a.migrate(&to).expect("migrate");
    eprintln!("{}", m.report());
    assert!(m.in_order(), "{}", m.report());
    assert!(!m.constraint_left, "{}", m.report());
    assert_eq!(a.sql(&from, "SELECT v FROM book").unwrap(), ["4242"]);
    let st = a.cluster_status().unwrap();
    assert_eq!(group_node(&st).as_deref(), Some(to.as_str()));
    let c = constraints(a, &to);
    assert!(
        !c.contains("cli-prefer") && !c.contains("cli-ban"),
        "a migration constraint was left:\n{c}"
    );
    // The alert agent (in place of the book's mails) saw each node's steps in order.
    let seen_from = alerts(a, &from, &since);
    let seen_to = alerts(a, &to, &since);
    assert_eq!(
        seen_from,
        [
            "stop pg_vip",
            "stop pg_db",
            "stop pg_fs",
            "stop pg_lvm",
            "demote drbd_pg"
        ],
        "alerts on {from}"
    );
    assert_eq!(
        seen_to,
        [
            "promote drbd_pg",
            "start pg_lvm",
            "start pg_fs",
            "start pg_db",
            "start pg_vip"
        ],
        "alerts on {to}"
    );
    timing(&format!(
        "advanced-uml pgstack migration {} -> {}: {:.2} s (VIP stop to VIP started; command {:.2} s)",
        m.from, m.to, m.secs, m.command_secs
    ));

    // --- DRBD disconnect while primary: fence-peer, no promotion, unfence -----------
    let primary = to.clone();
    let peer = from.clone();
    let id = advanced::fence_constraint_id();
    assert!(!constraints(a, &primary).contains(&id));
    a.on(&peer, "ip link set eth1 down", 30).unwrap();
    let c = wait(
        "the fence-peer constraint",
        120,
        Duration::from_secs(1),
        || {
            let c = constraints(a, &primary);
            c.contains(&format!("id=\"{id}\"")).then_some(c)
        },
    );
    assert!(c.contains(&format!("value=\"{primary}\"")), "{c}");
    let dmesg = a
        .on(&primary, "dmesg | grep 'fence-peer helper returned'", 30)
        .unwrap();
    assert!(dmesg.contains("returned 4"), "{dmesg}");
    if pgstack_handlers {
        eprintln!("fence-peer is pgstack's: {dmesg}");
    }
    assert_eq!(promotion_score(a, &primary, &peer), "-INFINITY");
    // The primary keeps serving (I/O resumed once the peer was fenced).
    a.sql(&peer, "INSERT INTO book VALUES (4343)").unwrap();
    a.on(&peer, "ip link set eth1 up", 30).unwrap();
    wait("the peer resynced", 180, Duration::from_secs(1), || {
        a.drbd_state(&peer)
            .ok()
            .filter(|s| s.contains("ds:UpToDate/UpToDate"))
    });
    wait(
        "unfence removing the constraint",
        120,
        Duration::from_secs(1),
        || (!constraints(a, &primary).contains(&id)).then_some(()),
    );
    assert_ne!(promotion_score(a, &primary, &peer), "-INFINITY");

    // --- standby of the active node; online again does not move it back -------------
    let active = primary.clone();
    let passive = peer.clone();
    a.on(&active, &format!("crm node standby {active}"), 180)
        .unwrap();
    let t = Instant::now();
    a.wait_group(Some(&passive), 300.0).unwrap();
    timing(&format!(
        "advanced-uml pgstack standby {active}: PGServer on {passive} after {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    a.on(&active, &format!("crm node online {active}"), 180)
        .unwrap();
    a.settle(300).unwrap();
    let st = a.cluster_status().unwrap();
    assert_eq!(
        group_node(&st).as_deref(),
        Some(passive.as_str()),
        "PGServer moved back after online"
    );
    assert_eq!(a.sql(&active, "SELECT count(*) FROM book").unwrap(), ["2"]);

    // --- outage: power cut of the active node with a writer running -----------------
    let victim = passive.clone();
    let survivor = active.clone();
    a.writer_start(&survivor).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let tk = a.crash_measured(Some(&victim)).expect("takeover");
    eprintln!("{}", tk.report());
    assert_eq!(tk.survivor, survivor);
    std::thread::sleep(Duration::from_secs(3));
    let check = a.writer_check().unwrap();
    eprintln!("{}", check.report());
    assert!(check.acked > 0);
    assert!(check.missing.is_empty(), "{}", check.report());
    assert!(
        advanced::fence_events(&a.pair.dir)
            .iter()
            .any(|l| l.contains(&format!("off {victim} -> ok"))),
        "no fencing of {victim} recorded"
    );
    timing(&format!("advanced-uml pgstack {}", tk.report()));
    // The crashed node comes back, resyncs, and the handler's constraint goes.
    a.restore(&victim).unwrap();
    resynced(a, &victim, &survivor, 420);
    wait(
        "the constraint removed after the resync",
        120,
        Duration::from_secs(1),
        || (!constraints(a, &survivor).contains(&id)).then_some(()),
    );
    assert_eq!(a.sql(&victim, "SELECT count(*) FROM book").unwrap(), ["2"]);
}
