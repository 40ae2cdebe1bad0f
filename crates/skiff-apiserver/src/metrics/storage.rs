//! The last two points of every node and container, and the usage they give, with
//! metrics-server's rules: a new point moves the stored one to "previous" when it is newer; a
//! container that restarted (its start time after the stored point) starts over; a container that
//! started less than one resolution ago (but at least 10 s ago) gets a synthetic previous point
//! of zero CPU at its start time, so it has metrics after one scrape. CPU usage is the cumulative
//! CPU difference divided by the window between the two points; memory is the last working set.
//! A node or pod is served only when it has both points (pods: every container).
//!
//! What does not live here: decoding ([`super::decode`]), the API objects ([`super::api`]).

use std::collections::BTreeMap;
use std::time::Duration;

use super::decode::{Batch, PodKey, Point};

/// Containers younger than this get no synthetic previous point (their first seconds are noisy).
const FRESH_CONTAINER_MIN: Duration = Duration::from_secs(10);

/// Usage computed from two points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU in nanocores.
    pub cpu_nanocores: u64,
    /// Memory working set in bytes.
    pub memory_bytes: u64,
    /// When the newer point was measured (ns since the epoch).
    pub timestamp_ns: i64,
    /// The time between the two points.
    pub window: Duration,
}

/// Usage between `prev` and `last`; `None` when the points go backwards.
pub fn usage(last: &Point, prev: &Point) -> Option<Usage> {
    if last.start_ns < prev.start_ns || last.cpu_nanos < prev.cpu_nanos || last.timestamp_ns <= prev.timestamp_ns {
        return None;
    }
    let window_ns = (last.timestamp_ns - prev.timestamp_ns) as u64;
    let cpu = u128::from(last.cpu_nanos - prev.cpu_nanos) * 1_000_000_000 / u128::from(window_ns);
    Some(Usage {
        cpu_nanocores: u64::try_from(cpu).unwrap_or(u64::MAX),
        memory_bytes: last.memory_bytes,
        timestamp_ns: last.timestamp_ns,
        window: Duration::from_nanos(window_ns),
    })
}

/// Stored points.
#[derive(Debug, Default)]
pub struct Storage {
    nodes_last: BTreeMap<String, Point>,
    nodes_prev: BTreeMap<String, Point>,
    pods_last: BTreeMap<PodKey, BTreeMap<String, Point>>,
    pods_prev: BTreeMap<PodKey, BTreeMap<String, Point>>,
}

impl Storage {
    /// Replaces the stored points with those of `batch` (the union of every node's scrape),
    /// keeping the previous points as described in the module documentation.
    pub fn store(&mut self, batch: Batch, resolution: Duration) {
        let mut nodes_prev = BTreeMap::new();
        for (name, point) in &batch.nodes {
            if let Some(last) = self.nodes_last.get(name) {
                if point.timestamp_ns > last.timestamp_ns {
                    nodes_prev.insert(name.clone(), *last);
                } else if let Some(prev) = self.nodes_prev.get(name).filter(|p| p.timestamp_ns < point.timestamp_ns) {
                    nodes_prev.insert(name.clone(), *prev);
                }
            }
        }
        let resolution_ns = resolution.as_nanos() as i64;
        let fresh_min_ns = FRESH_CONTAINER_MIN.as_nanos() as i64;
        let mut pods_prev = BTreeMap::new();
        for (key, containers) in &batch.pods {
            let mut prev_containers = BTreeMap::new();
            for (name, point) in containers {
                let age = point.timestamp_ns - point.start_ns;
                if point.start_ns > 0 && age > 0 && age < resolution_ns && age >= fresh_min_ns {
                    let synthetic = Point { timestamp_ns: point.start_ns, cpu_nanos: 0, ..*point };
                    prev_containers.insert(name.clone(), synthetic);
                    continue;
                }
                let Some(last) = self.pods_last.get(key).and_then(|p| p.get(name)) else { continue };
                if point.start_ns >= last.timestamp_ns && point.start_ns > 0 {
                    continue; // restarted since the stored point
                }
                if point.timestamp_ns > last.timestamp_ns {
                    prev_containers.insert(name.clone(), *last);
                } else if let Some(prev) =
                    self.pods_prev.get(key).and_then(|p| p.get(name)).filter(|p| p.timestamp_ns < point.timestamp_ns)
                {
                    prev_containers.insert(name.clone(), *prev);
                }
            }
            if !prev_containers.is_empty() {
                pods_prev.insert(key.clone(), prev_containers);
            }
        }
        self.nodes_last = batch.nodes;
        self.nodes_prev = nodes_prev;
        self.pods_last = batch.pods;
        self.pods_prev = pods_prev;
    }

    /// Usage of node `name`, when it has two points.
    pub fn node(&self, name: &str) -> Option<Usage> {
        usage(self.nodes_last.get(name)?, self.nodes_prev.get(name)?)
    }

    /// Usage of each container of pod `key` (by name), when every container has two points; the
    /// pod's timestamp and window are its earliest container's.
    pub fn pod(&self, key: &PodKey) -> Option<(BTreeMap<String, Usage>, i64, Duration)> {
        let (last, prev) = (self.pods_last.get(key)?, self.pods_prev.get(key)?);
        let mut out = BTreeMap::new();
        let mut earliest: Option<(i64, Duration)> = None;
        for (name, point) in last {
            let before = prev.get(name)?;
            let Some(u) = usage(point, before) else {
                tracing::debug!(container = %name, pod = %key.1, "metrics: skipping a container whose points go backwards");
                continue;
            };
            if earliest.is_none_or(|(ts, _)| u.timestamp_ns < ts) {
                earliest = Some((u.timestamp_ns, u.window));
            }
            out.insert(name.clone(), u);
        }
        let (ts, window) = earliest?;
        Some((out, ts, window))
    }

    /// How many pods and nodes have points (for logs).
    pub fn counts(&self) -> (usize, usize) {
        (self.nodes_last.len(), self.pods_last.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn point(ts_s: i64, cpu_s: f64, memory: u64, start_s: i64) -> Point {
        Point { start_ns: start_s * S, timestamp_ns: ts_s * S, cpu_nanos: (cpu_s * 1e9) as u64, memory_bytes: memory }
    }

    fn batch(node: Point, containers: &[(&str, Point)]) -> Batch {
        let mut b = Batch::default();
        b.nodes.insert("n1".into(), node);
        let key = ("default".to_string(), "p".to_string());
        b.pods.insert(key, containers.iter().map(|(n, p)| (n.to_string(), *p)).collect());
        b
    }

    fn key() -> PodKey {
        ("default".to_string(), "p".to_string())
    }

    #[test]
    fn rates_need_two_points_and_divide_by_the_window() {
        let mut s = Storage::default();
        let resolution = Duration::from_secs(15);
        s.store(batch(point(1000, 100.0, 10, 0), &[("c", point(1000, 5.0, 100, 1))]), resolution);
        assert!(s.node("n1").is_none() && s.pod(&key()).is_none());
        s.store(batch(point(1015, 130.0, 20, 0), &[("c", point(1010, 7.5, 200, 1))]), resolution);
        let node = s.node("n1").expect("node usage");
        assert_eq!(node.cpu_nanocores, 2_000_000_000);
        assert_eq!((node.memory_bytes, node.window), (20, Duration::from_secs(15)));
        let (containers, ts, window) = s.pod(&key()).expect("pod usage");
        assert_eq!(containers["c"].cpu_nanocores, 250_000_000);
        assert_eq!(containers["c"].memory_bytes, 200);
        assert_eq!((ts, window), (1010 * S, Duration::from_secs(10)));
        // The same points again (nothing new measured): the previous point is kept.
        s.store(batch(point(1015, 130.0, 20, 0), &[("c", point(1010, 7.5, 200, 1))]), resolution);
        assert_eq!(s.node("n1").map(|u| u.cpu_nanocores), Some(2_000_000_000));
    }

    #[test]
    fn restarted_containers_start_over_and_gone_pods_vanish() {
        let mut s = Storage::default();
        let resolution = Duration::from_secs(15);
        s.store(batch(point(1000, 1.0, 1, 0), &[("c", point(1000, 5.0, 1, 900))]), resolution);
        // Restarted at 1008 (7 s before its point, too fresh for a synthetic start point): its new
        // point may not be compared with the old instance's.
        s.store(batch(point(1015, 2.0, 1, 0), &[("c", point(1015, 0.5, 1, 1008))]), resolution);
        assert!(s.pod(&key()).is_none());
        s.store(Batch::default(), resolution);
        assert!(s.node("n1").is_none() && s.pod(&key()).is_none());
    }

    #[test]
    fn fresh_containers_get_a_zero_point_at_their_start() {
        let mut s = Storage::default();
        // Started 12 s before its first point, within one resolution of 15 s.
        s.store(batch(point(1000, 1.0, 1, 0), &[("c", point(1012, 6.0, 1, 1000))]), Duration::from_secs(15));
        let (containers, _, window) = s.pod(&key()).expect("usage after one scrape");
        assert_eq!(containers["c"].cpu_nanocores, 500_000_000);
        assert_eq!(window, Duration::from_secs(12));
        // Younger than 10 s: no synthetic point.
        let mut s = Storage::default();
        s.store(batch(point(1000, 1.0, 1, 0), &[("c", point(1005, 1.0, 1, 1000))]), Duration::from_secs(15));
        assert!(s.pod(&key()).is_none());
    }

    #[test]
    fn decreasing_cpu_gives_no_usage() {
        assert!(usage(&point(2, 1.0, 1, 0), &point(1, 2.0, 1, 0)).is_none());
        assert!(usage(&point(1, 2.0, 1, 0), &point(1, 1.0, 1, 0)).is_none());
    }
}
