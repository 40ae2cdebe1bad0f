//! An in-cluster kube-rs client for the end-to-end tests (`tests/e2e/test_tokens.py`): run in a
//! pod, it builds its client with `kube::Client::try_default()` (the ServiceAccount token, CA
//! and namespace projected into the pod, the `kubernetes` Service's address from the
//! environment), lists the pods of its namespace and of `kube-system`, and prints one JSON line
//! `RESULT {...}` with what each list returned (pod names, or the API's error code and message).
//!
//! Not part of skiff: the e2e script builds it next to the binary.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

/// The outcome of one list, as JSON: the names, or the Status the API server answered.
async fn list(api: Api<Pod>) -> serde_json::Value {
    match api.list(&ListParams::default()).await {
        Ok(pods) => serde_json::json!({
            "pods": pods.items.iter().filter_map(|p| p.metadata.name.clone()).collect::<Vec<_>>(),
        }),
        Err(kube::Error::Api(status)) => serde_json::json!({"code": status.code, "message": status.message}),
        Err(e) => serde_json::json!({"error": e.to_string()}),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let client = kube::Client::try_default().await?;
    let namespace = client.default_namespace().to_string();
    let own = list(Api::default_namespaced(client.clone())).await;
    let system = list(Api::namespaced(client, "kube-system")).await;
    let result = serde_json::json!({"namespace": namespace, "own": own, "kube_system": system});
    println!("RESULT {result}");
    Ok(())
}
