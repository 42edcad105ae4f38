//! Shared harness of the black-box tests: the installed binary and agents (links to it), network
//! namespaces with veth links, commands with deadlines. Every resource is an RAII guard
//! removed in `Drop`, so a failing (panicking) test leaves nothing behind; `tests/cleanup`
//! is the safety net for killed runs. Test addresses are from 10.99.0.0/16 and
//! fd00:99::/32, inside namespaces the test made.
//!
//! Honesty rules: the installed binary must be the build of this tree ([`bin`] checks
//! its build id once); a test that cannot run here fails with `NOT RUN: why`
//! ([`require_root`], [`require_file`]); a test waits for a state with [`wait_for`],
//! never with a fixed sleep before an assertion.
#![allow(dead_code)]

pub mod cib;
pub mod cluster1;
pub mod loopfs;
pub mod netns;
pub mod pg;
pub mod uml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The installed pgstack binary (override with PGSTACK_BIN), checked at first use to be
/// the build of the tree under test.
pub fn bin() -> String {
    let b = std::env::var("PGSTACK_BIN").unwrap_or_else(|_| "/usr/sbin/pgstack".into());
    check_build(&b);
    b
}

/// The directory of the installed OCF agents (override with PGSTACK_OCF_DIR).
pub fn ocf_dir() -> String {
    bin();
    std::env::var("PGSTACK_OCF_DIR").unwrap_or_else(|_| "/usr/lib/ocf/resource.d/pgstack".into())
}

/// The directory of the installed init script (override with PGSTACK_INITD_DIR).
pub fn initd_dir() -> String {
    bin();
    std::env::var("PGSTACK_INITD_DIR").unwrap_or_else(|_| "/etc/init.d".into())
}

pub fn agent_path(name: &str) -> String {
    format!("{}/{name}", ocf_dir())
}

/// Black-box tests run the installed binary: it must be the build of this tree, never an
/// older install. `pgstack --build-id` prints the digest build.rs took of src/ and
/// Cargo.lock; the same digest is taken here of the tree under test.
fn check_build(bin: &str) {
    static CHECKED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let r = CHECKED.get_or_init(|| {
        let out = Command::new(bin)
            .arg("--build-id")
            .env_clear()
            .output()
            .map_err(|e| format!("cannot run {bin}: {e}; run make install"))?;
        let installed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let tree = build_id::of_tree(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        if installed == tree {
            Ok(())
        } else {
            Err(format!(
                "installed pgstack is stale: run make install ({bin} is build {installed:?}, the tree is {tree:?})"
            ))
        }
    });
    if let Err(e) = r {
        panic!("{e}");
    }
}

#[path = "../../build_id.rs"]
mod build_id;

/// A test that cannot run here (not root, a tool missing) fails and says why: a test
/// that did not run never reports "ok". `make test` runs as root with every package of
/// `.ci/packages-test` installed, so there nothing fails for this reason.
pub fn require_root() {
    assert!(
        nix_is_root(),
        "NOT RUN: this test needs root (run `make test` as root)"
    );
}

/// Like [`require_root`], for a file the test needs (a reference agent, a tool).
pub fn require_file(path: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "NOT RUN: this test needs {path} (installed by .ci/packages-test)"
    );
}

/// Whether this process runs as root (for tests that check the behaviour without it).
pub fn is_root() -> bool {
    nix_is_root()
}

fn nix_is_root() -> bool {
    // Our effective uid, from /proc (no unsafe call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Waits until `done` holds, looking every few milliseconds; panics naming `what` at
/// the deadline. Tests wait for a state this way, never with a fixed sleep.
pub fn wait_for(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    let held = pgstack::wait::until(
        Instant::now() + timeout,
        pgstack::wait::Backoff::millis(2, 100),
        done,
    );
    assert!(
        held,
        "timed out waiting for {what} (not within {timeout:?})"
    );
}

/// Where tests keep artifacts (tool outputs worth reading after a run).
pub fn artifacts() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a command to completion with a timeout; panics (naming it) if it hangs. Its
/// output is read while it runs, so a chatty command never blocks on a full pipe.
pub fn run(argv: &[&str], env: &[(&str, &str)], timeout: Duration) -> Output {
    use std::io::Read;
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {argv:?}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let end = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    // A grandchild that keeps the pipes open would keep the readers waiting: give them
    // a moment after the command itself ended.
    let collect = |h: std::thread::JoinHandle<Vec<u8>>| {
        let until = Instant::now() + Duration::from_secs(5);
        while !h.is_finished() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        if h.is_finished() {
            h.join().unwrap_or_default()
        } else {
            b"(output still open after the command ended)".to_vec()
        }
    };
    let (stdout, stderr) = (collect(out), collect(err));
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{argv:?} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Runs ocf-tester (`argv`, with a prefix such as `ip netns exec NS`) and asserts that
/// the agent passed all its tests; the output is kept in `artifacts()/<log>`.
pub fn ocf_tester_passes(argv: &[&str], log: &str) {
    let out = run(argv, &[], Duration::from_secs(120));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(artifacts().join(log), &text).unwrap();
    assert!(out.status.success(), "ocf-tester failed:\n{text}");
    assert!(text.contains("passed all tests"), "{text}");
}

/// Writes an agent's meta-data to `artifacts()/<agent>-meta-data.xml` (kept for a look
/// after the run); returns that path for the validator.
pub fn meta_data_file(agent: &str, xml: &str) -> String {
    let file = artifacts().join(format!("{agent}-meta-data.xml"));
    std::fs::write(&file, xml).unwrap();
    file.to_string_lossy().into_owned()
}

/// Runs a command that must succeed; returns its stdout.
pub fn sh_ok(argv: &[&str]) -> String {
    let out = run(argv, &[], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{argv:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The result of one agent action.
#[derive(Debug)]
pub struct AgentRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl AgentRun {
    pub fn exit_reason(&self) -> Option<String> {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("ocf-exit-reason:").map(str::to_string))
    }
}

/// Runs `agent_path action` with OCF_RESKEY_* from `params` plus extra variables, through
/// `prefix` (e.g. `ip netns exec NS`).
pub fn ocf(
    prefix: &[&str],
    agent_path: &str,
    action: &str,
    params: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> AgentRun {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("OCF_ROOT".into(), "/usr/lib/ocf".into());
    env.insert("OCF_RESOURCE_INSTANCE".into(), "test".into());
    env.insert("HA_LOGFACILITY".into(), "none".into());
    for (k, v) in params {
        env.insert(format!("OCF_RESKEY_{k}"), v.to_string());
    }
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let mut argv: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
    argv.push("env".into());
    argv.push("-i".into());
    argv.push("PATH=/usr/sbin:/usr/bin:/sbin:/bin".into());
    for (k, v) in &env {
        argv.push(format!("{k}={v}"));
    }
    argv.push(agent_path.into());
    argv.push(action.into());
    let refs: Vec<&str> = argv.iter().map(|s| s.as_str()).collect();
    let out = run(&refs, &[], Duration::from_secs(90));
    AgentRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
