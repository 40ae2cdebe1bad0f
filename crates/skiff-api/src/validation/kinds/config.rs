//! ConfigMap and Secret validation (upstream `ValidateConfigMap`, `ValidateSecret` and their
//! update rules).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::common::{each, immutable};
use crate::kinds::Validation;
use crate::validation::names::is_config_map_key;
use crate::validation::{ErrorList, FieldError, key};

/// Largest total size of a ConfigMap's or Secret's data.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

fn keys<'a>(errs: &mut ErrorList, path: &str, names: impl Iterator<Item = &'a String>) {
    for k in names {
        each(errs, &key(path, k), k, is_config_map_key(k));
    }
}

fn forbid_change_when_immutable<T: PartialEq>(errs: &mut ErrorList, path: &str, new: &T, old: &T) {
    if new != old {
        errs.push(FieldError::forbidden(path, "field is immutable when `immutable` is set"));
    }
}

fn immutable_flag(errs: &mut ErrorList, new: Option<bool>, old: Option<bool>) -> bool {
    let was = old == Some(true);
    if was && new != Some(true) {
        errs.push(FieldError::forbidden("immutable", "field is immutable when `immutable` is set"));
    }
    was
}

impl Validation for ConfigMap {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let empty = BTreeMap::new();
        let data = self.data.as_ref().unwrap_or(&empty);
        keys(&mut errs, "data", data.keys());
        let mut size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
        for (k, v) in self.binary_data.iter().flatten() {
            each(&mut errs, &key("binaryData", k), k, is_config_map_key(k));
            if data.contains_key(k) {
                errs.push(FieldError::invalid(key("binaryData", k), k.as_str(), "duplicate of key present in data"));
            }
            size += k.len() + v.0.len();
        }
        if size > MAX_DATA_SIZE {
            errs.push(FieldError::too_long("", MAX_DATA_SIZE));
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        if immutable_flag(&mut errs, self.immutable, old.immutable) {
            forbid_change_when_immutable(&mut errs, "data", &self.data, &old.data);
            forbid_change_when_immutable(&mut errs, "binaryData", &self.binary_data, &old.binary_data);
        }
        errs
    }
}

fn require_keys(errs: &mut ErrorList, data: &BTreeMap<String, ByteString>, names: &[&str]) {
    for n in names {
        if !data.contains_key(*n) {
            errs.push(FieldError::required(key("data", n), ""));
        }
    }
}

fn require_json(errs: &mut ErrorList, data: &BTreeMap<String, ByteString>, name: &str) {
    match data.get(name) {
        None => errs.push(FieldError::required(key("data", name), "")),
        Some(v) => {
            if let Err(e) = serde_json::from_slice::<serde_json::Value>(&v.0) {
                errs.push(FieldError::invalid(key("data", name), "<secret contents redacted>", e.to_string()));
            }
        }
    }
}

impl Validation for Secret {
    fn validate_create(&self) -> ErrorList {
        let mut errs = ErrorList::new();
        let empty = BTreeMap::new();
        let data = self.data.as_ref().unwrap_or(&empty);
        keys(&mut errs, "data", data.keys());
        let size: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
        if size > MAX_DATA_SIZE {
            errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
        }
        match self.type_.as_deref().unwrap_or("Opaque") {
            "kubernetes.io/service-account-token" => {
                let annotation = "kubernetes.io/service-account.name";
                let name = self.metadata.annotations.as_ref().and_then(|a| a.get(annotation));
                if name.is_none_or(String::is_empty) {
                    errs.push(FieldError::required(key("metadata.annotations", annotation), ""));
                }
            }
            "kubernetes.io/dockercfg" => require_json(&mut errs, data, ".dockercfg"),
            "kubernetes.io/dockerconfigjson" => require_json(&mut errs, data, ".dockerconfigjson"),
            "kubernetes.io/basic-auth" if !data.contains_key("username") && !data.contains_key("password") => {
                require_keys(&mut errs, data, &["username", "password"]);
            }
            "kubernetes.io/ssh-auth" => require_keys(&mut errs, data, &["ssh-privatekey"]),
            "kubernetes.io/tls" => require_keys(&mut errs, data, &["tls.crt", "tls.key"]),
            _ => {}
        }
        errs
    }

    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errs = self.validate_create();
        immutable(&mut errs, "type", &self.type_, &old.type_);
        if immutable_flag(&mut errs, self.immutable, old.immutable) {
            forbid_change_when_immutable(&mut errs, "data", &self.data, &old.data);
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Defaulting;
    use crate::validation::ErrorKind;
    use serde_json::{Value, json};

    fn cm(v: Value) -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": v})).expect("cm")
    }

    fn secret(ty: &str, data: Value) -> Secret {
        let mut s: Secret =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "type": ty, "stringData": data})).expect("secret");
        s.set_defaults();
        s
    }

    #[test]
    fn config_map_keys_and_size() {
        assert_eq!(cm(json!({"a.b": "1", "C_D-e": "2"})).validate_create(), ErrorList::new());
        for bad in ["a/b", "..", ".", "..x", "a b"] {
            let errs = cm(json!({bad: "x"})).validate_create();
            assert!(!errs.is_empty() && errs[0].field == format!("data[{bad}]"), "{bad}: {errs:?}");
        }
        let big = cm(json!({"k": "x".repeat(MAX_DATA_SIZE)})).validate_create();
        assert_eq!(big[0].kind, ErrorKind::TooLong);
    }

    #[test]
    fn immutable_config_maps_keep_their_data() {
        let mut old = cm(json!({"a": "1"}));
        old.immutable = Some(true);
        let mut new = cm(json!({"a": "2"}));
        new.immutable = Some(true);
        let errs = new.validate_update(&old);
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].field.as_str(), errs[0].kind), ("data", ErrorKind::Forbidden));
        let mut unfrozen = old.clone();
        unfrozen.immutable = Some(false);
        assert_eq!(unfrozen.validate_update(&old)[0].field, "immutable");
    }

    #[test]
    fn secret_types() {
        assert_eq!(secret("Opaque", json!({"a": "b"})).validate_create(), ErrorList::new());
        assert_eq!(
            secret("kubernetes.io/tls", json!({"tls.crt": "c", "tls.key": "k"})).validate_create(),
            ErrorList::new()
        );
        let cases = [
            ("kubernetes.io/tls", json!({"tls.crt": "c"}), "data[tls.key]", ErrorKind::Required),
            (
                "kubernetes.io/dockerconfigjson",
                json!({".dockerconfigjson": "{"}),
                "data[.dockerconfigjson]",
                ErrorKind::Invalid,
            ),
            ("kubernetes.io/dockerconfigjson", json!({}), "data[.dockerconfigjson]", ErrorKind::Required),
            ("kubernetes.io/ssh-auth", json!({}), "data[ssh-privatekey]", ErrorKind::Required),
            ("kubernetes.io/basic-auth", json!({}), "data[username]", ErrorKind::Required),
            (
                "kubernetes.io/service-account-token",
                json!({}),
                "metadata.annotations[kubernetes.io/service-account.name]",
                ErrorKind::Required,
            ),
            ("Opaque", json!({"bad/key": "x"}), "data[bad/key]", ErrorKind::Invalid),
        ];
        for (ty, data, field, kind) in cases {
            let errs = secret(ty, data.clone()).validate_create();
            assert!(
                errs.iter().any(|e| e.field == field && e.kind == kind),
                "{ty} {data}: want {kind:?} at {field}, got {errs:?}"
            );
        }
    }

    #[test]
    fn secret_type_is_immutable() {
        let old = secret("Opaque", json!({}));
        let new = secret("kubernetes.io/ssh-auth", json!({"ssh-privatekey": "k"}));
        let errs = new.validate_update(&old);
        assert_eq!(errs[0].to_string(), "type: Invalid value: \"kubernetes.io/ssh-auth\": field is immutable");
    }
}
