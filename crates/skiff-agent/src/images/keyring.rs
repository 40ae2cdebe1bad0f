//! Pull-secret credentials, matched to images the way the kubelet's credential keyring does.
//!
//! Secrets of type `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`: `{"auths": {…}}`)
//! and `kubernetes.io/dockercfg` (`.dockercfg`: the map itself) give entries keyed by registry
//! location. A key loses its scheme and a leading `/v1/` or `/v2/` path, becoming `host[/path]`.
//! An image (`registry/repository`, normalised) matches a key when the ports are equal, the
//! host names have as many dot-separated parts and each part matches (a key part may be a glob:
//! `*.example.com`), and the image's path starts with the key's path. Keys are tried from the
//! most specific (reverse-sorted) on; every match contributes its credentials in that order.
//! With no match, an image on Docker Hub takes the credentials of `index.docker.io`.
//!
//! Fetching the Secrets is the image manager's; pulling with the credentials is the runtime's.

use std::collections::BTreeMap;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use skiff_runtime::images::pull::Credential;

/// Where Docker Hub's credentials live in a docker config.
const DEFAULT_REGISTRY_HOST: &str = "index.docker.io";

/// One entry of a docker config.
#[derive(Debug, Default, Deserialize)]
struct Entry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// base64 of `username:password`; wins over the fields.
    #[serde(default)]
    auth: String,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

/// A pull secret that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyringError(pub String);

/// Credentials by registry location, in lookup order.
#[derive(Debug, Default, Clone)]
pub struct Keyring {
    /// Normalised key → credentials (several secrets may name one location).
    creds: BTreeMap<String, Vec<Credential>>,
}

impl Keyring {
    /// Builds the keyring of a pod's pull secrets (in the order the pod lists them).
    pub fn from_secrets(secrets: &[Secret]) -> Result<Self, KeyringError> {
        let mut keyring = Self::default();
        for secret in secrets {
            let data = secret.data.as_ref();
            let name = secret.metadata.name.as_deref().unwrap_or("");
            let get = |key: &str| data.and_then(|d| d.get(key)).map(|b| b.0.as_slice()).filter(|b| !b.is_empty());
            match secret.type_.as_deref() {
                Some("kubernetes.io/dockercfg") => {
                    if let Some(bytes) = get(".dockercfg") {
                        let config: BTreeMap<String, Entry> = serde_json::from_slice(bytes)
                            .map_err(|e| KeyringError(format!("secret {name}: invalid .dockercfg: {e}")))?;
                        keyring.add(config)?;
                    }
                }
                Some("kubernetes.io/dockerconfigjson") => {
                    if let Some(bytes) = get(".dockerconfigjson") {
                        let config: ConfigJson = serde_json::from_slice(bytes)
                            .map_err(|e| KeyringError(format!("secret {name}: invalid .dockerconfigjson: {e}")))?;
                        keyring.add(config.auths)?;
                    }
                }
                _ => {}
            }
        }
        Ok(keyring)
    }

    fn add(&mut self, config: BTreeMap<String, Entry>) -> Result<(), KeyringError> {
        for (location, entry) in config {
            let Some(key) = normalise_key(&location) else {
                tracing::warn!(entry = %location, "pull secret entry is not a registry location; ignored");
                continue;
            };
            let (username, password) =
                if entry.auth.is_empty() { (entry.username, entry.password) } else { decode_auth(&entry.auth)? };
            self.creds.entry(key).or_default().push(Credential::Basic { username, password });
        }
        Ok(())
    }

    /// The credentials for `image` (`registry/repository`, normalised, no tag), most specific
    /// location first; empty when none applies (then the pull is anonymous).
    pub fn lookup(&self, image: &str) -> Vec<Credential> {
        let mut out = Vec::new();
        // BTreeMap iterates ascending; the kubelet tries the reverse order.
        for (key, creds) in self.creds.iter().rev() {
            if urls_match(key, image) {
                out.extend(creds.iter().cloned());
            }
        }
        if out.is_empty()
            && is_default_registry(image)
            && let Some(creds) = self.creds.get(DEFAULT_REGISTRY_HOST)
        {
            out.extend(creds.iter().cloned());
        }
        out
    }
}

fn decode_auth(auth: &str) -> Result<(String, String), KeyringError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| KeyringError(format!("invalid auth in pull secret: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| KeyringError("invalid auth in pull secret: not UTF-8".into()))?;
    let (user, pass) =
        text.split_once(':').ok_or_else(|| KeyringError("invalid auth in pull secret: no ':' in it".into()))?;
    Ok((user.to_string(), pass.trim_matches('\0').to_string()))
}

/// `https://host/v1/` → `host`; `host/path` stays; `None` for a location without a host.
fn normalise_key(location: &str) -> Option<String> {
    let rest = location.strip_prefix("https://").or_else(|| location.strip_prefix("http://")).unwrap_or(location);
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let host = host.rsplit('@').next().unwrap_or(host);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let path = if path.starts_with("/v1/") || path.starts_with("/v2/") { &path[3..] } else { path };
    Some(if path.is_empty() || path == "/" { host.to_string() } else { format!("{host}{path}") })
}

/// Splits `host[:port]/path` into host parts, port and path.
fn split(location: &str) -> (Vec<&str>, &str, &str) {
    let (hostport, path) = match location.find('/') {
        Some(i) => (&location[..i], &location[i..]),
        None => (location, ""),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p),
        _ => (hostport, ""),
    };
    (host.split('.').collect(), port, path)
}

/// Whether `image` falls under keyring key `glob` (see the module doc).
fn urls_match(glob: &str, image: &str) -> bool {
    let (glob_parts, glob_port, glob_path) = split(glob);
    let (parts, port, path) = split(image);
    glob_port == port
        && glob_parts.len() == parts.len()
        && path.starts_with(glob_path)
        && glob_parts.iter().zip(&parts).all(|(g, p)| glob_match(g.as_bytes(), p.as_bytes()))
}

/// Shell-style matching of one host part: `*` (any run) and `?` (one character).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

/// Whether `image` counts as Docker Hub's: no registry part, `docker.io`, or a first part
/// without `.` or `:` (as the kubelet decides, which includes `localhost`).
fn is_default_registry(image: &str) -> bool {
    let mut parts = image.splitn(2, '/');
    let first = parts.next().unwrap_or("");
    if first.is_empty() {
        return false;
    }
    if parts.next().is_none() || first == "docker.io" {
        return true;
    }
    !first.contains(['.', ':'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(kind: &str, key: &str, json: &str) -> Secret {
        Secret {
            type_: Some(kind.into()),
            data: Some([(key.to_string(), ByteString(json.as_bytes().to_vec()))].into()),
            ..Default::default()
        }
    }

    fn users(creds: &[Credential]) -> Vec<String> {
        creds
            .iter()
            .map(|c| match c {
                Credential::Basic { username, password } => format!("{username}:{password}"),
                Credential::Bearer(t) => t.clone(),
            })
            .collect()
    }

    #[test]
    fn keys_are_normalised() {
        assert_eq!(normalise_key("https://index.docker.io/v1/").as_deref(), Some("index.docker.io"));
        assert_eq!(normalise_key("http://reg:5000/v2/team").as_deref(), Some("reg:5000/team"));
        assert_eq!(normalise_key("reg.example.com/a/b").as_deref(), Some("reg.example.com/a/b"));
        assert_eq!(normalise_key("reg.example.com/").as_deref(), Some("reg.example.com"));
        assert_eq!(normalise_key("https://"), None);
    }

    #[test]
    fn matching_follows_the_kubelet_keyring() {
        let cases = [
            ("reg.example.com", "reg.example.com/app", true),
            ("reg.example.com", "reg.example.com:5000/app", false),
            ("reg.example.com:5000", "reg.example.com:5000/app", true),
            ("*.example.com", "reg.example.com/app", true),
            ("*.example.com", "a.reg.example.com/app", false),
            ("reg.example.com/team", "reg.example.com/team/app", true),
            ("reg.example.com/team", "reg.example.com/other/app", false),
            ("reg?.example.com", "reg1.example.com/x", true),
            ("example.com", "reg.example.com/app", false),
        ];
        for (glob, image, want) in cases {
            assert_eq!(urls_match(glob, image), want, "{glob} vs {image}");
        }
    }

    #[test]
    fn secrets_give_credentials_most_specific_first() {
        let json = r#"{"auths": {
            "https://reg.example.com/v1/": {"username": "host", "password": "p1"},
            "reg.example.com/team": {"auth": "dGVhbTpwMg=="},
            "https://index.docker.io/v1/": {"username": "hub", "password": "p3"}
        }}"#;
        let cfg = r#"{"reg.example.com": {"username": "old", "password": "p4"}}"#;
        let keyring = Keyring::from_secrets(&[
            secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", json),
            secret("kubernetes.io/dockercfg", ".dockercfg", cfg),
            // Wrong type for its key: ignored, as the kubelet does.
            secret("Opaque", ".dockerconfigjson", json),
        ])
        .expect("keyring");
        assert_eq!(users(&keyring.lookup("reg.example.com/team/app")), ["team:p2", "host:p1", "old:p4"]);
        assert_eq!(users(&keyring.lookup("reg.example.com/app")), ["host:p1", "old:p4"]);
        assert_eq!(users(&keyring.lookup("docker.io/library/busybox")), ["hub:p3"]);
        assert!(keyring.lookup("other.example.com/app").is_empty());
        assert_eq!(users(&keyring.lookup("localhost/app")), ["hub:p3"]);
    }

    #[test]
    fn bad_secrets_are_errors() {
        let bad = secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", r#"{"auths": {"r": {"auth": "!!"}}}"#);
        assert!(Keyring::from_secrets(&[bad]).is_err());
        let bad = secret("kubernetes.io/dockerconfigjson", ".dockerconfigjson", "not json");
        assert!(Keyring::from_secrets(&[bad]).expect_err("not json").0.contains("invalid .dockerconfigjson"));
    }

    #[test]
    fn default_registry_detection() {
        assert!(is_default_registry("busybox"));
        assert!(is_default_registry("docker.io/library/busybox"));
        assert!(is_default_registry("team/app"));
        assert!(!is_default_registry("reg.io/app"));
        assert!(!is_default_registry("reg:5000/app"));
        assert!(is_default_registry("localhost/app"));
    }
}
