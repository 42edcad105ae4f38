//! The one way this program starts other programs.
//!
//! Every child gets a cleared environment, a fixed `PATH`, `LC_ALL=C`, its own process
//! group and a deadline. Privileges are dropped in the child before `exec` (supplementary
//! groups, then gid, then uid), never through `su` or a shell string.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid};

use super::error::{SysError, SysResult};

/// The only `PATH` a child ever sees.
pub const FIXED_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Output kept from a child, per stream.
const CAPTURE_LIMIT: usize = 1 << 20;

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

/// Runs `cmd` to completion or until `deadline`, capturing its output.
pub fn run(cmd: &Cmd, deadline: Instant) -> Result<Outcome, SpawnError> {
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
            Ok(match (st.code(), st.signal()) {
                (Some(code), _) => Outcome::Exited {
                    code,
                    stdout,
                    stderr,
                },
                (None, Some(signal)) => Outcome::Signaled { signal, stderr },
                (None, None) => Outcome::Signaled { signal: 0, stderr },
            })
        }
        None => {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            let quick = |rx: mpsc::Receiver<Vec<u8>>| {
                rx.recv_timeout(Duration::from_millis(20))
                    .unwrap_or_default()
            };
            Ok(Outcome::TimedOut {
                stdout: quick(out),
                stderr: quick(err),
            })
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
    let child = spawn(&mut c, cmd)?;
    let pid = child.id();
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
    fn stdin_is_fed() {
        let out = run(&Cmd::new("cat").stdin("hello"), soon(5000)).unwrap();
        assert_eq!(out.stdout_str(), "hello");
    }
}
