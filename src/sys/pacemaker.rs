//! Pacemaker's offline and command-line tools (crm_verify, crm_simulate, crm_attribute,
//! crm_resource) and the alert agent's delivery (append to a file, hand to the local MTA).
//!
//! Every tool runs through [`runner`](super::runner) with a deadline. A `cib_file` makes the
//! tool work on that file (`CIB_file`), never on the live cluster; `None` means the live
//! cluster. Results are typed: an exit code with messages, or the parsed action list.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use super::error::{SysError, SysResult};
use super::runner::{run, Cmd, Outcome};

/// What crm_verify said of a CIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// 0: valid; 78 (EX_CONFIG): errors or warnings.
    pub code: i32,
    /// Its messages, one per line, without the log prefixes.
    pub messages: Vec<String>,
}

impl Verdict {
    pub fn valid(&self) -> bool {
        self.code == 0
    }
}

fn tool(program: &str, cib_file: Option<&Path>) -> Cmd {
    let c = Cmd::new(program);
    match cib_file {
        Some(f) => c.env("CIB_file", f),
        None => c,
    }
}

fn finished(out: Outcome, what: &str) -> SysResult<Outcome> {
    match out {
        Outcome::TimedOut { .. } => Err(SysError::Timeout { what: what.into() }),
        Outcome::Signaled { .. } => Err(SysError::Invalid(format!("{what}: {}", out.describe()))),
        o => Ok(o),
    }
}

fn checked(out: Outcome, what: &str) -> SysResult<Outcome> {
    let out = finished(out, what)?;
    if out.success() {
        Ok(out)
    } else {
        Err(SysError::Invalid(format!("{what}: {}", out.describe())))
    }
}

/// Whether the resource agent `class:provider:type` (or `class:type`) is installed on
/// this host: `crm_resource --show-metadata` finds it.
pub fn agent_installed(agent: &str, deadline: Instant) -> SysResult<bool> {
    let what = format!("crm_resource --show-metadata {agent}");
    let out = finished(
        run(
            &Cmd::new("crm_resource").args(["--show-metadata", agent]),
            deadline,
        )?,
        &what,
    )?;
    Ok(out.success())
}

/// Makes a crm_verify message readable: drops the "(function) \twarning:" log prefix.
pub fn clean_message(line: &str) -> String {
    let l = line.trim();
    let l = match (l.starts_with('('), l.find(')')) {
        (true, Some(i)) => l[i + 1..].trim(),
        _ => l,
    };
    l.to_string()
}

/// `crm_verify --xml-file FILE -V`.
pub fn crm_verify(file: &Path, deadline: Instant) -> SysResult<Verdict> {
    let cmd = Cmd::new("crm_verify").arg("--xml-file").arg(file).arg("-V");
    let out = finished(run(&cmd, deadline)?, "crm_verify")?;
    let text =
        String::from_utf8_lossy(out.stderr()).into_owned() + &String::from_utf8_lossy(out.stdout());
    Ok(Verdict {
        code: out.code().unwrap_or(-1),
        messages: text
            .lines()
            .map(clean_message)
            .filter(|l| !l.is_empty())
            .collect(),
    })
}

/// One action of a transition, in the order crm_simulate executed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A resource action: `op` (start, stop, promote, demote, monitor, notify, cancel, ...)
    /// of `resource` (clone instances keep their `:N` suffix when crm_simulate gives it)
    /// on `node`; `interval` in ms for recurring monitors.
    Resource {
        resource: String,
        op: String,
        node: String,
        interval: Option<u64>,
    },
    /// Fencing of `target` (`op` reboot, off, on).
    Fence { target: String, op: String },
    /// A pseudo action (bookkeeping of clones and groups).
    Pseudo { task: String },
    /// The cluster shuts a node down.
    Shutdown { node: String },
}

impl Action {
    /// Resource name without the clone instance suffix.
    pub fn base_resource(&self) -> Option<&str> {
        match self {
            Action::Resource { resource, .. } => {
                Some(resource.split(':').next().unwrap_or(resource))
            }
            _ => None,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Resource {
                resource,
                op,
                node,
                interval: Some(ms),
            } => write!(f, "{op} {resource} on {node} (every {}s)", ms / 1000),
            Action::Resource {
                resource, op, node, ..
            } => write!(f, "{op} {resource} on {node}"),
            Action::Fence { target, op } => write!(f, "fence ({op}) {target}"),
            Action::Pseudo { task } => write!(f, "pseudo {task}"),
            Action::Shutdown { node } => write!(f, "shutdown {node}"),
        }
    }
}

/// The ordered actions of the `<transition>` of `crm_simulate --output-as=xml`.
pub fn parse_transition(xml: &str) -> SysResult<Vec<Action>> {
    let doc = crate::cib::xml::parse(xml)
        .map_err(|e| SysError::Invalid(format!("crm_simulate output is not XML: {e}")))?;
    let t = doc.find("transition").ok_or_else(|| {
        SysError::Invalid("crm_simulate output has no <transition> (was --simulate given?)".into())
    })?;
    let mut out = Vec::new();
    let mut failed = None;
    t.visit(&mut |e, _| {
        if failed.is_some() {
            return;
        }
        let need = |k: &str| -> SysResult<String> {
            e.attr(k).map(str::to_string).ok_or_else(|| {
                SysError::Invalid(format!("crm_simulate output: <{}> without {k}", e.name))
            })
        };
        let action = || -> SysResult<Option<Action>> {
            Ok(Some(match e.name.as_str() {
                "rsc_action" => Action::Resource {
                    resource: need("resource")?,
                    op: need("op")?,
                    node: need("node")?,
                    interval: e.attr("interval").and_then(|v| v.parse().ok()),
                },
                "fencing_action" => Action::Fence {
                    target: need("target")?,
                    op: need("op")?,
                },
                "pseudo_action" => Action::Pseudo {
                    task: need("task")?,
                },
                "cluster_action" => Action::Shutdown {
                    node: need("node")?,
                },
                _ => return Ok(None),
            }))
        };
        match action() {
            Ok(Some(a)) => out.push(a),
            Ok(None) => {}
            Err(err) => failed = Some(err),
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// A run of `crm_simulate --simulate`.
#[derive(Debug, Clone)]
pub struct Simulation {
    pub actions: Vec<Action>,
    /// The raw `--output-as=xml` answer (kept for reports).
    pub xml: String,
}

/// `crm_simulate --xml-file IN --simulate --output-as=xml [extra] [--save-output OUT]`.
pub fn crm_simulate(
    input: &Path,
    extra: &[String],
    save_output: Option<&Path>,
    deadline: Instant,
) -> SysResult<Simulation> {
    let mut cmd = Cmd::new("crm_simulate")
        .arg("--xml-file")
        .arg(input)
        .arg("--simulate")
        .arg("--output-as=xml")
        .args(extra);
    if let Some(o) = save_output {
        cmd = cmd.arg("--save-output").arg(o);
    }
    let out = checked(run(&cmd, deadline)?, "crm_simulate")?;
    let xml = out.stdout_str();
    Ok(Simulation {
        actions: parse_transition(&xml)?,
        xml,
    })
}

/// Sets a node attribute (`lifetime` "reboot" for status, "forever" for the nodes section).
pub fn crm_attribute(
    cib_file: Option<&Path>,
    node: &str,
    name: &str,
    value: &str,
    lifetime: &str,
    deadline: Instant,
) -> SysResult<()> {
    let cmd = tool("crm_attribute", cib_file)
        .args(["--node", node, "--name", name, "--update", value])
        .args(["--lifetime", lifetime]);
    checked(run(&cmd, deadline)?, "crm_attribute").map(|_| ())
}

/// `crm_resource --move`: a `cli-prefer-RSC` location constraint for `node`.
pub fn crm_resource_move(
    cib_file: Option<&Path>,
    resource: &str,
    node: &str,
    lifetime: Option<&str>,
    deadline: Instant,
) -> SysResult<String> {
    let mut args = vec!["--move", "--resource", resource, "--node", node];
    if let Some(l) = lifetime {
        args.extend(["--lifetime", l]);
    }
    crm_resource_said(cib_file, &args, deadline)
}

/// `crm_resource --clear`: removes the constraints of earlier moves and bans of `resource`.
pub fn crm_resource_clear(
    cib_file: Option<&Path>,
    resource: &str,
    deadline: Instant,
) -> SysResult<String> {
    crm_resource_said(cib_file, &["--clear", "--resource", resource], deadline)
}

/// `crm_resource ARGS`, which must succeed (named by its first argument in an error):
/// what it said on stdout, then stderr.
fn crm_resource_said(
    cib_file: Option<&Path>,
    args: &[&str],
    deadline: Instant,
) -> SysResult<String> {
    let cmd = tool("crm_resource", cib_file).args(args);
    let what = format!("crm_resource {}", args.first().unwrap_or(&""));
    let out = checked(run(&cmd, deadline)?, &what)?;
    Ok(out.stdout_str() + &String::from_utf8_lossy(out.stderr()))
}

/// `crm_resource --wait`: waits until the live cluster has no pending actions.
pub fn crm_resource_wait(timeout_s: u64, deadline: Instant) -> SysResult<()> {
    let cmd = Cmd::new("crm_resource").args(["--wait", "--timeout", &format!("{timeout_s}s")]);
    checked(run(&cmd, deadline)?, "crm_resource --wait").map(|_| ())
}

/// Where a resource runs: (node, promoted).
pub type Placement = Vec<(String, bool)>;

/// Reads `crm_resource --locate` lines: "resource X is running on: NODE [Promoted]".
pub fn parse_locate(text: &str) -> Placement {
    text.lines()
        .filter_map(|l| l.split_once("is running on:"))
        .filter_map(|(_, rest)| {
            let mut w = rest.split_whitespace();
            let node = w.next()?.to_string();
            let promoted = w.any(|x| x == "Promoted" || x == "Master");
            Some((node, promoted))
        })
        .collect()
}

/// `crm_resource --locate`: the nodes `resource` runs on.
pub fn crm_resource_locate(
    cib_file: Option<&Path>,
    resource: &str,
    deadline: Instant,
) -> SysResult<Placement> {
    let cmd = tool("crm_resource", cib_file).args(["--locate", "--resource", resource]);
    let out = finished(run(&cmd, deadline)?, "crm_resource --locate")?;
    // Exit 0 with the lines, or non-zero with "not running" for a stopped resource.
    Ok(parse_locate(&out.stdout_str()))
}

/// A private working directory (mode 0700) under the system's temporary directory,
/// removed with everything in it when dropped.
#[derive(Debug)]
pub struct Workdir {
    path: std::path::PathBuf,
}

impl Workdir {
    pub fn new(tag: &str) -> SysResult<Workdir> {
        use std::os::unix::fs::DirBuilderExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "pgstack-{tag}.{}.{}.{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| SysError::io(format!("creating {}", path.display()), e))?;
        Ok(Workdir { path })
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.path.join(name)
    }

    pub fn write(&self, name: &str, text: &str) -> SysResult<std::path::PathBuf> {
        let p = self.path(name);
        std::fs::write(&p, text)
            .map_err(|e| SysError::io(format!("writing {}", p.display()), e))?;
        Ok(p)
    }

    pub fn copy(&self, from: &str, to: &str) -> SysResult<std::path::PathBuf> {
        let (a, b) = (self.path(from), self.path(to));
        std::fs::copy(&a, &b)
            .map_err(|e| SysError::io(format!("copying {} to {}", a.display(), b.display()), e))?;
        Ok(b)
    }

    pub fn read(&self, name: &str) -> SysResult<String> {
        read_file(&self.path(name))
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Reads a whole text file (a CIB), naming it on failure.
pub fn read_file(p: &Path) -> SysResult<String> {
    std::fs::read_to_string(p).map_err(|e| SysError::io(format!("reading {}", p.display()), e))
}

/// Writes a whole text file through a temporary name and a rename.
pub fn write_file(p: &Path, text: &str) -> SysResult<()> {
    let tmp = p.with_extension("pgstack-new");
    std::fs::write(&tmp, text)
        .map_err(|e| SysError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, p).map_err(|e| SysError::io(format!("renaming to {}", p.display()), e))
}

/// Appends `text` to `path` in one write (O_APPEND: lines of concurrent alerts do not
/// interleave), creating it with mode 0640.
pub fn append_to_file(path: &Path, text: &str) -> SysResult<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| SysError::io(format!("opening {}", path.display()), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| SysError::io(format!("appending to {}", path.display()), e))
}

/// Hands a complete message to the local MTA: `SENDMAIL -oi -- RECIPIENT`, message on stdin.
pub fn sendmail(
    sendmail: &Path,
    recipient: &str,
    message: &str,
    deadline: Instant,
) -> SysResult<()> {
    let cmd = Cmd::new(sendmail)
        .args(["-oi", "--", recipient])
        .stdin(message.as_bytes().to_vec());
    let what = format!("{} {recipient}", sendmail.display());
    checked(run(&cmd, deadline)?, &what).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_is_read_in_order() {
        let xml = include_str!("../../tests/fixtures/crm_simulate/migrate.xml");
        let a = parse_transition(xml).unwrap();
        let main: Vec<String> = a
            .iter()
            .filter(|a| matches!(a, Action::Resource { op, .. } if op != "monitor" && op != "notify" && op != "cancel"))
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            main,
            [
                "stop pg_vip on pg1",
                "stop pg_db on pg1",
                "stop pg_fs on pg1",
                "stop pg_lvm on pg1",
                "demote drbd_pg on pg1",
                "promote drbd_pg on pg2",
                "start pg_lvm on pg2",
                "start pg_fs on pg2",
                "start pg_db on pg2",
                "start pg_vip on pg2",
            ]
        );
    }

    #[test]
    fn fencing_is_an_action() {
        let xml = include_str!("../../tests/fixtures/crm_simulate/node-fail.xml");
        let a = parse_transition(xml).unwrap();
        assert!(a.contains(&Action::Fence {
            target: "pg1".into(),
            op: "reboot".into()
        }));
    }

    #[test]
    fn output_without_transition_is_an_error() {
        assert!(parse_transition("<pacemaker-result/>").is_err());
        assert!(parse_transition("<a><b></a>").is_err());
    }

    #[test]
    fn locate_lines_are_read() {
        let p = parse_locate(
            "resource ms_drbd_pg is running on: pg2\nresource ms_drbd_pg is running on: pg1 Promoted\n",
        );
        assert_eq!(
            p,
            vec![("pg2".to_string(), false), ("pg1".to_string(), true)]
        );
        assert!(parse_locate("resource x is NOT running\n").is_empty());
    }

    #[test]
    fn log_prefixes_are_dropped() {
        assert_eq!(
            clean_message("(unpack_resources) \terror: Resource start-up disabled"),
            "error: Resource start-up disabled"
        );
    }
}
