//! Alternative served versions over another resource's storage: `events.k8s.io/v1` Events over
//! core/v1 Events, and `autoscaling/v1` HorizontalPodAutoscalers over `autoscaling/v2`.
//!
//! Conversions work on JSON and are lossless for the fields both versions share; fields only the
//! stored version has survive a round trip through the view where upstream keeps them (HPA v1
//! carries v2 metrics in annotations upstream; skiff keeps only the CPU target).
//!
//! Custom resources served in a version other than their CRD's storage version are views too:
//! with conversion strategy `None` only `apiVersion` is rewritten.

use serde_json::{Map, Value, json};
use skiff_api::catalogue::{self, ResourceInfo};

/// The stored resource behind a served one (itself when not a view).
pub fn storage_info(info: &'static ResourceInfo) -> &'static ResourceInfo {
    if !info.is_view() {
        return info;
    }
    let group = if info.storage.group == "core" { "" } else { info.storage.group };
    let version = info.storage.api_version.rsplit('/').next().unwrap_or(info.version);
    catalogue::find(group, version, info.storage.resource).unwrap_or(info)
}

fn take(map: &mut Map<String, Value>, from: &str) -> Option<Value> {
    map.remove(from).filter(|v| !v.is_null())
}

fn rename(map: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = take(map, from) {
        map.insert(to.to_string(), v);
    }
}

/// Converts a served object into its stored form.
pub fn to_storage(info: &ResourceInfo, mut obj: Value) -> Value {
    if !info.is_view() {
        return obj;
    }
    let Some(map) = obj.as_object_mut() else { return obj };
    if info.custom.is_some() {
        map.insert("apiVersion".into(), json!(info.storage.api_version));
        return obj;
    }
    match (info.group, info.plural) {
        ("events.k8s.io", "events") => {
            map.insert("apiVersion".into(), json!("v1"));
            rename(map, "regarding", "involvedObject");
            rename(map, "note", "message");
            rename(map, "deprecatedCount", "count");
            rename(map, "deprecatedFirstTimestamp", "firstTimestamp");
            rename(map, "deprecatedLastTimestamp", "lastTimestamp");
            rename(map, "deprecatedSource", "source");
            rename(map, "reportingController", "reportingComponent");
            if !map.contains_key("involvedObject") {
                map.insert("involvedObject".into(), json!({}));
            }
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            map.insert("apiVersion".into(), json!("autoscaling/v2"));
            if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut)
                && let Some(cpu) = take(spec, "targetCPUUtilizationPercentage")
            {
                spec.insert(
                        "metrics".into(),
                        json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]),
                    );
            }
            if let Some(status) = map.get_mut("status").and_then(Value::as_object_mut)
                && let Some(cpu) = take(status, "currentCPUUtilizationPercentage")
            {
                status.insert(
                    "currentMetrics".into(),
                    json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu}}}]),
                );
            }
        }
        _ => {}
    }
    obj
}

/// Converts a stored object into the served form of `info`.
pub fn from_storage(info: &ResourceInfo, mut obj: Value) -> Value {
    if !info.is_view() {
        return obj;
    }
    let Some(map) = obj.as_object_mut() else { return obj };
    if info.custom.is_some() {
        map.insert("apiVersion".into(), json!(info.api_version()));
        return obj;
    }
    match (info.group, info.plural) {
        ("events.k8s.io", "events") => {
            map.insert("apiVersion".into(), json!("events.k8s.io/v1"));
            rename(map, "involvedObject", "regarding");
            rename(map, "message", "note");
            rename(map, "count", "deprecatedCount");
            rename(map, "firstTimestamp", "deprecatedFirstTimestamp");
            rename(map, "lastTimestamp", "deprecatedLastTimestamp");
            rename(map, "source", "deprecatedSource");
            rename(map, "reportingComponent", "reportingController");
            if !map.contains_key("eventTime") {
                let at = map
                    .get("deprecatedFirstTimestamp")
                    .or_else(|| map.get("metadata").and_then(|m| m.get("creationTimestamp")))
                    .cloned();
                if let Some(Value::String(t)) = at {
                    map.insert("eventTime".into(), json!(t.replace('Z', ".000000Z")));
                }
            }
        }
        ("autoscaling", "horizontalpodautoscalers") => {
            map.insert("apiVersion".into(), json!("autoscaling/v1"));
            if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
                let cpu = spec.get("metrics").and_then(Value::as_array).and_then(|ms| {
                    ms.iter().find_map(|m| {
                        let r = m.get("resource")?;
                        (r.get("name")? == "cpu").then(|| r.get("target")?.get("averageUtilization").cloned())?
                    })
                });
                spec.remove("metrics");
                spec.remove("behavior");
                if let Some(cpu) = cpu {
                    spec.insert("targetCPUUtilizationPercentage".into(), cpu);
                }
            }
            if let Some(status) = map.get_mut("status").and_then(Value::as_object_mut) {
                let cpu = status.get("currentMetrics").and_then(Value::as_array).and_then(|ms| {
                    ms.iter().find_map(|m| {
                        let r = m.get("resource")?;
                        (r.get("name")? == "cpu").then(|| r.get("current")?.get("averageUtilization").cloned())?
                    })
                });
                status.remove("currentMetrics");
                status.remove("conditions");
                if let Some(cpu) = cpu {
                    status.insert("currentCPUUtilizationPercentage".into(), cpu);
                }
            }
        }
        _ => {}
    }
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_events_k8s_io_view() {
        let view = catalogue::find("events.k8s.io", "v1", "events").expect("view");
        assert_eq!(storage_info(view).group, "");
        let served = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hello", "reason": "R", "type": "Normal",
            "reportingController": "c", "reportingInstance": "i", "action": "A", "eventTime": "2026-01-01T00:00:00.000000Z"});
        let stored = to_storage(view, served.clone());
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "p");
        assert_eq!(stored["message"], "hello");
        assert_eq!(from_storage(view, stored), served);
    }

    #[test]
    fn hpa_v1_maps_cpu_target() {
        let view = catalogue::find("autoscaling", "v1", "horizontalpodautoscalers").expect("view");
        let served = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
        let stored = to_storage(view, served.clone());
        assert_eq!(stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 50);
        assert_eq!(from_storage(view, stored), served);
    }
}
