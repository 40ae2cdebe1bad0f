//! CustomResourceDefinitions end to end with kube-rs against an in-process API server: a CRD is
//! established, its resource served (CRUD, validation, pruning, defaulting, status and scale
//! subresources, watch, tables, discovery, OpenAPI), and deleting the CRD removes its objects.
//!
//! The custom resource registry is per process, so every test uses its own group.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::{Value, json};
use support::TestServer;

fn crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "string"},
                        "replicas": {"type": "integer", "minimum": 0, "default": 1},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    }},
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"}, "selector": {"type": "string"}, "phase": {"type": "string"},
                    }},
                }}},
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas", "labelSelectorPath": ".status.selector"}},
                "additionalPrinterColumns": [
                    {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
            }],
        }
    }))
    .unwrap()
}

fn widget_resource(group: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Widget"), "widgets")
}

async fn establish(client: &kube::Client, group: &str) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let created = crds.create(&PostParams::default(), &crd(group)).await.unwrap();
    assert!(
        created.metadata.finalizers.unwrap_or_default().contains(&"customresourcecleanup.apiextensions.k8s.io".into())
    );
    for _ in 0..100 {
        let c = crds.get(&format!("widgets.{group}")).await.unwrap();
        let established = c
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        if established {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the CRD was not established within 2 s");
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "x/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
}

#[tokio::test]
async fn crd_lifecycle_crud_validation_subresources_and_cleanup() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let group = "lifecycle.example.com";
    let c = establish(&client, group).await;
    let status = c.status.unwrap();
    assert_eq!(status.stored_versions, Some(vec!["v1".to_string()]));
    assert_eq!(status.accepted_names.map(|n| n.plural), Some("widgets".to_string()));
    assert!(
        status
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.reason.as_deref() == Some("NoConflicts"))
    );

    let ar = widget_resource(group);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut obj = widget("w1", json!({"image": "nginx", "bogus": true, "extra": {"kept": 1}}));
    obj.types = Some(kube::api::TypeMeta { api_version: format!("{group}/v1"), kind: "Widget".into() });
    obj.data["status"] = json!({"phase": "ignored"});
    let created = api.create(&PostParams::default(), &obj).await.unwrap();
    assert_eq!(created.data["spec"]["replicas"], 1, "defaulted");
    assert!(created.data["spec"].get("bogus").is_none(), "pruned");
    assert_eq!(created.data["spec"]["extra"]["kept"], 1, "preserved");
    assert!(created.data.get("status").is_none(), "status is dropped on create");

    // Validation: 422 naming the field.
    let mut bad = widget("w2", json!({"image": "nginx", "replicas": "three"}));
    bad.types = obj.types.clone();
    let err = api.create(&PostParams::default(), &bad).await.unwrap_err();
    let kube::Error::Api(resp) = err else { panic!("not an API error") };
    assert_eq!(resp.code, 422);
    assert!(
        resp.message
            .contains("spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer"),
        "{}",
        resp.message
    );
    let mut missing = widget("w3", json!({}));
    missing.types = obj.types.clone();
    let kube::Error::Api(resp) = api.create(&PostParams::default(), &missing).await.unwrap_err() else { panic!() };
    assert!(resp.message.contains("spec.image: Required value"), "{}", resp.message);

    // Merge patch works, strategic merge patch is refused.
    let patched =
        api.patch("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"image": "busybox"}}))).await.unwrap();
    assert_eq!(patched.data["spec"]["image"], "busybox");
    let json_patched = api
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::<Value>::Json(
                serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 2}])).unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(json_patched.data["spec"]["replicas"], 2);
    let kube::Error::Api(resp) =
        api.patch("w1", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"image": "x"}}))).await.unwrap_err()
    else {
        panic!()
    };
    assert_eq!(resp.code, 415);

    // Status subresource: only status changes.
    let st = api
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"image": "nope"}, "status": {"replicas": 2, "selector": "app=w", "phase": "Ready"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(st.data["status"]["phase"], "Ready");
    assert_eq!(st.data["spec"]["image"], "busybox");

    // Scale subresource.
    let scale = api.get_scale("w1").await.unwrap();
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));
    assert_eq!(scale.status.as_ref().map(|s| s.replicas), Some(2));
    assert_eq!(scale.status.and_then(|s| s.selector), Some("app=w".to_string()));
    api.patch_scale("w1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 5}}))).await.unwrap();
    assert_eq!(api.get("w1").await.unwrap().data["spec"]["replicas"], 5);

    // Watch.
    let stream = watcher::watcher(api.clone(), watcher::Config::default());
    let mut stream = Box::pin(stream);
    let mut seen_w4 = false;
    let mut w4 = widget("w4", json!({"image": "redis"}));
    w4.types = obj.types.clone();
    let creator = {
        let api = api.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            api.create(&PostParams::default(), &w4).await.unwrap();
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen_w4 && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(Event::Apply(o) | Event::InitApply(o)))) => seen_w4 |= o.metadata.name.as_deref() == Some("w4"),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    creator.await.unwrap();
    assert!(seen_w4, "watch delivered the new object");

    // A finalizer on a custom object holds the CRD's deletion until it is removed.
    api.patch("w4", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})))
        .await
        .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete(&format!("widgets.{group}"), &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let terminating = crds.get(&format!("widgets.{group}")).await.unwrap();
    assert!(
        terminating.status.unwrap().conditions.unwrap().iter().any(|c| c.type_ == "Terminating" && c.status == "True")
    );
    assert!(api.get("w1").await.is_err(), "w1 is gone");
    let mut late = widget("w5", json!({"image": "late"}));
    late.types = obj.types.clone();
    let kube::Error::Api(resp) = api.create(&PostParams::default(), &late).await.unwrap_err() else { panic!() };
    assert_eq!(resp.code, 405, "no creates while the CRD terminates");
    let held = api.get("w4").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch("w4", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if crds.get_opt(&format!("widgets.{group}")).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the CRD is deleted once its objects are");
    assert!(skiff_api::catalogue::find(group, "v1", "widgets").is_none());
}

async fn get_json(ts: &TestServer, path: &str, accept: &str) -> (u16, Value) {
    let client = ts.client().await;
    let req = http::Request::get(path).header("Accept", accept).body(Vec::new()).unwrap();
    match client.request_text(req).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap_or(Value::Null)),
        Err(kube::Error::Api(e)) => (e.code, Value::Null),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn custom_resources_appear_in_discovery_openapi_and_tables() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let group = "discovery.example.org";
    establish(&client, group).await;
    let (_, list) = get_json(&ts, &format!("/apis/{group}/v1"), "application/json").await;
    let resources = list["resources"].as_array().unwrap();
    let names: Vec<&str> = resources.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, vec!["widgets", "widgets/scale", "widgets/status"]);
    assert_eq!(resources[0]["shortNames"], json!(["wdg"]));
    let (_, groups) = get_json(&ts, "/apis", "application/json").await;
    assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == group));
    let (_, crd_list) = get_json(&ts, "/apis/apiextensions.k8s.io/v1", "application/json").await;
    assert_eq!(crd_list["resources"][0]["shortNames"], json!(["crd", "crds"]));

    let (_, index) = get_json(&ts, "/openapi/v3", "application/json").await;
    let url = index["paths"][format!("apis/{group}/v1")]["serverRelativeURL"].as_str().unwrap().to_string();
    let (_, doc) = get_json(&ts, &url, "application/json").await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let widget_schema = schemas.iter().find(|(k, _)| k.ends_with(".Widget")).map(|(_, v)| v).unwrap();
    assert_eq!(widget_schema["properties"]["spec"]["properties"]["image"]["type"], "string");
    assert_eq!(widget_schema["x-kubernetes-group-version-kind"][0]["kind"], "Widget");

    let ar = widget_resource(group);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut obj = widget("t1", json!({"image": "nginx"}));
    obj.types = Some(kube::api::TypeMeta { api_version: format!("{group}/v1"), kind: "Widget".into() });
    api.create(&PostParams::default(), &obj).await.unwrap();
    let (_, table) = get_json(
        &ts,
        &format!("/apis/{group}/v1/namespaces/default/widgets"),
        "application/json;as=Table;v=v1;g=meta.k8s.io",
    )
    .await;
    let cols: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(cols, vec!["Name", "Image", "Replicas", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "t1");
    assert_eq!(table["rows"][0]["cells"][1], "nginx");
    assert_eq!(table["rows"][0]["cells"][2], 1);

    // A second CRD claiming a built-in kind's names in its group is not accepted.
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut clash = crd("networking.k8s.io");
    clash.metadata.name = Some("ingresses.networking.k8s.io".into());
    clash.spec.names.plural = "ingresses".into();
    clash.spec.names.singular = Some("ingress".into());
    clash.spec.names.kind = "Ingress".into();
    clash.spec.names.short_names = None;
    crds.create(&PostParams::default(), &clash).await.unwrap();
    let mut refused = false;
    for _ in 0..100 {
        let c = crds.get("ingresses.networking.k8s.io").await.unwrap();
        if c.status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "NamesAccepted" && c.status == "False"))
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused);

    // Invalid CRDs are refused with the field path (identical version schemas: `spec.validation`).
    let mut invalid = crd("invalid.example.org");
    invalid.spec.versions[0]
        .schema
        .as_mut()
        .unwrap()
        .open_api_v3_schema
        .as_mut()
        .unwrap()
        .properties
        .as_mut()
        .unwrap()
        .get_mut("spec")
        .unwrap()
        .type_ = None;
    let kube::Error::Api(resp) = crds.create(&PostParams::default(), &invalid).await.unwrap_err() else { panic!() };
    assert_eq!(resp.code, 422);
    assert!(
        resp.message.contains("spec.validation.openAPIV3Schema.properties[spec].type: Required value"),
        "{}",
        resp.message
    );
}

#[tokio::test]
async fn custom_resources_survive_a_restart() {
    let mut ts = TestServer::start().await;
    let client = ts.client().await;
    let group = "restart.example.net";
    establish(&client, group).await;
    let ar = widget_resource(group);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let mut obj = widget("r1", json!({"image": "nginx"}));
    obj.types = Some(kube::api::TypeMeta { api_version: format!("{group}/v1"), kind: "Widget".into() });
    api.create(&PostParams::default(), &obj).await.unwrap();
    ts.restart().await;
    let client = ts.client().await;
    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
    let list = api.list(&Default::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
}

#[tokio::test]
async fn served_versions_share_storage_and_validate_with_their_own_schema() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let group = "versions.example.io";
    let mut def = crd(group);
    let mut beta = def.spec.versions[0].clone();
    beta.name = "v1beta1".into();
    beta.storage = false;
    beta.subresources = None;
    beta.schema = Some(
        serde_json::from_value(
            json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
        )
        .unwrap(),
    );
    def.spec.versions.push(beta);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &def).await.unwrap();
    let v1 = widget_resource(group);
    let v1beta1 = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1beta1", "Widget"), "widgets");
    let beta_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &v1beta1);
    let mut obj = widget("b1", json!({"legacy": true}));
    obj.types = Some(kube::api::TypeMeta { api_version: format!("{group}/v1beta1"), kind: "Widget".into() });
    let mut created = None;
    for _ in 0..100 {
        match beta_api.create(&PostParams::default(), &obj).await {
            Ok(o) => {
                created = Some(o);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let created = created.expect("created through v1beta1");
    assert_eq!(created.types.unwrap().api_version, format!("{group}/v1beta1"));
    assert_eq!(created.data["spec"]["legacy"], true, "v1beta1's schema preserves unknown fields");
    let v1_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &v1);
    let read = v1_api.get("b1").await.unwrap();
    assert_eq!(read.types.unwrap().api_version, format!("{group}/v1"));
    let listed = beta_api.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items[0].types.as_ref().unwrap().api_version, format!("{group}/v1beta1"));
}

/// The managers of an object, as (manager, operation, apiVersion, subresource).
fn managers(obj: &DynamicObject) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = obj
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|e| {
            let s = |v: &Option<String>| v.clone().unwrap_or_default();
            (s(&e.manager), s(&e.operation), s(&e.api_version), s(&e.subresource))
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn managed_fields_across_versions_and_scale_apply_on_custom_resources() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let group = "ssa.example.io";
    let mut def = crd(group);
    let mut v2 = def.spec.versions[0].clone();
    v2.name = "v2".into();
    v2.storage = false;
    def.spec.versions.push(v2);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &def).await.unwrap();
    let at = |version: &str| {
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, "Widget"), "widgets");
        Api::<DynamicObject>::namespaced_with(client.clone(), "default", &ar)
    };
    let (v1_api, v2_api) = (at("v1"), at("v2"));
    let config = |version: &str, labels: Value| {
        Patch::Apply(json!({"apiVersion": format!("{group}/{version}"), "kind": "Widget",
            "metadata": {"name": "w", "labels": labels}, "spec": {"image": "nginx", "replicas": 2}}))
    };
    let mut applied = None;
    for _ in 0..100 {
        match v1_api.patch("w", &PatchParams::apply("ci"), &config("v1", json!({"a": "1"}))).await {
            Ok(o) => {
                applied = Some(o);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    applied.expect("applied through v1 once the CRD is established");

    // Apply entries are one per manager whatever the version: the v2 apply replaces the v1 entry
    // and prunes what it no longer sets.
    let through_v2 = v2_api.patch("w", &PatchParams::apply("ci"), &config("v2", json!({}))).await.unwrap();
    assert!(through_v2.metadata.labels.clone().unwrap_or_default().is_empty(), "label pruned across versions");
    let ci = (String::from("ci"), String::from("Apply"), format!("{group}/v2"), String::new());
    assert_eq!(managers(&through_v2), std::slice::from_ref(&ci));

    // Update entries are kept per version.
    let tool = PatchParams { field_manager: Some("tool".into()), ..Default::default() };
    v1_api.patch("w", &tool, &Patch::Merge(json!({"metadata": {"labels": {"b": "1"}}}))).await.unwrap();
    let both = v2_api.patch("w", &tool, &Patch::Merge(json!({"metadata": {"labels": {"c": "1"}}}))).await.unwrap();
    let update = |v: &str| (String::from("tool"), String::from("Update"), format!("{group}/{v}"), String::new());
    assert_eq!(managers(&both), [ci.clone(), update("v1"), update("v2")]);

    // /scale apply maps spec.replicas to the CRD's specReplicasPath and conflicts with its owner.
    let scale = || Patch::Apply(json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": 5}}));
    match v1_api.patch_scale("w", &PatchParams::apply("hpa"), &scale()).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 409);
            assert_eq!(e.message, "Apply failed with 1 conflict: conflict with \"ci\": .spec.replicas");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let scaled = v1_api.patch_scale("w", &PatchParams::apply("hpa").force(), &scale()).await.unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(5));
    let w = v2_api.get("w").await.unwrap();
    assert_eq!(w.data["spec"]["replicas"], 5);
    let hpa = (String::from("hpa"), String::from("Apply"), format!("{group}/v1"), String::from("scale"));
    assert_eq!(managers(&w), [ci, hpa, update("v1"), update("v2")]);
}

#[tokio::test]
async fn selectable_fields_filter_lists_and_watches() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let group = "select.example.io";
    let mut def = crd(group);
    def.spec.versions[0].selectable_fields = Some(vec![
        serde_json::from_value(json!({"jsonPath": ".spec.image"})).unwrap(),
        serde_json::from_value(json!({"jsonPath": ".spec.replicas"})).unwrap(),
    ]);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &def).await.unwrap();
    let ar = widget_resource(group);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    for (name, image, replicas) in [("a", "nginx", 1), ("b", "redis", 2), ("c", "nginx", 3)] {
        let mut obj = widget(name, json!({"image": image, "replicas": replicas}));
        obj.types = Some(kube::api::TypeMeta { api_version: format!("{group}/v1"), kind: "Widget".into() });
        let mut created = false;
        for _ in 0..100 {
            if api.create(&PostParams::default(), &obj).await.is_ok() {
                created = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(created, "created {name}");
    }
    let names = |list: kube::core::ObjectList<DynamicObject>| {
        list.items.into_iter().map(|o| o.metadata.name.unwrap()).collect::<Vec<_>>()
    };
    let lp = |s: &str| kube::api::ListParams::default().fields(s);
    assert_eq!(names(api.list(&lp("spec.image=nginx")).await.unwrap()), vec!["a", "c"]);
    assert_eq!(names(api.list(&lp("spec.image!=nginx")).await.unwrap()), vec!["b"]);
    assert_eq!(names(api.list(&lp("spec.replicas=3,metadata.name=c")).await.unwrap()), vec!["c"]);
    assert_eq!(names(api.list(&lp("metadata.namespace=default,spec.image=redis")).await.unwrap()), vec!["b"]);
    let kube::Error::Api(err) = api.list(&lp("spec.bogus=1")).await.unwrap_err() else { panic!("not a status") };
    assert_eq!((err.code, err.message.as_str()), (400, "field label not supported: spec.bogus"));

    let wp = kube::api::WatchParams::default().fields("spec.image=redis");
    let mut stream = api.watch(&wp, "0").await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
    let kube::api::WatchEvent::Added(o) = first else { panic!("expected ADDED, got {first:?}") };
    assert_eq!(o.metadata.name.as_deref(), Some("b"));
    api.patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"image": "redis"}}))).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap().unwrap();
    let kube::api::WatchEvent::Added(o) = next else { panic!("a entering the selection is ADDED, got {next:?}") };
    assert_eq!(o.metadata.name.as_deref(), Some("a"));
}
