//! Validation of template values: each kind accepts only what is safe and meaningful in a
//! CIB, a crm script and a pcs script alike (no quoting games, no shell metacharacters in
//! names), and a few checks across variables.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::CibError;

/// The kind of a template variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A Pacemaker id (XML NCName subset): resource, volume group names.
    Id,
    /// A DRBD resource name (the rule of `sys::drbd`, shared with the agent and the CLI).
    DrbdResource,
    /// A node name as corosync and Pacemaker know it (a host name).
    Node,
    /// A corosync node id.
    NodeId,
    /// An IPv4 or IPv6 unicast address.
    Ip,
    /// A prefix length.
    Prefix,
    /// An absolute path.
    Path,
    /// A non-negative integer.
    Int,
    /// A Pacemaker duration: 30, 30s, 500ms, 2min, 1h.
    Timeout,
    Bool,
    /// One of fixed words.
    Choice(Vec<String>),
    /// A network interface name.
    Iface,
    /// An address label (eth0:<label>).
    Label,
    /// A plain word: letters, digits and `_.,=:+-`.
    Word,
    /// A fence agent name (fence_*).
    FenceAgent,
    /// A mail address or an absolute path.
    Recipient,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "id" => Kind::Id,
            "drbd-resource" => Kind::DrbdResource,
            "node" => Kind::Node,
            "nodeid" => Kind::NodeId,
            "ip" => Kind::Ip,
            "prefix" => Kind::Prefix,
            "path" => Kind::Path,
            "int" => Kind::Int,
            "timeout" => Kind::Timeout,
            "bool" => Kind::Bool,
            "iface" => Kind::Iface,
            "label" => Kind::Label,
            "word" => Kind::Word,
            "fence-agent" => Kind::FenceAgent,
            "recipient" => Kind::Recipient,
            _ => {
                let list = s.strip_prefix("choice:")?;
                Kind::Choice(list.split(',').map(str::to_string).collect())
            }
        })
    }

    /// A short name for help texts.
    pub fn describe(&self) -> String {
        match self {
            Kind::Choice(c) => c.join("|"),
            Kind::Id => "id".into(),
            Kind::DrbdResource => "DRBD resource name".into(),
            Kind::Node => "node name".into(),
            Kind::NodeId => "node id".into(),
            Kind::Ip => "IP address".into(),
            Kind::Prefix => "prefix length".into(),
            Kind::Path => "absolute path".into(),
            Kind::Int => "integer".into(),
            Kind::Timeout => "duration".into(),
            Kind::Bool => "true|false".into(),
            Kind::Iface => "interface".into(),
            Kind::Label => "label".into(),
            Kind::Word => "word".into(),
            Kind::FenceAgent => "fence agent".into(),
            Kind::Recipient => "mail address or file".into(),
        }
    }

    /// `Ok` when `v` is a valid value; otherwise why not.
    pub fn check(&self, v: &str) -> Result<(), String> {
        match self {
            Kind::Id => id(v),
            Kind::DrbdResource => crate::sys::drbd::check_resource_name(v).map_err(str::to_string),
            Kind::Node => node(v),
            Kind::NodeId => match v.parse::<u32>() {
                Ok(n) if (1..=0x7fff_ffff).contains(&n) => Ok(()),
                _ => Err("a node id is an integer from 1 to 2147483647".into()),
            },
            Kind::Ip => ip(v).map(|_| ()),
            Kind::Prefix => match v.parse::<u8>() {
                Ok(n) if (1..=128).contains(&n) => Ok(()),
                _ => Err("a prefix length is an integer from 1 to 128".into()),
            },
            Kind::Path => path(v),
            Kind::Int => v
                .parse::<u32>()
                .map(|_| ())
                .map_err(|_| "expected a non-negative integer".into()),
            Kind::Timeout => timeout(v),
            Kind::Bool => match v {
                "true" | "false" => Ok(()),
                _ => Err("expected true or false".into()),
            },
            Kind::Choice(c) => {
                if c.iter().any(|x| x == v) {
                    Ok(())
                } else {
                    Err(format!("expected one of {}", c.join(", ")))
                }
            }
            Kind::Iface => rule(
                chars_in(v, 15, "_.-") && v != "." && v != "..",
                "an interface name has 1 to 15 letters, digits, '_', '.' or '-'",
            ),
            Kind::Label => rule(
                chars_in(v, 10, "_"),
                "a label has 1 to 10 letters, digits or '_'",
            ),
            Kind::Word => rule(
                chars_in(v, 256, "_.,=:+-/") && !v.starts_with('-'),
                "expected letters, digits and _.,=:+-/ only, not starting with '-'",
            ),
            Kind::FenceAgent => rule(
                v.len() > 6 && chars_in(v, 64, "_") && v.starts_with("fence_"),
                "a fence agent is named fence_<letters, digits, _>",
            ),
            Kind::Recipient => {
                if v.starts_with('/') {
                    path(v)
                } else {
                    email(v)
                }
            }
        }
    }
}

fn id(v: &str) -> Result<(), String> {
    let mut cs = v.chars();
    let first_ok = cs
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && v.len() <= 64 && cs.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        Ok(())
    } else {
        Err(
            "an id starts with a letter or '_' and has up to 64 letters, digits, '_', '.' or '-'"
                .into(),
        )
    }
}

fn node(v: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if v.len() <= 253 && v.split('.').all(label_ok) && v.parse::<IpAddr>().is_err() {
        Ok(())
    } else {
        Err("a node name is a host name: dot-separated labels of letters, digits and '-'".into())
    }
}

/// A unicast IPv4 or IPv6 address.
pub fn ip(v: &str) -> Result<IpAddr, String> {
    let a: IpAddr = v
        .parse()
        .map_err(|_| "not an IPv4 or IPv6 address".to_string())?;
    if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
        return Err("an unspecified, loopback or multicast address cannot be used".into());
    }
    if let IpAddr::V4(v4) = a {
        if v4.is_broadcast() {
            return Err("the broadcast address cannot be used".into());
        }
    }
    Ok(a)
}

fn path(v: &str) -> Result<(), String> {
    if !v.starts_with('/') {
        return Err("expected an absolute path".into());
    }
    if v.len() > 4096 {
        return Err("path too long".into());
    }
    if v.split('/').any(|c| c == "..") {
        return Err("a path may not contain '..'".into());
    }
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._+-@:,=".contains(c))
    {
        return Err("a path may contain only letters, digits and /._+-@:,=".into());
    }
    Ok(())
}

fn timeout(v: &str) -> Result<(), String> {
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    let ok = !digits.is_empty()
        && digits.len() <= 9
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["", "ms", "s", "m", "min", "h"].contains(&unit);
    rule(ok, "expected a duration such as 30, 30s, 500ms, 2min or 1h")
}

/// `Ok` when the rule holds, otherwise what it asks for.
fn rule(holds: bool, asks: &str) -> Result<(), String> {
    if holds {
        Ok(())
    } else {
        Err(asks.into())
    }
}

/// 1 to `max` bytes, each an ASCII letter or digit or one of `extra`.
fn chars_in(v: &str, max: usize, extra: &str) -> bool {
    !v.is_empty()
        && v.len() <= max
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
}

fn email(v: &str) -> Result<(), String> {
    let bad = || "expected a mail address (user@host) or an absolute file path".to_string();
    let (local, host) = v.split_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('-')
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if local_ok && node(host).is_ok() {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Checks between variables that no single kind can make.
pub fn cross_check(values: &BTreeMap<String, String>) -> Result<(), CibError> {
    let get = |k: &str| values.get(k).map(String::as_str);
    if let (Some(a), Some(b)) = (get("node1"), get("node2")) {
        if a.eq_ignore_ascii_case(b) {
            return Err(CibError::Invalid(format!(
                "node1 and node2 are both {a:?}: a two-node cluster needs two names"
            )));
        }
    }
    if let (Some(a), Some(b)) = (get("node1_id"), get("node2_id")) {
        if a == b {
            return Err(CibError::Invalid(format!(
                "node1_id and node2_id are both {a}: corosync node ids are unique"
            )));
        }
    }
    if let (Some(a), Some(b)) = (get("fence_node1_ip"), get("fence_node2_ip")) {
        if a == b {
            return Err(CibError::Invalid(format!(
                "fence_node1_ip and fence_node2_ip are both {a}: each node needs its own fencing device"
            )));
        }
    }
    if let (Some(vip), Some(p)) = (get("vip"), get("vip_cidr")) {
        if let (Ok(a), Ok(p)) = (ip(vip), p.parse::<u8>()) {
            if a.is_ipv4() && p > 32 {
                return Err(CibError::BadValue {
                    name: "vip_cidr".into(),
                    value: p.to_string(),
                    why: format!("an IPv4 address ({vip}) has a prefix of at most 32"),
                });
            }
        }
    }
    if let Some(vip) = get("vip") {
        for k in ["fence_node1_ip", "fence_node2_ip"] {
            if get(k) == Some(vip) {
                return Err(CibError::Invalid(format!(
                    "{k} is the service address {vip}: a management interface needs its own address"
                )));
            }
        }
    }
    for k in ["node1_addr", "node2_addr"] {
        if let Some(a) = get(k) {
            if !a.contains('.') {
                return Err(CibError::BadValue {
                    name: k.into(),
                    value: a.into(),
                    why: "the DRBD resource file is written for IPv4 replication addresses".into(),
                });
            }
        }
    }
    if let (Some(a), Some(b)) = (get("node1_addr"), get("node2_addr")) {
        if a == b {
            return Err(CibError::Invalid(format!(
                "node1_addr and node2_addr are both {a}: DRBD replicates between two addresses"
            )));
        }
    }
    if let Some(d) = get("directory") {
        if d == "/" {
            return Err(CibError::BadValue {
                name: "directory".into(),
                value: d.into(),
                why: "the root file system cannot be a cluster resource".into(),
            });
        }
        if let Some(pg) = get("pgdata") {
            let inside = pg.starts_with(&format!("{}/", d.trim_end_matches('/')));
            if !inside {
                return Err(CibError::Invalid(format!(
                    "pgdata {pg} is not under the replicated mount point {d}: the database would not fail over"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Kind {
        Kind::parse(s).unwrap()
    }

    #[test]
    fn kinds_accept_good_values() {
        for (kind, v) in [
            ("id", "PGServer"),
            ("id", "_x.y-1"),
            ("node", "pg1"),
            ("node", "db-1.example.org"),
            ("nodeid", "1"),
            ("ip", "10.99.0.50"),
            ("ip", "fd00:99::50"),
            ("prefix", "24"),
            ("path", "/db/pgdata"),
            ("timeout", "240"),
            ("timeout", "2min"),
            ("timeout", "500ms"),
            ("word", "noatime,nodiratime,logbsize=256k"),
            ("fence-agent", "fence_ipmilan"),
            ("recipient", "dba@example.org"),
            ("recipient", "/var/log/pgstack/alerts.log"),
            ("iface", "eth0"),
            ("label", "pgvip"),
            ("choice:pgstack,heartbeat", "heartbeat"),
        ] {
            assert_eq!(k(kind).check(v), Ok(()), "{kind} {v}");
        }
    }

    #[test]
    fn kinds_refuse_bad_values() {
        for (kind, v) in [
            ("id", "1abc"),
            ("id", "a b"),
            ("id", "a;rm"),
            ("node", "pg_1"),
            ("node", "-pg"),
            ("node", "10.0.0.1"),
            ("node", ""),
            ("nodeid", "0"),
            ("ip", "192.168.56.300"),
            ("ip", "0.0.0.0"),
            ("ip", "224.0.0.1"),
            ("ip", "127.0.0.1"),
            ("prefix", "0"),
            ("prefix", "129"),
            ("path", "db"),
            ("path", "/db/../etc"),
            ("path", "/db pg"),
            ("path", "/db$(id)"),
            ("timeout", "30 s"),
            ("timeout", "-5"),
            ("timeout", "5x"),
            ("word", "a b"),
            ("word", "-rf"),
            ("word", "a;b"),
            ("fence-agent", "ipmilan"),
            ("drbd-resource", "all"),
            ("drbd-resource", "-x"),
            ("recipient", "root"),
            ("recipient", "a@b;c"),
            ("iface", "eth0 x"),
            ("iface", "averyveryverylongname"),
            ("label", "pg-vip"),
            ("choice:pgstack,heartbeat", "linbit"),
            ("bool", "yes"),
        ] {
            assert!(k(kind).check(v).is_err(), "{kind} accepted {v:?}");
        }
    }

    #[test]
    fn cross_checks() {
        let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert!(cross_check(&m(&[("node1", "pg1"), ("node2", "PG1")])).is_err());
        assert!(cross_check(&m(&[("vip", "10.99.0.5"), ("vip_cidr", "64")])).is_err());
        assert!(cross_check(&m(&[("vip", "fd00::5"), ("vip_cidr", "64")])).is_ok());
        assert!(cross_check(&m(&[("directory", "/db"), ("pgdata", "/var/lib/pg")])).is_err());
        assert!(cross_check(&m(&[("directory", "/db"), ("pgdata", "/db/pgdata")])).is_ok());
        assert!(cross_check(&m(&[("vip", "10.99.0.5"), ("fence_node1_ip", "10.99.0.5")])).is_err());
    }
}
