//! Cron expressions and cron schedules against the edge cases in sections A and B of
//! `edge-cases.md` (values marked ✔cronsim there), plus the parser's own rules.
//!
//! A check's next expected instant is the first occurrence strictly after its last signal; it is
//! "down" at that instant plus its grace. So "down at X" below is `deadline(...) == X`.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use telltale_domain::cron::{CronError, CronExpr};
use telltale_domain::schedule::{Schedule, ScheduleError};
use telltale_domain::span::Span;

/// An RFC 3339 instant, in UTC.
fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc)
}

fn tz(name: &str) -> Tz {
    name.parse().unwrap()
}

fn next(expr: &str, zone: &str, after: &str) -> DateTime<Utc> {
    CronExpr::parse(expr).unwrap().next_after(t(after), tz(zone)).unwrap()
}

/// The first `n` occurrences after `after`.
fn series(expr: &str, zone: &str, after: &str, n: usize) -> Vec<DateTime<Utc>> {
    Schedule::cron(expr, zone).unwrap().upcoming(t(after), n)
}

fn ts(values: &[&str]) -> Vec<DateTime<Utc>> {
    values.iter().map(|v| t(v)).collect()
}

fn deadline(schedule: &Schedule, last_signal: DateTime<Utc>, grace_secs: i64) -> DateTime<Utc> {
    schedule.next_expected(last_signal) + TimeDelta::seconds(grace_secs)
}

fn err(expr: &str) -> String {
    CronExpr::parse(expr).expect_err(expr).to_string()
}

/// Two expressions that fire at the same instants (in UTC, for a year of occurrences).
fn same_runs(a: &str, b: &str) {
    let (a_runs, b_runs) =
        (series(a, "UTC", "2024-01-01T00:00:00Z", 200), series(b, "UTC", "2024-01-01T00:00:00Z", 200));
    assert_eq!(a_runs, b_runs, "{a} vs {b}");
}

// ---------------------------------------------------------------------------------------------
// A. DST and time zones

#[test]
fn c01_spring_forward_daily_job_runs_right_after_the_jump() {
    let s = Schedule::cron("30 2 * * *", "Europe/Berlin").unwrap();
    let last = t("2025-03-29T02:30:10+01:00");
    assert_eq!(s.next_expected(last), t("2025-03-30T03:00:00+02:00"));
    assert_eq!(s.next_expected(last), t("2025-03-30T01:00:00Z"));
    // Grace 1 h: still only late at 03:30, down at 04:00 (02:00Z).
    let down = deadline(&s, last, 3600);
    assert_eq!(down, t("2025-03-30T04:00:00+02:00"));
    assert!(t("2025-03-30T03:30:00+02:00") < down);
    // A ping at 03:00:20 keeps it up; the run after that is the next day's 02:30.
    assert_eq!(s.next_expected(t("2025-03-30T03:00:20+02:00")), t("2025-03-31T02:30:00+02:00"));
    assert_eq!(s.next_expected(t("2025-03-30T03:00:00+02:00")), t("2025-03-31T02:30:00+02:00"));
}

#[test]
fn c01_spring_forward_los_angeles_is_not_pushed_to_the_next_day() {
    let s = Schedule::cron("0 2 * * *", "America/Los_Angeles").unwrap();
    let last = t("2025-03-08T02:00:00-08:00");
    assert_eq!(s.next_expected(last), t("2025-03-09T03:00:00-07:00"));
    assert_eq!(s.next_expected(last), t("2025-03-09T10:00:00Z"));
    assert_eq!(deadline(&s, last, 3600), t("2025-03-09T11:00:00Z"));
    assert_ne!(s.next_expected(last), t("2025-03-10T02:00:00-07:00"));
}

#[test]
fn c01_cronsim_riga_example() {
    // Riga jumps 03:00 -> 04:00 on 2021-03-28.
    assert_eq!(next("0 3 * * *", "Europe/Riga", "2021-03-27T03:00:00+02:00"), t("2021-03-28T04:00:00+03:00"));
}

#[test]
fn c01_several_slots_in_the_gap_fire_once() {
    let runs = series("0,30 2 * * *", "Europe/Berlin", "2025-03-29T23:00:00Z", 3);
    assert_eq!(runs, ts(&["2025-03-30T03:00:00+02:00", "2025-03-31T02:00:00+02:00", "2025-03-31T02:30:00+02:00"]));
}

#[test]
fn c02_fall_back_fixed_time_job_is_expected_once() {
    let s = Schedule::cron("0 2 * * *", "Europe/Berlin").unwrap();
    let last = t("2023-10-28T02:00:05+02:00");
    assert_eq!(s.next_expected(last), t("2023-10-29T02:00:00+02:00"));
    assert_eq!(s.next_expected(last), t("2023-10-29T00:00:00Z"));
    // After the 00:00:20Z ping the next run is the next day: nothing at 01:00Z (02:00 CET).
    let after_ping = s.next_expected(t("2023-10-29T00:00:20Z"));
    assert_eq!(after_ping, t("2023-10-30T02:00:00+01:00"));
    assert_eq!(after_ping, t("2023-10-30T01:00:00Z"));
    assert_eq!(deadline(&s, t("2023-10-29T00:00:20Z"), 1800), t("2023-10-30T01:30:00Z"));
    // A double-firing client's extra ping at 01:00Z changes nothing: same next expected run.
    assert_eq!(s.next_expected(t("2023-10-29T01:00:00Z")), after_ping);
    // Exactly one expected run on 10-29.
    let runs = s.upcoming(last, 2);
    assert_eq!(runs, ts(&["2023-10-29T00:00:00Z", "2023-10-30T01:00:00Z"]));
}

#[test]
fn c02_fall_back_new_york_one_run_at_the_first_pass() {
    let runs = series("30 1 * * *", "America/New_York", "2025-11-01T05:30:00Z", 2);
    assert_eq!(runs, ts(&["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]));
    assert_eq!(runs[0], t("2025-11-02T05:30:00Z"));
    assert!(!runs.contains(&t("2025-11-02T06:30:00Z")));
}

#[test]
fn c02_a_slot_whose_first_pass_is_over_is_not_replayed_in_the_second() {
    // 02:45 CEST (00:45Z) has passed; from 02:10 CET (01:10Z) the next run is the next day.
    assert_eq!(next("45 2 * * *", "Europe/Berlin", "2023-10-29T01:10:00Z"), t("2023-10-30T02:45:00+01:00"));
    assert_eq!(next("45 2 * * *", "Europe/Berlin", "2023-10-29T00:10:00Z"), t("2023-10-29T00:45:00Z"));
}

#[test]
fn c04_spring_forward_keeps_the_rest_of_the_day_for_multi_hour_steps() {
    let s = Schedule::cron("30 2-23/4 * * *", "Australia/Sydney").unwrap();
    let last = t("2019-10-05T22:30:00+10:00");
    assert_eq!(
        s.upcoming(last, 4),
        ts(&[
            "2019-10-06T03:00:00+11:00",
            "2019-10-06T06:30:00+11:00",
            "2019-10-06T10:30:00+11:00",
            "2019-10-06T14:30:00+11:00"
        ])
    );
    assert_ne!(s.next_expected(last), t("2019-10-07T02:30:00+11:00"));
    // A ping at 06:31 is on time for the 06:30 run (grace 30 min) and the next run is 10:30.
    let ping = t("2019-10-06T06:31:00+11:00");
    assert!(ping < deadline(&s, t("2019-10-06T03:00:00+11:00"), 1800));
    assert_eq!(s.next_expected(ping), t("2019-10-06T10:30:00+11:00"));
}

#[test]
fn c05_weekly_job_on_the_dst_start_day_does_not_slip_a_week() {
    let s = Schedule::cron("0 12 * * 0", "Europe/Berlin").unwrap();
    let last = t("2022-03-20T12:00:00+01:00");
    assert_eq!(s.next_expected(last), t("2022-03-27T12:00:00+02:00"));
    assert_eq!(s.next_expected(last), t("2022-03-27T10:00:00Z"));
    assert_eq!(deadline(&s, last, 3600), t("2022-03-27T13:00:00+02:00"));
}

#[test]
fn c07_a_utc_schedule_ignores_any_local_dst() {
    // Evaluation never looks at a host zone: there is none to look at.
    let s = Schedule::cron("30 1 * * *", "UTC").unwrap();
    let last = t("2022-10-29T01:30:00Z");
    assert_eq!(s.next_expected(last), t("2022-10-30T01:30:00Z"));
    assert_eq!(deadline(&s, last, 900), t("2022-10-30T01:45:00Z"));
    assert!(t("2022-10-30T01:30:05Z") < deadline(&s, last, 900));
}

#[test]
fn c08_the_time_zone_follows_dst_not_a_frozen_offset() {
    let s = Schedule::cron("0 7 * * *", "America/New_York").unwrap();
    assert_eq!(s.next_expected(t("2024-03-07T07:00:10-05:00")), t("2024-03-08T12:00:00Z"));
    assert_eq!(s.next_expected(t("2024-03-10T07:00:10-04:00")), t("2024-03-11T11:00:00Z"));
    // Daily pings at 07:00:10 local from 2024-02-15 through April: always on time (margin 5 min).
    let zone = tz("America/New_York");
    let mut last = t("2024-02-15T07:00:10-05:00");
    for _ in 0..60 {
        let expected = s.next_expected(last);
        let local = expected.with_timezone(&zone);
        assert_eq!(local.format("%H:%M:%S").to_string(), "07:00:00", "{expected}");
        let ping = expected + TimeDelta::seconds(10);
        assert!(ping < deadline(&s, last, 300));
        last = ping;
    }
}

#[test]
fn c10_interval_checks_are_dst_agnostic() {
    let s = Schedule::every(Span::from_secs(900)).unwrap();
    // Pings at 05:00Z .. 05:45Z, then 06:15Z: down at 06:05Z, up again at 06:15Z.
    assert_eq!(deadline(&s, t("2023-11-05T05:45:00Z"), 300), t("2023-11-05T06:05:00Z"));
    assert!(t("2023-11-05T06:15:00Z") > deadline(&s, t("2023-11-05T05:45:00Z"), 300));
    // Variant: a ping every 15 real minutes, across the repeated hour, never misses a deadline.
    let mut last = t("2023-11-05T05:00:00Z");
    for _ in 0..12 {
        let ping = last + TimeDelta::minutes(15);
        assert!(ping < deadline(&s, last, 300));
        last = ping;
    }
}

#[test]
fn c11_early_ping_from_a_client_in_another_zone_then_a_correct_down() {
    let s = Schedule::cron("0 8 * * *", "UTC").unwrap();
    let ping = t("2020-08-28T06:00:00Z");
    // Recorded as is, not snapped: next expected 08:00Z, down at 09:00Z.
    assert_eq!(s.next_expected(ping), t("2020-08-28T08:00:00Z"));
    assert_eq!(deadline(&s, ping, 3600), t("2020-08-28T09:00:00Z"));
    // The next day's 06:00Z ping is a signal like any other.
    assert_eq!(s.next_expected(t("2020-08-29T06:00:00Z")), t("2020-08-29T08:00:00Z"));
}

#[test]
fn c11_variant_window_job_waits_for_the_next_morning() {
    let s = Schedule::cron("*/5 9-23 * * *", "Europe/Berlin").unwrap();
    let last = t("2020-08-28T23:55:00+02:00");
    assert_eq!(s.next_expected(last), t("2020-08-29T09:00:00+02:00"));
    // No alert at 00:05 (grace 5 min).
    assert!(deadline(&s, last, 300) > t("2020-08-29T00:05:00+02:00"));
}

#[test]
fn wildcard_jobs_run_on_real_time_across_fall_back() {
    // Both passes of the repeated hour count.
    assert_eq!(
        series("0 * * * *", "Europe/Berlin", "2023-10-28T23:30:00Z", 3),
        ts(&["2023-10-29T00:00:00Z", "2023-10-29T01:00:00Z", "2023-10-29T02:00:00Z"])
    );
    assert_eq!(
        series("*/15 * * * *", "Europe/Berlin", "2023-10-29T00:40:00Z", 3),
        ts(&["2023-10-29T00:45:00Z", "2023-10-29T01:00:00Z", "2023-10-29T01:15:00Z"])
    );
    assert_eq!(
        series("*/30 2 * * *", "Europe/Berlin", "2023-10-28T23:00:00Z", 5),
        ts(&[
            "2023-10-29T00:00:00Z",
            "2023-10-29T00:30:00Z",
            "2023-10-29T01:00:00Z",
            "2023-10-29T01:30:00Z",
            "2023-10-30T01:00:00Z"
        ])
    );
}

#[test]
fn wildcard_jobs_invent_nothing_in_a_skipped_hour() {
    assert_eq!(
        series("0 * * * *", "Europe/Berlin", "2025-03-29T23:30:00Z", 3),
        ts(&["2025-03-30T00:00:00Z", "2025-03-30T01:00:00Z", "2025-03-30T02:00:00Z"])
    );
    // Every minute of 02:xx: none exists on 03-30.
    assert_eq!(next("* 2 * * *", "Europe/Berlin", "2025-03-30T00:00:00Z"), t("2025-03-31T02:00:00+02:00"));
    // `0 */2` is a wildcard job for Debian and cronsim (the hour field starts with `*`): 02:00 is
    // skipped, not moved to 03:00.
    assert_eq!(next("0 */2 * * *", "Europe/Berlin", "2025-03-29T23:00:00Z"), t("2025-03-30T04:00:00+02:00"));
}

#[test]
fn a_sparse_wildcard_job_finds_both_passes_far_ahead() {
    assert_eq!(
        series("*/30 2 29 10 *", "Europe/Berlin", "2023-06-01T00:00:00Z", 5),
        ts(&[
            "2023-10-29T00:00:00Z",
            "2023-10-29T00:30:00Z",
            "2023-10-29T01:00:00Z",
            "2023-10-29T01:30:00Z",
            "2024-10-29T02:00:00+01:00"
        ])
    );
    assert_eq!(next("* * 1 1 *", "Europe/Berlin", "2024-06-01T00:00:00Z"), t("2024-12-31T23:00:00Z"));
}

// ---------------------------------------------------------------------------------------------
// B. Cron expression semantics and parsing

#[test]
fn c13_day_of_month_and_day_of_week_are_ored_when_both_restricted() {
    assert_eq!(
        series("0 9 1-7,15-21 * 1", "UTC", "2021-12-07T10:00:00Z", 4),
        ts(&["2021-12-13T09:00:00Z", "2021-12-15T09:00:00Z", "2021-12-16T09:00:00Z", "2021-12-17T09:00:00Z"])
    );
    let s = Schedule::cron("0 9 1-7,15-21 * 1", "UTC").unwrap();
    assert_eq!(deadline(&s, t("2021-12-07T10:00:00Z"), 3600), t("2021-12-13T10:00:00Z"));
    assert_eq!(
        series("0 19 22 3 5", "UTC", "2024-03-22T00:00:00Z", 4),
        ts(&["2024-03-22T19:00:00Z", "2024-03-29T19:00:00Z", "2025-03-07T19:00:00Z", "2025-03-14T19:00:00Z"])
    );
}

#[test]
fn c14_a_day_field_starting_with_star_makes_the_rule_and() {
    let runs = series("0 0 */2 * 1", "UTC", "2024-12-31T00:00:00Z", 4);
    assert_eq!(
        runs,
        ts(&["2025-01-13T00:00:00Z", "2025-01-27T00:00:00Z", "2025-02-03T00:00:00Z", "2025-02-17T00:00:00Z"])
    );
    assert!(!runs.contains(&t("2025-01-01T00:00:00Z")));
    assert!(!runs.contains(&t("2025-01-06T00:00:00Z")));
}

#[test]
fn c16_weekday_numbering_in_hash_expressions() {
    assert_eq!(
        series("0 12 * * 5#3", "UTC", "1982-07-10T00:00:00Z", 2),
        ts(&["1982-07-16T12:00:00Z", "1982-08-20T12:00:00Z"])
    );
    assert_eq!(
        series("0 0 * * 7#2", "UTC", "2024-11-19T00:00:00Z", 2),
        ts(&["2024-12-08T00:00:00Z", "2025-01-12T00:00:00Z"])
    );
    assert_eq!(CronExpr::parse("0 0 * * THU#3"), CronExpr::parse("0 0 * * 4#3"));
    assert_eq!(CronExpr::parse("0 0 * * 7#2"), CronExpr::parse("0 0 * * sun#2"));
}

#[test]
fn c17_hash_four_never_matches_the_fifth_occurrence() {
    let runs = series("0 0 * * 6#4", "UTC", "2024-08-02T00:00:00Z", 6);
    assert_eq!(
        runs,
        ts(&[
            "2024-08-24T00:00:00Z",
            "2024-09-28T00:00:00Z",
            "2024-10-26T00:00:00Z",
            "2024-11-23T00:00:00Z",
            "2024-12-28T00:00:00Z",
            "2025-01-25T00:00:00Z"
        ])
    );
    assert!(!runs.contains(&t("2024-08-31T00:00:00Z")));
    assert!(!runs.contains(&t("2024-11-30T00:00:00Z")));
}

#[test]
fn c19_nearest_weekday_never_crosses_a_month_boundary() {
    // 2022-10-15 is a Saturday: Friday the 14th.
    assert_eq!(next("0 9 15W * *", "UTC", "2022-10-01T00:00:00Z"), t("2022-10-14T09:00:00Z"));
    // 2022-10-01 is a Saturday: Monday the 3rd, not Friday 09-30.
    assert_eq!(next("0 9 1W * *", "UTC", "2022-09-02T00:00:00Z"), t("2022-10-03T09:00:00Z"));
    // 2022-07-31 is a Sunday: back to Friday the 29th, for 31W and LW alike.
    assert_eq!(next("0 9 31W * *", "UTC", "2022-07-01T00:00:00Z"), t("2022-07-29T09:00:00Z"));
    assert_eq!(next("0 9 LW * *", "UTC", "2022-07-01T00:00:00Z"), t("2022-07-29T09:00:00Z"));
    // A weekday stays put; 31W does not fire in a 30-day month.
    assert_eq!(next("0 9 15W * *", "UTC", "2022-11-01T00:00:00Z"), t("2022-11-15T09:00:00Z"));
    assert_eq!(next("0 9 31W * *", "UTC", "2022-09-01T00:00:00Z"), t("2022-10-31T09:00:00Z"));
}

#[test]
fn c20_steps_that_do_not_divide_the_range_restart_at_the_boundary() {
    assert_eq!(
        series("*/7 * * * *", "UTC", "2024-01-01T10:50:00Z", 4),
        ts(&["2024-01-01T10:56:00Z", "2024-01-01T11:00:00Z", "2024-01-01T11:07:00Z", "2024-01-01T11:14:00Z"])
    );
    assert_eq!(
        series("*/59 * * * *", "UTC", "2024-01-01T10:01:00Z", 3),
        ts(&["2024-01-01T10:59:00Z", "2024-01-01T11:00:00Z", "2024-01-01T11:59:00Z"])
    );
    assert_eq!(
        series("*/40 * * * *", "UTC", "2024-01-01T03:00:00Z", 3),
        ts(&["2024-01-01T03:40:00Z", "2024-01-01T04:00:00Z", "2024-01-01T04:40:00Z"])
    );
    // After the 10:56 ping the next expected instant is 11:00, not 11:03.
    let s = Schedule::cron("*/7 * * * *", "UTC").unwrap();
    assert_eq!(s.next_expected(t("2024-01-01T10:56:00Z")), t("2024-01-01T11:00:00Z"));
}

#[test]
fn c22_impossible_dates_and_zero_steps_are_rejected() {
    assert_eq!(err("0 0 30 2 *"), "the schedule never fires: day 30 never occurs in February");
    assert_eq!(err("* * 31 2 *"), "the schedule never fires: day 31 never occurs in February");
    assert_eq!(err("0 0 31 4 *"), "the schedule never fires: day 31 never occurs in April");
    assert_eq!(err("0 0 30,31 2 *"), "the schedule never fires: days 30 and 31 never occur in February");
    assert_eq!(err("0 0 31 4,6 *"), "the schedule never fires: day 31 never occurs in April or June");
    assert!(err("*/0 * * * *").contains("step is 0"));
    for bad in ["0 0 30 2 *", "* * 31 2 *", "0 0 31 4 *", "*/0 * * * *"] {
        assert!(matches!(Schedule::cron(bad, "UTC"), Err(ScheduleError::Cron(_))), "{bad}");
    }
}

#[test]
fn c22_do_not_over_reject_day_31() {
    assert_eq!(
        series("0 0 31 * *", "UTC", "2024-01-01T00:00:00Z", 3),
        ts(&["2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z"])
    );
    // Feb 29 exists (in leap years), and the OR rule can rescue an impossible day.
    assert_eq!(next("0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z"), t("2028-02-29T00:00:00Z"));
    assert_eq!(next("0 0 30 2 MON", "UTC", "2025-01-01T00:00:00Z"), t("2025-02-03T00:00:00Z"));
}

#[test]
fn c22_rarer_never_firing_combinations_are_caught_too() {
    // AND rule: days 1 and 31 of February that are also its fifth Monday.
    assert!(matches!(CronExpr::parse("0 0 */30 2 1#5"), Err(CronError::NeverFires(_))));
    // AND rule: a nearest weekday that must be a Sunday.
    assert!(matches!(CronExpr::parse("0 0 15W * */7"), Err(CronError::NeverFires(_))));
}

#[test]
fn c23_six_field_expressions_are_refused() {
    for six in ["0 * * * * *", "0 15 */1 * * *", "45 12 * * TUE,THU *"] {
        assert_eq!(CronExpr::parse(six), Err(CronError::FieldCount(6)), "{six}");
        assert!(err(six).starts_with("telltale takes five fields (minute hour day month weekday), got 6"));
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

#[test]
fn names_are_case_insensitive_and_sunday_is_0_or_7() {
    assert_eq!(CronExpr::parse("0 0 * jan mon-fri"), CronExpr::parse("0 0 * 1 1-5"));
    assert_eq!(CronExpr::parse("0 0 * JAN,Dec Sat,sun"), CronExpr::parse("0 0 * 1,12 6,0"));
    assert_eq!(CronExpr::parse("0 0 * * 0"), CronExpr::parse("0 0 * * 7"));
    assert_eq!(CronExpr::parse("0 0 * * SUN"), CronExpr::parse("0 0 * * 7"));
    assert_eq!(CronExpr::parse("0 0 * * 5L"), CronExpr::parse("0 0 * * fril"));
}

#[test]
fn steps_ranges_and_lists_expand_within_the_field() {
    same_runs("5/15 * * * *", "5,20,35,50 * * * *");
    same_runs("1-30/4 * * * *", "1,5,9,13,17,21,25,29 * * * *");
    same_runs("*/15 * * * *", "0,15,30,45 * * * *");
    same_runs("0 0 * * 1-7", "0 0 * * *");
    same_runs("0 0 * * */2", "0 0 * * 0,2,4,6");
    same_runs("0 9-17/4 * * *", "0 9,13,17 * * *");
    assert_eq!(CronExpr::parse("0 0 * * mon-fri/2"), CronExpr::parse("0 0 * * 1,3,5"));
}

#[test]
fn shortcuts_expand_to_their_five_fields() {
    assert_eq!(CronExpr::parse("@hourly"), CronExpr::parse("0 * * * *"));
    assert_eq!(CronExpr::parse("@daily"), CronExpr::parse("0 0 * * *"));
    assert_eq!(CronExpr::parse("@midnight"), CronExpr::parse("0 0 * * *"));
    assert_eq!(CronExpr::parse("@weekly"), CronExpr::parse("0 0 * * 0"));
    assert_eq!(CronExpr::parse("@monthly"), CronExpr::parse("0 0 1 * *"));
    assert_eq!(CronExpr::parse("@yearly"), CronExpr::parse("0 0 1 1 *"));
    assert_eq!(CronExpr::parse("@ANNUALLY"), CronExpr::parse("0 0 1 1 *"));
    assert!(CronExpr::parse("@hourly").unwrap().is_wildcard());
    assert!(!CronExpr::parse("@daily").unwrap().is_wildcard());
    assert_eq!(
        err("@reboot"),
        "`@reboot` is not a known shortcut; use @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually"
    );
    assert_eq!(CronExpr::parse("@daily 5"), Err(CronError::FieldCount(2)));
}

#[test]
fn last_day_and_last_weekday_of_month() {
    assert_eq!(
        series("0 0 L * *", "UTC", "2024-01-15T00:00:00Z", 3),
        ts(&["2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"])
    );
    // The last Friday of each month.
    assert_eq!(
        series("0 0 * * 5L", "UTC", "2024-01-01T00:00:00Z", 3),
        ts(&["2024-01-26T00:00:00Z", "2024-02-23T00:00:00Z", "2024-03-29T00:00:00Z"])
    );
    // Fifth Friday only in months that have one.
    assert_eq!(
        series("0 0 * * 5#5", "UTC", "2024-01-01T00:00:00Z", 2),
        ts(&["2024-03-29T00:00:00Z", "2024-05-31T00:00:00Z"])
    );
}

#[test]
fn errors_name_the_field_and_the_problem() {
    assert_eq!(err(""), "the cron expression is empty");
    assert_eq!(err("   "), "the cron expression is empty");
    assert_eq!(err("* * * *"), "telltale takes five fields (minute hour day month weekday), got 4");
    assert_eq!(
        err("*/0 * * * *"),
        "the minute field `*/0` is invalid: in `*/0` the step is 0, which never advances; a step must be at least 1"
    );
    assert_eq!(err("60 * * * *"), "the minute field `60` is invalid: 60 is out of range (0-59)");
    assert_eq!(err("0 24 * * *"), "the hour field `24` is invalid: 24 is out of range (0-23)");
    assert_eq!(err("0 0 0 * *"), "the day-of-month field `0` is invalid: 0 is out of range (1-31)");
    assert_eq!(err("0 0 * 13 *"), "the month field `13` is invalid: 13 is out of range (1-12)");
    assert_eq!(err("0 0 * * 8"), "the day-of-week field `8` is invalid: 8 is out of range (0-7)");
    assert_eq!(
        err("0 0 * FOO *"),
        "the month field `FOO` is invalid: `FOO` is neither a number (1-12) nor a month name (JAN-DEC)"
    );
    assert_eq!(err("MON * * * *"), "the minute field `MON` is invalid: `MON` is not a number (0-59)");
    assert_eq!(
        err("0 0 * * MONDAY"),
        "the day-of-week field `MONDAY` is invalid: `MONDAY` is neither a number (0-7) nor a weekday name (SUN-SAT)"
    );
    assert_eq!(
        err("1,,2 * * * *"),
        "the minute field `1,,2` is invalid: it has an empty list entry (check for a stray comma)"
    );
    assert_eq!(
        err("30-10 * * * *"),
        "the minute field `30-10` is invalid: the range `30-10` runs backwards; write the smaller value first \
         (wrap-around ranges are not supported)"
    );
    assert!(err("0 0 * * FRI-MON").contains("runs backwards"));
    assert_eq!(err("5- * * * *"), "the minute field `5-` is invalid: a value is missing (0-59)");
    assert!(err("*/x * * * *").contains("the step `x` is not a whole number"));
    assert!(err("*/-1 * * * *").contains("not a whole number"));
    assert!(err("0 0 * * 1#6").contains("the number after # must be 1 to 5"));
    assert!(err("0 0 * * 1#0").contains("the number after # must be 1 to 5"));
    assert!(err("0 0 * * L").contains("L needs a weekday before it"));
    assert!(err("0 0 32W * *").contains("32 is out of range (1-31)"));
    assert!(err("0 0 L/2 * *").contains("day-of-month"));
    assert!(err("99999999999 * * * *").contains("out of range"));
}

#[test]
fn big_steps_select_only_the_start_as_in_vixie_cron() {
    same_runs("*/100 * * * *", "0 * * * *");
    same_runs("10/99999999999 * * * *", "10 * * * *");
}

// ---------------------------------------------------------------------------------------------
// Schedule

#[test]
fn schedule_cron_validates_the_zone() {
    assert_eq!(
        Schedule::cron("0 2 * * *", "Europe/Berln").unwrap_err().to_string(),
        "unknown time zone `Europe/Berln`; use an IANA name such as Europe/Berlin"
    );
    assert_eq!(
        Schedule::cron("0 2 * * *", "Europe/Berln"),
        Err(ScheduleError::UnknownTimeZone("Europe/Berln".to_string()))
    );
    assert!(Schedule::cron("0 2 * * *", "Europe/Berlin").unwrap().is_cron());
    assert!(!Schedule::every(Span::from_secs(60)).unwrap().is_cron());
    assert_eq!(
        Schedule::cron(" 0 2 * * * ", "Europe/Berlin").unwrap(),
        Schedule::Cron { expression: "0 2 * * *".into(), timezone: "Europe/Berlin".into() }
    );
}

#[test]
fn schedule_cron_serialises_with_its_kind() {
    let s = Schedule::cron("0 2 * * *", "Europe/Berlin").unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json, serde_json::json!({"kind": "cron", "expression": "0 2 * * *", "timezone": "Europe/Berlin"}));
    assert_eq!(serde_json::from_value::<Schedule>(json).unwrap(), s);
    // `every` is unchanged: events already stored read back.
    let every = Schedule::every(Span::from_secs(900)).unwrap();
    assert_eq!(serde_json::to_value(&every).unwrap(), serde_json::json!({"kind": "every", "period": 900_000}));
}

#[test]
fn upcoming_lists_the_next_expected_instants() {
    let every = Schedule::every(Span::from_secs(900)).unwrap();
    assert_eq!(
        every.upcoming(t("2024-01-01T00:00:00Z"), 3),
        ts(&["2024-01-01T00:15:00Z", "2024-01-01T00:30:00Z", "2024-01-01T00:45:00Z"])
    );
    let cron = Schedule::cron("0 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        cron.upcoming(t("2025-03-28T12:00:00Z"), 5),
        ts(&[
            "2025-03-29T02:00:00+01:00",
            "2025-03-30T03:00:00+02:00",
            "2025-03-31T02:00:00+02:00",
            "2025-04-01T02:00:00+02:00",
            "2025-04-02T02:00:00+02:00"
        ])
    );
    assert!(cron.upcoming(t("2025-03-28T12:00:00Z"), 0).is_empty());
}

#[test]
fn occurrences_are_whole_minutes_strictly_after() {
    assert_eq!(next("* * * * *", "UTC", "2024-01-01T10:00:00Z"), t("2024-01-01T10:01:00Z"));
    assert_eq!(next("* * * * *", "UTC", "2024-01-01T10:00:59.999Z"), t("2024-01-01T10:01:00Z"));
    assert_eq!(next("0 10 * * *", "Asia/Kolkata", "2024-01-01T04:30:00Z"), t("2024-01-02T10:00:00+05:30"));
    assert_eq!(next("0 10 * * *", "Asia/Kolkata", "2024-01-01T04:29:59Z"), t("2024-01-01T10:00:00+05:30"));
}

#[test]
fn many_searches_finish_without_timing_assertions() {
    // Not a benchmark: exercises long jumps and dense schedules to show the searches are bounded.
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kolkata"];
    let exprs = ["* * * * *", "*/7 */3 * * *", "30 2 * * *", "0 0 29 2 *", "0 0 * 2 1#5", "0 0 L 2 *", "0 9 1W * *"];
    for zone in zones {
        for expr in exprs {
            let s = Schedule::cron(expr, zone).unwrap();
            let runs = s.upcoming(t("2010-01-01T00:00:00Z"), 200);
            assert!(runs.windows(2).all(|w| w[0] < w[1]), "{expr} in {zone}");
            assert!(runs.iter().all(|r| r.timestamp() % 60 == 0), "{expr} in {zone}");
        }
    }
}
