//! The agent's image manager (the kubelet's `EnsureImageExists`): before a container starts,
//! make sure its image is on the node per `imagePullPolicy`, pulling it with the pod's pull
//! secrets when needed, with the kubelet's back-off, container states and events.
//!
//! Pulls never block a pod worker: [`ImageManager::ensure`] starts a pull in its own task and
//! answers [`Ensure::Pending`] until it ends, so the worker keeps reporting and can be deleted
//! mid-pull. Pulls of one image with the same credentials are shared by every container waiting
//! for it; each container still reports its own `Pulling`/`Pulled` events, with the time it
//! waited. After a failure the container shows `ErrImagePull` for the first half of its back-off
//! window (the kubelet shows it until its next sync) and `ImagePullBackOff` for the rest.
//!
//! Also here: pull-secret matching ([`keyring`]), the policy rule ([`policy`]), the back-off
//! ([`backoff`]), image use for garbage collection ([`gc`]) and the Node's `status.images`
//! ([`node_status`]). Talking to registries and storing images is `skiff-runtime`'s.

pub mod backoff;
pub mod gc;
pub mod keyring;
pub mod node_status;
pub mod policy;
mod secrets;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use skiff_runtime::container::Runtime;
use skiff_runtime::images::pull::{self, Credential, PullError, Pulled};
use skiff_runtime::images::registries::Registries;
use skiff_runtime::images::{ImageRecord, Reference};

use crate::pods::status::Waiting;
use backoff::Backoff;
use policy::PullPolicy;

/// The `reason` of a waiting state that only means "a pull is under way": the worker leaves the
/// container's reported state as it was. Never shown to users.
pub const PULL_PENDING: &str = "skiff:PullPending";

/// Waiting reasons of image failures. The manager records their events (the kubelet's
/// `Failed` event for them says `Error: <reason>`), so the worker does not.
pub const IMAGE_REASONS: [&str; 5] =
    ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "ImageInspectError"];

/// What [`ImageManager::ensure`] found.
#[derive(Debug, Clone)]
pub enum Ensure {
    /// The image is on the node.
    Ready(Box<ImageRecord>),
    /// A pull is under way; ask again.
    Pending,
    /// The container cannot start; it waits with this reason.
    Failed(Waiting),
}

/// When the agent first saw an image and when a container last used it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// First seen.
    pub first_detected: SystemTime,
    /// Last used by a container (the epoch if never).
    pub last_used: SystemTime,
}

/// A pull shared by every container that needs it.
#[derive(Default)]
struct Slot {
    result: OnceLock<Result<Pulled, PullError>>,
}

struct PodPull {
    image: String,
    slot: Arc<Slot>,
    started: Instant,
}

type ContainerKey = (String, String);

#[derive(Default)]
struct State {
    inflight: HashMap<(String, Vec<Credential>), Arc<Slot>>,
    pods: HashMap<ContainerKey, PodPull>,
    backoff: Backoff,
    /// Back-off key → (`ErrImagePull: <message>`, the message).
    last_error: HashMap<String, (String, String)>,
    /// The last failure reason an event was recorded for, per container.
    reported: HashMap<ContainerKey, String>,
    usage: HashMap<String, Usage>,
}

/// The node's image manager, shared by the pod workers.
pub struct ImageManager {
    runtime: Arc<Runtime>,
    client: kube::Client,
    reporter: Reporter,
    registries: Arc<Registries>,
    state: Mutex<State>,
}

/// The kubelet's reference to a container of a pod (`fieldPath: spec.containers{name}`).
fn container_ref(pod: &Pod, container: &Container) -> ObjectReference {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.name == container.name));
    let list = if init { "initContainers" } else { "containers" };
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: Some(format!("spec.{list}{{{}}}", container.name)),
    }
}

/// Go's `time.Duration` rendering, truncated to milliseconds (`1.234s`, `850ms`, `2m3.5s`).
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let secs = if rest % 1000 == 0 {
        format!("{}s", rest / 1000)
    } else {
        format!("{}.{}s", rest / 1000, format!("{:03}", rest % 1000).trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => secs,
        (0, m) => format!("{m}m{secs}"),
        (h, m) => format!("{h}h{m}m{secs}"),
    }
}

impl ImageManager {
    /// A manager pulling into `runtime`'s store through `registries`, recording events as
    /// `reporter`.
    pub fn new(runtime: Arc<Runtime>, client: kube::Client, reporter: Reporter, registries: Registries) -> Self {
        Self { runtime, client, reporter, registries: Arc::new(registries), state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn event(&self, reference: &ObjectReference, kind: EventType, reason: &str, note: String) {
        let ev = Event { type_: kind, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        // A recorder per event: kube's recorder folds events with one reason into a series
        // keeping the first note, and "Error: ErrImagePull" is not "Error: ImagePullBackOff".
        // The manager records failure events only when a container's state changes.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        crate::events::emit(&recorder, reference, ev);
    }

    /// The container cannot start: when it enters this state, records `first` (the image
    /// manager's own event, if any) then `Failed` `Error: <reason>`, as the kubelet does.
    async fn fail(
        &self,
        key: &ContainerKey,
        reference: &ObjectReference,
        waiting: Waiting,
        first: Option<(EventType, &str, String)>,
    ) -> Ensure {
        let changed =
            self.state().reported.insert(key.clone(), waiting.reason.clone()).as_deref() != Some(&waiting.reason);
        if changed {
            if let Some((kind, reason, note)) = first {
                self.event(reference, kind, reason, note).await;
            }
            self.event(reference, EventType::Warning, "Failed", format!("Error: {}", waiting.reason)).await;
        }
        Ensure::Failed(waiting)
    }

    /// Notes that a container now uses `image` (for garbage collection).
    fn mark_used(&self, image: &ImageRecord) {
        let now = SystemTime::now();
        let mut state = self.state();
        let usage = state.usage.entry(image.manifest.clone()).or_insert(Usage { first_detected: now, last_used: now });
        usage.last_used = now;
    }

    /// The usage the manager knows of, by manifest digest.
    pub fn usage(&self) -> HashMap<String, Usage> {
        self.state().usage.clone()
    }

    /// Replaces the usage map (the garbage collector's detection pass).
    pub fn set_usage(&self, usage: HashMap<String, Usage>) {
        self.state().usage = usage;
    }

    /// The runtime images live in.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Forgets what the manager keeps about a pod's containers (its pod is gone).
    pub fn forget_pod(&self, uid: &str) {
        let mut state = self.state();
        state.pods.retain(|(u, _), _| u != uid);
        state.reported.retain(|(u, _), _| u != uid);
    }

    /// Makes sure `container`'s image is present per its pull policy (see the module doc).
    pub async fn ensure(&self, pod: &Pod, container: &Container) -> Ensure {
        let image_name = container.image.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key: ContainerKey = (uid.clone(), container.name.clone());
        let reference_obj = container_ref(pod, container);
        let reference = match Reference::parse(&image_name) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("Failed to apply default image tag \"{image_name}\": {e}");
                let event = (EventType::Warning, "InspectFailed", message.clone());
                let waiting = Waiting { reason: "InvalidImageName".into(), message };
                return self.fail(&key, &reference_obj, waiting, Some(event)).await;
            }
        };

        if let Some(done) = self.take_finished(&key, &image_name) {
            return self.finish(&key, &reference_obj, &uid, &image_name, done).await;
        }
        if self.state().pods.get(&key).is_some_and(|p| p.image == image_name) {
            return Ensure::Pending;
        }

        let present = match self.runtime.images().resolve(&reference.to_string()) {
            Ok(found) => found,
            Err(e) => {
                let message = format!("Failed to inspect image \"{image_name}\": {e}");
                let event = (EventType::Warning, "InspectFailed", message.clone());
                let waiting = Waiting { reason: "ImageInspectError".into(), message };
                return self.fail(&key, &reference_obj, waiting, Some(event)).await;
            }
        };
        let policy = PullPolicy::of(container.image_pull_policy.as_deref(), &reference);
        if !policy.should_pull(present.is_some()) {
            return match present {
                Some(image) => {
                    self.state().reported.remove(&key);
                    self.event(
                        &reference_obj,
                        EventType::Normal,
                        "Pulled",
                        format!("Container image \"{image_name}\" already present on machine"),
                    )
                    .await;
                    self.mark_used(&image);
                    Ensure::Ready(Box::new(image))
                }
                None => {
                    let message = format!("Container image \"{image_name}\" is not present with pull policy of Never");
                    let event = (EventType::Warning, "ErrImageNeverPull", message.clone());
                    let waiting = Waiting { reason: "ErrImageNeverPull".into(), message };
                    self.fail(&key, &reference_obj, waiting, Some(event)).await
                }
            };
        }

        let backoff_key = format!("{uid}_{image_name}");
        let backing_off = {
            let state = self.state();
            state.backoff.in_backoff(&backoff_key, Instant::now()).map(|(wait, since)| {
                let (wrapped, message) = state.last_error.get(&backoff_key).cloned().unwrap_or_default();
                (since < wait / 2, wrapped, message)
            })
        };
        if let Some((fresh, wrapped, message)) = backing_off {
            if fresh {
                return self.fail(&key, &reference_obj, Waiting { reason: "ErrImagePull".into(), message }, None).await;
            }
            let note = format!("Back-off pulling image \"{image_name}\"");
            let message = if wrapped.is_empty() { note.clone() } else { format!("{note}: {wrapped}") };
            let waiting = Waiting { reason: "ImagePullBackOff".into(), message };
            return self.fail(&key, &reference_obj, waiting, Some((EventType::Normal, "BackOff", note))).await;
        }

        let credentials = match self.credentials(pod, &reference, &reference_obj).await {
            Ok(c) => c,
            Err(message) => {
                self.failed(&reference_obj, &image_name, &backoff_key, &message).await;
                return self.fail(&key, &reference_obj, Waiting { reason: "ErrImagePull".into(), message }, None).await;
            }
        };
        self.event(&reference_obj, EventType::Normal, "Pulling", format!("Pulling image \"{image_name}\"")).await;
        self.start_pull(key, image_name, reference, credentials);
        Ensure::Pending
    }

    /// The pod's credentials for `reference`, from its pull secrets (or its service account's).
    async fn credentials(
        &self,
        pod: &Pod,
        reference: &Reference,
        reference_obj: &ObjectReference,
    ) -> Result<Vec<Credential>, String> {
        let (found, missing) = secrets::pull_secrets(&self.client, pod).await;
        if !missing.is_empty() {
            let note = format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            );
            let mut pod_ref = reference_obj.clone();
            pod_ref.field_path = None;
            self.event(&pod_ref, EventType::Warning, "FailedToRetrieveImagePullSecret", note).await;
        }
        let keyring = keyring::Keyring::from_secrets(&found).map_err(|e| e.to_string())?;
        Ok(keyring.lookup(&reference.name()))
    }

    fn start_pull(&self, key: ContainerKey, image_name: String, reference: Reference, credentials: Vec<Credential>) {
        let mut state = self.state();
        state.inflight.retain(|_, slot| slot.result.get().is_none());
        let pull_key = (reference.to_string(), credentials.clone());
        let slot = match state.inflight.get(&pull_key) {
            Some(slot) => Arc::clone(slot),
            None => {
                let slot = Arc::new(Slot::default());
                state.inflight.insert(pull_key, Arc::clone(&slot));
                let (task_slot, runtime, registries) =
                    (Arc::clone(&slot), Arc::clone(&self.runtime), Arc::clone(&self.registries));
                tokio::spawn(async move {
                    let result = pull::pull(runtime.images(), &registries, &reference, &credentials).await;
                    match &result {
                        Ok(p) => tracing::info!(image = %reference, bytes = p.downloaded, "image pulled"),
                        Err(e) => tracing::warn!(image = %reference, error = %e, "image pull failed"),
                    }
                    let _ = task_slot.result.set(result);
                });
                slot
            }
        };
        state.pods.insert(key, PodPull { image: image_name, slot, started: Instant::now() });
    }

    /// The result of this container's pull, if it ended (and it was for `image_name`).
    fn take_finished(&self, key: &ContainerKey, image_name: &str) -> Option<(Result<Pulled, PullError>, Duration)> {
        let mut state = self.state();
        let pending = state.pods.get(key)?;
        if pending.image != image_name {
            state.pods.remove(key);
            return None;
        }
        let result = pending.slot.result.get()?.clone();
        let waited = pending.started.elapsed();
        state.pods.remove(key);
        Some((result, waited))
    }

    async fn finish(
        &self,
        key: &ContainerKey,
        reference_obj: &ObjectReference,
        uid: &str,
        image_name: &str,
        (result, waited): (Result<Pulled, PullError>, Duration),
    ) -> Ensure {
        let backoff_key = format!("{uid}_{image_name}");
        match result {
            Ok(pulled) => {
                {
                    let mut state = self.state();
                    state.backoff.gc(Instant::now());
                    state.last_error.remove(&backoff_key);
                    state.reported.remove(key);
                }
                let note = format!(
                    "Successfully pulled image \"{image_name}\" in {} ({} including waiting). Image size: {} bytes.",
                    go_duration(pulled.duration.min(waited)),
                    go_duration(waited),
                    pulled.image.size
                );
                self.event(reference_obj, EventType::Normal, "Pulled", note).await;
                self.mark_used(&pulled.image);
                Ensure::Ready(Box::new(pulled.image))
            }
            Err(e) => {
                self.failed(reference_obj, image_name, &backoff_key, &e.0).await;
                self.fail(key, reference_obj, Waiting { reason: "ErrImagePull".into(), message: e.0 }, None).await
            }
        }
    }

    async fn failed(&self, reference_obj: &ObjectReference, image_name: &str, backoff_key: &str, message: &str) {
        {
            let mut state = self.state();
            state.backoff.next(backoff_key, Instant::now());
            state.last_error.insert(backoff_key.to_string(), (format!("ErrImagePull: {message}"), message.to_string()));
        }
        let note = format!("Failed to pull image \"{image_name}\": {message}");
        self.event(reference_obj, EventType::Warning, "Failed", note).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(ms(0)), "0s");
        assert_eq!(go_duration(ms(313)), "313ms");
        assert_eq!(go_duration(ms(1594)), "1.594s");
        assert_eq!(go_duration(ms(1500)), "1.5s");
        assert_eq!(go_duration(ms(2000)), "2s");
        assert_eq!(go_duration(ms(123_450)), "2m3.45s");
        assert_eq!(go_duration(ms(3_600_000)), "1h0m0s");
    }
}
