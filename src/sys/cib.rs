//! The CIB through `cibadmin`, live or on a file (`CIB_file`, passed explicitly: children
//! never inherit our environment).

use std::path::PathBuf;
use std::time::Instant;

use super::error::{SysError, SysResult};
use super::runner::{run, Cmd, Outcome};

#[derive(Debug, Clone, Default)]
pub struct CibTool {
    /// Work on this file instead of the live cluster.
    pub file: Option<PathBuf>,
}

impl CibTool {
    fn cmd(&self, program: &str) -> Cmd {
        let c = Cmd::new(program);
        match &self.file {
            Some(f) => c.env("CIB_file", f),
            None => c,
        }
    }

    fn checked(out: Outcome, what: &str) -> SysResult<Outcome> {
        if out.success() {
            Ok(out)
        } else {
            Err(SysError::Invalid(format!("{what}: {}", out.describe())))
        }
    }

    /// The whole CIB as XML.
    pub fn query(&self, deadline: Instant) -> SysResult<String> {
        let out = run(&self.cmd("cibadmin").arg("-Q"), deadline)?;
        Ok(Self::checked(out, "cibadmin -Q")?.stdout_str())
    }

    /// Replaces the whole CIB (`cibadmin --replace --xml-pipe`) with `xml`, which keeps
    /// the `admin_epoch`/`epoch`/`num_updates` it was queried with: Pacemaker refuses a
    /// replacement older than the CIB it holds, so a change made since the query is
    /// never overwritten (the replace fails and nothing changes).
    pub fn replace(&self, xml: &str, deadline: Instant) -> SysResult<()> {
        let out = run(
            &self
                .cmd("cibadmin")
                .args(["--replace", "--xml-pipe"])
                .stdin(xml.as_bytes().to_vec()),
            deadline,
        )?;
        Self::checked(out, "cibadmin --replace").map(|_| ())
    }

    /// Adds a constraint (`cibadmin -C -o constraints`); the outcome tells a conflict apart.
    pub fn create_constraint(&self, xml: &str, deadline: Instant) -> SysResult<Outcome> {
        Ok(run(
            &self
                .cmd("cibadmin")
                .args(["-C", "-o", "constraints", "-X", xml]),
            deadline,
        )?)
    }

    /// Deletes the object matching the element's tag and id (`cibadmin -D -X`).
    pub fn delete(&self, xml: &str, deadline: Instant) -> SysResult<Outcome> {
        Ok(run(
            &self.cmd("cibadmin").args(["-D", "-X", xml]),
            deadline,
        )?)
    }

    /// Whether `node` runs the promoted instance of the clone `rsc`
    /// (`crm_resource --locate`: "resource ms is running on: n1 Promoted").
    pub fn promoted_on(&self, rsc: &str, node: &str, deadline: Instant) -> SysResult<bool> {
        let out = run(
            &self.cmd("crm_resource").args(["--locate", "-r", rsc]),
            deadline,
        )?;
        let out = Self::checked(out, "crm_resource --locate")?;
        Ok(out.stdout_str().lines().any(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.contains(&node) && (words.contains(&"Promoted") || words.contains(&"Master"))
        }))
    }

    /// This node's name as the cluster knows it (`crm_node -n`), falling back to uname.
    pub fn local_node(&self, deadline: Instant) -> String {
        if let Ok(out) = run(&Cmd::new("crm_node").arg("-n"), deadline) {
            let name = out.stdout_str().trim().to_string();
            if out.success() && !name.is_empty() {
                return name;
            }
        }
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    }
}
