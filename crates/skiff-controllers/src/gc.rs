//! The garbage collector, as upstream's `garbagecollector`: a graph of every object's owner
//! references across all listable, watchable, deletable resources (built-ins and custom
//! resources, found through discovery and rediscovered when CRDs change), fed by the shared
//! informers where they exist and by dynamic watches for every other resource.
//!
//! - **Background**: an owner gone (or replaced: UID mismatch) leaves its dependents dangling; a
//!   dependent whose owners are all dangling is deleted, one with a live owner left only loses
//!   the dangling references.
//! - **Foreground**: an owner with the `foregroundDeletion` finalizer has its dependents deleted
//!   (those with dependents of their own in the foreground too), and loses the finalizer once no
//!   dependent with `blockOwnerDeletion: true` remains.
//! - **Orphan**: an owner with the `orphan` finalizer has its references removed from every
//!   dependent, then loses the finalizer.
//!
//! Every decision re-reads the objects involved from the API (never only the graph), as
//! upstream does. What does not live here: setting those finalizers (the API server's delete).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy};
use kube::discovery::{ApiResource, Discovery, Scope, verbs};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::informer::{Informer, SharedInformers};
use crate::queue::{WorkQueue, run_workers};

/// The finalizer that asks for dependents to be deleted first.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that asks for dependents to be orphaned.
pub const ORPHAN: &str = "orphan";

/// Errors of one attempt.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// An owner's kind is not served.
    #[error("unable to find the resource for {0}")]
    UnknownKind(String),
}

/// One change seen by a monitor: `(old, new)` metadata of an object of `api_version`/`kind`.
#[derive(Debug, Clone)]
pub struct GraphEvent {
    /// The object's apiVersion.
    pub api_version: String,
    /// The object's kind.
    pub kind: String,
    /// Before (None for an add).
    pub old: Option<ObjectMeta>,
    /// After (None for a delete).
    pub new: Option<ObjectMeta>,
}

/// An object in the graph (possibly only known as someone's owner: `virtual`).
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// apiVersion.
    pub api_version: String,
    /// kind.
    pub kind: String,
    /// Namespace ("" for cluster-scoped, or unknown for a virtual owner of one).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Owner references.
    pub owners: Vec<OwnerReference>,
    /// UIDs of the objects that name this one as an owner.
    pub dependents: HashSet<String>,
    /// Finalizers.
    pub finalizers: Vec<String>,
    /// Whether it has a deletionTimestamp.
    pub deleting: bool,
    /// Only known through a dependent's owner reference.
    pub is_virtual: bool,
}

impl Node {
    fn deleting_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }
}

/// What the graph asks the workers to look at after a change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// UIDs to attempt to delete (or to finish deleting in the foreground).
    pub attempt_delete: Vec<String>,
    /// UIDs whose dependents to orphan.
    pub attempt_orphan: Vec<String>,
}

/// The owner graph.
#[derive(Debug, Default)]
pub struct Graph {
    /// Nodes by UID.
    pub nodes: HashMap<String, Node>,
}

impl Graph {
    fn link(&mut self, dependent: &str, namespace: &str, owner: &OwnerReference, work: &mut Work) {
        let node = self.nodes.entry(owner.uid.clone()).or_insert_with(|| {
            work.attempt_delete.push(owner.uid.clone());
            Node {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                namespace: namespace.into(),
                name: owner.name.clone(),
                is_virtual: true,
                ..Default::default()
            }
        });
        node.dependents.insert(dependent.to_string());
    }

    fn unlink(&mut self, dependent: &str, owner: &str, work: &mut Work) {
        if let Some(o) = self.nodes.get_mut(owner) {
            o.dependents.remove(dependent);
            if o.deleting_dependents() {
                work.attempt_delete.push(owner.to_string());
            }
            if o.is_virtual && o.dependents.is_empty() {
                self.nodes.remove(owner);
            }
        }
    }

    /// Applies one change; returns the work it causes.
    pub fn apply(&mut self, ev: &GraphEvent) -> Work {
        let mut work = Work::default();
        match (&ev.old, &ev.new) {
            (_, Some(m)) => {
                let Some(uid) = m.uid.clone() else { return work };
                let ns = m.namespace.clone().unwrap_or_default();
                let owners = m.owner_references.clone().unwrap_or_default();
                let previous = self.nodes.get(&uid).map(|n| n.owners.clone()).unwrap_or_default();
                for o in &owners {
                    let before = previous.iter().find(|p| p.uid == o.uid);
                    match before {
                        None => self.link(&uid, &ns, o, &mut work),
                        Some(b) if b.block_owner_deletion == Some(true) && o.block_owner_deletion != Some(true) => {
                            if self.nodes.get(&o.uid).is_some_and(Node::deleting_dependents) {
                                work.attempt_delete.push(o.uid.clone());
                            }
                        }
                        Some(_) => {}
                    }
                }
                for p in previous.iter().filter(|p| !owners.iter().any(|o| o.uid == p.uid)) {
                    self.unlink(&uid, &p.uid, &mut work);
                }
                let node = self.nodes.entry(uid.clone()).or_default();
                node.api_version = ev.api_version.clone();
                node.kind = ev.kind.clone();
                node.namespace = ns;
                node.name = m.name.clone().unwrap_or_default();
                node.owners = owners;
                node.finalizers = m.finalizers.clone().unwrap_or_default();
                node.deleting = m.deletion_timestamp.is_some();
                node.is_virtual = false;
                if node.deleting && node.finalizers.iter().any(|f| f == ORPHAN) {
                    work.attempt_orphan.push(uid.clone());
                }
                if node.deleting_dependents() {
                    work.attempt_delete.extend(node.dependents.iter().cloned());
                    work.attempt_delete.push(uid);
                }
            }
            (Some(m), None) => {
                let Some(uid) = m.uid.as_deref() else { return work };
                self.remove(uid, &mut work);
            }
            (None, None) => {}
        }
        work
    }

    /// Removes a node that no longer exists (seen deleted, or a virtual owner found absent).
    pub fn remove(&mut self, uid: &str, work: &mut Work) {
        let Some(node) = self.nodes.remove(uid) else { return };
        for o in &node.owners {
            self.unlink(uid, &o.uid, work);
        }
        work.attempt_delete.extend(node.dependents.iter().cloned());
        // Dependents still point at the owner: keep a virtual node so they can be told it is gone.
        if !node.dependents.is_empty() {
            self.nodes.insert(uid.to_string(), Node { is_virtual: true, dependents: node.dependents, ..node });
            if let Some(n) = self.nodes.get_mut(uid) {
                n.owners.clear();
                n.deleting = false;
                n.finalizers.clear();
            }
        }
    }
}

/// How one owner reference stands (upstream's classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// The owner is gone, or another object now has its name.
    Dangling,
    /// The owner is being deleted in the foreground.
    WaitingForDependents,
}

/// What to do with a dependent given its owners' states (upstream's `attemptToDeleteItem`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing.
    Keep,
    /// Remove these owner references (there are solid owners left).
    RemoveRefs(Vec<String>),
    /// Delete the object with this propagation.
    Delete(&'static str),
}

/// Decides about an object with `owners` in `states`, with or without dependents of its own.
pub fn decide(
    owners: &[OwnerReference],
    states: &[OwnerState],
    finalizers: &[String],
    has_dependents: bool,
) -> Decision {
    if owners.is_empty() {
        return Decision::Keep;
    }
    let solid = states.iter().filter(|s| **s == OwnerState::Solid).count();
    let waiting = states.contains(&OwnerState::WaitingForDependents);
    if solid > 0 {
        let gone: Vec<String> =
            owners.iter().zip(states).filter(|(_, s)| **s != OwnerState::Solid).map(|(o, _)| o.uid.clone()).collect();
        return if gone.is_empty() { Decision::Keep } else { Decision::RemoveRefs(gone) };
    }
    if waiting && has_dependents {
        return Decision::Delete("Foreground");
    }
    if finalizers.iter().any(|f| f == ORPHAN) {
        Decision::Delete("Orphan")
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        Decision::Delete("Foreground")
    } else {
        Decision::Delete("Background")
    }
}

/// The dynamic watches, stopped when the collector stops.
#[derive(Default)]
struct Watches(HashMap<String, tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        self.0.values().for_each(|h| h.abort());
    }
}

impl Watches {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct Resources {
    /// (group, kind) → resource and whether namespaced.
    by_kind: HashMap<(String, String), (ApiResource, bool)>,
}

impl Resources {
    fn resolve(&self, api_version: &str, kind: &str) -> Option<&(ApiResource, bool)> {
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        self.by_kind.get(&(group.to_string(), kind.to_string()))
    }
}

struct Gc {
    client: kube::Client,
    graph: Mutex<Graph>,
    resources: Mutex<Resources>,
    deletes: Arc<WorkQueue>,
    orphans: Arc<WorkQueue>,
    tx: mpsc::UnboundedSender<GraphEvent>,
}

/// Resources the shared informers already watch (no second watch for them).
fn shared(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        (
            "",
            "pods"
                | "replicationcontrollers"
                | "services"
                | "endpoints"
                | "namespaces"
                | "serviceaccounts"
                | "configmaps"
        ) | ("apps", "replicasets" | "deployments")
            | ("discovery.k8s.io", "endpointslices")
    )
}

fn send_typed<K: kube::Resource<DynamicType = ()>>(
    tx: &mpsc::UnboundedSender<GraphEvent>,
    old: Option<&K>,
    new: Option<&K>,
) {
    let _ = tx.send(GraphEvent {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        old: old.map(|o| o.meta().clone()),
        new: new.map(|n| n.meta().clone()),
    });
}

/// Runs the garbage collector until dropped (register before the shared informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let (tx, rx) = mpsc::unbounded_channel();
    macro_rules! feed {
        ($($f:ident),*) => {$(
            let t = tx.clone();
            informers.$f.on_change(move |o, n| send_typed(&t, o, n));
        )*};
    }
    feed!(
        pods,
        replicasets,
        replicationcontrollers,
        deployments,
        services,
        endpoints,
        endpointslices,
        namespaces,
        serviceaccounts,
        configmaps
    );
    let gc = Arc::new(Gc {
        client,
        graph: Mutex::new(Graph::default()),
        resources: Mutex::new(Resources { by_kind: HashMap::new() }),
        deletes: WorkQueue::new(),
        orphans: WorkQueue::new(),
        tx,
    });
    async move {
        let g = gc.clone();
        let deleter = run_workers("garbage-collector", gc.deletes.clone(), 5, move |uid| {
            let g = g.clone();
            async move { g.attempt_to_delete(&uid).await }
        });
        let g = gc.clone();
        let orphaner = run_workers("garbage-collector-orphan", gc.orphans.clone(), 1, move |uid| {
            let g = g.clone();
            async move { g.attempt_to_orphan(&uid).await }
        });
        futures::join!(gc.clone().monitor(informers, rx), deleter, orphaner);
    }
}

impl Gc {
    fn lock(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn schedule(&self, work: Work, synced: bool) {
        for uid in work.attempt_delete {
            if synced || self.lock().nodes.get(&uid).is_some_and(|n| !n.is_virtual) {
                self.deletes.add(uid);
            }
        }
        for uid in work.attempt_orphan {
            self.orphans.add(uid);
        }
    }

    /// Discovers resources, keeps one dynamic watch per resource the shared informers lack, and
    /// applies every change to the graph.
    async fn monitor(self: Arc<Self>, informers: Arc<SharedInformers>, mut rx: mpsc::UnboundedReceiver<GraphEvent>) {
        let mut watches = Watches::default();
        let mut synced = false;
        let mut rediscover = Some(tokio::time::Instant::now());
        let mut ready: Vec<Arc<Informer<DynamicObject>>> = Vec::new();
        let shared_ready = informers.ready();
        tokio::pin!(shared_ready);
        let mut shared_done = false;
        loop {
            let sleep_until = rediscover.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ev = rx.recv() => {
                    let Some(ev) = ev else { break };
                    if ev.kind == "CustomResourceDefinition" && rediscover.is_none() {
                        rediscover = Some(tokio::time::Instant::now() + Duration::from_secs(2));
                    }
                    let work = self.lock().apply(&ev);
                    self.schedule(work, synced);
                }
                _ = tokio::time::sleep_until(sleep_until), if rediscover.is_some() => {
                    rediscover = None;
                    match self.discover(&mut watches, &mut ready).await {
                        Ok(()) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "garbage collector discovery failed; retrying");
                            rediscover = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                        }
                    }
                }
                _ = &mut shared_ready, if !shared_done => {
                    shared_done = true;
                }
                _ = tokio::time::sleep(Duration::from_millis(500)), if !synced => {}
            }
            if !synced && shared_done && rediscover.is_none() && !watches.is_empty() {
                let all_ready = futures::future::join_all(ready.iter().map(|i| i.ready()));
                if tokio::time::timeout(Duration::from_millis(10), all_ready).await.is_ok() {
                    synced = true;
                    // Owners never seen after a full list are absent: have them verified.
                    let virtuals: Vec<String> =
                        self.lock().nodes.iter().filter(|(_, n)| n.is_virtual).map(|(u, _)| u.clone()).collect();
                    virtuals.into_iter().for_each(|u| self.deletes.add(u));
                    tracing::debug!("garbage collector graph synced");
                }
            }
        }
    }

    async fn discover(
        &self,
        watches: &mut Watches,
        ready: &mut Vec<Arc<Informer<DynamicObject>>>,
    ) -> Result<(), kube::Error> {
        let discovery = Discovery::new(self.client.clone()).run().await?;
        let mut by_kind = HashMap::new();
        let mut wanted = HashSet::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                let namespaced = caps.scope == Scope::Namespaced;
                by_kind.insert((ar.group.clone(), ar.kind.clone()), (ar.clone(), namespaced));
                let watchable = caps.supports_operation(verbs::LIST)
                    && caps.supports_operation(verbs::WATCH)
                    && caps.supports_operation(verbs::DELETE);
                if !watchable || ar.plural == "events" || shared(&ar.group, &ar.plural) {
                    continue;
                }
                let id = format!("{}/{}", ar.group, ar.plural);
                wanted.insert(id.clone());
                if watches.0.contains_key(&id) {
                    continue;
                }
                let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
                let informer = Informer::new_with(api, watcher::Config::default(), ar.clone());
                let tx = self.tx.clone();
                let (api_version, kind) = (ar.api_version.clone(), ar.kind.clone());
                informer.on_change(move |o, n| {
                    let _ = tx.send(GraphEvent {
                        api_version: api_version.clone(),
                        kind: kind.clone(),
                        old: o.map(|o| o.metadata.clone()),
                        new: n.map(|n| n.metadata.clone()),
                    });
                });
                ready.push(informer.clone());
                watches.0.insert(id, tokio::spawn(informer.run()));
            }
        }
        watches.0.retain(|id, h| {
            let keep = wanted.contains(id);
            if !keep {
                h.abort();
            }
            keep
        });
        self.resources.lock().unwrap_or_else(|e| e.into_inner()).by_kind = by_kind;
        Ok(())
    }

    fn api_for(&self, api_version: &str, kind: &str, namespace: &str) -> Result<(Api<DynamicObject>, bool), GcError> {
        let res = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        let (ar, namespaced) = res
            .resolve(api_version, kind)
            .ok_or_else(|| GcError::UnknownKind(format!("{api_version}, Kind={kind}")))?;
        let api = if *namespaced {
            Api::namespaced_with(self.client.clone(), namespace, ar)
        } else {
            Api::all_with(self.client.clone(), ar)
        };
        Ok((api, *namespaced))
    }

    /// The live object a node stands for (None when absent or replaced).
    async fn live(&self, node: &Node, uid: &str) -> Result<Option<DynamicObject>, GcError> {
        let (api, _) = self.api_for(&node.api_version, &node.kind, &node.namespace)?;
        let obj = api.get_opt(&node.name).await?;
        Ok(obj.filter(|o| o.metadata.uid.as_deref() == Some(uid)))
    }

    fn forget_absent(&self, uid: &str) {
        let mut work = Work::default();
        self.lock().remove(uid, &mut work);
        self.schedule(work, true);
    }

    async fn owner_state(&self, owner: &OwnerReference, namespace: &str) -> Result<OwnerState, GcError> {
        let (api, namespaced) = self.api_for(&owner.api_version, &owner.kind, namespace)?;
        if namespaced && namespace.is_empty() {
            // A cluster-scoped object cannot have a namespaced owner.
            return Ok(OwnerState::Dangling);
        }
        Ok(match api.get_opt(&owner.name).await? {
            None => OwnerState::Dangling,
            Some(o) if o.metadata.uid.as_deref() != Some(owner.uid.as_str()) => OwnerState::Dangling,
            Some(o)
                if o.metadata.deletion_timestamp.is_some()
                    && o.metadata.finalizers.iter().flatten().any(|f| f == FOREGROUND) =>
            {
                OwnerState::WaitingForDependents
            }
            Some(_) => OwnerState::Solid,
        })
    }

    async fn attempt_to_delete(&self, uid: &str) -> Result<(), GcError> {
        let Some(node) = self.lock().nodes.get(uid).cloned() else { return Ok(()) };
        let Some(latest) = self.live(&node, uid).await? else {
            if node.is_virtual {
                tracing::debug!(uid, kind = %node.kind, name = %node.name, "owner is absent; its dependents are dangling");
            }
            self.forget_absent(uid);
            return Ok(());
        };
        if node.is_virtual {
            return Ok(());
        }
        let meta = &latest.metadata;
        let finalizers = meta.finalizers.clone().unwrap_or_default();
        let (api, _) = self.api_for(&node.api_version, &node.kind, &node.namespace)?;
        if meta.deletion_timestamp.is_some() {
            if !finalizers.iter().any(|f| f == FOREGROUND) {
                return Ok(());
            }
            let blocking: Vec<String> = {
                let g = self.lock();
                node.dependents
                    .iter()
                    .filter(|d| {
                        g.nodes.get(*d).is_some_and(|n| {
                            !n.is_virtual
                                && n.owners.iter().any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
                        })
                    })
                    .cloned()
                    .collect()
            };
            if blocking.is_empty() {
                return remove_finalizer(&api, meta, FOREGROUND).await;
            }
            for d in blocking {
                self.deletes.add(d);
            }
            return Ok(());
        }
        let owners = meta.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(());
        }
        let mut states = Vec::new();
        for o in &owners {
            states.push(self.owner_state(o, &node.namespace).await?);
        }
        let has_dependents = !node.dependents.is_empty();
        match decide(&owners, &states, &finalizers, has_dependents) {
            Decision::Keep => Ok(()),
            Decision::RemoveRefs(gone) => {
                let refs: Vec<OwnerReference> = owners.into_iter().filter(|o| !gone.contains(&o.uid)).collect();
                crate::podutil::patch_owner_refs(&api, meta, refs).await?;
                Ok(())
            }
            Decision::Delete(policy) => {
                tracing::debug!(kind = %node.kind, name = %node.name, policy, "deleting dependent of deleted owners");
                let dp = DeleteParams {
                    propagation_policy: Some(match policy {
                        "Orphan" => PropagationPolicy::Orphan,
                        "Foreground" => PropagationPolicy::Foreground,
                        _ => PropagationPolicy::Background,
                    }),
                    preconditions: Some(Preconditions { uid: Some(uid.to_string()), resource_version: None }),
                    ..Default::default()
                };
                match api.delete(&node.name, &dp).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    async fn attempt_to_orphan(&self, uid: &str) -> Result<(), GcError> {
        let Some(node) = self.lock().nodes.get(uid).cloned() else { return Ok(()) };
        let dependents: Vec<Node> = {
            let g = self.lock();
            node.dependents
                .iter()
                .filter_map(|d| g.nodes.get(d).map(|n| (d.clone(), n.clone())))
                .map(|(_, n)| n)
                .collect()
        };
        let dep_uids: Vec<String> = node.dependents.iter().cloned().collect();
        for (dep, dep_uid) in dependents.iter().zip(dep_uids) {
            if dep.is_virtual {
                continue;
            }
            let Some(live) = self.live(dep, &dep_uid).await? else { continue };
            let refs: Vec<OwnerReference> =
                live.metadata.owner_references.iter().flatten().filter(|o| o.uid != uid).cloned().collect();
            if refs.len() != live.metadata.owner_references.as_ref().map_or(0, Vec::len) {
                let (api, _) = self.api_for(&dep.api_version, &dep.kind, &dep.namespace)?;
                crate::podutil::patch_owner_refs(&api, &live.metadata, refs).await?;
            }
        }
        let Some(owner) = self.live(&node, uid).await? else { return Ok(()) };
        let (api, _) = self.api_for(&node.api_version, &node.kind, &node.namespace)?;
        remove_finalizer(&api, &owner.metadata, ORPHAN).await
    }
}

async fn remove_finalizer(api: &Api<DynamicObject>, meta: &ObjectMeta, finalizer: &str) -> Result<(), GcError> {
    let rest: Vec<&String> = meta.finalizers.iter().flatten().filter(|f| *f != finalizer).collect();
    if rest.len() == meta.finalizers.as_ref().map_or(0, Vec::len) {
        return Ok(());
    }
    let patch = json!({"metadata": {
        "finalizers": if rest.is_empty() { Value::Null } else { json!(rest) },
        "resourceVersion": meta.resource_version,
    }});
    match api.patch(meta.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oref(uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: format!("rs-{uid}"),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn meta(uid: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some(uid.into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            owner_references: Some(owners),
            ..Default::default()
        }
    }

    fn ev(m: Option<ObjectMeta>, n: Option<ObjectMeta>) -> GraphEvent {
        GraphEvent { api_version: "v1".into(), kind: "Pod".into(), old: m, new: n }
    }

    #[test]
    fn decisions() {
        let o = [oref("a", true), oref("b", true)];
        use OwnerState::*;
        assert_eq!(decide(&o, &[Solid, Solid], &[], false), Decision::Keep);
        assert_eq!(decide(&o, &[Solid, Dangling], &[], false), Decision::RemoveRefs(vec!["b".into()]));
        assert_eq!(decide(&o, &[Dangling, Dangling], &[], false), Decision::Delete("Background"));
        assert_eq!(decide(&o, &[Dangling, WaitingForDependents], &[], true), Decision::Delete("Foreground"));
        assert_eq!(
            decide(&o, &[WaitingForDependents, WaitingForDependents], &[], false),
            Decision::Delete("Background")
        );
        assert_eq!(decide(&o, &[Dangling, Dangling], &[ORPHAN.into()], false), Decision::Delete("Orphan"));
        assert_eq!(decide(&[], &[], &[], false), Decision::Keep);
    }

    #[test]
    fn graph_links_owners_and_reports_dependents_of_deleted_owners() {
        let mut g = Graph::default();
        let w = g.apply(&ev(None, Some(meta("pod", vec![oref("rs", true)]))));
        assert_eq!(w.attempt_delete, vec!["rs".to_string()], "an unseen owner is verified");
        assert!(g.nodes["rs"].is_virtual);
        let w = g.apply(&ev(None, Some(meta("rs", vec![]))));
        assert!(w.attempt_delete.is_empty());
        assert!(!g.nodes["rs"].is_virtual);
        assert!(g.nodes["rs"].dependents.contains("pod"));
        let w = g.apply(&ev(Some(meta("rs", vec![])), None));
        assert_eq!(w.attempt_delete, vec!["pod".to_string()]);
    }

    #[test]
    fn foreground_and_orphan_transitions() {
        let mut g = Graph::default();
        g.apply(&ev(None, Some(meta("rs", vec![]))));
        g.apply(&ev(None, Some(meta("pod", vec![oref("rs", true)]))));
        let mut deleting = meta("rs", vec![]);
        deleting.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()));
        deleting.finalizers = Some(vec![FOREGROUND.into()]);
        let w = g.apply(&ev(None, Some(deleting.clone())));
        assert_eq!(w.attempt_delete, vec!["pod".to_string(), "rs".to_string()]);
        // The dependent going away re-checks the waiting owner.
        let w = g.apply(&ev(Some(meta("pod", vec![oref("rs", true)])), None));
        assert_eq!(w.attempt_delete, vec!["rs".to_string()]);
        deleting.finalizers = Some(vec![ORPHAN.into()]);
        let w = g.apply(&ev(None, Some(deleting)));
        assert_eq!(w.attempt_orphan, vec!["rs".to_string()]);
    }

    #[test]
    fn dropping_an_owner_reference_unlinks() {
        let mut g = Graph::default();
        g.apply(&ev(None, Some(meta("rs", vec![]))));
        g.apply(&ev(None, Some(meta("pod", vec![oref("rs", true)]))));
        g.apply(&ev(None, Some(meta("pod", vec![]))));
        assert!(g.nodes["rs"].dependents.is_empty());
    }
}
