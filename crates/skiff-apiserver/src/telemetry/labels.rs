//! The labels of a request's series, derived as upstream's `endpoints/metrics` derives them:
//! the reported verb (`GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `APPLY`, `DELETE`,
//! `CONNECT`, or `other`), the `dry_run` value, the group/version/resource/subresource, the
//! scope (`resource`, `namespace`, `cluster`, or empty for non-resource paths), and which
//! in-flight gauge and long-running gauge a request belongs to.
//!
//! Pure functions over the parsed request; counting lives in [`super::registry`].

use http::Method;

use crate::reqinfo::{Target, Verb};

/// Subresources upstream reports as `CONNECT` and treats as long-running.
const CONNECT_SUBRESOURCES: [&str; 5] = ["log", "exec", "portforward", "attach", "proxy"];

/// The labels of `apiserver_request_total` (less `code`) and `apiserver_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestLabels {
    /// The reported verb.
    pub verb: &'static str,
    /// `""`, `All`, or `invalid` for a `dryRun` value other than `All`.
    pub dry_run: &'static str,
    /// API group (empty for the core group and non-resource paths).
    pub group: String,
    /// API version (empty for non-resource paths).
    pub version: String,
    /// Plural resource (empty for non-resource paths).
    pub resource: String,
    /// Subresource, or empty.
    pub subresource: String,
    /// `resource`, `namespace`, `cluster`, or empty.
    pub scope: &'static str,
}

impl RequestLabels {
    /// The labels of a request to `target` with `method`, `query` and `content_type`.
    pub fn of(method: &Method, target: &Target, query: &str, content_type: Option<&str>) -> Self {
        let dry_run = dry_run(query);
        let Target::Resource(req) = target else {
            let verb = method_verb(method).unwrap_or("other");
            return Self { verb, dry_run, ..Self::empty() };
        };
        let subresource = req.subresource.clone().unwrap_or_default();
        let scope = if req.name.is_some() || req.verb == Verb::Create {
            "resource"
        } else if req.namespace.is_some() {
            "namespace"
        } else {
            "cluster"
        };
        let verb = match method_verb(method) {
            None => "other",
            Some(_) if CONNECT_SUBRESOURCES.contains(&subresource.as_str()) => "CONNECT",
            Some(_) => match req.verb {
                Verb::Get => "GET",
                Verb::List => "LIST",
                Verb::Watch => "WATCH",
                Verb::Create => "POST",
                Verb::Update => "PUT",
                Verb::Patch if is_apply(content_type) => "APPLY",
                Verb::Patch => "PATCH",
                Verb::Delete | Verb::DeleteCollection => "DELETE",
            },
        };
        Self {
            verb,
            dry_run,
            group: req.group.clone(),
            version: req.version.clone(),
            resource: req.resource.clone(),
            subresource,
            scope,
        }
    }

    fn empty() -> Self {
        Self {
            verb: "",
            dry_run: "",
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: "",
        }
    }

    /// Whether the request is long-running (a watch or a connection to a pod or node): it is
    /// left out of the in-flight gauges and the duration histogram, and counted by
    /// `apiserver_longrunning_requests` while its response streams.
    pub fn is_long_running(&self) -> bool {
        matches!(self.verb, "WATCH" | "CONNECT")
    }

    /// The in-flight gauge the request counts in: `readOnly` for reads, `mutating` otherwise.
    pub fn request_kind(&self) -> RequestKind {
        if matches!(self.verb, "GET" | "LIST") { RequestKind::ReadOnly } else { RequestKind::Mutating }
    }
}

/// The two `request_kind`s of `apiserver_current_inflight_requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Reads (`get`, `list`).
    ReadOnly,
    /// Everything else.
    Mutating,
}

impl RequestKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::ReadOnly => "readOnly",
            RequestKind::Mutating => "mutating",
        }
    }
}

/// The upper-case verb of a method upstream reports, `None` for others (reported as `other`).
fn method_verb(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET | Method::HEAD => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => return None,
    })
}

fn is_apply(content_type: Option<&str>) -> bool {
    content_type.and_then(|t| t.split(';').next()).is_some_and(|t| t.trim() == "application/apply-patch+yaml")
}

/// The `dry_run` label: empty without `dryRun`, `All` when every value is `All`, else `invalid`.
fn dry_run(query: &str) -> &'static str {
    if !query.contains("dryRun") {
        return "";
    }
    let mut values = form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k == "dryRun").peekable();
    if values.peek().is_none() {
        return "";
    }
    if values.all(|(_, v)| v == "All") { "All" } else { "invalid" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reqinfo;

    fn labels(method: Method, path: &str, query: &str, content_type: Option<&str>) -> RequestLabels {
        RequestLabels::of(&method, &reqinfo::parse(&method, path, query), query, content_type)
    }

    #[test]
    fn verbs_and_scopes_follow_upstream() {
        let cases = [
            (Method::GET, "/api/v1/namespaces/d/pods", "", None, "LIST", "namespace"),
            (Method::GET, "/api/v1/pods", "", None, "LIST", "cluster"),
            (Method::GET, "/api/v1/namespaces/d/pods/p", "", None, "GET", "resource"),
            (Method::HEAD, "/api/v1/namespaces/d/pods/p", "", None, "GET", "resource"),
            (Method::GET, "/api/v1/namespaces/d/pods", "watch=1", None, "WATCH", "namespace"),
            (Method::POST, "/api/v1/namespaces/d/pods", "", None, "POST", "resource"),
            (Method::PUT, "/api/v1/namespaces/d/pods/p", "", None, "PUT", "resource"),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/w",
                "",
                Some("application/merge-patch+json"),
                "PATCH",
                "resource",
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/d/deployments/w",
                "",
                Some("application/apply-patch+yaml"),
                "APPLY",
                "resource",
            ),
            (Method::DELETE, "/api/v1/namespaces/d/configmaps", "", None, "DELETE", "namespace"),
            (Method::GET, "/api/v1/namespaces/d/pods/p/log", "", None, "CONNECT", "resource"),
            (Method::POST, "/api/v1/namespaces/d/pods/p/exec", "", None, "CONNECT", "resource"),
            (Method::OPTIONS, "/api/v1/pods", "", None, "other", "cluster"),
            (Method::GET, "/healthz", "", None, "GET", ""),
            (Method::GET, "/apis", "", None, "GET", ""),
        ];
        for (method, path, query, content_type, verb, scope) in cases {
            let l = labels(method.clone(), path, query, content_type);
            assert_eq!((l.verb, l.scope), (verb, scope), "{method} {path}?{query}");
        }
    }

    #[test]
    fn resource_labels() {
        let l = labels(Method::PUT, "/apis/apps/v1/namespaces/d/deployments/w/scale", "", None);
        assert_eq!((l.group.as_str(), l.version.as_str(), l.resource.as_str()), ("apps", "v1", "deployments"));
        assert_eq!(l.subresource, "scale");
        let l = labels(Method::GET, "/metrics", "", None);
        assert_eq!((l.group.as_str(), l.version.as_str(), l.resource.as_str()), ("", "", ""));
    }

    #[test]
    fn dry_run_values() {
        assert_eq!(dry_run(""), "");
        assert_eq!(dry_run("dryRun=All"), "All");
        assert_eq!(dry_run("fieldManager=x&dryRun=All&dryRun=All"), "All");
        assert_eq!(dry_run("dryRun=Some"), "invalid");
        assert_eq!(dry_run("notdryRun=All"), "");
    }

    #[test]
    fn long_running_and_kinds() {
        assert!(labels(Method::GET, "/api/v1/pods", "watch=true", None).is_long_running());
        assert!(labels(Method::GET, "/api/v1/namespaces/d/pods/p/log", "", None).is_long_running());
        assert!(!labels(Method::GET, "/api/v1/pods", "", None).is_long_running());
        assert_eq!(labels(Method::GET, "/api/v1/pods", "", None).request_kind(), RequestKind::ReadOnly);
        assert_eq!(labels(Method::POST, "/api/v1/namespaces/d/pods", "", None).request_kind(), RequestKind::Mutating);
    }
}
