//! The part of a CIB configuration the templates use, as typed data read back from the
//! rendered XML: the crm and pcs scripts are written from it, so all three formats come
//! from the same rendered text. An element outside this subset is an error, never dropped.

use super::xml::Element;
use super::CibError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nv {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub name: String,
    pub interval: String,
    pub timeout: Option<String>,
    pub role: Option<String>,
}

/// The instance attributes (`params`) and meta attributes of a primitive or an alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub params: Vec<Nv>,
    pub meta: Vec<Nv>,
}

/// The resource agent a primitive runs: `class:provider:type` (`class:type` without a
/// provider).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRef {
    pub class: String,
    pub provider: Option<String>,
    pub kind: String,
}

impl std::fmt::Display for AgentRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.provider {
            Some(p) => write!(f, "{}:{p}:{}", self.class, self.kind),
            None => write!(f, "{}:{}", self.class, self.kind),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primitive {
    pub id: String,
    pub agent: AgentRef,
    pub attrs: Attrs,
    pub ops: Vec<Op>,
}

impl Primitive {
    /// The value of the instance attribute `name`, the first one given.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.attrs
            .params
            .iter()
            .find(|nv| nv.name == name)
            .map(|nv| nv.value.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Primitive(Primitive),
    Group {
        id: String,
        members: Vec<Primitive>,
        meta: Vec<Nv>,
    },
    Clone {
        id: String,
        child: Box<Resource>,
        meta: Vec<Nv>,
    },
}

impl Resource {
    pub fn id(&self) -> &str {
        match self {
            Resource::Primitive(p) => &p.id,
            Resource::Group { id, .. } | Resource::Clone { id, .. } => id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    Location {
        id: String,
        rsc: String,
        node: String,
        score: String,
    },
    Colocation {
        id: String,
        rsc: String,
        rsc_role: Option<String>,
        with_rsc: String,
        with_rsc_role: Option<String>,
        score: String,
    },
    Order {
        id: String,
        first: String,
        first_action: String,
        then: String,
        then_action: String,
        kind: String,
        symmetrical: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    pub target: String,
    pub index: String,
    pub devices: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: String,
    pub path: String,
    pub attrs: Attrs,
    pub recipients: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub properties: Vec<Nv>,
    /// (id, uname)
    pub nodes: Vec<(String, String)>,
    pub resources: Vec<Resource>,
    pub constraints: Vec<Constraint>,
    pub levels: Vec<Level>,
    pub rsc_defaults: Vec<Nv>,
    pub alerts: Vec<Alert>,
}

fn unsupported(what: &str) -> CibError {
    CibError::Invalid(format!(
        "{what} is outside what pgstack writes as crm/pcs scripts"
    ))
}

fn req(e: &Element, k: &str) -> Result<String, CibError> {
    e.attr(k)
        .map(str::to_string)
        .ok_or_else(|| CibError::Invalid(format!("<{}> without {k}", e.name)))
}

fn nvs(set: &Element) -> Result<Vec<Nv>, CibError> {
    set.children
        .iter()
        .map(|nv| {
            if nv.name != "nvpair" {
                return Err(unsupported(&format!("<{}> in <{}>", nv.name, set.name)));
            }
            Ok(Nv {
                name: req(nv, "name")?,
                value: req(nv, "value")?,
            })
        })
        .collect()
}

fn attrs(e: &Element) -> Result<Attrs, CibError> {
    Ok(Attrs {
        params: sets(e, "instance_attributes")?,
        meta: sets(e, "meta_attributes")?,
    })
}

fn sets(e: &Element, name: &str) -> Result<Vec<Nv>, CibError> {
    let mut out = Vec::new();
    for s in e.children_named(name) {
        out.extend(nvs(s)?);
    }
    Ok(out)
}

fn primitive(e: &Element) -> Result<Primitive, CibError> {
    for c in &e.children {
        if !["instance_attributes", "meta_attributes", "operations"].contains(&c.name.as_str()) {
            return Err(unsupported(&format!("<{}> in primitive", c.name)));
        }
    }
    let mut ops = Vec::new();
    if let Some(o) = e.child("operations") {
        for op in &o.children {
            if op.name != "op" || !op.children.is_empty() {
                return Err(unsupported("an operation with attributes"));
            }
            ops.push(Op {
                name: req(op, "name")?,
                interval: req(op, "interval")?,
                timeout: op.attr("timeout").map(str::to_string),
                role: op.attr("role").map(str::to_string),
            });
        }
    }
    Ok(Primitive {
        id: req(e, "id")?,
        agent: AgentRef {
            class: req(e, "class")?,
            provider: e.attr("provider").map(str::to_string),
            kind: req(e, "type")?,
        },
        attrs: attrs(e)?,
        ops,
    })
}

fn resource(e: &Element) -> Result<Resource, CibError> {
    Ok(match e.name.as_str() {
        "primitive" => Resource::Primitive(primitive(e)?),
        "group" => Resource::Group {
            id: req(e, "id")?,
            members: e
                .children_named("primitive")
                .map(primitive)
                .collect::<Result<_, _>>()?,
            meta: sets(e, "meta_attributes")?,
        },
        "clone" => {
            let child = e
                .children
                .iter()
                .find(|c| c.name == "primitive" || c.name == "group")
                .ok_or_else(|| CibError::Invalid("a clone without a child".into()))?;
            Resource::Clone {
                id: req(e, "id")?,
                child: Box::new(resource(child)?),
                meta: sets(e, "meta_attributes")?,
            }
        }
        other => return Err(unsupported(&format!("<{other}>"))),
    })
}

fn constraint(e: &Element) -> Result<Constraint, CibError> {
    let opt = |k: &str| e.attr(k).map(str::to_string);
    Ok(match e.name.as_str() {
        "rsc_location" => Constraint::Location {
            id: req(e, "id")?,
            rsc: req(e, "rsc")?,
            node: req(e, "node")?,
            score: req(e, "score")?,
        },
        "rsc_colocation" => Constraint::Colocation {
            id: req(e, "id")?,
            rsc: req(e, "rsc")?,
            rsc_role: opt("rsc-role"),
            with_rsc: req(e, "with-rsc")?,
            with_rsc_role: opt("with-rsc-role"),
            score: req(e, "score")?,
        },
        "rsc_order" => Constraint::Order {
            id: req(e, "id")?,
            first: req(e, "first")?,
            first_action: opt("first-action").unwrap_or_else(|| "start".into()),
            then: req(e, "then")?,
            then_action: opt("then-action").unwrap_or_else(|| "start".into()),
            kind: opt("kind").unwrap_or_else(|| "Mandatory".into()),
            symmetrical: opt("symmetrical"),
        },
        other => return Err(unsupported(&format!("<{other}>"))),
    })
}

/// `read` of every child of `sec`, in order; the first error stops.
fn each<T>(
    sec: &Element,
    read: impl Fn(&Element) -> Result<T, CibError>,
) -> Result<Vec<T>, CibError> {
    sec.children.iter().map(read).collect()
}

/// Reads the configuration of a `<cib>` document.
pub fn from_cib(cib: &Element) -> Result<Config, CibError> {
    let conf = cib
        .child("configuration")
        .ok_or_else(|| CibError::Invalid("no <configuration> in the CIB".into()))?;
    let mut c = Config::default();
    for sec in &conf.children {
        match sec.name.as_str() {
            "crm_config" => c.properties = sets(sec, "cluster_property_set")?,
            "nodes" => c
                .nodes
                .extend(each(sec, |n| Ok((req(n, "id")?, req(n, "uname")?)))?),
            "resources" => c.resources = each(sec, resource)?,
            "constraints" => c.constraints = each(sec, constraint)?,
            "fencing-topology" => c.levels.extend(each(sec, |l| {
                Ok(Level {
                    target: req(l, "target")?,
                    index: req(l, "index")?,
                    devices: req(l, "devices")?,
                })
            })?),
            "rsc_defaults" => c.rsc_defaults = sets(sec, "meta_attributes")?,
            "alerts" => c.alerts.extend(each(sec, |a| {
                Ok(Alert {
                    id: req(a, "id")?,
                    path: req(a, "path")?,
                    attrs: attrs(a)?,
                    recipients: a
                        .children_named("recipient")
                        .map(|r| Ok((req(r, "id")?, req(r, "value")?)))
                        .collect::<Result<_, CibError>>()?,
                })
            })?),
            other => return Err(unsupported(&format!("section <{other}>"))),
        }
    }
    Ok(c)
}
