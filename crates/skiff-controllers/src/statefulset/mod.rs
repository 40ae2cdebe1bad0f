//! The StatefulSet controller: stable, ordered pods `<set>-<ordinal>` with per-pod claims.
//!
//! A sync claims the set's pods (adopting selected orphans named `<set>-<ordinal>`, releasing
//! owned pods no longer selected) and its ControllerRevisions, finds or creates the update
//! revision (bumping the number of an equal older one on rollback, counting hash collisions),
//! keeps the claims' owner references as the retention policy says, executes the plan of
//! [`plan`] (creating claims before their pod), writes `status` and truncates the history to
//! `revisionHistoryLimit`. Events are upstream's (`SuccessfulCreate` "create Pod web-0 in
//! StatefulSet web successful", "create Claim … Pod … in StatefulSet … success",
//! `SuccessfulDelete`, `FailedCreate`, …), reported as `statefulset-controller`.
//!
//! What does not live here: naming and pod construction ([`identity`]), the decisions
//! ([`plan`]), the claims' owner references ([`retention`]), and revision helpers
//! ([`crate::history`]).

pub mod identity;
pub mod plan;
pub mod retention;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::{Value, json};

use crate::apierr;
use crate::events::Events;
use crate::expectations::Expectations;
use crate::history;
use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::podutil::{self, Claim};
use crate::queue::{WorkQueue, run_workers};
use crate::selector;
use plan::{Action, Rev};

const KIND: &str = "StatefulSet";
const API_VERSION: &str = "apps/v1";
const COMPONENT: &str = "statefulset-controller";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Creating or deleting a pod or claim failed.
    #[error("{0}")]
    Manage(String),
}

struct Ctrl {
    client: kube::Client,
    informers: Arc<SharedInformers>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    events: Events,
}

/// Runs the StatefulSet controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let ctrl = Arc::new(Ctrl {
        events: Events::new(client.clone(), COMPONENT),
        client,
        informers: informers.clone(),
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
    });
    let c = ctrl.clone();
    informers.statefulsets.on_change(move |old, new| {
        if let Some(o) = new.or(old) {
            c.queue.add(key_of(o));
        }
    });
    let c = ctrl.clone();
    informers.pods.on_change(move |old, new| c.pod_changed(old, new));
    let c = ctrl.clone();
    informers.controllerrevisions.on_change(move |old, new| {
        if let Some(r) = new.or(old)
            && let Some(key) = c.owner_key(&r.metadata)
        {
            c.queue.add(key);
        }
    });
    async move {
        futures::join!(
            ctrl.informers.pods.ready(),
            ctrl.informers.statefulsets.ready(),
            ctrl.informers.controllerrevisions.ready(),
            ctrl.informers.claims.ready()
        );
        let c = ctrl.clone();
        run_workers(COMPONENT, ctrl.queue.clone(), 5, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    }
}

fn ns_of(set: &StatefulSet) -> &str {
    set.metadata.namespace.as_deref().unwrap_or("")
}

fn name_of(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

fn owner_ref(set: &StatefulSet) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    podutil::new_controller_ref(API_VERSION, KIND, name_of(set), set.metadata.uid.as_deref().unwrap_or(""))
}

fn selector_of(set: &StatefulSet) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
    set.spec.as_ref().map(|s| s.selector.clone()).unwrap_or_default()
}

/// The pod template a revision recorded (its data replaces `spec.template`).
pub fn revision_template(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = history::data_of(rev).get("spec")?.get("template")?.clone();
    if let Value::Object(m) = &mut t {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

impl Ctrl {
    fn set(&self, key: &str) -> Option<StatefulSet> {
        get(&self.informers.statefulsets.store(), key).map(|s| (*s).clone())
    }

    /// The key of the StatefulSet the controller reference in `meta` names, if it exists.
    fn owner_key(&self, meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
        let r = podutil::controller_ref(meta)?;
        if r.kind != KIND || !r.api_version.starts_with("apps/") {
            return None;
        }
        let key = format!("{}/{}", meta.namespace.as_deref().unwrap_or(""), r.name);
        let set = self.set(&key)?;
        (set.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(key)
    }

    fn selecting(&self, pod: &Pod) -> Vec<String> {
        let ns = pod.metadata.namespace.as_deref();
        self.informers
            .statefulsets
            .store()
            .state()
            .iter()
            .filter(|s| s.metadata.namespace.as_deref() == ns)
            .filter(|s| selector::matches(&selector_of(s), pod.metadata.labels.as_ref()))
            .map(|s| key_of(s.as_ref()))
            .collect()
    }

    fn pod_deleted(&self, pod: &Pod) {
        if let Some(key) = self.owner_key(&pod.metadata) {
            self.expectations.deletion_observed(&key, &key_of(pod));
            self.queue.add(key);
        }
    }

    fn pod_changed(&self, old: Option<&Pod>, new: Option<&Pod>) {
        match (old, new) {
            (None, Some(pod)) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(pod);
                }
                if let Some(key) = self.owner_key(&pod.metadata) {
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
                if cur.metadata.deletion_timestamp.is_some() {
                    return self.pod_deleted(cur);
                }
                if podutil::controller_ref(&old.metadata) != podutil::controller_ref(&cur.metadata)
                    && let Some(k) = self.owner_key(&old.metadata)
                {
                    self.queue.add(k);
                }
                if let Some(key) = self.owner_key(&cur.metadata) {
                    if !podutil::is_ready(old)
                        && podutil::is_ready(cur)
                        && let Some(set) = self.set(&key)
                        && plan::min_ready(&set) > 0
                    {
                        let secs = u64::try_from(plan::min_ready(&set)).unwrap_or(0) + 1;
                        self.queue.add_after(key.clone(), Duration::from_secs(secs));
                    }
                    self.queue.add(key);
                } else if podutil::controller_ref(&cur.metadata).is_none() {
                    self.selecting(cur).into_iter().for_each(|k| self.queue.add(k));
                }
            }
            (Some(pod), None) => self.pod_deleted(pod),
            (None, None) => {}
        }
    }

    async fn event(&self, set: &StatefulSet, type_: EventType, reason: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some(API_VERSION.into()),
            kind: Some(KIND.into()),
            name: set.metadata.name.clone(),
            namespace: set.metadata.namespace.clone(),
            uid: set.metadata.uid.clone(),
            resource_version: set.metadata.resource_version.clone(),
            ..Default::default()
        };
        self.events.publish(reference, type_, reason, note).await;
    }

    /// Records upstream's pod event for `verb` (create, delete, update).
    async fn pod_event(&self, set: &StatefulSet, verb: &str, pod: &str, err: Option<&str>) {
        let title = title(verb);
        match err {
            None => {
                let note = format!("{verb} Pod {pod} in StatefulSet {} successful", name_of(set));
                self.event(set, EventType::Normal, &format!("Successful{title}"), note).await;
            }
            Some(e) => {
                let note = format!("{verb} Pod {pod} in StatefulSet {} failed error: {e}", name_of(set));
                self.event(set, EventType::Warning, &format!("Failed{title}"), note).await;
            }
        }
    }

    /// A fresh read of the set, as upstream's `canAdopt` check before adopting.
    async fn can_adopt(&self, set: &StatefulSet) -> Result<bool, kube::Error> {
        let fresh = Api::<StatefulSet>::namespaced(self.client.clone(), ns_of(set)).get_opt(name_of(set)).await?;
        Ok(fresh.is_some_and(|f| f.metadata.uid == set.metadata.uid && f.metadata.deletion_timestamp.is_none()))
    }

    /// Claims `candidates` for `set` (adopting and releasing as [`podutil::claim`] says); the
    /// objects the set owns afterwards.
    async fn claim_objects<K>(
        &self,
        set: &StatefulSet,
        candidates: Vec<Arc<K>>,
        member: impl Fn(&K) -> bool,
        adoptable: &mut Option<bool>,
    ) -> Result<Vec<K>, kube::Error>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let uid = set.metadata.uid.clone().unwrap_or_default();
        let deleting = set.metadata.deletion_timestamp.is_some();
        let selector = selector_of(set);
        let api: Api<K> = Api::namespaced(self.client.clone(), ns_of(set));
        let mut owned = Vec::new();
        for obj in candidates {
            let meta = obj.meta();
            let selected = selector::matches(&selector, meta.labels.as_ref()) && member(&obj);
            match podutil::claim(&uid, deleting, meta, selected) {
                Claim::Keep => owned.push((*obj).clone()),
                Claim::Adopt => {
                    if adoptable.is_none() {
                        *adoptable = Some(self.can_adopt(set).await?);
                    }
                    if *adoptable == Some(true) {
                        let mut refs = meta.owner_references.clone().unwrap_or_default();
                        refs.push(owner_ref(set));
                        if podutil::patch_owner_refs(&api, meta, refs).await? {
                            owned.push((*obj).clone());
                        }
                    }
                }
                Claim::Release => {
                    let refs = meta.owner_references.iter().flatten().filter(|r| r.uid != uid).cloned().collect();
                    podutil::patch_owner_refs(&api, meta, refs).await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(owned)
    }

    async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(set) = self.set(key) else {
            self.expectations.delete(key);
            return Ok(());
        };
        let (ns, name) = split_key(key);
        let in_ns = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| m.namespace.as_deref() == Some(ns);
        let mut adoptable = None;
        let pods = self.informers.pods.store().state().into_iter().filter(|p| in_ns(&p.metadata)).collect();
        let pods = self
            .claim_objects(
                &set,
                pods,
                |p: &Pod| identity::ordinal_of(name, p.metadata.name.as_deref().unwrap_or("")).is_some(),
                &mut adoptable,
            )
            .await?;
        let revs =
            self.informers.controllerrevisions.store().state().into_iter().filter(|r| in_ns(&r.metadata)).collect();
        let mut revs = self.claim_objects(&set, revs, |_| true, &mut adoptable).await?;
        history::sort(&mut revs);

        let (current, update, collision_count) = self.revisions(&set, &revs).await?;
        let current_name = current.metadata.name.clone().unwrap_or_default();
        let update_name = update.metadata.name.clone().unwrap_or_default();

        let mut manage_err = None;
        if self.expectations.satisfied(key) && set.metadata.deletion_timestamp.is_none() {
            let claims: HashSet<String> = self
                .informers
                .claims
                .store()
                .state()
                .iter()
                .filter(|c| in_ns(&c.metadata))
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            self.apply_retention(&set, &pods).await?;
            let refs: Vec<&Pod> = pods.iter().collect();
            let input =
                plan::Inputs { current: &current_name, update: &update_name, claims, now: Some(Timestamp::now()) };
            let actions = plan::plan(&set, &refs, &input);
            let current_template = revision_template(&current);
            manage_err = self.execute(key, &set, &actions, &current_name, current_template, &update_name).await.err();
        }

        let refs: Vec<&Pod> = pods.iter().collect();
        let status = plan::status(&set, &refs, &current_name, &update_name, collision_count, Timestamp::now());
        self.write_status(&set, &status).await?;

        let mut live: HashSet<String> = [current_name.clone(), update_name.clone()].into();
        live.extend(pods.iter().map(|p| identity::pod_revision(p).to_string()));
        let limit = set.spec.as_ref().and_then(|s| s.revision_history_limit).unwrap_or(10);
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns);
        for old in history::to_truncate(&revs, &live, limit) {
            match api.delete(&old, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(e) if apierr::benign(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }

        let min_ready = plan::min_ready(&set);
        if min_ready > 0 && status.ready_replicas != status.available_replicas {
            self.queue.add_after(key.to_string(), Duration::from_secs(u64::try_from(min_ready).unwrap_or(0) + 1));
        }
        match manage_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The current and update revisions and the collision count (upstream
    /// `getStatefulSetRevisions`).
    async fn revisions(
        &self,
        set: &StatefulSet,
        revs: &[ControllerRevision],
    ) -> Result<(ControllerRevision, ControllerRevision, i32), kube::Error> {
        let mut collision_count = set.status.as_ref().and_then(|s| s.collision_count).unwrap_or(0);
        let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let candidate = history::new_revision(
            &set.metadata,
            owner_ref(set),
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            history::template_patch(&template),
            history::next_revision(revs),
            Some(collision_count),
        );
        let api: Api<ControllerRevision> = Api::namespaced(self.client.clone(), ns_of(set));
        let equal = history::find_equal(revs, &candidate);
        let update = match (equal.last(), revs.last()) {
            (Some(eq), Some(latest)) if eq.metadata.name == latest.metadata.name => (*eq).clone(),
            (Some(eq), _) => {
                let patch = json!({"revision": candidate.revision});
                let name = eq.metadata.name.as_deref().unwrap_or("");
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?
            }
            (None, _) => history::create(&api, candidate, &mut collision_count).await?,
        };
        let wanted = set.status.as_ref().and_then(|s| s.current_revision.as_deref());
        let current = revs
            .iter()
            .find(|r| wanted.is_some() && r.metadata.name.as_deref() == wanted)
            .cloned()
            .unwrap_or(update.clone());
        Ok((current, update, collision_count))
    }

    /// Sets the owner references of the claims of every live pod as the retention policy says.
    async fn apply_retention(&self, set: &StatefulSet, pods: &[Pod]) -> Result<(), kube::Error> {
        let store = self.informers.claims.store();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns_of(set));
        for pod in pods.iter().filter(|p| plan::is_created(p) && !plan::is_terminating(p)) {
            let Some(ord) = identity::ordinal_of(name_of(set), pod.metadata.name.as_deref().unwrap_or("")) else {
                continue;
            };
            for claim in identity::claims_for(set, ord).values() {
                let key = format!("{}/{}", ns_of(set), claim.metadata.name.as_deref().unwrap_or(""));
                let Some(have) = get(&store, &key) else { continue };
                if have.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let current = have.metadata.owner_references.clone().unwrap_or_default();
                if let Some(refs) = retention::desired_owner_refs(set, pod, &current) {
                    podutil::patch_owner_refs(&api, &have.metadata, refs).await?;
                }
            }
        }
        Ok(())
    }

    async fn execute(
        &self,
        key: &str,
        set: &StatefulSet,
        actions: &[Action],
        current: &str,
        current_template: Option<PodTemplateSpec>,
        update: &str,
    ) -> Result<(), SyncError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns_of(set));
        let update_template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        for action in actions {
            match action {
                Action::Create { ordinal, rev } => {
                    let (template, revision) = match rev {
                        Rev::Current => (current_template.clone().unwrap_or_else(|| update_template.clone()), current),
                        Rev::Update => (update_template.clone(), update),
                    };
                    let pod = identity::new_pod(set, &template, *ordinal, revision, owner_ref(set));
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    if let Err(e) = self.create_claims(set, *ordinal, &pod_name).await {
                        self.pod_event(set, "create", &pod_name, Some(&e)).await;
                        return Err(SyncError::Manage(e));
                    }
                    self.expectations.expect_creations(key, 1);
                    match pods.create(&PostParams::default(), &pod).await {
                        Ok(_) => self.pod_event(set, "create", &pod_name, None).await,
                        Err(e) if apierr::benign(&e) => self.expectations.creation_observed(key),
                        Err(e) => {
                            self.expectations.creation_observed(key);
                            let msg = apierr::message(&e);
                            self.pod_event(set, "create", &pod_name, Some(&msg)).await;
                            return Err(SyncError::Manage(msg));
                        }
                    }
                }
                Action::Delete { name, why } => {
                    tracing::debug!(pod = %name, ?why, "StatefulSet pod deleted");
                    let pod_key = format!("{}/{name}", ns_of(set));
                    self.expectations.expect_deletions(key, [pod_key.clone()]);
                    match pods.delete(name, &DeleteParams::default()).await {
                        Ok(_) => self.pod_event(set, "delete", name, None).await,
                        Err(e) if apierr::benign(&e) => self.expectations.deletion_observed(key, &pod_key),
                        Err(e) => {
                            self.expectations.deletion_observed(key, &pod_key);
                            let msg = apierr::message(&e);
                            self.pod_event(set, "delete", name, Some(&msg)).await;
                            return Err(SyncError::Manage(msg));
                        }
                    }
                }
                Action::CreateClaims { ordinal } => {
                    let pod_name = identity::pod_name(name_of(set), *ordinal);
                    if let Err(e) = self.create_claims(set, *ordinal, &pod_name).await {
                        self.pod_event(set, "update", &pod_name, Some(&e)).await;
                        return Err(SyncError::Manage(e));
                    }
                }
                Action::FixIdentity { name } => {
                    let Some(pod) = get(&self.informers.pods.store(), &format!("{}/{name}", ns_of(set))) else {
                        continue;
                    };
                    let labels: BTreeMap<String, String> = identity::missing_identity_labels(set, &pod);
                    let patch =
                        json!({"metadata": {"labels": labels, "resourceVersion": pod.metadata.resource_version}});
                    match pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                        Ok(_) => self.pod_event(set, "update", name, None).await,
                        Err(e) if apierr::benign(&e) => {}
                        Err(e) => {
                            let msg = apierr::message(&e);
                            self.pod_event(set, "update", name, Some(&msg)).await;
                            return Err(SyncError::Manage(msg));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates the claims of the pod with `ordinal` that do not exist (upstream
    /// `createPersistentVolumeClaims`); the error is upstream's wording.
    async fn create_claims(&self, set: &StatefulSet, ordinal: i32, pod_name: &str) -> Result<(), String> {
        let store = self.informers.claims.store();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns_of(set));
        let probe = Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(pod_name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut errors = Vec::new();
        for mut claim in identity::claims_for(set, ordinal).into_values() {
            let claim_name = claim.metadata.name.clone().unwrap_or_default();
            if let Some(have) = get(&store, &format!("{}/{claim_name}", ns_of(set))) {
                if have.metadata.deletion_timestamp.is_some() {
                    errors.push(format!("pvc {claim_name} is being deleted"));
                }
                continue;
            }
            claim.metadata.owner_references = retention::desired_owner_refs(set, &probe, &[]);
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    let note =
                        format!("create Claim {claim_name} Pod {pod_name} in StatefulSet {} success", name_of(set));
                    self.event(set, EventType::Normal, "SuccessfulCreate", note).await;
                }
                Err(e) if apierr::benign(&e) && !apierr::namespace_terminating(&e) => {}
                Err(e) => {
                    let msg = apierr::message(&e);
                    let note = format!(
                        "create Claim {claim_name} for Pod {pod_name} in StatefulSet {} failed error: {msg}",
                        name_of(set)
                    );
                    self.event(set, EventType::Warning, "FailedCreate", note).await;
                    errors.push(msg);
                }
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors.join(", ")) }
    }

    async fn write_status(&self, set: &StatefulSet, status: &StatefulSetStatus) -> Result<(), kube::Error> {
        let current = set.status.clone().unwrap_or_default();
        if status_json(&current) == status_json(status) {
            return Ok(());
        }
        let patch = json!({"status": status_json(status)});
        Api::<StatefulSet>::namespaced(self.client.clone(), ns_of(set))
            .patch_status(name_of(set), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }
}

fn title(verb: &str) -> String {
    let mut c = verb.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The status as written: `omitempty` counts omitted when zero (explicit nulls so a merge patch
/// clears them); `replicas`, `availableReplicas` and `collisionCount` always present.
pub fn status_json(s: &StatefulSetStatus) -> Value {
    let nz = |v: Option<i32>| v.filter(|x| *x != 0).map_or(Value::Null, |x| json!(x));
    let str_or_null = |v: &Option<String>| v.as_ref().filter(|s| !s.is_empty()).map_or(Value::Null, |x| json!(x));
    json!({
        "replicas": s.replicas,
        "readyReplicas": nz(s.ready_replicas),
        "currentReplicas": nz(s.current_replicas),
        "updatedReplicas": nz(s.updated_replicas),
        "availableReplicas": s.available_replicas.unwrap_or(0),
        "currentRevision": str_or_null(&s.current_revision),
        "updateRevision": str_or_null(&s.update_revision),
        "observedGeneration": s.observed_generation.map_or(Value::Null, |g| json!(g)),
        "collisionCount": s.collision_count.map_or(Value::Null, |c| json!(c)),
        "conditions": s.conditions.as_ref().filter(|c| !c.is_empty()).map_or(Value::Null, |c| json!(c)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_status_json() {
        assert_eq!(title("create"), "Create");
        assert_eq!(title(""), "");
        let s = StatefulSetStatus {
            replicas: 2,
            ready_replicas: Some(0),
            available_replicas: Some(0),
            collision_count: Some(0),
            current_revision: Some("web-1".into()),
            ..Default::default()
        };
        let j = status_json(&s);
        assert_eq!(j["replicas"], 2);
        assert_eq!(j["readyReplicas"], Value::Null);
        assert_eq!(j["availableReplicas"], 0);
        assert_eq!(j["collisionCount"], 0);
        assert_eq!(j["currentRevision"], "web-1");
    }

    #[test]
    fn revision_templates_round_trip() {
        let set = identity::tests::set(1, None);
        let template = set.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
        let rev =
            history::new_revision(&set.metadata, owner_ref(&set), None, history::template_patch(&template), 1, None);
        assert_eq!(revision_template(&rev), Some(template));
    }
}
