//! The audit `Policy` (`audit.k8s.io/v1`): its shape, parsing, the default policy, and which
//! level and omitted stages a request gets (the first matching rule wins, as upstream).
//!
//! What does not live here: events and their writing.

use std::path::Path;

use serde::Deserialize;

/// How much of a request is recorded, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
pub enum Level {
    /// Nothing.
    None,
    /// Request metadata (user, verb, resource, response status), no bodies.
    Metadata,
    /// Metadata and the request body.
    Request,
    /// Metadata, request and response bodies.
    RequestResponse,
}

/// A stage of a request at which events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Stage {
    /// As soon as the request is received (after authentication).
    RequestReceived,
    /// Headers sent, body not yet (long-running requests only).
    ResponseStarted,
    /// The response is complete.
    ResponseComplete,
    /// A panic.
    Panic,
}

/// A `Policy` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `audit.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `Policy`.
    #[serde(default)]
    pub kind: String,
    /// Rules in order; the first one matching decides.
    #[serde(default)]
    pub rules: Vec<PolicyRule>,
    /// Stages no event is written for (added to each rule's).
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Whether `managedFields` are dropped from request and response bodies.
    #[serde(default)]
    pub omit_managed_fields: bool,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// The level of matching requests.
    pub level: Level,
    /// User names (empty: any).
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups, any of which the user must be in (empty: any).
    #[serde(default)]
    pub user_groups: Vec<String>,
    /// Verbs (empty: any).
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Resources (only resource requests match when set).
    #[serde(default)]
    pub resources: Vec<GroupResources>,
    /// Namespaces (`""` for cluster-scoped; only resource requests match when set).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Non-resource paths, a trailing `*` matching a prefix (only non-resource requests match
    /// when set).
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
    /// Stages this rule writes no event for.
    #[serde(default)]
    pub omit_stages: Vec<Stage>,
    /// Overrides the policy's `omitManagedFields`.
    #[serde(default)]
    pub omit_managed_fields: Option<bool>,
}

/// Resources of one group.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupResources {
    /// The group (`""` for core).
    #[serde(default)]
    pub group: String,
    /// `pods`, `pods/log`, `pods/*`, `*/scale`, `*` (empty: every resource of the group).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Object names (empty: any).
    #[serde(default)]
    pub resource_names: Vec<String>,
}

/// Why a policy file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Unreadable.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not a policy.
    #[error("{path}: invalid audit policy: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// What a request is, for matching.
#[derive(Debug, Clone, Default)]
pub struct RequestAttributes<'a> {
    /// User name.
    pub user: &'a str,
    /// The user's groups.
    pub groups: &'a [String],
    /// The request verb.
    pub verb: &'a str,
    /// `Some` for resource requests.
    pub resource: Option<&'a crate::authz::ResourceAttributes>,
    /// The URL path.
    pub path: &'a str,
}

/// The level and omitted stages of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The level.
    pub level: Level,
    /// Stages without events.
    pub omit_stages: Vec<Stage>,
    /// Whether `managedFields` are dropped from bodies.
    pub omit_managed_fields: bool,
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn read(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Io { path: path.display().to_string(), source })?;
        Self::parse(path, &text)
    }

    /// Parses and checks policy text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid { path: path.display().to_string(), message };
        let policy: Policy = serde_saphyr::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if policy.api_version != "audit.k8s.io/v1" {
            return Err(invalid(format!(
                "apiVersion: Unsupported value: {:?}: supported values: \"audit.k8s.io/v1\"",
                policy.api_version
            )));
        }
        if policy.kind != "Policy" {
            return Err(invalid(format!("kind: Unsupported value: {:?}: supported values: \"Policy\"", policy.kind)));
        }
        for (i, rule) in policy.rules.iter().enumerate() {
            if !rule.non_resource_urls.is_empty() && (!rule.resources.is_empty() || !rule.namespaces.is_empty()) {
                return Err(invalid(format!(
                    "rules[{i}].nonResourceURLs: Invalid value: rules cannot apply to both regular resources and non-resource URLs"
                )));
            }
            for (j, url) in rule.non_resource_urls.iter().enumerate() {
                if !url.starts_with('/') || url[..url.len() - 1].contains('*') {
                    return Err(invalid(format!(
                        "rules[{i}].nonResourceURLs[{j}]: Invalid value: {url:?}: non-resource URLs must start with '/' and may only end with '*'"
                    )));
                }
            }
        }
        Ok(policy)
    }

    /// The policy used without `--audit-policy-file`: health and version probes are not
    /// audited, everything else (Secrets, ConfigMaps and token reviews included) at `Metadata`,
    /// so no object body — and no Secret value — ever reaches the log; no `RequestReceived`
    /// events.
    pub fn default_policy() -> Self {
        let rule = |level| PolicyRule {
            level,
            users: Vec::new(),
            user_groups: Vec::new(),
            verbs: Vec::new(),
            resources: Vec::new(),
            namespaces: Vec::new(),
            non_resource_urls: Vec::new(),
            omit_stages: Vec::new(),
            omit_managed_fields: None,
        };
        let mut probes = rule(Level::None);
        probes.non_resource_urls = ["/healthz*", "/livez*", "/readyz*", "/version"].map(String::from).to_vec();
        let mut sensitive = rule(Level::Metadata);
        sensitive.resources = vec![
            GroupResources { resources: vec!["secrets".into(), "configmaps".into()], ..Default::default() },
            GroupResources {
                group: "authentication.k8s.io".into(),
                resources: vec!["tokenreviews".into()],
                ..Default::default()
            },
        ];
        Policy {
            api_version: "audit.k8s.io/v1".into(),
            kind: "Policy".into(),
            rules: vec![probes, sensitive, rule(Level::Metadata)],
            omit_stages: vec![Stage::RequestReceived],
            omit_managed_fields: false,
        }
    }

    /// The level of a request: the first rule matching it, else `None`.
    pub fn evaluate(&self, req: &RequestAttributes<'_>) -> Decision {
        for rule in &self.rules {
            if rule.matches(req) {
                let mut omit_stages = self.omit_stages.clone();
                omit_stages.extend(rule.omit_stages.iter().copied().filter(|s| !self.omit_stages.contains(s)));
                return Decision {
                    level: rule.level,
                    omit_stages,
                    omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
                };
            }
        }
        Decision { level: Level::None, omit_stages: Vec::new(), omit_managed_fields: false }
    }
}

impl PolicyRule {
    fn matches(&self, req: &RequestAttributes<'_>) -> bool {
        if !self.users.is_empty() && !self.users.iter().any(|u| u == req.user) {
            return false;
        }
        if !self.user_groups.is_empty() && !self.user_groups.iter().any(|g| req.groups.contains(g)) {
            return false;
        }
        if !self.verbs.is_empty() && !self.verbs.iter().any(|v| v == req.verb) {
            return false;
        }
        match req.resource {
            Some(res) => {
                if !self.non_resource_urls.is_empty() {
                    return false;
                }
                if !self.namespaces.is_empty() && !self.namespaces.contains(&res.namespace) {
                    return false;
                }
                self.resources.is_empty() || self.resources.iter().any(|gr| gr.matches(res))
            }
            None => {
                if !self.resources.is_empty() || !self.namespaces.is_empty() {
                    return false;
                }
                self.non_resource_urls.is_empty()
                    || self.non_resource_urls.iter().any(|u| match u.strip_suffix('*') {
                        Some(prefix) => req.path.starts_with(prefix),
                        None => req.path == u,
                    })
            }
        }
    }
}

impl GroupResources {
    fn matches(&self, res: &crate::authz::ResourceAttributes) -> bool {
        if self.group != res.group {
            return false;
        }
        if !self.resource_names.is_empty() && !self.resource_names.contains(&res.name) {
            return false;
        }
        if self.resources.is_empty() {
            return true;
        }
        let full = if res.subresource.is_empty() {
            res.resource.clone()
        } else {
            format!("{}/{}", res.resource, res.subresource)
        };
        self.resources.iter().any(|r| {
            if r == "*" || *r == full {
                return true;
            }
            if let Some(sub) = r.strip_prefix("*/") {
                return sub == res.subresource;
            }
            if let Some(base) = r.strip_suffix("/*") {
                return base == res.resource && !res.subresource.is_empty();
            }
            false
        })
    }
}
