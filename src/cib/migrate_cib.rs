//! `pgstack migrate-cib`: switch a configuration's resources between the reference agents
//! and pgstack's, by provider alone.
//!
//! pgstack installs each agent also under the reference agent's type name (`IPaddr2`,
//! `Filesystem`, `pgsql`, `pgsqlms`, `LVM-activate`, `LVM`; `drbd` is the same name), so a
//! switch changes only
//! `provider` (`heartbeat` or `linbit` to `pgstack`, and back); every other attribute,
//! operation and constraint stays as it is. A changed type would make Pacemaker restart
//! the resource; a changed provider of a resource in maintenance mode is only re-probed
//! (see docs/migrating.md).
//!
//! Each parameter whose meaning changes is reported: set but ignored by the new agent, set
//! to a value the new agent refuses, or left unset where the two agents' defaults differ.
//! A resource the new agent would refuse (a refused value, a parameter it does not know,
//! a promotable clone of an agent that does not promote) is not switched: it stays on its
//! agent and the report says why. The reference agents' parameter names and defaults are
//! data here (read from their meta-data: resource-agents 4.12, PAF 2.3.0, drbd-utils 9.22).

use super::xml::Element;
use crate::agents;
use crate::ocf::metadata::AgentInfo;
use crate::ocf::params::ParamSpec;
use crate::ocf::Action;

/// Where the configuration goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Pgstack,
    Reference,
}

/// Why a parameter changes meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// Set, and accepted and ignored by the new agent.
    Ignored,
    /// Unset, and the two agents' defaults differ.
    Default,
    /// Set, and not known or not supported by the new agent (the resource is kept).
    Refused,
    /// Accepted by both agents, which act on it differently.
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub resource: String,
    pub param: String,
    pub kind: NoteKind,
    pub text: String,
}

/// One resource's agent change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub resource: String,
    pub from: String,
    pub to: String,
}

/// A resource left on its agent, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub resource: String,
    pub agent: String,
    pub why: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub changes: Vec<Change>,
    pub notes: Vec<Note>,
    pub kept: Vec<Kept>,
}

impl Report {
    /// The report as lines for an operator.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.changes {
            s.push_str(&format!("switch {}: {} -> {}\n", c.resource, c.from, c.to));
        }
        for n in &self.notes {
            let k = match n.kind {
                NoteKind::Ignored => "ignored",
                NoteKind::Default => "default",
                NoteKind::Refused => "refused",
                NoteKind::Changed => "changed",
            };
            s.push_str(&format!("  {} {} ({k}): {}\n", n.resource, n.param, n.text));
        }
        for k in &self.kept {
            s.push_str(&format!("keep {} on {}: {}\n", k.resource, k.agent, k.why));
        }
        if self.changes.is_empty() && self.kept.is_empty() {
            s.push_str("nothing to switch\n");
        }
        s
    }
}

/// A reference agent's parameters, each with its default.
type RefParams = &'static [(&'static str, Option<&'static str>)];

/// One resource's plan: (new provider, old agent, notes), or (agent, why it stays).
type Step = Result<(String, String, Vec<Note>), (String, String)>;

/// The reference agents: provider, type, and each parameter with its default.
static REFERENCE: &[(&str, &str, RefParams)] = &[
    (
        "heartbeat",
        "IPaddr2",
        &[
            ("ip", Some("")),
            ("nic", None),
            ("cidr_netmask", Some("")),
            ("broadcast", Some("")),
            ("iflabel", Some("")),
            ("lvs_support", Some("false")),
            ("lvs_ipv6_addrlabel", Some("false")),
            ("lvs_ipv6_addrlabel_value", Some("99")),
            ("mac", Some("")),
            ("clusterip_hash", Some("sourceip-sourceport")),
            ("unique_clone_address", Some("false")),
            ("arp_interval", Some("200")),
            ("arp_count", Some("5")),
            ("arp_count_refresh", Some("0")),
            ("arp_bg", Some("")),
            ("arp_sender", Some("")),
            ("send_arp_opts", Some("")),
            ("flush_routes", Some("false")),
            ("run_arping", Some("false")),
            ("nodad", Some("false")),
            ("noprefixroute", Some("false")),
            ("preferred_lft", Some("forever")),
            ("network_namespace", Some("")),
        ],
    ),
    (
        "heartbeat",
        "Filesystem",
        &[
            ("device", Some("")),
            ("directory", Some("")),
            ("fstype", Some("")),
            ("options", Some("")),
            ("statusfile_prefix", Some(".Filesystem_status/")),
            ("run_fsck", Some("auto")),
            ("fast_stop", Some("no")),
            ("force_clones", Some("false")),
            ("force_unmount", Some("true")),
        ],
    ),
    (
        "heartbeat",
        "pgsql",
        &[
            ("pgctl", Some("/usr/bin/pg_ctl")),
            ("start_opt", Some("")),
            ("ctl_opt", Some("")),
            ("psql", Some("/usr/bin/psql")),
            ("pgdata", Some("/var/lib/pgsql/data")),
            ("pgdba", Some("postgres")),
            ("pghost", Some("")),
            ("pgport", Some("5432")),
            ("pglibs", Some("/usr/lib")),
            ("monitor_user", Some("")),
            ("monitor_password", Some("")),
            ("monitor_sql", Some("select now();")),
            ("config", Some("/var/lib/pgsql/data/postgresql.conf")),
            ("pgdb", Some("template1")),
            ("logfile", Some("/dev/null")),
            ("socketdir", Some("")),
            ("stop_escalate", Some("90")),
            ("rep_mode", Some("none")),
            ("node_list", Some("")),
            ("restore_command", Some("")),
            ("archive_cleanup_command", Some("")),
            ("recovery_end_command", Some("")),
            ("master_ip", Some("")),
            ("repuser", Some("postgres")),
            ("primary_conninfo_opt", Some("")),
            ("restart_on_promote", Some("false")),
            ("replication_slot_name", Some("")),
            ("tmpdir", Some("/var/lib/pgsql/tmp")),
            ("xlog_check_count", Some("3")),
            ("crm_attr_timeout", Some("5")),
            ("stop_escalate_in_slave", Some("90")),
            ("check_wal_receiver", Some("false")),
        ],
    ),
    (
        "heartbeat",
        "pgsqlms",
        &[
            ("system_user", Some("postgres")),
            ("bindir", Some("/usr/bin")),
            ("pgdata", Some("/var/lib/pgsql/data")),
            ("datadir", Some("PGDATA")),
            ("pghost", Some("/var/run/postgresql")),
            ("pgport", Some("5432")),
            ("maxlag", Some("0")),
            ("recovery_template", Some("PGDATA/recovery.conf.pcmk")),
            ("start_opts", Some("")),
        ],
    ),
    (
        "heartbeat",
        "LVM-activate",
        &[
            ("vgname", Some("")),
            ("lvname", Some("")),
            ("vg_access_mode", Some("")),
            ("activation_mode", Some("exclusive")),
            ("tag", Some("pacemaker")),
            ("partial_activation", Some("false")),
        ],
    ),
    (
        "heartbeat",
        "LVM",
        &[
            ("volgrpname", Some("")),
            ("exclusive", Some("false")),
            ("tag", Some("pacemaker")),
            ("partial_activation", Some("false")),
        ],
    ),
    (
        "linbit",
        "drbd",
        &[
            ("drbd_resource", None),
            ("drbdconf", Some("/etc/drbd.conf")),
            ("adjust_master_score", Some("0 10 1000 10000")),
            ("stop_outdates_secondary", Some("false")),
            ("ignore_missing_notifications", Some("false")),
            ("wfc_timeout", Some("5")),
            ("remove_master_score_if_peer_primary", Some("false")),
            ("fail_promote_early_if_peer_primary", Some("false")),
            ("unfence_if_all_uptodate", Some("false")),
            (
                "unfence_extra_args",
                Some("--quiet --flock-required --flock-timeout 0 --unfence-only-if-owner-match"),
            ),
            ("require_drbd_module_version_ge", Some("8.0.0")),
            ("require_drbd_module_version_lt", Some("10.0.0")),
            ("connect_only_after_promote", Some("false")),
        ],
    ),
];

/// The reference agent a pgstack agent replaces under `name` (an alias or its own
/// name), as (provider, type).
fn reference_of(pgstack_type: &str) -> Option<(&'static str, &'static str)> {
    let info = agents::resolve(pgstack_type)?;
    let wanted = if REFERENCE.iter().any(|(_, t, _)| *t == pgstack_type) {
        pgstack_type
    } else {
        // An agent's own name goes back to its first reference name.
        match info.name {
            "vip" => "IPaddr2",
            "filesystem" => "Filesystem",
            "postgresql" => "pgsql",
            "drbd" => "drbd",
            "lvm" => "LVM-activate",
            _ => return None,
        }
    };
    REFERENCE
        .iter()
        .find(|(_, t, _)| *t == wanted)
        .map(|(p, t, _)| (*p, *t))
}

fn reference_params(provider: &str, ty: &str) -> Option<RefParams> {
    REFERENCE
        .iter()
        .find(|(p, t, _)| *p == provider && *t == ty)
        .map(|(_, _, ps)| *ps)
}

/// The instance attributes set on a primitive (every set, rules or not), in order.
fn instance_params(p: &Element) -> Vec<(String, String)> {
    p.children_named("instance_attributes")
        .flat_map(|ia| ia.children_named("nvpair"))
        .filter_map(|nv| {
            Some((
                nv.attr("name")?.to_string(),
                nv.attr("value").unwrap_or("").to_string(),
            ))
        })
        .collect()
}

fn is_promotable(parent: Option<&Element>) -> bool {
    let Some(parent) = parent else { return false };
    if parent.name == "master" {
        return true;
    }
    parent.name == "clone"
        && parent
            .children_named("meta_attributes")
            .flat_map(|m| m.children_named("nvpair"))
            .any(|nv| {
                nv.attr("name") == Some("promotable")
                    && crate::ocf::env::is_true(nv.attr("value").unwrap_or(""))
            })
}

fn inert(spec: &ParamSpec, value: &str) -> bool {
    match spec.refused {
        None => true,
        Some((_, ok)) => {
            value.trim().is_empty()
                || ok
                    .iter()
                    .any(|h| *h == "*" || h.eq_ignore_ascii_case(value.trim()))
        }
    }
}

/// What switching one primitive to pgstack means: notes, or why it must stay.
fn to_pgstack(
    id: &str,
    ty: &str,
    info: &AgentInfo,
    ref_params: &[(&str, Option<&str>)],
    set: &[(String, String)],
    promotable: bool,
) -> Result<Vec<Note>, String> {
    if promotable && !info.advertises(Action::Promote) {
        return Err(format!(
            "a promotable clone, and ocf:pgstack:{} does not promote",
            info.name
        ));
    }
    let mut notes = Vec::new();
    let mut refused = Vec::new();
    for (name, value) in set {
        let Some(spec) = info.params.iter().find(|s| s.name == name) else {
            refused.push(format!(
                "{name} is not a parameter of ocf:pgstack:{}",
                info.name
            ));
            continue;
        };
        if !inert(spec, value) {
            refused.push(format!("{name}={value:?}: {}", spec.long_text()));
        } else if spec.is_ignored() {
            notes.push(Note {
                resource: id.into(),
                param: name.clone(),
                kind: NoteKind::Ignored,
                text: spec.long_text(),
            });
        }
    }
    if refused.is_empty() && info.name == agents::lvm::INFO.name {
        lvm_meaning(id, ty, set, &mut notes, &mut refused);
    }
    if !refused.is_empty() {
        return Err(refused.join("; "));
    }
    for (name, ref_default) in ref_params {
        if set.iter().any(|(n, _)| n == name) {
            continue;
        }
        let Some(spec) = info.params.iter().find(|s| s.name == *name) else {
            continue;
        };
        if spec.is_refused() {
            continue;
        }
        let ours = spec.default.unwrap_or("");
        let theirs = ref_default.unwrap_or("");
        if ours != theirs {
            notes.push(Note {
                resource: id.into(),
                param: (*name).into(),
                kind: NoteKind::Default,
                text: format!(
                    "unset: the reference agent's default is {theirs:?}, pgstack's is {} ({})",
                    if ours.is_empty() {
                        "unset".to_string()
                    } else {
                        format!("{ours:?}")
                    },
                    crate::ocf::log::one_line(spec.longdesc)
                ),
            });
        }
    }
    Ok(notes)
}

/// What the `lvm` agent makes of a reference LVM configuration (`ty` is `LVM-activate` or
/// `LVM`): the values it refuses come from its own configuration rules (a resource it
/// would refuse is kept), the changes of meaning are its ownership mark and takeover rule.
fn lvm_meaning(
    id: &str,
    ty: &str,
    set: &[(String, String)],
    notes: &mut Vec<Note>,
    refused: &mut Vec<String>,
) {
    use crate::agents::lvm::{configure, AccessMode, INFO};
    use crate::ocf::env::OcfEnv;
    use crate::ocf::params::Params;
    let env = OcfEnv::from_map(
        set.iter()
            .map(|(n, v)| (format!("OCF_RESKEY_{n}"), v.clone()))
            .collect(),
    );
    let cfg = match Params::parse(INFO.params, &env).and_then(|p| configure(&p)) {
        Ok(c) => c,
        Err(e) => {
            refused.push(e.to_string());
            return;
        }
    };
    let mut note = |param: &str, text: String| {
        notes.push(Note {
            resource: id.into(),
            param: param.into(),
            kind: NoteKind::Changed,
            text,
        })
    };
    let is_set = |name: &str| set.iter().any(|(n, v)| n == name && !v.trim().is_empty());
    // The reference marks the VG with the bare tag in LVM-activate's tagging mode and in
    // LVM's exclusive mode; LVM's default (exclusive=false) sets no mark at all.
    let bare_tag = match ty {
        "LVM" => is_set("exclusive"),
        _ => cfg.mode == AccessMode::Tagging,
    };
    let tag = &cfg.tag;
    match cfg.mode {
        AccessMode::Tagging if bare_tag => note(
            "tag",
            format!(
                "the reference agent marks the VG with the bare tag {tag:?}; pgstack marks it \
                 \"{tag}:<node>\" and counts a bare {tag:?} as an owner it cannot name, so every \
                 start (here or elsewhere) refuses the VG while that tag is on it: in \
                 maintenance mode, on the node where {vg} is active, run `vgchange --deltag \
                 {tag} --addtag {tag}:$(crm_node -n) {vg}`",
                vg = cfg.vg
            ),
        ),
        AccessMode::Tagging => note(
            "tag",
            format!(
                "the reference agent (exclusive=false) activates {vg} on any node without a \
                 mark; pgstack activates it on one node at a time, marked \"{tag}:<node>\"",
                vg = cfg.vg
            ),
        ),
        AccessMode::SystemId => note(
            "vg_access_mode",
            "system_id: the same mark (the VG's system ID), but pgstack refuses to take a VG \
             whose system ID names a node that is online in the cluster (or when the \
             membership cannot be read) unless force_takeover=true, where the reference \
             agent takes it; with no system_id_source in lvm.conf pgstack uses uname, where \
             the reference agent fails"
                .into(),
        ),
        AccessMode::Lvmlockd => note(
            "vg_access_mode",
            "lvmlockd: pgstack starts the VG's lockspace and activates with its lock, as the \
             reference agent does, but this mode is not tested with a running lvmlockd (see \
             docs/compatibility.md)"
                .into(),
        ),
    }
}

/// What switching one primitive back to its reference agent means.
fn to_reference(
    id: &str,
    info: &AgentInfo,
    ref_params: &[(&str, Option<&str>)],
    set: &[(String, String)],
) -> Result<Vec<Note>, String> {
    let unknown: Vec<&str> = set
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !ref_params.iter().any(|(r, _)| r == n))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "not parameters of the reference agent: {}",
            unknown.join(", ")
        ));
    }
    let mut notes = Vec::new();
    for (name, value) in set {
        if let Some(spec) = info.params.iter().find(|s| s.name == name) {
            if spec.is_refused() && !value.trim().is_empty() {
                notes.push(Note {
                    resource: id.into(),
                    param: name.clone(),
                    kind: NoteKind::Ignored,
                    text: format!(
                        "ignored or refused by pgstack, acted on by the reference agent ({value:?})"
                    ),
                });
            }
        }
    }
    Ok(notes)
}

/// Rewrites the resources of `cib` (a `<cib>` or a `<resources>` element) for `target`
/// and reports what changes.
pub fn migrate(cib: &mut Element, target: Target) -> Report {
    let mut plan: Vec<(String, Step)> = Vec::new();
    cib.visit(&mut |e, up| {
        if e.name != "primitive" || e.attr("class") != Some("ocf") {
            return;
        }
        let (Some(id), Some(provider), Some(ty)) = (e.attr("id"), e.attr("provider"), e.attr("type"))
        else {
            return;
        };
        let set = instance_params(e);
        let from = format!("ocf:{provider}:{ty}");
        match target {
            Target::Pgstack => {
                let Some(ref_params) = reference_params(provider, ty) else {
                    return;
                };
                let Some(info) = agents::resolve(ty) else {
                    return;
                };
                match to_pgstack(id, ty, info, ref_params, &set, is_promotable(up.last().copied())) {
                    Ok(notes) => plan.push((id.into(), Ok(("pgstack".into(), from, notes)))),
                    Err(why) => plan.push((id.into(), Err((from, why)))),
                }
            }
            Target::Reference => {
                if provider != "pgstack" {
                    return;
                }
                let (Some(info), Some((rp, rt))) = (agents::resolve(ty), reference_of(ty)) else {
                    return;
                };
                if rt != ty {
                    plan.push((
                        id.into(),
                        Err((
                            from,
                            format!(
                                "switching to ocf:{rp}:{rt} changes the type too, which restarts the resource"
                            ),
                        )),
                    ));
                    return;
                }
                let ref_params = reference_params(rp, rt).unwrap_or(&[]);
                match to_reference(id, info, ref_params, &set) {
                    Ok(notes) => plan.push((id.into(), Ok((rp.into(), from, notes)))),
                    Err(why) => plan.push((id.into(), Err((from, why)))),
                }
            }
        }
    });
    let mut report = Report::default();
    for (id, step) in plan {
        match step {
            Ok((provider, from, notes)) => {
                if let Some(p) = find_primitive(cib, &id) {
                    p.set("provider", &provider);
                    let to = format!("ocf:{provider}:{}", p.attr("type").unwrap_or_default());
                    report.changes.push(Change {
                        resource: id.clone(),
                        from,
                        to,
                    });
                    report.notes.extend(notes);
                }
            }
            Err((agent, why)) => report.kept.push(Kept {
                resource: id,
                agent,
                why,
            }),
        }
    }
    report
}

fn find_primitive<'a>(e: &'a mut Element, id: &str) -> Option<&'a mut Element> {
    if e.name == "primitive" && e.attr("id") == Some(id) {
        return Some(e);
    }
    e.children.iter_mut().find_map(|c| find_primitive(c, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cib::xml::parse;

    const CIB: &str = r#"<cib><configuration><resources>
      <primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2">
        <instance_attributes id="vip-ia">
          <nvpair id="a" name="ip" value="10.99.0.50"/>
          <nvpair id="b" name="nic" value="eth0"/>
          <nvpair id="c" name="flush_routes" value="false"/>
        </instance_attributes>
      </primitive>
      <primitive id="db" class="ocf" provider="heartbeat" type="pgsql">
        <instance_attributes id="db-ia">
          <nvpair id="d" name="pgdata" value="/etc/postgresql/15/main"/>
          <nvpair id="e" name="ctl_opt" value="-w"/>
        </instance_attributes>
      </primitive>
      <primitive id="vip2" class="ocf" provider="heartbeat" type="IPaddr2">
        <instance_attributes id="vip2-ia">
          <nvpair id="f" name="lvs_support" value="true"/>
        </instance_attributes>
      </primitive>
      <clone id="ms-drbd">
        <meta_attributes id="m"><nvpair id="g" name="promotable" value="true"/></meta_attributes>
        <primitive id="drbd" class="ocf" provider="linbit" type="drbd">
          <instance_attributes id="drbd-ia">
            <nvpair id="h" name="drbd_resource" value="r0"/>
            <nvpair id="i" name="wfc_timeout" value="20"/>
          </instance_attributes>
        </primitive>
      </clone>
      <clone id="ms-paf">
        <meta_attributes id="m2"><nvpair id="j" name="promotable" value="true"/></meta_attributes>
        <primitive id="paf" class="ocf" provider="heartbeat" type="pgsqlms"/>
      </clone>
      <clone id="ms-vip">
        <meta_attributes id="m3"><nvpair id="k" name="promotable" value="true"/></meta_attributes>
        <primitive id="vip3" class="ocf" provider="heartbeat" type="IPaddr2">
          <instance_attributes id="vip3-ia"><nvpair id="l" name="ip" value="10.99.0.51"/></instance_attributes>
        </primitive>
      </clone>
      <primitive id="dummy" class="ocf" provider="heartbeat" type="Dummy"/>
    </resources></configuration></cib>"#;

    fn provider_of(cib: &Element, id: &str) -> String {
        cib.descendants()
            .into_iter()
            .find(|e| e.attr("id") == Some(id))
            .and_then(|e| e.attr("provider"))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn switches_by_provider_alone_and_reports_meanings() {
        let mut cib = parse(CIB).unwrap();
        let r = migrate(&mut cib, Target::Pgstack);
        let switched: Vec<_> = r.changes.iter().map(|c| c.resource.as_str()).collect();
        // PAF's promotable clone switches too: the postgresql agent promotes.
        assert_eq!(switched, ["vip", "db", "drbd", "paf"]);
        assert_eq!(provider_of(&cib, "paf"), "pgstack");
        assert_eq!(provider_of(&cib, "vip"), "pgstack");
        assert_eq!(provider_of(&cib, "drbd"), "pgstack");
        assert_eq!(provider_of(&cib, "dummy"), "heartbeat");
        // types are untouched
        assert!(cib.to_xml().contains(r#"type="IPaddr2""#));
        let note = |id: &str, p: &str| r.notes.iter().find(|n| n.resource == id && n.param == p);
        assert_eq!(note("db", "ctl_opt").unwrap().kind, NoteKind::Ignored);
        assert_eq!(note("drbd", "wfc_timeout").unwrap().kind, NoteKind::Ignored);
        assert!(note("drbd", "wfc_timeout")
            .unwrap()
            .text
            .contains("accepted and ignored"));
        assert_eq!(note("vip", "run_arping").unwrap().kind, NoteKind::Default);
        assert_eq!(note("db", "monitor_sql").unwrap().kind, NoteKind::Default);
        // flush_routes=false asks for nothing: no note
        assert!(note("vip", "flush_routes").is_none());
    }

    #[test]
    fn refused_values_and_promotable_single_agents_are_kept() {
        let mut cib = parse(CIB).unwrap();
        let r = migrate(&mut cib, Target::Pgstack);
        let kept = |id: &str| {
            r.kept
                .iter()
                .find(|k| k.resource == id)
                .map(|k| k.why.clone())
        };
        assert!(kept("vip2").unwrap().contains("lvs_support"));
        assert!(kept("vip3").unwrap().contains("does not promote"));
        assert_eq!(provider_of(&cib, "vip2"), "heartbeat");
        assert_eq!(provider_of(&cib, "vip3"), "heartbeat");
        assert!(r.text().contains("keep vip2 on ocf:heartbeat:IPaddr2"));
    }

    #[test]
    fn back_to_the_reference_agents() {
        let mut cib = parse(CIB).unwrap();
        migrate(&mut cib, Target::Pgstack);
        let r = migrate(&mut cib, Target::Reference);
        assert_eq!(r.changes.len(), 4, "{}", r.text());
        assert_eq!(provider_of(&cib, "drbd"), "linbit");
        assert_eq!(provider_of(&cib, "vip"), "heartbeat");
        // a second run changes nothing
        let again = migrate(&mut cib, Target::Reference);
        assert!(again.changes.is_empty());
        assert!(again.text().contains("nothing to switch"));
    }

    const LVM_CIB: &str = r#"<resources>
      <primitive id="vg-tag" class="ocf" provider="heartbeat" type="LVM-activate">
        <instance_attributes id="a"><nvpair id="a1" name="vgname" value="VG_POSTGRES"/>
          <nvpair id="a2" name="vg_access_mode" value="tagging"/><nvpair id="a3" name="tag" value="pgha"/></instance_attributes>
      </primitive>
      <primitive id="vg-sid" class="ocf" provider="heartbeat" type="LVM-activate">
        <instance_attributes id="b"><nvpair id="b1" name="vgname" value="vg1"/>
          <nvpair id="b2" name="vg_access_mode" value="system_id"/><nvpair id="b3" name="lvname" value="lv1"/></instance_attributes>
      </primitive>
      <primitive id="vg-clvm" class="ocf" provider="heartbeat" type="LVM-activate">
        <instance_attributes id="c"><nvpair id="c1" name="vgname" value="vg2"/>
          <nvpair id="c2" name="vg_access_mode" value="clvmd"/></instance_attributes>
      </primitive>
      <primitive id="vg-shared" class="ocf" provider="heartbeat" type="LVM-activate">
        <instance_attributes id="d"><nvpair id="d1" name="vgname" value="vg3"/>
          <nvpair id="d2" name="vg_access_mode" value="tagging"/><nvpair id="d3" name="activation_mode" value="shared"/></instance_attributes>
      </primitive>
      <primitive id="vg-unset" class="ocf" provider="heartbeat" type="LVM-activate">
        <instance_attributes id="e"><nvpair id="e1" name="vgname" value="vg4"/></instance_attributes>
      </primitive>
      <primitive id="old-excl" class="ocf" provider="heartbeat" type="LVM">
        <instance_attributes id="f"><nvpair id="f1" name="volgrpname" value="VG_POSTGRES"/>
          <nvpair id="f2" name="exclusive" value="true"/></instance_attributes>
      </primitive>
      <primitive id="old-plain" class="ocf" provider="heartbeat" type="LVM">
        <instance_attributes id="g"><nvpair id="g1" name="volgrpname" value="vg5"/></instance_attributes>
      </primitive>
      <primitive id="old-shared" class="ocf" provider="heartbeat" type="LVM">
        <instance_attributes id="h"><nvpair id="h1" name="volgrpname" value="vg6"/>
          <nvpair id="h2" name="exclusive" value="false"/></instance_attributes>
      </primitive>
      <primitive id="old-bad" class="ocf" provider="heartbeat" type="LVM">
        <instance_attributes id="i"><nvpair id="i1" name="volgrpname" value="vg;rm"/></instance_attributes>
      </primitive>
    </resources>"#;

    #[test]
    fn lvm_resources_switch_with_their_changes_of_meaning() {
        let mut cib = parse(LVM_CIB).unwrap();
        let r = migrate(&mut cib, Target::Pgstack);
        let switched: Vec<_> = r.changes.iter().map(|c| c.resource.as_str()).collect();
        assert_eq!(
            switched,
            ["vg-tag", "vg-sid", "vg-unset", "old-excl", "old-plain"],
            "{}",
            r.text()
        );
        assert!(r
            .text()
            .contains("switch old-excl: ocf:heartbeat:LVM -> ocf:pgstack:LVM"));
        let note = |id: &str, p: &str| {
            r.notes
                .iter()
                .find(|n| n.resource == id && n.param == p)
                .unwrap_or_else(|| panic!("no note {id} {p} in {}", r.text()))
        };
        // tagging: the bare tag of the reference is an owner pgstack cannot name.
        let t = note("vg-tag", "tag");
        assert_eq!(t.kind, NoteKind::Changed);
        assert!(t.text.contains("\"pgha:<node>\""), "{}", t.text);
        assert!(
            t.text.contains("vgchange --deltag pgha --addtag pgha:"),
            "{}",
            t.text
        );
        assert!(t.text.contains("VG_POSTGRES"), "{}", t.text);
        assert!(note("old-excl", "tag")
            .text
            .contains("bare tag \"pacemaker\""));
        // system_id: the takeover rule.
        let t = note("vg-sid", "vg_access_mode");
        assert_eq!(t.kind, NoteKind::Changed);
        assert!(t.text.contains("online in the cluster"), "{}", t.text);
        // Unset where the defaults differ: LVM-activate requires an access mode, LVM's
        // exclusive defaults to false.
        assert_eq!(note("vg-unset", "vg_access_mode").kind, NoteKind::Default);
        assert_eq!(note("old-plain", "exclusive").kind, NoteKind::Default);
        assert!(note("old-plain", "tag").text.contains("without a mark"));
        // What the agent refuses stays, with its reason.
        let kept = |id: &str| {
            r.kept
                .iter()
                .find(|k| k.resource == id)
                .map(|k| k.why.clone())
                .unwrap_or_else(|| panic!("{id} not kept: {}", r.text()))
        };
        assert!(kept("vg-clvm").contains("clvmd is not supported"));
        assert!(kept("vg-shared").contains("needs vg_access_mode=lvmlockd"));
        assert!(kept("old-shared").contains("always exclusive"));
        assert!(kept("old-bad").contains("volgrpname"));
        assert_eq!(provider_of(&cib, "vg-clvm"), "heartbeat");
        assert_eq!(provider_of(&cib, "old-excl"), "pgstack");
        assert!(cib.to_xml().contains(r#"type="LVM-activate""#));

        // And back, by provider alone.
        let back = migrate(&mut cib, Target::Reference);
        assert_eq!(back.changes.len(), 5, "{}", back.text());
        assert_eq!(provider_of(&cib, "old-excl"), "heartbeat");
        assert_eq!(provider_of(&cib, "vg-tag"), "heartbeat");
    }

    #[test]
    fn own_names_and_own_parameters_stay() {
        let mut cib = parse(
            r#"<resources><primitive id="v" class="ocf" provider="pgstack" type="vip"/>
               <primitive id="w" class="ocf" provider="pgstack" type="IPaddr2">
                 <instance_attributes id="w-ia"><nvpair id="x" name="arp_mode" value="reply"/></instance_attributes>
               </primitive></resources>"#,
        )
        .unwrap();
        let r = migrate(&mut cib, Target::Reference);
        assert!(r.changes.is_empty());
        assert_eq!(r.kept.len(), 2, "{}", r.text());
        assert!(r.kept[0].why.contains("changes the type"));
        assert!(r.kept[1].why.contains("arp_mode"));
    }
}
