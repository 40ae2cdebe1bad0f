//! The certificate controllers over one watch of CertificateSigningRequests: the [`signer`]
//! (the `kubernetes.io/kube-apiserver-client`, `kube-apiserver-client-kubelet` and
//! `kubelet-serving` signers, issuing from the cluster CA), the [`approver`] (upstream's
//! `csrapproving`: kubelet client certificates of nodes and bootstrappers) and the [`cleaner`]
//! (upstream's `csrcleaner`). The CA key is handed in by the server and stays in this process.
//!
//! What does not live here: validation and authorization of CSR writes (the API server), the
//! CA itself (`crates/skiff/src/pki.rs`).

pub mod approver;
pub mod cleaner;
pub mod conditions;
pub mod signer;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::Api;
use kube::runtime::watcher;

use crate::informer::Informer;

/// Upstream's default `--cluster-signing-duration` (one year).
pub const DEFAULT_SIGNING_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What the signers sign with.
#[derive(Clone)]
pub struct CertificatesConfig {
    /// The cluster CA certificate (PEM).
    pub ca_cert_pem: String,
    /// The cluster CA's private key (PEM); never leaves the process.
    pub ca_key_pem: String,
    /// The longest lifetime of an issued certificate (`--cluster-signing-duration`).
    pub signing_duration: Duration,
}

impl std::fmt::Debug for CertificatesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificatesConfig")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("ca_key_pem", &"<redacted>")
            .field("signing_duration", &self.signing_duration)
            .finish()
    }
}

/// The shared watch of CertificateSigningRequests.
pub type CsrInformer = Arc<Informer<CertificateSigningRequest>>;

/// Runs the signer, the approver and the cleaner until the task is dropped.
pub async fn run(client: kube::Client, cfg: CertificatesConfig) {
    let informer: CsrInformer = Informer::new(Api::all(client.clone()), watcher::Config::default());
    let ca = match signer::Authority::new(&cfg) {
        Ok(ca) => Some(Arc::new(ca)),
        Err(e) => {
            tracing::error!(error = %e, "cannot load the cluster CA; CertificateSigningRequests will not be signed");
            None
        }
    };
    let signing = ca.map(|ca| signer::controller(client.clone(), informer.clone(), ca));
    let approving = approver::controller(client.clone(), informer.clone());
    let cleaning = cleaner::controller(client.clone(), informer.clone());
    let signing = async move {
        if let Some(s) = signing {
            s.await;
        }
    };
    futures::join!(informer.clone().run(), signing, approving, cleaning);
}
