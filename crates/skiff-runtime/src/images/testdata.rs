//! Builders of small image tarballs (layers, OCI layouts, docker archives) for tests.

use serde_json::json;

use super::blobs::digest_of;
use super::media_types;

/// An entry of a test layer.
pub enum Entry<'a> {
    /// A directory.
    Dir(&'a str),
    /// A regular file with content and mode.
    File(&'a str, &'a [u8], u32),
    /// A symlink `path -> target`.
    Symlink(&'a str, &'a str),
}

/// An uncompressed layer tar of `entries`.
pub fn layer(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match entry {
            Entry::Dir(path) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).expect("dir");
            }
            Entry::File(path, data, mode) => {
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, path, *data).expect("file");
            }
            Entry::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, path, target).expect("symlink");
            }
        }
    }
    b.into_inner().expect("tar")
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

/// An image config for uncompressed `layers`.
pub fn config(layers: &[Vec<u8>], cmd: &[&str]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest_of(l)).collect();
    serde_json::to_vec(&json!({
        "architecture": super::host_architecture(), "os": "linux",
        "config": {"Cmd": cmd, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

fn append(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, path, data).expect("append");
}

/// An OCI image layout tarball holding one image named `name` with gzipped `layers`.
/// Returns the tarball and the manifest digest.
pub fn oci_layout(name: &str, layers: &[Vec<u8>], cmd: &[&str]) -> (Vec<u8>, String) {
    let mut b = tar::Builder::new(Vec::new());
    append(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let config = config(layers, cmd);
    let mut descs = Vec::new();
    for layer in layers {
        let gz = gzip(layer);
        descs.push(json!({"mediaType": media_types::LAYER_GZIP, "digest": digest_of(&gz), "size": gz.len()}));
        append(&mut b, &format!("blobs/sha256/{}", &digest_of(&gz)[7..]), &gz);
    }
    append(&mut b, &format!("blobs/sha256/{}", &digest_of(&config)[7..]), &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_types::OCI_MANIFEST,
        "config": {"mediaType": media_types::OCI_CONFIG, "digest": digest_of(&config), "size": config.len()},
        "layers": descs,
    }))
    .expect("json");
    let md = digest_of(&manifest);
    append(&mut b, &format!("blobs/sha256/{}", &md[7..]), &manifest);
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": media_types::OCI_MANIFEST, "digest": md, "size": manifest.len(),
        "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
    }]});
    append(&mut b, "index.json", &serde_json::to_vec(&index).expect("json"));
    (b.into_inner().expect("tar"), md)
}

/// A legacy `docker save` archive (`<id>/layer.tar`, `<config>.json`, `manifest.json`).
pub fn docker_archive(tags: &[&str], layers: &[Vec<u8>], cmd: &[&str]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let config = config(layers, cmd);
    let config_name = format!("{}.json", &digest_of(&config)[7..]);
    append(&mut b, &config_name, &config);
    let mut paths = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("layer{i}/layer.tar");
        append(&mut b, &path, layer);
        append(&mut b, &format!("layer{i}/VERSION"), b"1.0");
        paths.push(path);
    }
    let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": paths}]);
    append(&mut b, "manifest.json", &serde_json::to_vec(&manifest).expect("json"));
    b.into_inner().expect("tar")
}
