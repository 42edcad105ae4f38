//! `pgstack migrate-cib`: the adapter over [`crate::cib::migrate_cib`]. Reads the CIB (a
//! file or the live cluster), rewrites the providers, prints the report, and writes the
//! result back unless `--dry-run`. Exit 0 when every candidate was switched, 1 when some
//! resource was kept on its agent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{ArgGroup, Args, ValueEnum};

use crate::cib::migrate_cib::{migrate, Target};
use crate::cib::xml;
use crate::sys::cib::CibTool;
use crate::sys::pacemaker::{read_file, write_file};

#[derive(Clone, Copy, ValueEnum)]
pub enum To {
    /// ocf:heartbeat / ocf:linbit -> ocf:pgstack (same type names).
    Pgstack,
    /// ocf:pgstack -> the reference agents.
    Heartbeat,
}

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["file", "live"])))]
pub struct MigrateCibArgs {
    /// Rewrite this CIB file (in place, unless --dry-run).
    #[arg(long)]
    file: Option<PathBuf>,
    /// Rewrite the live cluster's CIB (`cibadmin --replace`, refused if the CIB changed
    /// since it was read). Put the cluster in maintenance mode first: docs/migrating.md.
    #[arg(long)]
    live: bool,
    /// Which agents the resources move to.
    #[arg(long, value_enum, default_value = "pgstack")]
    to: To,
    /// Print the report and the rewritten CIB; change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(a: MigrateCibArgs) -> Result<u8> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let tool = CibTool { file: None };
    let target = match a.to {
        To::Pgstack => Target::Pgstack,
        To::Heartbeat => Target::Reference,
    };
    // A live CIB whose status changed between the query and the replace (a probe result,
    // say) is newer than the rewritten copy: the replace is refused and nothing changed.
    // The rewrite is then made again from a fresh query, a bounded number of times.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let text = match &a.file {
            Some(f) => read_file(f)?,
            None => tool.query(deadline).context("reading the live CIB")?,
        };
        let mut cib = xml::parse(&text).with_context(|| match &a.file {
            Some(f) => format!("parsing {}", f.display()),
            None => "parsing the live CIB".into(),
        })?;
        let report = migrate(&mut cib, target);
        let out = cib.to_xml();
        if a.dry_run || report.changes.is_empty() {
            print!("{}", report.text());
            if a.dry_run && !report.changes.is_empty() {
                println!("--- rewritten CIB (not written: --dry-run) ---");
                print!("{out}");
            }
            return Ok(code(&report));
        }
        match &a.file {
            Some(f) => write_file(f, &out)?,
            None => {
                if let Err(e) = tool.replace(&out, deadline) {
                    if attempt < 3 && Instant::now() < deadline {
                        eprintln!(
                            "pgstack: the live CIB changed while it was rewritten ({e}); again"
                        );
                        continue;
                    }
                    return Err(e).context(
                        "replacing the live CIB (cibadmin --replace); nothing was changed",
                    );
                }
            }
        }
        print!("{}", report.text());
        return Ok(code(&report));
    }
}

fn code(report: &crate::cib::migrate_cib::Report) -> u8 {
    if report.kept.is_empty() {
        0
    } else {
        1
    }
}
