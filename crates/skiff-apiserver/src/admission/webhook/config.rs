//! The webhook configurations in effect: Mutating/ValidatingWebhookConfigurations read from the
//! watch cache and compiled (selectors parsed, TLS client configuration built) once per change,
//! so a request reads no store and parses nothing. Hooks are ordered as upstream: by
//! configuration name, then as listed in the configuration. What is absent: calling them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
    WebhookClientConfig,
};
use skiff_api::crd::cel::Expression;
use skiff_api::selector::label::LabelSelectorExpr;
use skiff_store::Revision;

use crate::cache::WatchCaches;

/// Cache prefix of MutatingWebhookConfigurations.
pub const MUTATING_PREFIX: &str = "/registry/admissionregistration.k8s.io/mutatingwebhookconfigurations/";
/// Cache prefix of ValidatingWebhookConfigurations.
pub const VALIDATING_PREFIX: &str = "/registry/admissionregistration.k8s.io/validatingwebhookconfigurations/";

/// Where a webhook is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `clientConfig.url`.
    Url(String),
    /// `clientConfig.service`.
    Service {
        /// Namespace of the Service.
        namespace: String,
        /// Name of the Service.
        name: String,
        /// Path of the request (default `/`).
        path: String,
        /// Service port.
        port: i32,
    },
}

/// One webhook ready to match and call.
#[derive(Debug, Clone)]
pub struct Hook {
    /// Name of the configuration holding it.
    pub configuration: String,
    /// Webhook name.
    pub name: String,
    /// Rules.
    pub rules: Vec<RuleWithOperations>,
    /// `failurePolicy: Ignore`.
    pub ignore_failures: bool,
    /// `matchPolicy: Equivalent`.
    pub equivalent: bool,
    /// Parsed `namespaceSelector` (or why it could not be parsed).
    pub namespace_selector: Result<LabelSelectorExpr, String>,
    /// Parsed `objectSelector`.
    pub object_selector: Result<LabelSelectorExpr, String>,
    /// `sideEffects`.
    pub side_effects: String,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// The first AdmissionReview version of the list that the API server speaks.
    pub review_version: Option<&'static str>,
    /// Where to call.
    pub endpoint: Endpoint,
    /// TLS configuration trusting `caBundle` (or why it could not be built).
    pub tls: Result<Arc<rustls::ClientConfig>, String>,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks only).
    pub reinvoke_if_needed: bool,
    /// `matchConditions`: names and compiled expressions (or why they do not compile).
    pub match_conditions: Vec<(String, Result<Expression, String>)>,
}

impl Hook {
    /// A key naming the hook uniquely among its kind (configuration and webhook name).
    pub fn key(&self) -> String {
        format!("{}/{}", self.configuration, self.name)
    }
}

/// A TLS client configuration trusting the PEM certificates of `ca_bundle`.
pub fn tls_config(ca_bundle: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_bundle.filter(|b| !b.is_empty()) {
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("unable to load root certificates: {e}"))?;
            roots.add(cert).map_err(|e| format!("unable to load root certificates: {e}"))?;
        }
        if roots.is_empty() {
            return Err("unable to load root certificates: no certificates found in caBundle".to_string());
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The fields both webhook kinds share, borrowed.
struct Fields<'a> {
    configuration: &'a str,
    name: &'a str,
    rules: Option<&'a Vec<RuleWithOperations>>,
    failure_policy: Option<&'a str>,
    match_policy: Option<&'a str>,
    namespace_selector: Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    object_selector: Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
    side_effects: &'a str,
    timeout: Option<i32>,
    versions: &'a [String],
    client: &'a WebhookClientConfig,
    reinvoke_if_needed: bool,
    match_conditions: Option<&'a Vec<MatchCondition>>,
}

fn compile(f: Fields<'_>) -> Hook {
    let selector = |s| LabelSelectorExpr::from_label_selector(s).map_err(|e| e.0);
    let endpoint = match (&f.client.url, &f.client.service) {
        (Some(url), _) => Endpoint::Url(url.clone()),
        (None, Some(svc)) => Endpoint::Service {
            namespace: svc.namespace.clone(),
            name: svc.name.clone(),
            path: svc.path.clone().unwrap_or_else(|| "/".to_string()),
            port: svc.port.unwrap_or(443),
        },
        (None, None) => Endpoint::Url(String::new()),
    };
    Hook {
        configuration: f.configuration.to_string(),
        name: f.name.to_string(),
        rules: f.rules.cloned().unwrap_or_default(),
        ignore_failures: f.failure_policy == Some("Ignore"),
        equivalent: f.match_policy != Some("Exact"),
        namespace_selector: selector(f.namespace_selector),
        object_selector: selector(f.object_selector),
        side_effects: f.side_effects.to_string(),
        timeout: Duration::from_secs(u64::try_from(f.timeout.unwrap_or(10)).unwrap_or(10).clamp(1, 30)),
        review_version: f.versions.iter().find_map(|v| match v.as_str() {
            "v1" => Some("v1"),
            "v1beta1" => Some("v1beta1"),
            _ => None,
        }),
        endpoint,
        tls: tls_config(f.client.ca_bundle.as_ref().map(|b| b.0.as_slice())),
        reinvoke_if_needed: f.reinvoke_if_needed,
        match_conditions: f
            .match_conditions
            .into_iter()
            .flatten()
            .map(|c| (c.name.clone(), Expression::compile(&c.expression)))
            .collect(),
    }
}

/// The hooks of a MutatingWebhookConfiguration, in order.
pub fn mutating_hooks(c: &MutatingWebhookConfiguration) -> Vec<Hook> {
    let configuration = c.metadata.name.as_deref().unwrap_or_default();
    c.webhooks
        .iter()
        .flatten()
        .map(|w| {
            compile(Fields {
                configuration,
                name: &w.name,
                rules: w.rules.as_ref(),
                failure_policy: w.failure_policy.as_deref(),
                match_policy: w.match_policy.as_deref(),
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                side_effects: &w.side_effects,
                timeout: w.timeout_seconds,
                versions: &w.admission_review_versions,
                client: &w.client_config,
                reinvoke_if_needed: w.reinvocation_policy.as_deref() == Some("IfNeeded"),
                match_conditions: w.match_conditions.as_ref(),
            })
        })
        .collect()
}

/// The hooks of a ValidatingWebhookConfiguration, in order.
pub fn validating_hooks(c: &ValidatingWebhookConfiguration) -> Vec<Hook> {
    let configuration = c.metadata.name.as_deref().unwrap_or_default();
    c.webhooks
        .iter()
        .flatten()
        .map(|w| {
            compile(Fields {
                configuration,
                name: &w.name,
                rules: w.rules.as_ref(),
                failure_policy: w.failure_policy.as_deref(),
                match_policy: w.match_policy.as_deref(),
                namespace_selector: w.namespace_selector.as_ref(),
                object_selector: w.object_selector.as_ref(),
                side_effects: &w.side_effects,
                timeout: w.timeout_seconds,
                versions: &w.admission_review_versions,
                client: &w.client_config,
                reinvoke_if_needed: false,
                match_conditions: w.match_conditions.as_ref(),
            })
        })
        .collect()
}

/// Compiled hooks of one kind, rebuilt when the cached configurations change.
#[derive(Default)]
struct Compiled {
    /// `(object count, highest modification revision)` of the configurations compiled.
    fingerprint: (usize, Revision),
    hooks: Arc<Vec<Hook>>,
}

/// The webhook configurations in effect, compiled from the watch cache on demand.
#[derive(Default)]
pub struct Registry {
    mutating: Mutex<Compiled>,
    validating: Mutex<Compiled>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn current(
    caches: &WatchCaches,
    prefix: &str,
    slot: &Mutex<Compiled>,
    build: fn(&serde_json::Value) -> Vec<Hook>,
) -> Arc<Vec<Hook>> {
    let Some(cache) = caches.cache(prefix) else { return Arc::default() };
    let snapshot = cache.snapshot();
    // Revisions only grow, so a create or an update raises the highest one and a delete lowers
    // the count: the pair changes whenever the set of configurations does.
    let fingerprint = (snapshot.objects.len(), snapshot.objects.values().map(|e| e.revision).max().unwrap_or(0));
    let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
    if slot.fingerprint != fingerprint {
        let hooks: Vec<Hook> = snapshot.objects.values().flat_map(|e| build(&e.value())).collect();
        *slot = Compiled { fingerprint, hooks: Arc::new(hooks) };
    }
    slot.hooks.clone()
}

impl Registry {
    /// The mutating webhooks in call order.
    pub fn mutating(&self, caches: &WatchCaches) -> Arc<Vec<Hook>> {
        current(caches, MUTATING_PREFIX, &self.mutating, |v| {
            serde_json::from_value::<MutatingWebhookConfiguration>(v.clone())
                .map(|c| mutating_hooks(&c))
                .unwrap_or_default()
        })
    }

    /// The validating webhooks.
    pub fn validating(&self, caches: &WatchCaches) -> Arc<Vec<Hook>> {
        current(caches, VALIDATING_PREFIX, &self.validating, |v| {
            serde_json::from_value::<ValidatingWebhookConfiguration>(v.clone())
                .map(|c| validating_hooks(&c))
                .unwrap_or_default()
        })
    }
}
