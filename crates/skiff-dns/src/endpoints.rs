//! The `kube-system/kube-dns` Endpoints (core/v1), kept equal to the DNS servers' EndpointSlices,
//! and this node's slice kept present.
//!
//! `kube-dns` has no selector (the servers run in the host network, not as pods), so neither the
//! Endpoints controller nor the EndpointSlice controller manages it: the DNS servers publish one
//! slice each ([`crate::publish`]) and, as upstream's producers of selector-less Services that
//! write both, the Endpoints object too, labelled `endpointslice.kubernetes.io/skip-mirror` so
//! the mirroring controller does not turn it into slices again. Every DNS server computes the
//! same object from the same slices (sorted, one subset per port set), so concurrent writers
//! converge. A server whose own slice disappears (its Node was deleted and registered again, so
//! the garbage collector removed the slice it owned) publishes it again.
//!
//! What does not live here: the Service and the slice's content ([`crate::publish`]).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use tokio::sync::Notify;

use crate::publish::{MANAGED_BY_LABEL, MANAGER, SERVICE_NAME_LABEL, publish_slice, slice_name};

/// The label asking the EndpointSlice mirroring controller to leave an Endpoints object alone.
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";

/// Whether `slice` is one of the DNS servers' slices of `kube-dns` (and not being deleted).
fn is_dns_slice(slice: &EndpointSlice) -> bool {
    let labels = slice.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).map(String::as_str);
    slice.metadata.namespace.as_deref() == Some("kube-system")
        && label(SERVICE_NAME_LABEL) == Some("kube-dns")
        && label(MANAGED_BY_LABEL) == Some(MANAGER)
        && slice.metadata.deletion_timestamp.is_none()
}

/// The subsets of `kube-dns` from the DNS servers' slices: one subset per set of ports, ready
/// addresses under `addresses`, the others under `notReadyAddresses`, sorted by address.
pub fn subsets<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<EndpointSubset> {
    type Ports = Vec<(String, i32, String)>;
    let mut by_ports: BTreeMap<Ports, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for slice in slices.into_iter().filter(|s| is_dns_slice(s)) {
        let mut ports: Ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some((p.name.clone().unwrap_or_default(), p.port?, p.protocol.clone().unwrap_or_else(|| "TCP".into())))
            })
            .collect();
        ports.sort();
        if ports.is_empty() {
            continue;
        }
        let entry = by_ports.entry(ports).or_default();
        for ep in &slice.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            for ip in &ep.addresses {
                let address = EndpointAddress { ip: ip.clone(), node_name: ep.node_name.clone(), ..Default::default() };
                if ready { entry.0.push(address) } else { entry.1.push(address) }
            }
        }
    }
    let sort = |mut v: Vec<EndpointAddress>| {
        v.sort_by_key(|a| (a.ip.parse::<IpAddr>().ok(), a.ip.clone()));
        v.dedup_by(|a, b| a.ip == b.ip);
        (!v.is_empty()).then_some(v)
    };
    by_ports
        .into_iter()
        .filter_map(|(ports, (ready, not_ready))| {
            let (addresses, not_ready_addresses) = (sort(ready), sort(not_ready));
            (addresses.is_some() || not_ready_addresses.is_some()).then(|| EndpointSubset {
                addresses,
                not_ready_addresses,
                ports: Some(
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            name: Some(name).filter(|n| !n.is_empty()),
                            port,
                            protocol: Some(protocol),
                            app_protocol: None,
                        })
                        .collect(),
                ),
            })
        })
        .collect()
}

/// The Endpoints object to apply.
pub fn endpoints_object(subsets: &[EndpointSubset]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                                "kubernetes.io/cluster-service": "true", SKIP_MIRROR: "true"}},
        "subsets": subsets,
    })
}

/// Whether `current` already is what [`endpoints_object`] of `wanted` would write.
fn up_to_date(current: Option<&Endpoints>, wanted: &[EndpointSubset]) -> bool {
    current.is_some_and(|e| {
        e.subsets.as_deref().unwrap_or_default() == wanted
            && e.metadata.labels.as_ref().and_then(|l| l.get(SKIP_MIRROR)).map(String::as_str) == Some("true")
    })
}

/// Keeps `kube-system/kube-dns`'s Endpoints equal to the DNS servers' slices and this node's
/// slice (`node`, pointing at `address:port`) present, until the task is aborted.
pub async fn run(client: kube::Client, node: String, address: IpAddr, port: u16) {
    let changed = Arc::new(Notify::new());
    let slices = crate::reflect(
        Api::<EndpointSlice>::namespaced(client.clone(), "kube-system"),
        watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}=kube-dns,{MANAGED_BY_LABEL}={MANAGER}")),
        changed.clone(),
    );
    let endpoints_api = Api::<Endpoints>::namespaced(client.clone(), "kube-system");
    let endpoints = crate::reflect(
        endpoints_api.clone(),
        watcher::Config::default().fields("metadata.name=kube-dns"),
        changed.clone(),
    );
    let (Ok(()), Ok(())) = (slices.wait_until_ready().await, endpoints.wait_until_ready().await) else {
        tracing::error!("kube-dns endpoints reflectors stopped before their first list");
        return;
    };
    let own = slice_name(&node);
    loop {
        let state = slices.state();
        if !state.iter().any(|s| s.metadata.name.as_deref() == Some(own.as_str())) {
            match publish_slice(&client, &node, address, port).await {
                Ok(()) => tracing::info!(slice = %own, "published the cluster DNS EndpointSlice again"),
                Err(e) => tracing::debug!(error = %e, "cannot publish the cluster DNS EndpointSlice yet"),
            }
        }
        let wanted = subsets(state.iter().map(|s| s.as_ref()));
        let current = endpoints.state().into_iter().next();
        let mut retry = false;
        if !up_to_date(current.as_deref(), &wanted) {
            let params = PatchParams::apply(MANAGER).force();
            match endpoints_api.patch("kube-dns", &params, &Patch::Apply(endpoints_object(&wanted))).await {
                Ok(_) => tracing::debug!(subsets = wanted.len(), "kube-system/kube-dns endpoints written"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write kube-system/kube-dns endpoints; retrying");
                    retry = true;
                }
            }
        }
        if retry {
            tokio::time::sleep(Duration::from_secs(2)).await;
        } else {
            changed.notified().await;
            // Coalesce bursts of changes.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::publish::endpoint_slice;

    fn slice(node: &str, ip: [u8; 4]) -> EndpointSlice {
        serde_json::from_value(endpoint_slice(node, "uid", IpAddr::from(ip), 53)).unwrap()
    }

    #[test]
    fn endpoints_list_every_servers_address_once_sorted() {
        let slices = [slice("n2", [10, 0, 0, 12]), slice("n1", [10, 0, 0, 9]), slice("n3", [10, 0, 0, 12])];
        let subsets = subsets(&slices);
        assert_eq!(subsets.len(), 1);
        let ips: Vec<&str> = subsets[0].addresses.iter().flatten().map(|a| a.ip.as_str()).collect();
        assert_eq!(ips, ["10.0.0.9", "10.0.0.12"]);
        assert_eq!(subsets[0].addresses.as_ref().unwrap()[0].node_name.as_deref(), Some("n1"));
        let ports: Vec<(Option<&str>, i32, Option<&str>)> =
            subsets[0].ports.iter().flatten().map(|p| (p.name.as_deref(), p.port, p.protocol.as_deref())).collect();
        assert_eq!(ports, [(Some("dns"), 53, Some("UDP")), (Some("dns-tcp"), 53, Some("TCP"))]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn other_slices_deleted_ones_and_not_ready_servers_are_told_apart() {
        let mut other = slice("n1", [10, 0, 0, 1]);
        other
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(MANAGED_BY_LABEL.into(), "endpointslice-controller.k8s.io".into());
        let mut deleting = slice("n2", [10, 0, 0, 2]);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let mut not_ready = slice("n3", [10, 0, 0, 3]);
        not_ready.endpoints[0].conditions.as_mut().unwrap().ready = Some(false);
        let subsets = subsets(&[other, deleting, not_ready]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].addresses.is_none());
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.3");
        assert!(super::subsets(&[]).is_empty());
    }

    #[test]
    fn the_object_skips_mirroring_and_is_rewritten_only_when_it_differs() {
        let wanted = subsets(&[slice("n1", [10, 0, 0, 9])]);
        let object = endpoints_object(&wanted);
        assert_eq!(object["metadata"]["labels"][SKIP_MIRROR], "true");
        let current: Endpoints = serde_json::from_value(object).unwrap();
        assert!(up_to_date(Some(&current), &wanted));
        assert!(!up_to_date(Some(&current), &[]));
        assert!(!up_to_date(None, &wanted));
        let mut unlabelled = current.clone();
        unlabelled.metadata.labels = None;
        assert!(!up_to_date(Some(&unlabelled), &wanted));
    }
}
