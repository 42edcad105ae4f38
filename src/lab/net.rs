//! The lab network: a bridge in a namespace of its own, one veth per node and one for the
//! client, created directly between namespaces (nothing appears in the host's namespace).

use std::time::Duration;

use super::run;
use super::{
    node_addr, node_ns, Lab, LabError, LabResult, CLIENT_ADDR, NS_BRIDGE, NS_CLIENT, NS_PREFIX,
    PREFIX, VIP,
};

const T: Duration = Duration::from_secs(10);

fn ip(args: &[&str]) -> LabResult<String> {
    let mut v = vec!["ip"];
    v.extend_from_slice(args);
    run::ok(&v, T)
}

fn add_ns(ns: &str) -> LabResult<()> {
    ip(&["netns", "add", ns])?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// Creates the bridge, the nodes' and the client's namespaces and links.
pub fn create(lab: &Lab) -> LabResult<()> {
    add_ns(NS_BRIDGE)?;
    ip(&["-n", NS_BRIDGE, "link", "add", "br0", "type", "bridge"])?;
    // No STP, no forwarding delay: ports forward as soon as they are up.
    ip(&[
        "-n",
        NS_BRIDGE,
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "forward_delay",
        "0",
        "stp_state",
        "0",
    ])?;
    ip(&["-n", NS_BRIDGE, "link", "set", "br0", "up"])?;
    let mut ends: Vec<(String, String, String)> = lab
        .node_names()
        .iter()
        .enumerate()
        .map(|(i, n)| (node_ns(n), format!("b{}", i + 1), node_addr(i as u8 + 1)))
        .collect();
    ends.push((NS_CLIENT.into(), "bc".into(), CLIENT_ADDR.into()));
    for (ns, port, addr) in &ends {
        add_ns(ns)?;
        ip(&[
            "link", "add", "name", "eth0", "netns", ns, "type", "veth", "peer", "name", port,
            "netns", NS_BRIDGE,
        ])?;
        ip(&["-n", NS_BRIDGE, "link", "set", port, "master", "br0", "up"])?;
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/{PREFIX}"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
    }
    Ok(())
}

/// A node's NIC back with its address (a reboot after a power cut).
pub fn nic_up(name: &str, i: u8) -> LabResult<()> {
    let ns = node_ns(name);
    let want = format!("{}/{PREFIX}", node_addr(i));
    let shown = ip(&["-n", &ns, "-4", "-o", "addr", "show", "dev", "eth0"])?;
    if !shown.contains(&format!("inet {want} ")) {
        ip(&["-n", &ns, "addr", "add", &want, "dev", "eth0"])?;
    }
    ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    Ok(())
}

/// A node's NIC silenced: addresses flushed, link down (nothing answers ARP any more).
pub fn nic_down(name: &str) -> LabResult<()> {
    let ns = node_ns(name);
    ip(&["-n", &ns, "addr", "flush", "dev", "eth0"])?;
    ip(&["-n", &ns, "link", "set", "eth0", "down"])?;
    Ok(())
}

/// Whether the VIP is configured on the node's NIC.
pub fn holds_vip(name: &str) -> LabResult<bool> {
    let shown = ip(&[
        "-n",
        &node_ns(name),
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        "eth0",
    ])?;
    Ok(shown.contains(&format!("inet {VIP}/")))
}

/// The lab's named network namespaces.
pub fn lab_namespaces() -> LabResult<Vec<String>> {
    let rd = match std::fs::read_dir("/run/netns") {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io("reading /run/netns", e)),
    };
    Ok(rd
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(NS_PREFIX))
        .collect())
}

pub fn pids_in(ns: &str) -> Vec<u32> {
    super::proc::in_netns(ns)
}

pub fn delete(ns: &str) -> LabResult<()> {
    ip(&["netns", "delete", ns]).map(|_| ())
}
