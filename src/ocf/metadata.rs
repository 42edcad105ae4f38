//! What an agent says about itself: meta-data XML (OCF 1.0 DTD), a reference page in
//! Markdown and a man page, all rendered from the same declaration.

use std::fmt::Write;

use super::action::Action;
use super::params::ParamSpec;

#[derive(Debug, Clone, Copy)]
pub struct ActionSpec {
    pub action: Action,
    /// Default timeout in seconds.
    pub timeout: u32,
    pub interval: Option<u32>,
    pub depth: Option<u32>,
    pub role: Option<&'static str>,
}

impl ActionSpec {
    pub const fn new(action: Action, timeout: u32) -> ActionSpec {
        ActionSpec {
            action,
            timeout,
            interval: None,
            depth: None,
            role: None,
        }
    }
    pub const fn interval(mut self, s: u32) -> ActionSpec {
        self.interval = Some(s);
        self
    }
    pub const fn depth(mut self, d: u32) -> ActionSpec {
        self.depth = Some(d);
        self
    }
    pub const fn role(mut self, r: &'static str) -> ActionSpec {
        self.role = Some(r);
        self
    }

    /// The attributes set, in the meta-data's order, as the three renderings show them.
    fn attrs(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![("timeout", format!("{}s", self.timeout))];
        v.extend(self.interval.map(|i| ("interval", format!("{i}s"))));
        v.extend(self.depth.map(|d| ("depth", d.to_string())));
        v.extend(self.role.map(|r| ("role", r.to_string())));
        v
    }

    fn attr(&self, name: &str) -> String {
        let attrs = self.attrs();
        let found = attrs.into_iter().find(|(n, _)| *n == name);
        found.map(|(_, v)| v).unwrap_or_default()
    }
}

#[derive(Debug)]
pub struct AgentInfo {
    pub name: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub params: &'static [ParamSpec],
    pub actions: &'static [ActionSpec],
    /// The agent acts on what only root may (addresses, mounts, devices, another user's
    /// server): the dispatcher answers 4 to every action but meta-data and usage when it
    /// runs without root, after the parameter check for validate-all.
    pub needs_root: bool,
}

impl AgentInfo {
    pub fn advertises(&self, a: Action) -> bool {
        self.actions.iter().any(|s| s.action == a)
    }

    /// The default timeout advertised for `a` (20 s when it is not advertised).
    pub fn default_timeout(&self, a: Action) -> u32 {
        self.actions
            .iter()
            .find(|s| s.action == a)
            .map(|s| s.timeout)
            .unwrap_or(20)
    }

    pub fn usage(&self) -> String {
        let names: Vec<&str> = self.actions.iter().map(|a| a.action.name()).collect();
        let mut uniq = names.clone();
        uniq.dedup();
        format!("usage: {} {{{}}}\n", self.name, uniq.join("|"))
    }

    /// Whether the agent uses OCF 1.1's `reload-agent` (and `reloadable` parameters).
    /// Pacemaker honours them only from meta-data of version 1.1 or later, and then no
    /// longer turns a parameter change into the legacy `reload`.
    pub fn ocf_1_1(&self) -> bool {
        self.advertises(Action::ReloadAgent) || self.params.iter().any(|p| p.reloadable)
    }

    pub fn to_xml(&self) -> String {
        let mut x = String::new();
        let v11 = self.ocf_1_1();
        x.push_str("<?xml version=\"1.0\"?>\n");
        if v11 {
            // The OCF 1.0 DTD (ra-api-1.dtd, which ocf-tester validates against) knows
            // neither; the internal subset, read first, declares the two OCF 1.1 additions.
            x.push_str(
                "<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\" [\n\
                 <!ATTLIST parameter reloadable (1|0) \"0\">\n\
                 <!ATTLIST action name CDATA #REQUIRED>\n\
                 ]>\n",
            );
        } else {
            x.push_str("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n");
        }
        let _ = writeln!(
            x,
            "<resource-agent name=\"{}\" version=\"{}\">",
            esc(self.name),
            env!("CARGO_PKG_VERSION")
        );
        x.push_str(if v11 {
            "<version>1.1</version>\n"
        } else {
            "<version>1.0</version>\n"
        });
        let _ = writeln!(
            x,
            "<longdesc lang=\"en\">\n{}\n</longdesc>",
            esc(self.longdesc.trim())
        );
        let _ = writeln!(
            x,
            "<shortdesc lang=\"en\">{}</shortdesc>",
            esc(self.shortdesc)
        );
        x.push_str("<parameters>\n");
        // Every parameter is declared, the refused and ignored ones of the reference
        // agent included: crm and pcs check a configuration's names against this list.
        for p in self.params {
            let _ = write!(
                x,
                "<parameter name=\"{}\" unique=\"{}\" required=\"{}\"",
                esc(p.name),
                p.unique as u8,
                p.required as u8
            );
            x.push_str(if p.reloadable {
                " reloadable=\"1\">\n"
            } else {
                ">\n"
            });
            let _ = writeln!(
                x,
                "<longdesc lang=\"en\">\n{}\n</longdesc>",
                esc(p.long_text().trim())
            );
            let _ = writeln!(
                x,
                "<shortdesc lang=\"en\">{}</shortdesc>",
                esc(p.short_text())
            );
            match p.default {
                Some(d) => {
                    let _ = writeln!(
                        x,
                        "<content type=\"{}\" default=\"{}\" />",
                        p.ty.name(),
                        esc(d)
                    );
                }
                None => {
                    let _ = writeln!(x, "<content type=\"{}\" />", p.ty.name());
                }
            }
            x.push_str("</parameter>\n");
        }
        x.push_str("</parameters>\n<actions>\n");
        for a in self.actions {
            let _ = write!(x, "<action name=\"{}\"", a.action.name());
            for (n, v) in a.attrs() {
                let _ = write!(x, " {n}=\"{v}\"");
            }
            x.push_str(" />\n");
        }
        x.push_str("</actions>\n</resource-agent>\n");
        x
    }

    pub fn to_markdown(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(m, "# ocf:pgstack:{}\n", self.name);
        let _ = writeln!(m, "{}\n", self.shortdesc);
        let _ = writeln!(m, "{}\n", self.longdesc.trim());
        m.push_str("## Parameters\n\n| name | type | default | required | unique | description |\n|---|---|---|---|---|---|\n");
        for p in self.params.iter().filter(|p| !p.is_refused()) {
            let _ = writeln!(
                m,
                "| `{}` | {} | {} | {} | {} | {} |",
                p.name,
                p.ty.name(),
                p.default.map(|d| format!("`{d}`")).unwrap_or_default(),
                if p.required { "yes" } else { "" },
                if p.unique { "yes" } else { "" },
                one_line(p.longdesc)
            );
        }
        let refused: Vec<_> = self
            .params
            .iter()
            .filter_map(|p| p.refused.map(|r| (p.name, r)))
            .collect();
        if !refused.is_empty() {
            m.push_str("\n## Parameters of the reference agent that are ignored or refused\n\nSetting one of these to anything but the listed values fails validation (OCF_ERR_CONFIGURED) instead of being silently ignored; \"any\" marks a parameter that is accepted and has no effect.\n\n| name | accepted values | why |\n|---|---|---|\n");
            for (name, (why, ok)) in refused {
                let _ = writeln!(
                    m,
                    "| `{name}` | {} | {why} |",
                    ok.iter()
                        .map(|v| format!("`{v}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let reloadable: Vec<String> = self
            .params
            .iter()
            .filter(|p| p.reloadable)
            .map(|p| format!("`{}`", p.name))
            .collect();
        if !reloadable.is_empty() {
            let _ = writeln!(
                m,
                "\nReloadable (OCF 1.1 `reload-agent`: a change of only these is applied \
                 without a restart): {}. A change of any other parameter restarts the resource.",
                reloadable.join(", ")
            );
        }
        m.push_str("\n## Actions\n\n| action | timeout | interval | depth | role |\n|---|---|---|---|---|\n");
        for a in self.actions {
            let cols = ["timeout", "interval", "depth", "role"].map(|n| a.attr(n));
            let _ = writeln!(m, "| {} | {} |", a.action.name(), cols.join(" | "));
        }
        m.push_str("\nThis page is generated from the agent's parameter table (`pgstack docs`).\n");
        m
    }

    pub fn to_man(&self) -> String {
        let mut m = String::new();
        let _ = writeln!(
            m,
            ".TH OCF_PGSTACK_{} 7 \"\" \"pgstack {}\" \"OCF resource agents\"",
            self.name.to_uppercase(),
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            m,
            ".SH NAME\nocf_pgstack_{} \\- {}",
            self.name,
            roff(self.shortdesc)
        );
        let _ = writeln!(
            m,
            ".SH SYNOPSIS\n\\fB{}\\fR [start | stop | monitor | meta-data | validate-all | ...]",
            self.name
        );
        let _ = writeln!(m, ".SH DESCRIPTION\n{}", roff(self.longdesc.trim()));
        m.push_str(".SH PARAMETERS\n");
        for p in self.params {
            let _ = writeln!(
                m,
                ".TP\n\\fB{}\\fR ({}{}{})",
                p.name,
                p.ty.name(),
                p.default
                    .map(|d| format!(", default \"{}\"", roff(d)))
                    .unwrap_or_default(),
                if p.required { ", required" } else { "" }
            );
            let _ = writeln!(m, "{}", roff(&one_line(&p.long_text())));
        }
        m.push_str(".SH ACTIONS\n");
        for a in self.actions {
            // The man page leaves the depth out.
            let attrs: Vec<String> = a
                .attrs()
                .into_iter()
                .filter(|(n, _)| *n != "depth")
                .map(|(n, v)| format!("{n} {v}"))
                .collect();
            let _ = writeln!(m, ".TP\n\\fB{}\\fR\n{}", a.action.name(), attrs.join(", "));
        }
        let _ = writeln!(
            m,
            ".SH SEE ALSO\n\\fBpgstack\\fR(8), \\fBcrm_resource\\fR(8)"
        );
        m
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// Text for a roff page: backslashes doubled, a line starting with `.` or `'` kept as text.
pub fn roff(s: &str) -> String {
    let s = s.replace('\\', "\\\\");
    s.lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// XML escaping of a value (all five special characters): quick-xml's own.
pub use quick_xml::escape::escape as esc;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocf::params::ParamSpec;

    static INFO: AgentInfo = AgentInfo {
        name: "t",
        shortdesc: "A <test> agent",
        longdesc: "Long & \"quoted\".",
        params: &[ParamSpec::integer("n", "N", "A number.")
            .default("3")
            .required()],
        needs_root: false,
        actions: &[
            ActionSpec::new(Action::Start, 20),
            ActionSpec::new(Action::Monitor, 20).interval(10).depth(0),
            ActionSpec::new(Action::Monitor, 20)
                .interval(11)
                .role("Promoted"),
        ],
    };

    #[test]
    fn xml_is_escaped_and_declares_the_dtd() {
        let x = INFO.to_xml();
        assert!(x.contains("<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">"));
        assert!(x.contains("A &lt;test&gt; agent"));
        assert!(x.contains("Long &amp; &quot;quoted&quot;."));
        assert!(x.contains("<content type=\"integer\" default=\"3\" />"));
        assert!(x.contains(
            "<action name=\"monitor\" timeout=\"20s\" interval=\"11s\" role=\"Promoted\" />"
        ));
        assert_eq!(INFO.default_timeout(Action::Start), 20);
        assert_eq!(INFO.usage(), "usage: t {start|monitor}\n");
    }
}
