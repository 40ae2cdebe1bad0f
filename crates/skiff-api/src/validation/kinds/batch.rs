//! Job and CronJob validation (upstream `ValidateJob`, `ValidateCronJob`), including the cron
//! schedule syntax.

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec, SuccessPolicy, SuccessPolicyRule};

use super::common::{
    domain_prefixed_path, immutable, json, label_selector, nonneg, opt_nonneg, supported, supported_opt,
};
use super::pod::validate_pod_template;
use super::workloads::template_matches;
use crate::defaults::CONTROLLER_UID_LABEL;
use crate::kinds::Validation;
use crate::validation::{ErrorList, FieldError, child, index, key};

/// Longest CronJob name: the controller appends an 11-character suffix to Job names.
const CRONJOB_NAME_MAX: usize = 52;
/// Longest `spec.managedBy`.
const MANAGED_BY_MAX: usize = 63;
/// Most rules a `successPolicy` may have.
const SUCCESS_POLICY_RULES_MAX: usize = 20;
/// Longest `succeededIndexes` of a success policy rule (64 KiB).
const SUCCEEDED_INDEXES_MAX: usize = 64 * 1024;

/// Validates a Job spec at `path`; `require_selector` is false inside a CronJob's template.
fn job_spec(errs: &mut ErrorList, spec: &JobSpec, path: &str, require_selector: bool) {
    let p = |f: &str| child(path, f);
    opt_nonneg(errs, &p("parallelism"), spec.parallelism);
    opt_nonneg(errs, &p("completions"), spec.completions);
    opt_nonneg(errs, &p("backoffLimit"), spec.backoff_limit);
    opt_nonneg(errs, &p("ttlSecondsAfterFinished"), spec.ttl_seconds_after_finished);
    if let Some(a) = spec.active_deadline_seconds {
        nonneg(errs, &p("activeDeadlineSeconds"), a);
    }
    let mode = spec.completion_mode.as_deref().unwrap_or("NonIndexed");
    supported(errs, &p("completionMode"), mode, &["NonIndexed", "Indexed"]);
    if mode == "Indexed" && spec.completions.is_none() {
        errs.push(FieldError::required(p("completions"), "when completion mode is Indexed"));
    }
    if spec.backoff_limit_per_index.is_some() && mode != "Indexed" {
        errs.push(FieldError::forbidden(p("backoffLimitPerIndex"), "requires indexed completion mode"));
    }
    if let Some(m) = spec.managed_by.as_deref() {
        domain_prefixed_path(errs, &p("managedBy"), m);
        if m.len() > MANAGED_BY_MAX {
            errs.push(FieldError::too_long_max_length(p("managedBy"), MANAGED_BY_MAX));
        }
    }
    if let Some(sp) = &spec.success_policy {
        if mode != "Indexed" {
            errs.push(FieldError::invalid(p("successPolicy"), json(sp), "requires indexed completion mode"));
        } else if let Some(completions) = spec.completions {
            success_policy(errs, sp, completions, &p("successPolicy"));
        }
    }
    supported_opt(
        errs,
        &p("podReplacementPolicy"),
        spec.pod_replacement_policy.as_deref(),
        &["TerminatingOrFailed", "Failed"],
    );
    match &spec.selector {
        None if require_selector => errs.push(FieldError::required(p("selector"), "")),
        None => {}
        Some(sel) => {
            if let Some(parsed) = label_selector(errs, &p("selector"), sel) {
                template_matches(errs, &parsed, &spec.template, &p("template"));
            }
        }
    }
    let tp = p("template");
    errs.extend(validate_pod_template(&spec.template, &tp));
    if let Some(t) = &spec.template.spec {
        match t.restart_policy.as_deref() {
            Some("OnFailure") | Some("Never") => {}
            other => errs.push(FieldError::not_supported(
                child(&child(&tp, "spec"), "restartPolicy"),
                other.unwrap_or_default(),
                &["OnFailure", "Never"],
            )),
        }
    }
}

/// Validates an Indexed Job's `successPolicy` against its `completions`.
fn success_policy(errs: &mut ErrorList, sp: &SuccessPolicy, completions: i32, path: &str) {
    let rules = child(path, "rules");
    if sp.rules.is_empty() {
        errs.push(FieldError::required(
            &rules,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if sp.rules.len() > SUCCESS_POLICY_RULES_MAX {
        errs.push(FieldError::too_many(&rules, sp.rules.len(), SUCCESS_POLICY_RULES_MAX));
    }
    for (i, rule) in sp.rules.iter().enumerate() {
        success_policy_rule(errs, rule, completions, &index(&rules, i));
    }
}

fn success_policy_rule(errs: &mut ErrorList, rule: &SuccessPolicyRule, completions: i32, path: &str) {
    if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
        errs.push(FieldError::required(path, "at least one of succeededCount or succeededIndexes must be specified"));
    }
    let mut listed = 0;
    if let Some(list) = rule.succeeded_indexes.as_deref() {
        let at = child(path, "succeededIndexes");
        if list.len() > SUCCEEDED_INDEXES_MAX {
            errs.push(FieldError::too_long(&at, SUCCEEDED_INDEXES_MAX));
        }
        match count_indexes(list, completions) {
            Ok(n) => listed = n,
            Err(e) => errs.push(FieldError::invalid(&at, list, format!("error parsing succeededIndexes: {e}"))),
        }
    }
    if let Some(count) = rule.succeeded_count {
        let at = child(path, "succeededCount");
        nonneg(errs, &at, i64::from(count));
        if count > completions {
            errs.push(FieldError::invalid(
                &at,
                count,
                format!("must be less than or equal to {completions} (the number of specified completions)"),
            ));
        }
        if rule.succeeded_indexes.is_some() && count > listed {
            errs.push(FieldError::invalid(
                &at,
                count,
                format!(
                    "must be less than or equal to {listed} (the number of indexes in the specified succeededIndexes field)"
                ),
            ));
        }
    }
}

/// Checks an index interval list (`"0,2-4"`) strictly, as upstream's `validateIndexesFormat`:
/// each part one index or a `first-last` range, all below `completions`, strictly increasing.
/// Returns how many indexes it names.
pub fn count_indexes(list: &str, completions: i32) -> Result<i32, String> {
    if list.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total = 0;
    for part in list.split(',') {
        let bounds: Vec<&str> = part.split('-').collect();
        if bounds.len() > 2 {
            return Err(format!(
                "the fragment {part:?} violates the requirement that an index interval can have at most two parts separated by '-'"
            ));
        }
        let mut first = None;
        for b in bounds {
            let v: i64 = b.parse().map_err(|_| format!("cannot convert string to integer for index: {b:?}"))?;
            if v >= i64::from(completions) {
                return Err(format!("too large index: {b:?}"));
            }
            if let Some(prev) = last
                && prev >= v
            {
                return Err(format!("non-increasing order, previous: {prev}, current: {v}"));
            }
            total += match first {
                None => 1,
                Some(f) => i32::try_from(v - f).unwrap_or(i32::MAX),
            };
            first = Some(v);
            last = Some(v);
        }
    }
    Ok(total)
}

/// With a generated selector, the selector and template must carry this Job's uid.
fn generated_selector(errs: &mut ErrorList, job: &Job, spec: &JobSpec) {
    if spec.manual_selector == Some(true) {
        return;
    }
    let Some(uid) = job.metadata.uid.as_deref() else {
        return;
    };
    let labels = spec.template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    if labels.and_then(|l| l.get(CONTROLLER_UID_LABEL)).is_some_and(|v| v != uid) {
        errs.push(FieldError::invalid(
            key("spec.template.metadata.labels", CONTROLLER_UID_LABEL),
            labels.and_then(|l| l.get(CONTROLLER_UID_LABEL)).map(String::as_str).unwrap_or_default(),
            format!("must be '{uid}'"),
        ));
    }
    let selected =
        spec.selector.as_ref().and_then(|s| s.match_labels.as_ref()).and_then(|m| m.get(CONTROLLER_UID_LABEL));
    if selected.is_none_or(|v| v != uid) {
        errs.push(FieldError::invalid("spec.selector", json(&spec.selector), "`selector` not auto-generated"));
    }
}

impl Validation for Job {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let Some(spec) = &self.spec else {
            return vec![FieldError::required("spec", "")];
        };
        generated_selector(&mut errs, self, spec);
        job_spec(&mut errs, spec, "spec", true);
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        let (Some(n), Some(o)) = (&self.spec, &old.spec) else {
            return errs;
        };
        immutable(&mut errs, "spec.selector", &n.selector, &o.selector);
        immutable(&mut errs, "spec.completionMode", &n.completion_mode, &o.completion_mode);
        immutable(&mut errs, "spec.podFailurePolicy", &n.pod_failure_policy, &o.pod_failure_policy);
        immutable(&mut errs, "spec.backoffLimitPerIndex", &n.backoff_limit_per_index, &o.backoff_limit_per_index);
        immutable(&mut errs, "spec.managedBy", &n.managed_by, &o.managed_by);
        immutable(&mut errs, "spec.successPolicy", &n.success_policy, &o.success_policy);
        // Elastic indexed jobs may scale completions together with parallelism.
        let elastic = n.completion_mode.as_deref() == Some("Indexed") && n.completions == n.parallelism;
        if !elastic {
            immutable(&mut errs, "spec.completions", &n.completions, &o.completions);
        }
        // Upstream lets a suspended job that never started change its scheduling directives;
        // skiff keeps the whole template immutable except while suspended.
        let suspended = n.suspend == Some(true) && o.suspend == Some(true);
        if !suspended {
            immutable(&mut errs, "spec.template", &n.template, &o.template);
        }
        errs
    }

    fn validate_status_update(&self, old: &Self) -> ErrorList {
        super::jobstatus::validate(self, old)
    }
}

impl Validation for CronJob {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        if let Some(name) = self.metadata.name.as_deref()
            && name.len() > CRONJOB_NAME_MAX
        {
            errs.push(FieldError::invalid(
                "metadata.name",
                name,
                format!("must be no more than {CRONJOB_NAME_MAX} characters"),
            ));
        }
        let Some(spec) = &self.spec else {
            errs.push(FieldError::required("spec", ""));
            return errs;
        };
        if spec.schedule.is_empty() {
            errs.push(FieldError::required("spec.schedule", ""));
        } else if spec.schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                spec.schedule.as_str(),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        } else if let Err(e) = parse_schedule(&spec.schedule) {
            errs.push(FieldError::invalid("spec.schedule", spec.schedule.as_str(), e));
        }
        if let Some(tz) = spec.time_zone.as_deref() {
            if tz.is_empty() || tz == "Local" || tz.contains(' ') {
                errs.push(FieldError::invalid("spec.timeZone", tz, "unknown time zone"));
            } else if jiff::tz::TimeZone::get(tz).is_err() {
                errs.push(FieldError::invalid("spec.timeZone", tz, format!("unknown time zone {tz}")));
            }
        }
        supported(
            &mut errs,
            "spec.concurrencyPolicy",
            spec.concurrency_policy.as_deref().unwrap_or("Allow"),
            &["Allow", "Forbid", "Replace"],
        );
        if let Some(s) = spec.starting_deadline_seconds {
            nonneg(&mut errs, "spec.startingDeadlineSeconds", s);
        }
        opt_nonneg(&mut errs, "spec.successfulJobsHistoryLimit", spec.successful_jobs_history_limit);
        opt_nonneg(&mut errs, "spec.failedJobsHistoryLimit", spec.failed_jobs_history_limit);
        match &spec.job_template.spec {
            Some(js) => job_spec(&mut errs, js, "spec.jobTemplate.spec", false),
            None => errs.push(FieldError::required("spec.jobTemplate.spec", "")),
        }
        errs
    }
}

/// Checks a standard cron schedule: five fields or a descriptor (`@hourly`, `@every 1h`, …).
pub fn parse_schedule(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if let Some(d) = s.strip_prefix('@') {
        if let Some(dur) = d.strip_prefix("every ") {
            return parse_duration(dur.trim())
                .ok_or_else(|| format!("failed to parse duration {s}: invalid duration {dur}"));
        }
        return match d {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => Ok(()),
            _ => Err(format!("unrecognized descriptor: {s}")),
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: {s}", fields.len()));
    }
    const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let specs: [(u32, u32, &[&str], u32); 5] =
        [(0, 59, &[], 0), (0, 23, &[], 0), (1, 31, &[], 0), (1, 12, MONTHS, 1), (0, 6, DAYS, 0)];
    for (field, (min, max, names, base)) in fields.iter().zip(specs) {
        for part in field.split(',') {
            parse_range(part, min, max, names, base)?;
        }
    }
    Ok(())
}

fn parse_range(expr: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<(), String> {
    let (range, step) = match expr.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (expr, None),
    };
    let value = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return u32::try_from(i).map(|i| i + base).map_err(|e| e.to_string());
        }
        s.parse::<u32>().map_err(|_| format!("failed to parse int from {s}: invalid syntax"))
    };
    let (lo, hi) = if range == "*" || range == "?" {
        (min, max)
    } else if let Some((a, b)) = range.split_once('-') {
        (value(a)?, value(b)?)
    } else {
        let v = value(range)?;
        (v, if step.is_some() { max } else { v })
    };
    if lo < min {
        return Err(format!("beginning of range ({lo}) below minimum ({min}): {expr}"));
    }
    if hi > max {
        return Err(format!("end of range ({hi}) above maximum ({max}): {expr}"));
    }
    if lo > hi {
        return Err(format!("beginning of range ({lo}) beyond end of range ({hi}): {expr}"));
    }
    if let Some(s) = step {
        match s.parse::<u32>() {
            Ok(0) => return Err(format!("step of range should be a positive number: {expr}")),
            Ok(_) => {}
            Err(_) => return Err(format!("failed to parse int from {s}: invalid syntax")),
        }
    }
    Ok(())
}

/// Parses a Go duration (`1h30m`, `90s`, `1.5h`).
fn parse_duration(s: &str) -> Option<()> {
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        rest[..num_len].parse::<f64>().ok()?;
        rest = &rest[num_len..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"].into_iter().find(|u| rest.starts_with(u))?;
        rest = &rest[unit.len()..];
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Defaulting, Strategy};
    use crate::validation::ErrorKind;
    use serde_json::{Value, json};

    fn job(spec: Value) -> Job {
        let mut j: Job =
            serde_json::from_value(json!({"metadata": {"name": "j", "uid": "u1"}, "spec": spec})).expect("job");
        j.set_defaults();
        j.prepare_for_create();
        j
    }

    fn job_spec_json() -> Value {
        json!({"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x:1"}]}}})
    }

    #[test]
    fn jobs() {
        assert_eq!(job(job_spec_json()).validate_create(), ErrorList::new());
        let cases = [
            (
                "/template/spec/restartPolicy",
                json!("Always"),
                "spec.template.spec.restartPolicy",
                ErrorKind::NotSupported,
            ),
            ("/parallelism", json!(-1), "spec.parallelism", ErrorKind::Invalid),
            ("/backoffLimit", json!(-1), "spec.backoffLimit", ErrorKind::Invalid),
            ("/completionMode", json!("Sometimes"), "spec.completionMode", ErrorKind::NotSupported),
            (
                "/selector",
                json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}}),
                "spec.selector",
                ErrorKind::Invalid,
            ),
        ];
        for (ptr, v, field, kind) in cases {
            let mut s = job_spec_json();
            let (parent, last) = ptr.rsplit_once('/').expect("ptr");
            s.pointer_mut(parent).expect("parent")[last] = v.clone();
            let errs = job(s).validate_create();
            assert!(
                errs.iter().any(|e| e.field == field && e.kind == kind),
                "{ptr}={v}: want {kind:?} at {field}, got {errs:?}"
            );
        }
        let mut manual = job_spec_json();
        manual["manualSelector"] = json!(true);
        manual["selector"] = json!({"matchLabels": {"a": "b"}});
        let errs = job(manual).validate_create();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn managed_by() {
        let with = |v: &str| {
            let mut s = job_spec_json();
            s["managedBy"] = json!(v);
            job(s).validate_create().iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        assert_eq!(with("kubernetes.io/job-controller"), Vec::<String>::new());
        assert_eq!(with("example.com/other"), Vec::<String>::new());
        assert_eq!(
            with("invalid custom controller name"),
            [
                "spec.managedBy: Invalid value: \"invalid custom controller name\": must be a domain-prefixed path (such as \"acme.io/foo\")"
            ]
        );
        assert_eq!(with(""), ["spec.managedBy: Required value"]);
        assert!(with("Example.com/x")[0].contains("RFC 1123 subdomain"));
        assert!(with("example.com/a b")[0].contains("must be a valid path"));
        let long = format!("example.com/{}", "x".repeat(60));
        assert_eq!(with(&long), ["spec.managedBy: Too long: may not be longer than 63"]);

        let old = job(job_spec_json());
        let mut new = old.clone();
        new.spec.as_mut().expect("spec").managed_by = Some("example.com/other".into());
        let errs: Vec<String> = new.validate_update(&old).iter().map(ToString::to_string).collect();
        assert_eq!(errs, ["spec.managedBy: Invalid value: \"example.com/other\": field is immutable"]);
    }

    #[test]
    fn index_lists() {
        assert_eq!(count_indexes("", 5), Ok(0));
        assert_eq!(count_indexes("0,2-4", 5), Ok(4));
        assert_eq!(count_indexes("1-2,4", 5), Ok(3));
        assert_eq!(count_indexes("5", 5), Err("too large index: \"5\"".into()));
        assert_eq!(count_indexes("2,1", 5), Err("non-increasing order, previous: 2, current: 1".into()));
        assert_eq!(count_indexes("1-3,3", 5), Err("non-increasing order, previous: 3, current: 3".into()));
        assert_eq!(count_indexes("3-1", 5), Err("non-increasing order, previous: 3, current: 1".into()));
        assert_eq!(count_indexes("a", 5), Err("cannot convert string to integer for index: \"a\"".into()));
        assert_eq!(count_indexes("-1", 5), Err("cannot convert string to integer for index: \"\"".into()));
        assert!(count_indexes("1-2-3", 5).is_err_and(|e| e.contains("at most two parts")));
    }

    #[test]
    fn success_policies() {
        let with = |mode: &str, policy: Value| {
            let mut s = job_spec_json();
            s["completionMode"] = json!(mode);
            s["completions"] = json!(5);
            s["successPolicy"] = policy;
            job(s).validate_create().iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let ok = json!({"rules": [{"succeededIndexes": "0,2-4", "succeededCount": 2}, {"succeededCount": 5}]});
        assert_eq!(with("Indexed", ok.clone()), Vec::<String>::new());
        assert_eq!(with("NonIndexed", ok)[0].split(": ").last(), Some("requires indexed completion mode"));
        let cases = [
            (
                json!({"rules": []}),
                "spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified",
            ),
            (
                json!({"rules": [{}]}),
                "spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified",
            ),
            (
                json!({"rules": [{"succeededIndexes": "0,9"}]}),
                "spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"0,9\": error parsing succeededIndexes: too large index: \"9\"",
            ),
            (
                json!({"rules": [{"succeededCount": 6}]}),
                "spec.successPolicy.rules[0].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)",
            ),
            (
                json!({"rules": [{"succeededIndexes": "1-2", "succeededCount": 3}]}),
                "spec.successPolicy.rules[0].succeededCount: Invalid value: 3: must be less than or equal to 2 (the number of indexes in the specified succeededIndexes field)",
            ),
            (
                json!({"rules": vec![json!({"succeededCount": 1}); 21]}),
                "spec.successPolicy.rules: Too many: 21: must have at most 20 items",
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(with("Indexed", policy.clone()), [want], "{policy}");
        }
        let mut s = job_spec_json();
        s["completionMode"] = json!("Indexed");
        s["completions"] = json!(5);
        let old = job(s);
        let mut new = old.clone();
        new.spec.as_mut().expect("spec").success_policy =
            serde_json::from_value(json!({"rules": [{"succeededCount": 1}]})).expect("policy");
        assert_eq!(new.validate_update(&old)[0].field, "spec.successPolicy");
    }

    #[test]
    fn job_template_is_immutable() {
        let old = job(job_spec_json());
        let mut new = old.clone();
        if let Some(p) = new.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
            p.containers[0].image = Some("x:2".into());
        }
        let errs = new.validate_update(&old);
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].field.as_str(), errs[0].detail.as_str()), ("spec.template", "field is immutable"));
    }

    #[test]
    fn cron_schedules() {
        for ok in
            ["* * * * *", "*/5 0-23/2 1,15 JAN-jun mon-FRI", "@hourly", "@every 1h30m", "0 0 ? * 0", "5 4 * * sun"]
        {
            assert_eq!(parse_schedule(ok), Ok(()), "{ok}");
        }
        for bad in
            ["* * * *", "60 * * * *", "* * 0 * *", "@sometimes", "*/0 * * * *", "a * * * *", "5-1 * * * *", "@every x"]
        {
            assert!(parse_schedule(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cronjobs() {
        let cj = |name: &str, spec: Value| -> CronJob {
            let mut c: CronJob = serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("cj");
            c.set_defaults();
            c
        };
        let base = json!({"schedule": "*/1 * * * *", "jobTemplate": {"spec": job_spec_json()}});
        assert_eq!(cj("c", base.clone()).validate_create(), ErrorList::new());
        let cases = [
            ("schedule", json!(""), "spec.schedule", ErrorKind::Required),
            ("schedule", json!("61 * * * *"), "spec.schedule", ErrorKind::Invalid),
            ("schedule", json!("TZ=UTC * * * * *"), "spec.schedule", ErrorKind::Invalid),
            ("timeZone", json!("Mars/Olympus"), "spec.timeZone", ErrorKind::Invalid),
            ("concurrencyPolicy", json!("Sometimes"), "spec.concurrencyPolicy", ErrorKind::NotSupported),
            ("successfulJobsHistoryLimit", json!(-1), "spec.successfulJobsHistoryLimit", ErrorKind::Invalid),
        ];
        for (k, v, field, kind) in cases {
            let mut s = base.clone();
            s[k] = v.clone();
            let errs = cj("c", s).validate_create();
            assert!(
                errs.iter().any(|e| e.field == field && e.kind == kind),
                "{k}={v}: want {kind:?} at {field}, got {errs:?}"
            );
        }
        let errs = cj(&"c".repeat(53), base).validate_create();
        assert_eq!(errs[0].field, "metadata.name");
    }
}
