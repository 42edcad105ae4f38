//! crm shell and pcs command scripts equivalent to a rendered configuration.
//!
//! The crm script is for `crm -f FILE` (one `configure` transaction ending in `commit`);
//! the pcs script is a POSIX sh script applying `pcs -f CIB_FILE` commands to a CIB file
//! (`pcs cluster cib FILE`, the script, `pcs cluster cib-push FILE --config`). Neither
//! script creates anything the XML does not contain.

use std::fmt::Write as _;

use super::model::{Alert, Config, Constraint, Nv, Op, Primitive, Resource};

fn safe(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.,=:+-/@%".contains(c))
}

/// crmsh reads its lines with shell-like splitting: double quotes around unusual values.
fn crm_q(v: &str) -> String {
    if safe(v) {
        v.to_string()
    } else {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// POSIX sh single quotes.
fn sh_q(v: &str) -> String {
    if safe(v) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

fn pairs(nvs: &[Nv], q: fn(&str) -> String) -> String {
    nvs.iter()
        .map(|nv| format!("{}={}", nv.name, q(&nv.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// ` \<newline><tab>WORD name=value ...` (`word` with its space) when there are pairs.
fn continued(o: &mut String, word: &str, nvs: &[Nv], q: fn(&str) -> String) {
    if !nvs.is_empty() {
        let _ = write!(o, " \\\n\t{word}{}", pairs(nvs, q));
    }
}

/// The cluster properties and the resource defaults, each as one command line after
/// its `heads` entry (when there are any).
fn options(o: &mut String, c: &Config, heads: [&str; 2], q: fn(&str) -> String) {
    for (head, list) in heads.into_iter().zip([&c.properties, &c.rsc_defaults]) {
        if !list.is_empty() {
            let _ = writeln!(o, "{head} {}", pairs(list, q));
        }
    }
}

fn op_words(op: &Op, q: fn(&str) -> String) -> String {
    let mut s = format!("op {} interval={}", op.name, q(&op.interval));
    if let Some(r) = &op.role {
        let _ = write!(s, " role={}", q(r));
    }
    if let Some(t) = &op.timeout {
        let _ = write!(s, " timeout={}", q(t));
    }
    s
}

fn crm_score(s: &str) -> String {
    match s {
        "INFINITY" | "+INFINITY" => "inf".into(),
        "-INFINITY" => "-inf".into(),
        other => other.to_string(),
    }
}

fn crm_primitive(out: &mut String, p: &Primitive) {
    let _ = write!(out, "primitive {} {}", p.id, p.agent);
    continued(out, "params ", &p.attrs.params, crm_q);
    continued(out, "meta ", &p.attrs.meta, crm_q);
    for op in &p.ops {
        let _ = write!(out, " \\\n\t{}", op_words(op, crm_q));
    }
    out.push('\n');
}

fn crm_resource(out: &mut String, r: &Resource) {
    match r {
        Resource::Primitive(p) => crm_primitive(out, p),
        Resource::Group { id, members, meta } => {
            for m in members {
                crm_primitive(out, m);
            }
            let names: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
            let _ = write!(out, "group {id} {}", names.join(" "));
            continued(out, "meta ", meta, crm_q);
            out.push('\n');
        }
        Resource::Clone { id, child, meta } => {
            crm_resource(out, child);
            let _ = write!(out, "clone {id} {}", child.id());
            continued(out, "meta ", meta, crm_q);
            out.push('\n');
        }
    }
}

fn with_role(rsc: &str, role: &Option<String>) -> String {
    match role {
        Some(r) => format!("{rsc}:{r}"),
        None => rsc.to_string(),
    }
}

/// The language of a script.
#[derive(Clone, Copy)]
enum Shell {
    Crm,
    Pcs,
}

/// One constraint as a line of a `shell` script: the two read the same fields and differ
/// only in their words.
fn constraint_line(k: &Constraint, shell: Shell) -> String {
    match k {
        Constraint::Location {
            id,
            rsc,
            node,
            score,
        } => match shell {
            Shell::Crm => format!("location {id} {rsc} {}: {node}", crm_score(score)),
            Shell::Pcs => {
                format!("pcs -f \"$CIB\" constraint location add -- {id} {rsc} {node} {score}")
            }
        },
        Constraint::Colocation {
            id,
            rsc,
            rsc_role,
            with_rsc,
            with_rsc_role,
            score,
        } => match shell {
            Shell::Crm => format!(
                "colocation {id} {}: {} {}",
                crm_score(score),
                with_role(rsc, rsc_role),
                with_role(with_rsc, with_rsc_role)
            ),
            Shell::Pcs => {
                let role =
                    |r: &Option<String>| r.clone().map(|r| format!("{r} ")).unwrap_or_default();
                format!(
                    "pcs -f \"$CIB\" constraint colocation add {}{rsc} with {}{with_rsc} {score} id={id}",
                    role(rsc_role),
                    role(with_rsc_role)
                )
            }
        },
        Constraint::Order {
            id,
            first,
            first_action,
            then,
            then_action,
            kind,
            symmetrical,
        } => {
            let sym = symmetrical
                .as_ref()
                .map(|s| format!(" symmetrical={s}"))
                .unwrap_or_default();
            match shell {
                Shell::Crm => format!(
                    "order {id} {kind}: {first}:{first_action} {then}:{then_action}{sym}"
                ),
                Shell::Pcs => format!(
                    "pcs -f \"$CIB\" constraint order {first_action} {first} then {then_action} {then} kind={kind}{sym} id={id}"
                ),
            }
        }
    }
}

fn crm_alert(out: &mut String, a: &Alert) {
    let _ = write!(out, "alert {} {}", a.id, crm_q(&a.path));
    continued(out, "attributes ", &a.attrs.params, crm_q);
    continued(out, "meta ", &a.attrs.meta, crm_q);
    for (_, value) in &a.recipients {
        let _ = write!(out, " \\\n\tto {}", crm_q(value));
    }
    out.push('\n');
}

/// The crm shell script (`crm -f FILE`).
pub fn crm(c: &Config, header: &str) -> String {
    let mut o = String::new();
    for l in header.lines() {
        let _ = writeln!(o, "# {l}");
    }
    o.push_str("# Apply with: crm -f THIS_FILE (one transaction: nothing changes before commit)\n");
    o.push_str("configure\n");
    for (id, uname) in &c.nodes {
        let _ = writeln!(o, "node {id}: {uname}");
    }
    options(
        &mut o,
        c,
        [
            "property cib-bootstrap-options:",
            "rsc_defaults rsc-options:",
        ],
        crm_q,
    );
    for r in &c.resources {
        crm_resource(&mut o, r);
    }
    for k in &c.constraints {
        let _ = writeln!(o, "{}", constraint_line(k, Shell::Crm));
    }
    if !c.levels.is_empty() {
        // crmsh takes the levels in order of appearance per target: sort by index.
        let mut levels = c.levels.clone();
        levels.sort_by_key(|l| l.index.parse::<u32>().unwrap_or(u32::MAX));
        let words: Vec<String> = levels
            .iter()
            .map(|l| format!("{}: {}", l.target, l.devices))
            .collect();
        let _ = writeln!(o, "fencing_topology {}", words.join(" "));
    }
    for a in &c.alerts {
        crm_alert(&mut o, a);
    }
    o.push_str("commit\n");
    o
}

fn pcs_create(
    o: &mut String,
    p: &Primitive,
    group: Option<&str>,
    clone: Option<(&str, &str, &[Nv])>,
) {
    if p.agent.class == "stonith" {
        let _ = write!(
            o,
            "pcs -f \"$CIB\" stonith create {} {}",
            p.id, p.agent.kind
        );
    } else {
        let _ = write!(o, "pcs -f \"$CIB\" resource create {} {}", p.id, p.agent);
    }
    continued(o, "", &p.attrs.params, sh_q);
    continued(o, "meta ", &p.attrs.meta, sh_q);
    for op in &p.ops {
        let _ = write!(o, " \\\n\t{}", op_words(op, sh_q));
    }
    if let Some(g) = group {
        let _ = write!(o, " \\\n\t--group {g}");
    }
    if let Some((verb, id, opts)) = clone {
        let _ = write!(o, " \\\n\t{verb} {id} {}", pairs(opts, sh_q));
    }
    o.push_str(" \\\n\t--no-default-ops $FORCE\n");
}

/// The pcs script: `sh THIS_FILE CIB_FILE`.
pub fn pcs(c: &Config, header: &str) -> String {
    let mut o = String::new();
    o.push_str("#!/bin/sh\n");
    for l in header.lines() {
        let _ = writeln!(o, "# {l}");
    }
    o.push_str(
        "# Applies the configuration to a CIB file with pcs -f:\n\
         #   pcs cluster cib FILE && sh THIS_SCRIPT FILE && pcs cluster cib-push FILE --config\n\
         # FORCE=--force creates resources whose agents are not installed on this host yet.\n\
         # The nodes are not created: a pcs cluster has them from corosync.\n\
         set -eu\n\
         CIB=\"${1:?usage: $0 CIB_FILE}\"\n\
         FORCE=\"${FORCE:-}\"\n\
         case \"$FORCE\" in \"\"|--force) ;; *) echo \"FORCE must be empty or --force\" >&2; exit 2;; esac\n",
    );
    options(
        &mut o,
        c,
        [
            "pcs -f \"$CIB\" property set",
            "pcs -f \"$CIB\" resource defaults update",
        ],
        sh_q,
    );
    for r in &c.resources {
        match r {
            Resource::Primitive(p) => pcs_create(&mut o, p, None, None),
            Resource::Group { id, members, meta } => {
                for m in members {
                    pcs_create(&mut o, m, Some(id), None);
                }
                if !meta.is_empty() {
                    let _ = writeln!(
                        o,
                        "pcs -f \"$CIB\" resource meta {id} {}",
                        pairs(meta, sh_q)
                    );
                }
            }
            Resource::Clone { id, child, meta } => {
                // `promotable` adds promotable=true itself and refuses it twice.
                let promotable = meta
                    .iter()
                    .any(|nv| nv.name == "promotable" && nv.value == "true");
                let rest: Vec<Nv> = meta
                    .iter()
                    .filter(|nv| !(promotable && nv.name == "promotable"))
                    .cloned()
                    .collect();
                let verb = if promotable { "promotable" } else { "clone" };
                match child.as_ref() {
                    // Created as a clone at once: `pcs resource promotable` on an existing
                    // primitive reads the agent's meta-data again and ignores --force.
                    Resource::Primitive(p) => {
                        pcs_create(&mut o, p, None, Some((verb, id, &rest)));
                    }
                    Resource::Group { id: g, members, .. } => {
                        for m in members {
                            pcs_create(&mut o, m, Some(g), None);
                        }
                        let _ = writeln!(
                            o,
                            "pcs -f \"$CIB\" resource {verb} {g} {id} {} $FORCE",
                            pairs(&rest, sh_q)
                        );
                    }
                    Resource::Clone { .. } => {}
                }
            }
        }
    }
    for k in &c.constraints {
        let _ = writeln!(o, "{}", constraint_line(k, Shell::Pcs));
    }
    for l in &c.levels {
        let devices = l.devices.replace(',', " ");
        let _ = writeln!(
            o,
            "pcs -f \"$CIB\" stonith level add {} {} {devices}",
            l.index, l.target
        );
    }
    for a in &c.alerts {
        let _ = write!(
            o,
            "pcs -f \"$CIB\" alert create path={} id={}",
            sh_q(&a.path),
            a.id
        );
        if !a.attrs.params.is_empty() {
            let _ = write!(o, " options {}", pairs(&a.attrs.params, sh_q));
        }
        if !a.attrs.meta.is_empty() {
            let _ = write!(o, " meta {}", pairs(&a.attrs.meta, sh_q));
        }
        o.push('\n');
        for (rid, value) in &a.recipients {
            let _ = writeln!(
                o,
                "pcs -f \"$CIB\" alert recipient add {} value={} id={rid}",
                a.id,
                sh_q(value)
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(crm_q("pg1 pg2"), "\"pg1 pg2\"");
        assert_eq!(crm_q("a\"b"), "\"a\\\"b\"");
        assert_eq!(sh_q("%Y %H"), "'%Y %H'");
        assert_eq!(sh_q("it's"), "'it'\\''s'");
        assert_eq!(sh_q("/db/pgdata"), "/db/pgdata");
    }
}
