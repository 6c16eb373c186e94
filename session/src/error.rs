//! Why a provider's verifier or login client could not be built (at start or reload, never
//! per request). `Display` names the provider; the gateway prints it as the config error.

use std::path::PathBuf;

/// Why [`TokenVerifier::new`](crate::TokenVerifier::new),
/// [`OidcClient::new`](crate::oidc::OidcClient::new) or
/// [`ProviderDiscovery::new`](crate::discovery::ProviderDiscovery::new) refused a provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// An `algorithms` entry outside the asymmetric allowlist (`none`, `HS*`, unknown).
    #[error("identity provider {provider}: algorithm {algorithm:?} is not accepted")]
    Algorithm {
        /// The provider's name.
        provider: String,
        /// The refused algorithm name.
        algorithm: String,
    },
    /// The HTTP client could not be built (TLS backend initialisation).
    #[error("identity provider {provider}: HTTP client: {reason}")]
    HttpClient {
        /// The provider's name.
        provider: String,
        /// The client builder's error.
        reason: String,
    },
    /// `introspection` without a `client-secret`.
    #[error("identity provider {provider}: introspection requires a client-secret")]
    IntrospectionSecret {
        /// The provider's name.
        provider: String,
    },
    /// `introspection` with `jwks-file` and no `introspection-url` (nothing to discover it).
    #[error(
        "identity provider {provider}: introspection with jwks-file requires introspection-url"
    )]
    IntrospectionUrl {
        /// The provider's name.
        provider: String,
    },
    /// The `jwks-file` cannot be read, does not parse or has no usable key.
    #[error("identity provider {provider}: {source}")]
    JwksFile {
        /// The provider's name.
        provider: String,
        /// What is wrong with the file.
        source: JwksFileError,
    },
    /// The login client was given another provider's verifier.
    #[error("identity provider {provider}: the verifier given is provider {verifier}'s")]
    ForeignVerifier {
        /// The provider's name.
        provider: String,
        /// The name of the verifier's provider.
        verifier: String,
    },
}

/// What is wrong with a `jwks-file`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksFileError {
    /// The file cannot be read.
    #[error("cannot read jwks-file {}: {reason}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file is not a JWKS document.
    #[error("jwks-file {}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        reason: String,
    },
    /// No key in the file can verify the allowed algorithms.
    #[error("the JWKS has no usable signing key for the allowed algorithms")]
    NoUsableKey,
}
