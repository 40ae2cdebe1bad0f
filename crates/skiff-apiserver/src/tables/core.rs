//! Printers for the core (`""`) group: pods, services, nodes, events and the rest.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Printer;
use super::age::{self, human_duration, nanos_between, parse_time};
use super::columns::{AGE, CONTAINERS, ColumnDef, IMAGES, NAME, SELECTOR};
use super::fields::{
    at, containers, deleting, format_labels, has, int, list, load_balancer_ingress, map_len, name, obj_age, opt_int,
    or_none, quantity, text,
};

/// The printer of core resource `plural`, if it has one.
pub(super) fn printer(plural: &str) -> Option<Printer> {
    let printer = match plural {
        "pods" => Printer { columns: POD_COLUMNS, cells: pod_cells },
        "podtemplates" => Printer { columns: POD_TEMPLATE_COLUMNS, cells: pod_template_cells },
        "replicationcontrollers" => Printer { columns: RC_COLUMNS, cells: rc_cells },
        "services" => Printer { columns: SERVICE_COLUMNS, cells: service_cells },
        "endpoints" => Printer { columns: ENDPOINTS_COLUMNS, cells: endpoints_cells },
        "nodes" => Printer { columns: NODE_COLUMNS, cells: node_cells },
        "namespaces" => Printer { columns: NAMESPACE_COLUMNS, cells: namespace_cells },
        "configmaps" => Printer { columns: CONFIGMAP_COLUMNS, cells: configmap_cells },
        "secrets" => Printer { columns: SECRET_COLUMNS, cells: secret_cells },
        "serviceaccounts" => Printer { columns: SERVICE_ACCOUNT_COLUMNS, cells: service_account_cells },
        "events" => EVENTS,
        "resourcequotas" => Printer { columns: QUOTA_COLUMNS, cells: quota_cells },
        "persistentvolumes" => Printer { columns: PV_COLUMNS, cells: pv_cells },
        "persistentvolumeclaims" => Printer { columns: PVC_COLUMNS, cells: pvc_cells },
        _ => return None,
    };
    Some(printer)
}

// ---------------------------------------------------------------------------------------------
// Pods

const POD_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Ready", "Ready containers out of all containers."),
    ColumnDef::string("Status", "Summary of the pod's phase and container states."),
    ColumnDef::string("Restarts", "Container restarts, and how long ago the last one was."),
    AGE,
    ColumnDef::string("IP", "The pod's primary IP address.").wide(),
    ColumnDef::string("Node", "The node the pod is bound to.").wide(),
    ColumnDef::string("Nominated Node", "The node preemption nominated for the pod.").wide(),
    ColumnDef::string("Readiness Gates", "Readiness gates that are true out of all gates.").wide(),
];

/// The `conditions` of a pod's row: `Completed` once the pod succeeded or failed.
pub(super) fn pod_row_conditions(pod: &Value) -> Option<Value> {
    let (reason, message) = match text(pod, &["status", "phase"]) {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{ "type": "Completed", "status": "True", "reason": reason, "message": message }]))
}

/// Whether an init container keeps running beside the main ones (a sidecar).
fn is_sidecar(init_container: Option<&Value>) -> bool {
    init_container.is_some_and(|c| text(c, &["restartPolicy"]) == "Always")
}

/// Latest of `current` and the finish time of the container's last termination.
fn later_restart(current: Option<Timestamp>, status: &Value) -> Option<Timestamp> {
    let finished = parse_time(text(status, &["lastState", "terminated", "finishedAt"]));
    match (current, finished) {
        (Some(c), Some(f)) => Some(c.max(f)),
        (c, f) => c.or(f),
    }
}

/// The reason shown for a terminated container without one: `Signal:N` or `ExitCode:N`.
fn terminated_code(terminated: &Value) -> String {
    let signal = int(terminated, &["signal"]);
    if signal != 0 { format!("Signal:{signal}") } else { format!("ExitCode:{}", int(terminated, &["exitCode"])) }
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let spec_containers = list(pod, &["spec", "containers"]);
    let init_specs = list(pod, &["spec", "initContainers"]);
    let conditions = list(pod, &["status", "conditions"]);
    let phase = text(pod, &["status", "phase"]);

    let mut reason = phase.to_string();
    let status_reason = text(pod, &["status", "reason"]);
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    if conditions.iter().any(|c| text(c, &["type"]) == "PodScheduled" && text(c, &["reason"]) == "SchedulingGated") {
        reason = "SchedulingGated".to_string();
    }

    let init_spec = |container_name: &str| init_specs.iter().find(|c| text(c, &["name"]) == container_name);
    let total = spec_containers.len() + init_specs.iter().filter(|c| is_sidecar(Some(c))).count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;

    let mut initializing = false;
    for (i, status) in list(pod, &["status", "initContainerStatuses"]).iter().enumerate() {
        restarts += int(status, &["restartCount"]);
        last_restart = later_restart(last_restart, status);
        let sidecar = is_sidecar(init_spec(text(status, &["name"])));
        if sidecar {
            sidecar_restarts += int(status, &["restartCount"]);
            last_sidecar_restart = later_restart(last_sidecar_restart, status);
        }
        let terminated = at(status, &["state", "terminated"]);
        let waiting_reason = text(status, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && at(status, &["started"]).and_then(Value::as_bool) == Some(true) {
            if at(status, &["ready"]).and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(terminated) = terminated {
            let why = text(terminated, &["reason"]);
            if why.is_empty() { format!("Init:{}", terminated_code(terminated)) } else { format!("Init:{why}") }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    let initialized = conditions.iter().any(|c| text(c, &["type"]) == "Initialized" && text(c, &["status"]) == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in list(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(status, &["restartCount"]);
            last_restart = later_restart(last_restart, status);
            let waiting_reason = text(status, &["state", "waiting", "reason"]);
            let terminated = at(status, &["state", "terminated"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(terminated) = terminated {
                let why = text(terminated, &["reason"]);
                reason = if why.is_empty() { terminated_code(terminated) } else { why.to_string() };
            } else if at(status, &["ready"]).and_then(Value::as_bool) == Some(true)
                && has(status, &["state", "running"])
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            let pod_ready = conditions.iter().any(|c| text(c, &["type"]) == "Ready" && text(c, &["status"]) == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
        }
    }

    if deleting(pod) && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_text = match last_restart {
        Some(when) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(nanos_between(when, now))),
        _ => restarts.to_string(),
    };

    let pod_ip = list(pod, &["status", "podIPs"]).first().map(|ip| text(ip, &["ip"])).unwrap_or("");
    let gates = list(pod, &["spec", "readinessGates"]);
    let gates_text = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_gates = gates
            .iter()
            .filter(|gate| {
                let wanted = text(gate, &["conditionType"]);
                conditions.iter().find(|c| text(c, &["type"]) == wanted).is_some_and(|c| text(c, &["status"]) == "True")
            })
            .count();
        format!("{true_gates}/{}", gates.len())
    };

    vec![
        json!(name(pod)),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_text),
        json!(obj_age(pod, now)),
        json!(or_none(pod_ip)),
        json!(or_none(text(pod, &["spec", "nodeName"]))),
        json!(or_none(text(pod, &["status", "nominatedNodeName"]))),
        json!(gates_text),
    ]
}

// ---------------------------------------------------------------------------------------------
// Pod templates and replication controllers

const POD_TEMPLATE_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Containers", "Names of the containers in the template."),
    ColumnDef::string("Images", "Images used by the containers in the template."),
    ColumnDef::string("Pod Labels", "Labels of the pods made from the template."),
];

fn pod_template_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let template = at(obj, &["template"]).unwrap_or(&Value::Null);
    let (names, images) = containers(at(template, &["spec"]).unwrap_or(&Value::Null));
    vec![json!(name(obj)), json!(names), json!(images), json!(format_labels(at(template, &["metadata", "labels"])))]
}

const RC_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::integer("Desired", "Number of replicas wanted."),
    ColumnDef::integer("Current", "Number of replicas that exist."),
    ColumnDef::integer("Ready", "Number of replicas that are ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn rc_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = containers(at(obj, &["spec", "template", "spec"]).unwrap_or(&Value::Null));
    vec![
        json!(name(obj)),
        json!(int(obj, &["spec", "replicas"])),
        json!(int(obj, &["status", "replicas"])),
        json!(int(obj, &["status", "readyReplicas"])),
        json!(obj_age(obj, now)),
        json!(names),
        json!(images),
        json!(format_labels(at(obj, &["spec", "selector"]))),
    ]
}

// ---------------------------------------------------------------------------------------------
// Services and endpoints

const SERVICE_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Type", "How the service is exposed."),
    ColumnDef::string("Cluster-IP", "The service's cluster-internal IP address."),
    ColumnDef::string("External-IP", "Addresses the service is reachable at from outside the cluster."),
    ColumnDef::string("Port(s)", "Ports the service exposes, with node ports."),
    AGE,
    ColumnDef::string("Selector", "Labels of the pods that back the service.").wide(),
];

/// External addresses of a service, by type.
fn service_external_ip(svc: &Value) -> String {
    let external_ips: Vec<&str> = list(svc, &["spec", "externalIPs"]).iter().filter_map(Value::as_str).collect();
    match text(svc, &["spec", "type"]) {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(at(svc, &["status", "loadBalancer"]).unwrap_or(&Value::Null));
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
                all.extend(external_ips);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => text(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// Ports of a service: `80/TCP`, or `80:30080/TCP` with a node port.
fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = list(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let protocol = text(p, &["protocol"]);
            match int(p, &["nodePort"]) {
                node_port if node_port > 0 => format!("{port}:{node_port}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() { "<none>".to_string() } else { ports.join(",") }
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    let cluster_ip = list(svc, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(svc, &["spec", "clusterIP"]));
    vec![
        json!(name(svc)),
        json!(text(svc, &["spec", "type"])),
        json!(or_none(cluster_ip)),
        json!(service_external_ip(svc)),
        json!(service_ports(svc)),
        json!(obj_age(svc, now)),
        json!(format_labels(at(svc, &["spec", "selector"]))),
    ]
}

const ENDPOINTS_COLUMNS: &[ColumnDef] =
    &[NAME, ColumnDef::string("Endpoints", "Addresses and ports of the endpoints."), AGE];

/// `host:port` joined the way Go's `net.JoinHostPort` does (IPv6 in brackets).
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The first three endpoint addresses and a count of the rest, or `<none>`.
fn format_endpoints(obj: &Value) -> String {
    let subsets = list(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            shown.extend(addresses.iter().map(|a| text(a, &["ip"]).to_string()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            shown.extend(addresses.iter().map(|a| join_host_port(text(a, &["ip"]), int(port, &["port"]))));
        }
    }
    let joined = shown.iter().take(MAX).cloned().collect::<Vec<_>>().join(",");
    if count > MAX { format!("{joined} + {} more...", count - MAX) } else { joined }
}

fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(format_endpoints(obj)), json!(obj_age(obj, now))]
}

// ---------------------------------------------------------------------------------------------
// Nodes and namespaces

const NODE_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Status", "Readiness of the node, and whether it takes new pods."),
    ColumnDef::string("Roles", "Roles from the node's node-role.kubernetes.io labels."),
    AGE,
    ColumnDef::string("Version", "Kubelet version."),
    ColumnDef::string("Internal-IP", "The node's first internal IP address.").wide(),
    ColumnDef::string("External-IP", "The node's first external IP address.").wide(),
    ColumnDef::string("OS-Image", "Operating system image reported by the node.").wide(),
    ColumnDef::string("Kernel-Version", "Kernel version reported by the node.").wide(),
    ColumnDef::string("Container-Runtime", "Container runtime and version reported by the node.").wide(),
];

/// Node roles from `node-role.kubernetes.io/<role>` keys and the `kubernetes.io/role` value.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = at(node, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == "kubernetes.io/role"
                && let Some(role) = value.as_str().filter(|r| !r.is_empty())
            {
                roles.insert(role.to_string());
            }
        }
    }
    let joined = roles.into_iter().collect::<Vec<_>>().join(",");
    or_none(&joined)
}

/// The first address of `type_`, or `<none>`.
fn node_address(node: &Value, type_: &str) -> String {
    let found = list(node, &["status", "addresses"]).iter().find(|a| text(a, &["type"]) == type_);
    or_none(found.map_or("", |a| text(a, &["address"])))
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    // The last condition of a type wins, as upstream indexes them by type.
    if let Some(ready) = list(node, &["status", "conditions"]).iter().rev().find(|c| text(c, &["type"]) == "Ready") {
        status.push(if text(ready, &["status"]) == "True" { "Ready" } else { "NotReady" });
    }
    if status.is_empty() {
        status.push("Unknown");
    }
    if at(node, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let info = |field: &str| {
        let value = text(node, &["status", "nodeInfo", field]);
        if value.is_empty() { age::UNKNOWN.to_string() } else { value.to_string() }
    };
    vec![
        json!(name(node)),
        json!(status.join(",")),
        json!(node_roles(node)),
        json!(obj_age(node, now)),
        json!(text(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

const NAMESPACE_COLUMNS: &[ColumnDef] =
    &[NAME, ColumnDef::string("Status", "Phase of the namespace: Active or Terminating."), AGE];

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(text(obj, &["status", "phase"])), json!(obj_age(obj, now))]
}

// ---------------------------------------------------------------------------------------------
// Config maps, secrets, service accounts

const CONFIGMAP_COLUMNS: &[ColumnDef] = &[NAME, ColumnDef::string("Data", "Number of data and binary data keys."), AGE];

fn configmap_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let keys = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
    vec![json!(name(obj)), json!(keys), json!(obj_age(obj, now))]
}

const SECRET_COLUMNS: &[ColumnDef] =
    &[NAME, ColumnDef::string("Type", "Type of the secret."), ColumnDef::string("Data", "Number of data keys."), AGE];

fn secret_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(text(obj, &["type"])), json!(map_len(obj, &["data"])), json!(obj_age(obj, now))]
}

const SERVICE_ACCOUNT_COLUMNS: &[ColumnDef] =
    &[NAME, ColumnDef::string("Secrets", "Number of secrets listed for the service account."), AGE];

fn service_account_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(list(obj, &["secrets"]).len()), json!(obj_age(obj, now))]
}

// ---------------------------------------------------------------------------------------------
// Events (core/v1 and events.k8s.io/v1 shapes)

/// The event printer, shared by `events` and `events.k8s.io` events.
pub(super) const EVENTS: Printer = Printer { columns: EVENT_COLUMNS, cells: event_cells };

const EVENT_COLUMNS: &[ColumnDef] = &[
    ColumnDef::string("Last Seen", "Time since the event was last observed."),
    ColumnDef::string("Type", "Type of the event: Normal or Warning."),
    ColumnDef::string("Reason", "Short reason for the event."),
    ColumnDef::string("Object", "The object the event is about."),
    ColumnDef::string("Subobject", "The part of the object the event is about.").wide(),
    ColumnDef::string("Source", "The component (and host) that reported the event.").wide(),
    ColumnDef::string("Message", "What happened."),
    ColumnDef::string("First Seen", "Time since the event was first observed.").wide(),
    ColumnDef::string("Count", "How often the event was observed.").wide(),
    NAME.wide(),
];

/// The first non-empty string among `paths`.
fn first_text<'a>(obj: &'a Value, paths: &[&[&str]]) -> &'a str {
    paths.iter().map(|p| text(obj, p)).find(|s| !s.is_empty()).unwrap_or("")
}

/// Age since the timestamp at the first present path, or `<unknown>`.
fn since_first(obj: &Value, paths: &[&[&str]], now: Timestamp) -> Option<String> {
    let stamp = first_text(obj, paths);
    parse_time(stamp).map(|_| age::age(stamp, now))
}

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first_seen = since_first(ev, &[&["firstTimestamp"], &["deprecatedFirstTimestamp"]], now)
        .unwrap_or_else(|| age::age(text(ev, &["eventTime"]), now));
    let mut last_seen =
        since_first(ev, &[&["lastTimestamp"], &["deprecatedLastTimestamp"]], now).unwrap_or_else(|| first_seen.clone());
    let mut count = opt_int(ev, &["count"]).or_else(|| opt_int(ev, &["deprecatedCount"])).unwrap_or(0);
    if let Some(series) = at(ev, &["series"]) {
        last_seen = age::age(text(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }

    let regarding = at(ev, &["involvedObject"]).or_else(|| at(ev, &["regarding"])).unwrap_or(&Value::Null);
    let kind = text(regarding, &["kind"]).to_lowercase();
    let target_name = text(regarding, &["name"]);
    let target = if target_name.is_empty() { kind } else { format!("{kind}/{target_name}") };

    let component = first_text(
        ev,
        &[
            &["source", "component"],
            &["deprecatedSource", "component"],
            &["reportingComponent"],
            &["reportingController"],
        ],
    );
    let host = first_text(ev, &[&["source", "host"], &["deprecatedSource", "host"], &["reportingInstance"]]);
    let source = if host.is_empty() { component.to_string() } else { format!("{component}, {host}") };
    let message = first_text(ev, &[&["message"], &["note"]]).trim();

    vec![
        json!(last_seen),
        json!(text(ev, &["type"])),
        json!(text(ev, &["reason"])),
        json!(target),
        json!(text(regarding, &["fieldPath"])),
        json!(source),
        json!(message),
        json!(first_seen),
        json!(count),
        json!(name(ev)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Resource quotas, persistent volumes and claims

const QUOTA_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Request", "Used and hard amounts of the quota's request-type resources."),
    ColumnDef::string("Limit", "Used and hard amounts of the quota's limits.* resources."),
    AGE,
];

fn quota_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> =
        at(obj, &["status", "hard"]).and_then(Value::as_object).map(|m| m.keys().collect()).unwrap_or_default();
    resources.sort();
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    for resource in resources {
        let used = quantity(at(obj, &["status", "used", resource]));
        let hard = quantity(at(obj, &["status", "hard", resource]));
        let entry = format!("{resource}: {used}/{hard}");
        let is_limit = resource.split_once('.').is_some_and(|(head, _)| head == "limits");
        if is_limit { limits.push(entry) } else { requests.push(entry) }
    }
    vec![json!(name(obj)), json!(requests.join(", ")), json!(limits.join(", ")), json!(obj_age(obj, now))]
}

const PV_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Capacity", "Storage capacity of the volume."),
    ColumnDef::string("Access Modes", "Ways the volume can be mounted (RWO, ROX, RWX, RWOP)."),
    ColumnDef::string("Reclaim Policy", "What happens to the volume when its claim is released."),
    ColumnDef::string("Status", "Phase of the volume."),
    ColumnDef::string("Claim", "The claim bound to the volume, as namespace/name."),
    ColumnDef::string("StorageClass", "Storage class of the volume."),
    ColumnDef::string("VolumeAttributesClass", "Volume attributes class of the volume."),
    ColumnDef::string("Reason", "Why the volume is in its phase."),
    AGE,
    ColumnDef::string("VolumeMode", "Filesystem or Block.").wide(),
];

/// Access modes in upstream's fixed order and short form.
fn access_modes(modes: &[Value]) -> String {
    let present: Vec<&str> = modes.iter().filter_map(Value::as_str).collect();
    [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")]
        .iter()
        .filter(|(long, _)| present.contains(long))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// Storage class from the beta annotation when present, else `spec.storageClassName`.
fn storage_class(obj: &Value) -> String {
    match at(obj, &["metadata", "annotations", "volume.beta.kubernetes.io/storage-class"]).and_then(Value::as_str) {
        Some(class) => class.to_string(),
        None => text(obj, &["spec", "storageClassName"]).to_string(),
    }
}

/// An optional string field, or `<unset>`.
fn unset_or(obj: &Value, path: &[&str]) -> String {
    super::fields::or_unset(at(obj, path).and_then(Value::as_str))
}

/// Phase, or `Terminating` while being deleted.
fn phase_or_terminating(obj: &Value) -> String {
    if deleting(obj) { "Terminating".to_string() } else { text(obj, &["status", "phase"]).to_string() }
}

fn pv_cells(pv: &Value, now: Timestamp) -> Vec<Value> {
    let claim = at(pv, &["spec", "claimRef"])
        .map(|c| format!("{}/{}", text(c, &["namespace"]), text(c, &["name"])))
        .unwrap_or_default();
    vec![
        json!(name(pv)),
        json!(quantity(at(pv, &["spec", "capacity", "storage"]))),
        json!(access_modes(list(pv, &["spec", "accessModes"]))),
        json!(text(pv, &["spec", "persistentVolumeReclaimPolicy"])),
        json!(phase_or_terminating(pv)),
        json!(claim),
        json!(storage_class(pv)),
        json!(unset_or(pv, &["spec", "volumeAttributesClassName"])),
        json!(text(pv, &["status", "reason"])),
        json!(obj_age(pv, now)),
        json!(unset_or(pv, &["spec", "volumeMode"])),
    ]
}

const PVC_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Status", "Phase of the claim."),
    ColumnDef::string("Volume", "The volume bound to the claim."),
    ColumnDef::string("Capacity", "Storage capacity of the bound volume."),
    ColumnDef::string("Access Modes", "Ways the bound volume can be mounted."),
    ColumnDef::string("StorageClass", "Storage class of the claim."),
    ColumnDef::string("VolumeAttributesClass", "Volume attributes class of the claim."),
    AGE,
    ColumnDef::string("VolumeMode", "Filesystem or Block.").wide(),
];

fn pvc_cells(pvc: &Value, now: Timestamp) -> Vec<Value> {
    let volume = text(pvc, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (quantity(at(pvc, &["status", "capacity", "storage"])), access_modes(list(pvc, &["status", "accessModes"])))
    };
    vec![
        json!(name(pvc)),
        json!(phase_or_terminating(pvc)),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class(pvc)),
        json!(unset_or(pvc, &["spec", "volumeAttributesClassName"])),
        json!(obj_age(pvc, now)),
        json!(unset_or(pvc, &["spec", "volumeMode"])),
    ]
}
