//! Rotation of the agent's client certificate through the CertificateSigningRequest API, as the
//! kubelet with `rotateCertificates`: once a jittered 70–90 % of the certificate's lifetime has
//! passed ([`deadline`]), the agent sends a request for a new one with a fresh key ([`request`]),
//! which the controller manager auto-approves for a node renewing itself and signs; the agent
//! stores the new pair durably ([`store`]) and presents it on every new connection of its API
//! client ([`identity`]) without rebuilding the client, so pod workers keep running. Failures are
//! retried with back-off while the old certificate stays in use ([`manager`]).
//!
//! What does not live here: the first certificate (issued by the server from the cluster CA when
//! no valid stored one exists), the serving certificate of the streaming server (issued by the
//! server at each start; like the kubelet without `serverTLSBootstrap`, it is not requested
//! through the API).

pub mod deadline;
pub mod identity;
pub mod manager;
pub mod request;
pub mod store;

use std::path::PathBuf;

/// Errors of certificate rotation.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// A certificate, key or URL could not be used.
    #[error("invalid client certificate material: {0}")]
    Invalid(String),
    /// The key or the request could not be generated.
    #[error("cannot generate a certificate signing request: {0}")]
    Request(String),
    /// Reading or writing the stored pair failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The API server refused the request.
    #[error("API error: {0}")]
    Api(#[from] kube::Error),
    /// The request was denied or failed.
    #[error("certificate signing request {name} {kind}: {reason}: {message}")]
    Refused {
        /// The request's name.
        name: String,
        /// `Denied` or `Failed`.
        kind: String,
        /// The condition's reason.
        reason: String,
        /// The condition's message.
        message: String,
    },
    /// No certificate came in time.
    #[error("timed out waiting for the certificate of {0}")]
    Timeout(String),
    /// Watching the request failed.
    #[error("waiting for the certificate of {0}: {1}")]
    Wait(String, String),
}
