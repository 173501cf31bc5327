//! The logic of the Catalyst binaries: the `catalystctl` client, its verbs and output.

pub mod client;
pub mod ctl;
pub mod daemon_config;
pub mod join;
pub use catalyst_schemas::egg;
pub mod output;
