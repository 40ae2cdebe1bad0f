//! The typed step of the write path: decoding a request object into its k8s-openapi type,
//! detecting unknown fields, and running the per-kind defaulting, strategy and validation hooks
//! from `skiff-api`.
//!
//! Everything generic (metadata, preconditions, storage) happens on JSON in the handlers; this
//! module is the only place that knows the Rust type of each kind. One [`KindOps`] per stored
//! kind is registered in [`ops_for`]; custom resources get a [`CustomOps`] driven by their
//! CRD's structural schema.

use std::marker::PhantomData;
use std::sync::{LazyLock, RwLock};

use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::catalogue::ResourceInfo;
use skiff_api::crd::cel as crd_cel;
use skiff_api::crd::object as crd_object;
use skiff_api::crd::schema as crd_schema;
use skiff_api::kinds::BuiltinKind;
use skiff_api::status::GroupKind;
use skiff_api::validation::FieldError;

/// How to treat fields the type does not know (`fieldValidation` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn (the default).
    Warn,
    /// Reject the request.
    Strict,
}

impl FieldValidation {
    /// Parses the query value (empty = default `Warn`).
    pub fn parse(s: Option<&str>) -> Result<Self, StatusError> {
        match s.unwrap_or("") {
            "" | "Warn" => Ok(Self::Warn),
            "Ignore" => Ok(Self::Ignore),
            "Strict" => Ok(Self::Strict),
            other => Err(StatusError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn, Strict; got {other:?}"
            ))),
        }
    }
}

/// Which write is being admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation<'a> {
    /// A create.
    Create,
    /// An update of the main resource, with the stored object.
    Update(&'a Value),
    /// An update through `/status`, with the stored object.
    UpdateStatus(&'a Value),
    /// An update through `/approval` (CertificateSigningRequest), with the stored object.
    UpdateApproval(&'a Value),
}

/// The typed pipeline of one kind.
pub trait KindOps: Send + Sync {
    /// Decodes `obj`, applies `mode` to unknown fields (pushing warnings), runs defaulting, the
    /// strategy and validation for `op`, and returns the canonical JSON of the result.
    fn admit(
        &self,
        obj: Value,
        op: Operation<'_>,
        mode: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, StatusError>;

    /// Decodes and re-encodes without hooks (canonical form of a stored object).
    fn canonical(&self, obj: Value) -> Result<Value, StatusError>;

    /// Decodes `obj`, applies `mode` to unknown fields (pushing warnings), runs defaulting and
    /// re-encodes it: the first half of [`KindOps::admit`], and (with `Ignore`) what upstream
    /// does with an object a mutating webhook patched.
    fn decode_and_default(
        &self,
        obj: Value,
        mode: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, StatusError>;
}

struct Typed<T>(PhantomData<fn() -> T>);

fn decode<T: BuiltinKind>(obj: Value) -> Result<T, StatusError> {
    serde_path_to_error::deserialize::<_, T>(obj).map_err(|e| {
        let path = e.path().to_string();
        let kind = T::KIND;
        let at = if path == "." { String::new() } else { format!("{path}: ") };
        StatusError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {at}{}",
            T::VERSION,
            e.into_inner()
        ))
    })
}

fn encode<T: BuiltinKind>(t: &T) -> Result<Value, StatusError> {
    serde_json::to_value(t).map_err(StatusError::internal)
}

/// Paths of members present (non-null) in `input` but absent from `decoded`.
pub fn unknown_fields(input: &Value, decoded: &Value) -> Vec<String> {
    skiff_api::unknown::unknown_fields(input, decoded, "")
}

fn invalid<T: BuiltinKind>(obj: &T, errors: &[FieldError]) -> StatusError {
    let name = obj.metadata().name.clone().unwrap_or_default();
    StatusError::invalid(&GroupKind::new(T::GROUP, T::KIND), &name, errors)
}

/// Applies `mode` to the unknown fields `unknown` of a request object.
fn unknown_fields_per_mode(
    unknown: &[String],
    mode: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<(), StatusError> {
    if unknown.is_empty() || mode == FieldValidation::Ignore {
        return Ok(());
    }
    let msgs: Vec<String> = unknown.iter().map(|f| format!("unknown field \"{f}\"")).collect();
    if mode == FieldValidation::Strict {
        return Err(StatusError::bad_request(format!("strict decoding error: {}", msgs.join(", "))));
    }
    warnings.extend(msgs);
    Ok(())
}

/// Decodes `obj` as `T`, applies `mode` to its unknown fields and runs defaulting.
fn decode_defaulted<T: BuiltinKind>(
    obj: Value,
    mode: FieldValidation,
    warnings: &mut Vec<String>,
) -> Result<T, StatusError> {
    let input = if mode == FieldValidation::Ignore { None } else { Some(obj.clone()) };
    let mut typed: T = decode(obj)?;
    if let Some(input) = input {
        unknown_fields_per_mode(&unknown_fields(&input, &encode(&typed)?), mode, warnings)?;
    }
    typed.set_defaults();
    Ok(typed)
}

impl<T: BuiltinKind> KindOps for Typed<T> {
    fn admit(
        &self,
        obj: Value,
        op: Operation<'_>,
        mode: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, StatusError> {
        let mut typed: T = decode_defaulted(obj, mode, warnings)?;
        let errors = match op {
            Operation::Create => {
                if let Err(why) = typed.admit_create() {
                    let name = typed.metadata().name.clone().unwrap_or_default();
                    let gr = skiff_api::status::GroupResource::new(T::GROUP, T::URL_PATH_SEGMENT);
                    return Err(StatusError::forbidden(&gr, &name, &why));
                }
                typed.prepare_for_create();
                typed.validate_create()
            }
            Operation::Update(old) => {
                let mut old: T = decode(old.clone())?;
                old.set_defaults();
                typed.prepare_for_update(&old);
                typed.validate_update(&old)
            }
            Operation::UpdateStatus(old) => {
                let old: T = decode(old.clone())?;
                typed.validate_status_update(&old)
            }
            Operation::UpdateApproval(old) => {
                let old: T = decode(old.clone())?;
                typed.validate_approval_update(&old)
            }
        };
        if !errors.is_empty() {
            return Err(invalid(&typed, &errors));
        }
        encode(&typed)
    }

    fn canonical(&self, obj: Value) -> Result<Value, StatusError> {
        encode(&decode::<T>(obj)?)
    }

    fn decode_and_default(
        &self,
        obj: Value,
        mode: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, StatusError> {
        encode(&decode_defaulted::<T>(obj, mode, warnings)?)
    }
}

type OpsMap = Vec<((&'static str, &'static str), Box<dyn KindOps>)>;

static OPS: LazyLock<OpsMap> = LazyLock::new(|| {
    let mut map: OpsMap = Vec::new();
    macro_rules! register {
        ($g:expr, $v:expr, $t:ty) => {
            map.push((($g, <$t as k8s_openapi::Resource>::KIND), Box::new(Typed::<$t>(PhantomData))));
        };
    }
    skiff_api::for_each_builtin_kind!(register);
    map
});

/// The pipeline of a custom resource: pruning, defaulting, validation and CEL rules
/// (`x-kubernetes-validations`) from the structural schema of the version the request addresses (as upstream; with conversion `None` the object's
/// content is the same in every version, only `apiVersion` differs).
pub struct CustomOps {
    info: &'static ResourceInfo,
}

impl CustomOps {
    fn schema(&self) -> Option<&'static Value> {
        self.info.custom.and_then(|c| c.schema.as_ref())
    }
}

impl KindOps for CustomOps {
    fn admit(
        &self,
        obj: Value,
        op: Operation<'_>,
        mode: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, StatusError> {
        let mut obj = self.decode_and_default(obj, mode, warnings)?;
        if op == Operation::Create
            && self.info.has_status()
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        if let Some(schema) = self.schema() {
            let old = match op {
                Operation::Create => None,
                Operation::Update(old) | Operation::UpdateStatus(old) | Operation::UpdateApproval(old) => Some(old),
            };
            let mut errors = crd_object::validate(&obj, old, schema);
            let rule_errors = crd_cel::validate(schema, &obj, old, &errors, warnings);
            errors.extend(rule_errors);
            if !errors.is_empty() {
                let name = crate::objects::meta_str(&obj, "name").unwrap_or("").to_string();
                return Err(StatusError::invalid(&GroupKind::new(self.info.group, self.info.kind), &name, &errors));
            }
        }
        Ok(obj)
    }

    fn canonical(&self, obj: Value) -> Result<Value, StatusError> {
        Ok(obj)
    }

    fn decode_and_default(
        &self,
        mut obj: Value,
        mode: FieldValidation,
        warnings: &mut Vec<String>,
    ) -> Result<Value, StatusError> {
        if !obj.get("metadata").is_some_and(Value::is_object) {
            return Err(StatusError::bad_request("metadata must be an object"));
        }
        let (kind, version) = (self.info.kind, self.info.version);
        let pruned = crd_object::coerce(&mut obj, self.schema()).map_err(|e| {
            StatusError::bad_request(format!("{kind} in version \"{version}\" cannot be handled as a {kind}: {e}"))
        })?;
        unknown_fields_per_mode(&pruned, mode, warnings)?;
        if let Some(schema) = self.schema() {
            crd_schema::apply_defaults(&mut obj, schema);
        }
        Ok(obj)
    }
}

/// One leaked [`CustomOps`] per registered storage resource (bounded like the catalogue's own
/// leak: by the number of CRD changes).
static CUSTOM_OPS: LazyLock<RwLock<Vec<&'static CustomOps>>> = LazyLock::new(Default::default);

fn custom_ops(info: &'static ResourceInfo) -> &'static CustomOps {
    let found =
        CUSTOM_OPS.read().unwrap_or_else(|p| p.into_inner()).iter().copied().find(|o| std::ptr::eq(o.info, info));
    if let Some(ops) = found {
        return ops;
    }
    let mut all = CUSTOM_OPS.write().unwrap_or_else(|p| p.into_inner());
    if let Some(ops) = all.iter().copied().find(|o| std::ptr::eq(o.info, info)) {
        return ops;
    }
    let ops: &'static CustomOps = Box::leak(Box::new(CustomOps { info }));
    all.push(ops);
    ops
}

/// The pipeline of a write addressed to `served` and stored as `storage`: the served version's
/// [`CustomOps`] for custom resources, else the stored kind's (see [`ops_for`]).
pub fn ops_for_resource(served: &'static ResourceInfo, storage: &'static ResourceInfo) -> Option<&'static dyn KindOps> {
    if served.custom.is_some() {
        return Some(custom_ops(served));
    }
    ops_for(storage.group, storage.kind)
}

/// The typed pipeline of the stored kind `kind` in `group`: a built-in kind's, or a custom
/// resource's [`CustomOps`] (of its storage version).
pub fn ops_for(group: &str, kind: &str) -> Option<&'static dyn KindOps> {
    if let Some((_, ops)) = OPS.iter().find(|((g, k), _)| *g == group && *k == kind) {
        return Some(ops.as_ref());
    }
    let info = skiff_api::catalogue::find_custom_storage(group, kind)?;
    Some(custom_ops(info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_reported_with_paths() {
        let ops = ops_for("", "ConfigMap").expect("configmap ops");
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "bogus": 1}, "data": {"k": "v"}, "extra": true});
        let mut warnings = Vec::new();
        let out = ops.admit(obj.clone(), Operation::Create, FieldValidation::Warn, &mut warnings).expect("admitted");
        assert_eq!(out["data"]["k"], "v");
        assert!(out.get("extra").is_none());
        assert_eq!(warnings, vec!["unknown field \"extra\"", "unknown field \"metadata.bogus\""]);
        let err = ops.admit(obj, Operation::Create, FieldValidation::Strict, &mut Vec::new()).expect_err("strict");
        assert_eq!(err.code, 400);
        assert!(err.message.starts_with("strict decoding error: unknown field"), "{}", err.message);
    }

    fn custom_ops_for_test() -> CustomOps {
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(json!({
                "metadata": {"name": "gizmos.typed.test"},
                "spec": {"group": "typed.test", "scope": "Namespaced", "names": {"plural": "gizmos", "kind": "Gizmo"},
                    "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 2}}},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}
            }))
            .expect("crd");
        let info = skiff_api::crd::resources_from_crd(&crd).into_iter().next().expect("one version");
        CustomOps { info: Box::leak(Box::new(info)) }
    }

    #[test]
    fn custom_ops_prune_default_validate_and_honour_field_validation() {
        let ops = custom_ops_for_test();
        let obj = json!({"apiVersion": "typed.test/v1", "kind": "Gizmo", "metadata": {"name": "g"},
            "spec": {"extra": 1}, "status": {"x": 1}});
        let mut warnings = Vec::new();
        let out = ops.admit(obj.clone(), Operation::Create, FieldValidation::Warn, &mut warnings).expect("admitted");
        assert_eq!(out["spec"], json!({"size": 2}));
        assert!(out.get("status").is_none(), "status is dropped on create with a status subresource");
        assert_eq!(warnings, vec!["unknown field \"spec.extra\""]);
        let err = ops.admit(obj, Operation::Create, FieldValidation::Strict, &mut Vec::new()).expect_err("strict");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("unknown field \"spec.extra\""), "{}", err.message);
        let bad = json!({"metadata": {"name": "g"}, "spec": {"size": "big"}});
        let err = ops.admit(bad, Operation::Create, FieldValidation::Ignore, &mut Vec::new()).expect_err("invalid");
        assert_eq!(err.code, 422);
        assert!(err.message.contains("spec.size in body must be of type integer"), "{}", err.message);
    }

    fn ruled_ops() -> CustomOps {
        let crd: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition =
            serde_json::from_value(json!({
                "metadata": {"name": "rulers.typed.test"},
                "spec": {"group": "typed.test", "scope": "Namespaced", "names": {"plural": "rulers", "kind": "Ruler"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                            "spec": {"type": "object", "properties": {
                                "replicas": {"type": "integer", "x-kubernetes-validations": [{"rule": "self <= 10", "message": "must be at most 10"}]},
                                "mode": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "mode is immutable"}]},
                                "size": {"type": "string", "enum": ["s", "m"]}}}}}}}]}
            }))
            .expect("crd");
        let info = skiff_api::crd::resources_from_crd(&crd).into_iter().next().expect("one version");
        CustomOps { info: Box::leak(Box::new(info)) }
    }

    #[test]
    fn custom_ops_enforce_cel_rules() {
        let ops = ruled_ops();
        let obj = |spec: serde_json::Value| json!({"apiVersion": "typed.test/v1", "kind": "Ruler", "metadata": {"name": "r"}, "spec": spec});
        let err = ops
            .admit(obj(json!({"replicas": 11})), Operation::Create, FieldValidation::Strict, &mut Vec::new())
            .expect_err("too many replicas");
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "Ruler.typed.test \"r\" is invalid: spec.replicas: Invalid value: \"integer\": must be at most 10"
        );
        let stored = obj(json!({"replicas": 1, "mode": "a"}));
        ops.admit(stored.clone(), Operation::Create, FieldValidation::Strict, &mut Vec::new()).expect("valid");
        let err = ops
            .admit(
                obj(json!({"replicas": 1, "mode": "b"})),
                Operation::Update(&stored),
                FieldValidation::Strict,
                &mut Vec::new(),
            )
            .expect_err("immutable");
        assert!(err.message.ends_with("spec.mode: Invalid value: \"string\": mode is immutable"), "{}", err.message);
        let err = ops
            .admit(
                obj(json!({"replicas": 11, "size": "xl"})),
                Operation::Create,
                FieldValidation::Strict,
                &mut Vec::new(),
            )
            .expect_err("enum");
        assert!(err.message.contains("some validation rules were not checked"), "{}", err.message);
        assert!(!err.message.contains("must be at most 10"), "{}", err.message);
    }

    #[test]
    fn type_errors_name_the_path() {
        let ops = ops_for("", "Pod").expect("pod ops");
        let obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": "nope"}});
        let err = ops.admit(obj, Operation::Create, FieldValidation::Warn, &mut Vec::new()).expect_err("bad type");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("spec.containers"), "{}", err.message);
    }
}
