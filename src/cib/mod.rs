//! CIB templates and the offline checks around them.
//!
//! - [`template`]: the embedded `cib-templates/*.cib` files and their strict rendering;
//! - [`validate`]: what a value of each kind may be;
//! - [`render`]: a complete `<cib>` document, and the crm/pcs scripts ([`script`]) written
//!   from the same rendered XML read back ([`model`], [`xml`]);
//! - [`scenario`]: `crm_verify` and `crm_simulate` runs on a copy of a CIB file (never a
//!   live cluster), with the ordered action list of each scenario;
//! - [`migrate`]: move a resource and always clear the constraint afterwards;
//! - [`migrate_cib`]: switch resources between the reference agents and pgstack by provider;
//! - [`alert`]: the alert agent's event, message and delivery.
//!
//! Errors are [`CibError`]; the OS work (Pacemaker's tools, sendmail, files) is in
//! `sys::pacemaker`.

pub mod agents;
pub mod alert;
pub mod migrate;
pub mod migrate_cib;
pub mod model;
pub mod scenario;
pub mod script;
pub mod template;
pub mod validate;
pub mod xml;

use std::collections::BTreeMap;

use crate::sys::SysError;
pub use template::RenderOptions;

/// The feature set written on `<cib>`: the one of Pacemaker 2.1.5. A higher one makes
/// crm_simulate abort; none at all breaks `pcs -f`.
pub const FEATURE_SET: &str = "3.16.1";
/// The schema the rendered CIB validates against (Promoted/Unpromoted roles need 3.7+).
pub const SCHEMA: &str = "pacemaker-3.9";

#[derive(Debug, thiserror::Error)]
pub enum CibError {
    #[error("unknown template {name:?} (templates: {known})")]
    UnknownTemplate { name: String, known: String },
    #[error("template {template}, line {line}: {msg}")]
    Template {
        template: String,
        line: usize,
        msg: String,
    },
    #[error("{name}={value:?} refused: {why}")]
    BadValue {
        name: String,
        value: String,
        why: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Xml(#[from] xml::XmlError),
    #[error(transparent)]
    Sys(#[from] SysError),
}

impl CibError {
    /// For `map_err`: the refusal of `value` given as `name`, for the reason passed in.
    pub fn bad_value(name: &str, value: &str) -> impl FnOnce(String) -> CibError {
        let (name, value) = (name.to_string(), value.to_string());
        move |why| CibError::BadValue { name, value, why }
    }
}

/// Output formats of `pgstack cib render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xml,
    Crm,
    Pcs,
    /// The DRBD resource file (advanced stack).
    Drbd,
    /// corosync.conf of the two nodes.
    Corosync,
}

/// A rendered template.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub template: String,
    pub values: BTreeMap<String, String>,
    pub xml: String,
    pub config: model::Config,
    /// The DRBD resource file, for templates that have one.
    pub drbd: Option<String>,
    pub corosync: Option<String>,
}

impl Rendered {
    /// A one-line origin for the scripts' headers.
    pub fn origin(&self) -> String {
        format!(
            "Written by pgstack {} from the template {:?}",
            env!("CARGO_PKG_VERSION"),
            self.template
        )
    }

    pub fn format(&self, f: Format) -> Result<String, CibError> {
        Ok(match f {
            Format::Xml => self.xml.clone(),
            Format::Crm => script::crm(&self.config, &self.origin()),
            Format::Pcs => script::pcs(&self.config, &self.origin()),
            Format::Drbd | Format::Corosync => {
                let (body, what) = match f {
                    Format::Drbd => (&self.drbd, "DRBD resource file"),
                    _ => (&self.corosync, "corosync.conf"),
                };
                let body = body.as_ref().ok_or_else(|| {
                    CibError::Invalid(format!("the template {:?} has no {what}", self.template))
                })?;
                format!("# {}.\n{body}", self.origin())
            }
        })
    }
}

fn wrap(tag: &str, id: Option<&str>, body: &str, indent: &str) -> String {
    let open = match id {
        Some(i) => format!("{indent}<{tag} id=\"{i}\">\n"),
        None => format!("{indent}<{tag}>\n"),
    };
    format!("{open}{body}{indent}</{tag}>\n")
}

/// Renders `template` with `sets` (name, value) into a complete CIB document.
pub fn render(
    template: &str,
    sets: &[(String, String)],
    opts: RenderOptions,
) -> Result<Rendered, CibError> {
    let bundle = template::Bundle::load(template)?;
    let values = bundle.values(sets, opts)?;
    let sections = bundle.render_sections(&values)?;
    let get = |k: &str| sections.get(k).cloned().unwrap_or_default();
    let mut conf = String::new();
    let props = get("crm_config");
    conf.push_str(&if props.is_empty() {
        "    <crm_config/>\n".to_string()
    } else {
        wrap(
            "crm_config",
            None,
            &wrap(
                "cluster_property_set",
                Some("cib-bootstrap-options"),
                &props,
                "      ",
            ),
            "    ",
        )
    });
    for (key, tag) in [
        ("nodes", "nodes"),
        ("resources", "resources"),
        ("constraints", "constraints"),
    ] {
        let body = get(key);
        conf.push_str(&if body.is_empty() {
            format!("    <{tag}/>\n")
        } else {
            wrap(tag, None, &body, "    ")
        });
    }
    let levels = get("fencing_topology");
    if !levels.is_empty() {
        conf.push_str(&wrap("fencing-topology", None, &levels, "    "));
    }
    let defaults = get("rsc_defaults");
    if !defaults.is_empty() {
        conf.push_str(&wrap(
            "rsc_defaults",
            None,
            &wrap("meta_attributes", Some("rsc-options"), &defaults, "      "),
            "    ",
        ));
    }
    let alerts = get("alerts");
    if !alerts.is_empty() {
        conf.push_str(&wrap("alerts", None, &alerts, "    "));
    }
    let xml = format!(
        "<?xml version=\"1.0\"?>\n\
         <!-- Written by pgstack {} from the template \"{template}\".\n     \
         Check it with: pgstack cib verify FILE. How to apply it: docs/cib.md. -->\n\
         <cib crm_feature_set=\"{FEATURE_SET}\" validate-with=\"{SCHEMA}\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\">\n  \
         <configuration>\n{conf}  </configuration>\n  <status/>\n</cib>\n",
        env!("CARGO_PKG_VERSION"),
    );
    let doc = xml::parse(&xml)?;
    let config = model::from_cib(&doc)?;
    Ok(Rendered {
        template: template.to_string(),
        values,
        xml,
        config,
        drbd: sections.get("drbd").cloned(),
        corosync: sections.get("corosync").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_to_a_model() {
        for n in template::names() {
            for fencing in [true, false] {
                let r = render(n, &[], RenderOptions { fencing }).unwrap();
                assert!(r.xml.contains("crm_feature_set=\"3.16.1\""));
                let stonith = r.config.resources.iter().any(
                    |x| matches!(x, model::Resource::Primitive(p) if p.agent.class == "stonith"),
                );
                let uses_fencing = template::Bundle::load(n)
                    .unwrap()
                    .parts
                    .iter()
                    .any(|t| t.name == "fencing" || t.name == "shared");
                assert_eq!(stonith, fencing && uses_fencing, "{n}");
            }
        }
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = render(
            "advanced",
            &[("vip".into(), "192.168.56.300".into())],
            RenderOptions::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("vip=\"192.168.56.300\" refused"),
            "{e}"
        );
    }
}
