//! The RBAC authorizer (upstream `--authorization-mode=RBAC`): a request is allowed when a rule
//! of a Role or ClusterRole bound to the user (by name, by one of its groups, or as a
//! ServiceAccount) matches it; otherwise it has no opinion, with the reason
//! `RBAC: role.rbac.authorization.k8s.io "x" not found` when a binding names a missing role.
//!
//! Roles and bindings come from the API server's watch caches. The [`index::Index`] is rebuilt
//! lazily when one of the four caches applied a change since the last build (checked with four
//! atomic-cheap reads per request), so a decision never reads the store.
//!
//! Rule matching lives in [`rules`], the index in [`index`], escalation checks in
//! [`escalation`], the default policy in [`crate::authz::bootstrap`].

pub mod escalation;
pub mod index;
pub mod rules;

use std::sync::{Arc, Mutex, RwLock};

use skiff_store::Revision;

use self::index::{Builder, Index, Sources};
use self::rules::Rule;
use super::{Attributes, Authorizer, Decision};
use crate::authn::UserInfo;
use crate::cache::{ResourceCache, WatchCaches};

/// Key prefixes of the four RBAC resources, in [`Stamp`] order.
const PREFIXES: [&str; 4] = [
    "/registry/rbac.authorization.k8s.io/roles/",
    "/registry/rbac.authorization.k8s.io/clusterroles/",
    "/registry/rbac.authorization.k8s.io/rolebindings/",
    "/registry/rbac.authorization.k8s.io/clusterrolebindings/",
];

/// The applied revision of each of the four caches an index was built at.
type Stamp = [Revision; 4];

struct Built {
    stamp: Stamp,
    index: Arc<Index>,
}

/// The RBAC authorizer.
pub struct Rbac {
    caches: Vec<Arc<ResourceCache>>,
    current: RwLock<Arc<Built>>,
    builder: Mutex<Builder>,
}

impl std::fmt::Debug for Rbac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rbac")
    }
}

/// Aggregates error messages as upstream's `utilerrors.NewAggregate` prints them (duplicates
/// dropped; one message alone, several as `[a, b]`).
fn aggregate(errors: &[String]) -> String {
    let mut unique: Vec<&String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.as_slice() {
        [one] => one.to_string(),
        many => format!("[{}]", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
    }
}

impl Rbac {
    /// An authorizer over the RBAC objects of `caches`.
    pub fn new(caches: &WatchCaches) -> Self {
        let caches = PREFIXES.iter().filter_map(|p| caches.cache(p)).collect();
        let empty = Built { stamp: [Revision::MAX; 4], index: Arc::default() };
        Self { caches, current: RwLock::new(Arc::new(empty)), builder: Mutex::default() }
    }

    fn stamp(&self) -> Stamp {
        let mut stamp = [0; 4];
        for (s, c) in stamp.iter_mut().zip(&self.caches) {
            *s = c.applied();
        }
        stamp
    }

    /// The index as of the caches' current contents.
    pub fn index(&self) -> Arc<Index> {
        let stamp = self.stamp();
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.stamp == stamp {
                return current.index.clone();
            }
        }
        let mut builder = self.builder.lock().unwrap_or_else(|p| p.into_inner());
        let stamp = self.stamp();
        {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            if current.stamp == stamp {
                return current.index.clone();
            }
        }
        let snapshots: Vec<_> = self.caches.iter().map(|c| c.snapshot()).collect();
        let pick = |i: usize| snapshots.get(i).map(|s| s.objects.values().collect()).unwrap_or_default();
        let index = Arc::new(builder.build(Sources {
            roles: pick(0),
            cluster_roles: pick(1),
            bindings: pick(2),
            cluster_bindings: pick(3),
        }));
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Built { stamp, index: index.clone() });
        index
    }

    /// Every rule `user` holds in `namespace` (cluster-wide ones included) and the errors met
    /// (bindings to missing roles).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<Rule>, Vec<String>) {
        let index = self.index();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        index.visit(user, namespace, |_, _, found| {
            match found {
                Ok(r) => rules.extend_from_slice(r),
                Err(e) => errors.push(e),
            }
            true
        });
        (rules, errors)
    }
}

/// Whether `attrs` is a `get` of a pod's `exec`, `attach` or `portforward` (a WebSocket
/// upgrade), which upstream also authorizes as `create`.
pub fn needs_create_too(attrs: &Attributes) -> bool {
    attrs.verb == "get"
        && attrs.resource.as_ref().is_some_and(|r| {
            r.group.is_empty()
                && r.resource == "pods"
                && matches!(r.subresource.as_str(), "exec" | "attach" | "portforward")
        })
}

/// RBAC's decision about `attrs` over `index`; with `explain`, an allow also says which binding
/// granted it (upstream's `RBAC: allowed by …`), otherwise the reason of an allow is empty so
/// that the request path formats nothing.
pub fn decide(index: &Index, attrs: &Attributes, explain: bool) -> (Decision, String) {
    let namespace = attrs.resource.as_ref().map(|r| r.namespace.as_str()).unwrap_or("");
    let mut granted_by = None;
    let mut errors = Vec::new();
    index.visit(&attrs.user, namespace, |binding, key, found| {
        match found {
            Ok(rules) if rules::any_allows(rules, attrs) => {
                granted_by =
                    Some(if explain { format!("RBAC: allowed by {}", binding.describe(key)) } else { String::new() });
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
        granted_by.is_none()
    });
    match granted_by {
        Some(reason) => (Decision::Allow, reason),
        None if errors.is_empty() => (Decision::NoOpinion(String::new()), String::new()),
        None => (Decision::NoOpinion(format!("RBAC: {}", aggregate(&errors))), String::new()),
    }
}

impl Authorizer for Arc<Rbac> {
    fn authorize(&self, attrs: &Attributes) -> Decision {
        decide(&self.index(), attrs, false).0
    }

    fn authorize_explained(&self, attrs: &Attributes) -> (Decision, String) {
        decide(&self.index(), attrs, true)
    }
}

#[cfg(test)]
mod tests;
