//! The Priority admission plugin, as upstream's `plugin/pkg/admission/priority`:
//! - pod creates resolve `spec.priorityClassName` to `spec.priority` and
//!   `spec.preemptionPolicy` (a missing class is 403 `no PriorityClass with name x was found`;
//!   without a name the `globalDefault` class applies, the lowest if several, else priority 0 and
//!   `PreemptLowerPriority`); a pod may not state a different priority or policy itself;
//! - PriorityClass creates and updates may not add a second `globalDefault`;
//! - the system classes cannot be deleted.
//!
//! The built-in system classes themselves are created by [`crate::bootstrap`].

use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::status::GroupResource;
use skiff_store::RangeRequest;

use crate::objects::meta_str;
use crate::state::ApiState;

/// Upstream `SystemCriticalPriority`.
pub const SYSTEM_CRITICAL_PRIORITY: i64 = 2_000_000_000;

/// The system priority classes every cluster has: (name, value, description).
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        SYSTEM_CRITICAL_PRIORITY + 1000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        SYSTEM_CRITICAL_PRIORITY,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

const PREFIX: &str = "/registry/scheduling.k8s.io/priorityclasses/";

/// A PriorityClass as admission reads it.
#[derive(Debug, Clone, PartialEq)]
struct Class {
    name: String,
    value: i64,
    global_default: bool,
    preemption_policy: Option<String>,
}

fn parse(v: &Value) -> Class {
    Class {
        name: meta_str(v, "name").unwrap_or("").to_string(),
        value: v.get("value").and_then(Value::as_i64).unwrap_or(0),
        global_default: v.get("globalDefault").and_then(Value::as_bool).unwrap_or(false),
        preemption_policy: v.get("preemptionPolicy").and_then(Value::as_str).map(str::to_string),
    }
}

async fn classes(state: &ApiState) -> Result<Vec<Class>, StatusError> {
    let resp = state
        .store
        .range(RangeRequest { prefix: PREFIX.to_string(), ..Default::default() })
        .await
        .map_err(StatusError::internal)?;
    Ok(resp.kvs.iter().filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok()).map(|v| parse(&v)).collect())
}

/// Upstream `getDefaultPriorityClass`: the global default with the lowest value.
fn default_class(list: &[Class]) -> Option<&Class> {
    list.iter().filter(|c| c.global_default).min_by_key(|c| c.value)
}

fn forbidden(resource: &str, name: &str, why: &str) -> StatusError {
    StatusError::forbidden(
        &GroupResource::new(if resource == "pods" { "" } else { "scheduling.k8s.io" }, resource),
        name,
        why,
    )
}

/// Admits a pod create (the pod in stored form).
pub async fn admit_pod(state: &ApiState, pod: &mut Value) -> Result<(), StatusError> {
    let name = meta_str(pod, "name").unwrap_or("").to_string();
    let spec = pod.get("spec").cloned().unwrap_or_else(|| json!({}));
    let class_name = spec.get("priorityClassName").and_then(Value::as_str).unwrap_or("").to_string();
    let list = classes(state).await?;
    let (class_name, priority, policy) = if class_name.is_empty() {
        match default_class(&list) {
            Some(c) => (c.name.clone(), c.value, c.preemption_policy.clone()),
            None => (String::new(), 0, Some("PreemptLowerPriority".to_string())),
        }
    } else {
        match list.iter().find(|c| c.name == class_name) {
            Some(c) => (class_name, c.value, c.preemption_policy.clone()),
            None => {
                return Err(forbidden("pods", &name, &format!("no PriorityClass with name {class_name} was found")));
            }
        }
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != priority
    {
        return Err(forbidden(
            "pods",
            &name,
            &format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {priority} from the given PriorityClass name"
            ),
        ));
    }
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return Ok(()) };
    if !class_name.is_empty() {
        spec.insert("priorityClassName".into(), json!(class_name));
    }
    spec.insert("priority".into(), json!(priority));
    if let Some(policy) = policy {
        if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
            && given != policy
        {
            return Err(forbidden(
                "pods",
                &name,
                &format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ),
            ));
        }
        spec.insert("preemptionPolicy".into(), json!(policy));
    }
    Ok(())
}

/// Admits a PriorityClass create (`old` is `None`) or update: only one global default.
pub async fn admit_class(state: &ApiState, class: &Value, updating: bool) -> Result<(), StatusError> {
    let new = parse(class);
    if !new.global_default {
        return Ok(());
    }
    let list = classes(state).await?;
    if let Some(d) = default_class(&list)
        && (!updating || d.name != new.name)
    {
        return Err(forbidden(
            "priorityclasses",
            &new.name,
            &format!("PriorityClass {} is marked as default. Only one default can exist", d.name),
        ));
    }
    Ok(())
}

/// Refuses deleting a system priority class.
pub fn admit_class_delete(name: &str) -> Result<(), StatusError> {
    if SYSTEM_CLASSES.iter().any(|(n, _, _)| *n == name) {
        return Err(forbidden("priorityclasses", name, "this is a system priority class and cannot be deleted"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_global_default_wins() {
        let c = |name: &str, value, d| Class { name: name.into(), value, global_default: d, preemption_policy: None };
        let list = vec![c("a", 10, true), c("b", 5, true), c("c", 1, false)];
        assert_eq!(default_class(&list).map(|c| c.name.as_str()), Some("b"));
        assert!(default_class(&[c("x", 1, false)]).is_none());
    }

    #[test]
    fn system_classes_cannot_be_deleted() {
        let e = admit_class_delete("system-node-critical").expect_err("forbidden");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "priorityclasses.scheduling.k8s.io \"system-node-critical\" is forbidden: this is a system priority class and cannot be deleted"
        );
        assert!(admit_class_delete("mine").is_ok());
    }
}
