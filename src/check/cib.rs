//! What the checks need from a CIB, read leniently: a live cluster's CIB has elements
//! (status, bundles, rules, templates) the strict template model refuses, and a check
//! must read every configuration it is given.

use crate::cib::xml::Element;

use super::CheckError;

use crate::cib::model::{AgentRef, Attrs, Nv};
/// The template model's types: the lenient reader fills the same `Primitive` and `Op`.
pub use crate::cib::model::{Op, Primitive};

#[derive(Debug, Clone, Default)]
pub struct Cib {
    pub properties: Vec<(String, String)>,
    pub nodes: Vec<String>,
    pub primitives: Vec<Primitive>,
    /// (target node, devices) of each fencing level.
    pub levels: Vec<(String, Vec<String>)>,
    pub rsc_defaults: Vec<(String, String)>,
    pub op_defaults: Vec<(String, String)>,
}

impl Cib {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every `nvpair` of the named child sets (rules are not evaluated: each value counts).
fn nvs(e: &Element, set: &str) -> Vec<Nv> {
    e.children_named(set)
        .flat_map(|s| s.children_named("nvpair"))
        .filter_map(|nv| {
            Some(Nv {
                name: nv.attr("name")?.to_string(),
                value: nv.attr("value")?.to_string(),
            })
        })
        .collect()
}

/// [`nvs`] as (name, value) pairs.
fn nvpairs(e: &Element, set: &str) -> Vec<(String, String)> {
    nvs(e, set)
        .into_iter()
        .map(|nv| (nv.name, nv.value))
        .collect()
}

fn primitive(e: &Element) -> Option<Primitive> {
    let ops = e
        .child("operations")
        .map(|o| {
            o.children_named("op")
                .filter_map(|op| {
                    Some(Op {
                        name: op.attr("name")?.to_string(),
                        interval: op.attr("interval").unwrap_or("0").to_string(),
                        timeout: op.attr("timeout").map(str::to_string),
                        role: op.attr("role").map(str::to_string),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Primitive {
        id: e.attr("id")?.to_string(),
        agent: AgentRef {
            class: e.attr("class")?.to_string(),
            provider: e.attr("provider").map(str::to_string),
            kind: e.attr("type")?.to_string(),
        },
        attrs: Attrs {
            params: nvs(e, "instance_attributes"),
            meta: nvs(e, "meta_attributes"),
        },
        ops,
    })
}

/// Reads the configuration part of a `<cib>` document.
pub fn read(text: &str) -> Result<Cib, CheckError> {
    let doc = crate::cib::xml::parse(text).map_err(|e| CheckError::Cib(e.to_string()))?;
    let conf = doc
        .child("configuration")
        .ok_or_else(|| CheckError::Cib("no <configuration> element".into()))?;
    let mut c = Cib::default();
    if let Some(s) = conf.child("crm_config") {
        c.properties = nvpairs(s, "cluster_property_set");
    }
    if let Some(s) = conf.child("nodes") {
        c.nodes = s
            .children_named("node")
            .filter(|n| n.attr("type").is_none_or(|t| t == "member"))
            .filter_map(|n| n.attr("uname").map(str::to_string))
            .collect();
    }
    if let Some(s) = conf.child("resources") {
        c.primitives = s
            .descendants()
            .into_iter()
            .filter(|e| e.name == "primitive")
            .filter_map(primitive)
            .collect();
    }
    if let Some(s) = conf.child("fencing-topology") {
        c.levels = s
            .children_named("fencing-level")
            .filter_map(|l| {
                Some((
                    l.attr("target")?.to_string(),
                    l.attr("devices")?
                        .split(',')
                        .map(|d| d.trim().to_string())
                        .collect(),
                ))
            })
            .collect();
    }
    if let Some(s) = conf.child("rsc_defaults") {
        c.rsc_defaults = nvpairs(s, "meta_attributes");
    }
    if let Some(s) = conf.child("op_defaults") {
        c.op_defaults = nvpairs(s, "meta_attributes");
    }
    Ok(c)
}

/// A Pacemaker duration in milliseconds: `20`, `20s`, `500ms`, `2min`, `1h`, `PT1M30S`.
pub fn duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(iso) = s.strip_prefix("PT").or_else(|| s.strip_prefix("pt")) {
        let mut total = 0u64;
        let mut num = String::new();
        for ch in iso.chars() {
            if ch.is_ascii_digit() {
                num.push(ch);
                continue;
            }
            let n: u64 = num.parse().ok()?;
            num.clear();
            total += n * match ch.to_ascii_uppercase() {
                'H' => 3_600_000,
                'M' => 60_000,
                'S' => 1000,
                _ => return None,
            };
        }
        return num.is_empty().then_some(total);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1000,
        "ms" | "msec" | "msecs" => 1,
        "m" | "min" | "mins" => 60_000,
        "h" | "hr" | "hrs" => 3_600_000,
        "us" | "usec" | "usecs" => return Some(n / 1000),
        _ => return None,
    };
    Some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("20"), Some(20_000));
        assert_eq!(duration_ms("20s"), Some(20_000));
        assert_eq!(duration_ms("500ms"), Some(500));
        assert_eq!(duration_ms("2min"), Some(120_000));
        assert_eq!(duration_ms("1h"), Some(3_600_000));
        assert_eq!(duration_ms("PT1M30S"), Some(90_000));
        assert_eq!(duration_ms("soon"), None);
    }
}
