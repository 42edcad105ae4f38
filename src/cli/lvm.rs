//! `pgstack lvm check-config|snapshot`: the book's LVM advice and snapshot recipe, thin
//! adapters over `sys::lvm` and `agents::lvm::snapshot`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::agents::lvm::snapshot;
use crate::sys::lvm::{check_config, effective_config, RealLvm};

#[derive(Subcommand)]
pub enum LvmCmd {
    /// Check the effective LVM configuration against the book's advice (a filter for
    /// sd*/drbd* only, write_cache_state=0, no lvmetad); exit 1 listing each deviation.
    CheckConfig {
        /// Read `lvmconfig --type full` output from this file instead of running it.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Directory of the lvm.conf to check (as LVM_SYSTEM_DIR; default /etc/lvm).
        #[arg(long, conflicts_with = "from")]
        system_dir: Option<PathBuf>,
    },
    /// LVM snapshots of a volume for backups.
    #[command(subcommand)]
    Snapshot(SnapCmd),
}

#[derive(Subcommand)]
pub enum SnapCmd {
    /// Create a snapshot of VG/LV.
    Create {
        #[arg(long)]
        vg: String,
        #[arg(long)]
        lv: String,
        /// Snapshot name (default: <lv>-snap).
        #[arg(long)]
        name: Option<String>,
        /// Size: N%FREE, N%ORIGIN or a size like 512M.
        #[arg(long, default_value = "100%FREE")]
        size: String,
    },
    /// Mount a snapshot (XFS with -o nouuid).
    Mount {
        #[arg(long)]
        vg: String,
        #[arg(long)]
        name: String,
        /// Mount point (must exist).
        dir: PathBuf,
        /// Extra mount options (ro, ...).
        #[arg(long, short = 'o', default_value = "")]
        options: String,
    },
    /// Remove a snapshot; refused while it is mounted.
    Remove {
        #[arg(long)]
        vg: String,
        #[arg(long)]
        name: String,
    },
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

pub fn run(c: LvmCmd) -> Result<u8> {
    let lvm = RealLvm::default();
    let snaps = |vg| snapshot::Snapshots {
        lvm: &lvm,
        vg,
        deadline: deadline(),
    };
    match c {
        LvmCmd::CheckConfig { from, system_dir } => {
            let text = match from {
                Some(f) => std::fs::read_to_string(&f)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?,
                None => effective_config(system_dir.as_deref(), deadline())?,
            };
            let dev = check_config(&text);
            for d in &dev {
                println!("{}: found {}; advice: {}", d.key, d.found, d.advice);
            }
            if dev.is_empty() {
                println!(
                    "lvm configuration follows the advice (filter, write_cache_state, lvmetad)"
                );
                Ok(0)
            } else {
                Ok(1)
            }
        }
        LvmCmd::Snapshot(SnapCmd::Create { vg, lv, name, size }) => {
            let name = name.unwrap_or_else(|| format!("{lv}-snap"));
            let p = snaps(&vg).create(&lv, &name, &size)?;
            println!("{}", p.display());
            Ok(0)
        }
        LvmCmd::Snapshot(SnapCmd::Mount {
            vg,
            name,
            dir,
            options,
        }) => {
            if !dir.is_dir() {
                bail!("{}: not a directory", dir.display());
            }
            let used = snaps(&vg).mount(&name, &dir, &options)?;
            println!("mounted /dev/{vg}/{name} on {} ({used})", dir.display());
            Ok(0)
        }
        LvmCmd::Snapshot(SnapCmd::Remove { vg, name }) => {
            snaps(&vg).remove(&name)?;
            println!("removed {vg}/{name}");
            Ok(0)
        }
    }
}
