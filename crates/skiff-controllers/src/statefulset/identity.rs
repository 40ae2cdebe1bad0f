//! A StatefulSet pod's stable identity: ordinals and names (`<set>-<ordinal>`, claims
//! `<template>-<set>-<ordinal>`), the identity labels, hostname and subdomain, the claim volumes,
//! and the pods and claims built from a template (upstream `stateful_set_utils.go`).
//!
//! What does not live here: deciding which pods to create or delete ([`super::plan`]) and the
//! claims' owner references ([`super::retention`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::history::CONTROLLER_REVISION_HASH;

/// The label naming a StatefulSet pod.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// Splits `<parent>-<ordinal>` (the ordinal all digits); `None` when the name has no ordinal.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

/// The ordinal of a pod of `set_name`, if the pod's name is `<set_name>-<ordinal>`.
pub fn ordinal_of(set_name: &str, pod_name: &str) -> Option<i32> {
    parent_and_ordinal(pod_name).filter(|(p, _)| *p == set_name).map(|(_, o)| o)
}

/// `spec.ordinals.start` (0 by default).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.ordinals.as_ref()).and_then(|o| o.start).unwrap_or(0).max(0)
}

/// `spec.replicas` (default 1).
pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).max(0)
}

/// Whether `ordinal` lies in the set's range `[start, start + replicas)`.
pub fn in_range(set: &StatefulSet, ordinal: i32) -> bool {
    let start = start_ordinal(set);
    ordinal >= start && ordinal < start.saturating_add(replicas(set))
}

/// `<set>-<ordinal>`.
pub fn pod_name(set_name: &str, ordinal: i32) -> String {
    format!("{set_name}-{ordinal}")
}

/// `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set_name: &str, ordinal: i32) -> String {
    format!("{template}-{set_name}-{ordinal}")
}

fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

fn service_name(set: &StatefulSet) -> Option<String> {
    set.spec.as_ref().and_then(|s| s.service_name.clone()).filter(|s| !s.is_empty())
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec.as_ref().and_then(|s| s.volume_claim_templates.as_deref()).unwrap_or(&[])
}

/// The claims of the pod with `ordinal`, keyed by template name: each template with the claim's
/// name, the set's namespace, and the set's selector `matchLabels` added to its labels.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> BTreeMap<String, PersistentVolumeClaim> {
    let selector_labels = set.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let template = t.metadata.name.clone().unwrap_or_default();
            let mut claim = t.clone();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(selector_labels.clone());
            claim.metadata = ObjectMeta {
                name: Some(claim_name(&template, set_name(set), ordinal)),
                namespace: set.metadata.namespace.clone(),
                labels: (!labels.is_empty()).then_some(labels),
                annotations: claim.metadata.annotations.take(),
                finalizers: claim.metadata.finalizers.take(),
                ..Default::default()
            };
            claim.status = None;
            (template, claim)
        })
        .collect()
}

/// A pod of `set` with `ordinal` from `template` at revision `revision`, owned by `owner`:
/// the template's metadata and spec, the pod's name, identity labels, hostname and subdomain, and
/// a volume per claim template (replacing a template volume of that name).
pub fn new_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    ordinal: i32,
    revision: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let name = pod_name(set_name(set), ordinal);
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    labels.insert(CONTROLLER_REVISION_HASH.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    spec.subdomain = service_name(set);
    let claims = claims_for(set, ordinal);
    let mut volumes: Vec<Volume> =
        spec.volumes.take().unwrap_or_default().into_iter().filter(|v| !claims.contains_key(&v.name)).collect();
    for (template, claim) in &claims {
        volumes.push(Volume {
            name: template.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: Some(false),
            }),
            ..Default::default()
        });
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The identity labels a pod of `set` with `ordinal` must carry and does not (name → value);
/// empty when its identity matches.
pub fn missing_identity_labels(set: &StatefulSet, pod: &Pod) -> BTreeMap<String, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(ordinal) = ordinal_of(set_name(set), &name) else { return BTreeMap::new() };
    let want = [(POD_NAME_LABEL, name.clone()), (POD_INDEX_LABEL, ordinal.to_string())];
    let have = pod.metadata.labels.as_ref();
    want.into_iter().filter(|(k, v)| have.and_then(|l| l.get(*k)) != Some(v)).map(|(k, v)| (k.to_string(), v)).collect()
}

/// The revision (name) a pod was created from.
pub fn pod_revision(pod: &Pod) -> &str {
    pod.metadata.labels.as_ref().and_then(|l| l.get(CONTROLLER_REVISION_HASH)).map(String::as_str).unwrap_or("")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{StatefulSetOrdinals, StatefulSetSpec};
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    pub(crate) fn set(replicas: i32, start: Option<i32>) -> StatefulSet {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("set-uid".into()),
                ..Default::default()
            },
            spec: Some(StatefulSetSpec {
                replicas: Some(replicas),
                service_name: Some("web".into()),
                ordinals: start.map(|s| StatefulSetOrdinals { start: Some(s) }),
                selector: LabelSelector { match_labels: Some(labels.clone()), match_expressions: None },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                    spec: Some(PodSpec {
                        containers: vec![Container { name: "c".into(), ..Default::default() }],
                        volumes: Some(vec![Volume { name: "www".into(), ..Default::default() }]),
                        ..Default::default()
                    }),
                },
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("www".into()),
                        labels: Some([("tier".to_string(), "data".to_string())].into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn ordinals_parse_only_trailing_digits_of_the_set() {
        assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
        assert_eq!(parent_and_ordinal("web-x1"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(ordinal_of("web", "web-3"), Some(3));
        assert_eq!(ordinal_of("web", "webx-3"), None);
        assert_eq!(ordinal_of("my", "my-web-3"), None);
    }

    #[test]
    fn ranges_honour_the_start_ordinal() {
        let s = set(3, Some(5));
        assert_eq!(start_ordinal(&s), 5);
        assert!(!in_range(&s, 4));
        assert!(in_range(&s, 5) && in_range(&s, 7));
        assert!(!in_range(&s, 8));
        assert!(in_range(&set(1, None), 0));
    }

    #[test]
    fn pods_carry_identity_storage_and_revision() {
        let s = set(3, None);
        let owner = crate::podutil::new_controller_ref("apps/v1", "StatefulSet", "web", "set-uid");
        let pod = new_pod(&s, &s.spec.as_ref().map(|x| x.template.clone()).unwrap_or_default(), 2, "web-abc", owner);
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-2"));
        assert_eq!(labels.get(POD_NAME_LABEL).map(String::as_str), Some("web-2"));
        assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("2"));
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(pod_revision(&pod), "web-abc");
        let spec = pod.spec.clone().unwrap_or_default();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("web"));
        let vols = spec.volumes.unwrap_or_default();
        assert_eq!(vols.len(), 1, "the claim volume replaces the template's volume of that name");
        assert_eq!(vols[0].persistent_volume_claim.as_ref().map(|c| c.claim_name.as_str()), Some("www-web-2"));
        assert!(missing_identity_labels(&s, &pod).is_empty());
        let mut bare = pod.clone();
        bare.metadata.labels = None;
        assert_eq!(missing_identity_labels(&s, &bare).len(), 2);
    }

    #[test]
    fn claims_get_names_and_selector_labels() {
        let claims = claims_for(&set(1, None), 4);
        let c = &claims["www"];
        assert_eq!(c.metadata.name.as_deref(), Some("www-web-4"));
        assert_eq!(c.metadata.namespace.as_deref(), Some("ns"));
        let labels = c.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(labels.get("tier").map(String::as_str), Some("data"));
    }
}
