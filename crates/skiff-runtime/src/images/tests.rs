//! Tests of the image store: import of both archive formats, lookup, retagging, removal, GC,
//! and the drop directory.

use std::collections::HashSet;

use super::testdata::{Entry, docker_archive, gzip, layer, oci_layout};
use super::*;

fn busybox_layer() -> Vec<u8> {
    layer(&[Entry::Dir("bin"), Entry::File("bin/busybox", b"\x7fELF fake", 0o755), Entry::Symlink("bin/sh", "busybox")])
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(&dir.path().join("images")).expect("open");
    (dir, store)
}

#[test]
fn imports_an_oci_layout_and_resolves_it() {
    let (_d, store) = store();
    let (tarball, manifest) = oci_layout("docker.io/library/busybox:1.36", &[busybox_layer()], &["sh"]);
    let images = store.import(&tarball[..]).expect("import");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].manifest, manifest);
    assert_eq!(images[0].references, vec!["docker.io/library/busybox:1.36"]);
    assert_eq!(images[0].layers[0].media_type, media_types::LAYER_GZIP);
    for r in ["busybox:1.36", "docker.io/library/busybox:1.36", &format!("busybox@{manifest}"), &manifest] {
        assert_eq!(store.resolve(r).expect("resolve").map(|i| i.manifest), Some(manifest.clone()), "{r}");
    }
    assert_eq!(store.resolve("busybox").expect("resolve"), None);
    assert_eq!(store.resolve(&format!("other@{manifest}")).expect("resolve"), None);
    let defaults = store.container_defaults(&images[0]).expect("config");
    assert_eq!(defaults.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(images[0].image_id(), format!("docker.io/library/busybox@{manifest}"));
    // Only the image's blobs are kept.
    assert_eq!(store.blobs().list().expect("list").len(), 3);
}

#[test]
fn imports_docker_archives_compressed_or_not() {
    let (_d, store) = store();
    let plain = docker_archive(&["app:v1", "app:latest"], &[busybox_layer()], &["app"]);
    let images = store.import(&plain[..]).expect("import");
    assert_eq!(images[0].references, vec!["docker.io/library/app:latest", "docker.io/library/app:v1"]);
    assert_eq!(images[0].layers[0].media_type, media_types::LAYER_TAR);
    // Legacy `VERSION` files are not kept as blobs.
    assert_eq!(store.blobs().list().expect("list").len(), 3);
    let zst = zstd::encode_all(&docker_archive(&["other:1"], &[busybox_layer()], &["x"])[..], 1).expect("zstd");
    store.import(&zst[..]).expect("zstd import");
    let gz = gzip(&docker_archive(&["third:1"], &[busybox_layer()], &["y"]));
    store.import(&gz[..]).expect("gzip import");
    assert_eq!(store.list().expect("list").len(), 3);
}

#[test]
fn a_tag_moves_to_the_newest_import() {
    let (_d, store) = store();
    let a = store.import(&docker_archive(&["app:v1"], &[busybox_layer()], &["a"])[..]).expect("a");
    let b = store.import(&docker_archive(&["app:v1"], &[busybox_layer()], &["b"])[..]).expect("b");
    assert_ne!(a[0].manifest, b[0].manifest);
    assert_eq!(store.resolve("app:v1").expect("resolve").map(|i| i.manifest), Some(b[0].manifest.clone()));
    // The old image is untagged but still addressable by digest.
    assert!(store.resolve(&a[0].manifest).expect("resolve").is_some_and(|i| i.references.is_empty()));
}

#[test]
fn remove_untags_then_deletes_and_collects_blobs() {
    let (_d, store) = store();
    store.import(&docker_archive(&["app:v1", "app:v2"], &[busybox_layer()], &["a"])[..]).expect("import");
    let removed = store.remove("app:v1", &HashSet::new()).expect("remove tag");
    assert_eq!(removed, vec!["docker.io/library/app:v1"]);
    assert_eq!(store.list().expect("list").len(), 1);
    let image = store.resolve("app:v2").expect("resolve").expect("still there");
    let in_use: HashSet<String> = [image.manifest.clone()].into();
    assert!(store.remove("app:v2", &in_use).is_err(), "in-use images stay");
    store.remove("app:v2", &HashSet::new()).expect("remove last tag");
    assert!(store.list().expect("list").is_empty());
    assert!(store.blobs().list().expect("list").is_empty());
    assert!(matches!(store.remove("app:v2", &HashSet::new()), Err(ImageError::NotFound(_))));
}

#[test]
fn rejects_bad_archives_and_keeps_nothing() {
    let (_d, store) = store();
    let err = store.import(&b"root:x:0:0:secret-ish content that is not a tarball"[..]).expect_err("not a tar");
    assert!(!err.to_string().contains("secret"), "{err}");
    let no_index = layer(&[Entry::File("hello", b"x", 0o644)]);
    assert!(matches!(store.import(&no_index[..]), Err(ImageError::Invalid(_))));
    // An OCI blob whose content does not match its name.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, format!("blobs/sha256/{}", "a".repeat(64)), &b"bad"[..]).expect("append");
    let bad = b.into_inner().expect("tar");
    assert!(matches!(store.import(&bad[..]), Err(ImageError::DigestMismatch { .. })));
    assert!(store.blobs().list().expect("list").is_empty());
    assert!(store.list().expect("list").is_empty());
}

#[test]
fn imports_dropped_tarballs_once() {
    let (_d, store) = store();
    let path = store.dir().join("app.tar");
    fs::write(&path, docker_archive(&["dropped:1"], &[busybox_layer()], &["a"])).expect("write");
    fs::write(store.dir().join("broken.tar.gz"), b"garbage").expect("write");
    fs::write(store.dir().join("notes.txt"), b"ignored").expect("write");
    let first = store.import_dropped().expect("scan");
    assert_eq!(first.len(), 1);
    assert!(store.import_dropped().expect("rescan").is_empty(), "already imported");
    store.remove("dropped:1", &HashSet::new()).expect("remove");
    assert!(store.import_dropped().expect("rescan").is_empty(), "not re-imported after removal");
}
