//! Maintenance windows: times when a client's monitors (all, or some by tag or slug) are
//! expected to misbehave. Inside one, facts are recorded and alerts held; when it ends, an
//! unchanged state is not announced again, a recovery is announced once, and timers start
//! from its end. A window is one-off (`from`, `to`) or recurring (a cron expression in an IANA
//! time zone, each occurrence lasting `duration`).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cron::CronExpr;
use crate::schedule::Schedule;
use crate::span::Span;

/// The longest one occurrence may last.
pub const MAX_WINDOW: Span = Span::from_secs(31 * 24 * 3600);
/// Windows one client may have.
pub const MAX_WINDOWS: usize = 100;
/// Overlapping occurrences of one recurring window merged at most (a bound, never reached by
/// a valid window).
const MAX_MERGE: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WindowTime {
    Once {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// Starts at each occurrence of `cron` in `timezone` and lasts `duration`.
    Recurring {
        cron: String,
        timezone: String,
        duration: Span,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub when: WindowTime,
    /// Monitors with any of these tags…
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// …or any of these slugs; every monitor of the client when both are empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<String>,
}

impl MaintenanceWindow {
    pub fn selects(&self, slug: &str, tags: &[String]) -> bool {
        (self.tags.is_empty() && self.monitors.is_empty())
            || self.monitors.iter().any(|s| s == slug)
            || self.tags.iter().any(|t| tags.contains(t))
    }

    /// Refuses a window that can never mean anything.
    pub fn check(&self) -> Result<(), String> {
        if self.reason.chars().count() > 500 {
            return Err("reason: at most 500 characters".into());
        }
        match &self.when {
            WindowTime::Once { from, to } => {
                if to <= from {
                    return Err("to: must be after from".into());
                }
                if (*to - *from) > MAX_WINDOW.to_delta() {
                    return Err(format!("a window lasts at most {MAX_WINDOW}"));
                }
            }
            WindowTime::Recurring { cron, timezone, duration } => {
                Schedule::cron(cron, timezone).map_err(|e| format!("cron: {e}"))?;
                if duration.is_zero() || *duration > MAX_WINDOW {
                    return Err(format!("duration: must be longer than 0s and at most {MAX_WINDOW}"));
                }
            }
        }
        Ok(())
    }

    /// The first occurrence that ends after `t`, as `[start, end)`; it is under way at `t` when
    /// `start <= t`. Overlapping occurrences of a recurring window count as one.
    pub fn occurrence_after(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match &self.when {
            WindowTime::Once { from, to } => (*to > t).then_some((*from, *to)),
            WindowTime::Recurring { cron, timezone, duration } => {
                let expr = CronExpr::parse(cron).ok()?;
                let tz: Tz = timezone.parse().ok()?;
                let d = duration.to_delta();
                // An occurrence starting strictly after t - d ends strictly after t.
                let start = expr.next_after(t - d, tz)?;
                let mut last = start;
                for _ in 0..MAX_MERGE {
                    match expr.next_after(last, tz) {
                        Some(next) if next < last + d => last = next,
                        _ => break,
                    }
                }
                Some((start, last + d))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn window(when: WindowTime) -> MaintenanceWindow {
        MaintenanceWindow { id: Uuid::nil(), reason: String::new(), when, tags: vec![], monitors: vec![] }
    }

    #[test]
    fn a_recurring_window_follows_its_zone() {
        // 02:00 Berlin nightly for an hour: in summer that is 00:00Z to 01:00Z.
        let w = window(WindowTime::Recurring {
            cron: "0 2 * * *".into(),
            timezone: "Europe/Berlin".into(),
            duration: Span::from_secs(3600),
        });
        let t = Utc.with_ymd_and_hms(2026, 7, 1, 0, 30, 0).unwrap();
        let (start, end) = w.occurrence_after(t).unwrap();
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap());
        assert_eq!(end, Utc.with_ymd_and_hms(2026, 7, 1, 1, 0, 0).unwrap());
        let (next, _) = w.occurrence_after(end).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 7, 2, 0, 0, 0).unwrap());
    }

    #[test]
    fn overlapping_occurrences_are_one_window() {
        let w = window(WindowTime::Recurring {
            cron: "*/10 * * * *".into(),
            timezone: "UTC".into(),
            duration: Span::from_secs(15 * 60),
        });
        let t = Utc.with_ymd_and_hms(2026, 7, 1, 0, 5, 0).unwrap();
        let (start, end) = w.occurrence_after(t).unwrap();
        assert_eq!(start, Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap());
        // Every occurrence overlaps the next: the merge stops at its bound, far in the future.
        assert!(end > start + chrono::TimeDelta::days(1));
    }

    #[test]
    fn selection_by_tag_or_slug_or_all() {
        let mut w = window(WindowTime::Once {
            from: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap(),
        });
        assert!(w.selects("a", &[]));
        w.tags = vec!["db".into()];
        assert!(w.selects("a", &["db".into()]) && !w.selects("a", &["web".into()]));
        w.monitors = vec!["a".into()];
        assert!(w.selects("a", &[]) && !w.selects("b", &[]));
    }

    #[test]
    fn refuses_empty_and_endless_windows() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert!(window(WindowTime::Once { from: t, to: t }).check().is_err());
        assert!(
            window(WindowTime::Recurring {
                cron: "0 0 30 2 *".into(),
                timezone: "UTC".into(),
                duration: Span::from_secs(60)
            })
            .check()
            .is_err()
        );
        assert!(
            window(WindowTime::Recurring { cron: "0 2 * * *".into(), timezone: "UTC".into(), duration: Span::ZERO })
                .check()
                .is_err()
        );
    }
}
