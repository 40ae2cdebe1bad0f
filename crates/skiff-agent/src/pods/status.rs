//! A pod's status as the kubelet reports it, computed from what the worker knows of each
//! container: container statuses (state, last state, restart count, ids), the phase, and the
//! conditions the kubelet owns (PodScheduled, PodReadyToStartContainers, Initialized,
//! ContainersReady, Ready). Sent as a strategic merge patch, so conditions other components own
//! (readiness gates) are kept.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use skiff_runtime::container::ContainerState;
use skiff_runtime::shim::Exited;

/// Why a container is waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `ContainerCreating`, `CrashLoopBackOff`, `ErrImageNeverPull`, …
    pub reason: String,
    /// Details.
    pub message: String,
}

/// One container as the status needs it.
#[derive(Debug, Clone)]
pub struct ContainerView {
    /// Container name.
    pub name: String,
    /// Image as written in the spec.
    pub image: String,
    /// Image id (`repo@sha256:…`), once known.
    pub image_id: String,
    /// `skiff://<instance>`, once created.
    pub container_id: Option<String>,
    /// An init container.
    pub init: bool,
    /// A sidecar (init container with `restartPolicy: Always`).
    pub sidecar: bool,
    /// Restarts so far.
    pub restart_count: u32,
    /// The current instance.
    pub state: Option<ContainerState>,
    /// The previous instance.
    pub previous: Option<ContainerState>,
    /// Why it does not run, if known.
    pub waiting: Option<Waiting>,
    /// Running and ready (its readiness probe, if any, succeeded).
    pub ready: bool,
    /// Running and started (its startup probe, if any, succeeded).
    pub started: bool,
}

fn terminated(e: &Exited, container_id: Option<&str>) -> Value {
    let reason = if e.oom_killed {
        "OOMKilled"
    } else if e.start_error.is_some() {
        "StartError"
    } else if e.exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    let mut t = json!({
        "exitCode": e.exit_code,
        "reason": reason,
        "finishedAt": trim_time(&e.finished_at),
        "startedAt": e.started_at.as_deref().map(trim_time).unwrap_or_else(|| trim_time(&e.finished_at)),
    });
    if let Some(sig) = e.signal {
        t["signal"] = json!(sig);
    }
    if let Some(msg) = &e.start_error {
        t["message"] = json!(msg);
    }
    if let Some(id) = container_id {
        t["containerID"] = json!(id);
    }
    json!({"terminated": t})
}

/// RFC 3339 with whole seconds, as `metav1.Time` serialises.
fn trim_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>().map(|ts| format!("{:.0}", ts)).unwrap_or_else(|_| t.to_string())
}

fn state_json(view: &ContainerView) -> Value {
    match (&view.waiting, &view.state) {
        (Some(w), _) if !matches!(view.state, Some(ContainerState::Running(_))) => {
            json!({"waiting": {"reason": w.reason, "message": w.message}})
        }
        (_, Some(ContainerState::Running(s))) => json!({"running": {"startedAt": trim_time(&s.started_at)}}),
        (_, Some(ContainerState::Exited(e))) => terminated(e, view.container_id.as_deref()),
        (_, Some(ContainerState::Lost)) => json!({"terminated": {"exitCode": 137, "reason": "ContainerStatusUnknown",
            "message": "The container could not be located when the pod was terminated"}}),
        (_, None) => {
            let reason = if view.init { "PodInitializing" } else { "ContainerCreating" };
            json!({"waiting": {"reason": reason}})
        }
    }
}

fn container_status(view: &ContainerView) -> Value {
    let mut s = json!({
        "name": view.name,
        "image": view.image,
        "imageID": view.image_id,
        "ready": view.ready,
        "started": view.started,
        "restartCount": view.restart_count,
        "state": state_json(view),
        "lastState": match &view.previous {
            Some(ContainerState::Exited(e)) => terminated(e, None),
            _ => json!({}),
        },
    });
    if let Some(id) = &view.container_id {
        s["containerID"] = json!(id);
    }
    s
}

fn cond(kind: &str, ok: bool, reason: Option<&str>) -> Value {
    let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastProbeTime": null});
    if let Some(r) = reason.filter(|_| !ok) {
        c["reason"] = json!(r);
    }
    c
}

fn with_message(mut condition: Value, message: Option<String>) -> Value {
    if let Some(m) = message.filter(|_| condition["status"] == "False") {
        condition["message"] = json!(m);
    }
    condition
}

/// Why the pod's readiness gates hold it back (`None` when all are True), as upstream words it.
fn readiness_gates(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let mut problems = Vec::new();
    for gate in pod.spec.as_ref().and_then(|s| s.readiness_gates.as_ref()).into_iter().flatten() {
        let kind = &gate.condition_type;
        match conditions.and_then(|c| c.iter().find(|c| &c.type_ == kind)) {
            None => problems.push(format!("corresponding condition of pod readiness gate {kind:?} does not exist.")),
            Some(c) if c.status != "True" => {
                problems.push(format!("the status of pod readiness gate {kind:?} is not \"True\", but {}", c.status))
            }
            Some(_) => {}
        }
    }
    (!problems.is_empty()).then(|| problems.join(", "))
}

fn succeeded(state: &Option<ContainerState>) -> bool {
    matches!(state, Some(ContainerState::Exited(e)) if e.exit_code == 0 && e.start_error.is_none())
}

/// The phase from the containers and the restart policy (upstream `getPhase`).
pub fn phase(views: &[ContainerView], restart_policy: &str) -> &'static str {
    let init_pending = views.iter().filter(|v| v.init && !v.sidecar).any(|v| !succeeded(&v.state));
    let init_failed = views
        .iter()
        .filter(|v| v.init && !v.sidecar)
        .any(|v| matches!(&v.state, Some(ContainerState::Exited(e)) if e.exit_code != 0 || e.start_error.is_some()));
    if init_failed && restart_policy == "Never" {
        return "Failed";
    }
    if init_pending {
        return "Pending";
    }
    let app: Vec<&ContainerView> = views.iter().filter(|v| !v.init).collect();
    let running = app.iter().filter(|v| matches!(v.state, Some(ContainerState::Running(_)))).count();
    let exited: Vec<&Exited> = app
        .iter()
        .filter_map(|v| match &v.state {
            Some(ContainerState::Exited(e)) => Some(e),
            _ => None,
        })
        .collect();
    let waiting = app.len() - running - exited.len();
    if waiting > 0 && running == 0 && exited.is_empty() {
        return "Pending";
    }
    if running > 0 || waiting > 0 {
        return "Running";
    }
    // Everything has exited.
    let failed = exited.iter().any(|e| e.exit_code != 0 || e.start_error.is_some());
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if failed => "Running",
        _ if failed => "Failed",
        _ => "Succeeded",
    }
}

/// The `status` the kubelet owns for `pod`.
pub fn pod_status(
    pod: &Pod,
    views: &[ContainerView],
    host_ip: &str,
    pod_ip: Option<&str>,
    sandbox_ready: bool,
) -> Value {
    let policy = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
    let phase = phase(views, policy);
    let initialized = !views.iter().filter(|v| v.init && !v.sidecar).any(|v| !succeeded(&v.state));
    let unready: Vec<&str> =
        views.iter().filter(|v| (!v.init || v.sidecar) && !v.ready).map(|v| v.name.as_str()).collect();
    let terminal = phase == "Succeeded" || phase == "Failed";
    let containers_ready = unready.is_empty() && !terminal;
    let reason_ready = if terminal { "PodCompleted" } else { "ContainersNotReady" };
    let unready_message =
        (!unready.is_empty() && !terminal).then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let gates = readiness_gates(pod);
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.clone())
        .map(|t| json!(t))
        .unwrap_or_else(|| json!(format!("{:.0}", jiff::Timestamp::now())));
    let mut status = json!({
        "phase": phase,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": started,
        "conditions": [
            cond("PodReadyToStartContainers", sandbox_ready && !terminal, None),
            cond("Initialized", initialized, Some(if terminal { "PodCompleted" } else { "ContainersNotInitialized" })),
            with_message(cond("ContainersReady", containers_ready, Some(reason_ready)), unready_message.clone()),
            match (&gates, containers_ready) {
                (Some(gates), true) => with_message(cond("Ready", false, Some("ReadinessGatesNotReady")), Some(gates.clone())),
                _ => with_message(cond("Ready", containers_ready, Some(reason_ready)), unready_message),
            },
            cond("PodScheduled", true, None),
        ],
        "initContainerStatuses": views.iter().filter(|v| v.init).map(container_status).collect::<Vec<_>>(),
        "containerStatuses": views.iter().filter(|v| !v.init).map(container_status).collect::<Vec<_>>(),
    });
    stamp_transitions(pod, &mut status, jiff::Timestamp::now());
    if let Some(ip) = pod_ip {
        status["podIP"] = json!(ip);
        status["podIPs"] = json!([{"ip": ip}]);
    }
    status
}

/// Keeps the transition times of `previous` (the status last sent) for conditions whose status
/// is unchanged since: the pod object may not show that write yet.
pub fn carry_transitions(status: &mut Value, previous: &Value) {
    let Some(old) = previous.get("conditions").and_then(Value::as_array) else { return };
    let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) else { return };
    for c in conditions {
        if let Some(o) = old.iter().find(|o| o["type"] == c["type"] && o["status"] == c["status"]) {
            c["lastTransitionTime"] = o["lastTransitionTime"].clone();
        }
    }
}

/// Sets each condition's `lastTransitionTime`: kept from the pod's current condition of that type
/// while its status is unchanged, `now` (whole seconds) when it changes, as the kubelet does.
/// Controllers measure `minReadySeconds` from the Ready condition's transition.
fn stamp_transitions(pod: &Pod, status: &mut Value, now: jiff::Timestamp) {
    let current = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) else { return };
    for c in conditions {
        let kept = current
            .and_then(|cs| cs.iter().find(|old| Some(old.type_.as_str()) == c["type"].as_str()))
            .filter(|old| Some(old.status.as_str()) == c["status"].as_str())
            .and_then(|old| old.last_transition_time.as_ref())
            .map(|t| json!(t));
        c["lastTransitionTime"] = kept.unwrap_or_else(|| json!(format!("{now:.0}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_runtime::shim::Started;

    fn view(init: bool, state: Option<ContainerState>) -> ContainerView {
        let running = matches!(state, Some(ContainerState::Running(_)));
        ContainerView {
            ready: running,
            started: running,
            name: "c".into(),
            image: "busybox".into(),
            image_id: String::new(),
            container_id: None,
            init,
            sidecar: false,
            restart_count: 0,
            state,
            previous: None,
            waiting: None,
        }
    }

    fn exited(code: i32) -> Option<ContainerState> {
        Some(ContainerState::Exited(Exited {
            exit_code: code,
            signal: None,
            started_at: Some("2026-01-01T00:00:00Z".into()),
            finished_at: "2026-01-01T00:00:05.123Z".into(),
            oom_killed: false,
            start_error: None,
        }))
    }

    fn running() -> Option<ContainerState> {
        Some(ContainerState::Running(Started { pid: 1, shim_pid: 1, started_at: "2026-01-01T00:00:00.5Z".into() }))
    }

    #[test]
    fn transition_times_move_only_when_a_condition_changes() {
        let pod: Pod = serde_json::from_value(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Initialized", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]}}))
        .expect("pod");
        let mut status = json!({"conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "PodScheduled", "status": "True"}
        ]});
        let now: jiff::Timestamp = "2026-01-01T00:10:00.7Z".parse().expect("ts");
        stamp_transitions(&pod, &mut status, now);
        let times: Vec<&str> = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["lastTransitionTime"].as_str())
            .collect();
        assert_eq!(times, ["2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", "2026-01-01T00:10:00Z"]);
    }

    #[test]
    fn phases_follow_upstream() {
        assert_eq!(phase(&[view(false, None)], "Always"), "Pending");
        assert_eq!(phase(&[view(false, running())], "Always"), "Running");
        assert_eq!(phase(&[view(false, exited(0))], "Never"), "Succeeded");
        assert_eq!(phase(&[view(false, exited(1))], "Never"), "Failed");
        assert_eq!(phase(&[view(false, exited(1))], "OnFailure"), "Running");
        assert_eq!(phase(&[view(false, exited(0))], "OnFailure"), "Succeeded");
        assert_eq!(phase(&[view(false, exited(0))], "Always"), "Running");
        assert_eq!(phase(&[view(true, running()), view(false, None)], "Always"), "Pending");
        assert_eq!(phase(&[view(true, exited(1)), view(false, None)], "Never"), "Failed");
        assert_eq!(phase(&[view(true, exited(0)), view(false, running())], "Never"), "Running");
    }

    #[test]
    fn statuses_read_like_the_kubelet() {
        let pod = Pod::default();
        let mut v = view(false, exited(0));
        v.container_id = Some("skiff://x".into());
        let status = pod_status(&pod, &[v], "10.0.0.1", None, true);
        assert!(status.get("podIP").is_none());
        assert_eq!(status["phase"], "Running");
        let t = &status["containerStatuses"][0]["state"]["terminated"];
        assert_eq!((t["reason"].as_str(), t["exitCode"].as_i64()), (Some("Completed"), Some(0)));
        assert_eq!(t["finishedAt"], "2026-01-01T00:00:05Z");
        let mut w = view(false, None);
        w.waiting = Some(Waiting { reason: "ErrImageNeverPull".into(), message: "m".into() });
        let status = pod_status(&pod, &[w], "10.0.0.1", None, false);
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["containerStatuses"][0]["state"]["waiting"]["reason"], "ErrImageNeverPull");
        assert_eq!(status["conditions"][3]["reason"], "ContainersNotReady");
        let status = pod_status(&pod, &[view(false, running())], "10.0.0.1", Some("10.42.0.5"), true);
        assert_eq!(status["podIP"], "10.42.0.5");
        assert_eq!(status["podIPs"][0]["ip"], "10.42.0.5");
        assert_eq!(status["conditions"][0]["status"], "True");
        assert_eq!(status["conditions"][3]["status"], "True");
        assert_eq!(status["containerStatuses"][0]["state"]["running"]["startedAt"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn readiness_gates_and_unready_containers_hold_ready_back() {
        let mut pod: Pod = serde_json::from_value(json!({
            "spec": {"containers": [], "readinessGates": [{"conditionType": "example.com/lb"}]},
            "status": {"conditions": [{"type": "example.com/lb", "status": "False"}]}
        }))
        .expect("pod");
        let status = pod_status(&pod, &[view(false, running())], "10.0.0.1", None, true);
        assert_eq!(status["conditions"][2]["status"], "True");
        let ready = &status["conditions"][3];
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("False"), Some("ReadinessGatesNotReady"))
        );
        assert_eq!(ready["message"], "the status of pod readiness gate \"example.com/lb\" is not \"True\", but False");
        pod.status = None;
        let status = pod_status(&pod, &[view(false, running())], "10.0.0.1", None, true);
        assert!(status["conditions"][3]["message"].as_str().unwrap_or("").contains("does not exist"));
        let mut v = view(false, running());
        v.ready = false;
        let status = pod_status(&pod, &[v], "10.0.0.1", None, true);
        assert_eq!(status["conditions"][2]["message"], "containers with unready status: [c]");
    }
}
