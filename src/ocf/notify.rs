//! Clone notifications: which instances start, stop, promote and demote, and the sets
//! that follow from them.

use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Pre,
    Post,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    pub when: Option<When>,
    /// start, stop, promote or demote.
    pub operation: Option<String>,
    pub start: BTreeSet<String>,
    pub stop: BTreeSet<String>,
    pub promote: BTreeSet<String>,
    pub demote: BTreeSet<String>,
    pub active: BTreeSet<String>,
    pub inactive: BTreeSet<String>,
    pub promoted: BTreeSet<String>,
    pub unpromoted: BTreeSet<String>,
    pub all: BTreeSet<String>,
}

/// A Pacemaker node list: space separated, where a lone " " means empty.
pub fn parse_list(v: Option<&str>) -> BTreeSet<String> {
    v.map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

impl Notify {
    /// Reads `notify_*_uname` variables through `get` (keys without the
    /// `OCF_RESKEY_CRM_meta_` prefix). Both the promoted/unpromoted and the older
    /// master/slave spellings are read and merged.
    pub fn from_env<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Notify {
        let list = |k: &str| parse_list(get(&format!("notify_{k}_uname")));
        let either = |a: &str, b: &str| {
            let mut s = list(a);
            s.extend(list(b));
            s
        };
        Notify {
            when: match get("notify_type").map(str::trim) {
                Some("pre") => Some(When::Pre),
                Some("post") => Some(When::Post),
                _ => None,
            },
            operation: get("notify_operation")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            start: list("start"),
            stop: list("stop"),
            promote: list("promote"),
            demote: list("demote"),
            active: list("active"),
            inactive: list("inactive"),
            promoted: either("promoted", "master"),
            unpromoted: either("unpromoted", "slave"),
            all: list("all"),
        }
    }

    /// Nodes whose instance is promoted once this transition is done.
    pub fn promoted_after(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self.promoted.difference(&self.demote).cloned().collect();
        s = s.difference(&self.stop).cloned().collect();
        s.extend(self.promote.iter().cloned());
        s
    }

    /// Nodes whose instance runs (in any role) once this transition is done.
    pub fn active_after(&self) -> BTreeSet<String> {
        let mut s: BTreeSet<String> = self.active.difference(&self.stop).cloned().collect();
        s.extend(self.start.iter().cloned());
        s
    }

    /// Nodes that run unpromoted once this transition is done.
    pub fn unpromoted_after(&self) -> BTreeSet<String> {
        self.active_after()
            .difference(&self.promoted_after())
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn notify(pairs: &[(&str, &str)]) -> Notify {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Notify::from_env(|k| m.get(k).map(|s| s.as_str()))
    }

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn empty_lists_use_a_single_space() {
        let n = notify(&[("notify_start_uname", " "), ("notify_type", "pre")]);
        assert!(n.start.is_empty());
        assert_eq!(n.when, Some(When::Pre));
    }

    #[test]
    fn failover_promote_sets() {
        // pg1 (promoted) failed and stops; pg2 is promoted.
        let n = notify(&[
            ("notify_type", "post"),
            ("notify_operation", "promote"),
            ("notify_master_uname", "pg1 "),
            ("notify_slave_uname", "pg2"),
            ("notify_active_uname", "pg1 pg2"),
            ("notify_stop_uname", "pg1"),
            ("notify_demote_uname", "pg1"),
            ("notify_promote_uname", "pg2"),
        ]);
        assert_eq!(n.operation.as_deref(), Some("promote"));
        assert_eq!(n.promoted, set(&["pg1"]));
        assert_eq!(n.promoted_after(), set(&["pg2"]));
        assert_eq!(n.active_after(), set(&["pg2"]));
        assert!(n.unpromoted_after().is_empty());
    }

    #[test]
    fn new_and_old_spellings_merge() {
        let n = notify(&[
            ("notify_promoted_uname", "pg1"),
            ("notify_master_uname", "pg1"),
            ("notify_unpromoted_uname", "pg2 pg3"),
            ("notify_start_uname", "pg3"),
            ("notify_active_uname", "pg1 pg2"),
        ]);
        assert_eq!(n.promoted, set(&["pg1"]));
        assert_eq!(n.unpromoted, set(&["pg2", "pg3"]));
        assert_eq!(n.active_after(), set(&["pg1", "pg2", "pg3"]));
        assert_eq!(n.unpromoted_after(), set(&["pg2", "pg3"]));
    }
}
