//! Real DRBD 8.4 between two User-Mode-Linux guests, and the host itself as the node
//! without the DRBD kernel module.

mod common;

use std::time::Duration;

use common::uml::{UmlPair, DRBD_R0 as DRBD_CONF};

/// The guests need root and Debian's user-mode-linux: without them a test fails with the
/// reason instead of passing without having run.
fn require_uml() {
    common::require_root();
    common::require_file("/usr/bin/linux.uml");
    common::require_file("/usr/bin/uml_switch");
}

/// One pair of guests at a time: two cores do not boot and sync two pairs quickly.
static ONE_PAIR: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn boot(disk_mb: u64) -> (std::sync::MutexGuard<'static, ()>, UmlPair) {
    let guard = ONE_PAIR.lock().unwrap_or_else(|e| e.into_inner());
    (guard, UmlPair::boot("drbd", "256M", disk_mb))
}

/// LVM below DRBD on both guests, metadata, up, initial sync with n1 Primary.
fn provision(p: &mut UmlPair) {
    p.provision_drbd(DRBD_CONF, 64)
}

#[test]
fn harness_role_swap_keeps_the_data() {
    require_uml();
    // Timed from after the lock: another test's pair may hold it first.
    let _one = ONE_PAIR.lock().unwrap_or_else(|e| e.into_inner());
    let t = std::time::Instant::now();
    let mut p = UmlPair::boot("drbd", "256M", 256);
    provision(&mut p);
    let synced = t.elapsed();
    // The bound catches a hang, not a busy machine: 6-10 s on an idle 2-core machine,
    // 28-33 s measured while other work loaded it to a load average of 15.
    assert!(
        synced < Duration::from_secs(60),
        "cold start to both UpToDate took {synced:?}"
    );
    let sum = p.ok(
        0,
        "set -e; export TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1
        mkfs.xfs -f -q /dev/drbd0; mkdir -p /mnt/r0; mount -t xfs /dev/drbd0 /mnt/r0
        dd if=/dev/urandom of=/mnt/r0/payload bs=1M count=8 status=none
        md5sum /mnt/r0/payload | cut -d' ' -f1; umount /mnt/r0; drbdadm secondary r0",
    );
    let sum2 = p.ok(
        1,
        "set -e; drbdadm primary r0; mkdir -p /mnt/r0; mount -t xfs /dev/drbd0 /mnt/r0
        md5sum /mnt/r0/payload | cut -d' ' -f1; umount /mnt/r0; drbdadm secondary r0",
    );
    assert_eq!(sum.trim(), sum2.trim());
    assert_eq!(sum.trim().len(), 32);
    eprintln!("both UpToDate, n1 Primary after {synced:?}");
}

/// A file removed when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The host has no DRBD module and cannot load one (ENVIRONMENT.md): it is a cluster node
/// where DRBD is not installed. Nothing is running there, so a probe says 7 and a stop 0,
/// without trying to load the module; only start fails, with 5. `all` (every resource, to
/// drbdadm) is refused as a resource name by the agent, the CIB templates and the CLI.
#[test]
fn a_node_without_the_module_and_the_name_all() {
    common::require_root();
    assert!(
        !std::path::Path::new("/proc/drbd").exists(),
        "this test needs a node without the DRBD module, and /proc/drbd exists here"
    );
    let conf =
        TempFile(std::env::temp_dir().join(format!("pgst-drbd-nomod-{}.conf", std::process::id())));
    std::fs::write(&conf.0, DRBD_CONF).unwrap();
    let conf_path = conf.0.to_str().unwrap().to_string();
    let agent = common::agent_path("drbd");
    let meta: &[(&str, &str)] = &[
        ("OCF_RESKEY_CRM_meta_clone_max", "2"),
        ("OCF_RESKEY_CRM_meta_clone_node_max", "1"),
        ("OCF_RESKEY_CRM_meta_master_max", "1"),
        ("OCF_RESKEY_CRM_meta_master_node_max", "1"),
        ("OCF_RESKEY_CRM_meta_notify", "true"),
    ];
    let run = |res: &str, action: &str, interval_ms: &str| {
        let mut extra = meta.to_vec();
        extra.push(("OCF_RESKEY_CRM_meta_interval", interval_ms));
        let t = std::time::Instant::now();
        let r = common::ocf(
            &[],
            &agent,
            action,
            &[("drbd_resource", res), ("drbdconf", &conf_path)],
            &extra,
        );
        eprintln!(
            "{res} {action} (interval {interval_ms}): {} in {:?}",
            r.code,
            t.elapsed()
        );
        r
    };
    let mut failures = Vec::new();
    let mut expect = |res: &str, action: &str, interval: &str, code: i32, reason: &str| {
        let r = run(res, action, interval);
        let why = r.exit_reason().unwrap_or_default();
        if r.code != code || !why.contains(reason) || r.stderr.contains("modprobe") {
            failures.push(format!(
                "{res} {action} (interval {interval}): exit {} (want {code}, reason with {reason:?})\n{}",
                r.code, r.stderr
            ));
        }
    };
    expect("r0", "monitor", "0", 7, "");
    expect("r0", "monitor", "31000", 7, "");
    expect("r0", "stop", "0", 0, "");
    expect("r0", "start", "0", 5, "drbd kernel module");
    expect("r0", "validate-all", "0", 5, "drbd kernel module");
    expect("all", "monitor", "0", 7, "");
    expect("all", "stop", "0", 0, "");
    expect("all", "start", "0", 6, "every DRBD resource");
    expect("all", "validate-all", "0", 6, "every DRBD resource");
    // Hostile names: never a failure of a probe or a stop, always 6 for validate-all.
    for bad in [
        " all ",
        "a;b",
        "$(reboot)",
        "-c",
        "../r0",
        "r0\nr1",
        ".r0",
        "r0 r1",
        "",
    ] {
        expect(bad, "monitor", "0", 7, "");
        expect(bad, "stop", "0", 0, "");
        expect(bad, "validate-all", "0", 6, "");
    }

    // The configuration reached through a symlink or a `..` spelling is the same file:
    // validation gets past it to the module check.
    let link = TempFile(conf.0.with_extension("link"));
    std::os::unix::fs::symlink(&conf.0, &link.0).unwrap();
    let dir = conf.0.parent().unwrap();
    let dotdot = dir
        .join("..")
        .join(dir.file_name().unwrap())
        .join(conf.0.file_name().unwrap());
    for c in [link.0.clone(), dotdot] {
        let c = c.to_str().unwrap();
        let r = common::ocf(
            &[],
            &agent,
            "validate-all",
            &[("drbd_resource", "r0"), ("drbdconf", c)],
            meta,
        );
        let why = r.exit_reason().unwrap_or_default();
        if r.code != 5 || !why.contains("drbd kernel module") {
            failures.push(format!("drbdconf={c}: exit {} ({why})", r.code));
        }
    }

    let bin = common::bin();
    for argv in [
        vec![
            "drbd",
            "detach-node",
            "--resource",
            "all",
            "--good",
            "n1",
            "--node",
            "n2",
            "--destroy",
            "--yes",
        ],
        vec![
            "drbd",
            "detach-node",
            "--resource",
            "all",
            "--good",
            "n1",
            "--node",
            "n1",
        ],
        vec![
            "drbd",
            "split-brain",
            "--resource",
            "all",
            "--survivor",
            "n1",
            "--node",
            "n2",
            "--yes",
        ],
        vec![
            "cib",
            "render",
            "--template",
            "advanced",
            "--set",
            "drbd_resource=all",
        ],
    ] {
        let mut full = vec![bin.as_str()];
        full.extend(&argv);
        let out = common::run(&full, &[], Duration::from_secs(30));
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1)
            || !err.contains("every DRBD resource")
            || !out.stdout.is_empty()
        {
            failures.push(format!(
                "pgstack {}: {} accepted or unclear:\n{err}",
                argv.join(" "),
                out.status
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

const AGENT_ENV: &str = "OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=drbd_pg:0 HA_LOGFACILITY=none \
OCF_RESKEY_drbd_resource=r0 OCF_RESKEY_CRM_meta_clone_max=2 OCF_RESKEY_CRM_meta_clone_node_max=1 \
OCF_RESKEY_CRM_meta_master_max=1 OCF_RESKEY_CRM_meta_master_node_max=1 OCF_RESKEY_CRM_meta_notify=true";

/// Runs an action of the installed drbd agent in guest `i`; returns its exit code.
fn agent(p: &mut UmlPair, i: usize, action: &str, extra: &str) -> (i32, String) {
    let agent = common::agent_path("drbd");
    let r = p.exec(
        i,
        &format!("env {AGENT_ENV} {extra} {agent} {action}"),
        Duration::from_secs(120),
    );
    (r.rc, r.out)
}

#[test]
fn agent_passes_ocf_tester_and_swaps_roles() {
    require_uml();
    let (_one, mut p) = boot(256);
    provision(&mut p);
    p.ok(0, "drbdadm secondary r0");
    // ocf-tester on n1 while n2 stays up and connected.
    let path = common::agent_path("drbd");
    let r = p.exec(
        0,
        &format!("ocf-tester -v -n drbd_pg -o drbd_resource=r0 -o CRM_meta_clone_max=2 -o CRM_meta_clone_node_max=1 \
            -o CRM_meta_master_max=1 -o CRM_meta_master_node_max=1 -o CRM_meta_notify=true {path}"),
        Duration::from_secs(300),
    );
    std::fs::write(common::artifacts().join("ocf-tester-drbd.log"), &r.out).unwrap();
    assert_eq!(r.rc, 0, "ocf-tester failed:\n{}", r.out);
    assert!(r.out.contains("passed all tests"), "{}", r.out);

    // The agent's own view, and a role swap through it with the data checked.
    assert_eq!(
        agent(&mut p, 0, "monitor", "").0,
        7,
        "ocf-tester leaves the resource stopped"
    );
    assert_eq!(agent(&mut p, 0, "start", "").0, 0);
    p.ok(0, "i=0; until grep -q ds:UpToDate/UpToDate /proc/drbd; do sleep 0.2; i=$((i+1)); [ $i -gt 300 ] && exit 1; done; true");
    assert_eq!(agent(&mut p, 0, "monitor", "").0, 0);
    assert_eq!(agent(&mut p, 0, "promote", "").0, 0);
    assert_eq!(agent(&mut p, 0, "monitor", "").0, 8);
    // The peer may not be promoted while n1 is Primary.
    let (code, out) = agent(&mut p, 1, "promote", "");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("still Primary"), "{out}");
    let sum = p.ok(
        0,
        "set -e; export TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1
        mkfs.xfs -f -q /dev/drbd0; mkdir -p /mnt/r0; mount -t xfs /dev/drbd0 /mnt/r0
        dd if=/dev/urandom of=/mnt/r0/payload bs=1M count=4 status=none
        md5sum /mnt/r0/payload | cut -d' ' -f1; umount /mnt/r0",
    );
    assert_eq!(agent(&mut p, 0, "demote", "").0, 0);
    assert_eq!(agent(&mut p, 0, "monitor", "").0, 0);
    assert_eq!(agent(&mut p, 1, "promote", "").0, 0);
    assert_eq!(agent(&mut p, 1, "monitor", "").0, 8);
    let sum2 = p.ok(1, "set -e; mkdir -p /mnt/r0; mount -t xfs /dev/drbd0 /mnt/r0; md5sum /mnt/r0/payload | cut -d' ' -f1; umount /mnt/r0");
    assert_eq!(sum.trim(), sum2.trim());
    // Stop of a Primary demotes first; stop again is a no-op.
    assert_eq!(agent(&mut p, 1, "stop", "").0, 0);
    assert_eq!(agent(&mut p, 1, "monitor", "").0, 7);
    assert_eq!(agent(&mut p, 1, "stop", "").0, 0);
}

#[test]
fn agent_validation_in_a_guest() {
    require_uml();
    let (_one, mut p) = boot(128);
    std::fs::write(p.shared("drbd.conf"), DRBD_CONF).unwrap();
    p.ok(0, "cp /shared/drbd.conf /etc/drbd.conf");
    assert_eq!(agent(&mut p, 0, "validate-all", "").0, 0);
    let (code, out) = agent(&mut p, 0, "validate-all", "OCF_RESKEY_drbd_resource=nosuch");
    assert_eq!(code, 6, "{out}");
    let (code, out) = agent(
        &mut p,
        0,
        "validate-all",
        "OCF_RESKEY_require_drbd_module_version_ge=9.0",
    );
    assert_eq!(code, 5, "{out}");
    assert!(out.contains("8.4.11"), "{out}");
    let (code, _) = agent(
        &mut p,
        0,
        "validate-all",
        "OCF_RESKEY_require_drbd_module_version_lt=8.4",
    );
    assert_eq!(code, 5);
    let (code, out) = agent(
        &mut p,
        0,
        "validate-all",
        "OCF_RESKEY_CRM_meta_notify=false",
    );
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("notify=true"), "{out}");
    let (code, _) = agent(
        &mut p,
        0,
        "validate-all",
        "OCF_RESKEY_drbdconf=/etc/nosuch.conf",
    );
    assert_eq!(code, 5);
    // Probes of a down resource and stops with bad configuration never fail.
    assert_eq!(agent(&mut p, 0, "monitor", "").0, 7);
    assert_eq!(
        agent(&mut p, 0, "stop", "OCF_RESKEY_adjust_master_score=bogus").0,
        0
    );
    assert_eq!(
        agent(&mut p, 0, "monitor", "OCF_RESKEY_drbd_resource='a;b'").0,
        7
    );

    // A stop with an invalid configuration succeeds only when the resource is really down:
    // a Primary whose device is mounted cannot be taken down.
    p.ok(
        0,
        "set -e; pvcreate -q /dev/ubdb; vgcreate -q vg0 /dev/ubdb; lvcreate -q -y -L 64M -n lv0 vg0
        drbdadm -- --force create-md r0 >/dev/null 2>&1; drbdadm up r0; drbdadm primary --force r0
        export TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1; mkfs.xfs -f -q /dev/drbd0
        mkdir -p /mnt/r0; mount -t xfs /dev/drbd0 /mnt/r0",
    );
    let bogus = "OCF_RESKEY_adjust_master_score=bogus";
    let (code, out) = agent(&mut p, 0, "stop", bogus);
    assert_eq!(code, 1, "stop reported success with r0 still up:\n{out}");
    assert!(out.contains("still up"), "{out}");
    assert!(p.ok(0, "cat /proc/drbd").contains("ro:Primary"));
    // `all` is not a resource: its stop touches nothing.
    assert_eq!(
        agent(&mut p, 0, "stop", "OCF_RESKEY_drbd_resource=all").0,
        0
    );
    assert!(p.ok(0, "cat /proc/drbd").contains("ro:Primary"));
    // Unmounted, the same stop demotes and takes r0 down.
    p.ok(0, "umount /mnt/r0");
    let (code, out) = agent(&mut p, 0, "stop", bogus);
    assert_eq!(code, 0, "{out}");
    assert!(!p.ok(0, "cat /proc/drbd").contains("cs:"), "r0 still up");
    assert_eq!(agent(&mut p, 0, "monitor", "").0, 7);

    // With r0 configured (metadata created) but down, `all` starts nothing: drbdadm
    // would bring up every resource of the configuration.
    let (code, out) = agent(&mut p, 0, "start", "OCF_RESKEY_drbd_resource=all");
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("every DRBD resource"), "{out}");
    assert!(
        !p.ok(0, "cat /proc/drbd").contains("cs:"),
        "start with drbd_resource=all brought a resource up"
    );
}

/// A CIB on the share: the DRBD resource r0 as the promotable clone ms_drbd_r0, both
/// nodes members, both with a promotion score, so only constraints decide.
const FENCE_CIB: &str = r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0" have-quorum="1" dc-uuid="1">
  <configuration>
    <crm_config><cluster_property_set id="cib-bootstrap-options">
      <nvpair id="o1" name="stonith-enabled" value="false"/>
      <nvpair id="o2" name="no-quorum-policy" value="ignore"/>
    </cluster_property_set></crm_config>
    <nodes><node id="1" uname="n1"/><node id="2" uname="n2"/></nodes>
    <resources>
      <clone id="ms_drbd_r0">
        <meta_attributes id="ms_drbd_r0-meta">
          <nvpair id="ms1" name="promotable" value="true"/>
          <nvpair id="ms2" name="promoted-max" value="1"/>
          <nvpair id="ms3" name="clone-max" value="2"/>
          <nvpair id="ms4" name="notify" value="true"/>
        </meta_attributes>
        <primitive id="drbd_r0" class="ocf" provider="pgstack" type="drbd">
          <instance_attributes id="drbd_r0-ia"><nvpair id="ia1" name="drbd_resource" value="r0"/></instance_attributes>
        </primitive>
      </clone>
    </resources>
    <constraints/>
  </configuration>
  <status>
    <node_state id="1" uname="n1" in_ccm="true" crmd="online" join="member" expected="member">
      <transient_attributes id="1"><instance_attributes id="st1"><nvpair id="st1-m" name="master-drbd_r0" value="10000"/></instance_attributes></transient_attributes>
    </node_state>
    <node_state id="2" uname="n2" in_ccm="true" crmd="online" join="member" expected="member">
      <transient_attributes id="2"><instance_attributes id="st2"><nvpair id="st2-m" name="master-drbd_r0" value="10000"/></instance_attributes></transient_attributes>
    </node_state>
  </status>
</cib>
"#;

/// The promotion score crm_simulate gives `node` for the clone.
fn promotion_score(cib: &std::path::Path, node: &str) -> String {
    let out = common::sh_ok(&[
        "crm_simulate",
        "--xml-file",
        cib.to_str().unwrap(),
        "--show-scores",
    ]);
    out.lines()
        .filter(|l| l.contains("promotion score on") || l.contains("promotion score on"))
        .find(|l| l.contains(&format!("on {node}:")))
        .map(|l| l.rsplit(':').next().unwrap().trim().to_string())
        .unwrap_or_else(|| panic!("no promotion score for {node} in\n{out}"))
}

#[test]
fn fence_peer_handler_places_and_removes_the_constraint() {
    require_uml();
    let (_one, mut p) = boot(256);
    let cib = p.shared("cib.xml");
    std::fs::write(&cib, FENCE_CIB).unwrap();
    let bin = common::bin();
    let conf = DRBD_CONF
        .replace(
            "net { protocol C; connect-int 2; }",
            "net { protocol C; connect-int 2; ping-int 1; ping-timeout 5; }",
        )
        .replace(
            "  meta-disk internal;\n",
            &format!(
                "  meta-disk internal;\n  disk {{ fencing resource-only; }}\n  handlers {{\n    fence-peer \"/usr/bin/env CIB_file=/shared/cib.xml {bin} drbd fence-peer --timeout 20\";\n    after-resync-target \"/usr/bin/env CIB_file=/shared/cib.xml {bin} drbd unfence-peer\";\n  }}\n"
            ),
        );
    p.provision_drbd(&conf, 64);
    let id = "drbd-fence-by-handler-r0-ms_drbd_r0";
    assert!(!std::fs::read_to_string(&cib).unwrap().contains(id));
    assert_eq!(promotion_score(&cib, "n2"), "10000");

    // Cut the replication link under the Primary: DRBD itself runs the handler on n1.
    p.ok(1, "ip link set eth0 down");
    p.ok(0, "i=0; until grep -q pdsk:Outdated /proc/drbd || grep -q ds:UpToDate/Outdated /proc/drbd; do sleep 0.2; i=$((i+1)); [ $i -gt 300 ] && { cat /proc/drbd; exit 1; }; done; true");
    let text = std::fs::read_to_string(&cib).unwrap();
    assert!(
        text.contains(&format!("id=\"{id}\"")),
        "no constraint in\n{text}"
    );
    assert!(text.contains("value=\"n1\""), "{text}");
    // Pacemaker now refuses to promote the cut-off peer.
    assert_eq!(promotion_score(&cib, "n2"), "-INFINITY");
    let console = p.console(0);
    // DRBD ran our handler and took its answer: 4, the peer is fenced (constraint placed).
    assert!(
        console.contains("fence-peer helper returned 4"),
        "{}",
        console
            .lines()
            .filter(|l| l.contains("helper"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Write while cut off, reconnect: n2 resyncs, and its after-resync-target handler
    // removes the constraint.
    p.ok(
        0,
        "dd if=/dev/urandom of=/dev/drbd0 bs=1M count=4 oflag=direct status=none",
    );
    p.ok(1, "ip link set eth0 up");
    p.ok(1, "i=0; until grep -q ds:UpToDate/UpToDate /proc/drbd; do sleep 0.2; i=$((i+1)); [ $i -gt 600 ] && { cat /proc/drbd; exit 1; }; done; true");
    let mut gone = false;
    for _ in 0..100 {
        if !std::fs::read_to_string(&cib).unwrap().contains(id) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        gone,
        "constraint still present after resync:\n{}",
        std::fs::read_to_string(&cib).unwrap()
    );
    assert_eq!(promotion_score(&cib, "n2"), "10000");
}

#[test]
fn split_brain_recovery_keeps_the_survivors_data() {
    require_uml();
    let (_one, mut p) = boot(256);
    provision(&mut p);
    let bin = common::bin();
    // Connected: there is nothing to resolve, and nothing is done.
    let r = p.exec(
        1,
        &format!("{bin} drbd split-brain --resource r0 --survivor n1 --node n2 --yes"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 1, "{}", r.out);
    assert!(r.out.contains("no split brain"), "{}", r.out);

    // Both sides Primary while cut off, each writing its own data.
    for i in 0..2 {
        p.ok(i, "drbdadm disconnect r0");
    }
    p.ok(1, "drbdadm primary r0");
    let block =
        "dd if=/dev/vg0/lv0 bs=1M count=8 iflag=direct status=none | md5sum | cut -d' ' -f1";
    let n1_sum = p.ok(0, &format!("dd if=/dev/urandom of=/dev/drbd0 bs=1M count=8 oflag=direct status=none; sync; {block}"));
    let n2_sum = p.ok(1, &format!("dd if=/dev/urandom of=/dev/drbd0 bs=1M count=8 oflag=direct status=none; sync; {block}"));
    assert_ne!(n1_sum, n2_sum);
    for i in 0..2 {
        p.ok(i, "drbdadm connect r0");
    }
    // DRBD detects the split brain on reconnect and refuses to connect (one side goes
    // StandAlone, the other may keep waiting).
    let detected = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        p.console(0).contains("Split-Brain detected")
            || p.console(1).contains("Split-Brain detected")
    });
    assert!(detected, "no split brain detected");
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..2 {
        assert!(!p.ok(i, "cat /proc/drbd").contains("cs:Connected"));
    }

    // Without confirmation the victim refuses.
    let r = p.exec(
        1,
        &format!("{bin} drbd split-brain --resource r0 --survivor n1 --node n2"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 1, "{}", r.out);
    assert!(r.out.contains("not confirmed"), "{}", r.out);
    // Victim first, then the survivor.
    let r = p.exec(
        1,
        &format!("{bin} drbd split-brain --resource r0 --survivor n1 --node n2 --yes"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 0, "{}", r.out);
    let r = p.exec(
        0,
        &format!("{bin} drbd split-brain --resource r0 --survivor n1 --node n1"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 0, "{}", r.out);
    p.ok(1, "i=0; until grep -q ds:UpToDate/UpToDate /proc/drbd; do sleep 0.2; i=$((i+1)); [ $i -gt 600 ] && { cat /proc/drbd; exit 1; }; done; true");
    assert!(p.ok(1, "cat /proc/drbd").contains("ro:Secondary/Primary"));
    assert_eq!(
        p.ok(1, block),
        n1_sum,
        "the victim did not take the survivor's data"
    );
    assert_eq!(p.ok(0, block), n1_sum);
}

#[test]
fn detach_node_resyncs_the_problem_node_and_destroy_wipes_it() {
    require_uml();
    let (_one, mut p) = boot(256);
    provision(&mut p);
    let bin = common::bin();
    let block =
        "dd if=/dev/vg0/lv0 bs=1M count=8 iflag=direct status=none | md5sum | cut -d' ' -f1";
    let good = p.ok(
        0,
        &format!(
            "dd if=/dev/urandom of=/dev/drbd0 bs=1M count=8 oflag=direct status=none; {block}"
        ),
    );
    // The problem node's copy is damaged behind DRBD's back.
    p.ok(1, "drbdadm disconnect r0; dd if=/dev/zero of=/dev/vg0/lv0 bs=1M count=8 oflag=direct status=none");
    assert_ne!(p.ok(1, block), good);
    let r = p.exec(
        1,
        &format!("{bin} drbd detach-node --resource r0 --good n1 --node n2 --yes"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 0, "{}", r.out);
    let r = p.exec(
        0,
        &format!("{bin} drbd detach-node --resource r0 --good n1 --node n1"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 0, "{}", r.out);
    for i in 0..2 {
        p.ok(i, "drbdadm connect r0 2>/dev/null; true");
    }
    p.ok(1, "i=0; until grep -q ds:UpToDate/UpToDate /proc/drbd; do sleep 0.2; i=$((i+1)); [ $i -gt 600 ] && { cat /proc/drbd; exit 1; }; done; true");
    assert_eq!(
        p.ok(1, block),
        good,
        "the full resync did not repair the problem node"
    );
    // Destroying the problem node's copy: metadata gone, DRBD refuses to attach it.
    let r = p.exec(
        1,
        &format!("{bin} drbd detach-node --resource r0 --good n1 --node n2 --destroy --yes"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 0, "{}", r.out);
    assert!(
        p.ok(1, "cat /proc/drbd")
            .lines()
            .all(|l| !l.contains("cs:")),
        "r0 still up on n2"
    );
    let r = p.exec(1, "drbdadm up r0", Duration::from_secs(60));
    assert_ne!(r.rc, 0, "attached without metadata: {}", r.out);
    assert_eq!(
        p.ok(
            1,
            "dd if=/dev/vg0/lv0 bs=1M count=1 iflag=direct status=none | tr -d '\\0' | wc -c"
        )
        .trim(),
        "0"
    );
}
