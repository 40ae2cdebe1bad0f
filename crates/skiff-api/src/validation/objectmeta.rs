//! Validation of an object's `metadata` (upstream `ValidateObjectMetaAccessor`), on its JSON.
//!
//! Used for the `metadata` of every written object and for the `metadata` of resources embedded
//! in custom objects (`x-kubernetes-embedded-resource`). What is absent: the system fields the
//! write path fills (`uid`, `creationTimestamp`, `generation`), the required-name check (the
//! write path knows whether a name was generated), update-only rules (immutability, finalizers of
//! objects being deleted) and `managedFields`, which server-side apply maintains.

use serde_json::{Map, Value};

use super::gofmt;
use super::{ErrorList, FieldError, child, index, names};
use crate::catalogue::NameRule;

const ORPHAN_FINALIZER: &str = "orphan";
const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// Splits `group/version` (or `version`) as upstream's `schema.ParseGroupVersion`.
pub fn parse_group_version(s: &str) -> Result<(&str, &str), String> {
    if s.is_empty() || s == "/" {
        return Ok(("", ""));
    }
    match s.split_once('/') {
        None => Ok(("", s)),
        Some((group, version)) if !version.contains('/') => Ok((group, version)),
        Some(_) => Err(format!("unexpected GroupVersion string: {s}")),
    }
}

fn str_of<'a>(map: &'a Map<String, Value>, field: &str) -> &'a str {
    map.get(field).and_then(Value::as_str).unwrap_or("")
}

fn string_map(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

/// Problems with the metadata `meta` at `path` whose names follow `rule`. An empty name is not
/// reported; the namespace is checked only when set.
pub fn validate(meta: &Map<String, Value>, path: &str, rule: NameRule) -> ErrorList {
    let mut errors = ErrorList::new();
    let generate = str_of(meta, "generateName");
    if !generate.is_empty() {
        for msg in rule.check_prefix(generate) {
            errors.push(FieldError::invalid(child(path, "generateName"), generate, msg));
        }
    }
    let name = str_of(meta, "name");
    if !name.is_empty() {
        for msg in rule.check(name) {
            errors.push(FieldError::invalid(child(path, "name"), name, msg));
        }
    }
    let namespace = str_of(meta, "namespace");
    if !namespace.is_empty() {
        for msg in names::is_dns1123_label(namespace) {
            errors.push(FieldError::invalid(child(path, "namespace"), namespace, msg));
        }
    }
    let labels = string_map(meta.get("labels"));
    errors.extend(names::validate_labels(labels.iter().map(|(k, v)| (k, v)), &child(path, "labels")));
    let annotations = string_map(meta.get("annotations"));
    errors.extend(names::validate_annotations(annotations.iter().map(|(k, v)| (k, v)), &child(path, "annotations")));
    if let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) {
        validate_owner_references(refs, &child(path, "ownerReferences"), &mut errors);
    }
    if let Some(finalizers) = meta.get("finalizers").and_then(Value::as_array) {
        validate_finalizers(finalizers, &child(path, "finalizers"), &mut errors);
    }
    errors
}

fn validate_owner_references(refs: &[Value], path: &str, errors: &mut ErrorList) {
    let mut first_controller: Option<String> = None;
    for (i, r) in refs.iter().enumerate() {
        let at = index(path, i);
        let empty = Map::new();
        let r = r.as_object().unwrap_or(&empty);
        let api_version = str_of(r, "apiVersion");
        let parsed = parse_group_version(api_version);
        if api_version.is_empty() {
            errors.push(FieldError::required(child(&at, "apiVersion"), "must not be empty"));
        } else if parsed.as_ref().map_or(true, |(_, v)| v.is_empty()) {
            errors.push(FieldError::invalid(
                child(&at, "apiVersion"),
                api_version,
                "must be <group>/<version> or <version>",
            ));
        }
        for field in ["kind", "name", "uid"] {
            if str_of(r, field).is_empty() {
                errors.push(FieldError::required(child(&at, field), "must not be empty"));
            }
        }
        let (group, version) = parsed.unwrap_or(("", ""));
        let kind = str_of(r, "kind");
        if group.is_empty() && version == "v1" && kind == "Event" {
            errors.push(gofmt::invalid(
                at.as_str(),
                &Value::Object(r.clone()),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if r.get("controller").and_then(Value::as_bool) == Some(true) {
            let current = format!("{kind}/{}", str_of(r, "name"));
            match &first_controller {
                Some(first) => errors.push(FieldError::invalid(
                    path,
                    "",
                    format!(
                        "Only one reference can have Controller set to true. Found \"true\" in references for {first} and {current}"
                    ),
                )),
                None => first_controller = Some(current),
            }
        }
    }
}

fn validate_finalizers(finalizers: &[Value], path: &str, errors: &mut ErrorList) {
    let names: Vec<&str> = finalizers.iter().map(|f| f.as_str().unwrap_or("")).collect();
    for f in &names {
        for msg in names::is_qualified_name(f) {
            errors.push(FieldError::invalid(path, *f, msg));
        }
    }
    if names.contains(&ORPHAN_FINALIZER) && names.contains(&FOREGROUND_FINALIZER) {
        errors.push(gofmt::with_rendered_value(
            super::ErrorKind::Invalid,
            path,
            gofmt::go_strings(&names),
            &format!("finalizer {ORPHAN_FINALIZER} and {FOREGROUND_FINALIZER} cannot be both set"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(meta: Value, rule: NameRule) -> Vec<String> {
        let map = meta.as_object().cloned().unwrap_or_default();
        validate(&map, "metadata", rule).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_metadata_passes() {
        let meta = json!({"name": "a", "generateName": "a-", "namespace": "ns", "labels": {"app": "x"},
            "annotations": {"example.com/a": "b"}, "finalizers": ["example.com/f"],
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]});
        assert!(check(meta, NameRule::Subdomain).is_empty());
    }

    #[test]
    fn each_rule_reports_upstreams_message() {
        let cases: &[(Value, NameRule, &str)] = &[
            (
                json!({"generateName": "Foo-"}),
                NameRule::Subdomain,
                "metadata.generateName: Invalid value: \"Foo-\": a lowercase RFC 1123 subdomain",
            ),
            (
                json!({"generateName": "a/"}),
                NameRule::PathSegment,
                "metadata.generateName: Invalid value: \"a/\": may not contain '/'",
            ),
            (
                json!({"name": "a/b"}),
                NameRule::PathSegment,
                "metadata.name: Invalid value: \"a/b\": may not contain '/'",
            ),
            (
                json!({"name": "A"}),
                NameRule::Subdomain,
                "metadata.name: Invalid value: \"A\": a lowercase RFC 1123 subdomain",
            ),
            (
                json!({"namespace": "Bad"}),
                NameRule::Subdomain,
                "metadata.namespace: Invalid value: \"Bad\": a lowercase RFC 1123 label",
            ),
            (
                json!({"labels": {"a": "b c"}}),
                NameRule::Subdomain,
                "metadata.labels[a]: Invalid value: \"b c\": a valid label",
            ),
            (
                json!({"annotations": {"a b": "c"}}),
                NameRule::Subdomain,
                "metadata.annotations: Invalid value: \"a b\": name part must consist",
            ),
            (
                json!({"finalizers": ["a b"]}),
                NameRule::Subdomain,
                "metadata.finalizers: Invalid value: \"a b\": name part must consist",
            ),
            (
                json!({"finalizers": ["orphan", "foregroundDeletion"]}),
                NameRule::Subdomain,
                "metadata.finalizers: Invalid value: []string{\"orphan\", \"foregroundDeletion\"}: finalizer orphan and foregroundDeletion cannot be both set",
            ),
            (
                json!({"ownerReferences": [{"kind": "K", "name": "n", "uid": "u"}]}),
                NameRule::Subdomain,
                "metadata.ownerReferences[0].apiVersion: Required value: must not be empty",
            ),
            (
                json!({"ownerReferences": [{"apiVersion": "a/b/c", "kind": "K", "name": "n", "uid": "u"}]}),
                NameRule::Subdomain,
                "metadata.ownerReferences[0].apiVersion: Invalid value: \"a/b/c\": must be <group>/<version> or <version>",
            ),
            (
                json!({"ownerReferences": [{"apiVersion": "v1", "kind": "Event", "name": "n", "uid": "u"}]}),
                NameRule::Subdomain,
                "metadata.ownerReferences[0]: Invalid value: map[string]interface {}{\"apiVersion\":\"v1\", \"kind\":\"Event\", \"name\":\"n\", \"uid\":\"u\"}: /v1, Kind=Event is disallowed from being an owner",
            ),
            (
                json!({"ownerReferences": [
                    {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": true},
                    {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": true}]}),
                NameRule::Subdomain,
                "metadata.ownerReferences: Invalid value: \"\": Only one reference can have Controller set to true. Found \"true\" in references for A/a and B/b",
            ),
        ];
        for (meta, rule, want) in cases {
            let got = check(meta.clone(), *rule);
            assert!(got.iter().any(|g| g.starts_with(want)), "{meta}: want {want:?}, got {got:?}");
        }
    }

    #[test]
    fn group_versions_parse_like_upstream() {
        assert_eq!(parse_group_version("apps/v1"), Ok(("apps", "v1")));
        assert_eq!(parse_group_version("v1"), Ok(("", "v1")));
        assert_eq!(parse_group_version(""), Ok(("", "")));
        assert!(parse_group_version("a/b/c").is_err());
    }
}
