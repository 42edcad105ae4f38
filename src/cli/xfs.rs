//! `pgstack xfs format|mount-options`: the book's XFS settings for the data volume.
//! `format` computes the allocation-group count (4 per CPU, at least 256, reduced to what
//! the device's size allows) and runs mkfs.xfs; `mount-options` prints the recommended
//! options for the `filesystem` agent's `options` parameter.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use crate::sys::mount::{self, DevKind};

/// Smallest allocation group planned for: the internal log (at least 64 MiB on file
/// systems of 300 MB and more) must fit in one group with its metadata. mkfs.xfs -N
/// has the last word (see `run`).
pub const MIN_AG_BYTES: u64 = 72 << 20;
/// Largest allocation group (1 TiB).
pub const MAX_AG_BYTES: u64 = 1 << 40;
/// The book's mount options.
pub const MOUNT_OPTIONS: &str = "noatime,nodiratime,logbsize=256k,allocsize=1m";

#[derive(Subcommand)]
pub enum XfsCmd {
    /// Make an XFS file system on DEVICE with the book's allocation-group count.
    Format {
        device: PathBuf,
        /// CPUs to plan for (default: this machine's).
        #[arg(long)]
        cpus: Option<u32>,
        /// Use this count instead of the computed one.
        #[arg(long)]
        agcount: Option<u32>,
        /// Overwrite an existing file system (mkfs.xfs -f).
        #[arg(long)]
        force: bool,
        /// Print the mkfs.xfs command and do nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the recommended mount options.
    MountOptions {
        /// Add nobarrier (only with a battery-backed write cache).
        #[arg(long)]
        nobarrier: bool,
    },
}

/// The book's count: 4 x CPUs, at least 256, then capped so that each group has at least
/// 16 MiB, and raised so that none exceeds 1 TiB.
pub fn agcount(size_bytes: u64, cpus: u32) -> u32 {
    let want = (4 * cpus.max(1)).max(256) as u64;
    let most = (size_bytes / MIN_AG_BYTES).max(1);
    let least = size_bytes.div_ceil(MAX_AG_BYTES).max(1);
    want.min(most).max(least) as u32
}

pub fn run(c: XfsCmd) -> Result<u8> {
    match c {
        XfsCmd::MountOptions { nobarrier } => {
            if nobarrier {
                eprintln!(
                    "pgstack: warning: nobarrier risks the file system on power loss unless every \
                     write cache is battery- or flash-backed; Linux 4.19 and later no longer accept \
                     it for XFS (the mount fails)"
                );
                println!("{MOUNT_OPTIONS},nobarrier");
            } else {
                println!("{MOUNT_OPTIONS}");
            }
            Ok(0)
        }
        XfsCmd::Format {
            device,
            cpus,
            agcount: fixed,
            force,
            dry_run,
        } => {
            let b = match mount::block_device(&device)? {
                DevKind::Block(b) => b,
                DevKind::Missing => bail!("{}: no such device", device.display()),
                DevKind::NotBlock => bail!("{}: not a block device", device.display()),
            };
            let table = mount::mountinfo(None)?;
            if let Some(m) = table.iter().find(|m| m.dev() == (b.major, b.minor)) {
                bail!(
                    "{} is mounted on {}: not formatting it",
                    device.display(),
                    m.mount_point.display()
                );
            }
            let size = mount::block_size_bytes(b.major, b.minor)?;
            let cpus = cpus.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1)
            });
            let mut n = fixed.unwrap_or_else(|| agcount(size, cpus));
            if fixed.is_none() {
                // Ask mkfs.xfs (-N writes nothing) and step down until it accepts.
                let dl = Instant::now() + Duration::from_secs(60);
                while n > 1 && mount::mkfs_xfs(&device, n, &["-N".into(), "-f".into()], dl).is_err()
                {
                    n -= 1;
                }
            }
            let mut extra = Vec::new();
            if force {
                extra.push("-f".to_string());
            }
            println!(
                "{}: {} MiB, {cpus} CPUs: agcount={n}{}",
                device.display(),
                size >> 20,
                if fixed.is_none() && n < (4 * cpus).max(256) {
                    " (reduced to what the device size allows)"
                } else {
                    ""
                }
            );
            if dry_run {
                println!(
                    "mkfs.xfs {}-d agcount={n} {}",
                    if force { "-f " } else { "" },
                    device.display()
                );
                return Ok(0);
            }
            let out = mount::mkfs_xfs(
                &device,
                n,
                &extra,
                Instant::now() + Duration::from_secs(600),
            )
            .with_context(|| format!("formatting {}", device.display()))?;
            print!("{out}");
            println!("mount options: {MOUNT_OPTIONS}");
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn book_agcount() {
        const G: u64 = 1 << 30;
        assert_eq!(agcount(1024 * G, 2), 256);
        assert_eq!(agcount(1024 * G, 128), 512);
        assert_eq!(agcount(512 << 20, 2), 7);
        assert_eq!(agcount(8 << 20, 2), 1);
        assert_eq!(agcount(20 * G, 2), 256);
        assert_eq!(agcount(1000 * 1024 * G, 2), 1000);
        assert_eq!(agcount(4 * G, 2), 56);
    }
}
