//! `ocf:pgstack:lvm`: exclusive activation of one LVM volume group (or one of its logical
//! volumes), the replacement of `ocf:heartbeat:LVM-activate` and of the book's
//! `ocf:heartbeat:LVM`, with both parameter sets (`vgname` or `volgrpname`).
//!
//! **Manages** the activation of every LV of the VG (or `lvname`) on this node, and the
//! VG's ownership mark: an owner tag `<tag>:<node>` (tagging, activation restricted to it
//! with `--config activation{volume_list=...}`), the VG system ID (system_id), or the
//! lvmlockd lock (lvmlockd). lvm.conf is never edited: every LVM command gets its settings
//! with `--config`.
//!
//! **Actions**
//! - `start`: validates, takes ownership (refusing a VG owned by a node that is a member
//!   of the cluster, or whose owner cannot be told to be down, unless `force_takeover`),
//!   disables the VG's autoactivation, activates, then checks in device-mapper that every
//!   expected LV is active; an incomplete activation is undone and fails. What was
//!   activated is recorded in `/run/pgstack/lvm/<vg>.state`.
//! - `stop`: deactivates; if an LV stays active the action fails naming it and what holds
//!   it (a mount point, a device stacked on it). Then the ownership mark is removed.
//! - `monitor`: runs no LVM command: device-mapper state from `/sys/block/dm-*` against
//!   the record. 0 when every expected LV is active, not suspended and its PVs present;
//!   7 when none is (also a probe on a node whose PV is absent, a DRBD Secondary); 1 for
//!   anything in between. Depth 10 adds an O_DIRECT read of each LV within the deadline.
//! - `validate-all`: names (no metacharacters), the VG visible, on the expected PVs
//!   (`pv_devices`), not partial unless `partial_activation`, its lock type matching
//!   `vg_access_mode`, `lvname` in it.
//!
//! **Side effects**: the LVs' device-mapper devices, the VG's tags / system ID /
//! autoactivation property / lvmlockd lockspace, the record file. Not promotable.

mod actions;
pub mod snapshot;

use std::cell::RefCell;
use std::path::PathBuf;

use crate::ocf::agent::FromParams;
use crate::ocf::metadata::{ActionSpec, AgentInfo};
use crate::ocf::params::{ParamError, ParamSpec, Params};
use crate::ocf::{Action, Agent, Ctx, OcfError, Status};
use crate::sys::lvm::{valid_name, valid_tag, Lvm, VgReport};

pub use actions::{judge, may_take_over, Owner, Verdict};

static PARAMS: &[ParamSpec] = &[
    ParamSpec::string(
        "vgname",
        "Volume group",
        "The name of the volume group to activate (ocf:heartbeat:LVM-activate). One of \
         vgname and volgrpname is required.",
    )
    .unique(),
    ParamSpec::string(
        "volgrpname",
        "Volume group (LVM form)",
        "The same as vgname, under the name ocf:heartbeat:LVM uses.",
    )
    .unique(),
    ParamSpec::string(
        "lvname",
        "Only this logical volume",
        "When set, only this LV of the volume group is activated, monitored and deactivated.",
    ),
    ParamSpec::string(
        "vg_access_mode",
        "How exclusivity is ensured",
        "tagging: an owner tag <tag>:<node> on the VG, activation restricted to it; a VG \
         tagged by a node that is a member of the cluster is never taken over. system_id: \
         the VG's system ID names this node (from lvm.conf, or uname when lvm.conf sets no \
         source); a VG whose system ID names a cluster member is never taken over. \
         lvmlockd: the lvmlockd lock of a shared VG (not tested against a running \
         lvmlockd; validate-all says so).",
    )
    .default("tagging"),
    ParamSpec::string(
        "activation_mode",
        "exclusive or shared",
        "exclusive (the default) or shared; shared needs vg_access_mode=lvmlockd (a \
         cluster file system).",
    )
    .default("exclusive"),
    ParamSpec::string(
        "tag",
        "Tag prefix for tagging mode",
        "The owner tag is <tag>:<node name>.",
    )
    .default("pacemaker"),
    ParamSpec::boolean(
        "partial_activation",
        "Activate with PVs missing",
        "Activate even when physical volumes are missing (LVM's activation mode partial); \
         without it a VG with missing PVs is refused.",
    )
    .default("false"),
    ParamSpec::boolean(
        "degraded_activation",
        "Activate degraded RAID LVs",
        "Activate RAID LVs that miss a leg (LVM's activation mode degraded). Without it \
         activation must be complete.",
    )
    .default("false"),
    ParamSpec::string(
        "pv_devices",
        "Expected physical volumes",
        "Space-separated device paths the VG must live on (e.g. /dev/drbd0). A VG found \
         on any other device is refused, so a copy of the VG on the backing device of DRBD \
         is never activated.",
    ),
    ParamSpec::boolean(
        "force_takeover",
        "Take the VG from another owner",
        "Take over a VG owned by another node even when that node is a member of the \
         cluster or the membership cannot be read. Only after making sure the owner has \
         stopped using it.",
    )
    .default("false"),
    ParamSpec::boolean(
        "exclusive",
        "Exclusive activation (LVM form)",
        "Accepted for ocf:heartbeat:LVM: activation is always exclusive. false (activation \
         on several nodes) is refused; shared activation is activation_mode=shared with \
         vg_access_mode=lvmlockd.",
    )
    .default("true"),
];

static ACTIONS: &[ActionSpec] = &[
    ActionSpec::new(Action::Start, 30),
    ActionSpec::new(Action::Stop, 30),
    ActionSpec::new(Action::Monitor, 30).interval(30).depth(0),
    ActionSpec::new(Action::Monitor, 30).interval(61).depth(10),
    ActionSpec::new(Action::MetaData, 5),
    ActionSpec::new(Action::ValidateAll, 20),
];

pub static INFO: AgentInfo = AgentInfo {
    name: "lvm",
    shortdesc: "LVM volume group, activated exclusively",
    longdesc: "Activates one LVM volume group (or one logical volume of it) on one node at \
        a time and checks that every LV is really active. Ownership is a tag naming the \
        node (tagging), the VG system ID (system_id) or the lvmlockd lock; a VG another \
        cluster member owns is never taken. Monitor reads device-mapper state from sysfs \
        and runs no LVM command. Parameter names follow ocf:heartbeat:LVM-activate; \
        volgrpname (ocf:heartbeat:LVM) is accepted for vgname.",
    params: PARAMS,
    actions: ACTIONS,
    needs_root: true,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    SystemId,
    Tagging,
    Lvmlockd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvmConfig {
    pub vg: String,
    pub lv: Option<String>,
    pub mode: AccessMode,
    pub shared: bool,
    pub tag: String,
    pub partial: bool,
    pub degraded: bool,
    pub pvs: Vec<PathBuf>,
    pub force: bool,
}

fn name_param(p: &Params, key: &'static str) -> Result<Option<String>, ParamError> {
    match p.str(key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if valid_name(v) => Ok(Some(v.to_string())),
        Some(v) => Err(ParamError::invalid(
            key,
            v,
            "letters, digits, '_', '.', '+' and '-' only, not starting with '-'",
        )),
    }
}

fn with_default(p: &Params, key: &'static str) -> String {
    p.str_value(key).trim().to_string()
}

pub fn configure(p: &Params) -> Result<LvmConfig, ParamError> {
    let vg = match (name_param(p, "vgname")?, name_param(p, "volgrpname")?) {
        (Some(a), Some(b)) if a != b => {
            return Err(ParamError::invalid(
                "volgrpname",
                b,
                format!("differs from vgname={a}; set only one of them"),
            ))
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => return Err(ParamError::Missing { name: "vgname" }),
    };
    let lv = name_param(p, "lvname")?;
    let mode = match with_default(p, "vg_access_mode").as_str() {
        "tagging" => AccessMode::Tagging,
        "system_id" => AccessMode::SystemId,
        "lvmlockd" => AccessMode::Lvmlockd,
        other => {
            return Err(ParamError::invalid(
                "vg_access_mode",
                other,
                "one of tagging, system_id, lvmlockd (clvmd is not supported)",
            ))
        }
    };
    let shared = match with_default(p, "activation_mode").as_str() {
        "exclusive" => false,
        "shared" if mode == AccessMode::Lvmlockd => true,
        "shared" => {
            return Err(ParamError::invalid(
                "activation_mode",
                "shared",
                "shared activation needs vg_access_mode=lvmlockd",
            ))
        }
        other => {
            return Err(ParamError::invalid(
                "activation_mode",
                other,
                "exclusive or shared",
            ))
        }
    };
    if !p.bool("exclusive") {
        return Err(ParamError::invalid(
            "exclusive",
            "false",
            "activation is always exclusive; for shared activation use activation_mode=shared with vg_access_mode=lvmlockd",
        ));
    }
    let tag = with_default(p, "tag");
    if !valid_tag(&tag) || tag.contains(':') {
        return Err(ParamError::invalid(
            "tag",
            tag,
            "letters, digits, '_', '.', '+' and '-' only",
        ));
    }
    let mut pvs = Vec::new();
    for d in p.str("pv_devices").unwrap_or_default().split_whitespace() {
        if !d.starts_with("/dev/") || d.contains("..") {
            return Err(ParamError::invalid(
                "pv_devices",
                d,
                "device paths below /dev/ only",
            ));
        }
        pvs.push(PathBuf::from(d));
    }
    Ok(LvmConfig {
        vg,
        lv,
        mode,
        shared,
        tag,
        partial: p.bool("partial_activation"),
        degraded: p.bool("degraded_activation"),
        pvs,
        force: p.bool("force_takeover"),
    })
}

impl FromParams for LvmConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
}

pub struct LvmAgent<L: Lvm> {
    lvm: L,
    /// The report validate read, for the start that follows it in the same process.
    validated: RefCell<Option<VgReport>>,
}

impl<L: Lvm> LvmAgent<L> {
    pub fn new(lvm: L) -> Self {
        LvmAgent {
            lvm,
            validated: RefCell::new(None),
        }
    }
}

impl<L: Lvm> Agent for LvmAgent<L> {
    type Config = LvmConfig;

    fn info(&self) -> &'static AgentInfo {
        &INFO
    }

    fn validate(&self, cfg: &LvmConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let rep = actions::validate(&self.lvm, cfg, ctx)?;
        *self.validated.borrow_mut() = Some(rep);
        Ok(())
    }

    fn start(&self, cfg: &LvmConfig, ctx: &Ctx) -> Result<(), OcfError> {
        let rep = match self.validated.borrow_mut().take() {
            Some(r) => r,
            None => actions::validate(&self.lvm, cfg, ctx)?,
        };
        actions::start(&self.lvm, cfg, rep, ctx)
    }

    fn stop(&self, cfg: &LvmConfig, ctx: &Ctx) -> Result<(), OcfError> {
        actions::stop(&self.lvm, cfg, ctx)
    }

    fn monitor(&self, cfg: &LvmConfig, ctx: &Ctx) -> Result<Status, OcfError> {
        actions::monitor(&self.lvm, cfg, ctx)
    }
}

#[cfg(test)]
mod tests;
