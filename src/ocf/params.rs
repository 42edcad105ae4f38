//! Parameters, declared once per agent as data. The same table renders meta-data and
//! documentation, and parses and type-checks `OCF_RESKEY_*`.

use std::collections::BTreeMap;

use super::env::{is_false, is_true, OcfEnv};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Boolean,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub default: Option<&'static str>,
    pub required: bool,
    pub unique: bool,
    /// OCF 1.1: a change of this parameter alone is applied by `reload-agent`, not by
    /// a restart.
    pub reloadable: bool,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    /// A parameter of the reference agent this one does not support: why, and the values
    /// that ask for nothing (those are accepted silently; any other is refused).
    pub refused: Option<(&'static str, &'static [&'static str])>,
}

impl ParamSpec {
    /// A string parameter; refine with the builder methods below.
    pub const fn string(
        name: &'static str,
        shortdesc: &'static str,
        longdesc: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            name,
            ty: ParamType::String,
            default: None,
            required: false,
            unique: false,
            reloadable: false,
            shortdesc,
            longdesc,
            refused: None,
        }
    }
    /// A parameter of the reference agent that is not supported: setting it to anything
    /// but one of `harmless` ("*": any value, accepted and ignored) is a configuration
    /// error explaining `why`.
    pub const fn refused(
        name: &'static str,
        why: &'static str,
        harmless: &'static [&'static str],
    ) -> ParamSpec {
        ParamSpec {
            refused: Some((why, harmless)),
            ..ParamSpec::string(name, "", "")
        }
    }
    pub fn is_refused(&self) -> bool {
        self.refused.is_some()
    }
    /// Accepted with any value and without effect.
    pub fn is_ignored(&self) -> bool {
        matches!(self.refused, Some((_, ok)) if ok.contains(&"*"))
    }
    /// The short description meta-data shows (refused ones get one from their reason).
    pub fn short_text(&self) -> String {
        match self.refused {
            None => self.shortdesc.to_string(),
            Some(_) if self.is_ignored() => format!("{} (accepted and ignored)", self.name),
            Some(_) => format!("{} (not supported)", self.name),
        }
    }
    /// The long description meta-data shows. An ignored parameter says "accepted and
    /// ignored: why"; a refused one says which values are accepted (they ask for
    /// nothing) and that any other fails validation.
    pub fn long_text(&self) -> String {
        let Some((why, ok)) = self.refused else {
            return self.longdesc.to_string();
        };
        if self.is_ignored() {
            let why = why.strip_prefix("accepted and ignored").unwrap_or(why);
            let why = why.trim_start_matches([':', ' ']);
            return if why.is_empty() {
                "Parameter of the reference agent, accepted and ignored.".to_string()
            } else {
                format!("Parameter of the reference agent, accepted and ignored: {why}.")
            };
        }
        let why = why.strip_prefix("not supported").unwrap_or(why);
        let why = why.trim_start_matches([':', ';', ',', ' ']);
        let why = if why.is_empty() {
            "no equivalent here"
        } else {
            why
        };
        if ok.is_empty() {
            format!(
                "Parameter of the reference agent, not supported: {why}. Any value fails \
                 validation (leave it unset)."
            )
        } else {
            format!(
                "Parameter of the reference agent, not supported: {why}. Accepted only \
                 unset or as {} (which ask for nothing); any other value fails validation.",
                ok.join(", ")
            )
        }
    }
    pub const fn integer(
        name: &'static str,
        shortdesc: &'static str,
        longdesc: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            ty: ParamType::Integer,
            ..ParamSpec::string(name, shortdesc, longdesc)
        }
    }
    pub const fn boolean(
        name: &'static str,
        shortdesc: &'static str,
        longdesc: &'static str,
    ) -> ParamSpec {
        ParamSpec {
            ty: ParamType::Boolean,
            ..ParamSpec::string(name, shortdesc, longdesc)
        }
    }
    pub const fn default(mut self, v: &'static str) -> ParamSpec {
        self.default = Some(v);
        self
    }
    pub const fn required(mut self) -> ParamSpec {
        self.required = true;
        self
    }
    pub const fn unique(mut self) -> ParamSpec {
        self.unique = true;
        self
    }
    pub const fn reloadable(mut self) -> ParamSpec {
        self.reloadable = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("parameter {name}={value:?} is not supported: {why}")]
    Unsupported {
        name: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("required parameter {name} is not set")]
    Missing { name: &'static str },
    /// The value is not valid UTF-8: it cannot name anything the agent could act on,
    /// and falling back to the default would act on something else.
    #[error("parameter {name}={value:?}: the value is not valid UTF-8")]
    Undecodable { name: &'static str, value: String },
    #[error("parameter {name}={value:?}: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

impl ParamError {
    /// The parameter the error is about.
    pub fn name(&self) -> &'static str {
        match self {
            ParamError::Unsupported { name, .. }
            | ParamError::Missing { name }
            | ParamError::Undecodable { name, .. }
            | ParamError::Invalid { name, .. } => name,
        }
    }

    pub fn invalid(
        name: &'static str,
        value: impl Into<String>,
        why: impl Into<String>,
    ) -> ParamError {
        ParamError::Invalid {
            name,
            value: value.into(),
            why: why.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Parsed, type-checked parameter values. Reading a name the table does not declare is
/// a programming error: it panics in debug builds (so tests catch it) and reads as unset
/// in release builds.
#[derive(Debug, Clone)]
pub struct Params {
    specs: &'static [ParamSpec],
    values: BTreeMap<&'static str, Value>,
    /// `OCF_RESKEY_*` names given but not declared (kept for a warning); Pacemaker's own
    /// variables are never among them.
    pub unknown: Vec<String>,
}

impl Params {
    pub fn parse(specs: &'static [ParamSpec], env: &OcfEnv) -> Result<Params, ParamError> {
        // First: a value that cannot be read is the error to report, whatever else is
        // wrong, since it is what would otherwise be silently replaced.
        for spec in specs {
            if let Some(v) = env.undecodable_param(spec.name) {
                return Err(ParamError::Undecodable {
                    name: spec.name,
                    value: v.to_string_lossy().into_owned(),
                });
            }
        }
        let mut values = BTreeMap::new();
        for spec in specs {
            let raw = env.raw_param(spec.name).filter(|v| !v.is_empty());
            if let Some((why, harmless)) = spec.refused {
                if let Some(v) = raw.filter(|v| {
                    !harmless
                        .iter()
                        .any(|h| *h == "*" || h.eq_ignore_ascii_case(v.trim()))
                }) {
                    return Err(ParamError::Unsupported {
                        name: spec.name,
                        value: v.to_string(),
                        why,
                    });
                }
                continue;
            }
            let Some(text) = raw.or(spec.default).filter(|v| !v.is_empty()) else {
                if spec.required {
                    return Err(ParamError::Missing { name: spec.name });
                }
                continue;
            };
            let v = match spec.ty {
                ParamType::String => Value::Str(text.to_string()),
                ParamType::Integer => Value::Int(
                    text.trim()
                        .parse::<i64>()
                        .map_err(|_| ParamError::invalid(spec.name, text, "not an integer"))?,
                ),
                ParamType::Boolean => {
                    if is_true(text) {
                        Value::Bool(true)
                    } else if is_false(text) {
                        Value::Bool(false)
                    } else {
                        return Err(ParamError::invalid(
                            spec.name,
                            text,
                            "not a boolean (use true or false)",
                        ));
                    }
                }
            };
            values.insert(spec.name, v);
        }
        let unknown = env
            .param_names()
            .filter(|k| !specs.iter().any(|s| s.name == *k))
            .map(str::to_string)
            .collect();
        Ok(Params {
            specs,
            values,
            unknown,
        })
    }

    fn declared(&self, name: &str, ty: ParamType) -> bool {
        let ok = self.specs.iter().any(|s| s.name == name && s.ty == ty);
        debug_assert!(
            ok,
            "parameter {name} ({}) is not declared in the agent's table",
            ty.name()
        );
        ok
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        if !self.declared(name, ParamType::String) {
            return None;
        }
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        if !self.declared(name, ParamType::Integer) {
            return None;
        }
        match self.values.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn bool(&self, name: &str) -> bool {
        if !self.declared(name, ParamType::Boolean) {
            return false;
        }
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    /// The spec of a parameter that must have a declared default (a programming error
    /// otherwise, caught by tests like an undeclared name).
    fn defaulted(&self, name: &str) -> Option<&'static str> {
        let d = self
            .specs
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.default);
        debug_assert!(d.is_some(), "parameter {name} has no declared default");
        d
    }

    /// A string parameter with a declared default: the given value or that default,
    /// so no caller writes the default a second time.
    pub fn str_value(&self, name: &str) -> &str {
        self.str(name)
            .or_else(|| self.defaulted(name))
            .unwrap_or_default()
    }

    /// An integer parameter with a declared default: the given value or that default.
    pub fn int_value(&self, name: &str) -> i64 {
        self.int(name)
            .or_else(|| self.defaulted(name).and_then(|d| d.trim().parse().ok()))
            .unwrap_or_default()
    }

    /// An integer parameter within `lo..=hi`: the given value or the declared default,
    /// as a typed error naming the parameter when the given value is out of range.
    pub fn int_in(&self, name: &'static str, lo: i64, hi: i64) -> Result<i64, ParamError> {
        match self.int(name) {
            Some(v) if v < lo || v > hi => Err(ParamError::invalid(
                name,
                v.to_string(),
                format!("must be between {lo} and {hi}"),
            )),
            _ => Ok(self.int_value(name)),
        }
    }
}

/// For unit tests: the environment Pacemaker gives an agent with these parameters
/// (`OCF_RESKEY_` before each name).
#[cfg(test)]
pub(crate) fn test_env(pairs: &[(&str, &str)]) -> OcfEnv {
    OcfEnv::from_map(
        pairs
            .iter()
            .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
            .collect(),
    )
}

/// For unit tests: the configuration an agent's `configure` makes of these parameters,
/// parsed with its table.
#[cfg(test)]
pub(crate) fn test_config<C>(
    table: &'static [ParamSpec],
    configure: fn(&Params) -> Result<C, ParamError>,
    pairs: &[(&str, &str)],
) -> Result<C, ParamError> {
    configure(&Params::parse(table, &test_env(pairs))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPECS: &[ParamSpec] = &[
        ParamSpec::string("ip", "IP", "The address.")
            .required()
            .unique(),
        ParamSpec::integer("count", "Count", "How many.").default("5"),
        ParamSpec::boolean("flag", "Flag", "A flag.").default("false"),
        ParamSpec::string("label", "Label", "A label."),
        ParamSpec::refused("lvs_support", "no LVS here", &["false", "no"]),
    ];

    use super::test_env as env;

    #[test]
    fn defaults_types_and_unknowns() {
        let p = Params::parse(
            SPECS,
            &env(&[("ip", "10.99.0.1"), ("flag", "yes"), ("bogus", "1")]),
        )
        .unwrap();
        assert_eq!(p.str("ip"), Some("10.99.0.1"));
        assert_eq!(p.int("count"), Some(5));
        assert_eq!(p.int_value("count"), 5);
        let p2 = Params::parse(SPECS, &env(&[("ip", "x"), ("count", "7")])).unwrap();
        assert_eq!(p2.int_value("count"), 7);
        assert!(p.bool("flag"));
        assert_eq!(p.str("label"), None);
        assert_eq!(p.unknown, ["bogus"]);
    }

    #[test]
    fn errors_name_the_parameter() {
        assert_eq!(
            Params::parse(SPECS, &env(&[])).unwrap_err(),
            ParamError::Missing { name: "ip" }
        );
        let e = Params::parse(SPECS, &env(&[("ip", "x"), ("count", "five")])).unwrap_err();
        assert_eq!(e.to_string(), "parameter count=\"five\": not an integer");
        let e = Params::parse(SPECS, &env(&[("ip", "x"), ("flag", "maybe")])).unwrap_err();
        assert!(e.to_string().starts_with("parameter flag=\"maybe\""));
        let p = Params::parse(SPECS, &env(&[("ip", "x"), ("count", "0")])).unwrap();
        assert!(p.int_in("count", 1, 10).is_err());
    }

    #[test]
    fn pacemaker_variables_are_never_unknown() {
        let p = Params::parse(
            SPECS,
            &env(&[
                ("ip", "x"),
                ("crm_feature_set", "3.16.1"),
                ("CRM_meta_timeout", "20000"),
                ("CRM_meta_notify_start_uname", "n1"),
            ]),
        )
        .unwrap();
        assert!(p.unknown.is_empty(), "{:?}", p.unknown);
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_naming_the_parameter() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let e = OcfEnv::from_os([
            (OsString::from("OCF_RESKEY_ip"), OsString::from("x")),
            (
                OsString::from("OCF_RESKEY_label"),
                OsString::from_vec(b"a\xffb".to_vec()),
            ),
        ]);
        let err = Params::parse(SPECS, &e).unwrap_err();
        assert_eq!(
            err,
            ParamError::Undecodable {
                name: "label",
                value: "a\u{fffd}b".into()
            }
        );
        assert!(err.to_string().starts_with("parameter label="), "{err}");
        // An undeclared name with such a value is only unknown.
        let e = OcfEnv::from_os([
            (OsString::from("OCF_RESKEY_ip"), OsString::from("x")),
            (
                OsString::from("OCF_RESKEY_bogus"),
                OsString::from_vec(vec![0xff]),
            ),
        ]);
        assert_eq!(Params::parse(SPECS, &e).unwrap().unknown, ["bogus"]);
    }

    #[test]
    fn refused_parameters_accept_only_harmless_values() {
        assert!(Params::parse(SPECS, &env(&[("ip", "x"), ("lvs_support", "False")])).is_ok());
        let e = Params::parse(SPECS, &env(&[("ip", "x"), ("lvs_support", "true")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter lvs_support=\"true\" is not supported: no LVS here"
        );
        let p = Params::parse(SPECS, &env(&[("ip", "x")])).unwrap();
        assert!(p.unknown.is_empty());
    }

    #[test]
    #[should_panic(expected = "no declared default")]
    fn a_defaulted_getter_needs_a_declared_default() {
        let p = Params::parse(SPECS, &env(&[("ip", "x")])).unwrap();
        let _ = p.str_value("label");
    }

    #[test]
    #[should_panic(expected = "not declared")]
    fn reading_an_undeclared_parameter_fails_tests() {
        let p = Params::parse(SPECS, &env(&[("ip", "x")])).unwrap();
        let _ = p.str("nic");
    }
}

#[cfg(test)]
mod described_refusals {
    use super::ParamSpec;

    #[test]
    fn ignored_and_refused_parameters_describe_themselves() {
        let ignored = ParamSpec::refused("wfc", "accepted and ignored: no wait", &["*"]);
        assert!(ignored.is_ignored());
        assert_eq!(
            ignored.long_text(),
            "Parameter of the reference agent, accepted and ignored: no wait."
        );
        assert_eq!(ignored.short_text(), "wfc (accepted and ignored)");
        let refused = ParamSpec::refused("flush", "routes are left alone", &["false", "no"]);
        assert!(!refused.is_ignored());
        let t = refused.long_text();
        assert!(t.contains("not supported: routes are left alone"), "{t}");
        assert!(t.contains("false, no"), "{t}");
        let never = ParamSpec::refused("mac", "not supported", &[]);
        assert!(never.long_text().contains("Any value fails validation"));
    }
}
