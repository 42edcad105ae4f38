//! Operator recoveries of a DRBD resource, run by hand on each node (`pgstack drbd
//! split-brain`, `pgstack drbd detach-node`): the book's split-brain recovery and its
//! "detach a problematic node". Each step is decided from the resource's state read
//! through `sys::drbd`; what happens is told to an [`Operator`], who also confirms the
//! destructive side before anything changes.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::sys::drbd::{check_resource_name, Disk, Drbd, Role, State};
use crate::sys::SysError;

/// The person at the terminal.
pub trait Operator {
    /// One line of progress.
    fn say(&mut self, line: &str);
    /// Whether to go on with the destructive side of a recovery of `res`.
    fn confirm(&mut self, res: &str) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The recovery does not apply to what this node shows (nothing was changed).
    #[error("{0}")]
    Refused(String),
    #[error("not confirmed; nothing changed")]
    NotConfirmed,
    #[error(transparent)]
    Sys(#[from] SysError),
}

fn refused(msg: String) -> RecoveryError {
    RecoveryError::Refused(msg)
}

/// One resource on this node, as the operator named it.
pub struct Target<'a> {
    pub drbd: &'a dyn Drbd,
    pub conf: &'a Path,
    pub res: &'a str,
    /// This node's name.
    pub me: &'a str,
}

/// Every drbdadm step and state read gets this long.
const STEP: Duration = Duration::from_secs(60);

impl Target<'_> {
    /// Checks the resource name (the one rule of `sys::drbd`).
    pub fn check(&self) -> Result<(), RecoveryError> {
        check_resource_name(self.res)
            .map_err(|why| refused(format!("--resource {:?} refused: {why}", self.res)))
    }

    fn state(&self) -> Result<Option<State>, RecoveryError> {
        Ok(self.drbd.state(self.res, Instant::now() + STEP)?)
    }

    fn up(&self) -> Result<State, RecoveryError> {
        self.state()?
            .ok_or_else(|| refused(format!("{} is not up on {}", self.res, self.me)))
    }

    fn adm(&self, op: &mut dyn Operator, args: &[&str]) -> Result<String, RecoveryError> {
        let out = self
            .drbd
            .adm(self.conf, args, self.res, Instant::now() + STEP)?;
        op.say(&format!("drbdadm {} {}: done", args.join(" "), self.res));
        Ok(out)
    }

    fn disconnect_unless_standalone(
        &self,
        op: &mut dyn Operator,
        st: &State,
    ) -> Result<(), RecoveryError> {
        if st.peers.iter().any(|p| p.connection != "StandAlone") {
            self.adm(op, &["disconnect"])?;
        }
        Ok(())
    }
}

/// The book's split-brain recovery. The victim drops its changes; the survivor reconnects
/// last, so the decision can be aborted until then. `vg`: a volume group on top of DRBD
/// to deactivate on the victim first.
pub fn split_brain(
    t: &Target,
    survivor: &str,
    vg: Option<&str>,
    op: &mut dyn Operator,
) -> Result<(), RecoveryError> {
    t.check()?;
    let st = t.up()?;
    if st.peers.iter().any(|p| p.connected()) {
        return Err(refused(format!(
            "{} is connected to its peer: there is no split brain to resolve here",
            t.res
        )));
    }
    if t.me == survivor {
        op.say(&format!("{} is the survivor: its data is kept", t.me));
        if st.peers.iter().any(|p| p.connection == "StandAlone") {
            t.adm(op, &["connect"])?;
        } else {
            op.say(&format!("{} is already waiting for its peer", t.res));
        }
        return Ok(());
    }
    op.say(&format!(
        "{} is the victim: every change made here since the split brain is discarded, \
         {survivor}'s data is kept",
        t.me
    ));
    if let Some(vg) = vg {
        if !valid_vg_name(vg) {
            return Err(refused(format!("--vg {vg:?} is not a volume group name")));
        }
    }
    if !op.confirm(t.res) {
        return Err(RecoveryError::NotConfirmed);
    }
    if let Some(vg) = vg {
        crate::sys::drbd::deactivate_vg(vg, Instant::now() + STEP)?;
        op.say(&format!("vgchange -a n {vg}: done"));
    }
    if st.role == Role::Primary {
        t.adm(op, &["secondary"])?;
    }
    t.disconnect_unless_standalone(op, &st)?;
    t.adm(op, &["connect", "--discard-my-data"])?;
    op.say(&format!(
        "now run on {survivor}: pgstack drbd split-brain --resource {} --survivor {survivor}",
        t.res
    ));
    Ok(())
}

fn valid_vg_name(vg: &str) -> bool {
    !vg.is_empty()
        && vg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-".contains(&b))
        && !vg.starts_with('-')
}

/// The book's "detach a problematic node": on the good node, cut the link and mark the
/// peer for a full resync; on the problem node, mark its own data invalid, or with
/// `destroy` take the resource down and wipe its DRBD metadata.
pub fn detach_node(
    t: &Target,
    good: &str,
    destroy: bool,
    op: &mut dyn Operator,
) -> Result<(), RecoveryError> {
    t.check()?;
    let st = t.state()?;
    let res = t.res;
    let me = t.me;
    if me == good {
        if destroy {
            return Err(refused(format!(
                "--destroy belongs on the problem node, not on {good}"
            )));
        }
        let st = st.ok_or_else(|| refused(format!("{res} is not up on {me}, the good node")))?;
        if st.disk != Disk::UpToDate {
            return Err(refused(format!(
                "{res} on {me} is {:?}, not UpToDate: it cannot be the good node",
                st.disk
            )));
        }
        t.disconnect_unless_standalone(op, &st)?;
        t.adm(op, &["invalidate-remote"])?;
        op.say(&format!(
            "{res}: the peer will be fully resynced from {me} when it reconnects \
             (drbdadm connect {res} on both)"
        ));
        return Ok(());
    }
    op.say(&format!(
        "{me} is the problem node: its copy of {res} will be {}",
        if destroy {
            "destroyed"
        } else {
            "overwritten by a full resync from the good node"
        }
    ));
    if !op.confirm(res) {
        return Err(RecoveryError::NotConfirmed);
    }
    if destroy {
        let lower = t
            .drbd
            .adm(t.conf, &["sh-ll-dev"], res, Instant::now() + STEP)
            .map_err(|e| refused(format!("cannot find the backing device of {res}: {e}")))?;
        let dev = lower.lines().next().unwrap_or("").trim().to_string();
        if !dev.starts_with("/dev/") {
            return Err(refused(format!(
                "cannot find the backing device of {res}: drbdadm sh-ll-dev printed {dev:?}"
            )));
        }
        if st.is_some() {
            t.adm(op, &["down"])?;
        }
        t.adm(op, &["--", "--force", "wipe-md"])?;
        crate::sys::drbd::zero_head(Path::new(&dev), 1 << 20)?;
        op.say(&format!(
            "{res}: metadata wiped and the first MiB of {dev} zeroed"
        ));
        return Ok(());
    }
    let st = st.ok_or_else(|| refused(format!("{res} is not up on {me}")))?;
    if st.role == Role::Primary {
        return Err(refused(format!(
            "{res} is Primary on {me}: demote it (or stop the cluster resource) first"
        )));
    }
    t.disconnect_unless_standalone(op, &st)?;
    t.adm(op, &["invalidate"])?;
    op.say(&format!(
        "{res}: local data marked invalid; it is resynced from {good} when both reconnect"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeDrbd;
    use super::*;
    use crate::sys::drbd::Refusal;

    #[derive(Default)]
    struct Script {
        said: Vec<String>,
        confirm: bool,
    }

    impl Operator for Script {
        fn say(&mut self, line: &str) {
            self.said.push(line.to_string());
        }
        fn confirm(&mut self, _res: &str) -> bool {
            self.confirm
        }
    }

    fn target<'a>(drbd: &'a FakeDrbd, me: &'a str) -> Target<'a> {
        Target {
            drbd,
            conf: Path::new("/etc/drbd.conf"),
            res: "r0",
            me,
        }
    }

    #[test]
    fn split_brain_steps() {
        // Connected: nothing to resolve, nothing run.
        let d = FakeDrbd::with_fixture("84-connected-primary.txt");
        let e = split_brain(&target(&d, "n2"), "n1", None, &mut Script::default());
        assert!(matches!(e, Err(RecoveryError::Refused(m)) if m.contains("no split brain")));
        assert!(d.runs().is_empty());
        // A cut-off Primary victim: refused without confirmation, then demoted,
        // disconnected and reconnected discarding its data.
        let d = FakeDrbd::with_fixture("84-primary-peer-down.txt");
        let e = split_brain(&target(&d, "n2"), "n1", Some("vg0"), &mut Script::default());
        assert!(matches!(e, Err(RecoveryError::NotConfirmed)));
        assert!(d.runs().is_empty());
        let e = split_brain(&target(&d, "n2"), "n1", Some("-vg"), &mut Script::default());
        assert!(matches!(e, Err(RecoveryError::Refused(m)) if m.contains("--vg")));
        let mut op = Script {
            confirm: true,
            ..Default::default()
        };
        split_brain(&target(&d, "n2"), "n1", None, &mut op).unwrap();
        assert_eq!(
            d.runs(),
            [
                "secondary r0",
                "disconnect r0",
                "connect --discard-my-data r0"
            ]
        );
        assert!(op.said.last().unwrap().contains("now run on n1"));
        // The survivor only waits (its peer is Connecting, not StandAlone).
        let d = FakeDrbd::with_fixture("84-primary-peer-down.txt");
        split_brain(&target(&d, "n1"), "n1", None, &mut Script::default()).unwrap();
        assert!(d.runs().is_empty());
        // `all` is not a resource.
        let t = Target {
            res: "all",
            ..target(&d, "n1")
        };
        assert!(split_brain(&t, "n1", None, &mut Script::default()).is_err());
    }

    #[test]
    fn detach_node_steps() {
        let yes = || Script {
            confirm: true,
            ..Default::default()
        };
        // On the good node: --destroy is refused, otherwise the peer is invalidated.
        let d = FakeDrbd::with_fixture("84-connected-primary.txt");
        assert!(detach_node(&target(&d, "n1"), "n1", true, &mut yes()).is_err());
        detach_node(&target(&d, "n1"), "n1", false, &mut yes()).unwrap();
        assert_eq!(d.runs(), ["disconnect r0", "invalidate-remote r0"]);
        // A Primary problem node is refused; a failed drbdadm step is an error.
        let d = FakeDrbd::with_fixture("84-connected-primary.txt");
        let e = detach_node(&target(&d, "n2"), "n1", false, &mut yes());
        assert!(matches!(e, Err(RecoveryError::Refused(m)) if m.contains("demote")));
        let d = FakeDrbd::with_fixture("84-connected-secondary.txt");
        d.answers.borrow_mut().push_back(Err(Refusal::Other));
        let e = detach_node(&target(&d, "n2"), "n1", false, &mut yes());
        assert!(matches!(e, Err(RecoveryError::Sys(SysError::Drbd(_)))));
        // --destroy needs a backing device under /dev.
        let d = FakeDrbd::with_fixture("84-connected-secondary.txt");
        d.answers.borrow_mut().push_back(Ok("vg0/lv0\n".into()));
        let e = detach_node(&target(&d, "n2"), "n1", true, &mut yes());
        assert!(matches!(e, Err(RecoveryError::Refused(m)) if m.contains("backing device")));
        assert_eq!(d.runs(), ["sh-ll-dev r0"]);
    }
}
