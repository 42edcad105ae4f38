//! What both stacks do to make a PostgreSQL data directory: the `postgres` user, initdb as
//! that user, the settings and the `pg_hba` line clients through the VIP need.

#![forbid(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use super::{run, LabError, LabResult, PG_BINDIR, PG_SOCKETDIR, SUBNET};
use crate::sys::runner::{Cmd, Credentials};

pub fn postgres_user() -> LabResult<Credentials> {
    Credentials::of_user("postgres")?.ok_or_else(|| {
        LabError::Invalid("user postgres does not exist (install postgresql-15)".into())
    })
}

/// A fresh data directory (`initdb`, trust, UTF8, locale C, no sync: the lab's disks are
/// scratch).
pub fn initdb(pgdata: &Path, pg: &Credentials) -> LabResult<()> {
    let c = Cmd::new(format!("{PG_BINDIR}/initdb")).args([
        "-D",
        &pgdata.display().to_string(),
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    // As postgres, from a directory it may enter.
    let c = c.run_as(pg.clone()).current_dir("/");
    run::cmd_ok(&c, Duration::from_secs(120)).map(|_| ())
}

/// The settings both stacks append to postgresql.conf.
pub fn client_conf() -> String {
    format!(
        "\n# The lab: clients come through the VIP from {SUBNET}.0/24.\n\
         listen_addresses = '*'\n\
         port = 5432\n\
         unix_socket_directories = '{PG_SOCKETDIR}'\n\
         max_connections = 40\n\
         shared_buffers = 32MB\n\
         logging_collector = off\n\
         log_destination = 'stderr'\n\
         # After a crash, one syncfs of the volume instead of an fsync of every file.\n\
         recovery_init_sync_method = syncfs\n"
    )
}

/// The `pg_hba.conf` line letting the lab network in.
pub fn client_hba() -> String {
    format!("host all all {SUBNET}.0/24 trust\n")
}
