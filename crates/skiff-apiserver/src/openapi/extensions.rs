//! Upstream's list, map, patch and union vendor extensions on the built-in definitions:
//! `x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`,
//! `x-kubernetes-patch-strategy`, `x-kubernetes-patch-merge-key` on struct fields and
//! `x-kubernetes-map-type` (`+structType=atomic`) and `x-kubernetes-unions` on struct types.
//!
//! Everything comes from the generated strategic-merge table ([`crate::strategic::table_facts`]),
//! mapped the way kube-openapi's generator maps the Go markers and tags: only what the Go source
//! says is published, nothing defaulted. Definitions k8s-openapi does not have (types newer than
//! its Kubernetes version) are skipped. Custom resources are not touched here: their extensions
//! come from their CRD schema (see [`super::crd`]).

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::strategic::{TableFact, table_facts};

/// Extensions of one definition (`field: None`) or of one of its properties.
#[derive(Debug)]
struct Entry {
    definition: String,
    field: Option<&'static str>,
    extensions: Map<String, Value>,
}

static ENTRIES: LazyLock<Vec<Entry>> = LazyLock::new(|| table_facts().filter_map(entry).collect());

/// The OpenAPI definition name of a type as the strategic table names it
/// (`core.v1.PodSpec` → `io.k8s.api.core.v1.PodSpec`).
pub fn definition_name(type_name: &str) -> String {
    if let Some(rest) = type_name.strip_prefix("meta.") {
        format!("io.k8s.apimachinery.pkg.apis.meta.{rest}")
    } else if let Some(rest) = type_name.strip_prefix("apiextensions.") {
        format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{rest}")
    } else {
        format!("io.k8s.api.{type_name}")
    }
}

fn entry(fact: TableFact) -> Option<Entry> {
    let mut extensions = Map::new();
    let (type_name, field) = match fact {
        TableFact::Field { type_name, field, strategy, merge_key, markers } => {
            if !strategy.is_empty() {
                extensions.insert("x-kubernetes-patch-strategy".into(), strategy.into());
            }
            if !merge_key.is_empty() {
                extensions.insert("x-kubernetes-patch-merge-key".into(), merge_key.into());
            }
            for (key, value) in markers {
                let (name, value) = match key {
                    "listType" => ("x-kubernetes-list-type", Value::from(value)),
                    "listMapKey" => ("x-kubernetes-list-map-keys", value.split(',').collect::<Vec<_>>().into()),
                    "mapType" | "structType" => ("x-kubernetes-map-type", Value::from(value)),
                    _ => continue,
                };
                extensions.insert(name.into(), value);
            }
            (type_name, Some(field))
        }
        TableFact::AtomicStruct { type_name } => {
            extensions.insert("x-kubernetes-map-type".into(), "atomic".into());
            (type_name, None)
        }
        TableFact::Union { type_name, discriminator, members } => {
            let fields: Map<String, Value> =
                members.iter().map(|(json, go)| (json.to_string(), (*go).into())).collect();
            let mut union = Map::new();
            if let Some(d) = discriminator {
                union.insert("discriminator".into(), d.into());
            }
            union.insert("fields-to-discriminateBy".into(), Value::Object(fields));
            extensions.insert("x-kubernetes-unions".into(), json!([union]));
            (type_name, None)
        }
    };
    (!extensions.is_empty()).then(|| Entry { definition: definition_name(type_name), field, extensions })
}

/// Adds the extensions to every definition of `schemas` (OpenAPI 3.0 `components.schemas` of
/// built-in types) that the table describes.
pub fn apply(schemas: &mut Map<String, Value>) {
    for e in ENTRIES.iter() {
        let Some(definition) = schemas.get_mut(&e.definition) else { continue };
        let target = match e.field {
            None => Some(definition),
            Some(field) => definition.get_mut("properties").and_then(|p| p.get_mut(field)),
        };
        if let Some(Value::Object(target)) = target {
            target.extend(e.extensions.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_map_to_upstream_definition_names() {
        assert_eq!(definition_name("core.v1.PodSpec"), "io.k8s.api.core.v1.PodSpec");
        assert_eq!(definition_name("meta.v1.ObjectMeta"), "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
        assert_eq!(
            definition_name("apiextensions.v1.CustomResourceDefinitionSpec"),
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionSpec"
        );
    }

    #[test]
    fn fields_and_types_get_the_extensions_of_their_markers_and_tags() {
        let mut schemas = Map::new();
        schemas.insert(
            "io.k8s.api.core.v1.Container".into(),
            json!({"type": "object", "properties": {"ports": {"type": "array"}, "args": {"type": "array"}, "image": {"type": "string"}}}),
        );
        schemas.insert("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector".into(), json!({"type": "object"}));
        schemas.insert("io.k8s.api.core.v1.SeccompProfile".into(), json!({"type": "object"}));
        apply(&mut schemas);
        let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(
            *ports,
            json!({
                "type": "array",
                "x-kubernetes-list-map-keys": ["containerPort", "protocol"],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": "containerPort",
                "x-kubernetes-patch-strategy": "merge",
            })
        );
        let args = &schemas["io.k8s.api.core.v1.Container"]["properties"]["args"];
        assert_eq!(*args, json!({"type": "array", "x-kubernetes-list-type": "atomic"}));
        assert_eq!(schemas["io.k8s.api.core.v1.Container"]["properties"]["image"], json!({"type": "string"}));
        assert_eq!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"], "atomic");
        assert_eq!(
            schemas["io.k8s.api.core.v1.SeccompProfile"]["x-kubernetes-unions"],
            json!([{"discriminator": "type", "fields-to-discriminateBy": {"localhostProfile": "LocalhostProfile"}}])
        );
    }
}
