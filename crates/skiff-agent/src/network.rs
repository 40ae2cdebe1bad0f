//! The node's pod network as the agent sees it: wait until the server has given the Node a pod
//! CIDR (`spec.podCIDR`, assigned by the node IPAM controller), then open `skiff-net`'s pod
//! network on it (bridge, masquerade, address management).
//!
//! What does not live here: the bridge, veth and IPAM mechanics (`skiff-net`), and when a pod
//! gets connected (the pod worker, once its sandbox runs).

use std::path::Path;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use skiff_net::PodNetwork;

/// Waits until Node `node_name` has a pod CIDR and returns it (an IPv4 range: dual stack is not
/// supported yet).
pub async fn wait_for_pod_cidr(client: &kube::Client, node_name: &str) -> Ipv4Net {
    let api: Api<Node> = Api::all(client.clone());
    let mut logged = false;
    loop {
        match api.get_opt(node_name).await {
            Ok(Some(node)) => {
                let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).unwrap_or_default().to_string();
                match cidr.parse::<Ipv4Net>() {
                    Ok(net) => return net,
                    Err(_) if cidr.is_empty() => {}
                    Err(e) => tracing::error!(node = node_name, %cidr, error = %e, "the node's pod CIDR is not IPv4"),
                }
            }
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "reading the node"),
        }
        if !logged {
            tracing::info!(node = node_name, "waiting for the node's pod CIDR");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Opens the pod network of `cidr` (retrying until the host side can be set up) for the data
/// directory `data_dir`.
pub async fn open(data_dir: &Path, cidr: Ipv4Net) -> PodNetwork {
    loop {
        let dir = data_dir.to_path_buf();
        match tokio::task::spawn_blocking(move || PodNetwork::open(&dir, cidr, skiff_net::DEFAULT_BRIDGE)).await {
            Ok(Ok(network)) => {
                tracing::info!(%cidr, bridge = skiff_net::DEFAULT_BRIDGE, "pod network ready");
                return network;
            }
            Ok(Err(e)) => tracing::error!(%cidr, error = %e, "cannot set up the pod network; retrying"),
            Err(e) => tracing::error!(error = %e, "pod network task failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
