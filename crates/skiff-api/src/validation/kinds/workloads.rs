//! Validation of the replicated workloads: ReplicationController and the apps/v1 Deployment,
//! ReplicaSet, StatefulSet, DaemonSet and ControllerRevision.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, ReplicaSet, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodTemplateSpec, ReplicationController, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::common::{
    immutable, int_or_percent, int_or_percent_value, json, label_selector, nonneg, opt_nonneg, selector_is_empty,
    supported,
};
use super::pod::validate_pod_template;
use crate::kinds::Validation;
use crate::selector::label::LabelSelectorExpr;
use crate::validation::names::validate_labels;
use crate::validation::{ErrorList, FieldError, child};

/// The template labels must satisfy a non-empty selector.
pub fn template_matches(errs: &mut ErrorList, selector: &LabelSelectorExpr, t: &PodTemplateSpec, path: &str) {
    let empty = BTreeMap::new();
    let labels = t.metadata.as_ref().and_then(|m| m.labels.as_ref()).unwrap_or(&empty);
    if !selector.is_empty() && !selector.matches(labels) {
        errs.push(FieldError::invalid(
            child(&child(path, "metadata"), "labels"),
            json(labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Validates the template of a replicated workload: matching labels, a valid pod spec whose
/// restartPolicy is Always and without activeDeadlineSeconds.
fn replicated_template(
    errs: &mut ErrorList,
    selector: Option<&LabelSelectorExpr>,
    t: &PodTemplateSpec,
    path: &str,
    kind: &str,
) {
    if let Some(sel) = selector {
        template_matches(errs, sel, t, path);
    }
    errs.extend(validate_pod_template(t, path));
    let Some(spec) = &t.spec else { return };
    let sp = child(path, "spec");
    if let Some(rp) = spec.restart_policy.as_deref()
        && rp != "Always"
    {
        errs.push(FieldError::not_supported(child(&sp, "restartPolicy"), rp, &["Always"]));
    }
    if let Some(a) = spec.active_deadline_seconds {
        errs.push(FieldError::invalid(
            child(&sp, "activeDeadlineSeconds"),
            a,
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// The apps/v1 selector rules: required, non-empty, valid.
fn apps_selector(errs: &mut ErrorList, sel: &LabelSelector, kind: &str) -> Option<LabelSelectorExpr> {
    let parsed = label_selector(errs, "spec.selector", sel);
    if selector_is_empty(sel) {
        errs.push(FieldError::invalid("spec.selector", json(sel), format!("empty selector is invalid for {kind}")));
        return None;
    }
    parsed
}

/// maxUnavailable/maxSurge: each an int or percent (maxUnavailable at most 100%), not both zero.
fn rolling_update(errs: &mut ErrorList, path: &str, unavailable: Option<&IntOrString>, surge: Option<&IntOrString>) {
    let up = child(path, "maxUnavailable");
    if let Some(u) = unavailable {
        int_or_percent(errs, &up, u, true);
    }
    if let Some(s) = surge {
        int_or_percent(errs, &child(path, "maxSurge"), s, false);
    }
    let zero = |v: Option<&IntOrString>| v.is_none_or(|v| int_or_percent_value(v) == Some(0));
    if zero(unavailable) && zero(surge) {
        errs.push(FieldError::invalid(up, json(&unavailable), "may not be 0 when `maxSurge` is 0"));
    }
}

fn deployment_spec(errs: &mut ErrorList, spec: &DeploymentSpec) {
    opt_nonneg(errs, "spec.replicas", spec.replicas);
    let sel = apps_selector(errs, &spec.selector, "deployment");
    replicated_template(errs, sel.as_ref(), &spec.template, "spec.template", "Deployment");
    if let Some(s) = &spec.strategy {
        let ty = s.type_.as_deref().unwrap_or("RollingUpdate");
        supported(errs, "spec.strategy.type", ty, &["Recreate", "RollingUpdate"]);
        match (ty, &s.rolling_update) {
            ("Recreate", Some(_)) => errs.push(FieldError::forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            ("RollingUpdate", Some(ru)) => {
                rolling_update(errs, "spec.strategy.rollingUpdate", ru.max_unavailable.as_ref(), ru.max_surge.as_ref())
            }
            _ => {}
        }
    }
    opt_nonneg(errs, "spec.revisionHistoryLimit", spec.revision_history_limit);
    opt_nonneg(errs, "spec.minReadySeconds", spec.min_ready_seconds);
    if let Some(p) = spec.progress_deadline_seconds {
        nonneg(errs, "spec.progressDeadlineSeconds", i64::from(p));
        if p <= spec.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid("spec.progressDeadlineSeconds", p, "must be greater than minReadySeconds"));
        }
    }
}

impl Validation for Deployment {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        match &self.spec {
            Some(s) => deployment_spec(&mut errs, s),
            None => errs.push(FieldError::required("spec", "")),
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        if let (Some(n), Some(o)) = (&self.spec, &old.spec) {
            immutable(&mut errs, "spec.selector", &n.selector, &o.selector);
        }
        errs
    }
}

impl Validation for ReplicaSet {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        opt_nonneg(&mut errs, "spec.replicas", spec.replicas);
        opt_nonneg(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
        let sel = apps_selector(&mut errs, &spec.selector, "deployment");
        match &spec.template {
            Some(t) => replicated_template(&mut errs, sel.as_ref(), t, "spec.template", "ReplicaSet"),
            None => errs.push(FieldError::required("spec.template", "")),
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        if let (Some(n), Some(o)) = (&self.spec, &old.spec) {
            immutable(&mut errs, "spec.selector", &n.selector, &o.selector);
        }
        errs
    }
}

impl Validation for ReplicationController {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        opt_nonneg(&mut errs, "spec.replicas", spec.replicas);
        opt_nonneg(&mut errs, "spec.minReadySeconds", spec.min_ready_seconds);
        let selector = spec.selector.clone().unwrap_or_default();
        if selector.is_empty() {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            errs.extend(validate_labels(&selector, "spec.selector"));
        }
        let sel = LabelSelector { match_labels: Some(selector), ..Default::default() };
        let parsed = LabelSelectorExpr::from_label_selector(Some(&sel)).ok();
        match &spec.template {
            Some(t) => replicated_template(&mut errs, parsed.as_ref(), t, "spec.template", "ReplicationController"),
            None => errs.push(FieldError::required("spec.template", "")),
        }
        errs
    }
}

fn statefulset_spec(errs: &mut ErrorList, spec: &StatefulSetSpec) {
    supported(
        errs,
        "spec.podManagementPolicy",
        spec.pod_management_policy.as_deref().unwrap_or("OrderedReady"),
        &["OrderedReady", "Parallel"],
    );
    if let Some(s) = &spec.update_strategy {
        let ty = s.type_.as_deref().unwrap_or("RollingUpdate");
        supported(errs, "spec.updateStrategy.type", ty, &["RollingUpdate", "OnDelete"]);
        if let Some(ru) = &s.rolling_update {
            if ty != "RollingUpdate" {
                errs.push(FieldError::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    json(ru),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
            opt_nonneg(errs, "spec.updateStrategy.rollingUpdate.partition", ru.partition);
            if let Some(u) = &ru.max_unavailable {
                let at = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                int_or_percent(errs, at, u, true);
                if int_or_percent_value(u) == Some(0) {
                    errs.push(FieldError::invalid(at, json(u), "cannot be 0"));
                }
            }
        }
    }
    if let Some(p) = &spec.persistent_volume_claim_retention_policy {
        for (name, v) in [("whenDeleted", &p.when_deleted), ("whenScaled", &p.when_scaled)] {
            if let Some(v) = v {
                supported(errs, &format!("spec.persistentVolumeClaimRetentionPolicy.{name}"), v, &["Retain", "Delete"]);
            }
        }
    }
    opt_nonneg(errs, "spec.replicas", spec.replicas);
    opt_nonneg(errs, "spec.minReadySeconds", spec.min_ready_seconds);
    opt_nonneg(errs, "spec.revisionHistoryLimit", spec.revision_history_limit);
    if let Some(o) = &spec.ordinals {
        opt_nonneg(errs, "spec.ordinals.start", o.start);
    }
    let sel = apps_selector(errs, &spec.selector, "statefulset");
    replicated_template(errs, sel.as_ref(), &with_claim_volumes(spec), "spec.template", "StatefulSet");
}

/// The template with a volume for every claim template it does not already name, so volume
/// mounts of claims validate (upstream does not check the template's volumes against its mounts
/// for StatefulSets, because the controller adds the claims' volumes).
fn with_claim_volumes(spec: &StatefulSetSpec) -> PodTemplateSpec {
    let mut t = spec.template.clone();
    if let Some(pod) = t.spec.as_mut() {
        for name in spec.volume_claim_templates.iter().flatten().filter_map(|c| c.metadata.name.as_ref()) {
            let volumes = pod.volumes.get_or_insert_with(Vec::new);
            if !volumes.iter().any(|v| &v.name == name) {
                volumes.push(Volume {
                    name: name.clone(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                });
            }
        }
    }
    t
}

impl Validation for StatefulSet {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        match &self.spec {
            Some(s) => statefulset_spec(&mut errs, s),
            None => errs.push(FieldError::required("spec", "")),
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        let (Some(n), Some(o)) = (&self.spec, &old.spec) else {
            return errs;
        };
        let mut restricted = o.clone();
        restricted.replicas = n.replicas;
        restricted.ordinals.clone_from(&n.ordinals);
        restricted.template.clone_from(&n.template);
        restricted.update_strategy.clone_from(&n.update_strategy);
        restricted.persistent_volume_claim_retention_policy.clone_from(&n.persistent_volume_claim_retention_policy);
        restricted.min_ready_seconds = n.min_ready_seconds;
        restricted.revision_history_limit = n.revision_history_limit;
        if &restricted != n {
            errs.push(FieldError::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
        errs
    }
}

fn daemonset_spec(errs: &mut ErrorList, spec: &DaemonSetSpec) {
    let sel = apps_selector(errs, &spec.selector, "daemonset");
    replicated_template(errs, sel.as_ref(), &spec.template, "spec.template", "DaemonSet");
    opt_nonneg(errs, "spec.minReadySeconds", spec.min_ready_seconds);
    opt_nonneg(errs, "spec.revisionHistoryLimit", spec.revision_history_limit);
    if let Some(s) = &spec.update_strategy {
        let ty = s.type_.as_deref().unwrap_or("RollingUpdate");
        supported(errs, "spec.updateStrategy.type", ty, &["OnDelete", "RollingUpdate"]);
        if ty == "RollingUpdate"
            && let Some(ru) = &s.rolling_update
        {
            let p = "spec.updateStrategy.rollingUpdate";
            rolling_update(errs, p, ru.max_unavailable.as_ref(), ru.max_surge.as_ref());
            let nonzero = |v: Option<&IntOrString>| v.is_some_and(|v| int_or_percent_value(v).is_some_and(|n| n != 0));
            if nonzero(ru.max_unavailable.as_ref()) && nonzero(ru.max_surge.as_ref()) {
                errs.push(FieldError::invalid(
                    child(p, "maxSurge"),
                    json(&ru.max_surge),
                    "may not be set when maxUnavailable is non-zero",
                ));
            }
        }
    }
}

impl Validation for DaemonSet {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        match &self.spec {
            Some(s) => daemonset_spec(&mut errs, s),
            None => errs.push(FieldError::required("spec", "")),
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        if let (Some(n), Some(o)) = (&self.spec, &old.spec) {
            immutable(&mut errs, "spec.selector", &n.selector, &o.selector);
        }
        errs
    }
}

impl Validation for ControllerRevision {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        nonneg(&mut errs, "revision", self.revision);
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        immutable(&mut errs, "data", &self.data, &old.data);
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Defaulting;
    use crate::validation::ErrorKind;
    use serde_json::{Value, json};

    fn spec() -> Value {
        json!({"replicas": 2, "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}})
    }

    fn build<T: serde::de::DeserializeOwned + Defaulting>(spec: Value) -> T {
        let mut t: T = serde_json::from_value(json!({"metadata": {"name": "w"}, "spec": spec})).expect("object");
        t.set_defaults();
        t
    }

    fn with(ptr: &str, v: Value) -> Value {
        let mut s = spec();
        match s.pointer_mut(ptr) {
            Some(slot) => *slot = v,
            None => {
                let (parent, last) = ptr.rsplit_once('/').expect("pointer");
                s.pointer_mut(parent).expect("parent")[last] = v;
            }
        }
        s
    }

    fn check<T: serde::de::DeserializeOwned + Defaulting + Validation>(cases: &[(Value, &str, ErrorKind)]) {
        assert_eq!(build::<T>(spec()).validate_create(), ErrorList::new());
        for (s, field, kind) in cases {
            let errs = build::<T>(s.clone()).validate_create();
            assert!(
                errs.iter().any(|e| e.field == *field && e.kind == *kind),
                "{s}: want {kind:?} at {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn deployments() {
        check::<Deployment>(&[
            (with("/selector", json!({})), "spec.selector", ErrorKind::Invalid),
            (with("/selector/matchLabels/app", json!("b")), "spec.template.metadata.labels", ErrorKind::Invalid),
            (with("/replicas", json!(-1)), "spec.replicas", ErrorKind::Invalid),
            (
                with("/template/spec/restartPolicy", json!("Never")),
                "spec.template.spec.restartPolicy",
                ErrorKind::NotSupported,
            ),
            (
                with("/template/spec/containers/0/image", json!("")),
                "spec.template.spec.containers[0].image",
                ErrorKind::Required,
            ),
            (with("/strategy", json!({"type": "Bogus"})), "spec.strategy.type", ErrorKind::NotSupported),
            (
                with("/strategy", json!({"type": "Recreate", "rollingUpdate": {}})),
                "spec.strategy.rollingUpdate",
                ErrorKind::Forbidden,
            ),
            (
                with("/strategy", json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "0%"}})),
                "spec.strategy.rollingUpdate.maxUnavailable",
                ErrorKind::Invalid,
            ),
            (
                with("/strategy", json!({"rollingUpdate": {"maxUnavailable": "150%"}})),
                "spec.strategy.rollingUpdate.maxUnavailable",
                ErrorKind::Invalid,
            ),
            (with("/progressDeadlineSeconds", json!(0)), "spec.progressDeadlineSeconds", ErrorKind::Invalid),
        ]);
        let errs = build::<Deployment>(with("/selector/matchLabels/app", json!("b"))).validate_create();
        assert_eq!(
            errs[0].to_string(),
            "spec.template.metadata.labels: Invalid value: {\"app\":\"a\"}: `selector` does not match template `labels`"
        );
    }

    #[test]
    fn deployment_selector_is_immutable() {
        let old = build::<Deployment>(spec());
        let mut s = spec();
        s["selector"]["matchLabels"]["tier"] = json!("x");
        s["template"]["metadata"]["labels"]["tier"] = json!("x");
        let errs = build::<Deployment>(s).validate_update(&old);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!((errs[0].field.as_str(), errs[0].kind), ("spec.selector", ErrorKind::Invalid));
        assert_eq!(errs[0].detail, "field is immutable");
    }

    #[test]
    fn replicasets_and_daemonsets() {
        check::<ReplicaSet>(&[(with("/selector", json!({})), "spec.selector", ErrorKind::Invalid)]);
        let mut ds = spec();
        ds.as_object_mut().expect("object").remove("replicas");
        assert_eq!(build::<DaemonSet>(ds.clone()).validate_create(), ErrorList::new());
        ds["updateStrategy"] = json!({"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        let errs = build::<DaemonSet>(ds).validate_create();
        assert!(errs.iter().any(|e| e.field == "spec.updateStrategy.rollingUpdate.maxUnavailable"), "{errs:?}");
    }

    #[test]
    fn replication_controllers() {
        let rc = |s: Value| -> ReplicationController {
            let mut r: ReplicationController =
                serde_json::from_value(json!({"metadata": {"name": "r"}, "spec": s})).expect("rc");
            r.set_defaults();
            r
        };
        let mut s = spec();
        s["selector"] = json!({"app": "a"});
        assert_eq!(rc(s.clone()).validate_create(), ErrorList::new());
        s["selector"] = json!({"app": "b"});
        let errs = rc(s).validate_create();
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn statefulset_mounts_may_name_claim_templates() {
        let mut s = spec();
        s["template"]["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "www", "mountPath": "/data"}]);
        assert_eq!(
            build::<StatefulSet>(s.clone()).validate_create()[0].field,
            "spec.template.spec.containers[0].volumeMounts[0].name"
        );
        s["volumeClaimTemplates"] = json!([{"metadata": {"name": "www"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]);
        assert_eq!(build::<StatefulSet>(s).validate_create(), ErrorList::new());
    }

    #[test]
    fn statefulset_max_unavailable() {
        let with = |v: Value| {
            let mut s = spec();
            s["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": v}});
            build::<StatefulSet>(s).validate_create().iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert_eq!(with(json!(2)), Vec::<String>::new());
        assert_eq!(with(json!("50%")), Vec::<String>::new());
        let at = "spec.updateStrategy.rollingUpdate.maxUnavailable";
        assert_eq!(with(json!(0)), [format!("{at}: Invalid value: 0: cannot be 0")]);
        assert_eq!(with(json!("0%")), [format!("{at}: Invalid value: \"0%\": cannot be 0")]);
        assert_eq!(with(json!("150%")), [format!("{at}: Invalid value: \"150%\": must not be greater than 100%")]);
        assert_eq!(with(json!(-1)), [format!("{at}: Invalid value: -1: must be greater than or equal to 0")]);
    }

    #[test]
    fn statefulset_updates_are_restricted() {
        let mut s = spec();
        s["serviceName"] = json!("svc");
        let old = build::<StatefulSet>(s.clone());
        assert_eq!(old.validate_create(), ErrorList::new());
        let mut scaled = s.clone();
        scaled["replicas"] = json!(5);
        scaled["template"]["spec"]["containers"][0]["image"] = json!("x:2");
        assert_eq!(build::<StatefulSet>(scaled).validate_update(&old), ErrorList::new());
        let mut renamed = s;
        renamed["serviceName"] = json!("other");
        let errs = build::<StatefulSet>(renamed).validate_update(&old);
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].field.as_str(), errs[0].kind), ("spec", ErrorKind::Forbidden));
    }
}
