//! The actions an OCF agent may be asked to perform.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Start,
    Stop,
    Monitor,
    Promote,
    Demote,
    Notify,
    Reload,
    ReloadAgent,
    MigrateTo,
    MigrateFrom,
    MetaData,
    ValidateAll,
    Usage,
}

impl Action {
    pub const ALL: [Action; 13] = [
        Action::Start,
        Action::Stop,
        Action::Monitor,
        Action::Promote,
        Action::Demote,
        Action::Notify,
        Action::Reload,
        Action::ReloadAgent,
        Action::MigrateTo,
        Action::MigrateFrom,
        Action::MetaData,
        Action::ValidateAll,
        Action::Usage,
    ];

    /// Parses an action name. `status` is the legacy spelling of `monitor`,
    /// `help` the same as `usage`.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "start" => Action::Start,
            "stop" => Action::Stop,
            "monitor" | "status" => Action::Monitor,
            "promote" => Action::Promote,
            "demote" => Action::Demote,
            "notify" => Action::Notify,
            "reload" => Action::Reload,
            "reload-agent" => Action::ReloadAgent,
            "migrate_to" => Action::MigrateTo,
            "migrate_from" => Action::MigrateFrom,
            "meta-data" | "meta_data" | "metadata" => Action::MetaData,
            "validate-all" | "validate" => Action::ValidateAll,
            "usage" | "help" | "--help" | "-h" => Action::Usage,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Monitor => "monitor",
            Action::Promote => "promote",
            Action::Demote => "demote",
            Action::Notify => "notify",
            Action::Reload => "reload",
            Action::ReloadAgent => "reload-agent",
            Action::MigrateTo => "migrate_to",
            Action::MigrateFrom => "migrate_from",
            Action::MetaData => "meta-data",
            Action::ValidateAll => "validate-all",
            Action::Usage => "usage",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_and_aliases_parse() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.name()), Some(a));
        }
        assert_eq!(Action::parse("status"), Some(Action::Monitor));
        assert_eq!(Action::parse("help"), Some(Action::Usage));
        assert_eq!(Action::parse("frobnicate"), None);
        assert_eq!(Action::parse(""), None);
    }
}
