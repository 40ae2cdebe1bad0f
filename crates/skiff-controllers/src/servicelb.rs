//! The built-in LoadBalancer (like k3s's servicelb): Services of `type: LoadBalancer` without a
//! `loadBalancerClass`, or with class [`LB_CLASS`], get `status.loadBalancer.ingress`: the
//! nodes' InternalIPs, or one address each from the configured pool (`--lb-pool`), never handed
//! out twice. The service proxy on every node then accepts the Service's `port` on those
//! addresses. Services of another class are left to their implementation.
//!
//! The pool's assignments live in the Services' status (rebuilt at start, like the node IPAM
//! controller); a Service asking for `spec.loadBalancerIP` inside the pool gets it when free.
//! What does not live here: the forwarding itself (`skiff-net`'s proxy).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use tokio::sync::Notify;

/// The `loadBalancerClass` this implementation serves besides none.
pub const LB_CLASS: &str = "skiff.io/lb";

/// Where LoadBalancer addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceLbConfig {
    /// A pool (network address, prefix length); `None`: the nodes' InternalIPs.
    pub pool: Option<(Ipv4Addr, u8)>,
}

impl ServiceLbConfig {
    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        self.pool.is_some_and(|(net, prefix)| {
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
            u32::from(ip) & mask == u32::from(net) & mask
        })
    }

    /// The pool's usable addresses, lowest first (network and broadcast addresses skipped for
    /// prefixes up to /30).
    fn pool_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let (start, end) = match self.pool {
            Some((net, prefix)) => {
                let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix)) };
                let base = u32::from(net) & mask;
                let last = base | !mask;
                if prefix <= 30 { (base + 1, last - 1) } else { (base, last) }
            }
            None => (1, 0),
        };
        (start..=end).map(Ipv4Addr::from)
    }
}

/// Whether this implementation serves `svc`.
pub fn serves(svc: &Service) -> bool {
    let Some(spec) = svc.spec.as_ref() else { return false };
    spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.as_deref().is_none_or(|c| c == LB_CLASS)
}

fn key(svc: &Service) -> (String, String) {
    (svc.metadata.namespace.clone().unwrap_or_default(), svc.metadata.name.clone().unwrap_or_default())
}

fn current_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.parse().ok()))
        .collect()
}

/// The ingress addresses every served Service should have, given the nodes' InternalIPs.
pub fn desired(
    cfg: &ServiceLbConfig,
    services: &[&Service],
    node_ips: &[Ipv4Addr],
) -> BTreeMap<(String, String), Vec<Ipv4Addr>> {
    let mut served: Vec<&Service> = services.iter().copied().filter(|s| serves(s)).collect();
    served.sort_by(|a, b| {
        let created = |s: &Service| s.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a).cmp(&created(b)).then_with(|| key(a).cmp(&key(b)))
    });
    let mut out = BTreeMap::new();
    if cfg.pool.is_none() {
        let mut ips = node_ips.to_vec();
        ips.sort();
        ips.dedup();
        for svc in served {
            out.insert(key(svc), ips.clone());
        }
        return out;
    }
    let mut used = BTreeSet::new();
    let mut pending = Vec::new();
    // Keep what Services already hold (oldest first wins a duplicate), then honour requests.
    for svc in &served {
        let held = current_ips(svc).into_iter().find(|ip| cfg.in_pool(*ip) && !used.contains(ip));
        let requested =
            svc.spec.as_ref().and_then(|s| s.load_balancer_ip.as_deref()).and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        match held {
            Some(ip) if requested.is_none_or(|r| r == ip) => {
                used.insert(ip);
                out.insert(key(svc), vec![ip]);
            }
            _ => pending.push(*svc),
        }
    }
    let mut free = cfg.pool_addresses().filter(|ip| !used.contains(ip)).collect::<Vec<_>>().into_iter();
    for svc in pending {
        let requested =
            svc.spec.as_ref().and_then(|s| s.load_balancer_ip.as_deref()).and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let ip = match requested {
            Some(r) if cfg.in_pool(r) && !used.contains(&r) => Some(r),
            Some(_) => None, // outside the pool or taken: no address
            None => free.by_ref().find(|ip| !used.contains(ip)),
        };
        match ip {
            Some(ip) => {
                used.insert(ip);
                out.insert(key(svc), vec![ip]);
            }
            None => {
                tracing::warn!(service = ?key(svc), "no LoadBalancer address available for the Service");
                out.insert(key(svc), Vec::new());
            }
        }
    }
    out
}

/// The InternalIPs of `nodes` (the addresses LoadBalancer Services and Ingresses get without a
/// pool).
pub fn node_internal_ips(nodes: &[Arc<Node>]) -> Vec<Ipv4Addr> {
    nodes
        .iter()
        .flat_map(|n| n.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default())
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect()
}

fn reflect<K>(api: Api<K>, changed: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api, watcher::Config::default()));
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "servicelb watch failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            } else {
                changed.notify_one();
            }
        }
    });
    reader
}

/// Runs the controller until the task is aborted.
pub async fn run(client: kube::Client, cfg: ServiceLbConfig) {
    let changed = Arc::new(Notify::new());
    let services = reflect(Api::<Service>::all(client.clone()), changed.clone());
    let nodes = reflect(Api::<Node>::all(client.clone()), changed.clone());
    let (Ok(()), Ok(())) = (services.wait_until_ready().await, nodes.wait_until_ready().await) else { return };
    loop {
        let all = services.state();
        let refs: Vec<&Service> = all.iter().map(|s| s.as_ref()).filter(|s| serves(s)).collect();
        if refs.is_empty() {
            // Nothing to serve: node changes (thousands on a big cluster) cost nothing.
            changed.notified().await;
            continue;
        }
        let node_ips = if cfg.pool.is_none() { node_internal_ips(&nodes.state()) } else { Vec::new() };
        let want = desired(&cfg, &refs, &node_ips);
        let mut retry = false;
        for svc in &all {
            let Some(ips) = want.get(&key(svc)) else { continue };
            if &current_ips(svc) == ips {
                continue;
            }
            let (ns, name) = key(svc);
            let ingress: Vec<serde_json::Value> =
                ips.iter().map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"})).collect();
            let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": ingress}}});
            let api: Api<Service> = Api::namespaced(client.clone(), &ns);
            match api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => tracing::info!(namespace = %ns, service = %name, ?ips, "LoadBalancer addresses set"),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::warn!(namespace = %ns, service = %name, error = %e, "cannot set LoadBalancer status");
                    retry = true;
                }
            }
        }
        if retry {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        changed.notified().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn svc(name: &str, extra: serde_json::Value) -> Service {
        let mut v = serde_json::json!({"metadata": {"name": name, "namespace": "d"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        json_merge(&mut v, extra);
        serde_json::from_value(v).unwrap()
    }

    fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn node_addresses_without_a_pool_and_classes_respected() {
        let a = svc("a", serde_json::json!({}));
        let other = svc("b", serde_json::json!({"spec": {"loadBalancerClass": "example.com/lb"}}));
        let ours = svc("c", serde_json::json!({"spec": {"loadBalancerClass": LB_CLASS}}));
        let cluster_ip = svc("e", serde_json::json!({"spec": {"type": "ClusterIP"}}));
        let want =
            desired(&ServiceLbConfig::default(), &[&a, &other, &ours, &cluster_ip], &[ip("10.0.0.2"), ip("10.0.0.1")]);
        assert_eq!(want.len(), 2);
        assert_eq!(want[&("d".into(), "a".into())], [ip("10.0.0.1"), ip("10.0.0.2")]);
        assert!(want.contains_key(&("d".to_string(), "c".to_string())));
    }

    #[test]
    fn pool_addresses_are_unique_kept_and_requested() {
        let cfg = ServiceLbConfig { pool: Some((ip("192.0.2.0"), 30)) };
        let held = svc("held", serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}}));
        let dup = svc(
            "dup",
            serde_json::json!({"metadata": {"creationTimestamp": "2030-01-01T00:00:00Z"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}}),
        );
        let fresh = svc("fresh", serde_json::json!({"metadata": {"creationTimestamp": "2031-01-01T00:00:00Z"}}));
        let want = desired(&cfg, &[&held, &dup, &fresh], &[]);
        assert_eq!(want[&("d".into(), "held".into())], [ip("192.0.2.2")]);
        assert_eq!(want[&("d".into(), "dup".into())], [ip("192.0.2.1")]);
        // The pool (two addresses) is exhausted.
        assert!(want[&("d".to_string(), "fresh".to_string())].is_empty());

        let asks = svc("asks", serde_json::json!({"spec": {"loadBalancerIP": "192.0.2.2"}}));
        let other = svc("other", serde_json::json!({}));
        let want = desired(&cfg, &[&other, &asks], &[]);
        assert_eq!(want[&("d".into(), "asks".into())], [ip("192.0.2.2")]);
        assert_eq!(want[&("d".into(), "other".into())], [ip("192.0.2.1")]);
    }
}
