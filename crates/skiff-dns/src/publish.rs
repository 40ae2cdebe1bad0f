//! Publishing the server: Service `kube-system/kube-dns` (the cluster DNS address, ports `dns`
//! 53/UDP and `dns-tcp` 53/TCP, label `k8s-app: kube-dns`, no selector) and an EndpointSlice
//! managed by skiff-dns pointing at the address this node's server listens on, both written
//! with server-side apply (idempotent, repeated at every start).
//!
//! What does not live here: routing to that address (the service proxy).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
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

/// This node's EndpointSlice of the Service.
pub fn endpoint_slice(node: &str, address: IpAddr, port: u16) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": slice_name(node), "namespace": "kube-system",
                     "labels": {"kubernetes.io/service-name": "kube-dns", "endpointslice.kubernetes.io/managed-by": MANAGER, "k8s-app": "kube-dns"}},
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

/// Writes both objects.
pub async fn publish(
    client: &kube::Client,
    cluster_ip: IpAddr,
    node: &str,
    address: IpAddr,
    port: u16,
) -> Result<(), kube::Error> {
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
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    slices.patch(&slice_name(node), &params, &Patch::Apply(endpoint_slice(node, address, port))).await?;
    Ok(())
}
