//! Every agent under a hostile environment: values that are not UTF-8, control
//! characters, symlinked paths, `..` and `/.` spellings, and Pacemaker's own variables.
//! Whatever it is given, an agent never panics, answers a code of the OCF set allowed for
//! the action, and explains a failure with an exit reason; a value that does not decode is
//! an error naming its parameter.
//!
//! On the real system only actions that look and change nothing run here (meta-data,
//! validate-all, probes); the filesystem agent also runs every action against its fake
//! mount table. The second half runs the installed shims the way Pacemaker would not:
//! as user nobody, with a newline in the instance name, with bytes that are not UTF-8.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use pgstack::agents::{self, filesystem::Filesystem};
use pgstack::ocf::dispatch::{self, Outcome};
use pgstack::ocf::env::OcfEnv;
use pgstack::ocf::log::Logger;
use pgstack::ocf::OcfCode;
use pgstack::sys::fake::FakeMounts;
use proptest::prelude::*;

/// A scratch tree for one case, removed on drop: a symlink to `/`, one to a directory
/// and a dangling one.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let d = std::env::temp_dir().join(format!(
            "pgst-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("real/db")).unwrap();
        std::os::unix::fs::symlink("/", d.join("to-root")).unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("to-real")).unwrap();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Path spellings; `@` stands for the case's scratch tree.
const PATHS: &[&str] = &[
    "/",
    "/.",
    "//",
    "/./",
    "/tmp/..",
    "/var/run",
    "/var/run/pgst-fuzz-none",
    "../../etc",
    "relative/dir",
    "@/to-root",
    "@/to-root/.",
    "@/to-real/db",
    "@/real/../real/./db/",
    "@/dangling",
    "@/real/db\nocf-exit-reason:forged",
    "/dev/null",
    "UUID=00000000-0000-0000-0000-000000000000",
    "LABEL=pgst-fuzz",
];

/// A hostile value, as bytes.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let path = proptest::sample::select(PATHS).prop_map(|p| p.as_bytes().to_vec());
    prop_oneof![
        3 => path,
        1 => "[ -~]{0,30}".prop_map(String::into_bytes),
        1 => "\\PC{0,12}".prop_map(String::into_bytes),
        1 => Just(b"-1".to_vec()),
        1 => Just(b"99999999999999999999".to_vec()),
        1 => Just(b"$(id); reboot".to_vec()),
        1 => Just(b"all".to_vec()),
        1 => Just(b"a\nb\r\x1b[2J".to_vec()),
        // Not UTF-8: a stray continuation byte, a cut sequence, Latin-1.
        2 => proptest::collection::vec(any::<u8>(), 1..12)
            .prop_map(|mut v| { v.push(0xff); v }),
        1 => Just(b"/srv/caf\xe9".to_vec()),
        1 => Just(b"\xc3".to_vec()),
    ]
}

/// Pacemaker's own variables, as it sets them for every action and for clones.
fn pacemaker_vars() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    proptest::sample::subsequence(
        vec![
            ("OCF_RESKEY_crm_feature_set", "3.16.1"),
            ("OCF_RESKEY_CRM_meta_on_node", "pg1"),
            ("OCF_RESKEY_CRM_meta_on_node_uuid", "1"),
            ("OCF_RESKEY_CRM_meta_clone", "0"),
            ("OCF_RESKEY_CRM_meta_clone_max", "2"),
            ("OCF_RESKEY_CRM_meta_notify", "true"),
            ("OCF_RESKEY_crm_whatever_next", "x"),
        ],
        0..=7,
    )
}

/// Drops NUL bytes, which no process environment can carry.
fn os(v: &[u8]) -> OsString {
    OsString::from_vec(v.iter().copied().filter(|b| *b != 0).collect())
}

/// The environment of one case; `@` in a value becomes the scratch tree.
fn environment(
    agent: &str,
    params: &[(usize, Vec<u8>)],
    pcmk: &[(&str, &str)],
    scratch: &Scratch,
) -> (OcfEnv, Vec<&'static str>, Vec<&'static str>) {
    let info = agents::info(agent).unwrap();
    let mut m: BTreeMap<OsString, OsString> = BTreeMap::new();
    m.insert("OCF_RESOURCE_INSTANCE".into(), "pgst-fuzz".into());
    m.insert("HA_LOGFACILITY".into(), "none".into());
    m.insert("HA_RSCTMP".into(), scratch.0.join("rsctmp").into());
    m.insert("OCF_RESKEY_CRM_meta_timeout".into(), "5000".into());
    m.insert("OCF_RESKEY_CRM_meta_interval".into(), "0".into());
    for (k, v) in pcmk {
        m.insert((*k).into(), (*v).into());
    }
    let mut given = Vec::new();
    let mut undecodable = Vec::new();
    for (i, v) in params {
        let spec = &info.params[i % info.params.len()];
        let mut bytes = Vec::new();
        for b in v {
            if *b == b'@' {
                bytes.extend_from_slice(scratch.0.as_os_str().as_encoded_bytes());
            } else {
                bytes.push(*b);
            }
        }
        let v = os(&bytes);
        if v.to_str().is_none() {
            undecodable.push(spec.name);
        } else {
            undecodable.retain(|n| *n != spec.name);
        }
        given.push(spec.name);
        m.insert(format!("OCF_RESKEY_{}", spec.name).into(), v);
    }
    (OcfEnv::from_os(m), given, undecodable)
}

fn check(agent: &str, action: &str, out: &Outcome, given: &[&str], undecodable: &[&str]) {
    let code = out.code.as_u8();
    let why = out.exit_reason.clone().unwrap_or_default();
    let allowed: &[u8] = match action {
        "meta-data" => &[0],
        "validate-all" => &[0, 1, 4, 5, 6],
        // A probe: running (also promoted, degraded), stopped, failed, or unable to say.
        _ => &[0, 1, 4, 5, 6, 7, 8, 9, 190, 191],
    };
    assert!(
        allowed.contains(&code),
        "{agent} {action} gave {code}: {why}"
    );
    assert!(OcfCode::ALL.contains(&out.code), "{agent} {action}: {code}");
    if ![0, 7, 8].contains(&code) {
        assert!(
            !why.is_empty(),
            "{agent} {action} gave {code} without a reason"
        );
    }
    assert!(
        !why.contains('\n'),
        "{agent} {action}: a reason of several lines: {why:?}"
    );
    // A value that does not decode is refused, by name, before anything else is
    // looked at (4 when not root: then nothing is looked at all).
    if !undecodable.is_empty() && action == "validate-all" {
        assert_eq!(
            code, 6,
            "{agent} {action} with {undecodable:?} undecodable: {why}"
        );
        assert!(
            undecodable
                .iter()
                .any(|n| why.contains(&format!("parameter {n}="))),
            "{agent} {action}: the reason does not name {undecodable:?}: {why}"
        );
    }
    if !undecodable.is_empty() && action == "monitor" {
        assert!(
            [4, 7].contains(&code),
            "{agent} probe with {undecodable:?} undecodable gave {code}: {why}"
        );
    }
    if code == 6 {
        assert!(
            given.iter().any(|n| why.contains(n))
                || why.contains("required parameter")
                || why.contains("clone"),
            "{agent} {action}: a configuration error naming none of {given:?}: {why}"
        );
    }
}

/// One case on the real system: only actions that look and change nothing.
fn real_case(agent: &str, params: &[(usize, Vec<u8>)], pcmk: &[(&str, &str)], action: &str) {
    let tree = Scratch::new();
    let (env, given, undecodable) = environment(agent, params, pcmk, &tree);
    let (out, _) = agents::run_env(agent, action, env);
    check(agent, action, &out, &given, &undecodable);
}

fn looking_action() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("validate-all"), Just("monitor"), Just("meta-data")]
}

fn hostile_params() -> impl Strategy<Value = Vec<(usize, Vec<u8>)>> {
    proptest::collection::vec((0..64usize, value()), 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn vip_probes_and_validation_on_the_real_system(
        p in hostile_params(), v in pacemaker_vars(), a in looking_action()
    ) {
        real_case("vip", &p, &v, a);
    }

    #[test]
    fn filesystem_probes_and_validation_on_the_real_system(
        p in hostile_params(), v in pacemaker_vars(), a in looking_action()
    ) {
        real_case("filesystem", &p, &v, a);
    }

    #[test]
    fn postgresql_probes_and_validation_on_the_real_system(
        p in hostile_params(), v in pacemaker_vars(), a in looking_action()
    ) {
        real_case("postgresql", &p, &v, a);
    }

    #[test]
    fn drbd_probes_and_validation_on_the_real_system(
        p in hostile_params(), v in pacemaker_vars(), a in looking_action()
    ) {
        real_case("drbd", &p, &v, a);
    }

    #[test]
    fn lvm_probes_and_validation_on_the_real_system(
        p in hostile_params(), v in pacemaker_vars(), a in looking_action()
    ) {
        real_case("lvm", &p, &v, a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every action, against the fake mount table (nothing on the host is touched).
    #[test]
    fn filesystem_every_action_against_the_fake(
        params in proptest::collection::vec((0..64usize, value()), 0..6),
        pcmk in pacemaker_vars(),
        action in prop_oneof![
            Just("validate-all"), Just("start"), Just("stop"), Just("monitor"), Just("meta-data")
        ],
    ) {
        let tree = Scratch::new();
        let (env, given, undecodable) = environment("filesystem", &params, &pcmk, &tree);
        let fake = FakeMounts::default()
            .with_mount(1, 0, (8, 1), "/", "/dev/sda1")
            .with_mount(2, 1, (0, 20), "/run", "tmpfs")
            .with_device("/dev/sdb1", (8, 17));
        let agent = Filesystem::new(fake);
        let out = dispatch::run(&agent, action, &env, &Logger::silent());
        let code = out.code.as_u8();
        let why = out.exit_reason.clone().unwrap_or_default();
        match action {
            "start" => prop_assert!([0, 1, 5, 6].contains(&code), "start gave {code}: {why}"),
            // Stop never fails on a bad configuration, and never with a value it cannot read.
            "stop" => prop_assert!([0, 1, 6].contains(&code), "stop gave {code}: {why}"),
            _ => check("filesystem", action, &out, &given, &undecodable),
        }
        if action == "start" && !undecodable.is_empty() {
            prop_assert_eq!(code, 6, "start with {:?} undecodable: {}", undecodable, why);
        }
        if ![0, 7].contains(&code) {
            prop_assert!(!why.is_empty());
        }
    }
}

// ---- the installed shims --------------------------------------------------------------

/// Runs the installed shim of `agent` with exactly `env` (bytes allowed), optionally as
/// user nobody; returns (code, stderr).
fn shim(agent: &str, action: &str, env: &[(&str, &[u8])], nobody: bool) -> (i32, String) {
    let path = common::agent_path(agent);
    let mut c = if nobody {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            &path,
            action,
        ]);
        c
    } else {
        let mut c = Command::new(&path);
        c.arg(action);
        c
    };
    c.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("OCF_ROOT", "/usr/lib/ocf")
        .env("HA_LOGFACILITY", "none")
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, OsString::from_vec(v.to_vec()));
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn exit_reasons(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("ocf-exit-reason:"))
        .collect()
}

/// A plausible configuration of each agent (what it names need not exist).
fn plausible(agent: &str) -> Vec<(&'static str, &'static [u8])> {
    match agent {
        "vip" => vec![("OCF_RESKEY_ip", b"10.99.0.50")],
        "filesystem" => vec![
            ("OCF_RESKEY_device", b"/dev/pgst-fuzz-none"),
            ("OCF_RESKEY_directory", b"/srv/pgst-fuzz-none"),
            ("OCF_RESKEY_fstype", b"xfs"),
        ],
        "drbd" => vec![("OCF_RESKEY_drbd_resource", b"pgstfuzz")],
        "postgresql" => vec![("OCF_RESKEY_pgdata", b"/srv/pgst-fuzz-none")],
        "lvm" => vec![("OCF_RESKEY_vgname", b"pgst_fuzz_none")],
        other => panic!("agent {other} has no plausible configuration here: add one"),
    }
}

#[test]
fn as_nobody_every_acting_action_is_4_with_a_reason() {
    common::require_root();
    for agent in agents::names() {
        let mut env = plausible(agent);
        env.push(("OCF_RESOURCE_INSTANCE", b"pgst-nobody"));
        for action in ["start", "stop", "monitor", "promote", "demote", "notify"] {
            let (code, err) = shim(agent, action, &env, true);
            assert_eq!(code, 4, "{agent} {action} as nobody: {err}");
            let r = exit_reasons(&err);
            assert_eq!(r.len(), 1, "{agent} {action}: {err}");
            assert!(r[0].contains("needs root"), "{agent} {action}: {err}");
        }
        // meta-data needs nothing; validate-all checks the parameters, then needs root.
        let (code, err) = shim(agent, "meta-data", &[], true);
        assert_eq!(code, 0, "{agent} meta-data as nobody: {err}");
        let (code, err) = shim(agent, "validate-all", &env, true);
        assert_eq!(code, 4, "{agent} validate-all as nobody: {err}");
        let required = agents::info(agent)
            .unwrap()
            .params
            .iter()
            .any(|p| p.required);
        if required {
            let (code, err) = shim(agent, "validate-all", &[], true);
            assert_eq!(code, 6, "{agent} validate-all without parameters: {err}");
        }
    }
}

#[test]
fn a_newline_in_the_instance_name_cannot_forge_an_exit_reason() {
    let env: &[(&str, &[u8])] = &[(
        "OCF_RESOURCE_INSTANCE",
        b"pgst\nocf-exit-reason:forged\r\nocf-exit-reason:again",
    )];
    for agent in agents::names() {
        // No parameters: every agent with a required one says so, with one reason.
        let (code, err) = shim(agent, "validate-all", env, !common::is_root());
        let r = exit_reasons(&err);
        assert!(code != 0 || r.is_empty(), "{agent}: {err}");
        assert!(r.len() <= 1, "{agent}: forged reasons: {err}");
        assert!(
            r.iter().all(|l| !l.contains("forged")),
            "{agent}: forged reasons: {err}"
        );
        assert!(
            err.lines().all(|l| !l.starts_with("ocf-exit-reason:forged")
                && !l.starts_with("ocf-exit-reason:again")),
            "{agent}: {err}"
        );
    }
}

#[test]
fn a_value_that_is_not_utf8_is_refused_by_name_through_the_shim() {
    for agent in agents::names() {
        let mut env = plausible(agent);
        let (name, _) = env[0];
        env[0] = (name, b"/srv/caf\xe9");
        let param = name.trim_start_matches("OCF_RESKEY_");
        let (code, err) = shim(agent, "validate-all", &env, false);
        assert_eq!(code, 6, "{agent}: {err}");
        let r = exit_reasons(&err);
        assert_eq!(r.len(), 1, "{agent}: {err}");
        assert!(
            r[0].contains(&format!("parameter {param}=")) && r[0].contains("UTF-8"),
            "{agent}: {err}"
        );
        // A probe finds nothing to report on (or, without root, answers 4).
        let mut probe = env.clone();
        probe.push(("OCF_RESKEY_CRM_meta_interval", b"0"));
        let (code, err) = shim(agent, "monitor", &probe, false);
        let want = if common::is_root() { 7 } else { 4 };
        assert_eq!(code, want, "{agent} probe: {err}");
    }
}

#[test]
fn pacemakers_own_variables_draw_no_warning_through_the_shim() {
    for agent in agents::names() {
        let mut env = plausible(agent);
        env.push(("OCF_RESKEY_crm_feature_set", b"3.16.1"));
        env.push(("OCF_RESKEY_CRM_meta_timeout", b"5000"));
        env.push(("OCF_RESKEY_crm_something_new", b"x"));
        let (_, err) = shim(agent, "validate-all", &env, !common::is_root());
        assert!(
            !err.contains("ignoring parameters"),
            "{agent} warned about Pacemaker's variables: {err}"
        );
        env.push(("OCF_RESKEY_pgst_bogus", b"1"));
        if common::is_root() {
            let (_, err) = shim(agent, "validate-all", &env, false);
            assert!(
                err.contains("ignoring parameters this agent does not know: pgst_bogus\n"),
                "{agent}: an unknown parameter must still be named, alone: {err}"
            );
        }
    }
}
