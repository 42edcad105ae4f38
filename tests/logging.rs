//! Where the agents' log lines go, through the installed shims (root only): syslog
//! through a datagram socket the test owns, bound over `/dev/log` in a private mount
//! namespace (an overlay on `/dev`, so the agent uses its real code path); the
//! `HA_LOGFILE` and `HA_DEBUGLOG` files; standard error only without facility or file;
//! and the `trace_ra` trace of an action with the commands it ran. The reference
//! `ocf_log` writes through the same socket for a side-by-side look at the shapes.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::loopfs::Base;
use common::{agent_path, AgentRun};

const PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

/// Mounts an overlay over `/dev` in the private mount namespace `unshare` made, binds
/// the test's socket ($2) over `/dev/log` in it, then runs the rest of the arguments.
/// Nothing of it is seen outside that namespace.
const PRIVATE_DEV_LOG: &str = r#"set -e
t=$1; sock=$2; shift 2
mount -t tmpfs pgst-log "$t"
mkdir "$t/up" "$t/work"
mount -t overlay pgst-log-dev -o "lowerdir=/dev,upperdir=$t/up,workdir=$t/work" /dev
: > /dev/log
mount --bind "$sock" /dev/log
exec "$@"
"#;

/// A syslog socket the test owns.
struct LogSocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl LogSocket {
    fn new(base: &Base) -> LogSocket {
        let path = base.path("log.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        LogSocket { sock, path }
    }

    /// Every datagram received until none comes for a moment (the agent has exited by
    /// then, so everything it sent is queued).
    fn drain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = self.sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }
}

fn env_argv(env: &[(&str, &str)]) -> Vec<String> {
    let mut v = vec!["env".to_string(), "-i".into(), PATH.into()];
    v.extend(env.iter().map(|(k, val)| format!("{k}={val}")));
    v
}

/// Runs `argv` with only `env` (and PATH), inside a private mount namespace whose
/// `/dev/log` is the test's socket when `syslog` is given.
fn run(base: &Base, syslog: Option<&LogSocket>, env: &[(&str, &str)], argv: &[&str]) -> AgentRun {
    let mut full: Vec<String> = Vec::new();
    if let Some(s) = syslog {
        let t = base.path(&format!("ns-{}", base_seq()));
        std::fs::create_dir_all(&t).unwrap();
        full.extend(
            ["unshare", "-m", "--", "sh", "-c", PRIVATE_DEV_LOG, "sh"]
                .iter()
                .map(|s| s.to_string()),
        );
        full.push(t.to_str().unwrap().into());
        full.push(s.path.to_str().unwrap().into());
    }
    full.extend(env_argv(env));
    full.extend(argv.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let out = common::run(&refs, &[], Duration::from_secs(60));
    AgentRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn base_seq() -> usize {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn ocf_env<'a>(
    params: &'a [(String, String)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("OCF_ROOT".into(), "/usr/lib/ocf".into()),
        ("OCF_RESOURCE_INSTANCE".into(), "pgst_fs".into()),
    ];
    v.extend(
        params
            .iter()
            .map(|(k, val)| (format!("OCF_RESKEY_{k}"), val.clone())),
    );
    v.extend(
        extra
            .iter()
            .map(|(k, val)| (k.to_string(), val.to_string())),
    );
    v
}

/// Runs an action of the filesystem agent through its installed shim.
fn fs(
    base: &Base,
    syslog: Option<&LogSocket>,
    action: &str,
    params: &[(String, String)],
    extra: &[(&str, &str)],
) -> AgentRun {
    let env = ocf_env(params, extra);
    let refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    run(base, syslog, &refs, &[&agent_path("filesystem"), action])
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Parameters that parse (with one the agent does not know) but fail validation: a
/// WARNING and an ERROR line.
fn failing(base: &Base) -> Vec<(String, String)> {
    params(&[
        ("device", "/dev/pgst-no-such-device"),
        ("directory", base.path("mnt").to_str().unwrap()),
        ("fstype", "ext4"),
        ("pgst_unknown", "1"),
    ])
}

/// `<pri>Mmm dd hh:mm:ss TAG: BODY` -> (pri, TAG with the pid as `[pid]`, BODY).
fn split_syslog(line: &str) -> (u8, String, String) {
    let (pri, rest) = line[1..]
        .split_once('>')
        .unwrap_or_else(|| panic!("{line:?}"));
    let rest = &rest[16..];
    let (tag, body) = rest.split_once(": ").unwrap_or_else(|| panic!("{line:?}"));
    let tag = match tag.rfind('[') {
        Some(i) if tag.ends_with(']') => format!("{}[pid]", &tag[..i]),
        _ => tag.to_string(),
    };
    (pri.parse().unwrap(), tag, body.to_string())
}

fn exit_reason_only(r: &AgentRun) {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with("ocf-exit-reason:")),
        "stderr has log lines although a facility or a file takes them: {r:?}"
    );
}

#[test]
fn syslog_lines_carry_the_level_word_and_the_tag() {
    common::require_root();
    let mut base = Base::new("log-syslog");
    let sock = LogSocket::new(&base);
    let local3 = [("HA_LOGFACILITY", "local3"), ("HA_debug", "1")];

    // WARNING (an unknown parameter), ERROR (validation), DEBUG (HA_debug).
    let r = fs(&base, Some(&sock), "validate-all", &failing(&base), &local3);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.exit_reason().is_some(), "{r:?}");
    exit_reason_only(&r);
    let got: Vec<_> = sock.drain().iter().map(|l| split_syslog(l)).collect();
    let local3_ = 19 << 3;
    let find = |word: &str| {
        got.iter()
            .find(|(_, _, b)| b.starts_with(word))
            .unwrap_or_else(|| panic!("no {word} line in {got:?}"))
            .clone()
    };
    let (pri, tag, body) = find("WARNING: ");
    assert_eq!(
        (pri, tag.as_str()),
        (local3_ | 4, "filesystem(pgst_fs)[pid]")
    );
    assert!(body.contains("pgst_unknown"), "{body}");
    let (pri, _, body) = find("ERROR: ");
    assert_eq!(pri, local3_ | 3);
    assert!(body.starts_with("ERROR: validate-all failed: "), "{body}");
    let (pri, _, body) = find("DEBUG: ");
    assert_eq!(pri, local3_ | 7);
    assert!(body.starts_with("DEBUG: validate-all begins"), "{body}");
    assert!(
        got.iter().all(|(_, t, b)| t == "filesystem(pgst_fs)[pid]"
            && ["DEBUG: ", "INFO: ", "WARNING: ", "ERROR: "]
                .iter()
                .any(|w| b.starts_with(w))),
        "{got:?}"
    );

    // INFO: a real start (the mount lives in the namespace and goes with it).
    let dev = base.device("ext4");
    let p = params(&[
        ("device", &dev),
        ("directory", base.path("mnt").to_str().unwrap()),
        ("fstype", "ext4"),
    ]);
    let r = fs(
        &base,
        Some(&sock),
        "start",
        &p,
        &[("HA_LOGFACILITY", "daemon")],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stderr, "", "nothing on stderr with a facility");
    let got: Vec<_> = sock.drain().iter().map(|l| split_syslog(l)).collect();
    assert!(
        got.iter().any(|(pri, t, b)| *pri == (3 << 3 | 6)
            && t == "filesystem(pgst_fs)[pid]"
            && b.starts_with(&format!("INFO: mounted {dev} on "))),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|(_, _, b)| b.starts_with("DEBUG")),
        "{got:?}"
    );
}

/// The reference `ocf_log`, run through the same socket, writes the same shape: tag,
/// then the level word. (Its priority comes from matching the text: CRIT lines go out
/// as notice there, as crit here.)
#[test]
fn syslog_shape_matches_the_reference_ocf_log() {
    common::require_root();
    let funcs = "/usr/lib/ocf/lib/heartbeat/ocf-shellfuncs";
    common::require_file(funcs);
    let base = Base::new("log-ref");
    let sock = LogSocket::new(&base);
    let script = format!(
        ". {funcs}; ocf_log err 'e 1'; ocf_log warn 'w 2'; ocf_log info 'i 3'; ocf_log crit 'c 4'; ocf_log debug 'd 5'"
    );
    let script = script.as_str();
    let env = [
        ("OCF_ROOT", "/usr/lib/ocf"),
        ("OCF_RESOURCE_INSTANCE", "pgst_fs"),
        ("HA_LOGFACILITY", "daemon"),
        ("HA_debug", "1"),
    ];
    let r = run(
        &base,
        Some(&sock),
        &env,
        &["bash", "-c", script, "filesystem"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let reference: Vec<_> = sock.drain().iter().map(|l| split_syslog(l)).collect();
    let want = [
        (3 << 3 | 3, "ERROR: e 1"),
        (3 << 3 | 4, "WARNING: w 2"),
        (3 << 3 | 6, "INFO: i 3"),
        (3 << 3 | 5, "CRIT: c 4"),
        (3 << 3 | 7, "DEBUG: d 5"),
    ];
    let got: Vec<_> = reference
        .iter()
        .map(|(p, t, b)| {
            assert_eq!(t, "filesystem(pgst_fs)[pid]", "{reference:?}");
            (*p, b.as_str())
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn log_file_debug_log_and_stderr() {
    common::require_root();
    let base = Base::new("log-files");
    let bad = failing(&base);

    // No facility, no file: stderr has the lines (dated, with the level word).
    let r = fs(
        &base,
        None,
        "validate-all",
        &bad,
        &[("HA_LOGFACILITY", "none")],
    );
    assert_ne!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stderr.lines().collect();
    let warn = lines
        .iter()
        .find(|l| l.contains("WARNING: "))
        .unwrap_or_else(|| panic!("{r:?}"));
    assert!(
        warn[15..].starts_with(" WARNING: ignoring parameters"),
        "{warn}"
    );
    assert!(lines
        .iter()
        .any(|l| l[15..].starts_with(" ERROR: validate-all failed: ")));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("ocf-exit-reason:"))
            .count(),
        1,
        "{r:?}"
    );

    // A log file and a debug log: nothing but the exit reason on stderr.
    let (file, debug) = (base.path("ha.log"), base.path("ha-debug.log"));
    let extra = [
        ("HA_LOGFILE", file.to_str().unwrap()),
        ("HA_DEBUGLOG", debug.to_str().unwrap()),
        ("HA_debug", "1"),
    ];
    let r = fs(&base, None, "validate-all", &bad, &extra);
    exit_reason_only(&r);
    let text = std::fs::read_to_string(&file).unwrap();
    let file_lines: Vec<&str> = text.lines().collect();
    assert_eq!(file_lines.len(), 2, "{text}");
    for (l, word) in file_lines.iter().zip(["WARNING: ", "ERROR: "]) {
        let (_date, rest) = l.split_at(15);
        assert!(rest.starts_with(" filesystem(pgst_fs)["), "{l}");
        assert!(rest.contains(&format!("]:    {word}")), "{l}");
    }
    let dtext = std::fs::read_to_string(&debug).unwrap();
    let dl: Vec<&str> = dtext.lines().collect();
    assert!(
        dl.iter()
            .all(|l| l.starts_with("filesystem(pgst_fs)[") && l.contains("]:\t")),
        "{dtext}"
    );
    for word in [
        "DEBUG: validate-all begins",
        "WARNING: ignoring",
        "ERROR: validate-all failed",
    ] {
        assert!(
            dl.iter()
                .any(|l| l[l.find('\t').unwrap() + 17..].starts_with(word)),
            "{word}: {dtext}"
        );
    }

    // HA_debug off: no DEBUG line anywhere.
    let _ = std::fs::remove_file(&debug);
    let r = fs(&base, None, "validate-all", &bad, &extra[..2]);
    exit_reason_only(&r);
    let dtext = std::fs::read_to_string(&debug).unwrap();
    assert!(!dtext.contains("DEBUG"), "{dtext}");
    assert!(dtext.contains("ERROR: validate-all failed"), "{dtext}");
}

fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn trace_ra_lists_the_commands_an_action_ran() {
    common::require_root();
    let mut base = Base::new("log-trace");
    let dev = base.device("ext4");
    let mnt = base.path("mnt");
    let traces = base.path("trace");
    let mut p = params(&[
        ("device", &dev),
        ("directory", mnt.to_str().unwrap()),
        ("fstype", "ext4"),
    ]);
    let log = base.path("ha.log");
    let extra = [
        ("HA_LOGFILE", log.to_str().unwrap()),
        ("OCF_RESOURCE_TYPE", "Filesystem"),
    ];
    p.push(("trace_ra".into(), "1".into()));
    p.push(("trace_dir".into(), traces.to_str().unwrap().into()));
    let r = fs(&base, None, "start", &p, &extra);
    assert_eq!(r.code, 0, "{r:?}");
    let trace = only_file(&traces.join("Filesystem"));
    let name = trace.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("pgst_fs.start.20"), "{name}");
    let text = std::fs::read_to_string(&trace).unwrap();
    std::fs::write(common::artifacts().join("logging-trace-start.txt"), &text).unwrap();
    let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
    let lines: Vec<&str> = lines.iter().map(|l| l.split_once(' ').unwrap().1).collect();
    let at = |prefix: &str| {
        lines
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in\n{text}"))
    };
    assert!(
        lines[0].starts_with("trace of filesystem(pgst_fs)["),
        "{text}"
    );
    at(&format!("env OCF_RESKEY_device={dev}"));
    let fsck = at(&format!("run fsck -t ext4 -p {dev}"));
    assert!(lines[fsck + 1].starts_with("exit 0 after "), "{text}");
    let mounted = at(&format!("INFO: mounted {dev} on "));
    assert!(fsck < mounted);
    let end = at("DEBUG: start ends: ");
    assert!(lines[end].contains("(0)"), "{text}");
    assert!(
        mounted < end && lines.last() == Some(&"trace ends"),
        "{text}"
    );
    // The tracing switches are no parameters: no "ignoring parameters" warning.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("ignoring"), "{logged}");

    // OCF_TRACE_FILE names the file; without trace_ra nothing is traced.
    let file = base.path("stop.trace");
    let r = fs(
        &base,
        None,
        "monitor",
        &p[..3],
        &[("OCF_TRACE_FILE", file.to_str().unwrap())],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!file.exists());
    let r = fs(
        &base,
        None,
        "stop",
        &p[..3],
        &[
            ("OCF_TRACE_FILE", file.to_str().unwrap()),
            ("OCF_TRACE_RA", "yes"),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(" trace of filesystem(pgst_fs)["), "{text}");
    assert!(
        text.contains(" DEBUG: stop ends: OCF_SUCCESS (0)"),
        "{text}"
    );
    assert_eq!(only_file(&traces.join("Filesystem")), trace);

    // A descriptor the caller opened (OCF_TRACE_FILE=7).
    let fd_file = base.path("fd.trace");
    let env = ocf_env(
        &p[..3],
        &[("OCF_TRACE_FILE", "7"), ("OCF_RESKEY_trace_ra", "1")],
    );
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let shim = agent_path("filesystem");
    let r = run(
        &base,
        None,
        &env,
        &[
            "sh",
            "-c",
            "exec 7>>\"$0\"; exec \"$@\"",
            fd_file.to_str().unwrap(),
            &shim,
            "monitor",
        ],
    );
    assert_eq!(r.code, 7, "{r:?}");
    let text = std::fs::read_to_string(&fd_file).unwrap();
    assert!(
        text.contains(" DEBUG: monitor ends: OCF_NOT_RUNNING (7)"),
        "{text}"
    );
}
