//! The Catalyst API client: the client config, a [`Client`] with one or several server URLs
//! (failing over between them, see [`servers`]) and a bearer token
//! whose failures carry the API's Status, path helpers, list (every page) and watch (a stream
//! of typed events), and the [`informer`]: a local cache kept current by list + watch + relist
//! over any [`informer::ListWatch`] source.

pub mod client;
pub mod config;
pub mod error;
pub mod informer;
pub mod noresolve;
pub mod paths;
pub mod pin;
pub mod servers;
pub mod session;
pub mod source;
pub mod watch;

pub use catalyst_schemas::watch::{Status, WatchEvent};
pub use client::{Client, Joined, List, ListParams};
pub use config::{Config, ConfigFile, Context};
pub use error::{format_status, Error, Result};
pub use paths::{collection_path, gs_path, object_path, query, API};
pub use pin::JoinToken;
pub use session::{needs_totp, Session};
pub use watch::Watched;

/// A resourceVersion as a number (the store's revision).
pub type Revision = i64;
