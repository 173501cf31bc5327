//! Catalyst controllers: the controller runtime (a deduplicating work queue with per-key
//! backoff) and the pure decisions reconcilers act on, starting with scheduling.

pub mod queue;
pub mod scheduling;
