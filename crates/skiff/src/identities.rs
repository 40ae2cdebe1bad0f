//! The identities of the in-process components: each talks to the API server with its own
//! client certificate, issued from the cluster CA at every start (CN = user, O = groups), as
//! upstream's components each have their own kubeconfig. The admin token is kept for the admin
//! kubeconfig only.
//!
//! What the identities may do is decided by the API server (the Node authorizer for the agent,
//! RBAC with the roles of `skiff_apiserver::authz::components` for the others), not here.

use anyhow::Context as _;

use crate::pki::Pki;

/// The scheduler's user (bound to upstream's `system:kube-scheduler` role).
pub const SCHEDULER: &str = "system:kube-scheduler";
/// The controller manager's user.
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
/// The service proxy's user (bound to upstream's `system:node-proxier` role).
pub const PROXY: &str = "system:kube-proxy";
/// The cluster DNS server's user.
pub const DNS: &str = "system:skiff:dns";
/// The built-in LoadBalancer's user.
pub const SERVICELB: &str = "system:skiff:servicelb";
/// The NetworkPolicy controller's user (`skiff_net::netpol`, on every node).
pub const NETPOL: &str = "system:skiff:netpol";
/// The built-in Ingress controller's user.
pub const INGRESS: &str = "system:skiff:ingress";
/// The group of node agents.
pub const NODES_GROUP: &str = "system:nodes";

/// The user name of the agent of node `node`: `system:node:<node>`.
pub fn node_user(node: &str) -> String {
    format!("system:node:{node}")
}

/// A client configuration for `user` in `groups` towards `server_url`, with a fresh certificate.
pub fn client_config(
    pki: &Pki,
    server_url: &str,
    user: &str,
    groups: &[&str],
) -> anyhow::Result<skiff_controllers::ClientConfig> {
    let pair = pki
        .issue_client_cert(user, groups)
        .with_context(|| format!("cannot issue the client certificate of {user}"))?;
    Ok(skiff_controllers::ClientConfig {
        server_url: server_url.to_string(),
        ca_pem: pki.ca_cert_pem().to_string(),
        credentials: skiff_controllers::Credentials::Certificate { cert_pem: pair.cert_pem, key_pem: pair.key_pem },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pki::{PkiRequest, inspect_cert_pem, issued_by};

    #[test]
    fn component_certificates_name_the_component() {
        let dir = tempfile::tempdir().unwrap();
        let req = PkiRequest {
            hostnames: vec![],
            ips: vec![],
            cluster_domain: "cluster.local".into(),
            service_ip: "10.43.0.1".parse().unwrap(),
        };
        let pki = Pki::load_or_create(dir.path(), &req).unwrap();
        let cfg = client_config(&pki, "https://127.0.0.1:6443", &node_user("n1"), &[NODES_GROUP]).unwrap();
        let skiff_controllers::Credentials::Certificate { cert_pem, .. } = cfg.credentials else { panic!("no cert") };
        assert!(issued_by(&cert_pem, pki.ca_cert_pem()));
        let info = inspect_cert_pem(&cert_pem).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("system:node:n1"));
        assert_eq!(info.organizations, vec!["system:nodes".to_owned()]);
        assert!(info.client_auth);
    }
}
