//! Pacemaker's command-line tools, for what an agent writes into the cluster.

use std::path::PathBuf;
use std::time::Instant;

use super::error::{SysError, SysResult};
use super::runner::{run, Cmd, Outcome, SpawnError};

/// Whose promotion score: `instance` on `node` (this node when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreOf<'a> {
    pub instance: &'a str,
    pub node: Option<&'a str>,
}

impl<'a> ScoreOf<'a> {
    /// `instance` on this node.
    pub fn here(instance: &'a str) -> Self {
        ScoreOf {
            instance,
            node: None,
        }
    }
    /// `instance` on `node`.
    pub fn on(instance: &'a str, node: &'a str) -> Self {
        ScoreOf {
            instance,
            node: Some(node),
        }
    }
}

/// What agents ask of the cluster.
pub trait Cluster {
    /// Sets (`Some`) or deletes (`None`) the promotion score `of`.
    fn promotion_score(&self, of: ScoreOf, score: Option<i64>, deadline: Instant) -> SysResult<()>;
}

/// The real cluster: `crm_attribute --promotion`, falling back to the older `crm_master`.
#[derive(Debug, Clone, Default)]
pub struct CrmTools {
    /// Work on a CIB file instead of the live cluster (tests; never set by the agents).
    pub cib_file: Option<PathBuf>,
}

impl CrmTools {
    fn cmd(&self, program: &str, instance: &str) -> Cmd {
        let c = Cmd::new(program).env("OCF_RESOURCE_INSTANCE", instance);
        match &self.cib_file {
            Some(f) => c.env("CIB_file", f),
            None => c,
        }
    }
}

impl Cluster for CrmTools {
    fn promotion_score(&self, of: ScoreOf, score: Option<i64>, deadline: Instant) -> SysResult<()> {
        let ScoreOf { instance, node } = of;
        let mut args: Vec<String> = vec!["-l".into(), "reboot".into(), "-q".into()];
        if let Some(n) = node {
            args.extend(["-N".into(), n.to_string()]);
        }
        match score {
            Some(s) => args.extend(["-v".into(), s.to_string()]),
            None => args.push("-D".into()),
        }
        let primary = self
            .cmd("crm_attribute", instance)
            .arg(format!("--promotion={instance}"))
            .args(&args);
        let out = match run(&primary, deadline) {
            Err(SpawnError::NotFound { .. }) => {
                run(&self.cmd("crm_master", instance).args(&args), deadline)?
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
