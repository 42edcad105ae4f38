//! Every template, rendered with defaults and with other values, passes Pacemaker's own
//! crm_verify; bad values are refused with a message naming the variable.

mod common;

use common::cib::{crm_verify, pgstack, render, TempDir};

/// (template, extra render arguments)
fn variants() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("advanced", vec![]),
        (
            "advanced",
            vec![
                "--set",
                "provider=heartbeat",
                "--set",
                "node1=db-a.example.org",
                "--set",
                "node2=db-b.example.org",
                "--set",
                "node1_id=11",
                "--set",
                "node2_id=12",
                "--set",
                "drbd_resource=r0",
                "--set",
                "volgrpname=vg_pg",
                "--set",
                "device=/dev/vg_pg/lv_data",
                "--set",
                "directory=/srv/pg",
                "--set",
                "pgdata=/srv/pg/15/main",
                "--set",
                "vip=10.99.7.50",
                "--set",
                "vip_cidr=16",
                "--set",
                "vip_nic=eth1",
                "--set",
                "vip_label=",
                "--set",
                "stickiness=500",
                "--set",
                "fence_agent=fence_idrac",
                "--set",
                "fence_node1_ip=10.99.7.110",
                "--set",
                "fence_node2_ip=10.99.7.120",
                "--set",
                "alert_recipient=/var/log/pgstack-alerts.log",
                "--set",
                "pg_start_timeout=10min",
            ],
        ),
        ("advanced", vec!["--no-fencing"]),
        ("replication", vec![]),
        (
            "replication",
            vec![
                "--set",
                "provider=heartbeat",
                "--set",
                "vip=fd00:99::50",
                "--set",
                "vip_cidr=64",
                "--set",
                "pgdata=/var/lib/pgsql/data",
                "--set",
                "alert_recipient=dba@example.org",
            ],
        ),
        (
            "replication",
            vec![
                "--no-fencing",
                "--set",
                "node1=alpha",
                "--set",
                "node2=beta",
            ],
        ),
        ("fencing", vec![]),
        (
            "fencing",
            vec![
                "--set",
                "fence_agent=fence_ilo4",
                "--set",
                "fence_delay=15s",
            ],
        ),
    ]
}

#[test]
fn every_template_passes_crm_verify_with_defaults_and_other_values() {
    let tmp = TempDir::new("verify");
    for (i, (template, extra)) in variants().into_iter().enumerate() {
        // Directly with crm_verify: the render with node states (every node online).
        let mut args = extra.clone();
        args.push("--online-status");
        let online = render(&tmp, &format!("{i}-online.xml"), template, &args);
        let (code, err) = crm_verify(&online);
        assert_eq!(
            code, 0,
            "{template} {extra:?}: crm_verify exit {code}\n{err}"
        );
        // Through pgstack cib verify, on the plain render.
        let plain = render(&tmp, &format!("{i}.xml"), template, &extra);
        let text = std::fs::read_to_string(&plain).unwrap();
        assert!(
            !text.contains("<node_state"),
            "a plain render has no status"
        );
        let r = pgstack(&tmp, &["cib", "verify", plain.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{template} {extra:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("valid (crm_verify exit 0)"),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn values_reach_the_cib() {
    let tmp = TempDir::new("values");
    let (_, extra) = variants().swap_remove(1);
    let f = render(&tmp, "v.xml", "advanced", &extra);
    let x = std::fs::read_to_string(f).unwrap();
    for want in [
        "uname=\"db-a.example.org\"",
        "id=\"12\"",
        "provider=\"linbit\" type=\"drbd\"",
        "type=\"LVM-activate\"",
        "name=\"vgname\" value=\"vg_pg\"",
        "name=\"vg_access_mode\" value=\"tagging\"",
        "type=\"Filesystem\"",
        "type=\"pgsql\"",
        "type=\"IPaddr2\"",
        "value=\"r0\"",
        "value=\"/srv/pg/15/main\"",
        "value=\"10.99.7.50\"",
        "name=\"nic\" value=\"eth1\"",
        "name=\"resource-stickiness\" value=\"500\"",
        "type=\"fence_idrac\"",
        "target=\"db-b.example.org\"",
        "value=\"/var/log/pgstack-alerts.log\"",
        "timeout=\"10min\"",
    ] {
        assert!(x.contains(want), "{want} missing");
    }
    assert!(!x.contains("iflabel"), "an empty label leaves iflabel out");
}

#[test]
fn fencing_is_on_by_default_and_off_only_with_a_warning() {
    let tmp = TempDir::new("fencing");
    let r = pgstack(&tmp, &["cib", "render", "--template", "advanced"]).ok();
    assert!(r.stdout.contains("name=\"stonith-enabled\" value=\"true\""));
    assert!(r.stdout.contains("class=\"stonith\""));
    assert!(r.stdout.contains("<fencing-level"));
    assert!(!r.stderr.contains("WARNING"), "{}", r.stderr);
    let r = pgstack(
        &tmp,
        &["cib", "render", "--template", "advanced", "--no-fencing"],
    )
    .ok();
    assert!(r
        .stdout
        .contains("name=\"stonith-enabled\" value=\"false\""));
    assert!(!r.stdout.contains("class=\"stonith\""));
    assert!(
        r.stderr.contains("WARNING") && r.stderr.contains("split brain"),
        "{}",
        r.stderr
    );
    // The flag cannot be bypassed with --set.
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "render",
            "--template",
            "advanced",
            "--set",
            "fencing=false",
        ],
    );
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--no-fencing"), "{}", r.stderr);
}

#[test]
fn bad_values_are_refused_with_a_message() {
    let tmp = TempDir::new("bad");
    for (set, template, want) in [
        (
            "vip=192.168.56.300",
            "advanced",
            "vip=\"192.168.56.300\" refused",
        ),
        ("vip=224.0.0.5", "advanced", "multicast"),
        ("vip_cidr=33", "advanced", "at most 32"),
        ("node1=pg_1", "advanced", "node1=\"pg_1\" refused"),
        ("node2=pg1", "advanced", "two names"),
        ("node2_id=1", "replication", "unique"),
        ("directory=db", "advanced", "absolute path"),
        ("device=/dev/../etc/passwd", "advanced", "'..'"),
        (
            "pgdata=/var/lib/pg",
            "advanced",
            "not under the replicated mount point",
        ),
        (
            "drbd_resource=pg;reboot",
            "advanced",
            "drbd_resource=\"pg;reboot\" refused",
        ),
        ("fs_options=noatime nodiratime", "advanced", "fs_options"),
        (
            "provider=linbit",
            "advanced",
            "expected one of pgstack, heartbeat",
        ),
        ("stickiness=-5", "replication", "stickiness"),
        ("pg_start_timeout=soon", "replication", "duration"),
        ("fence_agent=ipmilan", "fencing", "fence_"),
        ("node1_addr=fd00::10", "advanced", "IPv4"),
        ("node2_addr=192.168.56.10", "advanced", "two addresses"),
        ("drbd_version=8.3", "advanced", "expected one of 8.4, 9"),
        (
            "fence_node2_ip=192.168.56.110",
            "fencing",
            "its own fencing device",
        ),
        ("alert_recipient=root", "advanced", "mail address"),
        (
            "no_such_variable=1",
            "advanced",
            "has no variable \"no_such_variable\"",
        ),
        ("novalue", "advanced", "KEY=VALUE"),
    ] {
        let r = pgstack(
            &tmp,
            &["cib", "render", "--template", template, "--set", set],
        );
        assert_eq!(r.code, 1, "{set} accepted:\n{}", r.stdout);
        assert!(r.stdout.is_empty(), "{set}: nothing is printed on refusal");
        assert!(
            r.stderr.contains(want),
            "{set}: {:?} not in {}",
            want,
            r.stderr
        );
    }
    let r = pgstack(&tmp, &["cib", "render", "--template", "nosuch"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("advanced, replication, fencing"),
        "{}",
        r.stderr
    );
    let r = pgstack(&tmp, &["cib", "render", "--template", "alert"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("part of other templates"), "{}", r.stderr);
}

#[test]
fn verify_reports_an_invalid_cib() {
    let tmp = TempDir::new("invalid");
    let f = render(&tmp, "a.xml", "advanced", &[]);
    // A colocation with a resource that does not exist: Pacemaker's schema check refuses it.
    let text = std::fs::read_to_string(&f)
        .unwrap()
        .replace("with-rsc=\"ms_drbd_pg\"", "with-rsc=\"ms_drbd_nosuch\"");
    std::fs::write(&f, text).unwrap();
    let r = pgstack(&tmp, &["cib", "verify", f.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout.contains("NOT valid (crm_verify exit 78)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("ms_drbd_nosuch"),
        "the message names the problem: {}",
        r.stdout
    );
    let (code, _) = crm_verify(&f);
    assert_ne!(code, 0, "crm_verify agrees");
}

#[test]
fn templates_lists_every_template_and_variable() {
    let tmp = TempDir::new("list");
    let r = pgstack(&tmp, &["cib", "templates"]).ok();
    for w in [
        "advanced:",
        "replication:",
        "fencing:",
        "vip_cidr",
        "fence_agent",
        "alert_recipient",
        "node1_id",
    ] {
        assert!(r.stdout.contains(w), "{w} missing:\n{}", r.stdout);
    }
}

#[test]
fn drbd_resource_file_is_accepted_by_drbdadm_with_its_fencing_handlers() {
    // drbdadm parses the file as the kernel module's version would (drbdadm-84 for 8.4);
    // `dump` needs this host's name and a local address in one `on` section: the address
    // lives in a namespace of this test.
    common::require_root();
    let ns = common::netns::Netns::new("cib-drbd");
    ns.ip(&["addr", "add", "10.99.61.1/32", "dev", "lo"]);
    let tmp = TempDir::new("drbd");
    let host = common::sh_ok(&["uname", "-n"]).trim().to_string();
    let host_set = format!("node1={host}");
    for (version, drbdadm, fencing_in) in [
        ("8.4", "/usr/lib/drbd/drbdadm-84", "disk"),
        ("9", "/usr/sbin/drbdadm", "net"),
    ] {
        for (fencing, provider) in [(true, "pgstack"), (true, "heartbeat"), (false, "pgstack")] {
            let v = format!("drbd_version={version}");
            let p = format!("provider={provider}");
            let mut args = vec![
                "--format",
                "drbd",
                "--set",
                &v,
                "--set",
                &p,
                "--set",
                &host_set,
                "--set",
                "node2=pgst-cib-peer",
                "--set",
                "node1_addr=10.99.61.1",
                "--set",
                "node2_addr=10.99.61.2",
                "--set",
                "drbd_resource=pgstcib",
            ];
            if !fencing {
                args.push("--no-fencing");
            }
            let f = render(
                &tmp,
                &format!("pgstcib-{version}-{fencing}-{provider}.res"),
                "advanced",
                &args,
            );
            let out = ns.exec(&[drbdadm, "-c", f.to_str().unwrap(), "dump", "pgstcib"]);
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
            assert!(
                out.status.success(),
                "{version} fencing={fencing}: {stderr}"
            );
            let r = common::cib::Ran {
                code: 0,
                stdout,
                stderr,
            };
            let has = r.stdout.contains("fencing          resource-and-stonith;");
            assert_eq!(has, fencing, "{version}: {}", r.stdout);
            if fencing {
                assert!(
                    r.stdout
                        .contains(&format!("    {fencing_in} {{\n        fencing")),
                    "{}",
                    r.stdout
                );
                // pgstack's own handlers, or LINBIT's scripts with the reference agents.
                let (fence, unfence) = if provider == "pgstack" {
                    (
                        "/usr/sbin/pgstack drbd fence-peer",
                        "/usr/sbin/pgstack drbd unfence-peer",
                    )
                } else {
                    (
                        "/usr/lib/drbd/crm-fence-peer",
                        "/usr/lib/drbd/crm-unfence-peer",
                    )
                };
                assert!(
                    r.stdout.contains(fence) && r.stdout.contains(unfence),
                    "{provider}: {}",
                    r.stdout
                );
            }
        }
    }
    let r = pgstack(
        &tmp,
        &[
            "cib",
            "render",
            "--template",
            "replication",
            "--format",
            "drbd",
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no DRBD resource file"), "{}", r.stderr);
}

#[test]
fn corosync_conf_passes_corosyncs_own_check() {
    // `corosync -t` needs the key and one node address on a local interface: both are made
    // by this test (the address in a namespace of its own).
    common::require_root();
    let ns = common::netns::Netns::new("cib-coro");
    ns.ip(&["addr", "add", "10.99.62.1/32", "dev", "lo"]);
    let tmp = TempDir::new("corosync");
    let key = tmp.file("authkey");
    std::fs::write(&key, [0x5au8; 128]).unwrap();
    let keyfile = format!("corosync_keyfile={key}");
    for template in ["advanced", "replication", "fencing"] {
        let f = render(
            &tmp,
            &format!("{template}.conf"),
            template,
            &[
                "--format",
                "corosync",
                "--set",
                &keyfile,
                "--set",
                "node1_addr=10.99.62.1",
                "--set",
                "node2_addr=10.99.62.2",
                "--set",
                "cluster_name=pgst_cib",
            ],
        );
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("two_node: 1"), "{text}");
        let out = ns.exec(&["corosync", "-t", "-c", f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{template}: corosync -t: {:?}\n{text}",
            out
        );
        // The same file with a broken quorum setting is refused: the check is real.
        let broken = tmp.path("broken.conf");
        std::fs::write(&broken, text.replace("two_node: 1", "two_node: yes")).unwrap();
        let out = ns.exec(&["corosync", "-t", "-c", broken.to_str().unwrap()]);
        assert!(!out.status.success());
    }
}

/// The `(provider, type, parameter names)` of each primitive in a rendered CIB.
fn primitives(xml: &str) -> Vec<(String, String, Vec<String>)> {
    let attr = |line: &str, name: &str| {
        let k = format!(" {name}=\"");
        line.split_once(&k)
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(v, _)| v.to_string())
    };
    let mut v: Vec<(String, String, Vec<String>)> = Vec::new();
    for line in xml.lines() {
        if line.contains("<primitive ") && attr(line, "class").as_deref() == Some("ocf") {
            v.push((
                attr(line, "provider").unwrap(),
                attr(line, "type").unwrap(),
                Vec::new(),
            ));
        } else if line.contains("</primitive>") {
            continue;
        } else if line.contains("<nvpair ") && line.contains("-instance_attributes-") {
            if let (Some(last), Some(n)) = (v.last_mut(), attr(line, "name")) {
                last.2.push(n);
            }
        }
    }
    v
}

#[test]
fn reference_agents_declare_every_parameter_the_heartbeat_render_gives_them() {
    // provider=heartbeat maps each resource to the reference agent with that agent's own
    // parameter names: each name must be one the agent's meta-data declares.
    let ocf = "/usr/lib/ocf/resource.d";
    for a in [
        "linbit/drbd",
        "heartbeat/LVM-activate",
        "heartbeat/Filesystem",
        "heartbeat/pgsql",
        "heartbeat/IPaddr2",
    ] {
        common::require_file(&format!("{ocf}/{a}"));
    }
    let tmp = TempDir::new("refparams");
    let f = render(&tmp, "hb.xml", "advanced", &["--set", "provider=heartbeat"]);
    let xml = std::fs::read_to_string(f).unwrap();
    let prims = primitives(&xml);
    let types: Vec<String> = prims.iter().map(|(p, t, _)| format!("{p}/{t}")).collect();
    assert_eq!(
        types,
        [
            "linbit/drbd",
            "heartbeat/LVM-activate",
            "heartbeat/Filesystem",
            "heartbeat/pgsql",
            "heartbeat/IPaddr2"
        ],
        "{xml}"
    );
    for (p, t, params) in prims {
        let agent = format!("{ocf}/{p}/{t}");
        let r = common::cib::run_env(&[&agent, "meta-data"], &[("OCF_ROOT", "/usr/lib/ocf")]);
        assert_eq!(r.code, 0, "{agent} meta-data: {}", r.stderr);
        for n in &params {
            assert!(
                r.stdout.contains(&format!("<parameter name=\"{n}\"")),
                "{agent} declares no parameter {n}"
            );
        }
        assert!(!params.is_empty(), "{agent}: no parameters rendered");
    }
}
