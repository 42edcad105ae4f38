//! Bounded waiting: one polling loop for every "until it holds or the time is up" in the
//! crate. Naps start short (most conditions hold within milliseconds) and double up to a
//! cap; the last nap never runs past the end, and the condition is checked once more at
//! the end, so a caller never gives up on a state that arrived during the final nap.

#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// How the naps between two looks grow: from `first`, doubling, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn millis(first: u64, max: u64) -> Backoff {
        Backoff {
            first: Duration::from_millis(first),
            max: Duration::from_millis(max),
        }
    }
    /// Local state changes (a process exiting, an address leaving DAD): 2 ms up to 50 ms.
    pub const FAST: Backoff = Backoff::millis(2, 50);
    /// A fixed interval (a peer that answers at its own pace).
    pub const fn every(ms: u64) -> Backoff {
        Backoff::millis(ms, ms)
    }
}

/// Calls `step` until it yields a value or `until` passes. `Ok(None)`: the time was up
/// (`step` ran at least once, and last at or after `until`). An error from `step` ends
/// the wait at once.
pub fn poll_until<T, E>(
    until: Instant,
    backoff: Backoff,
    mut step: impl FnMut() -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    let mut nap = backoff.first;
    loop {
        if let Some(v) = step()? {
            return Ok(Some(v));
        }
        let now = Instant::now();
        if now >= until {
            return Ok(None);
        }
        std::thread::sleep(nap.min(until - now));
        nap = (nap * 2).min(backoff.max).max(backoff.first);
    }
}

/// [`poll_until`] for a condition that cannot fail: true when it held in time.
pub fn until(until: Instant, backoff: Backoff, mut done: impl FnMut() -> bool) -> bool {
    poll_until(until, backoff, || {
        Ok::<_, std::convert::Infallible>(done().then_some(()))
    })
    .unwrap_or(None)
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value_as_soon_as_it_exists() {
        let mut n = 0;
        let end = Instant::now() + Duration::from_secs(5);
        let t = Instant::now();
        let v = poll_until(end, Backoff::FAST, || {
            n += 1;
            Ok::<_, ()>((n == 3).then_some(n))
        });
        assert_eq!(v, Ok(Some(3)));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn gives_up_at_the_end_after_a_last_look() {
        let end = Instant::now() + Duration::from_millis(60);
        let mut looks = Vec::new();
        let v = poll_until(end, Backoff::millis(5, 40), || {
            looks.push(Instant::now());
            Ok::<Option<()>, ()>(None)
        });
        assert_eq!(v, Ok(None));
        assert!(*looks.last().unwrap() >= end, "no look at the end");
        assert!(Instant::now() < end + Duration::from_millis(30));
        assert!(looks.len() >= 3);
    }

    #[test]
    fn an_error_ends_the_wait() {
        let end = Instant::now() + Duration::from_secs(5);
        let v: Result<Option<()>, &str> = poll_until(end, Backoff::FAST, || Err("gone"));
        assert_eq!(v, Err("gone"));
        assert!(!until(Instant::now(), Backoff::FAST, || false));
        assert!(until(Instant::now(), Backoff::FAST, || true));
    }
}
