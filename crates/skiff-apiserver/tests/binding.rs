//! Pod binding through kube-rs: the `pods/binding` subresource and the legacy `bindings`
//! collection set `spec.nodeName` and `PodScheduled`, and a second binding is a 409 worded as
//! upstream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::{Binding, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::TestServer;

fn pod(name: &str) -> Pod {
    serde_json::from_value(
        json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .unwrap()
}

fn binding(name: &str, node: &str) -> Binding {
    serde_json::from_value(json!({"metadata": {"name": name}, "target": {"kind": "Node", "name": node}})).unwrap()
}

fn scheduled(p: &Pod) -> Option<(String, Option<String>)> {
    let c = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled")?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn binding_subresource_sets_node_once() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created = pods.create(&PostParams::default(), &pod("p1")).await.unwrap();

    let status: serde_json::Value =
        pods.create_subresource("binding", "p1", &PostParams::default(), &binding("p1", "n1")).await.unwrap();
    assert_eq!(status["status"], "Success");
    assert_eq!(status["code"], 201);

    let bound = pods.get("p1").await.unwrap();
    assert_eq!(bound.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
    assert_eq!(scheduled(&bound), Some(("True".to_string(), None)));
    assert_ne!(bound.metadata.resource_version, created.metadata.resource_version);
    // The binding writes below the field manager, as upstream: managedFields are unchanged.
    assert_eq!(bound.metadata.managed_fields, created.metadata.managed_fields);

    let again = pods
        .create_subresource::<Binding, serde_json::Value>("binding", "p1", &PostParams::default(), &binding("p1", "n2"))
        .await;
    match again {
        Err(kube::Error::Api(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
            assert_eq!(
                e.message,
                "Operation cannot be fulfilled on pods/binding \"p1\": pod p1 is already assigned to node \"n1\""
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn legacy_bindings_collection_binds_and_checks_names() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod("p2")).await.unwrap();
    let bindings: Api<Binding> = Api::namespaced(client.clone(), "default");
    let out = bindings.create(&PostParams::default(), &binding("p2", "n1")).await;
    // The response is a Status, which the typed client cannot read as a Binding.
    assert!(!matches!(out, Err(kube::Error::Api(_))), "{out:?}");
    let bound = pods.get("p2").await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("n1"));
    // Nothing is stored under bindings.
    let raw =
        client.request_text(http::Request::get("/api/v1/namespaces/default/bindings").body(Vec::new()).unwrap()).await;
    assert!(raw.is_err(), "bindings are create-only: {raw:?}");

    let mismatched = pods
        .create_subresource::<Binding, serde_json::Value>(
            "binding",
            "p2",
            &PostParams::default(),
            &binding("other", "n1"),
        )
        .await;
    match mismatched {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 400);
            assert_eq!(e.message, "name in URL does not match name in Binding object");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    let missing = bindings.create(&PostParams::default(), &binding("nope", "n1")).await;
    match missing {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.message.as_str()), (404, "pods \"nope\" not found")),
        other => panic!("expected 404, got {other:?}"),
    }
}
