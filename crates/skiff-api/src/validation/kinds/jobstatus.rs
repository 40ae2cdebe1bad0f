//! Job status validation (upstream `ValidateJobUpdateStatus` with the checks the
//! `JobManagedBy` feature turned on): counters and conditions must stay coherent whoever writes
//! them, since a Job managed by another controller gets its status from that controller. Most
//! checks run only when the fields they read change, as upstream's strategy arranges.
//!
//! What does not live here: the Job spec rules ([`super::batch`]). Left out: upstream's checks of
//! `failedIndexes`, of `startTime` changes of unsuspended Jobs, of a changed `completionTime`, and
//! of `ready` not exceeding `active`.

use std::collections::HashSet;

use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus};

use super::batch::count_indexes;
use super::common::opt_nonneg;
use crate::validation::{ErrorList, FieldError, child, index};

fn is_true(status: &JobStatus, type_: &str) -> bool {
    status.conditions.iter().flatten().any(|c| c.type_ == type_ && c.status == "True")
}

/// The condition types whose `True` a status write may not take back.
const TERMINAL: [&str; 3] = ["Failed", "Complete", "FailureTarget"];

/// Checks the status of `job`, written over `old`.
pub fn validate(job: &Job, old: &Job) -> ErrorList {
    let mut errs = ErrorList::new();
    let empty = JobStatus::default();
    let st = job.status.as_ref().unwrap_or(&empty);
    let was = old.status.as_ref().unwrap_or(&empty);
    let default_spec = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&default_spec);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let p = |f: &str| child("status", f);
    let conditions = p("conditions");
    let invalid = |errs: &mut ErrorList, at: &str, msg: &str| errs.push(FieldError::invalid_omit(at, msg));

    for (f, v) in [
        ("active", st.active),
        ("succeeded", st.succeeded),
        ("failed", st.failed),
        ("ready", st.ready),
        ("terminating", st.terminating),
    ] {
        opt_nonneg(&mut errs, &p(f), v);
    }
    if let Some(u) = &st.uncounted_terminated_pods {
        let mut seen = HashSet::new();
        let lists = [("succeeded", u.succeeded.iter().flatten()), ("failed", u.failed.iter().flatten())];
        for (f, uids) in lists {
            for (i, uid) in uids.enumerate() {
                let at = index(&child(&p("uncountedTerminatedPods"), f), i);
                if uid.is_empty() {
                    errs.push(FieldError::invalid(at, "", "must not be empty"));
                } else if !seen.insert(uid) {
                    errs.push(FieldError::duplicate(at, uid.as_str()));
                }
            }
        }
    }

    let (complete, failed) = (is_true(st, "Complete"), is_true(st, "Failed"));
    let (target, met) = (is_true(st, "FailureTarget"), is_true(st, "SuccessCriteriaMet"));
    let finished = complete || failed;
    let changed = |t: &str| is_true(st, t) != is_true(was, t);
    let finished_changed = changed("Complete") || changed("Failed");
    let completion_changed = st.completion_time != was.completion_time;
    let uncounted = st
        .uncounted_terminated_pods
        .as_ref()
        .map_or(0, |u| u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len));

    if finished_changed && complete && failed {
        invalid(&mut errs, &conditions, "cannot set Complete=True and Failed=true conditions");
    }
    if (changed("Complete") || changed("FailureTarget")) && complete && target {
        invalid(&mut errs, &conditions, "cannot set Complete=True and FailureTarget=true conditions");
    }
    if (changed("Complete") || completion_changed) && st.completion_time.is_some() && !complete {
        invalid(&mut errs, &p("completionTime"), "cannot set completionTime when there is no Complete=True condition");
    }
    if (changed("Complete") || completion_changed) && st.completion_time.is_none() && complete {
        errs.push(FieldError::required(p("completionTime"), "completionTime is required for Complete jobs"));
    }
    if let (Some(start), Some(end)) = (&st.start_time, &st.completion_time)
        && end.0 < start.0
    {
        invalid(&mut errs, &p("completionTime"), "completionTime cannot be set before startTime");
    }
    if changed("Failed") && failed && !target {
        invalid(&mut errs, &conditions, "cannot set Failed=True condition without the FailureTarget=true condition");
    }
    if changed("Complete") && complete && !met {
        invalid(
            &mut errs,
            &conditions,
            "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        );
    }
    if (finished_changed || st.active != was.active) && finished && st.active.unwrap_or(0) > 0 {
        invalid(&mut errs, &p("active"), "active>0 is invalid for finished job");
    }
    if (finished_changed || st.terminating != was.terminating) && finished && st.terminating.unwrap_or(0) > 0 {
        invalid(&mut errs, &p("terminating"), "terminating>0 is invalid for finished job");
    }
    // A suspended Job of zero completions finishes without ever starting.
    let suspended_empty = spec.suspend == Some(true) && spec.completions == Some(0);
    if (finished_changed || st.start_time != was.start_time) && finished && st.start_time.is_none() && !suspended_empty
    {
        errs.push(FieldError::required(p("startTime"), "startTime is required for finished job"));
    }
    if (finished_changed || st.uncounted_terminated_pods != was.uncounted_terminated_pods) && finished && uncounted > 0
    {
        invalid(&mut errs, &p("uncountedTerminatedPods"), "uncountedTerminatedPods needs to be empty for finished job");
    }
    if st.completed_indexes != was.completed_indexes
        && let Some(list) = st.completed_indexes.as_deref().filter(|l| !l.is_empty())
    {
        if !indexed {
            errs.push(FieldError::invalid(
                p("completedIndexes"),
                list,
                "cannot set non-empty completedIndexes when non-indexed completion mode",
            ));
        } else if let Some(Err(e)) = spec.completions.map(|k| count_indexes(list, k)) {
            errs.push(FieldError::invalid(p("completedIndexes"), list, format!("error parsing completedIndexes: {e}")));
        }
    }
    if met && failed {
        invalid(&mut errs, &conditions, "cannot set SuccessCriteriaMet=True and Failed=true conditions");
    }
    if met && target {
        invalid(&mut errs, &conditions, "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions");
    }
    if spec.success_policy.is_some() && !met && complete {
        invalid(
            &mut errs,
            &conditions,
            "cannot set Complete=True for Job with SuccessPolicy unless SuccessCriteriaMet=True",
        );
    }
    for t in TERMINAL {
        if is_true(was, t) && !is_true(st, t) {
            invalid(&mut errs, &conditions, &format!("cannot disable the terminal {t}=True condition"));
        }
    }
    if is_true(was, "SuccessCriteriaMet") && !met {
        invalid(&mut errs, &conditions, "cannot disable the SuccessCriteriaMet=True condition");
    }
    if is_true(was, "Complete") && !is_true(was, "SuccessCriteriaMet") && met {
        invalid(
            &mut errs,
            &conditions,
            "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions",
        );
    }
    if st.failed.unwrap_or(0) < was.failed.unwrap_or(0) {
        errs.push(FieldError::invalid(p("failed"), st.failed.unwrap_or(0), "cannot decrease the failed counter"));
    }
    // Elastic Indexed Jobs (completions == parallelism) may scale down their succeeded count.
    let elastic = indexed && spec.completions == spec.parallelism;
    if !elastic && st.succeeded.unwrap_or(0) < was.succeeded.unwrap_or(0) {
        errs.push(FieldError::invalid(
            p("succeeded"),
            st.succeeded.unwrap_or(0),
            "cannot decrease the succeeded counter",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(spec: Value, status: Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": spec, "status": status})).expect("job")
    }

    fn errors(spec: Value, old: Value, new: Value) -> Vec<String> {
        validate(&job(spec.clone(), new), &job(spec, old)).iter().map(ToString::to_string).collect()
    }

    fn cond(t: &str) -> Value {
        json!({"type": t, "status": "True"})
    }

    const START: &str = "2026-01-01T00:00:00Z";
    const END: &str = "2026-01-01T00:01:00Z";

    #[test]
    fn a_suspended_job_of_zero_completions_completes_without_start_time() {
        let done = json!({"completionTime": END, "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]});
        let suspended = json!({"completions": 0, "suspend": true});
        assert_eq!(errors(suspended, json!({}), done.clone()), Vec::<String>::new());
        let running = json!({"completions": 0});
        assert_eq!(
            errors(running, json!({}), done),
            ["status.startTime: Required value: startTime is required for finished job"]
        );
    }

    #[test]
    fn success_criteria_met_cannot_be_taken_back_or_added_after_completion() {
        let spec = json!({"completions": 1});
        let met = json!({"startTime": START, "conditions": [cond("SuccessCriteriaMet")]});
        assert_eq!(
            errors(spec.clone(), met, json!({"startTime": START})),
            ["status.conditions: Invalid value: cannot disable the SuccessCriteriaMet=True condition"]
        );
        let legacy = json!({"startTime": START, "completionTime": END, "conditions": [cond("Complete")]});
        let added = json!({"startTime": START, "completionTime": END,
            "conditions": [cond("Complete"), cond("SuccessCriteriaMet")]});
        assert_eq!(
            errors(spec, legacy, added),
            [
                "status.conditions: Invalid value: cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions"
            ]
        );
    }

    #[test]
    fn the_controllers_own_transitions_pass() {
        let spec = json!({"completions": 1});
        let running = json!({"startTime": START, "active": 1, "ready": 1});
        let met = json!({"startTime": START, "succeeded": 1, "conditions": [cond("SuccessCriteriaMet")]});
        let done = json!({"startTime": START, "completionTime": END, "succeeded": 1,
            "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]});
        assert_eq!(errors(spec.clone(), json!({}), running.clone()), Vec::<String>::new());
        assert_eq!(errors(spec.clone(), running, met.clone()), Vec::<String>::new());
        assert_eq!(errors(spec.clone(), met, done), Vec::<String>::new());
        let target = json!({"startTime": START, "failed": 7, "conditions": [cond("FailureTarget")]});
        let failed = json!({"startTime": START, "failed": 7, "conditions": [cond("FailureTarget"), cond("Failed")]});
        assert_eq!(errors(spec, target, failed), Vec::<String>::new());
    }

    #[test]
    fn incoherent_finishes_are_rejected() {
        let spec = json!({"completions": 1});
        let start = json!({"startTime": START, "active": 1});
        let cases = [
            (
                json!({"startTime": START, "completionTime": END, "conditions": [cond("Complete")]}),
                "status.conditions: Invalid value: cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
            ),
            (
                json!({"startTime": START, "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}),
                "status.completionTime: Required value: completionTime is required for Complete jobs",
            ),
            (
                json!({"startTime": START, "conditions": [cond("Failed")]}),
                "status.conditions: Invalid value: cannot set Failed=True condition without the FailureTarget=true condition",
            ),
            (
                json!({"startTime": START, "active": 1, "conditions": [cond("FailureTarget"), cond("Failed")]}),
                "status.active: Invalid value: active>0 is invalid for finished job",
            ),
            (
                json!({"completionTime": START, "startTime": END, "conditions": [cond("SuccessCriteriaMet"), cond("Complete")]}),
                "status.completionTime: Invalid value: completionTime cannot be set before startTime",
            ),
            (
                json!({"startTime": START, "completionTime": END}),
                "status.completionTime: Invalid value: cannot set completionTime when there is no Complete=True condition",
            ),
            (
                json!({"startTime": START, "conditions": [cond("SuccessCriteriaMet"), cond("FailureTarget")]}),
                "status.conditions: Invalid value: cannot set SuccessCriteriaMet=True and FailureTarget=true conditions",
            ),
            (
                json!({"uncountedTerminatedPods": {"succeeded": ["a"], "failed": ["a", ""]}}),
                "status.uncountedTerminatedPods.failed[0]: Duplicate value: \"a\"",
            ),
            (
                json!({"completedIndexes": "0"}),
                "status.completedIndexes: Invalid value: \"0\": cannot set non-empty completedIndexes when non-indexed completion mode",
            ),
        ];
        for (new, want) in cases {
            let got = errors(spec.clone(), start.clone(), new.clone());
            assert!(got.iter().any(|e| e == want), "{new}: want {want}, got {got:?}");
        }
    }

    #[test]
    fn terminal_conditions_and_counters_do_not_go_back() {
        let spec = json!({"completions": 3});
        let old = json!({"startTime": START, "failed": 2, "succeeded": 2, "conditions": [cond("FailureTarget")]});
        let new = json!({"startTime": START, "failed": 1, "succeeded": 1});
        assert_eq!(
            errors(spec, old.clone(), new.clone()),
            [
                "status.conditions: Invalid value: cannot disable the terminal FailureTarget=True condition",
                "status.failed: Invalid value: 1: cannot decrease the failed counter",
                "status.succeeded: Invalid value: 1: cannot decrease the succeeded counter",
            ]
        );
        let elastic = json!({"completionMode": "Indexed", "completions": 2, "parallelism": 2});
        let old = json!({"succeeded": 2, "completedIndexes": "0,1"});
        let new = json!({"succeeded": 1, "completedIndexes": "0"});
        assert_eq!(errors(elastic.clone(), old, new), Vec::<String>::new(), "elastic Jobs scale down");
        let bad = json!({"completedIndexes": "1,0"});
        assert_eq!(
            errors(elastic, json!({}), bad),
            [
                "status.completedIndexes: Invalid value: \"1,0\": error parsing completedIndexes: non-increasing order, previous: 1, current: 0"
            ]
        );
    }

    #[test]
    fn success_policy_jobs_complete_only_through_it() {
        let spec = json!({"completionMode": "Indexed", "completions": 2,
            "successPolicy": {"rules": [{"succeededCount": 1}]}});
        let old = json!({"startTime": START, "conditions": [cond("SuccessCriteriaMet")]});
        let mut new = json!({"startTime": START, "completionTime": END, "conditions": [cond("Complete")]});
        let got = errors(spec.clone(), old.clone(), new.clone());
        assert!(got.iter().any(|e| e.ends_with("unless SuccessCriteriaMet=True")), "{got:?}");
        new["conditions"] = json!([cond("SuccessCriteriaMet"), cond("Complete")]);
        assert_eq!(errors(spec, old, new), Vec::<String>::new());
    }
}
