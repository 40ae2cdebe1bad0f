//! Job conditions as upstream's Job controller (1.31+) sets them: the interim `FailureTarget`
//! and `SuccessCriteriaMet`, the terminal `Failed` and `Complete` (added only once no pod of
//! the Job runs or terminates), and `Suspended`; with upstream's reasons and messages.
//!
//! What does not live here: deciding when a Job fails or completes (the Job controller).

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Reason of a Job that failed more often than `backoffLimit`.
pub const BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
/// Message of [`BACKOFF_LIMIT_EXCEEDED`].
pub const BACKOFF_LIMIT_MESSAGE: &str = "Job has reached the specified backoff limit";
/// Reason of a Job that ran longer than `activeDeadlineSeconds`.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// Message of [`DEADLINE_EXCEEDED`].
pub const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";
/// Reason of a Job failed by a `podFailurePolicy` FailJob rule.
pub const POD_FAILURE_POLICY: &str = "PodFailurePolicy";
/// Reason of a Job with failed indexes (`backoffLimitPerIndex`).
pub const FAILED_INDEXES: &str = "FailedIndexes";
/// Message of [`FAILED_INDEXES`].
pub const FAILED_INDEXES_MESSAGE: &str = "Job has failed indexes";
/// Reason of a Job with more failed indexes than `maxFailedIndexes`.
pub const MAX_FAILED_INDEXES_EXCEEDED: &str = "MaxFailedIndexesExceeded";
/// Message of [`MAX_FAILED_INDEXES_EXCEEDED`].
pub const MAX_FAILED_INDEXES_MESSAGE: &str = "Job has exceeded the specified maximal number of failed indexes";
/// Reason of a Job whose `successPolicy` was met.
pub const SUCCESS_POLICY: &str = "SuccessPolicy";
/// Reason of a Job whose pods reached `completions`.
pub const COMPLETIONS_REACHED: &str = "CompletionsReached";
/// Message of [`COMPLETIONS_REACHED`].
pub const COMPLETIONS_MESSAGE: &str = "Reached expected number of succeeded pods";

/// The condition of `type_`, if any.
pub fn get<'a>(conds: &'a [JobCondition], type_: &str) -> Option<&'a JobCondition> {
    conds.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is `True`.
pub fn is_true(conds: &[JobCondition], type_: &str) -> bool {
    get(conds, type_).is_some_and(|c| c.status == "True")
}

/// Whether the Job has finished (`Complete` or `Failed` is true).
pub fn finished(job: &Job) -> bool {
    let conds = job.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    is_true(conds, "Complete") || is_true(conds, "Failed")
}

/// When the Job finished, if it did.
pub fn finish_time(job: &Job) -> Option<Timestamp> {
    let conds = job.status.as_ref()?.conditions.as_deref()?;
    conds
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.last_transition_time.as_ref().map_or(Timestamp::UNIX_EPOCH, |t| t.0))
}

/// Sets the condition `type_` (appending it, or updating it in place; the transition time moves
/// only when the status changes). Returns whether anything changed.
pub fn set(
    conds: &mut Vec<JobCondition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status == status && c.reason.as_deref() == Some(reason) && c.message.as_deref() == Some(message) {
            return false;
        }
        if c.status != status {
            c.last_transition_time = Some(Time(now));
        }
        c.status = status.into();
        c.reason = Some(reason.into());
        c.message = Some(message.into());
        c.last_probe_time = Some(Time(now));
        return true;
    }
    conds.push(JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_appends_then_updates_in_place() {
        let t0 = Timestamp::UNIX_EPOCH;
        let t1 = t0 + k8s_openapi::jiff::SignedDuration::from_secs(5);
        let mut conds = Vec::new();
        assert!(set(&mut conds, "Suspended", "True", "JobSuspended", "Job suspended", t0));
        assert!(!set(&mut conds, "Suspended", "True", "JobSuspended", "Job suspended", t1));
        assert!(set(&mut conds, "Suspended", "False", "JobResumed", "Job resumed", t1));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, Some(Time(t1)));
        assert!(set(&mut conds, "FailureTarget", "True", DEADLINE_EXCEEDED, DEADLINE_MESSAGE, t1));
        assert!(is_true(&conds, "FailureTarget"));
        assert!(!is_true(&conds, "Suspended"));
    }
}
