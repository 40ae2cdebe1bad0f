//! The LimitRanger admission plugin, as upstream's `plugin/pkg/admission/limitranger`:
//! - pod creates get the `Container` limits' `default` (limits) and `defaultRequest` (requests)
//!   for whatever their containers and init containers leave unset, recorded in the
//!   `kubernetes.io/limit-ranger` annotation (`LimitRanger plugin set: cpu request for container
//!   c`);
//! - pod creates are checked against `min`, `max` and `maxLimitRequestRatio` of the `Container`
//!   and `Pod` limits, PersistentVolumeClaim creates and updates against `min`/`max` storage of
//!   the `PersistentVolumeClaim` limits; a violation is 403 with upstream's message.
//!
//! Pod updates are not limited (their containers' resources cannot change). What does not live
//! here: LimitRange defaulting and validation (`skiff-api`).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use skiff_api::StatusError;
use skiff_api::quota::list::{self, Amount, ResourceList};
use skiff_api::quota::usage::pod_resources;
use skiff_api::status::GroupResource;
use skiff_store::RangeRequest;

use crate::objects::meta_str;
use crate::state::ApiState;

/// The annotation naming the defaults a pod received.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// One `spec.limits` item.
#[derive(Debug, Clone, Default, PartialEq)]
struct Item {
    kind: String,
    min: ResourceList,
    max: ResourceList,
    default: ResourceList,
    default_request: ResourceList,
    ratio: ResourceList,
}

fn items(lr: &Value) -> Vec<Item> {
    let limits = lr.get("spec").and_then(|s| s.get("limits")).and_then(Value::as_array);
    limits
        .into_iter()
        .flatten()
        .map(|l| Item {
            kind: l.get("type").and_then(Value::as_str).unwrap_or("").to_string(),
            min: list::from_json(l.get("min")),
            max: list::from_json(l.get("max")),
            default: list::from_json(l.get("default")),
            default_request: list::from_json(l.get("defaultRequest")),
            ratio: list::from_json(l.get("maxLimitRequestRatio")),
        })
        .collect()
}

/// The LimitRanges of a namespace, by name.
async fn limit_ranges(state: &ApiState, namespace: &str) -> Result<Vec<Value>, StatusError> {
    let prefix = format!("/registry/core/limitranges/{namespace}/");
    let resp = state.store.range(RangeRequest { prefix, ..Default::default() }).await.map_err(StatusError::internal)?;
    Ok(resp.kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

fn forbidden(resource: &str, obj: &Value, why: &str) -> StatusError {
    let name =
        meta_str(obj, "name").filter(|n| !n.is_empty()).or_else(|| meta_str(obj, "generateName")).unwrap_or("Unknown");
    StatusError::forbidden(&GroupResource::new("", resource), name, why)
}

/// Upstream's aggregate error text: one message alone, several as `[a, b]` without repeats.
fn aggregate(errs: &[String]) -> Option<String> {
    let mut seen: Vec<&String> = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        many => Some(format!("[{}]", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))),
    }
}

/// Defaults a pod create from the namespace's LimitRanges.
pub async fn mutate_pod(state: &ApiState, pod: &mut Value) -> Result<(), StatusError> {
    let Some(ns) = meta_str(pod, "namespace").map(str::to_string) else { return Ok(()) };
    for lr in limit_ranges(state, &ns).await? {
        default_pod(&items(&lr), pod);
    }
    Ok(())
}

/// Checks a pod create or a PVC create/update against the namespace's LimitRanges.
pub async fn validate(state: &ApiState, resource: &str, obj: &Value) -> Result<(), StatusError> {
    let Some(ns) = meta_str(obj, "namespace").map(str::to_string) else { return Ok(()) };
    for lr in limit_ranges(state, &ns).await? {
        let items = items(&lr);
        let errs = match resource {
            "pods" => check_pod(&items, obj),
            "persistentvolumeclaims" => check_claim(&items, obj),
            _ => Vec::new(),
        };
        if let Some(msg) = aggregate(&errs) {
            return Err(forbidden(resource, obj, &msg));
        }
    }
    Ok(())
}

/// Merges `Container` defaults into every container and init container that lacks them.
fn default_pod(items: &[Item], pod: &mut Value) {
    let mut limits = ResourceList::new();
    let mut requests = ResourceList::new();
    for i in items.iter().filter(|i| i.kind == "Container") {
        requests.extend(i.default_request.clone());
        limits.extend(i.default.clone());
    }
    let mut notes: Vec<String> = Vec::new();
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        for (field, what) in [("containers", "container"), ("initContainers", "init container")] {
            for c in spec.get_mut(field).and_then(Value::as_array_mut).into_iter().flatten() {
                merge_container(c, &requests, &limits, what, &mut notes);
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) else { return };
    let ann = meta.entry("annotations").or_insert_with(|| json!({}));
    if let Some(ann) = ann.as_object_mut() {
        ann.insert(ANNOTATION.into(), json!(format!("LimitRanger plugin set: {}", notes.join("; "))));
    }
}

fn merge_container(c: &mut Value, requests: &ResourceList, limits: &ResourceList, what: &str, notes: &mut Vec<String>) {
    let name = c.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let Some(c) = c.as_object_mut() else { return };
    let res = c.entry("resources").or_insert_with(|| json!({}));
    let Some(res) = res.as_object_mut() else { return };
    // Pod defaulting runs before admission upstream: requests missing where limits are set take
    // the limits, so the plugin never overrides them.
    let own_limits: Map<String, Value> = res.get("limits").and_then(Value::as_object).cloned().unwrap_or_default();
    if !own_limits.is_empty() {
        let req = res.entry("requests").or_insert_with(|| json!({}));
        if let Some(req) = req.as_object_mut() {
            for (k, v) in &own_limits {
                req.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    let mut set = |part: &str, defaults: &ResourceList| -> Vec<String> {
        let mut names = Vec::new();
        if defaults.is_empty() {
            return names;
        }
        let m = res.entry(part).or_insert_with(|| json!({}));
        if let Some(m) = m.as_object_mut() {
            for (k, v) in defaults {
                if !m.contains_key(k) {
                    m.insert(k.clone(), json!(v.to_string()));
                    names.push(k.clone());
                }
            }
        }
        names
    };
    let set_limits = set("limits", limits);
    let set_requests = set("requests", requests);
    if !set_requests.is_empty() {
        notes.push(format!("{} request for {what} {name}", set_requests.join(", ")));
    }
    if !set_limits.is_empty() {
        notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
    }
}

/// Upstream compares milli-values unless one would overflow them, then whole values.
fn values(req: Option<&Amount>, lim: Option<&Amount>, enforced: &Amount) -> (i64, i64, i64) {
    let v = |a: Option<&Amount>| a.map(|a| a.value.value()).unwrap_or(0);
    let m = |a: Option<&Amount>| a.map(|a| a.value.milli_value()).unwrap_or(0);
    const MAX_MILLI: i64 = i64::MAX / 1000;
    if v(req) <= MAX_MILLI && v(lim) <= MAX_MILLI && enforced.value.value() <= MAX_MILLI {
        (m(req), m(lim), enforced.value.milli_value())
    } else {
        (v(req), v(lim), enforced.value.value())
    }
}

fn min_constraint(
    kind: &str,
    r: &str,
    enforced: &Amount,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (req, lim) = (requests.get(r), limits.get(r));
    let (rv, lv, ev) = values(req, lim, enforced);
    match (req, lim) {
        (None, _) => Some(format!("minimum {r} usage per {kind} is {enforced}.  No request is specified")),
        (Some(q), _) if rv < ev => Some(format!("minimum {r} usage per {kind} is {enforced}, but request is {q}")),
        (_, Some(l)) if lv < ev => Some(format!("minimum {r} usage per {kind} is {enforced}, but limit is {l}")),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    r: &str,
    enforced: &Amount,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (req, lim) = (requests.get(r), limits.get(r));
    let (rv, lv, ev) = values(req, lim, enforced);
    match (req, lim) {
        (_, None) => Some(format!("maximum {r} usage per {kind} is {enforced}.  No limit is specified")),
        (_, Some(l)) if lv > ev => Some(format!("maximum {r} usage per {kind} is {enforced}, but limit is {l}")),
        (Some(q), _) if rv > ev => Some(format!("maximum {r} usage per {kind} is {enforced}, but request is {q}")),
        _ => None,
    }
}

fn max_request_constraint(kind: &str, r: &str, enforced: &Amount, requests: &ResourceList) -> Option<String> {
    let req = requests.get(r);
    let (rv, _, ev) = values(req, None, enforced);
    match req {
        None => Some(format!("maximum {r} usage per {kind} is {enforced}.  No request is specified")),
        Some(q) if rv > ev => Some(format!("maximum {r} usage per {kind} is {enforced}, but request is {q}")),
        _ => None,
    }
}

fn ratio_constraint(
    kind: &str,
    r: &str,
    enforced: &Amount,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let (req, lim) = (requests.get(r), limits.get(r));
    let (rv, lv, _) = values(req, lim, enforced);
    if req.is_none() || rv == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"
        ));
    }
    if lim.is_none() || lv == 0 {
        return Some(format!(
            "{r} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"
        ));
    }
    let observed = lv as f64 / rv as f64;
    let (scaled, max) = if enforced.value.value() <= i64::MAX / 1000 {
        (observed * 1000.0, enforced.value.milli_value() as f64)
    } else {
        (observed, enforced.value.value() as f64)
    };
    (scaled > max).then(|| {
        format!("{r} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}")
    })
}

fn check(item: &Item, requests: &ResourceList, limits: &ResourceList, errs: &mut Vec<String>) {
    let kind = item.kind.as_str();
    errs.extend(item.min.iter().filter_map(|(r, v)| min_constraint(kind, r, v, requests, limits)));
    errs.extend(item.max.iter().filter_map(|(r, v)| max_constraint(kind, r, v, requests, limits)));
    errs.extend(item.ratio.iter().filter_map(|(r, v)| ratio_constraint(kind, r, v, requests, limits)));
}

/// The violations of one LimitRange by a pod.
fn check_pod(items: &[Item], pod: &Value) -> Vec<String> {
    let spec = pod.get("spec");
    let mut errs = Vec::new();
    for item in items {
        match item.kind.as_str() {
            "Container" => {
                for field in ["containers", "initContainers"] {
                    for c in spec.and_then(|s| s.get(field)).and_then(Value::as_array).into_iter().flatten() {
                        let res = c.get("resources");
                        let requests = list::from_json(res.and_then(|r| r.get("requests")));
                        let limits = list::from_json(res.and_then(|r| r.get("limits")));
                        check(item, &requests, &limits, &mut errs);
                    }
                }
            }
            "Pod" => check(item, &pod_resources(spec, "requests"), &pod_resources(spec, "limits"), &mut errs),
            _ => {}
        }
    }
    errs
}

/// The violations of one LimitRange by a PVC (its requests; limits are not user input).
fn check_claim(items: &[Item], pvc: &Value) -> Vec<String> {
    let requests = list::from_json(pvc.get("spec").and_then(|s| s.get("resources")).and_then(|r| r.get("requests")));
    let mut errs = Vec::new();
    for item in items.iter().filter(|i| i.kind == "PersistentVolumeClaim") {
        let kind = item.kind.as_str();
        errs.extend(item.min.iter().filter_map(|(r, v)| min_constraint(kind, r, v, &requests, &BTreeMap::new())));
        errs.extend(item.max.iter().filter_map(|(r, v)| max_request_constraint(kind, r, v, &requests)));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Vec<Item> {
        items(&json!({"spec": {"limits": limits}}))
    }

    #[test]
    fn defaults_fill_what_containers_leave_unset_and_annotate() {
        let items = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"}}]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
        "initContainers": [{"name": "init"}],
        "containers": [
            {"name": "a", "resources": {"limits": {"cpu": "200m"}}},
            {"name": "b", "resources": {"requests": {"memory": "64Mi"}, "limits": {"memory": "64Mi", "cpu": "1"}}}
        ]}});
        default_pod(&items, &mut pod);
        let c = &pod["spec"]["containers"];
        assert_eq!(
            c[0]["resources"],
            json!({"limits": {"cpu": "200m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "128Mi"}})
        );
        assert_eq!(c[1]["resources"]["requests"], json!({"cpu": "1", "memory": "64Mi"}));
        assert_eq!(
            pod["spec"]["initContainers"][0]["resources"]["requests"],
            json!({"cpu": "100m", "memory": "128Mi"})
        );
        assert_eq!(
            pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: memory request for container a; memory limit for container a; \
             cpu, memory request for init container init; cpu, memory limit for init container init"
        );
        let mut untouched = json!({"metadata": {"name": "q"}, "spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        default_pod(&items, &mut untouched);
        assert!(untouched["metadata"].get("annotations").is_none());
    }

    #[test]
    fn container_min_max_and_ratio_use_upstream_messages() {
        let items = range(json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"memory": "1Gi"},
            "maxLimitRequestRatio": {"cpu": "2"}}]));
        let pod = |res: Value| json!({"spec": {"containers": [{"name": "c", "resources": res}]}});
        assert_eq!(
            check_pod(&items, &pod(json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "50m", "memory": "2Gi"}}))),
            vec![
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum memory usage per Container is 1Gi, but limit is 2Gi"
            ]
        );
        assert_eq!(
            check_pod(&items, &pod(json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "400m", "memory": "1Gi"}}))),
            vec!["cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"]
        );
        assert_eq!(
            check_pod(&items, &pod(json!({}))),
            vec![
                "minimum cpu usage per Container is 100m.  No request is specified",
                "maximum memory usage per Container is 1Gi.  No limit is specified",
                "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"
            ]
        );
        assert!(
            check_pod(&items, &pod(json!({"requests": {"cpu": "1"}, "limits": {"cpu": "1500m", "memory": "512Mi"}})))
                .is_empty()
        );
    }

    #[test]
    fn pod_limits_sum_containers_and_claims_check_storage() {
        let items = range(json!([{"type": "Pod", "max": {"cpu": "1"}}]));
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "600m"}}},
            {"name": "b", "resources": {"limits": {"cpu": "600m"}}}]}});
        assert_eq!(check_pod(&items, &pod), vec!["maximum cpu usage per Pod is 1, but limit is 1200m"]);
        let items =
            range(json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}}]));
        let pvc = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert_eq!(
            check_claim(&items, &pvc("500Mi")),
            vec!["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
        assert_eq!(
            check_claim(&items, &pvc("3Gi")),
            vec!["maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 3Gi"]
        );
        assert!(check_claim(&items, &pvc("1536Mi")).is_empty());
    }

    #[test]
    fn aggregates_like_upstream() {
        assert_eq!(aggregate(&[]), None);
        assert_eq!(aggregate(&["a".into()]), Some("a".into()));
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), Some("[a, b]".into()));
        let pod = json!({"metadata": {"name": "x"}});
        let e = forbidden("pods", &pod, "minimum cpu usage per Container is 100m, but request is 50m");
        assert_eq!(e.message, "pods \"x\" is forbidden: minimum cpu usage per Container is 100m, but request is 50m");
    }
}
