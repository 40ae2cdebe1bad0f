//! `persistentVolumeClaimRetentionPolicy`: the owner references a StatefulSet's claims carry so
//! that the garbage collector deletes them as the policy says (upstream
//! `updateClaimOwnerRefForSetAndPod`): `whenDeleted: Delete` makes the set the claim's
//! controller owner; `whenScaled: Delete` makes a scaled-down pod (ordinal out of range) the
//! claim's owner instead, so the claim goes with the pod. Retain removes those references.
//!
//! What does not live here: patching the claims ([`super`]).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::identity;

fn policy(set: &StatefulSet) -> (bool, bool) {
    let p = set.spec.as_ref().and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (delete(p.and_then(|p| p.when_deleted.as_ref())), delete(p.and_then(|p| p.when_scaled.as_ref())))
}

fn set_ref(set: &StatefulSet) -> OwnerReference {
    crate::podutil::new_controller_ref(
        "apps/v1",
        "StatefulSet",
        set.metadata.name.as_deref().unwrap_or(""),
        set.metadata.uid.as_deref().unwrap_or(""),
    )
}

fn pod_ref(pod: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    }
}

/// The owner references a claim with `current` references should carry for `pod` of `set`;
/// `None` when they are already right. References to other owners are kept; a claim controlled
/// by something else is left alone.
pub fn desired_owner_refs(set: &StatefulSet, pod: &Pod, current: &[OwnerReference]) -> Option<Vec<OwnerReference>> {
    let set_uid = set.metadata.uid.as_deref().unwrap_or("");
    let pod_uid = pod.metadata.uid.as_deref().unwrap_or("");
    if current.iter().any(|r| r.controller == Some(true) && r.uid != set_uid) {
        return None;
    }
    let (when_deleted, when_scaled) = policy(set);
    let scaled_down =
        identity::ordinal_of(set.metadata.name.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or(""))
            .is_some_and(|o| !identity::in_range(set, o));
    let (want_set, want_pod) = match (when_deleted, when_scaled) {
        (_, true) if scaled_down => (false, true),
        (when_deleted, _) => (when_deleted, false),
    };
    let mut refs: Vec<OwnerReference> =
        current.iter().filter(|r| r.uid != set_uid && (r.uid != pod_uid || pod_uid.is_empty())).cloned().collect();
    if want_set {
        refs.push(set_ref(set));
    }
    if want_pod && !pod_uid.is_empty() {
        refs.push(pod_ref(pod));
    }
    let same = |a: &[OwnerReference], b: &[OwnerReference]| {
        a.len() == b.len() && a.iter().all(|r| b.iter().any(|s| s.uid == r.uid && s.controller == r.controller))
    };
    (!same(&refs, current)).then_some(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::identity::tests::set;
    use k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn with_policy(replicas: i32, when_deleted: &str, when_scaled: &str) -> StatefulSet {
        let mut s = set(replicas, None);
        if let Some(spec) = s.spec.as_mut() {
            spec.persistent_volume_claim_retention_policy = Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(when_deleted.into()),
                when_scaled: Some(when_scaled.into()),
            });
        }
        s
    }

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta { name: Some(name.into()), uid: Some(format!("uid-{name}")), ..Default::default() },
            ..Default::default()
        }
    }

    fn uids(refs: &[OwnerReference]) -> Vec<(String, Option<bool>)> {
        refs.iter().map(|r| (r.uid.clone(), r.controller)).collect()
    }

    #[test]
    fn retain_retain_needs_no_references_and_removes_ours() {
        let s = with_policy(2, "Retain", "Retain");
        assert_eq!(desired_owner_refs(&s, &pod("web-0"), &[]), None);
        let refs = desired_owner_refs(&s, &pod("web-0"), &[set_ref(&s)]).unwrap_or_default();
        assert!(refs.is_empty());
    }

    #[test]
    fn when_deleted_delete_makes_the_set_the_controller() {
        let s = with_policy(2, "Delete", "Retain");
        let refs = desired_owner_refs(&s, &pod("web-1"), &[]).unwrap_or_default();
        assert_eq!(uids(&refs), vec![("set-uid".to_string(), Some(true))]);
        assert_eq!(desired_owner_refs(&s, &pod("web-1"), &refs), None, "already right");
        // A scaled-down pod's claim stays with the set (whenScaled is Retain).
        assert_eq!(desired_owner_refs(&s, &pod("web-5"), &refs), None);
    }

    #[test]
    fn when_scaled_delete_hands_condemned_claims_to_their_pod() {
        let s = with_policy(2, "Retain", "Delete");
        assert_eq!(desired_owner_refs(&s, &pod("web-1"), &[]), None);
        let refs = desired_owner_refs(&s, &pod("web-2"), &[]).unwrap_or_default();
        assert_eq!(uids(&refs), vec![("uid-web-2".to_string(), None)]);
        let s = with_policy(2, "Delete", "Delete");
        let refs = desired_owner_refs(&s, &pod("web-2"), &[set_ref(&s)]).unwrap_or_default();
        assert_eq!(uids(&refs), vec![("uid-web-2".to_string(), None)], "the set's reference is dropped");
        let refs = desired_owner_refs(&s, &pod("web-0"), &[]).unwrap_or_default();
        assert_eq!(uids(&refs), vec![("set-uid".to_string(), Some(true))]);
    }

    #[test]
    fn claims_controlled_by_others_are_left_alone() {
        let s = with_policy(2, "Delete", "Delete");
        let other = crate::podutil::new_controller_ref("v1", "Foo", "x", "other");
        assert_eq!(desired_owner_refs(&s, &pod("web-0"), &[other]), None);
    }
}
