//! The parameters of the `filesystem` agent, parsed and checked once (syntax only: the
//! node is asked nothing here).

use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::PARAMS;
use crate::ocf::agent::FromParams;
use crate::ocf::env::OcfEnv;
use crate::ocf::params::{ParamError, Params};
use crate::sys::mount::{self, MountOptions};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    Path(PathBuf),
    Uuid(String),
    Label(String),
    /// A network or pseudo source (server:/export, //server/share, tmpfs name).
    Other(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsck {
    Auto,
    Force,
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    pub device: DeviceSpec,
    pub directory: PathBuf,
    pub fstype: String,
    pub options: String,
    pub opts: MountOptions,
    pub statusfile_prefix: PathBuf,
    pub run_fsck: Fsck,
    pub fast_stop: bool,
    pub force_clones: bool,
    pub force_unmount: bool,
    pub signals: StopSignals,
}

/// What a stop sends the processes holding the mount: `term` first (for half of the
/// stop timeout unless `fast_stop`), then `kill`, with `delay` between the rounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopSignals {
    pub term: Vec<Signal>,
    pub kill: Vec<Signal>,
    pub delay: Duration,
}

/// Types backed by a local block device.
pub(super) fn block_type(fstype: &str) -> bool {
    matches!(
        fstype,
        "xfs" | "ext2" | "ext3" | "ext4" | "btrfs" | "jfs" | "reiserfs" | "vfat"
    )
}

/// Types whose concurrent mount on two nodes corrupts them.
pub(super) fn local_only(fstype: &str) -> bool {
    matches!(
        fstype,
        "xfs" | "ext2" | "ext3" | "ext4" | "btrfs" | "jfs" | "reiserfs"
    )
}

/// An absolute directory, trailing slashes and `.` components removed; `..` and any
/// spelling of `/` refused. Symbolic links are resolved per action, on the node
/// ([`Filesystem::canonical`]).
pub fn parse_directory(v: &str) -> Result<PathBuf, ParamError> {
    let bad = |why: &str| ParamError::invalid("directory", v, why);
    if v.chars().any(|c| c.is_control()) {
        return Err(bad("contains control characters"));
    }
    if !v.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    let t = v.trim_end_matches('/');
    if t.is_empty() {
        return Err(bad("refusing to manage the root file system"));
    }
    let p = Path::new(t);
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(bad("must not contain .. components"));
    }
    // `.` components are dropped (`/srv/./db` is `/srv/db`, `/.` is `/`).
    let p: PathBuf = p.components().collect();
    if p == Path::new("/") {
        return Err(bad("refusing to manage the root file system"));
    }
    Ok(p)
}

pub fn parse_device(v: &str) -> Result<DeviceSpec, ParamError> {
    let v = v.trim();
    if v.is_empty() || v.chars().any(|c| c.is_control()) {
        return Err(ParamError::invalid("device", v, "not a device"));
    }
    if let Some(u) = v.strip_prefix("UUID=") {
        return Ok(DeviceSpec::Uuid(u.trim_matches('"').to_string()));
    }
    if let Some(l) = v.strip_prefix("LABEL=") {
        return Ok(DeviceSpec::Label(l.trim_matches('"').to_string()));
    }
    if v.starts_with('/') && !v.starts_with("//") {
        return Ok(DeviceSpec::Path(PathBuf::from(v)));
    }
    Ok(DeviceSpec::Other(v.to_string()))
}

pub fn parse_options(v: &str) -> Result<MountOptions, ParamError> {
    if let Some(c) = v
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || ";|&$`<>'\"\\(){}*?!#".contains(*c))
    {
        return Err(ParamError::invalid(
            "options",
            v,
            format!("contains {c:?}; give one comma-separated list without separators"),
        ));
    }
    mount::split_options(v).map_err(|why| ParamError::invalid("options", v, why))
}

pub fn parse_signals(name: &'static str, v: &str) -> Result<Vec<Signal>, ParamError> {
    let mut out = Vec::new();
    for s in v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        let sig = if let Ok(n) = s.parse::<i32>() {
            Signal::try_from(n).ok()
        } else {
            let up = s.to_ascii_uppercase();
            let full = if up.starts_with("SIG") {
                up
            } else {
                format!("SIG{up}")
            };
            Signal::from_str(&full).ok()
        };
        match sig {
            Some(Signal::SIGSTOP) | None => {
                return Err(ParamError::invalid(
                    name,
                    v,
                    format!("{s} is not a usable signal"),
                ))
            }
            Some(sig) => out.push(sig),
        }
    }
    if out.is_empty() {
        return Err(ParamError::invalid(name, v, "no signal given"));
    }
    Ok(out)
}

pub fn configure(p: &Params) -> Result<FsConfig, ParamError> {
    let device = parse_device(p.str("device").unwrap_or_default())?;
    let directory = parse_directory(p.str("directory").unwrap_or_default())?;
    let fstype = p.str("fstype").unwrap_or("").trim().to_string();
    if !fstype
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._+-".contains(&b))
    {
        return Err(ParamError::invalid(
            "fstype",
            fstype.as_str(),
            "not a file-system type name",
        ));
    }
    let options = p.str("options").unwrap_or("").trim().to_string();
    let opts = parse_options(&options)?;
    let prefix_raw = p.str_value("statusfile_prefix");
    let prefix = PathBuf::from(prefix_raw);
    if prefix.is_absolute()
        || prefix
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        || prefix_raw.chars().any(|c| c.is_control())
    {
        return Err(ParamError::invalid(
            "statusfile_prefix",
            prefix_raw,
            "must be a relative path below directory, without . or ..",
        ));
    }
    let run_fsck = match p.str_value("run_fsck").trim() {
        "auto" => Fsck::Auto,
        "force" => Fsck::Force,
        "no" => Fsck::No,
        other => {
            return Err(ParamError::invalid(
                "run_fsck",
                other,
                "use auto, force or no",
            ))
        }
    };
    let force_unmount = match p.str_value("force_unmount").trim() {
        "safe" => true,
        v if crate::ocf::env::is_true(v) => true,
        v if crate::ocf::env::is_false(v) => false,
        other => {
            return Err(ParamError::invalid(
                "force_unmount",
                other,
                "use true, safe or false",
            ))
        }
    };
    let term_signals = parse_signals("term_signals", p.str_value("term_signals"))?;
    let kill_signals = parse_signals("kill_signals", p.str_value("kill_signals"))?;
    let delay = p.int_in("signal_delay", 0, 60)?;
    if matches!(device, DeviceSpec::Other(_)) && block_type(&fstype) {
        return Err(ParamError::invalid(
            "device",
            p.str("device").unwrap_or_default(),
            format!("{fstype} needs a device path, UUID= or LABEL="),
        ));
    }
    Ok(FsConfig {
        device,
        directory,
        fstype,
        options,
        opts,
        statusfile_prefix: prefix,
        run_fsck,
        fast_stop: p.bool("fast_stop"),
        force_clones: p.bool("force_clones"),
        force_unmount,
        signals: StopSignals {
            term: term_signals,
            kill: kill_signals,
            delay: Duration::from_secs(delay as u64),
        },
    })
}

impl FsConfig {
    pub(super) fn device_text(&self) -> String {
        match &self.device {
            DeviceSpec::Path(p) => p.display().to_string(),
            DeviceSpec::Uuid(u) => format!("UUID={u}"),
            DeviceSpec::Label(l) => format!("LABEL={l}"),
            DeviceSpec::Other(s) => s.clone(),
        }
    }
}

impl FromParams for FsConfig {
    fn from_params(p: &Params) -> Result<Self, ParamError> {
        configure(p)
    }
}

/// The configuration of the parameters that parse, each one that does not replaced by
/// its default; `None` when `device` or `directory` itself does not parse.
pub(super) fn fallback_config(env: &OcfEnv) -> Option<FsConfig> {
    let mut vars: std::collections::BTreeMap<String, String> = env
        .raw_params()
        .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string()))
        .collect();
    for _ in 0..=PARAMS.len() {
        let env = OcfEnv::from_map(vars.clone());
        let err = match Params::parse(PARAMS, &env).and_then(|p| configure(&p)) {
            Ok(c) => return Some(c),
            Err(e) => e,
        };
        if matches!(err, ParamError::Missing { .. }) {
            return None;
        }
        let name = err.name();
        if name == "device" || name == "directory" {
            return None;
        }
        vars.remove(&format!("OCF_RESKEY_{name}"))?;
    }
    None
}
