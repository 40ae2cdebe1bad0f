//! ServiceAccount tokens (upstream `pkg/serviceaccount`): the claims of bound tokens
//! (`kubernetes.io` private claims) and of legacy Secret tokens, issuing them with the signing key,
//! and authenticating them: signature, time window with upstream's one-minute leeway, audiences,
//! then the ServiceAccount, Secret, Pod and Node they name still existing with the same uid (read
//! from the watch caches). The OIDC discovery documents are built here too. The TokenRequest
//! endpoint is in [`crate::handlers::token`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::jwt::{JwtError, SigningKey};
use super::{AUTHENTICATED_GROUP, UserInfo};
use crate::cache::WatchCaches;

/// Issuer of legacy Secret tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// Group of every ServiceAccount.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Leeway on `exp`, `nbf` and `iat` (go-jose's `DefaultLeeway`).
pub const LEEWAY_SECONDS: i64 = 60;
/// The expiration kubelet asks for that the server extends (upstream `WarnOnlyBoundTokenExpirationSeconds`).
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 3607;
/// What such a token's expiration is extended to (one year).
pub const EXTENDED_EXPIRATION_SECONDS: i64 = 365 * 24 * 3600;

/// Extra keys of a ServiceAccount user.
pub mod extra {
    /// Name of the pod a token is bound to.
    pub const POD_NAME: &str = "authentication.kubernetes.io/pod-name";
    /// Uid of that pod.
    pub const POD_UID: &str = "authentication.kubernetes.io/pod-uid";
    /// Node of that pod.
    pub const NODE_NAME: &str = "authentication.kubernetes.io/node-name";
    /// Uid of that node.
    pub const NODE_UID: &str = "authentication.kubernetes.io/node-uid";
    /// `JTI=<jti>` of the token.
    pub const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";
}

/// `system:serviceaccount:<ns>:<name>`.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A `{name, uid}` reference in the private claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectRef {
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
}

impl ObjectRef {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "uid": self.uid})
    }

    fn from_json(v: Option<&Value>) -> Option<Self> {
        let v = v?.as_object()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Some(Self { name: s("name"), uid: s("uid") })
    }
}

/// What a bound token is issued for.
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    /// Namespace of the ServiceAccount.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: ObjectRef,
    /// Audiences (`aud`).
    pub audiences: Vec<String>,
    /// Lifetime in seconds.
    pub expiration_seconds: i64,
    /// Bound pod.
    pub pod: Option<ObjectRef>,
    /// Bound secret.
    pub secret: Option<ObjectRef>,
    /// Node of the bound pod.
    pub node: Option<ObjectRef>,
    /// `warnafter` (seconds since the epoch) for extended tokens.
    pub warn_after: Option<i64>,
}

/// An authentication result: the user and the audiences the token is valid for.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who.
    pub user: UserInfo,
    /// The audiences of the token that the caller accepts.
    pub audiences: Vec<String>,
}

/// Issues and authenticates ServiceAccount tokens.
pub struct ServiceAccountTokens {
    key: SigningKey,
    issuer: String,
    api_audiences: Vec<String>,
    objects: Arc<dyn ObjectSource>,
}

/// Where the objects a token names are looked up (the watch caches in the server).
pub trait ObjectSource: Send + Sync {
    /// The core/v1 object of `resource` (`serviceaccounts`, `secrets`, `pods`, `nodes`).
    fn core_object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value>;
}

impl ObjectSource for WatchCaches {
    fn core_object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let prefix = format!("/registry/core/{resource}/");
        let key = match namespace {
            Some(ns) => format!("{prefix}{ns}/{name}"),
            None => format!("{prefix}{name}"),
        };
        self.cache(&prefix)?.get(&key).map(|e| e.value())
    }
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceAccountTokens({})", self.issuer)
    }
}

fn str_at<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

fn meta<'a>(obj: &'a Value, k: &str) -> &'a str {
    obj.get("metadata").and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or("")
}

fn deleting(obj: &Value) -> bool {
    obj.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some_and(|t| !t.is_null())
}

impl ServiceAccountTokens {
    /// The token service of a cluster: issuer `https://kubernetes.default.svc.<cluster_domain>`,
    /// API audiences defaulting to the issuer; `objects` is where bound objects are looked up.
    pub fn new(key: SigningKey, cluster_domain: &str, objects: Arc<dyn ObjectSource>) -> Self {
        let issuer = format!("https://kubernetes.default.svc.{cluster_domain}");
        Self { key, api_audiences: vec![issuer.clone()], issuer, objects }
    }

    /// Replaces the API audiences (`--api-audiences`); an empty list keeps the issuer.
    pub fn with_api_audiences(mut self, audiences: Vec<String>) -> Self {
        if !audiences.is_empty() {
            self.api_audiences = audiences;
        }
        self
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The audiences the API server accepts (`--api-audiences`, defaulting to the issuer).
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// The signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs a bound token issued at `now` (seconds); returns it with its `exp`.
    pub fn issue(&self, spec: &TokenSpec, now: i64) -> Result<(String, i64), JwtError> {
        let exp = now + spec.expiration_seconds;
        let mut k8s = Map::new();
        k8s.insert("namespace".into(), json!(spec.namespace));
        k8s.insert("serviceaccount".into(), spec.service_account.to_json());
        for (key, r) in [("pod", &spec.pod), ("secret", &spec.secret), ("node", &spec.node)] {
            if let Some(r) = r {
                k8s.insert(key.into(), r.to_json());
            }
        }
        if let Some(w) = spec.warn_after {
            k8s.insert("warnafter".into(), json!(w));
        }
        let claims = json!({
            "aud": spec.audiences,
            "exp": exp,
            "iat": now,
            "iss": self.issuer,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": k8s,
            "nbf": now,
            "sub": username(&spec.namespace, &spec.service_account.name),
        });
        Ok((self.key.sign(&claims)?, exp))
    }

    /// Signs a legacy (non-expiring) token for a `kubernetes.io/service-account-token` Secret.
    pub fn issue_legacy(&self, namespace: &str, service_account: &ObjectRef, secret: &str) -> Result<String, JwtError> {
        self.key.sign(&json!({
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/secret.name": secret,
            "kubernetes.io/serviceaccount/service-account.name": service_account.name,
            "kubernetes.io/serviceaccount/service-account.uid": service_account.uid,
            "sub": username(namespace, &service_account.name),
        }))
    }

    /// Authenticates `token` for the API audiences at `now`: `None` when it is not one of ours
    /// (not a JWT or another issuer), `Some(Err(why))` when it is ours but invalid.
    pub fn authenticate(&self, token: &str, now: i64) -> Option<Result<Authenticated, String>> {
        self.authenticate_for(token, &self.api_audiences, now)
    }

    /// As [`Self::authenticate`] for the given audiences (TokenReview `spec.audiences`).
    pub fn authenticate_for(
        &self,
        token: &str,
        audiences: &[String],
        now: i64,
    ) -> Option<Result<Authenticated, String>> {
        let unverified = super::jwt::unverified_claims(token)?;
        let iss = str_at(&unverified, "iss");
        if iss != self.issuer && iss != LEGACY_ISSUER {
            return None;
        }
        let claims = match self.key.verifying_key().verify(token) {
            Ok(c) => c,
            Err(e) => return Some(Err(e.to_string())),
        };
        Some(if iss == LEGACY_ISSUER {
            self.validate_legacy(token, &claims, audiences)
        } else {
            self.validate_bound(&claims, audiences, now)
        })
    }

    fn lookup(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.objects.core_object(resource, namespace, name)
    }

    fn check_service_account(&self, namespace: &str, sa: &ObjectRef) -> Result<(), String> {
        let Some(obj) = self.lookup("serviceaccounts", Some(namespace), &sa.name) else {
            tracing::debug!(namespace, name = %sa.name, "token of a missing service account");
            return Err("service account token has been invalidated".into());
        };
        if deleting(&obj) {
            return Err(format!("service account {namespace}/{} has been deleted", sa.name));
        }
        let uid = meta(&obj, "uid");
        if !sa.uid.is_empty() && uid != sa.uid {
            return Err(format!("service account UID ({uid}) does not match claim ({})", sa.uid));
        }
        Ok(())
    }

    fn validate_bound(
        &self,
        claims: &Map<String, Value>,
        audiences: &[String],
        now: i64,
    ) -> Result<Authenticated, String> {
        let token_aud: Vec<String> = match claims.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        let matched: Vec<String> = audiences.iter().filter(|a| token_aud.contains(a)).cloned().collect();
        if matched.is_empty() {
            return Err(format!("token audiences {token_aud:?} is invalid for the target audiences {audiences:?}"));
        }
        let num = |k: &str| claims.get(k).and_then(Value::as_i64);
        if let Some(exp) = num("exp")
            && now > exp + LEEWAY_SECONDS
        {
            return Err("service account token has expired".into());
        }
        if let Some(nbf) = num("nbf")
            && now + LEEWAY_SECONDS < nbf
        {
            return Err("service account token is not valid yet".into());
        }
        if let Some(iat) = num("iat")
            && now + LEEWAY_SECONDS < iat
        {
            return Err("service account token is issued in the future".into());
        }
        let k8s =
            claims.get("kubernetes.io").and_then(Value::as_object).ok_or("service account token claims are missing")?;
        let namespace = str_at(k8s, "namespace").to_string();
        let sa = ObjectRef::from_json(k8s.get("serviceaccount")).unwrap_or_default();
        if namespace.is_empty() || sa.name.is_empty() {
            return Err("service account token claims are missing the namespace or name".into());
        }
        self.check_service_account(&namespace, &sa)?;
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some(secret) = ObjectRef::from_json(k8s.get("secret")) {
            let Some(obj) = self.lookup("secrets", Some(&namespace), &secret.name) else {
                return Err("service account token has been invalidated".into());
            };
            if deleting(&obj) {
                return Err(format!("secret {namespace}/{} has been deleted", secret.name));
            }
            if meta(&obj, "uid") != secret.uid {
                return Err(format!(
                    "secret UID ({}) does not match service account secret ref claim ({})",
                    meta(&obj, "uid"),
                    secret.uid
                ));
            }
        }
        let pod = ObjectRef::from_json(k8s.get("pod"));
        if let Some(pod) = &pod {
            let Some(obj) = self.lookup("pods", Some(&namespace), &pod.name) else {
                return Err("service account token has been invalidated".into());
            };
            if deleting(&obj) {
                return Err(format!("pod {namespace}/{} has been deleted", pod.name));
            }
            if meta(&obj, "uid") != pod.uid {
                return Err(format!(
                    "pod UID ({}) does not match service account pod ref claim ({})",
                    meta(&obj, "uid"),
                    pod.uid
                ));
            }
            extra.insert(extra::POD_NAME.into(), vec![pod.name.clone()]);
            extra.insert(extra::POD_UID.into(), vec![pod.uid.clone()]);
        }
        if let Some(node) = ObjectRef::from_json(k8s.get("node")) {
            if pod.is_none() {
                let Some(obj) = self.lookup("nodes", None, &node.name) else {
                    return Err("service account token has been invalidated".into());
                };
                if meta(&obj, "uid") != node.uid {
                    return Err(format!(
                        "node UID ({}) does not match service account node ref claim ({})",
                        meta(&obj, "uid"),
                        node.uid
                    ));
                }
            }
            extra.insert(extra::NODE_NAME.into(), vec![node.name.clone()]);
            if !node.uid.is_empty() {
                extra.insert(extra::NODE_UID.into(), vec![node.uid.clone()]);
            }
        }
        let jti = str_at(claims, "jti");
        if !jti.is_empty() {
            extra.insert(extra::CREDENTIAL_ID.into(), vec![format!("JTI={jti}")]);
        }
        Ok(Authenticated { user: user_info(&namespace, &sa, extra), audiences: matched })
    }

    fn validate_legacy(
        &self,
        token: &str,
        claims: &Map<String, Value>,
        audiences: &[String],
    ) -> Result<Authenticated, String> {
        let namespace = str_at(claims, "kubernetes.io/serviceaccount/namespace");
        let secret_name = str_at(claims, "kubernetes.io/serviceaccount/secret.name");
        let sa = ObjectRef {
            name: str_at(claims, "kubernetes.io/serviceaccount/service-account.name").into(),
            uid: str_at(claims, "kubernetes.io/serviceaccount/service-account.uid").into(),
        };
        if namespace.is_empty() || secret_name.is_empty() || sa.name.is_empty() {
            return Err("service account token claims are missing the namespace or name".into());
        }
        let Some(secret) = self.lookup("secrets", Some(namespace), secret_name) else {
            return Err("service account token has been invalidated".into());
        };
        if deleting(&secret) {
            return Err(format!("secret {namespace}/{secret_name} has been deleted"));
        }
        let stored = secret
            .get("data")
            .and_then(|d| d.get("token"))
            .and_then(Value::as_str)
            .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok());
        if stored.as_deref() != Some(token.as_bytes()) {
            return Err("service account token has been invalidated".into());
        }
        self.check_service_account(namespace, &sa)?;
        Ok(Authenticated { user: user_info(namespace, &sa, BTreeMap::new()), audiences: audiences.to_vec() })
    }

    /// `/.well-known/openid-configuration`.
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/openid/v1/jwks", self.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [super::jwt::ALGORITHM],
        })
    }

    /// `/openid/v1/jwks`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.key.verifying_key().jwk()]})
    }
}

/// Serves `/.well-known/openid-configuration` and `/openid/v1/jwks` (JSON, cacheable for an hour).
pub fn oidc_response(state: &crate::state::ApiState, path: &str) -> http::Response<axum::body::Body> {
    let Some(tokens) = state.service_accounts.get() else {
        return crate::response::status(&skiff_api::StatusError::not_found_message(
            "the server could not find the requested resource",
        ));
    };
    let (body, content_type) = if path == "/openid/v1/jwks" {
        (tokens.jwks(), "application/jwk-set+json")
    } else {
        (tokens.openid_configuration(), "application/json")
    };
    let mut resp = crate::response::json(200, &body);
    let headers = resp.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    headers.insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("public, max-age=3600"));
    resp
}

/// The `status` of a TokenReview of `spec` (upstream's TokenReview REST): `authenticated`,
/// `user`, `audiences`, `error`.
pub fn review_status(tokens: &ServiceAccountTokens, spec: &Value) -> Value {
    let token = spec.get("token").and_then(Value::as_str).unwrap_or("");
    let wanted: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let audiences = if wanted.is_empty() { tokens.api_audiences().to_vec() } else { wanted.clone() };
    let now = jiff::Timestamp::now().as_second();
    let (user, result_audiences, error) = match tokens.authenticate_for(token, &audiences, now) {
        Some(Ok(a)) => (Some(a.user), a.audiences, None),
        Some(Err(e)) => (None, Vec::new(), Some(e)),
        None => (None, Vec::new(), None),
    };
    let mut status = Map::new();
    match user {
        Some(u) => {
            status.insert("authenticated".into(), json!(true));
            status.insert("user".into(), user_json(&u));
            status.insert("audiences".into(), json!(result_audiences));
        }
        None => {
            status.insert("user".into(), json!({}));
            if let Some(e) = error {
                status.insert("error".into(), json!(e));
            }
        }
    }
    Value::Object(status)
}

/// A `UserInfo` as the `user` of a review (`username`, `uid`, `groups`, `extra`; empty fields
/// omitted).
pub fn user_json(u: &UserInfo) -> Value {
    let mut m = Map::new();
    m.insert("username".into(), json!(u.name));
    if !u.uid.is_empty() {
        m.insert("uid".into(), json!(u.uid));
    }
    if !u.groups.is_empty() {
        m.insert("groups".into(), json!(u.groups));
    }
    if !u.extra.is_empty() {
        m.insert("extra".into(), json!(u.extra));
    }
    Value::Object(m)
}

fn user_info(namespace: &str, sa: &ObjectRef, extra: BTreeMap<String, Vec<String>>) -> UserInfo {
    UserInfo {
        name: username(namespace, &sa.name),
        uid: sa.uid.clone(),
        groups: vec![
            ALL_SERVICE_ACCOUNTS_GROUP.to_string(),
            format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{namespace}"),
            AUTHENTICATED_GROUP.to_string(),
        ],
        extra,
    }
}

#[cfg(test)]
mod tests;
