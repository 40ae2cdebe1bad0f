//! Defaults and strategies of the networking, autoscaling, storage and scheduling kinds.

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerStatus, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};

use super::{or_set, or_str};
use crate::kinds::{Defaulting, Strategy};

impl Defaulting for NetworkPolicy {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        let ports = spec
            .ingress
            .iter_mut()
            .flatten()
            .flat_map(|r| r.ports.iter_mut().flatten())
            .chain(spec.egress.iter_mut().flatten().flat_map(|r| r.ports.iter_mut().flatten()));
        for p in ports {
            or_str(&mut p.protocol, "TCP");
        }
        if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
            let mut types = vec!["Ingress".to_string()];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push("Egress".to_string());
            }
            spec.policy_types = Some(types);
        }
    }
}

impl Strategy for NetworkPolicy {}

fn policy(type_: &str, value: i32) -> HPAScalingPolicy {
    HPAScalingPolicy { type_: type_.to_string(), value, period_seconds: 15 }
}

/// Fills a scaling direction's unset fields (upstream `GenerateHPAScale{Up,Down}Rules`).
fn default_rules(rules: &mut Option<HPAScalingRules>, up: bool) {
    let r = rules.get_or_insert_with(HPAScalingRules::default);
    if up {
        or_set(&mut r.stabilization_window_seconds, 0);
    }
    or_str(&mut r.select_policy, "Max");
    if r.policies.as_ref().is_none_or(Vec::is_empty) {
        r.policies =
            Some(if up { vec![policy("Pods", 4), policy("Percent", 100)] } else { vec![policy("Percent", 100)] });
    }
}

impl Defaulting for HorizontalPodAutoscaler {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        or_set(&mut spec.min_replicas, 1);
        if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
            spec.metrics = Some(vec![MetricSpec {
                type_: "Resource".to_string(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_string(),
                    target: MetricTarget {
                        type_: "Utilization".to_string(),
                        average_utilization: Some(80),
                        ..Default::default()
                    },
                }),
                ..Default::default()
            }]);
        }
        if let Some(b) = spec.behavior.as_mut() {
            default_rules(&mut b.scale_up, true);
            default_rules(&mut b.scale_down, false);
        }
    }
}

impl Strategy for HorizontalPodAutoscaler {
    fn prepare_for_create(&mut self) {
        self.status = Some(HorizontalPodAutoscalerStatus::default());
    }
}

impl Defaulting for StorageClass {
    fn set_defaults(&mut self) {
        or_str(&mut self.reclaim_policy, "Delete");
        or_str(&mut self.volume_binding_mode, "Immediate");
    }
}

impl Strategy for StorageClass {}

impl Defaulting for PriorityClass {
    fn set_defaults(&mut self) {
        or_str(&mut self.preemption_policy, "PreemptLowerPriority");
    }
}

impl Strategy for PriorityClass {}

impl Defaulting for CSIDriver {
    fn set_defaults(&mut self) {
        let s = &mut self.spec;
        or_set(&mut s.attach_required, true);
        or_set(&mut s.pod_info_on_mount, false);
        or_set(&mut s.storage_capacity, false);
        or_str(&mut s.fs_group_policy, "ReadWriteOnceWithFSType");
        or_set(&mut s.requires_republish, false);
        or_set(&mut s.se_linux_mount, false);
        if s.volume_lifecycle_modes.as_ref().is_none_or(Vec::is_empty) {
            s.volume_lifecycle_modes = Some(vec!["Persistent".to_string()]);
        }
    }
}

impl Strategy for CSIDriver {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn network_policy_types() {
        let cases = [
            (json!({"podSelector": {}}), json!(["Ingress"])),
            (json!({"podSelector": {}, "egress": [{}]}), json!(["Ingress", "Egress"])),
            (json!({"podSelector": {}, "policyTypes": ["Egress"]}), json!(["Egress"])),
        ];
        for (spec, want) in cases {
            let mut np: NetworkPolicy =
                serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": spec.clone()})).expect("np");
            np.set_defaults();
            assert_eq!(serde_json::to_value(&np).expect("json")["spec"]["policyTypes"], want, "{spec}");
        }
    }

    #[test]
    fn hpa_defaults() {
        let mut h: HorizontalPodAutoscaler = serde_json::from_value(json!({"metadata": {"name": "h"}, "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "d"}, "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}))
        .expect("hpa");
        h.set_defaults();
        let s = serde_json::to_value(&h).expect("json")["spec"].clone();
        assert_eq!(s["minReplicas"], 1);
        assert_eq!(
            s["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}])
        );
        assert_eq!(
            s["behavior"]["scaleUp"],
            json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]})
        );
        assert_eq!(
            s["behavior"]["scaleDown"],
            json!({"stabilizationWindowSeconds": 60, "selectPolicy": "Max", "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15}]})
        );
    }

    #[test]
    fn storage_and_priority_class_defaults() {
        let mut sc: StorageClass =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "provisioner": "p"})).expect("sc");
        sc.set_defaults();
        assert_eq!(sc.reclaim_policy.as_deref(), Some("Delete"));
        assert_eq!(sc.volume_binding_mode.as_deref(), Some("Immediate"));
        let mut pc: PriorityClass = serde_json::from_value(json!({"metadata": {"name": "p"}, "value": 5})).expect("pc");
        pc.set_defaults();
        assert_eq!(pc.preemption_policy.as_deref(), Some("PreemptLowerPriority"));
    }
}
