//! Printers for `batch`: jobs and cron jobs.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Printer;
use super::age::{self, human_duration, nanos_between, parse_time};
use super::columns::{AGE, CONTAINERS, ColumnDef, IMAGES, NAME, SELECTOR};
use super::fields::{
    at, bool_word, condition_true, containers, deleting, format_label_selector, int, list, name, obj_age, opt_bool,
    opt_int, text,
};

/// The printer of batch resource `plural`, if it has one.
pub(super) fn printer(plural: &str) -> Option<Printer> {
    match plural {
        "jobs" => Some(Printer { columns: JOB_COLUMNS, cells: job_cells }),
        "cronjobs" => Some(Printer { columns: CRON_JOB_COLUMNS, cells: cron_job_cells }),
        _ => None,
    }
}

const JOB_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Status", "Summary of the job's conditions."),
    ColumnDef::string("Completions", "Succeeded pods out of the completions wanted."),
    ColumnDef::string("Duration", "How long the job ran, or has been running."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// The job's status word, the first that applies of: Complete, Failed, Terminating, Suspended,
/// FailureTarget, SuccessCriteriaMet, Running.
fn job_status(job: &Value) -> &'static str {
    let is = |type_: &str| condition_true(job, &["status", "conditions"], type_);
    if is("Complete") {
        "Complete"
    } else if is("Failed") {
        "Failed"
    } else if deleting(job) {
        "Terminating"
    } else if is("Suspended") {
        "Suspended"
    } else if is("FailureTarget") {
        "FailureTarget"
    } else if is("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int(job, &["status", "succeeded"]);
    let completions = match opt_int(job, &["spec", "completions"]) {
        Some(wanted) => format!("{succeeded}/{wanted}"),
        None => match int(job, &["spec", "parallelism"]) {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let started = parse_time(text(job, &["status", "startTime"]));
    let completed = parse_time(text(job, &["status", "completionTime"]));
    let duration = match (started, completed) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(nanos_between(start, now)),
        (Some(start), Some(end)) => human_duration(nanos_between(start, end)),
    };
    let (names, images) = containers(at(job, &["spec", "template", "spec"]).unwrap_or(&Value::Null));
    vec![
        json!(name(job)),
        json!(job_status(job)),
        json!(completions),
        json!(duration),
        json!(obj_age(job, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(job, &["spec", "selector"]))),
    ]
}

const CRON_JOB_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Schedule", "Cron schedule of the job."),
    ColumnDef::string("Timezone", "Time zone the schedule is read in."),
    ColumnDef::boolean("Suspend", "Whether new runs are suspended."),
    ColumnDef::integer("Active", "Number of running jobs."),
    ColumnDef::string("Last Schedule", "Time since a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn cron_job_cells(cron: &Value, now: Timestamp) -> Vec<Value> {
    let job_spec = at(cron, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
    let (names, images) = containers(at(job_spec, &["template", "spec"]).unwrap_or(&Value::Null));
    let suspend = opt_bool(cron, &["spec", "suspend"]).map_or("<unset>", bool_word);
    let time_zone = at(cron, &["spec", "timeZone"]).and_then(Value::as_str).unwrap_or("<none>");
    let last_schedule = match at(cron, &["status", "lastScheduleTime"]).and_then(Value::as_str) {
        Some(stamp) => age::age(stamp, now),
        None => "<none>".to_string(),
    };
    vec![
        json!(name(cron)),
        json!(text(cron, &["spec", "schedule"])),
        json!(time_zone),
        json!(suspend),
        json!(list(cron, &["status", "active"]).len()),
        json!(last_schedule),
        json!(obj_age(cron, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(job_spec, &["selector"]))),
    ]
}
