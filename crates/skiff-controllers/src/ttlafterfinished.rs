//! The TTL-after-finished controller: a Job that finished (`Complete` or `Failed`) and sets
//! `ttlSecondsAfterFinished` is deleted (foreground, so its pods go first) that many seconds
//! after it finished; the key is requeued for exactly that moment, with no polling.
//!
//! What does not live here: finishing Jobs (the Job controller).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Preconditions};

use crate::informer::{SharedInformers, get, key_of, split_key};
use crate::job::conditions;
use crate::queue::{WorkQueue, run_workers};

const NAME: &str = "ttl-after-finished-controller";

/// How long until `job` expires (zero once it has); `None` when it never does (yet).
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    let ttl = u64::try_from(job.spec.as_ref()?.ttl_seconds_after_finished?).ok()?;
    if job.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let finished = conditions::finish_time(job)?;
    let since = Duration::try_from(now.duration_since(finished)).unwrap_or(Duration::ZERO);
    Some(Duration::from_secs(ttl).saturating_sub(since))
}

/// Runs the controller until the task is dropped (register before the informers run).
pub fn controller(
    client: kube::Client,
    informers: Arc<SharedInformers>,
) -> impl std::future::Future<Output = ()> + Send {
    let queue = WorkQueue::new();
    let q = queue.clone();
    informers.jobs.on_change(move |_, new| {
        if let Some(j) = new.filter(|j| time_left(j, Timestamp::now()).is_some()) {
            q.add(key_of(j));
        }
    });
    async move {
        informers.jobs.ready().await;
        let q = queue.clone();
        run_workers(NAME, queue, 2, move |key| {
            let (client, informers, q) = (client.clone(), informers.clone(), q.clone());
            async move {
                let Some(job) = get(&informers.jobs.store(), &key) else { return Ok(()) };
                match time_left(&job, Timestamp::now()) {
                    None => Ok(()),
                    Some(left) if !left.is_zero() => {
                        q.add_after(key, left);
                        Ok(())
                    }
                    Some(_) => {
                        let (ns, name) = split_key(&key);
                        let dp = DeleteParams {
                            preconditions: Some(Preconditions {
                                uid: job.metadata.uid.clone(),
                                resource_version: job.metadata.resource_version.clone(),
                            }),
                            ..DeleteParams::foreground()
                        };
                        match Api::<Job>::namespaced(client, ns).delete(name, &dp).await {
                            Ok(_) => Ok(()),
                            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                            Err(e) => Err(e),
                        }
                    }
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expires_ttl_after_the_finish() {
        let job: Job = serde_json::from_value(json!({
            "spec": {"ttlSecondsAfterFinished": 30, "template": {}},
            "status": {"conditions": [{"type": "Complete", "status": "True",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .expect("job");
        let at = |s: &str| s.parse::<Timestamp>().expect("ts");
        assert_eq!(time_left(&job, at("2026-01-01T00:00:10Z")), Some(Duration::from_secs(20)));
        assert_eq!(time_left(&job, at("2026-01-01T00:01:00Z")), Some(Duration::ZERO));
        let mut running = job.clone();
        running.status = None;
        assert_eq!(time_left(&running, at("2026-01-01T00:01:00Z")), None);
    }
}
