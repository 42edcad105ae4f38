//! A recording [`Drbd`] for unit tests: a fixed state, scripted drbdadm answers.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use crate::sys::drbd::{parse_events2, AdmError, Drbd, Module, Refusal, State};
use crate::sys::{SysError, SysResult};

#[derive(Default)]
pub struct FakeDrbd {
    pub state: RefCell<Option<State>>,
    /// Answers of the next drbdadm runs (default: success with no output).
    pub answers: RefCell<VecDeque<Result<String, Refusal>>>,
    /// Every drbdadm run: its arguments and the resource.
    pub runs: RefCell<Vec<String>>,
    /// `None`: no module.
    pub module: Option<Module>,
}

impl FakeDrbd {
    /// The state of `r0` from a captured `drbdsetup events2 --now` output.
    pub fn with_fixture(name: &str) -> FakeDrbd {
        let t = crate::fixture(&format!("drbdsetup_events2/{name}"));
        FakeDrbd {
            state: RefCell::new(parse_events2(&t, "r0")),
            ..Default::default()
        }
    }

    pub fn runs(&self) -> Vec<String> {
        self.runs.borrow().clone()
    }
}

impl Drbd for FakeDrbd {
    fn state(&self, _res: &str, _deadline: Instant) -> SysResult<Option<State>> {
        Ok(self.state.borrow().clone())
    }

    fn adm(&self, _conf: &Path, args: &[&str], res: &str, _deadline: Instant) -> SysResult<String> {
        let command = format!("{} {res}", args.join(" "));
        self.runs.borrow_mut().push(command.clone());
        let answer = self.answers.borrow_mut().pop_front();
        match answer {
            None => {
                if args == ["down"] {
                    *self.state.borrow_mut() = None;
                }
                Ok(String::new())
            }
            Some(Ok(out)) => Ok(out),
            Some(Err(refusal)) => Err(SysError::Drbd(AdmError {
                command: format!("drbdadm {command}"),
                refusal,
                detail: "exit 11".into(),
            })),
        }
    }

    fn module(&self, _deadline: Instant) -> SysResult<Module> {
        self.module.ok_or_else(|| SysError::ModuleMissing {
            module: "drbd".into(),
            detail: "fake".into(),
        })
    }

    fn check_defined(&self, _conf: &Path, _res: &str, _deadline: Instant) -> SysResult<()> {
        Ok(())
    }
}
