//! Reading one static pod manifest: a Pod in JSON or YAML (of a multi-document YAML file, the
//! first document, as the kubelet's decoder reads it), which must name itself.
//!
//! What does not live here: the identity the agent gives the pod (`identity`) and which files
//! are read (`source`).

use k8s_openapi::api::core::v1::Pod;

/// Why a manifest file yields no pod.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Neither JSON nor YAML, or empty.
    #[error("couldn't parse as pod({0}), please check manifest file")]
    Syntax(String),
    /// The document is not a v1 Pod.
    #[error("invalid pod: {0}")]
    NotAPod(String),
    /// The pod has no name.
    #[error("invalid pod: name is needed for the pod")]
    NoName,
    /// The pod, once defaulted and named, does not validate.
    #[error("invalid pod: [{}]", .0.join(", "))]
    Invalid(Vec<String>),
}

/// Parses a manifest file's bytes into a Pod.
pub fn parse(bytes: &[u8]) -> Result<Pod, ManifestError> {
    let value = first_document(bytes)?;
    let Some(obj) = value.as_object() else {
        return Err(ManifestError::NotAPod(format!("expected an object, got {value}")));
    };
    let field = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or_default();
    match (field("apiVersion"), field("kind")) {
        (_, "") => return Err(ManifestError::NotAPod("Object 'Kind' is missing".into())),
        ("", _) => return Err(ManifestError::NotAPod("Object 'apiVersion' is missing".into())),
        ("v1", "Pod") => {}
        (version, kind) => return Err(ManifestError::NotAPod(format!("{version}, Kind={kind} is not a v1 Pod"))),
    }
    let pod: Pod = serde_json::from_value(value).map_err(|e| ManifestError::NotAPod(e.to_string()))?;
    if pod.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(ManifestError::NoName);
    }
    Ok(pod)
}

/// The first document of the file as JSON (JSON first: it is also YAML, but exact as JSON).
fn first_document(bytes: &[u8]) -> Result<serde_json::Value, ManifestError> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return Ok(value);
    }
    let mut reader = std::io::Cursor::new(bytes);
    match serde_saphyr::read::<_, serde_json::Value>(&mut reader).next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(ManifestError::Syntax(e.to_string())),
        None => Err(ManifestError::Syntax("the file holds no document".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_json_and_the_first_of_several_documents() {
        let yaml = b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        assert_eq!(parse(yaml).map(|p| p.metadata.name), Ok(Some("web".to_string())));
        let json = br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "j"}, "spec": {"containers": []}}"#;
        assert_eq!(parse(json).map(|p| p.metadata.name), Ok(Some("j".to_string())));
        let multi = b"apiVersion: v1\nkind: Pod\nmetadata: {name: first}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: second}\n";
        assert_eq!(parse(multi).map(|p| p.metadata.name), Ok(Some("first".to_string())));
    }

    #[test]
    fn bad_files_say_why() {
        assert!(matches!(parse(b"{{{"), Err(ManifestError::Syntax(_))));
        assert!(matches!(parse(b""), Err(ManifestError::Syntax(_))));
        assert_eq!(parse(b"apiVersion: v1\nkind: Pod\nmetadata: {}\n"), Err(ManifestError::NoName));
        assert!(matches!(
            parse(b"apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
            Err(ManifestError::NotAPod(_))
        ));
        assert!(matches!(parse(b"kind: Pod\nmetadata: {name: s}\n"), Err(ManifestError::NotAPod(_))));
        assert!(matches!(parse(b"- a\n- b\n"), Err(ManifestError::NotAPod(_))));
        assert!(matches!(
            parse(b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: 3}\n"),
            Err(ManifestError::NotAPod(_))
        ));
    }
}
