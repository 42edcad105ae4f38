//! Every action runs against a deadline: Pacemaker's timeout minus a margin, so the agent
//! fails with its own exit reason before Pacemaker kills it.

use std::time::{Duration, Instant};

pub use crate::wait::Backoff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    start: Instant,
    end: Instant,
}

impl Deadline {
    /// A tenth of the timeout, at least 100 ms and at most 5 s, is kept back.
    pub fn margin(timeout: Duration) -> Duration {
        (timeout / 10).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }

    pub fn from_timeout(timeout: Duration) -> Deadline {
        let start = Instant::now();
        let budget = timeout.saturating_sub(Self::margin(timeout));
        Deadline {
            start,
            end: start + budget,
        }
    }

    pub fn instant(&self) -> Instant {
        self.end
    }

    pub fn remaining(&self) -> Duration {
        self.end.saturating_duration_since(Instant::now())
    }

    pub fn expired(&self) -> bool {
        Instant::now() >= self.end
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Calls `step` until it yields a value or the deadline passes (`Ok(None)`), with
    /// naps growing per `backoff`; see [`crate::wait::poll_until`].
    pub fn poll<T, E>(
        &self,
        backoff: Backoff,
        step: impl FnMut() -> Result<Option<T>, E>,
    ) -> Result<Option<T>, E> {
        crate::wait::poll_until(self.end, backoff, step)
    }

    /// This deadline, ending at most `max` from now.
    pub fn capped(&self, max: Duration) -> Deadline {
        Deadline {
            start: Instant::now(),
            end: self.end.min(Instant::now() + max),
        }
    }

    /// A sub-deadline ending after `fraction` of what remains (for escalation steps).
    pub fn share(&self, fraction: f64) -> Deadline {
        let f = fraction.clamp(0.0, 1.0);
        Deadline {
            start: Instant::now(),
            end: Instant::now() + self.remaining().mul_f64(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margins() {
        assert_eq!(
            Deadline::margin(Duration::from_secs(20)),
            Duration::from_secs(2)
        );
        assert_eq!(
            Deadline::margin(Duration::from_millis(500)),
            Duration::from_millis(100)
        );
        assert_eq!(
            Deadline::margin(Duration::from_secs(600)),
            Duration::from_secs(5)
        );
        let d = Deadline::from_timeout(Duration::from_secs(20));
        assert!(d.remaining() <= Duration::from_secs(18));
        assert!(d.remaining() > Duration::from_secs(17));
        let s = d.share(0.5);
        assert!(s.remaining() <= Duration::from_secs(9));
        assert!(!d.expired());
        assert!(Deadline::from_timeout(Duration::from_millis(50)).expired());
    }
}
