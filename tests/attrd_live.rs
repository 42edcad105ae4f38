//! `sys::attrd` against a live one-node Pacemaker 2.1.5 (tests/common/live.rs): private
//! transient attributes set, read on one node and on all, deleted; promotion scores set,
//! read and removed; membership; then the election's publication and the target's check
//! and the primary's scoring through the real daemons. The daemons' IPC lives in the
//! node's namespaces, so the test runs itself again inside them (`nsenter`, with
//! PGST_ATTRD_INSIDE set) for the part that calls the library. Root only.

mod common;

use std::time::{Duration, Instant};

use common::cib::TempDir;
use common::cluster1::{seed_cib, Node, Spec};
use pgstack::agents::postgresql::election::{self, LagPolicy, Position, Verdict};
use pgstack::ocf::deadline::Deadline;
use pgstack::ocf::notify::Notify;
use pgstack::sys::attrd::{AttrError, Attrd, Found, ScoreOf, Tools};

const NODE: &str = "pgst-attrd-n1";
const ADDR: &str = "10.99.65.1";
const INSIDE: &str = "PGST_ATTRD_INSIDE";
const RSC: &str = "pgst-pg";

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

/// Waits (at most 20 s) until `f` holds; attrd applies updates asynchronously.
fn eventually(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if f() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what}: not within 20 s");
}

/// The part that runs inside the node's namespaces.
fn inside() {
    let a = Tools::new();
    assert_eq!(a.local_name(soon()).unwrap(), NODE);
    assert_eq!(a.partition(soon()).unwrap(), [NODE]);
    let m = a.members(soon()).unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].name, NODE);

    let name = "pgst-test-attr";
    let e = a.query(name, None, soon()).unwrap_err();
    assert!(matches!(e, AttrError::NotFound { .. }), "{e:?}");
    assert!(a.query_all(name, soon()).unwrap().is_empty());
    let t = Instant::now();
    a.set_private(name, None, "1#0/3000148", soon()).unwrap();
    let seen = eventually("the private attribute", || {
        a.query(name, None, soon()).found().unwrap().as_deref() == Some("1#0/3000148")
    });
    eprintln!(
        "attrd: set then visible after {:?} (set call {:?})",
        seen,
        t.elapsed() - seen
    );
    assert_eq!(a.query(name, Some(NODE), soon()).unwrap(), "1#0/3000148");
    let all = a.query_all(name, soon()).unwrap();
    assert_eq!(all.get(NODE).map(String::as_str), Some("1#0/3000148"));
    a.delete(name, None, soon()).unwrap();
    eventually("the deletion", || {
        a.query(name, None, soon()).found().unwrap().is_none()
    });
    a.delete(name, None, soon()).unwrap();

    assert!(a
        .score(ScoreOf::here(RSC), soon())
        .found()
        .unwrap()
        .is_none());
    a.set_score(ScoreOf::here(RSC), 1001, soon()).unwrap();
    eventually("the score", || {
        a.score(ScoreOf::here(RSC), soon()).found().unwrap() == Some(1001)
    });
    a.set_score(ScoreOf::on(RSC, NODE), 5, soon()).unwrap();
    eventually("the score by node name", || {
        a.score(ScoreOf::on(RSC, NODE), soon()).found().unwrap() == Some(5)
    });
    a.delete_score(ScoreOf::here(RSC), soon()).unwrap();
    eventually("the score's removal", || {
        a.score(ScoreOf::here(RSC), soon())
            .found()
            .unwrap()
            .is_none()
    });
    a.delete_score(ScoreOf::here(RSC), soon()).unwrap();

    // The election on a lone node through the real daemons.
    let d = Deadline::from_timeout(Duration::from_secs(20));
    let n = Notify {
        active: [NODE.to_string()].into(),
        promote: [NODE.to_string()].into(),
        ..Notify::default()
    };
    let me = Position::parse("1#0/3000148").unwrap();
    // A switchover's unsafe verdict rides in the ballot: it stops one promote only.
    let why = "did not receive the old primary's shutdown checkpoint (no such record on \
               timeline 1 from 0/3000028 to 0/3000148)";
    assert!(election::pre_promote(&a, RSC, NODE, &n, Some(me), Some(why), &d).unwrap());
    let v = election::promote_check(&a, RSC, &d).unwrap();
    assert_eq!(v, Verdict::Cancelled { why: why.into() });
    eventually("the verdict removed once read", || {
        a.query(&election::position_attr(RSC), None, soon())
            .found()
            .unwrap()
            .and_then(|v| election::Ballot::parse(&v))
            .is_some_and(|b| b.cancelled.is_none() && b.position == Some(me))
    });
    let t = Instant::now();
    assert!(election::pre_promote(&a, RSC, NODE, &n, Some(me), None, &d).unwrap());
    let published = t.elapsed();
    let t = Instant::now();
    let v = election::promote_check(&a, RSC, &d).unwrap();
    let checked = t.elapsed();
    eprintln!("pre_promote {published:?}, promote_check {checked:?}: {v:?}");
    assert!(
        matches!(v, Verdict::Best { mine, .. } if mine == me),
        "{v:?}"
    );
    election::post_promote(&a, RSC, &d).unwrap();
    eventually("the election's attributes removed", || {
        a.query(&election::position_attr(RSC), None, soon())
            .found()
            .unwrap()
            .is_none()
    });
    let here = || Position::parse("1#0/3000200");
    let c = election::apply_scores(&a, RSC, NODE, &[], LagPolicy::default(), &here, &d).unwrap();
    assert_eq!(c.len(), 1, "{c:?}");
    eventually("the primary's score", || {
        a.score(ScoreOf::here(RSC), soon()).found().unwrap() == Some(1001)
    });
    a.delete_score(ScoreOf::here(RSC), soon()).unwrap();

    // The survivor's evidence rule: a -1000 with the last primary's record set by node
    // name (as a primary sets it on a standby's node), and this node caught up with it.
    let seen = election::seen_attr(RSC);
    a.set_private(&seen, Some(NODE), "1#0/3000200", soon())
        .unwrap();
    a.set_score(ScoreOf::here(RSC), -1000, soon()).unwrap();
    eventually("the record and the -1000", || {
        a.query(&seen, Some(NODE), soon())
            .found()
            .unwrap()
            .as_deref()
            == Some("1#0/3000200")
            && a.score(ScoreOf::here(RSC), soon()).found().unwrap() == Some(-1000)
    });
    let mine = || {
        Some(election::Reading {
            position: Position::parse("1#0/3000300").unwrap(),
            primary: false,
            streaming: false,
            consistent: true,
        })
    };
    let v = election::apply_survivor_rules(&a, RSC, NODE, &mine, &d).unwrap();
    assert_eq!(v, election::Survivor::Promotable(1));
    eventually("the survivor's score", || {
        a.score(ScoreOf::here(RSC), soon()).found().unwrap() == Some(1)
    });
    a.delete_score(ScoreOf::here(RSC), soon()).unwrap();
    a.delete(&seen, Some(NODE), soon()).unwrap();
}

#[test]
fn attrd_tools_against_a_live_node() {
    if std::env::var_os(INSIDE).is_some() {
        inside();
        return;
    }
    common::require_root();
    let tmp = TempDir::new("attrd");
    let cib = seed_cib("", "");
    let node = Node::start(
        &tmp.0,
        &Spec {
            tag: "attrd-live",
            node: NODE,
            addr: ADDR,
            cluster_name: "pgstattrd",
            cib,
            ocf_dir: None,
            after_cib: &[],
        },
    );
    let t = Instant::now();
    // Up when attrd answers "no such attribute" rather than "not connected", and the
    // controller knows the partition.
    loop {
        let q = node.exec(&["attrd_updater", "-n", "pgst-probe", "-Q"]);
        let p = node.exec(&["crm_node", "--partition"]);
        if q.status.code().is_some_and(|c| c == 105 || c == 78)
            && String::from_utf8_lossy(&p.stdout).contains(NODE)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "the node did not come up within 40 s: attrd_updater {:?} {}; crm_node {:?} {} {}\n{}",
            q.status.code(),
            String::from_utf8_lossy(&q.stderr),
            p.status.code(),
            String::from_utf8_lossy(&p.stdout),
            String::from_utf8_lossy(&p.stderr),
            std::fs::read_to_string(tmp.path("pacemakerd.out")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("node up after {:?}", t.elapsed());
    let exe = std::env::current_exe().unwrap();
    let out = node.exec_env(
        &[
            exe.to_str().unwrap(),
            "attrd_tools_against_a_live_node",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ],
        &[(INSIDE, "1")],
        Duration::from_secs(180),
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}");
    assert!(out.status.success(), "inside the node:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the inside run did not run: {text}"
    );
    drop(node);
}
