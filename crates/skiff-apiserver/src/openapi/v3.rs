//! `/openapi/v3` documents: one per served group-version (`api/v1`, `apis/apps/v1`), plus the
//! small discovery documents `api`, `apis` and `apis/{group}`.
//!
//! What clients rely on:
//! - kubectl 1.32 (`--validate=strict`) sends `?fieldValidation=Strict` when some PATCH
//!   operation of the group-version document carries `x-kubernetes-group-version-kind` equal to
//!   the object's GVK and lists a `fieldValidation` parameter (cli-runtime
//!   `query_param_verifier_v3.go`; it looks at the first matching PATCH, whatever the path).
//!   So every PATCH operation here carries the same write parameters, inline.
//! - Client-side `kubectl apply` uses a schema for strategic merge only when the PATCH request
//!   body lists `application/strategic-merge-patch+json`; it is deliberately absent so kubectl
//!   uses its compiled-in types (built-ins) or JSON merge patch (custom resources).
//! - `kubectl explain` reads `components.schemas` entries tagged with
//!   `x-kubernetes-group-version-kind` (see [`super::schemas`]).
//!
//! The operations of a group-version ([`group_version_paths`]) are also what `/openapi/v2`
//! publishes, converted to Swagger 2.0 (see [`super::v2`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::{Map, Value, json};
use skiff_api::catalogue::{ResourceInfo, Subresource};

use super::schemas::{Components, gvk, reference};
use super::v2::{INFO_VERSION, TITLE};

/// The index key (`api/v1`, `apis/apps/v1`) of a group-version document.
pub fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn document(paths: Map<String, Value>, components: Components) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": TITLE, "version": INFO_VERSION},
        "paths": paths,
        "components": {"schemas": components.finish()},
    })
}

/// `CoreV1`, `AppsV1`, `RbacAuthorizationV1`, `StableExampleComV1`: the operation-id infix
/// upstream derives from the group-version.
fn gv_ident(group: &str, version: &str) -> String {
    let group = if group.is_empty() { "core" } else { group.strip_suffix(".k8s.io").unwrap_or(group) };
    let mut out = String::new();
    for part in group.split(['.', '-']).chain(std::iter::once(version)) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

fn upper_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "description": description, "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": ty, "uniqueItems": true}})
}

fn pretty() -> Value {
    query("pretty", "string", "If 'true', then the output is pretty printed.")
}

fn dry_run() -> Value {
    query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid value: All.")
}

fn field_manager() -> Value {
    query("fieldManager", "string", "A name associated with the actor or entity that is making these changes.")
}

fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "How the server handles unknown or duplicate fields in the request body: Ignore, Warn (default) or Strict.",
    )
}

fn list_params() -> Vec<Value> {
    vec![
        query("allowWatchBookmarks", "boolean", "Requests watch events with type BOOKMARK."),
        query("continue", "string", "The continue token of the previous page of a paginated list."),
        query("fieldSelector", "string", "A selector restricting the returned objects by their fields."),
        query("labelSelector", "string", "A selector restricting the returned objects by their labels."),
        query("limit", "integer", "Maximum number of objects to return in one page."),
        query("resourceVersion", "string", "Constrains which resource versions the request may be served from."),
        query("resourceVersionMatch", "string", "How resourceVersion is applied: Exact or NotOlderThan."),
        query("sendInitialEvents", "boolean", "With watch, first sends synthetic events for the current state."),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query("watch", "boolean", "Watch for changes and return them as a stream of events."),
    ]
}

fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query("gracePeriodSeconds", "integer", "Duration in seconds before the object should be deleted."),
        query("orphanDependents", "boolean", "Deprecated: use propagationPolicy."),
        query("propagationPolicy", "string", "Garbage collection policy: Orphan, Background or Foreground."),
    ]
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}, "application/yaml": {"schema": schema}})
}

fn ok(code: &str, schema: &Value) -> (String, Value) {
    let description = match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    };
    (code.to_string(), json!({"description": description, "content": json_content(schema.clone())}))
}

fn responses(codes: &[&str], schema: &Value) -> Value {
    let mut m: Map<String, Value> = codes.iter().map(|c| ok(c, schema)).collect();
    m.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(m)
}

/// Everything one operation needs.
struct Op<'a> {
    action: &'a str,
    id: String,
    description: String,
    gvk: &'a Value,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Value,
}

impl Op<'_> {
    fn into_json(self, tag: &str) -> Value {
        let mut m = Map::new();
        m.insert("tags".into(), json!([tag]));
        m.insert("description".into(), self.description.into());
        m.insert("operationId".into(), self.id.into());
        m.insert("parameters".into(), Value::Array(self.params));
        if let Some(body) = self.body {
            m.insert("requestBody".into(), body);
        }
        m.insert("responses".into(), self.responses);
        m.insert("x-kubernetes-action".into(), self.action.into());
        m.insert("x-kubernetes-group-version-kind".into(), self.gvk.clone());
        Value::Object(m)
    }
}

/// Builds the path items of one group-version.
struct PathBuilder<'a> {
    prefix: String,
    ident: String,
    tag: String,
    components: &'a mut Components,
    paths: Map<String, Value>,
    patch_schema: Value,
    delete_options: Value,
    status: Value,
}

/// Group and version of a subresource's kind (the parent's unless the subresource names its own,
/// like `autoscaling/v1` for `scale`).
pub(super) fn subresource_group_version<'a>(r: &'a ResourceInfo, sub: &'a Subresource) -> (&'a str, &'a str) {
    if sub.group.is_empty() && sub.version.is_empty() {
        (r.group, r.version)
    } else {
        (sub.group, if sub.version.is_empty() { r.version } else { sub.version })
    }
}

/// HTTP method of a verb on a single object (or subresource).
fn method_of(verb: &str) -> Option<&'static str> {
    match verb {
        "get" => Some("get"),
        "update" => Some("put"),
        "patch" => Some("patch"),
        "create" => Some("post"),
        "delete" => Some("delete"),
        _ => None,
    }
}

impl PathBuilder<'_> {
    fn add(&mut self, path: &str, method: &str, op: Op<'_>) {
        let tag = self.tag.clone();
        let item = self.paths.entry(path.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(method.to_string(), op.into_json(&tag));
        }
    }

    fn write_params(&self, scope: &[Value]) -> Vec<Value> {
        let mut params = scope.to_vec();
        params.extend([dry_run(), field_manager(), field_validation(), pretty()]);
        params
    }

    fn body(schema: &Value, required: bool) -> Value {
        json!({"content": json_content(schema.clone()), "required": required})
    }

    fn patch_body(&self) -> Value {
        let schema = self.patch_schema.clone();
        json!({
            "content": {
                "application/json-patch+json": {"schema": schema},
                "application/merge-patch+json": {"schema": schema},
                "application/apply-patch+yaml": {"schema": schema},
            },
            "required": true,
        })
    }

    fn resource(&mut self, r: &ResourceInfo) {
        let kind_name = self.components.kind(r.group, r.version, r.kind);
        let list_name = self.components.list(r.group, r.version, r.kind, &kind_name);
        let kind_ref = reference(&kind_name);
        let list_ref = reference(&list_name);
        let the_gvk = gvk(r.group, r.version, r.kind);
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let k = r.kind;
        let ident = self.ident.clone();

        let mut scope = Vec::new();
        let collection = if r.namespaced {
            scope.push(path_param("namespace", "object name and auth scope, such as for teams and projects"));
            format!("{}/namespaces/{{namespace}}/{}", self.prefix, r.plural)
        } else {
            format!("{}/{}", self.prefix, r.plural)
        };
        let item = format!("{collection}/{{name}}");
        let mut item_scope = scope.clone();
        item_scope.insert(0, path_param("name", &format!("name of the {k}")));

        if r.supports("list") {
            let mut params = scope.clone();
            params.extend(list_params());
            params.push(pretty());
            let op = Op {
                action: "list",
                id: format!("list{ident}{ns}{k}"),
                description: format!("list or watch objects of kind {k}"),
                gvk: &the_gvk,
                params,
                body: None,
                responses: responses(&["200"], &list_ref),
            };
            self.add(&collection, "get", op);
            if r.namespaced {
                let mut params = list_params();
                params.push(pretty());
                let op = Op {
                    action: "list",
                    id: format!("list{ident}{k}ForAllNamespaces"),
                    description: format!("list or watch objects of kind {k}"),
                    gvk: &the_gvk,
                    params,
                    body: None,
                    responses: responses(&["200"], &list_ref),
                };
                self.add(&format!("{}/{}", self.prefix, r.plural), "get", op);
            }
        }
        if r.supports("create") {
            let op = Op {
                action: "post",
                id: format!("create{ident}{ns}{k}"),
                description: format!("create a {k}"),
                gvk: &the_gvk,
                params: self.write_params(&scope),
                body: Some(Self::body(&kind_ref, true)),
                responses: responses(&["200", "201", "202"], &kind_ref),
            };
            self.add(&collection, "post", op);
        }
        if r.supports("deletecollection") {
            let mut params = scope.clone();
            params.extend(delete_params());
            params.extend(list_params());
            params.push(pretty());
            let op = Op {
                action: "deletecollection",
                id: format!("deletecollection{ident}{ns}{k}"),
                description: format!("delete collection of {k}"),
                gvk: &the_gvk,
                params,
                body: Some(Self::body(&self.delete_options, false)),
                responses: responses(&["200"], &self.status),
            };
            self.add(&collection, "delete", op);
        }
        if r.supports("get") {
            let mut params = item_scope.clone();
            params.push(pretty());
            let op = Op {
                action: "get",
                id: format!("read{ident}{ns}{k}"),
                description: format!("read the specified {k}"),
                gvk: &the_gvk,
                params,
                body: None,
                responses: responses(&["200"], &kind_ref),
            };
            self.add(&item, "get", op);
        }
        if r.supports("update") {
            let op = Op {
                action: "put",
                id: format!("replace{ident}{ns}{k}"),
                description: format!("replace the specified {k}"),
                gvk: &the_gvk,
                params: self.write_params(&item_scope),
                body: Some(Self::body(&kind_ref, true)),
                responses: responses(&["200", "201"], &kind_ref),
            };
            self.add(&item, "put", op);
        }
        if r.supports("patch") {
            let mut params = self.write_params(&item_scope);
            params.push(query("force", "boolean", "Force apply requests: re-acquire conflicting fields."));
            let op = Op {
                action: "patch",
                id: format!("patch{ident}{ns}{k}"),
                description: format!("partially update the specified {k}"),
                gvk: &the_gvk,
                params,
                body: Some(self.patch_body()),
                responses: responses(&["200", "201"], &kind_ref),
            };
            self.add(&item, "patch", op);
        }
        if r.supports("delete") {
            let mut params = item_scope.clone();
            params.extend(delete_params());
            params.push(pretty());
            let op = Op {
                action: "delete",
                id: format!("delete{ident}{ns}{k}"),
                description: format!("delete a {k}"),
                gvk: &the_gvk,
                params,
                body: Some(Self::body(&self.delete_options, false)),
                responses: responses(&["200", "202"], &self.status),
            };
            self.add(&item, "delete", op);
        }
        let mut subs: Vec<&Subresource> = r.subresources.iter().collect();
        subs.sort_by(|a, b| a.name.cmp(b.name));
        for sub in subs {
            self.subresource(r, sub, &item, &item_scope);
        }
    }

    fn subresource(&mut self, r: &ResourceInfo, sub: &Subresource, item: &str, item_scope: &[Value]) {
        let (group, version) = subresource_group_version(r, sub);
        let sub_gvk = gvk(group, version, sub.kind);
        let connect = sub.kind.ends_with("Options") || sub.name == "log";
        let schema = if sub.kind == r.kind && group == r.group && version == r.version {
            Some(self.components.kind(group, version, sub.kind))
        } else {
            self.components.builtin_kind(group, version, sub.kind)
        };
        let schema = match (&schema, connect) {
            (Some(name), false) => reference(name),
            _ => json!({"type": "string"}),
        };
        let path = format!("{item}/{}", sub.name);
        let ns = if r.namespaced { "Namespaced" } else { "" };
        let suffix = upper_first(sub.name);
        let ident = self.ident.clone();
        let k = r.kind;
        for verb in sub.verbs {
            let Some(method) = method_of(verb) else {
                continue;
            };
            let (action, prefix) = match (connect, *verb) {
                (true, _) => ("connect", format!("connect{}", upper_first(method))),
                (false, "get") => ("get", "read".to_string()),
                (false, "update") => ("put", "replace".to_string()),
                (false, "patch") => ("patch", "patch".to_string()),
                (false, "create") => ("post", "create".to_string()),
                (false, _) => ("delete", "delete".to_string()),
            };
            let mut params = item_scope.to_vec();
            let body = match (connect, method) {
                (false, "put" | "post") => {
                    params.extend([dry_run(), field_manager(), field_validation()]);
                    Some(Self::body(&schema, true))
                }
                (false, "patch") => {
                    params.extend([dry_run(), field_manager(), field_validation()]);
                    params.push(query("force", "boolean", "Force apply requests: re-acquire conflicting fields."));
                    Some(self.patch_body())
                }
                _ => None,
            };
            params.push(pretty());
            let codes: &[&str] = match method {
                "post" => &["200", "201", "202"],
                "put" | "patch" => &["200", "201"],
                _ => &["200"],
            };
            let op = Op {
                action,
                id: format!("{prefix}{ident}{ns}{k}{suffix}"),
                description: format!("{verb} {} of the specified {k}", sub.name),
                gvk: &sub_gvk,
                params,
                body,
                responses: responses(codes, &schema),
            };
            self.add(&path, method, op);
        }
    }
}

/// The OpenAPI v3 document of one group-version, or `None` when nothing is served there.
pub fn v3_group_version(group: &str, version: &str, resources: &[&ResourceInfo]) -> Option<Value> {
    if !resources.iter().any(|r| r.group == group && r.version == version) {
        return None;
    }
    let mut components = Components::new();
    let paths = group_version_paths(group, version, resources, &mut components);
    Some(document(paths, components))
}

/// The path items (OpenAPI 3.0 operations) of the resources of `resources` served in one
/// group-version, adding the schemas they refer to to `components`.
pub(super) fn group_version_paths(
    group: &str,
    version: &str,
    resources: &[&ResourceInfo],
    components: &mut Components,
) -> Map<String, Value> {
    let mut served: Vec<&ResourceInfo> =
        resources.iter().copied().filter(|r| r.group == group && r.version == version).collect();
    served.sort_by(|a, b| a.plural.cmp(b.plural));
    let patch_schema = reference(&components.add::<meta::Patch>());
    let delete_options = reference(&components.add::<meta::DeleteOptions>());
    let status = reference(&components.add::<meta::Status>());
    let prefix = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    let tag =
        if group.is_empty() { format!("core_{version}") } else { format!("{}_{version}", group.replace('.', "_")) };
    let mut builder = PathBuilder {
        prefix,
        ident: gv_ident(group, version),
        tag,
        components,
        paths: Map::new(),
        patch_schema,
        delete_options,
        status,
    };
    for r in served {
        builder.resource(r);
    }
    builder.paths
}

/// A document with one `GET` returning the schema of `T` (the discovery endpoints).
fn discovery_document<T: k8s_openapi::schemars::JsonSchema>(path: &str, id: &str, tag: &str) -> Value {
    let mut components = Components::new();
    let schema = reference(&components.add::<T>());
    let op = json!({
        "tags": [tag],
        "description": "get available resources",
        "operationId": id,
        "responses": responses(&["200"], &schema),
    });
    let mut paths = Map::new();
    paths.insert(path.to_string(), json!({"get": op}));
    document(paths, components)
}

/// The `api` document (`GET /api/`).
pub fn v3_core_versions() -> Value {
    discovery_document::<meta::APIVersions>("/api/", "getCoreAPIVersions", "core")
}

/// The `apis` document (`GET /apis/`).
pub fn v3_group_list() -> Value {
    discovery_document::<meta::APIGroupList>("/apis/", "getAPIVersions", "apis")
}

/// The `apis/{group}` document (`GET /apis/{group}/`), or `None` for the core group or a
/// group with no served resource.
pub fn v3_group(group: &str, resources: &[&ResourceInfo]) -> Option<Value> {
    if group.is_empty() || !resources.iter().any(|r| r.group == group) {
        return None;
    }
    let ident = gv_ident(group, "");
    Some(discovery_document::<meta::APIGroup>(
        &format!("/apis/{group}/"),
        &format!("get{ident}APIGroup"),
        &group.replace('.', "_"),
    ))
}
