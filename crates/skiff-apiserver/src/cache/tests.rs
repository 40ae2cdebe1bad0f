//! Watch cache tests against a real redb store in a temp dir.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use skiff_store::{RedbConfig, RedbStore, Store, StoreExt};

use super::*;

fn cm(name: &str, label: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"default","labels":{{"app":"{label}"}}}}}}"#
    ))
}

async fn setup() -> (tempfile::TempDir, Arc<dyn Store>, Arc<WatchCaches>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(RedbConfig::new(dir.path().join("db"))).expect("open"));
    store.create("/registry/core/configmaps/default/before", cm("before", "a")).await.expect("create");
    let caches = WatchCaches::start(store.clone(), vec![("/registry/core/configmaps/".into(), vec![])])
        .await
        .expect("start caches");
    (dir, store, caches)
}

#[tokio::test]
async fn snapshot_reflects_writes_after_sync() {
    let (_dir, store, caches) = setup().await;
    let cache = caches.cache("/registry/core/configmaps/").expect("cache");
    assert_eq!(cache.snapshot().objects.len(), 1);
    let ev = store.create("/registry/core/configmaps/default/x", cm("x", "b")).await.expect("create");
    caches.sync_to_store().await.expect("sync");
    let snap = cache.snapshot();
    assert_eq!(snap.objects.len(), 2);
    assert!(snap.revision >= ev.kv.mod_revision);
    let entry = cache.get("/registry/core/configmaps/default/x").expect("entry");
    assert_eq!(entry.labels.get("app").map(String::as_str), Some("b"));
    let v = entry.value();
    assert_eq!(v["metadata"]["resourceVersion"], ev.kv.mod_revision.to_string());
}

#[tokio::test]
async fn subscription_sees_events_after_revision_in_order() {
    let (_dir, store, caches) = setup().await;
    let cache = caches.cache("/registry/core/configmaps/").expect("cache");
    let start = cache.snapshot().revision;
    let a = store.create("/registry/core/configmaps/default/a", cm("a", "x")).await.expect("a");
    let b = store.update("/registry/core/configmaps/default/a", cm("a", "y"), None).await.expect("b");
    caches.sync_to_store().await.expect("sync");
    let sub = cache.subscribe_after(start).expect("subscribe");
    let revs: Vec<_> = sub.backlog.iter().map(|e| e.revision()).collect();
    assert_eq!(revs, vec![a.kv.mod_revision, b.kv.mod_revision]);
    let mut rx = sub.receiver;
    let c = store.delete("/registry/core/configmaps/default/a", None).await.expect("delete");
    let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("in time").expect("message");
    match msg {
        Message::Event(e) => {
            assert_eq!(e.kind, EventKind::Delete);
            assert_eq!(e.revision(), c.kv.mod_revision);
            assert_eq!(e.previous.as_ref().map(|p| p.revision), Some(b.kv.mod_revision));
        }
        Message::Reset => panic!("unexpected reset"),
    }
}

#[test]
fn cache_prefix_takes_three_segments() {
    assert_eq!(cache_prefix("/registry/core/pods/ns/name"), Some("/registry/core/pods/"));
    assert_eq!(cache_prefix("/registry/apps/deployments/x"), Some("/registry/apps/deployments/"));
    assert_eq!(cache_prefix("/registry/core"), None);
}
