//! Rate limits and failure counters, on the injected clock: requests per key, failed key
//! secrets per address, sign-in attempts per address and per account.
//!
//! They are held in memory by each server: a restart starts them afresh. What they decide that
//! matters later (a lock-out) is recorded as an event.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use telltale_domain::span::Span;

/// How many requests a key may make: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

/// A generic cell rate limiter (GCRA): one "theoretical arrival time" per name.
///
/// Concurrent requests read the clock before they take the lock, so their instants may arrive a
/// little out of order; the limiter never lets time run backwards (an instant older than one it
/// has seen counts as that one), or a request that read the clock a moment earlier would find
/// the bucket "in the future" and be refused for nothing when the rate is high.
pub struct RateLimiter<K> {
    rate: Rate,
    tat: Mutex<Arrivals<K>>,
}

/// Each name's theoretical arrival time, and the latest instant seen.
type Arrivals<K> = (HashMap<K, DateTime<Utc>>, Option<DateTime<Utc>>);

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(rate: Rate) -> RateLimiter<K> {
        RateLimiter { rate, tat: Mutex::new((HashMap::new(), None)) }
    }

    fn emission(&self) -> TimeDelta {
        TimeDelta::nanoseconds((1e9 / self.rate.per_second.max(1e-9)).round().min(i64::MAX as f64) as i64)
    }

    /// Takes one request for `name` at `now`; refused with how long to wait when over the rate.
    pub fn take(&self, name: &K, now: DateTime<Utc>) -> Result<(), TimeDelta> {
        let emission = self.emission();
        let tolerance = emission * (self.rate.burst.clamp(1, 1_000_000_000) as i32 - 1);
        let mut guard = self.tat.lock().expect("rate limiter lock");
        let (tat, latest) = &mut *guard;
        let now = latest.map_or(now, |latest| latest.max(now));
        *latest = Some(now);
        if tat.len() > 100_000 {
            tat.retain(|_, t| *t > now);
        }
        let current = tat.get(name).copied().filter(|t| *t > now).unwrap_or(now);
        if current - now > tolerance {
            return Err(current - tolerance - now);
        }
        tat.insert(name.clone(), current + emission);
        Ok(())
    }
}

/// Counts failures per name in a sliding window; at `threshold` the name is locked for `lock`.
pub struct FailureCounter<K> {
    threshold: u32,
    window: TimeDelta,
    lock: TimeDelta,
    state: Mutex<HashMap<K, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

/// What one more failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Still under the threshold.
    Counted(u32),
    /// This failure reached the threshold: locked until then.
    LockedOut { failures: u32, until: DateTime<Utc> },
}

impl<K: Eq + Hash + Clone> FailureCounter<K> {
    pub fn new(threshold: u32, window: Span, lock: Span) -> FailureCounter<K> {
        FailureCounter {
            threshold: threshold.max(1),
            window: window.to_delta(),
            lock: lock.to_delta(),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Until when `name` is locked, if it is at `now`.
    pub fn locked_until(&self, name: &K, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let state = self.state.lock().expect("failure counter lock");
        state.get(name).and_then(|f| f.locked_until).filter(|until| *until > now)
    }

    pub fn fail(&self, name: &K, now: DateTime<Utc>) -> Counted {
        let mut state = self.state.lock().expect("failure counter lock");
        if state.len() > 100_000 {
            state.retain(|_, f| f.since + self.window > now || f.locked_until.is_some_and(|u| u > now));
        }
        let entry = state.entry(name.clone()).or_insert(Failures { count: 0, since: now, locked_until: None });
        if entry.since + self.window <= now || entry.locked_until.is_some_and(|u| u <= now) {
            *entry = Failures { count: 0, since: now, locked_until: None };
        }
        entry.count += 1;
        if entry.count >= self.threshold && entry.locked_until.is_none() {
            let until = now + self.lock;
            entry.locked_until = Some(until);
            return Counted::LockedOut { failures: entry.count, until };
        }
        Counted::Counted(entry.count)
    }

    /// A success forgets the failures of `name` (not a lock already in force).
    pub fn succeed(&self, name: &K) {
        let mut state = self.state.lock().expect("failure counter lock");
        if state.get(name).is_some_and(|f| f.locked_until.is_none()) {
            state.remove(name);
        }
    }
}

/// Seconds to put in `Retry-After`: whole seconds, at least one.
pub fn retry_after_secs(wait: TimeDelta) -> u64 {
    let ms = wait.num_milliseconds().max(0) as u64;
    ms.div_ceil(1000).max(1)
}

/// Every limit one server keeps.
pub struct Guards {
    /// Requests per API key.
    pub key_rate: RateLimiter<String>,
    /// Wrong secrets per (key id, address).
    pub key_failures: FailureCounter<(String, String)>,
    /// Sign-in attempts per address.
    pub signin_rate: RateLimiter<String>,
    /// Wrong passwords per account.
    pub signin_failures: FailureCounter<String>,
}

impl Guards {
    pub fn new(config: &crate::config::LimitsConfig) -> Guards {
        let per_minute = config.signin_attempts_per_minute;
        Guards {
            key_rate: RateLimiter::new(Rate { per_second: config.key_requests_per_second, burst: config.key_burst }),
            key_failures: FailureCounter::new(
                config.key_failures_before_lockout,
                config.key_lockout,
                config.key_lockout,
            ),
            signin_rate: RateLimiter::new(Rate { per_second: f64::from(per_minute) / 60.0, burst: per_minute }),
            signin_failures: FailureCounter::new(
                config.signin_failures_before_lockout,
                config.signin_lockout,
                config.signin_lockout,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + TimeDelta::milliseconds(ms)
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(Rate { per_second: 2.0, burst: 3 });
        for _ in 0..3 {
            assert_eq!(limiter.take(&"k", t(0)), Ok(()));
        }
        let wait = limiter.take(&"k", t(0)).unwrap_err();
        assert_eq!(wait, TimeDelta::milliseconds(500));
        assert_eq!(retry_after_secs(wait), 1);
        assert_eq!(limiter.take(&"other", t(0)), Ok(()), "per name");
        assert!(limiter.take(&"k", t(499)).is_err());
        assert_eq!(limiter.take(&"k", t(500)), Ok(()));
        assert_eq!(limiter.take(&"k", t(5000)), Ok(()));
    }

    #[test]
    fn instants_a_little_out_of_order_are_not_refused_at_a_high_rate() {
        let limiter = RateLimiter::new(Rate { per_second: 1e9, burst: 1_000_000 });
        for ms in [10, 3, 7, 1, 10, 2] {
            assert_eq!(limiter.take(&"k", t(ms)), Ok(()), "at {ms} ms");
        }
        let strict = RateLimiter::new(Rate { per_second: 1.0, burst: 1 });
        assert_eq!(strict.take(&"k", t(1000)), Ok(()));
        assert!(strict.take(&"k", t(500)).is_err(), "an older instant does not reopen the bucket");
        assert!(strict.take(&"k", t(1999)).is_err());
        assert_eq!(strict.take(&"k", t(2000)), Ok(()));
    }

    #[test]
    fn failures_lock_once_at_the_threshold_and_the_lock_ends() {
        let counter = FailureCounter::new(3, Span::from_secs(60), Span::from_secs(600));
        assert_eq!(counter.fail(&"a", t(0)), Counted::Counted(1));
        assert_eq!(counter.fail(&"a", t(1000)), Counted::Counted(2));
        assert_eq!(counter.fail(&"a", t(2000)), Counted::LockedOut { failures: 3, until: t(602_000) });
        assert_eq!(counter.locked_until(&"a", t(3000)), Some(t(602_000)));
        assert_eq!(counter.fail(&"a", t(3000)), Counted::Counted(4), "locked once");
        assert_eq!(counter.locked_until(&"a", t(602_000)), None);
        assert_eq!(counter.fail(&"a", t(602_000)), Counted::Counted(1), "afresh after the lock");
        assert_eq!(counter.fail(&"b", t(0)), Counted::Counted(1));
        assert_eq!(counter.fail(&"b", t(61_000)), Counted::Counted(1), "outside the window");
        counter.succeed(&"b");
        assert_eq!(counter.fail(&"b", t(61_001)), Counted::Counted(1));
    }
}
