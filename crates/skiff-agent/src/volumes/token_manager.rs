//! The kubelet's ServiceAccount token manager: tokens for `serviceAccountToken` projections are
//! requested through the TokenRequest API bound to the pod (audience, `expirationSeconds`), cached
//! per (namespace, ServiceAccount, audience, lifetime, pod uid), and requested again once 80 % of
//! their lifetime has passed or they are older than 24 hours (less up to 10 s of jitter), as
//! kubelet's `token.Manager` does. Writing the files is the projected volume's job.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};

/// Tokens older than this are refreshed whatever their lifetime.
const MAX_TTL_SECONDS: i64 = 24 * 3600;
/// Upper bound of the random jitter subtracted from the refresh deadlines.
const MAX_JITTER_SECONDS: i64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    service_account: String,
    audience: Option<String>,
    expiration_seconds: i64,
    pod_uid: String,
}

#[derive(Clone)]
struct Cached {
    token: String,
    /// `status.expirationTimestamp` (seconds since the epoch).
    expires: i64,
    expiration_seconds: i64,
}

/// Whether a token expiring at `expires` with a lifetime of `ttl` seconds must be refreshed at
/// `now` (`jitter` seconds early).
pub fn requires_refresh(now: i64, expires: i64, ttl: i64, jitter: i64) -> bool {
    let issued = expires - ttl;
    now > issued + MAX_TTL_SECONDS - jitter || now > expires - ttl * 20 / 100 - jitter
}

/// Requests and caches the tokens of the node's pods.
pub struct TokenManager {
    client: kube::Client,
    cache: Mutex<HashMap<Key, Cached>>,
}

impl TokenManager {
    /// A manager requesting tokens through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client, cache: Mutex::new(HashMap::new()) }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A token of `pod`'s ServiceAccount bound to the pod, from the cache while it is fresh.
    pub async fn token(&self, pod: &Pod, audience: Option<&str>, expiration_seconds: i64) -> Result<String, String> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let service_account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = Key {
            namespace: namespace.clone(),
            service_account: service_account.clone(),
            audience: audience.filter(|a| !a.is_empty()).map(str::to_string),
            expiration_seconds,
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        };
        let now = jiff::Timestamp::now().as_second();
        let jitter = i64::from(jiff::Timestamp::now().subsec_nanosecond()).rem_euclid(MAX_JITTER_SECONDS + 1);
        let cached = self.locked().get(&key).cloned();
        if let Some(c) = &cached
            && !requires_refresh(now, c.expires, c.expiration_seconds, jitter)
        {
            return Ok(c.token.clone());
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: key.audience.iter().cloned().collect(),
                expiration_seconds: Some(expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &namespace);
        let answer = match api.create_token_request(&service_account, &PostParams::default(), &request).await {
            Ok(a) => a,
            Err(e) => {
                // A still-valid cached token is better than none while the API is unreachable.
                if let Some(c) = cached
                    && now < c.expires
                {
                    tracing::warn!(%namespace, %service_account, error = %e, "token refresh failed; keeping the cached token");
                    return Ok(c.token);
                }
                return Err(format!("failed to fetch token: {e}"));
            }
        };
        let status = answer.status.ok_or_else(|| "failed to fetch token: the answer has no status".to_string())?;
        let expires = status.expiration_timestamp.0.as_second();
        let ttl = answer.spec.expiration_seconds.unwrap_or(expiration_seconds);
        self.locked().insert(key, Cached { token: status.token.clone(), expires, expiration_seconds: ttl });
        Ok(status.token)
    }

    /// Drops the cached tokens of a pod.
    pub fn forget_pod(&self, uid: &str) {
        self.locked().retain(|k, _| k.pod_uid != uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_at_eighty_percent_or_after_a_day() {
        let ttl = 3607;
        let expires = 10_000 + ttl;
        assert!(!requires_refresh(10_000, expires, ttl, 0));
        let eighty = 10_000 + ttl - ttl * 20 / 100;
        assert!(!requires_refresh(eighty, expires, ttl, 0));
        assert!(requires_refresh(eighty + 1, expires, ttl, 0));
        assert!(requires_refresh(eighty - 5, expires, ttl, 10), "jitter refreshes early");
        let year = 365 * 24 * 3600;
        assert!(!requires_refresh(10_000 + MAX_TTL_SECONDS, 10_000 + year, year, 0));
        assert!(requires_refresh(10_000 + MAX_TTL_SECONDS + 1, 10_000 + year, year, 0));
    }
}
