//! Subresources: `/status` (only status changes), `/scale` (autoscaling/v1 Scale over
//! `spec.replicas`, or for custom resources the CRD's `specReplicasPath`, `statusReplicasPath` and
//! `labelSelectorPath`; server-side apply to it converts `managedFields` with
//! [`crate::apply::scale`]), pods' `/binding` (in [`super::binding`]) and `/eviction` (in [`super::eviction`]) and namespaces' `/finalize`. Pods' streaming subresources (log, exec,
//! attach, port-forward) are proxied to the node agent by [`crate::nodeproxy`] before they get here;
//! what does reach this module of them (and `proxy`) answers 503.

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Response};
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::catalogue::{self, ResourceInfo};
use skiff_api::status::GroupKind;
use skiff_api::validation::FieldError;

use super::read::render_object;
use super::write::{self, Admission, Part, Tracking};
use super::{Ctx, read_body};
use crate::apply::{self, Path, SamePaths};
use crate::objects::{self, meta_str};
use crate::state::ApiState;

/// Serves `/{subresource}` of an object.
pub async fn handle(
    state: &ApiState,
    ctx: &Ctx,
    method: &Method,
    sub: &str,
    body: Body,
) -> Result<Response<Body>, StatusError> {
    let served = ctx.info.subresource(sub).is_some()
        || (sub == "finalize" && ctx.info.plural == "namespaces" && ctx.info.group.is_empty());
    if !served {
        return Err(StatusError::not_found_message(format!(
            "the server could not find the requested resource ({} {}/{sub})",
            method.as_str(),
            ctx.info.plural
        )));
    }
    match (sub, method) {
        ("status", &Method::GET) => super::read::get(state, ctx).await,
        ("status", &Method::PUT) => write::update_part(state, ctx, read_body(body).await?, Part::Status).await,
        ("status", &Method::PATCH) => write::patch_part(state, ctx, read_body(body).await?, Part::Status).await,
        ("approval", &Method::GET) => super::read::get(state, ctx).await,
        ("approval", &Method::PUT) => write::update_part(state, ctx, read_body(body).await?, Part::Approval).await,
        ("approval", &Method::PATCH) => write::patch_part(state, ctx, read_body(body).await?, Part::Approval).await,
        ("scale", &Method::GET) => get_scale(state, ctx).await,
        ("scale", &Method::PUT | &Method::PATCH) => update_scale(state, ctx, method, read_body(body).await?).await,
        ("binding", &Method::POST) => super::binding::create_subresource(state, ctx, read_body(body).await?).await,
        ("eviction", &Method::POST) => super::eviction::create(state, ctx, read_body(body).await?).await,
        ("token", &Method::POST) => super::token::create(state, ctx, read_body(body).await?).await,
        ("finalize", &Method::PUT) => finalize(state, ctx, read_body(body).await?).await,
        ("log" | "exec" | "attach" | "portforward" | "proxy", _) => Err(StatusError::service_unavailable(format!(
            "{sub} is not available: no node agent serves this object yet"
        ))),
        _ => Err(StatusError::method_not_supported(&ctx.group_resource(), method.as_str())),
    }
}

/// Renders a `metav1.LabelSelector` (or a plain map, for ReplicationControllers) as a string.
pub fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut parts: Vec<(String, String)> = Vec::new();
    let labels = sel.get("matchLabels").or(if sel.get("matchExpressions").is_none() { Some(sel) } else { None });
    if let Some(map) = labels.and_then(Value::as_object) {
        for (k, v) in map {
            if let Some(v) = v.as_str() {
                parts.push((k.clone(), format!("{k}={v}")));
            }
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort_unstable();
            let text = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                "In" => format!("{key} in ({})", values.join(",")),
                "NotIn" => format!("{key} notin ({})", values.join(",")),
                "Exists" => key.to_string(),
                "DoesNotExist" => format!("!{key}"),
                _ => continue,
            };
            parts.push((key.to_string(), text));
        }
    }
    parts.sort();
    parts.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

/// Reads a simple dotted JSON path (`.spec.replicas`).
fn dotted<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.trim_start_matches('.').split('.').try_fold(obj, |v, k| v.get(k))
}

/// Sets a simple dotted JSON path, creating the objects on the way.
fn set_dotted(obj: &mut Value, path: &str, value: Value) {
    let mut parts: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = obj;
    for p in parts {
        if !cur.get(p).is_some_and(Value::is_object) {
            cur[p] = json!({});
        }
        cur = &mut cur[p];
    }
    if cur.is_object() {
        cur[last] = value;
    }
}

/// Where the version `api_version` of the resource `info` belongs to keeps its replica count, in
/// field-path form (see [`apply::scale::ReplicasPath`]).
fn replicas_path(info: &ResourceInfo, api_version: &str) -> Option<Option<Path>> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let served = catalogue::find(group, version, info.plural)?;
    if served.custom.is_none() {
        return Some(served.subresource("scale").map(|_| vec!["f:spec".to_string(), "f:replicas".to_string()]));
    }
    let scale = served.custom.and_then(|c| c.scale.as_ref());
    Some(scale.map(|s| s.spec_replicas.trim_start_matches('.').split('.').map(|f| format!("f:{f}")).collect()))
}

/// The Scale of an object of `info` (custom resources read the CRD's scale paths), with the
/// object's owners of the replica count as its `managedFields`.
fn scale_for(info: &ResourceInfo, obj: &Value) -> Value {
    let mut scale = scale_values(info, obj);
    let owners = apply::scale::to_subresource(&apply::entries(obj), &|v| replicas_path(info, v));
    apply::store_entries(&mut scale, owners);
    scale
}

fn scale_values(info: &ResourceInfo, obj: &Value) -> Value {
    let Some(paths) = info.custom.and_then(|c| c.scale.as_ref()) else { return scale_of(obj) };
    let mut scale = scale_of(obj);
    scale["spec"]["replicas"] = json!(dotted(obj, &paths.spec_replicas).and_then(Value::as_i64).unwrap_or(0));
    scale["status"]["replicas"] = json!(dotted(obj, &paths.status_replicas).and_then(Value::as_i64).unwrap_or(0));
    let selector = paths.label_selector.as_deref().and_then(|p| dotted(obj, p)).and_then(Value::as_str).unwrap_or("");
    scale["status"]["selector"] = json!(selector);
    scale
}

fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut metadata = json!({});
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = meta.get(f) {
            metadata[f] = v.clone();
        }
    }
    let spec = obj.get("spec");
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": spec.and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(0)},
        "status": {
            "replicas": obj.get("status").and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(0),
            "selector": selector_string(spec.and_then(|s| s.get("selector"))),
        },
    })
}

async fn get_scale(state: &ApiState, ctx: &Ctx) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?;
    let kv = state.store.get(&ctx.key(name)).await.map_err(super::read::store_err)?;
    let kv = kv.ok_or_else(|| StatusError::not_found(&ctx.group_resource(), name))?;
    let json = crate::objects::inject_resource_version(&kv.value, kv.mod_revision).unwrap_or_default();
    let obj: Value = serde_json::from_slice(&json).map_err(StatusError::internal)?;
    Ok(crate::response::json(200, &scale_for(ctx.info, &obj)))
}

async fn update_scale(
    state: &ApiState,
    ctx: &Ctx,
    method: &Method,
    body: Bytes,
) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    if *method == Method::PATCH && write::is_apply(ctx) {
        return apply_scale(state, ctx, &name, &body).await;
    }
    let body: Value = if *method == Method::PUT {
        let format = crate::negotiate::body_format(ctx.content_type.as_deref())?;
        crate::negotiate::decode_body(&body, format)?
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| StatusError::bad_request(format!("the patch is not valid JSON: {e}")))?
    };
    let content_type = ctx.content_type.clone().unwrap_or_default();
    let is_put = *method == Method::PUT;
    let mut adm = Admission::from_ctx(ctx)?;
    let info = ctx.info;
    let change = move |current: &Value| -> Result<Value, StatusError> {
        let scale = scale_for(info, current);
        let desired = if is_put {
            body.clone()
        } else if content_type.starts_with("application/merge-patch+json")
            || content_type.starts_with("application/strategic-merge-patch+json")
        {
            // Scale has no lists, so a strategic merge is a plain merge.
            let mut s = scale.clone();
            json_patch::merge(&mut s, &body);
            s
        } else if content_type.starts_with("application/json-patch+json") {
            let patch: json_patch::Patch = serde_json::from_value(body.clone())
                .map_err(|e| StatusError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut s = scale.clone();
            json_patch::patch(&mut s, &patch).map_err(|e| StatusError::unprocessable(e.to_string()))?;
            s
        } else {
            return Err(StatusError::unsupported_media_type(
                &content_type,
                &["application/json-patch+json", "application/merge-patch+json"],
            ));
        };
        if let Some(rv) = meta_str(&desired, "resourceVersion").filter(|r| !r.is_empty())
            && Some(rv) != meta_str(&scale, "resourceVersion")
        {
            return Err(StatusError::stale(&ctx.group_resource(), meta_str(current, "name").unwrap_or("")));
        }
        with_replicas(info, current, &desired)
    };
    let updated = write::update_object(state, ctx, &name, Part::Main, &mut adm, &change).await?;
    let obj: Value = serde_json::from_slice(&updated.json).map_err(StatusError::internal)?;
    Ok(crate::response::json(200, &scale_for(ctx.info, &obj)))
}

/// The parent `current` with the replica count of the Scale `desired` (validated).
fn with_replicas(info: &ResourceInfo, current: &Value, desired: &Value) -> Result<Value, StatusError> {
    let replicas = desired.get("spec").and_then(|s| s.get("replicas")).and_then(Value::as_i64).unwrap_or(0);
    if replicas < 0 {
        return Err(StatusError::invalid(
            &GroupKind::new("autoscaling", "Scale"),
            meta_str(current, "name").unwrap_or(""),
            &[FieldError::invalid("spec.replicas", replicas, "must be greater than or equal to 0")],
        ));
    }
    let mut obj = current.clone();
    if let Some(paths) = info.custom.and_then(|c| c.scale.as_ref()) {
        set_dotted(&mut obj, &paths.spec_replicas, json!(replicas));
    } else if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("replicas".into(), json!(replicas));
    }
    Ok(obj)
}

/// Server-side apply of an autoscaling/v1 Scale: the apply runs on the Scale with the parent's
/// replica owners as its managers (so taking `spec.replicas` from the parent's appliers is a
/// conflict unless forced), then the replica count and the ownership go back to the parent.
async fn apply_scale(state: &ApiState, ctx: &Ctx, name: &str, body: &[u8]) -> Result<Response<Body>, StatusError> {
    let manager = write::apply_manager(ctx)?;
    let force = ctx.query.flag("force");
    let mut config = crate::negotiate::decode_body(body, crate::negotiate::BodyFormat::Yaml)?;
    objects::strip_nulls(&mut config);
    // As upstream: the applied object must be in the Scale's version (so kubectl's
    // `apply --subresource=scale` of a Deployment manifest is refused).
    let version = config.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if version != apply::scale::SCALE_API_VERSION {
        return Err(StatusError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {version}, expected: {}",
            apply::scale::SCALE_API_VERSION
        )));
    }
    if let Some(kind) = config.get("kind").and_then(Value::as_str).filter(|k| *k != "Scale") {
        return Err(StatusError::bad_request(format!("the body of a scale apply must be a Scale, not {kind}")));
    }
    write::named_config(&mut config, name)?;
    let mut adm = Admission::from_ctx(ctx)?;
    adm.tracking = Tracking::Applied;
    let now = super::meta::now_rfc3339();
    let writer = apply::Writer {
        group: "autoscaling",
        kind: "Scale",
        manager,
        api_version: apply::scale::SCALE_API_VERSION,
        versions: &SamePaths,
        subresource: "scale",
        ignore_status: true,
        now: &now,
    };
    let info = ctx.info;
    let parent_version = info.api_version();
    let change = |current: &Value| -> Result<Value, StatusError> {
        let replicas = |v: &str| replicas_path(info, v);
        let applied =
            apply::apply(Some(&scale_for(info, current)), &config, &writer, force).map_err(write::conflict_error)?;
        let mut obj = with_replicas(info, current, &applied)?;
        let owners =
            apply::scale::to_parent(&apply::entries(current), &apply::entries(&applied), &parent_version, &replicas);
        apply::store_entries(&mut obj, owners);
        Ok(obj)
    };
    let updated = write::update_object(state, ctx, name, Part::Main, &mut adm, &change).await?;
    let obj: Value = serde_json::from_slice(&updated.json).map_err(StatusError::internal)?;
    Ok(crate::response::with_warnings(crate::response::json(200, &scale_for(info, &obj)), &adm.warnings))
}

async fn finalize(state: &ApiState, ctx: &Ctx, body: Bytes) -> Result<Response<Body>, StatusError> {
    let name = ctx.require_name()?.to_string();
    let format = crate::negotiate::body_format(ctx.content_type.as_deref())?;
    let body = crate::negotiate::decode_body(&body, format)?;
    let finalizers = body.get("spec").and_then(|s| s.get("finalizers")).cloned().unwrap_or_else(|| json!([]));
    let mut adm = Admission::from_ctx(ctx)?;
    let change = move |current: &Value| -> Result<Value, StatusError> {
        let mut obj = current.clone();
        if let Some(map) = obj.as_object_mut() {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            spec["finalizers"] = finalizers.clone();
        }
        Ok(obj)
    };
    let updated = write::update_object(state, ctx, &name, Part::Finalize, &mut adm, &change).await?;
    Ok(render_object(ctx, &updated.json, 200))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_render_like_upstream() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}, {"key": "x", "operator": "DoesNotExist"}]});
        assert_eq!(selector_string(Some(&sel)), "app=web,tier in (a,b),!x");
        assert_eq!(selector_string(Some(&json!({"app": "rc"}))), "app=rc");
    }

    #[test]
    fn dotted_paths_read_and_write() {
        let mut obj = json!({"spec": {"size": 1}});
        assert_eq!(dotted(&obj, ".spec.size"), Some(&json!(1)));
        set_dotted(&mut obj, ".spec.size", json!(4));
        set_dotted(&mut obj, ".spec.deep.n", json!(2));
        assert_eq!(obj, json!({"spec": {"size": 4, "deep": {"n": 2}}}));
    }

    #[test]
    fn scale_reflects_spec_and_status() {
        let d = json!({"metadata": {"name": "d", "resourceVersion": "5"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"]["replicas"], 2);
        assert_eq!(s["status"]["selector"], "a=b");
        assert_eq!(s["metadata"]["resourceVersion"], "5");
    }
}
