//! The published schema of a custom resource version, as apiextensions-apiserver's OpenAPI
//! builder publishes it: the CRD's structural `openAPIV3Schema` plus `apiVersion`, `kind` and a
//! `metadata` reference to `ObjectMeta`, also inside `x-kubernetes-embedded-resource` values.
//!
//! For `/openapi/v2` the schema first goes through upstream's Swagger 2.0 conversion, which
//! drops what swagger 2.0 (and kubectl's v2 model parser) cannot express: the junctors
//! `allOf`/`anyOf`/`oneOf`/`not`; `nullable` values lose their type, properties and items and
//! stop being required; values preserving unknown fields lose their properties and items and, if
//! objects, their type; arrays left without items lose their type; every `default` is pruned.
//! A root that preserves unknown fields is published as a bare `type: object`, so kubectl's
//! client-side validation accepts any field.
//!
//! The group-version-kind tag and the definition's name are the caller's business
//! ([`super::schemas::Components`]). Nothing here validates the schema: the CRD hooks did.

use serde_json::{Map, Value, json};

use super::schemas::{Flavor, OBJECT_META};

/// Keys of a JSON schema node that upstream's structural schema keeps (everything else, such as
/// `example`, `id` or `$schema`, is not published).
const STRUCTURAL_KEYS: &[&str] = &[
    "type",
    "description",
    "title",
    "default",
    "nullable",
    "externalDocs",
    "format",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "properties",
    "items",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Description of the `metadata` property of a published custom resource.
const METADATA_DESCRIPTION: &str = "Standard object's metadata.";
/// Description of the `apiVersion` property of a published custom resource.
const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object.";
/// Description of the `kind` property of a published custom resource.
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents.";

/// The published schema of a custom resource version whose CRD gives `schema` (its
/// `openAPIV3Schema`, if any), in `flavor`'s form and with `flavor`'s references.
pub fn published(schema: Option<&Value>, flavor: Flavor) -> Value {
    let Some(Value::Object(root)) = schema else {
        return json!({"type": "object"});
    };
    if flavor == Flavor::V2 && flag(root, "x-kubernetes-preserve-unknown-fields") {
        return json!({"type": "object"});
    }
    let mut root = root.clone();
    each_node(&mut root, &mut |node| structural(node, flavor));
    add_kube_native(&mut root, flavor);
    each_node(&mut root, &mut |node| embed(node, flavor));
    Value::Object(root)
}

fn flag(node: &Map<String, Value>, name: &str) -> bool {
    node.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Calls `f` on `node`, then on every schema below it that is still there afterwards
/// (properties, items, additionalProperties, junctors).
fn each_node(node: &mut Map<String, Value>, f: &mut impl FnMut(&mut Map<String, Value>)) {
    f(node);
    for (key, value) in node.iter_mut() {
        match (key.as_str(), value) {
            ("properties", Value::Object(props)) => {
                props.values_mut().filter_map(Value::as_object_mut).for_each(|p| each_node(p, f));
            }
            ("items" | "additionalProperties" | "not", Value::Object(child)) => each_node(child, f),
            ("allOf" | "anyOf" | "oneOf", Value::Array(parts)) => {
                parts.iter_mut().filter_map(Value::as_object_mut).for_each(|p| each_node(p, f));
            }
            _ => {}
        }
    }
}

/// One node of the structural schema, in `flavor`'s form.
fn structural(node: &mut Map<String, Value>, flavor: Flavor) {
    node.retain(|k, _| STRUCTURAL_KEYS.contains(&k.as_str()));
    if node.get("nullable") == Some(&Value::Bool(false)) {
        node.remove("nullable");
    }
    match flavor {
        Flavor::V3 => unfold_int_or_string(node),
        Flavor::V2 => to_v2(node),
    }
}

/// Upstream publishes `x-kubernetes-int-or-string` values with the `anyOf` it implies.
fn unfold_int_or_string(node: &mut Map<String, Value>) {
    if flag(node, "x-kubernetes-int-or-string") && !node.contains_key("anyOf") && !node.contains_key("allOf") {
        node.insert("anyOf".into(), json!([{"type": "integer"}, {"type": "string"}]));
    }
}

/// Upstream's Swagger 2.0 conversion of one structural node (see the module docs). Runs before
/// the node's children are visited, so their `nullable` is still there to be read.
fn to_v2(node: &mut Map<String, Value>) {
    for junctor in ["allOf", "anyOf", "oneOf", "not"] {
        node.remove(junctor);
    }
    node.remove("default");
    if node.remove("nullable") == Some(Value::Bool(true)) {
        for key in ["type", "items", "properties"] {
            node.remove(key);
        }
    }
    let preserve = flag(node, "x-kubernetes-preserve-unknown-fields");
    if preserve {
        node.remove("items");
        node.remove("properties");
    }
    let ty = node.get("type").and_then(Value::as_str);
    if (ty == Some("array") && !node.contains_key("items")) || (preserve && ty == Some("object")) {
        node.remove("type");
    }
    let nullable = |s: &Value| s.get("nullable") == Some(&Value::Bool(true));
    let nullable_props: Vec<String> = match node.get("properties") {
        Some(Value::Object(props)) => props.iter().filter(|(_, s)| nullable(s)).map(|(k, _)| k.clone()).collect(),
        _ => Vec::new(),
    };
    let nullable_values = node.get("additionalProperties").is_some_and(nullable);
    if let Some(Value::Array(required)) = node.get_mut("required") {
        required.retain(|r| !nullable_values && !r.as_str().is_some_and(|r| nullable_props.iter().any(|p| p == r)));
        if required.is_empty() {
            node.remove("required");
        }
    }
}

/// A described reference to `ObjectMeta` in `flavor`'s form.
fn metadata_ref(flavor: Flavor) -> Value {
    let target = format!("{}{OBJECT_META}", flavor.ref_prefix());
    match flavor {
        Flavor::V3 => json!({"allOf": [{"$ref": target}], "description": METADATA_DESCRIPTION}),
        Flavor::V2 => json!({"$ref": target, "description": METADATA_DESCRIPTION}),
    }
}

/// Sets `apiVersion`, `kind` and `metadata` in `node`'s properties.
fn add_kube_native(node: &mut Map<String, Value>, flavor: Flavor) {
    let props = node.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(props) = props {
        props.insert("apiVersion".into(), json!({"type": "string", "description": API_VERSION_DESCRIPTION}));
        props.insert("kind".into(), json!({"type": "string", "description": KIND_DESCRIPTION}));
        props.insert("metadata".into(), metadata_ref(flavor));
    }
}

/// Gives an `x-kubernetes-embedded-resource` value `apiVersion`, `kind` and `metadata`, and
/// requires the first two (not in v2 where the value preserves unknown fields: kubectl would
/// then reject every other field).
fn embed(node: &mut Map<String, Value>, flavor: Flavor) {
    if !flag(node, "x-kubernetes-embedded-resource")
        || (flavor == Flavor::V2 && flag(node, "x-kubernetes-preserve-unknown-fields"))
    {
        return;
    }
    add_kube_native(node, flavor);
    let required = node.entry("required").or_insert_with(|| json!([]));
    if let Value::Array(required) = required {
        for name in ["kind", "apiVersion"] {
            if !required.iter().any(|r| r == name) {
                required.push(name.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_meta() -> Value {
        json!({"$ref": format!("#/definitions/{OBJECT_META}"), "description": METADATA_DESCRIPTION})
    }

    #[test]
    fn v2_drops_what_swagger_cannot_express() {
        let schema = json!({
            "type": "object",
            "example": {"spec": {}},
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["replicas", "note"],
                    "properties": {
                        "replicas": {"type": "integer", "minimum": 0, "default": 1},
                        "note": {"type": "string", "nullable": true},
                        "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                        "either": {"type": "string", "oneOf": [{"pattern": "^a"}, {"pattern": "^b"}], "not": {"enum": ["c"]}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}},
                        "raw": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    },
                },
            },
        });
        let v2 = published(Some(&schema), Flavor::V2);
        assert!(v2.get("example").is_none());
        let spec = &v2["properties"]["spec"];
        // A nullable field is neither typed nor required any more.
        assert_eq!(spec["required"], json!(["replicas"]));
        assert_eq!(spec["properties"]["note"], json!({}));
        assert_eq!(spec["properties"]["replicas"], json!({"type": "integer", "minimum": 0}));
        assert_eq!(spec["properties"]["port"], json!({"x-kubernetes-int-or-string": true}));
        assert_eq!(spec["properties"]["either"], json!({"type": "string"}));
        assert_eq!(spec["properties"]["free"], json!({"x-kubernetes-preserve-unknown-fields": true}));
        assert_eq!(spec["properties"]["raw"], json!({"x-kubernetes-preserve-unknown-fields": true}));
        assert_eq!(spec["properties"]["tags"]["x-kubernetes-list-type"], "set");
        assert_eq!(v2["properties"]["metadata"], v2_meta());
        assert_eq!(v2["properties"]["apiVersion"]["type"], "string");
        assert_eq!(v2["properties"]["kind"]["type"], "string");
    }

    #[test]
    fn v2_root_preserving_unknown_fields_is_a_bare_object() {
        let schema = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"spec": {"type": "object"}}});
        assert_eq!(published(Some(&schema), Flavor::V2), json!({"type": "object"}));
        assert_eq!(published(None, Flavor::V3), json!({"type": "object"}));
        // v3 keeps the schema as it is.
        let v3 = published(Some(&schema), Flavor::V3);
        assert_eq!(v3["properties"]["spec"], json!({"type": "object"}));
        assert_eq!(v3["properties"]["metadata"]["allOf"][0]["$ref"], format!("#/components/schemas/{OBJECT_META}"));
    }

    #[test]
    fn v3_keeps_nullable_and_unfolds_int_or_string() {
        let schema = json!({"type": "object", "properties": {
            "a": {"type": "string", "nullable": true, "default": "x"},
            "b": {"x-kubernetes-int-or-string": true},
            "c": {"type": "string", "nullable": false},
        }});
        let v3 = published(Some(&schema), Flavor::V3);
        assert_eq!(v3["properties"]["a"], json!({"type": "string", "nullable": true, "default": "x"}));
        assert_eq!(
            v3["properties"]["b"],
            json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]})
        );
        assert_eq!(v3["properties"]["c"], json!({"type": "string"}));
    }

    #[test]
    fn embedded_resources_get_type_and_object_meta() {
        let schema = json!({"type": "object", "properties": {
            "template": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {"spec": {"type": "object"}}},
            "loose": {"type": "object", "x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true},
        }});
        let v2 = published(Some(&schema), Flavor::V2);
        let template = &v2["properties"]["template"];
        assert_eq!(template["required"], json!(["kind", "apiVersion"]));
        assert_eq!(template["properties"]["metadata"], v2_meta());
        assert_eq!(template["properties"]["spec"], json!({"type": "object"}));
        // In v2 a value preserving unknown fields gets nothing: kubectl would reject the rest.
        assert_eq!(
            v2["properties"]["loose"],
            json!({"x-kubernetes-embedded-resource": true, "x-kubernetes-preserve-unknown-fields": true})
        );
        let v3 = published(Some(&schema), Flavor::V3);
        assert_eq!(v3["properties"]["loose"]["required"], json!(["kind", "apiVersion"]));
    }
}
