//! How a Job reads a finished pod: whether it failed (upstream's `isPodFailed`), when it
//! finished, and which `podFailurePolicy` rule it matches (exit codes of its containers or its
//! conditions), with upstream's wording of the match.
//!
//! What does not live here: acting on the match (the Job controller).

use k8s_openapi::api::batch::v1::{Job, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// What a `podFailurePolicy` rule tells the controller to do with a failed pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Fail the whole Job (the message names the container or condition and the rule).
    FailJob(String),
    /// Fail the pod's index (Indexed Jobs with `backoffLimitPerIndex`).
    FailIndex,
    /// Do not count the failure.
    Ignore,
    /// Count the failure towards `backoffLimit` (also what happens when no rule matches).
    Count,
}

fn phase(pod: &Pod) -> &str {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Whether the pod succeeded.
pub fn succeeded(pod: &Pod) -> bool {
    phase(pod) == "Succeeded"
}

/// Whether the pod counts as failed for `job`: phase Failed, or (unless the Job only replaces
/// failed pods, or has a pod failure policy) being deleted without having succeeded.
pub fn failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    let spec = job.spec.as_ref();
    if spec.is_some_and(|s| s.pod_failure_policy.is_some()) {
        return false;
    }
    if spec.and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed") {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && !succeeded(pod)
}

/// When the pod finished: the latest container termination, else its deletion, else `now`.
pub fn finish_time(pod: &Pod, now: Timestamp) -> Timestamp {
    let status = pod.status.as_ref();
    let latest = status
        .into_iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(|t| t.0))
        .max();
    latest.or_else(|| pod.metadata.deletion_timestamp.as_ref().map(|t| t.0)).unwrap_or(now)
}

fn exit_codes_match(req: &PodFailurePolicyOnExitCodesRequirement, code: i32) -> bool {
    let listed = req.values.contains(&code);
    match req.operator.as_str() {
        "In" => listed,
        "NotIn" => !listed,
        _ => false,
    }
}

/// The first rule of `policy` the failed `pod` matches, with its action; `None` when none does.
pub fn matching_rule(policy: &PodFailurePolicy, pod: &Pod) -> Option<Action> {
    let status = pod.status.as_ref()?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    for (i, rule) in policy.rules.iter().enumerate() {
        let hit = if let Some(req) = &rule.on_exit_codes {
            status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(status.container_statuses.iter().flatten())
                .filter(|c| req.container_name.as_ref().is_none_or(|n| *n == c.name))
                .find_map(|c| {
                    let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                    (code != 0 && exit_codes_match(req, code)).then(|| {
                        format!(
                            "Container {} for pod {ns}/{name} failed with exit code {code} matching {} rule at index {i}",
                            c.name, rule.action
                        )
                    })
                })
        } else {
            rule.on_pod_conditions.iter().flatten().find_map(|pat| {
                let want = if pat.status.is_empty() { "True" } else { pat.status.as_str() };
                status.conditions.iter().flatten().find(|c| c.type_ == pat.type_ && c.status == want).map(|c| {
                    format!("Pod {ns}/{name} has condition {} matching {} rule at index {i}", c.type_, rule.action)
                })
            })
        };
        if let Some(message) = hit {
            return Some(match rule.action.as_str() {
                "FailJob" => Action::FailJob(message),
                "FailIndex" => Action::FailIndex,
                "Ignore" => Action::Ignore,
                _ => Action::Count,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"}, "status": status})).expect("pod")
    }

    fn policy(rules: serde_json::Value) -> PodFailurePolicy {
        serde_json::from_value(json!({ "rules": rules })).expect("policy")
    }

    fn exited(name: &str, code: i32) -> serde_json::Value {
        json!({"name": name, "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code}}})
    }

    #[test]
    fn exit_code_rules_match_in_order() {
        let p = policy(json!([
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "NotIn", "values": [1, 2]}},
            {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget"}]}
        ]));
        let failed = |code| pod(json!({"phase": "Failed", "containerStatuses": [exited("main", code)]}));
        assert_eq!(matching_rule(&p, &failed(1)), Some(Action::Ignore));
        assert_eq!(
            matching_rule(&p, &failed(42)),
            Some(Action::FailJob(
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into()
            ))
        );
        assert_eq!(matching_rule(&p, &failed(2)), None, "2 is excluded by NotIn and no other rule matches");
        let other = pod(json!({"phase": "Failed", "containerStatuses": [exited("side", 42)]}));
        assert_eq!(matching_rule(&p, &other), None, "the FailJob rule names another container");
    }

    #[test]
    fn zero_exit_codes_never_match() {
        let p = policy(json!([{"action": "FailJob", "onExitCodes": {"operator": "NotIn", "values": [5]}}]));
        let pd = pod(json!({"phase": "Failed", "containerStatuses": [exited("a", 0)]}));
        assert_eq!(matching_rule(&p, &pd), None);
    }

    #[test]
    fn condition_rules() {
        let p = policy(json!([
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            {"action": "FailIndex", "onPodConditions": [{"type": "Custom", "status": "False"}]}
        ]));
        let disrupted = pod(json!({"phase": "Failed", "conditions": [{"type": "DisruptionTarget", "status": "True"}]}));
        assert_eq!(matching_rule(&p, &disrupted), Some(Action::Ignore));
        let custom = pod(json!({"phase": "Failed", "conditions": [{"type": "Custom", "status": "False"}]}));
        assert_eq!(matching_rule(&p, &custom), Some(Action::FailIndex));
        let none = pod(json!({"phase": "Failed", "conditions": [{"type": "Custom", "status": "True"}]}));
        assert_eq!(matching_rule(&p, &none), None);
    }

    #[test]
    fn deleted_pods_count_as_failed_unless_only_failed_pods_are_replaced() {
        let mut job: Job = serde_json::from_value(json!({"spec": {"template": {}}})).expect("job");
        let mut p = pod(json!({"phase": "Running"}));
        assert!(!failed(&p, &job));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()));
        assert!(failed(&p, &job));
        if let Some(s) = job.spec.as_mut() {
            s.pod_replacement_policy = Some("Failed".into());
        }
        assert!(!failed(&p, &job));
        assert!(failed(&pod(json!({"phase": "Failed"})), &job));
    }
}
