//! kube-rs server-side apply against an in-process API server: create via apply, no-op
//! re-apply, conflicts with another manager (409 with `FieldManagerConflict` causes), forcing,
//! dry-run, the required `fieldManager`, and `Update` entries of ordinary writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
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

fn scale_config(replicas: i32) -> Patch<Value> {
    Patch::Apply(json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": replicas}}))
}

fn conflict_message<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(e)) if e.code == 409 => e.message,
        other => panic!("expected a 409 conflict, got {other:?}"),
    }
}

fn fields_of(managed: &[ManagedFieldsEntry], manager: &str) -> Option<Value> {
    managed
        .iter()
        .find(|e| e.manager.as_deref() == Some(manager))
        .and_then(|e| e.fields_v1.as_ref())
        .map(|f| f.0.clone())
}

#[tokio::test]
async fn scale_apply_conflicts_with_the_parents_replica_owner_and_takes_ownership_when_forced() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let api: Api<Deployment> = Api::namespaced(client, "default");
    api.patch("web", &PatchParams::apply("ci"), &Patch::Apply(deployment(2, "nginx:1"))).await.unwrap();

    let msg = conflict_message(api.patch_scale("web", &PatchParams::apply("hpa"), &scale_config(4)).await);
    assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"ci\": .spec.replicas");
    assert_eq!(api.get("web").await.unwrap().spec.unwrap().replicas, Some(2));
    // The applied object must be a Scale in its version (as upstream, which kubectl's
    // `apply --subresource=scale` of a Deployment manifest runs into).
    match api.patch_scale("web", &PatchParams::apply("hpa"), &Patch::Apply(deployment(4, "nginx:1"))).await {
        Err(kube::Error::Api(e)) => assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "Incorrect version specified in apply patch. Specified patch version: apps/v1, expected: autoscaling/v1"
            )
        ),
        other => panic!("expected a 400, got {other:?}"),
    }

    // Applying the current value shares the field instead.
    api.patch_scale("web", &PatchParams::apply("hpa"), &scale_config(2)).await.unwrap();
    let shared = api.get("web").await.unwrap();
    let managed = shared.metadata.managed_fields.clone().unwrap();
    assert_eq!(fields_of(&managed, "hpa"), Some(json!({"f:spec": {"f:replicas": {}}})));
    assert!(fields_of(&managed, "ci").unwrap()["f:spec"].get("f:replicas").is_some(), "still shared with ci");

    let scale =
        api.patch_scale("web", &PatchParams::apply("hpa").force(), &scale_config(4)).await.expect("forced scale apply");
    assert_eq!(scale.spec.unwrap().replicas, Some(4));
    let scaled = api.get("web").await.unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    let managed = scaled.metadata.managed_fields.unwrap();
    let hpa = managed.iter().find(|e| e.manager.as_deref() == Some("hpa")).unwrap();
    assert_eq!(
        (hpa.operation.as_deref(), hpa.subresource.as_deref(), hpa.api_version.as_deref()),
        (Some("Apply"), Some("scale"), Some("apps/v1"))
    );
    assert!(fields_of(&managed, "ci").unwrap()["f:spec"].get("f:replicas").is_none(), "ci lost replicas");

    // The parent's applier now conflicts with the scale applier, named with its subresource.
    let msg =
        conflict_message(api.patch("web", &PatchParams::apply("ci"), &Patch::Apply(deployment(2, "nginx:1"))).await);
    assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"hpa\" with subresource \"scale\": .spec.replicas");

    // The Scale lists the owners of its replicas; an ordinary write to /scale takes them over.
    let scale = api.get_scale("web").await.unwrap();
    let owners: Vec<_> = scale.metadata.managed_fields.unwrap().into_iter().filter_map(|e| e.manager).collect();
    assert_eq!(owners, ["hpa"]);
    let kubectl = PatchParams { field_manager: Some("kubectl".into()), ..Default::default() };
    api.patch_scale("web", &kubectl, &Patch::Merge(json!({"spec": {"replicas": 1}}))).await.unwrap();
    let managed = api.get("web").await.unwrap().metadata.managed_fields.unwrap();
    assert!(fields_of(&managed, "hpa").is_none(), "the scale applier owned nothing else");
    let e = managed.iter().find(|e| e.manager.as_deref() == Some("kubectl")).unwrap();
    assert_eq!((e.operation.as_deref(), e.subresource.as_deref()), (Some("Update"), Some("scale")));
    let msg = conflict_message(api.patch_scale("web", &PatchParams::apply("hpa"), &scale_config(3)).await);
    assert_eq!(
        msg,
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
}

#[tokio::test]
async fn events_keep_their_owners_across_core_v1_and_events_k8s_io_v1() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let new: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let regarding = json!({"kind": "Pod", "name": "p", "namespace": "default"});
    let old_style = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "involvedObject": regarding,
        "reason": "Started", "type": "Normal", "message": "one"});
    core.patch("e1", &PatchParams::apply("a"), &Patch::Apply(old_style)).await.unwrap();

    let new_style = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"}, "regarding": regarding,
        "reason": "Started", "type": "Normal", "note": "two"});
    // The conflict is found in the owner's version and named as the owner recorded it.
    let msg = conflict_message(new.patch("e1", &PatchParams::apply("b"), &Patch::Apply(new_style.clone())).await);
    assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"a\": .message");

    let forced = new.patch("e1", &PatchParams::apply("b").force(), &Patch::Apply(new_style.clone())).await.unwrap();
    assert_eq!(forced.note.as_deref(), Some("two"));
    let managed = forced.metadata.managed_fields.unwrap();
    let a = fields_of(&managed, "a").unwrap();
    assert!(a.get("f:message").is_none(), "a lost the message: {a}");
    // ObjectReference is atomic: owned as a whole.
    assert!(a.get("f:involvedObject").is_some(), "a's entry stays in core/v1 paths: {a}");
    let b = managed.iter().find(|e| e.manager.as_deref() == Some("b")).unwrap();
    assert_eq!(b.api_version.as_deref(), Some("events.k8s.io/v1"));
    let b = &b.fields_v1.as_ref().unwrap().0;
    assert!(b.get("f:note").is_some() && b.get("f:regarding").is_some() && b.get("f:involvedObject").is_none(), "{b}");

    // Re-applying the same configuration through the other version's owner is a no-op.
    let again = new.patch("e1", &PatchParams::apply("b"), &Patch::Apply(new_style)).await.unwrap();
    assert_eq!(again.metadata.resource_version, forced.metadata.resource_version);

    // An ordinary core/v1 write of the message takes the note from b.
    let kubectl = PatchParams { field_manager: Some("kubectl".into()), ..Default::default() };
    let written = core.patch("e1", &kubectl, &Patch::Merge(json!({"message": "three"}))).await.unwrap();
    let managed = written.metadata.managed_fields.unwrap();
    let b = fields_of(&managed, "b").unwrap();
    assert!(b.get("f:note").is_none() && b.get("f:regarding").is_some(), "{b}");
    assert_eq!(fields_of(&managed, "kubectl"), Some(json!({"f:message": {}})));
}

#[tokio::test]
async fn horizontal_pod_autoscaler_owners_conflict_across_v1_and_v2() {
    use k8s_openapi::api::autoscaling::{v1, v2};
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let hpa_v2: Api<v2::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let hpa_v1: Api<v1::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let target = json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"});
    let v2_config = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": target, "maxReplicas": 3, "metrics": [{"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}});
    hpa_v2.patch("h", &PatchParams::apply("a"), &Patch::Apply(v2_config)).await.unwrap();

    let v1_config = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": target, "maxReplicas": 3, "targetCPUUtilizationPercentage": 70}});
    let msg = conflict_message(hpa_v1.patch("h", &PatchParams::apply("b"), &Patch::Apply(v1_config.clone())).await);
    assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"a\": .spec.metrics");

    let forced = hpa_v1.patch("h", &PatchParams::apply("b").force(), &Patch::Apply(v1_config)).await.unwrap();
    assert_eq!(forced.spec.unwrap().target_cpu_utilization_percentage, Some(70));
    let stored = hpa_v2.get("h").await.unwrap();
    let managed = stored.metadata.managed_fields.unwrap();
    let a = fields_of(&managed, "a").unwrap();
    assert!(a["f:spec"].get("f:metrics").is_none() && a["f:spec"].get("f:maxReplicas").is_some(), "{a}");
    let b = managed.iter().find(|e| e.manager.as_deref() == Some("b")).unwrap();
    assert_eq!(b.api_version.as_deref(), Some("autoscaling/v1"));
    let spec = &b.fields_v1.as_ref().unwrap().0["f:spec"];
    assert!(spec.get("f:targetCPUUtilizationPercentage").is_some() && spec.get("f:metrics").is_none(), "{spec}");
}

#[tokio::test]
async fn scale_apply_serves_every_built_in_kind_with_a_scale_subresource() {
    use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
    use k8s_openapi::api::core::v1::ReplicationController;
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let template =
        json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let selector = json!({"matchLabels": {"app": "x"}});
    let spec = |selector: &Value| json!({"replicas": 1, "selector": selector, "template": template});

    async fn check<K>(api: Api<K>, manifest: Value)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let kind = manifest["kind"].as_str().unwrap().to_string();
        api.patch("x", &PatchParams::apply("ci"), &Patch::Apply(manifest)).await.unwrap();
        let msg = conflict_message(api.patch_scale("x", &PatchParams::apply("hpa"), &scale_config(3)).await);
        assert_eq!(msg, "Apply failed with 1 conflict: conflict with \"ci\": .spec.replicas", "{kind}");
        let scale = api.patch_scale("x", &PatchParams::apply("hpa").force(), &scale_config(3)).await.unwrap();
        assert_eq!(scale.spec.unwrap().replicas, Some(3), "{kind}");
        let obj = serde_json::to_value(api.get("x").await.unwrap()).unwrap();
        assert_eq!(obj["spec"]["replicas"], 3, "{kind}");
        let hpa = obj["metadata"]["managedFields"].as_array().unwrap().iter().find(|e| e["manager"] == "hpa").cloned();
        assert_eq!(hpa.unwrap()["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}), "{kind}");
    }

    let ns = |kind: &str, api_version: &str, spec: Value| json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, "spec": spec});
    check(Api::<ReplicaSet>::namespaced(client.clone(), "default"), ns("ReplicaSet", "apps/v1", spec(&selector))).await;
    let mut sts = spec(&selector);
    sts["serviceName"] = json!("x");
    check(Api::<StatefulSet>::namespaced(client.clone(), "default"), ns("StatefulSet", "apps/v1", sts)).await;
    let rc = spec(&json!({"app": "x"}));
    check(Api::<ReplicationController>::namespaced(client.clone(), "default"), ns("ReplicationController", "v1", rc))
        .await;
}
