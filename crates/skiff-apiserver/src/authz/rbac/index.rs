//! The RBAC index: every Role's and ClusterRole's rules by name, and every binding by the
//! subject it names (user or group; a ServiceAccount subject is indexed under its user name
//! `system:serviceaccount:<ns>:<name>`), so one decision looks up a handful of hash entries
//! instead of scanning the bindings.
//!
//! Built from the watch caches' objects; objects whose revision did not change since the last
//! build are reused as parsed. How a request is decided with it lives in [`super`].

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use skiff_store::Revision;

use super::rules::Rule;
use crate::authn::UserInfo;
use crate::cache::Entry;

/// The user-name prefix of ServiceAccounts.
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// Which kind of role a binding refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    /// A namespaced Role (only from RoleBindings).
    Role,
    /// A ClusterRole.
    ClusterRole,
}

/// One binding as the index keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Name of the binding.
    pub name: String,
    /// Namespace of a RoleBinding, empty for ClusterRoleBindings.
    pub namespace: String,
    /// Kind of the role referred to.
    pub role_kind: RoleKind,
    /// Name of the role referred to.
    pub role_name: String,
    /// The subjects it binds, as written.
    pub subjects: Vec<Subject>,
}

impl Binding {
    /// How upstream's RBAC names this binding when it grants a request to the subject found
    /// under the index key `key` (`ClusterRoleBinding "b" of ClusterRole "r" to Group "g"`,
    /// `RoleBinding "b/ns" of Role "r" to ServiceAccount "sa/ns"`).
    pub fn describe(&self, key: &str) -> String {
        let role_kind = match self.role_kind {
            RoleKind::Role => "Role",
            RoleKind::ClusterRole => "ClusterRole",
        };
        let subject = self
            .subjects
            .iter()
            .find(|s| subject_key(s, &self.namespace).as_deref() == Some(key))
            .map(|s| describe_subject(s, &self.namespace))
            .unwrap_or_default();
        if self.namespace.is_empty() {
            format!("ClusterRoleBinding {:?} of {role_kind} {:?} to {subject}", self.name, self.role_name)
        } else {
            let name = format!("{}/{}", self.name, self.namespace);
            format!("RoleBinding {name:?} of {role_kind} {:?} to {subject}", self.role_name)
        }
    }
}

/// `User "u"`, `Group "g"`, `ServiceAccount "name/namespace"` (the binding's namespace when
/// the subject names none).
fn describe_subject(subject: &Subject, binding_namespace: &str) -> String {
    if subject.kind == "ServiceAccount" {
        let ns = subject.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
        return format!("{} {:?}", subject.kind, format!("{}/{ns}", subject.name));
    }
    format!("{} {:?}", subject.kind, subject.name)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRole {
    #[serde(default)]
    rules: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRoleRef {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
}

/// A binding subject (`rbac.authorization.k8s.io/v1` `Subject`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    #[serde(default)]
    pub kind: String,
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Namespace (ServiceAccounts).
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBinding {
    role_ref: RawRoleRef,
    #[serde(default)]
    subjects: Option<Vec<Subject>>,
}

/// The index key of a subject: `u:<user>` or `g:<group>`; `None` for unknown kinds.
pub fn subject_key(subject: &Subject, binding_namespace: &str) -> Option<String> {
    match subject.kind.as_str() {
        "User" => Some(format!("u:{}", subject.name)),
        "Group" => Some(format!("g:{}", subject.name)),
        "ServiceAccount" => {
            let ns = subject.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
            Some(format!("u:{SERVICE_ACCOUNT_PREFIX}{ns}:{}", subject.name))
        }
        _ => None,
    }
}

/// The index keys a user is found under.
pub fn user_keys(user: &UserInfo) -> Vec<String> {
    let mut keys = Vec::with_capacity(user.groups.len() + 1);
    keys.push(format!("u:{}", user.name));
    keys.extend(user.groups.iter().map(|g| format!("g:{g}")));
    keys
}

/// A parsed binding: the binding and the keys of its subjects.
#[derive(Debug)]
struct ParsedBinding {
    binding: Arc<Binding>,
    keys: Vec<String>,
}

/// The parsed objects of one resource, by store key, with the revision they were parsed at.
#[derive(Debug)]
struct Memo<T> {
    by_key: HashMap<String, (Revision, Arc<T>)>,
}

impl<T> Default for Memo<T> {
    fn default() -> Self {
        Self { by_key: HashMap::new() }
    }
}

impl<T> Memo<T> {
    /// The parsed form of every entry, reusing unchanged ones from the last build.
    fn refresh<'a>(
        &mut self,
        entries: impl Iterator<Item = &'a Arc<Entry>>,
        parse: impl Fn(&Entry) -> Option<T>,
    ) -> Vec<(Arc<Entry>, Arc<T>)> {
        let mut next = HashMap::new();
        let mut out = Vec::new();
        for e in entries {
            let parsed = match self.by_key.remove(&e.key) {
                Some((rev, p)) if rev == e.revision => Some(p),
                _ => parse(e).map(Arc::new),
            };
            if let Some(p) = parsed {
                next.insert(e.key.clone(), (e.revision, p.clone()));
                out.push((e.clone(), p));
            }
        }
        self.by_key = next;
        out
    }
}

/// Parsing state kept between builds.
#[derive(Debug, Default)]
pub struct Builder {
    roles: Memo<Vec<Rule>>,
    cluster_roles: Memo<Vec<Rule>>,
    bindings: Memo<ParsedBinding>,
    cluster_bindings: Memo<ParsedBinding>,
}

fn parse_rules(e: &Entry) -> Option<Vec<Rule>> {
    match serde_json::from_slice::<RawRole>(&e.json) {
        Ok(r) => Some(r.rules.unwrap_or_default()),
        Err(err) => {
            tracing::warn!(key = %e.key, error = %err, "ignoring an undecodable RBAC role");
            None
        }
    }
}

fn parse_binding(e: &Entry) -> Option<ParsedBinding> {
    let raw = match serde_json::from_slice::<RawBinding>(&e.json) {
        Ok(r) => r,
        Err(err) => {
            tracing::warn!(key = %e.key, error = %err, "ignoring an undecodable RBAC binding");
            return None;
        }
    };
    let role_kind = match raw.role_ref.kind.as_str() {
        "Role" if !e.namespace.is_empty() => RoleKind::Role,
        "ClusterRole" => RoleKind::ClusterRole,
        _ => return None,
    };
    let subjects = raw.subjects.unwrap_or_default();
    let keys = subjects.iter().filter_map(|s| subject_key(s, &e.namespace)).collect();
    let binding = Binding {
        name: e.name.clone(),
        namespace: e.namespace.clone(),
        role_kind,
        role_name: raw.role_ref.name,
        subjects,
    };
    Some(ParsedBinding { binding: Arc::new(binding), keys })
}

/// The objects an index is built from.
pub struct Sources<'a> {
    /// Roles.
    pub roles: Vec<&'a Arc<Entry>>,
    /// ClusterRoles.
    pub cluster_roles: Vec<&'a Arc<Entry>>,
    /// RoleBindings.
    pub bindings: Vec<&'a Arc<Entry>>,
    /// ClusterRoleBindings.
    pub cluster_bindings: Vec<&'a Arc<Entry>>,
}

/// Bindings by subject key.
type BySubject = HashMap<String, Vec<Arc<Binding>>>;

/// The index.
#[derive(Debug, Default)]
pub struct Index {
    roles: HashMap<(String, String), Arc<Vec<Rule>>>,
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    bindings: HashMap<String, BySubject>,
    cluster_bindings: BySubject,
}

impl Builder {
    /// Builds the index of `sources`.
    pub fn build(&mut self, sources: Sources<'_>) -> Index {
        let mut index = Index::default();
        for (e, rules) in self.roles.refresh(sources.roles.into_iter(), parse_rules) {
            index.roles.insert((e.namespace.clone(), e.name.clone()), rules);
        }
        for (e, rules) in self.cluster_roles.refresh(sources.cluster_roles.into_iter(), parse_rules) {
            index.cluster_roles.insert(e.name.clone(), rules);
        }
        for (e, parsed) in self.bindings.refresh(sources.bindings.into_iter(), parse_binding) {
            let by_subject = index.bindings.entry(e.namespace.clone()).or_default();
            for key in &parsed.keys {
                by_subject.entry(key.clone()).or_default().push(parsed.binding.clone());
            }
        }
        for (_, parsed) in self.cluster_bindings.refresh(sources.cluster_bindings.into_iter(), parse_binding) {
            for key in &parsed.keys {
                index.cluster_bindings.entry(key.clone()).or_default().push(parsed.binding.clone());
            }
        }
        index
    }
}

/// What a visit finds for one binding: the rules of its role, or why there are none.
pub type Found<'a> = Result<&'a [Rule], String>;

impl Index {
    /// The rules of a ClusterRole.
    pub fn cluster_role(&self, name: &str) -> Option<&Arc<Vec<Rule>>> {
        self.cluster_roles.get(name)
    }

    /// The rules of a Role.
    pub fn role(&self, namespace: &str, name: &str) -> Option<&Arc<Vec<Rule>>> {
        self.roles.get(&(namespace.to_string(), name.to_string()))
    }

    fn resolve(&self, b: &Binding) -> Found<'_> {
        match b.role_kind {
            RoleKind::ClusterRole => self
                .cluster_roles
                .get(&b.role_name)
                .map(|r| r.as_slice())
                .ok_or_else(|| format!("clusterrole.rbac.authorization.k8s.io {:?} not found", b.role_name)),
            RoleKind::Role => self
                .roles
                .get(&(b.namespace.clone(), b.role_name.clone()))
                .map(|r| r.as_slice())
                .ok_or_else(|| format!("role.rbac.authorization.k8s.io {:?} not found", b.role_name)),
        }
    }

    /// Calls `visit` with the rules of every binding of `user` that applies in `namespace`
    /// (ClusterRoleBindings always; RoleBindings of `namespace` when it is not empty), each
    /// binding once, until `visit` returns `false`. `visit` also gets the index key the user
    /// was found under (for [`Binding::describe`]).
    pub fn visit(&self, user: &UserInfo, namespace: &str, mut visit: impl FnMut(&Binding, &str, Found<'_>) -> bool) {
        let keys = user_keys(user);
        let mut seen: Vec<*const Binding> = Vec::new();
        let mut go = |by_subject: &BySubject| -> bool {
            for key in &keys {
                for b in by_subject.get(key).into_iter().flatten() {
                    let ptr = Arc::as_ptr(b);
                    if seen.contains(&ptr) {
                        continue;
                    }
                    seen.push(ptr);
                    if !visit(b, key, self.resolve(b)) {
                        return false;
                    }
                }
            }
            true
        };
        if !go(&self.cluster_bindings) {
            return;
        }
        if !namespace.is_empty()
            && let Some(by_subject) = self.bindings.get(namespace)
        {
            go(by_subject);
        }
    }
}
