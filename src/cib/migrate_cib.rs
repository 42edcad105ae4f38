//! `pgstack migrate-cib`: switch a configuration's resources between the reference agents
//! and pgstack's, by provider alone.
//!
//! pgstack installs each agent also under the reference agent's type name (`IPaddr2`,
//! `Filesystem`, `pgsql`, `pgsqlms`; `drbd` is the same name), so a switch changes only
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
                match to_pgstack(id, info, ref_params, &set, is_promotable(up.last().copied())) {
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
