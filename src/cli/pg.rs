//! `pgstack pg rejoin|diverged`: a former primary against the current primary. A thin
//! adapter over `agents::postgresql::rejoin` (see there for the rules).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::agents::postgresql::rejoin::{self, Rejoined, Tools};
use crate::sys::pg::wal::RealWal;
use crate::sys::pg::{PgOs, RealPg};
use crate::sys::runner::Credentials;

#[derive(Subcommand)]
pub enum PgCmd {
    /// Rebuild a stopped former primary as a standby of the current primary: nothing
    /// when it follows, pg_rewind with --rewind (needs wal_log_hints or checksums),
    /// otherwise a pg_basebackup copy after moving the old directory aside (never
    /// deleted). Leaves standby.signal and primary_conninfo.
    Rejoin {
        #[command(flatten)]
        at: Where,
        /// Use pg_rewind instead of a full copy. It connects as the conninfo's role to its
        /// database (postgres unless it names one), over a normal connection: a superuser,
        /// or a role granted EXECUTE on pg_ls_dir, pg_stat_file and pg_read_binary_file.
        #[arg(long)]
        rewind: bool,
    },
    /// Say whether a stopped data directory diverged from the current primary (exit 0
    /// when it follows, 1 when it diverged or may have).
    Diverged {
        #[command(flatten)]
        at: Where,
    },
}

#[derive(Args)]
pub struct Where {
    /// The former primary's data directory (stopped).
    #[arg(long)]
    pgdata: PathBuf,
    /// libpq connection string of the current primary (a replication user).
    #[arg(long)]
    primary_conninfo: String,
    /// PostgreSQL binaries (default: /usr/lib/postgresql/<PG_VERSION>/bin).
    #[arg(long)]
    bindir: Option<PathBuf>,
    /// The system user the server runs as.
    #[arg(long, default_value = "postgres")]
    user: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
}

struct Resolved {
    datadir: PathBuf,
    bindir: PathBuf,
    creds: Credentials,
    deadline: Instant,
}

impl Resolved {
    /// The rejoin tools over this data directory, against the primary at `conninfo`.
    fn tools<'a>(&'a self, conninfo: &'a str) -> Tools<'a> {
        Tools {
            bindir: &self.bindir,
            datadir: &self.datadir,
            conninfo,
            creds: &self.creds,
        }
    }
}

fn resolve(w: &Where) -> Result<Resolved> {
    let datadir = std::fs::canonicalize(&w.pgdata)
        .with_context(|| format!("resolving {}", w.pgdata.display()))?;
    let bindir = match &w.bindir {
        Some(b) => b.clone(),
        None => {
            let v = crate::sys::pg::wal::major_version(&datadir)?;
            PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"))
        }
    };
    let creds = Credentials::of_user(&w.user)?
        .with_context(|| format!("system user {:?} does not exist", w.user))?;
    if creds.uid.is_root() {
        bail!(
            "system user {:?} has uid 0; PostgreSQL never runs as root",
            w.user
        );
    }
    Ok(Resolved {
        datadir,
        bindir,
        creds,
        deadline: Instant::now() + Duration::from_secs(w.timeout),
    })
}

pub fn run(c: PgCmd) -> Result<u8> {
    match c {
        PgCmd::Diverged { at } => {
            let r = resolve(&at)?;
            let t = r.tools(&at.primary_conninfo);
            let d = rejoin::check(&RealWal, &t, r.deadline)?;
            println!("{} {}", r.datadir.display(), d.describe());
            Ok(if d.follows() { 0 } else { 1 })
        }
        PgCmd::Rejoin { at, rewind } => {
            let r = resolve(&at)?;
            let t = r.tools(&at.primary_conninfo);
            let running = RealPg
                .pidfile(&r.datadir)
                .flatten()
                .is_some_and(|p| RealPg.is_postmaster(&r.datadir, p.pid));
            match rejoin::rejoin(&RealWal, &t, rewind, running, r.deadline)? {
                Rejoined::NothingToDo(d) => println!(
                    "{} {}: nothing to rebuild; standby.signal is in place",
                    r.datadir.display(),
                    d.describe()
                ),
                Rejoined::Rewound(d) => println!(
                    "{} {}: rewound with pg_rewind; it starts as a standby",
                    r.datadir.display(),
                    d.describe()
                ),
                Rejoined::Copied { found, aside } => println!(
                    "{} {}: copied from the primary; it starts as a standby; the old \
                     directory is kept at {}",
                    r.datadir.display(),
                    found.describe(),
                    aside.display()
                ),
            }
            Ok(0)
        }
    }
}
