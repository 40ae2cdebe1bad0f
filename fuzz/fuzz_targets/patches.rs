//! Fuzzes strategic merge patch against a fixed Deployment: any patch document must yield a
//! result or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(patch) = serde_json::from_slice::<Value>(data) else { return };
    let original = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "finalizers": ["a"]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                 "template": {"metadata": {"labels": {"app": "d"}},
                              "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "1"}],
                                                        "ports": [{"containerPort": 80}]}]}}}
    });
    let _ = skiff_apiserver::strategic::apply("apps", "Deployment", &original, &patch);
});
