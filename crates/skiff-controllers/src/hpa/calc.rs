//! The replica calculator of the HorizontalPodAutoscaler (upstream `ReplicaCalculator`): from
//! the target's pods and their resource metrics, the replica count one metric asks for.
//!
//! Pods are grouped as upstream does: deleted and failed pods are ignored, pending pods (and, for
//! CPU, pods not yet ready or still warming up) count as unready, pods without a sample are
//! missing. The ratio of usage to target decides; within the tolerance nothing changes. When
//! pods are missing or unready the ratio is recomputed conservatively (missing pods assumed at
//! the target when scaling down and idle when scaling up, unready pods idle when scaling up), and
//! a recomputation that would flip the direction keeps the current count.
//!
//! What does not live here: fetching metrics ([`super::metrics`]) and limiting how fast the
//! count changes ([`super::normalize`]).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use skiff_api::quantity::Quantity;

/// Ratios within this distance of 1.0 do not change the replica count (upstream default 0.1).
pub const TOLERANCE: f64 = 0.1;
/// CPU samples of pods started less than this long ago are trusted only once the pod is ready
/// and a full window was collected since (upstream `--horizontal-pod-autoscaler-cpu-initialization-period`).
const CPU_INITIALIZATION_PERIOD: SignedDuration = SignedDuration::from_secs(300);
/// A pod that turned unready within this long of its start is considered never to have been
/// ready (upstream `--horizontal-pod-autoscaler-initial-readiness-delay`).
const INITIAL_READINESS_DELAY: SignedDuration = SignedDuration::from_secs(30);

/// One pod's sample of a resource, in milli-units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Usage in milli-units (millicores, milli-bytes).
    pub milli: i64,
    /// When the sample was taken.
    pub timestamp: Timestamp,
    /// The window it was averaged over.
    pub window: Duration,
}

/// Samples by pod name.
pub type Samples = HashMap<String, Sample>;

/// What a metric's target asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// An average utilization, in percent of the pods' requests.
    Utilization(i32),
    /// An average value per pod, in milli-units.
    AverageMilli(i64),
}

/// The replica count one metric proposes and what was observed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    /// Replicas the metric asks for.
    pub replicas: i32,
    /// The observed average utilization (for [`Target::Utilization`]).
    pub utilization: Option<i32>,
    /// The observed average value per pod, in milli-units.
    pub average_milli: i64,
}

struct Groups {
    ready: usize,
    unready: HashSet<String>,
    missing: HashSet<String>,
    ignored: HashSet<String>,
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Whether the CPU sample of a running pod must not be trusted yet.
fn cpu_unready(pod: &Pod, sample: &Sample, now: Timestamp) -> bool {
    let status = pod.status.as_ref();
    let ready = status.and_then(|s| s.conditions.as_ref()).and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let start = status.and_then(|s| s.start_time.as_ref()).map(|t| t.0);
    let (Some(ready), Some(start)) = (ready, start) else { return true };
    let transition = ready.last_transition_time.as_ref().map(|t| t.0).unwrap_or(start);
    if start + CPU_INITIALIZATION_PERIOD > now {
        let window = SignedDuration::try_from(sample.window).unwrap_or(SignedDuration::ZERO);
        ready.status == "False" || sample.timestamp < transition + window
    } else {
        ready.status == "False" && start + INITIAL_READINESS_DELAY > transition
    }
}

fn group(pods: &[&Pod], samples: &Samples, resource: &str, now: Timestamp) -> Groups {
    let mut g = Groups { ready: 0, unready: HashSet::new(), missing: HashSet::new(), ignored: HashSet::new() };
    for pod in pods {
        let n = name(pod).to_string();
        if pod.metadata.deletion_timestamp.is_some() || phase(pod) == "Failed" {
            g.ignored.insert(n);
        } else if phase(pod) == "Pending" {
            g.unready.insert(n);
        } else if let Some(sample) = samples.get(&n) {
            if resource == "cpu" && cpu_unready(pod, sample, now) {
                g.unready.insert(n);
            } else {
                g.ready += 1;
            }
        } else {
            g.missing.insert(n);
        }
    }
    g
}

/// Each pod's request of `resource` in milli-units: the sum over its containers (and sidecar
/// init containers), or only `container`'s; a container without the request is an error.
pub fn pod_requests(pods: &[&Pod], container: Option<&str>, resource: &str) -> Result<HashMap<String, i64>, String> {
    let mut out = HashMap::new();
    for pod in pods {
        let Some(spec) = pod.spec.as_ref() else { continue };
        let sidecars = spec.init_containers.iter().flatten().filter(|c| c.restart_policy.as_deref() == Some("Always"));
        let mut sum = 0i64;
        for c in spec.containers.iter().chain(sidecars).filter(|c| container.is_none_or(|n| n == c.name)) {
            let request = c.resources.as_ref().and_then(|r| r.requests.as_ref()).and_then(|r| r.get(resource));
            let Some(q) = request.and_then(|q| Quantity::parse(&q.0).ok()) else {
                return Err(format!("missing request for {resource} in container {} of Pod {}", c.name, name(pod)));
            };
            sum = sum.saturating_add(q.milli_value());
        }
        out.insert(name(pod).to_string(), sum);
    }
    Ok(out)
}

/// Usage over requests: `(ratio to target, utilization %, average milli-value)` over the pods that
/// have both a sample and a request.
fn utilization_ratio(
    samples: &HashMap<String, i64>,
    requests: &HashMap<String, i64>,
    target: i32,
) -> Result<(f64, i32, i64), String> {
    let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
    for (pod, value) in samples {
        let Some(request) = requests.get(pod) else { continue };
        used = used.saturating_add(*value);
        requested = requested.saturating_add(*request);
        n += 1;
    }
    if requested == 0 {
        return Err("no metrics returned matched known pods".into());
    }
    let utilization = i32::try_from(used.saturating_mul(100) / requested).unwrap_or(i32::MAX);
    Ok((f64::from(utilization) / f64::from(target.max(1)), utilization, used / n))
}

/// Average value against a target: `(ratio to target, average milli-value)`.
fn usage_ratio(samples: &HashMap<String, i64>, target_milli: i64) -> (f64, i64) {
    let total: i64 = samples.values().fold(0i64, |a, v| a.saturating_add(*v));
    let average = total / i64::try_from(samples.len().max(1)).unwrap_or(1);
    (average as f64 / target_milli.max(1) as f64, average)
}

fn ceil_replicas(ratio: f64, pods: usize) -> i32 {
    let v = (ratio * pods as f64).ceil();
    if v >= f64::from(i32::MAX) { i32::MAX } else { v as i32 }
}

/// The replicas `target` asks for, from the target's `pods` (all pods its selector matches)
/// and their `samples` of `resource` (optionally one `container`'s), with `current` replicas.
pub fn replicas(
    current: i32,
    target: Target,
    resource: &str,
    container: Option<&str>,
    pods: &[&Pod],
    samples: &Samples,
    now: Timestamp,
) -> Result<Proposal, String> {
    if pods.is_empty() {
        return Err("no pods returned by selector while calculating replica count".into());
    }
    let g = group(pods, samples, resource, now);
    let mut values: HashMap<String, i64> = samples
        .iter()
        .filter(|(n, _)| !g.ignored.contains(*n) && !g.unready.contains(*n))
        .filter(|(n, _)| pods.iter().any(|p| name(p) == n.as_str()))
        .map(|(n, s)| (n.clone(), s.milli))
        .collect();
    if values.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let requests = match target {
        Target::Utilization(_) => pod_requests(pods, container, resource)?,
        Target::AverageMilli(_) => HashMap::new(),
    };
    let ratio_of = |values: &HashMap<String, i64>| -> Result<(f64, Option<i32>, i64), String> {
        match target {
            Target::Utilization(t) => utilization_ratio(values, &requests, t).map(|(r, u, a)| (r, Some(u), a)),
            Target::AverageMilli(t) => {
                let (r, a) = usage_ratio(values, t);
                Ok((r, None, a))
            }
        }
    };
    let (ratio, utilization, average_milli) = ratio_of(&values)?;
    let keep = Proposal { replicas: current, utilization, average_milli };
    let scale_up_with_unready = !g.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - ratio).abs() <= TOLERANCE {
            return Ok(keep);
        }
        return Ok(Proposal { replicas: ceil_replicas(ratio, g.ready), ..keep });
    }
    for pod in &g.missing {
        let assumed = if ratio < 1.0 {
            match target {
                Target::Utilization(t) => {
                    requests.get(pod).copied().unwrap_or(0).saturating_mul(i64::from(t.max(100))) / 100
                }
                Target::AverageMilli(t) => t,
            }
        } else if ratio > 1.0 {
            0
        } else {
            continue;
        };
        values.insert(pod.clone(), assumed);
    }
    if scale_up_with_unready {
        for pod in &g.unready {
            values.insert(pod.clone(), 0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&values)?;
    let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (1.0 - new_ratio).abs() <= TOLERANCE || flipped {
        return Ok(keep);
    }
    let proposed = ceil_replicas(new_ratio, values.len());
    if (new_ratio < 1.0 && proposed > current) || (new_ratio > 1.0 && proposed < current) {
        return Ok(keep);
    }
    Ok(Proposal { replicas: proposed, ..keep })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-01-01T12:00:00Z".parse().expect("ts")
    }

    /// A running pod started an hour ago, Ready since then, requesting `cpu` millicores.
    fn pod(name: &str, phase: &str, cpu: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]},
            "status": {"phase": phase, "startTime": "2026-01-01T11:00:00Z",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T11:00:10Z"}]}
        }))
        .expect("pod")
    }

    fn samples(values: &[(&str, i64)]) -> Samples {
        values
            .iter()
            .map(|(n, v)| {
                let s = Sample {
                    milli: *v,
                    timestamp: now() - SignedDuration::from_secs(10),
                    window: Duration::from_secs(30),
                };
                (n.to_string(), s)
            })
            .collect()
    }

    fn run(current: i32, target: Target, pods: &[Pod], s: &Samples) -> Result<Proposal, String> {
        let refs: Vec<&Pod> = pods.iter().collect();
        replicas(current, target, "cpu", None, &refs, s, now())
    }

    #[test]
    fn scales_up_by_the_utilization_ratio() {
        let pods = [pod("a", "Running", "100m"), pod("b", "Running", "100m")];
        let p = run(2, Target::Utilization(50), &pods, &samples(&[("a", 100), ("b", 100)])).expect("proposal");
        assert_eq!(p, Proposal { replicas: 4, utilization: Some(100), average_milli: 100 });
    }

    #[test]
    fn tolerance_keeps_the_count() {
        let pods = [pod("a", "Running", "100m"), pod("b", "Running", "100m")];
        let p = run(2, Target::Utilization(50), &pods, &samples(&[("a", 52), ("b", 54)])).expect("proposal");
        assert_eq!(p.replicas, 2);
        assert_eq!(p.utilization, Some(53));
    }

    #[test]
    fn scales_down_and_missing_pods_count_at_the_target() {
        let pods = [pod("a", "Running", "100m"), pod("b", "Running", "100m"), pod("c", "Running", "100m")];
        // a and b idle at 10%, c has no sample: assumed at 100% of its request when scaling down.
        let p = run(3, Target::Utilization(50), &pods, &samples(&[("a", 10), ("b", 10)])).expect("proposal");
        // (10 + 10 + 100) / 300 = 40% → ratio 0.8 → ceil(0.8 * 3) = 3: no change.
        assert_eq!(p.replicas, 3);
        let p = run(3, Target::Utilization(80), &pods, &samples(&[("a", 5), ("b", 5)])).expect("proposal");
        // (5 + 5 + 100) / 300 = 36% → 0.45 → ceil(1.35) = 2.
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn unready_pods_count_as_idle_when_scaling_up() {
        let mut pending = pod("c", "Pending", "100m");
        pending.status.as_mut().expect("status").conditions = None;
        let pods = [pod("a", "Running", "100m"), pod("b", "Running", "100m"), pending];
        // a, b at 200% of request; c pending → 0. (200+200+0)/300 = 133% → ratio 2.66 → ceil(8) = 8.
        let p = run(3, Target::Utilization(50), &pods, &samples(&[("a", 200), ("b", 200)])).expect("proposal");
        assert_eq!(p.replicas, 8);
    }

    #[test]
    fn failed_and_deleted_pods_are_ignored() {
        let mut deleted = pod("c", "Running", "100m");
        deleted.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let pods = [pod("a", "Running", "100m"), pod("b", "Failed", "100m"), deleted];
        let p = run(3, Target::Utilization(50), &pods, &samples(&[("a", 100), ("b", 900), ("c", 900)])).expect("p");
        // Only a counts: 100% → ratio 2 → ceil(2 * 1) = 2.
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn a_cpu_sample_of_a_warming_pod_is_not_trusted() {
        let mut young = pod("b", "Running", "100m");
        let status = young.status.as_mut().expect("status");
        status.start_time =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now() - SignedDuration::from_secs(60)));
        status.conditions.as_mut().expect("conds")[0].status = "False".into();
        let pods = [pod("a", "Running", "100m"), young];
        // a at 100% (ratio 2); b unready → 0 when scaling up: (100 + 0) / 200 = 50% → ratio 1: keep.
        let p = run(2, Target::Utilization(50), &pods, &samples(&[("a", 100), ("b", 300)])).expect("p");
        assert_eq!(p.replicas, 2);
    }

    #[test]
    fn average_value_targets_need_no_requests() {
        let pods = [pod("a", "Running", "100m"), pod("b", "Running", "100m")];
        let p = run(2, Target::AverageMilli(100), &pods, &samples(&[("a", 300), ("b", 300)])).expect("p");
        assert_eq!(p, Proposal { replicas: 6, utilization: None, average_milli: 300 });
    }

    #[test]
    fn errors_read_as_upstream() {
        assert_eq!(
            run(1, Target::Utilization(50), &[], &samples(&[])).err().as_deref(),
            Some("no pods returned by selector while calculating replica count")
        );
        let pods = [pod("a", "Running", "100m")];
        assert_eq!(
            run(1, Target::Utilization(50), &pods, &samples(&[])).err().as_deref(),
            Some("did not receive metrics for targeted pods (pods might be unready)")
        );
        let mut no_request = pod("a", "Running", "100m");
        no_request.spec.as_mut().expect("spec").containers[0].resources = None;
        assert_eq!(
            run(1, Target::Utilization(50), &[no_request], &samples(&[("a", 10)])).err().as_deref(),
            Some("missing request for cpu in container c of Pod a")
        );
    }
}
