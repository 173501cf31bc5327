//! A small containerd 1.6 client over gRPC: the calls the nodelet makes, each with the
//! `catalyst` namespace (and, during imports, a lease) attached.
//!
//! The parts: `client` (the connection, the error type, the configuration of Catalyst's own
//! containerd), and one `impl Containerd` per service group, each importing only `client`:
//! `content` (content store, leases, images), `snapshots` (snapshots and the diff service),
//! `containers` (containers and tasks), `events` (the event stream).

mod client;
mod containers;
mod content;
mod events;
mod snapshots;

pub use client::{write_config, Containerd, CtdError, NAMESPACE, RUNTIME, SNAPSHOTTER};
pub use containers::TaskState;
pub use content::ContentStream;
pub use events::TaskEvent;
