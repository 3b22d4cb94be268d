//! When signals are expected. `every` is a fixed period measured in absolute elapsed time, so it
//! is indifferent to time zones and daylight-saving changes (edge case C10).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::span::Span;

/// The shortest period telltale accepts for `every`.
pub const MIN_PERIOD: Span = Span::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// A signal is expected `period` after the previous one.
    Every { period: Span },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("the period of `every` must be at least 1s, got {0}")]
    PeriodTooShort(Span),
}

impl Schedule {
    pub fn every(period: Span) -> Result<Schedule, ScheduleError> {
        if period < MIN_PERIOD {
            return Err(ScheduleError::PeriodTooShort(period));
        }
        Ok(Schedule::Every { period })
    }

    /// The instant at which the next signal is expected, given the last one.
    pub fn next_expected(&self, last_signal: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Schedule::Every { period } => last_signal + period.to_delta(),
        }
    }

    /// The longest a healthy process may stay silent between two signals, grace excluded.
    pub fn interval(&self) -> Span {
        match self {
            Schedule::Every { period } => *period,
        }
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
