//! The decisions of the `lvm` agent: who owns a VG and whether it may be taken over,
//! what device-mapper says about the expected LVs, and the start/stop/monitor sequences.

use std::path::PathBuf;

use super::{AccessMode, LvmConfig};
use crate::ocf::{Ctx, OcfError, Status};
use crate::sys::lvm::{
    dm_name_in_vg, lv_dm_uuid, Activation, Change, Changed, Completeness, DmDev, Lvm, Overrides,
    Record, VgReport,
};

/// Who holds a VG according to its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Node(String),
    /// A mark that names no node (LVM-activate's bare tag, say).
    Unknown(String),
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::Node(n) => write!(f, "node {n}"),
            Owner::Unknown(m) => write!(f, "an unknown node (mark {m:?})"),
        }
    }
}

/// Whether this node may take a VG from `others`. A member of the cluster is alive and
/// may be using it; an unreadable membership or an unnamed owner cannot be shown to be
/// down. `force` overrides both (the operator made sure).
pub fn may_take_over(
    vg: &str,
    others: &[Owner],
    members: Option<&[String]>,
    force: bool,
) -> Result<(), String> {
    if others.is_empty() || force {
        return Ok(());
    }
    let list = others
        .iter()
        .map(|o| o.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let Some(members) = members else {
        return Err(format!(
            "volume group {vg} is owned by {list} and the cluster membership cannot be read, so the owner may still be using it; not taking it over (force_takeover=true after making sure it is down)"
        ));
    };
    for o in others {
        match o {
            Owner::Node(n) if members.iter().any(|m| m == n) => {
                return Err(format!(
                    "volume group {vg} is owned by node {n}, which is online in the cluster; not taking it over"
                ))
            }
            Owner::Unknown(_) => {
                return Err(format!(
                    "volume group {vg} is owned by {o}; not taking it over (force_takeover=true after making sure it is unused)"
                ))
            }
            Owner::Node(_) => {}
        }
    }
    Ok(())
}

/// What device-mapper says about the expected LVs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Active,
    Inactive,
    Partial(String),
}

/// Compares the dm devices with the record: all expected LVs active, not suspended, on
/// devices that exist; none of them and nothing else of the VG; or something between.
pub fn judge(
    rec: &Record,
    only: Option<&str>,
    dm: &[DmDev],
    exists: &dyn Fn((u32, u32)) -> bool,
) -> Verdict {
    let prefix = format!("LVM-{}", rec.vg_uuid);
    let expected: Vec<&(String, String)> = rec
        .lvs
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n))
        .collect();
    let mut problems = Vec::new();
    let mut active = 0;
    for (name, uuid) in &expected {
        let want = lv_dm_uuid(&rec.vg_uuid, uuid);
        match dm.iter().find(|d| d.uuid == want) {
            None => problems.push(format!("{}/{name} is not active", rec.vg)),
            Some(d) => {
                active += 1;
                if d.suspended {
                    problems.push(format!("{}/{name} ({}) is suspended", rec.vg, d.kname));
                }
                if d.slaves.is_empty() {
                    problems.push(format!(
                        "{}/{name} ({}) has no device below it",
                        rec.vg, d.kname
                    ));
                }
            }
        }
    }
    let any_of_vg = dm.iter().any(|d| d.uuid.starts_with(&prefix));
    if active == 0 && (!any_of_vg || only.is_some()) {
        return Verdict::Inactive;
    }
    if active > 0 {
        for (path, dev) in &rec.pvs {
            if !exists(*dev) {
                problems.push(format!(
                    "physical volume {path} ({}:{}) is gone",
                    dev.0, dev.1
                ));
            }
        }
    }
    if problems.is_empty() {
        Verdict::Active
    } else {
        Verdict::Partial(problems.join("; "))
    }
}

/// The record of what a start activates, from the report.
fn record_of(rep: &VgReport, only: Option<&str>) -> Record {
    Record {
        vg: rep.vg.name.clone(),
        vg_uuid: rep.vg.uuid.clone(),
        lvs: rep
            .lvs
            .iter()
            .filter(|l| only.is_none_or(|o| o == l.name))
            .map(|l| (l.name.clone(), l.uuid.clone()))
            .collect(),
        pvs: rep
            .pvs
            .iter()
            .filter_map(|p| p.dev.map(|d| (p.name.clone(), d)))
            .collect(),
    }
}

fn sys(e: crate::sys::SysError) -> OcfError {
    OcfError::Sys(e)
}

fn target(cfg: &LvmConfig) -> String {
    match &cfg.lv {
        Some(l) => format!("{}/{l}", cfg.vg),
        None => cfg.vg.clone(),
    }
}

/// The overrides every command of this configuration needs; `system_id` mode adds a
/// uname source when lvm.conf configures none.
fn base_overrides<L: Lvm>(lvm: &L, cfg: &LvmConfig, ctx: &Ctx) -> Result<Overrides, OcfError> {
    let mut ov = Overrides::default();
    if cfg.mode == AccessMode::SystemId
        && lvm
            .system_id(&Overrides::default(), ctx.deadline.instant())
            .map_err(sys)?
            .is_none()
    {
        ov.system_id_uname = true;
    }
    Ok(ov)
}

/// What validate-all (and every start, which validates) says of the lvmlockd mode.
pub const LVMLOCKD_UNTESTED: &str =
    "vg_access_mode=lvmlockd: pgstack's lvmlockd mode (lock start, \
     activation with the VG's lock) is not tested against a running lvmlockd with sanlock \
     or dlm; see docs/compatibility.md";

/// Checks the configuration against the VG; returns its report.
pub fn validate<L: Lvm>(lvm: &L, cfg: &LvmConfig, ctx: &Ctx) -> Result<VgReport, OcfError> {
    if cfg.mode == AccessMode::Lvmlockd {
        ctx.log.warn(LVMLOCKD_UNTESTED);
    }
    if !lvm.installed() {
        return Err(OcfError::Installed(
            "lvm is not installed (no lvm in /usr/sbin:/usr/bin:/sbin:/bin)".into(),
        ));
    }
    let ov = base_overrides(lvm, cfg, ctx)?;
    let rep = lvm
        .report(&cfg.vg, &ov, ctx.deadline.instant())
        .map_err(sys)?
        .ok_or_else(|| {
            OcfError::Generic(format!(
                "volume group {} not found: no visible physical volume carries it",
                cfg.vg
            ))
        })?;
    if !cfg.pvs.is_empty() {
        let want: Vec<(u32, u32)> = cfg.pvs.iter().filter_map(|p| lvm.dev_of(p)).collect();
        for pv in rep.pvs.iter().filter(|p| !p.missing) {
            if !pv.dev.is_some_and(|d| want.contains(&d)) {
                return Err(OcfError::Configured(format!(
                    "volume group {} is on {}, which is not one of pv_devices ({})",
                    cfg.vg,
                    pv.name,
                    cfg.pvs
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                )));
            }
        }
    }
    if rep.vg.partial() && !cfg.partial {
        let missing: Vec<&str> = rep
            .pvs
            .iter()
            .filter(|p| p.missing)
            .map(|p| p.uuid.as_str())
            .collect();
        return Err(OcfError::Generic(format!(
            "volume group {} has missing physical volumes ({}); set partial_activation=true to activate it anyway",
            cfg.vg,
            missing.join(", ")
        )));
    }
    match (cfg.mode, rep.vg.shared()) {
        (AccessMode::Lvmlockd, false) => {
            return Err(OcfError::Configured(format!(
                "vg_access_mode=lvmlockd but volume group {} is not a shared VG (lock type {:?})",
                cfg.vg, rep.vg.lock_type
            )))
        }
        (AccessMode::Tagging | AccessMode::SystemId, true) => {
            return Err(OcfError::Configured(format!(
                "volume group {} is a shared lvmlockd VG (lock type {}); use vg_access_mode=lvmlockd",
                cfg.vg, rep.vg.lock_type
            )))
        }
        _ => {}
    }
    if rep.lvs.is_empty() {
        return Err(OcfError::Configured(format!(
            "volume group {} has no logical volume",
            cfg.vg
        )));
    }
    if let Some(lv) = &cfg.lv {
        if !rep.lvs.iter().any(|l| &l.name == lv) {
            return Err(OcfError::Configured(format!(
                "logical volume {lv} is not in volume group {}",
                cfg.vg
            )));
        }
    }
    Ok(rep)
}

fn node_name<L: Lvm>(lvm: &L, ctx: &Ctx) -> String {
    ctx.env
        .meta
        .on_node
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| lvm.node_name(ctx.deadline.instant()))
}

fn owner_tag(cfg: &LvmConfig, node: &str) -> String {
    format!("{}:{node}", cfg.tag)
}

fn changed<L: Lvm>(lvm: &L, c: &Change, ov: &Overrides, ctx: &Ctx) -> Result<(), OcfError> {
    ctx.log.debug(&c.display(ov));
    match lvm.change(c, ov, ctx.deadline.instant()).map_err(sys)? {
        Changed::Done => Ok(()),
        Changed::Failed(why) => Err(OcfError::Generic(why)),
    }
}

/// Takes the ownership mark for this node; returns the overrides activation needs.
fn take_ownership<L: Lvm>(
    lvm: &L,
    cfg: &LvmConfig,
    rep: &VgReport,
    mut ov: Overrides,
    ctx: &Ctx,
) -> Result<Overrides, OcfError> {
    let vg = &cfg.vg;
    match cfg.mode {
        AccessMode::Tagging => {
            let me = node_name(lvm, ctx);
            let mine = owner_tag(cfg, &me);
            let prefix = format!("{}:", cfg.tag);
            let others: Vec<Owner> = rep
                .vg
                .tags
                .iter()
                .filter(|t| **t != mine)
                .filter_map(|t| match t.strip_prefix(&prefix) {
                    Some(n) => Some(Owner::Node(n.to_string())),
                    None if *t == cfg.tag => Some(Owner::Unknown(t.clone())),
                    None => None,
                })
                .collect();
            if !others.is_empty() {
                let members = lvm.members(ctx.deadline.instant());
                may_take_over(vg, &others, members.as_deref(), cfg.force)
                    .map_err(OcfError::Generic)?;
                for o in &others {
                    let tag = match o {
                        Owner::Node(n) => owner_tag(cfg, n),
                        Owner::Unknown(t) => t.clone(),
                    };
                    ctx.log
                        .warn(&format!("taking volume group {vg} over from {o}"));
                    changed(
                        lvm,
                        &Change::DelTag {
                            vg: vg.clone(),
                            tag,
                        },
                        &ov,
                        ctx,
                    )?;
                }
            }
            if !rep.vg.tags.contains(&mine) {
                changed(
                    lvm,
                    &Change::AddTag {
                        vg: vg.clone(),
                        tag: mine.clone(),
                    },
                    &ov,
                    ctx,
                )?;
            }
            ov.volume_list = Some(vec![format!("@{mine}")]);
        }
        AccessMode::SystemId => {
            let me = lvm
                .system_id(&ov, ctx.deadline.instant())
                .map_err(sys)?
                .ok_or_else(|| {
                    OcfError::Configured(
                        "this node has no LVM system ID (lvm systemid is empty)".into(),
                    )
                })?;
            let cur = rep.vg.system_id.clone();
            if cur != me {
                if !cur.is_empty() {
                    let members = lvm.members(ctx.deadline.instant());
                    may_take_over(
                        vg,
                        &[Owner::Node(cur.clone())],
                        members.as_deref(),
                        cfg.force,
                    )
                    .map_err(OcfError::Generic)?;
                    ctx.log.warn(&format!(
                        "taking volume group {vg} over from system ID {cur}"
                    ));
                }
                let mut take = ov.clone();
                if !cur.is_empty() {
                    take.extra_system_ids = vec![cur];
                }
                changed(
                    lvm,
                    &Change::SetSystemId {
                        vg: vg.clone(),
                        id: me,
                    },
                    &take,
                    ctx,
                )?;
            }
            // The system ID is the lock; an activation/volume_list of lvm.conf (kept for
            // the local VGs) must not silently skip this VG.
            ov.volume_list = Some(vec![vg.clone()]);
        }
        AccessMode::Lvmlockd => {
            changed(lvm, &Change::LockStart { vg: vg.clone() }, &ov, ctx)?;
        }
    }
    Ok(ov)
}

/// Removes this node's ownership mark (best effort is the caller's choice).
fn release<L: Lvm>(lvm: &L, cfg: &LvmConfig, ov: &Overrides, ctx: &Ctx) -> Result<(), OcfError> {
    let vg = cfg.vg.clone();
    match cfg.mode {
        AccessMode::Tagging => {
            let tag = owner_tag(cfg, &node_name(lvm, ctx));
            let rep = lvm.report(&vg, ov, ctx.deadline.instant()).map_err(sys)?;
            if rep.is_some_and(|r| r.vg.tags.contains(&tag)) {
                changed(lvm, &Change::DelTag { vg, tag }, ov, ctx)?;
            }
        }
        AccessMode::SystemId => {
            let rep = lvm.report(&vg, ov, ctx.deadline.instant()).map_err(sys)?;
            let me = lvm.system_id(ov, ctx.deadline.instant()).map_err(sys)?;
            if let (Some(r), Some(me)) = (rep, me) {
                if r.vg.system_id == me {
                    changed(
                        lvm,
                        &Change::SetSystemId {
                            vg,
                            id: String::new(),
                        },
                        ov,
                        ctx,
                    )?;
                }
            }
        }
        AccessMode::Lvmlockd => {
            changed(lvm, &Change::LockStop { vg }, ov, ctx)?;
        }
    }
    Ok(())
}

/// Starts from the report validate just read: ownership is decided on it.
pub fn start<L: Lvm>(lvm: &L, cfg: &LvmConfig, rep: VgReport, ctx: &Ctx) -> Result<(), OcfError> {
    let ov = base_overrides(lvm, cfg, ctx)?;
    let rec = record_of(&rep, cfg.lv.as_deref());
    let ov = take_ownership(lvm, cfg, &rep, ov, ctx)?;
    if rep.vg.autoactivation && cfg.mode != AccessMode::Lvmlockd {
        changed(
            lvm,
            &Change::SetAutoactivation {
                vg: cfg.vg.clone(),
                on: false,
            },
            &ov,
            ctx,
        )?;
    }
    let how = match (cfg.mode, cfg.shared) {
        (AccessMode::Lvmlockd, true) => Activation::Shared,
        (AccessMode::Lvmlockd, false) => Activation::Exclusive,
        _ => Activation::Local,
    };
    let mode = if cfg.partial {
        Completeness::Partial
    } else if cfg.degraded {
        Completeness::Degraded
    } else {
        Completeness::Complete
    };
    let act = Change::Activate {
        vg: cfg.vg.clone(),
        lv: cfg.lv.clone(),
        how,
        mode,
    };
    let result = changed(lvm, &act, &ov, ctx).and_then(|()| {
        let dm = lvm.dm().map_err(sys)?;
        match judge(&rec, cfg.lv.as_deref(), &dm, &|d| lvm.block_exists(d)) {
            Verdict::Active => Ok(()),
            Verdict::Inactive => Err(OcfError::Generic(format!(
                "{}: activation reported success but no LV is active",
                target(cfg)
            ))),
            Verdict::Partial(why) => Err(OcfError::Generic(format!(
                "{}: activation incomplete: {why}",
                target(cfg)
            ))),
        }
    });
    if let Err(e) = result {
        // Leave nothing half-done: deactivate and give the VG back.
        let _ = lvm.change(
            &Change::Deactivate {
                vg: cfg.vg.clone(),
                lv: cfg.lv.clone(),
            },
            &ov,
            ctx.deadline.instant(),
        );
        if let Err(e2) = release(lvm, cfg, &ov, ctx) {
            ctx.log.warn(&format!(
                "could not release {} after the failed start: {e2}",
                cfg.vg
            ));
        }
        return Err(e);
    }
    lvm.save_record(&rec).map_err(sys)?;
    ctx.log
        .info(&format!("{} active ({} LV(s))", target(cfg), rec.lvs.len()));
    Ok(())
}

/// The dm devices of the VG: by uuid when the record gives it, by name otherwise.
fn vg_devices<'a>(dm: &'a [DmDev], vg: &str, rec: Option<&Record>) -> Vec<&'a DmDev> {
    dm.iter()
        .filter(|d| match rec {
            Some(r) => d.uuid.starts_with(&format!("LVM-{}", r.vg_uuid)),
            None => d.uuid.starts_with("LVM-") && dm_name_in_vg(&d.name, vg),
        })
        .collect()
}

/// What holds a dm device: mount points and devices stacked on it.
fn holders_of<L: Lvm>(lvm: &L, d: &DmDev) -> String {
    let mut what: Vec<String> = lvm
        .mounts_of(d.dev)
        .into_iter()
        .map(|p| format!("mounted on {}", p.display()))
        .collect();
    what.extend(d.holders.iter().map(|h| format!("held by {h}")));
    if what.is_empty() {
        "open".to_string()
    } else {
        what.join(", ")
    }
}

fn lv_name_of(d: &DmDev, rec: Option<&Record>) -> String {
    rec.and_then(|r| {
        r.lvs
            .iter()
            .find(|(_, u)| d.uuid == lv_dm_uuid(&r.vg_uuid, u))
            .map(|(n, _)| format!("{}/{n}", r.vg))
    })
    .unwrap_or_else(|| d.name.clone())
}

pub fn stop<L: Lvm>(lvm: &L, cfg: &LvmConfig, ctx: &Ctx) -> Result<(), OcfError> {
    let rec = lvm.load_record(&cfg.vg);
    let dm = lvm.dm().map_err(sys)?;
    let ours = |dm: &[DmDev]| -> Vec<DmDev> {
        vg_devices(dm, &cfg.vg, rec.as_ref())
            .into_iter()
            .filter(|d| match (&cfg.lv, &rec) {
                (Some(lv), Some(r)) => r
                    .lvs
                    .iter()
                    .any(|(n, u)| n == lv && d.uuid.starts_with(&lv_dm_uuid(&r.vg_uuid, u))),
                (Some(lv), None) => {
                    d.name == crate::sys::lvm::dm_name(&cfg.vg, lv)
                        || d.name
                            .starts_with(&format!("{}-", crate::sys::lvm::dm_name(&cfg.vg, lv)))
                }
                (None, _) => true,
            })
            .cloned()
            .collect()
    };
    let active = ours(&dm);
    if active.is_empty() && rec.is_none() {
        // Never started here (or already stopped): nothing to do, no LVM command run.
        return Ok(());
    }
    let ov = base_overrides(lvm, cfg, ctx)?;
    if !active.is_empty() {
        let r = lvm
            .change(
                &Change::Deactivate {
                    vg: cfg.vg.clone(),
                    lv: cfg.lv.clone(),
                },
                &ov,
                ctx.deadline.instant(),
            )
            .map_err(sys)?;
        let left = ours(&lvm.dm().map_err(sys)?);
        if !left.is_empty() {
            let what: Vec<String> = left
                .iter()
                .map(|d| format!("{} is {}", lv_name_of(d, rec.as_ref()), holders_of(lvm, d)))
                .collect();
            return Err(OcfError::Generic(format!(
                "cannot deactivate {}: {}",
                target(cfg),
                what.join("; ")
            )));
        }
        if let Changed::Failed(why) = r {
            ctx.log.warn(&format!(
                "deactivation reported failure but nothing is left active: {why}"
            ));
        }
    }
    // Give the VG back unless another LV of it is still active here.
    let rest = vg_devices(&lvm.dm().map_err(sys)?, &cfg.vg, rec.as_ref()).len();
    if rest == 0 {
        if let Err(e) = release(lvm, cfg, &ov, ctx) {
            // The VG may be invisible already (DRBD demoted first): nothing to release.
            ctx.log.warn(&format!(
                "could not remove the ownership of {}: {e}",
                cfg.vg
            ));
        }
        lvm.drop_record(&cfg.vg);
    }
    Ok(())
}

pub fn monitor<L: Lvm>(lvm: &L, cfg: &LvmConfig, ctx: &Ctx) -> Result<Status, OcfError> {
    let dm = lvm.dm().map_err(sys)?;
    let rec = match lvm.load_record(&cfg.vg) {
        Some(r) => r,
        None => {
            if vg_devices(&dm, &cfg.vg, None).is_empty() {
                return Ok(Status::NotRunning(None));
            }
            // Active without a record of ours (activated by hand, or /run was lost):
            // learn the expected LVs from LVM once.
            let ov = base_overrides(lvm, cfg, ctx)?;
            match lvm
                .report(&cfg.vg, &ov, ctx.deadline.instant())
                .map_err(sys)?
            {
                Some(rep) => record_of(&rep, cfg.lv.as_deref()),
                None => {
                    return Err(OcfError::Generic(format!(
                        "device-mapper devices of {} exist but no physical volume of it is visible",
                        cfg.vg
                    )))
                }
            }
        }
    };
    match judge(&rec, cfg.lv.as_deref(), &dm, &|d| lvm.block_exists(d)) {
        Verdict::Inactive => Ok(Status::NotRunning(None)),
        Verdict::Partial(why) => Err(OcfError::Generic(format!(
            "{} is partly active: {why}",
            target(cfg)
        ))),
        Verdict::Active => {
            if ctx.env.check_level >= 10 {
                let devs: Vec<PathBuf> = rec
                    .lvs
                    .iter()
                    .filter(|(n, _)| cfg.lv.as_ref().is_none_or(|o| o == n))
                    .filter_map(|(_, u)| {
                        let want = lv_dm_uuid(&rec.vg_uuid, u);
                        dm.iter()
                            .find(|d| d.uuid == want)
                            .map(|d| PathBuf::from(format!("/dev/{}", d.kname)))
                    })
                    .collect();
                lvm.read_direct(&devs, ctx.deadline.instant())
                    .map_err(|e| OcfError::Generic(format!("{}: {e}", target(cfg))))?;
            }
            Ok(Status::Running)
        }
    }
}
