//! The Job controller (batch/v1), as upstream's: pods are created towards `parallelism` and
//! `completions` (NonIndexed or Indexed, with the completion index as annotation, label,
//! hostname and `JOB_COMPLETION_INDEX`), failures are retried with an exponential back-off up to
//! `backoffLimit`, `activeDeadlineSeconds`, `podFailurePolicy`, `successPolicy` and `suspend` are
//! honoured, Jobs whose `managedBy` names another controller are left alone, and
//! `status` is tracked through the `batch.kubernetes.io/job-tracking` pod finalizer: a finished
//! pod is first recorded in `uncountedTerminatedPods`, then its finalizer is removed, then it is
//! moved into `succeeded`/`failed`, so a pod is never counted twice.
//!
//! What does not live here: the arithmetic ([`plan`]), conditions ([`conditions`]), pod failure
//! matching ([`failure`]), success policies ([`success`]), index lists ([`indexes`]), the
//! back-off curve ([`backoff`]), and
//! deleting finished Jobs ([`crate::ttlafterfinished`]).

pub mod backoff;
pub mod conditions;
pub mod failure;
pub mod indexes;
pub mod plan;
pub mod success;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::{Job, JobSpec, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::apierr;
use crate::events::Events;
use crate::expectations::Expectations;
use crate::informer::{SharedInformers, get, key_of};
use crate::podutil::{self, Claim};
use crate::queue::{WorkQueue, run_workers};
use crate::replicaset::{BURST_REPLICAS, pod_from_template, slow_start_batch};
use crate::selector;

/// The finalizer that keeps a Job's pods until the controller has counted them.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation and label carrying a pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Annotation counting the earlier failures of a pod's index (`backoffLimitPerIndex`).
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// The environment variable an Indexed Job's containers read their index from.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// The `spec.managedBy` value (or its absence) that gives a Job to this controller.
pub const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";
const REPORTER: &str = "job-controller";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// Creating or deleting pods failed.
    #[error("{0}")]
    Manage(String),
}

/// Failures since the last success and when the last one finished.
#[derive(Debug, Clone, Copy, Default)]
struct BackoffRecord {
    failures: u32,
    last_failure: Option<Timestamp>,
}

struct Ctrl {
    client: kube::Client,
    informers: Arc<SharedInformers>,
    queue: Arc<WorkQueue>,
    expectations: Expectations,
    events: Events,
    backoff: Mutex<HashMap<String, BackoffRecord>>,
    /// The resourceVersion of each Job's last status write: a sync never acts on an older copy
    /// (it would miss pods already counted and create their replacements).
    written: Mutex<HashMap<String, u64>>,
}

/// Runs the Job controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let ctrl = Arc::new(Ctrl {
        events: Events::new(client.clone(), REPORTER),
        client,
        informers: informers.clone(),
        queue: WorkQueue::new(),
        expectations: Expectations::default(),
        backoff: Mutex::default(),
        written: Mutex::default(),
    });
    let c = ctrl.clone();
    informers.jobs.on_change(move |old, new| {
        if let Some(j) = new.or(old) {
            c.queue.add(key_of(j));
        }
    });
    let c = ctrl.clone();
    informers.pods.on_change(move |old, new| c.pod_changed(old, new));
    async move {
        ctrl.informers.pods.ready().await;
        ctrl.informers.jobs.ready().await;
        let c = ctrl.clone();
        run_workers(REPORTER, ctrl.queue.clone(), 5, move |key| {
            let c = c.clone();
            async move { c.sync(&key).await }
        })
        .await;
    }
}

fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata.finalizers.iter().flatten().any(|f| f == TRACKING_FINALIZER)
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The completion index of a pod (annotation first, then label), if it has a valid one.
pub fn pod_index(pod: &Pod) -> Option<i32> {
    let m = &pod.metadata;
    m.annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX))
        .or_else(|| m.labels.as_ref().and_then(|l| l.get(COMPLETION_INDEX)))
        .and_then(|v| v.parse().ok())
        .filter(|i| *i >= 0)
}

/// How many earlier pods of this pod's index failed (its failure-count annotation).
pub fn index_failures(pod: &Pod) -> i32 {
    pod.metadata.annotations.as_ref().and_then(|a| a.get(INDEX_FAILURE_COUNT)).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// The failure count a new pod for `index` carries: one more than the latest failed pod of
/// that index had.
pub fn next_index_failures(pods: &[Pod], index: i32) -> i32 {
    pods.iter()
        .filter(|p| pod_index(p) == Some(index))
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .map(|p| index_failures(p) + 1)
        .max()
        .unwrap_or(0)
}

fn terminal(pod: &Pod) -> bool {
    matches!(pod.status.as_ref().and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed"))
}

/// Whether this controller syncs `job`: its `managedBy` is unset or names this controller.
pub fn managed_here(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.managed_by.as_deref()).is_none_or(|m| m == JOB_CONTROLLER_NAME)
}

fn is_indexed(spec: &JobSpec) -> bool {
    spec.completion_mode.as_deref() == Some("Indexed")
}

/// The pod template of `job` for one pod: labels and annotations of the template, the tracking
/// finalizer, and for Indexed Jobs the index annotation and label, hostname and env var.
pub fn pod_for(job: &Job, index: Option<i32>, failures: Option<i32>) -> Pod {
    let spec = job.spec.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let mut template: PodTemplateSpec = spec.template;
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.finalizers.get_or_insert_with(Vec::new).push(TRACKING_FINALIZER.into());
    let mut prefix = name.clone();
    if let Some(i) = index {
        let annotations = meta.annotations.get_or_insert_with(Default::default);
        annotations.insert(COMPLETION_INDEX.into(), i.to_string());
        if let Some(n) = failures {
            annotations.insert(INDEX_FAILURE_COUNT.into(), n.to_string());
        }
        meta.labels.get_or_insert_with(Default::default).insert(COMPLETION_INDEX.into(), i.to_string());
        prefix = format!("{name}-{i}");
        if let Some(ps) = template.spec.as_mut() {
            if ps.hostname.as_deref().unwrap_or("").is_empty() {
                ps.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: COMPLETION_INDEX_ENV.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..Default::default()
                }),
            };
            for c in ps.containers.iter_mut().chain(ps.init_containers.iter_mut().flatten()) {
                let envs = c.env.get_or_insert_with(Vec::new);
                if !envs.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                    envs.push(env.clone());
                }
            }
        }
    }
    let owner = podutil::new_controller_ref("batch/v1", "Job", &name, job.metadata.uid.as_deref().unwrap_or(""));
    pod_from_template(&template, &prefix, job.metadata.namespace.as_deref().unwrap_or(""), owner)
}

/// `v` without nulls, zeros, empty lists and empty objects (what an API round trip may drop).
fn pruned(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, pruned(v)))
                .filter(|(_, v)| {
                    !(v.is_null()
                        || v.as_i64() == Some(0)
                        || v.as_array().is_some_and(Vec::is_empty)
                        || v.as_object().is_some_and(|o| o.is_empty()))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(pruned).collect()),
        other => other,
    }
}

/// Whether two statuses say the same (so no write is needed).
fn same_status(old: Option<&JobStatus>, new: &JobStatus) -> bool {
    let v = |s: Option<&JobStatus>| pruned(serde_json::to_value(s).unwrap_or_default());
    v(old) == v(Some(new))
}

/// What one sync found among the Job's pods.
#[derive(Default)]
struct Seen {
    active: Vec<Pod>,
    terminating: i32,
    ready: i32,
}

impl Ctrl {
    fn owner_key(&self, pod: &Pod) -> Option<String> {
        let r = podutil::controller_ref(&pod.metadata)?;
        if r.kind != "Job" || !r.api_version.starts_with("batch/") {
            return None;
        }
        Some(format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), r.name))
    }

    fn pod_changed(&self, old: Option<&Pod>, new: Option<&Pod>) {
        match (old, new) {
            (None, Some(pod)) => {
                if let Some(key) = self.owner_key(pod) {
                    if pod.metadata.deletion_timestamp.is_some() {
                        self.expectations.deletion_observed(&key, &key_of(pod));
                    } else {
                        self.expectations.creation_observed(&key);
                    }
                    self.queue.add(key);
                }
            }
            (Some(old), Some(cur)) => {
                if old.metadata.resource_version == cur.metadata.resource_version {
                    return;
                }
                if let Some(key) = self.owner_key(cur) {
                    if cur.metadata.deletion_timestamp.is_some() && old.metadata.deletion_timestamp.is_none() {
                        self.expectations.deletion_observed(&key, &key_of(cur));
                    }
                    self.queue.add(key);
                }
                if let Some(key) = self.owner_key(old).filter(|k| Some(k) != self.owner_key(cur).as_ref()) {
                    self.queue.add(key);
                }
            }
            (Some(pod), None) => {
                if let Some(key) = self.owner_key(pod) {
                    self.expectations.deletion_observed(&key, &key_of(pod));
                    self.queue.add(key);
                }
            }
            (None, None) => {}
        }
    }

    fn pods_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// The Job's pods (all phases), adopting selected orphans and releasing unselected pods.
    async fn claim_pods(&self, job: &Job) -> Result<Vec<Pod>, kube::Error> {
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let sel = job.spec.as_ref().and_then(|s| s.selector.clone()).unwrap_or_default();
        let deleting = job.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        for pod in self.informers.pods.store().state() {
            if pod.metadata.namespace.as_deref() != Some(ns) {
                continue;
            }
            let selected = selector::matches(&sel, pod.metadata.labels.as_ref());
            match podutil::claim(&uid, deleting, &pod.metadata, selected) {
                Claim::Keep => owned.push((*pod).clone()),
                Claim::Adopt => {
                    let mut refs = pod.metadata.owner_references.clone().unwrap_or_default();
                    refs.push(podutil::new_controller_ref(
                        "batch/v1",
                        "Job",
                        job.metadata.name.as_deref().unwrap_or(""),
                        &uid,
                    ));
                    if podutil::patch_owner_refs(&self.pods_api(ns), &pod.metadata, refs).await? {
                        owned.push((*pod).clone());
                    }
                }
                Claim::Release => {
                    let refs =
                        pod.metadata.owner_references.iter().flatten().filter(|r| r.uid != uid).cloned().collect();
                    podutil::patch_owner_refs(&self.pods_api(ns), &pod.metadata, refs).await?;
                }
                Claim::Ignore => {}
            }
        }
        Ok(owned)
    }

    /// Removes the tracking finalizer from `pod`; `true` once it is gone (or the pod is).
    async fn remove_finalizer(&self, pod: &Pod) -> Result<bool, kube::Error> {
        let rest: Vec<String> =
            pod.metadata.finalizers.iter().flatten().filter(|f| *f != TRACKING_FINALIZER).cloned().collect();
        let patch = json!({"metadata": {
            "finalizers": if rest.is_empty() { serde_json::Value::Null } else { json!(rest) },
            "resourceVersion": pod.metadata.resource_version,
        }});
        let api = self.pods_api(pod.metadata.namespace.as_deref().unwrap_or(""));
        match api
            .patch(pod.metadata.name.as_deref().unwrap_or(""), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn write_status(&self, job: &Job, status: JobStatus) -> Result<Job, kube::Error> {
        if same_status(job.status.as_ref(), &status) {
            return Ok(job.clone());
        }
        let mut next = job.clone();
        next.status = Some(status);
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let name = job.metadata.name.as_deref().unwrap_or("");
        let written =
            Api::<Job>::namespaced(self.client.clone(), ns).replace_status(name, &PostParams::default(), &next).await?;
        if let Some(rv) = written.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()) {
            self.written.lock().unwrap_or_else(|e| e.into_inner()).insert(key_of(job), rv);
        }
        Ok(written)
    }

    fn record_backoff(&self, key: &str, outcome: Option<Timestamp>) {
        let mut map = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let r = map.entry(key.to_string()).or_default();
        match outcome {
            None => *r = BackoffRecord::default(),
            Some(t) => {
                r.failures += 1;
                r.last_failure = Some(r.last_failure.map_or(t, |l| l.max(t)));
            }
        }
    }

    fn backoff_left(&self, key: &str, now: Timestamp) -> Duration {
        let map = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = map.get(key) else { return Duration::ZERO };
        let since =
            r.last_failure.map_or(Duration::ZERO, |t| Duration::try_from(now.duration_since(t)).unwrap_or_default());
        backoff::remaining(r.failures, since)
    }

    async fn sync(&self, key: &str) -> Result<(), SyncError> {
        let Some(job) = get(&self.informers.jobs.store(), key) else {
            self.expectations.delete(key);
            self.backoff.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
            self.written.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
            // The Job is gone: its pods must not stay blocked on the tracking finalizer.
            for p in self.informers.pods.store().state() {
                if has_finalizer(&p) && self.owner_key(&p).as_deref() == Some(key) {
                    self.remove_finalizer(&p).await?;
                }
            }
            return Ok(());
        };
        let rv = job.metadata.resource_version.as_deref().and_then(|v| v.parse::<u64>().ok());
        let last = self.written.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied();
        if let (Some(rv), Some(last)) = (rv, last)
            && rv < last
        {
            // The informer has not caught up with our own write; its update requeues the Job.
            return Ok(());
        }
        if !managed_here(&job) {
            // Another controller owns this Job: no pods, no status from here.
            return Ok(());
        }
        let mut job = (*job).clone();
        let pods = self.claim_pods(&job).await?;
        if conditions::finished(&job) || job.metadata.deletion_timestamp.is_some() {
            // Counting is over: nothing may stay blocked on the finalizer.
            for p in pods.iter().filter(|p| has_finalizer(p) && (terminal(p) || conditions::finished(&job))) {
                self.remove_finalizer(p).await?;
            }
            if job.metadata.deletion_timestamp.is_some() {
                for p in pods.iter().filter(|p| has_finalizer(p) && !terminal(p)) {
                    self.remove_finalizer(p).await?;
                }
            }
            return Ok(());
        }
        let now = Timestamp::now();
        let spec = job.spec.clone().unwrap_or_default();
        let indexed = is_indexed(&spec);
        let completions = spec.completions.unwrap_or(0);
        let mut status = job.status.clone().unwrap_or_default();
        let mut conds = status.conditions.clone().unwrap_or_default();
        let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
        let mut unc_s = uncounted.succeeded.unwrap_or_default();
        let mut unc_f = uncounted.failed.unwrap_or_default();
        let mut completed = indexes::parse(status.completed_indexes.as_deref(), completions);
        let mut failed_idx = indexes::parse(status.failed_indexes.as_deref(), completions);
        let mut release: Vec<&Pod> = Vec::new();
        let mut failure_target: Option<(String, String)> = None;
        let mut newly: Vec<Option<Timestamp>> = Vec::new();

        // 1. Record newly finished pods as uncounted.
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            let u = uid(p);
            if unc_s.contains(&u) || unc_f.contains(&u) {
                continue;
            }
            if failure::succeeded(p) {
                if indexed {
                    match pod_index(p).filter(|i| *i < completions && !completed.contains(i)) {
                        Some(i) => {
                            completed.insert(i);
                        }
                        None => {
                            release.push(p);
                            continue;
                        }
                    }
                }
                unc_s.push(u);
                newly.push(None);
            } else if failure::failed(p, &job) {
                let failed_phase = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
                let action = spec
                    .pod_failure_policy
                    .as_ref()
                    .filter(|_| failed_phase)
                    .and_then(|pol| failure::matching_rule(pol, p))
                    .unwrap_or(failure::Action::Count);
                match action {
                    failure::Action::Ignore => {
                        release.push(p);
                        continue;
                    }
                    failure::Action::FailJob(msg) => {
                        failure_target.get_or_insert((conditions::POD_FAILURE_POLICY.into(), msg));
                    }
                    failure::Action::FailIndex => {
                        if let Some(i) = pod_index(p).filter(|i| *i < completions) {
                            failed_idx.insert(i);
                        }
                    }
                    failure::Action::Count => {}
                }
                if indexed
                    && let Some(limit) = spec.backoff_limit_per_index
                    && index_failures(p) >= limit
                    && let Some(i) = pod_index(p).filter(|i| *i < completions && !completed.contains(i))
                {
                    failed_idx.insert(i);
                }
                unc_f.push(u);
                newly.push(Some(failure::finish_time(p, now)));
            }
        }
        if let Some((reason, msg)) = &failure_target
            && !conditions::is_true(&conds, "FailureTarget")
            && !conditions::is_true(&conds, "SuccessCriteriaMet")
        {
            conditions::set(&mut conds, "FailureTarget", "True", reason, msg, now);
            self.events.warning(&job, reason, msg.clone()).await;
        }
        let set_indexes = |st: &mut JobStatus, completed: &BTreeSet<i32>, failed: &BTreeSet<i32>| {
            if indexed {
                st.completed_indexes = indexes::format(completed);
                if spec.backoff_limit_per_index.is_some() || !failed.is_empty() {
                    st.failed_indexes = Some(indexes::format(failed).unwrap_or_default());
                }
            }
        };
        if !newly.is_empty() || failure_target.is_some() {
            let mut st = status.clone();
            st.uncounted_terminated_pods =
                Some(UncountedTerminatedPods { succeeded: Some(unc_s.clone()), failed: Some(unc_f.clone()) });
            st.conditions = (!conds.is_empty()).then(|| conds.clone());
            set_indexes(&mut st, &completed, &failed_idx);
            job = self.write_status(&job, st).await?;
            status = job.status.clone().unwrap_or_default();
            for outcome in newly {
                self.record_backoff(key, outcome);
            }
        }

        // 2. Remove finalizers of recorded (or ignored) pods, 3. then count them.
        let mut gone: HashSet<String> = HashSet::new();
        for p in pods.iter().filter(|p| has_finalizer(p)) {
            let u = uid(p);
            let recorded = unc_s.contains(&u) || unc_f.contains(&u);
            if (recorded || release.iter().any(|r| uid(r) == u)) && self.remove_finalizer(p).await? {
                gone.insert(u);
            }
        }
        let present: HashMap<String, &Pod> = pods.iter().map(|p| (uid(p), p)).collect();
        let counted = |u: &String| gone.contains(u) || present.get(u).is_none_or(|p| !has_finalizer(p));
        let before = (unc_s.len(), unc_f.len());
        unc_s.retain(|u| !counted(u));
        unc_f.retain(|u| !counted(u));
        let moved_s = i32::try_from(before.0 - unc_s.len()).unwrap_or(0);
        let moved_f = i32::try_from(before.1 - unc_f.len()).unwrap_or(0);
        status.succeeded = Some(status.succeeded.unwrap_or(0) + moved_s);
        status.failed = Some(status.failed.unwrap_or(0) + moved_f);
        status.uncounted_terminated_pods =
            Some(UncountedTerminatedPods { succeeded: Some(unc_s.clone()), failed: Some(unc_f.clone()) });
        set_indexes(&mut status, &completed, &failed_idx);

        // 4. Look at what runs.
        let mut seen = Seen::default();
        for p in &pods {
            if p.metadata.deletion_timestamp.is_some() {
                if !terminal(p) {
                    seen.terminating += 1;
                }
            } else if !terminal(p) {
                if podutil::is_ready(p) {
                    seen.ready += 1;
                }
                seen.active.push(p.clone());
            }
        }
        let counts = plan::Counts {
            succeeded: status.succeeded.unwrap_or(0) + i32::try_from(unc_s.len()).unwrap_or(0),
            failed: status.failed.unwrap_or(0) + i32::try_from(unc_f.len()).unwrap_or(0),
            active: i32::try_from(seen.active.len()).unwrap_or(i32::MAX),
            completed_indexes: i32::try_from(completed.len()).unwrap_or(0),
            failed_indexes: i32::try_from(failed_idx.len()).unwrap_or(0),
        };
        let suspended = spec.suspend == Some(true);
        if !suspended && status.start_time.is_none() {
            status.start_time = Some(Time(now));
        }

        // 5. Decide the Job's fate.
        let mut finishing =
            conditions::is_true(&conds, "FailureTarget") || conditions::is_true(&conds, "SuccessCriteriaMet");
        if !finishing {
            if let Some((reason, msg)) = plan::failure(&spec, counts, status.start_time.as_ref().map(|t| t.0), now) {
                conditions::set(&mut conds, "FailureTarget", "True", reason, msg, now);
                self.events.warning(&job, reason, msg.into()).await;
                finishing = true;
            } else if let Some(msg) = spec
                .success_policy
                .as_ref()
                .filter(|_| indexed)
                .and_then(|policy| success::matched(policy, completions, &completed))
            {
                conditions::set(&mut conds, "SuccessCriteriaMet", "True", conditions::SUCCESS_POLICY, &msg, now);
                finishing = true;
            } else if plan::success(&spec, counts) {
                let (r, m) = (conditions::COMPLETIONS_REACHED, conditions::COMPLETIONS_MESSAGE);
                conditions::set(&mut conds, "SuccessCriteriaMet", "True", r, m, now);
                finishing = true;
            } else if !suspended
                && let Some(left) = plan::deadline_left(&spec, status.start_time.as_ref().map(|t| t.0), now)
            {
                self.queue.add_after(key.to_string(), left + Duration::from_millis(100));
            }
        }

        let mut manage_err = None;
        let mut active = seen.active.len();
        if finishing {
            let n = self.delete_pods(key, &job, &seen.active).await;
            active -= n.0;
            seen.terminating += i32::try_from(n.0).unwrap_or(0);
            manage_err = n.1;
            if active == 0 && seen.terminating == 0 && unc_s.is_empty() && unc_f.is_empty() {
                if let Some(ft) = conditions::get(&conds, "FailureTarget").filter(|c| c.status == "True").cloned() {
                    let (r, m) = (ft.reason.unwrap_or_default(), ft.message.unwrap_or_default());
                    conditions::set(&mut conds, "Failed", "True", &r, &m, now);
                } else {
                    // Complete says why, as SuccessCriteriaMet did.
                    let met = conditions::get(&conds, "SuccessCriteriaMet").cloned().unwrap_or_default();
                    let r = met.reason.unwrap_or_else(|| conditions::COMPLETIONS_REACHED.into());
                    let m = met.message.unwrap_or_else(|| conditions::COMPLETIONS_MESSAGE.into());
                    conditions::set(&mut conds, "Complete", "True", &r, &m, now);
                    status.completion_time = Some(Time(now));
                    self.events.normal(&job, "Completed", "Job completed".into()).await;
                }
            }
        } else if suspended {
            let n = self.delete_pods(key, &job, &seen.active).await;
            active -= n.0;
            seen.terminating += i32::try_from(n.0).unwrap_or(0);
            manage_err = n.1;
            if conditions::set(&mut conds, "Suspended", "True", "JobSuspended", "Job suspended", now) {
                self.events.normal(&job, "Suspended", "Job suspended".into()).await;
            }
        } else {
            if conditions::is_true(&conds, "Suspended") {
                conditions::set(&mut conds, "Suspended", "False", "JobResumed", "Job resumed", now);
                self.events.normal(&job, "Resumed", "Job resumed".into()).await;
                status.start_time = Some(Time(now));
            }
            if self.expectations.satisfied(key) {
                let mut c = counts;
                if spec.pod_replacement_policy.as_deref() == Some("Failed") {
                    c.active += seen.terminating;
                }
                let want = plan::want_active(&spec, c);
                let (delta, err) =
                    self.manage(key, &job, &seen, &pods, want, c.active, &completed, &failed_idx, now).await;
                active = usize::try_from(i64::try_from(active).unwrap_or(0) + delta).unwrap_or(0);
                manage_err = err;
            }
        }
        status.active = Some(i32::try_from(active).unwrap_or(i32::MAX));
        status.ready = Some(seen.ready);
        status.terminating = Some(seen.terminating);
        status.conditions = (!conds.is_empty()).then_some(conds);
        self.write_status(&job, status).await?;
        match manage_err {
            Some(e) => Err(SyncError::Manage(e)),
            None => Ok(()),
        }
    }

    /// Deletes `pods`; returns how many deletions were issued and the first error.
    async fn delete_pods(&self, key: &str, job: &Job, pods: &[Pod]) -> (usize, Option<String>) {
        if pods.is_empty() {
            return (0, None);
        }
        self.expectations.expect_deletions(key, pods.iter().map(key_of));
        let results = join_all(pods.iter().map(|p| async move {
            let name = p.metadata.name.clone().unwrap_or_default();
            let api = self.pods_api(p.metadata.namespace.as_deref().unwrap_or(""));
            match api.delete(&name, &DeleteParams::background()).await {
                Ok(_) => {
                    self.events.normal(job, "SuccessfulDelete", format!("Deleted pod: {name}")).await;
                    Ok(())
                }
                Err(e) => {
                    self.expectations.deletion_observed(key, &key_of(p));
                    if apierr::benign(&e) {
                        return Ok(());
                    }
                    let msg = apierr::message(&e);
                    self.events.warning(job, "FailedDelete", format!("Error deleting: {msg}")).await;
                    Err(msg)
                }
            }
        }))
        .await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        (ok, results.into_iter().find_map(|r| r.err()))
    }

    /// Creates or deletes pods towards `want` active; returns the change in active pods.
    #[allow(clippy::too_many_arguments)]
    async fn manage(
        &self,
        key: &str,
        job: &Job,
        seen: &Seen,
        all: &[Pod],
        want: i32,
        active: i32,
        completed: &BTreeSet<i32>,
        failed_idx: &BTreeSet<i32>,
        now: Timestamp,
    ) -> (i64, Option<String>) {
        let spec = job.spec.clone().unwrap_or_default();
        let completions = spec.completions.unwrap_or(0);
        let mut excess: Vec<Pod> = Vec::new();
        let mut running: BTreeSet<i32> = BTreeSet::new();
        if is_indexed(&spec) {
            // Pods of invalid, finished or duplicated indexes go.
            for p in &seen.active {
                match pod_index(p) {
                    Some(i)
                        if i < completions
                            && !completed.contains(&i)
                            && !failed_idx.contains(&i)
                            && running.insert(i) => {}
                    _ => excess.push(p.clone()),
                }
            }
        }
        let kept = active - i32::try_from(excess.len()).unwrap_or(0);
        if kept > want {
            let mut rest: Vec<&Pod> = seen.active.iter().filter(|p| !excess.iter().any(|e| uid(e) == uid(p))).collect();
            rest.sort_by_key(|p| std::cmp::Reverse(pod_index(p)));
            let ranked = if is_indexed(&spec) {
                rest.into_iter().take(usize::try_from(kept - want).unwrap_or(0)).collect()
            } else {
                podutil::pods_to_delete(&rest, &rest, usize::try_from(kept - want).unwrap_or(0), now)
            };
            excess.extend(ranked.into_iter().cloned());
        }
        if !excess.is_empty() {
            let (n, err) = self.delete_pods(key, job, &excess).await;
            return (-i64::try_from(n).unwrap_or(0), err);
        }
        if kept >= want {
            return (0, None);
        }
        let left = self.backoff_left(key, now);
        if !left.is_zero() {
            self.queue.add_after(key.to_string(), left);
            return (0, None);
        }
        let n = usize::try_from(want - kept).unwrap_or(0).min(BURST_REPLICAS);
        let plan: Vec<Option<i32>> = if is_indexed(&spec) {
            let done: BTreeSet<i32> = completed.union(failed_idx).copied().collect();
            indexes::missing(completions, &done, &running, n).into_iter().map(Some).collect()
        } else {
            vec![None; n]
        };
        let n = plan.len();
        if n == 0 {
            return (0, None);
        }
        self.expectations.expect_creations(key, n);
        let ns = job.metadata.namespace.as_deref().unwrap_or("");
        let api = self.pods_api(ns);
        let (created, err) = slow_start_batch(n, |i| {
            let failures =
                plan[i].filter(|_| spec.backoff_limit_per_index.is_some()).map(|idx| next_index_failures(all, idx));
            let pod = pod_for(job, plan[i], failures);
            let api = api.clone();
            async move {
                match api.create(&PostParams::default(), &pod).await {
                    Ok(p) => {
                        let name = p.metadata.name.unwrap_or_default();
                        self.events.normal(job, "SuccessfulCreate", format!("Created pod: {name}")).await;
                        Ok(())
                    }
                    Err(e) if apierr::namespace_terminating(&e) => Ok(()),
                    Err(e) => {
                        let msg = apierr::message(&e);
                        self.events.warning(job, "FailedCreate", format!("Error creating: {msg}")).await;
                        Err(msg)
                    }
                }
            }
        })
        .await;
        for _ in created..n {
            self.expectations.creation_observed(key);
        }
        (i64::try_from(created).unwrap_or(0), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(mode: &str) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "pi", "namespace": "ns", "uid": "u1"},
            "spec": {"completionMode": mode, "completions": 3, "template": {
                "metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "spec": {"restartPolicy": "Never",
                    "initContainers": [{"name": "init", "image": "busybox"}],
                    "containers": [{"name": "c", "image": "busybox"}]}}}
        }))
        .expect("job")
    }

    #[test]
    fn indexed_pods_carry_their_index() {
        let p = pod_for(&job("Indexed"), Some(2), Some(1));
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["metadata"]["generateName"], "pi-2-");
        assert_eq!(v["metadata"]["annotations"][COMPLETION_INDEX], "2");
        assert_eq!(v["metadata"]["labels"][COMPLETION_INDEX], "2");
        assert_eq!(v["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "Job");
        assert_eq!(v["spec"]["hostname"], "pi-2");
        let env = json!([{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef":
            {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}]);
        assert_eq!(v["spec"]["containers"][0]["env"], env);
        assert_eq!(v["spec"]["initContainers"][0]["env"], env);
        assert_eq!(pod_index(&p), Some(2));
        assert_eq!(index_failures(&p), 1);
        let mut failed = p.clone();
        failed.status =
            Some(k8s_openapi::api::core::v1::PodStatus { phase: Some("Failed".into()), ..Default::default() });
        assert_eq!(next_index_failures(&[failed, p], 2), 2);
        assert_eq!(next_index_failures(&[], 2), 0);
    }

    #[test]
    fn empty_lists_do_not_force_a_write() {
        let written = JobStatus {
            uncounted_terminated_pods: Some(UncountedTerminatedPods { succeeded: Some(vec![]), failed: Some(vec![]) }),
            active: Some(1),
            ..Default::default()
        };
        let read = JobStatus { active: Some(1), ..Default::default() };
        assert!(same_status(Some(&read), &written));
        assert!(!same_status(Some(&read), &JobStatus { active: Some(2), ..written.clone() }));
    }

    #[test]
    fn only_jobs_of_this_controller_are_synced() {
        let mut j = job("NonIndexed");
        assert!(managed_here(&j), "no managedBy");
        let spec = j.spec.as_mut().expect("spec");
        spec.managed_by = Some(JOB_CONTROLLER_NAME.into());
        assert!(managed_here(&j));
        j.spec.as_mut().expect("spec").managed_by = Some("example.com/other".into());
        assert!(!managed_here(&j));
    }

    #[test]
    fn non_indexed_pods_are_plain() {
        let p = pod_for(&job("NonIndexed"), None, None);
        let v = serde_json::to_value(&p).expect("json");
        assert_eq!(v["metadata"]["generateName"], "pi-");
        assert!(v["metadata"]["annotations"].is_null());
        assert!(v["spec"]["containers"][0]["env"].is_null());
        assert!(has_finalizer(&p));
        assert_eq!(pod_index(&p), None);
    }
}
