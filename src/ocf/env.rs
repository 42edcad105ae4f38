//! The environment an agent is called with, parsed from an injected map (never read
//! from the process directly below `main`).
//!
//! Values arrive as bytes. A value that is not valid UTF-8 is kept aside (never dropped,
//! never replaced by a default): a resource parameter with such a value is an error
//! naming the parameter ([`super::params::ParamError::Undecodable`]).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::time::Duration;

use super::action::Action;
use super::notify::Notify;

const RESKEY: &str = "OCF_RESKEY_";
const META: &str = "OCF_RESKEY_CRM_meta_";

/// Clone and operation meta attributes (`OCF_RESKEY_CRM_meta_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmMeta {
    /// Recurring interval; 0 (or absent) for one-shot operations and probes.
    pub interval: Duration,
    /// Operation timeout given by Pacemaker.
    pub timeout: Option<Duration>,
    /// Clone instance number, when this is a clone.
    pub clone: Option<u32>,
    pub clone_max: Option<u32>,
    pub clone_node_max: Option<u32>,
    /// `promoted-max` (older spelling `master-max`).
    pub promoted_max: Option<u32>,
    pub promoted_node_max: Option<u32>,
    pub notify: bool,
    pub globally_unique: Option<bool>,
    pub on_node: Option<String>,
    pub on_node_uuid: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct OcfEnv {
    vars: BTreeMap<String, String>,
    /// Variables whose value is not valid UTF-8, by name.
    undecodable: BTreeMap<String, OsString>,
    /// The instance name (`OCF_RESOURCE_INSTANCE`), as given; [`Self::instance_line`] is
    /// its form for a log line.
    pub instance: String,
    pub meta: CrmMeta,
    pub check_level: u32,
    /// The effective uid the actions run with: set by whoever runs agents on the real
    /// system ([`crate::agents::run_env`]); `None` in environments built around fakes,
    /// which need no privilege.
    pub euid: Option<u32>,
}

/// Pacemaker's own variables among `OCF_RESKEY_*`: the operation and clone meta
/// attributes (`CRM_meta_*`), the ones it adds for every action (`crm_feature_set`,
/// any `crm_*`), and the tracing switches `crm resource trace` and `pcs` set on an
/// operation (`trace_ra`, `trace_dir`). They are never user parameters.
pub fn is_pacemaker_var(param: &str) -> bool {
    param.starts_with("CRM_meta_")
        || param.starts_with("crm_")
        || matches!(param, "trace_ra" | "trace_dir")
}

/// The default of `HA_VARLIB`, the parent of the trace directory.
pub const HA_VARLIB: &str = "/var/lib/heartbeat";

impl OcfEnv {
    /// The environment of a process: names and values as the kernel passed them. A
    /// variable whose name is not UTF-8 cannot be one of ours and is left out; a value
    /// that is not UTF-8 is kept as bytes (see the module documentation).
    pub fn from_os(vars: impl IntoIterator<Item = (OsString, OsString)>) -> OcfEnv {
        let mut text = BTreeMap::new();
        let mut undecodable = BTreeMap::new();
        for (k, v) in vars {
            let Ok(k) = k.into_string() else { continue };
            match v.into_string() {
                Ok(v) => {
                    text.insert(k, v);
                }
                Err(v) => {
                    undecodable.insert(k, v);
                }
            }
        }
        let mut env = OcfEnv::from_map(text);
        if let Some(i) = undecodable.get("OCF_RESOURCE_INSTANCE") {
            env.instance = i.to_string_lossy().into_owned();
        }
        env.undecodable = undecodable;
        env
    }

    /// [`Self::from_map`] from `(name, value)` pairs (tests, and faces that build an
    /// environment of their own).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> OcfEnv {
        OcfEnv::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    pub fn from_map(vars: BTreeMap<String, String>) -> OcfEnv {
        let get = |k: &str| {
            vars.get(&format!("{META}{k}"))
                .map(|s| s.trim().to_string())
        };
        let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
        let meta = CrmMeta {
            interval: Duration::from_millis(num("interval").unwrap_or(0)),
            timeout: num("timeout").filter(|t| *t > 0).map(Duration::from_millis),
            clone: num("clone").map(|v| v as u32),
            clone_max: num("clone_max").map(|v| v as u32),
            clone_node_max: num("clone_node_max").map(|v| v as u32),
            promoted_max: num("promoted_max")
                .or_else(|| num("master_max"))
                .map(|v| v as u32),
            promoted_node_max: num("promoted_node_max")
                .or_else(|| num("master_node_max"))
                .map(|v| v as u32),
            notify: get("notify").is_some_and(|v| is_true(&v)),
            globally_unique: get("globally_unique").map(|v| is_true(&v)),
            on_node: get("on_node").filter(|v| !v.is_empty()),
            on_node_uuid: get("on_node_uuid").filter(|v| !v.is_empty()),
        };
        let instance = vars
            .get("OCF_RESOURCE_INSTANCE")
            .cloned()
            .unwrap_or_default();
        let check_level = vars
            .get("OCF_CHECK_LEVEL")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        OcfEnv {
            vars,
            undecodable: BTreeMap::new(),
            instance,
            meta,
            check_level,
            euid: None,
        }
    }

    /// Variables as the process got them, text or not (for a child's environment).
    pub fn var_os(&self, name: &str) -> Option<&OsStr> {
        self.vars
            .get(name)
            .map(OsStr::new)
            .or_else(|| self.undecodable.get(name).map(OsString::as_os_str))
    }

    /// A resource parameter whose value is not valid UTF-8, as given.
    pub fn undecodable_param(&self, name: &str) -> Option<&OsStr> {
        self.undecodable
            .get(&format!("{RESKEY}{name}"))
            .map(OsString::as_os_str)
    }

    /// Every resource parameter given, by name, whether its value decodes or not.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        let text = self.vars.keys();
        let bytes = self.undecodable.keys();
        text.chain(bytes)
            .filter_map(|k| k.strip_prefix(RESKEY))
            .filter(|n| !is_pacemaker_var(n))
    }

    /// A variable other than a resource parameter (HA_*, OCF_ROOT, ...).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|s| s.as_str())
    }

    /// Resource parameters as given: `OCF_RESKEY_<name>` without Pacemaker's own
    /// ([`is_pacemaker_var`]) and without values that are not UTF-8.
    pub fn raw_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().filter_map(|(k, v)| {
            let name = k.strip_prefix(RESKEY)?;
            (!is_pacemaker_var(name)).then_some((name, v.as_str()))
        })
    }

    pub fn raw_param(&self, name: &str) -> Option<&str> {
        self.vars
            .get(&format!("{RESKEY}{name}"))
            .map(|s| s.as_str())
    }

    /// The one definition of a probe: a monitor with no (or a zero) interval.
    pub fn is_probe(&self, action: Action) -> bool {
        action == Action::Monitor && self.meta.interval.is_zero()
    }

    /// The notification variables, present only for the notify action.
    pub fn notify(&self) -> Notify {
        Notify::from_env(|k| self.vars.get(&format!("{META}{k}")).map(|s| s.as_str()))
    }

    /// The instance name made safe for one log line (control characters escaped).
    pub fn instance_line(&self) -> String {
        super::log::one_line(&self.instance).into_owned()
    }

    /// The instance name without a clone suffix (`pgsql:1` -> `pgsql`).
    pub fn instance_base(&self) -> &str {
        self.instance.split(':').next().unwrap_or(&self.instance)
    }

    /// The resource instance made safe for a file name.
    pub fn instance_file_name(&self) -> String {
        let s: String = self
            .instance
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if s.is_empty() {
            "default".to_string()
        } else {
            s
        }
    }

    /// Every variable, values that are not UTF-8 shown lossily (for a trace).
    pub fn vars_lossy(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(
                self.undecodable
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string_lossy().into_owned())),
            )
            .collect();
        v.sort();
        v
    }

    /// Tracing of this action asked for: `OCF_TRACE_RA` when set and not empty, else
    /// the `trace_ra` operation attribute (`OCF_RESKEY_trace_ra`), as OCF true values.
    pub fn trace_ra(&self) -> bool {
        match self.var("OCF_TRACE_RA").filter(|v| !v.trim().is_empty()) {
            Some(v) => is_true(v),
            None => self.var(&format!("{RESKEY}trace_ra")).is_some_and(is_true),
        }
    }

    /// `OCF_TRACE_FILE`, when not empty.
    pub fn trace_file(&self) -> Option<&str> {
        self.var("OCF_TRACE_FILE").filter(|v| !v.is_empty())
    }

    /// The warning for an `OCF_TRACE_FILE` that is neither a descriptor (3-9) nor an
    /// absolute path below a directory (the default destination is used instead).
    pub fn trace_file_warning(&self) -> Option<String> {
        let f = self.trace_file()?;
        let fd = matches!(f, "3" | "4" | "5" | "6" | "7" | "8" | "9");
        let path = f.starts_with('/') && f[1..].contains('/');
        (!fd && !path).then(|| {
            format!(
                "OCF_TRACE_FILE={:?} is neither a descriptor (3-9) nor an absolute path; using the default trace file",
                super::log::one_line(f)
            )
        })
    }

    /// The directory of default trace files: `trace_dir` (`OCF_RESKEY_trace_dir`), else
    /// `$HA_VARLIB/trace_ra`.
    pub fn trace_dir(&self) -> std::path::PathBuf {
        match self
            .var(&format!("{RESKEY}trace_dir"))
            .filter(|v| !v.is_empty())
        {
            Some(d) => d.into(),
            None => std::path::Path::new(
                self.var("HA_VARLIB")
                    .filter(|v| !v.is_empty())
                    .unwrap_or(HA_VARLIB),
            )
            .join("trace_ra"),
        }
    }

    /// The resource type Pacemaker names (`OCF_RESOURCE_TYPE`), when given.
    pub fn resource_type(&self) -> Option<&str> {
        self.var("OCF_RESOURCE_TYPE").filter(|v| !v.is_empty())
    }

    /// Pacemaker's directory for agents' transient state.
    pub fn rsc_tmp(&self) -> &str {
        self.var("HA_RSCTMP").unwrap_or("/run/resource-agents")
    }
}

/// OCF's notion of a true value (`ocf_is_true`).
pub fn is_true(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "1" | "on" | "y" | "ja"
    )
}

/// OCF's notion of a false value.
pub fn is_false(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "no" | "false" | "0" | "off" | "n" | "nein"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> OcfEnv {
        OcfEnv::from_pairs(pairs)
    }

    #[test]
    fn meta_attributes_both_spellings() {
        let e = env(&[
            ("OCF_RESOURCE_INSTANCE", "pg:1"),
            ("OCF_RESKEY_CRM_meta_interval", "15000"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_CRM_meta_clone", "1"),
            ("OCF_RESKEY_CRM_meta_clone_max", "2"),
            ("OCF_RESKEY_CRM_meta_master_max", "1"),
            ("OCF_RESKEY_CRM_meta_promoted_node_max", "1"),
            ("OCF_RESKEY_CRM_meta_notify", "true"),
            ("OCF_RESKEY_CRM_meta_on_node", "pg1"),
            ("OCF_RESKEY_ip", "10.99.0.1"),
            ("OCF_CHECK_LEVEL", "10"),
        ]);
        assert_eq!(e.meta.interval, Duration::from_secs(15));
        assert_eq!(e.meta.timeout, Some(Duration::from_secs(20)));
        assert_eq!(e.meta.clone, Some(1));
        assert_eq!(e.meta.clone_max, Some(2));
        assert_eq!(e.meta.promoted_max, Some(1));
        assert_eq!(e.meta.promoted_node_max, Some(1));
        assert!(e.meta.notify);
        assert_eq!(e.meta.on_node.as_deref(), Some("pg1"));
        assert_eq!(e.check_level, 10);
        assert_eq!(e.instance_base(), "pg");
        let params: Vec<_> = e.raw_params().collect();
        assert_eq!(params, [("ip", "10.99.0.1")]);
    }

    #[test]
    fn pacemaker_variables_are_not_parameters() {
        let e = env(&[
            ("OCF_RESKEY_crm_feature_set", "3.16.1"),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_crm_whatever", "x"),
            ("OCF_RESKEY_ip", "10.99.0.1"),
        ]);
        assert_eq!(e.raw_params().collect::<Vec<_>>(), [("ip", "10.99.0.1")]);
        assert_eq!(e.param_names().collect::<Vec<_>>(), ["ip"]);
    }

    #[test]
    fn values_that_are_not_utf8_are_kept_aside() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"/srv/\xffdb".to_vec());
        let e = OcfEnv::from_os([
            (OsString::from("OCF_RESKEY_pgdata"), bad.clone()),
            (OsString::from("OCF_RESKEY_ip"), OsString::from("10.99.0.1")),
            (
                OsString::from("OCF_RESOURCE_INSTANCE"),
                OsString::from_vec(b"r\xff".to_vec()),
            ),
            (OsString::from_vec(b"X\xff".to_vec()), OsString::from("1")),
        ]);
        assert_eq!(e.raw_param("pgdata"), None);
        assert_eq!(e.undecodable_param("pgdata"), Some(bad.as_os_str()));
        assert_eq!(e.var_os("OCF_RESKEY_pgdata"), Some(bad.as_os_str()));
        assert_eq!(e.raw_param("ip"), Some("10.99.0.1"));
        assert_eq!(e.param_names().collect::<Vec<_>>(), ["ip", "pgdata"]);
        assert_eq!(e.instance, "r\u{fffd}");
        assert_eq!(e.euid, None);
    }

    #[test]
    fn tracing_switches() {
        assert!(!env(&[]).trace_ra());
        assert!(env(&[("OCF_RESKEY_trace_ra", "1")]).trace_ra());
        assert!(env(&[("OCF_TRACE_RA", "yes")]).trace_ra());
        // OCF_TRACE_RA, when given, decides.
        assert!(!env(&[("OCF_TRACE_RA", "0"), ("OCF_RESKEY_trace_ra", "1")]).trace_ra());
        assert!(env(&[("OCF_TRACE_RA", ""), ("OCF_RESKEY_trace_ra", "true")]).trace_ra());
        assert_eq!(
            env(&[]).trace_dir(),
            std::path::Path::new("/var/lib/heartbeat/trace_ra")
        );
        assert_eq!(
            env(&[("HA_VARLIB", "/srv/ha")]).trace_dir(),
            std::path::Path::new("/srv/ha/trace_ra")
        );
        assert_eq!(
            env(&[("OCF_RESKEY_trace_dir", "/t"), ("HA_VARLIB", "/srv/ha")]).trace_dir(),
            std::path::Path::new("/t")
        );
        // A path below a directory or a descriptor from 3 to 9 is taken; anything else draws
        // a warning.
        for (file, warned) in [
            ("/tmp/x", false),
            ("5", false),
            ("x.log", true),
            ("/x", true),
        ] {
            let e = env(&[("OCF_TRACE_FILE", file)]);
            assert_eq!(e.trace_file_warning().is_some(), warned, "{file}");
        }
        let e = env(&[("OCF_RESKEY_trace_ra", "1"), ("OCF_RESKEY_trace_dir", "/t")]);
        assert_eq!(e.param_names().count(), 0);
    }

    #[test]
    fn the_one_probe_rule() {
        let e = env(&[]);
        assert!(e.is_probe(Action::Monitor));
        assert!(!e.is_probe(Action::Start));
        let e = env(&[("OCF_RESKEY_CRM_meta_interval", "0")]);
        assert!(e.is_probe(Action::Monitor));
        let e = env(&[("OCF_RESKEY_CRM_meta_interval", "10000")]);
        assert!(!e.is_probe(Action::Monitor));
    }

    #[test]
    fn file_names_are_sanitised() {
        let e = env(&[("OCF_RESOURCE_INSTANCE", "../x y:1")]);
        assert_eq!(e.instance_file_name(), ".._x_y_1");
        assert_eq!(env(&[]).instance_file_name(), "default");
    }

    #[test]
    fn truth_values() {
        for t in ["yes", "TRUE", "1", "on", "Y"] {
            assert!(is_true(t), "{t}");
        }
        for f in ["no", "False", "0", "off", ""] {
            assert!(!is_true(f), "{f}");
        }
        assert!(is_false("off") && !is_false("maybe"));
    }
}
