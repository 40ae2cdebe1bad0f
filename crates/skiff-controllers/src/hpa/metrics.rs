//! Where the HorizontalPodAutoscaler reads pod resource usage: the [`MetricsSource`] trait and
//! its implementation over the resource metrics API (`metrics.k8s.io/v1beta1` PodMetrics, as
//! metrics-server serves it), with upstream's error wording.
//!
//! What does not live here: custom and external metrics (`custom.metrics.k8s.io`,
//! `external.metrics.k8s.io`), which the controller reports as unavailable.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;
use skiff_api::quantity::Quantity;

use super::calc::{Sample, Samples};
use crate::apierr;

/// A source of per-pod resource usage.
pub trait MetricsSource: Send + Sync {
    /// Usage of `resource` (`cpu`, `memory`) by the pods of `namespace` matching `selector`
    /// (label-selector query syntax), summed over their containers or only `container`'s.
    fn pod_usage<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
        resource: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Samples, String>>;
}

/// The resource metrics API.
pub struct ResourceMetricsApi {
    client: kube::Client,
}

impl ResourceMetricsApi {
    /// Reads metrics through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

fn pod_metrics_resource() -> ApiResource {
    ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    }
}

impl MetricsSource for ResourceMetricsApi {
    fn pod_usage<'a>(
        &'a self,
        namespace: &'a str,
        selector: &'a str,
        resource: &'a str,
        container: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Samples, String>> {
        Box::pin(async move {
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), namespace, &pod_metrics_resource());
            let list = api
                .list(&ListParams::default().labels(selector))
                .await
                .map_err(|e| format!("unable to fetch metrics from resource metrics API: {}", apierr::message(&e)))?;
            if list.items.is_empty() {
                return Err("no metrics returned from resource metrics API".into());
            }
            let items: Vec<(String, Value)> =
                list.items.into_iter().map(|o| (o.metadata.name.unwrap_or_default(), o.data)).collect();
            Ok(samples_of(&items, resource, container))
        })
    }
}

/// Samples from PodMetrics bodies (`(pod name, body)`): a pod with a container missing the
/// resource (or without the named container) has no sample, as upstream.
pub fn samples_of(items: &[(String, Value)], resource: &str, container: Option<&str>) -> Samples {
    let mut out = Samples::new();
    for (pod, body) in items {
        let Some(timestamp) = body.get("timestamp").and_then(Value::as_str).and_then(|t| t.parse::<Timestamp>().ok())
        else {
            continue;
        };
        let window = body.get("window").and_then(Value::as_str).and_then(parse_go_duration).unwrap_or_default();
        let containers = body.get("containers").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut sum = 0i64;
        let mut seen = false;
        let mut complete = true;
        for c in
            containers.iter().filter(|c| container.is_none_or(|n| c.get("name").and_then(Value::as_str) == Some(n)))
        {
            match c
                .get("usage")
                .and_then(|u| u.get(resource))
                .and_then(Value::as_str)
                .and_then(|q| Quantity::parse(q).ok())
            {
                Some(q) => {
                    sum = sum.saturating_add(q.milli_value());
                    seen = true;
                }
                None => complete = false,
            }
        }
        if seen && complete {
            out.insert(pod.clone(), Sample { milli: sum, timestamp, window });
        }
    }
    out
}

/// Parses a Go duration (`30s`, `1m0s`, `1.5s`, `250ms`).
fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m0s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("x"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn samples_sum_containers_and_skip_incomplete_pods() {
        let body = |usage: Value| json!({"timestamp": "2026-01-01T00:00:00Z", "window": "30s", "containers": usage});
        let items = vec![
            (
                "a".to_string(),
                body(json!([{"name": "c", "usage": {"cpu": "100m"}}, {"name": "d", "usage": {"cpu": "50m"}}])),
            ),
            ("b".to_string(), body(json!([{"name": "c", "usage": {"cpu": "10m"}}, {"name": "d", "usage": {}}]))),
        ];
        let all = samples_of(&items, "cpu", None);
        assert_eq!(all.get("a").map(|s| s.milli), Some(150));
        assert_eq!(all.get("a").map(|s| s.window), Some(Duration::from_secs(30)));
        assert!(!all.contains_key("b"));
        let only_c = samples_of(&items, "cpu", Some("c"));
        assert_eq!(only_c.get("b").map(|s| s.milli), Some(10));
        assert!(samples_of(&items, "cpu", Some("zzz")).is_empty());
    }
}
