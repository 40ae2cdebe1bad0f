//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): the kind's defaulting, strategy and
//! validation hooks, and the translation of a CRD into the catalogue entries of the resource it
//! defines ([`resources_from_crd`]).
//!
//! The hooks live here rather than in `defaults`/`validation::kinds` because they share the
//! structural-schema logic of [`schema`] and the CEL rules of [`cel`] with the custom resources
//! themselves. The submodules: [`schema`] (pruning, defaulting, value validation), [`structural`]
//! and [`keywords`] (CRD-time schema checks), [`junctors`] (`allOf`/`anyOf`/`oneOf`/`not` on
//! values), [`listtype`] (`set`/`map` list uniqueness), [`objectmeta`] (metadata of custom and
//! embedded objects), [`object`] (the admission steps of one custom object), [`selectable`]
//! (`selectableFields`) and [`cel`] (`x-kubernetes-validations`).

pub mod cel;
pub mod junctors;
pub mod keywords;
pub mod listtype;
pub mod object;
pub mod objectmeta;
pub mod schema;
pub mod selectable;
pub mod structural;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceConversion, CustomResourceDefinition, CustomResourceDefinitionVersion,
};
use serde_json::Value;

use crate::catalogue::{
    self, ALL_VERBS, CustomResource, NameRule, PrinterColumn, ResourceInfo, ScalePaths, StorageRef, Subresource,
};
use crate::kinds::{Defaulting, Strategy, Validation};
use crate::validation::{ErrorList, FieldError, child, index, names};

/// Finalizer the API server puts on every CRD so its objects are deleted before it is.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The storage version of a CRD (the one version with `storage: true`).
pub fn storage_version(crd: &CustomResourceDefinition) -> Option<&str> {
    crd.spec.versions.iter().find(|v| v.storage).map(|v| v.name.as_str())
}

fn schema_of(v: &CustomResourceDefinitionVersion) -> Option<Value> {
    v.schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).and_then(|s| serde_json::to_value(s).ok())
}

/// The catalogue entries (one per served version) of the resource a CRD defines, using its
/// `spec.names`. Empty when the CRD has no storage version.
pub fn resources_from_crd(crd: &CustomResourceDefinition) -> Vec<ResourceInfo> {
    let Some(storage) = storage_version(crd) else { return Vec::new() };
    let crd_name = catalogue::leak(crd.metadata.name.as_deref().unwrap_or(""));
    let spec = &crd.spec;
    let names = &spec.names;
    let group = catalogue::leak(&spec.group);
    let kind = catalogue::leak(&names.kind);
    let plural = catalogue::leak(&names.plural);
    let singular =
        catalogue::leak(names.singular.as_deref().filter(|s| !s.is_empty()).unwrap_or(&names.kind.to_lowercase()));
    let short_names = catalogue::leak_list(names.short_names.as_deref().unwrap_or(&[]));
    let categories = catalogue::leak_list(names.categories.as_deref().unwrap_or(&[]));
    let storage_version = catalogue::leak(storage);
    let storage_api_version = catalogue::leak(&format!("{}/{storage}", spec.group));
    spec.versions
        .iter()
        .filter(|v| v.served)
        .map(|v| {
            let subs = v.subresources.as_ref();
            let mut subresources = Vec::new();
            if subs.and_then(|s| s.scale.as_ref()).is_some() {
                subresources.push(Subresource {
                    name: "scale",
                    kind: "Scale",
                    group: "autoscaling",
                    version: "v1",
                    verbs: &["get", "patch", "update"],
                });
            }
            if subs.and_then(|s| s.status.as_ref()).is_some() {
                subresources.push(Subresource {
                    name: "status",
                    kind,
                    group: "",
                    version: "",
                    verbs: &["get", "patch", "update"],
                });
            }
            let custom = CustomResource {
                crd_name,
                schema: schema_of(v),
                printer_columns: v
                    .additional_printer_columns
                    .iter()
                    .flatten()
                    .map(|c| PrinterColumn {
                        name: c.name.clone(),
                        type_: c.type_.clone(),
                        format: c.format.clone().unwrap_or_default(),
                        description: c.description.clone().unwrap_or_default(),
                        priority: c.priority.unwrap_or(0),
                        json_path: c.json_path.clone(),
                    })
                    .collect(),
                scale: subs.and_then(|s| s.scale.as_ref()).map(|s| ScalePaths {
                    spec_replicas: s.spec_replicas_path.clone(),
                    status_replicas: s.status_replicas_path.clone(),
                    label_selector: s.label_selector_path.clone(),
                }),
                served: v.served,
                storage: v.storage,
                storage_version,
            };
            ResourceInfo {
                group,
                version: catalogue::leak(&v.name),
                kind,
                plural,
                singular,
                namespaced: spec.scope == "Namespaced",
                short_names,
                categories,
                verbs: ALL_VERBS,
                subresources,
                name_rule: NameRule::Subdomain,
                field_selectors: selectable_labels(v),
                storage: StorageRef { group, resource: plural, api_version: storage_api_version },
                custom: Some(Box::leak(Box::new(custom))),
            }
        })
        .collect()
}

/// The field-selector labels of a version's `selectableFields` (each label is also the path of
/// its value), leaked like the other strings of a registered resource.
fn selectable_labels(v: &CustomResourceDefinitionVersion) -> &'static [(&'static str, &'static str)] {
    let fields = v.selectable_fields.as_deref().unwrap_or(&[]);
    if fields.is_empty() {
        return &[];
    }
    let labels: Vec<(&'static str, &'static str)> = fields
        .iter()
        .map(|f| {
            let label = catalogue::leak(selectable::label(f));
            (label, label)
        })
        .collect();
    Box::leak(labels.into_boxed_slice())
}

impl Defaulting for CustomResourceDefinition {
    fn set_defaults(&mut self) {
        let spec = &mut self.spec;
        if spec.conversion.is_none() {
            spec.conversion = Some(CustomResourceConversion { strategy: "None".into(), webhook: None });
        }
        let names = &mut spec.names;
        if names.singular.as_deref().is_none_or(str::is_empty) {
            names.singular = Some(names.kind.to_lowercase());
        }
        if names.list_kind.as_deref().is_none_or(str::is_empty) && !names.kind.is_empty() {
            names.list_kind = Some(format!("{}List", names.kind));
        }
    }
}

impl Strategy for CustomResourceDefinition {
    fn prepare_for_create(&mut self) {
        self.status = None;
        let finalizers = self.metadata.finalizers.get_or_insert_with(Vec::new);
        if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
            finalizers.push(CLEANUP_FINALIZER.to_string());
        }
    }
}

fn validate_label(field: String, value: &str, errors: &mut ErrorList) {
    if value.is_empty() {
        errors.push(FieldError::required(field, ""));
        return;
    }
    for msg in names::is_dns1123_label(value) {
        errors.push(FieldError::invalid(field.clone(), value, msg));
    }
}

fn validate_kind(field: String, value: &str, errors: &mut ErrorList) {
    if value.is_empty() {
        errors.push(FieldError::required(field, ""));
    } else if !value.chars().next().is_some_and(char::is_alphabetic)
        || !value.chars().all(|c| c.is_ascii_alphanumeric())
    {
        errors.push(FieldError::invalid(
            field,
            value,
            "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
        ));
    }
}

/// Checks one version's schema (at `path`): structural, then its CEL rules.
fn validate_schema(schema: Option<&Value>, path: &str, errors: &mut ErrorList) {
    let Some(schema) = schema else {
        errors.push(FieldError::required(path, "schemas are required"));
        return;
    };
    let structural = schema::check_structural(schema, path);
    if structural.is_empty() {
        errors.extend(cel::check_rules(schema, path));
    }
    errors.extend(structural);
}

/// Whether `e` is about the schema or selectable fields of a version that an update leaves as
/// they were. Such errors are not held against the update, so CRDs stored before a rule existed
/// can still be updated (and their finalizer removed); upstream ratchets its newer rules
/// similarly, per rule.
fn in_unchanged_schema(e: &FieldError, new: &CustomResourceDefinition, old: &CustomResourceDefinition) -> bool {
    let schemas_unchanged = new.spec.versions.len() == old.spec.versions.len()
        && new.spec.versions.iter().zip(&old.spec.versions).all(|(n, o)| n.name == o.name && n.schema == o.schema);
    if e.field.starts_with("spec.validation") {
        return schemas_unchanged;
    }
    new.spec.versions.iter().enumerate().any(|(i, v)| {
        let path = index("spec.versions", i);
        let about = |part: &str| e.field.starts_with(&child(&path, part));
        (about("schema") || about("selectableFields"))
            && old
                .spec
                .versions
                .iter()
                .any(|o| o.name == v.name && o.schema == v.schema && o.selectable_fields == v.selectable_fields)
    })
}

impl Validation for CustomResourceDefinition {
    fn validate_create(&self) -> ErrorList {
        let mut errors = ErrorList::new();
        let spec = &self.spec;
        let names = &spec.names;
        let name = self.metadata.name.as_deref().unwrap_or("");
        if spec.group.is_empty() {
            errors.push(FieldError::required("spec.group", ""));
        } else if !spec.group.contains('.') {
            errors.push(FieldError::invalid(
                "spec.group",
                spec.group.as_str(),
                "should be a domain with at least one dot",
            ));
        } else {
            for msg in names::is_dns1123_subdomain(&spec.group) {
                errors.push(FieldError::invalid("spec.group", spec.group.as_str(), msg));
            }
        }
        if name != format!("{}.{}", names.plural, spec.group) {
            errors.push(FieldError::invalid("metadata.name", name, "must be spec.names.plural+\".\"+spec.group"));
        }
        if !matches!(spec.scope.as_str(), "Cluster" | "Namespaced") {
            errors.push(FieldError::not_supported("spec.scope", spec.scope.as_str(), &["Cluster", "Namespaced"]));
        }
        validate_label("spec.names.plural".into(), &names.plural, &mut errors);
        validate_label("spec.names.singular".into(), names.singular.as_deref().unwrap_or(""), &mut errors);
        validate_kind("spec.names.kind".into(), &names.kind, &mut errors);
        validate_kind("spec.names.listKind".into(), names.list_kind.as_deref().unwrap_or(""), &mut errors);
        if names.list_kind.as_deref() == Some(names.kind.as_str()) {
            errors.push(FieldError::invalid(
                "spec.names.listKind",
                names.kind.as_str(),
                "kind and listKind may not be the same",
            ));
        }
        for (i, s) in names.short_names.iter().flatten().enumerate() {
            validate_label(index("spec.names.shortNames", i), s, &mut errors);
        }
        for (i, c) in names.categories.iter().flatten().enumerate() {
            validate_label(index("spec.names.categories", i), c, &mut errors);
        }
        if let Some(conv) = &spec.conversion
            && !matches!(conv.strategy.as_str(), "None" | "Webhook")
        {
            errors.push(FieldError::not_supported(
                "spec.conversion.strategy",
                conv.strategy.as_str(),
                &["None", "Webhook"],
            ));
        }
        if spec.versions.is_empty() {
            errors.push(FieldError::invalid(
                "spec.versions",
                Value::Null,
                "must have exactly one version marked as storage version",
            ));
        } else {
            let storage = spec.versions.iter().filter(|v| v.storage).count();
            if storage != 1 {
                errors.push(FieldError::invalid(
                    "spec.versions",
                    Value::Null,
                    "must have exactly one version marked as storage version",
                ));
            }
            if !spec.versions.iter().any(|v| v.served) {
                errors.push(FieldError::invalid("spec.versions", Value::Null, "must have at least one served version"));
            }
        }
        // As upstream's internal form: identical version schemas are validated once, as
        // `spec.validation`.
        let schemas: Vec<Option<Value>> = spec.versions.iter().map(schema_of).collect();
        let shared = schemas.first().is_some_and(Option::is_some) && schemas.windows(2).all(|w| w[0] == w[1]);
        if shared {
            validate_schema(schemas[0].as_ref(), "spec.validation.openAPIV3Schema", &mut errors);
        }
        let mut seen = Vec::new();
        for (i, v) in spec.versions.iter().enumerate() {
            let path = index("spec.versions", i);
            validate_label(child(&path, "name"), &v.name, &mut errors);
            if seen.contains(&v.name.as_str()) {
                errors.push(FieldError::duplicate(child(&path, "name"), v.name.as_str()));
            }
            seen.push(v.name.as_str());
            if !shared {
                let schema_path = child(&child(&path, "schema"), "openAPIV3Schema");
                validate_schema(schemas[i].as_ref(), &schema_path, &mut errors);
            }
            errors.extend(selectable::validate(
                v.selectable_fields.as_deref().unwrap_or(&[]),
                schemas[i].as_ref(),
                &child(&path, "selectableFields"),
            ));
            if let Some(scale) = v.subresources.as_ref().and_then(|s| s.scale.as_ref()) {
                let sp = child(&child(&path, "subresources"), "scale");
                if !scale.spec_replicas_path.starts_with(".spec.") {
                    errors.push(FieldError::invalid(
                        child(&sp, "specReplicasPath"),
                        scale.spec_replicas_path.as_str(),
                        "should be a json path under .spec",
                    ));
                }
                if !scale.status_replicas_path.starts_with(".status.") {
                    errors.push(FieldError::invalid(
                        child(&sp, "statusReplicasPath"),
                        scale.status_replicas_path.as_str(),
                        "should be a json path under .status",
                    ));
                }
            }
            for (j, c) in v.additional_printer_columns.iter().flatten().enumerate() {
                let cp = index(&child(&path, "additionalPrinterColumns"), j);
                if c.name.is_empty() {
                    errors.push(FieldError::required(child(&cp, "name"), ""));
                }
                if !matches!(c.type_.as_str(), "integer" | "number" | "string" | "boolean" | "date") {
                    errors.push(FieldError::not_supported(
                        child(&cp, "type"),
                        c.type_.as_str(),
                        &["integer", "number", "string", "boolean", "date"],
                    ));
                }
                if c.json_path.is_empty() {
                    errors.push(FieldError::required(child(&cp, "JSONPath"), ""));
                }
            }
        }
        errors
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errors = self.validate_create();
        errors.retain(|e| !in_unchanged_schema(e, self, old));
        if self.spec.scope != old.spec.scope {
            errors.push(FieldError::invalid("spec.scope", self.spec.scope.as_str(), "field is immutable"));
        }
        if self.spec.group != old.spec.group {
            errors.push(FieldError::invalid("spec.group", self.spec.group.as_str(), "field is immutable"));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn crd(v: Value) -> CustomResourceDefinition {
        let mut c: CustomResourceDefinition = serde_json::from_value(v).expect("crd");
        c.set_defaults();
        c
    }

    fn widgets() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]},
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
                ]}
        })
    }

    #[test]
    fn a_valid_crd_defaults_and_validates() {
        let c = crd(widgets());
        assert_eq!(c.spec.names.singular.as_deref(), Some("widget"));
        assert_eq!(c.spec.names.list_kind.as_deref(), Some("WidgetList"));
        assert_eq!(c.spec.conversion.as_ref().map(|c| c.strategy.as_str()), Some("None"));
        assert!(c.validate_create().is_empty(), "{:?}", c.validate_create());
    }

    #[test]
    fn invalid_crds_name_the_field() {
        let mut v = widgets();
        v["metadata"]["name"] = json!("gadgets.example.com");
        v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] = json!({"properties": {}});
        v["spec"]["versions"][1]["storage"] = json!(true);
        let errs: Vec<String> = crd(v).validate_create().iter().map(|e| e.field.clone()).collect();
        assert!(errs.contains(&"metadata.name".to_string()), "{errs:?}");
        assert!(errs.contains(&"spec.versions".to_string()), "{errs:?}");
        assert!(
            errs.contains(&"spec.versions[0].schema.openAPIV3Schema.properties[spec].type".to_string()),
            "{errs:?}"
        );
        let mut nodot = widgets();
        nodot["spec"]["group"] = json!("example");
        nodot["metadata"]["name"] = json!("widgets.example");
        let errs = crd(nodot).validate_create();
        assert_eq!(
            errs[0].to_string(),
            "spec.group: Invalid value: \"example\": should be a domain with at least one dot"
        );
    }

    #[test]
    fn identical_schemas_are_validated_once_as_spec_validation() {
        let mut v = widgets();
        v["spec"]["versions"] = json!([{"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"properties": {}}}}}}]);
        let errs: Vec<String> = crd(v).validate_create().iter().map(|e| e.field.clone()).collect();
        assert_eq!(errs, vec!["spec.validation.openAPIV3Schema.properties[spec].type"]);
    }

    #[test]
    fn broken_cel_rules_reject_the_crd() {
        let mut v = widgets();
        v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
            json!([{"rule": "self.replicas >"}, {"rule": "self.replicas >= 0"}]);
        let errs = crd(v.clone()).validate_create();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert_eq!(
            errs[0].field,
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
        );
        assert!(errs[0].to_string().contains("compilation failed: ERROR: <input>:1:16: Syntax error"), "{}", errs[0]);
        v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["x-kubernetes-validations"] =
            json!([{"rule": "self.replicas >= 0"}]);
        assert!(crd(v).validate_create().is_empty());
    }

    #[test]
    fn selectable_fields_are_validated_and_served_as_field_labels() {
        let mut v = widgets();
        v["spec"]["versions"][0]["selectableFields"] = json!([{"jsonPath": ".spec.replicas"}]);
        let c = crd(v.clone());
        assert!(c.validate_create().is_empty(), "{:?}", c.validate_create());
        let rs = resources_from_crd(&c);
        assert_eq!(rs[0].field_path("spec.replicas"), Some("spec.replicas"));
        assert_eq!(rs[0].field_path("metadata.namespace"), Some("metadata.namespace"));
        assert_eq!(rs[1].field_path("spec.replicas"), None, "selectable fields are per version");
        v["spec"]["versions"][0]["selectableFields"] = json!([{"jsonPath": ".spec.nope"}]);
        let errs = crd(v).validate_create();
        assert_eq!(
            errs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec![
                "spec.versions[0].selectableFields[0].jsonPath: Invalid value: \".spec.nope\": is an invalid path: does not refer to a valid field"
            ]
        );
        let mut cluster = widgets();
        cluster["spec"]["scope"] = json!("Cluster");
        let rs = resources_from_crd(&crd(cluster));
        assert_eq!(rs[0].field_path("metadata.namespace"), None, "cluster-scoped custom resources have no namespace");
    }

    #[test]
    fn updates_keep_schemas_stored_before_a_rule_existed() {
        let mut v = widgets();
        v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["tags"] =
            json!({"type": "array", "uniqueItems": true, "items": {"type": "string"}});
        let old = crd(v.clone());
        assert_eq!(old.validate_create().len(), 1, "uniqueItems is refused on create");
        let mut relabelled = old.clone();
        relabelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert!(relabelled.validate_update(&old).is_empty(), "{:?}", relabelled.validate_update(&old));
        v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["n"] =
            json!({"type": "integer"});
        assert_eq!(crd(v).validate_update(&old).len(), 1, "a changed schema must follow the rules");
    }

    #[test]
    fn resources_cover_served_versions_and_share_storage() {
        let rs = resources_from_crd(&crd(widgets()));
        assert_eq!(rs.len(), 2);
        let v1 = &rs[0];
        assert_eq!(
            (v1.group, v1.version, v1.plural, v1.kind, v1.singular),
            ("example.com", "v1", "widgets", "Widget", "widget")
        );
        assert_eq!(v1.key(Some("ns"), "a"), "/registry/example.com/widgets/ns/a");
        assert!(v1.has_status() && v1.subresource("scale").is_some());
        assert!(!v1.is_view());
        assert!(rs[1].is_view());
        assert_eq!(rs[1].key_prefix(), v1.key_prefix());
        let custom = v1.custom.expect("custom");
        assert_eq!(custom.printer_columns[0].json_path, ".spec.replicas");
        assert_eq!(custom.scale.as_ref().map(|s| s.spec_replicas.as_str()), Some(".spec.replicas"));
        assert_eq!(custom.storage_version, "v1");
    }

    #[test]
    fn the_registry_serves_and_forgets_custom_resources() {
        let mut v = widgets();
        v["metadata"]["name"] = json!("things.registry.test");
        v["spec"]["group"] = json!("registry.test");
        v["spec"]["names"] = json!({"plural": "things", "kind": "Thing"});
        let rs = resources_from_crd(&crd(v));
        let before = catalogue::generation();
        catalogue::register_custom("things.registry.test", rs.clone());
        assert!(catalogue::generation() > before);
        let g = catalogue::generation();
        catalogue::register_custom("things.registry.test", rs);
        assert_eq!(catalogue::generation(), g, "identical re-registration is a no-op");
        assert!(catalogue::find("registry.test", "v1beta1", "things").is_some());
        assert!(catalogue::find_kind("registry.test", "v1", "Thing").is_some());
        assert_eq!(catalogue::find_custom_storage("registry.test", "Thing").map(|r| r.version), Some("v1"));
        assert!(catalogue::all().iter().any(|r| r.plural == "things"));
        assert!(catalogue::find("apiextensions.k8s.io", "v1", "customresourcedefinitions").is_some());
        catalogue::unregister_custom("things.registry.test");
        assert!(catalogue::find("registry.test", "v1", "things").is_none());
    }
}
