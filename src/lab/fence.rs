//! Fencing in the lab: the stonith agent `fence_pgstack_lab` and the fence daemon.
//!
//! The fencer of a node runs the agent inside that node's namespaces, where the other
//! nodes' processes and the host's named network namespaces are invisible. So the agent
//! only talks, over a unix socket in the state directory, to the lab's fence daemon
//! (`pgstack lab _fenced`), which runs in the host's namespaces and does to the target
//! what a power switch does: `off` is [`super::Lab::crash`]'s power cut, `on` boots it.
//!
//! The agent speaks the fence-agents protocol: options as `key=value` lines on stdin (or
//! `-o ACTION -n NODE` on the command line), actions `metadata`, `list`, `status`,
//! `monitor`, `off`, `on`, `reboot`; exit 0 on success, 1 on failure, 2 for `status` of
//! a node that is off.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{node, proc, run, Lab, LabError, LabResult, FENCE_AGENT};
use crate::sys::runner::Cmd;

fn socket(dir: &Path) -> PathBuf {
    dir.join("fence.sock")
}

fn shim(exe: &Path, dir: &Path) -> LabResult<String> {
    let (exe, dir) = (run::plain_path(exe)?, run::plain_path(dir)?);
    Ok(format!(
        "#!/bin/sh\n# The lab's fence agent (pgstack lab); removed by `pgstack lab down`.\n\
         exec {exe} lab fence-agent --dir {dir} \"$@\"\n"
    ))
}

/// Installs the agent and starts the fence daemon.
pub fn install(lab: &Lab) -> LabResult<()> {
    let p = Path::new(FENCE_AGENT);
    if p.exists() && !is_ours(p) {
        return Err(LabError::Invalid(format!(
            "{FENCE_AGENT} exists and is not the lab's: left alone"
        )));
    }
    run::write(p, &shim(&lab.cfg.exe, &lab.dir)?)?;
    run::chmod(p, 0o755)?;
    let exe = lab.cfg.exe.display().to_string();
    let dir = lab.dir.display().to_string();
    let c = Cmd::new(&exe).args(["lab", "_fenced", "--dir", &dir]);
    let pid = run::spawn_logged(&c, &lab.dir.join("fenced.log"))?;
    run::write(&lab.dir.join("fenced.pid"), &format!("{pid}\n"))?;
    super::poll(
        "fence daemon listening",
        10.0,
        Duration::from_millis(20),
        || UnixStream::connect(socket(&lab.dir)).ok().map(|_| ()),
    )
}

fn is_ours(p: &Path) -> bool {
    std::fs::read_to_string(p).is_ok_and(|s| s.contains("lab fence-agent"))
}

/// Stops the daemon and removes the agent (only when it is the lab's).
pub fn uninstall(dir: &Path) -> LabResult<()> {
    if let Some(pid) = run::read_line(&dir.join("fenced.pid")).and_then(|l| l.parse::<u32>().ok()) {
        if proc::cmdline(pid).is_some_and(|c| c.contains(" lab _fenced ")) {
            proc::kill9(pid);
        }
    }
    let p = Path::new(FENCE_AGENT);
    if p.exists() && is_ours(p) {
        std::fs::remove_file(p).map_err(|e| LabError::io(format!("removing {FENCE_AGENT}"), e))?;
    }
    Ok(())
}

/// The fence daemon: one request per connection, `off|on|status NODE` or `list`.
pub fn daemon(dir: &Path) -> LabResult<()> {
    let sp = socket(dir);
    let _ = std::fs::remove_file(&sp);
    let l = UnixListener::bind(&sp)
        .map_err(|e| LabError::io(format!("binding {}", sp.display()), e))?;
    run::chmod(&sp, 0o600)?;
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut line = String::new();
        if BufReader::new(&s).read_line(&mut line).is_err() {
            continue;
        }
        let reply = match Lab::open(dir) {
            Ok(lab) => handle(&lab, line.trim()),
            Err(e) => format!("err {e}"),
        };
        eprintln!("{:.3} {} -> {reply}", super::now_f(), line.trim());
        let _ = s.write_all(format!("{reply}\n").as_bytes());
    }
    Ok(())
}

fn handle(lab: &Lab, req: &str) -> String {
    let mut w = req.split_whitespace();
    let (op, target) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
    if op == "list" {
        return format!("ok {}", lab.node_names().join(" "));
    }
    if super::node_index(target, lab.cfg.nodes).is_err() {
        return format!("err unknown node {target:?}");
    }
    let r = match op {
        "off" => node::power_off(lab, target).map(|_| "ok".to_string()),
        "on" => {
            if node::is_alive(lab, target) {
                Ok("ok".into())
            } else {
                node::boot(lab, target).map(|_| "ok".to_string())
            }
        }
        "status" => Ok(if node::is_alive(lab, target) {
            "ok on"
        } else {
            "ok off"
        }
        .into()),
        _ => Ok(format!("err unknown request {op:?}")),
    };
    r.unwrap_or_else(|e| format!("err {e}"))
}

/// How the agent reaches the power switch.
#[derive(Debug, Clone)]
pub enum Channel {
    /// The netns lab's fence daemon, on `DIR/fence.sock`.
    Socket(PathBuf),
    /// A mailbox directory on a share (the UML lab): `ID.req` in, `ID.rep` out.
    Mailbox(PathBuf),
}

fn ask_via(ch: &Channel, req: &str) -> Result<String, String> {
    let reply = match ch {
        Channel::Socket(dir) => return ask(dir, req),
        Channel::Mailbox(mbox) => ask_mailbox(mbox, req)?,
    };
    match reply.strip_prefix("ok") {
        Some(rest) => Ok(rest.trim().to_string()),
        None => Err(reply),
    }
}

/// One request through a mailbox, answered within 60 s.
fn ask_mailbox(mbox: &Path, req: &str) -> Result<String, String> {
    let id = format!("{:.6}-{}", super::now_f(), std::process::id());
    let tmp = mbox.join(format!("{id}.tmp"));
    let rq = mbox.join(format!("{id}.req"));
    let rep = mbox.join(format!("{id}.rep"));
    std::fs::write(&tmp, format!("{req}\n"))
        .and_then(|_| std::fs::rename(&tmp, &rq))
        .map_err(|e| format!("fence mailbox {}: {e}", mbox.display()))?;
    let got = super::poll(
        "the fence daemon's answer",
        60.0,
        Duration::from_millis(50),
        || run::read_line(&rep),
    );
    let _ = std::fs::remove_file(&rep);
    match got {
        Ok(r) => Ok(r),
        Err(e) => {
            let _ = std::fs::remove_file(&rq);
            Err(format!("fence mailbox {}: {e}", mbox.display()))
        }
    }
}

fn ask(dir: &Path, req: &str) -> Result<String, String> {
    let mut s = UnixStream::connect(socket(dir))
        .map_err(|e| format!("fence daemon at {}: {e}", socket(dir).display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    s.write_all(format!("{req}\n").as_bytes())
        .map_err(|e| format!("fence daemon: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("fence daemon: {e}"))?;
    let reply = reply.trim().to_string();
    match reply.strip_prefix("ok") {
        Some(rest) => Ok(rest.trim().to_string()),
        None => Err(reply),
    }
}

/// The agent's meta-data, as stonith-ng reads it.
pub const METADATA: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fence_pgstack_lab" shortdesc="Power switch of pgstack's lab nodes">
<longdesc>Powers the network, mount, pid and uts namespaces of a node of the pgstack lab off and on, through the lab's fence daemon. Off is a power cut: every process of the node dies and its NIC goes silent.</longdesc>
<vendor-url>https://github.com/</vendor-url>
<parameters>
	<parameter name="action" unique="0" required="1">
		<getopt mixed="-o, --action=[action]" />
		<content type="string" default="reboot" />
		<shortdesc lang="en">Fencing action</shortdesc>
	</parameter>
	<parameter name="plug" unique="0" required="0" obsoletes="port">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string" />
		<shortdesc lang="en">The node to act on (n1, n2, n3)</shortdesc>
	</parameter>
	<parameter name="port" unique="0" required="0" deprecated="1">
		<getopt mixed="-n, --plug=[id]" />
		<content type="string" />
		<shortdesc lang="en">The node to act on (n1, n2, n3)</shortdesc>
	</parameter>
</parameters>
<actions>
	<action name="on" automatic="0"/>
	<action name="off" />
	<action name="reboot" />
	<action name="status" />
	<action name="list" />
	<action name="list-status" />
	<action name="monitor" />
	<action name="metadata" />
	<action name="validate-all" />
</actions>
</resource-agent>
"#;

/// The agent: parses its options, asks the daemon; returns (stdout, exit code).
pub fn agent(dir: &Path, args: &[String], stdin: Option<&str>) -> (String, String, u8) {
    agent_via(
        &Channel::Socket(dir.to_path_buf()),
        "fence_pgstack_lab",
        args,
        stdin,
    )
}

/// The agent named `name` (its meta-data says so), asking through `ch`.
pub fn agent_via(
    ch: &Channel,
    name: &str,
    args: &[String],
    stdin: Option<&str>,
) -> (String, String, u8) {
    let mut action = String::new();
    let mut plug = String::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => action = it.next().cloned().unwrap_or_default(),
            "-n" => plug = it.next().cloned().unwrap_or_default(),
            s if s.starts_with("--action=") => action = s["--action=".len()..].to_string(),
            s if s.starts_with("--plug=") => plug = s["--plug=".len()..].to_string(),
            _ => {}
        }
    }
    if let Some(text) = stdin {
        for l in text.lines() {
            if let Some((k, v)) = l.trim().split_once('=') {
                match k {
                    "action" | "option" if action.is_empty() => action = v.to_string(),
                    "plug" | "port" | "nodename" if plug.is_empty() => plug = v.to_string(),
                    _ => {}
                }
            }
        }
    }
    if action.is_empty() {
        action = "reboot".into();
    }
    let fail = |m: String| (String::new(), format!("{name}: {m}\n"), 1u8);
    match action.as_str() {
        "metadata" => (
            METADATA.replace("fence_pgstack_lab", name),
            String::new(),
            0,
        ),
        "validate-all" => (String::new(), String::new(), 0),
        "list" | "list-status" => match ask_via(ch, "list") {
            Ok(nodes) => (
                nodes
                    .split_whitespace()
                    .map(|n| format!("{n},\n"))
                    .collect(),
                String::new(),
                0,
            ),
            Err(e) => fail(e),
        },
        "monitor" => match ask_via(ch, "list") {
            Ok(_) => (String::new(), String::new(), 0),
            Err(e) => fail(e),
        },
        "status" | "off" | "on" | "reboot" if plug.is_empty() => {
            fail(format!("{action} needs a node (plug=)"))
        }
        "status" => match ask_via(ch, &format!("status {plug}")) {
            Ok(s) if s == "on" => ("Status: ON\n".into(), String::new(), 0),
            Ok(_) => ("Status: OFF\n".into(), String::new(), 2),
            Err(e) => fail(e),
        },
        "off" | "on" => match ask_via(ch, &format!("{action} {plug}")) {
            Ok(_) => (
                "Success: Powered {action}\n".replace("{action}", &action.to_uppercase()),
                String::new(),
                0,
            ),
            Err(e) => fail(e),
        },
        "reboot" => {
            match ask_via(ch, &format!("off {plug}"))
                .and_then(|_| ask_via(ch, &format!("on {plug}")))
            {
                Ok(_) => ("Success: Rebooted\n".into(), String::new(), 0),
                Err(e) => fail(e),
            }
        }
        other => fail(format!("unknown action {other:?}")),
    }
}

/// The fence events recorded by the daemon (its log lines).
pub fn events(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("fenced.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" off ") || l.contains(" on "))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_options_are_read() {
        let (out, _, code) = agent(
            Path::new("/nonexistent"),
            &[],
            Some("action=metadata\nnodename=n1\n"),
        );
        assert_eq!(code, 0);
        assert!(out.contains("<resource-agent name=\"fence_pgstack_lab\""));
        let (_, err, code) = agent(
            Path::new("/nonexistent"),
            &["-o".into(), "off".into()],
            None,
        );
        assert_eq!(code, 1);
        assert!(err.contains("needs a node"), "{err}");
        let (_, err, code) = agent(
            Path::new("/nonexistent"),
            &[],
            Some("action=off\nport=n2\n"),
        );
        assert_eq!(code, 1);
        assert!(err.contains("fence daemon"), "{err}");
    }

    #[test]
    fn the_shim_refuses_unsafe_paths() {
        assert!(shim(Path::new("/usr/sbin/pgstack"), Path::new("/tmp/pgst-lab")).is_ok());
        assert!(shim(Path::new("/usr/sbin/pg stack"), Path::new("/tmp/pgst-lab")).is_err());
        assert!(shim(Path::new("/usr/sbin/pgstack"), Path::new("/tmp/$(x)")).is_err());
    }
}
