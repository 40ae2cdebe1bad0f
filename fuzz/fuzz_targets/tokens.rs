//! Fuzzes the ServiceAccount token path: any bearer string must be classified (not ours, refused,
//! or accepted) without panicking, and nothing but a token signed by the key may be accepted.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use skiff_apiserver::authn::jwt::{SigningKey, unverified_claims};
use skiff_apiserver::authn::serviceaccount::{ObjectSource, ServiceAccountTokens};

struct Everything;

impl ObjectSource for Everything {
    fn core_object(&self, _resource: &str, _namespace: Option<&str>, name: &str) -> Option<Value> {
        Some(json!({"metadata": {"name": name, "uid": "uid"}, "data": {"token": ""}}))
    }
}

fn tokens() -> &'static ServiceAccountTokens {
    static T: OnceLock<ServiceAccountTokens> = OnceLock::new();
    T.get_or_init(|| {
        let key = SigningKey::generate().expect("key");
        ServiceAccountTokens::new(key, "cluster.local", Arc::new(Everything))
    })
}

fuzz_target!(|data: &str| {
    let _ = unverified_claims(data);
    let t = tokens();
    if let Some(Ok(_)) = t.authenticate(data, 1_800_000_000) {
        panic!("an unsigned token was accepted");
    }
    let _ = t.key().verifying_key().verify(data);
});
