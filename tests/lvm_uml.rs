//! `ocf:pgstack:lvm` on real device-mapper, in two User-Mode-Linux guests: a VG on a disk
//! both guests see (/dev/ubdc, the stand-in for a SAN LUN) for exclusive activation in
//! tagging and system_id modes, and a VG on DRBD (/dev/drbd0) for the stack of the
//! advanced template. Each case runs first against `ocf:heartbeat:LVM-activate` in the
//! same guest, then against ours; the codes agree except the improvements listed in
//! docs/compatibility.md, asserted here case by case. One pair of guests for everything.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::uml::{UmlPair, DRBD_R0};

const REFERENCE: &str = "/usr/lib/ocf/resource.d/heartbeat/LVM-activate";

/// The harness's lvm.conf, as a cluster would set it up for LVM-activate: activation
/// limited to the local VG (tagging mode needs an initialised volume_list), system IDs
/// from uname (system_id mode needs a source).
const CLUSTER_LVM_CONF: &str = r#"devices { filter = [ "a|^/dev/ubd|", "a|^/dev/drbd|", "r|.*|" ] write_cache_state = 0 }
activation { udev_sync = 0 udev_rules = 0 volume_list = [ "vg0" ] }
global { use_lvmetad = 0 system_id_source = "uname" }
"#;
const PLAIN_LVM_CONF: &str = r#"devices { filter = [ "a|^/dev/ubd|", "a|^/dev/drbd|", "r|.*|" ] write_cache_state = 0 }
activation { udev_sync = 0 udev_rules = 0 }
global { use_lvmetad = 0 }
"#;

struct Lab {
    p: UmlPair,
    ours: String,
    table: Vec<(String, Option<i32>, i32)>,
    /// The artifact file the table is written to.
    table_file: &'static str,
}

impl Lab {
    /// Runs `agent action` in guest `node` with `params` (k=v, space-separated).
    fn agent(&mut self, node: usize, agent: &str, action: &str, params: &str) -> (i32, String) {
        let interval = if action == "monitor" && !params.contains("CRM_meta_interval") {
            "OCF_RESKEY_CRM_meta_interval=30000"
        } else {
            ""
        };
        let env: String = params
            .split_whitespace()
            .map(|kv| {
                // Quoted: values with shell metacharacters are the point of some cases.
                if kv.starts_with("OCF_") {
                    format!("'{kv}'")
                } else {
                    format!("'OCF_RESKEY_{kv}'")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        let r = self.p.exec(
            node,
            &format!(
                "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DM_DISABLE_UDEV=1 OCF_ROOT=/usr/lib/ocf \
                 OCF_RESOURCE_INSTANCE=pg_lvm HA_LOGFACILITY=none {interval} {env} {agent} {action} 2>&1"
            ),
            Duration::from_secs(120),
        );
        (r.rc, r.out)
    }

    /// The same case against the reference, then ours; returns our code and output.
    fn both(&mut self, case: &str, node: usize, action: &str, params: &str) -> (i32, i32, String) {
        let (theirs, _) = self.agent(node, REFERENCE, action, params);
        let ours_path = self.ours.clone();
        let (ours, out) = self.agent(node, &ours_path, action, params);
        self.push(case, Some(theirs), ours);
        (theirs, ours, out)
    }

    fn ours(&mut self, case: &str, node: usize, action: &str, params: &str) -> (i32, String) {
        let ours_path = self.ours.clone();
        let (c, out) = self.agent(node, &ours_path, action, params);
        self.push(case, None, c);
        (c, out)
    }

    /// Records a case; the table is rewritten each time, so a failed run keeps it.
    fn push(&mut self, case: &str, theirs: Option<i32>, ours: i32) {
        self.table.push((case.to_string(), theirs, ours));
        let mut report = String::from("| case | LVM-activate | pgstack lvm |\n|---|---|---|\n");
        for (case, theirs, ours) in &self.table {
            let t = theirs.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
            let o = if *ours < 0 {
                "-".to_string()
            } else {
                ours.to_string()
            };
            let _ = writeln!(report, "| {case} | {t} | {o} |");
        }
        std::fs::write(common::artifacts().join(self.table_file), &report).unwrap();
    }

    fn theirs(&mut self, node: usize, action: &str, params: &str) -> i32 {
        self.agent(node, REFERENCE, action, params).0
    }

    fn lvm_conf(&mut self, text: &str) {
        std::fs::write(self.p.shared("lvm.conf"), text).unwrap();
        for i in 0..2 {
            self.p.ok(i, "cp /shared/lvm.conf /etc/lvm/lvm.conf");
        }
    }
}

fn reason(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("ocf-exit-reason:"))
        .unwrap_or("")
        .to_string()
}

#[test]
fn lvm_agent_against_lvm_activate_on_real_device_mapper() {
    common::require_root();
    let t0 = std::time::Instant::now();
    let p = UmlPair::boot_shared("lvm", "256M", 256, 64);
    let mut lab = Lab {
        p,
        ours: common::agent_path("lvm"),
        table: Vec::new(),
        table_file: "lvm-compat.md",
    };
    lab.p.provision_drbd(DRBD_R0, 64);
    let bin = common::bin();
    // vgsh on the shared disk; vgpg on DRBD with an XFS data LV. Both left inactive.
    lab.p.ok(
        0,
        "set -e; export TEST_DIR=1 TEST_DEV=1 QA_CHECK_FS=1
        pvcreate -q /dev/ubdc; vgcreate -q vgsh /dev/ubdc
        lvcreate -q -y -L 12M -n lv1 vgsh; lvcreate -q -y -L 8M -n lv2 vgsh
        pvcreate -q /dev/drbd0; vgcreate -q vgpg /dev/drbd0
        lvcreate -q -y -L 24M -n data vgpg; lvcreate -q -y -L 8M -n wal vgpg
        mkfs.xfs -q -f /dev/vgpg/data
        vgchange -q -an vgsh vgpg",
    );
    let r = lab.p.exec(
        1,
        "vgs --noheadings -o vg_name vgsh",
        Duration::from_secs(60),
    );
    assert!(
        r.out.contains("vgsh"),
        "n2 does not see the shared VG: {}",
        r.out
    );
    lab.lvm_conf(CLUSTER_LVM_CONF);

    // ---- exclusive activation, tagging mode
    let tg = "vgname=vgsh vg_access_mode=tagging";
    let probe = format!("{tg} OCF_RESKEY_CRM_meta_interval=0");
    let (t, o, out) = lab.both("tagging: probe, inactive", 0, "monitor", &probe);
    assert_eq!((t, o), (7, 7), "{out}");
    // Reference first: A active, then B.
    assert_eq!(lab.theirs(0, "start", tg), 0);
    let theirs_b = lab.theirs(1, "start", tg);
    let _ = lab.theirs(1, "stop", tg);
    let _ = lab.theirs(0, "stop", tg);
    lab.push(
        "tagging: start on B while A is active (reference)",
        Some(theirs_b),
        -1,
    );
    assert_eq!(
        theirs_b, 0,
        "the reference activates on both nodes (documented)"
    );
    let (c, out) = lab.ours("tagging: start on A", 0, "start", tg);
    assert_eq!(c, 0, "{out}");
    let (c, _) = lab.ours("tagging: monitor on A", 0, "monitor", tg);
    assert_eq!(c, 0);
    let (c, out) = lab.ours("tagging: start on B while A is active", 1, "start", tg);
    assert_eq!(c, 1, "{out}");
    assert!(reason(&out).contains("owned by node n1"), "{out}");
    // Not a probe: the reference answers 1 for an inactive VG, ours 7 (cleanly stopped).
    let (t, c, out) = lab.both(
        "tagging: monitor on B (refused start left nothing)",
        1,
        "monitor",
        tg,
    );
    assert_eq!((t, c), (1, 7), "{out}");
    let (c, out) = lab.ours("tagging: stop on A", 0, "stop", tg);
    assert_eq!(c, 0, "{out}");
    let (c, out) = lab.ours("tagging: start on B after A stopped", 1, "start", tg);
    assert_eq!(c, 0, "{out}");
    let (c, _) = lab.ours("tagging: stop on B", 1, "stop", tg);
    assert_eq!(c, 0);

    // ---- exclusive activation, system_id mode
    let si = "vgname=vgsh vg_access_mode=system_id";
    // A VG without a system ID: the reference wants one already there, ours records it.
    let (t, o, out) = lab.both(
        "system_id: start on A, VG without a system ID",
        0,
        "start",
        si,
    );
    assert_eq!((t, o), (6, 0), "{out}");
    let (c, _) = lab.ours(
        "system_id: stop on A (removes the system ID)",
        0,
        "stop",
        si,
    );
    assert_eq!(c, 0);
    lab.p.ok(0, "vgchange -q -y --systemid n1 vgsh");
    assert_eq!(lab.theirs(0, "start", si), 0);
    let theirs_b = lab.theirs(1, "start", si);
    let _ = lab.theirs(1, "stop", si);
    let _ = lab.theirs(0, "stop", si);
    lab.push(
        "system_id: start on B while A is active (reference)",
        Some(theirs_b),
        -1,
    );
    assert_eq!(
        theirs_b, 0,
        "the reference takes over from a live owner (documented)"
    );
    // The reference leaves its system ID on the VG; give it back before our cases.
    for i in 0..2 {
        let _ = lab.p.exec(
            i,
            "vgchange -q -y --systemid '' vgsh",
            Duration::from_secs(60),
        );
    }
    let (c, out) = lab.ours("system_id: start on A", 0, "start", si);
    assert_eq!(c, 0, "{out}");
    let sid = lab
        .p
        .ok(1, "vgs --foreign --noheadings -o vg_systemid vgsh");
    assert_eq!(sid.trim(), "n1", "the VG records its owner");
    let (c, out) = lab.ours("system_id: start on B while A is active", 1, "start", si);
    assert_eq!(c, 1, "{out}");
    assert!(reason(&out).contains("owned by node n1"), "{out}");
    let (c, _) = lab.ours("system_id: stop on A", 0, "stop", si);
    assert_eq!(c, 0);
    let (c, out) = lab.ours("system_id: start on B after A stopped", 1, "start", si);
    assert_eq!(c, 0, "{out}");
    let (c, _) = lab.ours("system_id: stop on B", 1, "stop", si);
    assert_eq!(c, 0);

    // ---- ocf-tester, tagging mode on the shared VG
    let r = lab.p.exec(
        0,
        &format!(
            "DM_DISABLE_UDEV=1 ocf-tester -v -n pg_lvm -o vgname=vgsh {}",
            lab.ours
        ),
        Duration::from_secs(300),
    );
    std::fs::write(common::artifacts().join("ocf-tester-lvm.log"), &r.out).unwrap();
    assert_eq!(r.rc, 0, "ocf-tester failed:\n{}", r.out);
    assert!(r.out.contains("passed all tests"), "{}", r.out);

    // ---- the VG on DRBD (n1 Primary, n2 Secondary)
    let pg = "vgname=vgpg vg_access_mode=tagging";
    let pgp = "vgname=vgpg vg_access_mode=tagging pv_devices=/dev/drbd0";
    let probe2 = "vgname=vgpg vg_access_mode=tagging OCF_RESKEY_CRM_meta_interval=0";
    let (t, o, out) = lab.both(
        "drbd: probe on the Secondary (PV absent)",
        1,
        "monitor",
        probe2,
    );
    assert_eq!((t, o), (7, 7), "{out}");
    // Reference: start, a mounted XFS blocks stop, unmount, stop.
    assert_eq!(lab.theirs(0, "start", pg), 0);
    lab.p
        .ok(0, "mkdir -p /mnt/pg; mount -t xfs /dev/vgpg/data /mnt/pg");
    let theirs_busy = lab.theirs(0, "stop", pg);
    lab.p.ok(0, "umount /mnt/pg");
    assert_eq!(lab.theirs(0, "stop", pg), 0);
    let (c, out) = lab.ours("drbd: start (pv_devices=/dev/drbd0)", 0, "start", pgp);
    assert_eq!(c, 0, "{out}");
    lab.p.ok(0, "mount -t xfs /dev/vgpg/data /mnt/pg");
    let (c, out) = lab.ours("drbd: stop while the XFS is mounted", 0, "stop", pgp);
    lab.push(
        "drbd: stop while the XFS is mounted (reference)",
        Some(theirs_busy),
        -1,
    );
    assert_eq!((theirs_busy, c), (1, 1), "{out}");
    assert!(
        reason(&out).contains("vgpg/data is mounted on /mnt/pg"),
        "{out}"
    );
    let (c, _) = lab.ours("drbd: monitor after the refused stop", 0, "monitor", pgp);
    assert_eq!(c, 0, "a refused stop leaves everything active");
    lab.p.ok(0, "umount /mnt/pg");
    let (c, out) = lab.ours("drbd: stop after unmount", 0, "stop", pgp);
    assert_eq!(c, 0, "{out}");
    let r = lab
        .p
        .exec(0, "drbdadm secondary r0", Duration::from_secs(60));
    assert_eq!(r.rc, 0, "DRBD could not demote after the stop: {}", r.out);
    let (t, o, out) = lab.both("drbd: probe on the demoted node", 0, "monitor", probe2);
    assert_eq!((t, o), (7, 7), "{out}");
    lab.p.ok(0, "drbdadm primary r0");

    // ---- bad input (validate-all on the Primary)
    let (t, o, out) = lab.both("bad: unknown VG", 0, "validate-all", "vgname=nosuch");
    assert_eq!((t, o), (1, 1), "{out}");
    assert!(reason(&out).contains("nosuch not found"), "{out}");
    let (t, o, out) = lab.both(
        "bad: name with metacharacters",
        0,
        "validate-all",
        "vgname=vg;reboot",
    );
    assert_eq!((t, o), (1, 6), "{out}");
    let (o, out) = lab.ours(
        "bad: VG not on the expected PV",
        0,
        "validate-all",
        "vgname=vgpg pv_devices=/dev/ubdb",
    );
    assert_eq!(o, 6, "{out}");
    assert!(reason(&out).contains("not one of pv_devices"), "{out}");
    let (o, out) = lab.ours(
        "bad: lvname not in the VG",
        0,
        "validate-all",
        "vgname=vgpg lvname=nosuch",
    );
    assert_eq!(o, 6, "{out}");

    // ---- check-config, snapshot round trip on XFS (our agent active)
    lab.lvm_conf(PLAIN_LVM_CONF);
    let r = lab.p.exec(
        0,
        &format!("{bin} lvm check-config"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 0, "{}", r.out);
    let r = lab.p.exec(
        0,
        &format!(
            "lvmconfig --config 'devices{{filter=[\"a|.*|\"] write_cache_state=1}}' --type full devices/filter devices/write_cache_state > /tmp/bad.txt && {bin} lvm check-config --from /tmp/bad.txt"
        ),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 1, "{}", r.out);
    assert!(
        r.out.contains("devices/filter") && r.out.contains("devices/write_cache_state"),
        "{}",
        r.out
    );
    let (c, out) = lab.ours("snapshot: start", 0, "start", pgp);
    assert_eq!(c, 0, "{out}");
    let sum = lab.p.ok(
        0,
        "set -e; mount -t xfs /dev/vgpg/data /mnt/pg
        dd if=/dev/urandom of=/mnt/pg/payload bs=1M count=2 status=none; sync
        md5sum /mnt/pg/payload | cut -d' ' -f1",
    );
    let out = lab
        .p
        .ok(0, &format!("{bin} lvm snapshot create --vg vgpg --lv data"));
    assert!(out.contains("/dev/vgpg/data-snap"), "{out}");
    let out = lab.p.ok(
        0,
        &format!(
            "mkdir -p /mnt/snap; {bin} lvm snapshot mount --vg vgpg --name data-snap /mnt/snap"
        ),
    );
    assert!(out.contains("nouuid"), "{out}");
    let sum2 = lab.p.ok(0, "md5sum /mnt/snap/payload | cut -d' ' -f1");
    assert_eq!(sum.trim(), sum2.trim());
    let r = lab.p.exec(
        0,
        &format!("{bin} lvm snapshot remove --vg vgpg --name data-snap"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 1, "{}", r.out);
    assert!(r.out.contains("mounted on /mnt/snap"), "{}", r.out);
    let r = lab.p.exec(
        0,
        &format!("{bin} lvm snapshot remove --vg vgpg --name data"),
        Duration::from_secs(60),
    );
    assert_eq!(r.rc, 1, "removed an LV that is not a snapshot: {}", r.out);
    lab.p.ok(
        0,
        &format!("umount /mnt/snap; {bin} lvm snapshot remove --vg vgpg --name data-snap"),
    );
    let (c, out) = lab.ours(
        "snapshot: monitor depth 10 after the round trip",
        0,
        "monitor",
        &format!("{pgp} OCF_CHECK_LEVEL=10"),
    );
    assert_eq!(c, 0, "{out}");
    lab.p.ok(0, "umount /mnt/pg");
    let (c, out) = lab.ours("snapshot: stop", 0, "stop", pgp);
    assert_eq!(c, 0, "{out}");

    let report = std::fs::read_to_string(common::artifacts().join("lvm-compat.md")).unwrap();
    eprintln!("{report}\nwhole run: {:?}", t0.elapsed());
}

/// Timings side by side in one guest (bench/lvm.sh runs this with a release build):
/// monitor at depth 0 and 10, start and stop, and meta-data (the process start, no work),
/// medians of `RUNS` (default 10) in µs. The three agents alternate within each run:
/// LVM-activate, ours as installed (a link to the binary named `lvm`: the binary picks
/// the agent from its name) and ours through the `/bin/sh` shim earlier installs wrote
/// (`exec pgstack ocf "$0" "$@"`), which costs a shell's process image more.
/// `PGSTACK_BENCH_STRACE=1` adds `strace -c -f` of one depth-0 monitor of each (system
/// calls, their count and time, in the guest) and its page faults to the output.
/// `PGSTACK_BENCH_ALT=/path/to/pgstack` adds a fourth agent, a link named `lvm` to that
/// binary (another build of the same tree), to compare two builds in the same run.
#[test]
#[ignore = "benchmark: run through bench/lvm.sh"]
fn bench_side_by_side() {
    common::require_root();
    let runs: u32 = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let strace = std::env::var("PGSTACK_BENCH_STRACE").is_ok_and(|v| v == "1");
    let alt = std::env::var("PGSTACK_BENCH_ALT")
        .ok()
        .filter(|a| !a.is_empty());
    let alt_agent = alt.as_ref().map(|_| "/tmp/pgst-alt/lvm").unwrap_or("");
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_before = load();
    let p = UmlPair::boot_shared("lvmb", "256M", 64, 64);
    let mut lab = Lab {
        p,
        ours: common::agent_path("lvm"),
        table: Vec::new(),
        table_file: "lvm-bench-cases.md",
    };
    lab.p.ok(
        0,
        "set -e; pvcreate -q /dev/ubdc; vgcreate -q vgsh /dev/ubdc
        lvcreate -q -y -L 12M -n lv1 vgsh; lvcreate -q -y -L 8M -n lv2 vgsh; vgchange -q -an vgsh",
    );
    lab.lvm_conf(CLUSTER_LVM_CONF);
    let bin = common::bin();
    let installed = std::fs::symlink_metadata(&lab.ours).map(|m| m.file_type().is_symlink());
    assert_eq!(
        installed.ok(),
        Some(true),
        "{} is not a link to the binary: install this build",
        lab.ours
    );
    // The loop runs in bash with the agents' environment already clean (`env -i` once),
    // timed with bash's EPOCHREALTIME: the interval holds the agent's fork, exec and run,
    // as when Pacemaker runs it, and no other process (no `date`, no `env`). The row
    // "empty process" is /bin/true timed the same way; "old harness" is /bin/true timed
    // as earlier runs of this bench timed each call (`env -i` + `date +%s%N` in it).
    let inner = format!(
        r#"
us() {{ local s e rc; s=$EPOCHREALTIME; "$@" >/dev/null 2>&1; rc=$?; e=$EPOCHREALTIME; [ $rc = 0 ] || echo "FAILED rc=$rc: $*" >&2; echo $(( ${{e/./}} - ${{s/./}} )); }}
old() {{ local s e; s=$(date +%s%N); env -i PATH=$PATH "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e-s)/1000 )); }}
med() {{ sort -n | awk '{{a[NR]=$1}} END {{print a[int((NR+1)/2)]}}'; }}
set -- {reference} {ours} /tmp/pgst-shim/lvm {alt_agent}
rm -f /tmp/pgst-b.*
for i in $(seq {runs}); do
  n=0
  for agent in "$@"; do
    n=$((n+1))
    us $agent meta-data >> /tmp/pgst-b.$n.md
    us $agent start >> /tmp/pgst-b.$n.start
    us $agent monitor >> /tmp/pgst-b.$n.m0
    OCF_CHECK_LEVEL=10 us $agent monitor >> /tmp/pgst-b.$n.m10
    us $agent stop >> /tmp/pgst-b.$n.stop
  done
  us /bin/true >> /tmp/pgst-b.true
  old /bin/true >> /tmp/pgst-b.old
done
n=0
for agent in "$@"; do
  n=$((n+1))
  echo "row$n $(med < /tmp/pgst-b.$n.m0) $(med < /tmp/pgst-b.$n.m10) $(med < /tmp/pgst-b.$n.start) $(med < /tmp/pgst-b.$n.stop) $(med < /tmp/pgst-b.$n.md)"
done
echo "floor $(med < /tmp/pgst-b.true) $(med < /tmp/pgst-b.old)"
if [ {strace} = 1 ]; then
  for agent in "$@"; do
    $agent start >/dev/null 2>&1
    echo "== strace -c -f: $agent monitor"
    strace -c -f -o /tmp/pgst-b.strace $agent monitor >/dev/null 2>&1; echo "rc=$?"
    cat /tmp/pgst-b.strace
    strace -f -e trace=execve,mmap -o /tmp/pgst-b.strace2 $agent monitor >/dev/null 2>&1
    echo "execve: $(grep -c 'execve(' /tmp/pgst-b.strace2), mmap: $(grep -c 'mmap(' /tmp/pgst-b.strace2)"
    echo "== /usr/bin/time: $agent monitor"
    /usr/bin/time -f "elapsed %e s, page faults minor %R major %F, max RSS %M KiB" $agent monitor 2>&1 >/dev/null | tail -n 1
    echo "== /usr/bin/time: $agent meta-data"
    /usr/bin/time -f "elapsed %e s, page faults minor %R major %F, max RSS %M KiB" $agent meta-data 2>&1 >/dev/null | tail -n 1
    $agent stop >/dev/null 2>&1
  done
fi
"#,
        reference = REFERENCE,
        ours = lab.ours,
        runs = runs,
        strace = u8::from(strace),
    );
    std::fs::write(lab.p.shared("bench.sh"), inner).unwrap();
    let alt_link = alt
        .as_ref()
        .map(|a| format!("mkdir -p /tmp/pgst-alt; ln -sf {a} /tmp/pgst-alt/lvm"))
        .unwrap_or_default();
    let script = format!(
        r#"
mkdir -p /tmp/pgst-shim
printf '#!/bin/sh\nexec %s ocf "$0" "$@"\n' {bin} > /tmp/pgst-shim/lvm; chmod 755 /tmp/pgst-shim/lvm
{alt_link}
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DM_DISABLE_UDEV=1 OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=pg_lvm HA_LOGFACILITY=none OCF_RESKEY_vgname=vgsh OCF_RESKEY_vg_access_mode=tagging OCF_RESKEY_CRM_meta_interval=30000 OCF_RESKEY_CRM_meta_on_node=n1 bash /shared/bench.sh
"#
    );
    let r = lab.p.exec(0, &script, Duration::from_secs(1800));
    let load_after = load();
    assert_eq!(r.rc, 0, "{}", r.out);
    assert!(!r.out.contains("FAILED"), "{}", r.out);
    let rows: Vec<Vec<f64>> = r
        .out
        .lines()
        .filter(|l| l.starts_with("row") && l.split_whitespace().count() == 6)
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|v| v.parse::<f64>().unwrap() / 1000.0)
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3 + usize::from(alt.is_some()), "{}", r.out);
    let floor: Vec<f64> = r
        .out
        .lines()
        .find_map(|l| l.strip_prefix("floor "))
        .map(|l| {
            l.split_whitespace()
                .map(|v| v.parse::<f64>().unwrap() / 1000.0)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(floor.len(), 2, "{}", r.out);
    let mut t = format!(
        "lvm, one UML guest (2 LVs, tagging mode), the three alternating, medians of {runs} runs, ms; \
         host load average before: {} after: {}\n\n\
         | action | LVM-activate | pgstack lvm (link, installed) | ratio | pgstack lvm (sh shim) | ratio |{}\n|---|---|---|---|---|---|{}\n",
        load_before.trim(),
        load_after.trim(),
        if alt.is_some() { " pgstack lvm (link, alt build) | ratio |" } else { "" },
        if alt.is_some() { "---|---|" } else { "" },
    );
    for (i, what) in [
        "monitor (depth 0)",
        "monitor (depth 10)",
        "start",
        "stop",
        "meta-data (process start, no work)",
    ]
    .iter()
    .enumerate()
    {
        let _ = write!(
            t,
            "| {what} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} |",
            rows[0][i],
            rows[1][i],
            rows[1][i] / rows[0][i],
            rows[2][i],
            rows[2][i] / rows[0][i]
        );
        if let Some(r) = rows.get(3) {
            let _ = write!(t, " {:.0} | {:.2} |", r[i], r[i] / rows[0][i]);
        }
        t.push('\n');
    }
    let _ = writeln!(
        t,
        "| empty process (/bin/true) | {:.0} | | | | |\n| old harness (env -i + date around /bin/true) | {:.0} | | | | |",
        floor[0], floor[1]
    );
    if strace {
        let _ = write!(t, "\n```\n{}\n```\n", r.out);
    }
    std::fs::write(common::artifacts().join("lvm-bench.md"), &t).unwrap();
    println!("{t}");
}

/// The takeover of a VG from an owner that was powered off: n1 activates the shared VG in
/// tagging mode (owner tag pacemaker:n1) and writes to it, then is killed. n2 refuses the
/// VG while the owner cannot be shown to be down (no cluster answers), and while the
/// membership still lists n1; it takes the VG over once n1 is lost, and the data n1
/// wrote is there. The guests run no cluster: on n2 `crm_node` is replaced (in the
/// guest's private root) by a script answering `-l` and `-n` from /shared/members, as
/// Pacemaker's would.
#[test]
fn takeover_from_a_powered_off_owner() {
    common::require_root();
    let p = UmlPair::boot_shared("lvmto", "256M", 64, 64);
    let mut lab = Lab {
        p,
        ours: common::agent_path("lvm"),
        table: Vec::new(),
        table_file: "lvm-takeover.md",
    };
    lab.p.ok(
        0,
        "set -e; pvcreate -q /dev/ubdc; vgcreate -q vgsh /dev/ubdc
        lvcreate -q -y -L 12M -n lv1 vgsh; lvcreate -q -y -L 8M -n lv2 vgsh; vgchange -q -an vgsh",
    );
    lab.lvm_conf(CLUSTER_LVM_CONF);
    let tg = "vgname=vgsh vg_access_mode=tagging";
    let (c, out) = lab.ours("takeover: start on n1", 0, "start", tg);
    assert_eq!(c, 0, "{out}");
    // Written past the page cache, so the data is on the shared disk when n1 dies.
    let sum = lab.p.ok(
        0,
        "set -e; dd if=/dev/urandom of=/tmp/payload bs=1M count=4 status=none
        dd if=/tmp/payload of=/dev/vgsh/lv1 bs=1M oflag=direct conv=fsync status=none
        md5sum < /tmp/payload | cut -d' ' -f1",
    );
    let tags = lab.p.ok(1, "vgs --noheadings -o vg_tags vgsh");
    assert_eq!(tags.trim(), "pacemaker:n1", "n1's owner tag");

    // A power cut: SIGKILL to every host process of the guest, no shutdown, no sync of
    // its page cache (the harness waits until they are gone).
    lab.p.pair.power_off("n1").expect("power cut of n1");

    // No cluster answers on n2 (crm_node fails): the owner cannot be shown to be down.
    let (c, out) = lab.ours("takeover: start on n2, no membership", 1, "start", tg);
    assert_eq!(c, 1, "{out}");
    assert!(
        reason(&out).contains("owned by node n1")
            && reason(&out).contains("membership cannot be read"),
        "{out}"
    );
    let (c, out) = lab.ours(
        "takeover: monitor on n2 after the refusal",
        1,
        "monitor",
        tg,
    );
    assert_eq!(c, 7, "a refused start left something active: {out}");

    std::fs::write(
        lab.p.shared("crm_node"),
        "#!/bin/sh\ncase \"$1\" in\n-n) echo n2 ;;\n-l) cat /shared/members ;;\n*) exit 1 ;;\nesac\n",
    )
    .unwrap();
    lab.p.ok(
        1,
        "cp /shared/crm_node /usr/sbin/crm_node; chmod 0755 /usr/sbin/crm_node",
    );
    // The membership still lists n1 (corosync has not noticed yet): refused.
    std::fs::write(lab.p.shared("members"), "1 n1 member\n2 n2 member\n").unwrap();
    let (c, out) = lab.ours("takeover: start on n2, n1 still a member", 1, "start", tg);
    assert_eq!(c, 1, "{out}");
    assert!(
        reason(&out).contains("owned by node n1, which is online in the cluster"),
        "{out}"
    );
    let tags = lab.p.ok(1, "vgs --noheadings -o vg_tags vgsh");
    assert_eq!(
        tags.trim(),
        "pacemaker:n1",
        "a refused start changed the tags"
    );

    // n1 lost: taken over, n1's tag replaced by n2's, n1's data intact.
    std::fs::write(lab.p.shared("members"), "1 n1 lost\n2 n2 member\n").unwrap();
    let (c, out) = lab.ours("takeover: start on n2, n1 lost", 1, "start", tg);
    assert_eq!(c, 0, "{out}");
    assert!(
        out.contains("taking volume group vgsh over from node n1"),
        "{out}"
    );
    let tags = lab.p.ok(1, "vgs --noheadings -o vg_tags vgsh");
    assert_eq!(tags.trim(), "pacemaker:n2");
    let sum2 = lab.p.ok(
        1,
        "dd if=/dev/vgsh/lv1 bs=1M count=4 iflag=direct status=none | md5sum | cut -d' ' -f1",
    );
    assert_eq!(sum.trim(), sum2.trim(), "n1's data on the VG n2 took over");
    let (c, out) = lab.ours("takeover: monitor on n2", 1, "monitor", tg);
    assert_eq!(c, 0, "{out}");
    let (c, out) = lab.ours("takeover: stop on n2", 1, "stop", tg);
    assert_eq!(c, 0, "{out}");
    let tags = lab.p.ok(1, "vgs --noheadings -o vg_tags vgsh");
    assert_eq!(tags.trim(), "", "stop left a tag");
}
