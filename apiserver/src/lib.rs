//! Catalyst API server.
