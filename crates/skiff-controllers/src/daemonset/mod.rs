//! The DaemonSet controller (upstream's `daemon` controller in kube-controller-manager).
//!
//! A sync claims the DaemonSet's ControllerRevisions and finds (or creates) the one matching its
//! template, whose hash labels new pods; claims pods (adopting selected orphans, releasing owned
//! pods no longer selected); creates one pod on every eligible node that has none and deletes
//! excess pods, pods on nodes that no longer qualify, succeeded pods (`SucceededDaemonPod` event)
//! and failed pods (after a per-node back-off, with a `FailedDaemonPod` event); then, when nothing
//! is in flight, takes one `RollingUpdate` step (`maxUnavailable`, `maxSurge`); truncates old
//! revisions beyond `revisionHistoryLimit`; and writes `status`. Daemon pods carry the automatic
//! daemon tolerations, the `controller-revision-hash` and `pod-template-generation` labels and a
//! required node affinity `metadata.name In [node]`, so the default scheduler binds each to its
//! node.
//!
//! What does not live here: eligibility ([`placement`]), the per-node and rolling-update
//! decisions and status counts ([`plan`]), history decisions ([`revisions`]), failed-pod back-off
//! ([`backoff`]), revision naming and hashing ([`crate::history`]).

pub mod backoff;
pub mod placement;
pub mod plan;
pub mod revisions;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::apierr;
use crate::events::Events;
use crate::expectations::Expectations;
use crate::history::{self, CONTROLLER_REVISION_HASH};
use crate::informer::{SharedInformers, get, key_of};
use crate::podutil::{self, Claim};
use crate::queue::{WorkQueue, run_workers};
use crate::replicaset::{pod_from_template, slow_start_batch};
use crate::selector;
use backoff::Backoff;

/// The most pods one sync creates or deletes (upstream's DaemonSet `BurstReplicas`).
pub const BURST_REPLICAS: usize = 250;

/// The component name events carry.
const REPORTER: &str = "daemonset-controller";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Creating or deleting pods failed, or failed pods were deleted (retried with back-off).
    #[error("{0}")]
    Manage(String),
}

struct Ctrl {
    client: kube::Client,
    informers: Arc<SharedInformers>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    events: Events,
    backoff: Backoff,
}

/// Runs the DaemonSet controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let ctrl = Arc::new(Ctrl {
        events: Events::new(client.clone(), REPORTER),
        client,
        informers: informers.clone(),
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
        backoff: Backoff::default(),
    });
    let c = ctrl.clone();
    informers.daemonsets.on_change(move |old, new| {
        if let (Some(ds), None) = (old, new) {
            c.backoff.forget_prefix(&format!("{}/", ds.metadata.uid.as_deref().unwrap_or("")));
        }
        if let Some(ds) = new.or(old) {
            c.queue.add(key_of(ds));
        }
    });
    let c = ctrl.clone();
    informers.pods.on_change(move |old, new| c.pod_changed(old, new));
    let c = ctrl.clone();
    informers.nodes.on_change(move |old, new| c.node_changed(old, new));
    let c = ctrl.clone();
    informers.controllerrevisions.on_change(move |old, new| {
        if let Some(rev) = new.or(old) {
            c.revision_changed(rev);
        }
    });
    async move {
        futures::join!(
            ctrl.informers.pods.ready(),
            ctrl.informers.nodes.ready(),
            ctrl.informers.daemonsets.ready(),
            ctrl.informers.controllerrevisions.ready()
        );
        let c = ctrl.clone();
        run_workers(REPORTER, ctrl.queue.clone(), 2, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    }
}

/// The pod spec of a DaemonSet's template.
fn template_spec(ds: &DaemonSet) -> PodSpec {
    ds.spec.as_ref().and_then(|s| s.template.spec.clone()).unwrap_or_default()
}

fn min_ready(ds: &DaemonSet) -> i32 {
    ds.spec.as_ref().and_then(|s| s.min_ready_seconds).unwrap_or(0)
}

fn selects(ds: &DaemonSet, labels: Option<&BTreeMap<String, String>>) -> bool {
    ds.spec.as_ref().is_some_and(|s| !selector::is_empty(&s.selector) && selector::matches(&s.selector, labels))
}

fn is_ready_node(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Daemon pods by target node, leaving out terminal pods already being deleted and pods with no
/// target node.
fn by_node(pods: &[Pod]) -> BTreeMap<String, Vec<&Pod>> {
    let mut map: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for pod in pods {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("");
        if (phase == "Succeeded" || phase == "Failed") && pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(node) = placement::target_node(pod) {
            map.entry(node).or_default().push(pod);
        }
    }
    map
}

/// The pod template new daemon pods are made from: the automatic tolerations, and the
/// template-generation and revision-hash labels (upstream's `CreatePodTemplate`).
pub fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    placement::add_daemon_tolerations(t.spec.get_or_insert_with(PodSpec::default));
    let labels = t.metadata.get_or_insert_default().labels.get_or_insert_with(BTreeMap::new);
    if let Some(g) = plan::template_generation(ds) {
        labels.insert(plan::POD_TEMPLATE_GENERATION.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(CONTROLLER_REVISION_HASH.into(), hash.into());
    }
    t
}

impl Ctrl {
    fn list(&self, ns: &str) -> Vec<Arc<DaemonSet>> {
        self.informers
            .daemonsets
            .store()
            .state()
            .into_iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(ns))
            .collect()
    }

    /// The key of the DaemonSet an object's controller reference names, if it exists.
    fn owner_key(&self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
        let r = podutil::controller_ref(meta)?;
        if r.kind != "DaemonSet" || !r.api_version.starts_with("apps/") {
            return None;
        }
        let key = format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), r.name);
        let ds = get(&self.informers.daemonsets.store(), &key)?;
        (ds.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(key)
    }

    fn enqueue_selecting(&self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
        let ns = meta.namespace.as_deref().unwrap_or("");
        for ds in self.list(ns) {
            if selects(&ds, meta.labels.as_ref()) {
                self.queue.add(key_of(ds.as_ref()));
            }
        }
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(key) = self.owner_key(&pod.metadata) {
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
                if let Some(key) = self.owner_key(&pod.metadata) {
                    self.expectations.creation_observed(&key);
                    self.queue.add(key);
                } else if podutil::controller_ref(&pod.metadata).is_none() {
                    self.enqueue_selecting(&pod.metadata);
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
                    && let Some(k) = self.owner_key(&old.metadata)
                {
                    self.queue.add(k);
                }
                if let Some(key) = self.owner_key(&cur.metadata) {
                    if !podutil::is_ready(old)
                        && podutil::is_ready(cur)
                        && let Some(ds) = get(&self.informers.daemonsets.store(), &key)
                        && min_ready(&ds) > 0
                    {
                        let wait = u64::try_from(min_ready(&ds)).unwrap_or(0) + 1;
                        self.queue.add_after(key.clone(), Duration::from_secs(wait));
                    }
                    self.queue.add(key);
                } else if cur_ref.is_none() && (labels_changed || old_ref != cur_ref) {
                    self.enqueue_selecting(&cur.metadata);
                }
            }
            (Some(pod), None) => self.pod_deleted(pod),
            (None, None) => {}
        }
    }

    /// Requeues the DaemonSets whose decision about a node may have changed.
    fn node_changed(&self, old: Option<&Node>, new: Option<&Node>) {
        let all = self.informers.daemonsets.store().state();
        match (old, new) {
            (None, Some(node)) => {
                for ds in all.iter().filter(|ds| placement::node_should_run(&template_spec(ds), node).0) {
                    self.queue.add(key_of(ds.as_ref()));
                }
            }
            (Some(o), Some(n)) => {
                let readiness = is_ready_node(o) != is_ready_node(n);
                for ds in all {
                    let spec = template_spec(&ds);
                    if readiness || placement::node_should_run(&spec, o) != placement::node_should_run(&spec, n) {
                        self.queue.add(key_of(ds.as_ref()));
                    }
                }
            }
            (Some(_), None) => all.iter().for_each(|ds| self.queue.add(key_of(ds.as_ref()))),
            (None, None) => {}
        }
    }

    fn revision_changed(&self, rev: &ControllerRevision) {
        if let Some(key) = self.owner_key(&rev.metadata) {
            self.queue.add(key);
        } else if podutil::controller_ref(&rev.metadata).is_none() {
            self.enqueue_selecting(&rev.metadata);
        }
    }

    async fn event(&self, ds: &DaemonSet, warning: bool, reason: &str, note: String) {
        if warning {
            self.events.warning(ds, reason, note).await;
        } else {
            self.events.normal(ds, reason, note).await;
        }
    }

    /// A fresh read of the DaemonSet, as upstream's `canAdopt` check before adopting.
    async fn can_adopt(&self, ds: &DaemonSet) -> Result<bool, kube::Error> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let fresh = Api::<DaemonSet>::namespaced(self.client.clone(), ns)
            .get_opt(ds.metadata.name.as_deref().unwrap_or(""))
            .await?;
        Ok(fresh.is_some_and(|f| f.metadata.uid == ds.metadata.uid && f.metadata.deletion_timestamp.is_none()))
    }

    fn owner_ref(ds: &DaemonSet) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        podutil::new_controller_ref(
            "apps/v1",
            "DaemonSet",
            ds.metadata.name.as_deref().unwrap_or(""),
            ds.metadata.uid.as_deref().unwrap_or(""),
        )
    }

    /// Claims the candidates with metadata `metas` (adopting or releasing through `api`);
    /// returns the indexes kept.
    async fn claim<K>(
        &self,
        ds: &DaemonSet,
        api: &Api<K>,
        metas: &[&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta],
    ) -> Result<Vec<usize>, kube::Error>
    where
        K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let uid = ds.metadata.uid.clone().unwrap_or_default();
        let deleting = ds.metadata.deletion_timestamp.is_some();
        let mut kept = Vec::new();
        let mut adoptable = None;
        for (i, meta) in metas.iter().enumerate() {
            let selected = selects(ds, meta.labels.as_ref());
            match podutil::claim(&uid, deleting, meta, selected) {
                Claim::Keep => kept.push(i),
                Claim::Adopt => {
                    if adoptable.is_none() {
                        adoptable = Some(self.can_adopt(ds).await?);
                    }
                    if adoptable == Some(true) {
                        let mut refs = meta.owner_references.clone().unwrap_or_default();
                        refs.push(Self::owner_ref(ds));
                        if podutil::patch_owner_refs(api, meta, refs).await? {
                            kept.push(i);
                        }
                    }
                }
                Claim::Release => {
                    let refs: Vec<_> =
                        meta.owner_references.iter().flatten().filter(|r| r.uid != uid).cloned().collect();
                    podutil::patch_owner_refs(api, meta, refs).await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(kept)
    }

    /// The DaemonSet's pods (every phase), claimed.
    async fn daemon_pods(&self, ds: &DaemonSet) -> Result<Vec<Pod>, kube::Error> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let all: Vec<Arc<Pod>> = self
            .informers
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .collect();
        let metas: Vec<_> = all.iter().map(|p| &p.metadata).collect();
        let kept = self.claim(ds, &Api::<Pod>::namespaced(self.client.clone(), ns), &metas).await?;
        Ok(kept.into_iter().map(|i| (*all[i]).clone()).collect())
    }

    /// The pods the DaemonSet owns, from the store (no adoption).
    fn owned_pods(&self, ds: &DaemonSet) -> Vec<Pod> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let uid = ds.metadata.uid.as_deref().unwrap_or("");
        self.informers
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .filter(|p| podutil::controller_ref(&p.metadata).is_some_and(|r| r.uid == uid))
            .filter(|p| selects(ds, p.metadata.labels.as_ref()))
            .map(|p| (*p).clone())
            .collect()
    }

    async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(ds) = get(&self.informers.daemonsets.store(), key) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let ds = (*ds).clone();
        if ds.spec.as_ref().is_none_or(|s| selector::is_empty(&s.selector)) {
            let msg = "This daemon set is selecting all pods. A non-empty selector is required.";
            self.event(&ds, true, "SelectingAll", msg.into()).await;
            return Ok(());
        }
        if ds.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let nodes: Vec<Arc<Node>> = self.informers.nodes.store().state();
        let (cur, old) = self.construct_history(&ds).await?;
        let hash =
            cur.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH)).cloned().unwrap_or_default();
        if !self.expectations.satisfied(key) {
            self.update_status(key, &ds, &nodes, &hash, false).await?;
            return Ok(());
        }
        let result = self.update(key, &ds, &nodes, &hash, &old).await;
        let status = self.update_status(key, &ds, &nodes, &hash, true).await;
        result?;
        status?;
        Ok(())
    }

    /// Finds or creates the revision of the current template and returns it with the old ones
    /// (upstream's `constructHistory`).
    async fn construct_history(
        &self,
        ds: &DaemonSet,
    ) -> Result<(ControllerRevision, Vec<ControllerRevision>), SyncError> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        let all: Vec<Arc<ControllerRevision>> = self
            .informers
            .controllerrevisions
            .store()
            .state()
            .into_iter()
            .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
            .collect();
        let metas: Vec<_> = all.iter().map(|r| &r.metadata).collect();
        let kept = self.claim(ds, &api, &metas).await?;
        let mut revs = Vec::new();
        for i in kept {
            let mut rev = (*all[i]).clone();
            let labels = rev.metadata.labels.get_or_insert_with(BTreeMap::new);
            if !labels.contains_key(CONTROLLER_REVISION_HASH) {
                // A revision without the hash label gets its name as the hash, as upstream.
                let name = rev.metadata.name.clone().unwrap_or_default();
                labels.insert(CONTROLLER_REVISION_HASH.into(), name.clone());
                let patch = json!({"metadata": {"labels": {CONTROLLER_REVISION_HASH: name.clone()}}});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
            }
            revs.push(rev);
        }
        let template = ds.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let data = history::template_patch(&template);
        let (cur, old) = revisions::split(revs, &data);
        let next = history::next_revision(&old);
        let cur = match revisions::dedup(cur) {
            None => self.snapshot(ds, &api, &template, data, next).await?,
            Some((mut keep, duplicates)) => {
                for name in duplicates {
                    match api.delete(&name, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(e) if apierr::benign(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                if keep.revision < next {
                    let name = keep.metadata.name.clone().unwrap_or_default();
                    let patch = json!({"revision": next});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
                    keep.revision = next;
                }
                keep
            }
        };
        Ok((cur, old))
    }

    /// Creates the revision of the current template, persisting a bumped `collisionCount`.
    async fn snapshot(
        &self,
        ds: &DaemonSet,
        api: &Api<ControllerRevision>,
        template: &PodTemplateSpec,
        data: Value,
        revision: i64,
    ) -> Result<ControllerRevision, SyncError> {
        let before = ds.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
        let mut count = before;
        let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
        let rev = history::new_revision(&ds.metadata, Self::owner_ref(ds), labels, data, revision, Some(count));
        let created = history::create(api, rev, &mut count).await;
        if count != before {
            let ns = ds.metadata.namespace.as_deref().unwrap_or("");
            let patch = json!({"status": {"collisionCount": count}});
            Api::<DaemonSet>::namespaced(self.client.clone(), ns)
                .patch_status(ds.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Ok(created?)
    }

    /// Places and removes pods, then takes a rolling-update step and truncates the history
    /// (upstream's `manage`, `rollingUpdate` and `cleanupHistory`).
    async fn update(
        &self,
        key: &str,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        hash: &str,
        old: &[ControllerRevision],
    ) -> Result<(), SyncError> {
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let uid = ds.metadata.uid.as_deref().unwrap_or("");
        let pods = self.daemon_pods(ds).await?;
        let mut map = by_node(&pods);
        let spec = template_spec(ds);
        let surge = plan::allows_surge(ds);
        let mut create = Vec::new();
        let mut delete = Vec::new();
        let mut failed_deleted = 0;
        let mut should_run = HashSet::new();
        let now = Instant::now();
        let policy = plan::NodePolicy { hash, surge, min_ready: min_ready(ds), now: Timestamp::now() };
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let (run, cont) = placement::node_should_run(&spec, node);
            if run {
                should_run.insert(name.clone());
            }
            let needs = plan::node_needs(run, cont, map.get(&name).map(Vec::as_slice).unwrap_or(&[]), &policy);
            if needs.create {
                create.push(name.clone());
            }
            delete.extend(needs.delete);
            for pod in needs.succeeded {
                let msg = format!("Found succeeded daemon pod {ns}/{pod} on node {name}, will try to delete it");
                self.event(ds, false, "SucceededDaemonPod", msg).await;
                delete.push(pod);
            }
            for pod in needs.failed {
                let backoff_key = format!("{uid}/{name}");
                if let Some(wait) = self.backoff.remaining(&backoff_key, now) {
                    self.queue.add_after(key.to_string(), wait);
                    continue;
                }
                self.backoff.next(&backoff_key, now);
                let msg = format!("Found failed daemon pod {ns}/{pod} on node {name}, will try to kill it");
                self.event(ds, true, "FailedDaemonPod", msg).await;
                delete.push(pod);
                failed_deleted += 1;
            }
        }
        // Unscheduled pods for nodes that no longer exist.
        let names: HashSet<&str> = nodes.iter().filter_map(|n| n.metadata.name.as_deref()).collect();
        for (node, pods) in &map {
            if names.contains(node.as_str()) {
                continue;
            }
            for pod in pods {
                if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()).is_none_or(str::is_empty) {
                    delete.push(pod.metadata.name.clone().unwrap_or_default());
                }
            }
        }
        self.sync_nodes(key, ds, delete, create, hash).await?;
        if failed_deleted > 0 {
            return Err(SyncError::Manage(format!(
                "deleted {failed_deleted} failed pods of DaemonSet {ns}/{}",
                ds.metadata.name.as_deref().unwrap_or("")
            )));
        }
        let rolling = ds
            .spec
            .as_ref()
            .and_then(|s| s.update_strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
            .is_none_or(|t| t == "RollingUpdate");
        if self.expectations.satisfied(key) && rolling {
            for n in &should_run {
                map.entry(n.clone()).or_default();
            }
            let desired = i32::try_from(should_run.len()).unwrap_or(i32::MAX);
            let (max_surge, max_unavailable) = plan::max_counts(ds, desired);
            let (delete, create) = plan::rolling_update(&plan::Rollout {
                by_node: &map,
                should_run: &should_run,
                hash,
                generation: plan::template_generation(ds),
                min_ready: min_ready(ds),
                max_surge,
                max_unavailable,
                now: policy.now,
            });
            self.sync_nodes(key, ds, delete, create, hash).await?;
        }
        self.cleanup_history(ds, old, &pods).await
    }

    /// Deletes `delete` (pod names) and creates a daemon pod on each node of `create`, at most
    /// [`BURST_REPLICAS`] of each, under expectations (upstream's `syncNodes`).
    async fn sync_nodes(
        &self,
        key: &str,
        ds: &DaemonSet,
        mut delete: Vec<String>,
        mut create: Vec<String>,
        hash: &str,
    ) -> Result<(), SyncError> {
        if delete.is_empty() && create.is_empty() {
            return Ok(());
        }
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        create.truncate(BURST_REPLICAS);
        delete.truncate(BURST_REPLICAS);
        self.expectations.expect(key, create.len(), delete.iter().map(|p| format!("{ns}/{p}")));
        let api: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let template = pod_template(ds, hash);
        let ds_name = ds.metadata.name.as_deref().unwrap_or("");
        let attempted = AtomicUsize::new(0);
        let (_, create_err) = slow_start_batch(create.len(), |i| {
            let mut t = template.clone();
            let api = api.clone();
            let attempted = &attempted;
            let node = create[i].clone();
            async move {
                attempted.fetch_add(1, Ordering::SeqCst);
                if let Some(spec) = t.spec.as_mut() {
                    spec.affinity = Some(placement::pin_to_node(spec.affinity.take(), &node));
                }
                let pod = pod_from_template(&t, ds_name, ns, Self::owner_ref(ds));
                match api.create(&PostParams::default(), &pod).await {
                    Ok(p) => {
                        let name = p.metadata.name.unwrap_or_default();
                        self.event(ds, false, "SuccessfulCreate", format!("Created pod: {name}")).await;
                        Ok(())
                    }
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        if apierr::namespace_terminating(&e) {
                            return Ok(());
                        }
                        let msg = apierr::message(&e);
                        self.event(ds, true, "FailedCreate", format!("Error creating: {msg}")).await;
                        Err(msg)
                    }
                }
            }
        })
        .await;
        for _ in attempted.load(Ordering::SeqCst)..create.len() {
            self.expectations.creation_observed(key);
        }
        let results = join_all(delete.iter().map(|name| {
            let api = api.clone();
            async move {
                let pod_key = format!("{ns}/{name}");
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => {
                        self.event(ds, false, "SuccessfulDelete", format!("Deleted pod: {name}")).await;
                        Ok(())
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        self.expectations.deletion_observed(key, &pod_key);
                        Ok(())
                    }
                    Err(e) => {
                        self.expectations.deletion_observed(key, &pod_key);
                        let msg = apierr::message(&e);
                        self.event(ds, true, "FailedDelete", format!("Error deleting: {msg}")).await;
                        Err(msg)
                    }
                }
            }
        }))
        .await;
        let errors: Vec<String> = create_err.into_iter().chain(results.into_iter().filter_map(Result::err)).collect();
        if errors.is_empty() { Ok(()) } else { Err(SyncError::Manage(errors.join("; "))) }
    }

    /// Deletes old revisions beyond `revisionHistoryLimit` that no live pod uses.
    async fn cleanup_history(&self, ds: &DaemonSet, old: &[ControllerRevision], pods: &[Pod]) -> Result<(), SyncError> {
        let limit = ds.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
        let live: HashSet<String> = pods
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH)).cloned())
            .collect();
        let ns = ds.metadata.namespace.as_deref().unwrap_or("");
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        for name in revisions::to_truncate(old, &live, limit) {
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if apierr::benign(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Writes the status counts (and `observedGeneration` when `observed`) if they changed
    /// (upstream's `updateDaemonSetStatus`).
    async fn update_status(
        &self,
        key: &str,
        ds: &DaemonSet,
        nodes: &[Arc<Node>],
        hash: &str,
        observed: bool,
    ) -> Result<(), SyncError> {
        let pods = self.owned_pods(ds);
        let map = by_node(&pods);
        let spec = template_spec(ds);
        let eligibility: Vec<(String, bool)> = nodes
            .iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), placement::node_should_run(&spec, n).0))
            .collect();
        let min_ready = min_ready(ds);
        let c = plan::counts(&eligibility, &map, hash, plan::template_generation(ds), min_ready, Timestamp::now());
        let current = ds.status.clone().unwrap_or_default();
        let generation = if observed { ds.metadata.generation } else { current.observed_generation };
        let want = status_json(&c, generation);
        let have = status_json(
            &plan::Counts {
                desired: current.desired_number_scheduled,
                current: current.current_number_scheduled,
                misscheduled: current.number_misscheduled,
                ready: current.number_ready,
                updated: current.updated_number_scheduled.unwrap_or(0),
                available: current.number_available.unwrap_or(0),
                unavailable: current.number_unavailable.unwrap_or(0),
            },
            current.observed_generation,
        );
        if want != have {
            let ns = ds.metadata.namespace.as_deref().unwrap_or("");
            let name = ds.metadata.name.as_deref().unwrap_or("");
            let patch = json!({ "status": want });
            Api::<DaemonSet>::namespaced(self.client.clone(), ns)
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        if min_ready > 0 && c.ready != c.available {
            self.queue.add_after(key.to_string(), Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)));
        }
        Ok(())
    }
}

/// The status fields a sync writes: zero counts of optional fields omitted (`omitempty`),
/// explicit nulls so a merge patch clears them.
fn status_json(c: &plan::Counts, observed_generation: Option<i64>) -> Value {
    let nz = |v: i32| if v == 0 { Value::Null } else { json!(v) };
    json!({
        "currentNumberScheduled": c.current,
        "numberMisscheduled": c.misscheduled,
        "desiredNumberScheduled": c.desired,
        "numberReady": c.ready,
        "observedGeneration": observed_generation.map_or(Value::Null, |g| json!(g)),
        "updatedNumberScheduled": nz(c.updated),
        "numberAvailable": nz(c.available),
        "numberUnavailable": nz(c.unavailable),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_pod_template_carries_labels_and_tolerations() {
        let mut ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "d", "annotations": {plan::TEMPLATE_GENERATION_ANNOTATION: "2"}},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": []}}}}))
        .expect("ds");
        let t = pod_template(&ds, "abc");
        let labels = t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("d"));
        assert_eq!(labels.get(CONTROLLER_REVISION_HASH).map(String::as_str), Some("abc"));
        assert_eq!(labels.get(plan::POD_TEMPLATE_GENERATION).map(String::as_str), Some("2"));
        assert_eq!(t.spec.as_ref().and_then(|s| s.tolerations.as_ref()).map(Vec::len), Some(6));
        ds.metadata.annotations = None;
        let t = pod_template(&ds, "");
        let labels = t.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
        assert_eq!(labels.len(), 1);
    }

    #[test]
    fn status_omits_zero_optional_counts() {
        let c = plan::Counts { desired: 2, current: 1, ready: 1, unavailable: 2, ..Default::default() };
        assert_eq!(
            status_json(&c, Some(3)),
            json!({"currentNumberScheduled": 1, "numberMisscheduled": 0, "desiredNumberScheduled": 2,
                "numberReady": 1, "observedGeneration": 3, "updatedNumberScheduled": null,
                "numberAvailable": null, "numberUnavailable": 2})
        );
    }

    #[test]
    fn pods_are_grouped_by_target_node() {
        let pod = |name: &str, node: Option<&str>, pin: Option<&str>, phase: &str, deleting: bool| {
            let mut p: Pod = serde_json::from_value(json!({"metadata": {"name": name},
                "spec": {"containers": []}, "status": {"phase": phase}}))
            .expect("pod");
            if let Some(s) = p.spec.as_mut() {
                s.node_name = node.map(String::from);
                s.affinity = pin.map(|n| placement::pin_to_node(None, n));
            }
            if deleting {
                p.metadata.deletion_timestamp =
                    Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
            }
            p
        };
        let pods = vec![
            pod("a", Some("n1"), None, "Running", false),
            pod("b", None, Some("n2"), "Pending", false),
            pod("c", Some("n1"), None, "Failed", true),
            pod("d", Some("n1"), None, "Failed", false),
            pod("e", None, None, "Pending", false),
        ];
        let map = by_node(&pods);
        let names = |n: &str| map.get(n).map(|v| v.iter().filter_map(|p| p.metadata.name.clone()).collect::<Vec<_>>());
        assert_eq!(names("n1"), Some(vec!["a".to_string(), "d".to_string()]));
        assert_eq!(names("n2"), Some(vec!["b".to_string()]));
        assert_eq!(map.len(), 2);
    }
}
