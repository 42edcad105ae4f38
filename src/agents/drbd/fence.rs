//! DRBD `fence-peer` and `unfence-peer` (after-resync-target) handlers: while the
//! replication link is down, a `-INFINITY` rule on the promoted role keeps Pacemaker from
//! promoting any node but this one; after the peer has resynced, the rule goes.
//!
//! Compatible with LINBIT's crm-fence-peer scripts: the same constraint ids
//! (`drbd-fence-by-handler-<resource>-<clone id>`) and the exit codes DRBD expects:
//! 3 peer already outdated or worse, 4 peer fenced (constraint placed while the peer is
//! reachable), 5 peer unreachable, 6 peer is Primary (outdate myself), 7 peer fenced at node
//! level (STONITH), 1 on any failure (DRBD then keeps I/O frozen when fencing is
//! resource-and-stonith).

use std::time::{Duration, Instant};

use quick_xml::escape::escape as esc;

use crate::cib::xml::{self, Element};
use crate::sys::cib::CibTool;
use crate::sys::drbd::{Disk, Drbd, Role, State};
use crate::wait::{poll_until, Backoff};

/// The peer node as the CIB shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerNode {
    /// A cluster member: it will see and obey the constraint.
    Reachable,
    /// Cleanly down (fenced or shut down, expected down).
    Fenced,
    /// Neither: lost, and not (yet) known to be fenced.
    Unclean,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub place: bool,
    pub exit: u8,
    pub why: String,
}

fn decision(place: bool, exit: u8, why: &str) -> Decision {
    Decision {
        place,
        exit,
        why: why.to_string(),
    }
}

/// What to do, from this node's DRBD state and what the cluster knows of the peer.
pub fn decide(
    local: Option<&State>,
    peer: PeerNode,
    peer_promoted: bool,
    peer_known_outdated: bool,
) -> Decision {
    let Some(st) = local else {
        return decision(
            false,
            1,
            "the resource is not configured here; no constraint placed",
        );
    };
    if st.role != Role::Primary && peer_promoted {
        return decision(
            false,
            6,
            "the peer is the promoted instance; this node must outdate itself",
        );
    }
    if st.peers.iter().any(|p| p.connected()) && st.all_peers_up_to_date() {
        return decision(
            false,
            1,
            "every peer is connected and UpToDate; no constraint placed",
        );
    }
    let up_to_date = st.disk == Disk::UpToDate;
    let consistent = matches!(st.disk, Disk::UpToDate | Disk::Consistent);
    if peer_known_outdated && up_to_date {
        return decision(
            true,
            3,
            "the peer's data is not UpToDate; constraint placed",
        );
    }
    match peer {
        PeerNode::Reachable if consistent => {
            decision(true, 4, "the peer is reachable; constraint placed")
        }
        PeerNode::Fenced if up_to_date => {
            decision(true, 7, "the peer is fenced; constraint placed")
        }
        PeerNode::Unclean if up_to_date => decision(
            true,
            5,
            "the peer is unreachable; constraint placed anyway, my data is UpToDate",
        ),
        _ => decision(
            false,
            5,
            "the peer is unreachable and my data is not UpToDate; no constraint placed",
        ),
    }
}

/// What the handler needs from the CIB.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CibFacts {
    /// The promotable clone holding the drbd primitive for the resource.
    pub clone_id: Option<String>,
    /// Schema 3.7 and later name the role "Promoted", older ones "Master".
    pub promoted_role: &'static str,
    /// (uname, reachable-or-fenced-or-unclean) for every node_state.
    pub nodes: Vec<(String, PeerNode)>,
}

fn truthy_or_stamp(v: Option<&str>) -> bool {
    match v {
        Some("true") | Some("online") | Some("member") => true,
        Some(s) => s.parse::<u64>().map(|n| n > 0).unwrap_or(false),
        None => false,
    }
}

fn node_state(e: &Element) -> PeerNode {
    let in_ccm = truthy_or_stamp(e.attr("in_ccm"));
    if truthy_or_stamp(e.attr("crmd")) && in_ccm {
        PeerNode::Reachable
    } else if !in_ccm && e.attr("expected") == Some("down") {
        PeerNode::Fenced
    } else {
        PeerNode::Unclean
    }
}

/// Whether `e` is (or holds) a drbd primitive whose `drbd_resource` is `resource`.
fn holds_drbd_primitive(e: &Element, resource: &str) -> bool {
    e.descendants().into_iter().any(|p| {
        p.name == "primitive"
            && p.attr("type") == Some("drbd")
            && p.descendants().into_iter().any(|nv| {
                nv.name == "nvpair"
                    && nv.attr("name") == Some("drbd_resource")
                    && nv.attr("value") == Some(resource)
            })
    })
}

/// Reads the clone id, the role name and the node states from a CIB (nothing from a
/// document that is not XML).
pub fn cib_facts(xml: &str, resource: &str) -> CibFacts {
    let mut facts = CibFacts {
        promoted_role: "Promoted",
        ..Default::default()
    };
    let Ok(cib) = xml::parse(xml) else {
        return facts;
    };
    if let Some(v) = cib.attr("validate-with") {
        let ver: Vec<u32> = v
            .trim_start_matches("pacemaker-")
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        if ver.len() == 2 && (ver[0], ver[1]) < (3, 7) {
            facts.promoted_role = "Master";
        }
    }
    let all = cib.descendants();
    facts.clone_id = all
        .iter()
        .find(|e| {
            matches!(e.name.as_str(), "clone" | "master") && holds_drbd_primitive(e, resource)
        })
        .and_then(|e| e.attr("id"))
        .map(str::to_string);
    facts.nodes = all
        .iter()
        .filter(|e| e.name == "node_state")
        .map(|e| {
            (
                e.attr("uname").unwrap_or_default().to_string(),
                node_state(e),
            )
        })
        .collect();
    facts
}

/// Whether the CIB holds an element with this id.
fn has_id(xml: &str, id: &str) -> Result<bool, String> {
    let cib = xml::parse(xml).map_err(|e| format!("the CIB is not XML: {e}"))?;
    Ok(cib.descendants().iter().any(|e| e.attr("id") == Some(id)))
}

pub fn constraint_id(resource: &str, clone_id: &str) -> String {
    format!("drbd-fence-by-handler-{resource}-{clone_id}")
}

/// The constraint: the promoted role of the clone may run nowhere but on `me`.
pub fn constraint_xml(
    resource: &str,
    clone_id: &str,
    role: &str,
    me: &str,
    my_node_id: Option<&str>,
) -> String {
    let id = constraint_id(resource, clone_id);
    let expr_id = match my_node_id {
        Some(n) => format!("drbd-fence-by-handler-{resource}-expr-{n}-{clone_id}"),
        None => format!("drbd-fence-by-handler-{resource}-expr-{clone_id}"),
    };
    format!(
        "<rsc_location rsc=\"{}\" id=\"{}\"><rule role=\"{}\" score=\"-INFINITY\" id=\"drbd-fence-by-handler-{}-rule-{}\"><expression attribute=\"#uname\" operation=\"ne\" value=\"{}\" id=\"{}\"/></rule></rsc_location>",
        esc(clone_id),
        esc(&id),
        esc(role),
        esc(resource),
        esc(clone_id),
        esc(me),
        esc(&expr_id)
    )
}

/// What only DRBD 9 tells its handlers (all `None` under DRBD 8).
#[derive(Debug, Clone, Default)]
pub struct Drbd9Env {
    pub my_node_id: Option<String>,
    pub peer_node_id: Option<String>,
    /// Bit mask of the nodes known to have UpToDate data.
    pub up_to_date_nodes: Option<u64>,
}

impl Drbd9Env {
    /// The peer is known not to have UpToDate data (its bit is clear in the mask).
    fn peer_known_outdated(&self) -> bool {
        match (
            self.up_to_date_nodes,
            self.peer_node_id
                .as_deref()
                .and_then(|i| i.parse::<u32>().ok()),
        ) {
            (Some(mask), Some(id)) if id < 64 => mask & (1 << id) == 0,
            _ => false,
        }
    }
}

/// The handlers' inputs, from the variables DRBD sets.
#[derive(Debug, Clone, Default)]
pub struct HandlerEnv {
    pub resource: String,
    pub peer: Option<String>,
    pub drbd9: Drbd9Env,
}

impl HandlerEnv {
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<HandlerEnv, String> {
        let resource = get("DRBD_RESOURCE")
            .filter(|r| !r.is_empty())
            .ok_or("DRBD_RESOURCE is not set: run me as a DRBD handler")?;
        if let Err(why) = crate::sys::drbd::check_resource_name(&resource) {
            return Err(format!("DRBD_RESOURCE={resource:?} refused: {why}"));
        }
        let peer = get("DRBD_PEER")
            .or_else(|| {
                get("DRBD_PEERS").and_then(|p| p.split_whitespace().next().map(str::to_string))
            })
            .filter(|p| !p.is_empty());
        let mask = get("UP_TO_DATE_NODES")
            .and_then(|m| u64::from_str_radix(m.trim_start_matches("0x"), 16).ok());
        Ok(HandlerEnv {
            resource,
            peer,
            drbd9: Drbd9Env {
                my_node_id: get("DRBD_MY_NODE_ID")
                    .filter(|s| s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty()),
                peer_node_id: get("DRBD_PEER_NODE_ID")
                    .filter(|s| s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty()),
                up_to_date_nodes: mask,
            },
        })
    }
}

/// Runs the fence-peer handler; returns DRBD's exit code and what happened.
pub fn fence_peer(
    env: &HandlerEnv,
    cib: &CibTool,
    drbd: &dyn Drbd,
    me: &str,
    timeout: Duration,
) -> (u8, String) {
    let deadline = Instant::now() + timeout;
    let local = match drbd.state(&env.resource, deadline) {
        Ok(s) => s,
        Err(e) => return (1, format!("reading the state of {}: {e}", env.resource)),
    };
    const UNDECIDED: &str = "the peer is neither a member nor known to be fenced";
    let mut last_err = String::new();
    // An unclean peer may be being fenced right now: give the cluster until shortly
    // before the deadline to say so before deciding on what we know.
    let patience = deadline
        .checked_sub(Duration::from_secs(2))
        .unwrap_or(deadline);
    let retry_until = deadline
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(deadline);
    let attempt = || -> Result<Option<(u8, String)>, String> {
        let xml = cib.query(deadline).map_err(|e| e.to_string())?;
        let facts = cib_facts(&xml, &env.resource);
        let clone_id = facts.clone_id.clone().ok_or_else(|| {
            format!(
                "no promotable clone of a drbd primitive with drbd_resource={} in the CIB",
                env.resource
            )
        })?;
        let peer_state = match &env.peer {
            Some(p) => facts
                .nodes
                .iter()
                .find(|(n, _)| n == p)
                .map(|(_, s)| *s)
                .unwrap_or(PeerNode::Unclean),
            None => {
                let others: Vec<PeerNode> = facts
                    .nodes
                    .iter()
                    .filter(|(n, _)| n != me)
                    .map(|(_, s)| *s)
                    .collect();
                if others.iter().all(|s| *s == PeerNode::Reachable) && !others.is_empty() {
                    PeerNode::Reachable
                } else if others.iter().all(|s| *s == PeerNode::Fenced) && !others.is_empty() {
                    PeerNode::Fenced
                } else {
                    PeerNode::Unclean
                }
            }
        };
        if peer_state == PeerNode::Unclean && Instant::now() < patience {
            return Err(UNDECIDED.into());
        }
        let promoted = match env.peer.as_deref() {
            Some(p) => cib.promoted_on(&clone_id, p, deadline).unwrap_or(false),
            None => false,
        };
        let d = decide(
            local.as_ref(),
            peer_state,
            promoted,
            env.drbd9.peer_known_outdated(),
        );
        if !d.place {
            return Ok(Some((d.exit, format!("{}: {}", env.resource, d.why))));
        }
        let id = constraint_id(&env.resource, &clone_id);
        let xml = constraint_xml(
            &env.resource,
            &clone_id,
            facts.promoted_role,
            me,
            env.drbd9.my_node_id.as_deref(),
        );
        place(cib, &xml, &id, deadline)?;
        Ok(Some((
            d.exit,
            format!("{}: {} ({id})", env.resource, d.why),
        )))
    };
    let decided = poll_until(retry_until, Backoff::every(500), || {
        Ok::<_, std::convert::Infallible>(attempt().unwrap_or_else(|e| {
            last_err = e;
            None
        }))
    });
    if let Ok(Some(r)) = decided {
        return r;
    }
    // Out of time: decide with what we have, as an unclean peer.
    if last_err == UNDECIDED {
        let d = decide(
            local.as_ref(),
            PeerNode::Unclean,
            false,
            env.drbd9.peer_known_outdated(),
        );
        if !d.place {
            return (d.exit, format!("{}: {}", env.resource, d.why));
        }
    }
    (
        1,
        format!("{}: gave up after {timeout:?}: {last_err}", env.resource),
    )
}

/// Places the constraint: create; if one with that id exists and differs, replace it.
fn place(cib: &CibTool, xml: &str, id: &str, deadline: Instant) -> Result<(), String> {
    let out = cib
        .create_constraint(xml, deadline)
        .map_err(|e| e.to_string())?;
    if out.success() {
        return Ok(());
    }
    let current = cib.query(deadline).map_err(|e| e.to_string())?;
    if !has_id(&current, id)? {
        return Err(format!("creating {id}: {}", out.describe()));
    }
    let del = format!("<rsc_location id=\"{}\"/>", esc(id));
    cib.delete(&del, deadline).map_err(|e| e.to_string())?;
    let out = cib
        .create_constraint(xml, deadline)
        .map_err(|e| e.to_string())?;
    if out.success() {
        return Ok(());
    }
    Err(format!("replacing {id}: {}", out.describe()))
}

/// Runs the unfence handler: removes the constraint if present.
pub fn unfence_peer(env: &HandlerEnv, cib: &CibTool, timeout: Duration) -> (u8, String) {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    let attempt = || -> Result<(u8, String), String> {
        let xml = cib.query(deadline).map_err(|e| e.to_string())?;
        let Some(clone_id) = cib_facts(&xml, &env.resource).clone_id else {
            return Ok((
                0,
                format!("{}: no clone in the CIB, nothing to remove", env.resource),
            ));
        };
        let id = constraint_id(&env.resource, &clone_id);
        if !has_id(&xml, &id)? {
            return Ok((0, format!("{}: no constraint {id}", env.resource)));
        }
        let del = format!("<rsc_location id=\"{}\"/>", esc(&id));
        match cib.delete(&del, deadline) {
            Ok(o) if o.success() => Ok((0, format!("{}: removed {id}", env.resource))),
            Ok(o) => Err(o.describe()),
            Err(e) => Err(e.to_string()),
        }
    };
    let done = poll_until(deadline, Backoff::every(500), || {
        Ok::<_, std::convert::Infallible>(match attempt() {
            Ok(r) => Some(r),
            Err(e) => {
                last = e;
                None
            }
        })
    });
    match done {
        Ok(Some(r)) => r,
        _ => (
            1,
            format!("{}: could not remove the constraint: {last}", env.resource),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::drbd::parse_events2;

    fn state(name: &str) -> State {
        let t = crate::fixture(&format!("drbdsetup_events2/{name}"));
        parse_events2(&t, "r0").unwrap()
    }

    #[test]
    fn decision_table() {
        let primary = state("84-primary-peer-down.txt");
        // not configured
        assert_eq!(decide(None, PeerNode::Reachable, false, false).exit, 1);
        // connected and all UpToDate: a spurious call
        let d = decide(
            Some(&state("84-connected-primary.txt")),
            PeerNode::Reachable,
            false,
            false,
        );
        assert_eq!((d.place, d.exit), (false, 1));
        // reachable peer: 4, fenced: 7, unclean with UpToDate data: 5
        assert_eq!(
            decide(Some(&primary), PeerNode::Reachable, false, false),
            decision(true, 4, "the peer is reachable; constraint placed")
        );
        assert_eq!(
            decide(Some(&primary), PeerNode::Fenced, false, false).exit,
            7
        );
        let d = decide(Some(&primary), PeerNode::Unclean, false, false);
        assert_eq!((d.place, d.exit), (true, 5));
        // peer known not UpToDate (DRBD 9 mask): 3
        assert_eq!(
            decide(Some(&primary), PeerNode::Reachable, false, true).exit,
            3
        );
        // a Secondary whose peer is the promoted instance: 6, nothing placed
        let mut secondary = primary.clone();
        secondary.role = Role::Secondary;
        let d = decide(Some(&secondary), PeerNode::Reachable, true, false);
        assert_eq!((d.place, d.exit), (false, 6));
        // Consistent only: reachable still places (4); unclean or fenced do not (5)
        let mut consistent = secondary.clone();
        consistent.disk = Disk::Consistent;
        assert_eq!(
            decide(Some(&consistent), PeerNode::Reachable, false, false).exit,
            4
        );
        let d = decide(Some(&consistent), PeerNode::Fenced, false, false);
        assert_eq!((d.place, d.exit), (false, 5));
        let mut outdated = secondary;
        outdated.disk = Disk::Outdated;
        let d = decide(Some(&outdated), PeerNode::Reachable, false, false);
        assert_eq!((d.place, d.exit), (false, 5));
    }

    const CIB: &str = r#"<cib validate-with="pacemaker-3.9" crm_feature_set="3.16.1"><configuration><resources>
<clone id="ms_drbd_pg"><meta_attributes id="m"><nvpair id="m1" name="promotable" value="true"/></meta_attributes>
<primitive id="drbd_pg" class="ocf" provider="pgstack" type="drbd"><instance_attributes id="ia">
<nvpair id="ia1" name="drbd_resource" value="pg"/></instance_attributes></primitive></clone>
<primitive id="other" class="ocf" provider="heartbeat" type="Dummy"><instance_attributes id="ib"><nvpair id="ib1" name="drbd_resource" value="pg"/></instance_attributes></primitive>
</resources><constraints/></configuration><status>
<node_state id="1" uname="pg1" in_ccm="true" crmd="online" join="member" expected="member"/>
<node_state id="2" uname="pg2" in_ccm="false" crmd="offline" join="down" expected="down"/>
<node_state id="3" uname="pg3" in_ccm="false" crmd="offline" join="down" expected="member"/>
</status></cib>"#;

    #[test]
    fn cib_facts_find_the_clone_and_node_states() {
        let f = cib_facts(CIB, "pg");
        assert_eq!(f.clone_id.as_deref(), Some("ms_drbd_pg"));
        assert_eq!(f.promoted_role, "Promoted");
        assert_eq!(
            f.nodes,
            [
                ("pg1".to_string(), PeerNode::Reachable),
                ("pg2".to_string(), PeerNode::Fenced),
                ("pg3".to_string(), PeerNode::Unclean)
            ]
        );
        assert_eq!(cib_facts(CIB, "other").clone_id, None);
        let old = CIB.replace("pacemaker-3.9", "pacemaker-3.0");
        assert_eq!(cib_facts(&old, "pg").promoted_role, "Master");
        assert_eq!(
            cib_facts("not xml <", "pg"),
            CibFacts {
                promoted_role: "Promoted",
                ..Default::default()
            }
        );
    }

    #[test]
    fn constraint_uses_linbit_ids() {
        let x = constraint_xml("pg", "ms_drbd_pg", "Promoted", "pg1", None);
        assert!(x.starts_with(
            "<rsc_location rsc=\"ms_drbd_pg\" id=\"drbd-fence-by-handler-pg-ms_drbd_pg\">"
        ));
        assert!(x.contains("<rule role=\"Promoted\" score=\"-INFINITY\" id=\"drbd-fence-by-handler-pg-rule-ms_drbd_pg\">"));
        assert!(x.contains("<expression attribute=\"#uname\" operation=\"ne\" value=\"pg1\" id=\"drbd-fence-by-handler-pg-expr-ms_drbd_pg\"/>"));
        let x = constraint_xml("pg", "ms", "Master", "a\"b", Some("1"));
        assert!(x.contains("value=\"a&quot;b\" id=\"drbd-fence-by-handler-pg-expr-1-ms\""));
    }

    #[test]
    fn handler_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(HandlerEnv::from_vars(vars(&[])).is_err());
        assert!(HandlerEnv::from_vars(vars(&[("DRBD_RESOURCE", "a;b")])).is_err());
        let e = HandlerEnv::from_vars(vars(&[
            ("DRBD_RESOURCE", "pg"),
            ("DRBD_PEERS", "pg2 pg3"),
            ("UP_TO_DATE_NODES", "0x1"),
            ("DRBD_PEER_NODE_ID", "1"),
        ]))
        .unwrap();
        assert_eq!(e.peer.as_deref(), Some("pg2"));
        assert!(e.drbd9.peer_known_outdated());
        let e = HandlerEnv::from_vars(vars(&[
            ("DRBD_RESOURCE", "pg"),
            ("UP_TO_DATE_NODES", "0x3"),
            ("DRBD_PEER_NODE_ID", "1"),
        ]))
        .unwrap();
        assert!(!e.drbd9.peer_known_outdated());
    }
}
