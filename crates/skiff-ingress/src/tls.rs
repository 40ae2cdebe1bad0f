//! TLS of the HTTPS listener: certificates selected by SNI over the hosts of the Ingresses'
//! `spec.tls` (exact names first, then `*.`-wildcards matching one label, then an entry without
//! hosts), and the self-signed default certificate generated at start for everything else.
//!
//! What does not live here: reading Secrets (the builder in [`crate::build`] hands over PEM),
//! the accept loop ([`crate::listen`]).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::table::TableHandle;

/// Why a certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate PEM holds no certificate or is malformed.
    #[error("invalid certificate: {0}")]
    Certificate(String),
    /// The key PEM holds no usable private key.
    #[error("invalid private key: {0}")]
    Key(String),
    /// The default certificate could not be generated.
    #[error("cannot generate the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Values selected by SNI name.
#[derive(Debug, Clone)]
pub struct SniTable<T> {
    exact: HashMap<String, T>,
    wildcard: HashMap<String, T>,
    any: Option<T>,
}

impl<T> Default for SniTable<T> {
    fn default() -> Self {
        Self { exact: HashMap::new(), wildcard: HashMap::new(), any: None }
    }
}

impl<T: Clone> SniTable<T> {
    /// Adds `value` for `host` (`*.`-prefixed for a wildcard, empty for "any name"); the first
    /// value given for a name is kept.
    pub fn insert(&mut self, host: &str, value: T) {
        let host = host.to_ascii_lowercase();
        if host.is_empty() {
            self.any.get_or_insert(value);
        } else if let Some(suffix) = host.strip_prefix("*.") {
            self.wildcard.entry(suffix.to_string()).or_insert(value);
        } else {
            self.exact.entry(host).or_insert(value);
        }
    }

    /// The value for the SNI `name` (`None`: the default certificate applies).
    pub fn select(&self, name: Option<&str>) -> Option<&T> {
        let Some(name) = name else { return self.any.as_ref() };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact
            .get(&name)
            .or_else(|| {
                let (first, rest) = name.split_once('.')?;
                if first.is_empty() { None } else { self.wildcard.get(rest) }
            })
            .or(self.any.as_ref())
    }
}

/// A signing certificate from a PEM chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no certificate in PEM data".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let signer = any_supported_type(&key).map_err(|e| TlsError::Key(e.to_string()))?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| TlsError::Key(e.to_string()))?;
    Ok(ck)
}

/// The self-signed certificate served when no Ingress certificate matches.
pub fn default_certificate() -> Result<Arc<CertifiedKey>, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec!["skiff-ingress.invalid".to_string()])?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der()));
    let signer = any_supported_type(&key).map_err(|e| TlsError::Key(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(vec![generated.cert.der().clone()], signer)))
}

/// rustls's certificate choice: the current table's by SNI, else the default certificate.
#[derive(Debug)]
pub struct SniResolver {
    table: TableHandle,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// A resolver over `table` falling back to `default`.
    pub fn new(table: TableHandle, default: Arc<CertifiedKey>) -> Self {
        Self { table, default }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.load();
        Some(table.tls.select(hello.server_name()).cloned().unwrap_or_else(|| self.default.clone()))
    }
}

/// The HTTPS listener's rustls configuration: certificates from `resolver`, ALPN h2 and
/// http/1.1.
pub fn server_config(resolver: SniResolver) -> Arc<rustls::ServerConfig> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| rustls::ServerConfig::builder())
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sni_prefers_exact_then_wildcard_then_any() {
        let mut t = SniTable::default();
        t.insert("a.foo.com", "exact");
        t.insert("*.foo.com", "wild");
        assert_eq!(t.select(Some("a.foo.com")), Some(&"exact"));
        assert_eq!(t.select(Some("B.foo.com")), Some(&"wild"));
        assert_eq!(t.select(Some("x.b.foo.com")), None);
        assert_eq!(t.select(Some("foo.com")), None);
        assert_eq!(t.select(None), None);
        t.insert("", "any");
        assert_eq!(t.select(Some("foo.com")), Some(&"any"));
        assert_eq!(t.select(None), Some(&"any"));
    }

    #[test]
    fn the_first_certificate_for_a_name_is_kept() {
        let mut t = SniTable::default();
        t.insert("h", 1);
        t.insert("H", 2);
        assert_eq!(t.select(Some("h")), Some(&1));
    }

    #[test]
    fn pem_pairs_are_parsed_and_checked() {
        let a = rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.example".to_string()]).unwrap();
        let (cert, key) = (a.cert.pem(), a.signing_key.serialize_pem());
        assert!(certified_key(cert.as_bytes(), key.as_bytes()).is_ok());
        assert!(matches!(certified_key(b"", key.as_bytes()), Err(TlsError::Certificate(_))));
        assert!(matches!(certified_key(cert.as_bytes(), b"junk"), Err(TlsError::Key(_))));
        let other_key = b.signing_key.serialize_pem();
        assert!(certified_key(cert.as_bytes(), other_key.as_bytes()).is_err());
        assert!(default_certificate().is_ok());
    }
}
