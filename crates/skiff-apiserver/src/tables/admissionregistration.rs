//! Printers for `admissionregistration.k8s.io`: webhook configurations (`Webhooks` count),
//! ValidatingAdmissionPolicies (`Validations`, `ParamKind`) and their bindings (`PolicyName`,
//! `ParamRef`), with upstream's columns.

use jiff::Timestamp;
use serde_json::{Value, json};

use super::Printer;
use super::columns::{AGE, ColumnDef, NAME};
use super::fields::{at, list, name, obj_age, text};

/// The printer of `plural` in `admissionregistration.k8s.io`, if it has one.
pub(super) fn printer(plural: &str) -> Option<Printer> {
    Some(match plural {
        "mutatingwebhookconfigurations" | "validatingwebhookconfigurations" => {
            Printer { columns: WEBHOOK_COLUMNS, cells: webhook_cells }
        }
        "validatingadmissionpolicies" => Printer { columns: POLICY_COLUMNS, cells: policy_cells },
        "validatingadmissionpolicybindings" => Printer { columns: BINDING_COLUMNS, cells: binding_cells },
        _ => return None,
    })
}

const WEBHOOK_COLUMNS: &[ColumnDef] =
    &[NAME, ColumnDef::integer("Webhooks", "Webhooks is the number of webhooks in the configuration."), AGE];

fn webhook_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![json!(name(obj)), json!(list(obj, &["webhooks"]).len()), json!(obj_age(obj, now))]
}

const POLICY_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::integer("Validations", "Validations is the number of validations of the policy."),
    ColumnDef::string("ParamKind", "ParamKind is the kind of the policy's parameters."),
    AGE,
];

fn policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param_kind = match at(obj, &["spec", "paramKind"]) {
        Some(pk) => format!("{}/{}", text(pk, &["apiVersion"]), text(pk, &["kind"])),
        None => "<unset>".to_string(),
    };
    vec![
        json!(name(obj)),
        json!(list(obj, &["spec", "validations"]).len()),
        json!(param_kind),
        json!(obj_age(obj, now)),
    ]
}

const BINDING_COLUMNS: &[ColumnDef] = &[
    NAME,
    ColumnDef::string("PolicyName", "PolicyName is the name of the bound policy."),
    ColumnDef::string("ParamRef", "ParamRef is the parameter resource of the binding."),
    AGE,
];

fn binding_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let param_ref = match at(obj, &["spec", "paramRef"]) {
        Some(pr) => {
            let (ns, n) = (text(pr, &["namespace"]), text(pr, &["name"]));
            match (ns.is_empty(), n.is_empty()) {
                (_, true) => "<selector>".to_string(),
                (true, false) => format!("*/{n}"),
                (false, false) => format!("{ns}/{n}"),
            }
        }
        None => "<unset>".to_string(),
    };
    vec![json!(name(obj)), json!(text(obj, &["spec", "policyName"])), json!(param_ref), json!(obj_age(obj, now))]
}
