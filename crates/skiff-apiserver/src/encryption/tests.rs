//! Unit tests of encryption at rest: each provider's round trip and stored layout, the chain's
//! read order, configuration errors, the store wrapper and key rotation.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use skiff_store::{RedbConfig, RedbStore, Store, StoreExt};

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

#[tokio::test]
async fn the_store_holds_ciphertext_and_rotation_rewrites_with_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let settings = EncryptionSettings { config_path: default_config_path(dir.path()), generate: true };
    let raw = redb(dir.path()).await;
    let store = open(raw.clone(), &settings).await.unwrap();
    let secret = bytes::Bytes::from_static(br#"{"data":{"k":"TOP-SECRET"}}"#);
    let key = "/registry/core/secrets/default/s";
    let ev = store.create(key, secret.clone()).await.unwrap();
    assert_eq!(ev.kv.value, secret);
    let mut watch = store.watch("/registry/", 0).await.unwrap();
    let stored = raw.get(key).await.unwrap().unwrap();
    assert!(stored.value.starts_with(b"k8s:enc:aescbc:v1:aescbckey-"));
    assert!(!contains(&stored.value, b"TOP-SECRET"));
    assert_eq!(store.get(key).await.unwrap().unwrap().value, secret);
    let batch = watch.next().await.unwrap().unwrap();
    assert_eq!(batch[0].kv.value, secret);
    // Other resources are stored as given.
    store.create("/registry/core/configmaps/default/c", bytes::Bytes::from_static(b"{}")).await.unwrap();
    assert_eq!(raw.get("/registry/core/configmaps/default/c").await.unwrap().unwrap().value, &b"{}"[..]);

    let rotation = rotate(&settings.config_path).unwrap();
    assert!(rotation.marker.exists());
    assert!(status(&settings.config_path).unwrap().contains("reencrypt_request"));
    drop(store);
    let store = open(raw.clone(), &settings).await.unwrap();
    assert!(!rotation.marker.exists());
    let stored = raw.get(key).await.unwrap().unwrap();
    let prefix = format!("k8s:enc:aescbc:v1:{}:", rotation.new_key);
    assert!(stored.value.starts_with(prefix.as_bytes()));
    assert_eq!(store.get(key).await.unwrap().unwrap().value, secret);
    let cfg = config::read(&settings.config_path).unwrap();
    let (_, keys) = cfg.resources[0].providers[0].keys().unwrap();
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(keys.keys[0].name, rotation.new_key);
    assert!(cfg.resources[0].providers[1].identity.is_some());
    let text = status(&settings.config_path).unwrap();
    assert!(text.contains("Encryption Status: Enabled") && text.contains(&rotation.new_key), "{text}");
}
