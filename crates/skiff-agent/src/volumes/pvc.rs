//! persistentVolumeClaim volumes: the claim must be Bound to a PersistentVolume whose
//! `claimRef` points back at it, as the kubelet's desired-state populator checks (with its
//! messages); the PersistentVolume must be a `hostPath` or `local` volume, whose path is then
//! bind-mounted into the containers.
//!
//! Setting the path up (type checks, fsGroup) is the caller's; this module only reads the API.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::Api;

/// What a bound claim gives the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The PersistentVolume's name (the volume's name in mount messages, as upstream).
    pub pv_name: String,
    /// The host path.
    pub path: String,
    /// `Some(type)` for a hostPath PersistentVolume (`""` when unset); `None` for `local`.
    pub host_path_type: Option<String>,
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Checks a claim as the kubelet does before it mounts anything.
pub fn check_claim(pvc: &PersistentVolumeClaim) -> Result<String, String> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return Err("PVC is being deleted".into());
    }
    if pvc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Bound") {
        return Err("PVC is not bound".into());
    }
    match pvc.spec.as_ref().and_then(|s| s.volume_name.clone()).filter(|v| !v.is_empty()) {
        Some(v) => Ok(v),
        None => Err("PVC has empty pvc.Spec.VolumeName".into()),
    }
}

/// Checks the PersistentVolume bound to a claim with uid `claim_uid` and what it offers.
pub fn check_volume(pv_name: &str, pv: &PersistentVolume, claim_uid: &str) -> Result<Bound, String> {
    let spec = pv.spec.as_ref();
    let claim_ref = spec.and_then(|s| s.claim_ref.as_ref()).ok_or_else(|| {
        format!(
            "found PV object {pv_name} but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"
        )
    })?;
    let uid = claim_ref.uid.clone().unwrap_or_default();
    if uid != claim_uid {
        return Err(format!(
            "found PV object {pv_name} but its pv.Spec.ClaimRef.UID {uid} does not point to claim.UID {claim_uid}"
        ));
    }
    if let Some(h) = spec.and_then(|s| s.host_path.as_ref()) {
        return Ok(Bound {
            pv_name: pv_name.into(),
            path: h.path.clone(),
            host_path_type: Some(h.type_.clone().unwrap_or_default()),
        });
    }
    if let Some(l) = spec.and_then(|s| s.local.as_ref()) {
        return Ok(Bound { pv_name: pv_name.into(), path: l.path.clone(), host_path_type: None });
    }
    Err(format!("PersistentVolume {pv_name}: only hostPath and local PersistentVolumes are supported by skiff's agent"))
}

/// Resolves claim `claim` in `ns` to what it is bound to. Errors read like the kubelet's
/// (`error processing PVC ns/claim: PVC is not bound`).
pub async fn resolve(client: &kube::Client, ns: &str, claim: &str) -> Result<Bound, String> {
    let wrap = |e: String| format!("error processing PVC {ns}/{claim}: {e}");
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc =
        pvcs.get(claim).await.map_err(|e| wrap(format!("failed to fetch PVC from API server: {}", api_message(&e))))?;
    let pv_name = check_claim(&pvc).map_err(wrap)?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get(&pv_name)
        .await
        .map_err(|e| wrap(format!("failed to fetch PV {pv_name} from API server: {}", api_message(&e))))?;
    check_volume(&pv_name, &pv, pvc.metadata.uid.as_deref().unwrap_or("")).map_err(wrap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        HostPathVolumeSource, LocalVolumeSource, ObjectReference, PersistentVolumeClaimSpec,
        PersistentVolumeClaimStatus, PersistentVolumeSpec,
    };

    fn claim(phase: Option<&str>, volume: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec { volume_name: volume.map(Into::into), ..Default::default() }),
            status: Some(PersistentVolumeClaimStatus { phase: phase.map(Into::into), ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn claims_must_be_bound() {
        assert_eq!(check_claim(&claim(Some("Pending"), None)), Err("PVC is not bound".into()));
        assert_eq!(check_claim(&claim(Some("Bound"), None)), Err("PVC has empty pvc.Spec.VolumeName".into()));
        assert_eq!(check_claim(&claim(Some("Bound"), Some("pv1"))), Ok("pv1".into()));
    }

    #[test]
    fn volumes_must_point_back_and_be_local() {
        let mut pv = PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                host_path: Some(HostPathVolumeSource { path: "/srv/data".into(), type_: Some("Directory".into()) }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(check_volume("pv1", &pv, "u1").expect_err("no claimRef").contains("nil pv.Spec.ClaimRef"));
        if let Some(spec) = pv.spec.as_mut() {
            spec.claim_ref = Some(ObjectReference { uid: Some("u2".into()), ..Default::default() });
        }
        assert_eq!(
            check_volume("pv1", &pv, "u1"),
            Err("found PV object pv1 but its pv.Spec.ClaimRef.UID u2 does not point to claim.UID u1".into())
        );
        let bound = check_volume("pv1", &pv, "u2").expect("bound");
        assert_eq!((bound.path.as_str(), bound.host_path_type.as_deref()), ("/srv/data", Some("Directory")));
        if let Some(spec) = pv.spec.as_mut() {
            spec.host_path = None;
            spec.local = Some(LocalVolumeSource { path: "/mnt/disk".into(), ..Default::default() });
        }
        assert_eq!(check_volume("pv1", &pv, "u2").expect("local").host_path_type, None);
    }
}
