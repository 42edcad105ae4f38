//! `pgstack alert`: the alert agent Pacemaker runs (through the installed `pgstack-alert`
//! shim) with the event in `CRM_alert_*` variables. See `crate::cib::alert`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use clap::Args;

use crate::cib::alert::{delivery, Delivery, Event};
use crate::sys::pacemaker as pcmk;

/// Pacemaker's default alert timeout is 30 s; stay below it.
const DEADLINE: Duration = Duration::from_secs(25);

#[derive(Args)]
pub struct AlertArgs {
    /// Print what would be delivered (the file line or the whole message) instead.
    #[arg(long)]
    print: bool,
}

pub fn run(a: AlertArgs, vars: BTreeMap<String, String>) -> Result<u8> {
    let event = Event::from_env(&vars)?;
    let how = delivery(&vars)?;
    let deadline = Instant::now() + DEADLINE;
    match how {
        Delivery::File(path) => {
            let line = event.file_line();
            if a.print {
                print!("{line}");
            } else {
                pcmk::append_to_file(&path, &line)
                    .with_context(|| format!("alert {}", event.summary()))?;
            }
        }
        Delivery::Mail { sendmail, to, from } => {
            let msg = event.mail(&to, from.as_deref(), SystemTime::now());
            if a.print {
                print!("{msg}");
            } else {
                pcmk::sendmail(&sendmail, &to, &msg, deadline)
                    .with_context(|| format!("alert {}", event.summary()))?;
            }
        }
    }
    Ok(0)
}
