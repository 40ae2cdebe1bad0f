//! The cluster's certificates and the admin token, created on first start and reused after.
//!
//! Layout under the data dir (directories 0700, keys and the token 0600, every file written
//! atomically):
//!
//! ```text
//! server/tls/ca.crt  ca.key           cluster CA, ECDSA P-256, 10 years
//! server/tls/serving.crt  serving.key API server certificate (serverAuth), 1 year
//! server/tls/admin.crt  admin.key     CN=system:admin, O=system:masters (clientAuth), 1 year
//! server/token                        admin bearer token, 32 random bytes as hex
//! ```
//!
//! On restart the CA is always reused (a missing half of it is an error, never a silent new CA,
//! which would strand every client). A leaf is issued again when it is missing, unreadable, not
//! issued by this CA, expires within 90 days (k3s's rule), or — for the serving certificate — no longer covers
//! every requested name.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};

use crate::fsutil::{ensure_dir, write_atomic};

/// Leaves are issued again at start when they expire within this many seconds (90 days, as
/// k3s rotates its serving and client certificates).
pub const RENEW_BEFORE_SECS: i64 = 90 * 24 * 3600;
/// CA lifetime in days (10 years).
pub const CA_VALID_DAYS: i32 = 3650;
/// Leaf certificate lifetime in days (1 year).
pub const LEAF_VALID_DAYS: i32 = 365;

/// Errors from creating or loading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Generating or signing a key or certificate failed.
    #[error("failed to generate {what}: {source}")]
    Generate {
        /// Which certificate or key.
        what: &'static str,
        /// Why.
        source: rcgen::Error,
    },
    /// The clock is outside the range certificates can express.
    #[error("cannot compute certificate validity from the system clock: {0}")]
    Clock(String),
    /// A stored certificate, key or token is not usable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// What the serving certificate has to cover, beyond the names every skiff server has
/// (`localhost`, `127.0.0.1` and the `kubernetes` Service names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiRequest {
    /// Extra DNS names: the host name, the node name.
    pub hostnames: Vec<String>,
    /// Extra IP addresses: advertise and bind addresses (never the unspecified address).
    pub ips: Vec<IpAddr>,
    /// The cluster domain, for `kubernetes.default.svc.<domain>`.
    pub cluster_domain: String,
    /// The `kubernetes` Service's cluster IP.
    pub service_ip: IpAddr,
}

impl PkiRequest {
    /// Every DNS name the serving certificate must hold, lowercase, without duplicates.
    pub fn dns_names(&self) -> Vec<String> {
        let mut names = vec!["localhost".to_owned()];
        names.extend(self.hostnames.iter().map(|h| h.to_ascii_lowercase()));
        names.extend(["kubernetes", "kubernetes.default", "kubernetes.default.svc"].map(str::to_owned));
        names.push(format!("kubernetes.default.svc.{}", self.cluster_domain.to_ascii_lowercase()));
        dedup(names)
    }

    /// Every IP address the serving certificate must hold, without duplicates.
    pub fn ip_addresses(&self) -> Vec<IpAddr> {
        let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        ips.extend(self.ips.iter().copied().filter(|ip| !ip.is_unspecified()));
        ips.push(self.service_ip);
        dedup(ips)
    }
}

/// Keeps the first occurrence of each element.
fn dedup<T: Ord + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items.into_iter().filter(|i| seen.insert(i.clone())).collect()
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").field("cert_pem", &self.cert_pem).field("key_pem", &"<redacted>").finish()
    }
}

/// What [`Pki::load_or_create`] had to make this time (for the startup log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PkiChanges {
    /// A new cluster CA was generated.
    pub ca_created: bool,
    /// The serving certificate was (re)issued.
    pub serving_issued: bool,
    /// The admin client certificate was (re)issued.
    pub admin_issued: bool,
    /// A new admin token was generated.
    pub token_created: bool,
}

/// The loaded cluster PKI.
#[derive(Clone)]
pub struct Pki {
    tls_dir: PathBuf,
    ca: CertPair,
    serving: CertPair,
    admin: CertPair,
    admin_token: String,
    service_account_key: String,
    changes: PkiChanges,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").field("tls_dir", &self.tls_dir).field("changes", &self.changes).finish_non_exhaustive()
    }
}

/// Facts read from a certificate, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject common name.
    pub common_name: Option<String>,
    /// Subject organizations.
    pub organizations: Vec<String>,
    /// DNS names in the subjectAltName extension.
    pub dns_names: Vec<String>,
    /// IP addresses in the subjectAltName extension.
    pub ip_addresses: Vec<IpAddr>,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// Whether its extended key usage allows serverAuth.
    pub server_auth: bool,
    /// Whether its extended key usage allows clientAuth.
    pub client_auth: bool,
    /// DER of the subject name.
    pub subject_der: Vec<u8>,
    /// DER of the issuer name.
    pub issuer_der: Vec<u8>,
    /// The raw subject public key bits.
    pub public_key: Vec<u8>,
}

/// Reads the facts skiff cares about from a PEM certificate.
pub fn inspect_cert_pem(pem: &str) -> Result<CertInfo, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Some(san) = cert.subject_alternative_name().map_err(|e| format!("bad subjectAltName: {e}"))? {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => dns_names.push(n.to_ascii_lowercase()),
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ip_addresses.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    let eku = cert.extended_key_usage().map_err(|e| format!("bad extendedKeyUsage: {e}"))?;
    let (server_auth, client_auth) = eku.map_or((false, false), |e| (e.value.server_auth, e.value.client_auth));
    let subject = cert.subject();
    Ok(CertInfo {
        common_name: subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_owned),
        organizations: subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_owned).collect(),
        dns_names,
        ip_addresses,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
        server_auth,
        client_auth,
        subject_der: subject.as_raw().to_vec(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

impl Pki {
    /// Loads the PKI from `<data_dir>/server/tls`, creating or reissuing what is missing or stale.
    pub fn load_or_create(data_dir: &Path, req: &PkiRequest) -> Result<Pki, PkiError> {
        let server_dir = data_dir.join("server");
        let tls_dir = server_dir.join("tls");
        for d in [&server_dir, &tls_dir] {
            ensure_dir(d, 0o700).map_err(|source| PkiError::Io { path: d.clone(), source })?;
        }
        let now = jiff::Timestamp::now().as_second();
        let mut changes = PkiChanges::default();

        let ca = match read_pair(&tls_dir, "ca")? {
            Some(pair) => {
                check_ca(&tls_dir, &pair)?;
                pair
            }
            None => {
                changes.ca_created = true;
                let pair = create_ca(now)?;
                store_pair(&tls_dir, "ca", &pair)?;
                pair
            }
        };

        let admin = match read_pair(&tls_dir, "admin")? {
            Some(pair) if leaf_usable(&pair, &ca, now, |_| true) => pair,
            _ => {
                changes.admin_issued = true;
                let pair = issue(&ca, &admin_params(now)?, "admin certificate")?;
                store_pair(&tls_dir, "admin", &pair)?;
                pair
            }
        };

        let (want_dns, want_ips) = (req.dns_names(), req.ip_addresses());
        let covers = |info: &CertInfo| {
            want_dns.iter().all(|n| info.dns_names.contains(n))
                && want_ips.iter().all(|ip| info.ip_addresses.contains(ip))
        };
        let serving = match read_pair(&tls_dir, "serving")? {
            Some(pair) if leaf_usable(&pair, &ca, now, covers) => pair,
            _ => {
                changes.serving_issued = true;
                let pair = issue(&ca, &serving_params(now, &want_dns, &want_ips)?, "serving certificate")?;
                store_pair(&tls_dir, "serving", &pair)?;
                pair
            }
        };

        let (admin_token, token_created) = load_or_create_token(&server_dir.join("token"))?;
        changes.token_created = token_created;

        let service_account_key = load_or_create_service_account_key(&tls_dir.join("service-account.key"))?;

        Ok(Pki { tls_dir, ca, serving, admin, admin_token, service_account_key, changes })
    }

    /// The ServiceAccount token signing key (PKCS#8 PEM, P-256).
    pub fn service_account_key_pem(&self) -> &str {
        &self.service_account_key
    }

    /// The directory holding the certificates.
    pub fn tls_dir(&self) -> &Path {
        &self.tls_dir
    }

    /// What had to be created or reissued by this load.
    pub fn changes(&self) -> PkiChanges {
        self.changes
    }

    /// The cluster CA certificate, PEM (what clients trust).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// The cluster CA (certificate and key), for signing further identities.
    pub fn ca(&self) -> &CertPair {
        &self.ca
    }

    /// The API server's serving certificate and key.
    pub fn serving(&self) -> &CertPair {
        &self.serving
    }

    /// The admin client certificate (`system:admin`, `system:masters`) and key.
    pub fn admin(&self) -> &CertPair {
        &self.admin
    }

    /// The admin bearer token (accepted like the admin certificate).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Issues a fresh client certificate signed by the cluster CA (one identity per component).
    /// Nothing is written to disk.
    pub fn issue_client_cert(&self, common_name: &str, organizations: &[&str]) -> Result<CertPair, PkiError> {
        let now = jiff::Timestamp::now().as_second();
        let mut params = leaf_params(now, common_name, ExtendedKeyUsagePurpose::ClientAuth)?;
        for o in organizations {
            params.distinguished_name.push(DnType::OrganizationName, *o);
        }
        issue(&self.ca, &params, "client certificate")
    }

    /// Issues a fresh serving certificate signed by the cluster CA (a node agent's streaming
    /// server) for the DNS names `dns` and addresses `ips`. Nothing is written to disk.
    pub fn issue_serving_cert(&self, common_name: &str, dns: &[String], ips: &[IpAddr]) -> Result<CertPair, PkiError> {
        let now = jiff::Timestamp::now().as_second();
        let mut params = serving_params(now, dns, ips)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        issue(&self.ca, &params, "serving certificate")
    }
}

fn invalid(path: &Path, message: impl Into<String>) -> PkiError {
    PkiError::Invalid { path: path.to_owned(), message: message.into() }
}

/// Reads `<name>.crt` and `<name>.key`; `None` when neither exists, an error when only one does.
fn read_pair(dir: &Path, name: &str) -> Result<Option<CertPair>, PkiError> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    let read = |p: &Path| match fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io { path: p.to_owned(), source }),
    };
    match (read(&cert_path)?, read(&key_path)?) {
        (Some(cert_pem), Some(key_pem)) => Ok(Some(CertPair { cert_pem, key_pem })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(&key_path, format!("missing, but {} exists", cert_path.display()))),
        (None, Some(_)) => Err(invalid(&cert_path, format!("missing, but {} exists", key_path.display()))),
    }
}

/// Writes `<name>.key` (0600) then `<name>.crt` (0644).
fn store_pair(dir: &Path, name: &str, pair: &CertPair) -> Result<(), PkiError> {
    for (file, data, mode) in [("key", &pair.key_pem, 0o600), ("crt", &pair.cert_pem, 0o644)] {
        let path = dir.join(format!("{name}.{file}"));
        write_atomic(&path, data.as_bytes(), mode).map_err(|source| PkiError::Io { path, source })?;
    }
    Ok(())
}

/// Checks that a stored CA is a CA and that its key belongs to it.
fn check_ca(dir: &Path, pair: &CertPair) -> Result<(), PkiError> {
    let path = dir.join("ca.crt");
    let info = inspect_cert_pem(&pair.cert_pem).map_err(|m| invalid(&path, m))?;
    if !info.is_ca {
        return Err(invalid(&path, "not a CA certificate"));
    }
    let key = KeyPair::from_pem(&pair.key_pem).map_err(|e| invalid(&dir.join("ca.key"), e.to_string()))?;
    if key.public_key_raw() != info.public_key.as_slice() {
        return Err(invalid(&dir.join("ca.key"), "does not match ca.crt"));
    }
    Ok(())
}

/// Whether the certificate `leaf_pem` carries a valid signature by the certificate `ca_pem`.
pub fn issued_by(leaf_pem: &str, ca_pem: &str) -> bool {
    let parse = |pem: &str| x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok().map(|(_, p)| p);
    let (Some(leaf), Some(ca)) = (parse(leaf_pem), parse(ca_pem)) else {
        return false;
    };
    let (Ok(leaf), Ok(ca)) = (leaf.parse_x509(), ca.parse_x509()) else {
        return false;
    };
    leaf.issuer().as_raw() == ca.subject().as_raw() && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Whether a stored leaf can be kept: it parses, its key matches, this CA signed it, it is not
/// about to expire, and `extra` holds.
fn leaf_usable(pair: &CertPair, ca: &CertPair, now: i64, extra: impl Fn(&CertInfo) -> bool) -> bool {
    let Ok(info) = inspect_cert_pem(&pair.cert_pem) else {
        return false;
    };
    let Ok(key) = KeyPair::from_pem(&pair.key_pem) else {
        return false;
    };
    key.public_key_raw() == info.public_key.as_slice()
        && issued_by(&pair.cert_pem, &ca.cert_pem)
        && info.not_after - RENEW_BEFORE_SECS > now
        && extra(&info)
}

/// A new P-256 key.
fn new_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate { what, source })
}

/// A random positive 128-bit serial number.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Sets notBefore to a day before `now` (tolerating clock skew) and notAfter `days` days after
/// it, at day precision in UTC.
fn set_validity(params: &mut CertificateParams, now: i64, days: i32) -> Result<(), PkiError> {
    let ymd = |offset: i32| -> Result<_, PkiError> {
        let date = jiff::Timestamp::from_second(now)
            .and_then(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().checked_add(jiff::Span::new().days(offset)))
            .map_err(|e| PkiError::Clock(e.to_string()))?;
        // Months are 1..=12 and days 1..=31, so the conversions cannot fail.
        let month = u8::try_from(date.month()).map_err(|e| PkiError::Clock(e.to_string()))?;
        let day = u8::try_from(date.day()).map_err(|e| PkiError::Clock(e.to_string()))?;
        Ok(rcgen::date_time_ymd(i32::from(date.year()), month, day))
    };
    params.not_before = ymd(-1)?;
    params.not_after = ymd(days)?;
    Ok(())
}

fn create_ca(now: i64) -> Result<CertPair, PkiError> {
    let key = new_key("CA key")?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("skiff-ca@{now}"));
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.serial_number = Some(serial());
    set_validity(&mut params, now, CA_VALID_DAYS)?;
    let cert = params.self_signed(&key).map_err(|source| PkiError::Generate { what: "CA certificate", source })?;
    Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

fn leaf_params(now: i64, common_name: &str, eku: ExtendedKeyUsagePurpose) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(serial());
    set_validity(&mut params, now, LEAF_VALID_DAYS)?;
    Ok(params)
}

fn admin_params(now: i64) -> Result<CertificateParams, PkiError> {
    let mut params = leaf_params(now, "system:admin", ExtendedKeyUsagePurpose::ClientAuth)?;
    params.distinguished_name.push(DnType::OrganizationName, "system:masters");
    Ok(params)
}

fn serving_params(now: i64, dns: &[String], ips: &[IpAddr]) -> Result<CertificateParams, PkiError> {
    let mut params = leaf_params(now, "skiff-apiserver", ExtendedKeyUsagePurpose::ServerAuth)?;
    for name in dns {
        let ia5 =
            name.clone().try_into().map_err(|source| PkiError::Generate { what: "serving certificate SAN", source })?;
        params.subject_alt_names.push(SanType::DnsName(ia5));
    }
    params.subject_alt_names.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    Ok(params)
}

/// Signs `params` with the CA, under a new key.
fn issue(ca: &CertPair, params: &CertificateParams, what: &'static str) -> Result<CertPair, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|source| PkiError::Generate { what: "CA key", source })?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, &ca_key).map_err(|source| PkiError::Generate { what, source })?;
    let key = new_key(what)?;
    let cert = params.signed_by(&key, &issuer).map_err(|source| PkiError::Generate { what, source })?;
    Ok(CertPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Reads the admin token, or creates it (32 random bytes, hex, mode 0600). Returns whether it was
/// created.
fn load_or_create_token(path: &Path) -> Result<(String, bool), PkiError> {
    match fs::read_to_string(path) {
        Ok(s) => {
            let token = s.trim().to_owned();
            if token.is_empty() || token.contains(char::is_whitespace) {
                return Err(invalid(path, "token file is empty or malformed"));
            }
            Ok((token, false))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let bytes: [u8; 32] = rand::random();
            let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            write_atomic(path, format!("{token}\n").as_bytes(), 0o600)
                .map_err(|source| PkiError::Io { path: path.to_owned(), source })?;
            Ok((token, true))
        }
        Err(source) => Err(PkiError::Io { path: path.to_owned(), source }),
    }
}

/// Reads the ServiceAccount signing key, or creates it (P-256, PKCS#8 PEM, mode 0600).
fn load_or_create_service_account_key(path: &Path) -> Result<String, PkiError> {
    match fs::read_to_string(path) {
        Ok(pem) => {
            KeyPair::from_pem(&pem).map_err(|e| invalid(path, e.to_string()))?;
            Ok(pem)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let pem = new_key("service account signing key")?.serialize_pem();
            write_atomic(path, pem.as_bytes(), 0o600)
                .map_err(|source| PkiError::Io { path: path.to_owned(), source })?;
            Ok(pem)
        }
        Err(source) => Err(PkiError::Io { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn request(ips: &[&str]) -> PkiRequest {
        PkiRequest {
            hostnames: vec!["node-a".into()],
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            cluster_domain: "cluster.local".into(),
            service_ip: "10.43.0.1".parse().unwrap(),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn first_start_creates_everything_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &request(&["10.0.0.2", "0.0.0.0"])).unwrap();
        let c = pki.changes();
        assert!(c.ca_created && c.serving_issued && c.admin_issued && c.token_created);
        let tls = dir.path().join("server/tls");
        assert_eq!(mode(&tls), 0o700);
        assert_eq!(mode(&dir.path().join("server")), 0o700);
        for key in ["ca.key", "serving.key", "admin.key"] {
            assert_eq!(mode(&tls.join(key)), 0o600, "{key}");
        }
        for crt in ["ca.crt", "serving.crt", "admin.crt"] {
            assert!(tls.join(crt).is_file(), "{crt}");
        }
        assert_eq!(mode(&tls.join("service-account.key")), 0o600);
        let token_path = dir.path().join("server/token");
        assert_eq!(mode(&token_path), 0o600);
        assert_eq!(pki.admin_token().len(), 64);
        assert!(pki.admin_token().bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(fs::read_to_string(token_path).unwrap().trim(), pki.admin_token());
    }

    #[test]
    fn certificates_have_the_right_names_and_usages() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &request(&["10.0.0.2", "0.0.0.0"])).unwrap();

        let ca = inspect_cert_pem(pki.ca_cert_pem()).unwrap();
        assert!(ca.is_ca);
        assert!(ca.not_after - ca.not_before > 9 * 365 * 86400);

        let serving = inspect_cert_pem(&pki.serving().cert_pem).unwrap();
        assert!(serving.server_auth && !serving.client_auth && !serving.is_ca);
        assert_eq!(serving.issuer_der, ca.subject_der);
        assert!(issued_by(&pki.serving().cert_pem, pki.ca_cert_pem()));
        assert!(!issued_by(pki.ca_cert_pem(), &pki.serving().cert_pem));
        for name in [
            "localhost",
            "node-a",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ] {
            assert!(serving.dns_names.iter().any(|n| n == name), "missing {name}: {:?}", serving.dns_names);
        }
        for ip in ["127.0.0.1", "10.0.0.2", "10.43.0.1"] {
            assert!(serving.ip_addresses.contains(&ip.parse().unwrap()), "missing {ip}");
        }
        assert!(!serving.ip_addresses.contains(&"0.0.0.0".parse().unwrap()));
        let lifetime = serving.not_after - serving.not_before;
        assert!((365 * 86400..=367 * 86400).contains(&lifetime), "{lifetime}");

        let admin = inspect_cert_pem(&pki.admin().cert_pem).unwrap();
        assert!(admin.client_auth && !admin.server_auth);
        assert_eq!(admin.common_name.as_deref(), Some("system:admin"));
        assert_eq!(admin.organizations, vec!["system:masters".to_owned()]);
        assert_eq!(admin.issuer_der, ca.subject_der);
    }

    #[test]
    fn restart_reuses_everything() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &request(&["10.0.0.2"])).unwrap();
        let second = Pki::load_or_create(dir.path(), &request(&["10.0.0.2"])).unwrap();
        assert_eq!(second.changes(), PkiChanges::default());
        assert_eq!(first.ca(), second.ca());
        assert_eq!(first.serving(), second.serving());
        assert_eq!(first.admin(), second.admin());
        assert_eq!(first.admin_token(), second.admin_token());
        assert_eq!(first.service_account_key_pem(), second.service_account_key_pem());
    }

    #[test]
    fn san_change_reissues_serving_but_keeps_ca_and_admin() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &request(&["10.0.0.2"])).unwrap();
        let second = Pki::load_or_create(dir.path(), &request(&["10.0.0.3"])).unwrap();
        assert!(second.changes().serving_issued);
        assert!(!second.changes().ca_created && !second.changes().admin_issued);
        assert_eq!(first.ca(), second.ca());
        assert_eq!(first.admin(), second.admin());
        assert_ne!(first.serving(), second.serving());
        let serving = inspect_cert_pem(&second.serving().cert_pem).unwrap();
        assert!(serving.ip_addresses.contains(&"10.0.0.3".parse().unwrap()));
        // Fewer names than the certificate holds is still covered: no reissue.
        let third = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        assert!(!third.changes().serving_issued);
    }

    #[test]
    fn cluster_domain_change_reissues_serving() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        let mut req = request(&[]);
        req.cluster_domain = "example.test".into();
        let pki = Pki::load_or_create(dir.path(), &req).unwrap();
        assert!(pki.changes().serving_issued);
        let serving = inspect_cert_pem(&pki.serving().cert_pem).unwrap();
        assert!(serving.dns_names.iter().any(|n| n == "kubernetes.default.svc.example.test"));
    }

    #[test]
    fn damaged_leaf_is_reissued_but_half_a_ca_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        let tls = dir.path().join("server/tls");
        fs::write(tls.join("admin.crt"), "garbage").unwrap();
        let second = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        assert!(second.changes().admin_issued);
        assert_eq!(first.ca(), second.ca());

        fs::remove_file(tls.join("ca.key")).unwrap();
        let err = Pki::load_or_create(dir.path(), &request(&[])).unwrap_err();
        assert!(err.to_string().contains("ca.key"), "{err}");
    }

    #[test]
    fn mismatched_ca_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        let tls = dir.path().join("server/tls");
        fs::copy(tls.join("admin.key"), tls.join("ca.key")).unwrap();
        let err = Pki::load_or_create(dir.path(), &request(&[])).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn leaf_from_another_ca_is_reissued() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        Pki::load_or_create(a.path(), &request(&[])).unwrap();
        Pki::load_or_create(b.path(), &request(&[])).unwrap();
        for f in ["serving.crt", "serving.key"] {
            fs::copy(b.path().join("server/tls").join(f), a.path().join("server/tls").join(f)).unwrap();
        }
        let pki = Pki::load_or_create(a.path(), &request(&[])).unwrap();
        assert!(pki.changes().serving_issued);
    }

    #[test]
    fn expiring_leaf_is_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        let ca = pki.ca();
        let soon = jiff::Timestamp::now().as_second() + 340 * 86400;
        assert!(leaf_usable(pki.admin(), ca, jiff::Timestamp::now().as_second(), |_| true));
        assert!(!leaf_usable(pki.admin(), ca, soon, |_| true));
        // 80 days left: within k3s's 90-day window.
        let in_80_days = jiff::Timestamp::now().as_second() + (365 - 80) * 86400;
        assert!(!leaf_usable(pki.admin(), ca, in_80_days, |_| true));
        let in_100_days = jiff::Timestamp::now().as_second() + (365 - 100) * 86400;
        assert!(leaf_usable(pki.admin(), ca, in_100_days, |_| true));
    }

    #[test]
    fn certificates_expiring_within_90_days_are_reissued_at_start_with_the_ca_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        let now = jiff::Timestamp::now().as_second();
        let tls = dir.path().join("server/tls");
        for (name, mut params) in [
            ("admin", admin_params(now).unwrap()),
            ("serving", serving_params(now, &request(&[]).dns_names(), &request(&[]).ip_addresses()).unwrap()),
        ] {
            set_validity(&mut params, now, 60).unwrap();
            let pair = issue(first.ca(), &params, "short-lived test certificate").unwrap();
            fs::write(tls.join(format!("{name}.crt")), &pair.cert_pem).unwrap();
            fs::write(tls.join(format!("{name}.key")), &pair.key_pem).unwrap();
        }
        let second = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        assert!(second.changes().admin_issued && second.changes().serving_issued);
        assert!(!second.changes().ca_created);
        assert_eq!(second.ca(), first.ca());
        let admin = inspect_cert_pem(&second.admin().cert_pem).unwrap();
        assert!(admin.not_after - now > 300 * 86400);
        // A third start keeps the fresh ones.
        let third = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        assert!(!third.changes().admin_issued && !third.changes().serving_issued);
    }

    #[test]
    fn issued_serving_cert_names_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let pair = pki.issue_serving_cert("node-a", &["node-a".to_owned()], &[ip]).unwrap();
        let info = inspect_cert_pem(&pair.cert_pem).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("node-a"));
        assert!(info.server_auth && !info.client_auth);
        assert_eq!((info.dns_names, info.ip_addresses), (vec!["node-a".to_owned()], vec![ip]));
        assert!(issued_by(&pair.cert_pem, pki.ca_cert_pem()));
    }

    #[test]
    fn issued_client_cert_carries_identity() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_create(dir.path(), &request(&[])).unwrap();
        let pair = pki.issue_client_cert("system:kube-scheduler", &["system:nodes"]).unwrap();
        let info = inspect_cert_pem(&pair.cert_pem).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("system:kube-scheduler"));
        assert_eq!(info.organizations, vec!["system:nodes".to_owned()]);
        assert!(info.client_auth);
    }
}
