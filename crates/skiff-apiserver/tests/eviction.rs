//! The eviction API through kube-rs: a budget with room is spent and records the pod, an
//! exhausted one answers 429 with the `DisruptionBudget` cause, two matching budgets a 500,
//! pending pods ignore budgets, and a missing pod is a 404.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::TestServer;

async fn running_pod(pods: &Api<Pod>, name: &str, phase: &str) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

async fn budget(pdbs: &Api<PodDisruptionBudget>, name: &str, allowed: i32) {
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .unwrap();
    pdbs.create(&PostParams::default(), &pdb).await.unwrap();
    let status = json!({"status": {"observedGeneration": 1, "disruptionsAllowed": allowed,
        "currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2}});
    pdbs.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
}

async fn evict(pods: &Api<Pod>, name: &str) -> Result<Value, kube::Error> {
    let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 5}});
    pods.create_subresource::<Value, Value>("eviction", name, &PostParams::default(), &body).await
}

#[tokio::test]
async fn evictions_spend_budgets() {
    let ts = TestServer::start().await;
    // kube-rs retries 429s by default; the test wants to see them.
    let client = ts.client_without_retries().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
    running_pod(&pods, "p1", "Running").await;
    running_pod(&pods, "p2", "Running").await;
    budget(&pdbs, "web", 1).await;

    let status = evict(&pods, "p1").await.unwrap();
    assert_eq!((status["status"].as_str(), status["code"].as_i64()), (Some("Success"), Some(201)));
    let p1 = pods.get("p1").await.unwrap();
    assert!(p1.metadata.deletion_timestamp.is_some());
    assert_eq!(p1.metadata.deletion_grace_period_seconds, Some(5), "deleteOptions are honoured");
    let target = p1.status.unwrap().conditions.unwrap().into_iter().find(|c| c.type_ == "DisruptionTarget").unwrap();
    assert_eq!(
        (target.reason.as_deref(), target.message.as_deref()),
        (Some("EvictionByEvictionAPI"), Some("Eviction API: evicting"))
    );
    let st = pdbs.get("web").await.unwrap().status.unwrap();
    assert_eq!(st.disruptions_allowed, 0);
    assert!(st.disrupted_pods.unwrap().contains_key("p1"));

    match evict(&pods, "p2").await {
        Err(kube::Error::Api(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
            assert_eq!(e.message, "Cannot evict pod as it would violate the pod's disruption budget.");
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    assert!(pods.get("p2").await.unwrap().metadata.deletion_timestamp.is_none());

    // A pending pod disrupts nothing: it goes whatever the budget says.
    running_pod(&pods, "p3", "Pending").await;
    evict(&pods, "p3").await.unwrap();
    assert!(pods.get("p3").await.unwrap().metadata.deletion_timestamp.is_some());

    budget(&pdbs, "web2", 3).await;
    match evict(&pods, "p2").await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 500);
            assert_eq!(
                e.message,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
            );
        }
        other => panic!("expected a 500, got {other:?}"),
    }
    match evict(&pods, "nope").await {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.message.as_str()), (404, "pods \"nope\" not found")),
        other => panic!("expected a 404, got {other:?}"),
    }
    match pods
        .create_subresource::<Value, Value>(
            "eviction",
            "p2",
            &PostParams::default(),
            &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}}),
        )
        .await
    {
        Err(kube::Error::Api(e)) => {
            assert_eq!((e.code, e.message.as_str()), (400, "name in URL does not match name in Eviction object"))
        }
        other => panic!("expected a 400, got {other:?}"),
    }
}
