//! Five-field cron expressions (minute hour day-of-month month day-of-week) with the semantics of
//! Debian/Vixie cron, evaluated in an IANA time zone. A cron check expects its next signal at the
//! first occurrence strictly after the last one, so this module answers exactly one question:
//! [`CronExpr::next_after`].
//!
//! # Syntax
//!
//! Lists (`1,15`), ranges (`1-5`), steps (`*/7`, `1-30/4`, and `5/15` meaning `5-59/15`), month
//! and weekday names (`JAN`-`DEC`, `SUN`-`SAT`, any case), 0 and 7 both for Sunday, and the
//! shortcuts `@hourly @daily @midnight @weekly @monthly @yearly @annually`. Steps enumerate values
//! inside the field and restart with it, so `*/40` in the minute field is :00 and :40 of every
//! hour, not "every 40 minutes" (edge case C20). A range must be written low to high: `FRI-MON`
//! is refused rather than guessed, because implementations disagree on wrap-around.
//!
//! Extensions, all tested: `L` (last day of the month), `LW` (last weekday of the month) and `nW`
//! (the weekday nearest to day n, never leaving the month: a Saturday 1st moves to Monday the
//! 3rd, a Sunday last day back to Friday; in a month without day n it does not fire, like plain
//! n) in the day-of-month field; `d#n` (n-th weekday d of the month, n 1-5) and `dL` (last weekday
//! d of the month) in the day-of-week field.
//!
//! Six-field expressions are refused: tools disagree whether seconds come first or last, and a
//! misread schedule alerts at the wrong times (C23).
//!
//! # The day rule
//!
//! As in Vixie cron, when both day fields are restricted a day matches if *either* matches
//! (`0 9 1-7 * 1` is "the first seven days, and every Monday"). A field whose text starts with
//! `*` (including `*/2`) counts as unrestricted, and then the two fields are AND-ed (C13, C14).
//!
//! # Daylight saving time
//!
//! Exactly Debian cron's rule, which cronsim (Healthchecks' evaluator) copies, decided by the
//! same test Debian makes (its `MIN_STAR|HR_STAR` flags):
//!
//! * **Wildcard jobs**: the minute *or* the hour field starts with `*` (`* * * * *`,
//!   `*/15 * * * *`, `0 * * * *`, `@hourly`, `0 */2 * * *`, `*/5 9-23 * * *`). They run on real
//!   time: every real minute whose local wall time matches, so both passes of a repeated hour
//!   count and nothing is invented inside a skipped hour.
//! * **Fixed-time jobs**: everything else (`30 2 * * *`, `30 2-23/4 * * *`, `@daily`). A wall
//!   time skipped by spring-forward fires once at the first instant after the jump (02:30 in a
//!   02:00→03:00 gap fires at 03:00); a wall time repeated by fall-back fires once, on its first
//!   pass.
//!
//! Note that `0 */2 * * *` is a wildcard job: Debian tests the first character of the field, not
//! the granularity it produces, and cronsim does the same.
//!
//! # Bounds
//!
//! Impossible calendars (`0 0 30 2 *`) are refused at parse time by static analysis, with a
//! message saying why; rarer never-firing combinations of the two day fields are caught by one
//! search over a full 400-year Gregorian cycle, after which the calendar repeats. Every search
//! jumps month by month, day by day and hour by hour, and stops after that same horizon, so a
//! call never loops for long.

use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::{GapInfo, Tz};

/// The five fields, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] =
        [CronField::Minute, CronField::Hour, CronField::DayOfMonth, CronField::Month, CronField::DayOfWeek];

    /// Inclusive bounds. Day-of-week goes to 7 because 7 is Sunday too.
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &MONTH_NAMES,
            CronField::DayOfWeek => &DAY_NAMES,
            _ => &[],
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
        })
    }
}

const MONTH_NAMES: [&str; 12] = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_FULL_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Why an expression was refused. Display is a sentence meant for the person who typed it (the
/// API returns it as the 422 message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("the cron expression is empty")]
    Empty,
    #[error("telltale takes five fields (minute hour day month weekday), got {0}{hint}", hint = count_hint(*.0))]
    FieldCount(usize),
    #[error("`{0}` is not a known shortcut; use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually")]
    UnknownShortcut(String),
    #[error("the {field} field `{text}` is invalid: {problem}")]
    Field { field: CronField, text: String, problem: String },
    #[error("the schedule never fires: {0}")]
    NeverFires(String),
}

fn count_hint(found: usize) -> &'static str {
    if found == 6 { " (seconds and years are not supported)" } else { "" }
}

/// A parsed expression. Sets are bit masks, which makes matching and "next allowed value"
/// single instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CronExpr {
    minutes: u64,
    hours: u32,
    /// Bits 1-31.
    days: u32,
    /// `L`: the last day of the month.
    last_day: bool,
    /// `LW`: the last weekday (Monday-Friday) of the month.
    last_weekday: bool,
    /// `nW`: bit n set for the weekday nearest to day n.
    nearest_weekday: u32,
    /// Bits 1-12.
    months: u16,
    /// Bits 0-6, Sunday = 0.
    weekdays: u8,
    /// `d#n`: for weekday d, bit n set (n 1-5).
    nth_weekday: [u8; 7],
    /// `dL`: bit d set for the last weekday d of the month.
    last_of_weekday: u8,
    /// The day-of-month text starts with `*`.
    dom_star: bool,
    /// The day-of-week text starts with `*`. If either day field is a star the two are AND-ed,
    /// otherwise OR-ed.
    dow_star: bool,
    /// The minute or hour text starts with `*`: a wildcard job, run on real time across DST.
    wildcard: bool,
}

/// The largest number of years any search looks ahead. The Gregorian calendar repeats every 400
/// years (146 097 days, a whole number of weeks), so a pattern with no match in 400 years has
/// none at all.
const HORIZON_YEARS: i32 = 401;

/// Upper bound on loop iterations of one naive search; well above what the horizon needs
/// (roughly two per month plus two per hour of one matching day).
const MAX_STEPS: u32 = 50_000;

/// Upper bound on occurrences resolved in one [`CronExpr::next_after`], each of which may be
/// discarded because it falls in a DST gap or before `after` in a repeated hour.
const MAX_CANDIDATES: u32 = 10_000;

const ONE_MINUTE: Duration = Duration::minutes(1);

impl CronExpr {
    /// Parses a five-field expression or a shortcut such as `@daily`.
    pub fn parse(input: &str) -> Result<CronExpr, CronError> {
        let text = input.trim();
        if text.is_empty() {
            return Err(CronError::Empty);
        }
        let mut parts: Vec<&str> = text.split_whitespace().collect();
        if parts[0].starts_with('@') {
            if parts.len() != 1 {
                return Err(CronError::FieldCount(parts.len()));
            }
            parts = expand_shortcut(parts[0])?.split_whitespace().collect();
        }
        if parts.len() != 5 {
            return Err(CronError::FieldCount(parts.len()));
        }
        let mut expr = CronExpr {
            minutes: 0,
            hours: 0,
            days: 0,
            last_day: false,
            last_weekday: false,
            nearest_weekday: 0,
            months: 0,
            weekdays: 0,
            nth_weekday: [0; 7],
            last_of_weekday: 0,
            dom_star: parts[2].starts_with('*'),
            dow_star: parts[4].starts_with('*'),
            wildcard: parts[0].starts_with('*') || parts[1].starts_with('*'),
        };
        for (field, text) in CronField::ALL.into_iter().zip(parts) {
            let fail = |problem: String| CronError::Field { field, text: text.to_string(), problem };
            for item in text.split(',') {
                expr.add_item(field, item).map_err(fail)?;
            }
        }
        expr.check_calendar()?;
        Ok(expr)
    }

    /// The first occurrence strictly after `after`, evaluated in `tz` with Debian's DST rule (see
    /// the module documentation). Occurrences are whole minutes. `None` only when nothing
    /// matches within the search horizon, which a parsed expression guarantees cannot happen
    /// on the calendar alone (only a zone whose DST gaps swallow every match could cause it).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.wildcard { self.next_on_real_time(after, tz) } else { self.next_on_wall_clock(after, tz) }
    }

    /// Whether the job runs on real time across DST changes (minute or hour field starts with
    /// `*`) rather than at a fixed wall-clock time.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Fixed-time jobs: walk wall-clock matches; a match inside a gap fires at the end of the
    /// gap, a match in a repeated hour at its first pass. A first pass that is not after
    /// `after` (because `after` lies in the second pass) is skipped, not replayed.
    fn next_on_wall_clock(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut from = truncate_to_minute(after.with_timezone(&tz).naive_local()).checked_add_signed(ONE_MINUTE)?;
        for _ in 0..MAX_CANDIDATES {
            let wall = self.next_naive(from)?;
            let instant = match tz.from_local_datetime(&wall) {
                chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => Some(t),
                chrono::LocalResult::None => GapInfo::new(&wall, &tz).and_then(|gap| gap.end),
            };
            if let Some(instant) = instant.map(|t| t.with_timezone(&Utc))
                && instant > after
            {
                return Some(instant);
            }
            from = wall.checked_add_signed(ONE_MINUTE)?;
        }
        None
    }

    /// Wildcard jobs: the first real minute after `after` whose local wall time matches. The
    /// search holds the offset in force at the candidate; if the match it finds still has that
    /// offset, it is the answer, otherwise the search restarts at the offset change. Assumes a
    /// zone never changes its offset twice within one day (true of every zone in tzdb's modern
    /// era).
    fn next_on_real_time(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut at = truncate_to_minute(after.naive_utc()).checked_add_signed(ONE_MINUTE)?.and_utc();
        for _ in 0..MAX_CANDIDATES {
            let offset = utc_offset(tz, at);
            let wall = truncate_to_minute(at.naive_utc() + offset);
            let next = self.next_naive(wall)?;
            if next == wall {
                return Some(at);
            }
            let candidate = (next - offset).and_utc();
            let day_later = at + Duration::days(1);
            let probe = candidate.min(day_later);
            if utc_offset(tz, probe) != offset {
                at = first_change(tz, at, probe, offset);
                continue;
            }
            if candidate <= day_later {
                return Some(candidate);
            }
            // More than a day away, with no change in the first day: no fall-back can take the
            // wall clock back below where it started, so the answer is the first wall-clock
            // match that exists, at its first pass. Matches inside gaps do not run.
            let mut wall = next;
            for _ in 0..MAX_CANDIDATES {
                match tz.from_local_datetime(&wall) {
                    chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                        return Some(t.with_timezone(&Utc));
                    }
                    chrono::LocalResult::None => wall = self.next_naive(wall.checked_add_signed(ONE_MINUTE)?)?,
                }
            }
            return None;
        }
        None
    }

    /// The first wall-clock minute at or after `from` (whole minute) matching every field,
    /// ignoring time zones. Jumps to the next allowed month, day, hour and minute in turn.
    fn next_naive(&self, from: NaiveDateTime) -> Option<NaiveDateTime> {
        let limit = from.year().checked_add(HORIZON_YEARS)?;
        let mut date = from.date();
        let mut hour = from.hour();
        let mut minute = from.minute();
        for _ in 0..MAX_STEPS {
            if date.year() > limit {
                return None;
            }
            if self.months & (1 << date.month()) == 0 {
                date = self.next_month_start(date)?;
                (hour, minute) = (0, 0);
                continue;
            }
            if !self.day_matches(date) {
                let len = days_in_month(date.year(), date.month());
                date = match (date.day() + 1..=len).find(|&d| self.day_matches(with_day(date, d))) {
                    Some(d) => with_day(date, d),
                    None => first_of_next_month(date)?,
                };
                (hour, minute) = (0, 0);
                continue;
            }
            let Some(h) = next_bit(u64::from(self.hours), hour) else {
                date = date.succ_opt()?;
                (hour, minute) = (0, 0);
                continue;
            };
            if h != hour {
                (hour, minute) = (h, 0);
            }
            match next_bit(self.minutes, minute) {
                Some(m) => return Some(date.and_time(NaiveTime::from_hms_opt(hour, m, 0)?)),
                None if hour < 23 => (hour, minute) = (hour + 1, 0),
                None => {
                    date = date.succ_opt()?;
                    (hour, minute) = (0, 0);
                }
            }
        }
        None
    }

    fn next_month_start(&self, date: NaiveDate) -> Option<NaiveDate> {
        match next_bit(u64::from(self.months), date.month() + 1) {
            Some(m) => NaiveDate::from_ymd_opt(date.year(), m, 1),
            None => NaiveDate::from_ymd_opt(date.year() + 1, next_bit(u64::from(self.months), 1)?, 1),
        }
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.dom_star || self.dow_star {
            self.day_of_month_matches(date) && self.day_of_week_matches(date)
        } else {
            self.day_of_month_matches(date) || self.day_of_week_matches(date)
        }
    }

    fn day_of_month_matches(&self, date: NaiveDate) -> bool {
        let day = date.day();
        if self.days & (1 << day) != 0 {
            return true;
        }
        let len = days_in_month(date.year(), date.month());
        if self.last_day && day == len {
            return true;
        }
        if self.last_weekday && day == nearest_weekday(date, len, len) {
            return true;
        }
        let mut wanted = self.nearest_weekday;
        while wanted != 0 {
            let n = wanted.trailing_zeros();
            wanted &= wanted - 1;
            if n <= len && nearest_weekday(date, n, len) == day {
                return true;
            }
        }
        false
    }

    fn day_of_week_matches(&self, date: NaiveDate) -> bool {
        let weekday = date.weekday().num_days_from_sunday();
        if self.weekdays & (1 << weekday) != 0 {
            return true;
        }
        let day = date.day();
        let nth = day.div_ceil(7);
        if self.nth_weekday[weekday as usize] & (1 << nth) != 0 {
            return true;
        }
        self.last_of_weekday & (1 << weekday) != 0 && day + 7 > days_in_month(date.year(), date.month())
    }

    fn add_item(&mut self, field: CronField, item: &str) -> Result<(), String> {
        if item.is_empty() {
            return Err("it has an empty list entry (check for a stray comma)".to_string());
        }
        match field {
            CronField::DayOfMonth if item.eq_ignore_ascii_case("L") => self.last_day = true,
            CronField::DayOfMonth if item.eq_ignore_ascii_case("LW") => self.last_weekday = true,
            CronField::DayOfMonth if item.len() > 1 && item.ends_with(['W', 'w']) => {
                let day = parse_number(field, &item[..item.len() - 1])?;
                self.nearest_weekday |= 1 << day;
            }
            CronField::DayOfWeek if item.contains('#') => {
                let (day, nth) = item.split_once('#').unwrap_or_default();
                let weekday = parse_value(field, day)? % 7;
                let nth = match nth.parse::<u32>() {
                    Ok(n @ 1..=5) if nth.bytes().all(|b| b.is_ascii_digit()) => n,
                    _ => return Err(format!("in `{item}` the number after # must be 1 to 5")),
                };
                self.nth_weekday[weekday as usize] |= 1 << nth;
            }
            CronField::DayOfWeek if item.eq_ignore_ascii_case("L") => {
                return Err("L needs a weekday before it, such as 5L for the last Friday of the month".to_string());
            }
            CronField::DayOfWeek if item.ends_with(['L', 'l']) => {
                let weekday = parse_value(field, &item[..item.len() - 1])? % 7;
                self.last_of_weekday |= 1 << weekday;
            }
            _ => {
                let mask = parse_range(field, item)?;
                match field {
                    CronField::Minute => self.minutes |= mask,
                    CronField::Hour => self.hours |= mask as u32,
                    CronField::DayOfMonth => self.days |= mask as u32,
                    CronField::Month => self.months |= mask as u16,
                    // 7 is Sunday, like 0.
                    CronField::DayOfWeek => self.weekdays |= ((mask | (mask >> 7)) & 0x7f) as u8,
                }
            }
        }
        Ok(())
    }

    /// Refuses calendars that can never fire. The static check covers the common mistake, a day
    /// of the month that none of the chosen months has (`0 0 30 2 *`); it only applies when the
    /// day-of-month field decides alone, i.e. the day-of-week field starts with `*`. A single
    /// bounded search over a full calendar cycle then catches the rest (for instance `*/30` in
    /// the day-of-month field AND-ed with `1#5`).
    fn check_calendar(&self) -> Result<(), CronError> {
        let dom_decides = self.dow_star && !self.dom_star;
        if dom_decides && !self.last_day && !self.last_weekday {
            let smallest = (self.days | self.nearest_weekday).trailing_zeros();
            let months: Vec<u32> = (1..=12).filter(|m| self.months & (1 << m) != 0).collect();
            if months.iter().all(|&m| smallest > max_days_in_month(m)) {
                return Err(CronError::NeverFires(describe_missing_days(self.days, self.nearest_weekday, &months)));
            }
        }
        let start = NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0));
        match start.and_then(|s| self.next_naive(s)) {
            Some(_) => Ok(()),
            None => Err(CronError::NeverFires(
                "no date in a full 400-year calendar cycle matches both the day-of-month and the day-of-week field"
                    .to_string(),
            )),
        }
    }
}

/// "day 30 never occurs in February", "days 30 and 31 never occur in April or June".
fn describe_missing_days(days: u32, nearest: u32, months: &[u32]) -> String {
    let listed: Vec<String> = (1..=31)
        .filter(|d| (days | nearest) & (1 << d) != 0)
        .map(|d| if days & (1 << d) == 0 { format!("{d}W") } else { d.to_string() })
        .collect();
    let months: Vec<&str> = months.iter().map(|&m| MONTH_FULL_NAMES[m as usize - 1]).collect();
    let (subject, verb) = if listed.len() == 1 {
        (format!("day {}", listed[0]), "occurs")
    } else {
        (format!("days {}", join(&listed, "and")), "occur")
    };
    format!("{subject} never {verb} in {}", join(&months, "or"))
}

fn join<S: AsRef<str>>(items: &[S], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., tail] => {
            let head: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} {last} {}", head.join(", "), tail.as_ref())
        }
    }
}

fn expand_shortcut(shortcut: &str) -> Result<&'static str, CronError> {
    Ok(match shortcut.to_ascii_lowercase().as_str() {
        "@hourly" => "0 * * * *",
        "@daily" | "@midnight" => "0 0 * * *",
        "@weekly" => "0 0 * * 0",
        "@monthly" => "0 0 1 * *",
        "@yearly" | "@annually" => "0 0 1 1 *",
        _ => return Err(CronError::UnknownShortcut(shortcut.to_string())),
    })
}

/// `*`, `v`, `a-b`, each optionally followed by `/step`, as a bit mask over the field's bounds.
fn parse_range(field: CronField, item: &str) -> Result<u64, String> {
    let (min, max) = field.bounds();
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => {
            if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("in `{item}` the step `{step}` is not a whole number"));
            }
            // Any step past the field's span selects only the start, as in Vixie cron.
            let step: u32 = step.parse().unwrap_or(u32::MAX);
            if step == 0 {
                return Err(format!("in `{item}` the step is 0, which never advances; a step must be at least 1"));
            }
            (base, Some(step))
        }
        None => (item, None),
    };
    let (lo, hi) = if base == "*" {
        (min, max)
    } else if let Some((a, b)) = base.split_once('-') {
        let (lo, hi) = (parse_value(field, a)?, parse_value(field, b)?);
        if hi < lo {
            return Err(format!(
                "the range `{base}` runs backwards; write the smaller value first (wrap-around ranges are not supported)"
            ));
        }
        (lo, hi)
    } else {
        let value = parse_value(field, base)?;
        (value, if step.is_some() { max } else { value })
    };
    let step = step.unwrap_or(1) as usize;
    Ok((lo..=hi).step_by(step).fold(0u64, |mask, v| mask | 1 << v))
}

/// A number within the field's bounds, or a month or weekday name.
fn parse_value(field: CronField, text: &str) -> Result<u32, String> {
    if let Some(i) = field.names().iter().position(|name| name.eq_ignore_ascii_case(text)) {
        return Ok(i as u32 + if field == CronField::Month { 1 } else { 0 });
    }
    parse_number(field, text)
}

fn parse_number(field: CronField, text: &str) -> Result<u32, String> {
    let (min, max) = field.bounds();
    if text.is_empty() {
        return Err(format!("a value is missing ({min}-{max})"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(match field {
            CronField::Month => format!("`{text}` is neither a number ({min}-{max}) nor a month name (JAN-DEC)"),
            CronField::DayOfWeek => format!("`{text}` is neither a number ({min}-{max}) nor a weekday name (SUN-SAT)"),
            _ => format!("`{text}` is not a number ({min}-{max})"),
        });
    }
    match text.parse::<u32>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("{text} is out of range ({min}-{max})")),
    }
}

/// The lowest set bit at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let rest = mask >> from << from;
    (rest != 0).then(|| rest.trailing_zeros())
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn max_days_in_month(month: u32) -> u32 {
    days_in_month(2000, month)
}

fn with_day(date: NaiveDate, day: u32) -> NaiveDate {
    date.with_day(day).unwrap_or(date)
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    match date.month() {
        12 => NaiveDate::from_ymd_opt(date.year() + 1, 1, 1),
        m => NaiveDate::from_ymd_opt(date.year(), m + 1, 1),
    }
}

/// The weekday nearest to day `n` of `date`'s month (`len` days), staying inside the month.
fn nearest_weekday(date: NaiveDate, n: u32, len: u32) -> u32 {
    match with_day(date, n).weekday().num_days_from_sunday() {
        6 if n == 1 => 3,
        6 => n - 1,
        0 if n == len => n - 2,
        0 => n + 1,
        _ => n,
    }
}

fn truncate_to_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0).and_then(|t| t.with_nanosecond(0)).unwrap_or(t)
}

fn utc_offset(tz: Tz, at: DateTime<Utc>) -> Duration {
    Duration::seconds(i64::from(tz.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc()))
}

/// The first whole minute in (`from`, `to`] whose offset differs from `offset`, given that `to`'s
/// does.
fn first_change(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>, offset: Duration) -> DateTime<Utc> {
    let (mut lo, mut hi) = (from, to);
    while hi - lo > ONE_MINUTE {
        let mid = lo + Duration::minutes((hi - lo).num_minutes() / 2);
        if utc_offset(tz, mid) == offset { lo = mid } else { hi = mid }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::*;

    impl CronExpr {
        /// The definition, checked minute by minute: what the jumping search must agree with.
        fn matches(&self, wall: NaiveDateTime) -> bool {
            self.months & (1 << wall.month()) != 0
                && self.day_matches(wall.date())
                && self.hours & (1 << wall.hour()) != 0
                && self.minutes & (1 << wall.minute()) != 0
        }
    }

    /// Brute force over real minutes (wildcard jobs) or wall-clock minutes (fixed-time jobs).
    fn slow_next(expr: &CronExpr, after: DateTime<Utc>, tz: Tz, limit_minutes: i64) -> Option<DateTime<Utc>> {
        if expr.wildcard {
            let start = truncate_to_minute(after.naive_utc()).and_utc();
            (1..=limit_minutes)
                .map(|m| start + Duration::minutes(m))
                .find(|t| expr.matches(t.with_timezone(&tz).naive_local()))
        } else {
            let start = truncate_to_minute(after.with_timezone(&tz).naive_local());
            (1..=limit_minutes).map(|m| start + Duration::minutes(m)).filter(|w| expr.matches(*w)).find_map(|w| {
                let t = match tz.from_local_datetime(&w) {
                    chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => t,
                    chrono::LocalResult::None => GapInfo::new(&w, &tz)?.end?,
                }
                .with_timezone(&Utc);
                (t > after).then_some(t)
            })
        }
    }

    #[test]
    fn the_jumping_search_agrees_with_a_minute_by_minute_scan_around_dst_changes() {
        let exprs = [
            "* * * * *",
            "*/15 * * * *",
            "0 * * * *",
            "*/30 2 * * *",
            "0 */2 * * *",
            "7 1-3 * * *",
            "30 2 * * *",
            "0,30 2 * * *",
            "45 1,2 * * *",
            "30 2-23/4 * * *",
            "15 0 * * *",
            "0 12 * * 0",
            "0 9 1-7,15-21 * 1",
            "*/20 * 28-31 * *",
        ];
        // Windows of a few days around a transition in each zone, starting at odd minutes.
        let windows = [
            ("Europe/Berlin", "2025-03-29T20:00:00Z"),
            ("Europe/Berlin", "2023-10-28T20:00:00Z"),
            ("America/New_York", "2025-11-01T20:00:00Z"),
            ("Australia/Sydney", "2019-10-05T10:00:00Z"),
            ("Australia/Lord_Howe", "2024-04-06T10:00:00Z"),
            ("Australia/Lord_Howe", "2024-10-05T10:00:00Z"),
            ("America/Sao_Paulo", "2018-11-03T20:00:00Z"),
            ("Pacific/Apia", "2011-12-29T00:00:00Z"),
        ];
        for (zone, start) in windows {
            let tz: Tz = zone.parse().unwrap();
            let start = DateTime::parse_from_rfc3339(start).unwrap().with_timezone(&Utc);
            for text in exprs {
                let expr = CronExpr::parse(text).unwrap();
                for step in (0..3 * 24 * 60).step_by(41) {
                    let after = start + Duration::minutes(step) + Duration::seconds(7);
                    let fast = expr.next_after(after, tz);
                    match slow_next(&expr, after, tz, 9 * 24 * 60) {
                        Some(slow) => assert_eq!(fast, Some(slow), "{text} in {zone} after {after}"),
                        None => assert!(fast > Some(after + Duration::days(9)), "{text} in {zone} after {after}"),
                    }
                }
            }
        }
    }

    #[test]
    fn next_bit_finds_the_next_allowed_value() {
        assert_eq!(next_bit(0b1010, 0), Some(1));
        assert_eq!(next_bit(0b1010, 2), Some(3));
        assert_eq!(next_bit(0b1010, 4), None);
        assert_eq!(next_bit(u64::MAX, 63), Some(63));
        assert_eq!(next_bit(u64::MAX, 64), None);
    }
}
