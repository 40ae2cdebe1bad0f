//! Printers for the remaining groups: autoscaling, networking, discovery, coordination, RBAC,
//! storage, policy, scheduling and `events.k8s.io`.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::columns::{AGE, ColumnDef, NAME};
use super::fields::{
    at, format_label_selector, int, int_or_string, list, list_with_more, load_balancer_ingress, name, obj_age,
    opt_bool, opt_int, or_unset, text,
};
use super::{Printer, core};

/// The printer of resource `plural` in `group`, if it has one.
pub(super) fn printer(group: &str, plural: &str) -> Option<Printer> {
    let printer = match (group, plural) {
        ("events.k8s.io", "events") => core::EVENTS,
        ("autoscaling", "horizontalpodautoscalers") => Printer { columns: HPA_COLUMNS, cells: hpa_cells },
        ("networking.k8s.io", "ingresses") => Printer { columns: INGRESS_COLUMNS, cells: ingress_cells },
        ("networking.k8s.io", "ingressclasses") => {
            Printer { columns: INGRESS_CLASS_COLUMNS, cells: ingress_class_cells }
        }
        ("networking.k8s.io", "networkpolicies") => Printer { columns: NETPOL_COLUMNS, cells: netpol_cells },
        ("discovery.k8s.io", "endpointslices") => Printer { columns: SLICE_COLUMNS, cells: slice_cells },
        ("coordination.k8s.io", "leases") => Printer { columns: LEASE_COLUMNS, cells: lease_cells },
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            Printer { columns: BINDING_COLUMNS, cells: binding_cells }
        }
        ("storage.k8s.io", "storageclasses") => Printer { columns: STORAGE_CLASS_COLUMNS, cells: storage_class_cells },
        ("storage.k8s.io", "csidrivers") => Printer { columns: CSI_DRIVER_COLUMNS, cells: csi_driver_cells },
        ("storage.k8s.io", "csinodes") => Printer { columns: CSI_NODE_COLUMNS, cells: csi_node_cells },
        ("storage.k8s.io", "csistoragecapacities") => Printer { columns: CAPACITY_COLUMNS, cells: capacity_cells },
        ("storage.k8s.io", "volumeattachments") => Printer { columns: ATTACHMENT_COLUMNS, cells: attachment_cells },
        ("policy", "poddisruptionbudgets") => Printer { columns: PDB_COLUMNS, cells: pdb_cells },
        ("scheduling.k8s.io", "priorityclasses") => Printer { columns: PRIORITY_COLUMNS, cells: priority_cells },
        ("certificates.k8s.io", "certificatesigningrequests") => Printer { columns: CSR_COLUMNS, cells: csr_cells },
        _ => return None,
    };
    Some(printer)
}

// ---------------------------------------------------------------------------------------------
// Horizontal pod autoscalers (autoscaling/v2 and the v1 shape)

const HPA_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Reference", "The scaled object, as kind/name."),
    ColumnDef::string("Targets", "Current and target values of the metrics."),
    ColumnDef::string("MinPods", "Lower bound for the replica count."),
    ColumnDef::string("MaxPods", "Upper bound for the replica count."),
    ColumnDef::string("Replicas", "Current replica count."),
    AGE,
];

/// A quantity at `path` as text, if present.
fn amount(value: &Value, path: &[&str]) -> Option<String> {
    at(value, path).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// One metric of an autoscaling/v2 spec against the status at the same index.
fn format_metric(spec: &Value, status: Option<&Value>) -> String {
    let unknown = || "<unknown>".to_string();
    match text(spec, &["type"]) {
        kind @ ("External" | "Object") => {
            let source = if kind == "External" { "external" } else { "object" };
            let current = status.and_then(|s| at(s, &[source]));
            if let Some(target) = amount(spec, &[source, "target", "averageValue"]) {
                let now = current.and_then(|c| amount(c, &["current", "averageValue"])).unwrap_or_else(unknown);
                format!("{now}/{target} (avg)")
            } else {
                let now = current.map(|c| amount(c, &["current", "value"]).unwrap_or_else(|| "0".to_string()));
                let target = amount(spec, &[source, "target", "value"]).unwrap_or_else(|| "0".to_string());
                format!("{}/{target}", now.unwrap_or_else(unknown))
            }
        }
        "Pods" => {
            let now = status
                .and_then(|s| at(s, &["pods"]))
                .map(|p| amount(p, &["current", "averageValue"]).unwrap_or_else(|| "0".to_string()));
            let target = amount(spec, &["pods", "target", "averageValue"]).unwrap_or_else(|| "0".to_string());
            format!("{}/{target}", now.unwrap_or_else(unknown))
        }
        kind @ ("Resource" | "ContainerResource") => {
            let source = if kind == "Resource" { "resource" } else { "containerResource" };
            let resource = text(spec, &[source, "name"]);
            let current = status.and_then(|s| at(s, &[source]));
            if let Some(target) = amount(spec, &[source, "target", "averageValue"]) {
                let now = current
                    .map(|c| amount(c, &["current", "averageValue"]).unwrap_or_else(|| "0".to_string()))
                    .unwrap_or_else(unknown);
                format!("{resource}: {now}/{target}")
            } else {
                let now = current
                    .and_then(|c| opt_int(c, &["current", "averageUtilization"]))
                    .map_or_else(unknown, |u| format!("{u}%"));
                let target = opt_int(spec, &[source, "target", "averageUtilization"])
                    .map_or_else(|| "<auto>".to_string(), |u| format!("{u}%"));
                format!("{resource}: {now}/{target}")
            }
        }
        _ => "<unknown type>".to_string(),
    }
}

/// The `Targets` cell: up to two metrics and a count of the rest, or `<none>`.
fn hpa_targets(hpa: &Value) -> String {
    // autoscaling/v1 has a single CPU utilization target instead of a metrics list.
    if let Some(target) = opt_int(hpa, &["spec", "targetCPUUtilizationPercentage"]) {
        let now = opt_int(hpa, &["status", "currentCPUUtilizationPercentage"])
            .map_or_else(|| "<unknown>".to_string(), |u| format!("{u}%"));
        return format!("cpu: {now}/{target}%");
    }
    let specs = list(hpa, &["spec", "metrics"]);
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let statuses = list(hpa, &["status", "currentMetrics"]);
    let rendered: Vec<String> = specs.iter().enumerate().map(|(i, s)| format_metric(s, statuses.get(i))).collect();
    const MAX: usize = 2;
    let shown = rendered.iter().take(MAX).cloned().collect::<Vec<_>>().join(", ");
    if rendered.len() > MAX { format!("{shown} + {} more...", rendered.len() - MAX) } else { shown }
}

fn hpa_cells(hpa: &Value, now: Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        text(hpa, &["spec", "scaleTargetRef", "kind"]),
        text(hpa, &["spec", "scaleTargetRef", "name"])
    );
    let min_pods = opt_int(hpa, &["spec", "minReplicas"]).map_or_else(|| "<unset>".to_string(), |n| n.to_string());
    vec![
        json!(name(hpa)),
        json!(reference),
        json!(hpa_targets(hpa)),
        json!(min_pods),
        json!(int(hpa, &["spec", "maxReplicas"])),
        json!(int(hpa, &["status", "currentReplicas"])),
        json!(obj_age(hpa, now)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Networking

const INGRESS_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Class", "The ingress class that handles the ingress."),
    ColumnDef::string("Hosts", "Hosts the rules match."),
    ColumnDef::string("Address", "Load-balancer addresses of the ingress."),
    ColumnDef::string("Ports", "Ports served: 80, and 443 with TLS."),
    AGE,
];

/// The first three rule hosts and a count of the remaining rules, or `*` when none names a host.
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let joined = hosts.join(",");
    if more { format!("{joined} + {} more...", rules.len() - MAX) } else { joined }
}

fn ingress_cells(ing: &Value, now: Timestamp) -> Vec<Value> {
    let class = at(ing, &["spec", "ingressClassName"]).and_then(Value::as_str).unwrap_or("<none>");
    let ports = if list(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    vec![
        json!(name(ing)),
        json!(class),
        json!(ingress_hosts(list(ing, &["spec", "rules"]))),
        json!(load_balancer_ingress(at(ing, &["status", "loadBalancer"]).unwrap_or(&Value::Null))),
        json!(ports),
        json!(obj_age(ing, now)),
    ]
}

const INGRESS_CLASS_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Controller", "The controller that implements the class."),
    ColumnDef::string("Parameters", "The resource holding the class's parameters."),
    AGE,
];

fn ingress_class_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match at(class, &["spec", "parameters"]) {
        None => "<none>".to_string(),
        Some(p) => {
            let mut rendered = text(p, &["kind"]).to_string();
            if let Some(group) = at(p, &["apiGroup"]).and_then(Value::as_str) {
                rendered = format!("{rendered}.{group}");
            }
            format!("{rendered}/{}", text(p, &["name"]))
        }
    };
    vec![json!(name(class)), json!(text(class, &["spec", "controller"])), json!(parameters), json!(obj_age(class, now))]
}

const NETPOL_COLUMNS: &[ColumnDef] = &[NAME, ColumnDef::string("Pod-Selector", "Pods the policy applies to."), AGE];

fn netpol_cells(policy: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(policy)),
        json!(format_label_selector(at(policy, &["spec", "podSelector"]))),
        json!(obj_age(policy, now)),
    ]
}

const SLICE_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("AddressType", "IPv4, IPv6 or FQDN."),
    ColumnDef::string("Ports", "Ports of the slice."),
    ColumnDef::string("Endpoints", "Addresses of the slice's endpoints."),
    AGE,
];

fn slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    let ports = list(slice, &["ports"]);
    let port_texts: Vec<String> = ports
        .iter()
        .map(|p| match (opt_int(p, &["port"]), at(p, &["name"]).and_then(Value::as_str)) {
            (Some(port), _) => port.to_string(),
            (None, Some(port_name)) => port_name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = list(slice, &["endpoints"])
        .iter()
        .flat_map(|e| list(e, &["addresses"]).iter().filter_map(Value::as_str).map(str::to_string))
        .collect();
    vec![
        json!(name(slice)),
        json!(text(slice, &["addressType"])),
        json!(list_with_more(&port_texts, ports.len(), 3)),
        json!(list_with_more(&addresses, addresses.len(), 3)),
        json!(obj_age(slice, now)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Leases and RBAC bindings

const LEASE_COLUMNS: &[ColumnDef] = &[NAME, ColumnDef::string("Holder", "Identity of the lease's holder."), AGE];

fn lease_cells(lease: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(lease)), json!(text(lease, &["spec", "holderIdentity"])), json!(obj_age(lease, now))]
}

const BINDING_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Role", "The bound role, as kind/name."),
    AGE,
    ColumnDef::string("Users", "Users the binding grants the role to.").wide(),
    ColumnDef::string("Groups", "Groups the binding grants the role to.").wide(),
    ColumnDef::string("ServiceAccounts", "Service accounts the binding grants the role to, as namespace/name.").wide(),
];

fn binding_cells(binding: &Value, now: Timestamp) -> Vec<Value> {
    let role = format!("{}/{}", text(binding, &["roleRef", "kind"]), text(binding, &["roleRef", "name"]));
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in list(binding, &["subjects"]) {
        let subject_name = text(subject, &["name"]);
        match text(subject, &["kind"]) {
            "User" => users.push(subject_name.to_string()),
            "Group" => groups.push(subject_name.to_string()),
            "ServiceAccount" => accounts.push(format!("{}/{subject_name}", text(subject, &["namespace"]))),
            _ => {}
        }
    }
    vec![
        json!(name(binding)),
        json!(role),
        json!(obj_age(binding, now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(accounts.join(", ")),
    ]
}

// ---------------------------------------------------------------------------------------------
// Storage

const STORAGE_CLASS_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Provisioner", "The volume plugin that provisions volumes of the class."),
    ColumnDef::string("ReclaimPolicy", "What happens to volumes of the class when released."),
    ColumnDef::string("VolumeBindingMode", "When volumes are bound and provisioned."),
    ColumnDef::string("AllowVolumeExpansion", "Whether volumes of the class can be expanded."),
    AGE,
];

fn storage_class_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    let annotation = |key: &str| text(class, &["metadata", "annotations", key]) == "true";
    let mut shown_name = name(class).to_string();
    if annotation("storageclass.kubernetes.io/is-default-class")
        || annotation("storageclass.beta.kubernetes.io/is-default-class")
    {
        shown_name.push_str(" (default)");
    }
    let reclaim = at(class, &["reclaimPolicy"]).and_then(Value::as_str).unwrap_or("Delete");
    let binding = at(class, &["volumeBindingMode"]).and_then(Value::as_str).unwrap_or("Immediate");
    vec![
        json!(shown_name),
        json!(text(class, &["provisioner"])),
        json!(reclaim),
        json!(binding),
        json!(opt_bool(class, &["allowVolumeExpansion"]).unwrap_or(false)),
        json!(obj_age(class, now)),
    ]
}

const CSI_DRIVER_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::boolean("AttachRequired", "Whether volumes need an attach step."),
    ColumnDef::boolean("PodInfoOnMount", "Whether pod information is passed on mount."),
    ColumnDef::boolean("StorageCapacity", "Whether the driver reports storage capacity."),
    ColumnDef::string("TokenRequests", "Audiences of service account tokens passed to the driver."),
    ColumnDef::boolean("RequiresRepublish", "Whether volumes are periodically re-published."),
    ColumnDef::string("Modes", "Volume lifecycle modes the driver supports."),
    AGE,
];

fn csi_driver_cells(driver: &Value, now: Timestamp) -> Vec<Value> {
    let flag = |field: &str, default: bool| opt_bool(driver, &["spec", field]).unwrap_or(default);
    let tokens = at(driver, &["spec", "tokenRequests"])
        .and_then(Value::as_array)
        .map(|requests| requests.iter().map(|t| text(t, &["audience"])).collect::<Vec<_>>().join(","));
    let modes: Vec<&str> = list(driver, &["spec", "volumeLifecycleModes"]).iter().filter_map(Value::as_str).collect();
    let modes = if modes.is_empty() { "<none>".to_string() } else { modes.join(",") };
    vec![
        json!(name(driver)),
        json!(flag("attachRequired", true)),
        json!(flag("podInfoOnMount", false)),
        json!(flag("storageCapacity", false)),
        json!(tokens.unwrap_or_else(|| "<unset>".to_string())),
        json!(flag("requiresRepublish", false)),
        json!(modes),
        json!(obj_age(driver, now)),
    ]
}

const CSI_NODE_COLUMNS: &[ColumnDef] =
    &[NAME, ColumnDef::integer("Drivers", "Number of CSI drivers registered on the node."), AGE];

fn csi_node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(node)), json!(list(node, &["spec", "drivers"]).len()), json!(obj_age(node, now))]
}

const CAPACITY_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("StorageClassName", "Storage class the capacity applies to."),
    ColumnDef::string("Capacity", "Available capacity."),
];

fn capacity_cells(capacity: &Value, _now: Timestamp) -> Vec<Value> {
    let amount = amount(capacity, &["capacity"]);
    vec![json!(name(capacity)), json!(text(capacity, &["storageClassName"])), json!(or_unset(amount.as_deref()))]
}

const ATTACHMENT_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Attacher", "The driver that attaches the volume.").named(),
    ColumnDef::string("PV", "The persistent volume being attached."),
    ColumnDef::string("Node", "The node the volume is attached to."),
    ColumnDef::boolean("Attached", "Whether the attach operation succeeded."),
    AGE,
];

fn attachment_cells(attachment: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(attachment)),
        json!(text(attachment, &["spec", "attacher"])),
        json!(text(attachment, &["spec", "source", "persistentVolumeName"])),
        json!(text(attachment, &["spec", "nodeName"])),
        json!(opt_bool(attachment, &["status", "attached"]).unwrap_or(false)),
        json!(obj_age(attachment, now)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Policy and scheduling

const PDB_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Min Available", "Pods that must stay available."),
    ColumnDef::string("Max Unavailable", "Pods that may be unavailable."),
    ColumnDef::integer("Allowed Disruptions", "Pods that may be disrupted right now."),
    AGE,
];

fn pdb_cells(pdb: &Value, now: Timestamp) -> Vec<Value> {
    let bound = |field: &str| at(pdb, &["spec", field]).map_or_else(|| "N/A".to_string(), int_or_string);
    vec![
        json!(name(pdb)),
        json!(bound("minAvailable")),
        json!(bound("maxUnavailable")),
        json!(int(pdb, &["status", "disruptionsAllowed"])),
        json!(obj_age(pdb, now)),
    ]
}

const PRIORITY_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::integer("Value", "Priority of pods using the class."),
    ColumnDef::boolean("Global-Default", "Whether pods without a class get this one."),
    AGE,
    ColumnDef::string("PreemptionPolicy", "Whether pods of the class may preempt others."),
];

fn priority_cells(class: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        json!(name(class)),
        json!(int(class, &["value"])),
        json!(opt_bool(class, &["globalDefault"]).unwrap_or(false)),
        json!(obj_age(class, now)),
        json!(or_unset(at(class, &["preemptionPolicy"]).and_then(Value::as_str))),
    ]
}

// ---------------------------------------------------------------------------------------------
// Certificate signing requests

const CSR_COLUMNS: &[ColumnDef] = &[
    NAME,
    AGE,
    ColumnDef::string("SignerName", "The requested signer: the one who may issue the certificate."),
    ColumnDef::string("Requestor", "Name of the user who created the request (set by the API server)."),
    ColumnDef::string("RequestedDuration", "The requested validity duration of the issued certificate."),
    ColumnDef::string("Condition", "Approval state of the request, and whether it failed or was issued."),
];

/// Upstream's condition summary: `Denied`, `Approved` or `Pending`, then `,Failed` and
/// `,Issued` when they apply.
fn csr_condition(csr: &Value) -> String {
    let types: Vec<&str> = list(csr, &["status", "conditions"]).iter().map(|c| text(c, &["type"])).collect();
    let mut out = if types.contains(&"Denied") {
        "Denied".to_string()
    } else if types.contains(&"Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if types.contains(&"Failed") {
        out.push_str(",Failed");
    }
    if !text(csr, &["status", "certificate"]).is_empty() {
        out.push_str(",Issued");
    }
    out
}

fn csr_cells(csr: &Value, now: Timestamp) -> Vec<Value> {
    let signer = text(csr, &["spec", "signerName"]);
    let duration = opt_int(csr, &["spec", "expirationSeconds"])
        .map(|s| super::age::human_duration(i128::from(s) * 1_000_000_000))
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        json!(name(csr)),
        json!(obj_age(csr, now)),
        json!(if signer.is_empty() { "<none>" } else { signer }),
        json!(text(csr, &["spec", "username"])),
        json!(duration),
        json!(csr_condition(csr)),
    ]
}
