//! Shared informers: one watch per resource for the whole controller manager, a reflector store
//! every controller reads, and change handlers controllers register to requeue their keys
//! (owner- and selector-based requeues are the handlers' business).
//!
//! Handlers are called with `(old, new)`: `(None, Some)` for an add, `(Some, Some)` for an
//! update, `(Some, None)` for a delete. After every (re-)list the handlers see each listed object
//! as an update (or add) and every object the list no longer has as a delete, as client-go's
//! `Replace` does. Stored objects have no `managedFields` (trimmed as upstream's informers do);
//! an update written from one leaves the server's entries as they are.
//!
//! What does not live here: the work queue ([`crate::queue`]) and what controllers do.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ReplicationController,
    Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Resource;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{ObjectRef, Store, store::Writer};
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;

/// A change handler: `(old, new)`.
pub type Handler<K> = Box<dyn Fn(Option<&K>, Option<&K>) + Send + Sync>;

/// One resource's watch, store and handlers.
pub struct Informer<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    api: Api<K>,
    config: watcher::Config,
    dyntype: K::DynamicType,
    store: Store<K>,
    writer: Mutex<Option<Writer<K>>>,
    handlers: RwLock<Vec<Handler<K>>>,
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
{
    /// An informer over `api`, not yet running.
    pub fn new(api: Api<K>, config: watcher::Config) -> Arc<Self> {
        Self::new_with(api, config, K::DynamicType::default())
    }
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    /// An informer over `api` for resources described by `dyntype`.
    pub fn new_with(api: Api<K>, config: watcher::Config, dyntype: K::DynamicType) -> Arc<Self> {
        let writer = Writer::new(dyntype.clone());
        Arc::new(Self {
            api,
            config,
            store: writer.as_reader(),
            dyntype,
            writer: Mutex::new(Some(writer)),
            handlers: RwLock::new(Vec::new()),
        })
    }

    /// The store (empty until the first list completes; see [`Informer::ready`]).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Waits until the first list has completed.
    pub async fn ready(&self) {
        let _ = self.store.wait_until_ready().await;
    }

    /// Registers a change handler.
    pub fn on_change(&self, f: impl Fn(Option<&K>, Option<&K>) + Send + Sync + 'static) {
        self.handlers.write().unwrap_or_else(|e| e.into_inner()).push(Box::new(f));
    }

    fn dispatch(&self, old: Option<&K>, new: Option<&K>) {
        for h in self.handlers.read().unwrap_or_else(|e| e.into_inner()).iter() {
            h(old, new);
        }
    }

    /// Runs the watch until the task is dropped (a second call returns at once).
    pub async fn run(self: Arc<Self>) {
        let Some(mut writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() else { return };
        // Objects are kept without `managedFields`, as kube-controller-manager's informers trim
        // them: no controller reads them, and they are often the largest part of an object.
        let mut stream = watcher::watcher(self.api.clone(), self.config.clone())
            .default_backoff()
            .map_ok(|event| event.modify(|obj| obj.meta_mut().managed_fields = None))
            .boxed();
        let mut listed: Vec<K> = Vec::new();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "informer watch failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            match &event {
                Event::Init => listed.clear(),
                Event::InitApply(obj) => listed.push(obj.clone()),
                Event::InitDone => {
                    let mut before: HashMap<ObjectRef<K>, Arc<K>> = self
                        .store
                        .state()
                        .into_iter()
                        .map(|o| (ObjectRef::from_obj_with(o.as_ref(), self.dyntype.clone()), o))
                        .collect();
                    writer.apply_watcher_event(&event);
                    for obj in std::mem::take(&mut listed) {
                        let old = before.remove(&ObjectRef::from_obj_with(&obj, self.dyntype.clone()));
                        self.dispatch(old.as_deref(), Some(&obj));
                    }
                    for old in before.into_values() {
                        self.dispatch(Some(&old), None);
                    }
                    continue;
                }
                Event::Apply(obj) => {
                    let old = self.store.get(&ObjectRef::from_obj_with(obj, self.dyntype.clone()));
                    writer.apply_watcher_event(&event);
                    self.dispatch(old.as_deref(), Some(obj));
                    continue;
                }
                Event::Delete(obj) => {
                    let old = self.store.get(&ObjectRef::from_obj_with(obj, self.dyntype.clone()));
                    writer.apply_watcher_event(&event);
                    self.dispatch(Some(old.as_deref().unwrap_or(obj)), None);
                    continue;
                }
            }
            writer.apply_watcher_event(&event);
        }
    }
}

/// The informers the controllers share; each is started once by [`SharedInformers::run`].
pub struct SharedInformers {
    /// Pods, all namespaces.
    pub pods: Arc<Informer<Pod>>,
    /// ReplicaSets.
    pub replicasets: Arc<Informer<ReplicaSet>>,
    /// ReplicationControllers.
    pub replicationcontrollers: Arc<Informer<ReplicationController>>,
    /// Deployments.
    pub deployments: Arc<Informer<Deployment>>,
    /// Services.
    pub services: Arc<Informer<Service>>,
    /// Endpoints.
    pub endpoints: Arc<Informer<Endpoints>>,
    /// EndpointSlices.
    pub endpointslices: Arc<Informer<EndpointSlice>>,
    /// Namespaces.
    pub namespaces: Arc<Informer<Namespace>>,
    /// ServiceAccounts.
    pub serviceaccounts: Arc<Informer<ServiceAccount>>,
    /// ConfigMaps.
    pub configmaps: Arc<Informer<ConfigMap>>,
    /// Jobs.
    pub jobs: Arc<Informer<Job>>,
    /// CronJobs.
    pub cronjobs: Arc<Informer<CronJob>>,
    /// DaemonSets.
    pub daemonsets: Arc<Informer<DaemonSet>>,
    /// StatefulSets.
    pub statefulsets: Arc<Informer<StatefulSet>>,
    /// ControllerRevisions (DaemonSet and StatefulSet history).
    pub controllerrevisions: Arc<Informer<ControllerRevision>>,
    /// Nodes.
    pub nodes: Arc<Informer<Node>>,
    /// HorizontalPodAutoscalers.
    pub hpas: Arc<Informer<HorizontalPodAutoscaler>>,
    /// PersistentVolumes.
    pub volumes: Arc<Informer<PersistentVolume>>,
    /// PersistentVolumeClaims.
    pub claims: Arc<Informer<PersistentVolumeClaim>>,
    /// StorageClasses.
    pub storageclasses: Arc<Informer<StorageClass>>,
}

impl SharedInformers {
    /// Informers over `client`, not yet running.
    pub fn new(client: &kube::Client) -> Arc<Self> {
        let cfg = watcher::Config::default;
        Arc::new(Self {
            pods: Informer::new(Api::all(client.clone()), cfg()),
            replicasets: Informer::new(Api::all(client.clone()), cfg()),
            replicationcontrollers: Informer::new(Api::all(client.clone()), cfg()),
            deployments: Informer::new(Api::all(client.clone()), cfg()),
            services: Informer::new(Api::all(client.clone()), cfg()),
            endpoints: Informer::new(Api::all(client.clone()), cfg()),
            endpointslices: Informer::new(Api::all(client.clone()), cfg()),
            namespaces: Informer::new(Api::all(client.clone()), cfg()),
            serviceaccounts: Informer::new(Api::all(client.clone()), cfg()),
            configmaps: Informer::new(Api::all(client.clone()), cfg()),
            jobs: Informer::new(Api::all(client.clone()), cfg()),
            cronjobs: Informer::new(Api::all(client.clone()), cfg()),
            daemonsets: Informer::new(Api::all(client.clone()), cfg()),
            statefulsets: Informer::new(Api::all(client.clone()), cfg()),
            controllerrevisions: Informer::new(Api::all(client.clone()), cfg()),
            nodes: Informer::new(Api::all(client.clone()), cfg()),
            hpas: Informer::new(Api::all(client.clone()), cfg()),
            volumes: Informer::new(Api::all(client.clone()), cfg()),
            claims: Informer::new(Api::all(client.clone()), cfg()),
            storageclasses: Informer::new(Api::all(client.clone()), cfg()),
        })
    }

    /// Runs every informer (register handlers first).
    pub async fn run(self: Arc<Self>) {
        futures::join!(
            self.pods.clone().run(),
            self.replicasets.clone().run(),
            self.replicationcontrollers.clone().run(),
            self.deployments.clone().run(),
            self.services.clone().run(),
            self.endpoints.clone().run(),
            self.endpointslices.clone().run(),
            self.namespaces.clone().run(),
            self.serviceaccounts.clone().run(),
            self.configmaps.clone().run(),
            self.jobs.clone().run(),
            self.cronjobs.clone().run(),
            self.daemonsets.clone().run(),
            self.statefulsets.clone().run(),
            self.controllerrevisions.clone().run(),
            self.nodes.clone().run(),
            self.hpas.clone().run(),
            self.volumes.clone().run(),
            self.claims.clone().run(),
            self.storageclasses.clone().run(),
        );
    }

    /// Waits until every informer has listed once.
    pub async fn ready(&self) {
        futures::join!(
            self.pods.ready(),
            self.replicasets.ready(),
            self.replicationcontrollers.ready(),
            self.deployments.ready(),
            self.services.ready(),
            self.endpoints.ready(),
            self.endpointslices.ready(),
            self.namespaces.ready(),
            self.serviceaccounts.ready(),
            self.configmaps.ready(),
            self.jobs.ready(),
            self.cronjobs.ready(),
            self.daemonsets.ready(),
            self.statefulsets.ready(),
            self.controllerrevisions.ready(),
            self.nodes.ready(),
            self.hpas.ready(),
            self.volumes.ready(),
            self.claims.ready(),
            self.storageclasses.ready(),
        );
    }
}

/// `namespace/name` (or `name`) of an object: the key controllers queue.
pub fn key_of<K: Resource>(obj: &K) -> String {
    let m = obj.meta();
    match m.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{}", m.name.as_deref().unwrap_or("")),
        _ => m.name.clone().unwrap_or_default(),
    }
}

/// Splits a key into namespace (empty for cluster-scoped) and name.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// Looks `key` up in a store of namespaced (or cluster-scoped, for an unqualified key) objects.
pub fn get<K>(store: &Store<K>, key: &str) -> Option<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    let (ns, name) = split_key(key);
    let r = ObjectRef::new(name);
    store.get(&if ns.is_empty() { r } else { r.within(ns) })
}
