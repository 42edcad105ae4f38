//! The resource agents a configuration names, and which of them this host lacks: a CIB
//! that names an agent Pacemaker cannot find here is not a working configuration, even
//! when crm_verify (which never looks at agents) accepts it.

use std::time::Instant;

use super::xml::Element;
use super::CibError;
use crate::sys::pacemaker;

/// Every agent (`class:provider:type`, `stonith:type`) of the primitives, sorted, once.
pub fn named_agents(cib: &Element) -> Vec<String> {
    let mut v: Vec<String> = cib
        .descendants()
        .into_iter()
        .filter(|e| e.name == "primitive")
        .filter_map(|e| {
            let class = e.attr("class")?;
            let kind = e.attr("type")?;
            Some(match e.attr("provider") {
                Some(p) => format!("{class}:{p}:{kind}"),
                None => format!("{class}:{kind}"),
            })
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The named agents `crm_resource --show-metadata` cannot find on this host.
pub fn missing_agents(cib: &Element, deadline: Instant) -> Result<Vec<String>, CibError> {
    let mut missing = Vec::new();
    for a in named_agents(cib) {
        if !pacemaker::agent_installed(&a, deadline)? {
            missing.push(a);
        }
    }
    Ok(missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_of_primitives_in_groups_and_clones() {
        let cib = super::super::xml::parse(
            r#"<cib><configuration><resources>
            <clone id="c"><primitive id="d" class="ocf" provider="pgstack" type="drbd"/></clone>
            <group id="g"><primitive id="l" class="ocf" provider="pgstack" type="lvm"/>
            <primitive id="l2" class="ocf" provider="pgstack" type="lvm"/></group>
            <primitive id="f" class="stonith" type="fence_xvm"/>
            </resources></configuration></cib>"#,
        )
        .unwrap();
        assert_eq!(
            named_agents(&cib),
            ["ocf:pgstack:drbd", "ocf:pgstack:lvm", "stonith:fence_xvm"]
        );
    }
}
