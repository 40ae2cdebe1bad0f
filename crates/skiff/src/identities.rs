//! The identities of the in-process components: each talks to the API server with its own
//! client certificate, issued from the cluster CA at every start (CN = user, O = groups), as
//! upstream's components each have their own kubeconfig. The admin token is kept for the admin
//! kubeconfig only.
//!
//! The agent is the exception: its certificate is kept in `<data-dir>/agent/pki` and rotated
//! through the CSR API (`skiff_agent::certificate`); the server issues one ([`node_identity`])
//! only when no valid stored one exists, as a bootstrap would.
//!
//! What the identities may do is decided by the API server (the Node authorizer for the agent,
//! RBAC with the roles of `skiff_apiserver::authz::components` for the others), not here.

use anyhow::Context as _;
use skiff_agent::certificate::identity::{ClientIdentity, RotatingIdentity};
use skiff_agent::certificate::manager::Rotation;
use skiff_agent::certificate::request;
use skiff_agent::certificate::store::CertificateStore;
use skiff_controllers::certificates::signer::Authority;

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

/// The client identity of node `node`'s agent: the stored one when it is still valid at `now`,
/// names the node and was issued by `ca_pem`; otherwise a new one, requested and signed in
/// process by `authority` exactly as the kubelet client signer would (same subject, usages and
/// lifetime), then stored.
pub fn node_identity(
    store: &CertificateStore,
    authority: &Authority,
    ca_pem: &str,
    node: &str,
    now: jiff::Timestamp,
) -> anyhow::Result<ClientIdentity> {
    let user = node_user(node);
    match store.load() {
        Ok(Some(id))
            if id.common_name == user
                && id.valid_at(now.as_second())
                && crate::pki::issued_by(&id.cert_pem, ca_pem) =>
        {
            tracing::info!(path = %store.path().display(), expires = id.not_after, "reusing the agent's client certificate");
            return Ok(id);
        }
        Ok(Some(_)) => tracing::info!(
            path = %store.path().display(),
            "the stored client certificate is expired or not this node's; issuing a new one"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the stored client certificate; issuing a new one"),
    }
    let req = request::build(node)?;
    let parsed = skiff_api::certificates::parse_request(&req.csr.spec.request.0)
        .map_err(|e| anyhow::anyhow!("the agent's own certificate request: {e}"))?;
    let usages: Vec<String> = request::USAGES.iter().map(|u| u.to_string()).collect();
    let cert_pem =
        authority.sign(&parsed, &usages, None, now).context("cannot issue the agent's client certificate")?;
    let id = ClientIdentity::from_pem(&cert_pem, &req.key_pem)?;
    store.save(&id)?;
    Ok(id)
}

/// The agent's API client, presenting the certificate of [`node_identity`] (kept in
/// `<data_dir>/agent/pki`), and the rotation loop that renews it.
pub fn agent_client(
    pki: &Pki,
    signing: &skiff_controllers::certificates::CertificatesConfig,
    server_url: &str,
    data_dir: &std::path::Path,
    node: &str,
) -> anyhow::Result<(kube::Client, Rotation)> {
    let store = CertificateStore::new(data_dir.join("agent").join("pki"));
    let authority = Authority::new(signing).context("cannot load the cluster CA to sign the agent's certificate")?;
    let identity = node_identity(&store, &authority, pki.ca_cert_pem(), node, jiff::Timestamp::now())?;
    let identity = RotatingIdentity::new(identity);
    let client = skiff_agent::certificate::identity::client(server_url, pki.ca_cert_pem(), identity.clone())
        .context("cannot build the agent's API client")?;
    let rotation = Rotation { client: client.clone(), identity, store, node_name: node.to_string() };
    Ok((client, rotation))
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

    fn pki(dir: &std::path::Path) -> Pki {
        let req = PkiRequest {
            hostnames: vec![],
            ips: vec![],
            cluster_domain: "cluster.local".into(),
            service_ip: "10.43.0.1".parse().unwrap(),
        };
        Pki::load_or_create(dir, &req).unwrap()
    }

    fn authority(pki: &Pki, lifetime: std::time::Duration) -> Authority {
        Authority::new(&skiff_controllers::certificates::CertificatesConfig {
            ca_cert_pem: pki.ca().cert_pem.clone(),
            ca_key_pem: pki.ca().key_pem.clone(),
            signing_duration: lifetime,
        })
        .unwrap()
    }

    #[test]
    fn the_node_identity_is_reused_while_valid_and_reissued_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(&dir.path().join("pki"));
        let ca = authority(&pki, std::time::Duration::from_secs(600));
        let store = CertificateStore::new(dir.path().join("agent-pki"));
        let now = jiff::Timestamp::now();
        let first = node_identity(&store, &ca, pki.ca_cert_pem(), "n1", now).unwrap();
        assert_eq!(first.common_name, "system:node:n1");
        assert_eq!(first.not_after, now.as_second() + 600);
        assert!(issued_by(&first.cert_pem, pki.ca_cert_pem()));
        let info = inspect_cert_pem(&first.cert_pem).unwrap();
        assert_eq!(info.organizations, vec!["system:nodes".to_owned()]);

        // Still valid: the stored pair comes back.
        let again = node_identity(&store, &ca, pki.ca_cert_pem(), "n1", now).unwrap();
        assert_eq!(again.cert_pem, first.cert_pem);
        // Expired: a new one.
        let later = now.checked_add(jiff::SignedDuration::from_secs(601)).unwrap();
        let renewed = node_identity(&store, &ca, pki.ca_cert_pem(), "n1", later).unwrap();
        assert_ne!(renewed.cert_pem, first.cert_pem);
        // Another node's name, or another CA: a new one.
        let other = node_identity(&store, &ca, pki.ca_cert_pem(), "n2", later).unwrap();
        assert_eq!(other.common_name, "system:node:n2");
        let other_pki = self::pki(&dir.path().join("pki2"));
        let other_ca = authority(&other_pki, std::time::Duration::from_secs(600));
        let moved = node_identity(&store, &other_ca, other_pki.ca_cert_pem(), "n2", later).unwrap();
        assert!(issued_by(&moved.cert_pem, other_pki.ca_cert_pem()));
        assert_ne!(moved.cert_pem, other.cert_pem);
    }
}
