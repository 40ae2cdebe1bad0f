//! The ReplicaSet and ReplicationController controllers (one implementation; a
//! ReplicationController is read as a ReplicaSet with a map selector, as upstream does).
//!
//! A sync claims pods (adopting selected orphans, releasing owned pods no longer selected),
//! creates or deletes pods towards `spec.replicas` in slow-start batches while expectations keep
//! it from acting twice on its own in-flight writes, and writes `status` (replicas,
//! fullyLabeledReplicas, readyReplicas, availableReplicas, observedGeneration, the
//! `ReplicaFailure` condition). Events are upstream's (`SuccessfulCreate`, `FailedCreate`,
//! `SuccessfulDelete`, `FailedDelete`).
//!
//! What does not live here: deciding replicas during rollouts (the Deployment controller), the
//! deletion ranking itself ([`crate::podutil`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::apierr;
use crate::events::Events;
use crate::expectations::Expectations;
use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::podutil::{self, Claim};
use crate::queue::{WorkQueue, run_workers};
use crate::selector;

/// The most pods one sync creates or deletes (upstream's `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Creating or deleting pods failed.
    #[error("{0}")]
    Manage(String),
}

/// Which kind this controller instance manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// v1 ReplicationController.
    ReplicationController,
}

impl Flavor {
    /// The owner kind.
    pub fn kind(self) -> &'static str {
        match self {
            Flavor::ReplicaSet => "ReplicaSet",
            Flavor::ReplicationController => "ReplicationController",
        }
    }

    /// The owner apiVersion.
    pub fn api_version(self) -> &'static str {
        match self {
            Flavor::ReplicaSet => "apps/v1",
            Flavor::ReplicationController => "v1",
        }
    }

    fn reporter(self) -> &'static str {
        match self {
            Flavor::ReplicaSet => "replicaset-controller",
            Flavor::ReplicationController => "replication-controller",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Flavor::ReplicaSet => "apps",
            Flavor::ReplicationController => "",
        }
    }
}

/// Reads a ReplicationController as a ReplicaSet.
pub fn rc_as_rs(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: selector::from_map(&spec.selector.unwrap_or_default()),
            template: spec.template,
        }),
        status: rc
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| serde_json::from_value(v).ok()),
    }
}

/// `spec.replicas` (default 1).
pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn min_ready(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

struct Ctrl {
    flavor: Flavor,
    client: kube::Client,
    informers: Arc<SharedInformers>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    events: Events,
}

/// Runs the controller of `flavor` until the task is dropped (register before the informers run).
pub fn controller(
    flavor: Flavor,
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let ctrl = Arc::new(Ctrl {
        flavor,
        events: Events::new(client.clone(), flavor.reporter()),
        client,
        informers: informers.clone(),
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
    });
    match flavor {
        Flavor::ReplicaSet => {
            let c = ctrl.clone();
            informers.replicasets.on_change(move |old, new| {
                if let Some(o) = new.or(old) {
                    c.queue.add(key_of(o));
                }
            });
        }
        Flavor::ReplicationController => {
            let c = ctrl.clone();
            informers.replicationcontrollers.on_change(move |old, new| {
                if let Some(o) = new.or(old) {
                    c.queue.add(key_of(o));
                }
            });
        }
    }
    let c = ctrl.clone();
    informers.pods.on_change(move |old, new| c.pod_changed(old, new));
    async move {
        ctrl.informers.pods.ready().await;
        let c = ctrl.clone();
        run_workers(flavor.reporter(), ctrl.queue.clone(), 5, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    }
}

impl Ctrl {
    fn get(&self, key: &str) -> Option<ReplicaSet> {
        match self.flavor {
            Flavor::ReplicaSet => get(&self.informers.replicasets.store(), key).map(|r| (*r).clone()),
            Flavor::ReplicationController => {
                get(&self.informers.replicationcontrollers.store(), key).map(|r| rc_as_rs(&r))
            }
        }
    }

    fn list(&self, ns: &str) -> Vec<ReplicaSet> {
        match self.flavor {
            Flavor::ReplicaSet => self
                .informers
                .replicasets
                .store()
                .state()
                .into_iter()
                .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
                .map(|r| (*r).clone())
                .collect(),
            Flavor::ReplicationController => self
                .informers
                .replicationcontrollers
                .store()
                .state()
                .into_iter()
                .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
                .map(|r| rc_as_rs(&r))
                .collect(),
        }
    }

    /// The key of the owner `pod`'s controller reference names, if it is one of ours.
    fn owner_key(&self, pod: &Pod) -> Option<String> {
        let r = podutil::controller_ref(&pod.metadata)?;
        let group = r.api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        if r.kind != self.flavor.kind() || group != self.flavor.group() {
            return None;
        }
        let key = format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), r.name);
        let owner = self.get(&key)?;
        (owner.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(key)
    }

    fn selecting(&self, pod: &Pod) -> Vec<String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        self.list(ns)
            .iter()
            .filter(|rs| rs.spec.as_ref().is_some_and(|s| selector::matches(&s.selector, pod.metadata.labels.as_ref())))
            .map(key_of)
            .collect()
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(key) = self.owner_key(pod) {
            self.expectations.deletion_observed(&key, &key_of(pod));
            self.queue.add(key);
        }
    }

    fn pod_changed(self: &Arc<Self>, old: Option<&Pod>, new: Option<&Pod>) {
        match (old, new) {
            (None, Some(pod)) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(pod);
                }
                if let Some(key) = self.owner_key(pod) {
                    self.expectations.creation_observed(&key);
                    self.queue.add(key);
                } else if podutil::controller_ref(&pod.metadata).is_none() {
                    self.selecting(pod).into_iter().for_each(|k| self.queue.add(k));
                }
            }
            (Some(old), Some(cur)) => {
                if old.metadata.resource_version == cur.metadata.resource_version {
                    return;
                }
                let labels_changed = old.metadata.labels != cur.metadata.labels;
                if cur.metadata.deletion_timestamp.is_some() {
                    self.pod_deleted(cur);
                    if labels_changed {
                        self.pod_deleted(old);
                    }
                    return;
                }
                let old_ref = podutil::controller_ref(&old.metadata);
                let cur_ref = podutil::controller_ref(&cur.metadata);
                if old_ref != cur_ref
                    && old_ref.is_some()
                    && let Some(k) = self.owner_key(old)
                {
                    self.queue.add(k);
                }
                if let Some(key) = self.owner_key(cur) {
                    if !podutil::is_ready(old)
                        && podutil::is_ready(cur)
                        && let Some(rs) = self.get(&key)
                        && min_ready(&rs) > 0
                    {
                        self.queue.add_after(key.clone(), Duration::from_secs(min_ready(&rs) as u64));
                    }
                    self.queue.add(key);
                } else if cur_ref.is_none() && (labels_changed || old_ref != cur_ref) {
                    self.selecting(cur).into_iter().for_each(|k| self.queue.add(k));
                }
            }
            (Some(pod), None) => self.pod_deleted(pod),
            (None, None) => {}
        }
    }

    fn pods_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn event(&self, rs: &ReplicaSet, type_: EventType, reason: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some(self.flavor.api_version().into()),
            kind: Some(self.flavor.kind().into()),
            name: rs.metadata.name.clone(),
            namespace: rs.metadata.namespace.clone(),
            uid: rs.metadata.uid.clone(),
            resource_version: rs.metadata.resource_version.clone(),
            ..Default::default()
        };
        self.events.publish(reference, type_, reason, note).await;
    }

    /// A fresh read of the owner, as upstream's `canAdopt` check before adopting.
    async fn can_adopt(&self, rs: &ReplicaSet) -> Result<bool, kube::Error> {
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let name = rs.metadata.name.as_deref().unwrap_or("");
        let fresh = match self.flavor {
            Flavor::ReplicaSet => Api::<ReplicaSet>::namespaced(self.client.clone(), ns).get_opt(name).await?,
            Flavor::ReplicationController => Api::<ReplicationController>::namespaced(self.client.clone(), ns)
                .get_opt(name)
                .await?
                .map(|r| rc_as_rs(&r)),
        };
        Ok(fresh.is_some_and(|f| f.metadata.uid == rs.metadata.uid && f.metadata.deletion_timestamp.is_none()))
    }

    async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(rs) = self.get(key) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let (ns, _) = split_key(key);
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let spec = rs.spec.clone().unwrap_or_default();
        let deleting = rs.metadata.deletion_timestamp.is_some();
        let need_sync = self.expectations.satisfied(key) && !deleting;
        let all: Vec<Arc<Pod>> = self
            .informers
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && podutil::is_active(p))
            .collect();
        // Shared with the informer's store: a sync never copies a pod.
        let mut owned: Vec<Arc<Pod>> = Vec::new();
        let mut adoptable: Option<bool> = None;
        for pod in &all {
            let selected = selector::matches(&spec.selector, pod.metadata.labels.as_ref());
            match podutil::claim(&uid, deleting, &pod.metadata, selected) {
                Claim::Keep => owned.push(pod.clone()),
                Claim::Adopt => {
                    if adoptable.is_none() {
                        adoptable = Some(self.can_adopt(&rs).await?);
                    }
                    if adoptable == Some(true) && self.adopt(&rs, pod).await? {
                        owned.push(pod.clone());
                    }
                }
                Claim::Release => self.release(&uid, pod).await?,
                Claim::Ignore => {}
            }
        }
        let mut manage_err = None;
        if need_sync {
            manage_err = self.manage(key, &rs, &owned).await.err();
        }
        let new_status =
            calculate_status(&rs, &owned, manage_err.as_ref().map(|e| (e.0, e.1.as_str())), Timestamp::now());
        self.write_status(&rs, &new_status).await?;
        let want = replicas(&rs);
        if manage_err.is_none()
            && min_ready(&rs) > 0
            && new_status.ready_replicas.unwrap_or(0) == want
            && new_status.available_replicas.unwrap_or(0) != want
        {
            self.queue.add_after(key.to_string(), Duration::from_secs(min_ready(&rs) as u64));
        }
        match manage_err {
            Some((_, msg)) => Err(SyncError::Manage(msg)),
            None => Ok(()),
        }
    }

    async fn adopt(&self, rs: &ReplicaSet, pod: &Pod) -> Result<bool, kube::Error> {
        let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
        refs.push(podutil::new_controller_ref(
            self.flavor.api_version(),
            self.flavor.kind(),
            rs.metadata.name.as_deref().unwrap_or(""),
            rs.metadata.uid.as_deref().unwrap_or(""),
        ));
        podutil::patch_owner_refs(&self.pods_api(pod.metadata.namespace.as_deref().unwrap_or("")), &pod.metadata, refs)
            .await
    }

    async fn release(&self, owner_uid: &str, pod: &Pod) -> Result<(), kube::Error> {
        let refs: Vec<_> =
            pod.metadata.owner_references.iter().flatten().filter(|r| r.uid != owner_uid).cloned().collect();
        podutil::patch_owner_refs(&self.pods_api(pod.metadata.namespace.as_deref().unwrap_or("")), &pod.metadata, refs)
            .await?;
        Ok(())
    }

    /// Creates or deletes pods towards `spec.replicas`; the error carries the condition reason.
    async fn manage(&self, key: &str, rs: &ReplicaSet, owned: &[Arc<Pod>]) -> Result<(), (&'static str, String)> {
        let want = usize::try_from(replicas(rs)).unwrap_or(0);
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        if owned.len() < want {
            let n = (want - owned.len()).min(BURST_REPLICAS);
            self.expectations.expect_creations(key, n);
            let template = rs.spec.as_ref().and_then(|s| s.template.clone()).unwrap_or_default();
            let pod = pod_from_template(
                &template,
                rs.metadata.name.as_deref().unwrap_or(""),
                ns,
                podutil::new_controller_ref(
                    self.flavor.api_version(),
                    self.flavor.kind(),
                    rs.metadata.name.as_deref().unwrap_or(""),
                    rs.metadata.uid.as_deref().unwrap_or(""),
                ),
            );
            let api = self.pods_api(ns);
            let (created, err) = slow_start_batch(n, |_| async {
                match api.create(&PostParams::default(), &pod).await {
                    Ok(p) => {
                        let name = p.metadata.name.unwrap_or_default();
                        self.event(rs, EventType::Normal, "SuccessfulCreate", format!("Created pod: {name}")).await;
                        Ok(())
                    }
                    Err(e) => {
                        let msg = apierr::message(&e);
                        if apierr::namespace_terminating(&e) {
                            return Ok(());
                        }
                        self.event(rs, EventType::Warning, "FailedCreate", format!("Error creating: {msg}")).await;
                        Err(msg)
                    }
                }
            })
            .await;
            for _ in created..n {
                self.expectations.creation_observed(key);
            }
            return err.map_or(Ok(()), |e| Err(("FailedCreate", e)));
        }
        if owned.len() > want {
            let n = (owned.len() - want).min(BURST_REPLICAS);
            let pods: Vec<&Pod> = owned.iter().map(|p| &**p).collect();
            let related = self.related_pods(rs, owned);
            let related: Vec<&Pod> = related.iter().map(|p| &**p).collect();
            let victims = podutil::pods_to_delete(&pods, &related, n, Timestamp::now());
            self.expectations.expect_deletions(key, victims.iter().map(|p| key_of(*p)));
            let api = self.pods_api(ns);
            let results = join_all(victims.iter().map(|p| {
                let api = api.clone();
                async move {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {
                            self.event(rs, EventType::Normal, "SuccessfulDelete", format!("Deleted pod: {name}")).await;
                            Ok(())
                        }
                        Err(kube::Error::Api(e)) if e.code == 404 => {
                            self.expectations.deletion_observed(key, &key_of(*p));
                            Ok(())
                        }
                        Err(e) => {
                            self.expectations.deletion_observed(key, &key_of(*p));
                            let msg = apierr::message(&e);
                            self.event(rs, EventType::Warning, "FailedDelete", format!("Error deleting: {msg}")).await;
                            Err(msg)
                        }
                    }
                }
            }))
            .await;
            if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
                return Err(("FailedDelete", e));
            }
        }
        Ok(())
    }

    /// Active pods of this owner and of its siblings (ReplicaSets of the same Deployment).
    fn related_pods(&self, rs: &ReplicaSet, owned: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
        let Some(parent) = podutil::controller_ref(&rs.metadata) else { return owned.to_vec() };
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let siblings: Vec<String> = self
            .list(ns)
            .iter()
            .filter(|s| podutil::controller_ref(&s.metadata).is_some_and(|r| r.uid == parent.uid))
            .filter_map(|s| s.metadata.uid.clone())
            .collect();
        self.informers
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && podutil::is_active(p))
            .filter(|p| podutil::controller_ref(&p.metadata).is_some_and(|r| siblings.contains(&r.uid)))
            .collect()
    }

    async fn write_status(&self, rs: &ReplicaSet, status: &ReplicaSetStatus) -> Result<(), kube::Error> {
        let current = rs.status.clone().unwrap_or_default();
        if status_json(&current) == status_json(status) {
            return Ok(());
        }
        let ns = rs.metadata.namespace.as_deref().unwrap_or("");
        let name = rs.metadata.name.as_deref().unwrap_or("");
        let patch = json!({"status": status_json(status)});
        let pp = PatchParams::default();
        match self.flavor {
            Flavor::ReplicaSet => {
                Api::<ReplicaSet>::namespaced(self.client.clone(), ns)
                    .patch_status(name, &pp, &Patch::Merge(&patch))
                    .await?;
            }
            Flavor::ReplicationController => {
                Api::<ReplicationController>::namespaced(self.client.clone(), ns)
                    .patch_status(name, &pp, &Patch::Merge(&patch))
                    .await?;
            }
        }
        Ok(())
    }
}

/// A pod for `template`, named `<owner>-<random>`, owned by `owner_ref`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_name: &str,
    namespace: &str,
    owner_ref: k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    // The API server cuts a long generateName to leave room for its random suffix.
    let prefix = format!("{owner_name}-");
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(prefix),
            namespace: Some(namespace.into()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner_ref]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Runs `n` calls in batches of 1, 2, 4, … stopping after the first batch with a failure
/// (upstream's `slowStartBatch`); returns how many succeeded and the first error.
pub async fn slow_start_batch<F, Fut>(n: usize, call: F) -> (usize, Option<String>)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let mut done = 0;
    let mut batch = 1;
    let mut ok = 0;
    while done < n {
        let size = batch.min(n - done);
        let results = join_all((done..done + size).map(&call)).await;
        done += size;
        let mut first_err = None;
        for r in results {
            match r {
                Ok(()) => ok += 1,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_some() {
            return (ok, first_err);
        }
        batch *= 2;
    }
    (ok, None)
}

/// The status a sync writes (upstream's `calculateStatus`).
pub fn calculate_status(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_err: Option<(&str, &str)>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let template_labels: BTreeMap<String, String> = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = min_ready(rs);
    let count = |f: &dyn Fn(&Pod) -> bool| i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX);
    let fully =
        count(&|p| template_labels.iter().all(|(k, v)| p.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v)));
    let ready = count(&|p| podutil::is_ready(p));
    let available = count(&|p| podutil::is_available(p, min_ready, now));
    let mut conditions = rs.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
    let has_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match manage_err {
        Some((reason, msg)) if !has_failure => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(msg.into()),
            last_transition_time: Some(Time(now)),
        }),
        None if has_failure => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    ReplicaSetStatus {
        replicas: i32::try_from(pods.len()).unwrap_or(i32::MAX),
        fully_labeled_replicas: Some(fully),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        ..Default::default()
    }
}

/// The status as written: zero counts omitted (`omitempty`), explicit nulls so a merge patch
/// clears them.
fn status_json(s: &ReplicaSetStatus) -> Value {
    let nz = |v: Option<i32>| v.filter(|x| *x != 0).map_or(Value::Null, |x| json!(x));
    json!({
        "replicas": s.replicas,
        "fullyLabeledReplicas": nz(s.fully_labeled_replicas),
        "readyReplicas": nz(s.ready_replicas),
        "availableReplicas": nz(s.available_replicas),
        "observedGeneration": s.observed_generation.map_or(Value::Null, |g| json!(g)),
        "conditions": s.conditions.as_ref().filter(|c| !c.is_empty()).map_or(Value::Null, |c| json!(c)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        let labels: BTreeMap<String, String> = [("app".to_string(), "x".to_string())].into();
        ReplicaSet {
            metadata: ObjectMeta { name: Some("rs".into()), generation: Some(3), ..Default::default() },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready),
                selector: LabelSelector { match_labels: Some(labels.clone()), match_expressions: None },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                    spec: None,
                }),
            }),
            status: None,
        }
    }

    fn pod(labels: &[(&str, &str)], ready_ago: Option<i64>, now: Timestamp) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: ready_ago.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(now - k8s_openapi::jiff::SignedDuration::from_secs(s))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn status_counts_and_failure_condition() {
        let now = Timestamp::now();
        let pods = vec![
            pod(&[("app", "x")], Some(100), now),
            pod(&[("app", "x")], Some(1), now),
            pod(&[("other", "y")], None, now),
        ]
        .into_iter()
        .map(Arc::new)
        .collect::<Vec<_>>();
        let s = calculate_status(&rs(3, 10), &pods, None, now);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
        assert!(s.conditions.is_none());
        let s = calculate_status(&rs(3, 0), &pods, Some(("FailedCreate", "quota")), now);
        let c = &s.conditions.as_ref().map(|c| c[0].clone()).unwrap_or_default();
        assert_eq!(
            (c.type_.as_str(), c.reason.as_deref(), c.message.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"), Some("quota"))
        );
        let mut failed = rs(3, 0);
        failed.status = Some(s);
        assert!(calculate_status(&failed, &pods, None, now).conditions.is_none(), "cleared once creation works");
    }

    #[tokio::test]
    async fn slow_start_stops_after_a_failing_batch() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let (ok, err) = slow_start_batch(10, |i| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move { if i >= 4 { Err(format!("fail {i}")) } else { Ok(()) } }
        })
        .await;
        // Batches 1, 2, 4: the third batch (items 3..7) fails at item 4.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 7);
        assert_eq!(ok, 4);
        assert_eq!(err.as_deref(), Some("fail 4"));
        assert_eq!(slow_start_batch(5, |_| async { Ok(()) }).await, (5, None));
    }

    #[test]
    fn rc_reads_as_rs() {
        let rc = ReplicationController {
            spec: Some(k8s_openapi::api::core::v1::ReplicationControllerSpec {
                replicas: Some(2),
                selector: Some([("a".to_string(), "b".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rs = rc_as_rs(&rc);
        assert_eq!(replicas(&rs), 2);
        assert_eq!(rs.spec.map(|s| s.selector.match_labels), Some(Some([("a".to_string(), "b".to_string())].into())));
    }
}
