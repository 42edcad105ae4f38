//! `pgstack(8)` and the shell completions, generated from the clap definitions so that
//! they cannot drift from the commands (`pgstack docs` commits them, a unit test checks).

use clap_complete::Shell;

use crate::agents::{installed_names, AGENTS};
use crate::ocf::metadata::roff;

/// The completion scripts: (shell, file in docs/completion, where it goes below
/// `PREFIX/share`: bash-completion loads completions/<command> on first use).
pub static COMPLETIONS: &[(Shell, &str, &str)] = &[
    (
        Shell::Bash,
        "pgstack.bash",
        "bash-completion/completions/pgstack",
    ),
    (Shell::Zsh, "_pgstack", "zsh/vendor-completions/_pgstack"),
];

pub fn completion(shell: Shell) -> String {
    let mut cmd = super::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pgstack", &mut out);
    String::from_utf8(out).expect("clap_complete writes UTF-8")
}

fn render(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    f(&mut out).expect("rendering into memory");
    String::from_utf8(out).expect("clap_mangen writes UTF-8")
}

/// A section's text without the roff preamble every rendering starts with and without its
/// `.SH` line (the section becomes part of a subsection).
fn body(section: String) -> String {
    let mut sh_seen = false;
    let mut out = String::new();
    for l in section.lines() {
        if l.starts_with(".ie \\n(.g") || l.starts_with(".el .ds Aq") {
            continue;
        }
        if l.starts_with(".SH") && !sh_seen {
            sh_seen = true;
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Removes the section `name` (clap_mangen's SUBCOMMANDS names one page per command;
/// this page has them all under COMMANDS).
fn without_section(page: String, name: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for l in page.lines() {
        if l.starts_with(".SH") {
            skipping = l == format!(".SH {name}");
        }
        if !skipping {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    let subs: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if subs.is_empty() {
        out.push((path.to_string(), cmd.clone()));
    }
    for s in subs {
        leaves(s, &format!("{path} {}", s.get_name()), out);
    }
}

/// The `pgstack(8)` man page: the top level, then every command with its options.
pub fn man_page() -> String {
    let mut cmd = super::command();
    cmd.build();
    let top = clap_mangen::Man::new(cmd.clone())
        .title("PGSTACK")
        .section("8")
        .source(format!("pgstack {}", env!("CARGO_PKG_VERSION")))
        .manual("System Administration");
    let mut m = without_section(render(|w| top.render(w)), "SUBCOMMANDS");
    m.push_str(".SH COMMANDS\n");
    let mut all = Vec::new();
    for s in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        leaves(s, &format!("pgstack {}", s.get_name()), &mut all);
    }
    for (path, sub) in all {
        let man = clap_mangen::Man::new(sub.clone().bin_name(&path));
        m.push_str(&format!(".SS \"{path}\"\n"));
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            m.push_str(&format!("{}\n.PP\n", roff(&about.to_string())));
        }
        m.push_str(&body(render(|w| man.render_synopsis_section(w))));
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            m.push_str(".PP\n");
            m.push_str(&body(render(|w| man.render_options_section(w))));
        }
    }
    m.push_str(".SH AGENTS\nCalled through a link in \\fI/usr/lib/ocf/resource.d/pgstack/\\fR, the binary is the OCF agent named by the link. Agents and the reference type names they are also installed under:\n");
    for a in AGENTS {
        let aliases: Vec<&str> = installed_names()
            .into_iter()
            .filter(|(n, i)| i.name == a.name && *n != a.name)
            .map(|(n, _)| n)
            .collect();
        m.push_str(&format!(".TP\n\\fB{}\\fR", a.name));
        if !aliases.is_empty() {
            m.push_str(&format!(" (also {})", aliases.join(", ")));
        }
        m.push_str(&format!("\n{}\n", roff(a.shortdesc)));
    }
    m.push_str(".SH FILES\n.TP\n\\fI/etc/default/postgresql-ha\\fR\nsettings of the init script \\fBpostgresql-ha\\fR\n");
    let see: Vec<String> = AGENTS
        .iter()
        .map(|a| format!("\\fBocf_pgstack_{}\\fR(7)", a.name))
        .collect();
    m.push_str(&format!(
        ".SH SEE ALSO\n{}, \\fBcrm_resource\\fR(8), \\fBcibadmin\\fR(8)\n",
        see.join(", ")
    ));
    m
}
