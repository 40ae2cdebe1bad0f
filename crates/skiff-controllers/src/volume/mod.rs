//! Persistent storage: the PersistentVolume binder ([`binder`], with [`matching`]), the
//! `kubernetes.io/pvc-protection` and `kubernetes.io/pv-protection` finalizer controllers
//! ([`protection`]) and the built-in local-path provisioner ([`localpath`], k3s's
//! `rancher.io/local-path`).
//!
//! What does not live here: the default StorageClass object and the admission plugins that set a
//! claim's default class and the protection finalizers (the API server's), binding pods' claims
//! to a node (the scheduler's VolumeBinding), and creating or removing volume directories on a
//! node (the agent's).

pub mod binder;
pub mod localpath;
pub mod matching;
pub mod protection;

/// Set on a claim once the binder has bound it.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a claim or volume whose binding the controller (not the user) made.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set on a provisioned volume: the provisioner that made it.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Set on a claim handed to a provisioner.
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`ANN_STORAGE_PROVISIONER`], still set by upstream.
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// Set by the scheduler on a `WaitForFirstConsumer` claim: the node to provision for.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// The beta class annotation, which wins over `storageClassName`.
pub const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The finalizer keeping a claim while pods use it.
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// The finalizer keeping a volume while it is bound.
pub const PV_PROTECTION: &str = "kubernetes.io/pv-protection";
