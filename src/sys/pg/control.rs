//! `pg_controldata`: the cluster state recorded in `global/pg_control`, which tells a
//! cleanly stopped cluster from one whose server died while running.

use std::path::Path;
use std::time::Instant;

use crate::sys::error::{SysError, SysResult};
use crate::sys::runner::{self, Cmd, Credentials};

/// `Database cluster state:` of pg_controldata (PostgreSQL 9.x to 17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    StartingUp,
    ShutDown,
    ShutDownInRecovery,
    ShuttingDown,
    InCrashRecovery,
    InArchiveRecovery,
    InProduction,
    Unknown(String),
}

impl ClusterState {
    pub fn parse(s: &str) -> ClusterState {
        match s.trim() {
            "starting up" => ClusterState::StartingUp,
            "shut down" => ClusterState::ShutDown,
            "shut down in recovery" => ClusterState::ShutDownInRecovery,
            "shutting down" => ClusterState::ShuttingDown,
            "in crash recovery" => ClusterState::InCrashRecovery,
            "in archive recovery" => ClusterState::InArchiveRecovery,
            "in production" => ClusterState::InProduction,
            other => ClusterState::Unknown(other.to_string()),
        }
    }

    /// Whether the state says the cluster was shut down cleanly.
    pub fn is_clean_shutdown(&self) -> bool {
        matches!(
            self,
            ClusterState::ShutDown | ClusterState::ShutDownInRecovery
        )
    }

    pub fn as_str(&self) -> &str {
        match self {
            ClusterState::StartingUp => "starting up",
            ClusterState::ShutDown => "shut down",
            ClusterState::ShutDownInRecovery => "shut down in recovery",
            ClusterState::ShuttingDown => "shutting down",
            ClusterState::InCrashRecovery => "in crash recovery",
            ClusterState::InArchiveRecovery => "in archive recovery",
            ClusterState::InProduction => "in production",
            ClusterState::Unknown(s) => s,
        }
    }
}

/// What the single mode and the monitor read of pg_controldata: the cluster state
/// (the checkpoint fields the election and the rejoin read are `wal::Checkpoints`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlData {
    pub state: ClusterState,
}

/// Parses an LSN written as `X/Y` (two hex numbers).
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.trim().split_once('/')?;
    let hi = u64::from_str_radix(hi, 16).ok()?;
    let lo = u64::from_str_radix(lo, 16).ok()?;
    if hi > u32::MAX as u64 || lo > u32::MAX as u64 {
        return None;
    }
    Some(hi << 32 | lo)
}

impl ControlData {
    /// Parses the output of `LC_ALL=C pg_controldata`.
    pub fn parse(text: &str) -> SysResult<ControlData> {
        let state = text
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(k, _)| k.trim() == "Database cluster state")
            .map(|(_, v)| ClusterState::parse(v.trim()))
            .ok_or_else(|| {
                SysError::Invalid("pg_controldata printed no \"Database cluster state\"".into())
            })?;
        Ok(ControlData { state })
    }

    /// Runs `pg_controldata` on `datadir` as `creds`.
    pub fn read(
        bindir: &Path,
        datadir: &Path,
        creds: &Credentials,
        deadline: Instant,
    ) -> SysResult<ControlData> {
        ControlData::parse(&text(bindir, datadir, creds, deadline)?)
    }
}

/// The whole output of `pg_controldata` on `datadir`, run as `creds`.
pub fn text(
    bindir: &Path,
    datadir: &Path,
    creds: &Credentials,
    deadline: Instant,
) -> SysResult<String> {
    let prog = bindir.join("pg_controldata");
    let cmd = Cmd::new(&prog)
        .arg(datadir)
        .current_dir("/")
        .run_as(creds.clone());
    let out = runner::run(&cmd, deadline)?;
    if !out.success() {
        return Err(SysError::Invalid(format!(
            "{} {}: {}",
            prog.display(),
            datadir.display(),
            out.describe()
        )));
    }
    Ok(out.stdout_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        crate::fixture(&format!("pg_controldata/{name}"))
    }

    #[test]
    fn cleanly_stopped_cluster() {
        let c = ControlData::parse(&fixture("shut-down.txt")).unwrap();
        assert_eq!(c.state, ClusterState::ShutDown);
        assert!(c.state.is_clean_shutdown());
    }

    #[test]
    fn running_and_crashed_clusters_are_in_production() {
        for f in ["in-production.txt", "crashed-in-production.txt"] {
            let c = ControlData::parse(&fixture(f)).unwrap();
            assert_eq!(c.state, ClusterState::InProduction, "{f}");
            assert!(!c.state.is_clean_shutdown());
        }
    }

    #[test]
    fn states_and_lsns() {
        assert_eq!(
            ClusterState::parse("shut down in recovery"),
            ClusterState::ShutDownInRecovery
        );
        assert_eq!(
            ClusterState::parse("in archive recovery").as_str(),
            "in archive recovery"
        );
        assert_eq!(
            ClusterState::parse("weird"),
            ClusterState::Unknown("weird".into())
        );
        assert_eq!(parse_lsn("0/1511A88"), Some(0x1511A88));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("x/0"), None);
        assert_eq!(parse_lsn("10"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(ControlData::parse("").is_err());
        assert!(ControlData::parse("pg_control version number: 1300\n").is_err());
    }
}
