//! PostgreSQL seen from the OS: `postmaster.pid`, `pg_controldata`, the server's processes
//! in `/proc`, starting and signalling the postmaster as the system user, and the
//! native-protocol probe used by the monitor. Nothing here knows OCF codes.

pub mod client;
pub mod control;
pub mod mounts;
pub mod pidfile;
pub mod process;
pub mod server;
pub mod wal;

pub use control::{ClusterState, ControlData};
pub use pidfile::PostmasterPid;

use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Uid;

use crate::sys::error::SysResult;
use crate::sys::runner::Credentials;
use client::{Answer, Probe, ProbeResult, Rows, Until};

/// A data directory as its owner sees it: PostgreSQL's programs in `bindir`, run on
/// `datadir` as the system user `creds`.
#[derive(Debug, Clone)]
pub struct PgDir<'a> {
    pub bindir: PathBuf,
    pub datadir: &'a Path,
    pub creds: &'a Credentials,
}

/// What the agent does to one cluster, behind a trait so its decisions (monitor,
/// start, stop, reload) are unit-tested with [`fake::FakePg`]; [`RealPg`] is the system.
pub trait PgOs {
    /// `postmaster.pid` of the data directory: `None` when absent, `Some(None)` when
    /// present but unreadable.
    fn pidfile(&self, datadir: &Path) -> Option<Option<PostmasterPid>>;
    fn is_postmaster(&self, datadir: &Path, pid: u32) -> bool;
    fn processes(&self, datadir: &Path) -> Vec<u32>;
    /// Whether the directory exists, and whether it holds `PG_VERSION`.
    fn datadir_state(&self, datadir: &Path) -> (bool, bool);
    fn control_data(&self, d: &PgDir, deadline: Instant) -> SysResult<ControlData>;
    fn probe(&self, p: &Probe, deadline: Instant) -> ProbeResult<Answer>;
    /// Alive and not a zombie.
    fn running(&self, pid: u32) -> bool;
    /// A live process running a PostgreSQL server binary (of any cluster).
    fn is_postgres(&self, pid: u32) -> bool;
    fn set_aside_pidfile(&self, datadir: &Path) -> SysResult<PathBuf>;
    fn ensure_socket_dir(&self, dir: &Path, creds: &Credentials) -> SysResult<()>;
    fn port_use(&self, socket_dir: &Path, port: u16) -> SysResult<server::PortUse>;
    fn spawn_postmaster(&self, spec: &server::StartSpec, creds: &Credentials) -> SysResult<u32>;
    fn log_tail(&self, path: &Path, n: usize, owner: Uid) -> Vec<String>;
    /// Signals one process the caller verified.
    fn signal(&self, pid: u32, sig: Signal) -> SysResult<()>;
    /// Signals every process of the cluster; returns how many were signalled.
    fn signal_all(&self, datadir: &Path, sig: Signal) -> usize;
    /// `pg_ctl reload` (`d.datadir` is where the configuration is, `pg_ctl -D`).
    fn reload(&self, d: &PgDir, deadline: Instant) -> SysResult<()>;
    /// Statements in one session ([`client::query`]).
    fn query(&self, p: &Probe, stmts: &[String], deadline: Instant) -> ProbeResult<Vec<Rows>>;
    /// Statements, then one asked until it answers false ([`client::query_until_false`]).
    fn query_until_false(
        &self,
        p: &Probe,
        stmts: &[String],
        until: Until<'_>,
        deadline: Instant,
    ) -> ProbeResult<(Vec<Rows>, bool)>;
    /// A file of the data directory written for the system user ([`server::write_owned`]).
    fn write_owned(&self, d: &PgDir, name: &str, content: &str) -> SysResult<()>;
    /// Removes a file of the data directory; whether there was one.
    fn remove_in(&self, dir: &Path, name: &str) -> SysResult<bool>;
    /// This node's name in the cluster (`crm_node -n`, else the host name).
    fn node_name(&self, deadline: Instant) -> String;
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
    fn control_data(&self, d: &PgDir, deadline: Instant) -> SysResult<ControlData> {
        ControlData::read(&d.bindir, d.datadir, d.creds, deadline)
    }
    fn probe(&self, p: &Probe, deadline: Instant) -> ProbeResult<Answer> {
        client::probe(p, deadline)
    }
    fn running(&self, pid: u32) -> bool {
        process::running(pid)
    }
    fn is_postgres(&self, pid: u32) -> bool {
        process::is_postgres(pid)
    }
    fn set_aside_pidfile(&self, datadir: &Path) -> SysResult<PathBuf> {
        pidfile::set_aside(datadir)
    }
    fn ensure_socket_dir(&self, dir: &Path, creds: &Credentials) -> SysResult<()> {
        server::ensure_socket_dir(dir, creds)
    }
    fn port_use(&self, socket_dir: &Path, port: u16) -> SysResult<server::PortUse> {
        server::port_use(socket_dir, port)
    }
    fn spawn_postmaster(&self, spec: &server::StartSpec, creds: &Credentials) -> SysResult<u32> {
        server::spawn_postmaster(spec, creds)
    }
    fn log_tail(&self, path: &Path, n: usize, owner: Uid) -> Vec<String> {
        server::log_tail(path, n, owner)
    }
    fn signal(&self, pid: u32, sig: Signal) -> SysResult<()> {
        process::signal(pid, sig)
    }
    fn signal_all(&self, datadir: &Path, sig: Signal) -> usize {
        process::Cluster::new(datadir).signal_all(sig)
    }
    fn reload(&self, d: &PgDir, deadline: Instant) -> SysResult<()> {
        server::reload(&d.bindir, d.datadir, d.creds, deadline)
    }
    fn query(&self, p: &Probe, stmts: &[String], deadline: Instant) -> ProbeResult<Vec<Rows>> {
        client::query(p, stmts, deadline)
    }
    fn query_until_false(
        &self,
        p: &Probe,
        stmts: &[String],
        until: Until<'_>,
        deadline: Instant,
    ) -> ProbeResult<(Vec<Rows>, bool)> {
        client::query_until_false(p, stmts, until, deadline)
    }
    fn write_owned(&self, d: &PgDir, name: &str, content: &str) -> SysResult<()> {
        server::write_owned(d.datadir, name, content, d.creds)
    }
    fn remove_in(&self, dir: &Path, name: &str) -> SysResult<bool> {
        server::remove_in(dir, name)
    }
    fn node_name(&self, deadline: Instant) -> String {
        crate::sys::cib::CibTool::default().local_node(deadline)
    }
}

#[cfg(test)]
pub mod fake {
    //! A scripted cluster for unit tests of the agent's decisions. The fields are the
    //! state before the action; what the action does is recorded in `calls`, and
    //! signals change the state as the rules below say (a postmaster dies, with all
    //! its processes, on a signal in `obeys`; SIGKILL to the cluster kills everything
    //! unless `unkillable`).
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;
    use crate::sys::error::SysError;

    #[derive(Default)]
    pub struct FakePg {
        pub pidfile: Option<Option<PostmasterPid>>,
        pub postmaster: Option<u32>,
        /// Live processes of the cluster (the postmaster's children, or orphans).
        pub processes: Vec<u32>,
        pub datadir: (bool, bool),
        pub state: Option<ClusterState>,
        pub probe: Option<Result<client::Answer, client::ProbeError>>,
        /// Live processes of nobody's cluster: unrelated programs.
        pub others: Vec<u32>,
        /// Live server processes of another cluster.
        pub other_postgres: Vec<u32>,
        /// The signals the postmaster obeys by exiting.
        pub obeys: Vec<Signal>,
        pub unkillable: bool,
        pub port: Option<server::PortUse>,
        pub spawn_fails: bool,
        pub reload_fails: bool,
        pub calls: RefCell<Vec<String>>,
        /// Answers statements of [`PgOs::query`] (each is also recorded in `calls` as
        /// `sql <statement>`); `None` answers every statement with no row.
        pub sql: Option<SqlFn>,
        /// Files written with [`PgOs::write_owned`], by name, last content.
        pub written: RefCell<std::collections::BTreeMap<String, String>>,
        /// The last start's command.
        pub started: RefCell<Option<server::StartSpec>>,
        // What the action changed (public only for `..FakePg::default()`).
        pub dead: RefCell<BTreeSet<u32>>,
        pub spawned: RefCell<Option<u32>>,
        pub set_aside: RefCell<bool>,
    }

    /// A scripted answer to one statement.
    pub type SqlFn = Box<dyn Fn(&str) -> Result<client::Rows, client::ProbeError>>;

    /// The pid the fake gives a started postmaster.
    pub const SPAWNED: u32 = 9000;

    impl FakePg {
        fn call(&self, c: String) {
            self.calls.borrow_mut().push(c);
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
        fn pm(&self) -> Option<u32> {
            let spawned = *self.spawned.borrow();
            spawned
                .or(self.postmaster)
                .filter(|p| !self.dead.borrow().contains(p))
        }
        fn cluster(&self) -> Vec<u32> {
            let dead = self.dead.borrow();
            let mut v: Vec<u32> = self.processes.clone();
            v.extend(self.pm());
            v.retain(|p| !dead.contains(p));
            v.sort_unstable();
            v.dedup();
            v
        }
        fn kill_cluster(&self) {
            let all = self.cluster();
            self.dead.borrow_mut().extend(all);
        }
    }

    impl PgOs for FakePg {
        fn pidfile(&self, _: &Path) -> Option<Option<PostmasterPid>> {
            if let Some(p) = *self.spawned.borrow() {
                return Some(PostmasterPid::parse(&format!(
                    "{p}\n/srv/pgst-pg\n1700000000\n5432\n/run/pgst-pg\n\n1 2\nready\n"
                )));
            }
            if *self.set_aside.borrow() {
                return None;
            }
            self.pidfile.clone()
        }
        fn is_postmaster(&self, _: &Path, pid: u32) -> bool {
            self.pm() == Some(pid)
        }
        fn processes(&self, _: &Path) -> Vec<u32> {
            self.cluster()
        }
        fn datadir_state(&self, _: &Path) -> (bool, bool) {
            self.datadir
        }
        fn control_data(&self, _: &PgDir, _: Instant) -> SysResult<ControlData> {
            match &self.state {
                Some(s) => Ok(ControlData { state: s.clone() }),
                None => Err(SysError::Invalid("pg_controldata: not found".into())),
            }
        }
        fn probe(&self, _: &Probe, _: Instant) -> ProbeResult<Answer> {
            self.probe
                .clone()
                .expect("the monitor probed a cluster the test says has no postmaster")
        }
        fn running(&self, pid: u32) -> bool {
            self.cluster().contains(&pid)
                || ((self.others.contains(&pid) || self.other_postgres.contains(&pid))
                    && !self.dead.borrow().contains(&pid))
        }
        fn is_postgres(&self, pid: u32) -> bool {
            self.running(pid) && !self.others.contains(&pid)
        }
        fn set_aside_pidfile(&self, datadir: &Path) -> SysResult<PathBuf> {
            self.call("set aside postmaster.pid".into());
            *self.set_aside.borrow_mut() = true;
            Ok(datadir.join("postmaster.pid.stale"))
        }
        fn ensure_socket_dir(&self, dir: &Path, _: &Credentials) -> SysResult<()> {
            self.call(format!("socket dir {}", dir.display()));
            Ok(())
        }
        fn port_use(&self, _: &Path, _: u16) -> SysResult<server::PortUse> {
            Ok(self
                .port
                .clone()
                .unwrap_or(server::PortUse::Free { removed: None }))
        }
        fn spawn_postmaster(&self, spec: &server::StartSpec, _: &Credentials) -> SysResult<u32> {
            self.call("spawn".into());
            *self.started.borrow_mut() = Some(spec.clone());
            if self.spawn_fails {
                return Err(SysError::Invalid("cannot start postgres".into()));
            }
            *self.spawned.borrow_mut() = Some(SPAWNED);
            Ok(SPAWNED)
        }
        fn log_tail(&self, _: &Path, _: usize, _: Uid) -> Vec<String> {
            Vec::new()
        }
        fn signal(&self, pid: u32, sig: Signal) -> SysResult<()> {
            self.call(format!("{sig} {pid}"));
            if self.pm() == Some(pid) && self.obeys.contains(&sig) {
                self.kill_cluster();
            }
            Ok(())
        }
        fn signal_all(&self, _: &Path, sig: Signal) -> usize {
            let all = self.cluster();
            self.call(format!("{sig} all {all:?}"));
            if sig == Signal::SIGKILL && !self.unkillable {
                self.kill_cluster();
            }
            all.len()
        }
        fn reload(&self, _: &PgDir, _: Instant) -> SysResult<()> {
            self.call("pg_ctl reload".into());
            if self.reload_fails {
                return Err(SysError::Invalid("pg_ctl: no postmaster.pid".into()));
            }
            Ok(())
        }
        fn query(&self, _: &Probe, stmts: &[String], _: Instant) -> ProbeResult<Vec<Rows>> {
            let mut out = Vec::new();
            for s in stmts {
                self.call(format!("sql {s}"));
                out.push(match &self.sql {
                    Some(f) => f(s)?,
                    None => Vec::new(),
                });
            }
            Ok(out)
        }
        fn query_until_false(
            &self,
            p: &Probe,
            stmts: &[String],
            until: Until<'_>,
            deadline: Instant,
        ) -> ProbeResult<(Vec<Rows>, bool)> {
            let out = self.query(p, stmts, deadline)?;
            if let Some(f) = until.meanwhile {
                f(&out);
            }
            let last = self.query(p, &[until.sql.to_string()], deadline)?;
            Ok((out, last.first().is_some_and(client::first_is_false)))
        }
        fn write_owned(&self, _: &PgDir, name: &str, content: &str) -> SysResult<()> {
            self.call(format!("write {name}"));
            self.written
                .borrow_mut()
                .insert(name.to_string(), content.to_string());
            Ok(())
        }
        fn remove_in(&self, _: &Path, name: &str) -> SysResult<bool> {
            self.call(format!("remove {name}"));
            Ok(self.written.borrow_mut().remove(name).is_some())
        }
        fn node_name(&self, _: Instant) -> String {
            "pgst-node1".into()
        }
    }
}
