//! kube-rs against an in-process API server: typed CRUD, CAS conflicts, pagination, the
//! watcher (with bookmarks), status and scale subresources, and restart durability.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use support::TestServer;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>()},
        "data": {"k": "v"}
    }))
    .unwrap()
}

#[tokio::test]
async fn typed_crud_and_cas_conflict() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms.create(&PostParams::default(), &cm("a", &[("app", "x")])).await.unwrap();
    let rv = created.metadata.resource_version.clone().unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.data = Some(BTreeMap::from([("k".into(), "w".into())]));
    let updated = cms.replace("a", &PostParams::default(), &fresh).await.unwrap();
    assert_ne!(updated.metadata.resource_version.as_deref(), Some(rv.as_str()));
    stale.data = Some(BTreeMap::from([("k".into(), "stale".into())]));
    match cms.replace("a", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (409, "Conflict")),
        other => panic!("expected a conflict, got {other:?}"),
    }

    // A no-op write keeps the resource version.
    let same = cms.replace("a", &PostParams::default(), &updated).await.unwrap();
    assert_eq!(same.metadata.resource_version, updated.metadata.resource_version);

    let patched = cms
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"labels": {"extra": "1"}}})))
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap().get("extra").map(String::as_str), Some("1"));

    match cms.get("missing").await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(cms.get_opt("a").await.unwrap().is_none());
}

#[tokio::test]
async fn list_pagination_and_selectors() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..25 {
        let app = if i % 2 == 0 { "even" } else { "odd" };
        cms.create(&PostParams::default(), &cm(&format!("c{i:02}"), &[("app", app)])).await.unwrap();
    }
    let mut names = Vec::new();
    let mut lp = ListParams::default().limit(10);
    let mut pages = 0;
    loop {
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.metadata.resource_version.is_some());
        names.extend(page.items.into_iter().filter_map(|c| c.metadata.name));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 25);
    let even = cms.list(&ListParams::default().labels("app=even")).await.unwrap();
    assert_eq!(even.items.len(), 13);
    let notin = cms.list(&ListParams::default().labels("app notin (even)")).await.unwrap();
    assert_eq!(notin.items.len(), 12);
    let by_name = cms.list(&ListParams::default().fields("metadata.name=c03")).await.unwrap();
    assert_eq!(by_name.items.len(), 1);
    match cms.list(&ListParams::default().fields("spec.bogus=1")).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 400),
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn watcher_sees_initial_state_and_changes() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("before", &[])).await.unwrap();
    let stream = watcher::watcher(cms.clone(), watcher::Config::default());
    let mut stream = Box::pin(stream);
    let writer = {
        let cms = cms.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cms.create(&PostParams::default(), &cm("after", &[])).await.unwrap();
            cms.delete("before", &DeleteParams::default()).await.unwrap();
        })
    };
    let mut saw_init = false;
    let mut saw_after = false;
    let mut saw_delete = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(saw_init && saw_after && saw_delete) {
        let ev = tokio::time::timeout_at(deadline, stream.try_next()).await.expect("events in time").unwrap().unwrap();
        match ev {
            Event::InitApply(o) if o.metadata.name.as_deref() == Some("before") => saw_init = true,
            Event::Apply(o) if o.metadata.name.as_deref() == Some("after") => saw_after = true,
            Event::Delete(o) if o.metadata.name.as_deref() == Some("before") => saw_delete = true,
            _ => {}
        }
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn streaming_list_uses_send_initial_events() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &cm("s1", &[])).await.unwrap();
    let mut stream = Box::pin(watcher::watcher(cms, watcher::Config::default().streaming_lists()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await.expect("in time").unwrap().unwrap() {
            Event::InitDone => break,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn scale_status_and_services() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.status.as_ref().and_then(|s| s.selector.clone()).as_deref(), Some("app=web"));
    deploys.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 4}}))).await.unwrap();
    let after = deploys.get("web").await.unwrap();
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(4));
    assert_eq!(after.metadata.generation, Some(2));
    // Status writes touch only status and do not bump generation.
    deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 4}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    let after = deploys.get("web").await.unwrap();
    assert_eq!(after.status.as_ref().and_then(|s| s.replicas), Some(4));
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(4));
    assert_eq!(after.metadata.generation, Some(2));

    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let kubernetes = svcs.get("kubernetes").await.unwrap();
    assert_eq!(kubernetes.spec.and_then(|s| s.cluster_ip).as_deref(), Some("10.43.0.1"));
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "np"}, "spec": {"type": "NodePort", "selector": {"app": "web"}, "ports": [{"port": 80}]}})).unwrap();
    let svc = svcs.create(&PostParams::default(), &svc).await.unwrap();
    let spec = svc.spec.unwrap();
    let ip: std::net::Ipv4Addr = spec.cluster_ip.unwrap().parse().unwrap();
    assert_eq!(ip.octets()[..2], [10, 43]);
    let np = spec.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&np));
}

#[tokio::test]
async fn namespaces_refuse_missing_and_pods_validate() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let names: Vec<_> =
        nss.list(&ListParams::default()).await.unwrap().items.into_iter().filter_map(|n| n.metadata.name).collect();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(names.contains(&ns.to_string()), "{ns} missing");
    }
    let missing: Api<ConfigMap> = Api::namespaced(client.clone(), "nope");
    match missing.create(&PostParams::default(), &cm("x", &[])).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 404),
        other => panic!("expected 404, got {other:?}"),
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let good: Pod = serde_json::from_value(
        json!({"metadata": {"name": "ok"}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}),
    )
    .unwrap();
    let created = pods.create(&PostParams::default(), &good).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.containers[0].image_pull_policy.as_deref(), Some("IfNotPresent"));
    let status = created.status.unwrap();
    assert_eq!((status.phase.as_deref(), status.qos_class.as_deref()), (Some("Pending"), Some("BestEffort")));
    // Unscheduled pods go at once; the list no longer has it.
    pods.delete("ok", &DeleteParams::default()).await.unwrap();
    assert!(pods.get_opt("ok").await.unwrap().is_none());
    let bad: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})).unwrap();
    match pods.create(&PostParams::default(), &bad).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422);
            assert!(e.message.contains("spec.containers[0].image"), "{}", e.message);
        }
        other => panic!("expected 422, got {other:?}"),
    }
}

#[tokio::test]
async fn restart_keeps_every_object() {
    let mut ts = TestServer::start().await;
    let client = ts.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut before = BTreeMap::new();
    for i in 0..30 {
        let c = cms.create(&PostParams::default(), &cm(&format!("r{i}"), &[])).await.unwrap();
        before.insert(c.metadata.name.unwrap(), c.metadata.resource_version.unwrap());
    }
    ts.restart().await;
    let client = ts.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let after: BTreeMap<_, _> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.metadata.name.as_deref().is_some_and(|n| n.starts_with('r')))
        .map(|c| (c.metadata.name.unwrap(), c.metadata.resource_version.unwrap()))
        .collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn events_are_two_views_of_one_store() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let new_api: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let ev: NewEvent = serde_json::from_value(json!({
        "metadata": {"name": "e1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "skiff.test/c", "reportingInstance": "i1", "action": "Test",
        "reason": "Tested", "type": "Normal", "note": "hello",
        "regarding": {"kind": "Pod", "name": "p", "namespace": "default", "apiVersion": "v1"}
    }))
    .unwrap();
    new_api.create(&PostParams::default(), &ev).await.unwrap();
    let core_api: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let core = core_api.get("e1").await.unwrap();
    assert_eq!(core.message.as_deref(), Some("hello"));
    assert_eq!(core.involved_object.name.as_deref(), Some("p"));
    let selected = core_api.list(&ListParams::default().fields("involvedObject.name=p,reason=Tested")).await.unwrap();
    assert_eq!(selected.items.len(), 1);
    let back = new_api.get("e1").await.unwrap();
    assert_eq!(back.note.as_deref(), Some("hello"));
    assert_eq!(back.regarding.and_then(|r| r.name).as_deref(), Some("p"));
}

#[tokio::test]
async fn system_namespaces_cannot_be_deleted_and_bad_methods_are_refused() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    match nss.delete("default", &DeleteParams::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let req = http::Request::builder()
        .method("OPTIONS")
        .uri("/api/v1/namespaces/default/configmaps")
        .body(Vec::new())
        .unwrap();
    match client.request_text(req).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 405),
        other => panic!("expected 405, got {other:?}"),
    }
}

#[tokio::test]
async fn strict_decoding_reports_duplicate_fields() {
    let ts = TestServer::start().await;
    let client = ts.client().await;
    let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup","name":"dup"},"data":{"a":"1"}}"#;
    let post = |query: &str| {
        http::Request::post(format!("/api/v1/namespaces/default/configmaps{query}"))
            .header("Content-Type", "application/json")
            .body(body.to_vec())
            .unwrap()
    };
    match client.request_text(post("?fieldValidation=Strict")).await {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 400);
            assert!(e.message.contains("duplicate field \"metadata.name\""), "{}", e.message);
        }
        other => panic!("expected 400, got {other:?}"),
    }
    // The default (Warn) accepts the object.
    client.request_text(post("")).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    assert!(cms.get_opt("dup").await.unwrap().is_some());
}
