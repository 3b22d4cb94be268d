//! The alert state machine: what a fact changes in a monitor's alerts under its [`Policy`].
//! Pure; called by [`crate::monitor`] for every fact, live and in replay alike.
//!
//! One alert per monitor and cause. Its life:
//! - it **opens** when the policy says the trouble is real: `failure_tolerance` failed runs (or
//!   a failure ratio) and no success within `retry_window`; more than `missed_tolerance`
//!   missed slots; a hung run. Failures fixed in time are recorded as `FailureRecovered`.
//! - it is **held** (recorded, not announced) while the monitor is silenced, in maintenance or
//!   flapping; when that ends, an alert still open is announced (timers counted from the end:
//!   a miss gets a fresh deadline, a failure its retry window), one that recovered meanwhile is
//!   resolved once, and an announced alert whose trouble is unchanged is not announced again.
//! - it **resolves** after `recovery_threshold` good signals in a row.
//! - more than `flapping_threshold` changes within `flapping_window` open one `flapping` alert
//!   instead, which resolves once the monitor has been stable for a whole window.
//! - while open and unacknowledged it is **reminded** of every `realert_every` and
//!   **escalated** to `escalate_to` after `escalate_after`; acknowledging stops both.

use chrono::{DateTime, Utc};

use crate::Aggregate;
use crate::monitor::*;
use crate::policy::{FailureTolerance, HoldReason};

/// Events built one at a time, each folded before the next is decided (alert ids follow).
struct Out {
    state: Monitor,
    events: Vec<MonitorEvent>,
}

impl Out {
    fn new(state: &Monitor) -> Out {
        Out { state: state.clone(), events: Vec::new() }
    }
    fn push(&mut self, event: MonitorEvent) {
        self.state = MonitorAggregate::evolve(std::mem::take(&mut self.state), &event);
        self.events.push(event);
    }
}

fn flapping_active(state: &Monitor) -> bool {
    state.alerts.get(&AlertCause::Flapping).is_some_and(|a| a.recovered_at.is_none())
}

/// Whether an alert of `cause` may be announced now.
fn releasable(state: &Monitor, cause: AlertCause) -> bool {
    state.hold().is_none() && (cause == AlertCause::Flapping || !flapping_active(state))
}

/// The trouble of `cause` is real at `at`: open its alert (held if need be), announce a held
/// one, or continue a recovered one.
fn open(out: &mut Out, cause: AlertCause, at: DateTime<Utc>, message: String) {
    let s = &out.state;
    if let Some(alert) = s.alerts.get(&cause) {
        let event = if alert.recovered_at.is_some() {
            MonitorEvent::AlertRecurred(AlertRecurred { alert_id: alert.alert_id, cause, at, message })
        } else if alert.held.is_some() && releasable(s, cause) {
            announced(alert, cause, at)
        } else {
            return;
        };
        out.push(event);
        return;
    }
    let held = s.hold().or((cause != AlertCause::Flapping && flapping_active(s)).then_some(HoldReason::Flapping));
    if held.is_none()
        && cause != AlertCause::Flapping
        && let Some((threshold, window)) = s.policy().flapping()
    {
        let recent = s.changes.iter().filter(|c| **c > at - window.to_delta()).count();
        if recent + 1 > threshold as usize {
            out.push(MonitorEvent::AlertOpened(AlertOpened {
                alert_id: s.next_alert_id(),
                cause: AlertCause::Flapping,
                opened_at: at,
                message: format!(
                    "{} is flapping: {} changes of state within {window}; its alerts are held until it is stable for {window}",
                    s.slug,
                    recent + 1
                ),
                held: None,
            }));
            let alert_id = out.state.next_alert_id();
            out.push(MonitorEvent::AlertOpened(AlertOpened {
                alert_id,
                cause,
                opened_at: at,
                message,
                held: Some(HoldReason::Flapping),
            }));
            return;
        }
    }
    let alert_id = s.next_alert_id();
    out.push(MonitorEvent::AlertOpened(AlertOpened { alert_id, cause, opened_at: at, message, held }));
}

/// The trouble of `cause` is over at `at`.
fn resolve(out: &mut Out, cause: AlertCause, at: DateTime<Utc>, message: String) {
    let s = &out.state;
    let Some(alert) = s.alerts.get(&cause) else { return };
    if alert.recovered_at.is_some() {
        return;
    }
    let event = if alert.held.is_some() {
        resolved(alert, cause, at, message, true)
    } else if !releasable(s, cause) {
        MonitorEvent::AlertRecovered(AlertRecovered { alert_id: alert.alert_id, cause, at, message })
    } else {
        resolved(alert, cause, at, message, false)
    };
    out.push(event);
}

fn announced(alert: &OpenAlert, cause: AlertCause, at: DateTime<Utc>) -> MonitorEvent {
    MonitorEvent::AlertAnnounced(AlertAnnounced {
        alert_id: alert.alert_id,
        cause,
        opened_at: alert.opened_at,
        at,
        message: alert.message.clone(),
    })
}

fn resolved(alert: &OpenAlert, cause: AlertCause, at: DateTime<Utc>, message: String, quiet: bool) -> MonitorEvent {
    MonitorEvent::AlertResolved(AlertResolved {
        alert_id: alert.alert_id,
        cause,
        opened_at: alert.opened_at,
        resolved_at: at,
        message,
        quiet,
    })
}

/// Resolves `cause` once its good streak reaches the recovery threshold.
fn resolve_on_streak(out: &mut Out, cause: AlertCause, at: DateTime<Utc>, message: impl FnOnce() -> String) {
    let threshold = out.state.policy().recovery_threshold;
    if out.state.alerts.get(&cause).is_some_and(|a| a.good_streak >= threshold) {
        resolve(out, cause, at, message());
    }
}

/// A hold ended (or flapping settled): resolutions that waited are announced; after flapping,
/// alerts it held are announced at once (the monitor has been stable, in trouble, for a whole
/// window). Alerts held by a silence or maintenance have their own timers (see [`hold_may_end`]).
fn release(out: &mut Out, at: DateTime<Utc>, flapping_settled: bool) {
    if out.state.hold().is_some() {
        return;
    }
    if let Some(alert) = out.state.alerts.get(&AlertCause::Flapping)
        && alert.recovered_at.is_some()
    {
        let message = format!("{} is stable again", out.state.slug);
        let event = resolved(alert, AlertCause::Flapping, at, message, false);
        out.push(event);
    }
    if flapping_active(&out.state) {
        return;
    }
    let alerts: Vec<(AlertCause, OpenAlert)> = out.state.alerts.iter().map(|(c, a)| (*c, a.clone())).collect();
    for (cause, alert) in alerts {
        if let Some(since) = alert.recovered_at {
            let message = format!(
                "{}: {} ended at {} (alerts were held until {})",
                out.state.slug,
                what(cause),
                rfc3339(since),
                rfc3339(at)
            );
            out.push(resolved(&alert, cause, at, message, false));
        } else if flapping_settled && alert.held.is_some() {
            out.push(announced(&alert, cause, at));
        }
    }
}

fn what(cause: AlertCause) -> &'static str {
    match cause {
        AlertCause::Missed => "the outage (no signal)",
        AlertCause::Failed => "the failure",
        AlertCause::TimedOut => "the hung run",
        AlertCause::Flapping => "the flapping",
    }
}

/// A silence or maintenance window just ended (in `evolve`): timers restart from its end.
/// Held alerts get their chance again: a miss a fresh deadline counted from the end, a failure
/// its retry window, a hung run or flapping an announcement at once.
pub(crate) fn hold_may_end(state: &mut Monitor, at: DateTime<Utc>) {
    if state.hold().is_some() {
        return;
    }
    state.hold_ended_at = Some(at);
    if let Some(pending) = &mut state.pending_failure {
        pending.since = pending.since.max(at);
    }
    if flapping_active(state) {
        return;
    }
    let retry = state.policy().retry_window.to_delta();
    let rearmed = state.deadline_after(at);
    let mut rearm = false;
    for (cause, alert) in state.alerts.iter_mut().filter(|(_, a)| a.held.is_some()) {
        match cause {
            AlertCause::Missed => rearm = true,
            AlertCause::Failed => alert.announce_at = Some(at + retry),
            AlertCause::TimedOut | AlertCause::Flapping => alert.announce_at = Some(at),
        }
    }
    if rearm {
        state.deadline = rearmed;
        state.late = false;
    }
}

/// Remembers an alert's change of state, for flapping (in `evolve`). Changes while the monitor
/// is silenced or in maintenance do not count: trouble then is expected.
pub(crate) fn count_change(state: &mut Monitor, cause: AlertCause, at: DateTime<Utc>) {
    if cause == AlertCause::Flapping || state.hold().is_some() {
        return;
    }
    let Some((threshold, window)) = state.policy().flapping() else {
        state.changes.clear();
        return;
    };
    state.changes.push(at);
    let from = at - window.to_delta();
    state.changes.retain(|c| *c > from);
    let keep = threshold as usize + 1;
    if state.changes.len() > keep {
        state.changes.drain(..state.changes.len() - keep);
    }
}

/// Counts a finished run toward the failure tolerance (in `evolve`): once reached, the failure
/// pages at `since + retry_window` unless a run succeeds first.
pub(crate) fn count_run(state: &mut Monitor, run: &RunFinished, completed: bool) {
    let policy = state.policy();
    match policy.ratio_window() {
        Some(window) => {
            let from = run.at - window.to_delta();
            state.failures.recent.push((run.at, !completed));
            state.failures.recent.retain(|(t, _)| *t > from);
            if state.failures.recent.len() > MAX_RECENT {
                let cut = state.failures.recent.len() - MAX_RECENT;
                state.failures.recent.drain(..cut);
            }
        }
        None => state.failures.recent.clear(),
    }
    if completed {
        if let Some(alert) = state.alerts.get_mut(&AlertCause::Failed) {
            alert.good_streak = alert.good_streak.saturating_add(1);
        }
        state.failures.consecutive = 0;
        state.failures.first_at = None;
        state.pending_failure = None;
        return;
    }
    state.failures.consecutive = state.failures.consecutive.saturating_add(1);
    state.failures.first_at.get_or_insert(run.at);
    if let Some(alert) = state.alerts.get_mut(&AlertCause::Failed) {
        alert.good_streak = 0;
        if alert.recovered_at.is_none() {
            return;
        }
    }
    if state.pending_failure.is_some() {
        return;
    }
    let code = run.exit_code.map(|c| format!(" with exit code {c}")).unwrap_or_default();
    let message = match policy.failure_tolerance {
        FailureTolerance::Consecutive(n) if state.failures.consecutive >= n => {
            if n <= 1 {
                format!("{}: run {} failed{code}", state.slug, run.run_id)
            } else {
                format!(
                    "{}: {} runs failed in a row, the last ({}){code}",
                    state.slug, state.failures.consecutive, run.run_id
                )
            }
        }
        FailureTolerance::Ratio(r) => {
            let total = state.failures.recent.len() as u32;
            let failed = state.failures.recent.iter().filter(|(_, f)| *f).count() as u32;
            if total < r.min_runs || !r.ratio.reached(failed, total) {
                return;
            }
            format!(
                "{}: {failed} of the {total} runs in the last {} failed (alerting at {}), the last ({}){code}",
                state.slug, r.window, r.ratio, run.run_id
            )
        }
        FailureTolerance::Consecutive(_) => return,
    };
    state.pending_failure = Some(PendingFailure { since: run.at, message });
}

/// Offers the policy's own timers to [`Monitor::next_due`]: a failure's page, a held alert's
/// announcement, a flapping monitor settling, reminders and escalations.
pub(crate) fn offer_wakes(state: &Monitor, offer: &mut impl FnMut(DateTime<Utc>, Wake)) {
    let policy = state.policy();
    if let Some(pending) = &state.pending_failure {
        offer(pending.since + policy.retry_window.to_delta(), Wake::FailurePages);
    }
    if let Some(flapping) = state.alerts.get(&AlertCause::Flapping)
        && flapping.recovered_at.is_none()
    {
        let last = state.changes.last().copied().unwrap_or(flapping.opened_at).max(flapping.opened_at);
        offer(last + policy.flapping_window.to_delta(), Wake::FlappingSettles);
    }
    for (cause, alert) in &state.alerts {
        if alert.held.is_some() {
            if let Some(at) = alert.announce_at
                && releasable(state, *cause)
            {
                offer(at, Wake::Announce(*cause));
            }
            continue;
        }
        if alert.recovered_at.is_some() || alert.acknowledged_at.is_some() || !releasable(state, *cause) {
            continue;
        }
        let since = |t: Option<DateTime<Utc>>| {
            let t = t.unwrap_or(alert.opened_at);
            state.hold_ended_at.map_or(t, |end| t.max(end))
        };
        if let Some(every) = policy.reminders() {
            offer(since(alert.last_notified_at) + every.to_delta(), Wake::Remind(*cause));
        }
        if let Some((after, _)) = policy.escalation()
            && alert.escalated_at.is_none()
        {
            offer(since(alert.announced_at) + after.to_delta(), Wake::Escalate(*cause));
        }
    }
}

/// The events of one of the policy's own wakes.
pub(crate) fn policy_wake(state: &Monitor, at: DateTime<Utc>, wake: Wake) -> Vec<MonitorEvent> {
    let mut out = Out::new(state);
    let policy = state.policy();
    match wake {
        Wake::FailurePages => {
            let Some(pending) = &state.pending_failure else { return vec![] };
            let message = if policy.retry_window.is_zero() {
                pending.message.clone()
            } else {
                format!("{}; no run succeeded within {}", pending.message, policy.retry_window)
            };
            open(&mut out, AlertCause::Failed, at, message);
        }
        Wake::Announce(cause) => {
            let Some(alert) = state.alerts.get(&cause) else { return vec![] };
            out.push(announced(alert, cause, at));
        }
        Wake::FlappingSettles => {
            let message = format!("{} has been stable for {}", state.slug, policy.flapping_window);
            resolve(&mut out, AlertCause::Flapping, at, message);
            release(&mut out, at, true);
        }
        Wake::Remind(cause) => {
            let Some(alert) = state.alerts.get(&cause) else { return vec![] };
            let reminder = alert.reminders + 1;
            out.push(MonitorEvent::AlertReminded(AlertReminded {
                alert_id: alert.alert_id,
                cause,
                opened_at: alert.opened_at,
                at,
                reminder,
                message: format!(
                    "still open since {} (reminder {reminder}): {}",
                    rfc3339(alert.opened_at),
                    alert.message
                ),
            }));
        }
        Wake::Escalate(cause) => {
            let Some(alert) = state.alerts.get(&cause) else { return vec![] };
            out.push(MonitorEvent::AlertEscalated(AlertEscalated {
                alert_id: alert.alert_id,
                cause,
                opened_at: alert.opened_at,
                at,
                channels: policy.escalate_to.clone(),
                message: format!(
                    "unacknowledged for {}, escalated to {}: {}",
                    policy.escalate_after,
                    policy.escalate_to.join(", "),
                    alert.message
                ),
            }));
        }
        _ => return vec![],
    }
    out.events
}

/// What one new fact changes, given the state before and after it: alerts that open, resolve,
/// recur or wait, transient failures, early signals. Applied fact by fact, live and in replay
/// alike; `at` is the fact's time.
pub fn react(before: &Monitor, after: &Monitor, fact: &MonitorEvent, at: DateTime<Utc>) -> Vec<MonitorEvent> {
    let mut out = Out::new(after);
    let slug = after.slug.clone();
    let alive = || format!("{slug} is alive again");
    let no_hung = after.hung_runs().next().is_none();
    match fact {
        MonitorEvent::HeartbeatReceived(_) => {
            resolve_on_streak(&mut out, AlertCause::Missed, at, alive);
            resolve_on_streak(&mut out, AlertCause::Failed, at, || format!("{slug} reports healthy again"));
            transient(before, &mut out, at, None);
        }
        MonitorEvent::RunStarted(_) | MonitorEvent::RunProgressed(_) => {
            resolve_on_streak(&mut out, AlertCause::Missed, at, alive);
        }
        MonitorEvent::RunCompleted(run) => {
            resolve_on_streak(&mut out, AlertCause::Missed, at, alive);
            let done = || format!("{slug}: run {} completed", run.run_id);
            resolve_on_streak(&mut out, AlertCause::Failed, at, done);
            if no_hung {
                resolve(&mut out, AlertCause::TimedOut, at, done());
            }
            transient(before, &mut out, at, Some(run.run_id.clone()));
        }
        MonitorEvent::RunFailed(run) => {
            resolve_on_streak(&mut out, AlertCause::Missed, at, alive);
            if no_hung {
                resolve(&mut out, AlertCause::TimedOut, at, format!("{slug}: run {} finished", run.run_id));
            }
        }
        MonitorEvent::HeartbeatMissed(_) | MonitorEvent::RunSkipped(_) => missed(&mut out, fact, at),
        MonitorEvent::RunTimedOut(e) => {
            let message = format!(
                "{slug}: run {} started at {} and has not finished within {}",
                e.run_id,
                rfc3339(e.started_at),
                e.max_runtime
            );
            open(&mut out, AlertCause::TimedOut, at, message);
        }
        MonitorEvent::MonitorPaused(_) | MonitorEvent::MonitorDeleted(_) => {
            let done = if matches!(fact, MonitorEvent::MonitorPaused(_)) { "paused" } else { "deleted" };
            let alerts: Vec<(AlertCause, OpenAlert)> = after.alerts.iter().map(|(c, a)| (*c, a.clone())).collect();
            for (cause, alert) in alerts {
                out.push(resolved(&alert, cause, at, format!("{slug} was {done}"), alert.held.is_some()));
            }
        }
        MonitorEvent::SilenceLifted(_) | MonitorEvent::SilenceExpired(_) | MonitorEvent::MaintenanceEnded(_)
            if before.hold().is_some() && after.hold().is_none() =>
        {
            release(&mut out, at, false);
        }
        MonitorEvent::ClientDefaultsApplied(_) | MonitorEvent::MonitorReconfigured(_) => {
            // A window that was removed, or no longer covers this monitor, ends now.
            let tags = after.config.as_ref().map(|c| c.tags.clone()).unwrap_or_default();
            let ended: Vec<_> = after
                .maintenance
                .keys()
                .filter(|id| after.windows.get(id).is_none_or(|w| !w.window.selects(&after.slug, &tags)))
                .copied()
                .collect();
            let was_held = after.hold().is_some();
            for window_id in ended {
                out.push(MonitorEvent::MaintenanceEnded(MaintenanceEnded { window_id, at }));
            }
            if was_held && out.state.hold().is_none() {
                release(&mut out, at, false);
            }
        }
        _ => {}
    }
    if let MonitorEvent::HeartbeatReceived(HeartbeatReceived { at, .. })
    | MonitorEvent::RunStarted(RunStarted { at, .. }) = fact
        && let Some(min_interval) = after.config.as_ref().and_then(|c| c.min_interval)
        && let Some(previous_at) = before.last_heartbeat_at.max(before.last_started_at)
        && *at - previous_at < min_interval.to_delta()
    {
        out.push(MonitorEvent::SignalTooEarly(SignalTooEarly { at: *at, previous_at, min_interval }));
    }
    out.events
}

/// Failures that a success fixed before they alerted: transient, recorded, nobody paged.
fn transient(before: &Monitor, out: &mut Out, at: DateTime<Utc>, run_id: Option<String>) {
    if before.failures.consecutive == 0 || before.alerts.contains_key(&AlertCause::Failed) {
        return;
    }
    out.push(MonitorEvent::FailureRecovered(FailureRecovered {
        at,
        failed_runs: before.failures.consecutive,
        first_failed_at: before.failures.first_at.unwrap_or(at),
        run_id,
    }));
}

/// A missed deadline or skipped slot.
fn missed(out: &mut Out, fact: &MonitorEvent, at: DateTime<Utc>) {
    let s = &out.state;
    if let Some(pending) = &s.pending_failure {
        // A failure followed by silence: no retry is coming, so the failure pages now.
        let message = format!("{}; nothing since", pending.message);
        open(out, AlertCause::Failed, at, message);
        return;
    }
    let other_trouble = s
        .alerts
        .iter()
        .any(|(c, a)| !matches!(c, AlertCause::Missed | AlertCause::Flapping) && a.recovered_at.is_none());
    if s.alerts.contains_key(&AlertCause::Missed) {
        open(out, AlertCause::Missed, at, String::new());
        return;
    }
    // One outage, one alert: a monitor already alerting (failed, hung) is not paged again
    // for the silence that follows (edge case C41); nor is a miss under `missed_tolerance`.
    if other_trouble || s.misses <= s.policy().missed_tolerance {
        return;
    }
    let since = s.last_signal_at.map(|t| format!(" since {}", rfc3339(t))).unwrap_or_default();
    let count = if s.misses > 1 { format!(" ({} expected signals missed in a row)", s.misses) } else { String::new() };
    let message = match fact {
        MonitorEvent::RunSkipped(e) => {
            format!("{}: the run expected at {} did not start{since}{count}", s.slug, rfc3339(e.expected_at))
        }
        _ => format!("{} has gone silent: no signal{since}{count}", s.slug),
    };
    open(out, AlertCause::Missed, at, message);
}
