//! Image references (`busybox`, `registry:5000/team/app:1.2`, `app@sha256:…`): parsing and the
//! normalisation the Docker/OCI ecosystem uses (`docker.io` registry, `library/` namespace,
//! `latest` tag), so that a pod's `image` and an imported tarball's tag meet on one spelling.
//!
//! Only syntax lives here; which images exist is the store's business.

use std::fmt;

/// The registry an unqualified name lives on.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag an untagged, undigested reference means.
pub const DEFAULT_TAG: &str = "latest";

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (with port), e.g. `docker.io`, `localhost:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any (`latest` is filled in when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Content digest (`sha256:<64 hex>`), if any.
    pub digest: Option<String>,
}

/// Why a reference is not a valid image name (the kubelet's `InvalidImageName`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image name {reference:?}: {reason}")]
pub struct InvalidReference {
    /// The text as given.
    pub reference: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Reference {
    /// Parses `text` and normalises it (`busybox` → `docker.io/library/busybox:latest`).
    pub fn parse(text: &str) -> Result<Self, InvalidReference> {
        let bad = |reason| InvalidReference { reference: text.to_string(), reason };
        if text.is_empty() {
            return Err(bad("empty reference"));
        }
        if text.len() > 4096 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or is too long"));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                if !valid_digest(digest) {
                    return Err(bad("digest must be sha256: followed by 64 lowercase hex digits"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (text, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a registry port precedes it).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(bad("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => (first, path),
            _ => (DEFAULT_REGISTRY, name),
        };
        if !valid_registry(registry) {
            return Err(bad("invalid registry host"));
        }
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(bad("repository name must be lowercase alphanumerics separated by '.', '_', '__' or '-'"));
        }
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Self { registry: registry.to_string(), repository, tag, digest })
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether the reference names the `latest` tag without a digest (the kubelet pulls such
    /// images `Always` by default).
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref() == Some(DEFAULT_TAG)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Whether `digest` is `sha256:` followed by 64 lowercase hex digits.
pub fn valid_digest(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.len() <= 128
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn valid_registry(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A path component: lowercase alphanumerics, separated by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &part[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("team/app", "docker.io/team/app:latest"),
            ("docker.io/library/busybox:1", "docker.io/library/busybox:1"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b/c:v1.0-rc_2", "localhost:5000/a/b/c:v1.0-rc_2"),
            ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("my-reg:443/app", "my-reg:443/app:latest"),
            ("a__b-c--d/e.f_g", "docker.io/a__b-c--d/e.f_g:latest"),
        ];
        for (text, want) in cases {
            assert_eq!(Reference::parse(text).expect(text).to_string(), want, "{text}");
        }
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("busybox@{d}")).expect("parse");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert!(!r.is_latest());
        let r = Reference::parse(&format!("busybox:1@{d}")).expect("parse");
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1@{d}"));
        assert!(Reference::parse("busybox:latest").expect("parse").is_latest());
        assert!(Reference::parse("busybox").expect("parse").is_latest());
    }

    #[test]
    fn rejects_invalid_names() {
        for text in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox@sha256:abc",
            "busybox@md5:aaaa",
            "a b",
            "a//b",
            "-a",
            "a-",
            "a...b",
            "reg:port/app",
            ":tag",
            "/app",
        ] {
            assert!(Reference::parse(text).is_err(), "{text:?} should be invalid");
        }
    }
}
