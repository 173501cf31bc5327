//! Leader election over a Lease object, so it works on every store backend and across several
//! `catalyst server` processes: the holder renews; others take over once the lease expires.
//!
//! Both sides judge time on their own monotonic clock, never by comparing two hosts' wall
//! clocks:
//! - the leader steps down by itself when it has not renewed for the renew deadline (its term
//!   lasts until the last successful renewal was *sent* + the deadline; the monotonic clock runs
//!   on through SIGSTOP, so a resumed process knows at once that its term lapsed);
//! - a standby notes when it first saw the Lease's current resourceVersion and takes over once
//!   the lease duration has passed since then with no change (client-go's `observedTime`). A
//!   renewal cannot be seen before it is sent, so a takeover comes at least lease − deadline
//!   after the old leader stepped down.

use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_schemas::event::LeaseSpec;
use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

/// The Lease the controllers elect on.
pub const LEASE_NAME: &str = "catalyst-controllers";
/// Its namespace.
pub const LEASE_NAMESPACE: &str = "catalyst-system";

/// The election's timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a standby waits, from the last change it saw, before taking over.
    pub lease: Duration,
    /// How often the leader renews and a standby looks.
    pub renew: Duration,
    /// How long the leader goes on leading without a successful renewal.
    pub renew_deadline: Duration,
}

impl Timing {
    /// Renew at a third of the lease and step down at two thirds.
    pub fn from_lease(lease: Duration) -> Self {
        Self {
            lease,
            renew: lease / 3,
            renew_deadline: lease * 2 / 3,
        }
    }

    /// Checks renew < renew deadline < lease.
    pub fn validate(&self) -> Result<(), String> {
        if self.renew.is_zero() || self.renew >= self.renew_deadline {
            return Err(format!(
                "the renew interval ({:?}) must be above 0 and below the renew deadline ({:?})",
                self.renew, self.renew_deadline
            ));
        }
        if self.renew_deadline >= self.lease {
            return Err(format!(
                "the renew deadline ({:?}) must be below the lease ({:?}), or two could lead",
                self.renew_deadline, self.lease
            ));
        }
        Ok(())
    }
}

/// What a candidate does with the lease it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds a live lease.
    Follow {
        /// The holder.
        holder: String,
        /// When it expires, on this process's monotonic clock.
        expires: Instant,
    },
}

/// Decides from the lease (if any), who we are, when this version of the lease was first seen
/// (`observed`) and the time, both on this process's monotonic clock.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, observed: Instant, now: Instant) -> Decision {
    let Some(lease) = lease else {
        return Decision::Acquire;
    };
    let holder = lease.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let expires = observed + Duration::from_secs(lease.lease_duration_seconds.max(1) as u64);
    if expires > now {
        Decision::Follow {
            holder: holder.to_owned(),
            expires,
        }
    } else {
        Decision::Acquire
    }
}

/// Runs the election forever; `leading` says whether we lead right now (sent after every
/// round, and when the term lapses without a renewal).
pub async fn run(registry: Registry, me: String, timing: Timing, leading: watch::Sender<bool>) {
    let kind = catalyst_schemas::lookup_kind("leases").expect("the Lease kind");
    let scope = Scope {
        kind,
        namespace: Some(LEASE_NAMESPACE),
    };
    // the lease in whole seconds, rounded up: standbys wait at least this long
    let secs = timing.lease.as_secs_f64().ceil().max(1.0) as i64;
    // the resourceVersion last seen and when it was first seen
    let mut observed: Option<(Option<i64>, Instant)> = None;
    // while leading: the end of the term
    let mut valid_until: Option<Instant> = None;
    loop {
        let sent = Instant::now();
        // a round may not outlast the term: a hung store call ends it at the deadline
        let budget = valid_until.map_or(timing.renew_deadline, |until| {
            until.saturating_duration_since(sent)
        });
        let round = round(&registry, scope, &me, secs, &mut observed);
        let renewed = match tokio::time::timeout(budget, round).await {
            Ok((renewed, decision)) => {
                if !renewed && valid_until.is_some() {
                    tracing::warn!(identity = me, ?decision, "leader lease not renewed");
                }
                renewed
            }
            Err(_) => {
                tracing::warn!(identity = me, "renewing the leader lease timed out");
                false
            }
        };
        if renewed {
            valid_until = Some(sent + timing.renew_deadline);
        }
        let now = Instant::now();
        if valid_until.is_some_and(|until| until <= now) {
            valid_until = None;
        }
        let ok = valid_until.is_some();
        if leading.send_replace(ok) != ok {
            match ok {
                true => tracing::info!(identity = me, "leading the controllers"),
                false => tracing::info!(identity = me, "not leading the controllers"),
            }
        }
        // sleep until the next round, waking at the end of the term to step down on time
        let next = sent + timing.renew;
        match valid_until {
            Some(until) if until < next => {
                tokio::time::sleep_until(until).await;
                valid_until = None;
                if leading.send_replace(false) {
                    tracing::info!(identity = me, "not leading the controllers: term lapsed");
                }
                tokio::time::sleep_until(next).await;
            }
            _ => tokio::time::sleep_until(next).await,
        }
    }
}

/// One election round: reads the lease, then takes or renews it when due. True when this
/// process holds a freshly written lease.
async fn round(
    registry: &Registry,
    scope: Scope<'_>,
    me: &str,
    secs: i64,
    observed: &mut Option<(Option<i64>, Instant)>,
) -> (bool, Decision) {
    let current = registry.get(scope, LEASE_NAME).await;
    let spec: Option<LeaseSpec> = match &current {
        Ok(v) => v
            .get("spec")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok()),
        Err(_) => None,
    };
    let now = Instant::now();
    let seen = match &current {
        Ok(obj) => {
            let rv = catalyst_schemas::object::resource_version(obj);
            match observed {
                Some((last, at)) if *last == rv => *at,
                _ => {
                    *observed = Some((rv, now));
                    now
                }
            }
        }
        Err(_) => now,
    };
    let decision = decide(spec.as_ref(), me, seen, now);
    let wall = Utc::now();
    let ok = match (&decision, &current) {
        (Decision::Follow { .. }, _) => false,
        (_, Err(ApiError::NotFound { .. })) => {
            let obj = json!({
                "apiVersion": catalyst_schemas::API_VERSION, "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": secs, "acquireTime": wall, "renewTime": wall, "leaseTransitions": 0}
            });
            registry.create(scope, obj, false).await.is_ok()
        }
        (_, Ok(obj)) => {
            let rv = catalyst_schemas::object::resource_version(obj);
            let transitions = spec.as_ref().map_or(0, |s| s.lease_transitions);
            let acquiring = decision == Decision::Acquire;
            let me2 = me.to_owned();
            let result = registry
                .update_with(scope, LEASE_NAME, rv, Part::Main, false, move |cur| {
                    let mut next = cur.clone();
                    next["spec"]["holderIdentity"] = me2.clone().into();
                    next["spec"]["leaseDurationSeconds"] = secs.into();
                    next["spec"]["renewTime"] = json!(wall);
                    if acquiring {
                        next["spec"]["acquireTime"] = json!(wall);
                        next["spec"]["leaseTransitions"] = (transitions + 1).into();
                    }
                    Ok(next)
                })
                .await;
            result.is_ok()
        }
        (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot read the leader lease");
            false
        }
    };
    (ok, decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: 3,
            acquire_time: None,
            // wall-clock times are ignored: a skewed holder's clock changes nothing
            renew_time: Some(Utc::now() - chrono::Duration::days(1)),
            lease_transitions: 0,
        }
    }

    #[test]
    fn a_lease_is_followed_until_unchanged_for_its_duration_on_the_local_clock() {
        let seen = Instant::now();
        let at = |ms| seen + Duration::from_millis(ms);
        assert_eq!(decide(None, "a", seen, seen), Decision::Acquire);
        assert_eq!(
            decide(Some(&lease("a")), "a", seen, at(9000)),
            Decision::Renew
        );
        assert_eq!(
            decide(Some(&lease("b")), "a", seen, at(2900)),
            Decision::Follow {
                holder: "b".into(),
                expires: at(3000)
            }
        );
        assert_eq!(
            decide(Some(&lease("b")), "a", seen, at(3000)),
            Decision::Acquire
        );
        assert_eq!(decide(Some(&lease("")), "a", seen, seen), Decision::Acquire);
    }

    #[test]
    fn timings_must_renew_before_the_deadline_and_step_down_before_the_lease() {
        let t = Timing::from_lease(Duration::from_secs(3));
        assert_eq!(
            (t.renew, t.renew_deadline),
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        assert!(t.validate().is_ok());
        let ms = Duration::from_millis;
        for (renew, deadline, lease) in [(2000, 2000, 3000), (1000, 3000, 3000), (0, 1, 2)] {
            let bad = Timing {
                lease: ms(lease),
                renew: ms(renew),
                renew_deadline: ms(deadline),
            };
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
