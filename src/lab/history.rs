//! What the cluster itself recorded: `crm_mon` (who is online, where resources run), the
//! CIB's operation history (`lrm_rsc_op`: call ids per node, exec times), and each node's
//! pacemaker.log (millisecond timestamps), from which a takeover is split into its parts.

use super::{LabError, LabResult};
use crate::cib::xml::{self, Element};

/// Pacemaker's view of the cluster (crm_mon).
#[derive(Debug, Clone, Default)]
pub struct ClusterStatus {
    pub seen_from: String,
    pub online: Vec<String>,
    pub dc: Option<String>,
    /// (resource id, nodes it is active on, space separated, or "Stopped")
    pub resources: Vec<(String, String)>,
    /// Where pg_vip, the last of the group, runs.
    pub group_node: Option<String>,
    /// Nodes where a clone instance runs in the promoted role.
    pub promoted: Vec<String>,
}

fn parse_xml(text: &str) -> LabResult<Element> {
    let start = text
        .find("<pacemaker-result")
        .or_else(|| text.find("<cib"))
        .unwrap_or(0);
    Ok(xml::parse(&text[start..]).map_err(crate::cib::CibError::from)?)
}

pub fn parse_crm_mon(text: &str, seen_from: &str) -> LabResult<ClusterStatus> {
    let root = parse_xml(text)?;
    let mut st = ClusterStatus {
        seen_from: seen_from.to_string(),
        ..Default::default()
    };
    for e in root.descendants() {
        match e.name.as_str() {
            "current_dc" if e.attr("present") == Some("true") => {
                st.dc = e.attr("name").map(str::to_string)
            }
            "node" if e.attr("online") == Some("true") => {
                if let Some(n) = e.attr("name") {
                    st.online.push(n.to_string());
                }
            }
            "resource" => {
                let id = e.attr("id").unwrap_or("").to_string();
                let on: Vec<&str> = if e.attr("active") == Some("true") {
                    e.children_named("node")
                        .filter_map(|n| n.attr("name"))
                        .collect()
                } else {
                    Vec::new()
                };
                let failed = e.attr("failed") == Some("true");
                let role = e.attr("role").unwrap_or("");
                if role == "Promoted" || role == "Master" {
                    st.promoted.extend(on.iter().map(|n| n.to_string()));
                }
                let where_ = if on.is_empty() {
                    "Stopped".to_string()
                } else if role == "Promoted" || role == "Unpromoted" {
                    format!("{} ({role})", on.join(" "))
                } else {
                    on.join(" ")
                };
                if id == "pg_vip" && !on.is_empty() {
                    st.group_node = Some(on[0].to_string());
                }
                st.resources.push((
                    id,
                    if failed {
                        format!("{where_} (FAILED)")
                    } else {
                        where_
                    },
                ));
            }
            _ => {}
        }
    }
    Ok(st)
}

/// One entry of the CIB's operation history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub node: String,
    pub rsc: String,
    pub op: String,
    pub call_id: i64,
    pub rc: i32,
    pub last_rc_change: u64,
    pub exec_ms: u64,
}

/// Every `lrm_rsc_op` of a `cibadmin -Q` output, with its node.
pub fn parse_ops(cib: &str) -> LabResult<Vec<Op>> {
    let root = parse_xml(cib)?;
    let mut ops = Vec::new();
    let Some(status) = root.child("status") else {
        return Ok(ops);
    };
    for ns in status.children_named("node_state") {
        let node = ns.attr("uname").unwrap_or("").to_string();
        for e in ns.descendants() {
            if e.name != "lrm_resource" {
                continue;
            }
            let rsc = e.attr("id").unwrap_or("").to_string();
            for o in e.children_named("lrm_rsc_op") {
                let n = |k: &str| o.attr(k).and_then(|v| v.parse::<i64>().ok()).unwrap_or(-1);
                ops.push(Op {
                    node: node.clone(),
                    rsc: rsc.clone(),
                    op: o.attr("operation").unwrap_or("").to_string(),
                    call_id: n("call-id"),
                    rc: n("rc-code") as i32,
                    last_rc_change: n("last-rc-change").max(0) as u64,
                    exec_ms: n("exec-time").max(0) as u64,
                });
            }
        }
    }
    Ok(ops)
}

/// The last `op` of each of `rscs` on `node`, in the order of their call ids.
pub fn order_of(ops: &[Op], node: &str, op: &str, rscs: &[&str]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = rscs
        .iter()
        .filter_map(|r| {
            ops.iter()
                .filter(|o| o.node == node && o.rsc == *r && o.op == op && o.rc == 0)
                .map(|o| o.call_id)
                .max()
                .map(|c| (r.to_string(), c))
        })
        .collect();
    v.sort_by_key(|(_, c)| *c);
    v
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// "2026-12-01 08:49:00.123456" (UTC) as seconds since the epoch.
pub fn parse_timestamp(date: &str, time: &str) -> Option<f64> {
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let secs = days_from_civil(d[0], d[1], d[2]) * 86400 + t[0] * 3600 + t[1] * 60 + t[2];
    let frac: f64 = format!("0.{frac}").parse().ok()?;
    Some(secs as f64 + frac)
}

/// One line of a node's pacemaker.log (`Dec 01 09:03:50.173 n1 pacemaker-controld [27]
/// (func) notice: message`): its time (UTC, the lab runs Pacemaker with TZ=UTC) and message.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: f64,
    pub msg: String,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Parses pacemaker.log; the log has no year, `year` is given (the current one).
pub fn parse_pacemaker_log(text: &str, year: i64) -> Vec<LogLine> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let m = w.next()?;
            let mon = MONTHS.iter().position(|x| *x == m)? as i64 + 1;
            let day: i64 = w.next()?.parse().ok()?;
            let time = w.next()?;
            let at = parse_timestamp(&format!("{year}-{mon:02}-{day:02}"), time)?;
            let msg = l.split_once(": ").map(|(_, m)| m).unwrap_or("").to_string();
            Some(LogLine { at, msg })
        })
        .collect()
}

/// The current year (UTC).
pub fn this_year() -> i64 {
    let days = (super::now_f() / 86400.0) as i64;
    // Inverse of days_from_civil, enough for the year.
    let mut y = 1970 + days / 366;
    while days_from_civil(y + 1, 1, 1) <= days {
        y += 1;
    }
    y
}

/// The first line at or after `after` whose message starts with `prefix`.
pub fn logged(lines: &[LogLine], prefix: &str, after: f64) -> Option<f64> {
    lines
        .iter()
        .find(|l| l.at >= after && l.msg.starts_with(prefix))
        .map(|l| l.at)
}

/// "Result of start operation for pg_vip on n2: ok" in that node's log.
pub fn result_logged(
    lines: &[LogLine],
    task: &str,
    rsc: &str,
    node: &str,
    after: f64,
) -> Option<f64> {
    logged(
        lines,
        &format!("Result of {task} operation for {rsc} on {node}: ok"),
        after,
    )
}

/// "Node n1 state is now lost" in the survivor's log.
pub fn lost_logged(lines: &[LogLine], node: &str, after: f64) -> Option<f64> {
    logged(lines, &format!("Node {node} state is now lost"), after)
}

/// A takeover after a power cut, split into its parts (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Takeover {
    pub total: f64,
    /// Power cut -> the survivor's Pacemaker reports the node lost.
    pub membership: f64,
    /// Node lost -> the VIP's start done, less the agents' time: election, fencing,
    /// scheduling and the gaps between the starts.
    pub pacemaker: f64,
    /// The exec times of the agents' actions on the survivor (the shared stack's three
    /// starts; the replication stack's notifies, promote and the VIP's start).
    pub agents: f64,
    /// VIP started -> first query answered through it; slightly negative when the
    /// address answered before the survivor's controller logged the start's result.
    pub client: f64,
    /// Exec time of each of those actions (label, ms).
    pub steps_ms: Vec<(String, u64)>,
}

impl Takeover {
    pub fn report(&self) -> String {
        format!(
            "takeover {:.2} s = membership {:.2} s + pacemaker {:.2} s + agents {:.2} s + client {:.2} s\n\
             agents' actions: {}",
            self.total,
            self.membership,
            self.pacemaker,
            self.agents,
            self.client,
            self.steps_ms
                .iter()
                .map(|(l, ms)| format!("{l} {ms} ms"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The shared stack's agents' part of a takeover: the three starts.
pub const SHARED_STEPS: &[(&str, &str, &str)] = &[
    ("filesystem", "pg_fs", "start"),
    ("postgresql", "pg_db", "start"),
    ("vip", "pg_vip", "start"),
];
/// The replication stack's: the promote and the VIP's start (the notifies are in
/// "pacemaker", they run on every node at once).
pub const REPLICATION_STEPS: &[(&str, &str, &str)] =
    &[("promote", "pgsqld", "promote"), ("vip", "pg_vip", "start")];

/// Builds the split from the survivor's Pacemaker log and the CIB's exec times. The log
/// has milliseconds; `cut` and `answered` come from the same clock. `steps` are the
/// agents' actions on the survivor (label, resource, operation).
pub fn takeover(
    log: &[LogLine],
    ops: &[Op],
    crashed: &str,
    survivor: &str,
    cut: f64,
    answered: f64,
    steps: &[(&str, &str, &str)],
) -> LabResult<Takeover> {
    // The log's times are truncated to the millisecond.
    let after = cut - 0.001;
    let miss = |w: &str| LabError::Invalid(format!("{w} not in {survivor}'s pacemaker.log"));
    let lost = lost_logged(log, crashed, after).ok_or_else(|| miss(&format!("{crashed} lost")))?;
    let vip = result_logged(log, "start", "pg_vip", survivor, after)
        .ok_or_else(|| miss("pg_vip's start"))?;
    let steps_ms: Vec<(String, u64)> = steps
        .iter()
        .map(|(label, r, op)| {
            let ms = ops
                .iter()
                .filter(|o| o.node == survivor && rsc_is(&o.rsc, r) && o.op == *op)
                .map(|o| o.exec_ms)
                .max()
                .unwrap_or(0);
            (label.to_string(), ms)
        })
        .collect();
    let agents = steps_ms.iter().map(|(_, ms)| ms).sum::<u64>() as f64 / 1000.0;
    Ok(Takeover {
        total: answered - cut,
        membership: lost - cut,
        pacemaker: (vip - lost - agents).max(0.0),
        agents,
        client: answered - vip,
        steps_ms,
    })
}

/// A resource id of the history is `rsc` or one of its clone instances (`rsc:N`).
pub fn rsc_is(id: &str, rsc: &str) -> bool {
    id == rsc || id.strip_prefix(rsc).is_some_and(|t| t.starts_with(':'))
}

/// The call id of the last successful `op` of `rsc` on `node`.
pub fn last_call(ops: &[Op], node: &str, rsc: &str, op: &str) -> Option<i64> {
    ops.iter()
        .filter(|o| o.node == node && rsc_is(&o.rsc, rsc) && o.op == op && o.rc == 0)
        .map(|o| o.call_id)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse() {
        let t = parse_timestamp("1970-01-02", "00:00:01.500000").unwrap();
        assert!((t - 86401.5).abs() < 1e-6);
        assert!(parse_timestamp("2026-13", "00:00:00").is_none());
    }

    #[test]
    fn pacemaker_log_lines_parse() {
        let l = parse_pacemaker_log(
            "Dec 01 09:03:50.173 n1 pacemaker-based     [22] (update_peer_state_iter) \tnotice: Node n2 state is now lost | nodeid=2\n\
             garbage\n\
             Dec 01 09:03:31.365 n2 pacemaker-controld  [26] (log_executor_event) \tnotice: Result of start operation for pg_vip on n2: ok | CIB update 76\n",
            2026,
        );
        assert_eq!(l.len(), 2);
        let t = parse_timestamp("2026-12-01", "09:03:50.173").unwrap();
        assert_eq!(lost_logged(&l, "n2", 0.0), Some(t));
        assert!(result_logged(&l, "start", "pg_vip", "n2", 0.0).is_some());
        assert!(result_logged(&l, "stop", "pg_vip", "n2", 0.0).is_none());
        assert!(this_year() >= 2024);
    }

    #[test]
    fn crm_mon_is_read() {
        let x = r#"<pacemaker-result api-version="2.25"><summary><current_dc present="true" name="n2"/></summary>
<nodes><node name="n1" id="1" online="true"/><node name="n2" id="2" online="false"/></nodes>
<resources><group id="PGServer"><resource id="pg_vip" active="true" failed="false"><node name="n1" id="1"/></resource>
<resource id="pg_db" active="false"/></group></resources></pacemaker-result>"#;
        let s = parse_crm_mon(x, "n1").unwrap();
        assert_eq!(s.online, ["n1"]);
        assert_eq!(s.dc.as_deref(), Some("n2"));
        assert_eq!(s.group_node.as_deref(), Some("n1"));
        assert_eq!(s.resources[1], ("pg_db".to_string(), "Stopped".to_string()));
    }
}
