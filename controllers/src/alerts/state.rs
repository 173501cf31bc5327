//! One target's alert as a pure step: what was observed now, the alert before, the rule's
//! `for`, `repeatInterval` and silence → the alert after and the notification due, if any.

use catalyst_schemas::alert::{AlertState, TargetAlert};
use chrono::{DateTime, Duration, Utc};

/// What a rule's condition says of one target now.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// It holds: the value seen (metrics), what was seen, and the occurrence it stands for
    /// (events: e.g. the crash's time).
    Holds {
        /// The metric's value.
        value: Option<f64>,
        /// For people.
        message: String,
        /// The occurrence (events).
        seen: Option<DateTime<Utc>>,
    },
    /// It does not hold.
    Clear,
    /// Nothing to judge by (no sample yet, a rate needs a second one): the alert stays as it
    /// is.
    NoData,
}

/// A notification to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The alert started firing (or its silence ended before it was ever notified).
    Firing,
    /// Still firing, `repeatInterval` after the last notification.
    Reminder,
    /// It fired and holds no longer.
    Resolved,
}

/// The rule's timing, in seconds, and whether it is silenced now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `for`.
    pub for_secs: u64,
    /// `repeatInterval` (0: no reminders).
    pub repeat_secs: u64,
    /// `silencedUntil` lies after now.
    pub silenced: bool,
}

fn secs(n: u64) -> Duration {
    Duration::seconds(
        i64::try_from(n)
            .unwrap_or(i64::MAX / 1000)
            .min(i64::MAX / 1000),
    )
}

/// The next alert of `target` and the notification due. `None` as the result's alert: nothing
/// to keep (a Pending alert that no longer holds, or nothing ever held).
pub fn step(
    target: &str,
    before: Option<&TargetAlert>,
    seen: &Observation,
    timing: Timing,
    now: DateTime<Utc>,
) -> (Option<TargetAlert>, Option<Notice>) {
    let state = before.map(|a| a.state);
    match seen {
        Observation::NoData => (before.cloned(), None),
        Observation::Clear => match (before, state) {
            (Some(a), Some(AlertState::Firing)) => {
                let next = TargetAlert {
                    state: AlertState::Resolved,
                    since: now,
                    resolved_at: Some(now),
                    message: format!("resolved; was: {}", a.message),
                    ..a.clone()
                };
                // a firing nobody was told of (silenced throughout) resolves silently
                let notice =
                    (a.last_notified_at.is_some() && !timing.silenced).then_some(Notice::Resolved);
                (Some(next), notice)
            }
            (Some(_), Some(AlertState::Pending)) => (None, None),
            (Some(a), _) => (Some(a.clone()), None),
            (None, _) => (None, None),
        },
        Observation::Holds {
            value,
            message,
            seen,
        } => {
            let mut next = match (before, state) {
                (Some(a), Some(AlertState::Pending | AlertState::Firing)) => a.clone(),
                // new, or firing again after it resolved: a new firing
                _ => TargetAlert {
                    target: target.to_owned(),
                    state: AlertState::Pending,
                    since: now,
                    fired_at: None,
                    resolved_at: None,
                    last_notified_at: None,
                    value: None,
                    message: String::new(),
                    seen: None,
                },
            };
            let fresh = next.message.is_empty();
            if seen.is_some() {
                next.seen = *seen;
            }
            if next.state == AlertState::Pending && now - next.since >= secs(timing.for_secs) {
                next.state = AlertState::Firing;
                next.fired_at = Some(now);
            }
            let notice = match (next.state, next.last_notified_at) {
                (AlertState::Firing, _) if timing.silenced => None,
                (AlertState::Firing, None) => Some(Notice::Firing),
                (AlertState::Firing, Some(last))
                    if timing.repeat_secs > 0 && now - last >= secs(timing.repeat_secs) =>
                {
                    Some(Notice::Reminder)
                }
                _ => None,
            };
            if notice.is_some() {
                next.last_notified_at = Some(now);
            }
            // the value is recorded when something happens, not at every look: the status is
            // written only when an alert changes
            if fresh || notice.is_some() || next.state != state.unwrap_or(AlertState::Pending) {
                next.value = *value;
                next.message.clone_from(message);
            }
            (Some(next), notice)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        for_secs: 60,
        repeat_secs: 600,
        silenced: false,
    };

    fn holds(v: f64) -> Observation {
        Observation::Holds {
            value: Some(v),
            message: format!("memory {v}%"),
            seen: None,
        }
    }

    /// Steps through observations a second apart each `gap` seconds; the notices.
    fn run(
        seq: &[(i64, Observation)],
        timing: Timing,
    ) -> (Option<TargetAlert>, Vec<(i64, Notice)>) {
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let mut alert = None;
        let mut notices = Vec::new();
        for (at, obs) in seq {
            let (next, notice) = step(
                "gameserver/a",
                alert.as_ref(),
                obs,
                timing,
                t0 + Duration::seconds(*at),
            );
            alert = next;
            if let Some(n) = notice {
                notices.push((*at, n));
            }
        }
        (alert, notices)
    }

    #[test]
    fn a_condition_fires_after_for_once_and_resolves_once() {
        let seq: Vec<(i64, Observation)> = vec![
            (0, holds(95.0)),
            (30, holds(96.0)),
            (60, holds(97.0)),
            (90, holds(97.0)),
            (120, Observation::Clear),
            (150, Observation::Clear),
        ];
        let (alert, notices) = run(&seq, TIMING);
        assert_eq!(notices, [(60, Notice::Firing), (120, Notice::Resolved)]);
        let alert = alert.expect("kept as resolved");
        assert_eq!(alert.state, AlertState::Resolved);
        assert!(alert.fired_at.is_some() && alert.resolved_at.is_some());
    }

    #[test]
    fn a_pending_alert_that_stops_holding_is_forgotten_without_a_word() {
        let (alert, notices) = run(&[(0, holds(95.0)), (30, Observation::Clear)], TIMING);
        assert_eq!(alert, None);
        assert!(notices.is_empty());
    }

    #[test]
    fn reminders_come_every_repeat_interval_while_firing() {
        let seq: Vec<(i64, Observation)> = (0..=25).map(|i| (i * 60, holds(99.0))).collect();
        let (_, notices) = run(&seq, TIMING);
        assert_eq!(
            notices,
            [
                (60, Notice::Firing),
                (660, Notice::Reminder),
                (1260, Notice::Reminder)
            ]
        );
        let none = Timing {
            repeat_secs: 0,
            ..TIMING
        };
        assert_eq!(run(&seq, none).1, [(60, Notice::Firing)]);
    }

    #[test]
    fn missing_data_changes_nothing() {
        let seq = vec![
            (0, holds(95.0)),
            (120, Observation::NoData),
            (130, Observation::NoData),
        ];
        let (alert, notices) = run(
            &seq,
            Timing {
                for_secs: 0,
                ..TIMING
            },
        );
        assert_eq!(notices, [(0, Notice::Firing)]);
        assert_eq!(alert.map(|a| a.state), Some(AlertState::Firing));
    }

    #[test]
    fn a_silence_holds_notices_back_and_the_firing_is_told_when_it_ends() {
        let silent = Timing {
            for_secs: 0,
            silenced: true,
            ..TIMING
        };
        let t0 = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let (a, n) = step("t", None, &holds(99.0), silent, t0);
        assert_eq!(n, None);
        assert_eq!(a.as_ref().map(|a| a.state), Some(AlertState::Firing));
        let (a, n) = step(
            "t",
            a.as_ref(),
            &holds(99.0),
            Timing {
                for_secs: 0,
                ..TIMING
            },
            t0 + Duration::seconds(5),
        );
        assert_eq!(n, Some(Notice::Firing), "the silence ended");
        // silenced throughout: resolves without a word
        let (b, _) = step("t", None, &holds(99.0), silent, t0);
        let (b, n) = step(
            "t",
            b.as_ref(),
            &Observation::Clear,
            silent,
            t0 + Duration::seconds(9),
        );
        assert_eq!(n, None);
        assert_eq!(b.map(|b| b.state), Some(AlertState::Resolved));
        assert!(a.is_some());
    }

    #[test]
    fn a_resolved_alert_that_holds_again_is_a_new_firing() {
        let seq = vec![
            (0, holds(95.0)),
            (10, Observation::Clear),
            (20, holds(95.0)),
        ];
        let (alert, notices) = run(
            &seq,
            Timing {
                for_secs: 0,
                ..TIMING
            },
        );
        assert_eq!(
            notices,
            [
                (0, Notice::Firing),
                (10, Notice::Resolved),
                (20, Notice::Firing)
            ]
        );
        let alert = alert.expect("alert");
        assert_eq!(alert.resolved_at, None);
        assert_eq!(alert.since.timestamp() % 60, 20);
    }
}
