//! The resource quota controller, as kube-controller-manager's `resourcequota` controller: each
//! ResourceQuota's `status.hard` mirrors `spec.hard` and `status.used` is recomputed from the
//! objects of its namespace (through `skiff_api::quota`'s evaluators, honouring the quota's
//! scopes), written with the quota's resourceVersion so a concurrent admission charge is never
//! overwritten blindly (a 409 is retried).
//!
//! A quota is synced when it appears, when its `spec.hard` changes or its status lacks a tracked
//! resource, when an object it may count is deleted or a pod's or Service's usage changes (a pod
//! finishing), and on a full resync every five minutes as upstream.
//!
//! What does not live here: charging quotas on writes (the API server's ResourceQuota
//! admission).

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ResourceQuota, Secret};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::watcher;
use serde_json::{Value, json};
use skiff_api::quota::list::{self, ResourceList};
use skiff_api::quota::{Evaluator, scopes_of};

use crate::informer::{Informer, SharedInformers, get, split_key};
use crate::queue::{WorkQueue, run_workers};

const NAME: &str = "resourcequota-controller";

/// Upstream's `--resource-quota-sync-period` default.
pub const RESYNC: Duration = Duration::from_secs(300);

/// A sync failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed (a 409 included: the quota changed underneath).
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// A quota could not be (de)serialized.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Whether a quota needs a sync now: new, its hard limits changed, or its status is missing
/// a hard resource (upstream enqueues only these, so admission's charges don't trigger syncs).
pub fn needs_sync(old: Option<&Value>, new: &Value) -> bool {
    let spec_hard = list::from_json(new.get("spec").and_then(|s| s.get("hard")));
    let status = new.get("status");
    let status_hard = list::from_json(status.and_then(|s| s.get("hard")));
    let used = list::from_json(status.and_then(|s| s.get("used")));
    let changed =
        old.is_none_or(|o| !list::equals(&list::from_json(o.get("spec").and_then(|s| s.get("hard"))), &spec_hard));
    changed || !list::equals(&spec_hard, &status_hard) || spec_hard.keys().any(|k| !used.contains_key(k))
}

/// The status a quota should have given the objects of its namespace per evaluator
/// (`objects(ev)`); `None` when the stored status is already right.
pub fn desired_status(quota: &Value, objects: &dyn Fn(&Evaluator) -> Vec<Value>, now: Timestamp) -> Option<Value> {
    let spec_hard = list::from_json(quota.get("spec").and_then(|s| s.get("hard")));
    let status = quota.get("status");
    let old_hard = status.and_then(|s| s.get("hard"));
    let old_used = status.and_then(|s| s.get("used"));
    let scopes = scopes_of(quota);
    let mut used: ResourceList = list::from_json(old_used);
    for ev in Evaluator::for_hard(spec_hard.keys()) {
        let tracked = ev.matching_resources(spec_hard.keys());
        let stats = ev.usage_stats(&tracked, &scopes, &objects(&ev), now);
        used.extend(stats);
    }
    let used = list::mask(&used, spec_hard.keys());
    let dirty = old_hard.is_none()
        || old_used.is_none()
        || !list::equals(&list::from_json(old_hard), &spec_hard)
        || !list::equals(&used, &list::from_json(old_used));
    dirty.then(|| json!({"hard": list::to_json(&spec_hard), "used": list::to_json(&used)}))
}

/// The API resource of `(group, plural)`: the catalogue's, else discovery's (custom resources).
async fn resolve(client: &kube::Client, group: &str, plural: &str) -> Option<ApiResource> {
    if let Some(info) = skiff_api::catalogue::all().into_iter().find(|i| i.group == group && i.plural == plural) {
        let api_version = if group.is_empty() { info.version.to_string() } else { format!("{group}/{}", info.version) };
        return Some(ApiResource {
            group: group.to_string(),
            version: info.version.to_string(),
            api_version,
            kind: info.kind.to_string(),
            plural: plural.to_string(),
        });
    }
    let g = kube::discovery::group(client, group).await.ok()?;
    g.recommended_resources().into_iter().map(|(r, _)| r).find(|r| r.plural == plural)
}

async fn list_objects(client: &kube::Client, ns: &str, ev: &Evaluator) -> Result<Vec<Value>, Error> {
    let (group, plural) = ev.resource();
    let Some(ar) = resolve(client, group, plural).await else { return Ok(Vec::new()) };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api.list(&ListParams::default()).await?;
    list.items.into_iter().map(|o| serde_json::to_value(o).map_err(Error::from)).collect()
}

async fn sync(client: kube::Client, quotas: Arc<Informer<ResourceQuota>>, key: String) -> Result<(), Error> {
    let Some(quota) = get(&quotas.store(), &key) else { return Ok(()) };
    let (ns, name) = split_key(&key);
    let mut value = serde_json::to_value(quota.as_ref())?;
    let hard = list::from_json(value.get("spec").and_then(|s| s.get("hard")));
    let mut listed: Vec<(Evaluator, Vec<Value>)> = Vec::new();
    for ev in Evaluator::for_hard(hard.keys()) {
        let objects = list_objects(&client, ns, &ev).await?;
        listed.push((ev, objects));
    }
    let objects = |ev: &Evaluator| listed.iter().find(|(e, _)| e == ev).map(|(_, o)| o.clone()).unwrap_or_default();
    let Some(status) = desired_status(&value, &objects, Timestamp::now()) else { return Ok(()) };
    value["status"] = status;
    let updated: ResourceQuota = serde_json::from_value(value)?;
    let api: Api<ResourceQuota> = Api::namespaced(client, ns);
    match api.replace_status(name, &PostParams::default(), &updated).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Queues every quota of `ns`.
fn enqueue_namespace(quotas: &Informer<ResourceQuota>, queue: &WorkQueue, ns: &str) {
    for q in quotas.store().state() {
        if q.metadata.namespace.as_deref() == Some(ns) {
            queue.add(crate::informer::key_of(q.as_ref()));
        }
    }
}

/// Registers a replenishment handler on `informer`: deletes always requeue the namespace's
/// quotas; updates do when `ev`'s usage of the object changed.
fn replenish<K>(
    informer: &Informer<K>,
    quotas: &Arc<Informer<ResourceQuota>>,
    queue: &Arc<WorkQueue>,
    ev: Option<Evaluator>,
) where
    K: kube::Resource
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Default + Send + Sync,
{
    let (quotas, queue) = (quotas.clone(), queue.clone());
    informer.on_change(move |old, new| {
        let Some(obj) = old.or(new) else { return };
        let Some(ns) = obj.meta().namespace.as_deref() else { return };
        if !quotas.store().state().iter().any(|q| q.metadata.namespace.as_deref() == Some(ns)) {
            return;
        }
        let ns = match (old, new) {
            (Some(o), None) => o.meta().namespace.clone(),
            (Some(o), Some(n)) => {
                let Some(ev) = &ev else { return };
                let now = Timestamp::now();
                let usage = |k: &K| serde_json::to_value(k).map(|v| ev.usage(&v, now)).unwrap_or_default();
                if list::equals(&usage(o), &usage(n)) {
                    return;
                }
                n.meta().namespace.clone()
            }
            _ => return,
        };
        if let Some(ns) = ns {
            enqueue_namespace(&quotas, &queue, &ns);
        }
    });
}

/// Runs the controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let queue = WorkQueue::new();
    let quotas: Arc<Informer<ResourceQuota>> = Informer::new(Api::all(client.clone()), watcher::Config::default());
    let claims: Arc<Informer<PersistentVolumeClaim>> =
        Informer::new(Api::all(client.clone()), watcher::Config::default());
    let secrets: Arc<Informer<Secret>> = Informer::new(Api::all(client.clone()), watcher::Config::default());
    let q = queue.clone();
    quotas.on_change(move |old, new| {
        let Some(new) = new else { return };
        let (Ok(n), o) = (serde_json::to_value(new), old.and_then(|o| serde_json::to_value(o).ok())) else { return };
        if needs_sync(o.as_ref(), &n) {
            q.add(crate::informer::key_of(new));
        }
    });
    replenish(&informers.pods, &quotas, &queue, Some(Evaluator::Pods));
    replenish(&informers.services, &quotas, &queue, Some(Evaluator::Services));
    replenish(&claims, &quotas, &queue, Some(Evaluator::PersistentVolumeClaims));
    replenish(&informers.configmaps, &quotas, &queue, None);
    replenish(&secrets, &quotas, &queue, None);
    replenish(&informers.replicasets, &quotas, &queue, None);
    replenish(&informers.replicationcontrollers, &quotas, &queue, None);
    replenish(&informers.deployments, &quotas, &queue, None);
    replenish(&informers.jobs, &quotas, &queue, None);
    replenish(&informers.cronjobs, &quotas, &queue, None);
    async move {
        let resync = {
            let (quotas, queue) = (quotas.clone(), queue.clone());
            async move {
                quotas.ready().await;
                loop {
                    tokio::time::sleep(RESYNC).await;
                    for q in quotas.store().state() {
                        queue.add(crate::informer::key_of(q.as_ref()));
                    }
                }
            }
        };
        let workers = {
            let quotas = quotas.clone();
            async move {
                quotas.ready().await;
                run_workers(NAME, queue, 2, move |key| sync(client.clone(), quotas.clone(), key)).await;
            }
        };
        futures::join!(quotas.clone().run(), claims.run(), secrets.run(), resync, workers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().expect("ts")
    }

    #[test]
    fn syncs_new_quotas_and_hard_changes_but_not_charges() {
        let q = json!({"spec": {"hard": {"pods": "2"}}});
        assert!(needs_sync(None, &q));
        let synced = json!({"spec": {"hard": {"pods": "2"}}, "status": {"hard": {"pods": "2"}, "used": {"pods": "0"}}});
        assert!(!needs_sync(Some(&synced), &synced));
        let charged =
            json!({"spec": {"hard": {"pods": "2"}}, "status": {"hard": {"pods": "2"}, "used": {"pods": "1"}}});
        assert!(!needs_sync(Some(&synced), &charged));
        let raised = json!({"spec": {"hard": {"pods": "3"}}, "status": {"hard": {"pods": "2"}, "used": {"pods": "1"}}});
        assert!(needs_sync(Some(&charged), &raised));
    }

    #[test]
    fn status_counts_matching_objects_per_evaluator() {
        let quota =
            json!({"spec": {"hard": {"pods": "5", "requests.cpu": "2", "count/configmaps": "3", "secrets": "1"}}});
        let pods = vec![
            json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m"}}}]}}),
            json!({"spec": {"containers": [{"name": "b"}]}, "status": {"phase": "Failed"}}),
        ];
        let objects = |ev: &Evaluator| match ev {
            Evaluator::Pods => pods.clone(),
            Evaluator::Count { plural, .. } if plural == "configmaps" => vec![json!({}), json!({})],
            _ => vec![],
        };
        let status = desired_status(&quota, &objects, now()).expect("dirty");
        assert_eq!(
            status,
            json!({"hard": {"count/configmaps": "3", "pods": "5", "requests.cpu": "2", "secrets": "1"},
                   "used": {"count/configmaps": "2", "pods": "1", "requests.cpu": "250m", "secrets": "0"}})
        );
        let mut synced = quota.clone();
        synced["status"] = status;
        assert_eq!(desired_status(&synced, &objects, now()), None);
    }
}
