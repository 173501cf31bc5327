//! The spec module's error type.

/// A spec that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The server names no image and its template has none.
    #[error("spec.image: no image (set spec.image or give the template an image)")]
    NoImage,
    /// The template named by the server is missing.
    #[error("spec.template: template {0:?} not found")]
    NoTemplate(String),
    /// Neither a startup command nor an image command.
    #[error("spec.startup: no startup command and the image has no command")]
    NoCommand,
    /// oci-spec refused a value.
    #[error("runtime spec: {0}")]
    Oci(String),
}

/// An [`SpecError::Oci`] from whatever oci-spec refused.
pub(super) fn oci<E: std::fmt::Display>(e: E) -> SpecError {
    SpecError::Oci(e.to_string())
}
