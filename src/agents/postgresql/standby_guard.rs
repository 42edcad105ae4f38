//! Whether an instance may run as a standby of the current primary: the start's check
//! before the postmaster runs, and the monitor's check of a standby that does not stream.
//! Both ask [`rejoin::guard`] (the data directory's history against the primary's).
//!
//! **Start** (not the restart of a demote): a data directory whose history diverged from
//! the primary's is refused with the reason, which names `pgstack pg rejoin`. When the
//! primary does not answer:
//! - a former primary (pg_controldata "shut down" or "in production": a clean stop or a
//!   crash) waits for it, polling within half of the start's deadline, while another
//!   node of the partition holds the primary's promotion score (a primary runs there);
//!   still no answer is a failed start with that reason, never a silent start. When no
//!   other node holds it (the first start of a cluster, a whole cluster restarted, no
//!   cluster at all) there is nothing to compare with yet: it starts, and the monitor
//!   compares once a primary answers;
//! - a standby starts (it follows whoever is promoted, as PostgreSQL does).
//!
//! A former primary whose own data directory or WAL cannot be read for the check is
//! refused too while a primary runs elsewhere; a standby's is only warned about.
//!
//! **Monitor**: a standby whose WAL receiver is not streaming is compared with the
//! primary when it answers: diverged is a failure (1) with the reason, so Pacemaker
//! stops it and the next start refuses it until it is rejoined. A primary that does not
//! answer, or a check that cannot be made, leaves the standby running (0): an instance
//! alone, with no primary anywhere, is a healthy standby.

#![forbid(unsafe_code)]

use std::time::Duration;

use super::election;
use super::rejoin::{self, Guard};
use super::{replication_setup::primary_conninfo, PgConfig};
use crate::ocf::{Ctx, OcfError};
use crate::sys::attrd::Attrd;
use crate::sys::pg::wal::WalOs;
use crate::sys::pg::ClusterState;
use crate::sys::runner::Credentials;

/// How long the start waits between two attempts to reach the primary.
const RETRY: Duration = Duration::from_secs(1);

/// The longest the monitor's check may take: a primary that runs answers in
/// milliseconds; one that just died must not hold the monitor (and the notifications
/// queued behind it) until its connection times out. A check cut short only defers
/// the verdict to the next monitor. (With 3 s, a power cut of the primary during a
/// standby's monitor held the failover's first notification 2.9 s in the lab.)
const STUCK_CHECK: Duration = Duration::from_secs(1);

fn tools<'a>(
    cfg: &'a PgConfig,
    bindir: &'a std::path::Path,
    conninfo: &'a str,
    creds: &'a Credentials,
) -> rejoin::Tools<'a> {
    rejoin::Tools {
        bindir,
        datadir: &cfg.datadir,
        conninfo,
        creds,
    }
}

/// The start's check (see the module documentation). `state` is the stopped data
/// directory's cluster state.
pub fn before_start(
    wal: &dyn WalOs,
    attrd: &dyn Attrd,
    cfg: &PgConfig,
    creds: &Credentials,
    state: &ClusterState,
    ctx: &Ctx,
) -> Result<(), OcfError> {
    let Some(conninfo) = primary_conninfo(cfg) else {
        return Ok(());
    };
    let bindir = cfg.bindir();
    let t = tools(cfg, &bindir, &conninfo, creds);
    let former_primary = matches!(state, ClusterState::ShutDown | ClusterState::InProduction);
    let wait = ctx.deadline.share(0.5);
    let dir = cfg.datadir.display();
    loop {
        let (e, local) = match rejoin::guard(wal, &t, wait.instant()) {
            Ok(Guard::Follows) => return Ok(()),
            Ok(Guard::Diverged(why)) => return Err(OcfError::Generic(why)),
            Ok(Guard::NoAnswer(e)) => (e, false),
            Err(e) => (e, true),
        };
        if !former_primary {
            if local {
                ctx.log
                    .warn(&format!("cannot tell whether {dir} diverged: {e}"));
            } else {
                ctx.log.debug(&format!(
                    "the primary ({conninfo}) does not answer ({e}); the standby waits for it"
                ));
            }
            return Ok(());
        }
        let resource = ctx.env.instance_base();
        let was = state.as_str();
        // Errors of the cluster's attributes count as no primary known.
        let elsewhere = election::primary_elsewhere(attrd, resource, &cfg.repl.node, &wait);
        let Some(node) = elsewhere.ok().flatten() else {
            ctx.log.info(&format!(
                "{dir} was a primary (\"{was}\") and no other node holds the primary's \
                 promotion score ({e}): nothing to compare with yet; the monitor compares \
                 once a primary answers"
            ));
            return Ok(());
        };
        if local {
            return Err(OcfError::Generic(format!(
                "{dir} was a primary (\"{was}\") and whether it diverged from the primary on \
                 {node} cannot be told: {e}; it is not started as a standby"
            )));
        }
        if wait.remaining() <= RETRY {
            // The remedy first: Pacemaker keeps the first 128 bytes of an exit reason.
            return Err(OcfError::Generic(format!(
                "`pgstack pg rejoin`, or `crm_resource --cleanup` once the primary on {node} \
                 answers: it did not answer, so whether {dir} diverged cannot be told and it \
                 is not started as a standby (it was a primary, \"{was}\"; the primary at \
                 {conninfo}: {e})"
            )));
        }
        ctx.log.info(&format!(
            "{dir} was a primary: waiting for the primary on {node} to answer at {conninfo} \
             ({e})"
        ));
        std::thread::sleep(RETRY);
    }
}

/// The monitor's check of a standby that does not stream: `Some(reason)` when its
/// history diverged from the answering primary's.
pub fn stuck(wal: &dyn WalOs, cfg: &PgConfig, creds: &Credentials, ctx: &Ctx) -> Option<String> {
    let conninfo = primary_conninfo(cfg)?;
    let bindir = cfg.bindir();
    let t = tools(cfg, &bindir, &conninfo, creds);
    match rejoin::guard(
        wal,
        &t,
        ctx.deadline.share(0.6).capped(STUCK_CHECK).instant(),
    ) {
        Ok(Guard::Diverged(why)) => Some(why),
        Ok(Guard::Follows) => None,
        Ok(Guard::NoAnswer(e)) => {
            ctx.log
                .debug(&format!("the primary ({conninfo}) does not answer: {e}"));
            None
        }
        Err(e) => {
            ctx.log.warn(&format!(
                "cannot tell whether {} diverged: {e}",
                cfg.datadir.display()
            ));
            None
        }
    }
}
