//! The templates under `cib-templates/`, embedded in the binary, and their strict rendering.
//!
//! A template is a line-oriented file: `#` lines are comments, `@` lines are directives, the
//! rest is XML text. Directives:
//! - `@template NAME`, `@about TEXT`: identity;
//! - `@uses A B`: other templates rendered along (their variables become this one's);
//! - `@part`: a piece used by other templates only, not a configuration of its own;
//! - `@var NAME KIND DEFAULT | DESCRIPTION`: a variable, validated by its kind (`""` is an
//!   empty default; a kind ending in `?` also accepts the empty value);
//! - `@section NAME`: where the following text goes in the CIB (see [`SECTIONS`]);
//! - `@if NAME`, `@if NAME=VALUE`, `@if NAME!=VALUE`, `@else`, `@end`: conditional text
//!   (`@if NAME` is true for a value that is neither empty nor `false`).
//!
//! `${NAME}` in the text is replaced by the value, XML-escaped. A name that is not declared
//! is an error, as is a `--set` of a name no template declares: nothing is ever left
//! unreplaced or silently ignored. The variable `fencing` is not settable: it comes from
//! the renderer's options, so turning fencing off always goes through the explicit flag.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::validate::Kind;
use super::CibError;

/// The sections of the CIB's `configuration`, in the order they are written.
pub const SECTIONS: &[&str] = &[
    "crm_config",
    "nodes",
    "resources",
    "constraints",
    "fencing_topology",
    "rsc_defaults",
    "alerts",
    // Not CIB (plain text, not escaped): the DRBD resource file of the advanced stack and
    // the corosync.conf of the two nodes.
    "drbd",
    "corosync",
];

/// The embedded template files.
const FILES: &[(&str, &str)] = &[
    ("advanced", include_str!("../../cib-templates/advanced.cib")),
    (
        "replication",
        include_str!("../../cib-templates/replication.cib"),
    ),
    ("fencing", include_str!("../../cib-templates/fencing.cib")),
    ("shared", include_str!("../../cib-templates/shared.cib")),
    ("alert", include_str!("../../cib-templates/alert.cib")),
    ("nodes", include_str!("../../cib-templates/nodes.cib")),
];

/// One declared variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var {
    pub name: String,
    pub kind: Kind,
    pub optional: bool,
    pub default: String,
    pub about: String,
}

/// One parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub about: String,
    pub uses: Vec<String>,
    pub part: bool,
    pub vars: Vec<Var>,
    /// Body lines with their section, kept unrendered.
    body: Vec<(String, Line)>,
}

#[derive(Debug, Clone)]
enum Line {
    Text(String),
    If(Cond),
    Else,
    End,
}

#[derive(Debug, Clone)]
enum Cond {
    True(String),
    Eq(String, String),
    Ne(String, String),
}

/// The names of the templates a user can render (the embedded files that are not parts).
pub fn names() -> Vec<&'static str> {
    FILES
        .iter()
        .filter(|(n, _)| load_any(n).map(|t| !t.part).unwrap_or(true))
        .map(|(n, _)| *n)
        .collect()
}

/// The names of every embedded file, parts included.
pub fn all_names() -> Vec<&'static str> {
    FILES.iter().map(|(n, _)| *n).collect()
}

/// Parses the embedded template `name`, refusing parts.
pub fn load(name: &str) -> Result<Template, CibError> {
    let t = load_any(name)?;
    if t.part {
        return Err(CibError::Invalid(format!(
            "{name} is a part of other templates, not a configuration of its own (templates: {})",
            names().join(", ")
        )));
    }
    Ok(t)
}

fn load_any(name: &str) -> Result<Template, CibError> {
    let (_, text) =
        FILES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| CibError::UnknownTemplate {
                name: name.to_string(),
                known: names().join(", "),
            })?;
    parse(name, text)
}

fn bad(file: &str, line: usize, msg: impl Into<String>) -> CibError {
    CibError::Template {
        template: file.to_string(),
        line,
        msg: msg.into(),
    }
}

fn parse(file: &str, text: &str) -> Result<Template, CibError> {
    let mut t = Template {
        name: String::new(),
        about: String::new(),
        uses: Vec::new(),
        part: false,
        vars: Vec::new(),
        body: Vec::new(),
    };
    let mut section: Option<String> = None;
    let mut depth = 0usize;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.starts_with('#') {
            continue;
        }
        let Some(d) = line.strip_prefix('@') else {
            if line.trim().is_empty() {
                continue;
            }
            let Some(s) = &section else {
                return Err(bad(file, n, "text before the first @section"));
            };
            t.body.push((s.clone(), Line::Text(line.to_string())));
            continue;
        };
        let (word, rest) = d.split_once(' ').unwrap_or((d, ""));
        let rest = rest.trim();
        match word {
            "template" => t.name = rest.to_string(),
            "about" => t.about = rest.to_string(),
            "part" => t.part = true,
            "uses" => t.uses = rest.split_whitespace().map(str::to_string).collect(),
            "var" => t.vars.push(parse_var(file, n, rest)?),
            "section" => {
                if depth != 0 {
                    return Err(bad(file, n, "@section inside @if"));
                }
                if !SECTIONS.contains(&rest) {
                    return Err(bad(file, n, format!("unknown section {rest:?}")));
                }
                section = Some(rest.to_string());
            }
            "if" | "else" | "end" => {
                let Some(s) = &section else {
                    return Err(bad(file, n, "@if before the first @section"));
                };
                let l = match word {
                    "if" => {
                        depth += 1;
                        Line::If(if let Some((k, v)) = rest.split_once("!=") {
                            Cond::Ne(k.trim().into(), v.trim().into())
                        } else if let Some((k, v)) = rest.split_once('=') {
                            Cond::Eq(k.trim().into(), v.trim().into())
                        } else {
                            Cond::True(rest.to_string())
                        })
                    }
                    "else" if depth > 0 => Line::Else,
                    "end" if depth > 0 => {
                        depth -= 1;
                        Line::End
                    }
                    _ => return Err(bad(file, n, format!("@{word} without @if"))),
                };
                t.body.push((s.clone(), l));
            }
            _ => return Err(bad(file, n, format!("unknown directive @{word}"))),
        }
    }
    if depth != 0 {
        return Err(bad(file, text.lines().count(), "@if without @end"));
    }
    if t.name != file {
        return Err(bad(
            file,
            1,
            format!("@template {:?} in file {file}", t.name),
        ));
    }
    Ok(t)
}

fn parse_var(file: &str, n: usize, rest: &str) -> Result<Var, CibError> {
    let (decl, about) = rest.split_once('|').unwrap_or((rest, ""));
    let parts: Vec<&str> = decl.split_whitespace().collect();
    let [name, kind, default] = parts[..] else {
        return Err(bad(
            file,
            n,
            "expected @var NAME KIND DEFAULT | DESCRIPTION",
        ));
    };
    let (kind, optional) = match kind.strip_suffix('?') {
        Some(k) => (k, true),
        None => (kind, false),
    };
    let kind = Kind::parse(kind).ok_or_else(|| bad(file, n, format!("unknown kind {kind:?}")))?;
    let default = if default == "\"\"" { "" } else { default };
    Ok(Var {
        name: name.to_string(),
        kind,
        optional,
        default: default.to_string(),
        about: about.trim().to_string(),
    })
}

/// Options of a render that are not variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Stonith devices and `stonith-enabled=true`; off only through an explicit flag.
    pub fencing: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { fencing: true }
    }
}

/// A template with everything it uses, in rendering order (used ones first).
#[derive(Debug, Clone)]
pub struct Bundle {
    pub main: String,
    pub parts: Vec<Template>,
}

impl Bundle {
    pub fn load(name: &str) -> Result<Bundle, CibError> {
        load(name)?;
        let mut parts: Vec<Template> = Vec::new();
        fn add(name: &str, parts: &mut Vec<Template>, depth: usize) -> Result<(), CibError> {
            if depth > 8 {
                return Err(CibError::Invalid(format!("template {name}: @uses loop")));
            }
            if parts.iter().any(|t| t.name == name) {
                return Ok(());
            }
            let t = load_any(name)?;
            for u in t.uses.clone() {
                add(&u, parts, depth + 1)?;
            }
            parts.push(t);
            Ok(())
        }
        add(name, &mut parts, 0)?;
        Ok(Bundle {
            main: name.to_string(),
            parts,
        })
    }

    /// Every variable of the bundle, in declaration order.
    pub fn vars(&self) -> Vec<&Var> {
        self.parts.iter().flat_map(|t| t.vars.iter()).collect()
    }

    /// Checks and completes the values: unknown names are refused, defaults fill the rest,
    /// each value must match its kind, and the cross checks of [`super::validate`] apply.
    pub fn values(
        &self,
        sets: &[(String, String)],
        opts: RenderOptions,
    ) -> Result<BTreeMap<String, String>, CibError> {
        let vars = self.vars();
        let mut values = BTreeMap::new();
        for v in &vars {
            values.insert(v.name.clone(), v.default.clone());
        }
        for (k, val) in sets {
            if k == "fencing" {
                return Err(CibError::Invalid(
                    "fencing cannot be set: use --no-fencing (and read its warning)".into(),
                ));
            }
            if !values.contains_key(k) {
                let known: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
                return Err(CibError::Invalid(format!(
                    "template {} has no variable {k:?} (it has: {})",
                    self.main,
                    known.join(", ")
                )));
            }
            values.insert(k.clone(), val.clone());
        }
        for v in &vars {
            let val = &values[&v.name];
            if val.is_empty() && v.optional {
                continue;
            }
            v.kind
                .check(val)
                .map_err(CibError::bad_value(&v.name, val))?;
        }
        super::validate::cross_check(&values)?;
        values.insert("fencing".into(), opts.fencing.to_string());
        Ok(values)
    }

    /// Renders the bundle into the text of each section.
    pub fn render_sections(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<&'static str, String>, CibError> {
        let mut out: BTreeMap<&'static str, String> = BTreeMap::new();
        for t in &self.parts {
            // A stack of (this branch taken, some branch taken) per open @if.
            let mut stack: Vec<(bool, bool)> = Vec::new();
            for (section, line) in &t.body {
                let live = stack.iter().all(|(on, _)| *on);
                match line {
                    Line::If(c) => {
                        let v = eval(&t.name, c, values)?;
                        stack.push((v, v));
                    }
                    Line::Else => {
                        if let Some(top) = stack.last_mut() {
                            top.0 = !top.1;
                        }
                    }
                    Line::End => {
                        stack.pop();
                    }
                    Line::Text(s) if live => {
                        let key = SECTIONS
                            .iter()
                            .find(|x| **x == section.as_str())
                            .copied()
                            .expect("sections are checked at parse time");
                        let text =
                            substitute(&t.name, s, values, key != "drbd" && key != "corosync")?;
                        let _ = writeln!(out.entry(key).or_default(), "{text}");
                    }
                    Line::Text(_) => {}
                }
            }
        }
        Ok(out)
    }
}

fn lookup<'a>(
    t: &str,
    name: &str,
    values: &'a BTreeMap<String, String>,
) -> Result<&'a str, CibError> {
    values.get(name).map(String::as_str).ok_or_else(|| {
        CibError::Invalid(format!(
            "template {t}: ${{{name}}} is not a declared variable"
        ))
    })
}

fn eval(t: &str, c: &Cond, values: &BTreeMap<String, String>) -> Result<bool, CibError> {
    Ok(match c {
        Cond::True(k) => {
            let v = lookup(t, k, values)?;
            !v.is_empty() && v != "false"
        }
        Cond::Eq(k, want) => lookup(t, k, values)? == want,
        Cond::Ne(k, want) => lookup(t, k, values)? != want,
    })
}

fn substitute(
    t: &str,
    s: &str,
    values: &BTreeMap<String, String>,
    escape: bool,
) -> Result<String, CibError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after
            .find('}')
            .ok_or_else(|| CibError::Invalid(format!("template {t}: unclosed ${{ in {s:?}")))?;
        let name = &after[..j];
        let v = lookup(t, name, values)?;
        if escape {
            out.push_str(&super::xml::escape(v));
        } else {
            out.push_str(v);
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_names_itself() {
        assert_eq!(names(), ["advanced", "replication", "fencing", "shared"]);
        for n in all_names() {
            let t = load_any(n).unwrap();
            assert_eq!(t.name, n);
            assert!(!t.about.is_empty(), "{n} has no @about");
            for v in &t.vars {
                assert!(!v.about.is_empty(), "{n}: {} has no description", v.name);
            }
        }
    }

    #[test]
    fn every_template_renders_with_defaults_and_every_placeholder_is_declared() {
        for n in names() {
            let b = Bundle::load(n).unwrap();
            for fencing in [true, false] {
                let vals = b.values(&[], RenderOptions { fencing }).unwrap();
                let s = b.render_sections(&vals).unwrap();
                for text in s.values() {
                    assert!(!text.contains("${"), "{n}: {text}");
                }
            }
        }
    }

    #[test]
    fn a_variable_is_declared_once_per_bundle() {
        for n in names() {
            let b = Bundle::load(n).unwrap();
            let mut seen = std::collections::BTreeSet::new();
            for v in b.vars() {
                assert!(
                    seen.insert(v.name.clone()),
                    "{n}: {} declared twice",
                    v.name
                );
            }
        }
    }

    #[test]
    fn unknown_and_reserved_names_are_refused() {
        let b = Bundle::load("advanced").unwrap();
        let e = b
            .values(&[("nope".into(), "1".into())], RenderOptions::default())
            .unwrap_err();
        assert!(e.to_string().contains("no variable \"nope\""), "{e}");
        let e = b
            .values(
                &[("fencing".into(), "false".into())],
                RenderOptions::default(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("--no-fencing"), "{e}");
        let e = Bundle::load("alert").unwrap_err();
        assert!(e.to_string().contains("is a part"), "{e}");
    }

    #[test]
    fn undeclared_placeholder_is_an_error() {
        let t = parse(
            "x",
            "@template x\n@about x\n@section resources\n<a b=\"${missing}\"/>\n",
        )
        .unwrap();
        let b = Bundle {
            main: "x".into(),
            parts: vec![t],
        };
        let e = b.render_sections(&BTreeMap::new()).unwrap_err();
        assert!(e.to_string().contains("${missing}"), "{e}");
    }

    #[test]
    fn conditionals_nest_and_else_works() {
        let t = parse(
            "x",
            "@template x\n@about x\n@var a bool true | a\n@var b word one | b\n@section resources\n\
             @if a\n@if b=two\nA2\n@else\nA1\n@end\n@else\nNA\n@end\nALL\n",
        )
        .unwrap();
        let b = Bundle {
            main: "x".into(),
            parts: vec![t],
        };
        let v = b.values(&[], RenderOptions::default()).unwrap();
        assert_eq!(b.render_sections(&v).unwrap()["resources"], "A1\nALL\n");
        let v = b
            .values(&[("a".into(), "false".into())], RenderOptions::default())
            .unwrap();
        assert_eq!(b.render_sections(&v).unwrap()["resources"], "NA\nALL\n");
    }

    #[test]
    fn values_are_xml_escaped() {
        let mut v = BTreeMap::new();
        v.insert("a".to_string(), "x\"<&".to_string());
        assert_eq!(
            substitute("t", "v=\"${a}\"", &v, true).unwrap(),
            "v=\"x&quot;&lt;&amp;\""
        );
    }
}
