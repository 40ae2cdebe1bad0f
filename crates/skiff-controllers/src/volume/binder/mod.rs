//! The PersistentVolume controller's binder, as upstream's `persistentvolume-controller`: each
//! claim and each volume is synced on its own work queue. A sync first decides
//! ([`decide_claim`], [`decide_volume`]: pure functions over the informers' objects) and then
//! writes, by whole-object updates carrying the resourceVersion the decision was made from (a
//! conflict is retried from fresh state).
//!
//! - Claims: Pending claims bind to the best static match ([`super::matching`]), wait for their
//!   first consumer (`WaitForFirstConsumer` without `volume.kubernetes.io/selected-node`), ask
//!   their class's provisioner (the `storage-provisioner` annotations and an
//!   `ExternalProvisioning` event), or stay Pending with upstream's `FailedBinding` event. Bound
//!   claims whose volume went away become Lost.
//! - Volumes: Available without a claim, Bound once their claim names them, Released when their
//!   claim is gone, then reclaimed: Retain keeps them, Delete leaves provisioned volumes to their
//!   provisioner (skiff's is [`super::localpath`]) and fails others as upstream's in-tree plugins
//!   would, Recycle fails.
//!
//! Every claim and volume is also resynced every 15 seconds (upstream's `pvclaimbinder-sync-period`),
//! so a volume created after its claim is found.
//!
//! What does not live here: matching ([`super::matching`]), provisioning, finalizers.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use super::matching::{self, bound_to_claim, claim_class};
use super::*;
use crate::events::Events;
use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::queue::{WorkQueue, run_workers};

/// The event source of the controller.
pub const COMPONENT: &str = "persistentvolume-controller";
/// How often every claim and volume is synced again.
pub const RESYNC: Duration = Duration::from_secs(15);

/// An event to record: warning or normal, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Whether it is a Warning (else Normal).
    pub warning: bool,
    /// The reason.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

fn normal(reason: &'static str, message: impl Into<String>) -> Note {
    Note { warning: false, reason, message: message.into() }
}

fn warning(reason: &'static str, message: impl Into<String>) -> Note {
    Note { warning: true, reason, message: message.into() }
}

/// What a claim's sync does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimStep {
    /// Bind the claim and the named volume to each other (each write only when needed).
    Bind(String),
    /// Keep (or put) the claim in phase Pending without capacity, recording the event if any.
    Pending(Option<Note>),
    /// Hand the claim to this external provisioner (annotations and `ExternalProvisioning`).
    Provision(String),
    /// Put the claim in phase Lost; the event is recorded when the phase changes.
    Lost(Note),
}

/// What a volume's sync does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeStep {
    /// Nothing to write.
    Nothing,
    /// Set this phase (`Available` or `Bound`).
    Phase(&'static str),
    /// The claim is gone: mark the volume Released (unless Released or Failed) and reclaim it.
    Release,
    /// The claim (key) has not caught up: sync it.
    SyncClaim(String),
    /// The claim bound elsewhere: drop the controller's binding (`claimRef` unset) or, for a
    /// user's pre-binding, only the claim's UID; then Available.
    Unbind {
        /// Keep the `claimRef` (a user's pre-binding) and clear only its UID.
        keep_ref: bool,
    },
    /// Record these events on the volume and the claim (volume mode mismatch).
    Mismatch(Note, Note),
}

/// Whether `obj` carries annotation `key`.
pub fn has_annotation(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> bool {
    meta.annotations.as_ref().is_some_and(|a| a.contains_key(key))
}

fn phase_of_claim(c: &PersistentVolumeClaim) -> &str {
    c.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn phase_of_volume(v: &PersistentVolume) -> &str {
    v.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn volume_name(c: &PersistentVolumeClaim) -> &str {
    c.spec.as_ref().and_then(|s| s.volume_name.as_deref()).unwrap_or("")
}

/// Whether a class delays binding until a pod uses the claim.
pub fn wait_for_first_consumer(sc: &StorageClass) -> bool {
    sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
}

/// Upstream `syncClaim`'s decision for `claim` given the volumes and classes.
pub fn decide_claim(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    classes: &[Arc<StorageClass>],
) -> ClaimStep {
    let find = |name: &str| volumes.iter().find(|v| v.metadata.name.as_deref() == Some(name));
    let wanted = volume_name(claim);
    if !has_annotation(&claim.metadata, ANN_BIND_COMPLETED) {
        if wanted.is_empty() {
            let class_name = claim_class(claim);
            let class = (!class_name.is_empty())
                .then(|| classes.iter().find(|c| c.metadata.name.as_deref() == Some(class_name.as_str())))
                .flatten();
            let delay = class.is_some_and(|c| wait_for_first_consumer(c))
                && !has_annotation(&claim.metadata, ANN_SELECTED_NODE);
            if let Some(v) = matching::best_match(claim, volumes.iter().map(|v| v.as_ref()), delay) {
                return ClaimStep::Bind(v.metadata.name.clone().unwrap_or_default());
            }
            if delay {
                return ClaimStep::Pending(Some(normal(
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                )));
            }
            if class_name.is_empty() {
                return ClaimStep::Pending(Some(normal(
                    "FailedBinding",
                    "no persistent volumes available for this claim and no storage class is set",
                )));
            }
            return match class {
                None => ClaimStep::Pending(Some(warning(
                    "ProvisioningFailed",
                    format!("storageclass.storage.k8s.io \"{class_name}\" not found"),
                ))),
                Some(c) => ClaimStep::Provision(c.provisioner.clone()),
            };
        }
        let Some(v) = find(wanted) else { return ClaimStep::Pending(None) };
        return match v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
            None => match matching::satisfies(v, claim) {
                Ok(()) => ClaimStep::Bind(wanted.to_string()),
                Err(why) => ClaimStep::Pending(Some(warning(
                    "VolumeMismatch",
                    format!("Cannot bind to requested volume \"{wanted}\": {why}"),
                ))),
            },
            Some(_) if bound_to_claim(v, claim) => ClaimStep::Bind(wanted.to_string()),
            Some(_) => ClaimStep::Pending(Some(warning(
                "FailedBinding",
                format!("volume \"{wanted}\" already bound to a different claim."),
            ))),
        };
    }
    if wanted.is_empty() {
        return ClaimStep::Lost(warning(
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        ));
    }
    let Some(v) = find(wanted) else {
        return ClaimStep::Lost(warning(
            "ClaimLost",
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        ));
    };
    match v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        None => ClaimStep::Bind(wanted.to_string()),
        Some(r) if r.uid.is_some() && r.uid == claim.metadata.uid => ClaimStep::Bind(wanted.to_string()),
        Some(_) => ClaimStep::Lost(warning(
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )),
    }
}

/// Upstream `syncVolume`'s decision for `volume` given its claim as the informer has it
/// (`None`: no claim of that name and UID).
pub fn decide_volume(volume: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> VolumeStep {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return VolumeStep::Phase("Available");
    };
    if r.uid.as_deref().unwrap_or("").is_empty() {
        return VolumeStep::Phase("Available");
    }
    let claim = claim.filter(|c| c.metadata.uid == r.uid);
    let Some(claim) = claim else { return VolumeStep::Release };
    let name = volume.metadata.name.as_deref().unwrap_or("");
    let bound = volume_name(claim);
    if bound.is_empty() {
        if matching::volume_mode_mismatch(claim, volume) {
            let cname = claim.metadata.name.as_deref().unwrap_or("");
            return VolumeStep::Mismatch(
                warning(
                    "VolumeMismatch",
                    format!(
                        "Cannot bind PersistentVolume to requested PersistentVolumeClaim \"{cname}\" due to incompatible volumeMode."
                    ),
                ),
                warning(
                    "VolumeMismatch",
                    format!(
                        "Cannot bind PersistentVolume \"{name}\" to requested PersistentVolumeClaim due to incompatible volumeMode."
                    ),
                ),
            );
        }
        return VolumeStep::SyncClaim(key_of(claim));
    }
    if bound == name {
        return VolumeStep::Phase("Bound");
    }
    let delete = volume.spec.as_ref().and_then(|s| s.persistent_volume_reclaim_policy.as_deref()) == Some("Delete");
    if has_annotation(&volume.metadata, ANN_PROVISIONED_BY) && delete {
        return VolumeStep::Release;
    }
    VolumeStep::Unbind { keep_ref: !has_annotation(&volume.metadata, ANN_BOUND_BY_CONTROLLER) }
}

/// What reclaiming a Released volume does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reclaim {
    /// Nothing (Retain, or a provisioner deletes it).
    Nothing,
    /// Mark the volume Failed with this message and record the event.
    Fail(Note),
}

/// Upstream `reclaimVolume` for a Released volume.
pub fn reclaim(volume: &PersistentVolume) -> Reclaim {
    let spec = volume.spec.as_ref();
    let name = volume.metadata.name.as_deref().unwrap_or("");
    match spec.and_then(|s| s.persistent_volume_reclaim_policy.as_deref()).unwrap_or("Retain") {
        "Delete" if has_annotation(&volume.metadata, ANN_PROVISIONED_BY) => Reclaim::Nothing,
        "Delete" => {
            let message = match spec.and_then(|s| s.host_path.as_ref()) {
                Some(h) => format!("host_path deleter only supports /tmp/.+ but received provided {}", h.path),
                None => format!(
                    "error getting deleter volume plugin for volume \"{name}\": no deletable volume plugin matched"
                ),
            };
            Reclaim::Fail(warning("VolumeFailedDelete", message))
        }
        "Recycle" => Reclaim::Fail(warning("VolumeFailedRecycle", "No recycler plugin found for the volume!")),
        _ => Reclaim::Nothing,
    }
}

/// The claim and volume writes of binding `claim` to `volume`: the volume as it must be
/// (`None`: unchanged), and the claim as it must be (`None`: unchanged).
pub fn bound_pair(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> (Option<PersistentVolume>, Option<PersistentVolumeClaim>) {
    let mut v = volume.clone();
    let mut dirty = false;
    let by_controller = !bound_to_claim(volume, claim);
    let r = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    if r.is_none_or(|r| {
        r.name != claim.metadata.name || r.namespace != claim.metadata.namespace || r.uid != claim.metadata.uid
    }) {
        v.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            ..Default::default()
        });
        dirty = true;
    }
    if by_controller && !has_annotation(&v.metadata, ANN_BOUND_BY_CONTROLLER) {
        v.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        dirty = true;
    }
    let name = volume.metadata.name.clone().unwrap_or_default();
    let mut c = claim.clone();
    let mut cdirty = false;
    if volume_name(claim) != name {
        c.spec.get_or_insert_with(Default::default).volume_name = Some(name);
        if !has_annotation(&c.metadata, ANN_BOUND_BY_CONTROLLER) {
            c.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        }
        cdirty = true;
    }
    if !has_annotation(&c.metadata, ANN_BIND_COMPLETED) {
        c.metadata.annotations.get_or_insert_with(BTreeMap::new).insert(ANN_BIND_COMPLETED.into(), "yes".into());
        cdirty = true;
    }
    (dirty.then_some(v), cdirty.then_some(c))
}

/// The claim with its status set to `phase` and the volume's capacity and modes (cleared without
/// a volume); `None` when nothing changes.
pub fn claim_status(
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Option<PersistentVolumeClaim> {
    let mut c = claim.clone();
    let status = c.status.get_or_insert_with(Default::default);
    let (modes, capacity) = match volume {
        Some(v) => {
            (v.spec.as_ref().and_then(|s| s.access_modes.clone()), v.spec.as_ref().and_then(|s| s.capacity.clone()))
        }
        None => (None, None),
    };
    let before = (status.phase.clone(), status.access_modes.clone(), status.capacity.clone());
    status.phase = Some(phase.into());
    status.access_modes = modes;
    status.capacity = capacity;
    ((status.phase.clone(), status.access_modes.clone(), status.capacity.clone()) != before).then_some(c)
}

/// The volume with phase `phase` and `message` (`lastPhaseTransitionTime` set when the phase
/// changes); `None` when nothing changes.
pub fn volume_phase(
    volume: &PersistentVolume,
    phase: &str,
    message: Option<String>,
    now: Timestamp,
) -> Option<PersistentVolume> {
    if phase_of_volume(volume) == phase {
        return None;
    }
    let mut v = volume.clone();
    let status = v.status.get_or_insert_with(Default::default);
    status.phase = Some(phase.into());
    status.message = message;
    status.last_phase_transition_time = Some(Time(now.round(k8s_openapi::jiff::Unit::Second).unwrap_or(now)));
    Some(v)
}

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed (a conflict included: the sync is retried from fresh state).
    #[error("{0}")]
    Api(#[from] kube::Error),
}

struct Ctrl {
    client: kube::Client,
    informers: Arc<SharedInformers>,
    claims: Arc<WorkQueue>,
    volumes: Arc<WorkQueue>,
    events: Events,
}

/// Runs the binder until dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let ctrl = Arc::new(Ctrl {
        events: Events::new(client.clone(), COMPONENT),
        client,
        informers: informers.clone(),
        claims: WorkQueue::new(),
        volumes: WorkQueue::new(),
    });
    let c = ctrl.clone();
    informers.claims.on_change(move |old, new| {
        if let Some(claim) = new {
            c.claims.add(key_of(claim));
        }
        // A deleted claim releases its volume.
        if let (Some(claim), None) = (old, new)
            && let Some(v) = claim.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty())
        {
            c.volumes.add(v);
        }
    });
    let c = ctrl.clone();
    informers.volumes.on_change(move |_, new| {
        if let Some(v) = new {
            c.volumes.add(key_of(v));
            // A new or changed volume may match claims still waiting.
            for claim in c.informers.claims.store().state() {
                if volume_name(&claim).is_empty() && phase_of_claim(&claim) != "Bound" {
                    c.claims.add(key_of(claim.as_ref()));
                }
            }
        }
    });
    async move {
        futures::join!(informers.claims.ready(), informers.volumes.ready(), informers.storageclasses.ready());
        let resync = {
            let ctrl = ctrl.clone();
            async move {
                loop {
                    tokio::time::sleep(RESYNC).await;
                    for c in ctrl.informers.claims.store().state() {
                        ctrl.claims.add(key_of(c.as_ref()));
                    }
                    for v in ctrl.informers.volumes.store().state() {
                        ctrl.volumes.add(key_of(v.as_ref()));
                    }
                }
            }
        };
        let c1 = ctrl.clone();
        let claims = run_workers(COMPONENT, ctrl.claims.clone(), 2, move |key| {
            let c = c1.clone();
            async move { c.sync_claim(&key).await }
        });
        let c2 = ctrl.clone();
        let volumes = run_workers(COMPONENT, ctrl.volumes.clone(), 2, move |key| {
            let c = c2.clone();
            async move { c.sync_volume(&key).await }
        });
        futures::join!(resync, claims, volumes);
    }
}

impl Ctrl {
    async fn note<K: kube::Resource<DynamicType = ()>>(&self, obj: &K, note: &Note) {
        if note.warning {
            self.events.warning(obj, note.reason, note.message.clone()).await;
        } else {
            self.events.normal(obj, note.reason, note.message.clone()).await;
        }
    }

    fn claim_api(&self, ns: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn volume_api(&self) -> Api<PersistentVolume> {
        Api::all(self.client.clone())
    }

    async fn set_claim_status(
        &self,
        claim: &PersistentVolumeClaim,
        phase: &str,
        volume: Option<&PersistentVolume>,
    ) -> Result<PersistentVolumeClaim, kube::Error> {
        let Some(next) = claim_status(claim, phase, volume) else { return Ok(claim.clone()) };
        let ns = claim.metadata.namespace.as_deref().unwrap_or("");
        let name = claim.metadata.name.as_deref().unwrap_or("");
        self.claim_api(ns).replace_status(name, &PostParams::default(), &next).await
    }

    async fn set_volume_phase(
        &self,
        volume: &PersistentVolume,
        phase: &str,
        message: Option<String>,
    ) -> Result<PersistentVolume, kube::Error> {
        let Some(next) = volume_phase(volume, phase, message, Timestamp::now()) else { return Ok(volume.clone()) };
        let name = volume.metadata.name.as_deref().unwrap_or("");
        self.volume_api().replace_status(name, &PostParams::default(), &next).await
    }

    async fn sync_claim(&self, key: &str) -> Result<(), SyncError> {
        let Some(claim) = get(&self.informers.claims.store(), key) else { return Ok(()) };
        if claim.metadata.deletion_timestamp.is_some() && phase_of_claim(&claim) != "Bound" {
            return Ok(());
        }
        let volumes = self.informers.volumes.store().state();
        let classes = self.informers.storageclasses.store().state();
        match decide_claim(&claim, &volumes, &classes) {
            ClaimStep::Bind(name) => {
                let Some(volume) = volumes.iter().find(|v| v.metadata.name.as_deref() == Some(name.as_str())) else {
                    return Ok(());
                };
                self.bind(volume, &claim).await
            }
            ClaimStep::Pending(note) => {
                self.set_claim_status(&claim, "Pending", None).await?;
                if let Some(n) = note {
                    self.note(claim.as_ref(), &n).await;
                }
                Ok(())
            }
            ClaimStep::Provision(provisioner) => {
                let mut claim = claim.as_ref().clone();
                let annotations = claim.metadata.annotations.get_or_insert_with(BTreeMap::new);
                if annotations.get(ANN_STORAGE_PROVISIONER) != Some(&provisioner)
                    || annotations.get(ANN_BETA_STORAGE_PROVISIONER) != Some(&provisioner)
                {
                    annotations.insert(ANN_STORAGE_PROVISIONER.into(), provisioner.clone());
                    annotations.insert(ANN_BETA_STORAGE_PROVISIONER.into(), provisioner.clone());
                    let (ns, name) = split_key(key);
                    claim = self.claim_api(ns).replace(name, &PostParams::default(), &claim).await?;
                }
                let claim = self.set_claim_status(&claim, "Pending", None).await?;
                let message = format!(
                    "waiting for a volume to be created, either by external provisioner \"{provisioner}\" or manually created by system administrator"
                );
                self.note(&claim, &normal("ExternalProvisioning", message)).await;
                Ok(())
            }
            ClaimStep::Lost(note) => {
                if phase_of_claim(&claim) != "Lost" {
                    let claim = self.set_claim_status(&claim, "Lost", None).await?;
                    self.note(&claim, &note).await;
                }
                Ok(())
            }
        }
    }

    /// Upstream `bind`: volume → claim, volume phase, claim → volume, claim status.
    async fn bind(&self, volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> Result<(), SyncError> {
        let (v, c) = bound_pair(volume, claim);
        let vname = volume.metadata.name.clone().unwrap_or_default();
        let volume = match v {
            Some(v) => self.volume_api().replace(&vname, &PostParams::default(), &v).await?,
            None => volume.clone(),
        };
        let volume = self.set_volume_phase(&volume, "Bound", None).await?;
        let ns = claim.metadata.namespace.clone().unwrap_or_default();
        let cname = claim.metadata.name.clone().unwrap_or_default();
        let claim = match c {
            Some(c) => self.claim_api(&ns).replace(&cname, &PostParams::default(), &c).await?,
            None => claim.clone(),
        };
        self.set_claim_status(&claim, "Bound", Some(&volume)).await?;
        Ok(())
    }

    async fn sync_volume(&self, key: &str) -> Result<(), SyncError> {
        let Some(volume) = get(&self.informers.volumes.store(), key) else { return Ok(()) };
        let claim_key = volume
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or(""), r.name.as_deref().unwrap_or("")));
        let mut claim =
            claim_key.as_deref().and_then(|k| get(&self.informers.claims.store(), k)).map(|c| c.as_ref().clone());
        let mut step = decide_volume(&volume, claim.as_ref());
        if step == VolumeStep::Release && claim.is_none() {
            // The informer may lag: ask the API before releasing a volume.
            if let Some(k) = claim_key.as_deref() {
                let (ns, name) = split_key(k);
                claim = self.claim_api(ns).get_opt(name).await?;
                step = decide_volume(&volume, claim.as_ref());
            }
        }
        match step {
            VolumeStep::Nothing => Ok(()),
            VolumeStep::Phase(p) => {
                self.set_volume_phase(&volume, p, None).await?;
                Ok(())
            }
            VolumeStep::SyncClaim(k) => {
                self.claims.add(k);
                Ok(())
            }
            VolumeStep::Mismatch(on_volume, on_claim) => {
                self.note(volume.as_ref(), &on_volume).await;
                if let Some(c) = &claim {
                    self.note(c, &on_claim).await;
                }
                Ok(())
            }
            VolumeStep::Unbind { keep_ref } => {
                let mut v = volume.as_ref().clone();
                if keep_ref {
                    if let Some(r) = v.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
                        r.uid = None;
                    }
                } else {
                    if let Some(s) = v.spec.as_mut() {
                        s.claim_ref = None;
                    }
                    if let Some(a) = v.metadata.annotations.as_mut() {
                        a.remove(ANN_BOUND_BY_CONTROLLER);
                    }
                }
                let v = self.volume_api().replace(key, &PostParams::default(), &v).await?;
                self.set_volume_phase(&v, "Available", None).await?;
                Ok(())
            }
            VolumeStep::Release => {
                let phase = phase_of_volume(&volume);
                let volume = if phase != "Released" && phase != "Failed" {
                    self.set_volume_phase(&volume, "Released", None).await?
                } else {
                    volume.as_ref().clone()
                };
                if let Reclaim::Fail(note) = reclaim(&volume)
                    && phase_of_volume(&volume) != "Failed"
                {
                    let v = self.set_volume_phase(&volume, "Failed", Some(note.message.clone())).await?;
                    self.note(&v, &note).await;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
