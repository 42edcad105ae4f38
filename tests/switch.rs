//! The one-word switch: a resource-agents configuration (DRBD clone with linbit's
//! parameters, Filesystem with force_unmount=safe, pgsql in the Debian layout, IPaddr2 with
//! nic, iflabel, arp_sender, flush_routes) loads with crmsh and with pcs after changing only
//! the provider to pgstack, without any force option and without a warning about a
//! parameter; `pgstack migrate-cib` makes the same change on a CIB file.
//!
//! crmsh and pcs read the agents' meta-data from /usr/lib/ocf/resource.d/pgstack only. When
//! the agents under test are installed elsewhere (PGSTACK_OCF_DIR), crmsh and pcs run in a
//! private mount namespace (`unshare -m`) where that directory is bind-mounted over it, so
//! the system's installed agents are neither used nor touched. Root only.

mod common;

use common::cib::{
    crm_verify, diff, fresh_cluster_cib, normal_configuration, run_env, Ran, TempDir,
};
use common::{bin, ocf_dir, require_file, require_root};

const SYSTEM_OCF: &str = "/usr/lib/ocf/resource.d/pgstack";

/// The configuration as a resource-agents user writes it (crm syntax).
const REFERENCE_CRM: &str = r#"primitive drbd_pg ocf:linbit:drbd params drbd_resource=pg drbdconf=/etc/drbd.conf wfc_timeout=20 adjust_master_score="0 10 1000 10000" stop_outdates_secondary=false ignore_missing_notifications=true unfence_extra_args="--quiet" op monitor interval=29s role=Promoted timeout=20 op monitor interval=31s role=Unpromoted timeout=20 op start timeout=240 op stop timeout=100 op promote timeout=90 op demote timeout=90 op notify timeout=90
clone ms_drbd_pg drbd_pg meta promotable=true promoted-max=1 promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true
primitive fs_pg ocf:heartbeat:Filesystem params device=/dev/drbd0 directory=/var/lib/postgresql fstype=xfs options="noatime,nodiratime" force_unmount=safe run_fsck=auto op monitor interval=20s timeout=40 op start timeout=60 op stop timeout=60
primitive pg ocf:heartbeat:pgsql params pgctl=/usr/lib/postgresql/15/bin/pg_ctl psql=/usr/bin/psql pgdata=/etc/postgresql/15/main config=/etc/postgresql/15/main/postgresql.conf start_opt="-c data_directory=/var/lib/postgresql/15/main" ctl_opt="-w" socketdir=/var/run/postgresql pgdba=postgres pgport=5432 logfile=/var/log/postgresql/pg.log tmpdir=/var/lib/postgresql/tmp pglibs=/usr/lib rep_mode=none op monitor interval=30s timeout=30 op start timeout=120 op stop timeout=120
primitive vip ocf:heartbeat:IPaddr2 params ip=10.99.0.50 cidr_netmask=24 nic=eth0 iflabel=pg arp_sender=send_arp arp_count=5 flush_routes=false op monitor interval=10s timeout=20
group pg_group fs_pg pg vip
colocation col_pg_on_drbd inf: pg_group ms_drbd_pg:Promoted
order ord_drbd_before_pg Mandatory: ms_drbd_pg:promote pg_group:start
property stonith-enabled=false
"#;

/// The same configuration as pcs commands (`PROVIDER` is replaced).
const REFERENCE_PCS: &[&[&str]] = &[
    &[
        "resource",
        "create",
        "drbd_pg",
        "ocf:linbit:drbd",
        "drbd_resource=pg",
        "drbdconf=/etc/drbd.conf",
        "wfc_timeout=20",
        "stop_outdates_secondary=false",
        "ignore_missing_notifications=true",
        "unfence_extra_args=--quiet",
        "promotable",
        "ms_drbd_pg",
        "promoted-max=1",
        "promoted-node-max=1",
        "clone-max=2",
        "clone-node-max=1",
        "notify=true",
    ],
    &[
        "resource",
        "create",
        "fs_pg",
        "ocf:heartbeat:Filesystem",
        "device=/dev/drbd0",
        "directory=/var/lib/postgresql",
        "fstype=xfs",
        "options=noatime,nodiratime",
        "force_unmount=safe",
        "run_fsck=auto",
        "--group",
        "pg_group",
    ],
    &[
        "resource",
        "create",
        "pg",
        "ocf:heartbeat:pgsql",
        "pgctl=/usr/lib/postgresql/15/bin/pg_ctl",
        "psql=/usr/bin/psql",
        "pgdata=/etc/postgresql/15/main",
        "config=/etc/postgresql/15/main/postgresql.conf",
        "start_opt=-c data_directory=/var/lib/postgresql/15/main",
        "ctl_opt=-w",
        "socketdir=/var/run/postgresql",
        "pgdba=postgres",
        "logfile=/var/log/postgresql/pg.log",
        "tmpdir=/var/lib/postgresql/tmp",
        "pglibs=/usr/lib",
        "rep_mode=none",
        "--group",
        "pg_group",
    ],
    &[
        "resource",
        "create",
        "vip",
        "ocf:heartbeat:IPaddr2",
        "ip=10.99.0.50",
        "cidr_netmask=24",
        "nic=eth0",
        "iflabel=pg",
        "arp_sender=send_arp",
        "arp_count=5",
        "flush_routes=false",
        "--group",
        "pg_group",
    ],
    &[
        "constraint",
        "colocation",
        "add",
        "pg_group",
        "with",
        "Promoted",
        "ms_drbd_pg",
        "INFINITY",
    ],
    &[
        "constraint",
        "order",
        "promote",
        "ms_drbd_pg",
        "then",
        "start",
        "pg_group",
    ],
];

/// Only the provider changes: the one-word switch.
fn switched(s: &str) -> String {
    s.replace("ocf:heartbeat:", "ocf:pgstack:")
        .replace("ocf:linbit:", "ocf:pgstack:")
}

/// Runs `argv` with `env`, with the agents under test visible where crmsh and pcs look.
fn with_agents(argv: &[&str], env: &[(&str, &str)]) -> Ran {
    let dir = ocf_dir();
    if dir == SYSTEM_OCF {
        return run_env(argv, env);
    }
    let mut full = vec![
        "unshare",
        "-m",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        "mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"",
        "sh",
        dir.as_str(),
        SYSTEM_OCF,
    ];
    full.extend_from_slice(argv);
    run_env(&full, env)
}

fn fresh(tmp: &TempDir, name: &str) -> String {
    let p = tmp.file(name);
    std::fs::write(&p, fresh_cluster_cib()).unwrap();
    p
}

/// crmsh with a HOME of its own (see common::cib::crm), loading `script` into `cib`.
fn crm_load(tmp: &TempDir, cib: &str, script: &str) -> Ran {
    let home = tmp.path("crm-home");
    let cache = home.join(".cache");
    std::fs::create_dir_all(cache.join("crm")).unwrap();
    let f = tmp.file(&format!(
        "{}.crm",
        std::path::Path::new(cib)
            .file_name()
            .unwrap()
            .to_string_lossy()
    ));
    std::fs::write(&f, script).unwrap();
    let (home, cache) = (home.to_string_lossy(), cache.to_string_lossy());
    with_agents(
        &["crm", "configure", "load", "update", &f],
        &[
            ("CIB_file", cib),
            ("HOME", &home),
            ("XDG_CACHE_HOME", &cache),
        ],
    )
}

fn pcs_all(cib: &str, cmds: &[Vec<String>]) -> Vec<Ran> {
    cmds.iter()
        .map(|c| {
            let mut argv = vec!["pcs", "-f", cib];
            argv.extend(c.iter().map(String::as_str));
            with_agents(&argv, &[])
        })
        .collect()
}

fn pcs_cmds(pgstack: bool) -> Vec<Vec<String>> {
    REFERENCE_PCS
        .iter()
        .map(|c| {
            c.iter()
                .map(|a| if pgstack { switched(a) } else { a.to_string() })
                .collect()
        })
        .collect()
}

/// A message of crmsh or pcs about a parameter.
fn parameter_complaint(out: &str) -> Option<&str> {
    out.lines().find(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("not known")
            || l.contains("unknown")
            || l.contains("invalid resource option")
            || l.contains("--force")
    })
}

fn prerequisites() {
    require_root();
    for f in [
        "/usr/sbin/crm",
        "/usr/sbin/pcs",
        "/usr/lib/ocf/resource.d/heartbeat/IPaddr2",
        "/usr/lib/ocf/resource.d/linbit/drbd",
    ] {
        require_file(f);
    }
    require_file(&format!("{}/IPaddr2", ocf_dir()));
}

#[test]
fn crm_loads_the_reference_configuration_after_the_provider_change() {
    prerequisites();
    let tmp = TempDir::new("switch-crm");
    // The configuration is valid for the reference agents (the control).
    let reference = fresh(&tmp, "reference.xml");
    let r = crm_load(&tmp, &reference, REFERENCE_CRM);
    assert_eq!(r.code, 0, "reference: {}\n{}", r.stdout, r.stderr);
    // A parameter no agent declares is caught: crmsh does check the pgstack meta-data.
    let bogus = fresh(&tmp, "bogus.xml");
    let r = crm_load(
        &tmp,
        &bogus,
        &switched(REFERENCE_CRM).replace("flush_routes=false", "flush_routes=false bogus_param=1"),
    );
    assert!(
        r.code != 0 && r.stderr.contains("bogus_param"),
        "crmsh did not check the parameters: {}\n{}",
        r.stdout,
        r.stderr
    );
    // The switch: only the provider changed; no force, no complaint.
    let ours = fresh(&tmp, "pgstack.xml");
    let r = crm_load(&tmp, &ours, &switched(REFERENCE_CRM));
    assert_eq!(r.code, 0, "pgstack: {}\n{}", r.stdout, r.stderr);
    let all = format!("{}\n{}", r.stdout, r.stderr);
    assert!(
        parameter_complaint(&all).is_none(),
        "crmsh complained: {all}"
    );
    let text = std::fs::read_to_string(&ours).unwrap();
    for t in ["IPaddr2", "Filesystem", "pgsql", "drbd"] {
        assert!(
            text.contains(&format!("provider=\"pgstack\" type=\"{t}\"")),
            "{t}: {text}"
        );
    }
    // The two configurations differ by the provider alone.
    let a = normal_configuration(&std::fs::read_to_string(&reference).unwrap());
    let b = normal_configuration(&text);
    assert_eq!(switched_xml(&a), b, "{}", diff(&switched_xml(&a), &b));
}

fn switched_xml(s: &str) -> String {
    s.replace("provider=\"heartbeat\"", "provider=\"pgstack\"")
        .replace("provider=\"linbit\"", "provider=\"pgstack\"")
}

#[test]
fn pcs_creates_the_reference_configuration_after_the_provider_change() {
    prerequisites();
    let tmp = TempDir::new("switch-pcs");
    let reference = fresh(&tmp, "reference.xml");
    for r in pcs_all(&reference, &pcs_cmds(false)) {
        assert_eq!(r.code, 0, "reference: {}\n{}", r.stdout, r.stderr);
    }
    let bogus = fresh(&tmp, "bogus.xml");
    let mut cmd = pcs_cmds(true)[3].clone();
    cmd.push("bogus_param=1".into());
    let r = &pcs_all(&bogus, &[cmd])[0];
    assert!(
        r.code != 0 && r.stderr.contains("bogus_param"),
        "pcs did not check the parameters: {}\n{}",
        r.stdout,
        r.stderr
    );
    let ours = fresh(&tmp, "pgstack.xml");
    for r in pcs_all(&ours, &pcs_cmds(true)) {
        assert_eq!(r.code, 0, "pgstack: {}\n{}", r.stdout, r.stderr);
        let all = format!("{}\n{}", r.stdout, r.stderr);
        assert!(parameter_complaint(&all).is_none(), "pcs complained: {all}");
    }
    // pcs adds each agent's advertised operations (and their depths), which differ; the
    // parameters, the clone and the constraints are the same.
    let kept = |s: &str| -> String {
        s.lines()
            .filter(|l| l.len() - l.trim_start().len() < 12 && !l.trim_start().starts_with("op "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let a = kept(&switched_xml(&normal_configuration(
        &std::fs::read_to_string(&reference).unwrap(),
    )));
    let b = kept(&normal_configuration(
        &std::fs::read_to_string(&ours).unwrap(),
    ));
    assert_eq!(a, b, "{}", diff(&a, &b));
}

#[test]
fn migrate_cib_switches_a_file_by_provider_and_reports_the_changes_of_meaning() {
    prerequisites();
    let tmp = TempDir::new("switch-migrate");
    let reference = fresh(&tmp, "reference.xml");
    let r = crm_load(&tmp, &reference, REFERENCE_CRM);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let before = std::fs::read_to_string(&reference).unwrap();
    let b = bin();

    let dry = run_env(&[&b, "migrate-cib", "--file", &reference, "--dry-run"], &[]);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert_eq!(
        std::fs::read_to_string(&reference).unwrap(),
        before,
        "--dry-run wrote"
    );
    for l in [
        "switch drbd_pg: ocf:linbit:drbd -> ocf:pgstack:drbd",
        "switch fs_pg: ocf:heartbeat:Filesystem -> ocf:pgstack:Filesystem",
        "switch pg: ocf:heartbeat:pgsql -> ocf:pgstack:pgsql",
        "switch vip: ocf:heartbeat:IPaddr2 -> ocf:pgstack:IPaddr2",
        "drbd_pg wfc_timeout (ignored)",
        "pg ctl_opt (ignored)",
        "pg tmpdir (ignored)",
        "vip run_arping (default)",
    ] {
        assert!(dry.stdout.contains(l), "missing {l:?} in:\n{}", dry.stdout);
    }

    let r = run_env(&[&b, "migrate-cib", "--file", &reference], &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let after = std::fs::read_to_string(&reference).unwrap();
    let (code, msgs) = crm_verify(std::path::Path::new(&reference));
    assert_eq!(code, 0, "crm_verify: {msgs}");
    // Exactly what crmsh makes of the provider-switched script.
    let ours = fresh(&tmp, "pgstack.xml");
    let r = crm_load(&tmp, &ours, &switched(REFERENCE_CRM));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let a = normal_configuration(&after);
    let o = normal_configuration(&std::fs::read_to_string(&ours).unwrap());
    assert_eq!(a, o, "{}", diff(&a, &o));

    // And back: the reference configuration again.
    let r = run_env(
        &[&b, "migrate-cib", "--file", &reference, "--to", "heartbeat"],
        &[],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        normal_configuration(&std::fs::read_to_string(&reference).unwrap()),
        normal_configuration(&before)
    );
}

#[test]
fn migrate_cib_keeps_what_pgstack_would_refuse() {
    prerequisites();
    let tmp = TempDir::new("switch-keep");
    let cib = fresh(&tmp, "cib.xml");
    // (pgsql with rep_mode=sync switches now: the postgresql agent replicates.)
    let script = "primitive vip ocf:heartbeat:IPaddr2 params ip=10.99.0.60 lvs_support=true op monitor interval=30s timeout=30\nproperty stonith-enabled=false\n";
    let r = crm_load(&tmp, &cib, script);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let before = std::fs::read_to_string(&cib).unwrap();
    let r = run_env(&[&bin(), "migrate-cib", "--file", &cib], &[]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("keep vip on ocf:heartbeat:IPaddr2: lvs_support=\"true\""),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&cib).unwrap(),
        before,
        "a kept resource was changed"
    );
}

/// Every parameter in the reference agents' meta-data is declared by the pgstack agent
/// installed under the same type name.
#[test]
fn every_reference_parameter_is_declared() {
    require_root();
    for (reference, ours) in [
        ("heartbeat/IPaddr2", "IPaddr2"),
        ("heartbeat/Filesystem", "Filesystem"),
        ("heartbeat/pgsql", "pgsql"),
        ("heartbeat/pgsqlms", "pgsqlms"),
        ("linbit/drbd", "drbd"),
    ] {
        let path = format!("/usr/lib/ocf/resource.d/{reference}");
        require_file(&path);
        let r = run_env(
            &[&path, "meta-data"],
            &[
                ("OCF_ROOT", "/usr/lib/ocf"),
                ("OCF_RA_VERSION_MAJOR", "1"),
                ("OCF_RA_VERSION_MINOR", "0"),
            ],
        );
        assert_eq!(r.code, 0, "{path} meta-data: {}", r.stderr);
        let mine = run_env(&[&format!("{}/{ours}", ocf_dir()), "meta-data"], &[]).ok();
        for name in parameter_names(&r.stdout) {
            let decl = format!("<parameter name=\"{name}\"");
            let at = mine.stdout.find(&decl).unwrap_or_else(|| {
                panic!("ocf:pgstack:{ours} does not declare {name} of {reference}")
            });
            let body = &mine.stdout[at..];
            let body = &body[..body.find("</parameter>").unwrap()];
            assert!(body.contains("<longdesc"), "{ours} {name}: no description");
        }
    }
}

fn parameter_names(xml: &str) -> Vec<String> {
    xml.split("<parameter name=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next().map(str::to_string))
        .collect()
}
