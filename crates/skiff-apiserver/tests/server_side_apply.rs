//! kube-rs server-side apply against an in-process API server: create via apply, no-op
//! re-apply, conflicts with another manager (409 with `FieldManagerConflict` causes), forcing,
//! dry-run, the required `fieldManager`, and `Update` entries of ordinary writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::TestServer;

fn deployment(replicas: i32, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "main", "image": image, "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn entry<'a>(
    d: &'a Deployment,
    manager: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry> {
    d.metadata.managed_fields.as_ref()?.iter().find(|e| e.manager.as_deref() == Some(manager))
}

#[tokio::test]
async fn apply_creates_is_idempotent_conflicts_and_forces() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    let pp = PatchParams::apply("ci");

    let created = api.patch("web", &pp, &Patch::Apply(deployment(2, "nginx:1"))).await.unwrap();
    assert_eq!(created.spec.as_ref().unwrap().replicas, Some(2));
    let e = entry(&created, "ci").expect("apply entry");
    assert_eq!(e.operation.as_deref(), Some("Apply"));
    assert_eq!(e.fields_type.as_deref(), Some("FieldsV1"));
    let fields = &e.fields_v1.as_ref().unwrap().0;
    assert!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"main\"}"]["f:ports"]
            .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
            .is_some()
    );

    let again = api.patch("web", &pp, &Patch::Apply(deployment(2, "nginx:1"))).await.unwrap();
    assert_eq!(again.metadata.resource_version, created.metadata.resource_version);

    // Another manager takes replicas with an ordinary merge patch.
    let scale = PatchParams { field_manager: Some("scaler".into()), ..Default::default() };
    let scaled = api.patch("web", &scale, &Patch::Merge(json!({"spec": {"replicas": 5}}))).await.unwrap();
    let fields = &entry(&scaled, "scaler").expect("update entry").fields_v1.as_ref().unwrap().0;
    assert_eq!(fields, &json!({"f:spec": {"f:replicas": {}}}));

    match api.patch("web", &pp, &Patch::Apply(deployment(3, "nginx:1"))).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
            assert_eq!(
                e.message,
                "Apply failed with 1 conflict: conflict with \"scaler\" using apps/v1: .spec.replicas"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let dry = PatchParams { dry_run: true, ..PatchParams::apply("ci").force() };
    let preview = api.patch("web", &dry, &Patch::Apply(deployment(3, "nginx:2"))).await.unwrap();
    assert_eq!(preview.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(api.get("web").await.unwrap().spec.unwrap().replicas, Some(5));

    let forced =
        api.patch("web", &PatchParams::apply("ci").force(), &Patch::Apply(deployment(3, "nginx:2"))).await.unwrap();
    assert_eq!(forced.spec.as_ref().unwrap().replicas, Some(3));
    assert!(entry(&forced, "scaler").is_none(), "the scaler owned nothing else and is dropped");
}

#[tokio::test]
async fn apply_requires_a_field_manager_and_raw_conflict_causes_match_upstream() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    match cms.patch("c", &PatchParams::default(), &Patch::Apply(cm.clone())).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(e.message.contains("fieldManager: Required value: is required for apply patch"), "{}", e.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
    let created = cms.create(&PostParams::default(), &serde_json::from_value(cm.clone()).unwrap()).await.unwrap();
    let managed = created.metadata.managed_fields.unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].operation.as_deref(), Some("Update"));

    let changed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}});
    let req = http::Request::patch("/api/v1/namespaces/default/configmaps/c?fieldManager=other")
        .header("content-type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&changed).unwrap())
        .unwrap();
    let err = client.request::<Value>(req).await.expect_err("conflict");
    let kube::Error::Api(status) = err else { panic!("expected an API error, got {err:?}") };
    assert_eq!(status.code, 409);
    assert!(status.message.contains(".data.a"), "{}", status.message);
}
