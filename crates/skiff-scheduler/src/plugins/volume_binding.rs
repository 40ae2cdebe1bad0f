//! VolumeBinding basics, as upstream: PreFilter looks up the pod's claims (missing or deleting
//! claims and unbound claims of an `Immediate` class make the pod unschedulable with upstream's
//! messages); Filter checks that bound claims' volumes exist and admit the node, and that each
//! `WaitForFirstConsumer` claim can get a volume there (an available matching PersistentVolume
//! whose node affinity admits the node, or a class that provisions dynamically).
//!
//! Reserving the chosen volume (or asking for provisioning on the node) and waiting for the
//! PersistentVolume controller to complete the binding is the binder's ([`crate::binder`]).

use crate::cache::NodeInfo;
use crate::framework::{Code, PluginId, Status};
use crate::model::PodInfo;
use crate::objects::{Claim, Objects, Volume};

/// Upstream `ErrReasonBindConflict`.
pub const REASON_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// Upstream `ErrReasonNodeConflict`.
pub const REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// Upstream `ErrReasonPVNotExist`.
pub const REASON_PV_NOT_EXIST: &str = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// Upstream `ErrUnboundImmediatePVC`.
pub const REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The provisioner name of classes that never provision.
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// PreFilter state: bound claims (by volume name) and claims to bind.
#[derive(Debug, Clone, Default)]
pub struct State {
    bound: Vec<String>,
    to_bind: Vec<(String, Claim)>,
}

/// PreFilter: `Ok(None)` when the pod has no claims (Skip).
pub fn pre_filter(pod: &PodInfo, objects: &Objects) -> Result<Option<State>, Status> {
    if pod.claims.is_empty() {
        return Ok(None);
    }
    let mut state = State::default();
    let mut immediate = false;
    for name in &pod.claims {
        let reject =
            |msg: String| Status::new(Code::UnschedulableAndUnresolvable, msg).with_plugin(PluginId::VolumeBinding);
        let Some(claim) = objects.claims.get(&(pod.namespace.clone(), name.clone())) else {
            return Err(reject(format!("persistentvolumeclaim \"{name}\" not found")));
        };
        if claim.terminating {
            return Err(reject(format!("persistentvolumeclaim \"{name}\" is being deleted")));
        }
        if !claim.volume_name.is_empty() {
            state.bound.push(claim.volume_name.clone());
            continue;
        }
        let delayed = objects.classes.get(&claim.storage_class).is_some_and(|c| c.wait_for_first_consumer);
        if delayed {
            state.to_bind.push((name.clone(), claim.clone()));
        } else {
            immediate = true;
        }
    }
    if immediate {
        return Err(Status::new(Code::UnschedulableAndUnresolvable, REASON_UNBOUND_IMMEDIATE)
            .with_plugin(PluginId::VolumeBinding));
    }
    Ok(Some(state))
}

fn volume_fits(
    v: &Volume,
    claim: &Claim,
    ns: &str,
    name: &str,
    node: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let free = match &v.claim_ref {
        None => true,
        Some((cns, cname)) => cns == ns && cname == name,
    };
    free && !v.terminating
        && v.storage_class == claim.storage_class
        && v.capacity >= claim.request
        && claim.access_modes.iter().all(|m| v.access_modes.contains(m))
        && v.fits_node(node, labels)
}

/// The volume a claim to bind would get on `node`: `Some(Some(pv))` a static volume,
/// `Some(None)` dynamic provisioning, `None` nothing.
pub fn find_volume(
    objects: &Objects,
    ns: &str,
    claim_name: &str,
    claim: &Claim,
    node: &NodeInfo,
) -> Option<Option<String>> {
    let spec = node.spec.as_ref()?;
    let mut best: Option<(&String, i64)> = None;
    for (pv_name, v) in &objects.volumes {
        if volume_fits(v, claim, ns, claim_name, &spec.name, &spec.labels)
            && best.is_none_or(|(_, cap)| v.capacity < cap)
        {
            best = Some((pv_name, v.capacity));
        }
    }
    if let Some((name, _)) = best {
        return Some(Some(name.clone()));
    }
    let class = objects.classes.get(&claim.storage_class)?;
    (!class.provisioner.is_empty() && class.provisioner != NO_PROVISIONER).then_some(None)
}

impl State {
    /// Filter.
    pub fn filter(&self, pod: &PodInfo, node: &NodeInfo, objects: &Objects) -> Option<Status> {
        let spec = node.spec.as_ref()?;
        let mut reasons = Vec::new();
        for pv in &self.bound {
            match objects.volumes.get(pv) {
                None => {
                    reasons.push(REASON_PV_NOT_EXIST.into());
                    break;
                }
                Some(v) if !v.fits_node(&spec.name, &spec.labels) => {
                    reasons.push(REASON_NODE_CONFLICT.into());
                    break;
                }
                Some(_) => {}
            }
        }
        for (name, claim) in &self.to_bind {
            if find_volume(objects, &pod.namespace, name, claim, node).is_none() {
                reasons.push(REASON_BIND_CONFLICT.into());
                break;
            }
        }
        if reasons.is_empty() {
            return None;
        }
        Some(Status { code: Code::UnschedulableAndUnresolvable, reasons, plugin: Some(PluginId::VolumeBinding) })
    }

    /// Claims to bind, for the binder.
    pub fn to_bind(&self) -> &[(String, Claim)] {
        &self.to_bind
    }
}
