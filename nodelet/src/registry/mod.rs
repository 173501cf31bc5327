//! A registry client (OCI distribution API v2) that writes what it pulls into containerd's
//! content store: manifests (OCI and Docker v2, indexes and lists), the config, the layers
//! streamed. Credentials from a Docker-style auth file (`{"auths": {"host": {"auth": …}}}`),
//! Basic or Bearer-token challenges; plain HTTP only for registries on loopback or listed as
//! insecure, as Docker does.
//!
//! Registries are hostile: every request (the registry's own, each redirect hop, a token realm)
//! is admitted first. A registry may be on loopback or a private address only when it is on
//! loopback itself or listed with `--insecure-registry`; a redirect or realm that leads to
//! another host (another host:port) must lead to public addresses only, unless that host is
//! listed itself. Names are resolved by the client's own resolver, which refuses non-public
//! addresses for every name not allowed to have them, so what was checked is what is
//! connected to. Credentials and tokens go to the registry's own origin only (and Basic
//! credentials to the token realm its own challenge names); redirects to other hosts (blob
//! CDNs) are followed without them. Documents are read with a size limit.
//!
//! The parts, each importing only those listed before it: `error`, `reference` (image
//! references), `address` (public addresses, the guarded resolver), `auth` (credentials,
//! challenges), `guard` (where requests may go), `session` (the HTTP client itself).

mod address;
mod auth;
mod error;
mod guard;
mod reference;
mod session;

pub use address::{is_public, non_public};
pub use auth::Registries;
pub use error::RegistryError;
pub use reference::{parse_reference, valid_digest, Reference};
pub use session::{Session, MANIFEST_TYPES, MAX_DOCUMENT_BYTES};
