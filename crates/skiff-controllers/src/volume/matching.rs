//! Which PersistentVolume a claim may bind to, as upstream's PV controller decides it: the
//! claim's and volume's class (the beta annotation over `storageClassName`, `""` meaning none),
//! requested size (the smallest volume that fits wins), access modes (volumes offering the
//! fewest modes that cover the claim's are tried first), `volumeMode`, the claim's selector, and
//! pre-binding in either direction (`pv.spec.claimRef`, `pvc.spec.volumeName`).
//!
//! What does not live here: acting on a match ([`super::binder`]).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use skiff_api::quantity::Quantity;

use super::ANN_BETA_CLASS;
use crate::selector;

/// The class a claim asks for (`""`: none).
pub fn claim_class(c: &PersistentVolumeClaim) -> String {
    if let Some(v) = c.metadata.annotations.as_ref().and_then(|a| a.get(ANN_BETA_CLASS)) {
        return v.clone();
    }
    c.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_default()
}

/// The class of a volume (`""`: none).
pub fn volume_class(v: &PersistentVolume) -> String {
    if let Some(c) = v.metadata.annotations.as_ref().and_then(|a| a.get(ANN_BETA_CLASS)) {
        return c.clone();
    }
    v.spec.as_ref().and_then(|s| s.storage_class_name.clone()).unwrap_or_default()
}

/// The storage a claim requests (zero when unset).
pub fn requested(c: &PersistentVolumeClaim) -> Quantity {
    c.spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_default()
}

/// The storage capacity of a volume (zero when unset).
pub fn capacity(v: &PersistentVolume) -> Quantity {
    v.spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_default()
}

fn claim_modes(c: &PersistentVolumeClaim) -> BTreeSet<String> {
    c.spec.as_ref().and_then(|s| s.access_modes.clone()).unwrap_or_default().into_iter().collect()
}

fn volume_modes(v: &PersistentVolume) -> BTreeSet<String> {
    v.spec.as_ref().and_then(|s| s.access_modes.clone()).unwrap_or_default().into_iter().collect()
}

/// Whether the volume offers every access mode the claim asks for.
pub fn access_modes_fit(c: &PersistentVolumeClaim, v: &PersistentVolume) -> bool {
    claim_modes(c).is_subset(&volume_modes(v))
}

/// Whether claim and volume disagree on `volumeMode` (unset means `Filesystem`).
pub fn volume_mode_mismatch(c: &PersistentVolumeClaim, v: &PersistentVolume) -> bool {
    let cm = c.spec.as_ref().and_then(|s| s.volume_mode.as_deref()).unwrap_or("Filesystem");
    let vm = v.spec.as_ref().and_then(|s| s.volume_mode.as_deref()).unwrap_or("Filesystem");
    cm != vm
}

/// Upstream `IsVolumeBoundToClaim`: the volume's `claimRef` names the claim (and its UID, when set).
pub fn bound_to_claim(v: &PersistentVolume, c: &PersistentVolumeClaim) -> bool {
    let Some(r) = v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else { return false };
    r.name == c.metadata.name
        && r.namespace.as_deref().unwrap_or("") == c.metadata.namespace.as_deref().unwrap_or("")
        && r.uid.as_deref().is_none_or(|u| u.is_empty() || Some(u) == c.metadata.uid.as_deref())
}

fn phase(v: &PersistentVolume) -> &str {
    v.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Upstream `checkVolumeSatisfyClaim`, for a claim naming its volume: why the volume does not
/// do (the reason upstream's `VolumeMismatch` event gives), or `Ok`.
pub fn satisfies(v: &PersistentVolume, c: &PersistentVolumeClaim) -> Result<(), String> {
    if v.metadata.deletion_timestamp.is_some() {
        return Err(format!("the volume is marked for deletion {:?}", v.metadata.name.as_deref().unwrap_or("")));
    }
    if capacity(v) < requested(c) {
        return Err("requested PV is too small".into());
    }
    if volume_class(v) != claim_class(c) {
        return Err("storageClassName does not match".into());
    }
    if volume_mode_mismatch(c, v) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_fit(c, v) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}

/// Upstream `findBestMatchForClaim` without a node (the controller's path): among the volumes
/// whose access modes cover the claim's, grouped by mode set from the fewest modes up, the first
/// group with a match gives the volume pre-bound to the claim if any, else the smallest
/// Available, unclaimed, selector- and class-matching volume that is large enough. With
/// `delay_binding` (a `WaitForFirstConsumer` class and no selected node yet) only pre-bound
/// volumes count: the scheduler picks the others.
pub fn best_match<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    delay_binding: bool,
) -> Option<&'a PersistentVolume> {
    let wanted = claim_modes(claim);
    let mut groups: Vec<(BTreeSet<String>, Vec<&'a PersistentVolume>)> = Vec::new();
    for v in volumes {
        let modes = volume_modes(v);
        if !wanted.is_subset(&modes) {
            continue;
        }
        match groups.iter_mut().find(|(m, _)| *m == modes) {
            Some((_, list)) => list.push(v),
            None => groups.push((modes, vec![v])),
        }
    }
    groups.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    groups.into_iter().find_map(|(_, list)| match_in(claim, &list, delay_binding))
}

/// Upstream `FindMatchingVolume` over one access-mode group.
fn match_in<'a>(
    claim: &PersistentVolumeClaim,
    volumes: &[&'a PersistentVolume],
    delay: bool,
) -> Option<&'a PersistentVolume> {
    let want = requested(claim);
    let class = claim_class(claim);
    let selector = claim.spec.as_ref().and_then(|s| s.selector.as_ref());
    let mut best: Option<(&'a PersistentVolume, Quantity)> = None;
    let mut sorted: Vec<&'a PersistentVolume> = volumes.to_vec();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for v in sorted {
        let size = capacity(v);
        if size < want || volume_mode_mismatch(claim, v) || v.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if bound_to_claim(v, claim) {
            return Some(v);
        }
        if delay {
            continue;
        }
        if phase(v) != "Available"
            || v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_some()
            || selector.is_some_and(|s| !selector::matches(s, v.metadata.labels.as_ref()))
            || volume_class(v) != class
        {
            continue;
        }
        if best.as_ref().is_none_or(|(_, q)| size < *q) {
            best = Some((v, size));
        }
    }
    best.map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(name: &str, size: &str, modes: &[&str], class: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"tier": name}},
            "spec": {"capacity": {"storage": size}, "accessModes": modes, "storageClassName": class,
                     "hostPath": {"path": "/tmp/x"}},
            "status": {"phase": "Available"}
        }))
        .expect("pv")
    }

    fn pvc(size: &str, modes: &[&str], class: Option<&str>) -> PersistentVolumeClaim {
        let mut spec = json!({"accessModes": modes, "resources": {"requests": {"storage": size}}});
        if let Some(c) = class {
            spec["storageClassName"] = json!(c);
        }
        serde_json::from_value(json!({"metadata": {"name": "data", "namespace": "ns", "uid": "u1"}, "spec": spec}))
            .expect("pvc")
    }

    fn name(v: Option<&PersistentVolume>) -> Option<&str> {
        v.and_then(|v| v.metadata.name.as_deref())
    }

    #[test]
    fn smallest_fitting_volume_of_the_class_wins() {
        let vols = [
            pv("big", "10Gi", &["ReadWriteOnce"], ""),
            pv("small", "1Gi", &["ReadWriteOnce"], ""),
            pv("tiny", "500Mi", &["ReadWriteOnce"], ""),
            pv("fast", "1Gi", &["ReadWriteOnce"], "fast"),
        ];
        assert_eq!(name(best_match(&pvc("1Gi", &["ReadWriteOnce"], Some("")), &vols, false)), Some("small"));
        assert_eq!(name(best_match(&pvc("2Gi", &["ReadWriteOnce"], Some("")), &vols, false)), Some("big"));
        assert_eq!(name(best_match(&pvc("1Gi", &["ReadWriteOnce"], Some("fast")), &vols, false)), Some("fast"));
        assert_eq!(name(best_match(&pvc("20Gi", &["ReadWriteOnce"], Some("")), &vols, false)), None);
        assert_eq!(name(best_match(&pvc("1Gi", &["ReadWriteOnce"], Some("slow")), &vols, false)), None);
    }

    #[test]
    fn access_modes_fewest_first() {
        let vols =
            [pv("rwx", "1Gi", &["ReadWriteOnce", "ReadWriteMany"], ""), pv("rwo", "5Gi", &["ReadWriteOnce"], "")];
        // A volume offering exactly the claim's modes beats a smaller one offering more.
        assert_eq!(name(best_match(&pvc("1Gi", &["ReadWriteOnce"], Some("")), &vols, false)), Some("rwo"));
        assert_eq!(name(best_match(&pvc("1Gi", &["ReadWriteMany"], Some("")), &vols, false)), Some("rwx"));
        assert_eq!(name(best_match(&pvc("1Gi", &["ReadOnlyMany"], Some("")), &vols, false)), None);
    }

    #[test]
    fn selector_mode_phase_and_claim_ref_filter() {
        let mut vols = vec![pv("a", "1Gi", &["ReadWriteOnce"], ""), pv("b", "2Gi", &["ReadWriteOnce"], "")];
        let mut claim = pvc("1Gi", &["ReadWriteOnce"], Some(""));
        claim.spec.as_mut().expect("spec").selector =
            Some(serde_json::from_value(json!({"matchLabels": {"tier": "b"}})).expect("selector"));
        assert_eq!(name(best_match(&claim, &vols, false)), Some("b"));
        claim.spec.as_mut().expect("spec").selector = None;
        claim.spec.as_mut().expect("spec").volume_mode = Some("Block".into());
        assert_eq!(name(best_match(&claim, &vols, false)), None);
        claim.spec.as_mut().expect("spec").volume_mode = None;
        vols[0].status.as_mut().expect("status").phase = Some("Released".into());
        assert_eq!(name(best_match(&claim, &vols, false)), Some("b"));
        vols[1].spec.as_mut().expect("spec").claim_ref =
            Some(serde_json::from_value(json!({"namespace": "ns", "name": "other"})).expect("ref"));
        assert_eq!(name(best_match(&claim, &vols, false)), None);
    }

    #[test]
    fn pre_bound_volumes_win_even_when_delayed() {
        let mut vols = vec![pv("a", "1Gi", &["ReadWriteOnce"], ""), pv("b", "5Gi", &["ReadWriteOnce"], "other")];
        vols[1].spec.as_mut().expect("spec").claim_ref =
            Some(serde_json::from_value(json!({"namespace": "ns", "name": "data"})).expect("ref"));
        let claim = pvc("1Gi", &["ReadWriteOnce"], Some(""));
        assert_eq!(name(best_match(&claim, &vols, false)), Some("b"), "claimRef pre-binding ignores the class");
        vols[1].spec.as_mut().expect("spec").claim_ref = None;
        assert_eq!(name(best_match(&claim, &vols, true)), None, "delayed binding leaves the choice to the scheduler");
    }

    #[test]
    fn requested_volume_must_satisfy_the_claim() {
        let v = pv("a", "1Gi", &["ReadWriteOnce"], "");
        assert_eq!(satisfies(&v, &pvc("1Gi", &["ReadWriteOnce"], Some(""))), Ok(()));
        assert_eq!(satisfies(&v, &pvc("2Gi", &["ReadWriteOnce"], Some(""))), Err("requested PV is too small".into()));
        assert_eq!(
            satisfies(&v, &pvc("1Gi", &["ReadWriteOnce"], Some("fast"))),
            Err("storageClassName does not match".into())
        );
        assert_eq!(satisfies(&v, &pvc("1Gi", &["ReadWriteMany"], Some(""))), Err("incompatible accessMode".into()));
    }
}
