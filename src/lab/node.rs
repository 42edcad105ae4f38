//! A lab node: its directories, corosync.conf and seeded CIB, its PID 1 (`lab _init`), and
//! the power switch.
//!
//! A node boots as `ip netns exec NS unshare --mount --uts --ipc --pid --fork --mount-proc
//! pgstack lab _init --dir DIR NAME`: the named network namespace, then fresh mount, uts,
//! ipc and pid namespaces. `_init` ([`init`]) is the node's PID 1: it bind-mounts the node's
//! own /etc/corosync, /var/lib/corosync, /var/lib/pacemaker, /var/log/pacemaker and
//! /var/log/corosync, puts tmpfs on /run and /dev/shm, starts corosync, waits until it
//! answers, starts pacemakerd and then only reaps children. SIGKILL to it from the host is
//! a power cut: the kernel kills every process of the node's pid namespace.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};

use super::{net, node_index, node_ns, now_f, poll, proc, run};
use super::{node_addr, Lab, LabError, LabResult};
use crate::sys::runner::{Cmd, FIXED_PATH};

const DIRS: &[(&str, &str)] = &[
    ("etc-corosync", "/etc/corosync"),
    ("var-lib-corosync", "/var/lib/corosync"),
    ("var-lib-pacemaker", "/var/lib/pacemaker"),
    ("log-pacemaker", "/var/log/pacemaker"),
    ("log-corosync", "/var/log/corosync"),
];

/// The corosync.conf of every node.
pub fn corosync_conf(nodes: u8, token_ms: u32) -> String {
    let mut s = format!(
        "# Written by pgstack lab.\n\
         totem {{\n\tversion: 2\n\tcluster_name: pgstlab\n\ttransport: knet\n\
         \ttoken: {token_ms}\n\tcrypto_cipher: none\n\tcrypto_hash: none\n}}\n\
         nodelist {{\n"
    );
    for i in 1..=nodes {
        s.push_str(&format!(
            "\tnode {{\n\t\tring0_addr: {}\n\t\tname: n{i}\n\t\tnodeid: {i}\n\t}}\n",
            node_addr(i)
        ));
    }
    s.push_str("}\nquorum {\n\tprovider: corosync_votequorum\n");
    if nodes == 2 {
        s.push_str("\ttwo_node: 1\n");
    }
    s.push_str(
        "}\nlogging {\n\tto_stderr: no\n\tto_logfile: yes\n\
         \tlogfile: /var/log/corosync/corosync.log\n\tto_syslog: no\n\ttimestamp: hires\n}\n",
    );
    s
}

/// Creates the node's directories, its corosync.conf and the seeded CIB (the rendered
/// configuration itself, so the cluster starts the stack as soon as a DC is elected).
pub fn prepare(lab: &Lab, name: &str, cib: &str) -> LabResult<()> {
    let d = lab.node_dir(name);
    for (sub, _) in DIRS {
        run::mkdir(&d.join(sub))?;
    }
    let pcmk = d.join("var-lib-pacemaker");
    for sub in ["cib", "pengine", "blackbox", "cores", "bundles"] {
        let p = pcmk.join(sub);
        run::mkdir(&p)?;
        run::chown(&p, "hacluster")?;
        run::chmod(&p, 0o750)?;
    }
    run::chown(&pcmk, "hacluster")?;
    let log = d.join("log-pacemaker");
    run::chown(&log, "hacluster")?;
    run::chmod(&log, 0o770)?;
    run::write(
        &d.join("etc-corosync").join("corosync.conf"),
        &corosync_conf(lab.cfg.nodes, lab.cfg.token_ms),
    )?;
    let seed = pcmk.join("cib").join("cib.xml");
    run::write(&seed, cib)?;
    run::chown(&seed, "hacluster")?;
    run::chmod(&seed, 0o600)?;
    Ok(())
}

fn pidfile(lab: &Lab, name: &str) -> PathBuf {
    lab.node_dir(name).join("init.pid")
}

/// The host pid of the node's PID 1, when it runs (checked against its recorded start
/// time and command line, so a reused pid is never taken for it).
pub fn init_pid(lab: &Lab, name: &str) -> Option<u32> {
    let line = run::read_line(&pidfile(lab, name))?;
    let mut w = line.split_whitespace();
    let pid: u32 = w.next()?.parse().ok()?;
    let start: u64 = w.next()?.parse().ok()?;
    let (_, s) = proc::stat(pid)?;
    (s == start && proc::alive(pid) && is_init_of(pid, lab, name)).then_some(pid)
}

fn is_init_of(pid: u32, lab: &Lab, name: &str) -> bool {
    proc::cmdline(pid).is_some_and(|c| {
        c.contains(" lab _init ")
            && c.contains(&format!("--dir {}", lab.dir.display()))
            && c.ends_with(&format!(" {name}"))
    })
}

pub fn is_alive(lab: &Lab, name: &str) -> bool {
    init_pid(lab, name).is_some()
}

/// A daemon (`corosync`, `pacemakerd`) started by the node's PID 1.
pub fn daemon_pid(lab: &Lab, name: &str, comm: &str) -> Option<u32> {
    let init = init_pid(lab, name)?;
    proc::children(init)
        .into_iter()
        .find(|p| proc::comm(*p).as_deref() == Some(comm))
}

/// Boots the node: NIC up with its address, then its PID 1 in fresh namespaces.
pub fn boot(lab: &Lab, name: &str) -> LabResult<()> {
    let i = node_index(name, lab.cfg.nodes)?;
    net::nic_up(name, i)?;
    let exe = lab.cfg.exe.display().to_string();
    let dir = lab.dir.display().to_string();
    let ns = node_ns(name);
    let c = Cmd::new("ip").args([
        "netns",
        "exec",
        &ns,
        "unshare",
        "--mount",
        "--uts",
        "--ipc",
        "--pid",
        "--fork",
        "--mount-proc",
        "--propagation",
        "private",
        &exe,
        "lab",
        "_init",
        "--dir",
        &dir,
        name,
    ]);
    let outer = run::spawn_logged(&c, &lab.node_dir(name).join("init.log"))?;
    let pid = poll(
        &format!("PID 1 of {name} (child of {outer})"),
        10.0,
        Duration::from_millis(20),
        || {
            proc::children(outer)
                .into_iter()
                .find(|p| is_init_of(*p, lab, name))
        },
    )?;
    let (_, start) = proc::stat(pid)
        .ok_or_else(|| LabError::Invalid(format!("PID 1 of {name} ({pid}) vanished")))?;
    run::write(&pidfile(lab, name), &format!("{pid} {start}\n"))?;
    Ok(())
}

/// A power cut: SIGKILL to the node's PID 1 (its whole pid namespace dies), then its NIC
/// goes silent. Returns the time of the cut.
pub fn power_off(lab: &Lab, name: &str) -> LabResult<f64> {
    let t = match init_pid(lab, name) {
        Some(pid) => {
            proc::kill9(pid);
            let t = now_f();
            poll(
                &format!("{name} powered off"),
                10.0,
                Duration::from_millis(10),
                || (!proc::alive(pid)).then_some(()),
            )?;
            t
        }
        None => now_f(),
    };
    net::nic_down(name)?;
    Ok(t)
}

/// [`power_off`] for `down`: errors do not matter (the namespaces go next).
pub fn power_off_quiet(lab: &Lab, name: &str) -> LabResult<()> {
    if let Some(pid) = init_pid(lab, name) {
        proc::kill9(pid);
    }
    Ok(())
}

pub fn kill_corosync(lab: &Lab, name: &str) -> LabResult<f64> {
    let pid = daemon_pid(lab, name, "corosync")
        .ok_or_else(|| LabError::Invalid(format!("no corosync runs on {name}")))?;
    proc::kill9(pid);
    Ok(now_f())
}

/// Runs `argv` inside the node (every namespace of its PID 1, and its root directory:
/// entering a mount namespace alone resets the root to the namespace's, which is not the
/// node's when the lab runs under a chroot); stdout on success.
pub fn exec(lab: &Lab, name: &str, argv: &[&str], limit: Duration) -> LabResult<String> {
    let pid = init_pid(lab, name).ok_or_else(|| LabError::Invalid(format!("{name} is down")))?;
    let p = pid.to_string();
    let mut v = vec!["nsenter", "-t", &p, "-a", "-r"];
    v.extend_from_slice(argv);
    let mut c = run::cmd(&v);
    c = c.env("TZ", "UTC");
    run::cmd_ok(&c, limit)
}

/// The node's PID 1. Never returns while the node runs.
pub fn init(dir: &Path, name: &str) -> LabResult<()> {
    let d = dir.join(name);
    nix::unistd::sethostname(name).map_err(|e| LabError::errno("sethostname", e))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| LabError::errno("making / private", e))?;
    for (sub, target) in DIRS {
        let src = d.join(sub);
        run::mkdir(Path::new(target))?;
        mount(
            Some(&src),
            *target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| LabError::errno(format!("bind {} on {target}", src.display()), e))?;
    }
    for (target, opts) in [("/run", "mode=0755"), ("/dev/shm", "mode=1777")] {
        mount(
            Some("tmpfs"),
            target,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(opts),
        )
        .map_err(|e| LabError::errno(format!("tmpfs on {target}"), e))?;
    }
    for p in ["/run/lock", "/run/resource-agents", "/run/crm"] {
        run::mkdir(Path::new(p))?;
    }
    // PostgreSQL's socket directory (the replication agents do not create it).
    let sock = Path::new(super::PG_SOCKETDIR);
    run::mkdir(sock)?;
    run::chown(sock, "postgres")?;
    run::chmod(sock, 0o2775)?;
    // The replication stack: the node's own disk, at the same path on every node.
    let own = d.join("db");
    if own.is_dir() {
        let target = dir.join("db");
        mount(
            Some(&own),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            LabError::errno(format!("bind {} on {}", own.display(), target.display()), e)
        })?;
    }
    let spawn = |prog: &str, out: &str| -> LabResult<u32> {
        let logp = d.join(out);
        let log = std::fs::File::create(&logp)
            .map_err(|e| LabError::io(format!("creating {}", logp.display()), e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| LabError::io(format!("opening {}", logp.display()), e))?;
        let mut c = std::process::Command::new(prog);
        if prog.ends_with("corosync") {
            c.arg("-f");
        }
        c.env_clear()
            .env("PATH", FIXED_PATH)
            .env("LC_ALL", "C")
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .process_group(0);
        let child = c
            .spawn()
            .map_err(|e| LabError::io(format!("starting {prog}"), e))?;
        Ok(child.id())
    };
    spawn("/usr/sbin/corosync", "corosync.out")?;
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = std::process::Command::new("/usr/sbin/corosync-cfgtool")
            .arg("-s")
            .env_clear()
            .env("PATH", FIXED_PATH)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break;
        }
        if Instant::now() >= until {
            return Err(LabError::Timeout {
                what: format!("corosync answering on {name}"),
                secs: 15.0,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    spawn("/usr/sbin/pacemakerd", "pacemakerd.out")?;
    // PID 1 of the node: reap every child and orphan until the power goes.
    loop {
        match nix::sys::wait::waitpid(None, None) {
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_secs(1)),
        }
    }
}
