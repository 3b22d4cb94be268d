//! The alert policy: which facts become an alert, when, and how it is announced.
//!
//! A policy is stated as an [`AlertPolicy`]: every field optional. A client states defaults for
//! all its monitors, a monitor overrides them field by field, and [`AlertPolicy::resolve`] fills
//! what neither says with telltale's defaults ([`Policy`]). Both statements are recorded on the
//! monitor's own stream (its configuration, and `ClientDefaultsApplied`), so a decision depends
//! only on the monitor's recorded inputs and replay stays exact.
//!
//! | knob | default | meaning |
//! | --- | --- | --- |
//! | `failure_tolerance` | `1` | consecutive failed runs before a failure alerts, or `{ratio, window, min_runs}` |
//! | `retry_window` | `5m` | a failure waits this long for a success before it pages |
//! | `missed_tolerance` | `0` | missed slots that pass quietly before a miss alerts |
//! | `recovery_threshold` | `1` | good runs or beats in a row before an alert resolves |
//! | `realert_every` | `0s` (off) | reminders while an alert is open and unacknowledged |
//! | `escalate_after`, `escalate_to` | `30m`, none | channels told once an alert stays unacknowledged |
//! | `flapping_threshold`, `flapping_window` | `4`, `1h` | more changes than this in the window: one `flapping` alert |

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::span::Span;

/// The retry window when nobody says otherwise: a failure that a retry fixes within five
/// minutes pages nobody; one that is not fixed pages five minutes after it.
pub const DEFAULT_RETRY_WINDOW: Span = Span::from_secs(300);
pub const DEFAULT_ESCALATE_AFTER: Span = Span::from_secs(1800);
pub const DEFAULT_FLAPPING_THRESHOLD: u32 = 4;
pub const DEFAULT_FLAPPING_WINDOW: Span = Span::from_secs(3600);
/// The largest count any knob takes.
pub const MAX_COUNT: u32 = 1000;
/// Reminders come at most this often.
pub const MIN_REALERT: Span = Span::from_secs(60);
pub const MAX_ESCALATION_CHANNELS: usize = 16;

/// A failure ratio over a sliding window of finished runs, in basis points (10 000 = 100 %).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio(u32);

impl Ratio {
    pub const fn from_basis_points(bp: u32) -> Ratio {
        Ratio(bp)
    }
    pub fn basis_points(self) -> u32 {
        self.0
    }
    /// `failed / total >= self`, exactly.
    pub fn reached(self, failed: u32, total: u32) -> bool {
        total > 0 && u64::from(failed) * 10_000 >= u64::from(self.0) * u64::from(total)
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        match self.0 % 100 {
            0 => write!(f, "{whole}%"),
            rest => write!(f, "{whole}.{rest:02}%"),
        }
    }
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(f64::from(self.0) / 10_000.0)
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ratio, D::Error> {
        let value = f64::deserialize(d)?;
        if !(value > 0.0 && value <= 1.0) {
            return Err(serde::de::Error::custom("a failure ratio is a number above 0 and at most 1, e.g. 0.5"));
        }
        Ok(Ratio((value * 10_000.0).round() as u32))
    }
}

/// A failure ratio: alert when, over the runs that finished in the last `window`, at least
/// `ratio` failed (and at least `min_runs` finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailureRatio {
    pub ratio: Ratio,
    pub window: Span,
    #[serde(default = "one")]
    pub min_runs: u32,
}

fn one() -> u32 {
    1
}

/// When failed runs become an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FailureTolerance {
    /// This many failed runs in a row.
    Consecutive(u32),
    Ratio(FailureRatio),
}

impl Default for FailureTolerance {
    fn default() -> Self {
        FailureTolerance::Consecutive(1)
    }
}

impl fmt::Display for FailureTolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureTolerance::Consecutive(1) => write!(f, "1 failed run"),
            FailureTolerance::Consecutive(n) => write!(f, "{n} failed runs in a row"),
            FailureTolerance::Ratio(r) => write!(f, "{} of the runs in {} failed", r.ratio, r.window),
        }
    }
}

/// A policy as someone states it: each field absent inherits (from the client's defaults, then
/// from telltale's). Zero durations and a zero flapping threshold turn a feature off.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_tolerance: Option<FailureTolerance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_window: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_tolerance: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realert_every: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_after: Option<Span>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping_window: Option<Span>,
}

/// A resolved policy: every knob has its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub failure_tolerance: FailureTolerance,
    pub retry_window: Span,
    pub missed_tolerance: u32,
    pub recovery_threshold: u32,
    /// Zero: no reminders.
    pub realert_every: Span,
    pub escalate_after: Span,
    /// Channel names; empty: no escalation.
    pub escalate_to: Vec<String>,
    /// Zero: flapping is not detected.
    pub flapping_threshold: u32,
    pub flapping_window: Span,
}

impl Default for Policy {
    fn default() -> Self {
        AlertPolicy::default().resolve()
    }
}

impl Policy {
    pub fn reminders(&self) -> Option<Span> {
        (!self.realert_every.is_zero()).then_some(self.realert_every)
    }
    pub fn escalation(&self) -> Option<(Span, &[String])> {
        (!self.escalate_to.is_empty()).then_some((self.escalate_after, self.escalate_to.as_slice()))
    }
    pub fn flapping(&self) -> Option<(u32, Span)> {
        (self.flapping_threshold > 0 && !self.flapping_window.is_zero())
            .then_some((self.flapping_threshold, self.flapping_window))
    }
    /// The window over which finished runs are remembered.
    pub fn ratio_window(&self) -> Option<Span> {
        match self.failure_tolerance {
            FailureTolerance::Ratio(r) => Some(r.window),
            FailureTolerance::Consecutive(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct PolicyError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> PolicyError {
    PolicyError { field, message: message.into() }
}

impl AlertPolicy {
    pub fn is_empty(&self) -> bool {
        self == &AlertPolicy::default()
    }

    /// `self` laid over `base`: each field `self` states wins.
    pub fn over(&self, base: &AlertPolicy) -> AlertPolicy {
        AlertPolicy {
            failure_tolerance: self.failure_tolerance.or(base.failure_tolerance),
            retry_window: self.retry_window.or(base.retry_window),
            missed_tolerance: self.missed_tolerance.or(base.missed_tolerance),
            recovery_threshold: self.recovery_threshold.or(base.recovery_threshold),
            realert_every: self.realert_every.or(base.realert_every),
            escalate_after: self.escalate_after.or(base.escalate_after),
            escalate_to: self.escalate_to.clone().or_else(|| base.escalate_to.clone()),
            flapping_threshold: self.flapping_threshold.or(base.flapping_threshold),
            flapping_window: self.flapping_window.or(base.flapping_window),
        }
    }

    /// Every knob, from this statement or telltale's defaults.
    pub fn resolve(&self) -> Policy {
        Policy {
            failure_tolerance: self.failure_tolerance.unwrap_or_default(),
            retry_window: self.retry_window.unwrap_or(DEFAULT_RETRY_WINDOW),
            missed_tolerance: self.missed_tolerance.unwrap_or(0),
            recovery_threshold: self.recovery_threshold.unwrap_or(1),
            realert_every: self.realert_every.unwrap_or(Span::ZERO),
            escalate_after: self.escalate_after.unwrap_or(DEFAULT_ESCALATE_AFTER),
            escalate_to: self.escalate_to.clone().unwrap_or_default(),
            flapping_threshold: self.flapping_threshold.unwrap_or(DEFAULT_FLAPPING_THRESHOLD),
            flapping_window: self.flapping_window.unwrap_or(DEFAULT_FLAPPING_WINDOW),
        }
    }

    /// Refuses values that cannot mean anything, naming the field.
    pub fn check(&self) -> Result<(), PolicyError> {
        match self.failure_tolerance {
            Some(FailureTolerance::Consecutive(n)) if n == 0 || n > MAX_COUNT => {
                return Err(invalid(
                    "failure_tolerance",
                    format!("counts the failed runs in a row that open an alert: 1 to {MAX_COUNT}"),
                ));
            }
            Some(FailureTolerance::Ratio(r)) => {
                if r.ratio.basis_points() == 0 || r.ratio.basis_points() > 10_000 {
                    return Err(invalid("failure_tolerance.ratio", "must be above 0 and at most 1"));
                }
                if r.window.is_zero() {
                    return Err(invalid("failure_tolerance.window", "must be longer than 0s"));
                }
                if r.min_runs == 0 || r.min_runs > MAX_COUNT {
                    return Err(invalid("failure_tolerance.min_runs", format!("must be 1 to {MAX_COUNT}")));
                }
            }
            _ => {}
        }
        if self.missed_tolerance.is_some_and(|n| n > MAX_COUNT) {
            return Err(invalid("missed_tolerance", format!("must be 0 to {MAX_COUNT}")));
        }
        if self.recovery_threshold.is_some_and(|n| n == 0 || n > MAX_COUNT) {
            return Err(invalid("recovery_threshold", format!("counts good runs or beats in a row: 1 to {MAX_COUNT}")));
        }
        if self.realert_every.is_some_and(|s| !s.is_zero() && s < MIN_REALERT) {
            return Err(invalid("realert_every", "must be 0s (no reminders) or at least 1m"));
        }
        if let Some(names) = &self.escalate_to {
            if names.len() > MAX_ESCALATION_CHANNELS {
                return Err(invalid("escalate_to", format!("names at most {MAX_ESCALATION_CHANNELS} channels")));
            }
            if names.iter().any(|n| n.trim().is_empty() || n.chars().count() > 100) {
                return Err(invalid("escalate_to", "each channel name has 1 to 100 characters"));
            }
        }
        if self.flapping_threshold.is_some_and(|n| n > MAX_COUNT) {
            return Err(invalid("flapping_threshold", format!("must be 0 (off) to {MAX_COUNT}")));
        }
        if self.flapping_window.is_some_and(Span::is_zero) && self.flapping_threshold.is_some_and(|n| n > 0) {
            return Err(invalid("flapping_window", "must be longer than 0s while flapping_threshold is set"));
        }
        Ok(())
    }
}

/// Why an alert is recorded but not announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// The monitor is silenced.
    Silenced,
    /// A maintenance window covers the monitor.
    Maintenance,
    /// The monitor is flapping: one `flapping` alert speaks for it.
    Flapping,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::Silenced => "silenced",
            HoldReason::Maintenance => "maintenance",
            HoldReason::Flapping => "flapping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_stay_quiet_for_a_retried_failure_and_page_at_once_for_silence() {
        let p = Policy::default();
        assert_eq!(p.failure_tolerance, FailureTolerance::Consecutive(1));
        assert_eq!(p.retry_window, Span::from_secs(300));
        assert_eq!(p.missed_tolerance, 0);
        assert_eq!(p.recovery_threshold, 1);
        assert_eq!(p.reminders(), None);
        assert_eq!(p.escalation(), None);
        assert_eq!(p.flapping(), Some((4, Span::from_secs(3600))));
    }

    #[test]
    fn a_monitor_overrides_its_client_field_by_field() {
        let client = AlertPolicy {
            retry_window: Some(Span::from_secs(600)),
            missed_tolerance: Some(2),
            ..AlertPolicy::default()
        };
        let monitor = AlertPolicy { missed_tolerance: Some(0), ..AlertPolicy::default() };
        let p = monitor.over(&client).resolve();
        assert_eq!((p.retry_window, p.missed_tolerance), (Span::from_secs(600), 0));
    }

    #[test]
    fn failure_tolerance_reads_a_count_or_a_ratio() {
        let n: AlertPolicy = serde_json::from_str(r#"{"failure_tolerance": 3}"#).unwrap();
        assert_eq!(n.failure_tolerance, Some(FailureTolerance::Consecutive(3)));
        let r: AlertPolicy =
            serde_json::from_str(r#"{"failure_tolerance": {"ratio": 0.5, "window": 3600000, "min_runs": 4}}"#).unwrap();
        let Some(FailureTolerance::Ratio(r)) = r.failure_tolerance else { panic!("a ratio") };
        assert_eq!((r.ratio.basis_points(), r.min_runs), (5000, 4));
        assert!(r.ratio.reached(2, 4) && !r.ratio.reached(1, 4));
        let back = serde_json::to_value(FailureTolerance::Ratio(r)).unwrap();
        assert_eq!(back["ratio"], 0.5);
    }

    #[test]
    fn nonsense_values_are_refused_with_their_field() {
        for (bad, field) in [
            (
                AlertPolicy { failure_tolerance: Some(FailureTolerance::Consecutive(0)), ..Default::default() },
                "failure_tolerance",
            ),
            (AlertPolicy { recovery_threshold: Some(0), ..Default::default() }, "recovery_threshold"),
            (AlertPolicy { realert_every: Some(Span::from_secs(5)), ..Default::default() }, "realert_every"),
            (AlertPolicy { escalate_to: Some(vec![" ".into()]), ..Default::default() }, "escalate_to"),
        ] {
            assert_eq!(bad.check().unwrap_err().field, field);
        }
        assert!(AlertPolicy { realert_every: Some(Span::ZERO), ..Default::default() }.check().is_ok());
    }
}
