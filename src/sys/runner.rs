//! The one way this program starts other programs.
//!
//! Every child gets a cleared environment, a fixed `PATH`, `LC_ALL=C`, its own process
//! group and a deadline. Privileges are dropped in the child before `exec` (supplementary
//! groups, then gid, then uid), never through `su` or a shell string.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid};

use super::error::{SysError, SysResult};

/// The only `PATH` a child ever sees.
pub const FIXED_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Output kept from a child, per stream.
const CAPTURE_LIMIT: usize = 1 << 20;

/// Where steps of the OS boundary are reported while an action is traced (`trace_ra`).
pub type TraceSink = Arc<dyn Fn(&str) + Send + Sync>;

static TRACE: RwLock<Option<TraceSink>> = RwLock::new(None);
/// Output of a child shown in a trace, per stream.
const TRACE_OUTPUT: usize = 4096;

/// Sets (or, with `None`, removes) the trace every child run is reported to. The
/// logging facade sets it for a traced action and removes it when the action ends.
pub fn set_trace(sink: Option<TraceSink>) {
    if let Ok(mut t) = TRACE.write() {
        *t = sink;
    }
}

/// Reports one step to the trace, if there is one; `line` is built only then. Any
/// module of the OS boundary may report its steps here.
pub fn trace_step(line: impl FnOnce() -> String) {
    let sink = TRACE.read().ok().and_then(|t| t.clone());
    if let Some(s) = sink {
        s(&line());
    }
}

/// Removes the trace `sink` if it is still the one set (a later one stays).
pub fn clear_trace(sink: &TraceSink) {
    if let Ok(mut t) = TRACE.write() {
        if t.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, sink)) {
            *t = None;
        }
    }
}

/// Held by the unit tests that set the process-wide trace.
#[cfg(test)]
pub static TRACE_TEST_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn traced() -> bool {
    TRACE.read().is_ok_and(|t| t.is_some())
}

/// A user to become in the child: supplementary groups, then gid, then uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
}

impl Credentials {
    /// Looks a user up in the password database, with its supplementary groups.
    pub fn of_user(name: &str) -> SysResult<Option<Credentials>> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|e| SysError::errno(format!("looking up user {name:?}"), e))?;
        let Some(user) = user else { return Ok(None) };
        let cname = std::ffi::CString::new(name)
            .map_err(|_| SysError::Invalid(format!("user name {name:?} contains NUL")))?;
        let groups = nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| SysError::errno(format!("reading the groups of {name:?}"), e))?;
        Ok(Some(Credentials {
            uid: user.uid,
            gid: user.gid,
            groups,
        }))
    }
}

/// A command to run. Built from parts, never from a shell string.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    creds: Option<Credentials>,
    cwd: Option<OsString>,
    inherit: Option<std::os::fd::RawFd>,
    output: Option<std::ffi::CString>,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            creds: None,
            cwd: None,
            inherit: None,
            output: None,
        }
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Cmd {
        self.args.push(a.as_ref().to_owned());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }
    /// Adds one variable to the otherwise empty environment.
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Cmd {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(data.into());
        self
    }
    pub fn run_as(mut self, creds: Credentials) -> Cmd {
        self.creds = Some(creds);
        self
    }
    pub fn current_dir(mut self, dir: impl AsRef<OsStr>) -> Cmd {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }
    /// Lets the child inherit this descriptor under the same number (others are closed
    /// on exec as usual).
    pub fn inherit_fd(mut self, fd: std::os::fd::RawFd) -> Cmd {
        self.inherit = Some(fd);
        self
    }
    /// Appends the child's standard output and error to `path`, opened (created mode
    /// 0640) in the child after the privilege drop: the file is opened with the
    /// rights of the user the child becomes, so a link planted there never makes root
    /// write or create a file. A path with a NUL byte is an error when spawning.
    pub fn append_output_to(mut self, path: &std::path::Path) -> Cmd {
        use std::os::unix::ffi::OsStrExt;
        self.output = Some(std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default());
        self
    }
    /// The file of [`Cmd::append_output_to`], if any.
    pub fn output_file(&self) -> Option<std::path::PathBuf> {
        use std::os::unix::ffi::OsStrExt;
        self.output
            .as_ref()
            .map(|c| std::path::PathBuf::from(std::ffi::OsStr::from_bytes(c.as_bytes())))
    }
    /// The command as one line for messages; never passed to a shell.
    pub fn display(&self) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in &self.args {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// The command for a trace: each argument quoted as a shell would need it (for
    /// reading and copying by hand; never passed to a shell), with the user, directory,
    /// added variables (secret-looking values hidden) and input size.
    pub fn trace_text(&self) -> String {
        let mut s = String::new();
        if let Some(c) = &self.creds {
            s.push_str(&format!("[uid {} gid {}] ", c.uid, c.gid));
        }
        if let Some(d) = &self.cwd {
            s.push_str(&format!("[cwd {}] ", quote(d)));
        }
        for (k, v) in &self.env {
            let name = k.to_string_lossy();
            let lower = name.to_ascii_lowercase();
            let hidden = ["pass", "secret", "token"]
                .iter()
                .any(|w| lower.contains(w));
            let v = if hidden {
                "(hidden)".to_string()
            } else {
                quote(v)
            };
            s.push_str(&format!("{}={v} ", quote(k)));
        }
        s.push_str(&quote(&self.program));
        for a in &self.args {
            s.push(' ');
            s.push_str(&quote(a));
        }
        if let Some(i) = &self.stdin {
            s.push_str(&format!(" <({} bytes)", i.len()));
        }
        s
    }

    fn build(&self, detached: bool) -> std::process::Command {
        let mut c = std::process::Command::new(&self.program);
        c.args(&self.args)
            .env_clear()
            .env("PATH", FIXED_PATH)
            .env("LC_ALL", "C");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        if !detached {
            c.process_group(0);
        }
        let creds = self.creds.clone();
        let inherit = self.inherit;
        let output = self.output.clone();
        if creds.is_some() || detached || inherit.is_some() || output.is_some() {
            // SAFETY: the closure runs in the forked child before exec and calls only
            // async-signal-safe functions (setsid, fcntl, setgroups, setgid, setuid, open,
            // dup2, close) on data prepared before the fork; it allocates nothing.
            unsafe {
                c.pre_exec(move || {
                    if detached {
                        nix::unistd::setsid()?;
                    }
                    if let Some(fd) = inherit {
                        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
                        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
                    }
                    if let Some(cr) = &creds {
                        nix::unistd::setgroups(&cr.groups)?;
                        nix::unistd::setgid(cr.gid)?;
                        nix::unistd::setuid(cr.uid)?;
                    }
                    if let Some(path) = &output {
                        use nix::fcntl::OFlag;
                        let fd = nix::fcntl::open(
                            path.as_c_str(),
                            OFlag::O_WRONLY
                                | OFlag::O_APPEND
                                | OFlag::O_CREAT
                                | OFlag::O_NOCTTY
                                | OFlag::O_CLOEXEC,
                            nix::sys::stat::Mode::from_bits_truncate(0o640),
                        )?;
                        nix::unistd::dup2(fd, 1)?;
                        nix::unistd::dup2(fd, 2)?;
                        nix::unistd::close(fd)?;
                    }
                    Ok(())
                });
            }
        }
        c
    }
}

/// How a child ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited {
        code: i32,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    Signaled {
        signal: i32,
        stderr: Vec<u8>,
    },
    /// The deadline passed; the child's whole process group was killed.
    TimedOut {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
}

impl Outcome {
    pub fn success(&self) -> bool {
        matches!(self, Outcome::Exited { code: 0, .. })
    }
    pub fn code(&self) -> Option<i32> {
        match self {
            Outcome::Exited { code, .. } => Some(*code),
            _ => None,
        }
    }
    pub fn stdout(&self) -> &[u8] {
        match self {
            Outcome::Exited { stdout, .. } | Outcome::TimedOut { stdout, .. } => stdout,
            Outcome::Signaled { .. } => &[],
        }
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(self.stdout()).into_owned()
    }
    pub fn stderr(&self) -> &[u8] {
        match self {
            Outcome::Exited { stderr, .. }
            | Outcome::Signaled { stderr, .. }
            | Outcome::TimedOut { stderr, .. } => stderr,
        }
    }
    /// A short description for an exit reason: "exit 3: <first stderr line>".
    pub fn describe(&self) -> String {
        let err = String::from_utf8_lossy(self.stderr());
        let line = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        let head = match self {
            Outcome::Exited { code, .. } => format!("exit {code}"),
            Outcome::Signaled { signal, .. } => format!("killed by signal {signal}"),
            Outcome::TimedOut { .. } => "timed out".to_string(),
        };
        if line.is_empty() {
            head
        } else {
            format!("{head}: {}", line.trim())
        }
    }
}

/// Errors of starting a child (not of the child itself: see [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{program}: not found in {FIXED_PATH}")]
    NotFound { program: String },
    #[error("cannot start {program}: {source}")]
    Failed {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<SpawnError> for SysError {
    fn from(e: SpawnError) -> Self {
        SysError::Invalid(e.to_string())
    }
}

/// `s` quoted for a POSIX shell when it needs it.
fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The head of a child's output for a trace.
fn head(what: &str, out: &[u8]) -> String {
    let n = out.len().min(TRACE_OUTPUT);
    let more = if out.len() > n { " ..." } else { "" };
    format!(
        "{what} ({} bytes): {}{more}",
        out.len(),
        String::from_utf8_lossy(&out[..n]).trim_end()
    )
}

/// Reports how a child ended to the trace.
fn trace_outcome(r: Result<&Outcome, &SpawnError>, took: Duration) {
    trace_step(|| {
        let ms = took.as_micros() as f64 / 1000.0;
        match r {
            Ok(Outcome::Exited { code, .. }) => format!("exit {code} after {ms:.1} ms"),
            Ok(Outcome::Signaled { signal, .. }) => {
                format!("killed by signal {signal} after {ms:.1} ms")
            }
            Ok(Outcome::TimedOut { .. }) => {
                format!("timed out after {ms:.1} ms; process group killed")
            }
            Err(e) => format!("not started: {e}"),
        }
    });
    if let Ok(o) = r {
        for (what, out) in [("stdout", o.stdout()), ("stderr", o.stderr())] {
            if !out.is_empty() {
                trace_step(|| head(what, out));
            }
        }
    }
}

/// Runs `cmd` to completion or until `deadline`, capturing its output.
pub fn run(cmd: &Cmd, deadline: Instant) -> Result<Outcome, SpawnError> {
    start(cmd, deadline)?.wait()
}

/// A child started by [`start`] that runs while the caller does something else. Its
/// outcome is taken with [`Started::wait`]; one dropped without it is waited for just
/// the same (killed at its deadline), so no child outlives the `Started`.
pub struct Started {
    running: Option<Running>,
    deadline: Instant,
    /// When it was started, for the trace.
    t: Option<Instant>,
}

struct Running {
    child: Child,
    out: mpsc::Receiver<Vec<u8>>,
    err: mpsc::Receiver<Vec<u8>>,
}

/// Starts `cmd`, capturing its output, and returns at once; it is killed if it has not
/// ended by `deadline` when waited for.
pub fn start(cmd: &Cmd, deadline: Instant) -> Result<Started, SpawnError> {
    let t = traced().then(|| {
        trace_step(|| format!("run {}", cmd.trace_text()));
        Instant::now()
    });
    let running = launch(cmd);
    if let (Err(e), Some(t)) = (&running, t) {
        trace_outcome(Err(e), t.elapsed());
    }
    Ok(Started {
        running: Some(running?),
        deadline,
        t,
    })
}

impl Started {
    /// Waits for the child until its deadline (then kills its process group).
    pub fn wait(mut self) -> Result<Outcome, SpawnError> {
        let running = self.running.take().expect("a Started is waited for once");
        let o = running.finish(self.deadline);
        if let Some(t) = self.t {
            trace_outcome(Ok(&o), t.elapsed());
        }
        Ok(o)
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.finish(self.deadline);
        }
    }
}

fn launch(cmd: &Cmd) -> Result<Running, SpawnError> {
    let mut c = cmd.build(false);
    c.stdin(if cmd.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = spawn(&mut c, cmd)?;
    if let (Some(data), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
        // A child that does not read its input must not block us: write from a thread.
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    Ok(Running { child, out, err })
}

impl Running {
    fn finish(self, deadline: Instant) -> Outcome {
        let Running {
            mut child,
            out,
            err,
        } = self;
        let status = wait_until(&mut child, deadline);
        // Grandchildren may hold the pipes open; never wait for them past a short grace.
        let grace = Instant::now() + Duration::from_millis(50);
        let collect = |rx: mpsc::Receiver<Vec<u8>>| {
            let until = deadline.max(grace);
            rx.recv_timeout(until.saturating_duration_since(Instant::now()))
                .unwrap_or_default()
        };
        match status {
            Some(st) => {
                let (stdout, stderr) = (collect(out), collect(err));
                match (st.code(), st.signal()) {
                    (Some(code), _) => Outcome::Exited {
                        code,
                        stdout,
                        stderr,
                    },
                    (None, Some(signal)) => Outcome::Signaled { signal, stderr },
                    (None, None) => Outcome::Signaled { signal: 0, stderr },
                }
            }
            None => {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.kill();
                let _ = child.wait();
                let quick = |rx: mpsc::Receiver<Vec<u8>>| {
                    rx.recv_timeout(Duration::from_millis(20))
                        .unwrap_or_default()
                };
                Outcome::TimedOut {
                    stdout: quick(out),
                    stderr: quick(err),
                }
            }
        }
    }
}

/// Starts `cmd` in a session of its own, detached from ours, with no standard streams:
/// it outlives the caller and Pacemaker's kill of the caller's process group.
pub fn spawn_detached(cmd: &Cmd) -> Result<u32, SpawnError> {
    detached(cmd, None)
}

/// Like [`spawn_detached`], with standard output and error going to `log` (opened by
/// the caller, so the child needs no right to open it).
pub fn spawn_detached_logged(cmd: &Cmd, log: std::fs::File) -> Result<u32, SpawnError> {
    detached(cmd, Some(log))
}

fn detached(cmd: &Cmd, log: Option<std::fs::File>) -> Result<u32, SpawnError> {
    let mut c = cmd.build(true);
    let (out, err) = match log {
        Some(f) => {
            let f2 = f.try_clone().map_err(|source| SpawnError::Failed {
                program: cmd.program.to_string_lossy().into_owned(),
                source,
            })?;
            (Stdio::from(f), Stdio::from(f2))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    c.stdin(Stdio::null()).stdout(out).stderr(err);
    let child = spawn(&mut c, cmd).inspect_err(|e| {
        trace_step(|| format!("detached {}: not started: {e}", cmd.trace_text()));
    })?;
    let pid = child.id();
    trace_step(|| format!("detached {}: pid {pid}", cmd.trace_text()));
    // The grandparent does not wait: reap it from a thread if we live long enough,
    // otherwise init adopts it when we exit.
    thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(pid)
}

fn spawn(c: &mut std::process::Command, cmd: &Cmd) -> Result<Child, SpawnError> {
    c.spawn().map_err(|source| {
        let program = cmd.program.to_string_lossy().into_owned();
        if source.kind() == std::io::ErrorKind::NotFound {
            SpawnError::NotFound { program }
        } else {
            SpawnError::Failed { program, source }
        }
    })
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut p) = pipe {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                match p.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if buf.len() < CAPTURE_LIMIT {
                            let room = CAPTURE_LIMIT - buf.len();
                            buf.extend_from_slice(&chunk[..n.min(room)]);
                        }
                    }
                }
            }
            let _ = tx.send(buf);
        });
    } else {
        let _ = tx.send(Vec::new());
    }
    rx
}

/// Waits for the child with a short, growing poll interval; `None` when the deadline passed.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let mut nap = Duration::from_micros(200);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(_) => return child.wait().ok(),
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn environment_is_cleared_and_fixed() {
        let out = run(&Cmd::new("env"), soon(5000)).unwrap();
        let text = out.stdout_str();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort();
        assert_eq!(lines, ["LC_ALL=C", &format!("PATH={FIXED_PATH}")]);
    }

    #[test]
    fn exit_code_and_stderr_are_reported() {
        let out = run(&Cmd::new("ls").arg("/nonexistent/pgstack-test"), soon(5000)).unwrap();
        assert_eq!(out.code(), Some(2));
        assert!(out.describe().starts_with("exit 2: "), "{}", out.describe());
        assert!(out.describe().contains("/nonexistent/pgstack-test"));
    }

    #[test]
    fn arguments_are_never_interpreted_by_a_shell() {
        let out = run(&Cmd::new("echo").arg("$(id); `id` | x"), soon(5000)).unwrap();
        assert_eq!(out.stdout_str(), "$(id); `id` | x\n");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let e = run(&Cmd::new("pgstack-no-such-program"), soon(1000)).unwrap_err();
        assert!(matches!(e, SpawnError::NotFound { .. }), "{e}");
    }

    #[test]
    fn deadline_kills_the_whole_process_group() {
        let t = Instant::now();
        let out = run(&Cmd::new("sleep").arg("30"), soon(200)).unwrap();
        assert!(matches!(out, Outcome::TimedOut { .. }));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn a_started_child_runs_while_the_caller_works() {
        let t = Instant::now();
        let s = start(&Cmd::new("sleep").arg("0.3"), soon(5000)).unwrap();
        thread::sleep(Duration::from_millis(300));
        let out = s.wait().unwrap();
        assert_eq!(out.code(), Some(0));
        // Both took their 0.3 s at once.
        assert!(
            t.elapsed() < Duration::from_millis(550),
            "{:?}",
            t.elapsed()
        );
        // One dropped unwaited is still ended by its deadline, its process group killed.
        let t = Instant::now();
        drop(start(&Cmd::new("sleep").arg("30"), soon(200)).unwrap());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let e = start(&Cmd::new("pgstack-no-such-program"), soon(1000)).err();
        assert!(matches!(e, Some(SpawnError::NotFound { .. })), "{e:?}");
    }

    #[test]
    fn a_signal_is_reported_as_such() {
        let out = run(&Cmd::new("perl").args(["-e", "kill 9, $$"]), soon(5000)).unwrap();
        assert!(
            matches!(out, Outcome::Signaled { signal: 9, .. }),
            "{out:?}"
        );
    }

    #[test]
    fn privileges_are_dropped_in_the_child() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let creds = Credentials::of_user("nobody").unwrap().unwrap();
        let out = run(&Cmd::new("id").arg("-u").run_as(creds.clone()), soon(5000)).unwrap();
        assert_eq!(out.stdout_str().trim(), creds.uid.to_string());
        let out = run(&Cmd::new("id").arg("-G").run_as(creds.clone()), soon(5000)).unwrap();
        let mut got: Vec<u32> = out
            .stdout_str()
            .split_whitespace()
            .map(|g| g.parse().unwrap())
            .collect();
        let mut want: Vec<u32> = creds.groups.iter().map(|g| g.as_raw()).collect();
        got.sort();
        want.sort();
        want.dedup();
        assert_eq!(got, want);
    }

    #[test]
    fn commands_are_reported_to_the_trace() {
        let _one = TRACE_TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let s = seen.clone();
        set_trace(Some(Arc::new(move |l: &str| {
            s.lock().unwrap().push(l.to_string())
        })));
        let marker = format!("pgst-trace-{}", std::process::id());
        let out = run(
            &Cmd::new("sh")
                .args(["-c", "echo out; echo err >&2; exit 3", &marker])
                .env("PGPASSWORD", "sekrit"),
            soon(5000),
        );
        let _ = run(
            &Cmd::new("pgstack-no-such-program").arg(&marker),
            soon(1000),
        );
        set_trace(None);
        assert_eq!(out.unwrap().code(), Some(3));
        let lines = seen.lock().unwrap().clone();
        // Other tests may run children meanwhile: look at ours only.
        let i = lines
            .iter()
            .position(|l| l.starts_with("run PGPASSWORD=(hidden) sh -c ") && l.contains(&marker))
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert!(
            lines[i].contains("'echo out; echo err >&2; exit 3'"),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.contains("sekrit")), "{lines:?}");
        assert!(
            lines[i..].iter().any(|l| l.starts_with("exit 3 after ")),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"stdout (4 bytes): out".to_string()),
            "{lines:?}"
        );
        assert!(
            lines.contains(&"stderr (4 bytes): err".to_string()),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("not started: pgstack-no-such-program: not found")),
            "{lines:?}"
        );
    }

    #[test]
    fn trace_quoting() {
        assert_eq!(quote(OsStr::new("/dev/loop0")), "/dev/loop0");
        assert_eq!(quote(OsStr::new("")), "''");
        assert_eq!(quote(OsStr::new("it's")), "'it'\\''s'");
        assert_eq!(quote(OsStr::new("a b")), "'a b'");
    }

    #[test]
    fn stdin_is_fed() {
        let out = run(&Cmd::new("cat").stdin("hello"), soon(5000)).unwrap();
        assert_eq!(out.stdout_str(), "hello");
    }
}
