//! Quota evaluators, as upstream's `pkg/quota/v1/evaluator/core` and the generic object-count
//! evaluator: what an object charges (`usage`), which quota resources an evaluator tracks
//! (`matching_resources`), the per-container requirements a cpu/memory quota imposes
//! (`constraints`), and quota scopes (`Terminating`, `NotTerminating`, `BestEffort`,
//! `NotBestEffort`, `PriorityClass` through `scopeSelector`).
//!
//! Objects are JSON in stored form. What does not live here: listing objects or quotas.

use jiff::Timestamp;
use serde_json::Value;

use super::list::{self, Amount, ResourceList};

/// The evaluator of one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluator {
    /// Pods: compute resources and counts.
    Pods,
    /// Services: counts, node ports, load balancers.
    Services,
    /// PersistentVolumeClaims: counts and storage, also per storage class.
    PersistentVolumeClaims,
    /// Any other resource: `count/<plural>[.<group>]` (and the legacy name where one exists).
    Count {
        /// API group (empty for core).
        group: String,
        /// Plural resource name.
        plural: String,
    },
}

/// One scope a quota restricts itself to (`spec.scopes` entries are `Exists` requirements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `Terminating`, `BestEffort`, `PriorityClass`, …
    pub name: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In`/`NotIn`.
    pub values: Vec<String>,
}

const COMPUTE_NAMES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];
/// Resources a quota may require every container to state (upstream's `validationSet`).
const VALIDATION_SET: &[&str] = &["cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu", "limits.memory"];
const SERVICE_NAMES: &[&str] = &["count/services", "services", "services.nodeports", "services.loadbalancers"];
const PVC_NAMES: &[&str] = &["count/persistentvolumeclaims", "persistentvolumeclaims", "requests.storage"];
const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";
/// Core resources whose object count also has a legacy name.
const LEGACY_COUNTS: &[&str] = &["configmaps", "resourcequotas", "replicationcontrollers", "secrets"];

fn is_extended(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

impl Evaluator {
    /// The evaluator of a resource.
    pub fn for_resource(group: &str, plural: &str) -> Evaluator {
        match (group, plural) {
            ("", "pods") => Evaluator::Pods,
            ("", "services") => Evaluator::Services,
            ("", "persistentvolumeclaims") => Evaluator::PersistentVolumeClaims,
            _ => Evaluator::Count { group: group.to_string(), plural: plural.to_string() },
        }
    }

    /// The evaluators a quota with these hard resources needs (for recomputing its usage).
    pub fn for_hard<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<Evaluator> {
        let names: Vec<&String> = names.into_iter().collect();
        let mut out: Vec<Evaluator> = Vec::new();
        for name in &names {
            let ev = if let Some(rest) = name.strip_prefix("count/") {
                let (plural, group) = rest.split_once('.').unwrap_or((rest, ""));
                Evaluator::for_resource(group, plural)
            } else if LEGACY_COUNTS.contains(&name.as_str()) {
                Evaluator::for_resource("", name)
            } else if SERVICE_NAMES.contains(&name.as_str()) {
                Evaluator::Services
            } else if PVC_NAMES.contains(&name.as_str()) || name.contains(STORAGE_CLASS_SUFFIX) {
                Evaluator::PersistentVolumeClaims
            } else {
                Evaluator::Pods
            };
            if !ev.matching_resources(names.iter().copied()).is_empty() && !out.contains(&ev) {
                out.push(ev);
            }
        }
        out
    }

    /// `(group, plural)` of the resource evaluated.
    pub fn resource(&self) -> (&str, &str) {
        match self {
            Evaluator::Pods => ("", "pods"),
            Evaluator::Services => ("", "services"),
            Evaluator::PersistentVolumeClaims => ("", "persistentvolumeclaims"),
            Evaluator::Count { group, plural } => (group, plural),
        }
    }

    /// `count/<plural>` for core resources, else `count/<plural>.<group>`.
    pub fn object_count_name(&self) -> String {
        match self.resource() {
            ("", plural) => format!("count/{plural}"),
            (group, plural) => format!("count/{plural}.{group}"),
        }
    }

    /// Whether updates are charged too (creates always are).
    pub fn handles_update(&self) -> bool {
        matches!(self, Evaluator::Services | Evaluator::PersistentVolumeClaims)
    }

    /// The names among `input` this evaluator tracks.
    pub fn matching_resources<'a>(&self, input: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        let count = self.object_count_name();
        input
            .into_iter()
            .filter(|n| match self {
                Evaluator::Pods => {
                    COMPUTE_NAMES.contains(&n.as_str())
                        || n.starts_with("hugepages-")
                        || n.starts_with("requests.hugepages-")
                        || n.strip_prefix("requests.").is_some_and(is_extended)
                }
                Evaluator::Services => SERVICE_NAMES.contains(&n.as_str()),
                Evaluator::PersistentVolumeClaims => {
                    PVC_NAMES.contains(&n.as_str())
                        || n.split_once(STORAGE_CLASS_SUFFIX)
                            .is_some_and(|(_, r)| r == "persistentvolumeclaims" || r == "requests.storage")
                }
                Evaluator::Count { group, plural } => {
                    **n == count || (group.is_empty() && LEGACY_COUNTS.contains(&plural.as_str()) && *n == plural)
                }
            })
            .cloned()
            .collect()
    }

    /// What `obj` charges.
    pub fn usage(&self, obj: &Value, now: Timestamp) -> ResourceList {
        let mut out = ResourceList::new();
        out.insert(self.object_count_name(), Amount::count(1));
        match self {
            Evaluator::Pods => {
                if counts_compute(obj, now) {
                    let spec = obj.get("spec");
                    let overhead = list::from_json(spec.and_then(|s| s.get("overhead")));
                    let requests = list::add(&pod_resources(spec, "requests"), &overhead);
                    let mut limits = pod_resources(spec, "limits");
                    limits = list::add(&limits, &list::mask(&overhead, limits.keys()));
                    out = list::add(&out, &compute_usage(&requests, &limits));
                }
            }
            Evaluator::Services => {
                out.insert("services".into(), Amount::count(1));
                let spec = obj.get("spec");
                let ports =
                    spec.and_then(|s| s.get("ports")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
                match spec.and_then(|s| s.get("type")).and_then(Value::as_str) {
                    Some("NodePort") => {
                        out.insert("services.nodeports".into(), Amount::count(ports.len() as i64));
                    }
                    Some("LoadBalancer") => {
                        let allocate = spec
                            .and_then(|s| s.get("allocateLoadBalancerNodePorts"))
                            .and_then(Value::as_bool)
                            .unwrap_or(true);
                        let n = if allocate {
                            ports.len()
                        } else {
                            ports
                                .iter()
                                .filter(|p| p.get("nodePort").and_then(Value::as_i64).is_some_and(|n| n != 0))
                                .count()
                        };
                        out.insert("services.nodeports".into(), Amount::count(n as i64));
                        out.insert("services.loadbalancers".into(), Amount::count(1));
                    }
                    _ => {}
                }
            }
            Evaluator::PersistentVolumeClaims => {
                out.insert("persistentvolumeclaims".into(), Amount::count(1));
                let class = obj
                    .get("spec")
                    .and_then(|s| s.get("storageClassName"))
                    .and_then(Value::as_str)
                    .or_else(|| {
                        obj.get("metadata")
                            .and_then(|m| m.get("annotations"))
                            .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
                            .and_then(Value::as_str)
                    })
                    .unwrap_or("");
                if !class.is_empty() {
                    out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"), Amount::count(1));
                }
                let requested = obj
                    .get("spec")
                    .and_then(|s| s.get("resources"))
                    .and_then(|r| r.get("requests"))
                    .and_then(|r| r.get("storage"))
                    .and_then(Amount::from_json);
                let allocated = obj
                    .get("status")
                    .and_then(|s| s.get("allocatedResources"))
                    .and_then(|r| r.get("storage"))
                    .and_then(Amount::from_json);
                let storage = match (requested, allocated) {
                    (Some(r), Some(a)) if a.value > r.value => Some(a),
                    (None, a) => a,
                    (r, _) => r,
                };
                if let Some(s) = storage {
                    out.insert("requests.storage".into(), s);
                    if !class.is_empty() {
                        out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), s);
                    }
                }
            }
            Evaluator::Count { group, plural } => {
                if group.is_empty() && LEGACY_COUNTS.contains(&plural.as_str()) {
                    out.insert(plural.clone(), Amount::count(1));
                }
            }
        }
        out
    }

    /// Upstream's pod `Constraints`: with cpu or memory quota'd, every container must state it.
    /// The error is the part after `failed quota: <name>: `.
    pub fn constraints(&self, required: &[String], obj: &Value) -> Result<(), String> {
        if *self != Evaluator::Pods {
            return Ok(());
        }
        let required: Vec<&str> = required.iter().map(String::as_str).filter(|r| VALIDATION_SET.contains(r)).collect();
        if required.is_empty() {
            return Ok(());
        }
        let mut missing: std::collections::BTreeMap<&str, std::collections::BTreeSet<String>> = Default::default();
        let spec = obj.get("spec");
        for field in ["containers", "initContainers"] {
            for c in spec.and_then(|s| s.get(field)).and_then(Value::as_array).into_iter().flatten() {
                let res = c.get("resources");
                let usage = compute_usage(
                    &list::from_json(res.and_then(|r| r.get("requests"))),
                    &list::from_json(res.and_then(|r| r.get("limits"))),
                );
                for r in &required {
                    if !usage.contains_key(*r) {
                        let name = c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
                        missing.entry(r).or_default().insert(name);
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| format!("{r} for: {}", names.iter().cloned().collect::<Vec<_>>().join(",")))
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }

    /// Whether `obj` falls under `scope` (only pods have scopes; others never match one).
    pub fn matches_scope(&self, scope: &Scope, obj: &Value) -> bool {
        if *self != Evaluator::Pods {
            return false;
        }
        let spec = obj.get("spec");
        match scope.name.as_str() {
            "Terminating" => is_terminating(spec),
            "NotTerminating" => !is_terminating(spec),
            "BestEffort" => is_best_effort(spec),
            "NotBestEffort" => !is_best_effort(spec),
            "PriorityClass" => {
                let class = spec.and_then(|s| s.get("priorityClassName")).and_then(Value::as_str).unwrap_or("");
                match scope.operator.as_str() {
                    "Exists" => !class.is_empty(),
                    "In" => scope.values.iter().any(|v| v == class),
                    "NotIn" => !scope.values.iter().any(|v| v == class),
                    // The selector sees the key with an empty value: never "does not exist".
                    _ => false,
                }
            }
            "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(spec),
            _ => false,
        }
    }

    /// Upstream `Matches`: the quota tracks one of this evaluator's resources (`hard`) and
    /// `obj` is in every one of its scopes.
    pub fn matches(&self, hard: &ResourceList, scopes: &[Scope], obj: &Value) -> bool {
        !self.matching_resources(hard.keys()).is_empty() && scopes.iter().all(|s| self.matches_scope(s, obj))
    }

    /// Usage of the objects (one namespace) under `scopes`, for the tracked `resources`, each
    /// starting at zero (upstream `CalculateUsageStats`).
    pub fn usage_stats(
        &self,
        resources: &[String],
        scopes: &[Scope],
        objects: &[Value],
        now: Timestamp,
    ) -> ResourceList {
        let mut used: ResourceList = resources.iter().map(|r| (r.clone(), Amount::default())).collect();
        for obj in objects {
            if scopes.iter().all(|s| self.matches_scope(s, obj)) {
                used = list::add(&used, &self.usage(obj, now));
            }
        }
        list::mask(&used, resources)
    }
}

/// A quota's scopes: `spec.scopes` as `Exists` plus `spec.scopeSelector.matchExpressions`.
pub fn scopes_of(quota: &Value) -> Vec<Scope> {
    let spec = quota.get("spec");
    let mut out: Vec<Scope> = spec
        .and_then(|s| s.get("scopes"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|n| Scope { name: n.to_string(), operator: "Exists".into(), values: vec![] })
        .collect();
    for e in spec
        .and_then(|s| s.get("scopeSelector"))
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        out.push(Scope { name: s("scopeName"), operator: s("operator"), values });
    }
    out
}

/// Whether a pod's compute resources still count: not finished, and not past its deletion
/// grace period (upstream `QuotaV1Pod`).
fn counts_compute(pod: &Value, now: Timestamp) -> bool {
    let phase = pod.get("status").and_then(|s| s.get("phase")).and_then(Value::as_str);
    if matches!(phase, Some("Failed" | "Succeeded")) {
        return false;
    }
    let meta = pod.get("metadata");
    let deleted = meta.and_then(|m| m.get("deletionTimestamp")).and_then(Value::as_str);
    let grace = meta.and_then(|m| m.get("deletionGracePeriodSeconds")).and_then(Value::as_i64);
    if let (Some(at), Some(grace)) = (deleted, grace)
        && let Ok(at) = at.parse::<Timestamp>()
        && now.as_second() > at.as_second().saturating_add(grace)
    {
        return false;
    }
    true
}

fn is_terminating(spec: Option<&Value>) -> bool {
    spec.and_then(|s| s.get("activeDeadlineSeconds")).and_then(Value::as_i64).is_some_and(|d| d >= 0)
}

fn is_best_effort(spec: Option<&Value>) -> bool {
    for field in ["containers", "initContainers"] {
        for c in spec.and_then(|s| s.get(field)).and_then(Value::as_array).into_iter().flatten() {
            for part in ["requests", "limits"] {
                let l = list::from_json(c.get("resources").and_then(|r| r.get(part)));
                if ["cpu", "memory"]
                    .iter()
                    .any(|r| l.get(*r).is_some_and(|a| a.value > crate::quantity::Quantity::ZERO))
                {
                    return false;
                }
            }
        }
    }
    true
}

fn uses_cross_namespace_affinity(spec: Option<&Value>) -> bool {
    let aff = spec.and_then(|s| s.get("affinity"));
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let a = aff.and_then(|a| a.get(*kind));
        ["requiredDuringSchedulingIgnoredDuringExecution", "preferredDuringSchedulingIgnoredDuringExecution"]
            .iter()
            .flat_map(|f| a.and_then(|a| a.get(*f)).and_then(Value::as_array).into_iter().flatten())
            .any(|t| {
                let t = t.get("podAffinityTerm").unwrap_or(t);
                t.get("namespaces").and_then(Value::as_array).is_some_and(|n| !n.is_empty())
                    || t.get("namespaceSelector").is_some()
            })
    })
}

fn max_into(into: &mut ResourceList, other: &ResourceList) {
    for (k, v) in other {
        match into.get(k) {
            Some(x) if x.value >= v.value => {}
            _ => {
                into.insert(k.clone(), *v);
            }
        }
    }
}

/// A pod's effective requests or limits (`part`): the containers' sum, at least what any init
/// container needs alongside the sidecars started before it (upstream `PodRequests`/`PodLimits`
/// without the overhead).
pub fn pod_resources(spec: Option<&Value>, part: &str) -> ResourceList {
    let of = |c: &Value| list::from_json(c.get("resources").and_then(|r| r.get(part)));
    let mut total = ResourceList::new();
    for c in spec.and_then(|s| s.get("containers")).and_then(Value::as_array).into_iter().flatten() {
        total = list::add(&total, &of(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init_max = ResourceList::new();
    for c in spec.and_then(|s| s.get("initContainers")).and_then(Value::as_array).into_iter().flatten() {
        let own = of(c);
        let needed = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            total = list::add(&total, &own);
            sidecars = list::add(&sidecars, &own);
            sidecars.clone()
        } else {
            list::add(&own, &sidecars)
        };
        max_into(&mut init_max, &needed);
    }
    max_into(&mut total, &init_max);
    total
}

/// Upstream `podComputeUsageHelper`: the quota names requests and limits charge.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), Amount::count(1));
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(v) = requests.get(r) {
            out.insert(r.to_string(), *v);
            out.insert(format!("requests.{r}"), *v);
        }
        if let Some(v) = limits.get(r) {
            out.insert(format!("limits.{r}"), *v);
        }
    }
    for (r, v) in requests {
        if r.starts_with("hugepages-") {
            out.insert(r.clone(), *v);
            out.insert(format!("requests.{r}"), *v);
        }
        if is_extended(r) {
            out.insert(format!("requests.{r}"), *v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("ts")
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn pod(containers: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn pod_usage_sums_containers_and_takes_the_largest_init_container() {
        let mut p = pod(json!([
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m"}}},
            {"name": "b", "resources": {"requests": {"cpu": "150m", "memory": "64Mi", "example.com/gpu": "1"}}}
        ]));
        p["spec"]["initContainers"] = json!([{"name": "i", "resources": {"requests": {"cpu": "1"}}}]);
        let u = Evaluator::Pods.usage(&p, now());
        assert_eq!(
            list::pretty(&u),
            "count/pods=1,cpu=1,limits.cpu=200m,memory=128Mi,pods=1,requests.cpu=1,requests.example.com/gpu=1,requests.memory=128Mi"
        );
    }

    #[test]
    fn finished_or_long_deleted_pods_only_count_as_objects() {
        let mut p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
        p["status"] = json!({"phase": "Succeeded"});
        assert_eq!(list::pretty(&Evaluator::Pods.usage(&p, now())), "count/pods=1");
        p["status"] = json!({"phase": "Running"});
        p["metadata"]["deletionTimestamp"] = json!("2025-12-31T23:59:00Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
        assert_eq!(list::pretty(&Evaluator::Pods.usage(&p, now())), "count/pods=1");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(300);
        assert!(Evaluator::Pods.usage(&p, now()).contains_key("requests.cpu"));
    }

    #[test]
    fn services_and_claims_charge_their_names() {
        let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            list::pretty(&Evaluator::Services.usage(&svc, now())),
            "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2"
        );
        let pvc = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        assert_eq!(
            list::pretty(&Evaluator::PersistentVolumeClaims.usage(&pvc, now())),
            "count/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/requests.storage=1Gi,persistentvolumeclaims=1,requests.storage=1Gi"
        );
        let cm = Evaluator::for_resource("", "configmaps");
        assert_eq!(list::pretty(&cm.usage(&json!({}), now())), "configmaps=1,count/configmaps=1");
        let d = Evaluator::for_resource("apps", "deployments");
        assert_eq!(list::pretty(&d.usage(&json!({}), now())), "count/deployments.apps=1");
    }

    #[test]
    fn matching_resources_and_evaluators_for_a_quota() {
        let hard = names(&["pods", "requests.cpu", "count/deployments.apps", "secrets", "services.nodeports", "x"]);
        assert_eq!(Evaluator::Pods.matching_resources(&hard), names(&["pods", "requests.cpu"]));
        assert_eq!(
            Evaluator::for_hard(&hard),
            vec![
                Evaluator::Pods,
                Evaluator::Count { group: "apps".into(), plural: "deployments".into() },
                Evaluator::Count { group: "".into(), plural: "secrets".into() },
                Evaluator::Services,
            ]
        );
    }

    #[test]
    fn cpu_quota_requires_every_container_to_state_it() {
        let p = pod(json!([
            {"name": "c", "resources": {"requests": {"cpu": "1"}}},
            {"name": "d"}
        ]));
        let req = names(&["limits.cpu", "pods", "requests.cpu"]);
        assert_eq!(
            Evaluator::Pods.constraints(&req, &p),
            Err("must specify limits.cpu for: c,d; requests.cpu for: d".into())
        );
        assert!(Evaluator::Pods.constraints(&names(&["pods"]), &p).is_ok());
    }

    #[test]
    fn scopes_select_pods() {
        let quota = json!({"spec": {"scopes": ["NotTerminating"], "scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        let scopes = scopes_of(&quota);
        assert_eq!(scopes.len(), 2);
        let mut p = pod(json!([{"name": "c"}]));
        let hard = list::from_json(Some(&json!({"pods": "1"})));
        assert!(!Evaluator::Pods.matches(&hard, &scopes, &p));
        p["spec"]["priorityClassName"] = json!("high");
        assert!(Evaluator::Pods.matches(&hard, &scopes, &p));
        p["spec"]["activeDeadlineSeconds"] = json!(10);
        assert!(!Evaluator::Pods.matches(&hard, &scopes, &p));
        let be = Scope { name: "BestEffort".into(), operator: "Exists".into(), values: vec![] };
        assert!(Evaluator::Pods.matches_scope(&be, &p));
        let q = pod(json!([{"name": "c", "resources": {"limits": {"memory": "1Mi"}}}]));
        assert!(!Evaluator::Pods.matches_scope(&be, &q));
        assert!(!Evaluator::Services.matches_scope(&be, &json!({})));
    }

    #[test]
    fn usage_stats_start_at_zero_and_follow_scopes() {
        let pods = vec![
            pod(json!([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}])),
            pod(json!([{"name": "b"}])),
        ];
        let res = names(&["pods", "requests.memory", "requests.cpu"]);
        let u = Evaluator::Pods.usage_stats(&res, &[], &pods, now());
        assert_eq!(list::pretty(&u), "pods=2,requests.cpu=0,requests.memory=1Gi");
        let be = Scope { name: "BestEffort".into(), operator: "Exists".into(), values: vec![] };
        let u = Evaluator::Pods.usage_stats(&res, &[be], &pods, now());
        assert_eq!(list::pretty(&u), "pods=1,requests.cpu=0,requests.memory=0");
    }
}
