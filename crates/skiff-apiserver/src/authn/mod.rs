//! Authentication: who is calling, from the TLS client certificate (CN = user, O = groups) or a
//! bearer token. What the caller may do is decided afterwards by [`crate::authz`].
//!
//! Tokens are compared by their SHA-256 digest so lookups do not leak timing about the secret.
//! ServiceAccount JWTs are in [`serviceaccount`] (signing and verifying in [`jwt`]).

pub mod jwt;
pub mod review;
pub mod serviceaccount;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated identity (upstream `user.Info`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// Unique id of the user, when the authenticator knows one (ServiceAccounts).
    pub uid: String,
    /// Groups (`system:authenticated` is always included for authenticated users).
    pub groups: Vec<String>,
    /// Extra attributes (for example the pod a ServiceAccount token is bound to).
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The group of unauthenticated requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The group whose members may do anything (checked before any authorizer).
pub const MASTERS_GROUP: &str = "system:masters";

impl UserInfo {
    /// An authenticated user: `system:authenticated` is added to `groups` if missing.
    pub fn new(name: String, mut groups: Vec<String>) -> Self {
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.into());
        }
        Self { name, groups, ..Default::default() }
    }

    /// The identity of a request that presented no credentials.
    pub fn anonymous() -> Self {
        Self { name: "system:anonymous".into(), groups: vec![UNAUTHENTICATED_GROUP.into()], ..Default::default() }
    }

    /// The API server's own identity for internal calls (controllers inside the server).
    pub fn apiserver() -> Self {
        Self::new("system:apiserver".into(), vec![MASTERS_GROUP.into()])
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// The verified client certificate of a connection, parsed once when its TLS handshake ends
/// (the identity cannot change on a connection) and attached to each of its requests.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificate {
    /// Whether the client presented a certificate (the audit log names `x509` as attempted).
    pub presented: bool,
    /// The identity the certificate names; `None` without a certificate or when it names no
    /// user.
    pub user: Option<Arc<UserInfo>>,
}

impl PeerCertificate {
    /// The identity of a connection from its verified certificate (DER), if any.
    pub fn from_der(der: Option<&[u8]>) -> Self {
        Self { presented: der.is_some(), user: der.and_then(from_certificate).map(Arc::new) }
    }
}

/// The remote address of a connection; attached by the TLS layer (audit `sourceIPs`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddress(pub std::net::SocketAddr);

/// Static bearer tokens.
#[derive(Default)]
pub struct TokenAuthenticator {
    tokens: HashMap<[u8; 32], UserInfo>,
    service_accounts: Option<Arc<serviceaccount::ServiceAccountTokens>>,
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

    /// Also accepts ServiceAccount tokens verified by `tokens`.
    pub fn set_service_accounts(&mut self, tokens: Arc<serviceaccount::ServiceAccountTokens>) {
        self.service_accounts = Some(tokens);
    }

    /// The user of a static token.
    pub fn lookup_static(&self, token: &str) -> Option<UserInfo> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.tokens.get(&digest).cloned()
    }

    fn lookup(&self, token: &str) -> Option<UserInfo> {
        if let Some(user) = self.lookup_static(token) {
            return Some(user);
        }
        let now = jiff::Timestamp::now().as_second();
        match self.service_accounts.as_ref()?.authenticate(token, now)? {
            Ok(a) => Some(a.user),
            Err(why) => {
                tracing::debug!(reason = %why, "service account token refused");
                None
            }
        }
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

/// Authenticates a request from its connection's certificate identity and its
/// `Authorization` header.
pub fn authenticate(
    tokens: &TokenAuthenticator,
    cert: &PeerCertificate,
    authorization: Option<&str>,
) -> Option<Arc<UserInfo>> {
    if let Some(user) = &cert.user {
        return Some(user.clone());
    }
    let header = authorization?;
    let (scheme, token) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    tokens.lookup(token.trim()).map(Arc::new)
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
        let none = PeerCertificate::default();
        let u = authenticate(&t, &none, Some("Bearer s3cret")).expect("user");
        assert_eq!(u.name, "admin");
        assert!(u.groups.contains(&"system:masters".to_string()));
        assert!(authenticate(&t, &none, Some("Bearer wrong")).is_none());
        assert!(authenticate(&t, &none, Some("Basic s3cret")).is_none());
        assert!(authenticate(&t, &none, None).is_none());
    }

    #[test]
    fn a_connection_certificate_is_parsed_once_and_reused_by_its_requests() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "jane");
        dn.push(rcgen::DnType::OrganizationName, "dev");
        params.distinguished_name = dn;
        let der = params.self_signed(&key).expect("certificate").der().to_vec();
        let peer = PeerCertificate::from_der(Some(&der));
        let user = peer.user.clone().expect("identity");
        assert!(peer.presented);
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, vec!["dev".to_string(), AUTHENTICATED_GROUP.to_string()]);
        let got = authenticate(&TokenAuthenticator::default(), &peer, Some("Bearer other")).expect("user");
        assert!(Arc::ptr_eq(&got, &user), "the certificate wins and is not parsed again");
        let garbage = PeerCertificate::from_der(Some(b"not a certificate"));
        assert!(garbage.presented && garbage.user.is_none());
        assert!(!PeerCertificate::from_der(None).presented);
    }

    #[test]
    fn public_paths() {
        assert!(is_public("/readyz"));
        assert!(is_public("/version"));
        assert!(!is_public("/api/v1/pods"));
        assert!(!is_public("/openapi/v2"));
    }
}
