//! Resource vectors as the scheduler counts them: milli-CPU, bytes of memory and ephemeral
//! storage, the allowed pod count, and "scalar" resources (extended resources, hugepages,
//! attachable volumes). Also how a pod's requests are aggregated (upstream's `PodRequests`:
//! containers summed, init containers as a running maximum with sidecars accumulated, overhead
//! added) and the non-zero defaults used for scoring.
//!
//! Parsing Kubernetes objects into these types lives in [`super::pod`] and [`super::node`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use skiff_api::quantity::Quantity;

/// CPU assumed for a container that requests none, when scoring (upstream `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory assumed for a container that requests none, when scoring (`DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// A resource vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in milli-cores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Allowed pods (only meaningful for a node's allocatable).
    pub allowed_pods: i64,
    /// Scalar resources by name, sorted.
    pub scalar: Vec<(String, i64)>,
}

impl Resources {
    /// The amount of a scalar resource (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        self.scalar.iter().find(|(n, _)| n == name).map(|(_, v)| *v).unwrap_or(0)
    }

    fn scalar_mut(&mut self, name: &str) -> &mut i64 {
        let pos = match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.scalar.insert(i, (name.to_string(), 0));
                i
            }
        };
        &mut self.scalar[pos].1
    }

    /// Adds `other` to this vector (pods are not counted).
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (n, v) in &other.scalar {
            *self.scalar_mut(n) += v;
        }
    }

    /// Subtracts `other` from this vector.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (n, v) in &other.scalar {
            *self.scalar_mut(n) -= v;
        }
    }

    /// Whether nothing is requested (cpu, memory, storage and scalars all zero).
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0 && self.memory == 0 && self.ephemeral_storage == 0 && self.scalar.is_empty()
    }

    /// The amount of the resource `name` in the unit the scheduler compares (milli-CPU for cpu).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.allowed_pods,
            other => self.scalar(other),
        }
    }

    /// Builds a vector from a Kubernetes resource list (node allocatable); only resources the
    /// scheduler tracks are kept.
    pub fn from_list(list: &BTreeMap<String, K8sQuantity>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list {
            let q = parse(q);
            match name.as_str() {
                "cpu" => r.milli_cpu = q.milli_value(),
                "memory" => r.memory = q.value(),
                "ephemeral-storage" => r.ephemeral_storage = q.value(),
                "pods" => r.allowed_pods = q.value(),
                other if is_scalar_resource_name(other) => *r.scalar_mut(other) = q.value(),
                _ => {}
            }
        }
        r
    }
}

/// Parses a quantity, reading anything malformed as zero (the API server validated it).
pub fn parse(q: &K8sQuantity) -> Quantity {
    Quantity::parse(&q.0).unwrap_or_default()
}

/// Upstream `IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Upstream `IsExtendedResourceName`: not native and not a quota `requests.` name.
pub fn is_extended_resource_name(name: &str) -> bool {
    !is_native_resource(name) && !name.starts_with("requests.")
}

/// Upstream `IsScalarResourceName`: extended resources, hugepages and attachable volumes.
pub fn is_scalar_resource_name(name: &str) -> bool {
    is_extended_resource_name(name) || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

/// A resource list as exact quantities, summed and compared per name.
type List = BTreeMap<String, Quantity>;

fn add_list(into: &mut List, other: &List) {
    for (k, v) in other {
        let e = into.entry(k.clone()).or_default();
        *e = e.add(*v);
    }
}

fn max_list(into: &mut List, other: &List) {
    for (k, v) in other {
        let e = into.entry(k.clone()).or_default();
        if v > e {
            *e = *v;
        }
    }
}

fn container_requests(c: &Container, non_missing: bool) -> List {
    let mut out: List = c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .map(|reqs| reqs.iter().map(|(k, v)| (k.clone(), parse(v))).collect())
        .unwrap_or_default();
    if non_missing {
        out.entry("cpu".into()).or_insert_with(|| Quantity::from_millis(DEFAULT_MILLI_CPU_REQUEST));
        out.entry("memory".into()).or_insert_with(|| Quantity::from_units(DEFAULT_MEMORY_REQUEST));
    }
    out
}

/// Upstream `PodRequests`: regular containers summed; each init container needs its own
/// requests plus the sidecars (restartable init containers) started before it, and the pod
/// needs the maximum of that and the sum; overhead is added. With `non_missing`, containers
/// without a cpu or memory request count the scoring defaults.
pub fn pod_requests(spec: &PodSpec, non_missing: bool) -> List {
    let mut reqs = List::new();
    for c in &spec.containers {
        add_list(&mut reqs, &container_requests(c, non_missing));
    }
    let mut sidecars = List::new();
    let mut init_max = List::new();
    for c in spec.init_containers.iter().flatten() {
        let own = container_requests(c, non_missing);
        let use_now = if c.restart_policy.as_deref() == Some("Always") {
            add_list(&mut reqs, &own);
            add_list(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut tmp = own;
            add_list(&mut tmp, &sidecars);
            tmp
        };
        max_list(&mut init_max, &use_now);
    }
    max_list(&mut reqs, &init_max);
    if let Some(overhead) = &spec.overhead {
        let o: List = overhead.iter().map(|(k, v)| (k.clone(), parse(v))).collect();
        add_list(&mut reqs, &o);
    }
    reqs
}

/// The scheduler's view of a request list (upstream `Resource.SetMaxResource` on an empty
/// vector): cpu, memory, ephemeral storage and scalar resources; zero scalars are dropped.
pub fn from_requests(list: &List) -> Resources {
    let mut r = Resources::default();
    for (name, q) in list {
        match name.as_str() {
            "cpu" => r.milli_cpu = q.milli_value(),
            "memory" => r.memory = q.value(),
            "ephemeral-storage" => r.ephemeral_storage = q.value(),
            other if is_scalar_resource_name(other) => {
                let v = q.value();
                if v != 0 {
                    *r.scalar_mut(other) = v;
                }
            }
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn init_containers_are_a_running_maximum_with_sidecars() {
        // Upstream's example: max(sum(containers) = 3 cpu / 2G, init 2 cpu / 3G) = 3 cpu / 3G.
        let s = spec(json!({"containers": [
            {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
            {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}}],
            "initContainers": [
            {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
            {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}}]}));
        let r = from_requests(&pod_requests(&s, false));
        assert_eq!((r.milli_cpu, r.memory), (3000, 3_000_000_000));
        // A sidecar adds to the sum and to every later init container.
        let s = spec(json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
            {"name": "i", "resources": {"requests": {"cpu": "3"}}}],
            "overhead": {"cpu": "100m"}}));
        let r = from_requests(&pod_requests(&s, false));
        assert_eq!(r.milli_cpu, 3600);
    }

    #[test]
    fn scoring_defaults_fill_missing_cpu_and_memory_only() {
        let s = spec(json!({"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "0"}}}]}));
        let r = from_requests(&pod_requests(&s, true));
        assert_eq!(r.milli_cpu, 100);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert!(from_requests(&pod_requests(&s, false)).is_zero());
    }

    #[test]
    fn scalar_resource_names_follow_upstream() {
        assert!(is_scalar_resource_name("example.com/gpu"));
        assert!(is_scalar_resource_name("hugepages-2Mi"));
        assert!(!is_scalar_resource_name("kubernetes.io/foo"));
        assert!(!is_scalar_resource_name("cpu"));
        assert!(!is_extended_resource_name("requests.example.com/x"));
    }
}
