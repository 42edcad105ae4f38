//! `pgstack check`: a preflight of a node and its cluster. Each finding says what is wrong,
//! why it matters and how to fix it:
//!
//! - fencing enabled, and a stonith device for every node;
//! - corosync's two-node quorum settings (`two_node: 1`, `wait_for_all` not turned off)
//!   on a two-node cluster;
//! - DRBD `fencing resource-and-stonith` with fence-peer and unfence handlers for every
//!   DRBD resource the CIB uses;
//! - op timeouts below the minimums pgstack's agents advertise (their [`AgentInfo`]);
//! - every agent the CIB names installed on this node;
//! - stickiness set as an `rsc_defaults` (Pacemaker 2.1 refuses the old property).
//!
//! - the lvm.conf advice of `pgstack lvm check-config` (a filter that accepts only the PV
//!   devices and rejects the rest, no persistent device cache, no lvmetad) when the CIB
//!   uses an LVM resource or the caller asks: the caller reads the effective configuration
//!   and passes it as [`Inputs::lvm`].
//!
//! The checks are pure: the caller reads the CIB, corosync.conf and the DRBD files and
//! answers [`Node`] questions; nothing here touches the system.
//!
//! [`AgentInfo`]: crate::ocf::metadata::AgentInfo

pub mod cib;
pub mod conf;

use std::collections::BTreeSet;

use crate::agents;
use crate::cib::model::AgentRef;
use crate::ocf::action::Action;
use cib::{duration_ms, Cib, Primitive};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("reading the CIB: {0}")]
    Cib(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One misconfiguration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A stable name of the check (`fencing-disabled`, ...), for scripts.
    pub check: &'static str,
    pub severity: Severity,
    /// What it is about: a node, a resource, a file.
    pub subject: String,
    pub reason: String,
    pub fix: String,
}

fn finding(
    check: &'static str,
    severity: Severity,
    subject: impl Into<String>,
    reason: impl Into<String>,
    fix: impl Into<String>,
) -> Finding {
    Finding {
        check,
        severity,
        subject: subject.into(),
        reason: reason.into(),
        fix: fix.into(),
    }
}

/// A configuration text and where it came from, or why it could not be read.
#[derive(Debug, Clone)]
pub enum Text {
    Read { origin: String, text: String },
    Missing { origin: String, why: String },
}

/// What the node answers.
pub trait Node {
    /// Whether the agent `class[:provider]:kind` is installed here.
    fn has_agent(&self, agent: &AgentRef) -> bool;
}

pub struct Inputs<'a> {
    /// The CIB (XML).
    pub cib: &'a str,
    pub corosync: Text,
    /// The DRBD configuration files (read only when the CIB uses DRBD).
    pub drbd: Vec<Text>,
    /// The effective LVM configuration of this node; `None` when it was not read.
    pub lvm: Option<LvmConf>,
}

/// This node's effective LVM configuration (`lvmconfig --type full` output), or why it
/// could not be read. `origin` names the lvm.conf.
#[derive(Debug, Clone)]
pub enum LvmConf {
    Read { origin: String, text: String },
    Missing { origin: String, why: String },
}

/// Whether the CIB names an LVM resource (`ocf:*:lvm`, `LVM`, `LVM-activate`).
pub fn uses_lvm(cib: &str) -> Result<bool, CheckError> {
    Ok(uses_lvm_in(&cib::read(cib)?))
}

fn uses_lvm_in(c: &Cib) -> bool {
    c.primitives.iter().any(|p| {
        p.agent.class == "ocf" && ["lvm", "LVM", "LVM-activate"].contains(&p.agent.kind.as_str())
    })
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// What was not checked, and why (does not change the exit code).
    pub notes: Vec<String>,
}

impl Report {
    pub fn count(&self, s: Severity) -> usize {
        self.findings.iter().filter(|f| f.severity == s).count()
    }

    /// 0 clean, 1 warnings only, 2 errors.
    pub fn exit_code(&self) -> u8 {
        match self.findings.iter().map(|f| f.severity).max() {
            None => 0,
            Some(Severity::Warning) => 1,
            Some(Severity::Error) => 2,
        }
    }

    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for f in &self.findings {
            s.push_str(&format!(
                "{}: [{}] {}: {}\n  fix: {}\n",
                f.severity.name(),
                f.check,
                f.subject,
                f.reason,
                f.fix
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("note: {n}\n"));
        }
        s.push_str(&format!(
            "pgstack check: {} error(s), {} warning(s)\n",
            self.count(Severity::Error),
            self.count(Severity::Warning)
        ));
        s
    }

    pub fn to_json(&self) -> String {
        let findings: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "check": f.check,
                    "severity": f.severity.name(),
                    "subject": f.subject,
                    "reason": f.reason,
                    "fix": f.fix,
                })
            })
            .collect();
        let v = serde_json::json!({
            "findings": findings,
            "notes": self.notes,
            "errors": self.count(Severity::Error),
            "warnings": self.count(Severity::Warning),
            "exit": self.exit_code(),
        });
        format!("{v:#}\n")
    }
}

/// Runs every check.
pub fn run(inputs: &Inputs, node: &dyn Node) -> Result<Report, CheckError> {
    let c = cib::read(inputs.cib)?;
    let mut r = Report::default();
    fencing(&c, &mut r);
    quorum(&inputs.corosync, &mut r);
    drbd(&c, &inputs.drbd, &mut r);
    lvm(&c, &inputs.lvm, &mut r);
    timeouts(&c, &mut r);
    installed(&c, node, &mut r);
    stickiness(&c, &mut r);
    Ok(r)
}

fn is_true(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "true" | "yes" | "y" | "on" | "1"
    )
}

fn fencing(c: &Cib, r: &mut Report) {
    let enabled = c.property("stonith-enabled").is_none_or(is_true);
    if !enabled {
        r.findings.push(finding(
            "fencing-disabled",
            Severity::Error,
            "stonith-enabled",
            "fencing is disabled: a node that stops answering keeps its resources while \
             the other takes them over (split brain, two primaries writing the data)",
            "configure a stonith device per node, then `crm configure property \
             stonith-enabled=true` (or `pcs property set stonith-enabled=true`)",
        ));
    }
    if c.property("no-quorum-policy") == Some("ignore") && enabled {
        r.findings.push(finding(
            "no-quorum-policy-ignore",
            Severity::Warning,
            "no-quorum-policy",
            "no-quorum-policy=ignore runs resources without quorum; with two_node quorum \
             the survivor of a two-node cluster keeps quorum anyway",
            "`crm configure property no-quorum-policy=stop` with `two_node: 1` in corosync.conf",
        ));
    }
    let devices: Vec<&Primitive> = c
        .primitives
        .iter()
        .filter(|p| p.agent.class == "stonith")
        .collect();
    for node in &c.nodes {
        let by_list = devices.iter().any(|d| covers(d, node));
        let by_level = c.levels.iter().any(|(target, devs)| {
            target == node && devs.iter().all(|d| devices.iter().any(|p| &p.id == d))
        });
        if !by_list && !by_level {
            r.findings.push(finding(
                "fencing-device-missing",
                Severity::Error,
                format!("node {node}"),
                format!(
                    "no stonith device can fence {node} (none lists it in pcmk_host_list or \
                     pcmk_host_map, and no fencing level targets it)"
                ),
                format!(
                    "add a device for {node}, e.g. `pgstack cib render --template fencing` \
                     (fence_ipmilan with pcmk_host_list={node})"
                ),
            ));
        }
    }
}

/// Whether a stonith device declares it can fence `node`. A device that declares no host
/// list or map is asked by Pacemaker at run time: it counts as covering every node.
fn covers(d: &Primitive, node: &str) -> bool {
    let list = d.param("pcmk_host_list");
    let map = d.param("pcmk_host_map");
    if list.is_none() && map.is_none() {
        return d.param("pcmk_host_check") != Some("none");
    }
    let in_list = list.is_some_and(|l| l.split([',', ' ', ';']).any(|n| n == node));
    let in_map = map.is_some_and(|m| {
        m.split([',', ' ', ';'])
            .any(|e| e.split(':').next() == Some(node))
    });
    in_list || in_map
}

fn quorum(corosync: &Text, r: &mut Report) {
    let (origin, text) = match corosync {
        Text::Read { origin, text } => (origin, text),
        Text::Missing { origin, why } => {
            r.findings.push(finding(
                "corosync-conf-unreadable",
                Severity::Warning,
                origin.clone(),
                format!("the quorum settings were not checked: {why}"),
                "run pgstack check on a cluster node, or pass --corosync-conf FILE",
            ));
            return;
        }
    };
    let top = match conf::corosync(text) {
        Ok(t) => t,
        Err(e) => {
            r.findings.push(finding(
                "corosync-conf-invalid",
                Severity::Error,
                origin.clone(),
                format!("corosync.conf cannot be read: {e}"),
                "check it with `corosync -t` and correct it",
            ));
            return;
        }
    };
    let nodes = top
        .blocks_named("nodelist")
        .flat_map(|n| n.blocks_named("node"))
        .count();
    let q = top.blocks_named("quorum").last();
    let two_node = q
        .and_then(|q| q.value("two_node"))
        .is_some_and(|v| v == "1");
    let wait_for_all = q.and_then(|q| q.value("wait_for_all"));
    let provider = q.and_then(|q| q.value("provider"));
    if provider != Some("corosync_votequorum") {
        r.findings.push(finding(
            "quorum-provider",
            Severity::Error,
            origin.clone(),
            format!(
                "quorum {{ provider: {} }}: without votequorum Pacemaker has no quorum to act on",
                provider.unwrap_or("(none)")
            ),
            "set `provider: corosync_votequorum` in the quorum section",
        ));
    }
    if nodes == 2 && !two_node {
        r.findings.push(finding(
            "two-node-quorum",
            Severity::Error,
            origin.clone(),
            "a two-node cluster without `two_node: 1`: the survivor of a node failure loses \
             quorum and stops every resource (no-quorum-policy=stop)",
            "add `two_node: 1` to the quorum section (it implies wait_for_all) and restart corosync",
        ));
    }
    if nodes == 2 && two_node && wait_for_all == Some("0") {
        r.findings.push(finding(
            "two-node-wait-for-all",
            Severity::Error,
            origin.clone(),
            "two_node with `wait_for_all: 0`: two nodes booting apart each get quorum and \
             fence each other, or both start the resources",
            "remove `wait_for_all: 0` (two_node turns it on)",
        ));
    }
    if nodes > 2 && two_node {
        r.findings.push(finding(
            "two-node-quorum",
            Severity::Warning,
            origin.clone(),
            format!("`two_node: 1` with {nodes} nodes in the nodelist: votequorum ignores it"),
            "remove `two_node: 1`; a majority decides with three or more nodes",
        ));
    }
}

/// The DRBD resources the CIB manages: (resource id, drbd_resource).
fn drbd_resources(c: &Cib) -> Vec<(String, String)> {
    c.primitives
        .iter()
        .filter(|p| p.agent.class == "ocf" && p.agent.kind == "drbd")
        .filter_map(|p| Some((p.id.clone(), p.param("drbd_resource")?.to_string())))
        .collect()
}

/// Where DRBD sets a resource's fencing policy and handlers: the resource's own sections
/// override `common`'s.
fn drbd(c: &Cib, files: &[Text], r: &mut Report) {
    let wanted = drbd_resources(c);
    if wanted.is_empty() {
        return;
    }
    if files.is_empty() {
        r.findings.push(finding(
            "drbd-conf-unreadable",
            Severity::Error,
            "DRBD configuration",
            "the CIB uses DRBD but no DRBD resource file (*.res, *.conf) was found",
            "run pgstack check on a cluster node, or pass --drbd-conf DIR",
        ));
        return;
    }
    let mut stmts = Vec::new();
    let mut origins = Vec::new();
    for f in files {
        match f {
            Text::Read { origin, text } => match conf::drbd(text) {
                Ok(s) => {
                    stmts.extend(s);
                    origins.push(origin.clone());
                }
                Err(e) => r.findings.push(finding(
                    "drbd-conf-invalid",
                    Severity::Error,
                    origin.clone(),
                    format!("the DRBD configuration cannot be read: {e}"),
                    "check it with `drbdadm dump` and correct it",
                )),
            },
            Text::Missing { origin, why } => r.findings.push(finding(
                "drbd-conf-unreadable",
                Severity::Error,
                origin.clone(),
                format!("the CIB uses DRBD but its configuration cannot be read: {why}"),
                "run pgstack check on a cluster node, or pass --drbd-conf DIR",
            )),
        }
    }
    let common: Vec<&conf::Stmt> = stmts.iter().filter(|s| s.keyword() == "common").collect();
    let lookup = |res: &conf::Stmt, section: &str, key: &str| -> Option<String> {
        let own = res
            .sections(section)
            .filter_map(|s| s.option(key))
            .last()
            .map(str::to_string);
        own.or_else(|| {
            common
                .iter()
                .flat_map(|c| c.sections(section))
                .filter_map(|s| s.option(key))
                .last()
                .map(str::to_string)
        })
    };
    let mut seen = BTreeSet::new();
    for (id, name) in &wanted {
        if !seen.insert(name.as_str()) {
            continue;
        }
        let subject = format!("DRBD resource {name} ({id})");
        let Some(res) = stmts
            .iter()
            .find(|s| s.words == ["resource", name.as_str()] && s.body.is_some())
        else {
            if !origins.is_empty() {
                r.findings.push(finding(
                    "drbd-resource-unknown",
                    Severity::Error,
                    subject,
                    format!(
                        "the CIB names drbd_resource={name}, which {} does not define",
                        origins.join(", ")
                    ),
                    format!(
                        "define resource {name} in /etc/drbd.d/{name}.res or correct drbd_resource"
                    ),
                ));
            }
            continue;
        };
        // DRBD 8.4 keeps `fencing` in the disk section, DRBD 9 in net.
        let policy = lookup(res, "net", "fencing").or_else(|| lookup(res, "disk", "fencing"));
        if policy.as_deref() != Some("resource-and-stonith") {
            r.findings.push(finding(
                "drbd-fencing-policy",
                Severity::Error,
                subject.clone(),
                format!(
                    "fencing is {}: on losing its peer DRBD must freeze I/O until the cluster \
                     has fenced it, or both sides can become primary",
                    policy.as_deref().unwrap_or("not set (dont-care)")
                ),
                "set `fencing resource-and-stonith;` (disk section for DRBD 8.4, net for DRBD 9)",
            ));
        }
        if lookup(res, "handlers", "fence-peer").is_none() {
            r.findings.push(finding(
                "drbd-fence-peer-handler",
                Severity::Error,
                subject.clone(),
                "no fence-peer handler: with resource-and-stonith DRBD freezes I/O and waits \
                 for a handler that never runs",
                "add `fence-peer \"/usr/lib/drbd/crm-fence-peer.sh\";` (crm-fence-peer.9.sh \
                 for DRBD 9) to the handlers section",
            ));
        }
        let unfence = lookup(res, "handlers", "unfence-peer").or_else(|| {
            lookup(res, "handlers", "after-resync-target").filter(|h| h.contains("unfence"))
        });
        if unfence.is_none() {
            r.findings.push(finding(
                "drbd-unfence-handler",
                Severity::Error,
                subject,
                "no unfence handler: the constraint fence-peer placed is never removed, so \
                 the peer can never be promoted again",
                "add `unfence-peer \"/usr/lib/drbd/crm-unfence-peer.9.sh\";` (DRBD 9) or \
                 `after-resync-target \"/usr/lib/drbd/crm-unfence-peer.sh\";` (8.4)",
            ));
        }
    }
}

fn lvm(c: &Cib, conf: &Option<LvmConf>, r: &mut Report) {
    let (origin, text) = match conf {
        Some(LvmConf::Read { origin, text }) => (origin, text),
        Some(LvmConf::Missing { origin, why }) => {
            r.findings.push(finding(
                "lvm-conf-unreadable",
                Severity::Warning,
                origin.clone(),
                format!("the lvm.conf advice was not checked: {why}"),
                "run pgstack check on a cluster node with lvm2 installed, or pass \
                 --lvm-system-dir DIR (the directory of the lvm.conf)",
            ));
            return;
        }
        None => {
            if uses_lvm_in(c) {
                r.notes.push("the lvm.conf advice was not checked".into());
            }
            return;
        }
    };
    for d in crate::sys::lvm::check_config(text) {
        let (check, severity, why) = match d.key {
            "devices/filter" => (
                "lvm-filter",
                Severity::Error,
                "LVM scans devices the filter does not reject: it can find the VG on the \
                 backing device of DRBD as well as on the DRBD device, and activate it there, \
                 past replication",
            ),
            "devices/write_cache_state" => (
                "lvm-write-cache",
                Severity::Warning,
                "LVM keeps a persistent device cache",
            ),
            _ => (
                "lvm-lvmetad",
                Severity::Warning,
                "LVM caches metadata in lvmetad",
            ),
        };
        r.findings.push(finding(
            check,
            severity,
            format!("{origin}: {}", d.key),
            format!("found {}: {why}", d.found),
            format!("lvm.conf {}: {}", d.key, d.advice),
        ));
    }
}

fn timeouts(c: &Cib, r: &mut Report) {
    let default_ms = c
        .op_defaults
        .iter()
        .rev()
        .find(|(k, _)| k == "timeout")
        .and_then(|(_, v)| duration_ms(v))
        .unwrap_or(20_000);
    for p in c
        .primitives
        .iter()
        .filter(|p| p.agent.class == "ocf" && p.agent.provider.as_deref() == Some("pgstack"))
    {
        let Some(info) = agents::resolve(&p.agent.kind) else {
            continue;
        };
        for op in &p.ops {
            let Some(action) = Action::ALL.into_iter().find(|a| a.name() == op.name) else {
                continue;
            };
            // The smallest advertised timeout of the action (monitors have one per depth).
            let Some(min_s) = info
                .actions
                .iter()
                .filter(|s| s.action == action)
                .map(|s| s.timeout)
                .min()
            else {
                continue;
            };
            let (given_ms, shown) = match op.timeout.as_deref() {
                Some(t) => match duration_ms(t) {
                    Some(ms) => (ms, t.to_string()),
                    None => continue,
                },
                None => (default_ms, format!("{}s (the default)", default_ms / 1000)),
            };
            if given_ms < u64::from(min_s) * 1000 {
                r.findings.push(finding(
                    "op-timeout-below-minimum",
                    Severity::Warning,
                    format!("{} op {} interval={}", p.id, op.name, op.interval),
                    format!(
                        "timeout {shown} is below the {min_s}s {} advertises for {}: the \
                         cluster may fail an action that is still progressing",
                        p.agent, op.name
                    ),
                    format!("set timeout={min_s}s or more on that op"),
                ));
            }
        }
    }
}

fn installed(c: &Cib, node: &dyn Node, r: &mut Report) {
    let mut seen = BTreeSet::new();
    for p in &c.primitives {
        if !seen.insert(p.agent.to_string()) {
            continue;
        }
        if p.agent.provider.as_deref() == Some("pgstack")
            && agents::resolve(&p.agent.kind).is_none()
        {
            r.findings.push(finding(
                "agent-unknown",
                Severity::Error,
                format!("{} ({})", p.agent, p.id),
                format!(
                    "this pgstack provides no agent {:?} (it provides: {})",
                    p.agent.kind,
                    agents::installed_names()
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "correct the resource's type, or install the pgstack version that has it",
            ));
            continue;
        }
        if !node.has_agent(&p.agent) {
            r.findings.push(finding(
                "agent-not-installed",
                Severity::Error,
                format!("{} ({})", p.agent, p.id),
                "the agent is not installed on this node: Pacemaker cannot run the \
                 resource here (the probe fails with not installed)",
                match (p.agent.class.as_str(), p.agent.provider.as_deref()) {
                    ("ocf", Some("pgstack")) => "install pgstack on this node (make install or the Debian package)".to_string(),
                    ("ocf", Some(prov)) => format!("install the package with /usr/lib/ocf/resource.d/{prov}/{} (resource-agents for heartbeat)", p.agent.kind),
                    ("stonith", _) => format!("install the fence agent {} (fence-agents)", p.agent.kind),
                    _ => format!("install {} on this node", p.agent),
                },
            ));
        }
    }
}

fn stickiness(c: &Cib, r: &mut Report) {
    if c.property("default-resource-stickiness").is_some() {
        r.findings.push(finding(
            "stickiness-property",
            Severity::Error,
            "default-resource-stickiness",
            "the cluster property default-resource-stickiness is refused by Pacemaker 2.1 \
             (schema error) or ignored",
            "remove the property and set `crm configure rsc_defaults resource-stickiness=100`",
        ));
    }
    let value = c
        .rsc_defaults
        .iter()
        .rev()
        .find(|(k, _)| k == "resource-stickiness")
        .map(|(_, v)| v.as_str());
    let positive = value.is_some_and(|v| {
        v.eq_ignore_ascii_case("INFINITY")
            || v.eq_ignore_ascii_case("+INFINITY")
            || v.parse::<i64>().is_ok_and(|n| n > 0)
    });
    if !positive {
        r.findings.push(finding(
            "stickiness-missing",
            Severity::Warning,
            "rsc_defaults",
            format!(
                "resource-stickiness is {} in rsc_defaults: a recovered node takes the \
                 resources back, a second outage",
                value.unwrap_or("not set")
            ),
            "`crm configure rsc_defaults resource-stickiness=100` (or `pcs resource \
             defaults update resource-stickiness=100`)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct All;
    impl Node for All {
        fn has_agent(&self, _: &AgentRef) -> bool {
            true
        }
    }

    fn cib(conf: &str) -> String {
        format!("<cib><configuration>{conf}</configuration><status/></cib>")
    }

    fn checks(r: &Report) -> Vec<&'static str> {
        r.findings.iter().map(|f| f.check).collect()
    }

    fn inputs<'a>(cib: &'a str, corosync: &str) -> Inputs<'a> {
        Inputs {
            cib,
            corosync: Text::Read {
                origin: "corosync.conf".into(),
                text: corosync.into(),
            },
            drbd: Vec::new(),
            lvm: None,
        }
    }

    const QUORUM: &str =
        "nodelist {\nnode {\nname: a\n}\nnode {\nname: b\n}\n}\nquorum {\nprovider: corosync_votequorum\ntwo_node: 1\n}\n";

    #[test]
    fn a_device_without_host_list_covers_every_node_and_levels_count() {
        let c = cib(r#"<crm_config><cluster_property_set id="o"/></crm_config>
            <nodes><node id="1" uname="a"/><node id="2" uname="b"/></nodes>
            <resources><primitive id="f" class="stonith" type="fence_x"/></resources>
            <rsc_defaults><meta_attributes id="r"><nvpair id="s" name="resource-stickiness" value="100"/></meta_attributes></rsc_defaults>"#);
        let r = run(&inputs(&c, QUORUM), &All).unwrap();
        assert!(r.findings.is_empty(), "{:?}", r.findings);
        assert_eq!(r.exit_code(), 0);
        let c = cib(
            r#"<nodes><node id="1" uname="a"/><node id="2" uname="b"/></nodes>
            <resources><primitive id="f" class="stonith" type="fence_x"><instance_attributes id="i"><nvpair id="n" name="pcmk_host_list" value="a"/></instance_attributes></primitive></resources>"#,
        );
        let r = run(&inputs(&c, QUORUM), &All).unwrap();
        assert_eq!(
            checks(&r),
            ["fencing-device-missing", "stickiness-missing"],
            "{:?}",
            r.findings
        );
        assert_eq!(r.findings[0].subject, "node b");
        assert_eq!(r.exit_code(), 2);
        assert!(r.to_json().contains("\"exit\": 2"), "{}", r.to_json());
    }

    #[test]
    fn drbd_in_the_cib_without_drbd_files_is_an_error() {
        let c = cib(
            r#"<resources><primitive id="d" class="ocf" provider="linbit" type="drbd"><instance_attributes id="i"><nvpair id="n" name="drbd_resource" value="pg"/></instance_attributes></primitive></resources>"#,
        );
        let r = run(&inputs(&c, QUORUM), &All).unwrap();
        assert!(
            checks(&r).contains(&"drbd-conf-unreadable"),
            "{:?}",
            r.findings
        );
    }

    #[test]
    fn the_lvm_conf_advice_comes_in_with_its_severities() {
        let c = cib(
            r#"<resources><primitive id="vg" class="ocf" provider="pgstack" type="LVM-activate"/></resources>"#,
        );
        assert!(uses_lvm(&c).unwrap());
        assert!(!uses_lvm(&cib("")).unwrap());
        let lvm_checks = |lvm: Option<LvmConf>| {
            let mut i = inputs(&c, QUORUM);
            i.lvm = lvm;
            let r = run(&i, &All).unwrap();
            let f: Vec<&str> = checks(&r)
                .into_iter()
                .filter(|c| c.starts_with("lvm"))
                .collect();
            (f, r)
        };
        let read = |text: &str| {
            Some(LvmConf::Read {
                origin: "/x/lvm.conf".into(),
                text: text.into(),
            })
        };
        let (f, r) = lvm_checks(read(
            "filter=[\"a|.*|\"]\nglobal_filter=[\"a|.*|\"]\nwrite_cache_state=1\nuse_lvmetad=1\n",
        ));
        assert_eq!(f, ["lvm-filter", "lvm-write-cache", "lvm-lvmetad"]);
        assert_eq!(r.findings[0].severity, Severity::Error);
        assert_eq!(r.findings[0].subject, "/x/lvm.conf: devices/filter");
        assert!(
            r.findings[0].reason.contains("a|.*|"),
            "{:?}",
            r.findings[0]
        );
        let (f, _) = lvm_checks(read(
            "filter=[\"a|^/dev/sd.*|\",\"a|^/dev/drbd.*|\",\"r|.*|\"]\nwrite_cache_state=0\n",
        ));
        assert!(f.is_empty(), "{f:?}");
        let (f, r) = lvm_checks(Some(LvmConf::Missing {
            origin: "/x/lvm.conf".into(),
            why: "lvmconfig: not installed".into(),
        }));
        assert_eq!(f, ["lvm-conf-unreadable"]);
        assert_eq!(r.findings[0].severity, Severity::Warning);
        let (f, r) = lvm_checks(None);
        assert!(f.is_empty());
        assert!(
            r.notes.iter().any(|n| n.contains("lvm.conf")),
            "{:?}",
            r.notes
        );
    }

    #[test]
    fn wait_for_all_off_and_missing_two_node() {
        let c = cib("");
        let q = QUORUM.replace("two_node: 1", "two_node: 1\nwait_for_all: 0");
        let r = run(&inputs(&c, &q), &All).unwrap();
        assert!(checks(&r).contains(&"two-node-wait-for-all"));
        let q = QUORUM.replace("two_node: 1", "");
        let r = run(&inputs(&c, &q), &All).unwrap();
        assert!(checks(&r).contains(&"two-node-quorum"));
    }
}
