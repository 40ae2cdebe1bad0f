//! The Deployment controller, following upstream's `deployment` controller step for step: claim
//! ReplicaSets, keep the Progressing condition in step with `paused`, scale proportionally on a
//! scaling event, otherwise roll out (RollingUpdate or Recreate), clean up old ReplicaSets past
//! `revisionHistoryLimit`, and write status and conditions (`Progressing`, `Available`,
//! `ReplicaFailure`) with upstream's reasons and messages. `ScalingReplicaSet` events are worded
//! as upstream's.
//!
//! Rollbacks are client-side (kubectl patches the template back); the controller then finds the
//! old ReplicaSet by template and gives it the next revision. What does not live here: the pure
//! arithmetic ([`util`]) and the pods themselves (the ReplicaSet controller).

pub mod util;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::apierr;
use crate::events::Events;
use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::podutil::patch_owner_refs;
use crate::podutil::{self, Claim};
use crate::queue::{WorkQueue, run_workers};
use crate::selector;
use util::*;

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// The Deployment cannot be rolled out as it is.
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, SyncError>;

struct Ctrl {
    client: kube::Client,
    informers: Arc<SharedInformers>,
    queue: Arc<WorkQueue>,
    events: Events,
}

/// Runs the Deployment controller until dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let ctrl = Arc::new(Ctrl {
        events: Events::new(client.clone(), "deployment-controller"),
        client,
        informers: informers.clone(),
        queue: WorkQueue::new(),
    });
    let c = ctrl.clone();
    informers.deployments.on_change(move |old, new| {
        if let Some(d) = new.or(old) {
            c.queue.add(key_of(d));
        }
    });
    let c = ctrl.clone();
    informers.replicasets.on_change(move |old, new| c.rs_changed(old, new));
    let c = ctrl.clone();
    informers.pods.on_change(move |old, new| {
        if let (Some(pod), None) = (old, new) {
            c.pod_deleted(pod);
        }
    });
    async move {
        futures::join!(ctrl.informers.replicasets.ready(), ctrl.informers.pods.ready());
        let c = ctrl.clone();
        run_workers("deployment-controller", ctrl.queue.clone(), 5, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    }
}

impl Ctrl {
    fn deployment_of(&self, meta: &ObjectMeta) -> Option<String> {
        let r = podutil::controller_ref(meta)?;
        if r.kind != "Deployment" || !r.api_version.starts_with("apps/") {
            return None;
        }
        let key = format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), r.name);
        let d = get(&self.informers.deployments.store(), &key)?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(key)
    }

    fn selecting(&self, rs: &ReplicaSet) -> Vec<String> {
        let ns = rs.metadata.namespace.as_deref();
        self.informers
            .deployments
            .store()
            .state()
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == ns)
            .filter(|d| {
                d.spec.as_ref().is_some_and(|s| {
                    !selector::is_empty(&s.selector) && selector::matches(&s.selector, rs.metadata.labels.as_ref())
                })
            })
            .map(|d| key_of(d.as_ref()))
            .collect()
    }

    fn rs_changed(&self, old: Option<&ReplicaSet>, new: Option<&ReplicaSet>) {
        match (old, new) {
            (None, Some(rs)) | (Some(rs), None) => {
                if let Some(k) = self.deployment_of(&rs.metadata) {
                    self.queue.add(k);
                } else if new.is_some() && podutil::controller_ref(&rs.metadata).is_none() {
                    self.selecting(rs).into_iter().for_each(|k| self.queue.add(k));
                }
            }
            (Some(old), Some(cur)) => {
                if old.metadata.resource_version == cur.metadata.resource_version {
                    return;
                }
                let (oref, cref) = (podutil::controller_ref(&old.metadata), podutil::controller_ref(&cur.metadata));
                if oref != cref
                    && let Some(k) = self.deployment_of(&old.metadata)
                {
                    self.queue.add(k);
                }
                if let Some(k) = self.deployment_of(&cur.metadata) {
                    self.queue.add(k);
                } else if cref.is_none() && (old.metadata.labels != cur.metadata.labels || oref != cref) {
                    self.selecting(cur).into_iter().for_each(|k| self.queue.add(k));
                }
            }
            (None, None) => {}
        }
    }

    /// A deleted pod may unblock a Recreate rollout waiting for old pods to go.
    fn pod_deleted(&self, pod: &Pod) {
        let Some(r) = podutil::controller_ref(&pod.metadata) else { return };
        if r.kind != "ReplicaSet" {
            return;
        }
        let key = format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), r.name);
        let Some(rs) = get(&self.informers.replicasets.store(), &key) else { return };
        if let Some(k) = self.deployment_of(&rs.metadata)
            && let Some(d) = get(&self.informers.deployments.store(), &k)
            && !is_rolling(&d)
        {
            self.queue.add(k);
        }
    }

    fn rs_api(&self, ns: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn d_api(&self, ns: &str) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> Result<()> {
        let Some(d) = get(&self.informers.deployments.store(), key) else { return Ok(()) };
        let mut d = (*d).clone();
        let (ns, _) = split_key(key);
        let selector = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        if selector::is_empty(&selector) {
            self.events
                .warning(
                    &d,
                    "SelectingAll",
                    "This deployment is selecting all pods. A non-empty selector is required.".into(),
                )
                .await;
            if d.status.as_ref().and_then(|s| s.observed_generation) != d.metadata.generation {
                let mut status = d.status.clone().unwrap_or_default();
                status.observed_generation = d.metadata.generation;
                self.write_status(&mut d, status).await?;
            }
            return Ok(());
        }
        let mut rs_list = self.claim_replicasets(&d, ns, &selector).await?;
        if d.metadata.deletion_timestamp.is_some() {
            let (new, old) = self.all_rs_and_sync_revision(&mut d, &mut rs_list, false).await?;
            return self.sync_deployment_status(&mut d, &rs_list, new, &old).await;
        }
        self.check_paused_conditions(&mut d).await?;
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        if paused || self.is_scaling_event(&mut d, &mut rs_list).await? {
            return self.sync_scale(&mut d, &mut rs_list).await;
        }
        if is_rolling(&d) {
            self.rollout_rolling(&mut d, &mut rs_list).await
        } else {
            self.rollout_recreate(&mut d, &mut rs_list).await
        }
    }

    /// The ReplicaSets this Deployment owns, adopting and releasing by selector.
    async fn claim_replicasets(&self, d: &Deployment, ns: &str, sel: &LabelSelector) -> Result<Vec<ReplicaSet>> {
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let deleting = d.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        let mut can_adopt: Option<bool> = None;
        let all: Vec<Arc<ReplicaSet>> = self
            .informers
            .replicasets
            .store()
            .state()
            .into_iter()
            .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
            .collect();
        for rs in all {
            let selected = selector::matches(sel, rs.metadata.labels.as_ref());
            match podutil::claim(&uid, deleting, &rs.metadata, selected) {
                Claim::Keep => owned.push((*rs).clone()),
                Claim::Adopt => {
                    if can_adopt.is_none() {
                        let fresh = self.d_api(ns).get_opt(d.metadata.name.as_deref().unwrap_or("")).await?;
                        can_adopt = Some(fresh.is_some_and(|f| {
                            f.metadata.uid == d.metadata.uid && f.metadata.deletion_timestamp.is_none()
                        }));
                    }
                    if can_adopt == Some(true) {
                        let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                        refs.push(podutil::new_controller_ref(
                            "apps/v1",
                            "Deployment",
                            d.metadata.name.as_deref().unwrap_or(""),
                            &uid,
                        ));
                        if patch_owner_refs(&self.rs_api(ns), &rs.metadata, refs).await? {
                            owned.push((*rs).clone());
                        }
                    }
                }
                Claim::Release => {
                    let refs =
                        rs.metadata.owner_references.iter().flatten().filter(|r| r.uid != uid).cloned().collect();
                    patch_owner_refs(&self.rs_api(ns), &rs.metadata, refs).await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(owned)
    }

    async fn check_paused_conditions(&self, d: &mut Deployment) -> Result<()> {
        if !has_progress_deadline(d) {
            return Ok(());
        }
        let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
        let mut status = d.status.clone().unwrap_or_default();
        let paused_cond = condition(&status, "Progressing").is_some_and(|c| c.reason.as_deref() == Some(PAUSED_REASON));
        let now = Timestamp::now();
        if paused && !paused_cond {
            set_condition(
                &mut status,
                new_condition("Progressing", "Unknown", PAUSED_REASON, "Deployment is paused".into(), now),
            );
        } else if !paused && paused_cond {
            set_condition(
                &mut status,
                new_condition("Progressing", "Unknown", RESUMED_REASON, "Deployment is resumed".into(), now),
            );
        } else {
            return Ok(());
        }
        self.write_status(d, status).await
    }

    /// Splits `rs_list` into the new ReplicaSet (created when `create`) and the old ones, and
    /// brings revisions and annotations up to date.
    async fn all_rs_and_sync_revision(
        &self,
        d: &mut Deployment,
        rs_list: &mut Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<usize>, Vec<usize>)> {
        let mut order: Vec<usize> = (0..rs_list.len()).collect();
        order.sort_by(|a, b| by_creation(&rs_list[*a], &rs_list[*b]));
        let template = d.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let found = order.iter().copied().find(|i| {
            rs_list[*i].spec.as_ref().and_then(|s| s.template.as_ref()).is_some_and(|t| equal_ignore_hash(t, &template))
        });
        let old: Vec<usize> = (0..rs_list.len()).filter(|i| Some(*i) != found).collect();
        let max_old = old.iter().map(|i| revision_of(rs_list[*i].metadata.annotations.as_ref())).max().unwrap_or(0);
        let new_revision = (max_old + 1).to_string();
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        if let Some(i) = found {
            let mut copy = rs_list[i].clone();
            let annotations_changed = set_new_rs_annotations(d, &mut copy, &new_revision, true);
            let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let spec = copy.spec.get_or_insert_with(Default::default);
            let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
            if annotations_changed || min_ready_changed {
                spec.min_ready_seconds = min_ready;
                let name = copy.metadata.name.clone().unwrap_or_default();
                rs_list[i] = self.rs_api(&ns).replace(&name, &PostParams::default(), &copy).await?;
            }
            let rev =
                rs_list[i].metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).cloned().unwrap_or_default();
            self.set_deployment_revision(d, &rev).await?;
            if has_progress_deadline(d) && d.status.as_ref().and_then(|s| condition(s, "Progressing")).is_none() {
                let mut status = d.status.clone().unwrap_or_default();
                let msg = format!("Found new replica set {:?}", rs_list[i].metadata.name.as_deref().unwrap_or(""));
                set_condition(
                    &mut status,
                    new_condition("Progressing", "True", FOUND_NEW_RS_REASON, msg, Timestamp::now()),
                );
                self.write_status(d, status).await?;
            }
            return Ok((Some(i), old));
        }
        if !create {
            return Ok((None, old));
        }
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision);
        let mut new_template = template.clone();
        new_template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut sel = d.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default();
        sel.match_labels.get_or_insert_with(BTreeMap::new).insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let d_name = d.metadata.name.clone().unwrap_or_default();
        let rs_name = format!("{d_name}-{hash}");
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(rs_name.clone()),
                namespace: Some(ns.clone()),
                labels: new_template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![podutil::new_controller_ref(
                    "apps/v1",
                    "Deployment",
                    &d_name,
                    d.metadata.uid.as_deref().unwrap_or(""),
                )]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector: sel,
                template: Some(new_template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old.iter().map(|i| &rs_list[*i]).chain(std::iter::once(&new_rs)).collect();
        let replicas = new_rs_new_replicas(d, &all, &new_rs).map_err(SyncError::Invalid)?;
        if let Some(s) = new_rs.spec.as_mut() {
            s.replicas = Some(replicas);
        }
        set_new_rs_annotations(d, &mut new_rs, &new_revision, false);
        let (created, already_existed) = match self.rs_api(&ns).create(&PostParams::default(), &new_rs).await {
            Ok(rs) => (rs, false),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = self.rs_api(&ns).get(&rs_name).await?;
                let ours = podutil::controller_ref(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| equal_ignore_hash(t, &template));
                if !(ours && same) {
                    let mut status = d.status.clone().unwrap_or_default();
                    status.collision_count = Some(collision.unwrap_or(0) + 1);
                    self.write_status(d, status).await?;
                    return Err(SyncError::Invalid(format!("hash collision for ReplicaSet {rs_name:?}; retrying")));
                }
                (existing, true)
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set {rs_name:?}: {}", apierr::message(&e));
                if has_progress_deadline(d) {
                    let mut status = d.status.clone().unwrap_or_default();
                    set_condition(
                        &mut status,
                        new_condition("Progressing", "False", FAILED_RS_CREATE_REASON, msg.clone(), Timestamp::now()),
                    );
                    self.write_status(d, status).await?;
                }
                self.events.warning(&*d, FAILED_RS_CREATE_REASON, msg).await;
                return Err(e.into());
            }
        };
        if !already_existed && replicas > 0 {
            self.events
                .normal(&*d, "ScalingReplicaSet", format!("Scaled up replica set {rs_name} from 0 to {replicas}"))
                .await;
        }
        rs_list.push(created);
        let idx = rs_list.len() - 1;
        self.set_deployment_revision(d, &new_revision).await?;
        if !already_existed && has_progress_deadline(d) {
            let mut status = d.status.clone().unwrap_or_default();
            set_condition(
                &mut status,
                new_condition(
                    "Progressing",
                    "True",
                    NEW_RS_REASON,
                    format!("Created new replica set {rs_name:?}"),
                    Timestamp::now(),
                ),
            );
            self.write_status(d, status).await?;
        }
        Ok((Some(idx), old))
    }

    async fn set_deployment_revision(&self, d: &mut Deployment, revision: &str) -> Result<()> {
        if revision.is_empty()
            || d.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)).map(String::as_str) == Some(revision)
        {
            return Ok(());
        }
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
        let updated = self.d_api(&ns).patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        d.metadata = updated.metadata;
        Ok(())
    }

    async fn write_status(&self, d: &mut Deployment, status: DeploymentStatus) -> Result<()> {
        let new = deployment_status_json(&status);
        if d.status.as_ref().map(deployment_status_json) == Some(new.clone()) {
            return Ok(());
        }
        let ns = d.metadata.namespace.clone().unwrap_or_default();
        let name = d.metadata.name.clone().unwrap_or_default();
        let updated = self
            .d_api(&ns)
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": new})))
            .await?;
        d.status = updated.status;
        d.metadata.resource_version = updated.metadata.resource_version;
        Ok(())
    }

    /// Scales `rs_list[i]` to `replicas`, stamping the replica annotations; records the event.
    async fn scale(&self, d: &Deployment, rs_list: &mut [ReplicaSet], i: usize, replicas: i32) -> Result<bool> {
        let current = rs_replicas(&rs_list[i]);
        let mut copy = rs_list[i].clone();
        let annotations = set_replicas_annotations(&mut copy, d_replicas(d), d_replicas(d) + max_surge(d));
        if current == replicas && !annotations {
            return Ok(false);
        }
        copy.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        let ns = copy.metadata.namespace.clone().unwrap_or_default();
        let name = copy.metadata.name.clone().unwrap_or_default();
        rs_list[i] = self.rs_api(&ns).replace(&name, &PostParams::default(), &copy).await?;
        if current != replicas {
            let op = if current < replicas { "up" } else { "down" };
            self.events
                .normal(d, "ScalingReplicaSet", format!("Scaled {op} replica set {name} from {current} to {replicas}"))
                .await;
        }
        Ok(current != replicas)
    }

    async fn is_scaling_event(&self, d: &mut Deployment, rs_list: &mut Vec<ReplicaSet>) -> Result<bool> {
        let (new, old) = self.all_rs_and_sync_revision(d, rs_list, false).await?;
        let want = d_replicas(d).to_string();
        Ok(old
            .iter()
            .chain(new.iter())
            .map(|i| &rs_list[*i])
            .filter(|r| rs_replicas(r) > 0)
            .any(|r| r.metadata.annotations.as_ref().and_then(|a| a.get(DESIRED_REPLICAS)).is_some_and(|v| *v != want)))
    }

    /// Scaling only (paused Deployments and scaling events), then status.
    async fn sync_scale(&self, d: &mut Deployment, rs_list: &mut Vec<ReplicaSet>) -> Result<()> {
        let (new, old) = self.all_rs_and_sync_revision(d, rs_list, false).await?;
        self.scale_deployment(d, rs_list, new, &old).await?;
        if d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
            self.cleanup(d, rs_list, &old).await?;
        }
        self.sync_deployment_status(d, rs_list, new, &old).await
    }

    async fn scale_deployment(
        &self,
        d: &Deployment,
        rs_list: &mut [ReplicaSet],
        new: Option<usize>,
        old: &[usize],
    ) -> Result<()> {
        let want = d_replicas(d);
        let active: Vec<usize> = old.iter().copied().chain(new).filter(|i| rs_replicas(&rs_list[*i]) > 0).collect();
        let active_or_latest = match active.len() {
            0 => new.or_else(|| {
                let mut o = old.to_vec();
                o.sort_by(|a, b| by_creation(&rs_list[*b], &rs_list[*a]));
                o.first().copied()
            }),
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = active_or_latest {
            if rs_replicas(&rs_list[i]) != want {
                self.scale(d, rs_list, i, want).await?;
            }
            return Ok(());
        }
        if let Some(n) = new
            && is_saturated(d, &rs_list[n])
        {
            let active_old: Vec<usize> = old.iter().copied().filter(|i| rs_replicas(&rs_list[*i]) > 0).collect();
            for i in active_old {
                self.scale(d, rs_list, i, 0).await?;
            }
            return Ok(());
        }
        if !is_rolling(d) {
            return Ok(());
        }
        let mut all = active;
        let current: i32 = all.iter().map(|i| rs_replicas(&rs_list[*i])).sum();
        let allowed = if want > 0 { want + max_surge(d) } else { 0 };
        let to_add = allowed - current;
        if to_add > 0 {
            // Larger first, newer first among equals.
            all.sort_by(|a, b| {
                rs_replicas(&rs_list[*b])
                    .cmp(&rs_replicas(&rs_list[*a]))
                    .then_with(|| by_creation(&rs_list[*b], &rs_list[*a]))
            });
        } else if to_add < 0 {
            all.sort_by(|a, b| {
                rs_replicas(&rs_list[*b])
                    .cmp(&rs_replicas(&rs_list[*a]))
                    .then_with(|| by_creation(&rs_list[*a], &rs_list[*b]))
            });
        }
        let mut added = 0;
        let mut sizes: Vec<(usize, i32)> = Vec::new();
        for i in &all {
            let rs = &rs_list[*i];
            if to_add != 0 {
                let p = proportion(rs, d, to_add, added);
                sizes.push((*i, rs_replicas(rs) + p));
                added += p;
            } else {
                sizes.push((*i, rs_replicas(rs)));
            }
        }
        if let Some(first) = sizes.first_mut() {
            first.1 = (first.1 + to_add - added).max(0);
        }
        for (i, size) in sizes {
            self.scale(d, rs_list, i, size).await?;
        }
        Ok(())
    }

    async fn rollout_rolling(&self, d: &mut Deployment, rs_list: &mut Vec<ReplicaSet>) -> Result<()> {
        let (new, old) = self.all_rs_and_sync_revision(d, rs_list, true).await?;
        let Some(n) = new else { return Ok(()) };
        if self.reconcile_new(d, rs_list, n, &old).await? || self.reconcile_old(d, rs_list, n, &old).await? {
            return self.sync_rollout_status(d, rs_list, new, &old).await;
        }
        if d.status.as_ref().is_some_and(|s| deployment_complete(d, s)) {
            self.cleanup(d, rs_list, &old).await?;
        }
        self.sync_rollout_status(d, rs_list, new, &old).await
    }

    async fn reconcile_new(&self, d: &Deployment, rs_list: &mut [ReplicaSet], n: usize, old: &[usize]) -> Result<bool> {
        let want = d_replicas(d);
        let have = rs_replicas(&rs_list[n]);
        if have == want {
            return Ok(false);
        }
        if have > want {
            return self.scale(d, rs_list, n, want).await;
        }
        let all: Vec<&ReplicaSet> = old.iter().chain(std::iter::once(&n)).map(|i| &rs_list[*i]).collect();
        let count = new_rs_new_replicas(d, &all, &rs_list[n]).map_err(SyncError::Invalid)?;
        self.scale(d, rs_list, n, count).await
    }

    async fn reconcile_old(&self, d: &Deployment, rs_list: &mut [ReplicaSet], n: usize, old: &[usize]) -> Result<bool> {
        let mut active: Vec<usize> = old.iter().copied().filter(|i| rs_replicas(&rs_list[*i]) > 0).collect();
        active.sort_by(|a, b| by_creation(&rs_list[*a], &rs_list[*b]));
        let sizes: Vec<(i32, i32)> =
            active.iter().map(|i| (rs_replicas(&rs_list[*i]), rs_available(&rs_list[*i]))).collect();
        let targets = old_scale_down(d, &sizes, (rs_replicas(&rs_list[n]), rs_available(&rs_list[n])));
        let mut scaled = false;
        for (i, target) in active.into_iter().zip(targets) {
            if target != rs_replicas(&rs_list[i]) {
                self.scale(d, rs_list, i, target).await?;
                scaled = true;
            }
        }
        Ok(scaled)
    }

    async fn rollout_recreate(&self, d: &mut Deployment, rs_list: &mut Vec<ReplicaSet>) -> Result<()> {
        let (mut new, mut old) = self.all_rs_and_sync_revision(d, rs_list, false).await?;
        let mut scaled = false;
        for i in old.clone() {
            if rs_replicas(&rs_list[i]) > 0 {
                scaled |= self.scale(d, rs_list, i, 0).await?;
            }
        }
        if scaled || self.old_pods_running(rs_list, new, &old) {
            return self.sync_rollout_status(d, rs_list, new, &old).await;
        }
        if new.is_none() {
            (new, old) = self.all_rs_and_sync_revision(d, rs_list, true).await?;
        }
        if let Some(n) = new {
            self.scale(d, rs_list, n, d_replicas(d)).await?;
        }
        if d.status.as_ref().is_some_and(|s| deployment_complete(d, s)) {
            self.cleanup(d, rs_list, &old).await?;
        }
        self.sync_rollout_status(d, rs_list, new, &old).await
    }

    fn old_pods_running(&self, rs_list: &[ReplicaSet], new: Option<usize>, old: &[usize]) -> bool {
        if old.iter().map(|i| rs_actual(&rs_list[*i])).sum::<i32>() > 0 {
            return true;
        }
        let new_uid = new.and_then(|n| rs_list[n].metadata.uid.clone());
        let old_uids: Vec<String> = old.iter().filter_map(|i| rs_list[*i].metadata.uid.clone()).collect();
        self.informers.pods.store().state().iter().any(|p| {
            podutil::controller_ref(&p.metadata)
                .is_some_and(|r| old_uids.contains(&r.uid) && Some(&r.uid) != new_uid.as_ref())
                && !matches!(p.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Failed" | "Succeeded"))
        })
    }

    /// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
    async fn cleanup(&self, d: &Deployment, rs_list: &[ReplicaSet], old: &[usize]) -> Result<()> {
        let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else { return Ok(()) };
        let mut alive: Vec<&ReplicaSet> =
            old.iter().map(|i| &rs_list[*i]).filter(|r| r.metadata.deletion_timestamp.is_none()).collect();
        let diff = alive.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        alive.sort_by(|a, b| {
            revision_of(a.metadata.annotations.as_ref())
                .cmp(&revision_of(b.metadata.annotations.as_ref()))
                .then_with(|| by_creation(a, b))
        });
        for rs in alive.into_iter().take(diff as usize) {
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation).unwrap_or(0);
            if rs_actual(rs) != 0 || rs_replicas(rs) != 0 || rs.metadata.generation.unwrap_or(0) > observed {
                continue;
            }
            let ns = rs.metadata.namespace.clone().unwrap_or_default();
            match self.rs_api(&ns).delete(rs.metadata.name.as_deref().unwrap_or(""), &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn sync_deployment_status(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        new: Option<usize>,
        old: &[usize],
    ) -> Result<()> {
        let status = calculate_status(d, rs_list, new, old);
        self.write_status(d, status).await
    }

    async fn sync_rollout_status(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        new: Option<usize>,
        old: &[usize],
    ) -> Result<()> {
        let mut status = calculate_status(d, rs_list, new, old);
        let now = Timestamp::now();
        if !has_progress_deadline(d) {
            remove_condition(&mut status, "Progressing");
        }
        let current = condition(&status, "Progressing").cloned();
        let complete = status.replicas == status.updated_replicas
            && current.as_ref().is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
        let new_name = new.and_then(|n| rs_list[n].metadata.name.clone());
        if has_progress_deadline(d) && !complete {
            if deployment_complete(d, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} has successfully progressed."),
                    None => "Deployment has successfully progressed.".into(),
                };
                set_condition(&mut status, new_condition("Progressing", "True", NEW_RS_AVAILABLE_REASON, msg, now));
            } else if deployment_progressing(d, &status) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} is progressing."),
                    None => "Deployment is progressing.".into(),
                };
                let mut cond = new_condition("Progressing", "True", RS_UPDATED_REASON, msg, now);
                if let Some(cur) = &current
                    && cur.status == "True"
                {
                    cond.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, "Progressing");
                set_condition(&mut status, cond);
            } else if deployment_timed_out(d, &status, now) {
                let msg = match &new_name {
                    Some(n) => format!("ReplicaSet {n:?} has timed out progressing."),
                    None => "Deployment has timed out progressing.".into(),
                };
                set_condition(&mut status, new_condition("Progressing", "False", TIMED_OUT_REASON, msg, now));
            }
        }
        let failure = old.iter().chain(new.iter()).find_map(|i| {
            rs_list[*i].status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "ReplicaFailure").cloned()
        });
        match failure {
            Some(f) => set_condition(
                &mut status,
                k8s_openapi::api::apps::v1::DeploymentCondition {
                    type_: "ReplicaFailure".into(),
                    status: f.status,
                    reason: f.reason,
                    message: f.message,
                    last_update_time: f.last_transition_time.clone(),
                    last_transition_time: f.last_transition_time,
                },
            ),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        if d.status.as_ref().map(deployment_status_json) == Some(deployment_status_json(&status)) {
            self.requeue_stuck(d, &status, now);
            return Ok(());
        }
        self.write_status(d, status).await
    }

    /// Re-checks a progressing Deployment when its progress deadline would pass.
    fn requeue_stuck(&self, d: &Deployment, status: &DeploymentStatus, now: Timestamp) {
        let Some(c) = condition(status, "Progressing") else { return };
        if !has_progress_deadline(d) || deployment_complete(d, status) || c.reason.as_deref() == Some(TIMED_OUT_REASON)
        {
            return;
        }
        let deadline = i64::from(d.spec.as_ref().and_then(|s| s.progress_deadline_seconds).unwrap_or(600));
        let Some(updated) = c.last_update_time.as_ref() else { return };
        let after = (updated.0 + SignedDuration::from_secs(deadline)).duration_since(now);
        let secs = after.as_secs_f64();
        let key = key_of(d);
        if secs < 1.0 {
            self.queue.add(key);
        } else {
            self.queue.add_after(key, Duration::from_secs_f64(secs));
        }
    }
}

fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let t = |r: &ReplicaSet| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b)).then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let want = d_replicas(d);
    let desired =
        rs.metadata.annotations.as_ref().and_then(|a| a.get(DESIRED_REPLICAS)).and_then(|v| v.parse::<i32>().ok());
    rs_replicas(rs) == want && desired == Some(want) && rs_available(rs) == want
}

/// The Deployment's status from its ReplicaSets (upstream's `calculateStatus`).
pub fn calculate_status(d: &Deployment, rs_list: &[ReplicaSet], new: Option<usize>, old: &[usize]) -> DeploymentStatus {
    let all: Vec<&ReplicaSet> = old.iter().chain(new.iter()).map(|i| &rs_list[*i]).collect();
    let available: i32 = all.iter().map(|r| rs_available(r)).sum();
    let total: i32 = all.iter().map(|r| rs_replicas(r)).sum();
    let prev = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|r| rs_actual(r)).sum()),
        updated_replicas: Some(new.map(|n| rs_actual(&rs_list[n])).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|r| rs_ready(r)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: prev.collision_count,
        conditions: prev.conditions,
        ..Default::default()
    };
    let now = Timestamp::now();
    if available >= d_replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    status
}

/// The status as written and compared: zero counts omitted (`omitempty`), explicit nulls so a
/// merge patch clears them.
pub fn deployment_status_json(s: &DeploymentStatus) -> Value {
    let nz = |v: Option<i32>| v.filter(|x| *x != 0).map_or(Value::Null, |x| json!(x));
    json!({
        "observedGeneration": s.observed_generation.filter(|g| *g != 0).map_or(Value::Null, |g| json!(g)),
        "replicas": nz(s.replicas),
        "updatedReplicas": nz(s.updated_replicas),
        "readyReplicas": nz(s.ready_replicas),
        "availableReplicas": nz(s.available_replicas),
        "unavailableReplicas": nz(s.unavailable_replicas),
        "collisionCount": s.collision_count.map_or(Value::Null, |c| json!(c)),
        "conditions": s.conditions.as_ref().filter(|c| !c.is_empty()).map_or(Value::Null, |c| json!(c)),
    })
}
