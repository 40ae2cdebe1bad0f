//! The routing table: which backend serves a request, given its host and path, as the Ingress
//! API defines matching. Built whole from the watched objects by [`crate::build`] and swapped
//! atomically; lookups never lock.
//!
//! Host groups are tried in the order exact host, wildcard host (`*.foo.com` matches exactly one
//! more label), rules without a host; the first group with a matching path wins. Inside a group
//! the longest rule path wins and `Exact` beats `Prefix` on equal length; `Prefix` matches whole
//! path elements (`/foo` matches `/foo` and `/foo/bar`, not `/foobar`) and
//! `ImplementationSpecific` is treated as `Prefix`. A request matching no rule goes to the
//! default backend, if any.
//!
//! What does not live here: building the table from objects ([`crate::build`]), TLS
//! ([`crate::tls`]), forwarding ([`crate::proxy`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use crate::tls::SniTable;

/// How a rule's path is compared with a request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// The whole path, case-sensitively.
    Exact,
    /// Whole `/`-separated elements of the path (also `ImplementationSpecific`).
    Prefix,
}

/// A Service port resolved to its ready endpoints.
#[derive(Debug)]
pub struct Backend {
    /// A stable identifier (a hash of namespace, Service and port), used in connection pool keys.
    pub id: u64,
    /// `namespace/service:port`, for logs.
    pub name: String,
    /// The ready endpoints' addresses and target ports.
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    /// A backend named `name` with `endpoints`.
    pub fn new(name: String, endpoints: Vec<SocketAddr>) -> Self {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        name.hash(&mut h);
        Self { id: h.finish(), name, endpoints, next: AtomicUsize::new(0) }
    }

    /// The index of the next endpoint in round-robin order (`None` without endpoints).
    pub fn pick(&self) -> Option<usize> {
        if self.endpoints.is_empty() {
            return None;
        }
        Some(self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len())
    }
}

/// Where a matched request goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// A Service port (possibly without ready endpoints: 503).
    Backend(Arc<Backend>),
    /// A backend that cannot be served (missing Service or port, a resource backend): 503.
    Unavailable(String),
}

/// One path rule of a host group.
#[derive(Debug, Clone)]
pub struct PathRule {
    /// The rule's path as written.
    pub path: String,
    /// How it matches.
    pub kind: PathKind,
    /// Where matching requests go.
    pub target: Target,
}

impl PathRule {
    fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => self.path == path,
            PathKind::Prefix => prefix_matches(&self.path, path),
        }
    }
}

/// Whether `rule` matches `path` element-wise (a trailing `/` of either is ignored).
pub fn prefix_matches(rule: &str, path: &str) -> bool {
    let rule = rule.trim_end_matches('/');
    if rule.is_empty() {
        return true;
    }
    match path.strip_prefix(rule) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path rules of one host, in precedence order.
#[derive(Debug, Clone, Default)]
pub struct HostRules {
    rules: Vec<PathRule>,
}

impl HostRules {
    /// Adds a rule; an equal (path, kind) already present keeps the earlier one.
    pub fn push(&mut self, rule: PathRule) {
        if self.rules.iter().any(|r| r.path == rule.path && r.kind == rule.kind) {
            return;
        }
        self.rules.push(rule);
        // Stable: among equals, the earlier (older Ingress) stays first.
        self.rules.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then_with(|| (a.kind == PathKind::Prefix).cmp(&(b.kind == PathKind::Prefix)))
        });
    }

    fn find(&self, path: &str) -> Option<&Target> {
        self.rules.iter().find(|r| r.matches(path)).map(|r| &r.target)
    }
}

/// The whole routing state: HTTP rules and TLS certificates.
#[derive(Debug, Default)]
pub struct Table {
    /// Rules of exact hosts (lowercase).
    pub exact: HashMap<String, HostRules>,
    /// Rules of wildcard hosts, keyed by the suffix after `*.` (lowercase).
    pub wildcard: HashMap<String, HostRules>,
    /// Rules without a host.
    pub any: HostRules,
    /// The default backend (`spec.defaultBackend` of the oldest Ingress that has one).
    pub default: Option<Target>,
    /// Backends by id (for the connector's retries).
    pub backends: HashMap<u64, Arc<Backend>>,
    /// Certificates by SNI name.
    pub tls: SniTable<Arc<rustls::sign::CertifiedKey>>,
}

impl Table {
    /// The rules of `host` (exact or `*.`-prefixed; empty for rules without a host).
    pub fn host_rules(&mut self, host: &str) -> &mut HostRules {
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            &mut self.any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            self.wildcard.entry(suffix.to_string()).or_default()
        } else {
            self.exact.entry(host).or_default()
        }
    }

    /// Where a request for `host` (no port, any case) and `path` goes; `None`: nowhere (404).
    pub fn route(&self, host: &str, path: &str) -> Option<&Target> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let exact = self.exact.get(&host);
        let wildcard = host
            .split_once('.')
            .and_then(|(first, rest)| (!first.is_empty()).then(|| self.wildcard.get(rest)).flatten());
        exact
            .and_then(|r| r.find(path))
            .or_else(|| wildcard.and_then(|r| r.find(path)))
            .or_else(|| self.any.find(path))
            .or(self.default.as_ref())
    }
}

/// The host of a `Host` header or `:authority`: without port, brackets of IPv6 kept off.
pub fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The current table, shared by the listeners and swapped whole by the sync loop.
#[derive(Debug, Clone, Default)]
pub struct TableHandle(Arc<RwLock<Arc<Table>>>);

impl TableHandle {
    /// The current table.
    pub fn load(&self) -> Arc<Table> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the table.
    pub fn store(&self, table: Table) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn backend(name: &str) -> Target {
        Target::Backend(Arc::new(Backend::new(name.into(), vec![])))
    }

    fn name(t: Option<&Target>) -> Option<String> {
        match t? {
            Target::Backend(b) => Some(b.name.clone()),
            Target::Unavailable(why) => Some(format!("unavailable: {why}")),
        }
    }

    fn rule(path: &str, kind: PathKind, to: &str) -> PathRule {
        PathRule { path: path.into(), kind, target: backend(to) }
    }

    #[test]
    fn prefix_matches_whole_elements() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/foo", "/foo"));
        assert!(prefix_matches("/foo", "/foo/"));
        assert!(prefix_matches("/foo", "/foo/bar"));
        assert!(!prefix_matches("/foo", "/foobar"));
        assert!(prefix_matches("/foo/", "/foo"));
        assert!(prefix_matches("/aaa/bb", "/aaa/bb/ccc"));
        assert!(!prefix_matches("/aaa/bb", "/aaa/bbb"));
        assert!(!prefix_matches("/foo", "/"));
    }

    #[test]
    fn longest_path_wins_and_exact_beats_prefix() {
        let mut t = Table::default();
        let r = t.host_rules("foo.com");
        r.push(rule("/", PathKind::Prefix, "root"));
        r.push(rule("/api", PathKind::Prefix, "api-prefix"));
        r.push(rule("/api", PathKind::Exact, "api-exact"));
        r.push(rule("/api/v1", PathKind::Prefix, "v1"));
        assert_eq!(name(t.route("foo.com", "/api")).unwrap(), "api-exact");
        assert_eq!(name(t.route("foo.com", "/api/")).unwrap(), "api-prefix");
        assert_eq!(name(t.route("foo.com", "/api/v1/x")).unwrap(), "v1");
        assert_eq!(name(t.route("foo.com", "/apiv1")).unwrap(), "root");
        assert_eq!(name(t.route("FOO.com.", "/x")).unwrap(), "root");
    }

    #[test]
    fn exact_path_does_not_match_a_trailing_slash() {
        let mut t = Table::default();
        t.host_rules("").push(rule("/foo", PathKind::Exact, "foo"));
        assert!(t.route("x", "/foo").is_some());
        assert!(t.route("x", "/foo/").is_none());
    }

    #[test]
    fn hosts_exact_then_wildcard_then_any_then_default() {
        let mut t = Table::default();
        t.host_rules("a.foo.com").push(rule("/a", PathKind::Prefix, "exact"));
        t.host_rules("*.foo.com").push(rule("/", PathKind::Prefix, "wild"));
        t.host_rules("").push(rule("/any", PathKind::Prefix, "any"));
        assert_eq!(name(t.route("a.foo.com", "/a/b")).unwrap(), "exact");
        // The exact host has no matching path: the wildcard's rules apply.
        assert_eq!(name(t.route("a.foo.com", "/b")).unwrap(), "wild");
        assert_eq!(name(t.route("b.foo.com", "/")).unwrap(), "wild");
        // One label only.
        assert_eq!(name(t.route("x.b.foo.com", "/")), None);
        assert_eq!(name(t.route("foo.com", "/")), None);
        assert_eq!(name(t.route("foo.com", "/any/x")).unwrap(), "any");
        t.default = Some(backend("default"));
        assert_eq!(name(t.route("x.b.foo.com", "/")).unwrap(), "default");
        assert_eq!(name(t.route("other", "/nothing")).unwrap(), "default");
    }

    #[test]
    fn the_first_equal_rule_is_kept() {
        let mut t = Table::default();
        t.host_rules("h").push(rule("/", PathKind::Prefix, "older"));
        t.host_rules("h").push(rule("/", PathKind::Prefix, "newer"));
        t.host_rules("h").push(rule("/", PathKind::Exact, "exact"));
        assert_eq!(name(t.route("h", "/x")).unwrap(), "older");
        assert_eq!(name(t.route("h", "/")).unwrap(), "exact");
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("foo.com:8080"), "foo.com");
        assert_eq!(strip_port("foo.com"), "foo.com");
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("10.0.0.1:80"), "10.0.0.1");
    }

    #[test]
    fn round_robin_cycles() {
        let b = Backend::new("b".into(), vec!["10.0.0.1:80".parse().unwrap(), "10.0.0.2:80".parse().unwrap()]);
        let picks: Vec<_> = (0..4).map(|_| b.pick().unwrap()).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
        assert_eq!(Backend::new("e".into(), vec![]).pick(), None);
    }
}
