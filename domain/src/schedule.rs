//! When signals are expected. `every` is a fixed period measured in absolute elapsed time, so it
//! is indifferent to time zones and daylight-saving changes (edge case C10). `cron` expects a
//! signal at the first occurrence of a cron expression strictly after the last signal, evaluated
//! in an IANA time zone with Debian cron's DST rule (see [`crate::cron`]).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::cron::{CronError, CronExpr};
use crate::span::Span;

/// The shortest period telltale accepts for `every`.
pub const MIN_PERIOD: Span = Span::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// A signal is expected `period` after the previous one.
    Every { period: Span },
    /// A signal is expected at the first occurrence of `expression` after the previous one, in
    /// `timezone`. Kept as the text the user gave, so stored events read back exactly as
    /// written; both were validated by [`Schedule::cron`] and are parsed again on use (a few
    /// microseconds).
    Cron { expression: String, timezone: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the period of `every` must be at least 1s, got {0}")]
    PeriodTooShort(Span),
    #[error(transparent)]
    Cron(#[from] CronError),
    #[error("unknown time zone `{0}`; use an IANA name such as Europe/Berlin")]
    UnknownTimeZone(String),
}

/// A parsed `cron` schedule, or `None` for `every` (or, defensively, a stored value that no longer
/// parses, which validation rules out).
fn parsed_cron(expression: &str, timezone: &str) -> Option<(CronExpr, Tz)> {
    Some((CronExpr::parse(expression).ok()?, timezone.parse().ok()?))
}

/// The fallback when a cron search finds nothing (validation makes this unreachable): the longest
/// span telltale accepts anywhere, so a monitor still has a deadline.
const CRON_FALLBACK: chrono::TimeDelta = chrono::TimeDelta::days(366);

impl Schedule {
    pub fn every(period: Span) -> Result<Schedule, ScheduleError> {
        if period < MIN_PERIOD {
            return Err(ScheduleError::PeriodTooShort(period));
        }
        Ok(Schedule::Every { period })
    }

    /// A cron schedule, refusing an invalid expression or a zone that is not an IANA name. The
    /// expression is stored trimmed, the zone under its canonical name.
    pub fn cron(expression: &str, timezone: &str) -> Result<Schedule, ScheduleError> {
        CronExpr::parse(expression)?;
        let tz: Tz = timezone.trim().parse().map_err(|_| ScheduleError::UnknownTimeZone(timezone.to_string()))?;
        Ok(Schedule::Cron { expression: expression.trim().to_string(), timezone: tz.name().to_string() })
    }

    pub fn is_cron(&self) -> bool {
        matches!(self, Schedule::Cron { .. })
    }

    /// The instant at which the next signal is expected, given the last one. For `cron`, the
    /// first occurrence strictly after it: a ping that arrives early is not "snapped" to a slot
    /// (C11), so the slot it was meant for is not expected again.
    pub fn next_expected(&self, last_signal: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every { period } => last_signal + period.to_delta(),
            Schedule::Cron { expression, timezone } => parsed_cron(expression, timezone)
                .and_then(|(expr, tz)| expr.next_after(last_signal, tz))
                .unwrap_or(last_signal + CRON_FALLBACK),
        }
    }

    /// The next `n` expected instants after `after`, as if each were met on time: what a monitor
    /// shows as its upcoming runs.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1000));
        let mut at = after;
        for _ in 0..n {
            at = self.next_expected(at);
            out.push(at);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_is_absolute_elapsed_time_across_dst() {
        // C10: pings every 15 min across the US fall-back night stay 15 real minutes apart.
        let s = Schedule::every(Span::from_secs(900)).unwrap();
        let last = Utc.with_ymd_and_hms(2023, 11, 5, 5, 45, 0).unwrap();
        assert_eq!(s.next_expected(last), Utc.with_ymd_and_hms(2023, 11, 5, 6, 0, 0).unwrap());
    }

    #[test]
    fn refuses_a_period_under_a_second() {
        assert!(Schedule::every(Span::from_millis(500)).is_err());
        assert!(Schedule::every(Span::ZERO).is_err());
    }
}
