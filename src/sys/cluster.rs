//! Pacemaker's command-line tools, for what an agent writes into the cluster.

use std::time::Instant;

use super::error::{SysError, SysResult};
use super::runner::{run, Cmd, Outcome, SpawnError};

/// What agents ask of the cluster.
pub trait Cluster {
    /// Sets (`Some`) or deletes (`None`) the promotion score of `instance` on this node.
    fn promotion_score(
        &self,
        instance: &str,
        score: Option<i64>,
        deadline: Instant,
    ) -> SysResult<()>;
}

/// The real cluster: `crm_attribute --promotion`, falling back to the older `crm_master`.
pub struct CrmTools;

impl Cluster for CrmTools {
    fn promotion_score(
        &self,
        instance: &str,
        score: Option<i64>,
        deadline: Instant,
    ) -> SysResult<()> {
        let value: Vec<String> = match score {
            Some(s) => vec!["-v".into(), s.to_string()],
            None => vec!["-D".into()],
        };
        let primary = Cmd::new("crm_attribute")
            .arg(format!("--promotion={instance}"))
            .args(["-l", "reboot", "-q"])
            .args(&value)
            .env("OCF_RESOURCE_INSTANCE", instance);
        let out = match run(&primary, deadline) {
            Err(SpawnError::NotFound { .. }) => {
                let legacy = Cmd::new("crm_master")
                    .args(["-l", "reboot", "-q"])
                    .args(&value)
                    .env("OCF_RESOURCE_INSTANCE", instance);
                run(&legacy, deadline)?
            }
            other => other?,
        };
        check(&out, "setting the promotion score")
    }
}

fn check(out: &Outcome, what: &str) -> SysResult<()> {
    if out.success() {
        Ok(())
    } else {
        Err(SysError::Invalid(format!("{what}: {}", out.describe())))
    }
}
