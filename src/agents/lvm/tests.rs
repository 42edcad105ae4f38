//! The agent's decisions against a simulated LVM: one VG on /dev/drbd0, owned by tags or
//! a system ID, LVs that a mount keeps open.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::*;
use crate::ocf::dispatch;
use crate::ocf::env::OcfEnv;
use crate::ocf::log::Logger;
use crate::ocf::OcfCode;
use crate::sys::lvm::{
    lv_dm_uuid, Change, Changed, DmDev, Lv, Overrides, Pv, Record, Vg, VgReport,
};
use crate::sys::{mount, SysResult};

const VGU: &str = "VGUUIDVGUUIDVGUUIDVGUUIDVGUUID00";

#[derive(Debug, Clone)]
struct World {
    visible: bool,
    tags: Vec<String>,
    system_id: String,
    local_id: Option<String>,
    autoactivation: bool,
    lvs: Vec<&'static str>,
    active: Vec<&'static str>,
    mounted: Vec<&'static str>,
    missing_pv: bool,
    pv_gone: bool,
    suspended: Vec<&'static str>,
    members: Option<Vec<String>>,
    node: String,
    record: Option<Record>,
    log: Vec<String>,
    lvm_runs: u32,
    broken: Option<&'static str>,
    /// lvm.conf has an activation/volume_list naming other VGs only.
    conf_volume_list: bool,
}

struct Fake(RefCell<World>);

fn world() -> World {
    World {
        visible: true,
        tags: vec![],
        system_id: String::new(),
        local_id: None,
        autoactivation: true,
        lvs: vec!["data", "wal"],
        active: vec![],
        mounted: vec![],
        missing_pv: false,
        pv_gone: false,
        suspended: vec![],
        members: Some(vec!["n1".into(), "n2".into()]),
        node: "n1".into(),
        record: None,
        log: vec![],
        lvm_runs: 0,
        broken: None,
        conf_volume_list: false,
    }
}

fn lvu(name: &str) -> String {
    format!("{name:X<32}")
}

impl Lvm for Fake {
    fn report(&self, vg: &str, _ov: &Overrides, _d: Instant) -> SysResult<Option<VgReport>> {
        let mut w = self.0.borrow_mut();
        w.lvm_runs += 1;
        if vg != "vgpg" || !w.visible {
            return Ok(None);
        }
        Ok(Some(VgReport {
            vg: Vg {
                name: "vgpg".into(),
                uuid: VGU.into(),
                system_id: w.system_id.clone(),
                tags: w.tags.clone(),
                attr: if w.missing_pv { "wz-pn-" } else { "wz--n-" }.into(),
                lock_type: String::new(),
                autoactivation: w.autoactivation,
                missing_pvs: u32::from(w.missing_pv),
            },
            lvs: w
                .lvs
                .iter()
                .enumerate()
                .map(|(i, n)| Lv {
                    name: n.to_string(),
                    uuid: lvu(n),
                    attr: "-wi-a-----".into(),
                    active: w.active.contains(n),
                    kernel: w.active.contains(n).then_some((254, i as u32 + 1)),
                    origin: String::new(),
                })
                .collect(),
            pvs: vec![Pv {
                name: "/dev/drbd0".into(),
                uuid: "PV".into(),
                missing: false,
                dev: Some((147, 0)),
            }],
        }))
    }

    fn change(&self, c: &Change, ov: &Overrides, _d: Instant) -> SysResult<Changed> {
        let mut w = self.0.borrow_mut();
        w.lvm_runs += 1;
        w.log.push(c.argv().join(" "));
        match c {
            Change::Activate { lv, .. } => {
                if ov.volume_list.is_none() && w.conf_volume_list {
                    return Ok(Changed::Done);
                }
                if let Some(list) = &ov.volume_list {
                    if !list
                        .iter()
                        .any(|t| t == "vgpg" || w.tags.contains(&t[1..].to_string()))
                    {
                        return Ok(Changed::Done); // LVM skips filtered VGs silently
                    }
                }
                let all = w.lvs.clone();
                for n in all {
                    if lv.as_deref().is_none_or(|l| l == n)
                        && !w.active.contains(&n)
                        && w.broken != Some(n)
                    {
                        w.active.push(n);
                    }
                }
            }
            Change::Deactivate { lv, .. } => {
                let targets: Vec<&str> = w
                    .active
                    .iter()
                    .copied()
                    .filter(|n| lv.as_deref().is_none_or(|l| l == *n))
                    .collect();
                if targets.iter().any(|t| w.mounted.contains(t)) {
                    return Ok(Changed::Failed("exit 5: in use".into()));
                }
                w.active.retain(|n| !targets.contains(n));
            }
            Change::AddTag { tag, .. } => w.tags.push(tag.clone()),
            Change::DelTag { tag, .. } => w.tags.retain(|t| t != tag),
            Change::SetSystemId { id, .. } => {
                let local = w
                    .local_id
                    .clone()
                    .or_else(|| ov.system_id_uname.then(|| w.node.clone()));
                if !w.system_id.is_empty()
                    && Some(&w.system_id) != local.as_ref()
                    && !ov.extra_system_ids.contains(&w.system_id)
                {
                    return Ok(Changed::Failed("foreign".into()));
                }
                w.system_id = id.clone()
            }
            Change::SetAutoactivation { on, .. } => w.autoactivation = *on,
            _ => {}
        }
        Ok(Changed::Done)
    }

    fn system_id(&self, ov: &Overrides, _d: Instant) -> SysResult<Option<String>> {
        let w = self.0.borrow();
        Ok(w.local_id
            .clone()
            .or_else(|| ov.system_id_uname.then(|| w.node.clone())))
    }

    fn installed(&self) -> bool {
        true
    }

    fn dev_of(&self, p: &Path) -> Option<(u32, u32)> {
        match p.to_str() {
            Some("/dev/drbd0") => Some((147, 0)),
            Some("/dev/sdb") => Some((8, 16)),
            _ => None,
        }
    }

    fn dm(&self) -> SysResult<Vec<DmDev>> {
        let w = self.0.borrow();
        Ok(w.lvs
            .iter()
            .enumerate()
            .filter(|(_, n)| w.active.contains(n))
            .map(|(i, n)| DmDev {
                kname: format!("dm-{}", i + 1),
                name: format!("vgpg-{n}"),
                uuid: lv_dm_uuid(VGU, &lvu(n)),
                suspended: w.suspended.contains(n),
                slaves: vec!["drbd0".into()],
                holders: vec![],
                dev: (254, i as u32 + 1),
            })
            .collect())
    }

    fn mounts_of(&self, dev: (u32, u32)) -> Vec<PathBuf> {
        let w = self.0.borrow();
        w.lvs
            .iter()
            .enumerate()
            .filter(|(i, n)| dev == (254, *i as u32 + 1) && w.mounted.contains(n))
            .map(|(_, n)| PathBuf::from(format!("/mnt/{n}")))
            .collect()
    }

    fn block_exists(&self, dev: (u32, u32)) -> bool {
        !(dev == (147, 0) && self.0.borrow().pv_gone)
    }

    fn read_direct(&self, devs: &[PathBuf], _d: Instant) -> Result<(), String> {
        self.0.borrow_mut().log.push(format!("read {devs:?}"));
        Ok(())
    }

    fn fs_type(&self, _dev: &Path) -> Option<&'static str> {
        Some("xfs")
    }

    fn mount(&self, m: &mount::MountSpec, _d: Instant) -> SysResult<()> {
        let mut w = self.0.borrow_mut();
        w.log.push(format!(
            "mount -t {} -o {} {} {}",
            m.fstype,
            m.raw_options,
            m.source,
            m.target.display()
        ));
        Ok(())
    }

    fn members(&self, _d: Instant) -> Option<Vec<String>> {
        self.0.borrow().members.clone()
    }

    fn node_name(&self, _d: Instant) -> String {
        self.0.borrow().node.clone()
    }

    fn load_record(&self, _vg: &str) -> Option<Record> {
        self.0.borrow().record.clone()
    }

    fn save_record(&self, r: &Record) -> SysResult<()> {
        self.0.borrow_mut().record = Some(r.clone());
        Ok(())
    }

    fn drop_record(&self, _vg: &str) {
        self.0.borrow_mut().record = None;
    }
}

fn run(agent: &LvmAgent<Fake>, action: &str, params: &[(&str, &str)]) -> (OcfCode, String) {
    let mut m: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| {
            if k.starts_with("OCF_") {
                (k.to_string(), v.to_string())
            } else {
                (format!("OCF_RESKEY_{k}"), v.to_string())
            }
        })
        .collect();
    m.entry("OCF_RESKEY_CRM_meta_interval".into())
        .or_insert_with(|| "30000".into());
    let env = OcfEnv::from_map(m);
    let o = dispatch::run(agent, action, &env, &Logger::silent());
    (o.code, o.exit_reason.unwrap_or_default())
}

fn agent(w: World) -> LvmAgent<Fake> {
    LvmAgent::new(Fake(RefCell::new(w)))
}

/// An agent over the usual world whose volume group it has started.
fn started() -> LvmAgent<Fake> {
    let a = agent(world());
    assert_eq!(run(&a, "start", &[VG]).0, OcfCode::Success);
    a
}

fn w(a: &LvmAgent<Fake>) -> std::cell::Ref<'_, World> {
    a.lvm.0.borrow()
}

fn wm(a: &LvmAgent<Fake>) -> std::cell::RefMut<'_, World> {
    a.lvm.0.borrow_mut()
}

const VG: (&str, &str) = ("vgname", "vgpg");

/// Asserts that `action` fails (generic error) with a reason that says `says`.
fn fails(a: &LvmAgent<Fake>, action: &str, params: &[(&str, &str)], says: &str) {
    check(a, &[(action, params, OcfCode::ErrGeneric, says)]);
}

/// One call of an action and what it must give: the code and a part of the reason.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], OcfCode, &'a str);

fn check(a: &LvmAgent<Fake>, cases: &[Case]) {
    for (action, params, code, says) in cases {
        let (c, r) = run(a, action, params);
        assert_eq!(c, *code, "{action} {params:?}: {r}");
        assert!(r.contains(says), "{action} {params:?}: {r}");
    }
}

#[test]
fn tagging_start_monitor_stop() {
    let a = agent(world());
    assert_eq!(run(&a, "monitor", &[VG]).0, OcfCode::NotRunning);
    assert_eq!(
        w(&a).lvm_runs,
        0,
        "monitor of an inactive VG runs no LVM command"
    );
    assert_eq!(run(&a, "start", &[VG]), (OcfCode::Success, String::new()));
    assert_eq!(w(&a).tags, ["pacemaker:n1"]);
    assert!(!w(&a).autoactivation);
    assert_eq!(w(&a).active, ["data", "wal"]);
    let runs = w(&a).lvm_runs;
    assert_eq!(run(&a, "monitor", &[VG]).0, OcfCode::Success);
    assert_eq!(
        run(&a, "monitor", &[VG, ("OCF_CHECK_LEVEL", "10")]).0,
        OcfCode::Success
    );
    assert_eq!(w(&a).lvm_runs, runs, "monitor runs no LVM command");
    assert!(w(&a).log.last().unwrap().contains("/dev/dm-1"));
    // start again is harmless
    assert_eq!(run(&a, "start", &[VG]).0, OcfCode::Success);
    assert_eq!(w(&a).tags, ["pacemaker:n1"]);
    assert_eq!(run(&a, "stop", &[VG]).0, OcfCode::Success);
    assert!(w(&a).tags.is_empty() && w(&a).active.is_empty());
    assert!(w(&a).record.is_none());
    assert_eq!(run(&a, "monitor", &[VG]).0, OcfCode::NotRunning);
    let runs = w(&a).lvm_runs;
    assert_eq!(run(&a, "stop", &[VG]).0, OcfCode::Success);
    assert_eq!(
        w(&a).lvm_runs,
        runs,
        "stop of a stopped VG runs no LVM command"
    );
}

#[test]
fn volgrpname_form_works_and_conflicts_are_refused() {
    let a = agent(world());
    assert_eq!(
        run(&a, "start", &[("volgrpname", "vgpg")]).0,
        OcfCode::Success
    );
    assert_eq!(
        run(
            &a,
            "monitor",
            &[("volgrpname", "vgpg"), ("exclusive", "true")]
        )
        .0,
        OcfCode::Success
    );
    use OcfCode::ErrConfigured;
    #[rustfmt::skip]
    check(&a, &[
        ("validate-all", &[("vgname", "vgpg"), ("volgrpname", "other")], ErrConfigured, "volgrpname"),
        ("validate-all", &[], ErrConfigured, "vgname"),
        ("validate-all", &[("volgrpname", "vgpg"), ("exclusive", "false")], ErrConfigured, "exclusive"),
    ]);
}

#[test]
fn a_vg_owned_by_an_online_node_is_refused() {
    let mut wo = world();
    wo.tags = vec!["pacemaker:n2".into()];
    let a = agent(wo);
    fails(&a, "start", &[VG], "owned by node n2, which is online");
    assert!(w(&a).active.is_empty());
    assert_eq!(
        w(&a).tags,
        ["pacemaker:n2"],
        "the owner's tag is left alone"
    );
    // Membership unknown: refused too.
    wm(&a).members = None;
    fails(&a, "start", &[VG], "membership cannot be read");
    // n2 left the cluster (fenced): taken over.
    wm(&a).members = Some(vec!["n1".into()]);
    assert_eq!(run(&a, "start", &[VG]).0, OcfCode::Success);
    assert_eq!(w(&a).tags, ["pacemaker:n1"]);
    // Forced.
    let mut wo = world();
    wo.tags = vec!["pacemaker:n2".into()];
    let a = agent(wo);
    assert_eq!(
        run(&a, "start", &[VG, ("force_takeover", "true")]).0,
        OcfCode::Success
    );
    // A bare tag names nobody.
    let mut wo = world();
    wo.tags = vec!["pacemaker".into()];
    let a = agent(wo);
    fails(&a, "start", &[VG], "unknown node");
}

#[test]
fn system_id_mode_records_the_owner_and_refuses_a_live_one() {
    let mut wo = world();
    wo.system_id = "n2".into();
    let a = agent(wo);
    let p = [VG, ("vg_access_mode", "system_id")];
    fails(&a, "start", &p, "owned by node n2");
    assert_eq!(w(&a).system_id, "n2");
    wm(&a).members = Some(vec!["n1".into()]);
    assert_eq!(run(&a, "start", &p).0, OcfCode::Success);
    assert_eq!(w(&a).system_id, "n1");
    assert!(w(&a)
        .log
        .iter()
        .any(|l| l == "vgchange -y --systemid n1 vgpg"));
    assert_eq!(run(&a, "stop", &p).0, OcfCode::Success);
    assert_eq!(w(&a).system_id, "", "stop removes our system ID");
}

#[test]
fn a_volume_list_of_lvm_conf_does_not_skip_the_managed_vg() {
    for mode in ["tagging", "system_id"] {
        let mut wo = world();
        wo.conf_volume_list = true;
        let a = agent(wo);
        let p = [VG, ("vg_access_mode", mode)];
        assert_eq!(
            run(&a, "start", &p),
            (OcfCode::Success, String::new()),
            "{mode}"
        );
        assert_eq!(w(&a).active, ["data", "wal"], "{mode}");
    }
}

#[test]
fn stop_names_the_open_lv_and_keeps_ownership() {
    let a = started();
    wm(&a).mounted = vec!["data"];
    fails(&a, "stop", &[VG], "vgpg/data is mounted on /mnt/data");
    assert_eq!(w(&a).tags, ["pacemaker:n1"]);
    wm(&a).mounted.clear();
    assert_eq!(run(&a, "stop", &[VG]).0, OcfCode::Success);
    assert!(w(&a).tags.is_empty());
}

#[test]
fn partial_states_are_failures() {
    let a = started();
    wm(&a).active = vec!["data"];
    fails(&a, "monitor", &[VG], "vgpg/wal is not active");
    wm(&a).active = vec!["data", "wal"];
    wm(&a).suspended = vec!["wal"];
    fails(&a, "monitor", &[VG], "suspended");
    wm(&a).suspended.clear();
    wm(&a).pv_gone = true;
    fails(&a, "monitor", &[VG], "/dev/drbd0");
    // Only one LV managed: the other's state does not matter.
    wm(&a).pv_gone = false;
    wm(&a).active = vec!["data"];
    assert_eq!(
        run(&a, "monitor", &[VG, ("lvname", "data")]).0,
        OcfCode::Success
    );
}

#[test]
fn an_incomplete_activation_is_undone() {
    let mut wo = world();
    wo.broken = Some("wal");
    let a = agent(wo);
    fails(
        &a,
        "start",
        &[VG],
        "activation incomplete: vgpg/wal is not active",
    );
    assert!(w(&a).active.is_empty(), "data was deactivated again");
    assert!(w(&a).tags.is_empty(), "the tag was removed again");
    assert!(w(&a).record.is_none());
}

#[test]
fn bad_input() {
    let a = agent(world());
    use OcfCode::{ErrConfigured, ErrGeneric, Success};
    let v = "validate-all";
    #[rustfmt::skip]
    check(&a, &[
        (v, &[("vgname", "nosuch")], ErrGeneric, "nosuch not found"),
        (v, &[VG, ("pv_devices", "/dev/sdb")], ErrConfigured, "/dev/drbd0, which is not one of pv_devices"),
        (v, &[VG, ("pv_devices", "/dev/drbd0")], Success, ""),
        (v, &[VG, ("lvname", "nosuch")], ErrConfigured, "nosuch is not in volume group vgpg"),
        (v, &[VG, ("vg_access_mode", "clvmd")], ErrConfigured, ""),
        (v, &[VG, ("activation_mode", "shared")], ErrConfigured, ""),
        (v, &[VG, ("vg_access_mode", "lvmlockd")], ErrConfigured, ""), // not a shared VG
    ]);
    for bad in ["vg;reboot", "$(id)", "a b", "-x", "vg/lv", "vg\"x"] {
        check(&a, &[(v, &[("vgname", bad)], ErrConfigured, "vgname")]);
    }
    wm(&a).missing_pv = true;
    #[rustfmt::skip]
    check(&a, &[
        (v, &[VG], ErrGeneric, "partial_activation"),
        (v, &[VG, ("partial_activation", "true")], Success, ""),
    ]);
}

#[test]
fn validate_all_says_the_lvmlockd_mode_is_untested() {
    let a = agent(world());
    let log = Logger::silent();
    let env = OcfEnv::from_pairs(&[
        ("OCF_RESKEY_vgname", "vgpg"),
        ("OCF_RESKEY_vg_access_mode", "lvmlockd"),
    ]);
    dispatch::run(&a, "validate-all", &env, &log);
    assert!(
        log.messages()
            .iter()
            .any(|m| m.contains("lvmlockd") && m.contains("not tested")),
        "{:?}",
        log.messages()
    );
    let log = Logger::silent();
    let env = OcfEnv::from_pairs(&[("OCF_RESKEY_vgname", "vgpg")]);
    dispatch::run(&a, "validate-all", &env, &log);
    assert!(!log.messages().iter().any(|m| m.contains("lvmlockd")));
}

#[test]
fn probe_of_an_invisible_vg_is_not_running() {
    // A DRBD Secondary: the PV cannot be read, no dm device exists.
    let mut wo = world();
    wo.visible = false;
    let a = agent(wo);
    assert_eq!(
        run(&a, "monitor", &[VG, ("OCF_RESKEY_CRM_meta_interval", "0")]).0,
        OcfCode::NotRunning
    );
    assert_eq!(run(&a, "stop", &[VG]).0, OcfCode::Success);
    assert_eq!(w(&a).lvm_runs, 0);
    // Active without our record (activated by hand): LVM tells what is expected.
    let mut wo = world();
    wo.active = vec!["data"];
    let a = agent(wo);
    fails(&a, "monitor", &[VG], "vgpg/wal is not active");
}

#[test]
fn takeover_rules() {
    let m = vec!["n1".to_string()];
    assert!(may_take_over("v", &[], None, false).is_ok());
    assert!(may_take_over("v", &[Owner::Node("n2".into())], Some(&m), false).is_ok());
    assert!(may_take_over("v", &[Owner::Node("n1".into())], Some(&m), false).is_err());
    assert!(may_take_over("v", &[Owner::Node("n2".into())], None, false).is_err());
    assert!(may_take_over("v", &[Owner::Node("n2".into())], None, true).is_ok());
    assert!(may_take_over("v", &[Owner::Unknown("x".into())], Some(&m), false).is_err());
}
