//! Compact JSON Web Signatures with ES256 (ECDSA P-256, SHA-256) on `ring`: the service-account
//! signing key (PKCS#8 PEM), signing a claims object, verifying a token against the public key,
//! and the public key as a JWK. Only ES256 is accepted: `alg: none`, HMAC and RSA headers are
//! refused before any cryptography. What the claims mean lives in [`super::serviceaccount`].

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The only signing algorithm issued and accepted.
pub const ALGORITHM: &str = "ES256";

/// DER prefix of a `SubjectPublicKeyInfo` for an uncompressed P-256 point (id-ecPublicKey,
/// prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Why a key could not be loaded or a token not be signed or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// The key is not a PKCS#8 P-256 private key.
    #[error("invalid service account signing key: {0}")]
    Key(String),
    /// The token is not three base64url JSON parts.
    #[error("token is malformed")]
    Malformed,
    /// The header names another algorithm than ES256.
    #[error("unexpected signature algorithm {0:?}")]
    Algorithm(String),
    /// The signature does not verify.
    #[error("invalid signature")]
    Signature,
    /// Signing failed.
    #[error("cannot sign the token")]
    Sign,
}

/// The private signing key and what is derived from it.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    public: VerifyingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(kid {})", self.public.kid)
    }
}

/// A P-256 public key with its key id (base64url of the SHA-256 of its DER `SubjectPublicKeyInfo`,
/// as upstream derives `kid`).
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    point: Vec<u8>,
    kid: String,
}

/// A new P-256 key as PKCS#8 PEM (`PRIVATE KEY`).
pub fn generate_pem() -> Result<String, JwtError> {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| JwtError::Key("cannot generate a key".into()))?;
    Ok(pem_encode("PRIVATE KEY", doc.as_ref()))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).ok()
}

impl SigningKey {
    /// Loads a PKCS#8 PEM P-256 private key.
    pub fn from_pem(pem: &str) -> Result<Self, JwtError> {
        let der = pem_decode(pem, "PRIVATE KEY").ok_or_else(|| JwtError::Key("no PRIVATE KEY PEM block".into()))?;
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| JwtError::Key(e.to_string()))?;
        let public = VerifyingKey::from_point(pair.public_key().as_ref().to_vec());
        Ok(Self { pair, rng, public })
    }

    /// A fresh key held only in memory (tests, servers started without a key).
    pub fn generate() -> Result<Self, JwtError> {
        Self::from_pem(&generate_pem()?)
    }

    /// The public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.public
    }

    /// Signs `claims` into a compact JWS with the header `{"alg":"ES256","kid":…}`.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"alg": ALGORITHM, "kid": self.public.kid});
        let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
        let sig = self.pair.sign(&self.rng, out.as_bytes()).map_err(|_| JwtError::Sign)?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(out)
    }
}

impl VerifyingKey {
    fn from_point(point: Vec<u8>) -> Self {
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&point);
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(&spki));
        Self { point, kid }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The key as a JWK (`kty` EC, `crv` P-256, `use` sig, `alg` ES256, `kid`, `x`, `y`).
    pub fn jwk(&self) -> Value {
        let (x, y) = self.point[1..].split_at(32);
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.kid,
            "crv": "P-256",
            "alg": ALGORITHM,
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// Verifies `token` and returns its claims object.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JwtError> {
        let parts = split(token)?;
        let header = decode_object(parts.header)?;
        match header.get("alg").and_then(Value::as_str) {
            Some(ALGORITHM) => {}
            Some(other) => return Err(JwtError::Algorithm(other.to_string())),
            None => return Err(JwtError::Malformed),
        }
        if header.get("crit").is_some() {
            return Err(JwtError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD.decode(parts.signature).map_err(|_| JwtError::Malformed)?;
        if sig.len() != 64 {
            return Err(JwtError::Signature);
        }
        let key = ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.point);
        key.verify(parts.signed.as_bytes(), &sig).map_err(|_| JwtError::Signature)?;
        decode_object(parts.payload)
    }
}

struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signed: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    let mut it = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(JwtError::Malformed);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(JwtError::Malformed);
    }
    let signed = &token[..header.len() + 1 + payload.len()];
    Ok(Parts { header, payload, signature, signed })
}

fn decode_object(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::Malformed),
    }
}

/// The claims of a JWS-shaped token without verifying it (to route it to the authenticator of
/// its issuer); `None` when the token is not shaped like a JWT.
pub fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let parts = split(token).ok()?;
    decode_object(parts.payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forge(header: &Value, claims: &Value, sig: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    #[test]
    fn sign_then_verify_round_trips() {
        let key = SigningKey::generate().expect("test value");
        let token = key.sign(&json!({"sub": "x", "n": 1})).expect("test value");
        let claims = key.verifying_key().verify(&token).expect("test value");
        assert_eq!(claims["sub"], "x");
        let header = decode_object(token.split('.').next().expect("test value")).expect("test value");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.verifying_key().kid());
    }

    #[test]
    fn pem_round_trips_and_kid_is_stable() {
        let pem = generate_pem().expect("test value");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let a = SigningKey::from_pem(&pem).expect("test value");
        let b = SigningKey::from_pem(&pem).expect("test value");
        assert_eq!(a.verifying_key().kid(), b.verifying_key().kid());
        assert_eq!(a.verifying_key().kid().len(), 43);
        assert!(SigningKey::from_pem("garbage").is_err());
    }

    #[test]
    fn alg_none_and_hmac_are_refused() {
        let key = SigningKey::generate().expect("test value");
        let claims = json!({"sub": "x"});
        let none = forge(&json!({"alg": "none"}), &claims, b"");
        assert_eq!(key.verifying_key().verify(&none), Err(JwtError::Algorithm("none".into())));
        // HS256 keyed with the public key (the classic algorithm confusion).
        let header = json!({"alg": "HS256"});
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let hkey = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.verifying_key().point);
        let tag = ring::hmac::sign(&hkey, signed.as_bytes());
        let hs = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
        assert_eq!(key.verifying_key().verify(&hs), Err(JwtError::Algorithm("HS256".into())));
        let rs = forge(&json!({"alg": "RS256"}), &claims, &[0; 256]);
        assert_eq!(key.verifying_key().verify(&rs), Err(JwtError::Algorithm("RS256".into())));
    }

    #[test]
    fn bad_signatures_and_malformed_tokens_fail() {
        let key = SigningKey::generate().expect("test value");
        let other = SigningKey::generate().expect("test value");
        let token = other.sign(&json!({"sub": "x"})).expect("test value");
        assert_eq!(key.verifying_key().verify(&token), Err(JwtError::Signature));
        // Payload swapped under a valid signature.
        let good = key.sign(&json!({"sub": "x"})).expect("test value");
        let mut p: Vec<&str> = good.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(json!({"sub": "admin"}).to_string());
        p[1] = &evil;
        assert_eq!(key.verifying_key().verify(&p.join(".")), Err(JwtError::Signature));
        for bad in ["", "a.b", "a.b.c.d", "..", "!!.!!.!!", "e30.e30.", "W10.e30.AAAA"] {
            assert!(key.verifying_key().verify(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jwk_has_the_public_point() {
        let key = SigningKey::generate().expect("test value");
        let jwk = key.verifying_key().jwk();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().expect("test value")).expect("test value");
        assert_eq!(x.len(), 32);
        assert_eq!(&key.verifying_key().point[1..33], &x[..]);
    }
}
