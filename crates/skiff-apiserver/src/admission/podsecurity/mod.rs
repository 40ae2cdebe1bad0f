//! The PodSecurity admission plugin (upstream `pod-security-admission`): the Pod Security
//! Standards a namespace asks for through its labels `pod-security.kubernetes.io/<mode>` and
//! `<mode>-version` (modes `enforce`, `audit`, `warn`; levels `privileged`, `baseline`,
//! `restricted`; versions `latest` or `v1.<minor>`), applied as upstream:
//! - pods are refused on create (and on updates that change images or add containers) when they
//!   violate the enforce level: 403 `violates PodSecurity "restricted:latest": …`;
//! - pods and workload templates (ReplicaSets, Deployments, Jobs, …) that violate the warn level
//!   get a `Warning` header `would violate PodSecurity "…": …`; workloads are never refused;
//! - namespace labels are validated (422), and tightening a namespace's enforce level warns
//!   about its existing pods that would be refused.
//!
//! Without a [`Config`] the default policy is `privileged:latest` for every mode and nothing is
//! exempt. The audit mode and the evaluated policy reach the audit log as upstream's annotations
//! (`pod-security.kubernetes.io/enforce-policy`, `audit-violations`, `exempt`). The checks
//! themselves live in [`checks`].

pub mod checks;
mod config;

pub use config::{Config, ConfigError};

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use skiff_api::StatusError;
use skiff_api::status::{GroupKind, GroupResource};
use skiff_api::validation::{FieldError, key};

use self::checks::{Level, MAX_MINOR};
use crate::audit::Level as AuditLevel;
use crate::handlers::{Admission, Ctx};
use crate::objects::{labels, meta_str};
use crate::state::ApiState;

const LABEL_PREFIX: &str = "pod-security.kubernetes.io/";
/// Audit annotation: the enforce policy a pod was checked against.
const ENFORCE_POLICY_ANNOTATION: &str = "pod-security.kubernetes.io/enforce-policy";
/// Audit annotation: what the audit level found.
const AUDIT_VIOLATIONS_ANNOTATION: &str = "pod-security.kubernetes.io/audit-violations";
/// Audit annotation: why the request was exempt (`user`, `namespace`, `runtimeClass`).
const EXEMPT_ANNOTATION: &str = "pod-security.kubernetes.io/exempt";
/// At most this many existing pods are checked when a namespace's enforce level tightens.
const MAX_PODS_TO_CHECK: usize = 3000;

/// A policy version: `latest` or `v1.<minor>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// The newest version the server knows.
    Latest,
    /// `v1.<minor>`.
    Minor(u32),
}

impl Version {
    fn minor(self) -> u32 {
        match self {
            Version::Latest => MAX_MINOR,
            Version::Minor(m) => m,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::Minor(m) => write!(f, "v1.{m}"),
        }
    }
}

/// A level at a version, shown as `restricted:latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version of the level's checks.
    pub version: Version,
}

impl std::fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

const PRIVILEGED_LATEST: LevelVersion = LevelVersion { level: Level::Privileged, version: Version::Latest };

/// The policy of a namespace, one level per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Violations are refused.
    pub enforce: LevelVersion,
    /// Violations are recorded in the audit log.
    pub audit: LevelVersion,
    /// Violations are returned as warnings.
    pub warn: LevelVersion,
}

impl Default for Policy {
    fn default() -> Self {
        Self { enforce: PRIVILEGED_LATEST, audit: PRIVILEGED_LATEST, warn: PRIVILEGED_LATEST }
    }
}

impl Policy {
    fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn].iter().all(|lv| lv.level == Level::Privileged)
    }
}

fn parse_level(value: &str) -> Option<Level> {
    match value {
        "privileged" => Some(Level::Privileged),
        "baseline" => Some(Level::Baseline),
        "restricted" => Some(Level::Restricted),
        _ => None,
    }
}

fn parse_version(value: &str) -> Option<Version> {
    if value == "latest" {
        return Some(Version::Latest);
    }
    let minor = value.strip_prefix("v1.")?;
    let canonical = minor == "0" || (!minor.is_empty() && !minor.starts_with('0'));
    if !canonical || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    minor.parse().ok().map(Version::Minor)
}

/// The policy a namespace's labels ask for over `defaults`, and the label errors. As
/// upstream: a bad enforce level evaluates as `restricted`, bad audit/warn levels as
/// `privileged`, bad versions as `latest`; an enforce level stricter than the warn level also
/// warns at it unless warn is set.
pub fn policy_from_labels(labels: &BTreeMap<String, String>, defaults: &Policy) -> (Policy, Vec<FieldError>) {
    let mut p = *defaults;
    let mut errs = Vec::new();
    let get = |mode: &str| {
        let k = format!("{LABEL_PREFIX}{mode}");
        labels.get(&k).map(|v| (key("metadata.labels", &k), v.as_str()))
    };
    let level = |mode: &str, fallback: Level, errs: &mut Vec<FieldError>| {
        let (field, value) = get(mode)?;
        Some(parse_level(value).ok_or_else(|| {
            errs.push(FieldError::invalid(field, value, "must be one of privileged, baseline, restricted"));
            fallback
        }))
    };
    let version = |mode: &str, errs: &mut Vec<FieldError>| {
        let (field, value) = get(mode)?;
        Some(parse_version(value).unwrap_or_else(|| {
            errs.push(FieldError::invalid(field, value, "must be \"latest\" or \"v1.x\""));
            Version::Latest
        }))
    };
    let enforce = level("enforce", Level::Restricted, &mut errs);
    if let Some(l) = enforce {
        p.enforce.level = l.unwrap_or_else(|fallback| fallback);
    }
    if let Some(v) = version("enforce-version", &mut errs) {
        p.enforce.version = v;
    }
    if let Some(l) = level("audit", Level::Privileged, &mut errs) {
        p.audit.level = l.unwrap_or_else(|fallback| fallback);
    }
    if let Some(v) = version("audit-version", &mut errs) {
        p.audit.version = v;
    }
    let warn = level("warn", Level::Privileged, &mut errs);
    if let Some(l) = warn {
        p.warn.level = l.unwrap_or_else(|fallback| fallback);
    }
    let warn_version = version("warn-version", &mut errs);
    if let Some(v) = warn_version {
        p.warn.version = v;
    }
    if warn.is_none() && matches!(enforce, Some(Ok(_))) && p.enforce.level > p.warn.level {
        p.warn.level = p.enforce.level;
        if warn_version.is_none() {
            p.warn.version = p.enforce.version;
        }
    }
    (p, errs)
}

/// Resources whose objects hold a pod template, and where in the object it is.
fn template_path(group: &str, plural: &str) -> Option<&'static [&'static str]> {
    Some(match (group, plural) {
        ("", "podtemplates") => &["template"],
        ("", "replicationcontrollers")
        | ("apps", "replicasets" | "deployments" | "daemonsets" | "statefulsets")
        | ("batch", "jobs") => &["spec", "template"],
        ("batch", "cronjobs") => &["spec", "jobTemplate", "spec", "template"],
        _ => return None,
    })
}

/// Validating admission of a create (`old` = None) or update of the main resource.
pub async fn admit(
    state: &ApiState,
    ctx: &Ctx,
    adm: &mut Admission,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), StatusError> {
    let config = &state.config.pod_security;
    let (group, plural) = (ctx.storage.group, ctx.storage.plural);
    if group.is_empty() && plural == "namespaces" {
        return admit_namespace(state, adm, old, new);
    }
    let is_pod = group.is_empty() && plural == "pods";
    let template = template_path(group, plural);
    if !is_pod && template.is_none() {
        return Ok(());
    }
    let namespace = ctx.namespace.as_deref().or_else(|| meta_str(new, "namespace")).unwrap_or("");
    if config.exempt_usernames.contains(&ctx.user.name) {
        ctx.audit_annotation(AuditLevel::Metadata, EXEMPT_ANNOTATION, "user".into());
        return Ok(());
    }
    if config.exempt_namespaces.iter().any(|n| n == namespace) {
        ctx.audit_annotation(AuditLevel::Metadata, EXEMPT_ANNOTATION, "namespace".into());
        return Ok(());
    }
    let (policy, label_errs) = policy_from_labels(&namespace_labels(state, namespace)?, &config.defaults);
    let clean = label_errs.is_empty();
    if is_pod {
        if clean && policy.fully_privileged() {
            ctx.audit_annotation(AuditLevel::Metadata, ENFORCE_POLICY_ANNOTATION, PRIVILEGED_LATEST.to_string());
            return Ok(());
        }
        if old.is_some_and(|old| !significant_pod_update(old, new)) {
            return Ok(());
        }
        let (meta, spec) = pod_parts(new).ok_or_else(|| StatusError::bad_request("failed to decode pod"))?;
        let name = meta_str(new, "name").unwrap_or("");
        return evaluate(config, ctx, adm, &policy, &meta, &spec, name, true);
    }
    if clean && policy.warn.level == Level::Privileged && policy.audit.level == Level::Privileged {
        return Ok(());
    }
    let mut node = new;
    for step in template.unwrap_or_default() {
        match node.get(step) {
            Some(v) => node = v,
            None => return Ok(()),
        }
    }
    let Some((meta, spec)) = pod_parts(node) else { return Ok(()) };
    evaluate(config, ctx, adm, &policy, &meta, &spec, "", false)
}

/// Enforce (pods only) and warn for one pod or pod template.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    config: &Config,
    ctx: &Ctx,
    adm: &mut Admission,
    policy: &Policy,
    meta: &ObjectMeta,
    spec: &PodSpec,
    name: &str,
    enforce: bool,
) -> Result<(), StatusError> {
    if spec.runtime_class_name.as_ref().is_some_and(|rc| config.exempt_runtime_classes.contains(rc)) {
        ctx.audit_annotation(AuditLevel::Metadata, EXEMPT_ANNOTATION, "runtimeClass".into());
        return Ok(());
    }
    let run = |lv: LevelVersion| checks::evaluate(lv.level, lv.version.minor(), meta, spec);
    if enforce {
        ctx.audit_annotation(AuditLevel::Metadata, ENFORCE_POLICY_ANNOTATION, policy.enforce.to_string());
        let violations = run(policy.enforce);
        if !violations.is_empty() {
            let why = format!("violates PodSecurity \"{}\": {}", policy.enforce, checks::detail(&violations));
            return Err(StatusError::forbidden(&GroupResource::new(ctx.info.group, ctx.info.plural), name, &why));
        }
    }
    if policy.audit.level != Level::Privileged {
        let violations = run(policy.audit);
        if !violations.is_empty() {
            let why = format!("would violate PodSecurity \"{}\": {}", policy.audit, checks::detail(&violations));
            ctx.audit_annotation(AuditLevel::Metadata, AUDIT_VIOLATIONS_ANNOTATION, why);
        }
    }
    let violations = run(policy.warn);
    if !violations.is_empty() {
        adm.warnings.push(format!("would violate PodSecurity \"{}\": {}", policy.warn, checks::detail(&violations)));
    }
    Ok(())
}

fn pod_parts(obj: &Value) -> Option<(ObjectMeta, PodSpec)> {
    let meta = obj.get("metadata").map(|m| serde_json::from_value(m.clone())).unwrap_or(Ok(ObjectMeta::default()));
    let spec = serde_json::from_value(obj.get("spec")?.clone());
    Some((meta.ok()?, spec.ok()?))
}

/// Whether a pod update changes what the checks judge: the number of (init) containers, an
/// image, or the ephemeral containers (upstream only evaluates such updates).
fn significant_pod_update(old: &Value, new: &Value) -> bool {
    let list = |obj: &Value, field: &str| -> Vec<Value> {
        obj.get("spec").and_then(|s| s.get(field)).and_then(Value::as_array).cloned().unwrap_or_default()
    };
    let image = |c: &Value| c.get("image").cloned();
    for field in ["containers", "initContainers"] {
        let (a, b) = (list(old, field), list(new, field));
        if a.len() != b.len() || a.iter().zip(&b).any(|(x, y)| image(x) != image(y)) {
            return true;
        }
    }
    let old_ephemeral = list(old, "ephemeralContainers");
    list(new, "ephemeralContainers").iter().any(|c| {
        match old_ephemeral.iter().find(|o| o.get("name") == c.get("name")) {
            None => true,
            Some(o) => image(o) != image(c),
        }
    })
}

fn namespace_labels(state: &ApiState, namespace: &str) -> Result<BTreeMap<String, String>, StatusError> {
    let key = format!("/registry/core/namespaces/{namespace}");
    let entry = state.caches.cache("/registry/core/namespaces/").and_then(|c| c.get(&key));
    entry
        .map(|e| e.labels.clone())
        .ok_or_else(|| StatusError::internal(format!("failed to lookup namespace \"{namespace}\"")))
}

/// Namespaces: labels must be valid (on update only when they changed), and a tightened
/// enforce level warns about existing pods.
fn admit_namespace(state: &ApiState, adm: &mut Admission, old: Option<&Value>, new: &Value) -> Result<(), StatusError> {
    let config = &state.config.pod_security;
    let name = meta_str(new, "name").unwrap_or("");
    let new_labels = labels(new);
    let (policy, errs) = policy_from_labels(&new_labels, &config.defaults);
    let invalid = || StatusError::invalid(&GroupKind::new("", "Namespace"), name, &errs);
    let exempt = config.exempt_namespaces.iter().any(|n| n == name);
    let Some(old) = old else {
        if !errs.is_empty() {
            return Err(invalid());
        }
        if exempt {
            adm.warnings.extend(exempt_namespace_warning(name, &policy, &config.defaults, &new_labels));
        }
        return Ok(());
    };
    let (old_policy, old_errs) = policy_from_labels(&labels(old), &config.defaults);
    if !errs.is_empty() && (old_errs.is_empty() || old_errs != errs) {
        return Err(invalid());
    }
    let (new_enforce, old_enforce) = (policy.enforce, old_policy.enforce);
    if new_enforce == old_enforce
        || new_enforce.level == Level::Privileged
        || (new_enforce.version == old_enforce.version && new_enforce.level <= old_enforce.level)
    {
        return Ok(());
    }
    if exempt {
        adm.warnings.extend(exempt_namespace_warning(name, &policy, &config.defaults, &new_labels));
        return Ok(());
    }
    adm.warnings.extend(existing_pod_warnings(state, name, new_enforce));
    Ok(())
}

/// Upstream's warning that an exempt namespace's non-privileged labels are ignored.
fn exempt_namespace_warning(
    namespace: &str,
    policy: &Policy,
    defaults: &Policy,
    labels: &BTreeMap<String, String>,
) -> Option<String> {
    let equivalent =
        |a: &LevelVersion, b: &LevelVersion| (a.level == Level::Privileged && b.level == Level::Privileged) || a == b;
    let same_as_defaults = equivalent(&policy.enforce, &defaults.enforce)
        && equivalent(&policy.audit, &defaults.audit)
        && equivalent(&policy.warn, &defaults.warn);
    if policy.fully_privileged() || same_as_defaults {
        return None;
    }
    let labelled = |mode: &str| {
        labels.contains_key(&format!("{LABEL_PREFIX}{mode}"))
            || labels.contains_key(&format!("{LABEL_PREFIX}{mode}-version"))
    };
    let parts: Vec<String> = [("enforce", policy.enforce), ("audit", policy.audit), ("warn", policy.warn)]
        .into_iter()
        .filter(|(mode, lv)| lv.level != Level::Privileged && labelled(mode))
        .map(|(mode, lv)| format!("{mode}={lv}"))
        .collect();
    Some(format!(
        "namespace \"{namespace}\" is exempt from Pod Security, and the policy ({}) will be ignored",
        parts.join(", ")
    ))
}

/// Upstream's warnings about the pods of `namespace` that `enforce` would refuse: pods of
/// distinct controllers first, at most [`MAX_PODS_TO_CHECK`], identical reasons grouped under
/// the lexically first pod name.
fn existing_pod_warnings(state: &ApiState, namespace: &str, enforce: LevelVersion) -> Vec<String> {
    let Some(cache) = state.caches.cache("/registry/core/pods/") else {
        return vec!["failed to list pods while checking new PodSecurity enforce level".into()];
    };
    let prefix = format!("/registry/core/pods/{namespace}/");
    let snapshot = cache.snapshot();
    let pods: Vec<Value> = snapshot
        .objects
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(_, e)| e.value())
        .collect();
    let total = pods.len();
    let mut seen_controllers = std::collections::HashSet::new();
    let (mut first, mut rest) = (Vec::new(), Vec::new());
    for pod in pods {
        let controller = pod
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|refs| refs.iter().find(|r| r.get("controller") == Some(&Value::Bool(true))))
            .and_then(|r| r.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let repeated = controller.is_some_and(|uid| !seen_controllers.insert(uid));
        if repeated { rest.push(pod) } else { first.push(pod) }
    }
    first.extend(rest);
    first.truncate(MAX_PODS_TO_CHECK);
    let checked = first.len();
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, (String, usize)> = HashMap::new();
    for pod in &first {
        let Some((meta, spec)) = pod_parts(pod) else { continue };
        let violations = checks::evaluate(enforce.level, enforce.version.minor(), &meta, &spec);
        if violations.is_empty() {
            continue;
        }
        let reason = checks::reasons(&violations);
        let name = meta.name.clone().unwrap_or_default();
        match groups.get_mut(&reason) {
            Some((first_name, count)) => {
                if name < *first_name {
                    *first_name = name;
                }
                *count += 1;
            }
            None => {
                order.push(reason.clone());
                groups.insert(reason, (name, 1));
            }
        }
    }
    let mut warnings = Vec::new();
    if checked < total {
        warnings.push(format!(
            "new PodSecurity enforce level only checked against the first {checked} of {total} existing pods"
        ));
    }
    if !order.is_empty() {
        warnings.push(format!(
            "existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level \"{enforce}\""
        ));
    }
    let mut pod_warnings: Vec<String> = order
        .into_iter()
        .map(|reason| {
            let (name, count) = &groups[&reason];
            match count {
                1 => format!("{name}: {reason}"),
                2 => format!("{name} (and 1 other pod): {reason}"),
                n => format!("{name} (and {} other pods): {reason}", n - 1),
            }
        })
        .collect();
    pod_warnings.sort();
    warnings.extend(pod_warnings);
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (format!("{LABEL_PREFIX}{k}"), v.to_string())).collect()
    }

    #[test]
    fn labels_resolve_to_a_policy_as_upstream() {
        let (p, errs) =
            policy_from_labels(&labels(&[("enforce", "baseline"), ("enforce-version", "v1.25")]), &Policy::default());
        assert!(errs.is_empty());
        assert_eq!(p.enforce.to_string(), "baseline:v1.25");
        // warn follows a stricter enforce level, with its version
        assert_eq!(p.warn.to_string(), "baseline:v1.25");
        assert_eq!(p.audit.to_string(), "privileged:latest");
        let (p, _) =
            policy_from_labels(&labels(&[("enforce", "baseline"), ("warn", "restricted")]), &Policy::default());
        assert_eq!(p.warn.to_string(), "restricted:latest");
    }

    #[test]
    fn bad_labels_fail_closed_for_enforce_and_open_for_warn() {
        let (p, errs) = policy_from_labels(
            &labels(&[("warn", "strict"), ("enforce", "nope"), ("enforce-version", "v1.025")]),
            &Policy::default(),
        );
        assert_eq!(p.enforce.to_string(), "restricted:latest");
        assert_eq!(p.warn.level, Level::Privileged);
        let msgs: Vec<String> = errs.iter().map(FieldError::to_string).collect();
        assert_eq!(msgs.len(), 3);
        assert!(msgs[0].starts_with("metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"nope\""));
        assert!(msgs[1].contains("enforce-version]: Invalid value: \"v1.025\": must be \"latest\" or \"v1.x\""));
        assert!(msgs[2].contains("warn]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"));
    }

    #[test]
    fn configured_defaults_apply_to_unlabelled_modes() {
        let defaults = Policy {
            enforce: LevelVersion { level: Level::Baseline, version: Version::Minor(30) },
            ..Policy::default()
        };
        let (p, _) = policy_from_labels(&BTreeMap::new(), &defaults);
        assert_eq!(p, defaults);
        let (p, _) = policy_from_labels(&labels(&[("warn", "restricted")]), &defaults);
        assert_eq!(p.enforce.to_string(), "baseline:v1.30");
        assert_eq!(p.warn.to_string(), "restricted:latest");
    }

    #[test]
    fn exempt_namespaces_are_told_their_labels_are_ignored() {
        let l = labels(&[("enforce", "restricted"), ("audit", "baseline")]);
        let (p, _) = policy_from_labels(&l, &Policy::default());
        assert_eq!(
            exempt_namespace_warning("sys", &p, &Policy::default(), &l).as_deref(),
            Some(
                "namespace \"sys\" is exempt from Pod Security, and the policy (enforce=restricted:latest, \
                  audit=baseline:latest) will be ignored"
            )
        );
        let (p, _) = policy_from_labels(&labels(&[("enforce", "privileged")]), &Policy::default());
        assert_eq!(exempt_namespace_warning("sys", &p, &Policy::default(), &l), None);
    }

    #[test]
    fn versions_parse_like_upstream() {
        assert_eq!(parse_version("latest"), Some(Version::Latest));
        assert_eq!(parse_version("v1.0"), Some(Version::Minor(0)));
        assert_eq!(parse_version("v1.29"), Some(Version::Minor(29)));
        for bad in ["v1.", "v1.01", "1.29", "v2.1", "v1.x", ""] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_image_and_container_changes_are_significant() {
        let pod = |image: &str, eph: bool| {
            let mut p = serde_json::json!({"spec": {"containers": [{"name": "c", "image": image}]}});
            if eph {
                p["spec"]["ephemeralContainers"] = serde_json::json!([{"name": "dbg", "image": "busybox"}]);
            }
            p
        };
        assert!(!significant_pod_update(&pod("a", false), &pod("a", false)));
        assert!(significant_pod_update(&pod("a", false), &pod("b", false)));
        assert!(significant_pod_update(&pod("a", false), &pod("a", true)));
        assert!(!significant_pod_update(&pod("a", true), &pod("a", true)));
    }
}
