//! Defaults and strategies of batch/v1 Job and CronJob.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::{default_pod_template, or_set, or_str};
use crate::kinds::{Defaulting, Strategy};

/// Label (and selector key) carrying the Job's uid.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// Legacy spelling of [`CONTROLLER_UID_LABEL`], still added to pods.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// Label carrying the Job's name.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// Legacy spelling of [`JOB_NAME_LABEL`], still added to pods.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

impl Defaulting for Job {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        if spec.completions.is_none() && spec.parallelism.is_none() {
            spec.completions = Some(1);
        }
        or_set(&mut spec.parallelism, 1);
        if spec.backoff_limit.is_none() {
            spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() { i32::MAX } else { 6 });
        }
        or_str(&mut spec.completion_mode, "NonIndexed");
        or_set(&mut spec.suspend, false);
        let replacement = if spec.pod_failure_policy.is_some() { "Failed" } else { "TerminatingOrFailed" };
        or_str(&mut spec.pod_replacement_policy, replacement);
        let template_labels = spec.template.metadata.as_ref().and_then(|m| m.labels.clone());
        if let Some(labels) = template_labels.filter(|l| !l.is_empty())
            && self.metadata.labels.as_ref().is_none_or(|l| l.is_empty())
        {
            self.metadata.labels = Some(labels);
        }
        default_pod_template(&mut spec.template);
    }
}

impl Strategy for Job {
    fn prepare_for_create(&mut self) {
        self.status = Some(JobStatus::default());
        let name = self.metadata.name.clone().unwrap_or_default();
        let uid = self.metadata.uid.clone().unwrap_or_default();
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        if spec.manual_selector == Some(true) {
            return;
        }
        let meta = spec.template.metadata.get_or_insert_with(ObjectMeta::default);
        let labels = meta.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in [
            (LEGACY_JOB_NAME_LABEL, &name),
            (JOB_NAME_LABEL, &name),
            (LEGACY_CONTROLLER_UID_LABEL, &uid),
            (CONTROLLER_UID_LABEL, &uid),
        ] {
            labels.entry(k.to_string()).or_insert_with(|| v.clone());
        }
        let selector = spec.selector.get_or_insert_with(LabelSelector::default);
        selector.match_labels.get_or_insert_with(BTreeMap::new).entry(CONTROLLER_UID_LABEL.to_string()).or_insert(uid);
    }
}

impl Defaulting for CronJob {
    fn set_defaults(&mut self) {
        let Some(spec) = self.spec.as_mut() else {
            return;
        };
        or_str(&mut spec.concurrency_policy, "Allow");
        or_set(&mut spec.suspend, false);
        or_set(&mut spec.successful_jobs_history_limit, 3);
        or_set(&mut spec.failed_jobs_history_limit, 1);
        if let Some(job) = spec.job_template.spec.as_mut() {
            default_pod_template(&mut job.template);
        }
    }
}

impl Strategy for CronJob {
    fn prepare_for_create(&mut self) {
        self.status = Some(CronJobStatus::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(spec: serde_json::Value) -> Job {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]}});
        serde_json::from_value(json!({"metadata": {"name": "j", "uid": "u-1"}, "spec": spec})).expect("job")
    }

    #[test]
    fn job_defaults() {
        let cases = [
            (json!({}), Some(1), Some(1)),
            (json!({"parallelism": 3}), None, Some(3)),
            (json!({"completions": 5}), Some(5), Some(1)),
        ];
        for (spec, completions, parallelism) in cases {
            let mut j = job(spec.clone());
            j.set_defaults();
            let s = j.spec.as_ref().expect("spec");
            assert_eq!((s.completions, s.parallelism), (completions, parallelism), "{spec}");
            assert_eq!(s.backoff_limit, Some(6));
            assert_eq!(s.completion_mode.as_deref(), Some("NonIndexed"));
            assert_eq!(s.suspend, Some(false));
            assert_eq!(s.pod_replacement_policy.as_deref(), Some("TerminatingOrFailed"));
            let restart = s.template.spec.as_ref().and_then(|p| p.restart_policy.as_deref());
            assert_eq!(restart, Some("Never"), "template restartPolicy is left as given");
        }
    }

    #[test]
    fn job_create_generates_selector_and_labels() {
        let mut j = job(json!({}));
        j.set_defaults();
        j.prepare_for_create();
        let v = serde_json::to_value(&j).expect("json");
        assert_eq!(v["spec"]["selector"], json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}));
        assert_eq!(
            v["spec"]["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": "u-1", "controller-uid": "u-1",
                "batch.kubernetes.io/job-name": "j", "job-name": "j"})
        );
        assert_eq!(v["status"], json!({}));
    }

    #[test]
    fn manual_selector_is_left_alone() {
        let mut j = job(json!({"manualSelector": true, "selector": {"matchLabels": {"a": "b"}}}));
        j.prepare_for_create();
        let s = j.spec.expect("spec");
        assert_eq!(s.selector.and_then(|s| s.match_labels).map(|m| m.len()), Some(1));
        assert_eq!(s.template.metadata, None);
    }

    #[test]
    fn cronjob_defaults() {
        let mut c: CronJob =
            serde_json::from_value(json!({"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}}}}))
            .expect("cronjob");
        c.set_defaults();
        let s = serde_json::to_value(&c).expect("json")["spec"].clone();
        assert_eq!(s["concurrencyPolicy"], "Allow");
        assert_eq!(s["suspend"], false);
        assert_eq!(s["successfulJobsHistoryLimit"], 3);
        assert_eq!(s["failedJobsHistoryLimit"], 1);
        assert_eq!(s["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
    }
}
