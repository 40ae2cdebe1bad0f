//! The scheduler's writes, done asynchronously so scheduling never waits on the API:
//! - binding (upstream DefaultBinder): `POST pods/{name}/binding`, preceded for
//!   `WaitForFirstConsumer` claims by upstream's VolumeBinding PreBind: a chosen static volume
//!   gets the claim as `claimRef` (and `pv.kubernetes.io/bound-by-controller`), a claim left to
//!   dynamic provisioning gets the `volume.kubernetes.io/selected-node` annotation, and the
//!   binding waits (up to 600 s) until the PersistentVolume controller has bound every claim;
//!   the result goes back to the scheduling thread, and a `Scheduled` event is recorded;
//! - pod status patches: the `PodScheduled` condition and `status.nominatedNodeName`, as a
//!   strategic merge patch of `pods/status` (upstream `PatchPodStatus`);
//! - graceful deletion of preemption victims.
//!
//! Concurrency is bounded; requests queue in unbounded channels fed by the scheduling thread.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use k8s_openapi::api::core::v1::{Binding, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::core::Input;
use crate::events::{PodEvent, Recorder};

/// In-flight bindings at most.
const BIND_CONCURRENCY: usize = 256;
/// In-flight status patches and deletions at most.
const WRITE_CONCURRENCY: usize = 16;
/// How long a binding waits for the PersistentVolume controller (upstream `bindTimeoutSeconds`).
const BIND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);
/// How often the claims are read while waiting.
const BIND_POLL: std::time::Duration = std::time::Duration::from_millis(500);
const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";

/// A volume to bind before the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeBinding {
    /// Bind claim `claim` to the static volume `volume`.
    Static {
        /// Claim name.
        claim: String,
        /// Claim uid.
        claim_uid: String,
        /// Volume name.
        volume: String,
    },
    /// Let the claim be provisioned for the node.
    Provision {
        /// Claim name.
        claim: String,
    },
}

/// A write the scheduling thread asks for.
#[derive(Debug, Clone)]
pub enum Request {
    /// Bind a pod.
    Bind {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// UID (the binding's precondition).
        uid: String,
        /// Target node.
        node: String,
        /// Volumes to bind first.
        volumes: Vec<VolumeBinding>,
    },
    /// Patch a pod's status.
    Status {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The strategic merge patch body.
        patch: Value,
    },
    /// Mark a preemption victim with the `DisruptionTarget` condition, then delete it
    /// gracefully (upstream `prepareCandidate`).
    Evict {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// UID precondition.
        uid: String,
        /// The preemptor's scheduler name (in the condition's message).
        scheduler_name: String,
    },
}

/// Starts the writer; returns where to send requests.
pub fn start(
    client: kube::Client,
    results: Sender<Input>,
    recorder: Recorder,
) -> (mpsc::UnboundedSender<Request>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
    let binds = Arc::new(Semaphore::new(BIND_CONCURRENCY));
    let writes = Arc::new(Semaphore::new(WRITE_CONCURRENCY));
    let task = tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            let sem = if matches!(req, Request::Bind { .. }) { binds.clone() } else { writes.clone() };
            let Ok(permit) = sem.acquire_owned().await else { return };
            let client = client.clone();
            let results = results.clone();
            let recorder = recorder.clone();
            tokio::spawn(async move {
                execute(client, results, recorder, req).await;
                drop(permit);
            });
        }
    });
    (tx, task)
}

async fn execute(client: kube::Client, results: Sender<Input>, recorder: Recorder, req: Request) {
    match req {
        Request::Bind { namespace, name, uid, node, volumes } => {
            let outcome = bind(&client, &namespace, &name, &uid, &node, &volumes).await;
            if outcome.is_ok() {
                recorder.record(PodEvent {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                    type_: "Normal",
                    reason: "Scheduled",
                    action: "Binding",
                    note: format!("Successfully assigned {namespace}/{name} to {node}"),
                });
            }
            // The scheduling thread may be gone during shutdown; nothing to do then.
            let _ = results.send(Input::BindResult { uid, node, result: outcome });
        }
        Request::Status { namespace, name, patch } => {
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                tracing::debug!(error = %e, pod = %name, "cannot update the pod's scheduling status");
            }
        }
        Request::Evict { namespace, name, uid, scheduler_name } => {
            let api: Api<Pod> = Api::namespaced(client, &namespace);
            let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            let condition = json!({"status": {"conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": format!("{scheduler_name}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": now,
            }]}});
            if let Err(e) = api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&condition)).await {
                tracing::debug!(error = %e, pod = %name, "cannot mark a preemption victim");
                return;
            }
            let dp = DeleteParams {
                preconditions: Some(kube::api::Preconditions { uid: Some(uid), resource_version: None }),
                ..Default::default()
            };
            if let Err(e) = api.delete(&name, &dp).await {
                tracing::debug!(error = %e, pod = %name, "cannot delete a preemption victim");
            }
        }
    }
}

fn error_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

async fn bind(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    node: &str,
    volumes: &[VolumeBinding],
) -> Result<(), String> {
    for v in volumes {
        bind_volume(client, namespace, node, v).await.map_err(|e| format!("binding volumes: {e}"))?;
    }
    if !volumes.is_empty() {
        wait_for_claims(client, namespace, node, volumes).await.map_err(|e| format!("binding volumes: {e}"))?;
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let binding: Binding = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "target": {"kind": "Node", "name": node},
    }))
    .map_err(|e| e.to_string())?;
    api.create_subresource::<Binding, Value>("binding", name, &PostParams::default(), &binding)
        .await
        .map(|_| ())
        .map_err(|e| format!("running Bind plugin \"DefaultBinder\": {}", error_text(&e)))
}

async fn bind_volume(client: &kube::Client, namespace: &str, node: &str, v: &VolumeBinding) -> Result<(), String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    match v {
        VolumeBinding::Provision { claim } => {
            let patch = json!({"metadata": {"annotations": {ANN_SELECTED_NODE: node}}});
            claims.patch(claim, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|e| error_text(&e))?;
        }
        VolumeBinding::Static { claim, claim_uid, volume } => {
            let volumes: Api<PersistentVolume> = Api::all(client.clone());
            let mut pv = volumes.get(volume).await.map_err(|e| error_text(&e))?;
            let spec = pv.spec.get_or_insert_with(Default::default);
            let ours = spec.claim_ref.as_ref().is_some_and(|r| {
                r.namespace.as_deref() == Some(namespace)
                    && r.name.as_deref() == Some(claim.as_str())
                    && r.uid.as_deref().is_none_or(|u| u.is_empty() || u == claim_uid)
            });
            if spec.claim_ref.is_some() && !ours {
                return Err(format!("volume {volume:?} is already bound to another claim"));
            }
            if !ours {
                pv.metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            let spec = pv.spec.get_or_insert_with(Default::default);
            let claim_ref = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": namespace,
                "name": claim, "uid": claim_uid});
            spec.claim_ref = serde_json::from_value(claim_ref).ok();
            volumes.replace(volume, &PostParams::default(), &pv).await.map_err(|e| error_text(&e))?;
        }
    }
    Ok(())
}

/// Upstream `checkBindings`: whether every claim is bound (by the PersistentVolume
/// controller) — `Ok(true)`, not yet — `Ok(false)`, or never will be for this placement.
async fn claims_bound(
    client: &kube::Client,
    namespace: &str,
    node: &str,
    volumes: &[VolumeBinding],
) -> Result<bool, String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    for v in volumes {
        let (name, want) = match v {
            VolumeBinding::Static { claim, volume, .. } => (claim, Some(volume)),
            VolumeBinding::Provision { claim } => (claim, None),
        };
        let pvc = claims.get(name).await.map_err(|e| error_text(&e))?;
        let annotations = pvc.metadata.annotations.clone().unwrap_or_default();
        let bound_to = pvc.spec.as_ref().and_then(|s| s.volume_name.clone()).unwrap_or_default();
        if want.is_none() && bound_to.is_empty() && annotations.get(ANN_SELECTED_NODE).map(String::as_str) != Some(node)
        {
            return Err(format!("selectedNode annotation reset for PVC {name:?}"));
        }
        if bound_to.is_empty() || !annotations.contains_key(ANN_BIND_COMPLETED) {
            return Ok(false);
        }
        if want.is_some_and(|w| *w != bound_to) {
            return Err(format!("PVC {name:?} bound to {bound_to:?} instead of the chosen volume"));
        }
    }
    Ok(true)
}

/// Waits until the PersistentVolume controller has bound every claim (upstream's PreBind wait,
/// with its 600-second default bind timeout).
async fn wait_for_claims(
    client: &kube::Client,
    namespace: &str,
    node: &str,
    volumes: &[VolumeBinding],
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + BIND_TIMEOUT;
    loop {
        if claims_bound(client, namespace, node, volumes).await? {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err("timed out waiting for the condition".into());
        }
        tokio::time::sleep(BIND_POLL).await;
    }
}
