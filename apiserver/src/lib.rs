//! The Catalyst API server: the versioned store with its SQLite, PostgreSQL and etcd backends,
//! and the codec that turns objects into stored bytes.

pub mod codec;
pub mod store;
