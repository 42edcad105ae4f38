//! PostgreSQL seen from the OS: `postmaster.pid`, `pg_controldata`, the server's processes
//! in `/proc`, starting and signalling the postmaster as the system user, and the
//! native-protocol probe used by the monitor. Nothing here knows OCF codes.

pub mod client;
pub mod control;
pub mod mounts;
pub mod pidfile;
pub mod process;
pub mod server;

pub use control::{ClusterState, ControlData};
pub use pidfile::PostmasterPid;

use std::path::Path;
use std::time::Instant;

use crate::sys::error::SysResult;
use crate::sys::runner::Credentials;

/// What the monitor needs to see of one cluster, behind a trait so the agent's
/// decisions can be unit-tested with [`fake::FakePg`]; [`RealPg`] is the system.
pub trait PgOs {
    /// `postmaster.pid` of the data directory: `None` when absent, `Some(None)` when
    /// present but unreadable.
    fn pidfile(&self, datadir: &Path) -> Option<Option<PostmasterPid>>;
    fn is_postmaster(&self, datadir: &Path, pid: u32) -> bool;
    fn processes(&self, datadir: &Path) -> Vec<u32>;
    /// Whether the directory exists, and whether it holds `PG_VERSION`.
    fn datadir_state(&self, datadir: &Path) -> (bool, bool);
    fn control_data(
        &self,
        bindir: &Path,
        datadir: &Path,
        creds: &Credentials,
        deadline: Instant,
    ) -> SysResult<ControlData>;
    fn probe(
        &self,
        p: &client::Probe,
        deadline: Instant,
    ) -> Result<client::Answer, client::ProbeError>;
}

/// The real system.
pub struct RealPg;

impl PgOs for RealPg {
    fn pidfile(&self, datadir: &Path) -> Option<Option<PostmasterPid>> {
        pidfile::path(datadir)
            .exists()
            .then(|| PostmasterPid::read(datadir))
    }
    fn is_postmaster(&self, datadir: &Path, pid: u32) -> bool {
        process::Cluster::new(datadir).is_postmaster(pid)
    }
    fn processes(&self, datadir: &Path) -> Vec<u32> {
        process::Cluster::new(datadir).processes()
    }
    fn datadir_state(&self, datadir: &Path) -> (bool, bool) {
        (datadir.is_dir(), datadir.join("PG_VERSION").is_file())
    }
    fn control_data(
        &self,
        bindir: &Path,
        datadir: &Path,
        creds: &Credentials,
        deadline: Instant,
    ) -> SysResult<ControlData> {
        ControlData::read(bindir, datadir, creds, deadline)
    }
    fn probe(
        &self,
        p: &client::Probe,
        deadline: Instant,
    ) -> Result<client::Answer, client::ProbeError> {
        client::probe(p, deadline)
    }
}

#[cfg(test)]
pub mod fake {
    //! A scripted cluster for unit tests of the agent's decisions.
    use super::*;
    use crate::sys::error::SysError;

    #[derive(Default)]
    pub struct FakePg {
        pub pidfile: Option<Option<PostmasterPid>>,
        pub postmaster: Option<u32>,
        pub processes: Vec<u32>,
        pub datadir: (bool, bool),
        pub state: Option<ClusterState>,
        pub probe: Option<Result<client::Answer, client::ProbeError>>,
    }

    impl PgOs for FakePg {
        fn pidfile(&self, _: &Path) -> Option<Option<PostmasterPid>> {
            self.pidfile.clone()
        }
        fn is_postmaster(&self, _: &Path, pid: u32) -> bool {
            self.postmaster == Some(pid)
        }
        fn processes(&self, _: &Path) -> Vec<u32> {
            self.processes.clone()
        }
        fn datadir_state(&self, _: &Path) -> (bool, bool) {
            self.datadir
        }
        fn control_data(
            &self,
            _: &Path,
            _: &Path,
            _: &Credentials,
            _: Instant,
        ) -> SysResult<ControlData> {
            match &self.state {
                Some(s) => Ok(ControlData {
                    state: s.clone(),
                    system_identifier: None,
                    checkpoint_lsn: None,
                    timeline: None,
                }),
                None => Err(SysError::Invalid("pg_controldata: not found".into())),
            }
        }
        fn probe(
            &self,
            _: &client::Probe,
            _: Instant,
        ) -> Result<client::Answer, client::ProbeError> {
            self.probe
                .clone()
                .expect("the monitor probed a cluster the test says has no postmaster")
        }
    }
}
