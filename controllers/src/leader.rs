//! Leader election over a Lease object, so it works on every store backend and across several
//! `catalyst server` processes: the holder renews; others take over once the lease expires.

use std::time::Duration;

use catalyst_apiserver::error::ApiError;
use catalyst_apiserver::registry::{Part, Registry, Scope};
use catalyst_schemas::event::LeaseSpec;
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

/// The Lease the controllers elect on.
pub const LEASE_NAME: &str = "catalyst-controllers";
/// Its namespace.
pub const LEASE_NAMESPACE: &str = "catalyst-system";

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
        /// When it expires.
        expires: DateTime<Utc>,
    },
}

/// Decides from the lease (if any), who we are and the time.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: DateTime<Utc>) -> Decision {
    let Some(lease) = lease else {
        return Decision::Acquire;
    };
    let holder = lease.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Decision::Renew;
    }
    let renewed = lease.renew_time.or(lease.acquire_time);
    match renewed {
        Some(t) if !holder.is_empty() => {
            let expires = t + chrono::Duration::seconds(lease.lease_duration_seconds);
            if expires > now {
                Decision::Follow {
                    holder: holder.to_owned(),
                    expires,
                }
            } else {
                Decision::Acquire
            }
        }
        _ => Decision::Acquire,
    }
}

/// Runs the election forever; `leading` says whether we lead right now.
pub async fn run(registry: Registry, me: String, duration: Duration, leading: watch::Sender<bool>) {
    let kind = catalyst_schemas::lookup_kind("leases").expect("the Lease kind");
    let scope = Scope {
        kind,
        namespace: Some(LEASE_NAMESPACE),
    };
    let secs = duration.as_secs().max(1) as i64;
    loop {
        let now = Utc::now();
        let current = registry.get(scope, LEASE_NAME).await;
        let spec: Option<LeaseSpec> = match &current {
            Ok(v) => v
                .get("spec")
                .cloned()
                .and_then(|s| serde_json::from_value(s).ok()),
            Err(_) => None,
        };
        let decision = decide(spec.as_ref(), &me, now);
        let ok = match (&decision, &current) {
            (Decision::Follow { .. }, _) => false,
            (_, Err(ApiError::NotFound { .. })) => {
                let obj = json!({
                    "apiVersion": catalyst_schemas::API_VERSION, "kind": "Lease",
                    "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                    "spec": {"holderIdentity": me, "leaseDurationSeconds": secs, "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
                });
                registry.create(scope, obj, false).await.is_ok()
            }
            (_, Ok(obj)) => {
                let rv = catalyst_schemas::object::resource_version(obj);
                let transitions = spec.as_ref().map_or(0, |s| s.lease_transitions);
                let acquiring = decision == Decision::Acquire;
                let me2 = me.clone();
                let result = registry
                    .update_with(scope, LEASE_NAME, rv, Part::Main, false, move |cur| {
                        let mut next = cur.clone();
                        next["spec"]["holderIdentity"] = me2.clone().into();
                        next["spec"]["leaseDurationSeconds"] = secs.into();
                        next["spec"]["renewTime"] = json!(now);
                        if acquiring {
                            next["spec"]["acquireTime"] = json!(now);
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
        if leading.send_replace(ok) != ok {
            match ok {
                true => tracing::info!(identity = me, "leading the controllers"),
                false => tracing::info!(identity = me, ?decision, "not leading the controllers"),
            }
        }
        tokio::time::sleep(duration / 5).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_secs_ago: i64, now: DateTime<Utc>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: 15,
            acquire_time: None,
            renew_time: Some(now - chrono::Duration::seconds(renewed_secs_ago)),
            lease_transitions: 0,
        }
    }

    #[test]
    fn a_live_lease_of_another_is_followed_and_an_expired_one_taken() {
        let now = Utc::now();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(
            decide(Some(&lease("a", 100, now)), "a", now),
            Decision::Renew
        );
        assert!(
            matches!(decide(Some(&lease("b", 5, now)), "a", now), Decision::Follow { holder, .. } if holder == "b")
        );
        assert_eq!(
            decide(Some(&lease("b", 16, now)), "a", now),
            Decision::Acquire
        );
        assert_eq!(
            decide(Some(&lease("", 1, now)), "a", now),
            Decision::Acquire
        );
    }
}
