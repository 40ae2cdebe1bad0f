//! The value transformers of encryption at rest: `aescbc`, `aesgcm`, `secretbox` and `identity`,
//! and the chain that tries them in order.
//!
//! Stored layout as upstream's apiserver: `k8s:enc:<provider>:v1:<keyname>:` followed by
//! - `aescbc`: a random 16-byte IV, then AES-CBC of the PKCS#7-padded value;
//! - `aesgcm`: a random 12-byte nonce, then AES-GCM ciphertext and tag, authenticated with the
//!   store key (a value moved under another key does not decrypt);
//! - `secretbox`: a random 24-byte nonce, then XSalsa20-Poly1305 (tag first, as NaCl's `Seal`).
//!
//! `identity` stores values unchanged. What does not live here: reading the configuration file
//! (`config`) and applying the chain to the store (`store`).

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use rand::RngCore;

/// What every encrypted value starts with.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// Why a value could not be transformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransformError {
    /// No configured key's prefix matches the stored value.
    #[error("no matching prefix found for the stored value (it was encrypted with a key that is not configured)")]
    NoMatchingPrefix,
    /// The value carries a matching prefix but does not decrypt.
    #[error("cannot decrypt the stored value with key {key:?}: {reason}")]
    Decrypt {
        /// The key's name.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// Encryption failed (only for impossible key sizes).
    #[error("cannot encrypt with key {key:?}")]
    Encrypt {
        /// The key's name.
        key: String,
    },
}

/// The algorithm of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// AES in CBC mode with PKCS#7 padding.
    AesCbc,
    /// AES in GCM mode.
    AesGcm,
    /// XSalsa20-Poly1305.
    Secretbox,
}

impl Algorithm {
    /// The provider name in configuration files and stored prefixes.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::AesCbc => "aescbc",
            Algorithm::AesGcm => "aesgcm",
            Algorithm::Secretbox => "secretbox",
        }
    }

    /// The key sizes (bytes) the algorithm accepts.
    pub fn key_sizes(self) -> &'static [usize] {
        match self {
            Algorithm::AesCbc | Algorithm::AesGcm => &[16, 24, 32],
            Algorithm::Secretbox => &[32],
        }
    }

    /// The name `skiff secrets-encrypt status` shows (k3s's key types).
    pub fn display(self) -> &'static str {
        match self {
            Algorithm::AesCbc => "AES-CBC",
            Algorithm::AesGcm => "AES-GCM",
            Algorithm::Secretbox => "SECRETBOX",
        }
    }
}

/// One transformer of a chain: a named key of one algorithm, or identity.
#[derive(Clone)]
pub enum Transformer {
    /// Values are stored as given.
    Identity,
    /// A key of an encrypting provider.
    Key {
        /// The algorithm.
        algorithm: Algorithm,
        /// The key's name.
        name: String,
        /// The raw key bytes (size checked by the configuration parser).
        secret: Vec<u8>,
        /// `k8s:enc:<provider>:v1:<name>:`.
        prefix: Vec<u8>,
    },
}

impl std::fmt::Debug for Transformer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transformer::Identity => write!(f, "identity"),
            Transformer::Key { algorithm, name, .. } => write!(f, "{}:{name}", algorithm.name()),
        }
    }
}

impl Transformer {
    /// A key transformer; `secret` must have one of the algorithm's key sizes.
    pub fn key(algorithm: Algorithm, name: &str, secret: Vec<u8>) -> Self {
        let prefix = format!("k8s:enc:{}:v1:{name}:", algorithm.name()).into_bytes();
        Transformer::Key { algorithm, name: name.to_string(), secret, prefix }
    }

    fn prefix(&self) -> &[u8] {
        match self {
            Transformer::Identity => b"",
            Transformer::Key { prefix, .. } => prefix,
        }
    }

    /// Encrypts `plain` (stored under `context`, the store key) into the stored form.
    pub fn to_storage(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, TransformError> {
        let Transformer::Key { algorithm, name, secret, prefix } = self else {
            return Ok(plain.to_vec());
        };
        let fail = || TransformError::Encrypt { key: name.clone() };
        let mut out = prefix.clone();
        match algorithm {
            Algorithm::AesCbc => {
                let mut iv = [0u8; 16];
                rand::rng().fill_bytes(&mut iv);
                out.extend_from_slice(&iv);
                let sealed = match secret.len() {
                    16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(secret, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                    24 => cbc::Encryptor::<aes::Aes192>::new_from_slices(secret, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                    _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(secret, &iv)
                        .map(|c| c.encrypt_padded_vec_mut::<Pkcs7>(plain)),
                }
                .map_err(|_| fail())?;
                out.extend_from_slice(&sealed);
            }
            Algorithm::AesGcm => {
                let mut nonce = [0u8; 12];
                rand::rng().fill_bytes(&mut nonce);
                out.extend_from_slice(&nonce);
                let payload = Payload { msg: plain, aad: context };
                let nonce = aes_gcm::Nonce::from_slice(&nonce);
                let sealed = match secret.len() {
                    16 => aes_gcm::Aes128Gcm::new_from_slice(secret).map_err(|_| fail())?.encrypt(nonce, payload),
                    24 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(secret)
                        .map_err(|_| fail())?
                        .encrypt(nonce, payload),
                    _ => aes_gcm::Aes256Gcm::new_from_slice(secret).map_err(|_| fail())?.encrypt(nonce, payload),
                }
                .map_err(|_| fail())?;
                out.extend_from_slice(&sealed);
            }
            Algorithm::Secretbox => {
                let mut nonce = [0u8; 24];
                rand::rng().fill_bytes(&mut nonce);
                out.extend_from_slice(&nonce);
                let cipher = crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret).map_err(|_| fail())?;
                let sealed = cipher.encrypt(crypto_secretbox::Nonce::from_slice(&nonce), plain).map_err(|_| fail())?;
                out.extend_from_slice(&sealed);
            }
        }
        Ok(out)
    }

    /// Decrypts `body` (the stored value after this transformer's prefix).
    fn decrypt_body(&self, body: &[u8], context: &[u8]) -> Result<Vec<u8>, TransformError> {
        let Transformer::Key { algorithm, name, secret, .. } = self else {
            if body.starts_with(ENCRYPTED_PREFIX) {
                return Err(TransformError::Decrypt {
                    key: "identity".into(),
                    reason: "identity transformer tried to read encrypted data",
                });
            }
            return Ok(body.to_vec());
        };
        let fail = |reason| TransformError::Decrypt { key: name.clone(), reason };
        match algorithm {
            Algorithm::AesCbc => {
                if body.len() < 32 || !body.len().is_multiple_of(16) {
                    return Err(fail("the data is not a whole number of blocks after the IV"));
                }
                let (iv, data) = body.split_at(16);
                match secret.len() {
                    16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(secret, iv)
                        .map_err(|_| fail("invalid key"))?
                        .decrypt_padded_vec_mut::<Pkcs7>(data),
                    24 => cbc::Decryptor::<aes::Aes192>::new_from_slices(secret, iv)
                        .map_err(|_| fail("invalid key"))?
                        .decrypt_padded_vec_mut::<Pkcs7>(data),
                    _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(secret, iv)
                        .map_err(|_| fail("invalid key"))?
                        .decrypt_padded_vec_mut::<Pkcs7>(data),
                }
                .map_err(|_| fail("invalid padding on input"))
            }
            Algorithm::AesGcm => {
                if body.len() < 12 + 16 {
                    return Err(fail("the data is too short"));
                }
                let (nonce, data) = body.split_at(12);
                let nonce = aes_gcm::Nonce::from_slice(nonce);
                let payload = Payload { msg: data, aad: context };
                match secret.len() {
                    16 => aes_gcm::Aes128Gcm::new_from_slice(secret)
                        .map_err(|_| fail("invalid key"))?
                        .decrypt(nonce, payload),
                    24 => aes_gcm::AesGcm::<aes::Aes192, aes_gcm::aead::consts::U12>::new_from_slice(secret)
                        .map_err(|_| fail("invalid key"))?
                        .decrypt(nonce, payload),
                    _ => aes_gcm::Aes256Gcm::new_from_slice(secret)
                        .map_err(|_| fail("invalid key"))?
                        .decrypt(nonce, payload),
                }
                .map_err(|_| fail("message authentication failed"))
            }
            Algorithm::Secretbox => {
                if body.len() < 24 + 16 {
                    return Err(fail("the data is too short"));
                }
                let (nonce, data) = body.split_at(24);
                let cipher =
                    crypto_secretbox::XSalsa20Poly1305::new_from_slice(secret).map_err(|_| fail("invalid key"))?;
                cipher
                    .decrypt(crypto_secretbox::Nonce::from_slice(nonce), data)
                    .map_err(|_| fail("message authentication failed"))
            }
        }
    }
}

/// The transformers of one resource, in configuration order: the first writes, all read.
#[derive(Clone, Debug)]
pub struct Chain {
    transformers: Vec<Transformer>,
}

/// A decrypted value and whether it was written by another transformer than the first (it
/// should be re-written to use the current key).
#[derive(Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// The plain value.
    pub value: Vec<u8>,
    /// Whether a re-write would store it differently.
    pub stale: bool,
}

impl Chain {
    /// A chain of at least one transformer.
    pub fn new(transformers: Vec<Transformer>) -> Self {
        Self { transformers }
    }

    /// The transformers, the writing one first.
    pub fn transformers(&self) -> &[Transformer] {
        &self.transformers
    }

    /// Whether values are stored unchanged (the first transformer is identity).
    pub fn writes_plain(&self) -> bool {
        matches!(self.transformers.first(), None | Some(Transformer::Identity))
    }

    /// The stored form of `plain` under store key `context`.
    pub fn to_storage(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, TransformError> {
        match self.transformers.first() {
            Some(t) => t.to_storage(plain, context),
            None => Ok(plain.to_vec()),
        }
    }

    /// The plain form of a stored value: the first transformer whose prefix matches decrypts
    /// it; identity (empty prefix) gives way to the others for encrypted data, as upstream's
    /// prefix transformers do.
    pub fn from_storage(&self, stored: &[u8], context: &[u8]) -> Result<Decrypted, TransformError> {
        for (i, t) in self.transformers.iter().enumerate() {
            let prefix = t.prefix();
            if !stored.starts_with(prefix) {
                continue;
            }
            match t.decrypt_body(&stored[prefix.len()..], context) {
                Ok(value) => return Ok(Decrypted { value, stale: i != 0 }),
                // Identity refuses encrypted data: a later key may read it.
                Err(_) if prefix.is_empty() => continue,
                Err(e) => return Err(e),
            }
        }
        Err(TransformError::NoMatchingPrefix)
    }
}
