//! The two-VM lab (`vagrant/`) and its provisioning. VMs cannot boot here, so what can be
//! checked is checked: every script passes shellcheck, the Vagrantfile passes `vagrant
//! validate` (and Ruby's syntax check), `stack.sh --dry-run` lists the book's steps in the
//! book's order for each node, and the same `stack.sh` builds the real stack (LVM, DRBD,
//! LVM, XFS, PGDATA) in two User-Mode-Linux guests.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use common::uml::UmlPair;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn stack_sh() -> String {
    root()
        .join("vagrant/provision/stack.sh")
        .to_string_lossy()
        .into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every shell script under vagrant/ (by name or by its #! line).
fn scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            scripts(&p, out);
        } else if p.extension().is_some_and(|x| x == "sh")
            || std::fs::read_to_string(&p).is_ok_and(|t| t.starts_with("#!/bin/bash"))
            || std::fs::read_to_string(&p).is_ok_and(|t| t.starts_with("#!/bin/sh"))
        {
            out.push(p);
        }
    }
}

#[test]
fn every_script_under_vagrant_passes_shellcheck() {
    common::require_file("/usr/bin/shellcheck");
    let mut all = Vec::new();
    scripts(&root().join("vagrant"), &mut all);
    all.sort();
    for want in ["provision/stack.sh", "provision/cluster.sh"] {
        assert!(
            all.iter().any(|p| p.ends_with(want)),
            "vagrant/{want} missing: {all:?}"
        );
    }
    for p in &all {
        let o = common::run(
            &["shellcheck", "--severity=style", p.to_str().unwrap()],
            &[],
            Duration::from_secs(120),
        );
        assert!(o.status.success(), "{}:\n{}", p.display(), text(&o));
    }
}

#[test]
fn vagrantfile_is_valid_ruby() {
    common::require_file("/usr/bin/ruby");
    let f = root().join("vagrant/Vagrantfile");
    let o = common::run(
        &["ruby", "-c", f.to_str().unwrap()],
        &[],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("Syntax OK"), "{}", text(&o));
}

#[test]
fn vagrant_validate_accepts_the_vagrantfile() {
    common::require_file("/usr/bin/vagrant");
    // A home of its own: validate writes its plugin and box state there, never in ~.
    let home = std::env::temp_dir().join(format!("pgst-vagrant-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    struct Rm(PathBuf);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _rm = Rm(home.clone());
    let dir = root().join("vagrant");
    // Debian's vagrant comes with vagrant-libvirt, so the libvirt configuration is what
    // is validated. Its two-way shared folders (9p, virtiofs) are checked against a
    // running libvirt daemon, which this machine has not: the one-way rsync folder
    // stands in for them here (PGSTACK_SHARE), everything else is the default.
    let o = common::run(
        &[
            "/usr/bin/env",
            "-C",
            dir.to_str().unwrap(),
            "vagrant",
            "validate",
        ],
        &[
            ("VAGRANT_HOME", home.to_str().unwrap()),
            ("PGSTACK_SHARE", "rsync"),
            ("VAGRANT_CHECKPOINT_DISABLE", "1"),
            ("VAGRANT_DOTFILE_PATH", home.join("dot").to_str().unwrap()),
        ],
        Duration::from_secs(300),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("Vagrantfile validated successfully"),
        "{}",
        text(&o)
    );
}

/// `stack.sh --dry-run` for `node` with the book's settings (and `extra`), in a clean
/// environment: the commands it prints (the `+ ` lines) and its exit code.
fn dry_run(node: &str, extra: &[&str]) -> (i32, Vec<String>, String) {
    let bin = common::bin();
    let stack = stack_sh();
    let node = format!("STACK_NODE={node}");
    let pgstack = format!("STACK_PGSTACK={bin}");
    let mut argv = vec![
        "/usr/bin/env",
        "-i",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        &node,
        &pgstack,
        "STACK_DISK=/dev/sdb",
    ];
    argv.extend_from_slice(extra);
    argv.push(&stack);
    argv.push("--dry-run");
    let o = common::run(&argv, &[], Duration::from_secs(60));
    let all = text(&o);
    let cmds = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("+ ").map(str::to_string))
        .collect();
    (o.status.code().unwrap_or(-1), cmds, all)
}

/// Each of `want` starts one of `cmds`, in this order.
fn in_order(cmds: &[String], want: &[&str], all: &str) {
    let mut at = 0;
    for w in want {
        match cmds[at..].iter().position(|c| c.starts_with(w)) {
            Some(i) => at += i + 1,
            None => panic!("{w:?} missing, or out of the book's order, in:\n{all}"),
        }
    }
}

#[test]
fn dry_run_of_the_first_node_is_the_books_order() {
    let (rc, cmds, all) = dry_run("pg1", &[]);
    assert_eq!(rc, 0, "{all}");
    in_order(
        &cmds,
        &[
            "write /etc/lvm/lvmlocal.conf",
            "rm -f /etc/lvm/cache/.cache",
            "lvmconfig --validate",
            "pvcreate /dev/sdb",
            "vgcreate VG_DRBD /dev/sdb",
            "lvcreate -y -n LV_DATA -l 100%VG VG_DRBD",
            &format!("{} cib render --template advanced --format drbd", common::bin()),
            "write /etc/drbd.d/pg.res",
            "drbdadm -- --force create-md pg",
            "drbdadm up pg",
            "drbdadm primary --force pg",
            "pvcreate /dev/drbd0",
            "vgcreate --setautoactivation n VG_POSTGRES /dev/drbd0",
            "lvcreate -y -n LV_DATA -l 95%VG VG_POSTGRES",
            "lvchange -a y VG_POSTGRES/LV_DATA",
            &format!("{} xfs format /dev/VG_POSTGRES/LV_DATA", common::bin()),
            "mkdir -p -- /db",
            "mount -t xfs -o noatime,nodiratime,logbsize=256k,allocsize=1m /dev/VG_POSTGRES/LV_DATA /db",
            "install -d -o postgres -g postgres -m 0700 -- /db/pgdata",
            "runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /db/pgdata",
            "umount /db",
            "vgchange -a n VG_POSTGRES",
            "drbdadm secondary pg",
        ],
        &all,
    );
    // The filter: the DRBD backing LV rejected by both its names before the lower disk
    // and the DRBD devices are accepted; nothing else.
    assert!(
        all.contains(
            "filter = [ \"r|^/dev/VG_DRBD/LV_DATA$|\", \"r|^/dev/mapper/VG_DRBD-LV_DATA$|\", \
             \"a|^/dev/sdb$|\", \"a|^/dev/drbd[0-9]+$|\", \"r|.*|\" ]"
        ),
        "{all}"
    );
    assert!(all.contains("write_cache_state = 0"), "{all}");
    // The resource file is the render, on the lower LV, with pgstack's own handlers.
    for w in [
        "resource pg {",
        "  device minor 0;",
        "  disk /dev/VG_DRBD/LV_DATA;",
        "  meta-disk internal;",
        &format!("    fence-peer \"{} drbd fence-peer\";", common::bin()),
        &format!(
            "    after-resync-target \"{} drbd unfence-peer\";",
            common::bin()
        ),
        "  on pg1 { address 192.168.56.10:7788; }",
        "  on pg2 { address 192.168.56.20:7788; }",
    ] {
        assert!(all.contains(w), "{w:?} missing:\n{all}");
    }
}

#[test]
fn dry_run_of_the_second_node_builds_only_its_lower_layers() {
    let (rc, cmds, all) = dry_run("pg2", &[]);
    assert_eq!(rc, 0, "{all}");
    in_order(
        &cmds,
        &[
            "write /etc/lvm/lvmlocal.conf",
            "pvcreate /dev/sdb",
            "vgcreate VG_DRBD /dev/sdb",
            "lvcreate -y -n LV_DATA -l 100%VG VG_DRBD",
            "write /etc/drbd.d/pg.res",
            "drbdadm -- --force create-md pg",
            "drbdadm up pg",
            "mkdir -p -- /db",
        ],
        &all,
    );
    // The upper layers replicate from the first node: nothing above DRBD is made here.
    for c in &cmds {
        for no in [
            "drbdadm primary",
            "pvcreate /dev/drbd",
            "vgcreate --setautoactivation",
            "mkfs",
            "runuser",
        ] {
            assert!(!c.contains(no), "pg2 runs {c:?}:\n{all}");
        }
        assert!(!c.contains(" xfs format"), "pg2 runs {c:?}:\n{all}");
    }
}

#[test]
fn dry_run_follows_the_settings_and_refuses_the_wrong_node() {
    let (rc, cmds, all) = dry_run(
        "n2",
        &[
            "STACK_NODE1=n1",
            "STACK_NODE2=n2",
            "STACK_NODE1_ADDR=10.99.0.1",
            "STACK_NODE2_ADDR=10.99.0.2",
            "STACK_FIRST=yes",
            "STACK_UPPER_FREE_PCT=10",
            "STACK_DRBD_RESOURCE=r7",
            "STACK_DRBD_MINOR=3",
            "STACK_DRBD_PORT=7790",
            "STACK_LOWER_SIZE=200M",
            "STACK_PROVIDER=heartbeat",
        ],
    );
    assert_eq!(rc, 0, "{all}");
    in_order(
        &cmds,
        &[
            "lvcreate -y -n LV_DATA -L 200M VG_DRBD",
            "write /etc/drbd.d/r7.res",
            "drbdadm up r7",
            "drbdadm primary --force r7",
            "pvcreate /dev/drbd3",
            "lvcreate -y -n LV_DATA -l 90%VG VG_POSTGRES",
        ],
        &all,
    );
    assert!(all.contains("  on n2 { address 10.99.0.2:7790; }"), "{all}");
    assert!(
        all.contains("fence-peer \"/usr/lib/drbd/crm-fence-peer.9.sh\";"),
        "{all}"
    );
    // LVM-activate's tagging mode: a volume_list without the upper VG, which the script
    // itself activates by name.
    assert!(all.contains("volume_list = [ \"VG_DRBD\" ]"), "{all}");
    assert!(
        all.contains("lvchange -a y VG_POSTGRES/LV_DATA --config activation { volume_list = [ \"VG_POSTGRES\" ] }"),
        "{all}"
    );
    for (extra, why) in [
        (&["STACK_NODE=pg3"][..], "neither pg1 nor pg2"),
        (&["STACK_DISK="][..], "STACK_DISK"),
        (&["STACK_DISK=/dev/sdb;reboot"][..], "STACK_DISK"),
        (&["STACK_UPPER_FREE_PCT=0"][..], "STACK_UPPER_FREE_PCT"),
        (&["STACK_PGDATA=/var/lib/pg"][..], "not below STACK_MOUNT"),
    ] {
        let (rc, cmds, all) = dry_run("pg1", extra);
        assert_eq!(rc, 2, "{extra:?}: {all}");
        assert!(cmds.is_empty(), "{extra:?} ran {cmds:?}");
        assert!(all.contains(why), "{extra:?}: {all}");
    }
}

/// The provisioning for real: both guests run stack.sh as the VMs do (n1 first, alone,
/// then n2), DRBD resyncs, and a second run changes nothing it should not.
#[test]
fn stack_sh_builds_the_stack_in_two_uml_guests() {
    common::require_root();
    common::require_file("/usr/bin/linux.uml");
    common::require_file("/usr/bin/uml_switch");
    let bin = common::bin();
    let mut p = UmlPair::boot("vagrant", "384M", 96);
    let env = |node: &str, extra: &str| {
        format!(
            "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin STACK_NODE={node} STACK_NODE1=n1 \
             STACK_NODE2=n2 STACK_NODE1_ADDR=10.99.0.1 STACK_NODE2_ADDR=10.99.0.2 \
             STACK_DISK=/dev/ubdb STACK_XFS_TEST_SIZE=1 STACK_INITRAMFS=0 \
             STACK_PGSTACK={bin} {extra} {} 2>&1",
            stack_sh()
        )
    };
    let long = Duration::from_secs(300);
    // The guests' own DRBD defaults (not stack.sh's business, which writes only the
    // resource file): a fast resync and reconnect, as every UML test sets them.
    for i in 0..2 {
        p.ok(
            i,
            "cat > /etc/drbd.d/global_common.conf <<'EOF'
global { usage-count no; }
common {
  net { protocol C; connect-int 2; }
  disk { c-plan-ahead 0; resync-rate 100M; }
}
EOF",
        );
    }
    // A disk with a signature is refused, untouched, unless --force-disk.
    p.ok(1, "mkswap /dev/ubdb >/dev/null");
    let r = p.exec(1, &env("n2", ""), long);
    assert_eq!(r.rc, 2, "{}", r.out);
    assert!(r.out.contains("carries signatures"), "{}", r.out);
    assert!(p
        .ok(1, "blkid -p -o value -s TYPE /dev/ubdb")
        .contains("swap"));
    // The wrong node is refused.
    let r = p.exec(1, &env("n1", ""), long);
    assert_eq!(r.rc, 2, "{}", r.out);
    assert!(r.out.contains("this machine is n2"), "{}", r.out);

    let r = p.exec(0, &env("n1", ""), long);
    assert_eq!(r.rc, 0, "n1:\n{}", r.out);
    let first = r.out;
    let r = p.exec(1, &env("n2", "STACK_DISK_FORCE=1"), long);
    assert_eq!(r.rc, 0, "n2:\n{}", r.out);
    // The book's full initial sync: bounded generously, guests are slow on a busy host.
    for i in 0..2 {
        let r = p.exec(
            i,
            "i=0; until grep -q ds:UpToDate/UpToDate /proc/drbd; do sleep 0.5; i=$((i+1)); \
             [ $i -gt 1000 ] && { cat /proc/drbd; exit 1; }; done; cat /proc/drbd",
            Duration::from_secs(560),
        );
        assert_eq!(r.rc, 0, "no resync: {}", r.out);
    }
    // Handed over: DRBD secondary on both, connected, nothing mounted.
    for i in 0..2 {
        let s = p.ok(i, "cat /proc/drbd; grep -c ' /db ' /proc/mounts || true");
        assert!(s.contains("ro:Secondary/Secondary"), "{s}");
        assert!(s.trim_end().ends_with('0'), "{s}");
    }
    // The filter in force: with DRBD secondary the upper VG is not seen at all (the
    // backing LV, which holds it too, is never scanned).
    let s = p.ok(
        0,
        "lvmconfig devices/filter; pvs --noheadings -o pv_name,vg_name 2>&1",
    );
    assert!(s.contains("/dev/ubdb") && s.contains("VG_DRBD"), "{s}");
    assert!(
        !s.contains("VG_POSTGRES"),
        "secondary shows the upper VG:\n{s}"
    );
    assert!(!s.to_lowercase().contains("duplicate"), "{s}");

    // A second run on n1 finds everything in place and builds nothing again; left
    // running (no handover) it shows the book's layout.
    let r = p.exec(0, &env("n1", "STACK_HANDOVER=0"), long);
    assert_eq!(r.rc, 0, "n1 again:\n{}", r.out);
    for w in [
        "pg is up already",
        "+ drbdadm primary pg",
        "has an XFS file system already",
        "holds a database already",
    ] {
        assert!(r.out.contains(w), "{w}:\n{}", r.out);
    }
    for no in [
        "+ pvcreate",
        "+ vgcreate",
        "+ lvcreate",
        "create-md",
        "primary --force",
        "+ runuser",
    ] {
        assert!(!r.out.contains(no), "second run did {no}:\n{}", r.out);
    }
    let s = p.ok(
        0,
        "vgs --noheadings --units m -o vg_extent_count,vg_free_count VG_POSTGRES; \
         grep ' /db ' /proc/mounts; ls /db/pgdata/PG_VERSION; stat -c '%U %a' /db/pgdata; \
         pvs --noheadings -o pv_name,vg_name 2>&1",
    );
    let nums: Vec<u64> = s
        .split_whitespace()
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    assert!(nums[1] * 100 >= nums[0] * 5, "under 5% free: {s}");
    assert!(
        s.contains("/dev/mapper/VG_POSTGRES-LV_DATA /db xfs")
            && s.contains("noatime,nodiratime")
            && s.contains("logbsize=256k")
            && s.contains("allocsize=1024k"),
        "{s}"
    );
    assert!(s.contains("postgres 700"), "{s}");
    assert!(
        s.contains("/dev/drbd0") && s.matches("VG_POSTGRES").count() == 2,
        "the upper PV must be seen once, on /dev/drbd0:\n{s}"
    );
    assert!(!s.to_lowercase().contains("duplicate"), "{s}");
    // The first run made what the book makes, on these devices.
    for w in [
        "+ pvcreate /dev/ubdb",
        "+ drbdadm primary --force pg",
        "+ pvcreate /dev/drbd0",
        "+ lvcreate -y -n LV_DATA -l 95%VG VG_POSTGRES",
    ] {
        assert!(first.contains(w), "{w}:\n{first}");
    }
}

#[test]
fn cluster_sh_dry_run_renders_corosync_and_loads_the_advanced_template_last() {
    let bin = common::bin();
    let script = root().join("vagrant/provision/cluster.sh");
    let run = |node: &str, load: &str| {
        let node = format!("CLUSTER_NODE={node}");
        let load = format!("CLUSTER_LOAD={load}");
        let pgstack = format!("CLUSTER_PGSTACK={bin}");
        let o = common::run(
            &[
                "/usr/bin/env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                &node,
                &load,
                &pgstack,
                "CLUSTER_KEY_DIR=/vagrant/.cluster",
                "CLUSTER_NO_FENCING=1",
                "CLUSTER_START=systemctl",
                script.to_str().unwrap(),
                "--dry-run",
            ],
            &[],
            Duration::from_secs(60),
        );
        let all = text(&o);
        assert!(o.status.success(), "{all}");
        let cmds: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("+ ").map(str::to_string))
            .collect();
        (cmds, all)
    };
    let render = format!("{bin} cib render --template advanced");
    let (cmds, all) = run("pg1", "0");
    in_order(
        &cmds,
        &[
            &render,
            "write /etc/corosync/corosync.conf",
            "corosync-keygen -k /etc/corosync/authkey",
            "install -m 0600 -- /etc/corosync/authkey /vagrant/.cluster/authkey",
            "systemctl disable corosync pacemaker",
            "systemctl start corosync",
            "systemctl start pacemaker",
        ],
        &all,
    );
    assert!(!all.contains("cibadmin"), "pg1 loads nothing:\n{all}");
    for w in [
        "ring0_addr: 192.168.56.10",
        "name: pg1",
        "ring0_addr: 192.168.56.20",
        "name: pg2",
        "two_node: 1",
        "keyfile: /etc/corosync/authkey",
    ] {
        assert!(all.contains(w), "{w:?} missing:\n{all}");
    }
    let (cmds, all) = run("pg2", "1");
    in_order(
        &cmds,
        &[
            "write /etc/corosync/corosync.conf",
            "systemctl start pacemaker",
            &format!("{render} --set provider=pgstack"),
            "cibadmin --replace --scope configuration --xml-file",
        ],
        &all,
    );
    let xml = cmds.iter().find(|c| c.contains("--format xml")).unwrap();
    assert!(
        xml.contains("--set vip=192.168.56.50") && xml.contains("--no-fencing"),
        "{xml}"
    );
}
