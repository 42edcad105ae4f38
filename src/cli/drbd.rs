//! `pgstack drbd ...`: DRBD handlers and recipes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Subcommand;

use crate::fence::{fence_peer, unfence_peer, HandlerEnv};
use crate::sys::cib::CibTool;
use crate::sys::drbd::RealDrbd;

#[derive(Subcommand)]
pub enum DrbdCmd {
    /// DRBD fence-peer handler: forbid promotion anywhere but here while the peer is cut off.
    FencePeer {
        /// Seconds to wait for the cluster to learn the peer's fate.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
        /// Work on a CIB file instead of the live cluster (also taken from CIB_file).
        #[arg(long)]
        cib_file: Option<PathBuf>,
    },
    /// DRBD after-resync-target handler: remove the constraint fence-peer placed.
    UnfencePeer {
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(long)]
        cib_file: Option<PathBuf>,
    },
}

pub fn run(cmd: DrbdCmd, vars: &BTreeMap<String, String>) -> Result<u8> {
    let env = match HandlerEnv::from_vars(|k| vars.get(k).cloned()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("pgstack drbd: {e}");
            return Ok(1);
        }
    };
    let cib_of = |f: Option<PathBuf>| CibTool {
        file: f.or_else(|| vars.get("CIB_file").map(PathBuf::from)),
    };
    let (code, msg) = match cmd {
        DrbdCmd::FencePeer { timeout, cib_file } => {
            let cib = cib_of(cib_file);
            let me = cib.local_node(Instant::now() + Duration::from_secs(5));
            fence_peer(
                &env,
                &cib,
                &RealDrbd,
                &me,
                Duration::from_secs(timeout.clamp(1, 3600)),
            )
        }
        DrbdCmd::UnfencePeer { timeout, cib_file } => unfence_peer(
            &env,
            &cib_of(cib_file),
            Duration::from_secs(timeout.clamp(1, 3600)),
        ),
    };
    eprintln!("pgstack drbd: {msg} (exit {code})");
    Ok(code)
}
