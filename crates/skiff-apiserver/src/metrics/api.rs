//! The `metrics.k8s.io/v1beta1` resources as metrics-server serves them: `nodes` (NodeMetrics,
//! cluster-scoped) and `pods` (PodMetrics, namespaced), `get` and `list` only. Objects are made
//! per request from the Nodes and Pods in the API server's caches (label and field selectors
//! apply to them) and the usage in [`super::storage`]; a node or pod without usage yet is left
//! out of lists, and a `get` of one answers 404 `nodemetrics.metrics.k8s.io "<name>"` /
//! `podmetrics.metrics.k8s.io "<ns>/<name>" not found`, while an unknown Node or Pod answers
//! `nodes "<name>"` / `pods "<name>" not found`, as metrics-server's listers do. Responses are
//! JSON, or a `meta.k8s.io/v1` Table with metrics-server's columns when asked for one; a request
//! that prefers protobuf gets JSON, as from metrics-server.
//!
//! What does not live here: scraping ([`super::scraper`]), rates ([`super::storage`]).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use http::Response;
use serde_json::{Map, Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue;
use skiff_api::selector::{FieldSelectorExpr, LabelSelectorExpr};
use skiff_api::status::GroupResource;

use super::format;
use super::storage::{Storage, Usage};
use crate::negotiate::{self, Shape};
use crate::query::Query;
use crate::reqinfo::{ResourceRequest, Verb};
use crate::response;
use crate::state::ApiState;

/// The group served here.
pub const GROUP: &str = "metrics.k8s.io";
/// Its version.
pub const VERSION: &str = "v1beta1";
const API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// Whether `req` addresses a `metrics.k8s.io` resource.
pub fn is_metrics(req: &ResourceRequest) -> bool {
    req.group == GROUP
}

/// A Node or Pod from the caches, as the objects need it.
struct Source {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
}

fn sources(state: &ApiState, plural: &str, namespace: Option<&str>) -> Result<Vec<Source>, StatusError> {
    let info = catalogue::find("", "v1", plural)
        .ok_or_else(|| StatusError::internal(format!("the {plural} resource is not served")))?;
    let cache = state
        .caches
        .cache(&info.key_prefix())
        .ok_or_else(|| StatusError::internal(format!("no cache for {plural}")))?;
    let snapshot = cache.snapshot();
    Ok(snapshot
        .objects
        .values()
        .filter(|e| namespace.is_none_or(|ns| e.namespace == ns))
        .map(|e| Source { namespace: e.namespace.clone(), name: e.name.clone(), labels: e.labels.clone() })
        .collect())
}

fn selected(source: &Source, labels: &LabelSelectorExpr, fields: &FieldSelectorExpr) -> bool {
    labels.matches(&source.labels)
        && fields.matches(|f| match f {
            "metadata.name" => Some(source.name.clone()),
            "metadata.namespace" => Some(source.namespace.clone()),
            _ => None,
        })
}

fn metadata(source: &Source, now: &str) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(source.name));
    if !source.namespace.is_empty() {
        m.insert("namespace".into(), json!(source.namespace));
    }
    m.insert("creationTimestamp".into(), json!(now));
    if !source.labels.is_empty() {
        m.insert("labels".into(), json!(source.labels));
    }
    Value::Object(m)
}

fn usage_json(cpu_nanocores: u64, memory_bytes: u64) -> Value {
    json!({"cpu": format::cpu(cpu_nanocores), "memory": format::memory(memory_bytes)})
}

fn node_object(source: &Source, usage: &Usage, now: &str) -> Value {
    json!({
        "metadata": metadata(source, now),
        "timestamp": format::timestamp(usage.timestamp_ns),
        "window": format::go_duration(usage.window),
        "usage": usage_json(usage.cpu_nanocores, usage.memory_bytes),
    })
}

fn pod_object(source: &Source, containers: &BTreeMap<String, Usage>, ts: i64, window: Duration, now: &str) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, u)| json!({"name": name, "usage": usage_json(u.cpu_nanocores, u.memory_bytes)}))
        .collect();
    json!({
        "metadata": metadata(source, now),
        "timestamp": format::timestamp(ts),
        "window": format::go_duration(window),
        "containers": containers,
    })
}

fn with_kind(mut object: Value, kind: &str) -> Value {
    let mut out = Map::new();
    out.insert("kind".into(), json!(kind));
    out.insert("apiVersion".into(), json!(API_VERSION));
    if let Value::Object(fields) = object.take() {
        out.extend(fields);
    }
    Value::Object(out)
}

/// Serves a `metrics.k8s.io` request from `storage`.
pub fn handle(
    state: &ApiState,
    storage: &Storage,
    req: &ResourceRequest,
    query: &str,
    accept: Option<&str>,
) -> Response<Body> {
    match serve(state, storage, req, query, accept) {
        Ok(resp) => resp,
        Err(e) => response::status(&e),
    }
}

fn serve(
    state: &ApiState,
    storage: &Storage,
    req: &ResourceRequest,
    query: &str,
    accept: Option<&str>,
) -> Result<Response<Body>, StatusError> {
    let (kind, list_kind, metrics_resource, source_resource) = match req.resource.as_str() {
        "nodes" => ("NodeMetrics", "NodeMetricsList", "nodemetrics", "nodes"),
        "pods" => ("PodMetrics", "PodMetricsList", "podmetrics", "pods"),
        _ => return Err(StatusError::not_found_message("the server could not find the requested resource")),
    };
    let gr = GroupResource::new(GROUP, metrics_resource);
    if req.version != VERSION || req.subresource.is_some() {
        return Err(StatusError::not_found_message("the server could not find the requested resource"));
    }
    if !matches!(req.verb, Verb::Get | Verb::List) {
        return Err(StatusError::method_not_supported(
            &GroupResource::new(GROUP, req.resource.as_str()),
            req.verb.as_str(),
        ));
    }
    let now = format::timestamp(jiff::Timestamp::now().as_nanosecond() as i64);
    let namespace = if source_resource == "pods" { req.namespace.as_deref() } else { None };
    let all = sources(state, source_resource, namespace)?;
    let object_for = |source: &Source| -> Option<Value> {
        if source_resource == "nodes" {
            storage.node(&source.name).map(|u| node_object(source, &u, &now))
        } else {
            let key = (source.namespace.clone(), source.name.clone());
            storage.pod(&key).map(|(containers, ts, window)| pod_object(source, &containers, ts, window, &now))
        }
    };
    let table = negotiate::shape(accept) == Shape::Table;
    if let Some(name) = req.name.as_deref() {
        let Some(source) = all.iter().find(|s| s.name == name) else {
            return Err(StatusError::not_found(&GroupResource::new("", source_resource), name));
        };
        let Some(object) = object_for(source) else {
            let shown = match namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_string(),
            };
            return Err(StatusError::not_found(&gr, &shown));
        };
        let object = with_kind(object, kind);
        return Ok(response::json(200, &if table { table_of(&[object], source_resource) } else { object }));
    }
    let q = Query::parse(query);
    let (labels, fields) = (q.label_selector()?, q.field_selector()?);
    let mut selected_sources: Vec<&Source> = all.iter().filter(|s| selected(s, &labels, &fields)).collect();
    selected_sources.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let items: Vec<Value> = selected_sources.into_iter().filter_map(object_for).collect();
    if table {
        let items: Vec<Value> = items.into_iter().map(|o| with_kind(o, kind)).collect();
        return Ok(response::json(200, &table_of(&items, source_resource)));
    }
    Ok(response::json(200, &json!({"kind": list_kind, "apiVersion": API_VERSION, "metadata": {}, "items": items})))
}

/// metrics-server's Table: Name, the resources (sorted), Window; pods sum their containers.
fn table_of(objects: &[Value], source_resource: &str) -> Value {
    let mut rows = Vec::new();
    for object in objects {
        let (cpu, memory) = if source_resource == "nodes" {
            let usage = &object["usage"];
            (usage["cpu"].as_str().unwrap_or("0").to_string(), usage["memory"].as_str().unwrap_or("0").to_string())
        } else {
            let sum = |resource: &str, binary: bool| {
                let total = object["containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["usage"][resource].as_str())
                    .filter_map(|q| skiff_api::quantity::Quantity::parse(q).ok())
                    .fold(skiff_api::quantity::Quantity::from_units(0), |a, b| a.add(b));
                let format =
                    if binary { skiff_api::quantity::Format::BinarySi } else { skiff_api::quantity::Format::DecimalSi };
                total.canonical(format)
            };
            (sum("cpu", false), sum("memory", true))
        };
        rows.push(json!({
            "cells": [object["metadata"]["name"], cpu, memory, object["window"]],
            "object": object,
        }));
    }
    let columns = if rows.is_empty() {
        Value::Null
    } else {
        json!([
            {"name": "Name", "type": "string", "format": "name", "description": "Name of the resource", "priority": 0},
            {"name": "cpu", "type": "string", "format": "quantity", "description": "", "priority": 0},
            {"name": "memory", "type": "string", "format": "quantity", "description": "", "priority": 0},
            {"name": "Window", "type": "string", "format": "duration", "description": "", "priority": 0},
        ])
    };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_objects_and_tables_have_metrics_server_shape() {
        let source = Source {
            namespace: "default".into(),
            name: "p".into(),
            labels: BTreeMap::from([("app".to_string(), "x".to_string())]),
        };
        let u = |cpu, memory| Usage {
            cpu_nanocores: cpu,
            memory_bytes: memory,
            timestamp_ns: 1_700_000_000_000_000_000,
            window: Duration::from_millis(15_002),
        };
        let containers =
            BTreeMap::from([("a".to_string(), u(250_000_000, 2048)), ("b".to_string(), u(50_000_000, 1024))]);
        let object = with_kind(
            pod_object(&source, &containers, 1_700_000_000_000_000_000, Duration::from_millis(15_002), "now"),
            "PodMetrics",
        );
        assert_eq!(object["kind"], "PodMetrics");
        assert_eq!(object["apiVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(object["metadata"]["namespace"], "default");
        assert_eq!(object["metadata"]["labels"]["app"], "x");
        assert_eq!(object["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(object["window"], "15.002s");
        assert_eq!(object["containers"][0], json!({"name": "a", "usage": {"cpu": "250m", "memory": "2Ki"}}));
        let table = table_of(&[object], "pods");
        assert_eq!(table["rows"][0]["cells"], json!(["p", "300m", "3Ki", "15.002s"]));
        assert_eq!(table["columnDefinitions"][1]["name"], "cpu");
        assert!(table_of(&[], "pods")["columnDefinitions"].is_null());
    }

    #[test]
    fn selectors_apply_to_the_source_objects() {
        let source = Source { namespace: "ns".into(), name: "n1".into(), labels: BTreeMap::new() };
        let everything = LabelSelectorExpr::everything();
        let by_name = FieldSelectorExpr::parse("metadata.name=n1").expect("selector");
        let other = FieldSelectorExpr::parse("metadata.name=n2").expect("selector");
        assert!(selected(&source, &everything, &by_name));
        assert!(!selected(&source, &everything, &other));
        let labelled = LabelSelectorExpr::parse("app=x").expect("selector");
        assert!(!selected(&source, &labelled, &by_name));
    }
}
