//! The shared disk: a sparse file on a loop device with XFS (the book's options), carrying
//! one PGDATA. Every node sees the same block device, as nodes see a SAN LUN.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{pgsetup, run};
use super::{Lab, LabError, LabResult};

const IMAGE: &str = "disk.img";
/// XFS refuses file systems under 300 MB without test-only overrides.
const SIZE: u64 = 512 << 20;

fn image(dir: &Path) -> PathBuf {
    dir.join(IMAGE)
}

/// Makes the disk, formats it, initialises PostgreSQL on it; returns the loop device.
/// Nothing stays mounted in the host afterwards (the nodes' namespaces are copies of it).
pub fn create(lab: &Lab) -> LabResult<PathBuf> {
    let img = image(&lab.dir);
    let f = std::fs::File::create(&img)
        .map_err(|e| LabError::io(format!("creating {}", img.display()), e))?;
    f.set_len(SIZE)
        .map_err(|e| LabError::io(format!("sizing {}", img.display()), e))?;
    drop(f);
    let img_s = img.display().to_string();
    let dev = run::ok(
        &["losetup", "--find", "--show", &img_s],
        Duration::from_secs(10),
    )?
    .trim()
    .to_string();
    if !dev.starts_with("/dev/loop") {
        return Err(LabError::Invalid(format!(
            "losetup gave {dev:?} for {img_s}"
        )));
    }
    run::write(&lab.dir.join("loop"), &format!("{dev}\n"))?;
    run::ok(
        &["mkfs.xfs", "-q", "-f", "-K", "-d", "agcount=4", &dev],
        Duration::from_secs(60),
    )?;
    let mnt = lab.mountpoint();
    run::mkdir(&mnt)?;
    let mnt_s = mnt.display().to_string();
    run::ok(
        &[
            "mount",
            "-t",
            "xfs",
            "-o",
            "noatime,nodiratime,logbsize=256k,allocsize=1m",
            &dev,
            &mnt_s,
        ],
        Duration::from_secs(30),
    )?;
    let r = init_pg(lab);
    let u = run::ok(&["umount", &mnt_s], Duration::from_secs(30));
    r?;
    u?;
    Ok(PathBuf::from(dev))
}

fn init_pg(lab: &Lab) -> LabResult<()> {
    let pgdata = lab.pgdata();
    let pg = pgsetup::postgres_user()?;
    run::chown(&lab.mountpoint(), "postgres")?;
    pgsetup::initdb(&pgdata, &pg)?;
    run::append(&pgdata.join("postgresql.conf"), &pgsetup::client_conf())?;
    run::append(&pgdata.join("pg_hba.conf"), &pgsetup::client_hba())?;
    Ok(())
}

/// Unmounts what the lab mounted in the host (an `up` interrupted during initdb).
pub fn remove(dir: &Path) -> LabResult<()> {
    let mnt = dir.join("db");
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mnt.display().to_string();
    for _ in 0..4 {
        if !info
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
        {
            break;
        }
        run::ok(&["umount", &want], Duration::from_secs(30))?;
        let again = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        if !again
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
        {
            break;
        }
    }
    Ok(())
}

/// Loop devices whose backing file is the lab's image.
pub fn loops_of(dir: &Path) -> Vec<String> {
    let img = image(dir).display().to_string();
    let Ok(o) = run::out(
        &[
            "losetup",
            "--noheadings",
            "--output",
            "NAME,BACK-FILE",
            "--list",
        ],
        Duration::from_secs(10),
    ) else {
        return Vec::new();
    };
    o.stdout_str()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let back = w.next()?;
            (back == img || back == format!("{img} (deleted)")).then(|| name.to_string())
        })
        .collect()
}

/// Detaches the lab's loop devices, waiting (bounded) for their last mount to go away.
pub fn detach_loops(dir: &Path) -> LabResult<()> {
    let loops = loops_of(dir);
    for dev in &loops {
        super::poll(
            &format!("detaching {dev} (its last mount goes with the nodes' namespaces)"),
            60.0,
            Duration::from_millis(100),
            || {
                let _ = run::out(&["losetup", "-d", dev], Duration::from_secs(10));
                (!loops_of(dir).contains(dev)).then_some(())
            },
        )?;
    }
    Ok(())
}
