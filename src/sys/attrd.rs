//! Pacemaker node attributes through the installed tools, for the election of the
//! promotable PostgreSQL mode.
//!
//! - Transient private attributes (`attrd_updater --private`): held by pacemaker-attrd
//!   in memory on every node, never written to the CIB, gone when the node leaves. The
//!   nodes publish their WAL position there during a pre-promote notification.
//! - Promotion scores (node attribute `master-RESOURCE`, lifetime `reboot`): what
//!   Pacemaker reads to choose where to promote; one node (the primary) sets the scores
//!   of the others with `--node`. Written with `attrd_updater` (the same update
//!   `crm_attribute --promotion` sends to attrd, without that tool's CIB and controller
//!   connections); read and removed with `crm_attribute --promotion`.
//! - A tool may be started and its answer taken later ([`Pending`]), so the promote runs
//!   it while PostgreSQL works.
//! - Membership (`crm_node --partition`, `--list`, `--name`).
//!
//! Every tool runs through [`runner`](super::runner) with the caller's deadline. Results
//! are typed: [`AttrError::NotFound`] for an attribute nobody set (or one deleted, which
//! attrd keeps as an empty value), [`AttrError::NoCluster`] when the daemons do not
//! answer, [`AttrError::Tool`] for any other failure; agents never read the tools' text.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

pub use super::cluster::ScoreOf;
use super::runner::{run, start, Cmd, Outcome, SpawnError, Started};

/// Pacemaker's exit codes for a query of something not set: "no such object"
/// (CRM_EX_NOSUCH, crm_attribute), and the 78 (CRM_EX_CONFIG) attrd_updater 2.1.5 exits
/// with for "attribute does not exist". Only looked at for queries and deletions.
const EX_NOSUCH: [i32; 2] = [105, 78];
/// Pacemaker's exit code for "not connected" (CRM_EX_DISCONNECT).
const EX_DISCONNECT: i32 = 102;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttrError {
    /// The attribute is not set (or was deleted) for that node.
    #[error("attribute {name} is not set for {node}")]
    NotFound { name: String, node: String },
    /// The cluster's daemons are not running or do not answer (not in a cluster).
    #[error("{command}: the cluster does not answer ({detail})")]
    NoCluster { command: String, detail: String },
    #[error("{command}: no answer before the deadline")]
    Timeout { command: String },
    #[error(
        "{program}: not installed (not found in {})",
        super::runner::FIXED_PATH
    )]
    NotInstalled { program: String },
    /// Any other failure of the tool, or an answer that could not be read.
    #[error("{command}: {detail}")]
    Tool { command: String, detail: String },
}

pub type AttrResult<T> = Result<T, AttrError>;

/// Turns "not set" into `None`, keeping every other failure.
pub trait Found<T> {
    fn found(self) -> AttrResult<Option<T>>;
}

impl<T> Found<T> for AttrResult<T> {
    fn found(self) -> AttrResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(AttrError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A cluster member as `crm_node --list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u32,
    pub name: String,
    /// "member", "lost", ...
    pub state: String,
}

/// What the election asks of Pacemaker. `node` `None` means this node.
pub trait Attrd {
    /// Sets a private transient attribute (never written to the CIB) of a node.
    fn set_private(
        &self,
        name: &str,
        node: Option<&str>,
        value: &str,
        deadline: Instant,
    ) -> AttrResult<()>;
    /// The value of a transient attribute on one node.
    fn query(&self, name: &str, node: Option<&str>, deadline: Instant) -> AttrResult<String>;
    /// The values of a transient attribute on every node that has it set (node -> value).
    fn query_all(&self, name: &str, deadline: Instant) -> AttrResult<BTreeMap<String, String>>;
    /// [`Attrd::query_all`] started and left running while the caller goes on (by default
    /// answered at once).
    fn start_query_all(&self, name: &str, deadline: Instant) -> Pending<BTreeMap<String, String>> {
        Pending::ready(self.query_all(name, deadline))
    }
    /// Deletes a transient attribute (deleting an unset one is not an error).
    fn delete(&self, name: &str, node: Option<&str>, deadline: Instant) -> AttrResult<()>;
    /// The promotion score `of` a resource (clone id without the `:N`) on a node.
    fn score(&self, of: ScoreOf, deadline: Instant) -> AttrResult<i64>;
    fn set_score(&self, of: ScoreOf, score: i64, deadline: Instant) -> AttrResult<()>;
    /// [`Attrd::set_score`] started and left running while the caller goes on (by default
    /// done at once); the write ends within `deadline`.
    fn start_set_score(&self, of: ScoreOf, score: i64, deadline: Instant) -> Pending<()> {
        Pending::ready(self.set_score(of, score, deadline))
    }
    /// The promotion scores of `resource` of every node that has one (node -> score),
    /// in one call.
    fn scores(&self, resource: &str, deadline: Instant) -> AttrResult<BTreeMap<String, i64>>;
    /// [`Attrd::partition`] and [`Attrd::scores`] together (the tools may run at once).
    fn partition_and_scores(
        &self,
        resource: &str,
        deadline: Instant,
    ) -> AttrResult<(Vec<String>, BTreeMap<String, i64>)> {
        Ok((self.partition(deadline)?, self.scores(resource, deadline)?))
    }
    /// Removes the promotion score (removing an absent one is not an error).
    fn delete_score(&self, of: ScoreOf, deadline: Instant) -> AttrResult<()>;
    /// The names of the nodes in this node's partition.
    fn partition(&self, deadline: Instant) -> AttrResult<Vec<String>>;
    /// Every node the cluster knows, with its membership state.
    fn members(&self, deadline: Instant) -> AttrResult<Vec<Member>>;
    /// This node's name in the cluster.
    fn local_name(&self, deadline: Instant) -> AttrResult<String>;
}

/// The installed tools on the live cluster. This node's name is asked of `crm_node` once
/// and kept (an agent's action is one process), or taken from the caller.
#[derive(Debug, Clone, Default)]
pub struct Tools {
    local: OnceLock<String>,
}

impl Tools {
    pub const fn new() -> Tools {
        Tools {
            local: OnceLock::new(),
        }
    }

    /// Takes `name` as this node's name from now on (an agent's `CRM_meta_on_node`, the
    /// name `crm_node --name` prints), saving a `crm_node` call per query; a name already
    /// known is kept.
    pub fn assume_local_name(&self, name: &str) {
        if !name.is_empty() {
            let _ = self.local.set(name.to_string());
        }
    }
}

fn node_label(node: Option<&str>) -> String {
    node.map_or_else(|| "this node".to_string(), |n| format!("node {n}"))
}

/// Runs a tool and sorts its end into success or a typed failure; `missing` is the
/// error for Pacemaker's "no such object" exit.
fn outcome(cmd: &Cmd, deadline: Instant, missing: Option<AttrError>) -> AttrResult<Outcome> {
    judge(cmd.display(), run(cmd, deadline), missing)
}

/// What a tool's run means: its outcome when it succeeded, else the error it stands for
/// (`missing` for Pacemaker's "no such object", where that is an answer).
fn judge(
    command: String,
    run: Result<Outcome, SpawnError>,
    missing: Option<AttrError>,
) -> AttrResult<Outcome> {
    let out = match run {
        Ok(o) => o,
        Err(SpawnError::NotFound { program }) => return Err(AttrError::NotInstalled { program }),
        Err(e) => {
            return Err(AttrError::Tool {
                command,
                detail: e.to_string(),
            })
        }
    };
    match &out {
        Outcome::TimedOut { .. } => Err(AttrError::Timeout { command }),
        o if o.success() => Ok(out),
        o if o.code().is_some_and(|c| EX_NOSUCH.contains(&c)) && missing.is_some() => {
            Err(missing.expect("checked just above"))
        }
        o if o.code() == Some(EX_DISCONNECT) => Err(AttrError::NoCluster {
            command,
            detail: o.describe(),
        }),
        o => Err(AttrError::Tool {
            command,
            detail: o.describe(),
        }),
    }
}

/// A tool's answer still to come ([`Attrd::start_set_score`], [`Attrd::start_query_all`]):
/// the tool runs while the caller goes on; [`Pending::wait`] takes what it answered.
/// Dropped without that, it is still waited for (bounded by its deadline).
pub struct Pending<T> {
    state: PendingState<T>,
}

/// How a [`Pending`] tool's run (judged as [`outcome`] does) becomes its answer.
type Reader<T> = fn(AttrResult<Outcome>) -> AttrResult<T>;

enum PendingState<T> {
    Ready(AttrResult<T>),
    Running {
        command: String,
        started: Started,
        missing: Option<AttrError>,
        read: Reader<T>,
    },
}

impl<T> Pending<T> {
    /// An answer that is there already.
    pub fn ready(r: AttrResult<T>) -> Pending<T> {
        Pending {
            state: PendingState::Ready(r),
        }
    }

    /// `cmd` started now, to end by `deadline`.
    fn start(
        cmd: &Cmd,
        deadline: Instant,
        missing: Option<AttrError>,
        read: Reader<T>,
    ) -> Pending<T> {
        let command = cmd.display();
        Pending {
            state: match start(cmd, deadline) {
                Ok(started) => PendingState::Running {
                    command,
                    started,
                    missing,
                    read,
                },
                Err(e) => PendingState::Ready(read(judge(command, Err(e), missing))),
            },
        }
    }

    pub fn wait(self) -> AttrResult<T> {
        match self.state {
            PendingState::Ready(r) => r,
            PendingState::Running {
                command,
                started,
                missing,
                read,
            } => read(judge(command, started.wait(), missing)),
        }
    }
}

/// Reads `attrd_updater --query` lines: `name="N" host="H" value="V"` (node -> value);
/// empty values (deleted attributes) are left out.
pub fn parse_query(text: &str) -> AttrResult<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let field = |key: &str| -> Option<String> {
            let start = line.find(&format!("{key}=\""))? + key.len() + 2;
            let rest = &line[start..];
            // The value is last on the line: take up to the final quote so a value
            // holding quotes is kept whole.
            let end = if key == "value" {
                rest.rfind('"')?
            } else {
                rest.find('"')?
            };
            Some(rest[..end].to_string())
        };
        match (field("host"), field("value")) {
            (Some(h), Some(v)) => {
                if !v.is_empty() {
                    m.insert(h, v);
                }
            }
            _ => {
                return Err(AttrError::Tool {
                    command: "attrd_updater --query".into(),
                    detail: format!("unexpected line {line:?}"),
                })
            }
        }
    }
    Ok(m)
}

/// Reads `crm_node --list` lines: `ID NAME STATE`.
pub fn parse_members(text: &str) -> Vec<Member> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let id = w.next()?.parse().ok()?;
            let name = w.next()?.to_string();
            let state = w.next().unwrap_or("").to_string();
            Some(Member { id, name, state })
        })
        .collect()
}

impl Tools {
    fn attrd(name: &str, node: Option<&str>) -> Cmd {
        let c = Cmd::new("attrd_updater").args(["--name", name]);
        match node {
            Some(n) => c.args(["--node", n]),
            None => c,
        }
    }
    fn promotion(resource: &str, node: Option<&str>) -> Cmd {
        let c = Cmd::new("crm_attribute")
            .arg(format!("--promotion={resource}"))
            .args(["--lifetime", "reboot"]);
        match node {
            Some(n) => c.args(["--node", n]),
            None => c,
        }
    }
}

impl Attrd for Tools {
    fn set_private(
        &self,
        name: &str,
        node: Option<&str>,
        value: &str,
        deadline: Instant,
    ) -> AttrResult<()> {
        let cmd = Tools::attrd(name, node).args(["--private", "--update", value]);
        outcome(&cmd, deadline, None).map(|_| ())
    }

    fn query(&self, name: &str, node: Option<&str>, deadline: Instant) -> AttrResult<String> {
        let missing = AttrError::NotFound {
            name: name.into(),
            node: node_label(node),
        };
        // Without --node, attrd_updater 2.1 answers with the value of every node that has
        // one (the first line is not this node's on a peer): ask for this node by name
        // and take its line only.
        let local;
        let node = match node {
            Some(n) => n,
            None => {
                local = self.local_name(deadline)?;
                local.as_str()
            }
        };
        let cmd = Tools::attrd(name, Some(node)).arg("--query");
        let out = outcome(&cmd, deadline, Some(missing.clone()))?;
        let mut m = parse_query(&out.stdout_str())?;
        m.remove(node).ok_or(missing)
    }

    fn query_all(&self, name: &str, deadline: Instant) -> AttrResult<BTreeMap<String, String>> {
        self.start_query_all(name, deadline).wait()
    }

    fn start_query_all(&self, name: &str, deadline: Instant) -> Pending<BTreeMap<String, String>> {
        let cmd = Tools::attrd(name, None).args(["--query", "--all"]);
        let missing = AttrError::NotFound {
            name: name.into(),
            node: "any node".into(),
        };
        Pending::start(&cmd, deadline, Some(missing), |r| match r {
            Ok(out) => parse_query(&out.stdout_str()),
            Err(AttrError::NotFound { .. }) => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        })
    }

    fn delete(&self, name: &str, node: Option<&str>, deadline: Instant) -> AttrResult<()> {
        // --private here too: a delete without it creates the attribute as a public one
        // (attrd 2.1), and every later private update of it is then written to the CIB's
        // status section, where each change aborts the transition in progress (a
        // pre-promote notification that deletes and publishes would loop for ever).
        let cmd = Tools::attrd(name, node).args(["--delete", "--private"]);
        match outcome(
            &cmd,
            deadline,
            Some(AttrError::NotFound {
                name: name.into(),
                node: node_label(node),
            }),
        ) {
            Ok(_) | Err(AttrError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn score(&self, of: ScoreOf, deadline: Instant) -> AttrResult<i64> {
        let ScoreOf {
            instance: resource,
            node,
        } = of;
        let missing = AttrError::NotFound {
            name: format!("the promotion score of {resource}"),
            node: node_label(node),
        };
        let cmd = Tools::promotion(resource, node).args(["--query", "--quiet"]);
        let out = outcome(&cmd, deadline, Some(missing.clone()))?;
        let text = out.stdout_str();
        let v = text.trim();
        if v.is_empty() {
            return Err(missing);
        }
        parse_score(v).ok_or_else(|| AttrError::Tool {
            command: cmd.display(),
            detail: format!("not a score: {v:?}"),
        })
    }

    fn scores(&self, resource: &str, deadline: Instant) -> AttrResult<BTreeMap<String, i64>> {
        // A score of lifetime reboot is a transient attribute attrd holds: one query
        // answers for every node.
        let name = promotion_attr(resource);
        self.query_all(&name, deadline)?
            .into_iter()
            .map(|(n, v)| match parse_score(&v) {
                Some(s) => Ok((n, s)),
                None => Err(AttrError::Tool {
                    command: format!("attrd_updater --name {name} --query --all"),
                    detail: format!("not a score for {n}: {v:?}"),
                }),
            })
            .collect()
    }

    fn partition_and_scores(
        &self,
        resource: &str,
        deadline: Instant,
    ) -> AttrResult<(Vec<String>, BTreeMap<String, i64>)> {
        // crm_node asks the controller, attrd_updater attrd: neither waits for the other,
        // so the primary's monitor pays for the slower one only.
        std::thread::scope(|s| {
            let partition = s.spawn(|| self.partition(deadline));
            let scores = self.scores(resource, deadline);
            let partition = partition.join().unwrap_or_else(|_| {
                Err(AttrError::Tool {
                    command: "crm_node --partition".into(),
                    detail: "the thread running it panicked".into(),
                })
            });
            Ok((partition?, scores?))
        })
    }

    fn set_score(&self, of: ScoreOf, score: i64, deadline: Instant) -> AttrResult<()> {
        self.start_set_score(of, score, deadline).wait()
    }

    /// Written with `attrd_updater` (what `crm_attribute --promotion --lifetime reboot`
    /// asks of attrd, without its CIB and controller connections), naming this node when
    /// its name is known.
    fn start_set_score(&self, of: ScoreOf, score: i64, deadline: Instant) -> Pending<()> {
        let node = of.node.or(self.local.get().map(String::as_str));
        let cmd =
            Tools::attrd(&promotion_attr(of.instance), node).args(["--update", &score.to_string()]);
        Pending::start(&cmd, deadline, None, |r| r.map(|_| ()))
    }

    fn delete_score(&self, of: ScoreOf, deadline: Instant) -> AttrResult<()> {
        let ScoreOf {
            instance: resource,
            node,
        } = of;
        let cmd = Tools::promotion(resource, node).arg("--delete");
        match outcome(
            &cmd,
            deadline,
            Some(AttrError::NotFound {
                name: resource.into(),
                node: node_label(node),
            }),
        ) {
            Ok(_) | Err(AttrError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn partition(&self, deadline: Instant) -> AttrResult<Vec<String>> {
        let out = outcome(&Cmd::new("crm_node").arg("--partition"), deadline, None)?;
        Ok(out
            .stdout_str()
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }

    fn members(&self, deadline: Instant) -> AttrResult<Vec<Member>> {
        let out = outcome(&Cmd::new("crm_node").arg("--list"), deadline, None)?;
        Ok(parse_members(&out.stdout_str()))
    }

    fn local_name(&self, deadline: Instant) -> AttrResult<String> {
        if let Some(n) = self.local.get() {
            return Ok(n.clone());
        }
        let cmd = Cmd::new("crm_node").arg("--name");
        let out = outcome(&cmd, deadline, None)?;
        let n = out.stdout_str().trim().to_string();
        if n.is_empty() {
            return Err(AttrError::Tool {
                command: cmd.display(),
                detail: "printed no name".into(),
            });
        }
        let _ = self.local.set(n.clone());
        Ok(n)
    }
}

/// The node attribute holding the promotion score of `resource` (what
/// `crm_attribute --promotion` sets in Pacemaker 2.1).
pub fn promotion_attr(resource: &str) -> String {
    format!("master-{resource}")
}

/// A promotion score as Pacemaker writes it (`INFINITY`, `-INFINITY`, or an integer).
pub fn parse_score(v: &str) -> Option<i64> {
    match v.trim() {
        "INFINITY" | "+INFINITY" => Some(crate::ocf::promotion::MAX_SCORE),
        "-INFINITY" => Some(-crate::ocf::promotion::MAX_SCORE),
        s => s.parse().ok(),
    }
}

#[cfg(any(test, feature = "test-support"))]
pub mod fake {
    //! A cluster's attributes in memory: what `attrd` and the CIB would hold, with the
    //! calls recorded. `private` values written "for" another node are visible at once
    //! (the real attrd is asynchronous; the election copes with both).
    use std::cell::{Cell, RefCell};

    use super::*;

    #[derive(Default)]
    pub struct FakeAttrd {
        /// This node's name.
        pub me: String,
        /// (attribute, node) -> value.
        pub private: RefCell<BTreeMap<(String, String), String>>,
        /// (resource, node) -> score.
        pub scores: RefCell<BTreeMap<(String, String), i64>>,
        pub partition: Vec<String>,
        pub members: Vec<Member>,
        /// Every call fails as if the cluster were down.
        pub down: Cell<bool>,
        pub calls: RefCell<Vec<String>>,
        /// Values that appear when their node's attribute is queried this many times
        /// (late peers): (attribute, node) -> (remaining queries, value).
        pub late: RefCell<BTreeMap<(String, String), (u32, String)>>,
    }

    impl FakeAttrd {
        pub fn new(me: &str, nodes: &[&str]) -> FakeAttrd {
            FakeAttrd {
                me: me.into(),
                partition: nodes.iter().map(|s| s.to_string()).collect(),
                members: nodes
                    .iter()
                    .enumerate()
                    .map(|(i, n)| Member {
                        id: i as u32 + 1,
                        name: n.to_string(),
                        state: "member".into(),
                    })
                    .collect(),
                ..FakeAttrd::default()
            }
        }
        fn who(&self, node: Option<&str>) -> String {
            node.unwrap_or(&self.me).to_string()
        }
        fn check(&self, call: String) -> AttrResult<()> {
            self.calls.borrow_mut().push(call.clone());
            if self.down.get() {
                return Err(AttrError::NoCluster {
                    command: call,
                    detail: "exit 102: Connection refused".into(),
                });
            }
            Ok(())
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
        pub fn score_of(&self, resource: &str, node: &str) -> Option<i64> {
            self.scores
                .borrow()
                .get(&(resource.to_string(), node.to_string()))
                .copied()
        }
        pub fn put_score(&self, resource: &str, node: &str, s: i64) {
            self.scores
                .borrow_mut()
                .insert((resource.into(), node.into()), s);
        }
        pub fn put_private(&self, name: &str, node: &str, v: &str) {
            self.private
                .borrow_mut()
                .insert((name.into(), node.into()), v.into());
        }
        pub fn private_of(&self, name: &str, node: &str) -> Option<String> {
            self.private
                .borrow()
                .get(&(name.to_string(), node.to_string()))
                .cloned()
        }
        fn ripen(&self, key: &(String, String)) {
            let mut late = self.late.borrow_mut();
            if let Some((n, v)) = late.get_mut(key) {
                if *n == 0 {
                    let v = v.clone();
                    late.remove(key);
                    self.private.borrow_mut().insert(key.clone(), v);
                } else {
                    *n -= 1;
                }
            }
        }
    }

    impl Attrd for FakeAttrd {
        fn set_private(
            &self,
            name: &str,
            node: Option<&str>,
            value: &str,
            _: Instant,
        ) -> AttrResult<()> {
            let n = self.who(node);
            self.check(format!("set {name}[{n}]={value}"))?;
            self.private
                .borrow_mut()
                .insert((name.into(), n), value.into());
            Ok(())
        }
        fn query(&self, name: &str, node: Option<&str>, _: Instant) -> AttrResult<String> {
            let n = self.who(node);
            self.check(format!("query {name}[{n}]"))?;
            let key = (name.to_string(), n.clone());
            self.ripen(&key);
            self.private
                .borrow()
                .get(&key)
                .cloned()
                .ok_or(AttrError::NotFound {
                    name: name.into(),
                    node: n,
                })
        }
        fn query_all(&self, name: &str, _: Instant) -> AttrResult<BTreeMap<String, String>> {
            self.check(format!("query {name}[*]"))?;
            let keys: Vec<_> = self.late.borrow().keys().cloned().collect();
            for k in keys.iter().filter(|k| k.0 == name) {
                self.ripen(k);
            }
            Ok(self
                .private
                .borrow()
                .iter()
                .filter(|((a, _), _)| a == name)
                .map(|((_, n), v)| (n.clone(), v.clone()))
                .collect())
        }
        fn delete(&self, name: &str, node: Option<&str>, _: Instant) -> AttrResult<()> {
            let n = self.who(node);
            self.check(format!("delete {name}[{n}]"))?;
            self.private.borrow_mut().remove(&(name.into(), n));
            Ok(())
        }
        fn scores(&self, resource: &str, _: Instant) -> AttrResult<BTreeMap<String, i64>> {
            self.check(format!("score {resource}[*]"))?;
            Ok(self
                .scores
                .borrow()
                .iter()
                .filter(|((r, _), _)| r == resource)
                .map(|((_, n), s)| (n.clone(), *s))
                .collect())
        }
        fn score(&self, of: ScoreOf, _: Instant) -> AttrResult<i64> {
            let (resource, n) = (of.instance, self.who(of.node));
            self.check(format!("score {resource}[{n}]"))?;
            self.score_of(resource, &n).ok_or(AttrError::NotFound {
                name: resource.into(),
                node: n,
            })
        }
        fn set_score(&self, of: ScoreOf, score: i64, _: Instant) -> AttrResult<()> {
            let (resource, n) = (of.instance, self.who(of.node));
            self.check(format!("set score {resource}[{n}]={score}"))?;
            self.put_score(resource, &n, score);
            Ok(())
        }
        fn delete_score(&self, of: ScoreOf, _: Instant) -> AttrResult<()> {
            let (resource, n) = (of.instance, self.who(of.node));
            self.check(format!("delete score {resource}[{n}]"))?;
            self.scores.borrow_mut().remove(&(resource.into(), n));
            Ok(())
        }
        fn partition(&self, _: Instant) -> AttrResult<Vec<String>> {
            self.check("partition".into())?;
            Ok(self.partition.clone())
        }
        fn members(&self, _: Instant) -> AttrResult<Vec<Member>> {
            self.check("members".into())?;
            Ok(self.members.clone())
        }
        fn local_name(&self, _: Instant) -> AttrResult<String> {
            self.check("local name".into())?;
            Ok(self.me.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_lines_are_read_and_deleted_values_left_out() {
        let m = parse_query(
            "name=\"pos-pg\" host=\"n1\" value=\"2#0/3000148\"\n\
             name=\"pos-pg\" host=\"n2\" value=\"\"\n\
             name=\"pos-pg\" host=\"n3\" value=\"a \"q\" b\"\n",
        )
        .unwrap();
        assert_eq!(m.get("n1").map(String::as_str), Some("2#0/3000148"));
        assert!(!m.contains_key("n2"));
        assert_eq!(m.get("n3").map(String::as_str), Some("a \"q\" b"));
        assert!(parse_query("").unwrap().is_empty());
        assert!(parse_query("garbage\n").is_err());
    }

    #[test]
    fn members_and_scores() {
        let m = parse_members("1 pg1 member\n2 pg2 lost\n\nbad line\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].name, "pg2");
        assert_eq!(m[1].state, "lost");
        assert_eq!(parse_score("1001"), Some(1001));
        assert_eq!(parse_score("-INFINITY"), Some(-1_000_000));
        assert_eq!(parse_score("x"), None);
    }

    #[test]
    fn not_found_is_none_other_failures_stay() {
        let nf: AttrResult<i64> = Err(AttrError::NotFound {
            name: "a".into(),
            node: "n".into(),
        });
        assert_eq!(nf.found(), Ok(None));
        let down: AttrResult<i64> = Err(AttrError::NoCluster {
            command: "c".into(),
            detail: "d".into(),
        });
        assert!(down.found().is_err());
    }

    #[test]
    fn without_a_cluster_the_tools_say_so() {
        // Run only where no cluster answers (the test host): the failure is typed.
        let soon = Instant::now() + std::time::Duration::from_secs(10);
        match Tools::new().query("pgst-nothing", None, soon) {
            Err(AttrError::NoCluster { .. }) | Err(AttrError::NotInstalled { .. }) => {}
            Err(AttrError::NotFound { .. }) => {} // a cluster runs here after all
            other => panic!("{other:?}"),
        }
    }
}
