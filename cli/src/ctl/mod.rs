//! `catalystctl` commands: one module per command, each with its clap arguments (which the
//! binary's subcommands embed) and a `run` over the shared [`Client`](crate::client::Client)
//! that writes through [`Out`]. Shared pieces sit beside them: [`target`] (naming kinds and
//! objects), [`manifest`] (reading files), [`request`] (queries, watches, patches), [`prompt`]
//! (asking for names, passwords and codes). [`convert`] turns Pterodactyl eggs into Templates,
//! also for [`manifest`] when `apply -f` is given an egg.

pub mod alerts;
pub mod apply;
pub mod attach;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod completion;
pub mod config;
pub mod console;
pub mod convert;
pub mod create;
pub mod delete;
pub mod describe;
pub mod diff;
pub mod edit;
mod error;
pub mod explain;
pub mod files;
pub mod get;
pub mod lifecycle;
pub mod login;
pub mod logs;
pub mod manifest;
mod out;
pub mod prompt;
pub mod request;
pub mod schedule;
pub mod target;
pub mod version;
pub mod wait;

pub use error::{CtlError, Outcome};
pub use out::Out;
