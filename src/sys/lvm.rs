//! LVM and device-mapper: typed reports of a volume group (one `lvm fullreport` run in
//! JSON), the changes the `lvm` agent and `pgstack lvm` make (vgchange/lvchange/lvcreate/
//! lvremove), each bounded by the caller's deadline and run with `--config` overrides
//! (never an edit of lvm.conf), and the device-mapper state read from sysfs without any
//! LVM command (`/sys/block/dm-*/dm/{name,uuid,suspended}` and `slaves/`).
//!
//! Nothing here interprets an LVM tool's messages: a failed command is a
//! [`Changed::Failed`] whose text only ends up in an exit reason; what is still active,
//! mounted or held afterwards is read from the kernel.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::blockio::{self, Op};
use super::error::{SysError, SysResult};
use super::runner::{run, Cmd, Outcome};

/// Volume group and logical volume names LVM accepts, minus everything a shell, a dm
/// name or a `--config` string could read specially: letters, digits, `_ . + -`, not
/// starting with `-`, not `.`/`..`, at most 127 bytes.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 127
        && !s.starts_with('-')
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-'))
}

/// Tags: LVM's tag alphabet without `/ = ! & #` (we only write names and node names).
pub fn valid_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-' | ':'))
}

// ---------------------------------------------------------------- a small JSON reader

/// The JSON LVM prints: objects, arrays and strings (numbers and literals are accepted
/// and kept as text).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn err(&self, what: &str) -> SysError {
        SysError::Invalid(format!("LVM JSON report: {what} at byte {}", self.i))
    }
    /// Past white space, takes `close` (the end of an object or array) if it is next.
    fn close(&mut self, close: u8) -> bool {
        self.ws();
        let at = self.s.get(self.i) == Some(&close);
        if at {
            self.i += 1;
        }
        at
    }
    /// After a member: takes the `,` before the next one, or leaves `close` for
    /// [`Reader::close`].
    fn comma_before(&mut self, close: u8) -> SysResult<()> {
        self.ws();
        match self.s.get(self.i) {
            Some(b',') => self.i += 1,
            Some(&c) if c == close => {}
            _ => return Err(self.err(&format!("',' or '{}' expected", close as char))),
        }
        Ok(())
    }
    /// The members of an object or array up to `close` (its opening taken), each read
    /// by `member`.
    fn members<T>(
        &mut self,
        close: u8,
        mut member: impl FnMut(&mut Self) -> SysResult<T>,
    ) -> SysResult<Vec<T>> {
        let mut out = Vec::new();
        loop {
            if self.close(close) {
                return Ok(out);
            }
            out.push(member(self)?);
            self.comma_before(close)?;
        }
    }
    /// `"key": value` in an object at `depth`.
    fn field(&mut self, depth: u32) -> SysResult<(String, Json)> {
        let Json::Str(k) = self.value(depth + 1)? else {
            return Err(self.err("object key is not a string"));
        };
        self.ws();
        if self.s.get(self.i) != Some(&b':') {
            return Err(self.err("':' expected"));
        }
        self.i += 1;
        Ok((k, self.value(depth + 1)?))
    }
    fn value(&mut self, depth: u32) -> SysResult<Json> {
        if depth > 32 {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                self.members(b'}', |r| r.field(depth)).map(Json::Obj)
            }
            Some(b'[') => {
                self.i += 1;
                self.members(b']', |r| r.value(depth + 1)).map(Json::Arr)
            }
            Some(b'"') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    match self.s.get(self.i) {
                        None => return Err(self.err("unterminated string")),
                        Some(b'"') => {
                            self.i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            let c = *self.s.get(self.i + 1).ok_or_else(|| self.err("escape"))?;
                            self.i += 2;
                            match c {
                                b'n' => out.push(b'\n'),
                                b't' => out.push(b'\t'),
                                b'r' => out.push(b'\r'),
                                b'b' => out.push(8),
                                b'f' => out.push(12),
                                b'u' => {
                                    let hex = self
                                        .s
                                        .get(self.i..self.i + 4)
                                        .and_then(|h| std::str::from_utf8(h).ok())
                                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                                        .ok_or_else(|| self.err("bad \\u escape"))?;
                                    self.i += 4;
                                    let ch = char::from_u32(hex).unwrap_or('\u{fffd}');
                                    let mut b = [0; 4];
                                    out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
                                }
                                other => out.push(other),
                            }
                        }
                        Some(&c) => {
                            out.push(c);
                            self.i += 1;
                        }
                    }
                }
                Ok(Json::Str(String::from_utf8_lossy(&out).into_owned()))
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len() && !b",]} \n\t\r".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                if start == self.i {
                    return Err(self.err("value expected"));
                }
                Ok(Json::Str(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            None => Err(self.err("unexpected end")),
        }
    }
}

/// The members of the object an LVM JSON report is.
fn top_object(text: &str) -> SysResult<Vec<(String, Json)>> {
    let mut r = Reader {
        s: text.as_bytes(),
        i: 0,
    };
    match r.value(0)? {
        Json::Obj(top) => Ok(top),
        _ => Err(SysError::Invalid("LVM JSON report: not an object".into())),
    }
}

/// The rows of every section called `name` ("vg", "lv", "pv") in an LVM JSON report,
/// as field maps. `lvm fullreport` repeats the sections once per volume group.
pub fn report_rows(text: &str, name: &str) -> SysResult<Vec<BTreeMap<String, String>>> {
    let top = top_object(text)?;
    let mut rows = Vec::new();
    for (k, v) in top {
        if k != "report" {
            continue;
        }
        let Json::Arr(reports) = v else { continue };
        for rep in reports {
            let Json::Obj(sections) = rep else { continue };
            for (sname, sval) in sections {
                if sname != name {
                    continue;
                }
                let Json::Arr(items) = sval else { continue };
                for item in items {
                    if let Json::Obj(fields) = item {
                        rows.push(
                            fields
                                .into_iter()
                                .filter_map(|(k, v)| match v {
                                    Json::Str(s) => Some((k, s)),
                                    _ => None,
                                })
                                .collect(),
                        );
                    }
                }
            }
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------- typed reports

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vg {
    pub name: String,
    /// Without dashes, as device-mapper uuids carry it.
    pub uuid: String,
    pub system_id: String,
    pub tags: Vec<String>,
    /// `vg_attr`: the 4th character `p` means partial (PVs missing).
    pub attr: String,
    pub lock_type: String,
    /// The VG's autoactivation property (reported empty when disabled).
    pub autoactivation: bool,
    pub missing_pvs: u32,
}

impl Vg {
    pub fn partial(&self) -> bool {
        self.attr.chars().nth(3) == Some('p') || self.missing_pvs > 0
    }
    /// Shared VG (lvmlockd with dlm or sanlock).
    pub fn shared(&self) -> bool {
        matches!(self.lock_type.as_str(), "dlm" | "sanlock" | "idm")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lv {
    pub name: String,
    /// Without dashes.
    pub uuid: String,
    pub attr: String,
    pub active: bool,
    /// The kernel device when active.
    pub kernel: Option<(u32, u32)>,
    /// Name of the origin when this is a snapshot.
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pv {
    /// The device path, `[unknown]` when missing.
    pub name: String,
    pub uuid: String,
    pub missing: bool,
    pub dev: Option<(u32, u32)>,
}

/// A volume group with its (visible, non-internal) logical volumes and physical volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgReport {
    pub vg: Vg,
    pub lvs: Vec<Lv>,
    pub pvs: Vec<Pv>,
}

const VG_COLS: &str = "vg_name,vg_uuid,vg_systemid,vg_tags,vg_attr,vg_lock_type,vg_autoactivation,vg_missing_pv_count";
const LV_COLS: &str = "lv_name,lv_uuid,lv_attr,lv_active,lv_kernel_major,lv_kernel_minor,origin";
const PV_COLS: &str = "pv_name,pv_uuid,pv_missing,pv_major,pv_minor";

fn nodash(s: &str) -> String {
    s.chars().filter(|c| *c != '-').collect()
}

fn majmin(ma: Option<&String>, mi: Option<&String>) -> Option<(u32, u32)> {
    let ma: i64 = ma?.trim().parse().ok()?;
    let mi: i64 = mi?.trim().parse().ok()?;
    (ma >= 0 && mi >= 0).then_some((ma as u32, mi as u32))
}

/// Parses `lvm fullreport --reportformat json` output (the columns above) into one
/// report per volume group. Internal LVs (`[name]`) are left out.
pub fn parse_fullreport(text: &str) -> SysResult<Vec<VgReport>> {
    let top = top_object(text)?;
    let mut out = Vec::new();
    for (k, v) in top {
        let (true, Json::Arr(reports)) = (k == "report", v) else {
            continue;
        };
        for rep in reports {
            let doc = format!("{{\"report\":[{}]}}", to_text(&rep));
            let g = |n: &str| report_rows(&doc, n);
            let vgs = g("vg")?;
            let Some(v) = vgs.first() else { continue };
            let f = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
            let vg = Vg {
                name: f(v, "vg_name"),
                uuid: nodash(&f(v, "vg_uuid")),
                system_id: f(v, "vg_systemid"),
                tags: f(v, "vg_tags")
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
                attr: f(v, "vg_attr"),
                lock_type: f(v, "vg_lock_type"),
                autoactivation: f(v, "vg_autoactivation") == "enabled",
                missing_pvs: f(v, "vg_missing_pv_count").trim().parse().unwrap_or(0),
            };
            let lvs = g("lv")?
                .iter()
                .filter(|m| !f(m, "lv_name").starts_with('['))
                .map(|m| Lv {
                    name: f(m, "lv_name"),
                    uuid: nodash(&f(m, "lv_uuid")),
                    attr: f(m, "lv_attr"),
                    active: f(m, "lv_active") == "active",
                    kernel: majmin(m.get("lv_kernel_major"), m.get("lv_kernel_minor")),
                    origin: f(m, "origin"),
                })
                .collect();
            let pvs = g("pv")?
                .iter()
                .map(|m| Pv {
                    name: f(m, "pv_name"),
                    uuid: nodash(&f(m, "pv_uuid")),
                    missing: f(m, "pv_missing") == "missing" || f(m, "pv_name") == "[unknown]",
                    dev: majmin(m.get("pv_major"), m.get("pv_minor")),
                })
                .collect();
            out.push(VgReport { vg, lvs, pvs });
        }
    }
    Ok(out)
}

fn to_text(j: &Json) -> String {
    match j {
        Json::Str(s) => {
            let mut o = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    '\n' => o.push_str("\\n"),
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        }
        Json::Arr(a) => format!("[{}]", a.iter().map(to_text).collect::<Vec<_>>().join(",")),
        Json::Obj(f) => format!(
            "{{{}}}",
            f.iter()
                .map(|(k, v)| format!("{}:{}", to_text(&Json::Str(k.clone())), to_text(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// `lvm systemid` output: "  system ID: n1" (empty when none is configured).
pub fn parse_systemid(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("system ID:"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------- configuration overrides

/// Settings passed to one LVM command with `--config`, on top of lvm.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `activation/volume_list`: only these VGs/`@tags` may be activated.
    pub volume_list: Option<Vec<String>>,
    /// `local/extra_system_ids`: foreign system IDs this command may access (a takeover).
    pub extra_system_ids: Vec<String>,
    /// `global/system_id_source = "uname"` when lvm.conf configures no system ID source.
    pub system_id_uname: bool,
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(",")
}

impl Overrides {
    /// The `--config` text. Hints are off for every command: a DRBD role change behind
    /// LVM's back makes the hint file wrong.
    pub fn render(&self) -> String {
        let mut s = String::from("devices{hints=\"none\"}");
        if let Some(list) = &self.volume_list {
            let _ = write!(s, " activation{{volume_list=[{}]}}", quoted_list(list));
        }
        if self.system_id_uname || !self.extra_system_ids.is_empty() {
            if self.system_id_uname {
                s.push_str(" global{system_id_source=\"uname\"}");
            }
            if !self.extra_system_ids.is_empty() {
                let _ = write!(
                    s,
                    " local{{extra_system_ids=[{}]}}",
                    quoted_list(&self.extra_system_ids)
                );
            }
        }
        s
    }
}

// ---------------------------------------------------------------- changes

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `-ay`: local activation (system_id and tagging make it exclusive).
    Local,
    /// `-aey` through lvmlockd.
    Exclusive,
    /// `-asy` through lvmlockd.
    Shared,
}

/// LVM's `--activationmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    Complete,
    Degraded,
    Partial,
}

impl Completeness {
    fn arg(self) -> &'static str {
        match self {
            Completeness::Complete => "complete",
            Completeness::Degraded => "degraded",
            Completeness::Partial => "partial",
        }
    }
}

/// One change to a volume group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Activate {
        vg: String,
        lv: Option<String>,
        how: Activation,
        mode: Completeness,
    },
    Deactivate {
        vg: String,
        lv: Option<String>,
    },
    AddTag {
        vg: String,
        tag: String,
    },
    DelTag {
        vg: String,
        tag: String,
    },
    /// `vgchange -y --systemid ID` (empty: remove the system ID).
    SetSystemId {
        vg: String,
        id: String,
    },
    SetAutoactivation {
        vg: String,
        on: bool,
    },
    LockStart {
        vg: String,
    },
    LockStop {
        vg: String,
    },
    /// `lvcreate -s -n NAME -l SIZE VG/ORIGIN` (SIZE like `100%FREE` or `-L 1G`).
    Snapshot {
        vg: String,
        origin: String,
        name: String,
        size: String,
    },
    Remove {
        vg: String,
        lv: String,
    },
}

impl Change {
    /// The argument vector after `lvm` and before `--config`.
    pub fn argv(&self) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let target = |vg: &str, lv: &Option<String>| match lv {
            Some(l) => format!("{vg}/{l}"),
            None => vg.to_string(),
        };
        match self {
            Change::Activate { vg, lv, how, mode } => {
                let tool = if lv.is_some() { "lvchange" } else { "vgchange" };
                let a = match how {
                    Activation::Local => "-ay",
                    Activation::Exclusive => "-aey",
                    Activation::Shared => "-asy",
                };
                let mut v = s(&[tool, a, "--activationmode", mode.arg()]);
                v.push(target(vg, lv));
                v
            }
            Change::Deactivate { vg, lv } => {
                let tool = if lv.is_some() { "lvchange" } else { "vgchange" };
                let mut v = s(&[tool, "-an"]);
                v.push(target(vg, lv));
                v
            }
            Change::AddTag { vg, tag } => s(&["vgchange", "--addtag", tag, vg]),
            Change::DelTag { vg, tag } => s(&["vgchange", "--deltag", tag, vg]),
            Change::SetSystemId { vg, id } => s(&["vgchange", "-y", "--systemid", id, vg]),
            Change::SetAutoactivation { vg, on } => s(&[
                "vgchange",
                "--setautoactivation",
                if *on { "y" } else { "n" },
                vg,
            ]),
            Change::LockStart { vg } => s(&["vgchange", "--lockstart", vg]),
            Change::LockStop { vg } => s(&["vgchange", "--lockstop", vg]),
            Change::Snapshot {
                vg,
                origin,
                name,
                size,
            } => {
                let mut v = s(&["lvcreate", "-y", "-s", "-n", name]);
                if size.contains('%') {
                    v.push("-l".into());
                } else {
                    v.push("-L".into());
                }
                v.push(size.clone());
                v.push(format!("{vg}/{origin}"));
                v
            }
            Change::Remove { vg, lv } => s(&["lvremove", "-y", &format!("{vg}/{lv}")]),
        }
    }

    /// The command line as it is run, for logs and tests.
    pub fn display(&self, ov: &Overrides) -> String {
        format!("lvm {} --config '{}'", self.argv().join(" "), ov.render())
    }
}

/// How a change went. The text is for exit reasons only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changed {
    Done,
    Failed(String),
}

// ---------------------------------------------------------------- device-mapper from sysfs

/// One device-mapper device as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmDev {
    /// `dm-3`
    pub kname: String,
    pub name: String,
    pub uuid: String,
    pub suspended: bool,
    /// Kernel names of the devices below (`drbd0`, `dm-1`).
    pub slaves: Vec<String>,
    /// Kernel names of the devices stacked on this one.
    pub holders: Vec<String>,
    pub dev: (u32, u32),
}

/// `LVM-<vg uuid>` then the LV uuid, both without dashes; a suffix (`-real`, `-cow`)
/// marks LVM's internal layers.
pub fn lv_dm_uuid(vg_uuid: &str, lv_uuid: &str) -> String {
    format!("LVM-{vg_uuid}{lv_uuid}")
}

/// device-mapper's name for an LV: dashes doubled, then `vg-lv`.
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// Whether a dm name belongs to volume group `vg` (decoding the doubled dashes).
pub fn dm_name_in_vg(name: &str, vg: &str) -> bool {
    let prefix = format!("{}-", vg.replace('-', "--"));
    name.strip_prefix(&prefix)
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('-'))
}

fn read_trim(p: &Path) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

fn list_dir(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Reads every dm device below `sys_block` (normally `/sys/block`).
pub fn read_dm(sys_block: &Path) -> SysResult<Vec<DmDev>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(sys_block)
        .map_err(|e| SysError::io(format!("reading {}", sys_block.display()), e))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("dm-"))
        .collect();
    names.sort();
    for kname in names {
        let d = sys_block.join(&kname);
        // A device removed between the listing and the reads is simply gone.
        let (Some(name), Some(uuid)) =
            (read_trim(&d.join("dm/name")), read_trim(&d.join("dm/uuid")))
        else {
            continue;
        };
        let dev = read_trim(&d.join("dev"))
            .and_then(|s| {
                let (a, b) = s.split_once(':')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .unwrap_or((0, 0));
        out.push(DmDev {
            suspended: read_trim(&d.join("dm/suspended")).as_deref() == Some("1"),
            slaves: list_dir(&d.join("slaves")),
            holders: list_dir(&d.join("holders")),
            kname,
            name,
            uuid,
            dev,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- lvm.conf advice

/// One deviation of the effective LVM configuration from the book's advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    pub key: &'static str,
    pub found: String,
    pub advice: &'static str,
}

/// Checks `lvmconfig --type full` output (the keys below) against the book's advice:
/// a filter that accepts only sd* and drbd* devices and rejects the rest, no persistent
/// device cache, no lvmetad.
pub fn check_config(text: &str) -> Vec<Deviation> {
    let get = |key: &str| -> Option<String> {
        text.lines().find_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let mut out = Vec::new();
    match get("filter") {
        None => out.push(Deviation {
            key: "devices/filter",
            found: "not set (every device is scanned)".into(),
            advice: "accept only the PV devices (sd*, drbd*) and reject the rest, e.g. [ \"a|^/dev/sd.*|\", \"a|^/dev/drbd.*|\", \"r|.*|\" ], so LVM never sees the backing device of DRBD",
        }),
        Some(f) => {
            let items: Vec<&str> = f
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|s| s.trim().trim_matches('"'))
                .filter(|s| !s.is_empty())
                .collect();
            let accepts_drbd = items.iter().any(|i| i.starts_with('a') && i.contains("drbd"));
            let rejects_rest = items.last().is_some_and(|i| {
                i.starts_with('r') && (i.contains(".*") || i.contains("/.*"))
            });
            let accepts_all = items
                .iter()
                .any(|i| i.starts_with('a') && (i[1..].trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '*') == ".*"));
            if !accepts_drbd || !rejects_rest || accepts_all {
                out.push(Deviation {
                    key: "devices/filter",
                    found: f.clone(),
                    advice: "accept only the PV devices (sd*, drbd*) and end with \"r|.*|\", so LVM never sees the backing device of DRBD",
                });
            }
        }
    }
    if let Some(v) = get("write_cache_state").filter(|v| v != "0") {
        out.push(Deviation {
            key: "devices/write_cache_state",
            found: v,
            advice: "0: a persistent device cache goes stale when DRBD changes roles",
        });
    }
    if let Some(v) = get("use_lvmetad").filter(|v| v != "0") {
        out.push(Deviation {
            key: "global/use_lvmetad",
            found: v,
            advice: "0: lvmetad caches metadata that changes on the other node",
        });
    }
    out
}

// ---------------------------------------------------------------- the trait

/// What the `lvm` agent and `pgstack lvm` need from the system.
pub trait Lvm {
    /// The VG called `vg` with its LVs and PVs, or `None` when no visible device carries
    /// it (`--foreign` included, so a VG owned elsewhere is seen).
    fn report(&self, vg: &str, ov: &Overrides, deadline: Instant) -> SysResult<Option<VgReport>>;
    fn change(&self, c: &Change, ov: &Overrides, deadline: Instant) -> SysResult<Changed>;
    /// This host's LVM system ID under `ov` (`None` when no source is configured).
    fn system_id(&self, ov: &Overrides, deadline: Instant) -> SysResult<Option<String>>;
    /// Whether the `lvm` tool is on the fixed PATH.
    fn installed(&self) -> bool;
    /// The device number of a block device node.
    fn dev_of(&self, p: &Path) -> Option<(u32, u32)>;
    /// Every device-mapper device (sysfs, no LVM command).
    fn dm(&self) -> SysResult<Vec<DmDev>>;
    /// Mount points of a block device (from mountinfo).
    fn mounts_of(&self, dev: (u32, u32)) -> Vec<PathBuf>;
    /// Whether a block device exists (`/sys/dev/block/MAJ:MIN`).
    fn block_exists(&self, dev: (u32, u32)) -> bool;
    /// O_DIRECT reads of the first block of each device, within the deadline.
    fn read_direct(&self, devs: &[PathBuf], deadline: Instant) -> Result<(), String>;
    /// The nodes that are members of the cluster now, `None` when no cluster answers.
    fn members(&self, deadline: Instant) -> Option<Vec<String>>;
    /// The name of this node in the cluster (uname when no cluster answers).
    fn node_name(&self, deadline: Instant) -> String;
    /// The file system on a block device, from its superblock (`xfs`, `ext4`), if known.
    fn fs_type(&self, dev: &Path) -> Option<&'static str>;
    /// Mounts a logical volume ([`super::mount::mount`]).
    fn mount(&self, m: &super::mount::MountSpec, deadline: Instant) -> SysResult<()>;
    /// The record of a start (what was activated), kept in /run until stop.
    fn load_record(&self, vg: &str) -> Option<Record>;
    fn save_record(&self, r: &Record) -> SysResult<()>;
    fn drop_record(&self, vg: &str);
}

/// What start activated: the VG, its LVs and the PVs below them. Monitor compares the
/// device-mapper state against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub vg: String,
    pub vg_uuid: String,
    /// (name, uuid)
    pub lvs: Vec<(String, String)>,
    /// (path, dev)
    pub pvs: Vec<(String, (u32, u32))>,
}

impl Record {
    pub fn to_text(&self) -> String {
        let mut s = format!("vg {} {}\n", self.vg, self.vg_uuid);
        for (n, u) in &self.lvs {
            let _ = writeln!(s, "lv {n} {u}");
        }
        for (p, (a, b)) in &self.pvs {
            let _ = writeln!(s, "pv {a}:{b} {p}");
        }
        s
    }
    pub fn parse(text: &str) -> Option<Record> {
        let mut r = Record {
            vg: String::new(),
            vg_uuid: String::new(),
            lvs: Vec::new(),
            pvs: Vec::new(),
        };
        for l in text.lines() {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["vg", n, u] => {
                    r.vg = n.to_string();
                    r.vg_uuid = u.to_string();
                }
                ["lv", n, u] => r.lvs.push((n.to_string(), u.to_string())),
                ["pv", d, p] => {
                    let (a, b) = d.split_once(':')?;
                    r.pvs
                        .push((p.to_string(), (a.parse().ok()?, b.parse().ok()?)));
                }
                _ => {}
            }
        }
        (!r.vg.is_empty() && !r.vg_uuid.is_empty()).then_some(r)
    }
}

/// The real system.
#[derive(Debug, Clone)]
pub struct RealLvm {
    pub sys_block: PathBuf,
    pub record_dir: PathBuf,
}

impl Default for RealLvm {
    fn default() -> Self {
        RealLvm {
            sys_block: PathBuf::from("/sys/block"),
            record_dir: PathBuf::from("/run/pgstack/lvm"),
        }
    }
}

fn lvm_cmd(args: &[String], ov: &Overrides) -> Cmd {
    Cmd::new("lvm")
        .args(args)
        .arg("--config")
        .arg(ov.render())
        // No udev in these clusters' guests and no need for it: LVM creates the nodes.
        .env("DM_DISABLE_UDEV", "1")
}

fn spawn_err(e: super::runner::SpawnError) -> SysError {
    SysError::from(e)
}

impl Lvm for RealLvm {
    fn report(&self, vg: &str, ov: &Overrides, deadline: Instant) -> SysResult<Option<VgReport>> {
        let cols = format!(
            "report{{vgs_cols_full=\"{VG_COLS}\" lvs_cols_full=\"{LV_COLS}\" pvs_cols_full=\"{PV_COLS}\" segs_cols_full=\"lv_uuid\" pvsegs_cols_full=\"pv_uuid\"}}"
        );
        let mut ov_text = ov.render();
        ov_text.push(' ');
        ov_text.push_str(&cols);
        // All VGs, then pick ours: a missing VG is then an answer, not an exit code.
        let cmd = Cmd::new("lvm")
            .args([
                "fullreport",
                "--foreign",
                "--reportformat",
                "json",
                "--config",
            ])
            .arg(ov_text)
            .env("DM_DISABLE_UDEV", "1");
        let out = run(&cmd, deadline).map_err(spawn_err)?;
        match &out {
            Outcome::Exited {
                code: 0, stdout, ..
            } => {
                let text = String::from_utf8_lossy(stdout);
                Ok(parse_fullreport(&text)?
                    .into_iter()
                    .find(|r| r.vg.name == vg))
            }
            Outcome::TimedOut { .. } => Err(SysError::Timeout {
                what: "lvm fullreport".into(),
            }),
            _ => Err(SysError::Invalid(format!(
                "lvm fullreport: {}",
                out.describe()
            ))),
        }
    }

    fn change(&self, c: &Change, ov: &Overrides, deadline: Instant) -> SysResult<Changed> {
        let out = run(&lvm_cmd(&c.argv(), ov), deadline).map_err(spawn_err)?;
        Ok(match &out {
            Outcome::Exited { code: 0, .. } => Changed::Done,
            Outcome::TimedOut { .. } => {
                return Err(SysError::Timeout {
                    what: format!("lvm {}", c.argv().join(" ")),
                })
            }
            _ => Changed::Failed(format!("lvm {}: {}", c.argv().join(" "), out.describe())),
        })
    }

    fn system_id(&self, ov: &Overrides, deadline: Instant) -> SysResult<Option<String>> {
        let out = run(&lvm_cmd(&["systemid".to_string()], ov), deadline).map_err(spawn_err)?;
        if !out.success() {
            return Err(SysError::Invalid(format!(
                "lvm systemid: {}",
                out.describe()
            )));
        }
        Ok(parse_systemid(&out.stdout_str()))
    }

    fn installed(&self) -> bool {
        super::runner::FIXED_PATH
            .split(':')
            .any(|d| Path::new(d).join("lvm").exists())
    }

    fn dev_of(&self, p: &Path) -> Option<(u32, u32)> {
        match super::mount::block_device(p) {
            Ok(super::mount::DevKind::Block(b)) => Some((b.major, b.minor)),
            _ => None,
        }
    }

    fn dm(&self) -> SysResult<Vec<DmDev>> {
        read_dm(&self.sys_block)
    }

    fn mounts_of(&self, dev: (u32, u32)) -> Vec<PathBuf> {
        super::mount::mountinfo(None)
            .map(|t| {
                t.iter()
                    .filter(|m| m.dev() == dev)
                    .map(|m| m.mount_point.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn block_exists(&self, dev: (u32, u32)) -> bool {
        Path::new(&format!("/sys/dev/block/{}:{}", dev.0, dev.1)).exists()
    }

    fn read_direct(&self, devs: &[PathBuf], deadline: Instant) -> Result<(), String> {
        let ops: Vec<Op> = devs.iter().cloned().map(Op::ReadDevice).collect();
        blockio::probe(&ops, deadline).map_err(|e| e.to_string())
    }

    fn members(&self, deadline: Instant) -> Option<Vec<String>> {
        let out = run(&Cmd::new("crm_node").arg("-l"), deadline).ok()?;
        if !out.success() {
            return None;
        }
        Some(parse_crm_node_list(&out.stdout_str()))
    }

    fn node_name(&self, deadline: Instant) -> String {
        super::cib::CibTool::default().local_node(deadline)
    }

    fn fs_type(&self, dev: &Path) -> Option<&'static str> {
        use std::io::Read;
        let mut buf = vec![0u8; 2048];
        let mut f = std::fs::File::open(dev).ok()?;
        f.read_exact(&mut buf).ok()?;
        fs_magic(&buf)
    }

    fn mount(&self, m: &super::mount::MountSpec, deadline: Instant) -> SysResult<()> {
        super::mount::mount(m, deadline)
    }

    fn load_record(&self, vg: &str) -> Option<Record> {
        let t = std::fs::read_to_string(self.record_dir.join(format!("{vg}.state"))).ok()?;
        Record::parse(&t).filter(|r| r.vg == vg)
    }

    fn save_record(&self, r: &Record) -> SysResult<()> {
        std::fs::create_dir_all(&self.record_dir)
            .map_err(|e| SysError::io(format!("creating {}", self.record_dir.display()), e))?;
        let p = self.record_dir.join(format!("{}.state", r.vg));
        let tmp = self.record_dir.join(format!(".{}.state.tmp", r.vg));
        std::fs::write(&tmp, r.to_text())
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(|e| SysError::io(format!("writing {}", p.display()), e))
    }

    fn drop_record(&self, vg: &str) {
        let _ = std::fs::remove_file(self.record_dir.join(format!("{vg}.state")));
    }
}

/// The file system whose magic the first 2 KiB of a device carry.
pub fn fs_magic(buf: &[u8]) -> Option<&'static str> {
    if buf.starts_with(b"XFSB") {
        return Some("xfs");
    }
    if buf.len() >= 1082 && buf[1080] == 0x53 && buf[1081] == 0xEF {
        return Some("ext4");
    }
    None
}

/// `crm_node -l`: "<id> <name> <state>" lines; members are those in state `member`.
pub fn parse_crm_node_list(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[2] == "member").then(|| w[1].to_string())
        })
        .collect()
}

/// Runs `lvmconfig --type full` for the keys [`check_config`] reads. `system_dir` is the
/// directory of the `lvm.conf` to read (`LVM_SYSTEM_DIR`); `None` reads the built-in one
/// (`/etc/lvm`).
pub fn effective_config(system_dir: Option<&Path>, deadline: Instant) -> SysResult<String> {
    let lvmconfig = |keys: &[&str]| {
        let cmd = Cmd::new("lvmconfig")
            .args(["--type", "full"])
            .args(keys)
            .env("DM_DISABLE_UDEV", "1");
        match system_dir {
            Some(d) => cmd.env("LVM_SYSTEM_DIR", d),
            None => cmd,
        }
    };
    let out = run(
        &lvmconfig(&[
            "devices/filter",
            "devices/global_filter",
            "devices/write_cache_state",
            "global/use_lvmetad",
        ]),
        deadline,
    )
    .map_err(spawn_err)?;
    // Keys a version does not know make lvmconfig fail; ask again without them.
    if out.success() {
        return Ok(out.stdout_str());
    }
    let out2 = run(
        &lvmconfig(&["devices/filter", "devices/global_filter"]),
        deadline,
    )
    .map_err(spawn_err)?;
    if out2.success() {
        Ok(out2.stdout_str())
    } else {
        let conf = system_dir.unwrap_or(Path::new("/etc/lvm")).join("lvm.conf");
        Err(SysError::Invalid(format!(
            "lvmconfig reading {}: {}",
            conf.display(),
            out2.describe()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["vgpg", "VG_POSTGRES", "a-b", "x.y+z"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "", "-a", "..", "a b", "a;b", "$(id)", "a/b", "a\"b", "a'b", "a|b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_tag("pacemaker:n1"));
        assert!(!valid_tag("a b") && !valid_tag("a\"b") && !valid_tag(""));
    }

    #[test]
    fn dm_names_decode_doubled_dashes() {
        assert_eq!(dm_name("vg-a", "lv-b"), "vg--a-lv--b");
        assert!(dm_name_in_vg("vg--a-lv--b", "vg-a"));
        assert!(!dm_name_in_vg("vg--a-lv--b", "vg"));
        assert!(dm_name_in_vg("vg-a--b", "vg"));
        assert!(!dm_name_in_vg("vgpg-data", "vg"));
        assert!(dm_name_in_vg("vgpg-data", "vgpg"));
    }

    #[test]
    fn overrides_render() {
        assert_eq!(Overrides::default().render(), "devices{hints=\"none\"}");
        let o = Overrides {
            volume_list: Some(vec!["@pacemaker:n1".into()]),
            extra_system_ids: vec!["n2".into()],
            system_id_uname: true,
        };
        assert_eq!(
            o.render(),
            "devices{hints=\"none\"} activation{volume_list=[\"@pacemaker:n1\"]} global{system_id_source=\"uname\"} local{extra_system_ids=[\"n2\"]}"
        );
    }

    #[test]
    fn change_argv() {
        let a = Change::Activate {
            vg: "vgpg".into(),
            lv: None,
            how: Activation::Local,
            mode: Completeness::Complete,
        };
        assert_eq!(
            a.argv(),
            ["vgchange", "-ay", "--activationmode", "complete", "vgpg"]
        );
        let s = Change::Snapshot {
            vg: "vgpg".into(),
            origin: "data".into(),
            name: "snap".into(),
            size: "100%FREE".into(),
        };
        assert_eq!(
            s.argv(),
            [
                "lvcreate",
                "-y",
                "-s",
                "-n",
                "snap",
                "-l",
                "100%FREE",
                "vgpg/data"
            ]
        );
        assert_eq!(
            Change::SetSystemId {
                vg: "v".into(),
                id: String::new()
            }
            .argv(),
            ["vgchange", "-y", "--systemid", "", "v"]
        );
    }

    #[test]
    fn json_reader_handles_escapes_and_noise() {
        let rows = report_rows(
            r#"{"report":[{"vg":[{"vg_name":"a\"b","n":"x\\y\u0041"}]}], "log":[]}"#,
            "vg",
        )
        .unwrap();
        assert_eq!(rows[0]["vg_name"], "a\"b");
        assert_eq!(rows[0]["n"], "x\\yA");
        assert!(report_rows("{\"report\":[", "vg").is_err());
        assert!(report_rows("", "vg").is_err());
    }

    #[test]
    fn fullreport_fixture() {
        let r = parse_fullreport(&crate::fixture("lvm/fullreport-active.json")).unwrap();
        let pg = r.iter().find(|r| r.vg.name == "vgpg").unwrap();
        assert_eq!(pg.vg.uuid.len(), 32);
        assert!(!pg.vg.partial() && !pg.vg.shared());
        assert!(pg.vg.autoactivation);
        let names: Vec<&str> = pg.lvs.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["data", "wal"]);
        assert!(pg.lvs.iter().all(|l| l.active && l.kernel.is_some()));
        assert_eq!(pg.pvs.len(), 1);
        assert_eq!(pg.pvs[0].name, "/dev/drbd0");
        assert_eq!(pg.pvs[0].dev, Some((147, 0)));
        assert!(!pg.pvs[0].missing);
    }

    #[test]
    fn fullreport_fixture_owned_and_inactive() {
        let r = parse_fullreport(&crate::fixture("lvm/fullreport-tagged-inactive.json")).unwrap();
        let pg = r.iter().find(|r| r.vg.name == "vgpg").unwrap();
        assert!(pg.vg.tags.iter().any(|t| t == "pacemaker:n1"));
        assert!(!pg.vg.autoactivation);
        assert!(pg.lvs.iter().all(|l| !l.active && l.kernel.is_none()));
        let r = parse_fullreport(&crate::fixture("lvm/fullreport-foreign-systemid.json")).unwrap();
        assert_eq!(
            r.iter().find(|r| r.vg.name == "vgpg").unwrap().vg.system_id,
            "n2"
        );
        // A DRBD Secondary: the VG on it is not visible at all.
        let r = parse_fullreport(&crate::fixture("lvm/fullreport-drbd-secondary.json")).unwrap();
        assert!(r.iter().all(|r| r.vg.name != "vgpg"));
        assert_eq!(
            parse_systemid(&crate::fixture("lvm/systemid-uname.txt")),
            Some("n1".into())
        );
        assert_eq!(
            parse_systemid(&crate::fixture("lvm/systemid-none.txt")),
            None
        );
        assert!(check_config(&crate::fixture("lvm/lvmconfig-guest.txt")).is_empty());
    }

    #[test]
    fn systemid_and_members() {
        assert_eq!(parse_systemid("  system ID: n1\n"), Some("n1".into()));
        assert_eq!(parse_systemid("  system ID: \n"), None);
        assert_eq!(
            parse_crm_node_list("1 n1 member\n2 n2 lost\n"),
            vec!["n1".to_string()]
        );
    }

    #[test]
    fn superblock_magic() {
        let mut b = vec![0u8; 2048];
        assert_eq!(fs_magic(&b), None);
        b[1080] = 0x53;
        b[1081] = 0xEF;
        assert_eq!(fs_magic(&b), Some("ext4"));
        b[..4].copy_from_slice(b"XFSB");
        assert_eq!(fs_magic(&b), Some("xfs"));
    }

    #[test]
    fn record_round_trip() {
        let r = Record {
            vg: "vgpg".into(),
            vg_uuid: "U".repeat(32),
            lvs: vec![("data".into(), "L".repeat(32))],
            pvs: vec![("/dev/drbd0".into(), (147, 0))],
        };
        assert_eq!(Record::parse(&r.to_text()), Some(r));
        assert_eq!(Record::parse("garbage"), None);
    }

    #[test]
    fn sysfs_dm_fixture() {
        let root = std::env::temp_dir().join(format!("pgst-lvm-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let d = root.join("dm-1");
        std::fs::create_dir_all(d.join("dm")).unwrap();
        std::fs::create_dir_all(d.join("slaves/drbd0")).unwrap();
        std::fs::create_dir_all(d.join("holders")).unwrap();
        std::fs::write(d.join("dm/name"), "vgpg-data\n").unwrap();
        std::fs::write(d.join("dm/uuid"), "LVM-abc\n").unwrap();
        std::fs::write(d.join("dm/suspended"), "0\n").unwrap();
        std::fs::write(d.join("dev"), "254:1\n").unwrap();
        std::fs::create_dir_all(root.join("drbd0")).unwrap();
        let v = read_dm(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].name, "vgpg-data");
        assert_eq!(v[0].slaves, ["drbd0"]);
        assert_eq!(v[0].dev, (254, 1));
        assert!(!v[0].suspended);
    }

    #[test]
    fn config_advice() {
        let good =
            "filter=[\"a|^/dev/sd.*|\",\"a|^/dev/drbd.*|\",\"r|.*|\"]\nwrite_cache_state=0\n";
        assert!(check_config(good).is_empty(), "{:?}", check_config(good));
        let bad = check_config("filter=[\"a|.*|\"]\nwrite_cache_state=1\nuse_lvmetad=1\n");
        let keys: Vec<&str> = bad.iter().map(|d| d.key).collect();
        assert_eq!(
            keys,
            [
                "devices/filter",
                "devices/write_cache_state",
                "global/use_lvmetad"
            ]
        );
        assert_eq!(check_config("")[0].key, "devices/filter");
    }
}
