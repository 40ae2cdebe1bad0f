//! The CronJob controller (batch/v1), as upstream's v2 controller: at each scheduled time (in
//! `spec.timeZone`, default UTC) it creates the Job `<cronjob>-<scheduled minutes since the
//! epoch>` from `jobTemplate`, honouring `suspend`, `startingDeadlineSeconds` and
//! `concurrencyPolicy` (Allow, Forbid, Replace); only the most recent missed time runs (more
//! than 100 missed raise `TooManyMissedTimes`). It keeps `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime`, deletes finished Jobs beyond the history limits, and requeues itself
//! for the next scheduled time instead of polling.
//!
//! What does not live here: cron syntax ([`crate::cron`]) and running the Jobs
//! ([`crate::job`]).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;
use kube::api::{Api, DeleteParams, PostParams};

use crate::cron::Schedule;
use crate::events::Events;
use crate::informer::{SharedInformers, get, key_of};
use crate::job::conditions;
use crate::podutil;
use crate::queue::{WorkQueue, run_workers};

/// Annotation recording the scheduled time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// More missed start times than this raise the `TooManyMissedTimes` warning.
pub const MISSED_WARNING: u32 = 100;
const REPORTER: &str = "cronjob-controller";

/// The most recent scheduled time at or before `now` not yet run, and how many were missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missed {
    /// The most recent missed time.
    pub latest: Timestamp,
    /// How many scheduled times passed since the last run (or the deadline window).
    pub count: u32,
}

/// Upstream's `mostRecentScheduleTime`: the schedule times after the last run (or creation),
/// limited to the `startingDeadlineSeconds` window, that are due at `now`.
pub fn missed(
    schedule: &Schedule,
    tz: &TimeZone,
    last_run: Timestamp,
    starting_deadline: Option<i64>,
    now: Timestamp,
) -> Option<Missed> {
    let mut earliest = last_run;
    if let Some(secs) = starting_deadline {
        let window = now - k8s_openapi::jiff::SignedDuration::from_secs(secs);
        earliest = earliest.max(window);
    }
    if earliest > now {
        return None;
    }
    let mut t = schedule.next(earliest, tz)?;
    if t > now {
        return None;
    }
    let mut count = 1;
    loop {
        match schedule.next(t, tz) {
            Some(n) if n <= now => {
                t = n;
                count += 1;
                if count > 1_000_000 {
                    break;
                }
            }
            _ => break,
        }
    }
    Some(Missed { latest: t, count })
}

/// What `concurrencyPolicy` allows at a scheduled time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// Create the Job.
    Run,
    /// Create nothing: a prior Job still runs (Forbid).
    Skip,
    /// Delete the running Jobs, then create the new one (Replace).
    ReplaceThenRun,
}

/// The decision of `policy` (Allow, Forbid, Replace; default Allow) with `active` Jobs running.
pub fn concurrency(policy: Option<&str>, active: usize) -> Concurrency {
    match policy {
        Some("Forbid") if active > 0 => Concurrency::Skip,
        Some("Replace") if active > 0 => Concurrency::ReplaceThenRun,
        _ => Concurrency::Run,
    }
}

/// The Job name for a scheduled time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// The time zone of `cj` (`spec.timeZone`, default UTC).
pub fn time_zone(cj: &CronJob) -> Result<TimeZone, String> {
    match cj.spec.as_ref().and_then(|s| s.time_zone.as_deref()) {
        None | Some("") => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|e| e.to_string()),
    }
}

/// The Job `cj` creates for `scheduled`.
pub fn job_for(cj: &CronJob, scheduled: Timestamp, tz: &TimeZone) -> Job {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let template = cj.spec.as_ref().map(|s| s.job_template.clone()).unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let at = scheduled.to_zoned(tz.clone());
    annotations
        .insert(SCHEDULED_TIMESTAMP.into(), at.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string().replace("+00:00", "Z"));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cj.metadata.namespace.clone(),
            labels: meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![podutil::new_controller_ref(
                "batch/v1",
                "CronJob",
                &name,
                cj.metadata.uid.as_deref().unwrap_or(""),
            )]),
            ..Default::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: None,
    }
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn finished_type(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_deref()?;
    if conditions::is_true(conds, "Complete") {
        Some("Complete")
    } else if conditions::is_true(conds, "Failed") {
        Some("Failed")
    } else {
        None
    }
}

struct Ctrl {
    client: kube::Client,
    informers: Arc<SharedInformers>,
    queue: Arc<WorkQueue>,
    events: Events,
}

/// Runs the CronJob controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let ctrl = Arc::new(Ctrl {
        events: Events::new(client.clone(), REPORTER),
        client,
        informers: informers.clone(),
        queue: WorkQueue::new(),
    });
    let c = ctrl.clone();
    informers.cronjobs.on_change(move |old, new| {
        if let Some(cj) = new.or(old) {
            c.queue.add(key_of(cj));
        }
    });
    let c = ctrl.clone();
    informers.jobs.on_change(move |old, new| {
        for j in [old, new].into_iter().flatten() {
            if let Some(r) = podutil::controller_ref(&j.metadata).filter(|r| r.kind == "CronJob") {
                c.queue.add(format!("{}/{}", j.metadata.namespace.as_deref().unwrap_or(""), r.name));
            }
        }
    });
    async move {
        ctrl.informers.jobs.ready().await;
        ctrl.informers.cronjobs.ready().await;
        let c = ctrl.clone();
        run_workers(REPORTER, ctrl.queue.clone(), 5, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    }
}

impl Ctrl {
    fn jobs_api(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn sync(&self, key: &str) -> Result<(), kube::Error> {
        let Some(cj) = get(&self.informers.cronjobs.store(), key) else { return Ok(()) };
        let mut cj = (*cj).clone();
        let ns = cj.metadata.namespace.clone().unwrap_or_default();
        let uid = cj.metadata.uid.clone().unwrap_or_default();
        let now = Timestamp::now();
        let owned: Vec<Job> = self
            .informers
            .jobs
            .store()
            .state()
            .into_iter()
            .filter(|j| j.metadata.namespace.as_deref() == Some(ns.as_str()))
            .filter(|j| podutil::controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
            .map(|j| (*j).clone())
            .collect();
        let original = cj.status.clone();
        let mut status = cj.status.clone().unwrap_or_default();
        let mut active = status.active.clone().unwrap_or_default();

        // Reconcile the active list with the Jobs that exist.
        for j in &owned {
            let listed = active.iter().any(|r| r.uid == j.metadata.uid);
            if let Some(t) = finished_type(j) {
                if listed {
                    active.retain(|r| r.uid != j.metadata.uid);
                    let name = j.metadata.name.clone().unwrap_or_default();
                    self.events
                        .normal(&cj, "SawCompletedJob", format!("Saw completed job: {name}, condition: {t}"))
                        .await;
                }
                if listed
                    && t == "Complete"
                    && let Some(done) = j.status.as_ref().and_then(|s| s.completion_time.clone())
                    && status.last_successful_time.as_ref().is_none_or(|l| l.0 < done.0)
                {
                    status.last_successful_time = Some(done);
                }
            }
        }
        active.retain(|r| owned.iter().any(|j| j.metadata.uid == r.uid));
        status.active = (!active.is_empty()).then(|| active.clone());
        if status != original.clone().unwrap_or_default() {
            cj = self.write_status(&cj, status.clone()).await?;
        }
        self.cleanup_history(&cj, &owned).await;
        if cj.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let tz = match time_zone(&cj) {
            Ok(tz) => tz,
            Err(e) => {
                let zone = cj.spec.as_ref().and_then(|s| s.time_zone.clone()).unwrap_or_default();
                self.events.warning(&cj, "UnknownTimeZone", format!("invalid timeZone: {zone:?}: {e}")).await;
                return Ok(());
            }
        };
        let spec = cj.spec.clone().unwrap_or_default();
        let schedule = match Schedule::parse(&spec.schedule) {
            Ok(s) => s,
            Err(e) => {
                let msg = format!("unparseable schedule: {:?} : {e}", spec.schedule);
                self.events.warning(&cj, "UnparseableSchedule", msg).await;
                return Ok(());
            }
        };
        if spec.suspend == Some(true) {
            return Ok(());
        }
        let last = status
            .last_schedule_time
            .as_ref()
            .map(|t| t.0)
            .or(cj.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .unwrap_or(now);
        let requeue = |after: Timestamp| {
            if let Some(next) = schedule.next(after, &tz) {
                let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default();
                self.queue.add_after(key.to_string(), wait + Duration::from_millis(100));
            }
        };
        let Some(due) = missed(&schedule, &tz, last, spec.starting_deadline_seconds, now) else {
            requeue(now);
            return Ok(());
        };
        if due.count > MISSED_WARNING {
            let msg = format!(
                "too many missed start times: {}. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                due.count
            );
            self.events.warning(&cj, "TooManyMissedTimes", msg).await;
        }
        let scheduled = due.latest;
        if let Some(secs) = spec.starting_deadline_seconds
            && scheduled + k8s_openapi::jiff::SignedDuration::from_secs(secs) < now
        {
            let at = scheduled.to_zoned(tz.clone()).strftime("%a, %d %b %Y %H:%M:%S %z").to_string();
            self.events.warning(&cj, "MissSchedule", format!("Missed scheduled time to start a job: {at}")).await;
            requeue(now);
            return Ok(());
        }
        let name = job_name(cj.metadata.name.as_deref().unwrap_or(""), scheduled);
        if active.iter().any(|r| r.name.as_deref() == Some(name.as_str()))
            || status.last_schedule_time.as_ref().is_some_and(|t| t.0 == scheduled)
        {
            requeue(now);
            return Ok(());
        }
        match concurrency(spec.concurrency_policy.as_deref(), active.len()) {
            Concurrency::Skip => {
                let msg = "Not starting job because prior execution is running and concurrency policy is Forbid";
                self.events.normal(&cj, "JobAlreadyActive", msg.into()).await;
                requeue(now);
                return Ok(());
            }
            Concurrency::ReplaceThenRun => {
                for r in std::mem::take(&mut active) {
                    let jname = r.name.clone().unwrap_or_default();
                    match self.jobs_api(&ns).delete(&jname, &DeleteParams::background()).await {
                        Ok(_) => self.events.normal(&cj, "SuccessfulDelete", format!("Deleted job {jname}")).await,
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => {
                            self.events.warning(&cj, "FailedDelete", format!("Deleted job: {e}")).await;
                            return Err(e);
                        }
                    }
                }
            }
            Concurrency::Run => {}
        }
        let job = job_for(&cj, scheduled, &tz);
        let created = match self.jobs_api(&ns).create(&PostParams::default(), &job).await {
            Ok(j) => {
                self.events.normal(&cj, "SuccessfulCreate", format!("Created job {name}")).await;
                Some(j)
            }
            Err(kube::Error::Api(e)) if e.code == 409 && e.reason == "AlreadyExists" => {
                // Made by an earlier sync whose status write was lost: adopt it into the list.
                let existing = self.jobs_api(&ns).get_opt(&name).await?;
                existing.filter(|j| podutil::controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
            }
            Err(e) => {
                self.events
                    .warning(&cj, "FailedCreate", format!("Error creating job: {}", crate::apierr::message(&e)))
                    .await;
                return Err(e);
            }
        };
        if let Some(j) = created.filter(|j| finished_type(j).is_none()) {
            active.push(job_ref(&j));
        }
        status.active = (!active.is_empty()).then_some(active);
        status.last_schedule_time = Some(Time(scheduled));
        self.write_status(&cj, status).await?;
        requeue(now);
        Ok(())
    }

    async fn write_status(
        &self,
        cj: &CronJob,
        status: k8s_openapi::api::batch::v1::CronJobStatus,
    ) -> Result<CronJob, kube::Error> {
        let mut next = cj.clone();
        next.status = Some(status);
        let ns = cj.metadata.namespace.as_deref().unwrap_or("");
        Api::<CronJob>::namespaced(self.client.clone(), ns)
            .replace_status(cj.metadata.name.as_deref().unwrap_or(""), &PostParams::default(), &next)
            .await
    }

    /// Deletes the oldest finished Jobs beyond the successful and failed history limits.
    async fn cleanup_history(&self, cj: &CronJob, owned: &[Job]) {
        let spec = cj.spec.clone().unwrap_or_default();
        for (kind, limit) in
            [("Complete", spec.successful_jobs_history_limit), ("Failed", spec.failed_jobs_history_limit)]
        {
            let Some(limit) = limit.and_then(|l| usize::try_from(l).ok()) else { continue };
            let mut done: Vec<&Job> = owned
                .iter()
                .filter(|j| finished_type(j) == Some(kind) && j.metadata.deletion_timestamp.is_none())
                .collect();
            if done.len() <= limit {
                continue;
            }
            done.sort_by_key(|j| {
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.clone())
                    .or(j.metadata.creation_timestamp.clone())
                    .map(|t| t.0)
            });
            let excess = done.len() - limit;
            for j in done.into_iter().take(excess) {
                let name = j.metadata.name.clone().unwrap_or_default();
                let api = self.jobs_api(j.metadata.namespace.as_deref().unwrap_or(""));
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => self.events.normal(cj, "SuccessfulDelete", format!("Deleted job {name}")).await,
                    Err(e) => tracing::debug!(job = %name, error = %e, "cannot delete an old job"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("ts")
    }

    #[test]
    fn missed_schedules_as_upstream() {
        let every_minute = Schedule::parse("*/1 * * * *").expect("parse");
        let utc = TimeZone::UTC;
        let created = ts("2026-01-01T00:00:30Z");
        assert_eq!(missed(&every_minute, &utc, created, None, ts("2026-01-01T00:00:59Z")), None);
        let m = missed(&every_minute, &utc, created, None, ts("2026-01-01T00:01:00Z")).expect("due");
        assert_eq!((m.latest, m.count), (ts("2026-01-01T00:01:00Z"), 1));
        // Down for three hours: 180 missed, only the latest runs.
        let m = missed(&every_minute, &utc, created, None, ts("2026-01-01T03:00:10Z")).expect("due");
        assert_eq!((m.latest, m.count), (ts("2026-01-01T03:00:00Z"), 180));
        // A starting deadline narrows the window.
        let m = missed(&every_minute, &utc, created, Some(200), ts("2026-01-01T03:00:10Z")).expect("due");
        assert_eq!((m.latest, m.count), (ts("2026-01-01T03:00:00Z"), 4));
        assert_eq!(missed(&every_minute, &utc, created, Some(5), ts("2026-01-01T03:00:30Z")), None);
    }

    #[test]
    fn concurrency_policies() {
        assert_eq!(concurrency(None, 3), Concurrency::Run);
        assert_eq!(concurrency(Some("Allow"), 3), Concurrency::Run);
        assert_eq!(concurrency(Some("Forbid"), 0), Concurrency::Run);
        assert_eq!(concurrency(Some("Forbid"), 1), Concurrency::Skip);
        assert_eq!(concurrency(Some("Replace"), 0), Concurrency::Run);
        assert_eq!(concurrency(Some("Replace"), 2), Concurrency::ReplaceThenRun);
    }

    #[test]
    fn jobs_are_named_and_annotated_as_upstream() {
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "hello", "namespace": "ns", "uid": "cj-1"},
            "spec": {"schedule": "*/1 * * * *", "timeZone": "Europe/Berlin", "jobTemplate": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"template": {"spec": {"containers": []}}}}}
        }))
        .expect("cj");
        let tz = time_zone(&cj).expect("tz");
        let at = ts("2026-01-01T00:01:00Z");
        let job = job_for(&cj, at, &tz);
        assert_eq!(job.metadata.name.as_deref(), Some("hello-29453761"));
        let v = serde_json::to_value(&job).expect("json");
        assert_eq!(v["metadata"]["annotations"][SCHEDULED_TIMESTAMP], "2026-01-01T01:01:00+01:00");
        assert_eq!(v["metadata"]["labels"]["app"], "x");
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "CronJob");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        let utc = job_for(&cj, at, &TimeZone::UTC);
        assert_eq!(
            utc.metadata.annotations.and_then(|a| a.get(SCHEDULED_TIMESTAMP).cloned()).as_deref(),
            Some("2026-01-01T00:01:00Z")
        );
        let mut bad = cj.clone();
        if let Some(s) = bad.spec.as_mut() {
            s.time_zone = Some("Mars/Olympus".into());
        }
        assert!(time_zone(&bad).is_err());
    }
}
