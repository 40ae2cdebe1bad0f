//! The EndpointSlice controller and the EndpointSlice mirroring controller.
//!
//! - For a Service with a selector: slices managed by `endpointslice-controller.k8s.io`, one
//!   endpoint per selected pod with an address (terminating pods included, with upstream's
//!   `ready`/`serving`/`terminating` conditions; `ready` also with `publishNotReadyAddresses`),
//!   grouped by resolved port set, at most 100 endpoints a slice, a placeholder slice when there
//!   are none.
//! - For a Service without a selector: its manually managed Endpoints mirrored into slices
//!   managed by `endpointslicemirroring-controller.k8s.io` (unless labelled
//!   `endpointslice.kubernetes.io/skip-mirror: "true"`, as the API server's own are).
//!
//! Slices carry `kubernetes.io/service-name`, the managed-by label, the Service's labels, and a
//! controller reference to the Service. What does not live here: Endpoints ([`crate::endpoints`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use crate::endpoints::{
    find_port, pod_hostname, pod_in_endpoints, pod_ref, pod_services, selects, service_labels, service_selector,
};
use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::podutil;
use crate::queue::{WorkQueue, run_workers};

/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming a slice's manager.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's manager value.
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
/// The mirroring controller's manager value.
pub const MIRRORING: &str = "endpointslicemirroring-controller.k8s.io";
/// Endpoints labelled with this (`"true"`) are not mirrored.
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";
/// The most endpoints one slice holds.
pub const MAX_ENDPOINTS: usize = 100;

/// A slice's content: its ports and endpoints.
pub type Chunk = (Vec<EndpointPort>, Vec<Endpoint>);

/// The slices a Service with a selector should have.
pub fn desired_for_pods(svc: &Service, pods: &[&Pod]) -> Vec<Chunk> {
    let publish = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let svc_ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    let mut groups: BTreeMap<String, Chunk> = BTreeMap::new();
    let mut sorted: Vec<&&Pod> = pods.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for pod in sorted {
        if !pod_in_endpoints(pod, true) {
            continue;
        }
        let ports: Vec<EndpointPort> = svc_ports
            .iter()
            .filter_map(|p| {
                find_port(pod, p).map(|n| EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(n),
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: p.app_protocol.clone(),
                })
            })
            .collect();
        let serving = podutil::is_ready(pod);
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let endpoint = Endpoint {
            addresses: vec![pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()],
            conditions: Some(EndpointConditions {
                ready: Some(publish || (serving && !terminating)),
                serving: Some(serving),
                terminating: Some(terminating),
            }),
            hostname: pod_hostname(pod, svc),
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(pod_ref(pod)),
            ..Default::default()
        };
        let id = serde_json::to_string(&ports).unwrap_or_default();
        let entry = groups.entry(id).or_insert_with(|| (ports, Vec::new()));
        entry.1.push(endpoint);
    }
    chunked(groups.into_values())
}

/// The slices mirroring a manually managed Endpoints object.
pub fn desired_for_endpoints(ep: &Endpoints) -> Vec<Chunk> {
    let mut out = Vec::new();
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let mut endpoints = Vec::new();
        for (ready, addrs) in [(true, &subset.addresses), (false, &subset.not_ready_addresses)] {
            for a in addrs.iter().flatten() {
                endpoints.push(Endpoint {
                    addresses: vec![a.ip.clone()],
                    conditions: Some(EndpointConditions { ready: Some(ready), serving: None, terminating: None }),
                    hostname: a.hostname.clone(),
                    node_name: a.node_name.clone(),
                    target_ref: a.target_ref.clone(),
                    ..Default::default()
                });
            }
        }
        out.push((ports, endpoints));
    }
    chunked(out)
}

fn chunked(groups: impl IntoIterator<Item = Chunk>) -> Vec<Chunk> {
    let mut out = Vec::new();
    for (ports, endpoints) in groups {
        for chunk in endpoints.chunks(MAX_ENDPOINTS) {
            out.push((ports.clone(), chunk.to_vec()));
        }
    }
    out
}

fn is_ipv6(ep: &Endpoint) -> bool {
    ep.addresses.first().is_some_and(|a| a.contains(':'))
}

/// Runs both controllers until dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.services.on_change(move |old, new| {
        if let Some(s) = new.or(old) {
            q.add(key_of(s));
        }
    });
    let (q, inf) = (queue.clone(), Arc::downgrade(&informers));
    informers.pods.on_change(move |old, new| {
        if let (Some(o), Some(n)) = (old, new)
            && o.metadata.resource_version == n.metadata.resource_version
        {
            return;
        }
        if let Some(inf) = inf.upgrade() {
            pod_services(&inf, old, new).into_iter().for_each(|k| q.add(k));
        }
    });
    let q = queue.clone();
    informers.endpointslices.on_change(move |old, new| {
        if let Some(s) = new.or(old)
            && let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME))
        {
            q.add(format!("{}/{svc}", s.metadata.namespace.as_deref().unwrap_or("")));
        }
    });
    let q = queue.clone();
    informers.endpoints.on_change(move |old, new| {
        if let Some(e) = new.or(old) {
            q.add(key_of(e));
        }
    });
    async move {
        futures::join!(
            informers.services.ready(),
            informers.pods.ready(),
            informers.endpoints.ready(),
            informers.endpointslices.ready()
        );
        run_workers("endpointslice-controller", queue, 5, move |key: String| {
            let client = client.clone();
            let informers = informers.clone();
            async move { sync(&client, &informers, &key).await }
        })
        .await;
    }
}

async fn sync(client: &kube::Client, informers: &SharedInformers, key: &str) -> Result<(), kube::Error> {
    let (ns, name) = split_key(key);
    let svc = get(&informers.services.store(), key);
    let existing = |manager: &str| -> Vec<EndpointSlice> {
        informers
            .endpointslices
            .store()
            .state()
            .into_iter()
            .filter(|s| s.metadata.namespace.as_deref() == Some(ns))
            .filter(|s| {
                let l = s.metadata.labels.as_ref();
                l.and_then(|l| l.get(SERVICE_NAME)).map(String::as_str) == Some(name)
                    && l.and_then(|l| l.get(MANAGED_BY)).map(String::as_str) == Some(manager)
            })
            .map(|s| (*s).clone())
            .collect()
    };
    let Some(svc) = svc else {
        // Slices of a deleted Service go with it (the garbage collector also sees to it).
        for manager in [CONTROLLER, MIRRORING] {
            reconcile(client, ns, None, manager, Vec::new(), existing(manager), BTreeMap::new()).await?;
        }
        return Ok(());
    };
    if service_selector(&svc).is_some() {
        let pods: Vec<Arc<Pod>> = informers.pods.store().state().into_iter().filter(|p| selects(&svc, p)).collect();
        let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let mut desired = desired_for_pods(&svc, &pods);
        if desired.is_empty() {
            desired.push((Vec::new(), Vec::new()));
        }
        reconcile(client, ns, Some(&svc), CONTROLLER, desired, existing(CONTROLLER), service_labels(&svc)).await?;
        reconcile(client, ns, Some(&svc), MIRRORING, Vec::new(), existing(MIRRORING), BTreeMap::new()).await
    } else {
        let ep = get(&informers.endpoints.store(), key);
        let mirror = ep.as_ref().filter(|e| {
            e.metadata.labels.as_ref().and_then(|l| l.get(SKIP_MIRROR)).map(String::as_str) != Some("true")
        });
        let desired = mirror.map(|e| desired_for_endpoints(e)).unwrap_or_default();
        let labels = mirror.and_then(|e| e.metadata.labels.clone()).unwrap_or_default();
        reconcile(client, ns, Some(&svc), MIRRORING, desired, existing(MIRRORING), labels).await?;
        reconcile(client, ns, Some(&svc), CONTROLLER, Vec::new(), existing(CONTROLLER), BTreeMap::new()).await
    }
}

/// Makes the slices of one manager for one Service equal `desired`, reusing existing slices.
async fn reconcile(
    client: &kube::Client,
    ns: &str,
    svc: Option<&Service>,
    manager: &str,
    desired: Vec<Chunk>,
    mut existing: Vec<EndpointSlice>,
    extra_labels: BTreeMap<String, String>,
) -> Result<(), kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut unused: Vec<Option<EndpointSlice>> = existing.into_iter().map(Some).collect();
    for (ports, endpoints) in desired {
        let Some(svc) = svc else { break };
        let svc_name = svc.metadata.name.clone().unwrap_or_default();
        let mut labels = extra_labels.clone();
        labels.remove(MANAGED_BY);
        labels.insert(SERVICE_NAME.into(), svc_name.clone());
        labels.insert(MANAGED_BY.into(), manager.into());
        let address_type = if endpoints.first().is_some_and(is_ipv6) { "IPv6" } else { "IPv4" };
        let ports_opt = (!ports.is_empty()).then_some(ports);
        // Prefer a slice that already has exactly this content, then one with the same ports.
        let pick = unused
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.endpoints == endpoints && s.ports == ports_opt))
            .or_else(|| unused.iter().position(|s| s.as_ref().is_some_and(|s| s.ports == ports_opt)))
            .or_else(|| unused.iter().position(Option::is_some));
        match pick.and_then(|i| unused[i].take()) {
            Some(mut slice) => {
                if slice.endpoints == endpoints
                    && slice.ports == ports_opt
                    && slice.metadata.labels.as_ref() == Some(&labels)
                    && slice.address_type == address_type
                {
                    continue;
                }
                slice.endpoints = endpoints;
                slice.ports = ports_opt;
                slice.metadata.labels = Some(labels);
                if slice.address_type != address_type {
                    // addressType is immutable: replace the slice.
                    delete(&api, &slice).await?;
                    slice.metadata = ObjectMeta {
                        generate_name: slice.metadata.generate_name.clone(),
                        labels: slice.metadata.labels.clone(),
                        owner_references: slice.metadata.owner_references.clone(),
                        ..Default::default()
                    };
                    slice.address_type = address_type.into();
                    api.create(&PostParams::default(), &slice).await?;
                    continue;
                }
                let name = slice.metadata.name.clone().unwrap_or_default();
                api.replace(&name, &PostParams::default(), &slice).await?;
            }
            None => {
                let slice = EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{svc_name}-")),
                        labels: Some(labels),
                        owner_references: Some(vec![podutil::new_controller_ref(
                            "v1",
                            "Service",
                            &svc_name,
                            svc.metadata.uid.as_deref().unwrap_or(""),
                        )]),
                        ..Default::default()
                    },
                    address_type: address_type.into(),
                    endpoints,
                    ports: ports_opt,
                };
                match api.create(&PostParams::default(), &slice).await {
                    Ok(_) => {}
                    Err(e) if crate::apierr::benign(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    for slice in unused.into_iter().flatten() {
        delete(&api, &slice).await?;
    }
    Ok(())
}

async fn delete(api: &Api<EndpointSlice>, slice: &EndpointSlice) -> Result<(), kube::Error> {
    match api.delete(slice.metadata.name.as_deref().unwrap_or(""), &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::tests::{pod, service};
    use k8s_openapi::api::core::v1::{EndpointAddress, EndpointSubset};

    #[test]
    fn conditions_and_terminating_pods() {
        let a = pod("a", "10.0.0.1", true);
        let b = pod("b", "10.0.0.2", false);
        let mut c = pod("c", "10.0.0.3", true);
        c.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        let slices = desired_for_pods(&service(false), &[&c, &b, &a]);
        assert_eq!(slices.len(), 1);
        let (ports, eps) = &slices[0];
        assert_eq!(ports[0].port, Some(8080));
        let conds: Vec<(bool, bool, bool)> = eps
            .iter()
            .map(|e| {
                let c = e.conditions.clone().unwrap_or_default();
                (c.ready.unwrap_or(false), c.serving.unwrap_or(false), c.terminating.unwrap_or(false))
            })
            .collect();
        assert_eq!(conds, [(true, true, false), (false, false, false), (false, true, true)]);
        let slices = desired_for_pods(&service(true), &[&b]);
        assert_eq!(slices[0].1[0].conditions.as_ref().and_then(|c| c.ready), Some(true));
    }

    #[test]
    fn at_most_100_endpoints_per_slice() {
        let pods: Vec<Pod> =
            (0..250).map(|i| pod(&format!("p{i:03}"), &format!("10.0.{}.{}", i / 200, i % 200), true)).collect();
        let refs: Vec<&Pod> = pods.iter().collect();
        let slices = desired_for_pods(&service(false), &refs);
        assert_eq!(slices.iter().map(|s| s.1.len()).collect::<Vec<_>>(), [100, 100, 50]);
    }

    #[test]
    fn mirrors_endpoints() {
        let ep = Endpoints {
            metadata: ObjectMeta::default(),
            subsets: Some(vec![EndpointSubset {
                addresses: Some(vec![EndpointAddress { ip: "1.2.3.4".into(), ..Default::default() }]),
                not_ready_addresses: Some(vec![EndpointAddress { ip: "1.2.3.5".into(), ..Default::default() }]),
                ports: Some(vec![k8s_openapi::api::core::v1::EndpointPort { port: 9, ..Default::default() }]),
            }]),
        };
        let slices = desired_for_endpoints(&ep);
        assert_eq!(slices.len(), 1);
        let ready: Vec<Option<bool>> =
            slices[0].1.iter().map(|e| e.conditions.as_ref().and_then(|c| c.ready)).collect();
        assert_eq!(ready, [Some(true), Some(false)]);
    }
}
