//! Alternative served versions over another resource's storage: `events.k8s.io/v1` Events over
//! core/v1 Events, and `autoscaling/v1` HorizontalPodAutoscalers over `autoscaling/v2`.
//!
//! Conversions work on JSON and are lossless for the fields both versions share; fields only the
//! stored version has survive a round trip through the view where upstream keeps them (HPA v1
//! carries v2 metrics in annotations upstream; skiff keeps only the CPU target).
//!
//! Custom resources served in a version other than their CRD's storage version are views too:
//! with conversion strategy `None` only `apiVersion` is rewritten.
//!
//! [`VersionPaths`] tells server-side apply how field paths differ between the versions, so
//! `managedFields` recorded through one version keep working through another.

use serde_json::{Map, Value, json};
use skiff_api::catalogue::{self, ResourceInfo};

use crate::apply::{Element, Path, Versions};

/// A path prefix in the stored version and its spelling in a view (`None`: the view has no such
/// field).
type Rename = (&'static [&'static str], Option<&'static [&'static str]>);

/// Top-level fields of core/v1 Events that events.k8s.io/v1 calls differently.
const EVENT_RENAMES: &[Rename] = &[
    (&["involvedObject"], Some(&["regarding"])),
    (&["message"], Some(&["note"])),
    (&["count"], Some(&["deprecatedCount"])),
    (&["firstTimestamp"], Some(&["deprecatedFirstTimestamp"])),
    (&["lastTimestamp"], Some(&["deprecatedLastTimestamp"])),
    (&["source"], Some(&["deprecatedSource"])),
    (&["reportingComponent"], Some(&["reportingController"])),
];

/// autoscaling/v2 HorizontalPodAutoscaler fields and their autoscaling/v1 counterparts (the CPU
/// target and current value; v1 has nothing for behavior and conditions).
const HPA_V1_RENAMES: &[Rename] = &[
    (&["spec", "metrics"], Some(&["spec", "targetCPUUtilizationPercentage"])),
    (&["spec", "behavior"], None),
    (&["status", "currentMetrics"], Some(&["status", "currentCPUUtilizationPercentage"])),
    (&["status", "conditions"], None),
];

/// The paths a view spells differently from its stored version.
fn renames(info: &ResourceInfo) -> &'static [Rename] {
    if !info.is_view() || info.custom.is_some() {
        return &[];
    }
    match (info.group, info.plural) {
        ("events.k8s.io", "events") => EVENT_RENAMES,
        ("autoscaling", "horizontalpodautoscalers") => HPA_V1_RENAMES,
        _ => &[],
    }
}

/// Rewrites the first matching prefix of `path` (`f:` elements); `None` when it maps to nothing.
fn rename_path(path: &[Element], table: &[Rename], to_view: bool) -> Option<Path> {
    for (stored, served) in table {
        let (from, to) = if to_view { (Some(*stored), *served) } else { (*served, Some(*stored)) };
        let Some(from) = from else { continue };
        let matches =
            path.len() >= from.len() && path.iter().zip(from.iter()).all(|(e, f)| e.strip_prefix("f:") == Some(f));
        if matches {
            let to = to?;
            return Some(to.iter().map(|f| format!("f:{f}")).chain(path[from.len()..].iter().cloned()).collect());
        }
    }
    Some(path.to_vec())
}

/// Field paths across the served versions of one resource: through the stored version, with
/// each view's renames.
#[derive(Debug, Clone, Copy)]
pub struct VersionPaths {
    plural: &'static str,
}

impl VersionPaths {
    /// The paths of the resource `info` is a version of.
    pub fn new(info: &ResourceInfo) -> Self {
        Self { plural: info.plural }
    }

    fn info(&self, api_version: &str) -> Option<&'static ResourceInfo> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        catalogue::find(group, version, self.plural)
    }
}

impl Versions for VersionPaths {
    fn convert(&self, path: &[Element], from: &str, to: &str) -> Option<Path> {
        if from == to {
            return Some(path.to_vec());
        }
        // Versions this server does not serve (client-sent entries) are taken as they are.
        let stored = match self.info(from) {
            Some(info) => rename_path(path, renames(info), false)?,
            None => path.to_vec(),
        };
        match self.info(to) {
            Some(info) => rename_path(&stored, renames(info), true),
            None => Some(stored),
        }
    }
}

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
            for (stored, served) in EVENT_RENAMES {
                if let ([stored], Some([served])) = (stored, served) {
                    rename(map, served, stored);
                }
            }
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
            for (stored, served) in EVENT_RENAMES {
                if let ([stored], Some([served])) = (stored, served) {
                    rename(map, stored, served);
                }
            }
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
    fn field_paths_translate_between_served_versions() {
        let paths = VersionPaths::new(catalogue::find("", "v1", "events").expect("events"));
        let p = |s: &[&str]| -> Path { s.iter().map(|e| e.to_string()).collect() };
        assert_eq!(
            paths.convert(&p(&["f:involvedObject", "f:name"]), "v1", "events.k8s.io/v1"),
            Some(p(&["f:regarding", "f:name"]))
        );
        assert_eq!(paths.convert(&p(&["f:note"]), "events.k8s.io/v1", "v1"), Some(p(&["f:message"])));
        assert_eq!(paths.convert(&p(&["f:reason"]), "events.k8s.io/v1", "v1"), Some(p(&["f:reason"])));
        let hpa = VersionPaths::new(catalogue::find("autoscaling", "v2", "horizontalpodautoscalers").expect("hpa"));
        assert_eq!(
            hpa.convert(&p(&["f:spec", "f:targetCPUUtilizationPercentage"]), "autoscaling/v1", "autoscaling/v2"),
            Some(p(&["f:spec", "f:metrics"]))
        );
        assert_eq!(hpa.convert(&p(&["f:spec", "f:behavior", "f:scaleUp"]), "autoscaling/v2", "autoscaling/v1"), None);
        assert_eq!(
            hpa.convert(&p(&["f:spec", "f:maxReplicas"]), "autoscaling/v2", "autoscaling/v1"),
            Some(p(&["f:spec", "f:maxReplicas"]))
        );
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
