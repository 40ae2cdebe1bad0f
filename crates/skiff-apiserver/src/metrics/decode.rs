//! Decoding an agent's `/metrics/resource` document (Prometheus text format) into one
//! [`Batch`]: the node's point and each pod's container points, as metrics-server reads the
//! kubelet's: `node_cpu_usage_seconds_total`, `node_memory_working_set_bytes`,
//! `container_cpu_usage_seconds_total`, `container_memory_working_set_bytes` and
//! `container_start_time_seconds`; every other family is ignored. Incomplete node points (no
//! timestamp, zero CPU or memory) are dropped, and so is a pod any of whose containers lacks CPU
//! or memory.
//!
//! What does not live here: keeping points and computing rates ([`super::storage`]).

use std::collections::BTreeMap;

/// One measurement of a node or container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// When the container (or node) started, in ns since the epoch; 0 when unknown.
    pub start_ns: i64,
    /// When the point was measured, in ns since the epoch.
    pub timestamp_ns: i64,
    /// Cumulative CPU time since start, in ns.
    pub cpu_nanos: u64,
    /// Memory working set in bytes.
    pub memory_bytes: u64,
}

/// A pod: `(namespace, name)`.
pub type PodKey = (String, String);

/// Everything one scrape of one node yielded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Node points by node name.
    pub nodes: BTreeMap<String, Point>,
    /// Pods' container points by container name.
    pub pods: BTreeMap<PodKey, BTreeMap<String, Point>>,
}

/// Decodes the document `text` scraped from node `node` at `default_ms` (used for samples that
/// carry no timestamp).
pub fn decode(text: &str, node: &str, default_ms: i64) -> Batch {
    let mut node_point = Point::default();
    let mut pods: BTreeMap<PodKey, BTreeMap<String, Point>> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value, ts_ms)) = parse_sample(line) else { continue };
        let ts_ns = ts_ms.unwrap_or(default_ms).saturating_mul(1_000_000);
        match name {
            "node_cpu_usage_seconds_total" => {
                node_point.cpu_nanos = seconds_to_nanos(value);
                node_point.timestamp_ns = ts_ns;
            }
            "node_memory_working_set_bytes" => {
                node_point.memory_bytes = value.max(0.0) as u64;
                node_point.timestamp_ns = ts_ns;
            }
            "container_cpu_usage_seconds_total" => {
                let p = entry(&mut pods, &labels);
                p.cpu_nanos = seconds_to_nanos(value);
                p.timestamp_ns = ts_ns;
            }
            "container_memory_working_set_bytes" => {
                let p = entry(&mut pods, &labels);
                p.memory_bytes = value.max(0.0) as u64;
                p.timestamp_ns = ts_ns;
            }
            "container_start_time_seconds" => entry(&mut pods, &labels).start_ns = (value * 1e9) as i64,
            _ => {}
        }
    }
    let mut batch = Batch::default();
    if node_point.timestamp_ns != 0 && node_point.cpu_nanos != 0 && node_point.memory_bytes != 0 {
        batch.nodes.insert(node.to_string(), node_point);
    } else {
        tracing::debug!(node, "metrics: incomplete node point dropped");
    }
    for (key, containers) in pods {
        let complete = containers.values().all(|c| c.cpu_nanos != 0 && c.memory_bytes != 0);
        if complete && !containers.is_empty() {
            batch.pods.insert(key, containers);
        } else {
            tracing::debug!(namespace = %key.0, pod = %key.1, "metrics: incomplete pod point dropped");
        }
    }
    batch
}

/// The point of the container named by a sample's labels (created empty when new).
fn entry<'a>(pods: &'a mut BTreeMap<PodKey, BTreeMap<String, Point>>, labels: &[(String, String)]) -> &'a mut Point {
    let get = |k: &str| labels.iter().find(|(lk, _)| lk == k).map(|(_, v)| v.clone()).unwrap_or_default();
    pods.entry((get("namespace"), get("pod"))).or_default().entry(get("container")).or_default()
}

fn seconds_to_nanos(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1e9).round() as u64
}

type Sample<'a> = (&'a str, Vec<(String, String)>, f64, Option<i64>);

/// Splits a sample line into its metric name, labels, value and optional timestamp (ms).
pub fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, remaining) = parse_labels(after)?;
        labels = parsed;
        rest = remaining;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next()?)?;
    let timestamp = match fields.next() {
        Some(t) => Some(t.parse::<i64>().ok()?),
        None => None,
    };
    Some((name, labels, value, timestamp))
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses `k="v",…}` and returns the pairs and what follows the closing brace.
fn parse_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key, value));
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="main",namespace="default",pod="burner"} 1.5 1700000000123
container_cpu_usage_seconds_total{container="idle",namespace="default",pod="half"} 0.25 1700000000123
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="main",namespace="default",pod="burner"} 2.048e+03 1700000000123
container_start_time_seconds{container="main",namespace="default",pod="burner"} 1699999999.5 1699999999500
node_cpu_usage_seconds_total 12.5 1700000000100
node_memory_working_set_bytes 1048576 1700000000100
pod_cpu_usage_seconds_total{namespace="default",pod="burner"} 2 1700000000123
resource_scrape_error 0
"#;

    #[test]
    fn decodes_node_and_complete_pods() {
        let batch = decode(DOC, "n1", 5);
        assert_eq!(
            batch.nodes.get("n1"),
            Some(&Point {
                start_ns: 0,
                timestamp_ns: 1_700_000_000_100_000_000,
                cpu_nanos: 12_500_000_000,
                memory_bytes: 1_048_576
            })
        );
        let burner = &batch.pods[&("default".to_string(), "burner".to_string())];
        assert_eq!(
            burner["main"],
            Point {
                start_ns: 1_699_999_999_500_000_000,
                timestamp_ns: 1_700_000_000_123_000_000,
                cpu_nanos: 1_500_000_000,
                memory_bytes: 2048
            }
        );
        // `half` has no memory sample: dropped as incomplete.
        assert!(!batch.pods.contains_key(&("default".to_string(), "half".to_string())));
    }

    #[test]
    fn samples_without_timestamps_take_the_scrape_time() {
        let batch = decode("node_cpu_usage_seconds_total 1\nnode_memory_working_set_bytes 2\n", "n", 7);
        assert_eq!(batch.nodes["n"].timestamp_ns, 7_000_000);
        assert!(decode("node_cpu_usage_seconds_total 1\n", "n", 7).nodes.is_empty());
    }

    #[test]
    fn label_values_are_unescaped() {
        let (name, labels, value, ts) =
            parse_sample(r#"m{a="x\"y",b="line\nnext", c="back\\slash"} 3 12"#).expect("sample");
        assert_eq!((name, value, ts), ("m", 3.0, Some(12)));
        assert_eq!(labels[0], ("a".into(), "x\"y".into()));
        assert_eq!(labels[1], ("b".into(), "line\nnext".into()));
        assert_eq!(labels[2], ("c".into(), "back\\slash".into()));
        assert!(parse_sample("m{a=\"unterminated} 1").is_none());
    }
}
