//! The lab: a real Corosync/Pacemaker cluster of 2 or 3 nodes on one machine, running the
//! book's `PGServer` group (file system -> PostgreSQL -> VIP) on one XFS loop device every
//! node sees, with a client namespace and a lab fence device.
//!
//! Each node is a network + mount + pid + uts + ipc namespace: its PID 1 is `pgstack lab
//! _init` ([`node::init`]), which mounts the node's private Corosync/Pacemaker directories
//! and runs corosync and pacemakerd. The nodes' NICs are veth links to a bridge living in a
//! namespace of its own; the client namespace hangs on the same bridge. Killing a node's
//! PID 1 and silencing its NIC is a power cut ([`Lab::crash`]).
//!
//! Everything the lab makes is recorded under [`DIR`] before it is made, so [`Lab::down`]
//! removes it all, also after a failed or interrupted `up`. The CLI (`pgstack lab`) and the
//! end-to-end tests drive the same [`Lab`].
//!
//! OS work goes through `sys::runner` (ip, unshare, nsenter, losetup, mkfs.xfs, initdb,
//! cibadmin, crm_mon) or nix; errors are [`LabError`].

pub mod advanced;
pub mod client;
pub mod cluster;
pub mod fence;
pub mod history;
pub mod measure;
pub mod net;
pub mod node;
pub mod pgsetup;
pub mod proc;
pub mod repl;
pub mod run;
pub mod storage;
pub mod uml;
pub mod writer;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::cib::{CibError, RenderOptions};
use crate::sys::SysError;

/// The lab's state directory: everything the lab writes lives here.
pub const DIR: &str = "/tmp/pgst-lab";
/// Every namespace of the lab starts with this.
pub const NS_PREFIX: &str = "pgst-lab-";
/// The bridge's namespace.
pub const NS_BRIDGE: &str = "pgst-lab-br";
/// The client's namespace.
pub const NS_CLIENT: &str = "pgst-lab-c";
/// The lab network: node i is .i, the client .100, the VIP .50.
pub const SUBNET: &str = "10.99.50";
pub const PREFIX: u8 = 24;
/// The service address.
pub const VIP: &str = "10.99.50.50";
pub const CLIENT_ADDR: &str = "10.99.50.100";
/// The lab's fence agent, installed at `up` and removed at `down`.
pub const FENCE_AGENT: &str = "/usr/sbin/fence_pgstack_lab";
/// Where the OCF agents must be for Pacemaker to find them.
pub const OCF_ROOT: &str = "/usr/lib/ocf/resource.d";
/// The alert agent the template names (installed by `pgstack install`).
pub const ALERT_AGENT: &str = "/usr/lib/pgstack/pgstack-alert";
/// The alert file inside a node (its /var/log/pacemaker is private).
pub const ALERT_FILE: &str = "/var/log/pacemaker/pgstack-alerts.log";
/// The socket directory of PostgreSQL inside a node.
pub const PG_SOCKETDIR: &str = "/run/postgresql";
pub const PG_BINDIR: &str = "/usr/lib/postgresql/15/bin";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("a lab already exists ({0} is there): `pgstack lab down` removes it")]
    Busy(PathBuf),
    #[error("no lab is running ({0} is missing): `pgstack lab up` starts one")]
    NotUp(PathBuf),
    #[error("{cmd}: {outcome}")]
    Command { cmd: String, outcome: String },
    #[error("{what}: not done within {secs:.1} s")]
    Timeout { what: String, secs: f64 },
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Cib(#[from] CibError),
}

impl LabError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
    pub fn errno(context: impl Into<String>, e: nix::errno::Errno) -> Self {
        LabError::Sys(SysError::errno(context, e))
    }
}

pub type LabResult<T> = Result<T, LabError>;

/// What the lab runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// The PGServer group on a shared XFS volume.
    Shared,
    /// Streaming replication: a promotable clone, one data directory per node, the VIP on
    /// the primary.
    Replication,
}

impl Stack {
    pub fn name(self) -> &'static str {
        match self {
            Stack::Shared => "shared",
            Stack::Replication => "replication",
        }
    }
    fn parse(s: &str) -> Option<Stack> {
        match s {
            "shared" => Some(Stack::Shared),
            "replication" => Some(Stack::Replication),
            _ => None,
        }
    }
}

/// The options of `pgstack lab up`.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: u8,
    pub stack: Stack,
    /// Corosync token timeout in ms.
    pub token_ms: u32,
    pub fencing: bool,
    /// Replication stack: synchronous replication (`synchronous_standby_names` naming every
    /// node, `synchronous_commit = on`).
    pub sync: bool,
    /// Extra template variables (`--set provider=heartbeat`, ...).
    pub sets: Vec<(String, String)>,
    /// The pgstack binary the lab runs for its node inits, fence agent and writer.
    pub exe: PathBuf,
    /// State directory (default [`DIR`]).
    pub dir: PathBuf,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            nodes: 2,
            stack: Stack::Replication,
            token_ms: 1000,
            fencing: true,
            sync: false,
            sets: Vec::new(),
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/usr/sbin/pgstack")),
            dir: PathBuf::from(DIR),
        }
    }
}

/// The recorded configuration of a running lab (`DIR/lab.conf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub nodes: u8,
    pub stack: Stack,
    pub token_ms: u32,
    pub fencing: bool,
    pub sync: bool,
    pub provider: String,
    pub exe: PathBuf,
}

impl Config {
    fn to_text(&self) -> String {
        format!(
            "nodes={}\nstack={}\ntoken_ms={}\nfencing={}\nsync={}\nprovider={}\nexe={}\n",
            self.nodes,
            self.stack.name(),
            self.token_ms,
            self.fencing,
            self.sync,
            self.provider,
            self.exe.display()
        )
    }
    fn parse(text: &str) -> Option<Config> {
        let m: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        Some(Config {
            nodes: m.get("nodes")?.parse().ok()?,
            stack: Stack::parse(m.get("stack").copied().unwrap_or("shared"))?,
            sync: m.get("sync") == Some(&"true"),
            token_ms: m.get("token_ms")?.parse().ok()?,
            fencing: m.get("fencing")? == &"true",
            provider: m.get("provider")?.to_string(),
            exe: PathBuf::from(m.get("exe")?),
        })
    }
}

/// A node name: n1, n2, n3.
pub fn node_name(i: u8) -> String {
    format!("n{i}")
}

/// The index of a node name, checked against the lab's size.
pub fn node_index(name: &str, nodes: u8) -> LabResult<u8> {
    name.strip_prefix('n')
        .and_then(|s| s.parse::<u8>().ok())
        .filter(|i| (1..=nodes).contains(i))
        .ok_or_else(|| {
            LabError::Invalid(format!(
                "unknown node {name:?}: the lab has {}",
                (1..=nodes).map(node_name).collect::<Vec<_>>().join(", ")
            ))
        })
}

pub fn node_ns(name: &str) -> String {
    format!("{NS_PREFIX}{name}")
}

pub fn node_addr(i: u8) -> String {
    format!("{SUBNET}.{i}")
}

/// Seconds since the epoch, as a float (the clock every lab record uses).
pub fn now_f() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Prints the steps of a long operation with the time since its start.
pub struct Steps {
    t0: Instant,
    quiet: bool,
}

impl Steps {
    pub fn new(quiet: bool) -> Steps {
        Steps {
            t0: Instant::now(),
            quiet,
        }
    }
    pub fn say(&self, msg: &str) {
        if !self.quiet {
            eprintln!("[{:6.2} s] {msg}", self.t0.elapsed().as_secs_f64());
        }
    }
    pub fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }
    /// The end of an `up`: when `r` failed, `down` removes what was made (its own failure
    /// is said) and `r`'s error is returned.
    pub fn undo_failed_up<T>(
        &self,
        r: LabResult<T>,
        down: impl FnOnce() -> LabResult<()>,
    ) -> LabResult<T> {
        if let Err(e) = &r {
            self.say(&format!("up failed: {e}; removing what was made"));
            if let Err(d) = down() {
                self.say(&format!("down after the failed up: {d}"));
            }
        }
        r
    }
}

/// The `provider` template variable (the last `--set provider=` given), else `pgstack`.
pub fn provider_of(sets: &[(String, String)]) -> String {
    sets.iter()
        .rev()
        .find(|(k, _)| k == "provider")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "pgstack".into())
}

/// What [`Lab::restore_with`] does with the data directory of a node that was a primary
/// (replication stack) before it boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// Made a standby of the current primary first (PAF: pg_basebackup; pgstack:
    /// `pgstack pg rejoin`), what an operator does before bringing a node back.
    Mend,
    /// Left as the crash left it: the cluster's own start meets it (pgstack's agent
    /// refuses a former primary that diverged; `pgstack lab rejoin NODE` mends it then).
    AsIs,
}

/// A handle on the lab in [`DIR`] (or another state directory).
#[derive(Debug, Clone)]
pub struct Lab {
    pub dir: PathBuf,
    pub cfg: Config,
}

/// Polls `f` every `step` until it returns `Some` or `secs` pass.
pub fn poll<T>(
    what: &str,
    secs: f64,
    step: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> LabResult<T> {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= until {
            return Err(LabError::Timeout {
                what: what.to_string(),
                secs,
            });
        }
        std::thread::sleep(step);
    }
}

impl Lab {
    /// Opens the running lab recorded in `dir`.
    pub fn open(dir: &Path) -> LabResult<Lab> {
        let p = dir.join("lab.conf");
        let text = std::fs::read_to_string(&p).map_err(|_| LabError::NotUp(p.clone()))?;
        let cfg = Config::parse(&text)
            .ok_or_else(|| LabError::Invalid(format!("{}: unreadable lab record", p.display())))?;
        Ok(Lab {
            dir: dir.to_path_buf(),
            cfg,
        })
    }

    pub fn node_names(&self) -> Vec<String> {
        (1..=self.cfg.nodes).map(node_name).collect()
    }

    pub fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn mountpoint(&self) -> PathBuf {
        self.dir.join("db")
    }

    pub fn pgdata(&self) -> PathBuf {
        self.mountpoint().join("pgdata")
    }

    /// Starts a lab. On any failure everything made so far is removed before returning.
    pub fn up(opts: &Options, steps: &Steps) -> LabResult<Lab> {
        if opts.sync && opts.stack != Stack::Replication {
            return Err(LabError::Invalid(
                "--sync applies to --stack replication only".into(),
            ));
        }
        if !(2..=3).contains(&opts.nodes) {
            return Err(LabError::Invalid(format!(
                "--nodes {}: the lab has 2 or 3 nodes",
                opts.nodes
            )));
        }
        if !(200..=60000).contains(&opts.token_ms) {
            return Err(LabError::Invalid(format!(
                "--token {}: from 200 to 60000 ms",
                opts.token_ms
            )));
        }
        let provider = provider_of(&opts.sets);
        preflight(&provider, opts.stack)?;
        run::create_lock_dir(&opts.dir)?;
        let lab = Lab {
            dir: opts.dir.clone(),
            cfg: Config {
                nodes: opts.nodes,
                stack: opts.stack,
                token_ms: opts.token_ms,
                fencing: opts.fencing,
                sync: opts.sync,
                provider,
                exe: opts.exe.clone(),
            },
        };
        steps.undo_failed_up(lab.bring_up(opts, steps), || Lab::down_dir(&lab.dir, steps))?;
        Ok(lab)
    }

    fn bring_up(&self, opts: &Options, steps: &Steps) -> LabResult<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| LabError::io(format!("chmod {}", self.dir.display()), e))?;
        run::write(&self.dir.join("lab.conf"), &self.cfg.to_text())?;
        steps.say(&format!(
            "state in {}; stack {}, {} nodes, token {} ms, fencing {}, agents {}{}",
            self.dir.display(),
            self.cfg.stack.name(),
            self.cfg.nodes,
            self.cfg.token_ms,
            if self.cfg.fencing { "on" } else { "OFF" },
            self.cfg.provider,
            if self.cfg.sync {
                ", synchronous replication"
            } else {
                ""
            }
        ));
        net::create(self)?;
        steps.say(&format!(
            "network: bridge {NS_BRIDGE}, nodes {}, client {NS_CLIENT} ({CLIENT_ADDR})",
            self.node_names()
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} ({})", node_addr(i as u8 + 1)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let dev = match self.cfg.stack {
            Stack::Shared => {
                let dev = storage::create(self)?;
                steps.say(&format!(
                    "storage: {} (XFS) with PGDATA {}",
                    dev.display(),
                    self.pgdata().display()
                ));
                dev
            }
            Stack::Replication => {
                repl::create(self, self.cfg.sync)?;
                steps.say(&format!(
                    "PostgreSQL: initdb on n1, pg_basebackup for {}; PGDATA {} on every node \
                     (each node's own {}/nI/db)",
                    self.node_names()[1..].join(", "),
                    self.pgdata().display(),
                    self.dir.display()
                ));
                PathBuf::new()
            }
        };
        let cib = self.render_cib(&dev, &opts.sets)?;
        run::write(&self.dir.join("cib.xml"), &cib)?;
        steps.say(&format!(
            "CIB rendered from the template \"{}\" ({})",
            self.cfg.stack.name(),
            self.dir.join("cib.xml").display()
        ));
        if self.cfg.fencing {
            fence::install(self)?;
            steps.say(&format!(
                "fencing: {FENCE_AGENT} installed, fence daemon started"
            ));
        }
        for n in self.node_names() {
            node::prepare(self, &n, &cib)?;
        }
        for n in self.node_names() {
            node::boot(self, &n)?;
        }
        steps.say("nodes booted (corosync, pacemakerd)");
        self.wait_online(&self.node_names(), 60.0)?;
        steps.say(&format!("all {} nodes online", self.cfg.nodes));
        client::first_answer(60.0)?;
        steps.say(&format!(
            "PostgreSQL answers through the VIP {VIP} from {NS_CLIENT}"
        ));
        Ok(())
    }

    /// The CIB of the lab, rendered from the stack's template (`shared` or `replication`).
    pub fn render_cib(&self, dev: &Path, extra: &[(String, String)]) -> LabResult<String> {
        let mut sets: Vec<(String, String)> = vec![
            ("node1".into(), "n1".into()),
            ("node2".into(), "n2".into()),
            ("node1_id".into(), "1".into()),
            ("node2_id".into(), "2".into()),
            ("node1_addr".into(), node_addr(1)),
            ("node2_addr".into(), node_addr(2)),
            ("pgdata".into(), self.pgdata().display().to_string()),
            ("pg_bindir".into(), PG_BINDIR.into()),
            ("pg_socketdir".into(), PG_SOCKETDIR.into()),
            ("vip".into(), VIP.into()),
            ("vip_cidr".into(), PREFIX.to_string()),
            ("vip_nic".into(), "eth0".into()),
            ("fence_action".into(), "off".into()),
            ("dc_deadtime".into(), "2s".into()),
            ("alert_recipient".into(), ALERT_FILE.into()),
        ];
        match self.cfg.stack {
            Stack::Shared => {
                sets.push(("device".into(), dev.display().to_string()));
                sets.push(("directory".into(), self.mountpoint().display().to_string()));
            }
            Stack::Replication => {
                // One lab fence device per node (the template's per-node layout), no
                // fence delay: the lab's fence daemon powers the target off at once.
                sets.push(("fence_agent".into(), "fence_pgstack_lab".into()));
                sets.push(("fence_delay".into(), "0s".into()));
                // The primary's monitor refreshes the standbys' promotion scores.
                sets.push(("pg_promoted_monitor".into(), "3s".into()));
                sets.push(("pg_unpromoted_monitor".into(), "4s".into()));
                sets.push(("pg_repuser".into(), repl::REPL_USER.into()));
            }
        }
        if self.cfg.nodes == 3 {
            sets.push(("node3".into(), "n3".into()));
            sets.push(("node3_id".into(), "3".into()));
        }
        sets.extend(extra.iter().cloned());
        let r = crate::cib::render(
            self.cfg.stack.name(),
            &sets,
            RenderOptions {
                fencing: self.cfg.fencing,
            },
        )?;
        Ok(r.xml)
    }

    /// Waits until Pacemaker (seen from any live node) reports `names` online.
    pub fn wait_online(&self, names: &[String], secs: f64) -> LabResult<()> {
        cluster::wait_online(self, names, secs)
    }

    /// Waits until the cluster has nothing left to do (`crm_resource --wait` on a live node).
    pub fn settle(&self, secs: u64) -> LabResult<()> {
        let n = self
            .node_names()
            .into_iter()
            .find(|n| node::is_alive(self, n))
            .ok_or_else(|| LabError::Invalid("no node is running".into()))?;
        let t = format!("--timeout={secs}s");
        node::exec(
            self,
            &n,
            &["crm_resource", "--wait", &t],
            Duration::from_secs(secs + 10),
        )
        .map(|_| ())
    }

    /// Pacemaker's view ([`cluster::status`]).
    pub fn cluster_status(&self) -> LabResult<history::ClusterStatus> {
        cluster::status(self)
    }

    /// Where the group runs, per Pacemaker.
    pub fn active_node(&self) -> LabResult<Option<String>> {
        Ok(self.cluster_status()?.group_node)
    }

    /// A power cut of `name`: its processes die and its NIC goes silent.
    /// Returns the time of the cut ([`now_f`]).
    pub fn crash(&self, name: &str) -> LabResult<f64> {
        node_index(name, self.cfg.nodes)?;
        node::power_off(self, name)
    }

    /// Kills only corosync on `name` (its resources keep running).
    pub fn kill_corosync(&self, name: &str) -> LabResult<f64> {
        node_index(name, self.cfg.nodes)?;
        node::kill_corosync(self, name)
    }

    /// Boots `name` again (after a power cut, a fence or a killed corosync).
    ///
    /// Replication stack with PAF (`provider=heartbeat`): a node whose data directory was a
    /// primary is first rebuilt from the current primary with pg_basebackup (PAF cannot
    /// start a former primary as a standby of the new timeline); with pgstack's agent,
    /// `pgstack pg rejoin` (nothing when it follows, a copy when it diverged, which the
    /// agent refuses to start); returns the seconds it took then. A start the agent
    /// refused on a running node is mended by `pgstack lab rejoin NODE`.
    pub fn restore(&self, name: &str) -> LabResult<Option<f64>> {
        self.restore_with(name, DataDir::Mend)
    }

    /// [`Lab::restore`], the former primary's data directory either mended before the
    /// boot or left as the crash left it ([`DataDir::AsIs`]).
    pub fn restore_with(&self, name: &str, data: DataDir) -> LabResult<Option<f64>> {
        node_index(name, self.cfg.nodes)?;
        if node::is_alive(self, name) {
            node::power_off(self, name)?;
        }
        let mend = data == DataDir::Mend;
        let rebuilt =
            if mend && self.cfg.stack == Stack::Replication && repl::was_primary(self, name) {
                if self.cfg.provider == "heartbeat" {
                    Some(repl::rebuild(self, name)?)
                } else {
                    Some(repl::rejoin_before_boot(self, name)?.0)
                }
            } else {
                None
            };
        node::boot(self, name)?;
        Ok(rebuilt)
    }

    /// `pgstack cib migrate PGServer NODE` run inside a live node; the constraint is
    /// always cleared by it. Returns the command's output.
    pub fn switchover(&self, to: &str) -> LabResult<String> {
        node_index(to, self.cfg.nodes)?;
        let from = self
            .node_names()
            .into_iter()
            .find(|n| node::is_alive(self, n))
            .ok_or_else(|| LabError::Invalid("no node is running".into()))?;
        if self.cfg.stack == Stack::Replication {
            return repl::switchover(self, &from, to);
        }
        let exe = self.cfg.exe.display().to_string();
        node::exec(
            self,
            &from,
            &[&exe, "cib", "migrate", "PGServer", to, "--wait", "60"],
            Duration::from_secs(90),
        )
    }

    /// The other node than `of` that is up (for a default switchover target).
    pub fn other_node(&self, of: &str) -> Option<String> {
        self.node_names()
            .into_iter()
            .find(|n| n != of && node::is_alive(self, n))
    }

    /// A status report: nodes, Pacemaker's view, VIP holders (addresses and ARP), postmasters.
    pub fn status(&self) -> LabResult<Status> {
        let mut nodes = Vec::new();
        let repl = self.cfg.stack == Stack::Replication;
        for n in self.node_names() {
            let pg = if repl && node::is_alive(self, &n) {
                repl::pg_node(self, &n)
            } else {
                None
            };
            nodes.push(NodeStatus {
                pg,
                alive: node::is_alive(self, &n),
                corosync: node::daemon_pid(self, &n, "corosync").is_some(),
                pacemakerd: node::daemon_pid(self, &n, "pacemakerd").is_some(),
                holds_vip: net::holds_vip(&n).unwrap_or(false),
                postmasters: proc::postmasters_in(&node_ns(&n)).len(),
                name: n,
            });
        }
        let arp = client::arp_holders(Duration::from_millis(300)).unwrap_or_default();
        let cluster = self.cluster_status().ok();
        Ok(Status {
            nodes,
            arp,
            cluster,
            replication: repl,
        })
    }

    /// Removes the lab in `dir`: every namespace, process, mount, loop device and file it
    /// made. Works on a half-made lab and when nothing is left (then it does nothing).
    pub fn down_dir(dir: &Path, steps: &Steps) -> LabResult<()> {
        let lab = Lab::open(dir).ok();
        // Stop the writer first (it would only log errors), then power everything off.
        writer::stop(dir).ok();
        let mut names: Vec<String> = net::lab_namespaces()?;
        names.sort();
        for ns in &names {
            for pid in net::pids_in(ns) {
                proc::kill9(pid);
            }
        }
        if let Some(l) = &lab {
            for n in l.node_names() {
                let _ = node::power_off_quiet(l, &n);
            }
        }
        fence::uninstall(dir)?;
        for ns in &names {
            net::delete(ns)?;
        }
        storage::remove(dir)?;
        // The loop device's last mount goes away with the last process of each node.
        let left = poll(
            "lab processes gone",
            10.0,
            Duration::from_millis(50),
            || proc::lab_processes(dir).is_empty().then_some(()),
        );
        if left.is_err() {
            for p in proc::lab_processes(dir) {
                proc::kill9(p);
            }
        }
        storage::detach_loops(dir)?;
        if dir.exists() {
            std::fs::remove_dir_all(dir)
                .map_err(|e| LabError::io(format!("removing {}", dir.display()), e))?;
        }
        steps.say(&format!(
            "down: {} namespaces removed, {} gone",
            names.len(),
            dir.display()
        ));
        Ok(())
    }

    pub fn down(&self, steps: &Steps) -> LabResult<()> {
        Lab::down_dir(&self.dir, steps)
    }
}

impl cluster::Nodes for Lab {
    const KIND: &'static str = "node";
    const POLL: Duration = Duration::from_millis(200);
    const CRM_MON_LIMIT: Duration = Duration::from_secs(5);
    fn live(&self) -> Vec<String> {
        self.node_names()
            .into_iter()
            .filter(|n| node::is_alive(self, n))
            .collect()
    }
    fn exec(&self, name: &str, argv: &[&str], limit: Duration) -> LabResult<String> {
        node::exec(self, name, argv, limit)
    }
    fn log(&self, name: &str) -> LabResult<Vec<history::LogLine>> {
        Ok(self.pacemaker_log(name))
    }
}

/// What must be installed before `up`.
fn preflight(provider: &str, stack: Stack) -> LabResult<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(LabError::Invalid("the lab needs root".into()));
    }
    let agents: &[&str] = match (stack, provider == "heartbeat") {
        (Stack::Shared, true) => &[
            "heartbeat/Filesystem",
            "heartbeat/pgsql",
            "heartbeat/IPaddr2",
        ],
        (Stack::Shared, false) => &["pgstack/filesystem", "pgstack/postgresql", "pgstack/vip"],
        (Stack::Replication, true) => &["heartbeat/pgsqlms", "heartbeat/IPaddr2"],
        (Stack::Replication, false) => &["pgstack/postgresql", "pgstack/vip"],
    };
    let mut need: Vec<String> = agents.iter().map(|a| format!("{OCF_ROOT}/{a}")).collect();
    for p in [
        "/usr/sbin/corosync",
        "/usr/sbin/pacemakerd",
        "/usr/sbin/crm_mon",
        "/usr/sbin/cibadmin",
        "/usr/sbin/mkfs.xfs",
        "/usr/sbin/losetup",
        "/usr/bin/nsenter",
        "/usr/bin/unshare",
        ALERT_AGENT,
    ] {
        need.push(p.into());
    }
    need.push(format!("{PG_BINDIR}/initdb"));
    let missing: Vec<String> = need
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !missing.is_empty() {
        return Err(LabError::Invalid(format!(
            "missing: {} (`make lab` installs the packages and pgstack itself)",
            missing.join(", ")
        )));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct NodeStatus {
    pub name: String,
    /// Its PID 1 runs.
    pub alive: bool,
    pub corosync: bool,
    pub pacemakerd: bool,
    /// The VIP is configured on its NIC.
    pub holds_vip: bool,
    pub postmasters: usize,
    /// Replication stack: what its PostgreSQL says of itself.
    pub pg: Option<repl::PgNode>,
}

#[derive(Debug, Clone)]
pub struct Status {
    pub nodes: Vec<NodeStatus>,
    /// MAC addresses answering ARP for the VIP, seen from the client.
    pub arp: Vec<String>,
    pub cluster: Option<history::ClusterStatus>,
    /// The replication stack (a postmaster per node is normal; two primaries are not).
    pub replication: bool,
}

impl Status {
    /// Replication stack: the nodes whose PostgreSQL is a primary.
    pub fn primaries(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| n.pg.as_ref().is_some_and(|p| p.primary))
            .map(|n| n.name.as_str())
            .collect()
    }
    pub fn vip_holders(&self) -> Vec<&str> {
        self.nodes
            .iter()
            .filter(|n| n.holds_vip)
            .map(|n| n.name.as_str())
            .collect()
    }
    pub fn postmasters(&self) -> usize {
        self.nodes.iter().map(|n| n.postmasters).sum()
    }
    pub fn split_brain(&self) -> bool {
        let pg = if self.replication {
            self.primaries().len() > 1
        } else {
            self.postmasters() > 1
        };
        self.vip_holders().len() > 1 || self.arp.len() > 1 || pg
    }
    pub fn report(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            let _ = writeln!(
                s,
                "{:<3} {:<8} corosync {:<3} pacemakerd {:<3} VIP {:<3} postmaster {}",
                n.name,
                if n.alive { "up" } else { "DOWN" },
                if n.corosync { "yes" } else { "no" },
                if n.pacemakerd { "yes" } else { "no" },
                if n.holds_vip { "yes" } else { "no" },
                n.postmasters
            );
            if let Some(p) = &n.pg {
                let _ = writeln!(s, "    {}", p.report());
            } else if self.replication && n.alive {
                let _ = writeln!(s, "    PostgreSQL does not answer on its socket");
            }
        }
        match &self.cluster {
            Some(c) => {
                let (what, at) = if self.replication {
                    let at = if c.promoted.is_empty() {
                        "nowhere".to_string()
                    } else {
                        c.promoted.join(" ")
                    };
                    ("promoted", at)
                } else {
                    let at = c.group_node.clone().unwrap_or_else(|| "nowhere".into());
                    ("PGServer", at)
                };
                s.push_str(&cluster::report(c, what, &at));
            }
            None => s.push_str("pacemaker: no node answers\n"),
        }
        let _ = writeln!(
            s,
            "ARP for {VIP} from the client: {}",
            if self.arp.is_empty() {
                "no answer".to_string()
            } else {
                self.arp.join(", ")
            }
        );
        if self.split_brain() {
            if self.replication {
                let _ = writeln!(
                    s,
                    "SPLIT BRAIN: VIP on [{}], {} ARP answers, primaries [{}]",
                    self.vip_holders().join(" "),
                    self.arp.len(),
                    self.primaries().join(" ")
                );
            } else {
                let _ = writeln!(
                    s,
                    "SPLIT BRAIN: VIP on [{}], {} ARP answers, {} postmasters",
                    self.vip_holders().join(" "),
                    self.arp.len(),
                    self.postmasters()
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips() {
        let c = Config {
            nodes: 3,
            stack: Stack::Replication,
            token_ms: 800,
            fencing: false,
            sync: true,
            provider: "heartbeat".into(),
            exe: "/usr/sbin/pgstack".into(),
        };
        assert_eq!(Config::parse(&c.to_text()), Some(c));
    }

    #[test]
    fn node_names_are_checked() {
        assert_eq!(node_index("n2", 2).unwrap(), 2);
        assert!(node_index("n3", 2).is_err());
        assert!(node_index("x1", 3).is_err());
    }
}
