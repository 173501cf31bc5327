//! The registry client's error type, shared by all its parts.

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference cannot be parsed.
    #[error("invalid image reference {0:?}")]
    Reference(String),
    /// The registry could not be reached.
    #[error("registry {registry}: {message}")]
    Transport {
        /// host[:port].
        registry: String,
        /// Why.
        message: String,
    },
    /// The registry refused.
    #[error("registry {registry}: {code} for {what}{hint}")]
    Refused {
        /// host[:port].
        registry: String,
        /// HTTP status.
        code: u16,
        /// What was asked.
        what: String,
        /// A hint for people.
        hint: String,
    },
    /// The registry sent something malformed.
    #[error("registry {registry}: {message}")]
    Invalid {
        /// host[:port].
        registry: String,
        /// What is wrong.
        message: String,
    },
    /// A request the node must not make: the registry, a redirect or a token realm leads to
    /// an address or scheme that is not allowed.
    #[error("registry {registry}: refused to contact {target}: {reason}")]
    Forbidden {
        /// host[:port].
        registry: String,
        /// The URL (without its query).
        target: String,
        /// Why.
        reason: String,
    },
    /// A document or a blob is larger than allowed.
    #[error("registry {registry}: {what} is larger than {limit} bytes")]
    TooLarge {
        /// host[:port].
        registry: String,
        /// What was read.
        what: String,
        /// The limit.
        limit: u64,
    },
}
