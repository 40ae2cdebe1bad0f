//! The Endpoints controller: for every Service with a selector, an Endpoints object of the same
//! name listing the selected pods' addresses (ready ones under `addresses`, the others under
//! `notReadyAddresses`, all ready with `publishNotReadyAddresses`), with ports resolved per pod
//! (named target ports through the pod's container ports), repacked by port set as upstream's
//! `RepackSubsets`. Services without a selector keep their manually managed Endpoints.
//!
//! Also the pod facts both endpoint controllers share ([`pod_in_endpoints`], [`find_port`]).
//! What does not live here: EndpointSlices ([`crate::endpointslice`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, PostParams};

use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::podutil;
use crate::queue::{WorkQueue, run_workers};
use crate::selector;

/// The label marking Endpoints of headless Services.
pub const HEADLESS: &str = "service.kubernetes.io/headless";

/// The Service's selector, when it has a non-empty one.
pub fn service_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec.as_ref()?.selector.as_ref().filter(|s| !s.is_empty())
}

/// Whether the Service selects `pod`.
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    svc.metadata.namespace == pod.metadata.namespace
        && service_selector(svc).is_some_and(|s| selector::map_matches(s, pod.metadata.labels.as_ref()))
}

/// Whether the pod belongs in endpoints at all (upstream's `ShouldPodBeInEndpoints`): it has an
/// address, has not finished, and is not terminating unless `include_terminating`.
pub fn pod_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let has_ip = status.and_then(|s| s.pod_ip.as_deref()).is_some_and(|ip| !ip.is_empty());
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    has_ip
        && phase != "Failed"
        && phase != "Succeeded"
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod port a Service port targets: its number, or the named container port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    match port.target_port.as_ref() {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            pod.spec.as_ref()?.containers.iter().flat_map(|c| c.ports.iter().flatten()).find_map(|p| {
                (p.name.as_deref() == Some(name.as_str()) && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                    .then_some(p.container_port)
            })
        }
    }
}

/// A reference to the pod, as endpoints carry it.
pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The pod's hostname in the Service's DNS, when it names the Service as its subdomain.
pub fn pod_hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    (spec.subdomain.is_some() && spec.subdomain == svc.metadata.name).then(|| spec.hostname.clone()).flatten()
}

/// A resolved port: name, number, protocol.
type PortKey = (String, i32, String);

/// The subsets for `svc` over `pods` (upstream's endpoints computation and repacking).
pub fn compute_subsets(svc: &Service, pods: &[&Pod]) -> Vec<EndpointSubset> {
    let tolerate = svc.spec.as_ref().and_then(|s| s.publish_not_ready_addresses).unwrap_or(false);
    let svc_ports = svc.spec.as_ref().and_then(|s| s.ports.clone()).unwrap_or_default();
    // (ports) → (ready, not ready)
    let mut groups: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> = BTreeMap::new();
    for pod in pods {
        if !pod_in_endpoints(pod, tolerate) {
            continue;
        }
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let addr = EndpointAddress {
            ip,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            hostname: pod_hostname(pod, svc),
            target_ref: Some(pod_ref(pod)),
        };
        let mut ports: Vec<PortKey> = svc_ports
            .iter()
            .filter_map(|p| {
                find_port(pod, p).map(|n| {
                    (p.name.clone().unwrap_or_default(), n, p.protocol.clone().unwrap_or_else(|| "TCP".into()))
                })
            })
            .collect();
        ports.sort();
        if ports.is_empty() && !svc_ports.is_empty() {
            continue;
        }
        let entry = groups.entry(ports).or_default();
        if tolerate || podutil::is_ready(pod) { entry.0.push(addr) } else { entry.1.push(addr) }
    }
    let app_protocol = |name: &str| {
        svc_ports.iter().find(|p| p.name.as_deref().unwrap_or("") == name).and_then(|p| p.app_protocol.clone())
    };
    groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol)| EndpointPort {
                            app_protocol: app_protocol(&name),
                            name: (!name.is_empty()).then_some(name),
                            port,
                            protocol: Some(protocol),
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// The most addresses one Endpoints object lists.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation marking Endpoints cut down to [`MAX_CAPACITY`].
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";

/// Cuts `subsets` to at most `max` addresses, ready ones kept first, each subset losing its
/// share in proportion to its size (upstream's `truncateEndpoints`); whether anything was cut.
pub fn truncate(subsets: &mut Vec<EndpointSubset>, max: usize) -> bool {
    let count = |s: &EndpointSubset, ready: bool| {
        if ready {
            s.addresses.as_ref().map_or(0, Vec::len)
        } else {
            s.not_ready_addresses.as_ref().map_or(0, Vec::len)
        }
    };
    let ready: usize = subsets.iter().map(|s| count(s, true)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(s, false)).sum();
    if ready + not_ready <= max {
        return false;
    }
    let (keep_ready, keep_not_ready) = if ready >= max { (max, 0) } else { (ready, max - ready) };
    for (want, is_ready, total) in [(keep_ready, true, ready), (keep_not_ready, false, not_ready)] {
        let mut left = want;
        let n = subsets.len();
        for (i, s) in subsets.iter_mut().enumerate() {
            let list = if is_ready { &mut s.addresses } else { &mut s.not_ready_addresses };
            let have = list.as_ref().map_or(0, Vec::len);
            // Proportional share, the last subset taking what rounding left over.
            let share = if i + 1 == n { left } else { (have * want).div_ceil(total.max(1)).min(left) };
            let keep = share.min(have);
            if let Some(l) = list.as_mut() {
                l.truncate(keep);
                if l.is_empty() {
                    *list = None;
                }
            }
            left -= keep;
        }
    }
    subsets.retain(|s| s.addresses.is_some() || s.not_ready_addresses.is_some());
    true
}

/// The labels Endpoints (and slices) of `svc` carry: the Service's, plus the headless marker.
pub fn service_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

/// Queues the Services selecting a changed pod (old and new labels).
pub fn pod_services(informers: &SharedInformers, old: Option<&Pod>, new: Option<&Pod>) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for svc in informers.services.store().state() {
        if old.is_some_and(|p| selects(&svc, p)) || new.is_some_and(|p| selects(&svc, p)) {
            keys.push(key_of(svc.as_ref()));
        }
    }
    keys
}

/// Runs the controller until dropped (register before the informers run).
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
    informers.endpoints.on_change(move |old, new| {
        if let (Some(e), None) = (old, new) {
            q.add(key_of(e));
        }
    });
    async move {
        futures::join!(informers.services.ready(), informers.pods.ready(), informers.endpoints.ready());
        run_workers("endpoint-controller", queue, 5, move |key: String| {
            let client = client.clone();
            let informers = informers.clone();
            async move { sync(&client, &informers, &key).await }
        })
        .await;
    }
}

async fn sync(client: &kube::Client, informers: &SharedInformers, key: &str) -> Result<(), kube::Error> {
    let (ns, name) = split_key(key);
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let Some(svc) = get(&informers.services.store(), key) else {
        // The Service is gone: so are its Endpoints.
        if get(&informers.endpoints.store(), key).is_some() {
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        return Ok(());
    };
    if service_selector(&svc).is_none() {
        return Ok(());
    }
    let pods: Vec<Arc<Pod>> = informers.pods.store().state().into_iter().filter(|p| selects(&svc, p)).collect();
    let pods: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let mut subsets = compute_subsets(&svc, &pods);
    let truncated = truncate(&mut subsets, MAX_CAPACITY);
    let labels = service_labels(&svc);
    let current = get(&informers.endpoints.store(), key);
    let subsets_opt = (!subsets.is_empty()).then_some(subsets);
    let over = |e: &Endpoints| e.metadata.annotations.as_ref().and_then(|a| a.get(OVER_CAPACITY)).is_some();
    if let Some(cur) = &current
        && cur.subsets.as_ref().filter(|s| !s.is_empty()) == subsets_opt.as_ref()
        && cur.metadata.labels.clone().unwrap_or_default() == labels
        && over(cur) == truncated
    {
        return Ok(());
    }
    let annotate = |meta: &mut ObjectMeta| {
        let a = meta.annotations.get_or_insert_with(BTreeMap::new);
        if truncated {
            a.insert(OVER_CAPACITY.into(), "truncated".into());
        } else {
            a.remove(OVER_CAPACITY);
        }
        if a.is_empty() {
            meta.annotations = None;
        }
    };
    let result = match current {
        Some(cur) => {
            let mut e = (*cur).clone();
            e.subsets = subsets_opt;
            e.metadata.labels = (!labels.is_empty()).then_some(labels);
            annotate(&mut e.metadata);
            api.replace(name, &PostParams::default(), &e).await
        }
        None => {
            let mut e = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: (!labels.is_empty()).then_some(labels),
                    ..Default::default()
                },
                subsets: subsets_opt,
            };
            annotate(&mut e.metadata);
            api.create(&PostParams::default(), &e).await
        }
    };
    match result {
        Ok(_) => Ok(()),
        Err(e) if crate::apierr::benign(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServiceSpec};

    pub(crate) fn pod(name: &str, ip: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some("http".into()),
                        container_port: 8080,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                pod_ip: (!ip.is_empty()).then(|| ip.into()),
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    pub(crate) fn service(publish: bool) -> Service {
        Service {
            metadata: ObjectMeta { name: Some("web".into()), namespace: Some("ns".into()), ..Default::default() },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                publish_not_ready_addresses: Some(publish),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn truncates_to_capacity_keeping_ready_addresses() {
        let addr = |i: usize| EndpointAddress { ip: format!("10.0.{}.{}", i / 250, i % 250), ..Default::default() };
        let subset = |ready: usize, not_ready: usize| EndpointSubset {
            addresses: (ready > 0).then(|| (0..ready).map(addr).collect()),
            not_ready_addresses: (not_ready > 0).then(|| (0..not_ready).map(addr).collect()),
            ports: None,
        };
        let mut s = vec![subset(600, 300), subset(300, 100)];
        assert!(truncate(&mut s, MAX_CAPACITY));
        let total = |s: &[EndpointSubset], ready: bool| -> usize {
            s.iter()
                .map(|x| {
                    if ready {
                        x.addresses.as_ref().map_or(0, Vec::len)
                    } else {
                        x.not_ready_addresses.as_ref().map_or(0, Vec::len)
                    }
                })
                .sum()
        };
        assert_eq!((total(&s, true), total(&s, false)), (900, 100));
        let mut s = vec![subset(1200, 10)];
        assert!(truncate(&mut s, MAX_CAPACITY));
        assert_eq!((total(&s, true), total(&s, false)), (1000, 0));
        let mut s = vec![subset(10, 10)];
        assert!(!truncate(&mut s, MAX_CAPACITY));
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_ports() {
        let a = pod("a", "10.0.0.2", true);
        let b = pod("b", "10.0.0.1", false);
        let c = pod("c", "", true);
        let subsets = compute_subsets(&service(false), &[&a, &b, &c]);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        assert_eq!(s.addresses.as_ref().map(|a| a[0].ip.clone()).as_deref(), Some("10.0.0.2"));
        assert_eq!(s.not_ready_addresses.as_ref().map(|a| a[0].ip.clone()).as_deref(), Some("10.0.0.1"));
        assert_eq!(s.ports.as_ref().map(|p| p[0].port), Some(8080));
        let subsets = compute_subsets(&service(true), &[&a, &b]);
        assert_eq!(subsets[0].addresses.as_ref().map(Vec::len), Some(2), "publishNotReadyAddresses");
        let mut gone = a.clone();
        gone.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        assert!(compute_subsets(&service(false), &[&gone]).is_empty(), "terminating pods leave Endpoints");
    }
}
