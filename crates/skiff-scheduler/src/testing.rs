//! Test helpers: pods and nodes from JSON, and hand-built clusters (a cache with nodes and
//! placed pods). Only compiled for tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use crate::cache::Cache;
use crate::framework::Profile;
use crate::model::{NodeSpec, PodInfo};
use crate::nominator::Nominator;
use crate::objects::Objects;
use crate::schedule::{Algorithm, Failure, Placement};

/// A pod from a JSON object: `metadata.name` defaults to `p`, namespace `default`, uid the name.
pub fn pod(v: Value) -> PodInfo {
    let mut v = v;
    if v.get("metadata").is_none() {
        v["metadata"] = json!({});
    }
    let name = v["metadata"].get("name").and_then(Value::as_str).unwrap_or("p").to_string();
    v["metadata"]["name"] = json!(name);
    if v["metadata"].get("namespace").is_none() {
        v["metadata"]["namespace"] = json!("default");
    }
    if v["metadata"].get("uid").is_none() {
        v["metadata"]["uid"] = json!(name);
    }
    if v.get("spec").is_none() {
        v["spec"] = json!({});
    }
    if v["spec"].get("containers").is_none() {
        v["spec"]["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    let p: Pod = serde_json::from_value(v).unwrap();
    PodInfo::new(&p)
}

/// A pod requesting `cpu` and `memory` (quantity strings; "" for none).
pub fn pod_req(name: &str, cpu: &str, memory: &str) -> PodInfo {
    let mut req = serde_json::Map::new();
    if !cpu.is_empty() {
        req.insert("cpu".into(), json!(cpu));
    }
    if !memory.is_empty() {
        req.insert("memory".into(), json!(memory));
    }
    pod(
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": req}}]}}),
    )
}

/// A node with allocatable `cpu`, `memory` and 110 pods, plus `labels`.
pub fn node(name: &str, cpu: &str, memory: &str, labels: &[(&str, &str)]) -> NodeSpec {
    let mut l: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    l.entry("kubernetes.io/hostname").or_insert(json!(name));
    node_json(json!({"metadata": {"name": name, "labels": l},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": "110"}}}))
}

/// A node from a JSON object.
pub fn node_json(v: Value) -> NodeSpec {
    let n: Node = serde_json::from_value(v).unwrap();
    NodeSpec::new(&n)
}

/// A cache with `nodes` and `pods` placed (each pod's `spec.nodeName` names its node).
pub fn cluster(nodes: Vec<NodeSpec>, pods: Vec<PodInfo>) -> Cache {
    let mut c = Cache::new();
    for n in nodes {
        c.upsert_node(n);
    }
    for p in pods {
        c.add_pod(Arc::new(p), false);
    }
    c
}

/// `pod` placed on `node`.
pub fn on(mut pod: PodInfo, node: &str) -> PodInfo {
    pod.node_name = node.to_string();
    pod
}

/// One scheduling attempt with the default profile.
pub fn schedule(cache: &mut Cache, pod: &PodInfo) -> Result<Placement, Failure> {
    schedule_with(cache, pod, &Profile::default_named("default-scheduler"), &Objects::default())
}

/// One scheduling attempt with `profile` and `objects`.
pub fn schedule_with(
    cache: &mut Cache,
    pod: &PodInfo,
    profile: &Profile,
    objects: &Objects,
) -> Result<Placement, Failure> {
    Algorithm::new(0).schedule(pod, cache, profile, objects, &Nominator::default())
}

/// The message of a failed attempt with the default profile, preemption included (as the
/// scheduling thread records it).
pub fn failure_message(cache: &mut Cache, pod: &PodInfo) -> String {
    let profile = Profile::default_named("default-scheduler");
    let objects = Objects::default();
    match schedule_with(cache, pod, &profile, &objects) {
        Ok(p) => panic!("unexpectedly scheduled on {}", p.node),
        Err(mut f) => {
            if let Failure::Unschedulable { diagnosis, num_nodes, state } = &mut f {
                let default = crate::schedule::CycleState::default();
                let o = crate::preemption::preempt(
                    pod,
                    state.as_ref().unwrap_or(&default),
                    diagnosis,
                    *num_nodes,
                    cache,
                    &profile,
                    &objects,
                    &Nominator::default(),
                );
                diagnosis.post_filter_msg = o.message;
            }
            f.message()
        }
    }
}
