//! Small validators shared by the per-kind rules (upstream's `ValidateNonnegativeField`,
//! `ValidateImmutableField`, `ValidateLabelSelector`, resource lists, ports, …).
//!
//! Each pushes its findings onto an [`ErrorList`] at the given field path.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::quantity::Quantity;
use crate::selector::label::LabelSelectorExpr;
use crate::validation::names::{self, validate_labels};
use crate::validation::{ErrorList, FieldError, child, index, key};

/// Serialises a value for an error message (null if it cannot be).
pub fn json<T: Serialize + ?Sized>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// `value >= 0`.
pub fn nonneg(errs: &mut ErrorList, path: &str, value: i64) {
    if value < 0 {
        errs.push(FieldError::invalid(path, value, "must be greater than or equal to 0"));
    }
}

/// [`nonneg`] of an optional 32-bit field; absent is fine.
pub fn opt_nonneg(errs: &mut ErrorList, path: &str, v: Option<i32>) {
    if let Some(v) = v {
        nonneg(errs, path, i64::from(v));
    }
}

/// `value > 0`.
pub fn positive(errs: &mut ErrorList, path: &str, value: i64) {
    if value <= 0 {
        errs.push(FieldError::invalid(path, value, "must be greater than 0"));
    }
}

/// The field may not change on update.
pub fn immutable<T: Serialize + PartialEq + ?Sized>(errs: &mut ErrorList, path: &str, new: &T, old: &T) {
    if new != old {
        errs.push(FieldError::invalid(path, json(new), "field is immutable"));
    }
}

/// `value` must be one of `allowed`.
pub fn supported(errs: &mut ErrorList, path: &str, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        errs.push(FieldError::not_supported(path, value, allowed));
    }
}

/// An optional enum-like field: checked only when set.
pub fn supported_opt(errs: &mut ErrorList, path: &str, value: Option<&str>, allowed: &[&str]) {
    if let Some(v) = value {
        supported(errs, path, v, allowed);
    }
}

/// Pushes one `Invalid` error per message of a name check.
pub fn each(errs: &mut ErrorList, path: &str, value: &str, msgs: Vec<String>) {
    for m in msgs {
        errs.push(FieldError::invalid(path, value, m));
    }
}

/// A DNS-1123 label.
pub fn dns_label(errs: &mut ErrorList, path: &str, value: &str) {
    each(errs, path, value, names::is_dns1123_label(value));
}

/// A DNS-1123 subdomain.
pub fn dns_subdomain(errs: &mut ErrorList, path: &str, value: &str) {
    each(errs, path, value, names::is_dns1123_subdomain(value));
}

/// A qualified name (`prefix/name`).
pub fn qualified_name(errs: &mut ErrorList, path: &str, value: &str) {
    each(errs, path, value, names::is_qualified_name(value));
}

/// A domain-prefixed path such as `acme.io/foo` (upstream `IsDomainPrefixedPath`): a DNS-1123
/// subdomain, a slash, and a non-empty HTTP path.
pub fn domain_prefixed_path(errs: &mut ErrorList, path: &str, value: &str) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    match value.split_once('/') {
        Some((host, rest)) if !host.is_empty() && !rest.is_empty() => {
            each(errs, path, host, names::is_dns1123_subdomain(host));
            each(errs, path, rest, names::is_http_path(rest));
        }
        _ => errs.push(FieldError::invalid(path, value, "must be a domain-prefixed path (such as \"acme.io/foo\")")),
    }
}

/// A required string: `Required` when empty, else `then` checks it.
pub fn required_str(
    errs: &mut ErrorList,
    path: &str,
    value: Option<&str>,
    then: impl FnOnce(&mut ErrorList, &str, &str),
) {
    match value {
        None | Some("") => errs.push(FieldError::required(path, "")),
        Some(v) => then(errs, path, v),
    }
}

/// An IP address.
pub fn ip(errs: &mut ErrorList, path: &str, value: &str) {
    each(errs, path, value, names::is_valid_ip(value));
}

/// A CIDR.
pub fn cidr(errs: &mut ErrorList, path: &str, value: &str) {
    each(errs, path, value, names::is_valid_cidr(value));
}

/// A port number 1–65535.
pub fn port_num(errs: &mut ErrorList, path: &str, port: i32) {
    for m in names::is_valid_port_num(port) {
        errs.push(FieldError::invalid(path, port, m));
    }
}

/// A port given by number or IANA name (probe ports, service target ports).
pub fn port_num_or_name(errs: &mut ErrorList, path: &str, port: &IntOrString) {
    match port {
        IntOrString::Int(n) => port_num(errs, path, *n),
        IntOrString::String(s) => each(errs, path, s, names::is_valid_port_name(s)),
    }
}

/// A `metav1.LabelSelector`: valid keys, values and operators. Returns the parsed selector.
pub fn label_selector(errs: &mut ErrorList, path: &str, sel: &LabelSelector) -> Option<LabelSelectorExpr> {
    let before = errs.len();
    if let Some(labels) = &sel.match_labels {
        errs.extend(validate_labels(labels, &child(path, "matchLabels")));
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let p = index(&child(path, "matchExpressions"), i);
        qualified_name(errs, &child(&p, "key"), &e.key);
        let n = e.values.as_ref().map_or(0, Vec::len);
        match e.operator.as_str() {
            "In" | "NotIn" if n == 0 => errs.push(FieldError::required(
                child(&p, "values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if n > 0 => errs.push(FieldError::forbidden(
                child(&p, "values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(child(&p, "operator"), other, "not a valid selector operator")),
        }
    }
    if errs.len() != before {
        return None;
    }
    match LabelSelectorExpr::from_label_selector(Some(sel)) {
        Ok(s) => Some(s),
        Err(e) => {
            errs.push(FieldError::invalid(path, json(sel), e.to_string()));
            None
        }
    }
}

/// Whether a selector has no requirement at all.
pub fn selector_is_empty(sel: &LabelSelector) -> bool {
    sel.match_labels.as_ref().is_none_or(BTreeMap::is_empty) && sel.match_expressions.as_ref().is_none_or(Vec::is_empty)
}

/// The numeric part of an int-or-percent (`25%` → 25), if well formed.
pub fn int_or_percent_value(v: &IntOrString) -> Option<i32> {
    match v {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => s.strip_suffix('%').and_then(|n| n.parse().ok()),
    }
}

/// A non-negative integer or a percentage, at most 100% when `max_100`.
pub fn int_or_percent(errs: &mut ErrorList, path: &str, v: &IntOrString, max_100: bool) {
    match v {
        IntOrString::Int(n) => nonneg(errs, path, i64::from(*n)),
        IntOrString::String(s) => {
            let msgs = names::is_valid_percent(s);
            if msgs.is_empty() && max_100 && int_or_percent_value(v).is_some_and(|n| n > 100) {
                errs.push(FieldError::invalid(path, s.as_str(), "must not be greater than 100%"));
            }
            each(errs, path, s, msgs);
        }
    }
}

/// Parses a quantity, reporting it at `path` when malformed.
pub fn quantity(errs: &mut ErrorList, path: &str, q: &K8sQuantity) -> Option<Quantity> {
    match Quantity::parse(&q.0) {
        Ok(v) => Some(v),
        Err(e) => {
            errs.push(FieldError::invalid(path, q.0.as_str(), e.to_string()));
            None
        }
    }
}

/// A resource list: qualified resource names and valid, non-negative quantities.
pub fn resource_list(errs: &mut ErrorList, path: &str, list: Option<&BTreeMap<String, K8sQuantity>>) {
    for (name, q) in list.into_iter().flatten() {
        let p = key(path, name);
        qualified_name(errs, &p, name);
        if let Some(v) = quantity(errs, &p, q)
            && v.is_negative()
        {
            errs.push(FieldError::invalid(&p, q.0.as_str(), "must be greater than or equal to 0"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors() {
        let ok: LabelSelector = serde_json::from_value(json!({"matchLabels": {"a": "b"},
            "matchExpressions": [{"key": "k", "operator": "In", "values": ["v"]}]}))
        .expect("selector");
        let mut errs = ErrorList::new();
        assert!(label_selector(&mut errs, "spec.selector", &ok).is_some());
        assert!(errs.is_empty());
        let bad: LabelSelector = serde_json::from_value(json!({"matchLabels": {"a": "b c"},
            "matchExpressions": [{"key": "k", "operator": "In"}, {"key": "k", "operator": "Foo"}]}))
        .expect("selector");
        assert!(label_selector(&mut errs, "spec.selector", &bad).is_none());
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.selector.matchLabels[a]",
                "spec.selector.matchExpressions[0].values",
                "spec.selector.matchExpressions[1].operator"
            ]
        );
    }

    #[test]
    fn int_or_percents_and_resources() {
        let mut errs = ErrorList::new();
        int_or_percent(&mut errs, "a", &IntOrString::String("25%".into()), true);
        int_or_percent(&mut errs, "b", &IntOrString::String("125%".into()), true);
        int_or_percent(&mut errs, "c", &IntOrString::String("x".into()), true);
        int_or_percent(&mut errs, "d", &IntOrString::Int(-1), true);
        let mut list = BTreeMap::new();
        list.insert("cpu".to_string(), K8sQuantity("-1".into()));
        list.insert("memory".to_string(), K8sQuantity("lots".into()));
        resource_list(&mut errs, "r", Some(&list));
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["b", "c", "d", "r[cpu]", "r[memory]"]);
    }
}
