//! Authorization: may this user do this verb on this resource or path? The request's
//! [`Attributes`] (upstream `authorizer.Attributes`) go through a chain of [`Authorizer`]s, as
//! kube-apiserver's `--authorization-mode`: members of `system:masters` are allowed before any
//! authorizer runs; the first authorizer that allows or denies decides; when none has an opinion
//! the request is denied with the upstream 403 message ([`forbidden`]).
//!
//! The authorizers themselves live in submodules; who the caller is comes from [`crate::authn`].

pub mod aggregation;
pub mod bootstrap;
pub mod components;
pub mod impersonation;
pub mod node;
pub mod rbac;
pub mod review;
pub mod selectors;

use std::sync::Arc;

use skiff_api::StatusError;
use skiff_api::status::GroupResource;

use crate::authn::{MASTERS_GROUP, UserInfo};
use crate::reqinfo::ResourceRequest;

/// What a resource request addresses, for authorization (upstream's resource attributes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceAttributes {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource (`status`, `log`, …), empty when none.
    pub subresource: String,
    /// Namespace, empty for cluster-scoped requests and requests across all namespaces.
    pub namespace: String,
    /// Object name, empty for collections.
    pub name: String,
    /// The field selector of a list, watch or deletecollection (empty otherwise).
    pub field_selector: selectors::FieldSelector,
    /// The label selector of a list, watch or deletecollection (empty otherwise).
    pub label_selector: selectors::LabelSelector,
}

impl ResourceAttributes {
    /// The attributes of a parsed resource request (its selectors are read from the query by
    /// [`Attributes::with_query`]).
    pub fn from_request(req: &ResourceRequest) -> Self {
        Self {
            group: req.group.clone(),
            version: req.version.clone(),
            resource: req.resource.clone(),
            subresource: req.subresource.clone().unwrap_or_default(),
            namespace: req.namespace.clone().unwrap_or_default(),
            name: req.name.clone().unwrap_or_default(),
            ..Default::default()
        }
    }
}

/// One authorization question.
#[derive(Debug, Clone)]
pub struct Attributes {
    /// Who asks.
    pub user: Arc<UserInfo>,
    /// The verb: a Kubernetes verb for resource requests (`get`, `list`, `watch`, `create`,
    /// `update`, `patch`, `delete`, `deletecollection`, or a special verb such as `impersonate`,
    /// `bind`, `escalate`, `use`), the lower-case HTTP method for non-resource paths.
    pub verb: String,
    /// The resource addressed; `None` for a non-resource path.
    pub resource: Option<ResourceAttributes>,
    /// The request path (for non-resource requests).
    pub path: String,
}

impl Attributes {
    /// Completes the attributes of a list, watch or deletecollection from its `query`, as
    /// upstream's `RequestInfo` does: the field and label selectors, and, for a list or watch
    /// narrowed to one object by a `metadata.name=<name>` field selector, that name (so a node
    /// agent may watch the one Secret its pod mounts).
    pub fn with_query(mut self, query: &str) -> Self {
        if !selectors::verb_has_selectors(&self.verb) {
            return self;
        }
        let Some(r) = self.resource.as_mut() else { return self };
        let q = crate::query::Query::parse(query);
        r.field_selector = selectors::FieldSelector::parse(q.get("fieldSelector").unwrap_or(""));
        r.label_selector = selectors::LabelSelector::parse(q.get("labelSelector").unwrap_or(""));
        if r.name.is_empty() && self.verb != "deletecollection" {
            let name = r.field_selector.requirements.iter().find(|f| {
                f.field == "metadata.name" && f.op == skiff_api::selector::FieldOp::Equals && !f.value.is_empty()
            });
            if let Some(f) = name.filter(|f| !f.value.contains('/') && f.value != "." && f.value != "..") {
                r.name = f.value.clone();
            }
        }
        self
    }
}

/// What an authorizer says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied; no later authorizer is asked. The reason is appended to the 403 message.
    Deny(String),
    /// This authorizer neither allows nor denies; the reason (may be empty) is kept for the
    /// message if nobody allows.
    NoOpinion(String),
}

/// One authorizer of the chain.
pub trait Authorizer: Send + Sync {
    /// Decides about `attrs`.
    fn authorize(&self, attrs: &Attributes) -> Decision;

    /// Decides about `attrs` and, when allowing, says why (upstream's reason of an allowed
    /// decision, e.g. RBAC's `allowed by ClusterRoleBinding …`; empty when there is none).
    /// Asked only where the reason is shown (access reviews, the audit log), so that
    /// [`Authorizer::authorize`] formats nothing.
    fn authorize_explained(&self, attrs: &Attributes) -> (Decision, String) {
        (self.authorize(attrs), String::new())
    }
}

/// The authorization chain.
#[derive(Default)]
pub struct Authorizers {
    chain: Vec<Box<dyn Authorizer>>,
}

impl Authorizers {
    /// A chain of `authorizers`, asked in order.
    pub fn new(chain: Vec<Box<dyn Authorizer>>) -> Self {
        Self { chain }
    }

    /// The decision for `attrs`: `Allow`, or `Deny` with the reasons collected.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        match self.evaluate(attrs) {
            Decision::NoOpinion(why) => Decision::Deny(why),
            decided => decided,
        }
    }

    /// [`Authorizers::authorize`] with the reason of an allow (empty when the deciding
    /// authorizer gives none; members of `system:masters` get none, as upstream).
    pub fn authorize_explained(&self, attrs: &Attributes) -> (Decision, String) {
        match self.evaluate_explained(attrs) {
            (Decision::NoOpinion(why), _) => (Decision::Deny(why), String::new()),
            decided => decided,
        }
    }

    /// The chain's answer as the reviews report it: `NoOpinion` (with the reasons collected)
    /// when no authorizer decided, `Deny` only when one denied explicitly.
    pub fn evaluate(&self, attrs: &Attributes) -> Decision {
        self.run(attrs, false).0
    }

    /// [`Authorizers::evaluate`] with the reason of an allow.
    pub fn evaluate_explained(&self, attrs: &Attributes) -> (Decision, String) {
        self.run(attrs, true)
    }

    fn run(&self, attrs: &Attributes, explain: bool) -> (Decision, String) {
        if attrs.user.in_group(MASTERS_GROUP) {
            return (Decision::Allow, String::new());
        }
        let mut reasons = Vec::new();
        for authorizer in &self.chain {
            let (decision, allowed_because) = if explain {
                authorizer.authorize_explained(attrs)
            } else {
                (authorizer.authorize(attrs), String::new())
            };
            match decision {
                Decision::Allow => return (Decision::Allow, allowed_because),
                Decision::Deny(why) => return (Decision::Deny(why), String::new()),
                Decision::NoOpinion(why) if !why.is_empty() => reasons.push(why),
                Decision::NoOpinion(_) => {}
            }
        }
        (Decision::NoOpinion(reasons.join(", ")), String::new())
    }
}

impl std::fmt::Debug for Authorizers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authorizers({} in the chain)", self.chain.len())
    }
}

/// Allows everything: the chain used until a real authorizer is configured.
#[derive(Debug, Default)]
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _: &Attributes) -> Decision {
        Decision::Allow
    }
}

/// The upstream 403 for a denied request, e.g. `pods "x" is forbidden: User "u" cannot get
/// resource "pods" in API group "" in the namespace "ns"`, with `: <reason>` appended when the
/// authorizers gave one.
pub fn forbidden(attrs: &Attributes, reason: &str) -> StatusError {
    let user = &attrs.user.name;
    let suffix = if reason.is_empty() { String::new() } else { format!(": {reason}") };
    match &attrs.resource {
        None => StatusError::forbidden_message(&format!(
            "User \"{user}\" cannot {} path \"{}\"{suffix}",
            attrs.verb, attrs.path
        )),
        Some(r) => {
            let resource =
                if r.subresource.is_empty() { r.resource.clone() } else { format!("{}/{}", r.resource, r.subresource) };
            let scope = if r.namespace.is_empty() {
                "at the cluster scope".to_string()
            } else {
                format!("in the namespace \"{}\"", r.namespace)
            };
            let why = format!(
                "User \"{user}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}{suffix}",
                attrs.verb, r.group
            );
            StatusError::forbidden(&GroupResource::new(r.group.clone(), r.resource.clone()), &r.name, &why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(user: UserInfo, verb: &str, resource: Option<ResourceAttributes>) -> Attributes {
        Attributes { user: Arc::new(user), verb: verb.into(), resource, path: "/healthz/x".into() }
    }

    struct Fixed(Decision);
    impl Authorizer for Fixed {
        fn authorize(&self, _: &Attributes) -> Decision {
            self.0.clone()
        }
    }

    #[test]
    fn collections_carry_their_selectors_and_a_selected_name() {
        let bob = UserInfo::new("bob".into(), vec![]);
        let pods = ResourceAttributes { resource: "pods".into(), ..Default::default() };
        let ask = |verb: &str, query: &str| attrs(bob.clone(), verb, Some(pods.clone())).with_query(query);
        let list = ask("list", "fieldSelector=spec.nodeName%3Dn1&labelSelector=app%3Dweb");
        let r = list.resource.expect("resource");
        assert!(r.field_selector.requires("spec.nodeName", "n1"));
        assert_eq!(r.label_selector.requirements.len(), 1);
        assert!(r.name.is_empty());
        let one = ask("watch", "fieldSelector=metadata.name%3Dweb").resource.expect("resource");
        assert_eq!(one.name, "web");
        let all = ask("deletecollection", "fieldSelector=metadata.name%3Dweb").resource.expect("resource");
        assert!(all.name.is_empty() && all.field_selector.requires("metadata.name", "web"));
        let get = ask("get", "fieldSelector=spec.nodeName%3Dn1").resource.expect("resource");
        assert!(get.field_selector.requirements.is_empty(), "only collections carry selectors");
        let dotted = ask("list", "fieldSelector=metadata.name%3D..").resource.expect("resource");
        assert!(dotted.name.is_empty());
    }

    #[test]
    fn masters_are_allowed_before_the_chain() {
        let chain = Authorizers::new(vec![Box::new(Fixed(Decision::Deny("no".into())))]);
        let admin = UserInfo::new("a".into(), vec![MASTERS_GROUP.into()]);
        assert_eq!(chain.authorize(&attrs(admin, "get", None)), Decision::Allow);
        let bob = UserInfo::new("bob".into(), vec![]);
        assert_eq!(chain.authorize(&attrs(bob, "get", None)), Decision::Deny("no".into()));
    }

    #[test]
    fn no_opinion_everywhere_denies_with_the_reasons() {
        let chain = Authorizers::new(vec![
            Box::new(Fixed(Decision::NoOpinion(String::new()))),
            Box::new(Fixed(Decision::NoOpinion("RBAC: role \"x\" not found".into()))),
        ]);
        let bob = UserInfo::new("bob".into(), vec![]);
        assert_eq!(
            chain.authorize(&attrs(bob.clone(), "get", None)),
            Decision::Deny("RBAC: role \"x\" not found".into())
        );
        let allowing =
            Authorizers::new(vec![Box::new(Fixed(Decision::NoOpinion(String::new()))), Box::new(AlwaysAllow)]);
        assert_eq!(allowing.authorize(&attrs(bob, "get", None)), Decision::Allow);
    }

    struct Explaining;
    impl Authorizer for Explaining {
        fn authorize(&self, _: &Attributes) -> Decision {
            Decision::Allow
        }
        fn authorize_explained(&self, _: &Attributes) -> (Decision, String) {
            (Decision::Allow, "allowed by a rule".into())
        }
    }

    #[test]
    fn allow_reasons_come_only_when_asked_for() {
        let chain = Authorizers::new(vec![Box::new(Fixed(Decision::NoOpinion("no".into()))), Box::new(Explaining)]);
        let bob = attrs(UserInfo::new("bob".into(), vec![]), "get", None);
        assert_eq!(chain.evaluate_explained(&bob), (Decision::Allow, "allowed by a rule".into()));
        assert_eq!(chain.authorize_explained(&bob), (Decision::Allow, "allowed by a rule".into()));
        assert_eq!(chain.evaluate(&bob), Decision::Allow);
        let admin = attrs(UserInfo::new("a".into(), vec![MASTERS_GROUP.into()]), "get", None);
        assert_eq!(chain.authorize_explained(&admin), (Decision::Allow, String::new()), "masters: no reason");
        let denying = Authorizers::new(vec![Box::new(Fixed(Decision::NoOpinion("no".into())))]);
        assert_eq!(denying.authorize_explained(&bob), (Decision::Deny("no".into()), String::new()));
        assert_eq!(denying.evaluate_explained(&bob), (Decision::NoOpinion("no".into()), String::new()));
    }

    #[test]
    fn forbidden_messages_match_upstream() {
        let bob = UserInfo::new("bob".into(), vec![]);
        let pods = ResourceAttributes { resource: "pods".into(), namespace: "ns".into(), ..Default::default() };
        let e = forbidden(&attrs(bob.clone(), "list", Some(pods)), "");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "pods is forbidden: User \"bob\" cannot list resource \"pods\" in API group \"\" in the namespace \"ns\""
        );
        let log = ResourceAttributes {
            group: "apps".into(),
            resource: "deployments".into(),
            subresource: "scale".into(),
            name: "web".into(),
            ..Default::default()
        };
        let e = forbidden(&attrs(bob.clone(), "update", Some(log)), "no RBAC policy matched");
        assert_eq!(
            e.message,
            "deployments.apps \"web\" is forbidden: User \"bob\" cannot update resource \"deployments/scale\" \
             in API group \"apps\" at the cluster scope: no RBAC policy matched"
        );
        let e = forbidden(&attrs(bob, "get", None), "");
        assert_eq!(e.message, "forbidden: User \"bob\" cannot get path \"/healthz/x\"");
    }
}
