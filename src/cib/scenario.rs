//! `crm_verify` and `crm_simulate` on a private copy of a CIB, never on a live cluster.
//!
//! A CIB without node states (a fresh render) is first brought up: every configured node
//! online and clean, quorum held (as corosync's `two_node` keeps it), a promotion score
//! seeded for each promotable clone (higher on the first node, or on `--primary`), then
//! crm_simulate runs transitions until nothing starts, stops, promotes or demotes any more.
//! A CIB with node states (say `cibadmin -Q` of a live cluster) is taken as it is.
//! The scenarios then change that steady state and report the ordered actions Pacemaker's
//! scheduler executes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::xml::{self, Element};
use super::CibError;
use crate::sys::pacemaker::{self as pcmk, Action, Placement, Verdict, Workdir};

/// Score seeded on the preferred node; the others get [`OTHER_SCORE`].
pub const PRIMARY_SCORE: &str = "100";
pub const OTHER_SCORE: &str = "50";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// Only bring the CIB to its steady state.
    Steady,
    /// `crm_resource --move` of `resource` to `node`, then `--clear`.
    Migrate {
        resource: Option<String>,
        node: Option<String>,
        lifetime: Option<String>,
    },
    /// The node fails (crm_simulate --node-fail): fenced when fencing is on.
    NodeFail { node: Option<String> },
    /// The node is put in standby.
    Standby { node: Option<String> },
    /// The node fails, is fenced, and comes back.
    Fence { node: Option<String> },
}

/// One step of a scenario and the actions of its transition, in order.
#[derive(Debug, Clone)]
pub struct Step {
    pub title: String,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub steps: Vec<Step>,
    /// Where the main resource ran before and after the scenario.
    pub main: String,
    pub before: Placement,
    pub after: Placement,
}

/// The actions that change where things run (no probes, monitors, notifications, pseudo
/// actions): what the book lists.
pub fn is_main(a: &Action) -> bool {
    match a {
        Action::Resource { op, .. } => {
            matches!(
                op.as_str(),
                "start" | "stop" | "promote" | "demote" | "migrate_to" | "migrate_from"
            )
        }
        Action::Fence { .. } | Action::Shutdown { .. } => true,
        Action::Pseudo { .. } => false,
    }
}

fn nodes(cib: &Element) -> Vec<(String, String)> {
    cib.child("configuration")
        .and_then(|c| c.child("nodes"))
        .map(|n| {
            n.children_named("node")
                .filter_map(|e| Some((e.attr("id")?.to_string(), e.attr("uname")?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn has_node_states(cib: &Element) -> bool {
    cib.child("status")
        .is_some_and(|s| s.children_named("node_state").next().is_some())
}

/// Adds node states marking every configured node online, and quorum. Returns false when
/// the CIB already had node states (it is then left as it is).
pub fn bring_online(cib: &mut Element) -> Result<bool, CibError> {
    if has_node_states(cib) {
        return Ok(false);
    }
    let ns = nodes(cib);
    if ns.is_empty() {
        return Err(CibError::Invalid(
            "the CIB has no <nodes> and no node states: nothing to simulate on".into(),
        ));
    }
    cib.set("have-quorum", "1");
    if cib.child("status").is_none() {
        cib.children.push(Element::new("status"));
    }
    let status = cib.child_mut("status").expect("just ensured");
    for (id, uname) in ns {
        status.children.push(
            Element::new("node_state")
                .with_attr("id", &id)
                .with_attr("uname", &uname)
                .with_attr("in_ccm", "true")
                .with_attr("crmd", "online")
                .with_attr("join", "member")
                .with_attr("expected", "member"),
        );
    }
    Ok(true)
}

/// The primitives of promotable clones.
fn promotable_primitives(cib: &Element) -> Vec<String> {
    let Some(res) = cib
        .child("configuration")
        .and_then(|c| c.child("resources"))
    else {
        return Vec::new();
    };
    res.children_named("clone")
        .filter(|c| {
            c.children_named("meta_attributes")
                .flat_map(|m| m.children_named("nvpair"))
                .any(|nv| nv.attr("name") == Some("promotable") && nv.attr("value") == Some("true"))
        })
        .flat_map(|c| c.children_named("primitive"))
        .filter_map(|p| p.attr("id").map(str::to_string))
        .collect()
}

/// The resource scenarios act on by default: the first group, else the first top-level
/// primitive that is not a fencing device, else the first clone.
fn main_resource(cib: &Element) -> Option<String> {
    let res = cib.child("configuration")?.child("resources")?;
    let first = |pred: &dyn Fn(&Element) -> bool| {
        res.children
            .iter()
            .find(|e| pred(e))
            .and_then(|e| e.attr("id").map(str::to_string))
    };
    first(&|e| e.name == "group")
        .or_else(|| first(&|e| e.name == "primitive" && e.attr("class") != Some("stonith")))
        .or_else(|| first(&|e| e.name == "clone"))
}

/// Runs crm_verify on the file; a CIB without node states is checked as brought online
/// (otherwise every node is unclean and fencing of all of them is reported).
pub fn verify(file: &Path, deadline: Instant) -> Result<(Verdict, bool), CibError> {
    let text = pcmk::read_file(file)?;
    let mut cib = xml::parse(&text)?;
    let dir = Workdir::new("cib-verify")?;
    let online = !has_node_states(&cib) && !nodes(&cib).is_empty();
    let path = if online {
        bring_online(&mut cib)?;
        dir.write("online.xml", &cib.to_xml())?
    } else {
        file.to_path_buf()
    };
    Ok((pcmk::crm_verify(&path, deadline)?, online))
}

/// A steady state to run scenarios from.
pub struct Steady {
    pub dir: Workdir,
    /// The file name of the steady state in `dir`.
    pub file: &'static str,
    pub nodes: Vec<String>,
    pub main: String,
    pub bring_up: Vec<Step>,
    /// Promotion scores seeded at bring-up: (attribute, node, score).
    pub seeds: Vec<(String, String, &'static str)>,
}

/// Brings `text` (a CIB) to a steady state in a private directory.
pub fn steady(text: &str, primary: Option<&str>, deadline: Instant) -> Result<Steady, CibError> {
    let mut cib = xml::parse(text)?;
    let fresh = bring_online(&mut cib)?;
    let names: Vec<String> = nodes(&cib).into_iter().map(|(_, u)| u).collect();
    if let Some(p) = primary {
        if !names.iter().any(|n| n == p) {
            return Err(CibError::Invalid(format!(
                "--primary {p}: not a node of this CIB ({})",
                names.join(", ")
            )));
        }
    }
    let main = main_resource(&cib)
        .ok_or_else(|| CibError::Invalid("the CIB has no resources to simulate".into()))?;
    let dir = Workdir::new("cib-sim")?;
    let mut input = dir.write("state-0.xml", &cib.to_xml())?;
    let mut seeds = Vec::new();
    if fresh {
        let first = primary
            .map(str::to_string)
            .or_else(|| names.first().cloned());
        for prim in promotable_primitives(&cib) {
            for n in &names {
                let score = if Some(n) == first.as_ref() {
                    PRIMARY_SCORE
                } else {
                    OTHER_SCORE
                };
                let name = format!("master-{prim}");
                pcmk::crm_attribute(Some(&input), n, &name, score, "reboot", deadline)?;
                seeds.push((name, n.clone(), score));
            }
        }
    }
    let mut bring_up = Vec::new();
    const FILES: [&str; 4] = ["state-1.xml", "state-2.xml", "state-3.xml", "state-4.xml"];
    for (i, out) in FILES.iter().enumerate() {
        let sim = pcmk::crm_simulate(&input, &[], Some(&dir.path(out)), deadline)?;
        let settled = !sim.actions.iter().any(is_main);
        bring_up.push(Step {
            title: format!("transition {} to the steady state", i + 1),
            actions: sim.actions,
        });
        input = dir.path(out);
        if settled {
            return Ok(Steady {
                dir,
                file: out,
                nodes: names,
                main,
                bring_up,
                seeds,
            });
        }
    }
    Err(CibError::Invalid(format!(
        "no steady state after {} transitions: the configuration keeps moving resources",
        FILES.len()
    )))
}

fn other_node(nodes: &[String], not: &str) -> Result<String, CibError> {
    nodes
        .iter()
        .find(|n| n.as_str() != not)
        .cloned()
        .ok_or_else(|| CibError::Invalid("the scenario needs a second node".into()))
}

fn active_node(s: &Steady, resource: &str, deadline: Instant) -> Result<String, CibError> {
    let here = pcmk::crm_resource_locate(Some(&s.dir.path(s.file)), resource, deadline)?;
    here.iter()
        .find(|(_, promoted)| *promoted)
        .or_else(|| here.first())
        .map(|(n, _)| n.clone())
        .ok_or_else(|| CibError::Invalid(format!("{resource} does not run in the steady state")))
}

fn check_node(s: &Steady, n: &str) -> Result<(), CibError> {
    if s.nodes.iter().any(|x| x == n) {
        Ok(())
    } else {
        Err(CibError::Invalid(format!(
            "{n} is not a node of this CIB ({})",
            s.nodes.join(", ")
        )))
    }
}

/// The transitions of one scenario, simulated one after the other in its directory.
struct Transitions<'a> {
    dir: &'a Workdir,
    steps: Vec<Step>,
    deadline: Instant,
}

impl Transitions<'_> {
    /// Simulates the transition from `from` (with `extra` arguments of crm_simulate) into
    /// the file `to`, records it as the step `title`, and returns that file.
    fn step(
        &mut self,
        from: &Path,
        extra: &[String],
        to: &str,
        title: String,
    ) -> Result<PathBuf, CibError> {
        let out = self.dir.path(to);
        let sim = pcmk::crm_simulate(from, extra, Some(&out), self.deadline)?;
        self.steps.push(Step {
            title,
            actions: sim.actions,
        });
        Ok(out)
    }
}

/// Runs `scenario` from the steady state of `text`.
pub fn simulate(
    text: &str,
    scenario: &Scenario,
    primary: Option<&str>,
    save: Option<&Path>,
    deadline: Instant,
) -> Result<Report, CibError> {
    let s = steady(text, primary, deadline)?;
    let d = &s.dir;
    let start = d.path(s.file);
    let main = match scenario {
        Scenario::Migrate {
            resource: Some(r), ..
        } => r.clone(),
        _ => s.main.clone(),
    };
    let before = pcmk::crm_resource_locate(Some(&start), &main, deadline)?;
    let mut t = Transitions {
        dir: d,
        steps: s.bring_up.clone(),
        deadline,
    };
    let last: PathBuf = match scenario {
        Scenario::Steady => start.clone(),
        Scenario::Migrate { node, lifetime, .. } => {
            let from = active_node(&s, &main, deadline)?;
            let to = match node {
                Some(n) => {
                    check_node(&s, n)?;
                    n.clone()
                }
                None => other_node(&s.nodes, &from)?,
            };
            let moved = d.copy(s.file, "migrate-0.xml")?;
            pcmk::crm_resource_move(Some(&moved), &main, &to, lifetime.as_deref(), deadline)?;
            let done = t.step(
                &moved,
                &[],
                "migrate-1.xml",
                format!("crm_resource --move {main} to {to}"),
            )?;
            pcmk::crm_resource_clear(Some(&done), &main, deadline)?;
            t.step(
                &done,
                &[],
                "migrate-2.xml",
                format!("crm_resource --clear {main}"),
            )?
        }
        Scenario::NodeFail { node } | Scenario::Fence { node } => {
            let n = match node {
                Some(n) => {
                    check_node(&s, n)?;
                    n.clone()
                }
                None => active_node(&s, &main, deadline)?,
            };
            // The node fails; with fencing, it comes back up.
            let events = [
                ("--node-fail", "fail-1.xml", "fails"),
                ("--node-up", "fail-2.xml", "returns after fencing"),
            ];
            let fenced = matches!(scenario, Scenario::Fence { .. });
            let mut at = start.clone();
            for (flag, file, what) in &events[..if fenced { 2 } else { 1 }] {
                let extra = [flag.to_string(), n.clone()];
                at = t.step(&at, &extra, file, format!("{n} {what}"))?;
            }
            // Fencing erased the node's transient attributes; once its agents run again
            // they report their promotion scores: the ones seeded at bring-up, so a
            // node that was preferred is preferred again and only stickiness keeps
            // the resources where they are.
            let mut seeded = false;
            if fenced {
                for (attr, node, score) in s.seeds.iter().filter(|(_, node, _)| *node == n) {
                    pcmk::crm_attribute(Some(&at), node, attr, score, "reboot", deadline)?;
                    seeded = true;
                }
            }
            if seeded {
                let what = format!("{n} reports its promotion scores again");
                t.step(&at, &[], "fail-3.xml", what)?
            } else {
                at
            }
        }
        Scenario::Standby { node } => {
            let n = match node {
                Some(n) => {
                    check_node(&s, n)?;
                    n.clone()
                }
                None => active_node(&s, &main, deadline)?,
            };
            let sb = d.copy(s.file, "standby-0.xml")?;
            pcmk::crm_attribute(Some(&sb), &n, "standby", "on", "forever", deadline)?;
            t.step(&sb, &[], "standby-1.xml", format!("{n} goes to standby"))?
        }
    };
    let after = pcmk::crm_resource_locate(Some(&last), &main, deadline)?;
    if let Some(out) = save {
        pcmk::write_file(out, &pcmk::read_file(&last)?)?;
    }
    Ok(Report {
        steps: t.steps,
        main,
        before,
        after,
    })
}
