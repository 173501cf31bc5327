//! Catalyst controllers: the controller runtime (informers, a deduplicating work queue with
//! per-key backoff, leader election over a Lease) and the reconcilers, which decide purely and
//! then act.

pub mod alerts;
pub mod backups;
pub mod clock;
pub mod gc;
pub mod informer;
pub mod leader;
pub mod manager;
pub mod progress;
pub mod queue;
pub mod reconcilers;
pub mod scheduling;
pub mod transfers;
