//! Parsing request paths into what they address (upstream `RequestInfo`).
//!
//! Only the URL shape lives here: which API group, version, namespace, resource, name and
//! subresource a path names, and which verb the method plus query mean. Whether the resource
//! exists is decided later against the catalogue.

use http::Method;

/// What a resource request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRequest {
    /// API group; empty for the legacy core group (`/api/v1`).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Plural resource name.
    pub resource: String,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`, `finalize`, `log`, …), if any.
    pub subresource: Option<String>,
    /// The Kubernetes verb.
    pub verb: Verb,
}

/// Kubernetes verbs derived from the HTTP method and path shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET on an object.
    Get,
    /// GET on a collection.
    List,
    /// GET with `watch=true`.
    Watch,
    /// POST on a collection.
    Create,
    /// PUT on an object.
    Update,
    /// PATCH on an object.
    Patch,
    /// DELETE on an object.
    Delete,
    /// DELETE on a collection.
    DeleteCollection,
}

impl Verb {
    /// The verb's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A resource request under `/api/v1` or `/apis/{group}/{version}`.
    Resource(ResourceRequest),
    /// `/api` (legacy core discovery).
    CoreDiscovery,
    /// `/apis` (group list).
    GroupsDiscovery,
    /// `/apis/{group}`.
    GroupDiscovery(String),
    /// `/api/{v}` or `/apis/{group}/{version}`.
    GroupVersionDiscovery(String, String),
    /// Anything else (`/version`, `/healthz`, `/openapi/...`): handled by path.
    NonResource,
}

/// Whether the query string asks for a watch (`watch=true|1`, anything but `0`/`false`).
pub fn is_watch(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes())
        .any(|(k, v)| k == "watch" && !(v == "0" || v.eq_ignore_ascii_case("false")))
}

/// Parses a request into its [`Target`].
pub fn parse(method: &Method, path: &str, query: &str) -> Target {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api"] => return Target::CoreDiscovery,
        ["apis"] => return Target::GroupsDiscovery,
        ["api", v] => return Target::GroupVersionDiscovery(String::new(), (*v).to_string()),
        ["apis", g] => return Target::GroupDiscovery((*g).to_string()),
        ["apis", g, v] => return Target::GroupVersionDiscovery((*g).to_string(), (*v).to_string()),
        ["api", v, rest @ ..] => (String::new(), (*v).to_string(), rest),
        ["apis", g, v, rest @ ..] => ((*g).to_string(), (*v).to_string(), rest),
        _ => return Target::NonResource,
    };
    // {resource} | {resource}/{name}[/{sub}] | namespaces/{ns}/{resource}[/{name}[/{sub}]]
    let (namespace, parts): (Option<String>, &[&str]) = match rest {
        ["namespaces", ns, resource, tail @ ..] if !matches!(*resource, "status" | "finalize") => {
            let mut parts = vec![*resource];
            parts.extend_from_slice(tail);
            return finish(method, query, group, version, Some((*ns).to_string()), &parts);
        }
        other => (None, other),
    };
    finish(method, query, group, version, namespace, parts)
}

fn finish(
    method: &Method,
    query: &str,
    group: String,
    version: String,
    namespace: Option<String>,
    parts: &[&str],
) -> Target {
    let (resource, name, subresource) = match parts {
        [r] => ((*r).to_string(), None, None),
        [r, n] => ((*r).to_string(), Some((*n).to_string()), None),
        [r, n, s] => ((*r).to_string(), Some((*n).to_string()), Some((*s).to_string())),
        // `…/{name}/proxy/{path…}`: the rest is the proxied path.
        [r, n, "proxy", ..] => ((*r).to_string(), Some((*n).to_string()), Some("proxy".to_string())),
        _ => return Target::NonResource,
    };
    let collection = name.is_none();
    let verb = match *method {
        Method::GET | Method::HEAD if is_watch(query) => Verb::Watch,
        Method::GET | Method::HEAD if collection => Verb::List,
        Method::GET | Method::HEAD => Verb::Get,
        Method::POST => Verb::Create,
        Method::PUT => Verb::Update,
        Method::PATCH => Verb::Patch,
        Method::DELETE if collection => Verb::DeleteCollection,
        Method::DELETE => Verb::Delete,
        // Other methods are refused with 405 before the verb is used.
        _ => Verb::Get,
    };
    Target::Resource(ResourceRequest { group, version, namespace, resource, name, subresource, verb })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(method: Method, path: &str, query: &str) -> ResourceRequest {
        match parse(&method, path, query) {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn parses_resource_paths() {
        let r = res(Method::GET, "/api/v1/namespaces/default/pods", "");
        assert_eq!((r.namespace.as_deref(), r.resource.as_str(), r.verb), (Some("default"), "pods", Verb::List));
        let r = res(Method::GET, "/api/v1/namespaces/default/pods/p1/log", "");
        assert_eq!((r.name.as_deref(), r.subresource.as_deref()), (Some("p1"), Some("log")));
        let r = res(Method::GET, "/apis/apps/v1/deployments", "watch=1");
        assert_eq!((r.group.as_str(), r.verb), ("apps", Verb::Watch));
        let r = res(Method::GET, "/api/v1/namespaces", "watch=false");
        assert_eq!((r.resource.as_str(), r.verb, r.namespace), ("namespaces", Verb::List, None));
        let r = res(Method::GET, "/api/v1/namespaces/kube-system", "");
        assert_eq!((r.resource.as_str(), r.name.as_deref(), r.verb), ("namespaces", Some("kube-system"), Verb::Get));
        let r = res(Method::PUT, "/api/v1/namespaces/x/finalize", "");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref()),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let r = res(Method::DELETE, "/api/v1/namespaces/x/configmaps", "");
        assert_eq!(r.verb, Verb::DeleteCollection);
        let r = res(Method::PATCH, "/apis/apps/v1/namespaces/d/deployments/w/scale", "");
        assert_eq!((r.verb, r.subresource.as_deref()), (Verb::Patch, Some("scale")));
        let r = res(Method::GET, "/api/v1/nodes/n1/proxy/stats/summary", "");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.subresource.as_deref(), r.verb),
            ("nodes", Some("n1"), Some("proxy"), Verb::Get)
        );
    }

    #[test]
    fn parses_discovery_paths() {
        assert_eq!(parse(&Method::GET, "/api", ""), Target::CoreDiscovery);
        assert_eq!(parse(&Method::GET, "/apis/", ""), Target::GroupsDiscovery);
        assert_eq!(parse(&Method::GET, "/apis/apps", ""), Target::GroupDiscovery("apps".into()));
        assert_eq!(parse(&Method::GET, "/api/v1", ""), Target::GroupVersionDiscovery(String::new(), "v1".into()));
        assert_eq!(parse(&Method::GET, "/version", ""), Target::NonResource);
        assert_eq!(parse(&Method::GET, "/api/v1/a/b/c/d", ""), Target::NonResource);
    }
}
