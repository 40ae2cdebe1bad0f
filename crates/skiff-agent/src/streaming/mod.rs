//! The agent's streaming server (the kubelet's port 10250): container logs, exec, attach and
//! port-forward, reached by the API server when a client asks for `pods/log`, `pods/exec`,
//! `pods/attach` or `pods/portforward`.
//!
//! [`server`] terminates TLS (a serving certificate signed by the cluster CA) and admits only the
//! API server's kubelet-client identity; it routes `/containerLogs/{ns}/{pod}/{container}` to
//! [`logs`], `/exec/…` and `/attach/…` to [`remotecommand`], `/portForward/{ns}/{pod}` to
//! [`portforward`] and `/metrics/resource`, `/metrics/cadvisor` and `/stats/summary` to
//! [`crate::stats`] (callers need `nodes/metrics` and `nodes/stats`). The wire protocols
//! are SPDY/3.1 ([`spdy`]) and WebSocket channels ([`ws`]), including SPDY tunnelled in
//! WebSocket for port-forward.
//!
//! What does not live here: running processes in containers (`skiff_runtime::exec`), the API
//! server's side of the proxy (`skiff-apiserver`), the pod workers ([`crate::pods`]).

pub mod logs;
pub mod portforward;
pub mod remotecommand;
pub mod server;
pub mod spdy;
pub mod ws;

use std::path::PathBuf;

use skiff_runtime::container::Runtime;
use skiff_runtime::sandbox::SandboxStatus;

/// The identity (certificate common name) of the API server's client certificate for agents;
/// the only caller the streaming server admits.
pub const KUBELET_CLIENT_CN: &str = "kube-apiserver-kubelet-client";

/// TLS material of the streaming server.
#[derive(Clone)]
pub struct StreamingTls {
    /// Serving certificate (PEM), signed by the cluster CA, naming the node.
    pub cert_pem: String,
    /// Its key (PEM).
    pub key_pem: String,
    /// The cluster CA (PEM), which must have signed callers' certificates.
    pub client_ca_pem: String,
}

impl std::fmt::Debug for StreamingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamingTls { .. }")
    }
}

/// The network namespace of pod `uid`'s sandbox; `None` when the pod has no sandbox of its own
/// network (a `hostNetwork` pod, or none at all): then connections are made in the host's.
pub fn pod_netns(runtime: &Runtime, uid: &str) -> Option<PathBuf> {
    match runtime.sandbox_state(uid) {
        Ok(SandboxStatus::Ready(state)) => state.net,
        _ => None,
    }
}
