//! Harness of the `cib_*` tests: private temporary directories (`/tmp/pgst-cib-*`, removed
//! on drop), the installed binary's `cib` commands, Pacemaker's offline tools on files, and
//! a normal form of a CIB configuration to compare what crmsh, pcs and pgstack wrote.

use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{bin, run};

/// The directory of the installed alert shim `pgstack-alert` (override with PGSTACK_ALERT_DIR).
pub fn alert_dir() -> String {
    std::env::var("PGSTACK_ALERT_DIR").unwrap_or_else(|_| "/usr/lib/pgstack".into())
}

pub fn alert_path() -> String {
    format!("{}/pgstack-alert", alert_dir())
}

/// A private directory removed with its content on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = PathBuf::from(format!(
            "/tmp/pgst-cib-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn file(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The result of a command.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(self) -> Ran {
        assert_eq!(self.code, 0, "failed: {}\n{}", self.stdout, self.stderr);
        self
    }
}

pub fn run_env(argv: &[&str], env: &[(&str, &str)]) -> Ran {
    let out = run(argv, env, Duration::from_secs(240));
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// crmsh (`crm ARGS...`) on the CIB file `cib`, with a HOME and cache of its own under
/// `tmp`: crmsh creates `~/.cache/crm` at start without tolerating a concurrent creator,
/// so parallel tests sharing /root raced (FileExistsError).
pub fn crm(tmp: &TempDir, args: &[&str], cib: &str) -> Ran {
    let home = tmp.path("crm-home");
    let cache = home.join(".cache");
    std::fs::create_dir_all(cache.join("crm")).unwrap();
    let (home, cache) = (home.to_string_lossy(), cache.to_string_lossy());
    let mut argv = vec!["crm"];
    argv.extend_from_slice(args);
    run_env(
        &argv,
        &[
            ("CIB_file", cib),
            ("HOME", &home),
            ("XDG_CACHE_HOME", &cache),
        ],
    )
}

/// `pgstack ARGS...`; TMPDIR points into `tmp` so the binary's own work files stay there.
pub fn pgstack(tmp: &TempDir, args: &[&str]) -> Ran {
    let b = bin();
    let mut argv = vec![b.as_str()];
    argv.extend_from_slice(args);
    let t = tmp.file("");
    run_env(&argv, &[("TMPDIR", t.as_str())])
}

/// Renders a template into `dir/name` (extra args: --set, --no-fencing, --format, ...).
pub fn render(tmp: &TempDir, name: &str, template: &str, extra: &[&str]) -> PathBuf {
    let out = tmp.file(name);
    let mut args = vec![
        "cib",
        "render",
        "--template",
        template,
        "--out",
        out.as_str(),
    ];
    args.extend_from_slice(extra);
    pgstack(tmp, &args).ok();
    PathBuf::from(out)
}

/// Runs crm_verify on a file: (exit code, stderr).
pub fn crm_verify(file: &Path) -> (i32, String) {
    let f = file.to_string_lossy();
    let r = run_env(&["crm_verify", "--xml-file", &f, "-V"], &[]);
    (r.code, r.stderr)
}

/// The numbered actions under each heading of `pgstack cib simulate` output.
pub fn steps(out: &str) -> Vec<(String, Vec<String>)> {
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for l in out.lines() {
        if !l.starts_with(' ') && l.ends_with(':') {
            steps.push((l.trim_end_matches(':').to_string(), Vec::new()));
        } else if let Some((n, action)) = l.trim().split_once(". ") {
            if n.chars().all(|c| c.is_ascii_digit()) {
                steps
                    .last_mut()
                    .expect("a heading first")
                    .1
                    .push(action.to_string());
            }
        }
    }
    steps
}

/// The CIB of a freshly started two-node cluster (nodes known, nothing configured), as
/// `pcs cluster cib` or `cibadmin -Q` would give it.
pub fn fresh_cluster_cib() -> String {
    "<cib crm_feature_set=\"3.16.1\" validate-with=\"pacemaker-3.9\" epoch=\"1\" num_updates=\"0\" admin_epoch=\"0\">\
     <configuration><crm_config/><nodes><node id=\"1\" uname=\"pg1\"/><node id=\"2\" uname=\"pg2\"/></nodes>\
     <resources/><constraints/></configuration><status/></cib>\n"
        .to_string()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

fn start(e: &BytesStart) -> Node {
    let mut attrs: Vec<(String, String)> = e
        .attributes()
        .map(|a| {
            let a = a.unwrap();
            (
                a.key.as_ref().to_string(),
                a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                    .unwrap()
                    .into_owned(),
            )
        })
        .collect();
    attrs.sort();
    Node {
        name: e.name().as_ref().to_string(),
        attrs,
        children: Vec::new(),
    }
}

fn tree(xml: &str) -> Node {
    let mut r = Reader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        match r.read_event().unwrap() {
            Event::Start(e) => stack.push(start(&e)),
            Event::Empty(e) => {
                let n = start(&e);
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => return n,
                }
            }
            Event::End(_) => {
                let n = stack.pop().unwrap();
                match stack.last_mut() {
                    Some(p) => p.children.push(n),
                    None => return n,
                }
            }
            Event::Eof => panic!("no root element"),
            _ => {}
        }
    }
}

/// Elements whose `id` names something other elements refer to; other ids are generated
/// differently by each tool (nvpair, op, attribute sets, fencing levels, recipients) and
/// carry no meaning.
const MEANINGFUL_IDS: &[&str] = &[
    "primitive",
    "group",
    "clone",
    "rsc_location",
    "rsc_colocation",
    "rsc_order",
    "alert",
    "node",
];

/// Children whose order carries no meaning (sorted); elsewhere the order is kept
/// (resources and group members are placed and started in document order).
const UNORDERED: &[&str] = &[
    "configuration",
    "clone",
    "instance_attributes",
    "meta_attributes",
    "cluster_property_set",
    "operations",
    "fencing-topology",
    "nodes",
    "constraints",
    "primitive",
    "alert",
];

fn normal(mut n: Node) -> Node {
    if !MEANINGFUL_IDS.contains(&n.name.as_str()) {
        n.attrs.retain(|(k, _)| k != "id");
    }
    n.children = n.children.into_iter().map(normal).collect();
    // An empty section is the same as an absent one.
    n.children
        .retain(|c| !(c.children.is_empty() && c.attrs.is_empty() && n.name == "configuration"));
    if UNORDERED.contains(&n.name.as_str()) {
        n.children.sort();
    }
    n
}

fn print(n: &Node, depth: usize, out: &mut String) {
    out.push_str(&"  ".repeat(depth));
    out.push_str(&n.name);
    for (k, v) in &n.attrs {
        out.push_str(&format!(" {k}={v:?}"));
    }
    out.push('\n');
    for c in &n.children {
        print(c, depth + 1, out);
    }
}

/// The `<configuration>` of a CIB document in normal form, one element per line.
pub fn normal_configuration(xml: &str) -> String {
    let root = tree(xml);
    let conf = root
        .children
        .into_iter()
        .find(|c| c.name == "configuration")
        .expect("a <configuration>");
    let mut s = String::new();
    print(&normal(conf), 0, &mut s);
    s
}

/// Lines of `a` and `b` that differ, for an assertion message.
pub fn diff(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut d = String::new();
    for l in &la {
        if !lb.contains(l) {
            d.push_str(&format!("- {l}\n"));
        }
    }
    for l in &lb {
        if !la.contains(l) {
            d.push_str(&format!("+ {l}\n"));
        }
    }
    d
}
