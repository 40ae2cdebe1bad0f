//! Informers: one kube-runtime watcher per kind the scheduler reads (Nodes, non-terminal Pods,
//! Namespaces, PersistentVolumeClaims, PersistentVolumes, StorageClasses, Services,
//! ReplicaSets, StatefulSets, ReplicationControllers, PodDisruptionBudgets). Each object is
//! reduced to the scheduler's model on the async runtime's threads, then sent to the scheduling
//! thread as a [`Watch`] event; relists are bracketed by `Init`/`InitDone` so the thread can drop
//! what disappeared meanwhile.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::mpsc::Sender;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use skiff_api::selector::LabelSelectorExpr;

use crate::core::{Input, Watch};
use crate::model::{NodeSpec, PodInfo};
use crate::objects::{Claim, Class, Pdb, Volume, WorkloadSelector};

fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default())
}

/// Runs one watcher until the receiver is gone.
async fn watch<K, T>(
    api: Api<K>,
    config: watcher::Config,
    tx: Sender<Input>,
    map: fn(&K) -> T,
    wrap: fn(Watch<T>) -> Input,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(item) = stream.next().await {
        let w = match item {
            Ok(Event::Init) => Watch::Init,
            Ok(Event::InitApply(o) | Event::Apply(o)) => Watch::Apply(map(&o)),
            Ok(Event::Delete(o)) => Watch::Delete(map(&o)),
            Ok(Event::InitDone) => Watch::InitDone,
            Err(e) => {
                tracing::debug!(error = %e, kind = std::any::type_name::<K>(), "scheduler watch error; retrying");
                continue;
            }
        };
        if tx.send(wrap(w)).is_err() {
            return;
        }
    }
}

fn workload_selector(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    sel: WorkloadSelector,
) -> ((String, String, String), WorkloadSelector) {
    let (ns, name) = key(meta);
    ((kind.to_string(), ns, name), sel)
}

fn label_selector(sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> WorkloadSelector {
    WorkloadSelector::Selector(
        LabelSelectorExpr::from_label_selector(Some(sel)).unwrap_or_else(|_| LabelSelectorExpr::nothing()),
    )
}

/// Starts every informer.
pub fn start(client: kube::Client, tx: Sender<Input>) -> Vec<tokio::task::JoinHandle<()>> {
    let cfg = watcher::Config::default;
    let c = client;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(watch(
        Api::<Node>::all(c.clone()),
        cfg(),
        tx.clone(),
        |n: &Node| Box::new(NodeSpec::new(n)),
        Input::Nodes,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<Pod>::all(c.clone()),
        cfg().fields("status.phase!=Succeeded,status.phase!=Failed"),
        tx.clone(),
        |p: &Pod| Box::new(PodInfo::new(p)),
        Input::Pods,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<Namespace>::all(c.clone()),
        cfg(),
        tx.clone(),
        |n: &Namespace| (n.metadata.name.clone().unwrap_or_default(), n.metadata.labels.clone().unwrap_or_default()),
        Input::Namespaces,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<PersistentVolumeClaim>::all(c.clone()),
        cfg(),
        tx.clone(),
        |p: &PersistentVolumeClaim| (key(&p.metadata), Claim::new(p)),
        Input::Claims,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<PersistentVolume>::all(c.clone()),
        cfg(),
        tx.clone(),
        |p: &PersistentVolume| (p.metadata.name.clone().unwrap_or_default(), Volume::new(p)),
        Input::Volumes,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<StorageClass>::all(c.clone()),
        cfg(),
        tx.clone(),
        |s: &StorageClass| (s.metadata.name.clone().unwrap_or_default(), Class::new(s)),
        Input::Classes,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<Service>::all(c.clone()),
        cfg(),
        tx.clone(),
        |s: &Service| {
            let sel: Option<BTreeMap<String, String>> =
                s.spec.as_ref().and_then(|sp| sp.selector.clone()).filter(|m| !m.is_empty());
            (key(&s.metadata), sel)
        },
        Input::Services,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<ReplicaSet>::all(c.clone()),
        cfg(),
        tx.clone(),
        |r: &ReplicaSet| {
            let sel =
                r.spec.as_ref().map(|s| label_selector(&s.selector)).unwrap_or(WorkloadSelector::Map(BTreeMap::new()));
            workload_selector("ReplicaSet", &r.metadata, sel)
        },
        Input::Workloads,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<StatefulSet>::all(c.clone()),
        cfg(),
        tx.clone(),
        |r: &StatefulSet| {
            let sel =
                r.spec.as_ref().map(|s| label_selector(&s.selector)).unwrap_or(WorkloadSelector::Map(BTreeMap::new()));
            workload_selector("StatefulSet", &r.metadata, sel)
        },
        Input::Workloads,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<ReplicationController>::all(c.clone()),
        cfg(),
        tx.clone(),
        |r: &ReplicationController| {
            let sel = r.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
            workload_selector("ReplicationController", &r.metadata, WorkloadSelector::Map(sel))
        },
        Input::Workloads,
    )));
    tasks.push(tokio::spawn(watch(
        Api::<PodDisruptionBudget>::all(c),
        cfg(),
        tx,
        |p: &PodDisruptionBudget| (key(&p.metadata), Pdb::new(p)),
        Input::Pdbs,
    )));
    tasks
}
