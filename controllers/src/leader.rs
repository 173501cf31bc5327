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
//!
//! Fencing: a takeover deletes the expired Lease (pinned to the revision it judged) and creates
//! it again (`leaseTransitions` + 1), so the Lease's create revision is the new leader's
//! fencing token; a renewal is an update and keeps it. The term ([`Term`]: that token and the
//! end of the term on the monotonic clock) goes out on `leading`, and the controllers' fenced
//! registry writes under it: once another process took over, the store refuses the old term's
//! writes (`StoreError::Fenced`), and once the term's end passed, the registry refuses them
//! before they reach the store.

use std::sync::Arc;
use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Registry, Scope, Term, Written};
use catalyst_apiserver::store::{Guard, Revision};
use catalyst_apiserver::watch::{CacheMessage, Subscription, WatchCache};
use catalyst_schemas::event::LeaseSpec;
use chrono::Utc;
use serde_json::json;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// The Lease the controllers elect on.
pub const LEASE_NAME: &str = "catalyst-controllers";
/// Its namespace.
pub const LEASE_NAMESPACE: &str = "catalyst-system";

/// This process's leadership: the current term while it leads (sent after every election
/// round, changed or not, and when the term lapses without a renewal).
pub type Leading = watch::Receiver<Option<Term>>;

/// True while `leading` holds a term that has not ended on this process's clock: checked
/// before taking work and before every side effect the store cannot fence.
pub fn is_leading(leading: &Leading) -> bool {
    leading.borrow().as_ref().is_some_and(Term::live)
}

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

/// Runs the election forever; `leading` carries the term while we lead (sent after every
/// round, and when the term lapses without a renewal). With `leases` (the Lease kind's watch
/// cache), a standby also looks at once when the Lease changes, and when the lease it follows
/// expires, besides every renew interval.
pub async fn run(
    registry: Registry,
    me: String,
    timing: Timing,
    leading: watch::Sender<Option<Term>>,
    leases: Option<Arc<WatchCache>>,
) {
    let kind = catalyst_schemas::lookup_kind("leases").expect("the Lease kind");
    let scope = Scope {
        kind,
        namespace: Some(LEASE_NAMESPACE),
    };
    let election = Election {
        registry: &registry,
        scope,
        me: &me,
        // the lease in whole seconds, rounded up: standbys wait at least this long
        secs: timing.lease.as_secs_f64().ceil().max(1.0) as i64,
    };
    // the resourceVersion last seen and when it was first seen
    let mut observed: Option<(Option<i64>, Instant)> = None;
    // while leading: the fencing token and the end of the term
    let mut term: Option<(Revision, Instant)> = None;
    // the token of the Lease this process created last (a renewal keeps it)
    let mut token: Option<Revision> = None;
    let guard = |token| Guard {
        key: scope.key(LEASE_NAME),
        create_revision: token,
    };
    let mut changes = leases.as_deref().map(LeaseChanges::new);
    loop {
        let sent = Instant::now();
        // a round may not outlast the term: a hung store call ends it at the deadline
        let budget = term.map_or(timing.renew_deadline, |(_, until)| {
            until.saturating_duration_since(sent)
        });
        let round = election.round(&mut observed, token);
        let (renewed, expires) = match tokio::time::timeout(budget, round).await {
            Ok((renewed, decision)) => {
                if renewed.is_none() && term.is_some() {
                    tracing::warn!(identity = me, ?decision, "leader lease not renewed");
                }
                let expires = match decision {
                    Decision::Follow { expires, .. } => Some(expires),
                    _ => None,
                };
                (renewed, expires)
            }
            Err(_) => {
                tracing::warn!(identity = me, "renewing the leader lease timed out");
                (None, None)
            }
        };
        if let Some(t) = renewed {
            if term.is_some_and(|(held, _)| held != t) {
                // a new token: the old term is over (its writes are fenced)
                tracing::info!(identity = me, token = t, "leader Lease taken again");
            }
            token = Some(t);
            term = Some((t, sent + timing.renew_deadline));
        }
        let now = Instant::now();
        if term.is_some_and(|(_, until)| until <= now) {
            term = None;
        }
        let next = term.map(|(t, until)| Term {
            guard: guard(t),
            valid_until: until.into_std(),
        });
        let was = leading.send_replace(next.clone()).is_some();
        if was != next.is_some() {
            match &next {
                Some(t) => {
                    tracing::info!(
                        identity = me,
                        token = t.guard.create_revision,
                        "leading the controllers"
                    )
                }
                None => tracing::info!(identity = me, "not leading the controllers"),
            }
        }
        // sleep until the next round, waking at the end of the term to step down on time
        let next = sent + timing.renew;
        match term {
            Some((_, until)) if until < next => {
                tokio::time::sleep_until(until).await;
                term = None;
                if leading.send_replace(None).is_some() {
                    tracing::info!(identity = me, "not leading the controllers: term lapsed");
                }
                tokio::time::sleep_until(next).await;
            }
            Some(_) => tokio::time::sleep_until(next).await,
            None => {
                // a standby: the next round at the interval, at the expiry it judged, or at a
                // change of the Lease, whichever comes first
                let at = expires.map_or(next, |e| e.min(next));
                match changes.as_mut() {
                    Some(changes) => {
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = changes.next() => {}
                        }
                    }
                    None => tokio::time::sleep_until(at).await,
                }
            }
        }
    }
}

/// Changes of the leader Lease, from the Lease kind's watch cache.
struct LeaseChanges {
    live: Option<broadcast::Receiver<CacheMessage>>,
}

impl LeaseChanges {
    fn new(cache: &WatchCache) -> Self {
        let live = match cache.subscribe(cache.newest()) {
            Subscription::Cached { live, .. } => Some(live),
            Subscription::TooOld => None,
        };
        Self { live }
    }

    /// Waits for a change of the leader Lease (or a gap in the feed, which may hide one);
    /// never returns once the feed closed.
    async fn next(&mut self) {
        let Some(live) = self.live.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match live.recv().await {
                Ok(CacheMessage::Event(ev)) => {
                    let meta = ev.object().get("metadata");
                    let at = |f: &str| meta.and_then(|m| m.get(f)).and_then(|v| v.as_str());
                    if at("name") == Some(LEASE_NAME) && at("namespace") == Some(LEASE_NAMESPACE) {
                        return;
                    }
                }
                Ok(CacheMessage::Reset) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => {
                    self.live = None;
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// What every round of one candidate shares.
struct Election<'a> {
    registry: &'a Registry,
    scope: Scope<'a>,
    me: &'a str,
    secs: i64,
}

impl Election<'_> {
    /// One election round: reads the lease, then takes or renews it when due. Some(the fencing
    /// token) when this process holds a freshly written lease; `token` is the one it created
    /// last (a renewal keeps it; without one, holding the lease is taking it over).
    async fn round(
        &self,
        observed: &mut Option<(Option<i64>, Instant)>,
        token: Option<Revision>,
    ) -> (Option<Revision>, Decision) {
        let current = self.registry.get(self.scope, LEASE_NAME).await;
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
        let decision = decide(spec.as_ref(), self.me, seen, now);
        let got = match (&decision, &current) {
            (Decision::Follow { .. }, _) => None,
            (_, Err(ApiError::NotFound { .. })) => self.create(0).await,
            (Decision::Renew, Ok(obj)) if token.is_some() => {
                let rv = catalyst_schemas::object::resource_version(obj);
                self.renew(rv).await.and(token)
            }
            (_, Ok(obj)) => {
                // take over: delete the Lease as judged, then create it: a new token
                let rv = catalyst_schemas::object::resource_version(obj);
                let transitions = spec.as_ref().map_or(0, |s| s.lease_transitions);
                match self
                    .registry
                    .delete(self.scope, LEASE_NAME, rv, false)
                    .await
                {
                    Ok(_) | Err(ApiError::NotFound { .. }) => self.create(transitions + 1).await,
                    Err(_) => None,
                }
            }
            (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read the leader lease");
                None
            }
        };
        (got, decision)
    }

    /// Creates the Lease held by us; Some(its create revision).
    async fn create(&self, transitions: i64) -> Option<Revision> {
        let wall = Utc::now();
        let obj = json!({
            "apiVersion": catalyst_schemas::API_VERSION, "kind": "Lease",
            "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
            "spec": {"holderIdentity": self.me, "leaseDurationSeconds": self.secs, "acquireTime": wall,
                     "renewTime": wall, "leaseTransitions": transitions}
        });
        let written = self.registry.create(self.scope, obj, false).await.ok()?;
        revision_of(&written)
    }

    /// Renews the Lease we hold, pinned to `rv`: an update, so its create revision stays.
    async fn renew(&self, rv: Option<Revision>) -> Option<()> {
        let (me, secs, wall) = (self.me.to_owned(), self.secs, Utc::now());
        self.registry
            .update_with(self.scope, LEASE_NAME, rv, Part::Main, false, move |cur| {
                let mut next = cur.clone();
                next["spec"]["holderIdentity"] = me.clone().into();
                next["spec"]["leaseDurationSeconds"] = secs.into();
                next["spec"]["renewTime"] = json!(wall);
                Ok(next)
            })
            .await
            .ok()
            .map(|_| ())
    }
}

/// The resourceVersion of a written object.
fn revision_of(written: &Written) -> Option<Revision> {
    catalyst_schemas::object::resource_version(&written.object)
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
