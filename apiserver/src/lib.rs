//! The Catalyst API server: the versioned store and its backends, object operations with
//! admission, server-side apply, the watch cache, and the Kubernetes-style HTTP API.

pub mod apply;
pub mod audit;
pub mod auth;
pub mod codec;
pub mod error;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod registry;
pub mod selector;
pub mod server;
pub mod state;
pub mod store;
pub mod tls;
pub mod tunnel;
pub mod watch;
