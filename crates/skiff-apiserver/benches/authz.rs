//! Authentication + authorization overhead per request with 1,000 RoleBindings:
//! `cargo bench -p skiff-apiserver --bench authz`.
//!
//! Writes the default ClusterRoles and ClusterRoleBindings plus 1,000 RoleBindings (one user
//! each, spread over 50 namespaces) into a fresh store, opens the watch caches and the RBAC
//! authorizer over them as the server does, then times, per request, what `routes::route` does
//! before a handler runs: authenticating a client certificate (or a bearer token) and asking the
//! authorization chain. The certificate lines compare parsing the certificate on every request
//! (what the server did before) with the identity parsed once per connection (what it does now).
//! Prints p50/p99 in microseconds as JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use serde_json::{Value, json};
use skiff_apiserver::authn::{self, PeerCertificate, TokenAuthenticator};
use skiff_apiserver::authz::rbac::Rbac;
use skiff_apiserver::authz::{Attributes, Authorizers, Decision, ResourceAttributes, bootstrap};
use skiff_apiserver::cache::WatchCaches;
use skiff_store::{RedbConfig, RedbStore, Store, StoreExt};

const BINDINGS: usize = 1000;
const NAMESPACES: usize = 50;
const REQUESTS: usize = 20_000;
const RBAC: &str = "/registry/rbac.authorization.k8s.io/";

fn key(plural: &str, obj: &Value) -> String {
    let name = obj["metadata"]["name"].as_str().unwrap();
    match obj["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{RBAC}{plural}/{ns}/{name}"),
        None => format!("{RBAC}{plural}/{name}"),
    }
}

fn certificate(name: &str) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn.push(DnType::OrganizationName, "bench-team");
    params.distinguished_name = dn;
    params.self_signed(&key).unwrap().der().to_vec()
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_nanos() as f64 / 1000.0;
    println!("{}", json!({"bench": name, "requests": samples.len(), "p50_us": at(0.5), "p99_us": at(0.99)}));
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(RedbConfig::new(dir.path().join("db"))).unwrap());
    for obj in bootstrap::cluster_roles() {
        store.create(&key("clusterroles", &obj), Bytes::from(obj.to_string())).await.unwrap();
    }
    for obj in bootstrap::cluster_role_bindings() {
        store.create(&key("clusterrolebindings", &obj), Bytes::from(obj.to_string())).await.unwrap();
    }
    for i in 0..BINDINGS {
        let obj = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": format!("b{i}"), "namespace": format!("team{}", i % NAMESPACES)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:aggregate-to-view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user{i}")}]});
        store.create(&key("rolebindings", &obj), Bytes::from(obj.to_string())).await.unwrap();
    }
    let prefixes = ["roles", "clusterroles", "rolebindings", "clusterrolebindings"]
        .iter()
        .map(|p| (format!("{RBAC}{p}/"), vec![]))
        .collect();
    let caches = WatchCaches::start(store.clone(), prefixes).await.unwrap();
    caches.sync_to_store().await.unwrap();
    let rbac = Arc::new(Rbac::new(&caches));
    let start = Instant::now();
    rbac.index();
    println!("{}", json!({"bench": "index-build", "bindings": BINDINGS, "ms": start.elapsed().as_secs_f64() * 1000.0}));
    let chain = Authorizers::new(vec![Box::new(rbac.clone())]);
    let certs: Vec<Vec<u8>> = (0..100).map(|i| certificate(&format!("user{i}"))).collect();
    let mut tokens = TokenAuthenticator::default();
    for i in 0..100 {
        tokens.add(&format!("token-{i}"), &format!("user{i}"), &["bench-team"]);
    }
    let connections: Vec<PeerCertificate> = certs.iter().map(|c| PeerCertificate::from_der(Some(c))).collect();
    let no_cert = PeerCertificate::default();
    let attrs = |user: Arc<authn::UserInfo>, i: usize, verb: &str, resource: &str| Attributes {
        user,
        verb: verb.into(),
        resource: Some(ResourceAttributes {
            version: "v1".into(),
            resource: resource.into(),
            namespace: format!("team{}", i % NAMESPACES),
            ..Default::default()
        }),
        path: String::new(),
    };
    for (name, verb, resource, want) in
        [("cert+rbac allowed", "list", "pods", true), ("cert+rbac denied", "list", "secrets", false)]
    {
        for parse_per_request in [true, false] {
            let mut samples = Vec::with_capacity(REQUESTS);
            for n in 0..REQUESTS {
                let i = n % certs.len();
                let t = Instant::now();
                let parsed;
                let cert = if parse_per_request {
                    parsed = PeerCertificate::from_der(Some(&certs[i]));
                    &parsed
                } else {
                    &connections[i]
                };
                let user = authn::authenticate(&tokens, cert, None).unwrap();
                let d = chain.authorize(&attrs(user, i, verb, resource));
                samples.push(t.elapsed());
                assert_eq!(d == Decision::Allow, want);
            }
            let how = if parse_per_request { "parsed per request" } else { "cached per connection" };
            report(&format!("{name}, certificate {how}"), samples);
        }
    }
    let mut samples = Vec::with_capacity(REQUESTS);
    for n in 0..REQUESTS {
        let i = n % 100;
        let header = format!("Bearer token-{i}");
        let t = Instant::now();
        let user = authn::authenticate(&tokens, &no_cert, Some(&header)).unwrap();
        let d = chain.authorize(&attrs(user, i, "get", "pods"));
        samples.push(t.elapsed());
        assert_eq!(d, Decision::Allow);
    }
    report("token+rbac allowed", samples);
    for explained in [false, true] {
        let mut samples = Vec::with_capacity(REQUESTS);
        for n in 0..REQUESTS {
            let i = n % 100;
            let user = Arc::new(authn::UserInfo::new(format!("user{i}"), vec!["bench-team".into()]));
            let a = attrs(user, i, "get", "pods");
            let t = Instant::now();
            let (d, reason) =
                if explained { chain.authorize_explained(&a) } else { (chain.authorize(&a), String::new()) };
            samples.push(t.elapsed());
            assert_eq!(d, Decision::Allow);
            assert_eq!(reason.is_empty(), !explained);
        }
        report(if explained { "rbac only, with the allow reason" } else { "rbac only" }, samples);
    }
}
