//! Publishing the server: Service `kube-system/kube-dns` (the cluster DNS address, ports `dns`
//! 53/UDP and `dns-tcp` 53/TCP, label `k8s-app: kube-dns`, no selector) and an EndpointSlice
//! managed by skiff-dns pointing at the address this node's server listens on, both written
//! with server-side apply (idempotent, repeated at every start). The slice is owned by this
//! node's Node object, so the garbage collector deletes it when the node is removed.
//!
//! What does not live here: the Endpoints object ([`crate::endpoints`]), routing to that
//! address (the service proxy).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};

/// The field manager and `endpointslice.kubernetes.io/managed-by` value.
pub const MANAGER: &str = "skiff-dns";

/// The Service object.
pub fn service(cluster_ip: IpAddr) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"}},
        "spec": {
            "clusterIP": cluster_ip.to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
            ]
        }
    })
}

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming an EndpointSlice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// This node's EndpointSlice of the Service, owned by the Node whose UID is `node_uid`.
pub fn endpoint_slice(node: &str, node_uid: &str, address: IpAddr, port: u16) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": slice_name(node), "namespace": "kube-system",
                     "labels": {SERVICE_NAME_LABEL: "kube-dns", MANAGED_BY_LABEL: MANAGER, "k8s-app": "kube-dns"},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]},
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address.to_string()], "nodeName": node,
                       "conditions": {"ready": true, "serving": true, "terminating": false}}],
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"}
        ]
    })
}

/// The slice's name for `node`.
pub fn slice_name(node: &str) -> String {
    let name = format!("kube-dns-{node}");
    name.chars().take(63).collect::<String>().trim_end_matches(['-', '.']).to_string()
}

/// Publishing failures.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// An API call failed.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// This node's Node object does not exist (yet): the slice would have no owner.
    #[error("node {0} is not registered yet")]
    NoNode(String),
}

/// Writes this node's EndpointSlice, owned by its Node.
pub async fn publish_slice(client: &kube::Client, node: &str, address: IpAddr, port: u16) -> Result<(), PublishError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let uid = nodes
        .get_opt(node)
        .await?
        .and_then(|n| n.metadata.uid)
        .ok_or_else(|| PublishError::NoNode(node.to_string()))?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let params = PatchParams::apply(MANAGER).force();
    slices.patch(&slice_name(node), &params, &Patch::Apply(endpoint_slice(node, &uid, address, port))).await?;
    Ok(())
}

/// Writes both objects.
pub async fn publish(
    client: &kube::Client,
    cluster_ip: IpAddr,
    node: &str,
    address: IpAddr,
    port: u16,
) -> Result<(), PublishError> {
    let params = PatchParams::apply(MANAGER).force();
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let existing = services.get_opt("kube-dns").await?;
    if let Some(ip) = existing.as_ref().and_then(|s| s.spec.as_ref()).and_then(|s| s.cluster_ip.clone())
        && ip != cluster_ip.to_string()
    {
        tracing::warn!(existing = %ip, wanted = %cluster_ip, "kube-system/kube-dns has another cluster IP; recreating it");
        services.delete("kube-dns", &Default::default()).await?;
    }
    services.patch("kube-dns", &params, &Patch::Apply(service(cluster_ip))).await?;
    publish_slice(client, node, address, port).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slice_is_owned_by_its_node() {
        let slice = endpoint_slice("n1", "uid-1", IpAddr::from([192, 0, 2, 1]), 53);
        assert_eq!(
            slice["metadata"]["ownerReferences"],
            serde_json::json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-1"}])
        );
        assert_eq!(slice["metadata"]["name"], "kube-dns-n1");
        assert_eq!(slice["metadata"]["labels"][MANAGED_BY_LABEL], MANAGER);
        let parsed: EndpointSlice = serde_json::from_value(slice).unwrap_or_default();
        assert_eq!(parsed.endpoints.len(), 1);
    }
}
