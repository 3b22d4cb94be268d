//! Durations as the API and the events speak them: "45s", "5m", "2h", "1d", "1h30m", "250ms",
//! or whole seconds as a number. Stored as whole milliseconds, so arithmetic is exact.

use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

/// A non-negative duration in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Span(i64);

/// The longest span telltale accepts anywhere (a schedule period, a grace, a runtime): one year.
pub const MAX_SPAN: Span = Span(366 * 24 * 3600 * 1000);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    #[error(
        "`{0}` is not a duration: use a number of seconds or a value like \"45s\", \"5m\", \"2h\", \"1d\", \"1h30m\""
    )]
    Malformed(String),
    #[error("`{0}` is longer than the longest duration telltale accepts (366d)")]
    TooLong(String),
    #[error("a duration cannot be negative")]
    Negative,
}

impl Span {
    pub const ZERO: Span = Span(0);

    pub const fn from_millis(ms: i64) -> Span {
        Span(ms)
    }
    pub const fn from_secs(s: i64) -> Span {
        Span(s * 1000)
    }
    pub const fn as_millis(self) -> i64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    pub fn to_delta(self) -> TimeDelta {
        TimeDelta::milliseconds(self.0)
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Whole seconds, refusing negatives and spans longer than [`MAX_SPAN`].
    pub fn from_secs_checked(secs: i64) -> Result<Span, SpanError> {
        if secs < 0 {
            return Err(SpanError::Negative);
        }
        let span = Span(secs.saturating_mul(1000));
        if span > MAX_SPAN {
            return Err(SpanError::TooLong(secs.to_string()));
        }
        Ok(span)
    }

    /// Parses "45s", "5m", "2h", "1d", "1w", "250ms", or concatenations such as "1h30m".
    /// A bare number is whole seconds.
    pub fn parse(input: &str) -> Result<Span, SpanError> {
        let text = input.trim();
        let malformed = || SpanError::Malformed(input.to_string());
        if text.is_empty() {
            return Err(malformed());
        }
        if text.starts_with('-') {
            return Err(SpanError::Negative);
        }
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let secs: i64 = text.parse().map_err(|_| SpanError::TooLong(input.to_string()))?;
            return Span::from_secs_checked(secs).map_err(|e| match e {
                SpanError::TooLong(_) => SpanError::TooLong(input.to_string()),
                other => other,
            });
        }
        let mut total: i64 = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(malformed());
            }
            let value: i64 = rest[..digits].parse().map_err(|_| SpanError::TooLong(input.to_string()))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
            let unit_ms: i64 = match &rest[..unit_len] {
                "ms" => 1,
                "s" | "sec" | "secs" => 1000,
                "m" | "min" | "mins" => 60_000,
                "h" | "hr" | "hrs" => 3_600_000,
                "d" | "day" | "days" => 86_400_000,
                "w" => 7 * 86_400_000,
                _ => return Err(malformed()),
            };
            rest = &rest[unit_len..];
            total = value
                .checked_mul(unit_ms)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| SpanError::TooLong(input.to_string()))?;
        }
        let span = Span(total);
        if span > MAX_SPAN {
            return Err(SpanError::TooLong(input.to_string()));
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    /// The shortest human form that parses back to the same value: "2s", "1h30m", "1500ms".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return write!(f, "0s");
        }
        if ms % 1000 != 0 {
            return write!(f, "{ms}ms");
        }
        ms /= 1000;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if ms >= size {
                write!(f, "{}{}", ms / size, unit)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(Span::parse("45s"), Ok(Span::from_secs(45)));
        assert_eq!(Span::parse("5m"), Ok(Span::from_secs(300)));
        assert_eq!(Span::parse("2h"), Ok(Span::from_secs(7200)));
        assert_eq!(Span::parse("1d"), Ok(Span::from_secs(86_400)));
        assert_eq!(Span::parse("30"), Ok(Span::from_secs(30)));
        assert_eq!(Span::parse("1h30m"), Ok(Span::from_secs(5400)));
        assert_eq!(Span::parse("250ms"), Ok(Span::from_millis(250)));
    }

    #[test]
    fn refuses_garbage_negatives_and_huge_values() {
        for bad in ["", "s", "5x", "1.5s", "m5", "5 m x", "abc"] {
            assert!(matches!(Span::parse(bad), Err(SpanError::Malformed(_))), "{bad}");
        }
        assert_eq!(Span::parse("-5s"), Err(SpanError::Negative));
        assert!(matches!(Span::parse("400d"), Err(SpanError::TooLong(_))));
        assert!(matches!(Span::parse("99999999999999999999"), Err(SpanError::TooLong(_))));
        assert!(matches!(Span::parse("9999999999999999d"), Err(SpanError::TooLong(_))));
    }

    #[test]
    fn displays_in_a_form_that_parses_back() {
        for ms in [0, 1500, 2000, 60_000, 5_400_000, 86_400_000 + 1000] {
            let span = Span::from_millis(ms);
            assert_eq!(Span::parse(&span.to_string()), Ok(span), "{span}");
        }
        assert_eq!(Span::from_secs(5400).to_string(), "1h30m");
    }
}
