//! Pulling images from OCI distribution registries (through `oci-client`) into the store.
//!
//! A pull resolves the reference to a manifest (an OCI index or Docker manifest list leads to
//! this platform's manifest: `linux` and the host architecture), then downloads the config and
//! the layers the store does not hold yet into `images/ingest/` (each verified against its
//! digest while it streams), and hands everything to [`ImageStore::record_pulled`], which moves
//! the blobs in and records the image under the store lock. OCI and Docker schema 2 manifests are
//! read; layers may be plain, gzip or zstd (the snapshotter looks at their bytes).
//!
//! Credentials are tried in the order given (the first pull that succeeds wins; the errors of all
//! attempts are reported together, as the kubelet does); no credentials means the node's own for
//! the registry (`registries.yaml`), else an anonymous pull. Mirrors come before the registry
//! itself. Which credentials a pod has, back-off, events and deduplication of concurrent pulls
//! are the agent's business, not this module's.

use std::sync::Once;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use oci_client::Reference as OciReference;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::archive::host_architecture;
use super::blobs::{Staged, digest_of};
use super::reference::{Reference, valid_digest};
use super::registries::{Endpoint, Registries};
use super::{ImageRecord, ImageStore, media_types};

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// User name and password (HTTP basic, or exchanged for a token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A registry token sent as `Authorization: Bearer`.
    Bearer(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// A pull failed; the message says why in the registry's words where it had any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PullError(pub String);

/// A finished pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image as recorded.
    pub image: ImageRecord,
    /// Bytes downloaded (blobs the store already held are not fetched again).
    pub downloaded: u64,
    /// How long the pull took.
    pub duration: Duration,
}

/// Manifest media types a pull accepts.
const ACCEPTED: [&str; 4] =
    [media_types::OCI_MANIFEST, media_types::OCI_INDEX, media_types::DOCKER_MANIFEST, media_types::DOCKER_LIST];
/// Blobs downloaded at once within one pull.
const PARALLEL_BLOBS: usize = 3;
/// Largest manifest accepted.
const MANIFEST_LIMIT: usize = 4 << 20;

/// Pulls `reference` into `store`, trying `credentials` in order (none: the node's own or
/// anonymous).
pub async fn pull(
    store: &ImageStore,
    registries: &Registries,
    reference: &Reference,
    credentials: &[Credential],
) -> Result<Pulled, PullError> {
    install_crypto_provider();
    let started = Instant::now();
    let attempts: Vec<Option<&Credential>> =
        if credentials.is_empty() { vec![None] } else { credentials.iter().map(Some).collect() };
    let mut errors = Vec::new();
    for credential in attempts {
        match pull_with(store, registries, reference, credential).await {
            Ok((image, downloaded)) => return Ok(Pulled { image, downloaded, duration: started.elapsed() }),
            Err(e) => errors.push(e),
        }
    }
    Err(PullError(if errors.len() == 1 { errors.remove(0) } else { format!("[{}]", errors.join(", ")) }))
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another component may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// One attempt with one credential over every endpoint (mirrors first); the error of the last
/// endpoint (the registry itself) is the one reported.
async fn pull_with(
    store: &ImageStore,
    registries: &Registries,
    reference: &Reference,
    credential: Option<&Credential>,
) -> Result<(ImageRecord, u64), String> {
    let name = reference.to_string();
    let mut last = String::new();
    for endpoint in registries.endpoints(&reference.registry) {
        let auth = match credential {
            Some(Credential::Basic { username, password }) => RegistryAuth::Basic(username.clone(), password.clone()),
            Some(Credential::Bearer(token)) => RegistryAuth::Bearer(token.clone()),
            None => match registries.auth(&endpoint.host) {
                Some(a) => RegistryAuth::Basic(a.username.clone(), a.password.clone()),
                None => RegistryAuth::Anonymous,
            },
        };
        match pull_from(store, registries, reference, &endpoint, &auth).await {
            Ok(done) => return Ok(done),
            Err(e) => {
                tracing::info!(image = %name, endpoint = %endpoint.host, error = %e, "pull attempt failed");
                last = e;
            }
        }
    }
    Err(format!("failed to pull and unpack image \"{name}\": {last}"))
}

fn client_for(registries: &Registries, endpoint: &Endpoint) -> Result<oci_client::Client, String> {
    let tls = registries.tls(&endpoint.host);
    let mut extra_root_certificates = Vec::new();
    if let Some(path) = tls.and_then(|t| t.ca_file.as_ref()) {
        let data = std::fs::read(path).map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        extra_root_certificates.push(Certificate { encoding: CertificateEncoding::Pem, data });
    }
    let config = ClientConfig {
        protocol: if endpoint.plain_http {
            ClientProtocol::HttpsExcept(vec![endpoint.host.clone()])
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: tls.is_some_and(|t| t.insecure_skip_verify),
        extra_root_certificates,
        // Indexes are resolved here, so their digest can be recorded.
        platform_resolver: None,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(120)),
        user_agent: concat!("skiff/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    };
    oci_client::Client::try_from(config).map_err(|e| render(&e))
}

#[derive(Deserialize)]
struct WireManifest {
    #[serde(rename = "schemaVersion", default)]
    schema_version: i64,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: i64,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// What a fetched manifest turned out to be.
#[derive(Debug)]
enum Fetched {
    Index(Vec<IndexEntry>),
    Image { config: Descriptor, layers: Vec<Descriptor> },
}

fn classify(bytes: &[u8]) -> Result<Fetched, String> {
    let wire: WireManifest = serde_json::from_slice(bytes).map_err(|e| format!("invalid manifest: {e}"))?;
    if wire.schema_version != 2 {
        return Err(format!("unsupported manifest schema version {}", wire.schema_version));
    }
    let media_type = wire.media_type.as_deref().unwrap_or("");
    if let Some(manifests) = wire.manifests
        && (media_type.is_empty() || media_type == media_types::OCI_INDEX || media_type == media_types::DOCKER_LIST)
    {
        return Ok(Fetched::Index(manifests));
    }
    if !(media_type.is_empty() || media_type == media_types::OCI_MANIFEST || media_type == media_types::DOCKER_MANIFEST)
    {
        return Err(format!("unsupported manifest media type {media_type:?}"));
    }
    let config = wire.config.ok_or("invalid manifest: no config")?;
    Ok(Fetched::Image { config, layers: wire.layers.unwrap_or_default() })
}

/// The entry of an index for this platform (`linux`, the host architecture).
fn select_platform(entries: &[IndexEntry], arch: &str) -> Option<String> {
    entries
        .iter()
        .find(|e| e.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch))
        .or_else(|| entries.iter().find(|e| e.platform.is_none()))
        .map(|e| e.digest.clone())
}

fn oci_reference(endpoint: &Endpoint, reference: &Reference, digest: Option<&str>) -> OciReference {
    let (registry, repository) = (endpoint.host.clone(), reference.repository.clone());
    match (digest.or(reference.digest.as_deref()), &reference.tag) {
        (Some(d), _) => OciReference::with_digest(registry, repository, d.to_string()),
        (None, Some(tag)) => OciReference::with_tag(registry, repository, tag.clone()),
        (None, None) => OciReference::with_tag(registry, repository, super::reference::DEFAULT_TAG.to_string()),
    }
}

async fn fetch_manifest(
    client: &oci_client::Client,
    oci: &OciReference,
    auth: &RegistryAuth,
    expected: Option<&str>,
) -> Result<(Vec<u8>, String), String> {
    let (bytes, _) = client.pull_manifest_raw(oci, auth, &ACCEPTED).await.map_err(|e| render(&e))?;
    if bytes.len() > MANIFEST_LIMIT {
        return Err(format!("manifest larger than {MANIFEST_LIMIT} bytes"));
    }
    let digest = digest_of(&bytes);
    if let Some(expected) = expected
        && expected != digest
    {
        return Err(format!("manifest digest mismatch: expected {expected}, got {digest}"));
    }
    Ok((bytes.to_vec(), digest))
}

async fn pull_from(
    store: &ImageStore,
    registries: &Registries,
    reference: &Reference,
    endpoint: &Endpoint,
    auth: &RegistryAuth,
) -> Result<(ImageRecord, u64), String> {
    let name = reference.to_string();
    let client = client_for(registries, endpoint)?;
    let resolve_error = |e: String| format!("failed to resolve reference \"{name}\": {e}");
    let oci = oci_reference(endpoint, reference, None);
    let (mut bytes, mut digest) =
        fetch_manifest(&client, &oci, auth, reference.digest.as_deref()).await.map_err(resolve_error)?;
    let mut index = None;
    let mut fetched = classify(&bytes)?;
    if let Fetched::Index(entries) = &fetched {
        let arch = host_architecture();
        let chosen = select_platform(entries, arch).ok_or("no match for platform in manifest: not found")?;
        if !valid_digest(&chosen) {
            return Err(format!("unsupported digest {chosen:?}"));
        }
        index = Some(digest);
        let platform_ref = oci_reference(endpoint, reference, Some(&chosen));
        (bytes, digest) = fetch_manifest(&client, &platform_ref, auth, Some(&chosen)).await.map_err(resolve_error)?;
        fetched = classify(&bytes)?;
    }
    let Fetched::Image { config, layers } = fetched else {
        return Err("image index nested in an image index".into());
    };
    let blobs: Vec<&Descriptor> = std::iter::once(&config).chain(&layers).collect();
    if let Some(bad) = blobs.iter().find(|b| !valid_digest(&b.digest)) {
        return Err(format!("unsupported digest {:?} (only sha256 is supported)", bad.digest));
    }
    let ingest = store.ingest_dir().map_err(|e| e.to_string())?;
    let oci = oci_reference(endpoint, reference, Some(&digest));
    let mut missing: Vec<(String, i64)> =
        blobs.into_iter().filter(|b| !store.blobs().contains(&b.digest)).map(|b| (b.digest.clone(), b.size)).collect();
    missing.dedup_by(|a, b| a.0 == b.0);
    let fetches = missing.into_iter().map(|(digest, size)| {
        let (client, oci, ingest) = (client.clone(), oci.clone(), ingest.clone());
        async move { fetch_blob(&client, &oci, &digest, size, &ingest).await }
    });
    let mut staged: Vec<Staged> = futures::stream::iter(fetches).buffer_unordered(PARALLEL_BLOBS).try_collect().await?;
    let downloaded = staged.iter().map(|s| std::fs::metadata(&s.file).map_or(0, |m| m.len())).sum();
    staged.push(stage_bytes(&ingest, &bytes, &digest)?);
    let recorded = match &reference.tag {
        Some(tag) if reference.digest.is_none() => {
            Reference { tag: Some(tag.clone()), digest: None, ..reference.clone() }
        }
        _ => {
            Reference { tag: None, digest: Some(index.clone().unwrap_or_else(|| digest.clone())), ..reference.clone() }
        }
    };
    let store = store.clone();
    let image = tokio::task::spawn_blocking(move || store.record_pulled(staged, &digest, index.as_deref(), &recorded))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok((image, downloaded))
}

/// Downloads one blob into a temporary file of `ingest`; oci-client checks its digest.
async fn fetch_blob(
    client: &oci_client::Client,
    oci: &OciReference,
    digest: &str,
    size: i64,
    ingest: &std::path::Path,
) -> Result<Staged, String> {
    let tmp = tempfile::Builder::new()
        .prefix(".blob")
        .tempfile_in(ingest)
        .map_err(|e| format!("{}: {e}", ingest.display()))?
        .into_temp_path();
    let file = tokio::fs::File::create(&tmp).await.map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    client
        .pull_blob(oci, digest, &mut out)
        .await
        .map_err(|e| format!("failed to fetch blob {digest}: {}", render(&e)))?;
    out.flush().await.map_err(|e| format!("{}: {e}", tmp.display()))?;
    let len = tokio::fs::metadata(&tmp).await.map_err(|e| format!("{}: {e}", tmp.display()))?.len();
    if size > 0 && len != size as u64 {
        return Err(format!("blob {digest}: expected {size} bytes, got {len}"));
    }
    Ok(Staged { digest: digest.to_string(), file: tmp })
}

fn stage_bytes(ingest: &std::path::Path, bytes: &[u8], digest: &str) -> Result<Staged, String> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".blob")
        .tempfile_in(ingest)
        .map_err(|e| format!("{}: {e}", ingest.display()))?;
    std::io::Write::write_all(&mut tmp, bytes).map_err(|e| format!("{}: {e}", tmp.path().display()))?;
    Ok(Staged { digest: digest.to_string(), file: tmp.into_temp_path() })
}

/// An oci-client error in words a user can act on, with the registry's own message.
fn render(e: &OciDistributionError) -> String {
    match e {
        OciDistributionError::UnauthorizedError { url } => format!("GET {url}: 401 Unauthorized"),
        OciDistributionError::RegistryError { envelope, url } => {
            let errors: Vec<String> = envelope
                .errors
                .iter()
                .map(|err| {
                    let code = serde_json::to_value(&err.code)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| "UNKNOWN".into());
                    if err.message.is_empty() { code } else { format!("{code}: {}", err.message) }
                })
                .collect();
            format!("GET {url}: {}", errors.join("; "))
        }
        OciDistributionError::ServerError { code, url, message } => {
            let message = message.trim();
            let reason = http::StatusCode::from_u16(*code).ok().and_then(|c| c.canonical_reason()).unwrap_or("");
            if message.is_empty() {
                format!("GET {url}: {code} {reason}")
            } else {
                format!("GET {url}: {code} {reason}: {}", message.chars().take(300).collect::<String>())
            }
        }
        OciDistributionError::AuthenticationFailure(reason) => {
            format!("failed to authorize: {}", reason.trim().chars().take(300).collect::<String>())
        }
        other => error_chain(other),
    }
}

/// `error: cause: cause…` (reqwest keeps the useful part, e.g. "connection refused", in sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_this_platform_from_an_index() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests":[
              {"digest":"sha256:a","platform":{"os":"windows","architecture":"amd64"}},
              {"digest":"sha256:b","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
              {"digest":"sha256:c","platform":{"os":"linux","architecture":"amd64"}}]}"#;
        let Ok(Fetched::Index(entries)) = classify(index) else { panic!("an index") };
        assert_eq!(select_platform(&entries, "amd64").as_deref(), Some("sha256:c"));
        assert_eq!(select_platform(&entries, "arm64").as_deref(), Some("sha256:b"));
        assert_eq!(select_platform(&entries, "s390x"), None);
    }

    #[test]
    fn reads_oci_and_docker_manifests_and_refuses_others() {
        for media_type in [media_types::OCI_MANIFEST, media_types::DOCKER_MANIFEST] {
            let m = format!(
                r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"digest":"sha256:c","size":1}},
                "layers":[{{"digest":"sha256:l","size":2}}]}}"#
            );
            let Ok(Fetched::Image { config, layers }) = classify(m.as_bytes()) else { panic!("{media_type}") };
            assert_eq!((config.digest.as_str(), layers.len()), ("sha256:c", 1));
        }
        assert!(classify(br#"{"schemaVersion":1,"name":"x"}"#).expect_err("schema 1").contains("schema version 1"));
        assert!(classify(br#"{"schemaVersion":2,"mediaType":"text/plain"}"#).is_err());
        // No media type: the fields decide.
        assert!(matches!(classify(br#"{"schemaVersion":2,"manifests":[]}"#), Ok(Fetched::Index(_))));
    }

    #[test]
    fn registry_errors_keep_the_registry_message() {
        let envelope: oci_client::errors::OciEnvelope =
            serde_json::from_str(r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#)
                .expect("envelope");
        let e = OciDistributionError::RegistryError { envelope, url: "http://r/v2/a/manifests/1".into() };
        assert_eq!(render(&e), "GET http://r/v2/a/manifests/1: MANIFEST_UNKNOWN: manifest unknown");
        let e = OciDistributionError::UnauthorizedError { url: "http://r/v2/a/manifests/1".into() };
        assert_eq!(render(&e), "GET http://r/v2/a/manifests/1: 401 Unauthorized");
        let e = OciDistributionError::ServerError { code: 503, url: "u".into(), message: "down\n".into() };
        assert_eq!(render(&e), "GET u: 503 Service Unavailable: down");
    }

    #[test]
    fn credentials_never_show_secrets() {
        let c = Credential::Basic { username: "me".into(), password: "hunter2".into() };
        assert_eq!(format!("{c:?}"), "Basic(me, ***)");
        assert!(!format!("{:?}", Credential::Bearer("tok".into())).contains("tok"));
    }
}
