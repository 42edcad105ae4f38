//! `pgstack cib migrate RESOURCE NODE`: the book's `crm resource migrate` without its trap.
//!
//! A move is a `cli-prefer-RESOURCE` location constraint. Left in place, it pins the
//! resource to the node: when that node later fails and returns, the resource moves back
//! (a second, unplanned outage). So the constraint is cleared once the move is done,
//! whatever happened in between (a failed or timed-out wait included), and it is created
//! with a lifetime so that even a killed pgstack leaves no permanent pin.
//!
//! On a live cluster the move is awaited with `crm_resource --wait`. With a CIB file
//! (a snapshot with node states) the transition is computed by crm_simulate and saved into
//! the file, so it shows the placement after the move.

use std::path::Path;
use std::time::Instant;

use super::scenario::is_main;
use super::validate::Kind;
use super::CibError;
use crate::sys::pacemaker::{self as pcmk, Action, Placement, Workdir};

#[derive(Debug, Clone)]
pub struct Outcome {
    /// What crm_resource --move said.
    pub moved: String,
    /// The transition, for a CIB file.
    pub actions: Vec<Action>,
    /// What crm_resource --clear said.
    pub cleared: String,
    pub placement: Placement,
}

/// Checks an ISO 8601 duration such as PT30M, P1D, PT1H30M.
pub fn check_lifetime(l: &str) -> Result<(), CibError> {
    let ok = l.len() <= 32
        && l.starts_with('P')
        && l.len() > 1
        && l[1..]
            .chars()
            .all(|c| c.is_ascii_digit() || "YMWDTHS".contains(c))
        && l.chars().any(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(CibError::BadValue {
            name: "lifetime".into(),
            value: l.into(),
            why: "expected an ISO 8601 duration such as PT30M or PT2H".into(),
        })
    }
}

pub fn migrate(
    cib_file: Option<&Path>,
    resource: &str,
    node: &str,
    lifetime: &str,
    wait_s: u64,
    deadline: Instant,
) -> Result<Outcome, CibError> {
    Kind::Id
        .check(resource)
        .map_err(CibError::bad_value("resource", resource))?;
    Kind::Node
        .check(node)
        .map_err(CibError::bad_value("node", node))?;
    check_lifetime(lifetime)?;
    if let Some(f) = cib_file {
        let text = pcmk::read_file(f)?;
        if !text.contains("<node_state") {
            return Err(CibError::Invalid(format!(
                "{} has no node states: use a snapshot of the cluster (cibadmin -Q) or \
                 `pgstack cib simulate FILE --scenario steady --save OUT`",
                f.display()
            )));
        }
    }
    let moved = pcmk::crm_resource_move(cib_file, resource, node, Some(lifetime), deadline)?;
    // From here on the constraint exists: whatever happens, clear it before returning.
    let applied: Result<Vec<Action>, CibError> = match cib_file {
        Some(f) => (|| {
            let dir = Workdir::new("cib-migrate")?;
            let out = dir.path("after.xml");
            let sim = pcmk::crm_simulate(f, &[], Some(&out), deadline)?;
            let text = pcmk::read_file(&out)?;
            pcmk::write_file(f, &text)?;
            Ok(sim.actions.into_iter().filter(is_main).collect())
        })(),
        None => pcmk::crm_resource_wait(wait_s, deadline)
            .map(|()| Vec::new())
            .map_err(CibError::from),
    };
    let cleared = pcmk::crm_resource_clear(cib_file, resource, deadline).map_err(|e| {
        CibError::Invalid(format!(
            "{e}; the move constraint cli-prefer-{resource} is still in place (it expires \
             after {lifetime}): remove it with crm_resource --clear --resource {resource}"
        ))
    })?;
    let actions = applied?;
    let placement = pcmk::crm_resource_locate(cib_file, resource, deadline)?;
    Ok(Outcome {
        moved,
        actions,
        cleared,
        placement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        for ok in ["PT30M", "PT1H", "P1D", "PT1H30M"] {
            assert!(check_lifetime(ok).is_ok(), "{ok}");
        }
        for bad in ["30m", "P", "PT", "-PT5M", "PT5M;id", ""] {
            assert!(check_lifetime(bad).is_err(), "{bad}");
        }
    }
}
