//! Defaults and strategies of the replicated workloads: ReplicationController (core/v1) and the
//! apps/v1 Deployment, ReplicaSet, StatefulSet and DaemonSet.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetStatus, DaemonSetUpdateStrategy, Deployment, DeploymentStatus, DeploymentStrategy, ReplicaSet,
    ReplicaSetStatus, RollingUpdateDaemonSet, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetStatus, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{ReplicationController, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{default_pod_template, or_set, or_str};
use crate::kinds::{Defaulting, Strategy};

impl Defaulting for ReplicationController {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        let template_labels = spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.labels.clone());
        if let Some(labels) = template_labels.filter(|l| !l.is_empty()) {
            if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
                spec.selector = Some(labels.clone());
            }
            if self.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
                self.metadata.labels = Some(labels);
            }
        }
        or_set(&mut spec.replicas, 1);
        if let Some(t) = spec.template.as_mut() {
            default_pod_template(t);
        }
    }
}

impl Strategy for ReplicationController {
    fn prepare_for_create(&mut self) {
        self.status = Some(ReplicationControllerStatus::default());
    }
}

impl Defaulting for ReplicaSet {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        or_set(&mut spec.replicas, 1);
        if let Some(t) = spec.template.as_mut() {
            default_pod_template(t);
        }
    }
}

impl Strategy for ReplicaSet {
    fn prepare_for_create(&mut self) {
        self.status = Some(ReplicaSetStatus::default());
    }
}

fn quarter() -> IntOrString {
    IntOrString::String("25%".to_string())
}

impl Defaulting for Deployment {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        or_set(&mut spec.replicas, 1);
        let strategy = spec.strategy.get_or_insert_with(DeploymentStrategy::default);
        or_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy.rolling_update.get_or_insert_with(RollingUpdateDeployment::default);
            or_set(&mut ru.max_unavailable, quarter());
            or_set(&mut ru.max_surge, quarter());
        }
        or_set(&mut spec.revision_history_limit, 10);
        or_set(&mut spec.progress_deadline_seconds, 600);
        default_pod_template(&mut spec.template);
    }
}

impl Strategy for Deployment {
    fn prepare_for_create(&mut self) {
        self.status = Some(DeploymentStatus::default());
    }
}

impl Defaulting for StatefulSet {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        or_str(&mut spec.pod_management_policy, "OrderedReady");
        let strategy = spec.update_strategy.get_or_insert_with(StatefulSetUpdateStrategy::default);
        or_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy.rolling_update.get_or_insert_with(RollingUpdateStatefulSetStrategy::default);
            or_set(&mut ru.partition, 0);
        }
        let policy = spec
            .persistent_volume_claim_retention_policy
            .get_or_insert_with(StatefulSetPersistentVolumeClaimRetentionPolicy::default);
        or_str(&mut policy.when_deleted, "Retain");
        or_str(&mut policy.when_scaled, "Retain");
        or_set(&mut spec.replicas, 1);
        or_set(&mut spec.revision_history_limit, 10);
        for claim in spec.volume_claim_templates.iter_mut().flatten() {
            claim.set_defaults();
        }
        default_pod_template(&mut spec.template);
    }
}

impl Strategy for StatefulSet {
    fn prepare_for_create(&mut self) {
        self.status = Some(StatefulSetStatus::default());
    }
}

impl Defaulting for DaemonSet {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        let strategy = spec.update_strategy.get_or_insert_with(DaemonSetUpdateStrategy::default);
        or_str(&mut strategy.type_, "RollingUpdate");
        if strategy.type_.as_deref() == Some("RollingUpdate") {
            let ru = strategy.rolling_update.get_or_insert_with(RollingUpdateDaemonSet::default);
            or_set(&mut ru.max_unavailable, IntOrString::Int(1));
            or_set(&mut ru.max_surge, IntOrString::Int(0));
        }
        or_set(&mut spec.revision_history_limit, 10);
        default_pod_template(&mut spec.template);
    }
}

/// The annotation apps/v1 keeps a DaemonSet's template generation in (the internal
/// `spec.templateGeneration`): 1 on create, bumped with every template change.
pub const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn template_generation(ds: &DaemonSet) -> i64 {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DAEMONSET_TEMPLATE_GENERATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn set_template_generation(ds: &mut DaemonSet, generation: i64) {
    ds.metadata
        .annotations
        .get_or_insert_default()
        .insert(DAEMONSET_TEMPLATE_GENERATION.into(), generation.to_string());
}

impl Strategy for DaemonSet {
    fn prepare_for_create(&mut self) {
        self.status = Some(DaemonSetStatus::default());
        let generation = template_generation(self).max(1);
        set_template_generation(self, generation);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        let template = |d: &DaemonSet| d.spec.as_ref().map(|s| s.template.clone());
        let generation = template_generation(old);
        let generation = if template(self) != template(old) { generation + 1 } else { generation };
        set_template_generation(self, generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> serde_json::Value {
        json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}})
    }

    fn spec_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).expect("serialise")["spec"].clone()
    }

    #[test]
    fn deployment_defaults() {
        let mut d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": template()}}))
        .expect("deployment");
        d.set_defaults();
        let s = spec_json(&d);
        assert_eq!(s["replicas"], 1);
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(s["revisionHistoryLimit"], 10);
        assert_eq!(s["progressDeadlineSeconds"], 600);
        assert_eq!(s["template"]["spec"]["restartPolicy"], "Always");
        d.prepare_for_create();
        assert_eq!(serde_json::to_value(&d).expect("json")["status"], json!({}));
    }

    #[test]
    fn recreate_deployment_gets_no_rolling_update() {
        let mut d: Deployment = serde_json::from_value(json!({"metadata": {"name": "d"},
            "spec": {"selector": {}, "strategy": {"type": "Recreate"}, "template": template()}}))
        .expect("deployment");
        d.set_defaults();
        assert_eq!(spec_json(&d)["strategy"], json!({"type": "Recreate"}));
    }

    #[test]
    fn replication_controller_takes_selector_and_labels_from_template() {
        let mut rc: ReplicationController =
            serde_json::from_value(json!({"metadata": {"name": "r"}, "spec": {"template": template()}})).expect("rc");
        rc.set_defaults();
        assert_eq!(spec_json(&rc)["selector"], json!({"app": "a"}));
        assert_eq!(spec_json(&rc)["replicas"], 1);
        assert_eq!(serde_json::to_value(&rc.metadata).expect("json")["labels"], json!({"app": "a"}));
    }

    #[test]
    fn statefulset_defaults() {
        let mut s: StatefulSet = serde_json::from_value(json!({"metadata": {"name": "s"},
            "spec": {"selector": {}, "template": template(), "serviceName": "s",
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}))
        .expect("sts");
        s.set_defaults();
        let j = spec_json(&s);
        assert_eq!(j["replicas"], 1);
        assert_eq!(j["podManagementPolicy"], "OrderedReady");
        assert_eq!(j["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!(j["revisionHistoryLimit"], 10);
        assert_eq!(j["persistentVolumeClaimRetentionPolicy"], json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        assert_eq!(j["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
        assert_eq!(j["volumeClaimTemplates"][0]["status"]["phase"], "Pending");
    }

    #[test]
    fn daemonset_defaults() {
        let mut d: DaemonSet = serde_json::from_value(
            json!({"metadata": {"name": "d"}, "spec": {"selector": {}, "template": template()}}),
        )
        .expect("ds");
        d.set_defaults();
        let j = spec_json(&d);
        assert_eq!(
            j["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(j["revisionHistoryLimit"], 10);
    }

    #[test]
    fn daemonset_template_generation_follows_template_changes() {
        let generation =
            |d: &DaemonSet| d.metadata.annotations.as_ref().and_then(|a| a.get(DAEMONSET_TEMPLATE_GENERATION)).cloned();
        let mut d: DaemonSet = serde_json::from_value(
            json!({"metadata": {"name": "d"}, "spec": {"selector": {}, "template": template()}}),
        )
        .expect("ds");
        d.prepare_for_create();
        assert_eq!(generation(&d).as_deref(), Some("1"));
        let mut same = d.clone();
        same.metadata.annotations = None;
        same.prepare_for_update(&d);
        assert_eq!(generation(&same).as_deref(), Some("1"));
        let mut changed = d.clone();
        if let Some(s) = changed.spec.as_mut() {
            s.min_ready_seconds = Some(5);
        }
        changed.prepare_for_update(&d);
        assert_eq!(generation(&changed).as_deref(), Some("1"), "only template changes count");
        if let Some(c) =
            changed.spec.as_mut().and_then(|s| s.template.spec.as_mut()).and_then(|s| s.containers.first_mut())
        {
            c.image = Some("x:2".into());
        }
        changed.prepare_for_update(&d);
        assert_eq!(generation(&changed).as_deref(), Some("2"));
    }
}
