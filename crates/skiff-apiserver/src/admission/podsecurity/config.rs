//! The PodSecurity plugin's configuration (upstream `PodSecurityConfiguration`,
//! `pod-security.admission.config.k8s.io/v1`): the policy of namespaces without labels and the
//! exempt users, namespaces and runtime classes. Read from a file given to the server, either
//! the `PodSecurityConfiguration` itself or an `AdmissionConfiguration` whose `PodSecurity`
//! plugin entry embeds it.

use serde_json::Value;

use super::{LevelVersion, Policy, parse_level, parse_version};

/// What the plugin is configured with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The policy of every mode a namespace does not label (upstream default: all
    /// `privileged:latest`).
    pub defaults: Policy,
    /// Users whose requests are never checked.
    pub exempt_usernames: Vec<String>,
    /// Namespaces whose pods are never checked.
    pub exempt_namespaces: Vec<String>,
    /// Runtime classes whose pods are never checked.
    pub exempt_runtime_classes: Vec<String>,
}

/// Why a configuration file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not YAML or JSON.
    #[error("the PodSecurity configuration is not valid YAML: {0}")]
    Syntax(String),
    /// Some field is wrong.
    #[error("invalid PodSecurity configuration: {0}")]
    Invalid(String),
}

const KIND: &str = "PodSecurityConfiguration";
const API_VERSIONS: &[&str] = &[
    "pod-security.admission.config.k8s.io/v1",
    "pod-security.admission.config.k8s.io/v1beta1",
    "pod-security.admission.config.k8s.io/v1alpha1",
];

impl Config {
    /// Parses a configuration file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let doc: Value = serde_saphyr::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let doc = match doc.get("kind").and_then(Value::as_str) {
            Some("AdmissionConfiguration") => doc
                .get("plugins")
                .and_then(Value::as_array)
                .and_then(|ps| ps.iter().find(|p| p.get("name").and_then(Value::as_str) == Some("PodSecurity")))
                .and_then(|p| p.get("configuration"))
                .cloned()
                .ok_or_else(|| invalid("the AdmissionConfiguration has no PodSecurity plugin configuration"))?,
            _ => doc,
        };
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if kind != KIND || !API_VERSIONS.contains(&api_version) {
            return Err(invalid(&format!(
                "expected kind {KIND} in {}, found kind {kind:?} apiVersion {api_version:?}",
                API_VERSIONS.join(" or ")
            )));
        }
        let mut config = Config::default();
        if let Some(defaults) = doc.get("defaults") {
            let mode = |name: &str, into: &mut LevelVersion| -> Result<(), ConfigError> {
                if let Some(v) = defaults.get(name) {
                    let s = v.as_str().unwrap_or("");
                    into.level = parse_level(s).ok_or_else(|| {
                        invalid(&format!("defaults.{name}: {s:?} must be one of privileged, baseline, restricted"))
                    })?;
                }
                let version_key = format!("{name}-version");
                if let Some(v) = defaults.get(&version_key) {
                    let s = v.as_str().unwrap_or("");
                    into.version = parse_version(s).ok_or_else(|| {
                        invalid(&format!("defaults.{version_key}: {s:?} must be \"latest\" or \"v1.x\""))
                    })?;
                }
                Ok(())
            };
            mode("enforce", &mut config.defaults.enforce)?;
            mode("audit", &mut config.defaults.audit)?;
            mode("warn", &mut config.defaults.warn)?;
        }
        if let Some(ex) = doc.get("exemptions") {
            config.exempt_usernames = names(ex, "usernames")?;
            config.exempt_namespaces = names(ex, "namespaces")?;
            config.exempt_runtime_classes = names(ex, "runtimeClasses")?;
        }
        Ok(config)
    }
}

fn invalid(why: &str) -> ConfigError {
    ConfigError::Invalid(why.to_string())
}

fn names(exemptions: &Value, field: &str) -> Result<Vec<String>, ConfigError> {
    let Some(list) = exemptions.get(field) else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| invalid(&format!("exemptions.{field} must be a list of names")))?;
    let mut out: Vec<String> = Vec::new();
    for (i, v) in list.iter().enumerate() {
        let name = v.as_str().filter(|s| !s.is_empty());
        let name = name.ok_or_else(|| invalid(&format!("exemptions.{field}[{i}] must be a non-empty name")))?;
        if out.iter().any(|n| n == name) {
            return Err(invalid(&format!("exemptions.{field}[{i}]: duplicate value {name:?}")));
        }
        out.push(name.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_file_shapes_are_read() {
        let direct = "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\n\
                      defaults: {enforce: baseline, enforce-version: v1.30, warn: restricted}\n\
                      exemptions: {usernames: [ci], namespaces: [kube-system], runtimeClasses: [kata]}\n";
        let c = Config::parse(direct).expect("config");
        assert_eq!(c.defaults.enforce.to_string(), "baseline:v1.30");
        assert_eq!(c.defaults.warn.to_string(), "restricted:latest");
        assert_eq!(c.defaults.audit.to_string(), "privileged:latest");
        assert_eq!(c.exempt_namespaces, vec!["kube-system"]);
        assert_eq!(c.exempt_runtime_classes, vec!["kata"]);
        let wrapped = format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n- name: PodSecurity\n  configuration:\n{}",
            direct.lines().map(|l| format!("    {l}\n")).collect::<String>()
        );
        assert_eq!(Config::parse(&wrapped).expect("wrapped"), c);
    }

    #[test]
    fn mistakes_are_named_in_plain_words() {
        let err = |text: &str| Config::parse(text).expect_err("invalid").to_string();
        let head = "apiVersion: pod-security.admission.config.k8s.io/v1\nkind: PodSecurityConfiguration\n";
        assert!(
            err(&format!("{head}defaults: {{enforce: strict}}"))
                .contains("defaults.enforce: \"strict\" must be one of")
        );
        assert!(err(&format!("{head}defaults: {{audit-version: '1.2'}}")).contains("must be \"latest\" or \"v1.x\""));
        assert!(err(&format!("{head}exemptions: {{usernames: [a, a]}}")).contains("duplicate value \"a\""));
        assert!(err("kind: Something\n").contains("expected kind PodSecurityConfiguration"));
        assert!(err("a: [").contains("not valid YAML"));
    }
}
