//! Promotion scores written by the OCF core reach a real CIB through Pacemaker's own
//! crm_attribute (on a CIB file), clamped, and their removal works; outside a cluster the
//! failure is not fatal.

use std::collections::BTreeMap;
use std::time::Duration;

use pgstack::ocf::agent::Ctx;
use pgstack::ocf::deadline::Deadline;
use pgstack::ocf::env::OcfEnv;
use pgstack::ocf::log::Logger;
use pgstack::ocf::promotion::{clear_score, set_score};
use pgstack::ocf::Action;
use pgstack::sys::cluster::CrmTools;

const CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0">
  <configuration><crm_config/><nodes><node id="1" uname="n1"/><node id="2" uname="n2"/></nodes><resources/><constraints/></configuration>
  <status><node_state id="1" uname="n1" in_ccm="true" crmd="online" join="member" expected="member"/></status>
</cib>
"#;

fn query(cib: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("crm_attribute")
        .args([
            "-l",
            "reboot",
            "-N",
            "n1",
            "-n",
            "master-drbd_pg",
            "-G",
            "-q",
        ])
        .env("CIB_file", cib)
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn scores_reach_the_cib_clamped_and_go_away() {
    let dir = std::env::temp_dir().join(format!("pgst-scores-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cib = dir.join("cib.xml");
    std::fs::write(&cib, CIB).unwrap();
    let vars: BTreeMap<String, String> = [
        ("OCF_RESOURCE_INSTANCE", "drbd_pg:1"),
        ("OCF_RESKEY_CRM_meta_on_node", "n1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let env = OcfEnv::from_map(vars);
    let log = Logger::silent();
    let ctx = Ctx {
        env: &env,
        action: Action::Monitor,
        deadline: Deadline::from_timeout(Duration::from_secs(20)),
        log: &log,
    };
    let tools = CrmTools {
        cib_file: Some(cib.clone()),
    };
    assert!(set_score(&tools, &ctx, 10_000));
    assert_eq!(query(&cib).as_deref(), Some("10000"));
    assert!(set_score(&tools, &ctx, 5_000_000));
    assert_eq!(query(&cib).as_deref(), Some("1000000"), "not clamped");
    assert!(clear_score(&tools, &ctx));
    assert_eq!(query(&cib), None);
    // No node known and no cluster: reported, not fatal.
    let bare =
        OcfEnv::from_map([("OCF_RESOURCE_INSTANCE".to_string(), "drbd_pg:0".to_string())].into());
    let ctx = Ctx {
        env: &bare,
        action: Action::Monitor,
        deadline: Deadline::from_timeout(Duration::from_secs(20)),
        log: &log,
    };
    assert!(!set_score(&CrmTools::default(), &ctx, 100));
    assert!(log
        .messages()
        .iter()
        .any(|m| m.contains("not in a cluster")));
    std::fs::remove_dir_all(&dir).unwrap();
}
