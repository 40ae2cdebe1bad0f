//! Unit tests of encryption at rest: each provider's round trip and stored layout, the chain's
//! read order, configuration errors, the store wrapper and key rotation.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use skiff_store::{RangeRequest, RedbConfig, RedbStore, Store, StoreError, StoreExt};

use super::config::{self, Transformers};
use super::providers::{Algorithm, Chain, TransformError, Transformer};
use super::*;

fn key(alg: Algorithm, name: &str, len: usize) -> Transformer {
    Transformer::key(alg, name, (0..len as u8).collect())
}

#[test]
fn every_provider_round_trips_with_the_upstream_prefix_and_layout() {
    let plain = br#"{"kind":"Secret","data":{"a":"c2VjcmV0"}}"#;
    for (alg, len, overhead) in [
        (Algorithm::AesCbc, 16, 16),
        (Algorithm::AesCbc, 24, 16),
        (Algorithm::AesCbc, 32, 16),
        (Algorithm::AesGcm, 16, 12 + 16),
        (Algorithm::AesGcm, 32, 12 + 16),
        (Algorithm::Secretbox, 32, 24 + 16),
    ] {
        let t = key(alg, "k1", len);
        let stored = t.to_storage(plain, b"/registry/core/secrets/ns/a").unwrap();
        let prefix = format!("k8s:enc:{}:v1:k1:", alg.name());
        assert!(stored.starts_with(prefix.as_bytes()), "{alg:?}");
        let body = &stored[prefix.len()..];
        if alg == Algorithm::AesCbc {
            // IV, then whole padded blocks.
            assert_eq!((body.len() - 16) % 16, 0);
            assert_eq!(body.len() - 16, (plain.len() / 16 + 1) * 16);
        } else {
            assert_eq!(body.len(), plain.len() + overhead, "{alg:?}");
        }
        assert!(!stored.windows(8).any(|w| w == b"c2VjcmV0"), "{alg:?} leaks the value");
        let chain = Chain::new(vec![t]);
        let back = chain.from_storage(&stored, b"/registry/core/secrets/ns/a").unwrap();
        assert_eq!(back.value, plain);
        assert!(!back.stale);
    }
}

#[test]
fn secretbox_matches_nacl_layout_nonce_then_tag_then_ciphertext() {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let t = key(Algorithm::Secretbox, "k", 32);
    let stored = t.to_storage(b"hello", b"").unwrap();
    let body = &stored[b"k8s:enc:secretbox:v1:k:".len()..];
    let (nonce, sealed) = body.split_at(24);
    let key: Vec<u8> = (0..32u8).collect();
    let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(&key).unwrap();
    assert_eq!(cipher.decrypt(crypto_secretbox::Nonce::from_slice(nonce), sealed).unwrap(), b"hello");
}

#[test]
fn aesgcm_is_bound_to_the_store_key() {
    let chain = Chain::new(vec![key(Algorithm::AesGcm, "k", 32)]);
    let stored = chain.to_storage(b"v", b"/registry/core/secrets/a/x").unwrap();
    assert!(chain.from_storage(&stored, b"/registry/core/secrets/a/y").is_err());
}

#[test]
fn the_first_transformer_writes_and_every_one_reads() {
    let old = key(Algorithm::AesCbc, "old", 32);
    let new = key(Algorithm::Secretbox, "new", 32);
    let stored_old = old.to_storage(b"v1", b"k").unwrap();
    let chain = Chain::new(vec![new.clone(), old, Transformer::Identity]);
    let back = chain.from_storage(&stored_old, b"k").unwrap();
    assert_eq!(back, providers::Decrypted { value: b"v1".to_vec(), stale: true });
    let plain = chain.from_storage(b"{\"plain\":1}", b"k").unwrap();
    assert!(plain.stale);
    let stored_new = chain.to_storage(b"v2", b"k").unwrap();
    assert!(stored_new.starts_with(b"k8s:enc:secretbox:v1:new:"));
    assert!(!chain.from_storage(&stored_new, b"k").unwrap().stale);
}

#[test]
fn identity_first_gives_way_to_keys_for_encrypted_data() {
    let k = key(Algorithm::AesGcm, "k", 16);
    let stored = k.to_storage(b"v", b"x").unwrap();
    let chain = Chain::new(vec![Transformer::Identity, k]);
    assert_eq!(chain.from_storage(&stored, b"x").unwrap().value, b"v");
    assert_eq!(chain.from_storage(b"plain", b"x").unwrap().value, b"plain");
}

#[test]
fn unknown_keys_and_tampering_are_errors() {
    let a = key(Algorithm::AesCbc, "a", 32);
    let stored = a.to_storage(b"value", b"").unwrap();
    let other = Chain::new(vec![key(Algorithm::AesCbc, "b", 32), Transformer::Identity]);
    assert_eq!(other.from_storage(&stored, b"").unwrap_err(), TransformError::NoMatchingPrefix);
    let mut bad = stored.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(Chain::new(vec![a]).from_storage(&bad, b"").is_err());
    let wrong_key = Chain::new(vec![Transformer::key(Algorithm::AesCbc, "a", vec![7; 32])]);
    assert!(wrong_key.from_storage(&stored, b"").is_err());
}

const B64_32: &str = "c2VjcmV0LWtleS10aGF0LWlzLTMyLWJ5dGVzLWxvbmc=";

fn parse(text: &str) -> Result<EncryptionConfiguration, ConfigError> {
    config::parse(Path::new("enc.yaml"), text)
}

#[test]
fn a_valid_file_parses_and_names_the_chains_by_resource() {
    let cfg = parse(&format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, configmaps]\n  providers:\n  - aesgcm:\n      keys:\n      - name: key1\n        secret: {B64_32}\n  - identity: {{}}\n- resources: ['*.apps']\n  providers:\n  - secretbox:\n      keys:\n      - name: sb\n        secret: {B64_32}\n"
    ))
    .unwrap();
    let t = Transformers::new(&cfg);
    assert!(t.chain_for("/registry/core/secrets/default/a").is_some());
    assert!(t.chain_for("/registry/core/configmaps/default/a").is_some());
    assert!(t.chain_for("/registry/apps/deployments/default/a").is_some());
    assert!(t.chain_for("/registry/core/pods/default/a").is_none());
    assert!(t.chain_for("/registry/core/secrets/").is_some());
}

#[test]
fn configuration_errors_name_the_field_in_plain_words() {
    let err = parse("apiVersion: v1\nkind: EncryptionConfiguration\nresources: []\n").unwrap_err().to_string();
    assert!(err.contains("apiVersion: Unsupported value: \"v1\""), "{err}");
    assert!(err.contains("resources: Required value"), "{err}");
    let err = parse(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: a\n        secret: c2hvcnQ=\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("resources[0].providers[0].aescbc.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 5, expected one of [16, 24, 32]"),
        "{err}"
    );
    let err = parse(&format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n      - name: a\n        secret: {B64_32}\n    identity: {{}}\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("more than one provider specified in a single element"), "{err}");
    let err = parse("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [Secrets]\n  providers:\n  - aescbs: {}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot parse") && err.contains("aescbs"), "{err}");
    let err = parse("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets, secrets]\n  providers:\n  - identity: {}\n  - secretbox:\n      keys: []\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("resources[0].resources[1]: Duplicate value: \"secrets\""), "{err}");
    assert!(err.contains("resources[0].providers[1].secretbox.keys: Required value"), "{err}");
}

#[test]
fn the_default_file_is_valid_and_encrypts_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = default_config_path(dir.path());
    config::write(&path, &config::default_configuration("aescbckey-x")).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let cfg = config::read(&path).unwrap();
    let (alg, keys) = cfg.resources[0].providers[0].keys().unwrap();
    assert_eq!(alg, Algorithm::AesCbc);
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(&keys.keys[0].secret).unwrap().len(), 32);
    let t = Transformers::new(&cfg);
    assert!(t.chain_for("/registry/core/secrets/ns/x").is_some());
    assert!(t.chain_for("/registry/core/configmaps/ns/x").is_none());
}

async fn redb(dir: &Path) -> Arc<dyn Store> {
    Arc::new(RedbStore::open(RedbConfig::new(dir.join("db.redb"))).unwrap())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn settings(dir: &Path) -> EncryptionSettings {
    EncryptionSettings { config_path: default_config_path(dir), generate: true }
}

const SECRET: &str = "/registry/core/secrets/default/s";

fn plain(text: &str) -> bytes::Bytes {
    bytes::Bytes::from(format!(r#"{{"data":{{"k":"{text}"}}}}"#))
}

/// The name of the key a stored value was written with.
fn key_of(stored: &[u8]) -> String {
    let rest = stored.strip_prefix(b"k8s:enc:aescbc:v1:").expect("an aescbc value");
    let end = rest.iter().position(|b| *b == b':').unwrap();
    String::from_utf8(rest[..end].to_vec()).unwrap()
}

/// The names of the keys of the first rule's first provider.
fn key_names(path: &Path) -> Vec<String> {
    let cfg = config::read(path).unwrap();
    cfg.resources[0].providers[0].keys().unwrap().1.keys.iter().map(|k| k.name.clone()).collect()
}

#[tokio::test]
async fn the_store_holds_ciphertext_and_watches_see_plain_values() {
    let dir = tempfile::tempdir().unwrap();
    let raw = redb(dir.path()).await;
    let (store, _rotator) = open(raw.clone(), &settings(dir.path())).unwrap();
    let secret = plain("TOP-SECRET");
    let ev = store.create(SECRET, secret.clone()).await.unwrap();
    assert_eq!(ev.kv.value, secret);
    let mut watch = store.watch("/registry/", 0).await.unwrap();
    let stored = raw.get(SECRET).await.unwrap().unwrap();
    assert!(stored.value.starts_with(b"k8s:enc:aescbc:v1:aescbckey-"));
    assert!(!contains(&stored.value, b"TOP-SECRET"));
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, secret);
    let batch = watch.next().await.unwrap().unwrap();
    assert_eq!(batch[0].kv.value, secret);
    // Other resources are stored as given.
    store.create("/registry/core/configmaps/default/c", bytes::Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(raw.get("/registry/core/configmaps/default/c").await.unwrap().unwrap().value, &b"{}"[..]);
}

#[tokio::test]
async fn a_running_server_rotates_re_encrypts_compacts_and_drops_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let raw = redb(dir.path()).await;
    let (store, mut rotator) = open(raw.clone(), &settings).unwrap();
    let old_key = key_names(&settings.config_path).remove(0);
    store.create(SECRET, plain("v1")).await.unwrap();
    let old_rev = store.update(SECRET, plain("v2"), None).await.unwrap().kv.mod_revision;
    store.create("/registry/core/secrets/default/gone", plain("gone")).await.unwrap();
    store.delete("/registry/core/secrets/default/gone", None).await.unwrap();
    rotator.check().await;
    assert_eq!(rotator.status().stage, status::Stage::Start);

    let rotation = rotate(&settings.config_path).unwrap();
    assert!(matches!(rotate(&settings.config_path), Err(EncryptionError::Pending(_))), "a second rotate waits");
    assert!(status(&settings.config_path).unwrap().contains("Current Rotation Stage: reencrypt_request"));
    rotator.check().await;

    assert!(!rotation.marker.exists());
    assert_eq!(key_names(&settings.config_path), vec![rotation.new_key.clone()]);
    assert!(config::read(&settings.config_path).unwrap().resources[0].providers[1].identity.is_some());
    let stored = raw.get(SECRET).await.unwrap().unwrap();
    assert_eq!(key_of(&stored.value), rotation.new_key);
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("v2"));
    // History under the old key is gone: older revisions are compacted, the oldest one left holds
    // only values under the new key.
    let compacted = raw.compacted_revision().await.unwrap();
    assert_eq!(Some(compacted), rotator.status().compacted_revision);
    assert!(matches!(
        raw.range(RangeRequest { prefix: "/registry/".into(), revision: Some(old_rev), ..Default::default() }).await,
        Err(StoreError::Compacted { .. })
    ));
    let oldest = raw
        .range(RangeRequest { prefix: "/registry/".into(), revision: Some(compacted), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(oldest.kvs.len(), 1);
    assert_eq!(key_of(&oldest.kvs[0].value), rotation.new_key);
    // The store now writes and reads with the new key only.
    store.update(SECRET, plain("v3"), None).await.unwrap();
    assert_eq!(key_of(&raw.get(SECRET).await.unwrap().unwrap().value), rotation.new_key);
    let chain: Vec<String> =
        store.transformers().chain_for(SECRET).unwrap().transformers().iter().map(|t| format!("{t:?}")).collect();
    assert_eq!(chain, vec![format!("aescbc:{}", rotation.new_key), "identity".to_string()]);
    assert_ne!(old_key, rotation.new_key);
    let text = status(&settings.config_path).unwrap();
    assert!(text.contains("Current Rotation Stage: reencrypt_finished"), "{text}");
    assert!(text.contains("Server Configuration: in use"), "{text}");
    assert!(text.contains("Encryption Status: Enabled") && text.contains(&rotation.new_key), "{text}");
    assert_eq!(text.matches("AES-CBC").count(), 1, "{text}");
}

#[tokio::test]
async fn a_server_that_was_down_during_rotate_finishes_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let raw = redb(dir.path()).await;
    let (store, _) = open(raw.clone(), &settings).unwrap();
    store.create(SECRET, plain("v1")).await.unwrap();
    drop(store);
    let rotation = rotate(&settings.config_path).unwrap();
    let (store, mut rotator) = open(raw.clone(), &settings).unwrap();
    // Before the first check the old key still reads.
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("v1"));
    rotator.check().await;
    assert!(!rotation.marker.exists());
    assert_eq!(key_of(&raw.get(SECRET).await.unwrap().unwrap().value), rotation.new_key);
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("v1"));
    assert_eq!(key_names(&settings.config_path), vec![rotation.new_key]);
}

#[tokio::test]
async fn a_crash_between_stages_leaves_every_value_readable_and_the_next_start_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let raw = redb(dir.path()).await;
    let (store, _) = open(raw.clone(), &settings).unwrap();
    let first = store.create(SECRET, plain("v1")).await.unwrap().kv.mod_revision;
    store.update(SECRET, plain("v2"), None).await.unwrap();
    let rotation = rotate(&settings.config_path).unwrap();
    // Crash after stage 1 (values re-written, history not compacted, old keys kept): after a
    // restart the old revision still reads.
    let rotated = config::read(&settings.config_path).unwrap();
    store.swap(Transformers::new(&rotated)).await;
    let done = reencrypt::reencrypt(&store, |_| {}).await.unwrap();
    assert_eq!((done.scanned, done.rewritten), (1, 1));
    drop(store);
    let (store, _) = open(raw.clone(), &settings).unwrap();
    let old = store
        .range(RangeRequest { prefix: "/registry/".into(), revision: Some(first), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(old.kvs[0].value, plain("v1"));
    // Crash after stage 3 (history compacted, file reduced) but before the marker went: the next
    // start finishes.
    store.compact(store.current_revision().await.unwrap()).await.unwrap();
    config::write(&settings.config_path, &rotated.only_write_keys()).unwrap();
    drop(store);
    let (store, mut rotator) = open(raw.clone(), &settings).unwrap();
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("v2"));
    assert!(rotation.marker.exists());
    rotator.check().await;
    assert!(!rotation.marker.exists());
    assert_eq!(rotator.status().stage, status::Stage::ReencryptFinished);
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("v2"));
    assert_eq!(key_names(&settings.config_path), vec![rotation.new_key]);
}

#[tokio::test]
async fn a_changed_file_is_used_without_a_restart_and_an_invalid_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let raw = redb(dir.path()).await;
    let (store, mut rotator) = open(raw.clone(), &settings).unwrap();
    store.create(SECRET, plain("old")).await.unwrap();
    // A secretbox key put first by hand.
    let mut cfg = config::read(&settings.config_path).unwrap();
    let boxed = config::ProviderConfiguration {
        secretbox: Some(config::KeysConfiguration {
            keys: vec![config::Key { name: "box".into(), secret: B64_32.into() }],
        }),
        ..Default::default()
    };
    cfg.resources[0].providers.insert(0, boxed);
    config::write(&settings.config_path, &cfg).unwrap();
    rotator.check().await;
    store.create("/registry/core/secrets/default/new", plain("new")).await.unwrap();
    assert!(
        raw.get("/registry/core/secrets/default/new")
            .await
            .unwrap()
            .unwrap()
            .value
            .starts_with(b"k8s:enc:secretbox:v1:box:")
    );
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("old"));
    assert_eq!(rotator.status().reload_error, None);

    // A broken file: refused, the chains in use stay, the status says why.
    let good = std::fs::read(&settings.config_path).unwrap();
    std::fs::write(
        &settings.config_path,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n",
    )
    .unwrap();
    rotator.check().await;
    let err = rotator.status().reload_error.clone().unwrap();
    assert!(err.contains("resources: Required value"), "{err}");
    store.create("/registry/core/secrets/default/third", plain("third")).await.unwrap();
    assert!(
        raw.get("/registry/core/secrets/default/third")
            .await
            .unwrap()
            .unwrap()
            .value
            .starts_with(b"k8s:enc:secretbox:v1:box:")
    );
    let text = status(&settings.config_path).unwrap();
    assert!(text.contains("Server Configuration: refused the file as it is, using the previous one"), "{text}");
    assert!(text.contains("Configuration Error:") && text.contains("resources: Required value"), "{text}");
    // A marker does not start a re-encryption with a refused file.
    std::fs::write(marker_path(&settings.config_path), "box\n").unwrap();
    rotator.check().await;
    assert!(marker_path(&settings.config_path).exists());
    assert_eq!(rotator.status().stage, status::Stage::Start);
    // Fixed: used again, and the pending re-encryption runs.
    std::fs::write(&settings.config_path, &good).unwrap();
    rotator.check().await;
    assert_eq!(rotator.status().reload_error, None);
    assert!(!marker_path(&settings.config_path).exists());
    assert!(raw.get(SECRET).await.unwrap().unwrap().value.starts_with(b"k8s:enc:secretbox:v1:box:"));
    assert_eq!(key_names(&settings.config_path), vec!["box".to_string()]);
    assert_eq!(config::read(&settings.config_path).unwrap().resources[0].providers.len(), 2, "secretbox, identity");
}

#[tokio::test]
async fn a_rewrite_never_overwrites_a_concurrent_change() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path());
    let raw = redb(dir.path()).await;
    let (store, _) = open(raw.clone(), &settings).unwrap();
    let old_chain = store.transformers();
    store.create(SECRET, plain("v1")).await.unwrap();
    let read = raw.get(SECRET).await.unwrap().unwrap();
    rotate(&settings.config_path).unwrap();
    store.swap(Transformers::new(&config::read(&settings.config_path).unwrap())).await;

    // Changed meanwhile with the new key: nothing to re-write, the change stays.
    store.update(SECRET, plain("v2"), None).await.unwrap();
    assert!(!reencrypt::rewrite_if_stale(&store, read.clone()).await.unwrap());
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("v2"));

    // Changed meanwhile under the old key (as a write that began before the swap): re-read and
    // re-written, keeping the change.
    let chain = old_chain.chain_for(SECRET).unwrap();
    let under_old = chain.to_storage(&plain("v3"), SECRET.as_bytes()).unwrap();
    raw.update(SECRET, under_old.into(), None).await.unwrap();
    assert!(reencrypt::rewrite_if_stale(&store, read).await.unwrap());
    let now = raw.get(SECRET).await.unwrap().unwrap();
    assert!(
        !store.transformers().chain_for(SECRET).unwrap().from_storage(&now.value, SECRET.as_bytes()).unwrap().stale
    );
    assert_eq!(store.get(SECRET).await.unwrap().unwrap().value, plain("v3"));
}

#[test]
fn status_shows_the_stage_from_the_marker_and_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = default_config_path(dir.path());
    config::write(&path, &config::default_configuration("k1")).unwrap();
    let stage = |s: &str| status(&path).unwrap().contains(&format!("Current Rotation Stage: {s}\n"));
    assert!(stage("start"));
    assert!(status(&path).unwrap().contains("Server Configuration: no report"));
    let hash = status::content_hash(&std::fs::read(&path).unwrap());
    let mut report = status::ServerStatus {
        pid: std::process::id(),
        stage: status::Stage::ReencryptActive,
        config_hash: hash,
        new_key: Some("k2".into()),
        progress: status::Progress { scanned: 7, rewritten: 3, compacting_to: None },
        ..Default::default()
    };
    report.write(&path).unwrap();
    request_reencrypt(&path).unwrap();
    assert!(stage("reencrypt_active"));
    let text = status(&path).unwrap();
    assert!(text.contains("7 values scanned, 3 re-written with key k2"), "{text}");
    assert!(text.contains("Server Configuration: in use\n"), "{text}");
    // A report by a server that is gone: the request is pending.
    report.pid = u32::MAX;
    report.write(&path).unwrap();
    assert!(stage("reencrypt_request"));
    assert!(status(&path).unwrap().contains("the server runs it when it (re)starts"));
    std::fs::remove_file(marker_path(&path)).unwrap();
    report.stage = status::Stage::ReencryptFinished;
    report.compacted_revision = Some(42);
    report.write(&path).unwrap();
    assert!(stage("reencrypt_finished"));
    assert!(status(&path).unwrap().contains("history compacted up to revision 42"));
    // The file changed since the server loaded it.
    config::write(&path, &config::default_configuration("k3")).unwrap();
    assert!(status(&path).unwrap().contains("Server Configuration: not reloaded yet"));
}
