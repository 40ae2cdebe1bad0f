//! The DefaultTolerationSeconds admission plugin, as upstream's
//! `plugin/pkg/admission/defaulttolerationseconds`: a pod created without a toleration of
//! `node.kubernetes.io/not-ready:NoExecute` (or of `unreachable`) gets one (`Exists`, 300 s), so
//! the taint eviction controller deletes it five minutes after its Node fails. A toleration with
//! an empty key or an empty effect counts as tolerating both. Updates are left alone.

use serde_json::{Value, json};

/// Upstream's default `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds`.
pub const DEFAULT_SECONDS: i64 = 300;
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Adds the default tolerations to a pod being created (stored form).
pub fn admit_pod(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else { return };
    let tolerates = |list: &[Value], key: &str| {
        list.iter().any(|t| {
            let field = |f: &str| t.get(f).and_then(Value::as_str).unwrap_or("");
            (field("key") == key || field("key").is_empty())
                && (field("effect") == "NoExecute" || field("effect").is_empty())
        })
    };
    let current: Vec<Value> = spec.get("tolerations").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut list = current.clone();
    for key in [NOT_READY, UNREACHABLE] {
        if !tolerates(&current, key) {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_SECONDS,
            }));
        }
    }
    if list.len() != current.len() {
        spec.insert("tolerations".into(), Value::Array(list));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_both_defaults() {
        let mut pod = json!({"spec": {"containers": []}});
        admit_pod(&mut pod);
        let t = &pod["spec"]["tolerations"];
        assert_eq!(t.as_array().map(Vec::len), Some(2));
        assert_eq!(t[0]["key"], NOT_READY);
        assert_eq!(t[1]["key"], UNREACHABLE);
        assert_eq!(t[1]["operator"], "Exists");
        assert_eq!(t[1]["effect"], "NoExecute");
        assert_eq!(t[1]["tolerationSeconds"], 300);
    }

    #[test]
    fn keeps_existing_tolerations() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
        ]}});
        admit_pod(&mut pod);
        let t = pod["spec"]["tolerations"].as_array().cloned().unwrap_or_default();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["tolerationSeconds"], 5);
        assert_eq!(t[1]["key"], NOT_READY);
        let mut all = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        admit_pod(&mut all);
        assert_eq!(all["spec"]["tolerations"].as_array().map(Vec::len), Some(1), "a wildcard tolerates both");
        let mut no_schedule =
            json!({"spec": {"tolerations": [{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]}});
        admit_pod(&mut no_schedule);
        assert_eq!(no_schedule["spec"]["tolerations"].as_array().map(Vec::len), Some(3));
    }
}
