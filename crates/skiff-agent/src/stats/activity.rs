//! What the pod workers have done since the agent started, counted for the kubelet's `/metrics`:
//! sandboxes started (and failed), container instances started by type, lifecycle hooks that fell
//! back from HTTPS to HTTP, and how long pods took
//! from the worker first seeing them to their first `Running` status (a histogram). The workers
//! bump the counters; the `/metrics` renderer reads a [`ActivityTotals`] copy.
//!
//! What does not live here: rendering ([`super::kubelet`]), gauges measured at scrape time
//! (running pods and containers, volumes: [`super::collect`]).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the pod start-up histogram's buckets, as the kubelet's.
pub const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0,
    600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// The kind of a started container (the `container_type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerType {
    /// A regular (app) container.
    Container,
    /// An init container (sidecars included).
    InitContainer,
}

impl ContainerType {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::InitContainer => "init_container",
        }
    }
}

/// Observations in cumulative buckets (`le` bounds), with their count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds, ascending.
    pub bounds: &'static [f64],
    /// Observations at most each bound (not cumulative; one per bound).
    pub counts: Vec<u64>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// An empty histogram with buckets `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Self { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    /// Records `value`.
    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// `(bound, observations at most bound)` per bucket, cumulative as Prometheus wants them.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds.iter().zip(self.counts.iter()).scan(0, |total, (bound, n)| {
            *total += n;
            Some((*bound, *total))
        })
    }
}

/// The counters, shared by the pod workers and the `/metrics` endpoint.
#[derive(Debug)]
pub struct Activity {
    started_pods: AtomicU64,
    started_pod_errors: AtomicU64,
    started_containers: AtomicU64,
    started_init_containers: AtomicU64,
    http_fallbacks: AtomicU64,
    pod_start: Mutex<Histogram>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            started_pods: AtomicU64::new(0),
            started_pod_errors: AtomicU64::new(0),
            started_containers: AtomicU64::new(0),
            started_init_containers: AtomicU64::new(0),
            http_fallbacks: AtomicU64::new(0),
            pod_start: Mutex::new(Histogram::new(&POD_START_BUCKETS)),
        }
    }
}

/// A copy of the counters at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivityTotals {
    /// Sandboxes the workers tried to start.
    pub started_pods: u64,
    /// Of those, the ones that failed.
    pub started_pod_errors: u64,
    /// Container instances handed to the runtime to start, by type.
    pub started_containers: Vec<(ContainerType, u64)>,
    /// Lifecycle hooks that succeeded over HTTP after their HTTPS request got a plain answer.
    pub http_fallbacks: u64,
    /// Seconds from a worker first seeing a pending pod to its first `Running` status.
    pub pod_start: Histogram,
}

impl Activity {
    /// A pod sandbox is being started.
    pub fn pod_starting(&self) {
        self.started_pods.fetch_add(1, Ordering::Relaxed);
    }

    /// Starting a pod sandbox failed.
    pub fn pod_start_failed(&self) {
        self.started_pod_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A container instance of type `kind` is being started.
    pub fn container_starting(&self, kind: ContainerType) {
        let counter = match kind {
            ContainerType::Container => &self.started_containers,
            ContainerType::InitContainer => &self.started_init_containers,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A lifecycle hook fell back from HTTPS to HTTP and succeeded.
    pub fn hook_fell_back(&self) {
        self.http_fallbacks.fetch_add(1, Ordering::Relaxed);
    }

    /// A pod became `Running` `took` after its worker first saw it.
    pub fn pod_started(&self, took: Duration) {
        self.pod_start.lock().unwrap_or_else(std::sync::PoisonError::into_inner).observe(took.as_secs_f64());
    }

    /// The counters now.
    pub fn totals(&self) -> ActivityTotals {
        ActivityTotals {
            started_pods: self.started_pods.load(Ordering::Relaxed),
            started_pod_errors: self.started_pod_errors.load(Ordering::Relaxed),
            started_containers: vec![
                (ContainerType::Container, self.started_containers.load(Ordering::Relaxed)),
                (ContainerType::InitContainer, self.started_init_containers.load(Ordering::Relaxed)),
            ],
            http_fallbacks: self.http_fallbacks.load(Ordering::Relaxed),
            pod_start: self.pod_start.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_values_past_the_last_bound_only_count() {
        let mut h = Histogram::new(&[1.0, 5.0]);
        for v in [0.2, 1.0, 3.0, 9.0] {
            h.observe(v);
        }
        assert_eq!(h.cumulative().collect::<Vec<_>>(), [(1.0, 2), (5.0, 3)]);
        assert_eq!((h.count, h.sum), (4, 13.2));
    }

    #[test]
    fn counters_add_up_per_kind() {
        let activity = Activity::default();
        activity.pod_starting();
        activity.pod_starting();
        activity.pod_start_failed();
        activity.container_starting(ContainerType::InitContainer);
        activity.container_starting(ContainerType::Container);
        activity.container_starting(ContainerType::Container);
        activity.pod_started(Duration::from_millis(1500));
        activity.hook_fell_back();
        let totals = activity.totals();
        assert_eq!(totals.http_fallbacks, 1);
        assert_eq!((totals.started_pods, totals.started_pod_errors), (2, 1));
        assert_eq!(totals.started_containers, [(ContainerType::Container, 2), (ContainerType::InitContainer, 1)]);
        assert_eq!(totals.pod_start.count, 1);
        assert_eq!(totals.pod_start.cumulative().find(|(b, _)| *b == 2.0), Some((2.0, 1)));
    }
}
