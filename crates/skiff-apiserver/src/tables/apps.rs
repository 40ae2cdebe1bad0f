//! Printers for `apps`: deployments, replica sets, stateful sets, daemon sets, controller revisions.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Printer;
use super::columns::{AGE, CONTAINERS, ColumnDef, IMAGES, NAME, SELECTOR};
use super::fields::{
    at, containers, format_label_selector, format_labels, int, list, name, obj_age, selector_string, text,
};

/// The printer of apps resource `plural`, if it has one.
pub(super) fn printer(plural: &str) -> Option<Printer> {
    let printer = match plural {
        "deployments" => Printer { columns: DEPLOYMENT_COLUMNS, cells: deployment_cells },
        "replicasets" => Printer { columns: REPLICA_SET_COLUMNS, cells: replica_set_cells },
        "statefulsets" => Printer { columns: STATEFUL_SET_COLUMNS, cells: stateful_set_cells },
        "daemonsets" => Printer { columns: DAEMON_SET_COLUMNS, cells: daemon_set_cells },
        "controllerrevisions" => Printer { columns: REVISION_COLUMNS, cells: revision_cells },
        _ => return None,
    };
    Some(printer)
}

/// Container names and images of the workload's pod template.
fn template_containers(obj: &Value) -> (String, String) {
    containers(at(obj, &["spec", "template", "spec"]).unwrap_or(&Value::Null))
}

/// Desired replicas; an unset count means 1, as defaulting would have made it.
fn desired_replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1)
}

const DEPLOYMENT_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Ready", "Ready replicas out of desired replicas."),
    ColumnDef::string("Up-to-date", "Replicas running the current pod template."),
    ColumnDef::string("Available", "Replicas available to serve."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    // Deployments print the raw selector: empty for none, `<invalid>` when malformed.
    let selector = selector_string(at(obj, &["spec", "selector"])).unwrap_or_else(|| "<invalid>".to_string());
    vec![
        json!(name(obj)),
        json!(format!("{}/{}", int(obj, &["status", "readyReplicas"]), desired_replicas(obj))),
        json!(int(obj, &["status", "updatedReplicas"])),
        json!(int(obj, &["status", "availableReplicas"])),
        json!(obj_age(obj, now)),
        json!(names),
        json!(images),
        json!(selector),
    ]
}

const REPLICA_SET_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::integer("Desired", "Number of replicas wanted."),
    ColumnDef::integer("Current", "Number of replicas that exist."),
    ColumnDef::integer("Ready", "Number of replicas that are ready."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    vec![
        json!(name(obj)),
        json!(desired_replicas(obj)),
        json!(int(obj, &["status", "replicas"])),
        json!(int(obj, &["status", "readyReplicas"])),
        json!(obj_age(obj, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(obj, &["spec", "selector"]))),
    ]
}

const STATEFUL_SET_COLUMNS: &[ColumnDef] =
    &[NAME, ColumnDef::string("Ready", "Ready replicas out of desired replicas."), AGE, CONTAINERS, IMAGES];

fn stateful_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    vec![
        json!(name(obj)),
        json!(format!("{}/{}", int(obj, &["status", "readyReplicas"]), desired_replicas(obj))),
        json!(obj_age(obj, now)),
        json!(names),
        json!(images),
    ]
}

const DAEMON_SET_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::integer("Desired", "Nodes that should run the daemon pod."),
    ColumnDef::integer("Current", "Nodes running at least one daemon pod."),
    ColumnDef::integer("Ready", "Nodes whose daemon pod is ready."),
    ColumnDef::integer("Up-to-date", "Nodes running the current pod template."),
    ColumnDef::integer("Available", "Nodes whose daemon pod is available."),
    ColumnDef::string("Node Selector", "Labels a node needs to run the daemon pod."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn daemon_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    vec![
        json!(name(obj)),
        json!(int(obj, &["status", "desiredNumberScheduled"])),
        json!(int(obj, &["status", "currentNumberScheduled"])),
        json!(int(obj, &["status", "numberReady"])),
        json!(int(obj, &["status", "updatedNumberScheduled"])),
        json!(int(obj, &["status", "numberAvailable"])),
        json!(format_labels(at(obj, &["spec", "template", "spec", "nodeSelector"]))),
        json!(obj_age(obj, now)),
        json!(names),
        json!(images),
        json!(format_label_selector(at(obj, &["spec", "selector"]))),
    ]
}

const REVISION_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("Controller", "The object that owns the revision, as kind.group/name."),
    ColumnDef::string("Revision", "Revision number."),
    AGE,
];

/// The controlling owner as `kind.group/name` (lower-case kind and group), or `<none>`.
fn controller_name(obj: &Value) -> String {
    let Some(owner) = list(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|o| at(o, &["controller"]).and_then(Value::as_bool) == Some(true))
    else {
        return "<none>".to_string();
    };
    let owner_name = text(owner, &["name"]);
    let kind = text(owner, &["kind"]);
    let api_version = text(owner, &["apiVersion"]);
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let group_kind = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
    if group_kind.is_empty() { owner_name.to_string() } else { format!("{}/{owner_name}", group_kind.to_lowercase()) }
}

fn revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(controller_name(obj)), json!(int(obj, &["revision"])), json!(obj_age(obj, now))]
}
