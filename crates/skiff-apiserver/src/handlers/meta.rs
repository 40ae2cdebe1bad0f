//! Generic `metadata` handling on the write path: decoding request objects against the URL,
//! filling system fields on create, carrying them over on update, and validating what every kind
//! shares (names, labels, annotations, finalizers, owner references).

use rand::Rng;
use serde_json::{Value, json};
use skiff_api::StatusError;
use skiff_api::validation::{ErrorList, FieldError, objectmeta};

use super::Ctx;
use crate::negotiate;
use crate::objects::{self, meta_str, metadata_mut};

/// Current time in the format of `metadata.creationTimestamp`.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Decodes a create/update body and checks it against the URL: apiVersion, kind, namespace.
/// Returns the object in its stored form.
pub fn decode_request(ctx: &Ctx, body: &[u8]) -> Result<Value, StatusError> {
    let format = negotiate::body_format(ctx.content_type.as_deref())?;
    let mut obj = negotiate::decode_body(body, format)?;
    objects::strip_nulls(&mut obj);
    check_type(ctx, &mut obj)?;
    check_namespace(ctx, &mut obj)?;
    Ok(crate::views::to_storage(ctx.info, obj))
}

/// Checks (or fills) `apiVersion` and `kind` of a served object.
pub fn check_type(ctx: &Ctx, obj: &mut Value) -> Result<(), StatusError> {
    let want_version = ctx.info.api_version();
    let Some(map) = obj.as_object_mut() else {
        return Err(StatusError::bad_request("the object must be a JSON object"));
    };
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(want_version));
        }
        Some(v) if v == want_version => {}
        Some(v) => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(ctx.info.kind));
        }
        Some(k) if k == ctx.info.kind => {}
        Some(k) => {
            return Err(StatusError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                ctx.info.kind
            )));
        }
    }
    Ok(())
}

fn check_namespace(ctx: &Ctx, obj: &mut Value) -> Result<(), StatusError> {
    let meta = metadata_mut(obj).ok_or_else(|| StatusError::bad_request("metadata must be an object"))?;
    if !ctx.info.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let want = ctx.namespace.clone().unwrap_or_default();
    match meta.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("namespace".into(), json!(want));
            Ok(())
        }
        Some(ns) if ns == want => Ok(()),
        Some(_) => Err(StatusError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(base: &str) -> String {
    let base = if base.len() > 58 { &base[..58] } else { base };
    let mut rng = rand::rng();
    let suffix: String =
        (0..5).map(|_| GENERATE_ALPHABET[rng.random_range(0..GENERATE_ALPHABET.len())] as char).collect();
    format!("{base}{suffix}")
}

fn invalid(ctx: &Ctx, name: &str, errors: &[FieldError]) -> StatusError {
    StatusError::invalid(&ctx.group_kind(), name, errors)
}

/// Fills system metadata of a new object and validates its metadata. `managedFields` are left
/// to the write path, which maintains them.
pub fn prepare_create(ctx: &Ctx, obj: &mut Value) -> Result<(), StatusError> {
    let has_spec = obj.get("spec").is_some();
    let meta = metadata_mut(obj).ok_or_else(|| StatusError::bad_request("metadata must be an object"))?;
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let generate = meta.get("generateName").and_then(Value::as_str).unwrap_or("").to_string();
    let name = if name.is_empty() && !generate.is_empty() { generated_name(&generate) } else { name };
    meta.insert("name".into(), json!(name));
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    for field in ["resourceVersion", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"] {
        meta.remove(field);
    }
    if has_spec {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    let mut errors = ErrorList::new();
    if name.is_empty() {
        errors.push(FieldError::required("metadata.name", "name or generateName is required"));
    }
    validate(ctx, obj, &mut errors);
    if errors.is_empty() { Ok(()) } else { Err(invalid(ctx, &name, &errors)) }
}

/// Validates the metadata every kind shares.
fn validate(ctx: &Ctx, obj: &Value, errors: &mut ErrorList) {
    if let Some(meta) = objects::metadata(obj) {
        errors.extend(objectmeta::validate(meta, "metadata", ctx.info.name_rule));
    }
}

/// Carries system metadata from the stored object into an update and validates the result.
pub fn prepare_update(ctx: &Ctx, new: &mut Value, old: &Value) -> Result<(), StatusError> {
    let name = meta_str(old, "name").unwrap_or("").to_string();
    let old_meta = objects::metadata(old).cloned().unwrap_or_default();
    let meta = metadata_mut(new).ok_or_else(|| StatusError::bad_request("metadata must be an object"))?;
    if let (Some(Value::String(new_uid)), Some(Value::String(old_uid))) = (meta.get("uid"), old_meta.get("uid"))
        && !new_uid.is_empty()
        && new_uid != old_uid
    {
        return Err(StatusError::conflict(
            &ctx.group_resource(),
            &name,
            &format!("Precondition failed: UID in precondition: {new_uid}, UID in object meta: {old_uid}"),
        ));
    }
    for field in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    for field in ["resourceVersion", "selfLink"] {
        meta.remove(field);
    }
    let mut errors = ErrorList::new();
    if old_meta.contains_key("deletionTimestamp") {
        let before: Vec<&Value> =
            old_meta.get("finalizers").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
        if let Some(after) = meta.get("finalizers").and_then(Value::as_array) {
            for f in after {
                if !before.contains(&f) {
                    errors.push(FieldError::forbidden(
                        "metadata.finalizers",
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers [{}]",
                            f.as_str().unwrap_or("")
                        ),
                    ));
                }
            }
        }
    }
    validate(ctx, new, &mut errors);
    if errors.is_empty() { Ok(()) } else { Err(invalid(ctx, &name, &errors)) }
}

/// The object without its resource version, for no-op comparison.
pub fn without_rv(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = metadata_mut(&mut v) {
        m.remove("resourceVersion");
    }
    v
}

/// Whether anything but `metadata` and `status` differs (a spec change bumps generation).
pub fn spec_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut m = v.as_object().cloned().unwrap_or_default();
        m.remove("metadata");
        m.remove("status");
        m
    };
    strip(new) != strip(old)
}
