//! The Priority admission and the system priority classes, through kube-rs against an
//! in-process API server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::TestServer;

fn pod(name: &str, extra: serde_json::Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn class(name: &str, value: i32, global_default: bool) -> PriorityClass {
    serde_json::from_value(json!({"metadata": {"name": name}, "value": value, "globalDefault": global_default}))
        .unwrap()
}

fn api_error<T: std::fmt::Debug>(r: Result<T, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(e)) => (e.code, e.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn system_classes_exist_and_cannot_be_deleted() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let classes: Api<PriorityClass> = Api::all(client);
    assert_eq!(classes.get("system-node-critical").await.unwrap().value, 2_000_001_000);
    assert_eq!(classes.get("system-cluster-critical").await.unwrap().value, 2_000_000_000);
    assert_eq!(
        api_error(classes.delete("system-cluster-critical", &DeleteParams::default()).await),
        (
            403,
            "priorityclasses.scheduling.k8s.io \"system-cluster-critical\" is forbidden: this is a system priority class and cannot be deleted"
                .to_string()
        )
    );
}

#[tokio::test]
async fn pods_get_the_priority_of_their_class() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let classes: Api<PriorityClass> = Api::all(client);
    classes.create(&PostParams::default(), &class("high", 1000, false)).await.unwrap();

    let p = pods.create(&PostParams::default(), &pod("a", json!({"priorityClassName": "high"}))).await.unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.priority, Some(1000));
    assert_eq!(spec.preemption_policy.as_deref(), Some("PreemptLowerPriority"));
    let crit = pods
        .create(&PostParams::default(), &pod("c", json!({"priorityClassName": "system-node-critical"})))
        .await
        .unwrap();
    assert_eq!(crit.spec.unwrap().priority, Some(2_000_001_000));

    // No class and no default: priority 0.
    let plain = pods.create(&PostParams::default(), &pod("b", json!({}))).await.unwrap();
    assert_eq!(plain.spec.unwrap().priority, Some(0));

    assert_eq!(
        api_error(pods.create(&PostParams::default(), &pod("x", json!({"priorityClassName": "nope"}))).await),
        (403, "pods \"x\" is forbidden: no PriorityClass with name nope was found".to_string())
    );
    assert_eq!(
        api_error(pods.create(&PostParams::default(), &pod("y", json!({"priorityClassName": "high", "priority": 5}))).await),
        (
            403,
            "pods \"y\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name".to_string()
        )
    );
}

#[tokio::test]
async fn the_global_default_applies_and_is_unique() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let classes: Api<PriorityClass> = Api::all(client);
    classes.create(&PostParams::default(), &class("default", 100, true)).await.unwrap();
    let p = pods.create(&PostParams::default(), &pod("a", json!({}))).await.unwrap();
    let spec = p.spec.unwrap();
    assert_eq!((spec.priority, spec.priority_class_name.as_deref()), (Some(100), Some("default")));
    assert_eq!(
        api_error(classes.create(&PostParams::default(), &class("other", 5, true)).await),
        (
            403,
            "priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass default is marked as default. Only one default can exist"
                .to_string()
        )
    );
}
