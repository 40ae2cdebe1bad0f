//! Authentication: who is calling, from the TLS client certificate (CN = user, O = groups) or a
//! bearer token. Authorization is a later layer; for now every authenticated user is allowed.
//!
//! Tokens are compared by their SHA-256 digest so lookups do not leak timing about the secret.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Groups (`system:authenticated` is always included).
    pub groups: Vec<String>,
}

impl UserInfo {
    fn new(name: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        Self { name, groups }
    }
}

/// The verified client certificate of a connection (DER), if any; attached by the TLS layer.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificate(pub Option<Vec<u8>>);

/// Static bearer tokens.
#[derive(Default)]
pub struct TokenAuthenticator {
    tokens: HashMap<[u8; 32], UserInfo>,
}

impl std::fmt::Debug for TokenAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenAuthenticator({} tokens)", self.tokens.len())
    }
}

impl TokenAuthenticator {
    /// Adds a token for a user.
    pub fn add(&mut self, token: &str, name: &str, groups: &[&str]) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tokens.insert(digest, UserInfo::new(name.to_string(), groups.iter().map(|g| g.to_string()).collect()));
    }

    fn lookup(&self, token: &str) -> Option<UserInfo> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tokens.get(&digest).cloned()
    }
}

/// Identity from a client certificate the TLS layer already verified against the cluster CA.
pub fn from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let groups = subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    Some(UserInfo::new(name, groups))
}

/// Authenticates a request from its certificate and `Authorization` header.
pub fn authenticate(tokens: &TokenAuthenticator, cert: Option<&[u8]>, authorization: Option<&str>) -> Option<UserInfo> {
    if let Some(user) = cert.and_then(from_certificate) {
        return Some(user);
    }
    let header = authorization?;
    let (scheme, token) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    tokens.lookup(token.trim())
}

/// Paths served without authentication.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_only_with_bearer_scheme() {
        let mut t = TokenAuthenticator::default();
        t.add("s3cret", "admin", &["system:masters"]);
        let u = authenticate(&t, None, Some("Bearer s3cret")).expect("user");
        assert_eq!(u.name, "admin");
        assert!(u.groups.contains(&"system:masters".to_string()));
        assert!(authenticate(&t, None, Some("Bearer wrong")).is_none());
        assert!(authenticate(&t, None, Some("Basic s3cret")).is_none());
        assert!(authenticate(&t, None, None).is_none());
    }

    #[test]
    fn public_paths() {
        assert!(is_public("/readyz"));
        assert!(is_public("/version"));
        assert!(!is_public("/api/v1/pods"));
        assert!(!is_public("/openapi/v2"));
    }
}
