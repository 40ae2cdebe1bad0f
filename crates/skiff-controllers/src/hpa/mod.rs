//! The HorizontalPodAutoscaler controller (`autoscaling/v2`), as upstream's: every 15 s per
//! autoscaler, read the target's Scale, compute what each metric asks for
//! ([`calc`], from a [`metrics::MetricsSource`]), take the largest, stabilize and rate-limit it
//! ([`normalize`]), write the Scale, and report `status` (current/desired replicas,
//! `currentMetrics`, `lastScaleTime`) with the `AbleToScale`, `ScalingActive` and
//! `ScalingLimited` conditions and the `SuccessfulRescale`/`Failed*` events upstream records.
//!
//! Resource metrics (`Resource` and `ContainerResource`, `Utilization` and `AverageValue`)
//! come from `metrics.k8s.io`; `Pods`, `Object` and `External` metrics need the custom and
//! external metrics APIs, which skiff does not serve: such metrics are reported as failing with
//! upstream's reasons.
//!
//! What does not live here: serving metrics (the resource metrics API) and the Scale
//! subresource (the API server).

pub mod calc;
pub mod metrics;
pub mod normalize;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::{
    ContainerResourceMetricStatus, HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition,
    HorizontalPodAutoscalerStatus, MetricSpec, MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;
use skiff_api::quantity::{Format, Quantity};
use skiff_api::selector::LabelSelectorExpr as SelectorExpr;

use crate::apierr;
use crate::events::Events;
use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::queue::{WorkQueue, run_workers};
use calc::Target;
use metrics::MetricsSource;
use normalize::History;

const NAME: &str = "horizontal-pod-autoscaler";
/// How often each autoscaler is reconciled (upstream `--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: Duration = Duration::from_secs(15);

/// What the controller keeps between syncs.
struct State {
    client: kube::Client,
    informers: Arc<SharedInformers>,
    metrics: Arc<dyn MetricsSource>,
    events: Events,
    history: Mutex<HashMap<String, History>>,
    /// When each autoscaler was last reconciled, and at which generation.
    last_sync: Mutex<HashMap<String, (Instant, Option<i64>)>>,
    /// Scale targets' API resources by `apiVersion/kind`.
    resources: Mutex<HashMap<String, ApiResource>>,
}

/// Runs the controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
    metrics: Arc<dyn MetricsSource>,
) -> impl std::future::Future<Output = ()> + Send {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.hpas.on_change(move |old, new| {
        // New autoscalers and spec changes are synced at once; status writes are not.
        if let Some(h) = new
            && old.is_none_or(|o| o.metadata.generation != h.metadata.generation)
        {
            q.add(key_of(h));
        }
    });
    let state = Arc::new(State {
        events: Events::new(client.clone(), NAME),
        client,
        informers,
        metrics,
        history: Mutex::default(),
        last_sync: Mutex::default(),
        resources: Mutex::default(),
    });
    async move {
        state.informers.hpas.ready().await;
        state.informers.pods.ready().await;
        let q = queue.clone();
        run_workers(NAME, queue, 2, move |key| {
            let (state, q) = (state.clone(), q.clone());
            async move { state.sync(&q, key).await }
        })
        .await;
    }
}

/// The outcome of the metric computations.
struct MetricsOutcome {
    /// Replicas asked for (`None` when no usable proposal came out).
    replicas: Option<i32>,
    /// The metric that asked for the most.
    metric: String,
    statuses: Vec<MetricStatus>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets condition `type_` (keeping its transition time when the status does not change).
fn set_condition(status: &mut HorizontalPodAutoscalerStatus, type_: &str, value: bool, reason: &str, message: String) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let value = if value { "True" } else { "False" };
    let now = Some(Time(Timestamp::now()));
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = now;
            }
            c.status = value.into();
            c.reason = Some(reason.into());
            c.message = Some(message);
        }
        None => conds.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: now,
        }),
    }
}

/// A milli-value in upstream's canonical decimal form (`NewMilliQuantity(v, DecimalSI)`: `250m`,
/// `2M`), as the status shows it.
fn milli_quantity(milli: i64) -> K8sQuantity {
    K8sQuantity(Quantity::from_millis(milli).canonical(Format::DecimalSi))
}

impl State {
    async fn sync(&self, queue: &Arc<WorkQueue>, key: String) -> Result<(), kube::Error> {
        let Some(hpa) = get(&self.informers.hpas.store(), &key) else {
            lock(&self.history).remove(&key);
            lock(&self.last_sync).remove(&key);
            return Ok(());
        };
        if hpa.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let generation = hpa.metadata.generation;
        if let Some((at, g)) = lock(&self.last_sync).get(&key)
            && *g == generation
            && at.elapsed() + Duration::from_millis(500) < SYNC_PERIOD
        {
            return Ok(());
        }
        self.reconcile(&key, &hpa).await?;
        lock(&self.last_sync).insert(key.clone(), (Instant::now(), generation));
        queue.add_after(key, SYNC_PERIOD);
        Ok(())
    }

    async fn target_api(&self, ns: &str, api_version: &str, kind: &str) -> Result<Api<DynamicObject>, String> {
        let id = format!("{api_version}/{kind}");
        let cached = lock(&self.resources).get(&id).cloned();
        let ar = match cached {
            Some(ar) => ar,
            None => {
                let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
                let gvk = GroupVersionKind::gvk(group, version, kind);
                let (ar, _) = kube::discovery::pinned_kind(&self.client, &gvk)
                    .await
                    .map_err(|e| format!("unable to determine resource for scale target reference: {e}"))?;
                lock(&self.resources).insert(id, ar.clone());
                ar
            }
        };
        Ok(Api::namespaced_with(self.client.clone(), ns, &ar))
    }

    async fn reconcile(&self, key: &str, hpa: &HorizontalPodAutoscaler) -> Result<(), kube::Error> {
        let (ns, name) = split_key(key);
        let Some(spec) = hpa.spec.as_ref() else { return Ok(()) };
        let target_ref = &spec.scale_target_ref;
        let reference = format!("{}/{ns}/{}", target_ref.kind, target_ref.name);
        let old_status = hpa.status.clone().unwrap_or_default();
        let mut status = old_status.clone();
        status.observed_generation = hpa.metadata.generation;
        let api_version = target_ref.api_version.as_deref().unwrap_or("v1");
        let scale = match self.target_api(ns, api_version, &target_ref.kind).await {
            Ok(api) => api
                .get_scale(&target_ref.name)
                .await
                .map(|s| (api, s))
                .map_err(|e| format!("failed to query scale subresource for {reference}: {}", apierr::message(&e))),
            Err(e) => Err(e),
        };
        let (target_api, scale) = match scale {
            Ok(s) => s,
            Err(e) => {
                set_condition(
                    &mut status,
                    "AbleToScale",
                    false,
                    "FailedGetScale",
                    format!("the HPA controller was unable to get the target's current scale: {e}"),
                );
                self.events.warning(hpa, "FailedGetScale", e).await;
                return self.write_status(ns, name, &old_status, status).await;
            }
        };
        set_condition(
            &mut status,
            "AbleToScale",
            true,
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale".into(),
        );
        let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
        let selector = scale.status.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        let min = spec.min_replicas.unwrap_or(1);
        let max = spec.max_replicas;
        let now = Timestamp::now();
        let mut metric_statuses = Vec::new();
        let (desired, reason) = if current == 0 && min != 0 {
            set_condition(
                &mut status,
                "ScalingActive",
                false,
                "ScalingDisabled",
                "scaling is disabled since the replica count of the target is zero".into(),
            );
            (current, String::new())
        } else if current > max {
            (max, "Current number of replicas above Spec.MaxReplicas".to_string())
        } else if current < min {
            (min, "Current number of replicas below Spec.MinReplicas".to_string())
        } else {
            let outcome = self.compute(hpa, ns, &selector, current, &mut status).await;
            metric_statuses = outcome.statuses;
            let Some(proposed) = outcome.replicas else {
                status.current_replicas = Some(current);
                status.current_metrics = Some(metric_statuses);
                return self.write_status(ns, name, &old_status, status).await;
            };
            let reason = if proposed > current {
                format!("{} above target", outcome.metric)
            } else if proposed < current {
                "All metrics below target".to_string()
            } else {
                String::new()
            };
            let (able, limited) = {
                let mut history = lock(&self.history);
                let h = history.entry(key.to_string()).or_default();
                match spec.behavior.as_ref() {
                    Some(b) => h.normalize_with_behavior(b, current, proposed, min, max, now),
                    None => h.normalize(current, proposed, min, max, now),
                }
            };
            set_condition(&mut status, "AbleToScale", true, able.reason, able.message.into());
            set_condition(
                &mut status,
                "ScalingLimited",
                limited.replicas != able.replicas,
                limited.reason,
                limited.message.into(),
            );
            (limited.replicas, reason)
        };
        let mut desired = desired;
        if desired != current {
            let patch = json!({"spec": {"replicas": desired}});
            match target_api.patch_scale(&target_ref.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {
                    set_condition(
                        &mut status,
                        "AbleToScale",
                        true,
                        "SucceededRescale",
                        format!("the HPA controller was able to update the target scale to {desired}"),
                    );
                    self.events
                        .normal(hpa, "SuccessfulRescale", format!("New size: {desired}; reason: {reason}"))
                        .await;
                    lock(&self.history).entry(key.to_string()).or_default().record_rescale(
                        spec.behavior.as_ref(),
                        current,
                        desired,
                        now,
                    );
                    status.last_scale_time = Some(Time(now));
                }
                Err(e) => {
                    let msg = apierr::message(&e);
                    self.events
                        .warning(hpa, "FailedRescale", format!("New size: {desired}; reason: {reason}; error: {msg}"))
                        .await;
                    set_condition(
                        &mut status,
                        "AbleToScale",
                        false,
                        "FailedUpdateScale",
                        format!("the HPA controller was unable to update the target scale: {msg}"),
                    );
                    self.write_status(ns, name, &old_status, status).await?;
                    return Err(e);
                }
            }
        } else {
            desired = current;
        }
        status.current_replicas = Some(current);
        status.desired_replicas = desired;
        status.current_metrics = Some(metric_statuses);
        self.write_status(ns, name, &old_status, status).await
    }

    /// Runs every metric; the largest proposal wins. All failing, or some failing while the
    /// rest would scale down, gives no proposal (and the first failure's condition).
    async fn compute(
        &self,
        hpa: &HorizontalPodAutoscaler,
        ns: &str,
        selector: &str,
        current: i32,
        status: &mut HorizontalPodAutoscalerStatus,
    ) -> MetricsOutcome {
        let specs = hpa.spec.as_ref().and_then(|s| s.metrics.clone()).unwrap_or_default();
        let mut outcome = MetricsOutcome { replicas: None, metric: String::new(), statuses: Vec::new() };
        let parsed = match selector {
            "" => Err((
                "InvalidSelector",
                "the HPA target's scale is missing a selector".to_string(),
                "selector is required".to_string(),
            )),
            s => SelectorExpr::parse(s).map_err(|e| {
                let msg = format!("couldn't convert selector into a corresponding internal selector object: {}", e.0);
                ("InvalidSelector", msg.clone(), msg)
            }),
        };
        let selector_expr = match parsed {
            Ok(s) => s,
            Err((reason, message, event)) => {
                let event_reason = if selector.is_empty() { "SelectorRequired" } else { "InvalidSelector" };
                self.events.warning(hpa, event_reason, event).await;
                set_condition(status, "ScalingActive", false, reason, message);
                return outcome;
            }
        };
        let pods: Vec<Arc<Pod>> = self
            .informers
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .filter(|p| selector_expr.matches(p.metadata.labels.as_ref().unwrap_or(&Default::default())))
            .collect();
        let pod_refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let mut first_failure: Option<(&'static str, String)> = None;
        let mut invalid = 0usize;
        let mut best: Option<i32> = None;
        for spec in &specs {
            match self.compute_one(spec, ns, selector, current, &pod_refs).await {
                Ok((replicas, metric, st)) => {
                    outcome.statuses.push(st);
                    if best.is_none_or(|b| replicas > b) {
                        best = Some(replicas);
                        outcome.metric = metric;
                    }
                }
                Err((reason, err)) => {
                    outcome.statuses.push(MetricStatus::default());
                    self.events.warning(hpa, reason, err.clone()).await;
                    invalid += 1;
                    first_failure.get_or_insert((reason, err));
                }
            }
        }
        if invalid >= specs.len() || (invalid > 0 && best.is_some_and(|b| b < current)) {
            if let Some((reason, err)) = first_failure {
                set_condition(
                    status,
                    "ScalingActive",
                    false,
                    reason,
                    format!("the HPA was unable to compute the replica count: {err}"),
                );
                let msg = format!("invalid metrics ({invalid} invalid out of {}), first error is: {err}", specs.len());
                self.events.warning(hpa, "FailedComputeMetricsReplicas", msg).await;
            }
            return outcome;
        }
        set_condition(
            status,
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {}", outcome.metric),
        );
        outcome.replicas = best;
        outcome
    }

    /// One metric's proposal, name and status, or its failure's condition reason and message.
    async fn compute_one(
        &self,
        spec: &MetricSpec,
        ns: &str,
        selector: &str,
        current: i32,
        pods: &[&Pod],
    ) -> Result<(i32, String, MetricStatus), (&'static str, String)> {
        let (resource, target, container, reason) = match spec.type_.as_str() {
            "Resource" => match spec.resource.as_ref() {
                Some(r) => (&r.name, &r.target, None, "FailedGetResourceMetric"),
                None => return Err(("FailedGetResourceMetric", "invalid resource metric source: no resource".into())),
            },
            "ContainerResource" => match spec.container_resource.as_ref() {
                Some(r) => (&r.name, &r.target, Some(r.container.as_str()), "FailedGetContainerResourceMetric"),
                None => {
                    return Err((
                        "FailedGetContainerResourceMetric",
                        "invalid container resource metric source".into(),
                    ));
                }
            },
            "Pods" => return Err(("FailedGetPodsMetric", unserved("pods metric", "custom.metrics.k8s.io"))),
            "Object" => return Err(("FailedGetObjectMetric", unserved("object metric", "custom.metrics.k8s.io"))),
            "External" => {
                return Err(("FailedGetExternalMetric", unserved("external metric", "external.metrics.k8s.io")));
            }
            other => return Err(("InvalidMetricSourceType", format!("unknown metric source type {other:?}"))),
        };
        let (goal, what) = match (target.type_.as_str(), target.average_utilization, target.average_value.as_ref()) {
            ("Utilization", Some(u), _) => (Target::Utilization(u), "utilization"),
            ("AverageValue", _, Some(v)) => match Quantity::parse(&v.0) {
                Ok(q) => (Target::AverageMilli(q.milli_value()), "usage"),
                Err(_) => return Err((reason, format!("invalid target value {:?}", v.0))),
            },
            _ => {
                let msg = "invalid resource metric source: neither a utilization target nor a value target was set";
                return Err((reason, msg.to_string()));
            }
        };
        let failed = |e: String| (reason, format!("failed to get {resource} {what}: {e}"));
        let samples = self
            .metrics
            .pod_usage(ns, selector, resource, container)
            .await
            .map_err(|e| failed(format!("unable to get metrics for resource {resource}: {e}")))?;
        let p = calc::replicas(current, goal, resource, container, pods, &samples, Timestamp::now()).map_err(failed)?;
        let value = MetricValueStatus {
            average_utilization: p.utilization,
            average_value: Some(milli_quantity(p.average_milli)),
            value: None,
        };
        let percent = if matches!(goal, Target::Utilization(_)) { " utilization (percentage of request)" } else { "" };
        let status = match container {
            None => MetricStatus {
                type_: "Resource".into(),
                resource: Some(ResourceMetricStatus { name: resource.clone(), current: value }),
                ..Default::default()
            },
            Some(c) => MetricStatus {
                type_: "ContainerResource".into(),
                container_resource: Some(ContainerResourceMetricStatus {
                    name: resource.clone(),
                    container: c.into(),
                    current: value,
                }),
                ..Default::default()
            },
        };
        let kind = if container.is_some() { "container resource" } else { "resource" };
        Ok((p.replicas, format!("{resource} {kind}{percent}"), status))
    }

    async fn write_status(
        &self,
        ns: &str,
        name: &str,
        old: &HorizontalPodAutoscalerStatus,
        new: HorizontalPodAutoscalerStatus,
    ) -> Result<(), kube::Error> {
        if old == &new {
            return Ok(());
        }
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), ns);
        match api.patch_status(name, &PatchParams::default(), &Patch::Merge(&json!({"status": new}))).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The failure of a metric kind skiff does not serve.
fn unserved(what: &str, api: &str) -> String {
    format!(
        "unable to get {what}: unable to fetch metrics from {api}: the server could not find the requested resource"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values_read_canonically() {
        assert_eq!(milli_quantity(250).0, "250m");
        assert_eq!(milli_quantity(2_000_000_000).0, "2M");
        assert_eq!(milli_quantity(104_857_600_000).0, "104857600");
    }
}
