//! From objects to a routing [`Table`]: which Ingresses are ours (IngressClass `skiff`, its
//! controller, the default class, the legacy annotation), their rules and default backends
//! resolved through Services and EndpointSlices (ready endpoints only), their TLS Secrets, and
//! the problems to report as Warning events (a missing Service, port or Secret leaves the rest
//! of the Ingress served).
//!
//! What does not live here: matching requests ([`crate::table`]), watching and reporting
//! ([`crate::sync`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

use crate::table::{Backend, PathKind, PathRule, Table, Target};

/// The name of skiff's IngressClass.
pub const CLASS_NAME: &str = "skiff";
/// The controller value of skiff's IngressClass.
pub const CONTROLLER: &str = "skiff.io/ingress";
/// The annotation marking the default IngressClass.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The legacy annotation naming an Ingress's class.
pub const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The watched objects a table is built from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Objects<'a> {
    /// IngressClasses.
    pub classes: &'a [Arc<IngressClass>],
    /// Ingresses (all classes).
    pub ingresses: &'a [Arc<Ingress>],
    /// Services.
    pub services: &'a [Arc<Service>],
    /// EndpointSlices.
    pub slices: &'a [Arc<EndpointSlice>],
    /// TLS Secrets.
    pub secrets: &'a [Arc<Secret>],
}

/// Something wrong with an Ingress, reported as a Warning event.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The Ingress.
    pub ingress: Arc<Ingress>,
    /// The event reason.
    pub reason: &'static str,
    /// The event message.
    pub message: String,
}

/// A built table with the Ingresses it serves and the problems found.
#[derive(Debug, Default)]
pub struct Built {
    /// The routing table (without the default certificate, which the resolver holds).
    pub table: Table,
    /// The Ingresses served, oldest first.
    pub served: Vec<Arc<Ingress>>,
    /// Problems to report.
    pub problems: Vec<Problem>,
}

fn is_default(class: &IngressClass) -> bool {
    class.metadata.annotations.as_ref().and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION)).is_some_and(|v| v == "true")
}

fn controller_of(class: &IngressClass) -> Option<&str> {
    class.spec.as_ref().and_then(|s| s.controller.as_deref())
}

/// Whether an IngressClass other than ours is marked default.
pub fn another_default(classes: &[Arc<IngressClass>]) -> bool {
    classes.iter().any(|c| is_default(c) && c.metadata.name.as_deref() != Some(CLASS_NAME))
}

/// Whether `ing` is ours: its class (field, else the legacy annotation) is `skiff` or a class
/// of our controller; without a class, when a default class is ours.
pub fn is_ours(ing: &Ingress, classes: &[Arc<IngressClass>]) -> bool {
    let class =
        ing.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()).or_else(|| {
            ing.metadata.annotations.as_ref().and_then(|a| a.get(LEGACY_CLASS_ANNOTATION)).map(String::as_str)
        });
    match class {
        Some(name) => {
            name == CLASS_NAME
                || classes
                    .iter()
                    .any(|c| c.metadata.name.as_deref() == Some(name) && controller_of(c) == Some(CONTROLLER))
        }
        None => classes.iter().any(|c| is_default(c) && controller_of(c) == Some(CONTROLLER)),
    }
}

fn ns_name<K: kube::Resource>(o: &K) -> (String, String) {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

struct Resolver<'a> {
    services: HashMap<(String, String), &'a Service>,
    slices: HashMap<(String, String), Vec<&'a EndpointSlice>>,
    backends: HashMap<String, Arc<Backend>>,
}

impl<'a> Resolver<'a> {
    fn new(objs: &Objects<'a>) -> Self {
        let services = objs.services.iter().map(|s| (ns_name(s.as_ref()), s.as_ref())).collect();
        let mut slices: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for s in objs.slices {
            let Some(svc) = s.metadata.labels.as_ref().and_then(|l| l.get("kubernetes.io/service-name")) else {
                continue;
            };
            slices.entry((s.metadata.namespace.clone().unwrap_or_default(), svc.clone())).or_default().push(s);
        }
        Self { services, slices, backends: HashMap::new() }
    }

    /// The target of `backend` in namespace `ns`, or why it cannot be served.
    fn resolve(&mut self, ns: &str, backend: &IngressBackend) -> Result<Target, (&'static str, String)> {
        let Some(sb) = backend.service.as_ref() else {
            return Err(("UnsupportedBackend", "resource backends are not supported; answering 503".to_string()));
        };
        let Some(svc) = self.services.get(&(ns.to_string(), sb.name.clone())) else {
            return Err(("ServiceNotFound", format!("service \"{ns}/{}\" not found", sb.name)));
        };
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Err((
                "UnsupportedBackend",
                format!("service \"{ns}/{}\" is of type ExternalName, which is not supported", sb.name),
            ));
        }
        let wanted = sb.port.as_ref();
        let port = spec.and_then(|s| s.ports.as_ref()).into_iter().flatten().find(|p| match wanted {
            Some(w) => match (&w.name, w.number) {
                (Some(name), _) if !name.is_empty() => p.name.as_deref() == Some(name.as_str()),
                (_, Some(n)) => p.port == n,
                _ => false,
            },
            None => false,
        });
        let Some(port) = port else {
            let want = wanted
                .map(|w| w.name.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| w.number.unwrap_or(0).to_string()))
                .unwrap_or_default();
            return Err(("ServicePortNotFound", format!("service \"{ns}/{}\" has no port {want}", sb.name)));
        };
        let key = format!("{ns}/{}:{}", sb.name, port.port);
        if let Some(b) = self.backends.get(&key) {
            return Ok(Target::Backend(b.clone()));
        }
        let port_name = port.name.clone().unwrap_or_default();
        let mut endpoints = Vec::new();
        for slice in self.slices.get(&(ns.to_string(), sb.name.clone())).into_iter().flatten() {
            if slice.address_type == "FQDN" {
                continue;
            }
            let Some(target) = slice.ports.iter().flatten().find(|p| {
                p.name.clone().unwrap_or_default() == port_name && p.protocol.as_deref().unwrap_or("TCP") == "TCP"
            }) else {
                continue;
            };
            let Some(target_port) = target.port.and_then(|p| u16::try_from(p).ok()) else { continue };
            for ep in &slice.endpoints {
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                let Some(ip) = ep.addresses.first().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
                let addr = SocketAddr::new(ip, target_port);
                if !endpoints.contains(&addr) {
                    endpoints.push(addr);
                }
            }
        }
        endpoints.sort();
        let b = Arc::new(Backend::new(key.clone(), endpoints));
        self.backends.insert(key, b.clone());
        Ok(Target::Backend(b))
    }
}

fn path_kind(t: &str) -> PathKind {
    if t == "Exact" { PathKind::Exact } else { PathKind::Prefix }
}

/// Builds the table of every Ingress of ours among `objs`.
pub fn build(objs: &Objects<'_>) -> Built {
    let mut served: Vec<Arc<Ingress>> = objs.ingresses.iter().filter(|i| is_ours(i, objs.classes)).cloned().collect();
    served.sort_by(|a, b| {
        let created = |i: &Ingress| i.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a).cmp(&created(b)).then_with(|| ns_name(a.as_ref()).cmp(&ns_name(b.as_ref())))
    });
    let mut resolver = Resolver::new(objs);
    let secrets: HashMap<(String, String), &Secret> =
        objs.secrets.iter().map(|s| (ns_name(s.as_ref()), s.as_ref())).collect();
    let mut table = Table::default();
    let mut problems = Vec::new();
    let mut certs: HashMap<(String, String), Arc<rustls::sign::CertifiedKey>> = HashMap::new();
    for ing in &served {
        let (ns, _) = ns_name(ing.as_ref());
        let Some(spec) = ing.spec.as_ref() else { continue };
        let mut target = |backend: &IngressBackend, problems: &mut Vec<Problem>| match resolver.resolve(&ns, backend) {
            Ok(t) => t,
            Err((reason, message)) => {
                problems.push(Problem { ingress: ing.clone(), reason, message: message.clone() });
                Target::Unavailable(message)
            }
        };
        if let Some(b) = spec.default_backend.as_ref() {
            let t = target(b, &mut problems);
            table.default.get_or_insert(t);
        }
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_default();
            for p in rule.http.as_ref().map(|h| h.paths.as_slice()).unwrap_or_default() {
                let t = target(&p.backend, &mut problems);
                let path = p.path.clone().unwrap_or_else(|| "/".to_string());
                table.host_rules(&host).push(PathRule { path, kind: path_kind(&p.path_type), target: t });
            }
        }
        for tls in spec.tls.iter().flatten() {
            let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else { continue };
            let key = (ns.clone(), secret_name.to_string());
            let cert = match certs.get(&key) {
                Some(c) => Some(c.clone()),
                None => match secrets.get(&key) {
                    None => {
                        problems.push(Problem {
                            ingress: ing.clone(),
                            reason: "SecretNotFound",
                            message: format!(
                                "secret \"{ns}/{secret_name}\" not found; serving the default certificate"
                            ),
                        });
                        None
                    }
                    Some(secret) => match secret_cert(secret) {
                        Ok(c) => {
                            let c = Arc::new(c);
                            certs.insert(key, c.clone());
                            Some(c)
                        }
                        Err(e) => {
                            problems.push(Problem {
                                ingress: ing.clone(),
                                reason: "InvalidSecret",
                                message: format!("secret \"{ns}/{secret_name}\": {e}; serving the default certificate"),
                            });
                            None
                        }
                    },
                },
            };
            let Some(cert) = cert else { continue };
            match tls.hosts.as_deref() {
                Some(hosts) if !hosts.is_empty() => hosts.iter().for_each(|h| table.tls.insert(h, cert.clone())),
                _ => table.tls.insert("", cert.clone()),
            }
        }
    }
    table.backends = resolver.backends.values().map(|b| (b.id, b.clone())).collect();
    Built { table, served, problems }
}

fn secret_cert(secret: &Secret) -> Result<rustls::sign::CertifiedKey, String> {
    if secret.type_.as_deref() != Some("kubernetes.io/tls") {
        return Err(format!("type {} is not kubernetes.io/tls", secret.type_.as_deref().unwrap_or("Opaque")));
    }
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice()).unwrap_or_default();
    crate::tls::certified_key(get("tls.crt"), get("tls.key")).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn class(name: &str, controller: &str, default: bool) -> Arc<IngressClass> {
        let ann = if default { json!({DEFAULT_CLASS_ANNOTATION: "true"}) } else { json!({}) };
        obj(json!({"metadata": {"name": name, "annotations": ann}, "spec": {"controller": controller}}))
    }

    fn ingress(name: &str, spec: serde_json::Value, annotations: serde_json::Value) -> Arc<Ingress> {
        obj(json!({"metadata": {"name": name, "namespace": "d", "annotations": annotations}, "spec": spec}))
    }

    #[test]
    fn ownership_by_class_default_and_annotation() {
        let ours = [
            class("skiff", CONTROLLER, true),
            class("mine", CONTROLLER, false),
            class("nginx", "k8s.io/ingress-nginx", false),
        ];
        let by_field = ingress("a", json!({"ingressClassName": "skiff"}), json!({}));
        let by_other_class = ingress("b", json!({"ingressClassName": "mine"}), json!({}));
        let theirs = ingress("c", json!({"ingressClassName": "nginx"}), json!({}));
        let none = ingress("d", json!({}), json!({}));
        let legacy = ingress("e", json!({}), json!({LEGACY_CLASS_ANNOTATION: "nginx"}));
        let legacy_ours = ingress("f", json!({}), json!({LEGACY_CLASS_ANNOTATION: "skiff"}));
        assert!(is_ours(&by_field, &ours));
        assert!(is_ours(&by_other_class, &ours));
        assert!(!is_ours(&theirs, &ours));
        assert!(is_ours(&none, &ours));
        assert!(!is_ours(&legacy, &ours));
        assert!(is_ours(&legacy_ours, &ours));
        let not_default = [class("skiff", CONTROLLER, false), class("nginx", "k8s.io/ingress-nginx", true)];
        assert!(!is_ours(&none, &not_default));
        assert!(another_default(&not_default));
        assert!(!another_default(&ours));
    }

    #[test]
    fn backends_resolve_through_ready_endpoints_and_problems_are_reported() {
        let svc = obj(json!({"metadata": {"name": "web", "namespace": "d"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
        let slice = obj(
            json!({"metadata": {"name": "web-1", "namespace": "d", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": true}},
                          {"addresses": ["10.42.0.6"], "conditions": {"ready": false}},
                          {"addresses": ["10.42.0.7"]}]}),
        );
        let ing = ingress(
            "i",
            json!({"ingressClassName": "skiff",
            "defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}},
            "tls": [{"hosts": ["a.example"], "secretName": "missing"}],
            "rules": [{"host": "a.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/gone", "pathType": "Exact", "backend": {"service": {"name": "gone", "port": {"number": 80}}}},
                {"path": "/badport", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 81}}}}]}}]}),
            json!({}),
        );
        let classes = [class("skiff", CONTROLLER, true)];
        let objs = Objects {
            classes: &classes,
            ingresses: std::slice::from_ref(&ing),
            services: &[svc],
            slices: &[slice],
            secrets: &[],
        };
        let built = build(&objs);
        assert_eq!(built.served.len(), 1);
        let Some(Target::Backend(b)) = built.table.route("a.example", "/x") else { panic!("no backend") };
        assert_eq!(b.endpoints, ["10.42.0.5:8080".parse().unwrap(), "10.42.0.7:8080".parse().unwrap()]);
        assert!(matches!(built.table.route("a.example", "/gone"), Some(Target::Unavailable(_))));
        assert!(matches!(built.table.route("a.example", "/badport/y"), Some(Target::Unavailable(_))));
        assert!(matches!(built.table.route("other", "/"), Some(Target::Backend(_))));
        let reasons: Vec<_> = built.problems.iter().map(|p| p.reason).collect();
        assert_eq!(reasons, ["ServiceNotFound", "ServicePortNotFound", "SecretNotFound"]);
        assert_eq!(built.problems[0].message, "service \"d/gone\" not found");
        assert!(built.table.tls.select(Some("a.example")).is_none());
    }

    #[test]
    fn tls_secrets_are_selected_by_their_hosts() {
        use k8s_openapi::ByteString;
        let pair = rcgen::generate_simple_self_signed(vec!["*.example".to_string()]).unwrap();
        let mut secret = Secret::default();
        secret.metadata.name = Some("wild".into());
        secret.metadata.namespace = Some("d".into());
        secret.type_ = Some("kubernetes.io/tls".into());
        secret.data = Some(
            [
                ("tls.crt".to_string(), ByteString(pair.cert.pem().into_bytes())),
                ("tls.key".to_string(), ByteString(pair.signing_key.serialize_pem().into_bytes())),
            ]
            .into(),
        );
        let ing = ingress(
            "i",
            json!({"ingressClassName": "skiff", "tls": [{"hosts": ["*.example"], "secretName": "wild"}]}),
            json!({}),
        );
        let objs =
            Objects { ingresses: std::slice::from_ref(&ing), secrets: &[Arc::new(secret)], ..Default::default() };
        let built = build(&objs);
        assert!(built.problems.is_empty(), "{:?}", built.problems);
        assert!(built.table.tls.select(Some("a.example")).is_some());
        assert!(built.table.tls.select(Some("a.b.example")).is_none());
    }
}
