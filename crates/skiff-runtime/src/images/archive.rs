//! Reading image tarballs: an OCI image layout (`oci-layout`, `index.json`, `blobs/`) or a
//! docker archive (`docker save`: `manifest.json` with `Config`, `RepoTags`, `Layers`), either
//! possibly compressed as a whole.
//!
//! One streaming pass copies every file into the blob store (OCI blobs are verified against
//! their names); the small index files are kept in memory and resolved afterwards into the
//! images the archive holds (manifest digest + the names it is tagged with). Docker archives get
//! an OCI manifest synthesised from their `manifest.json`. Recording the images is the store's
//! job, not this module's.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

use super::blobs::Blobs;
use super::compression::{self, Compression};
use super::reference::Reference;
use super::{ImageError, media_types};

/// An image found in an archive: its manifest (already in the blob store) and its names.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundImage {
    /// Digest of the OCI image manifest.
    pub manifest: String,
    /// References the archive tags it with (may be empty).
    pub names: Vec<Reference>,
}

/// Index files kept in memory (never stored as blobs).
const INDEX_FILES: [&str; 4] = ["index.json", "manifest.json", "oci-layout", "repositories"];
const INDEX_LIMIT: u64 = 16 << 20;

#[derive(Default)]
struct Contents {
    /// Archive path → blob digest of regular files.
    files: HashMap<PathBuf, String>,
    /// Archive path → link target (resolved to an archive path).
    links: HashMap<PathBuf, PathBuf>,
    /// The index files' bytes.
    index: HashMap<&'static str, Vec<u8>>,
}

impl Contents {
    /// The blob digest of archive path `path`, following symlinks.
    fn digest(&self, path: &Path) -> Option<&String> {
        let mut path = normalise(path)?;
        for _ in 0..16 {
            if let Some(d) = self.files.get(&path) {
                return Some(d);
            }
            path = self.links.get(&path)?.clone();
        }
        None
    }
}

/// Lexically normalises an archive path (`./a/../b` → `b`); `None` if it leaves the root.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Copies the archive's files into `blobs` and returns the images it holds.
pub fn read_archive(reader: impl Read, blobs: &Blobs) -> Result<Vec<FoundImage>, ImageError> {
    let contents = unpack(reader, blobs)?;
    if let Some(index) = contents.index.get("index.json") {
        let mut found = oci_images(index, blobs)?;
        // `docker save` (Docker 25+) writes both; its manifest.json carries the tags.
        if let Some(docker) = contents.index.get("manifest.json") {
            add_docker_tags(&mut found, docker, &contents, blobs)?;
        }
        return Ok(found);
    }
    if let Some(docker) = contents.index.get("manifest.json") {
        return docker_images(docker, &contents, blobs);
    }
    Err(ImageError::Invalid("neither an OCI image layout (index.json) nor a docker archive (manifest.json)".into()))
}

fn unpack(reader: impl Read, blobs: &Blobs) -> Result<Contents, ImageError> {
    let mut archive = tar::Archive::new(compression::decompress(reader)?);
    let mut contents = Contents::default();
    let entries = archive.entries().map_err(ImageError::archive)?;
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| match n {
            0 => ImageError::Invalid("not an image tarball: not a tar archive (plain, gzip or zstd)".into()),
            _ => ImageError::archive(e),
        })?;
        let raw = entry.path().map_err(ImageError::archive)?.into_owned();
        let Some(path) = normalise(&raw) else {
            return Err(ImageError::Invalid(format!("archive path {} leaves the archive", raw.display())));
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name().map_err(ImageError::archive)? else { continue };
            let base =
                if kind.is_symlink() { path.parent().unwrap_or(Path::new("")).join(target) } else { target.into() };
            if let Some(target) = normalise(&base) {
                contents.links.insert(path, target);
            }
            continue;
        }
        if !(kind.is_file() || kind == tar::EntryType::Continuous) {
            continue;
        }
        let name = path.to_str().unwrap_or("");
        if let Some(index_name) = INDEX_FILES.iter().find(|n| **n == name) {
            let mut bytes = Vec::new();
            (&mut entry).take(INDEX_LIMIT + 1).read_to_end(&mut bytes).map_err(ImageError::archive)?;
            if bytes.len() as u64 > INDEX_LIMIT {
                return Err(ImageError::Invalid(format!("{name} is larger than {INDEX_LIMIT} bytes")));
            }
            contents.index.insert(index_name, bytes);
            continue;
        }
        // OCI blobs are named by their digest: verify it while copying.
        let expected = name.strip_prefix("blobs/sha256/").map(|hex| format!("sha256:{hex}"));
        let (digest, _) = blobs.write(&mut entry, expected.as_deref())?;
        contents.files.insert(path, digest);
    }
    Ok(contents)
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The OCI architecture name of this machine.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Invalid(format!("{what}: {e}")))
}

fn oci_images(index: &[u8], blobs: &Blobs) -> Result<Vec<FoundImage>, ImageError> {
    let index: Index = parse(index, "index.json")?;
    let mut found = Vec::new();
    for desc in index.manifests {
        let names = names_from_annotations(&desc.annotations);
        let Some(manifest) = select_manifest(desc, blobs, 0)? else { continue };
        match found.iter_mut().find(|f: &&mut FoundImage| f.manifest == manifest) {
            Some(f) => f.names.extend(names),
            None => found.push(FoundImage { manifest, names }),
        }
    }
    Ok(found)
}

/// Follows nested indexes to the manifest for this platform.
fn select_manifest(desc: Descriptor, blobs: &Blobs, depth: u8) -> Result<Option<String>, ImageError> {
    if desc.media_type != media_types::OCI_INDEX && desc.media_type != media_types::DOCKER_LIST {
        return Ok(Some(desc.digest));
    }
    if depth > 4 {
        return Err(ImageError::Invalid("image indexes nested too deeply".into()));
    }
    let nested: Index = parse(&blobs.read_small(&desc.digest, INDEX_LIMIT)?, "image index")?;
    let arch = host_architecture();
    let chosen = nested
        .manifests
        .into_iter()
        .find(|d| d.platform.as_ref().is_none_or(|p| p.architecture == arch && (p.os.is_empty() || p.os == "linux")));
    match chosen {
        Some(d) => select_manifest(d, blobs, depth + 1),
        None => Ok(None),
    }
}

/// `io.containerd.image.name` (a full reference) or `org.opencontainers.image.ref.name` when it
/// is a whole reference rather than a bare tag.
fn names_from_annotations(annotations: &HashMap<String, String>) -> Vec<Reference> {
    let full = annotations.get("io.containerd.image.name");
    let ref_name = annotations.get("org.opencontainers.image.ref.name").filter(|n| n.contains([':', '/']));
    full.or(ref_name).and_then(|n| Reference::parse(n).ok()).into_iter().collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: PathBuf,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<PathBuf>,
}

fn docker_tags(entry: &DockerEntry) -> Vec<Reference> {
    entry.repo_tags.iter().flatten().filter_map(|t| Reference::parse(t).ok()).collect()
}

fn docker_images(manifest: &[u8], contents: &Contents, blobs: &Blobs) -> Result<Vec<FoundImage>, ImageError> {
    let entries: Vec<DockerEntry> = parse(manifest, "manifest.json")?;
    let missing =
        |p: &Path| ImageError::Invalid(format!("manifest.json names {} which is not in the archive", p.display()));
    let mut found = Vec::new();
    for entry in &entries {
        let config = contents.digest(&entry.config).ok_or_else(|| missing(&entry.config))?;
        let mut layers = Vec::new();
        for layer in &entry.layers {
            let digest = contents.digest(layer).ok_or_else(|| missing(layer))?;
            let media_type = match compression::sniff(&mut blobs.open_blob(digest)?)? {
                Compression::Gzip => media_types::LAYER_GZIP,
                Compression::Zstd => media_types::LAYER_ZSTD,
                Compression::None => media_types::LAYER_TAR,
            };
            layers.push(json!({"mediaType": media_type, "digest": digest, "size": blobs.size(digest)?}));
        }
        let manifest: Value = json!({
            "schemaVersion": 2,
            "mediaType": media_types::OCI_MANIFEST,
            "config": {"mediaType": media_types::OCI_CONFIG, "digest": config, "size": blobs.size(config)?},
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Invalid(e.to_string()))?;
        found.push(FoundImage { manifest: blobs.write_bytes(&bytes)?, names: docker_tags(entry) });
    }
    Ok(found)
}

/// Adds the `RepoTags` of a docker `manifest.json` to the OCI images with the same config.
fn add_docker_tags(
    found: &mut [FoundImage],
    manifest: &[u8],
    contents: &Contents,
    blobs: &Blobs,
) -> Result<(), ImageError> {
    let entries: Vec<DockerEntry> = parse(manifest, "manifest.json")?;
    for image in found.iter_mut() {
        let m: Value = parse(&blobs.read_small(&image.manifest, INDEX_LIMIT)?, "image manifest")?;
        let config = m.pointer("/config/digest").and_then(Value::as_str);
        for entry in &entries {
            if contents.digest(&entry.config).map(String::as_str) == config {
                for name in docker_tags(entry) {
                    if !image.names.contains(&name) {
                        image.names.push(name);
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_paths() {
        assert_eq!(normalise(Path::new("./a/../b/c")), Some(PathBuf::from("b/c")));
        assert_eq!(normalise(Path::new("../x")), None);
        assert_eq!(normalise(Path::new("/abs/x")), Some(PathBuf::from("abs/x")));
    }

    #[test]
    fn names_prefer_full_references() {
        let mut a = HashMap::new();
        a.insert("org.opencontainers.image.ref.name".to_string(), "latest".to_string());
        assert!(names_from_annotations(&a).is_empty());
        a.insert("io.containerd.image.name".to_string(), "docker.io/library/busybox:1".to_string());
        assert_eq!(names_from_annotations(&a)[0].to_string(), "docker.io/library/busybox:1");
    }
}
