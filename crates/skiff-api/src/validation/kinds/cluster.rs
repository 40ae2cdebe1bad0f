//! Validation of HorizontalPodAutoscaler, PodDisruptionBudget, PriorityClass, StorageClass and
//! Lease.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscaler};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::StorageClass;

use super::common::{
    each, immutable, int_or_percent, json, label_selector, nonneg, positive, qualified_name, supported, supported_opt,
};
use crate::kinds::Validation;
use crate::validation::names::is_path_segment_name;
use crate::validation::{ErrorList, FieldError, child, index};

/// Highest priority a PriorityClass outside the `system-` prefix may have.
const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;

fn scaling_rules(errs: &mut ErrorList, r: &HPAScalingRules, path: &str) {
    supported_opt(errs, &child(path, "selectPolicy"), r.select_policy.as_deref(), &["Disabled", "Max", "Min"]);
    if let Some(w) = r.stabilization_window_seconds
        && !(0..=3600).contains(&w)
    {
        errs.push(FieldError::invalid(
            child(path, "stabilizationWindowSeconds"),
            w,
            "must be less than or equal to 3600",
        ));
    }
    for (i, p) in r.policies.iter().flatten().enumerate() {
        let pp = index(&child(path, "policies"), i);
        supported(errs, &child(&pp, "type"), &p.type_, &["Percent", "Pods"]);
        positive(errs, &child(&pp, "value"), i64::from(p.value));
        if !(1..=1800).contains(&p.period_seconds) {
            errs.push(FieldError::invalid(
                child(&pp, "periodSeconds"),
                p.period_seconds,
                "must be greater than zero and less than or equal to 1800",
            ));
        }
    }
}

impl Validation for HorizontalPodAutoscaler {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        let r = &spec.scale_target_ref;
        if r.kind.is_empty() {
            errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
        } else {
            each(&mut errs, "spec.scaleTargetRef.kind", &r.kind, is_path_segment_name(&r.kind));
        }
        if r.name.is_empty() {
            errs.push(FieldError::required("spec.scaleTargetRef.name", ""));
        } else {
            each(&mut errs, "spec.scaleTargetRef.name", &r.name, is_path_segment_name(&r.name));
        }
        let min = spec.min_replicas.unwrap_or(1);
        if min < 1 {
            errs.push(FieldError::invalid("spec.minReplicas", min, "must be greater than or equal to 1"));
        }
        if spec.max_replicas < 1 {
            errs.push(FieldError::invalid("spec.maxReplicas", spec.max_replicas, "must be greater than 0"));
        } else if spec.max_replicas < min {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                spec.max_replicas,
                "must be greater than or equal to `minReplicas`",
            ));
        }
        for (i, m) in spec.metrics.iter().flatten().enumerate() {
            let p = index("spec.metrics", i);
            let set = [
                ("Object", m.object.is_some()),
                ("Pods", m.pods.is_some()),
                ("Resource", m.resource.is_some()),
                ("ContainerResource", m.container_resource.is_some()),
                ("External", m.external.is_some()),
            ];
            let types: Vec<&str> = set.iter().map(|(t, _)| *t).collect();
            supported(&mut errs, &child(&p, "type"), &m.type_, &types);
            if set.iter().any(|(t, on)| *t == m.type_ && !on) {
                errs.push(FieldError::required(p.clone(), "must populate information for the given metric source"));
            }
            if set.iter().filter(|(_, on)| *on).count() > 1 {
                errs.push(FieldError::forbidden(&p, "must populate the given metric source only"));
            }
            if let Some(r) = &m.resource {
                let tp = child(&child(&p, "resource"), "target");
                supported(&mut errs, &child(&tp, "type"), &r.target.type_, &["Utilization", "Value", "AverageValue"]);
                if let Some(u) = r.target.average_utilization {
                    positive(&mut errs, &child(&tp, "averageUtilization"), i64::from(u));
                }
            }
        }
        if let Some(b) = &spec.behavior {
            if let Some(r) = &b.scale_up {
                scaling_rules(&mut errs, r, "spec.behavior.scaleUp");
            }
            if let Some(r) = &b.scale_down {
                scaling_rules(&mut errs, r, "spec.behavior.scaleDown");
            }
        }
        errs
    }
}

impl Validation for PodDisruptionBudget {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else { return errs };
        if spec.min_available.is_some() && spec.max_unavailable.is_some() {
            errs.push(FieldError::invalid("spec", json(spec), "minAvailable and maxUnavailable cannot be both set"));
        }
        if let Some(v) = &spec.min_available {
            int_or_percent(&mut errs, "spec.minAvailable", v, true);
        }
        if let Some(v) = &spec.max_unavailable {
            int_or_percent(&mut errs, "spec.maxUnavailable", v, true);
        }
        if let Some(s) = &spec.selector {
            label_selector(&mut errs, "spec.selector", s);
        }
        supported_opt(
            &mut errs,
            "spec.unhealthyPodEvictionPolicy",
            spec.unhealthy_pod_eviction_policy.as_deref(),
            &["AlwaysAllow", "IfHealthyBudget"],
        );
        errs
    }
}

impl Validation for PriorityClass {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if self.value > HIGHEST_USER_PRIORITY && !name.starts_with("system-") {
            errs.push(FieldError::forbidden(
                "value",
                format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
            ));
        }
        supported_opt(
            &mut errs,
            "preemptionPolicy",
            self.preemption_policy.as_deref(),
            &["Never", "PreemptLowerPriority"],
        );
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        if self.value != old.value {
            errs.push(FieldError::forbidden("value", "may not be changed in an update."));
        }
        immutable(&mut errs, "preemptionPolicy", &self.preemption_policy, &old.preemption_policy);
        errs
    }
}

impl Validation for StorageClass {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        if self.provisioner.is_empty() {
            errs.push(FieldError::required("provisioner", ""));
        } else {
            qualified_name(&mut errs, "provisioner", &self.provisioner.to_lowercase());
        }
        let mut size = 0;
        for (k, v) in self.parameters.iter().flatten() {
            if k.is_empty() {
                errs.push(FieldError::invalid("parameters", k.as_str(), "field can not be empty."));
            }
            size += k.len() + v.len();
        }
        if size > 256 * 1024 {
            errs.push(FieldError::too_long("parameters", 256 * 1024));
        }
        supported_opt(&mut errs, "reclaimPolicy", self.reclaim_policy.as_deref(), &["Delete", "Retain"]);
        supported_opt(
            &mut errs,
            "volumeBindingMode",
            self.volume_binding_mode.as_deref(),
            &["Immediate", "WaitForFirstConsumer"],
        );
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        if self.parameters != old.parameters {
            errs.push(FieldError::forbidden("parameters", "updates to parameters are forbidden."));
        }
        if self.provisioner != old.provisioner {
            errs.push(FieldError::forbidden("provisioner", "updates to provisioner are forbidden."));
        }
        if self.reclaim_policy != old.reclaim_policy {
            errs.push(FieldError::forbidden("reclaimPolicy", "updates to reclaimPolicy are forbidden."));
        }
        immutable(&mut errs, "volumeBindingMode", &self.volume_binding_mode, &old.volume_binding_mode);
        errs
    }
}

impl Validation for Lease {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else { return errs };
        if let Some(d) = spec.lease_duration_seconds {
            positive(&mut errs, "spec.leaseDurationSeconds", i64::from(d));
        }
        if let Some(t) = spec.lease_transitions {
            nonneg(&mut errs, "spec.leaseTransitions", i64::from(t));
        }
        if spec.preferred_holder.as_deref().is_some_and(|h| !h.is_empty()) && spec.strategy.is_none() {
            errs.push(FieldError::forbidden("spec.preferredHolder", "may only be specified if `strategy` is defined"));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Defaulting;
    use crate::validation::ErrorKind;
    use serde_json::json;

    fn has(errs: &ErrorList, field: &str, kind: ErrorKind) -> bool {
        errs.iter().any(|e| e.field == field && e.kind == kind)
    }

    #[test]
    fn hpas() {
        let hpa = |spec: serde_json::Value| -> HorizontalPodAutoscaler {
            let mut h: HorizontalPodAutoscaler =
                serde_json::from_value(json!({"metadata": {"name": "h"}, "spec": spec})).expect("hpa");
            h.set_defaults();
            h
        };
        let target = json!({"kind": "Deployment", "name": "d"});
        assert_eq!(hpa(json!({"scaleTargetRef": target, "maxReplicas": 3})).validate_create(), ErrorList::new());
        let errs = hpa(json!({"scaleTargetRef": {"kind": "", "name": "d"}, "minReplicas": 0, "maxReplicas": 3}))
            .validate_create();
        assert!(
            has(&errs, "spec.scaleTargetRef.kind", ErrorKind::Required)
                && has(&errs, "spec.minReplicas", ErrorKind::Invalid)
        );
        let errs = hpa(json!({"scaleTargetRef": target, "minReplicas": 5, "maxReplicas": 3,
            "metrics": [{"type": "Pods"}]}))
        .validate_create();
        assert!(
            has(&errs, "spec.maxReplicas", ErrorKind::Invalid) && has(&errs, "spec.metrics[0]", ErrorKind::Required),
            "{errs:?}"
        );
    }

    #[test]
    fn pdbs_priority_and_storage_classes() {
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"minAvailable": 1, "maxUnavailable": "50%"}}))
        .expect("pdb");
        assert!(has(&pdb.validate_create(), "spec", ErrorKind::Invalid));
        let pc: PriorityClass =
            serde_json::from_value(json!({"metadata": {"name": "high"}, "value": 2_000_000_000})).expect("pc");
        assert!(has(&pc.validate_create(), "value", ErrorKind::Forbidden));
        let sys: PriorityClass =
            serde_json::from_value(json!({"metadata": {"name": "system-x"}, "value": 2_000_000_000})).expect("pc");
        assert_eq!(sys.validate_create(), ErrorList::new());
        let mut sc: StorageClass =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "provisioner": ""})).expect("sc");
        sc.set_defaults();
        assert!(has(&sc.validate_create(), "provisioner", ErrorKind::Required));
        let mut old: StorageClass = serde_json::from_value(
            json!({"metadata": {"name": "s"}, "provisioner": "a.io/p", "parameters": {"a": "1"}}),
        )
        .expect("sc");
        old.set_defaults();
        let mut new = old.clone();
        new.parameters = None;
        assert!(has(&new.validate_update(&old), "parameters", ErrorKind::Forbidden));
        let lease: Lease =
            serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0}}))
                .expect("lease");
        assert!(has(&lease.validate_create(), "spec.leaseDurationSeconds", ErrorKind::Invalid));
    }
}
