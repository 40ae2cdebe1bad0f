//! Unit and property tests of the redb backend against a reference model.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::StoreExt;

fn open(dir: &tempfile::TempDir) -> RedbStore {
    RedbStore::open(RedbConfig::new(dir.path().join("db"))).expect("open")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

#[test]
fn create_update_delete_and_conflicts() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        let e1 = s.create("/r/a", Bytes::from_static(b"1")).await.expect("create");
        assert_eq!((e1.kind, e1.revision(), e1.kv.create_revision), (EventKind::Create, 1, 1));
        assert!(matches!(s.create("/r/a", Bytes::from_static(b"x")).await, Err(StoreError::AlreadyExists { .. })));
        let e2 = s.update("/r/a", Bytes::from_static(b"2"), Some(1)).await.expect("update");
        assert_eq!((e2.revision(), e2.kv.create_revision), (2, 1));
        match s.update("/r/a", Bytes::from_static(b"3"), Some(1)).await {
            Err(StoreError::Conflict { expected: 1, current: 2, .. }) => {}
            other => panic!("expected conflict, got {other:?}"),
        }
        assert!(matches!(s.update("/r/b", Bytes::new(), None).await, Err(StoreError::NotFound { .. })));
        let got = s.get("/r/a").await.expect("get").expect("present");
        assert_eq!((got.value.as_ref(), got.mod_revision), (&b"2"[..], 2));
        let d = s.delete("/r/a", Some(2)).await.expect("delete");
        assert_eq!((d.kind, d.revision(), d.kv.value.as_ref()), (EventKind::Delete, 3, &b"2"[..]));
        assert!(s.get("/r/a").await.expect("get").is_none());
        // Failed writes do not consume revisions.
        assert_eq!(s.current_revision().await.expect("rev"), 3);
        // Recreation starts a new lifetime.
        let e4 = s.create("/r/a", Bytes::from_static(b"4")).await.expect("recreate");
        assert_eq!(e4.kv.create_revision, 4);
        s.close().await;
    });
}

#[test]
fn range_paginates_and_reads_the_past() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        for name in ["a", "b", "c", "d"] {
            s.create(&format!("/r/ns/{name}"), Bytes::from(name)).await.expect("create");
        }
        s.create("/r/nsx/z", Bytes::from_static(b"z")).await.expect("create other prefix");
        let page = s
            .range(RangeRequest { prefix: "/r/ns/".into(), limit: Some(2), ..Default::default() })
            .await
            .expect("range");
        assert_eq!(page.kvs.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["/r/ns/a", "/r/ns/b"]);
        assert!(page.more);
        let at = page.revision;
        s.delete("/r/ns/c", None).await.expect("delete");
        s.update("/r/ns/d", Bytes::from_static(b"D"), None).await.expect("update");
        let next = s
            .range(RangeRequest {
                prefix: "/r/ns/".into(),
                start_after: Some("/r/ns/b".into()),
                revision: Some(at),
                limit: Some(2),
            })
            .await
            .expect("page 2");
        assert_eq!(next.kvs.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["/r/ns/c", "/r/ns/d"]);
        assert_eq!(next.kvs[1].value.as_ref(), b"d");
        assert!(!next.more);
        let now = s.range(RangeRequest { prefix: "/r/ns/".into(), ..Default::default() }).await.expect("now");
        assert_eq!(now.kvs.len(), 3);
        assert!(matches!(
            s.range(RangeRequest { prefix: "/r/".into(), revision: Some(999), ..Default::default() }).await,
            Err(StoreError::FutureRevision { .. })
        ));
        s.close().await;
    });
}

#[test]
fn compaction_keeps_latest_and_expires_old_reads_and_watches() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = open(&dir);
        s.create("/r/a", Bytes::from_static(b"1")).await.expect("create");
        s.update("/r/a", Bytes::from_static(b"2"), None).await.expect("update");
        s.create("/r/b", Bytes::from_static(b"b")).await.expect("create b");
        s.delete("/r/b", None).await.expect("delete b");
        s.create("/r/c", Bytes::from_static(b"c")).await.expect("create c");
        s.compact(4).await.expect("compact");
        assert_eq!(s.compacted_revision().await.expect("compacted"), 4);
        let all = s.range(RangeRequest { prefix: "/r/".into(), ..Default::default() }).await.expect("range");
        assert_eq!(all.kvs.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(), ["/r/a", "/r/c"]);
        assert_eq!(all.kvs[0].value.as_ref(), b"2");
        assert!(matches!(
            s.range(RangeRequest { prefix: "/r/".into(), revision: Some(2), ..Default::default() }).await,
            Err(StoreError::Compacted { .. })
        ));
        assert!(matches!(s.watch("/r/", 1).await, Err(StoreError::Compacted { .. })));
        let mut w = s.watch("/r/", 4).await.expect("watch at compaction point");
        let batch = w.next().await.expect("open").expect("events");
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].kv.key, "/r/c");
        s.close().await;
    });
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    rt().block_on(async {
        let s = open(&dir);
        for i in 0..50 {
            s.create(&format!("/r/{i:03}"), Bytes::from(format!("v{i}"))).await.expect("create");
        }
        s.close().await;
    });
    rt().block_on(async {
        let s = open(&dir);
        assert_eq!(s.current_revision().await.expect("rev"), 50);
        let all = s.range(RangeRequest { prefix: "/r/".into(), ..Default::default() }).await.expect("range");
        assert_eq!(all.kvs.len(), 50);
        let e = s.create("/r/new", Bytes::new()).await.expect("create after reopen");
        assert_eq!(e.revision(), 51);
        s.close().await;
    });
}

#[test]
fn concurrent_writers_share_commits_and_get_distinct_revisions() {
    rt().block_on(async {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = std::sync::Arc::new(open(&dir));
        let mut tasks = Vec::new();
        for w in 0..16 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in 0..20 {
                    revs.push(s.create(&format!("/r/{w}/{i}"), Bytes::new()).await.expect("create").revision());
                }
                revs
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            let revs = t.await.expect("task");
            assert!(revs.windows(2).all(|w| w[0] < w[1]), "one writer's revisions increase");
            all.extend(revs);
        }
        all.sort_unstable();
        assert_eq!(all, (1..=320).collect::<Vec<_>>());
        s.close().await;
    });
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Update(u8, bool),
    Delete(u8, bool),
    Compact,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6).prop_map(Op::Create),
        (0u8..6, any::<bool>()).prop_map(|(k, c)| Op::Update(k, c)),
        (0u8..6, any::<bool>()).prop_map(|(k, c)| Op::Delete(k, c)),
        Just(Op::Compact),
    ]
}

/// Reference model: the full history of every key.
#[derive(Default)]
struct Model {
    rev: u64,
    /// key → list of (revision, value or None for deletion, create revision)
    versions: BTreeMap<String, Vec<(u64, Option<String>, u64)>>,
    events: Vec<(u64, EventKind, String)>,
}

impl Model {
    fn live(&self, key: &str, at: u64) -> Option<(u64, String, u64)> {
        let v = self.versions.get(key)?.iter().rev().find(|(r, _, _)| *r <= at)?;
        v.1.clone().map(|val| (v.0, val, v.2))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn behaves_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        rt().block_on(async {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = open(&dir);
            let mut watch = s.watch("/k/", 0).await.expect("watch");
            let mut m = Model::default();
            let mut compacted = 0;
            for (i, op) in ops.iter().enumerate() {
                let value = format!("v{i}");
                match op {
                    Op::Create(k) => {
                        let key = format!("/k/{k}");
                        let r = s.create(&key, Bytes::from(value.clone())).await;
                        if m.live(&key, m.rev).is_some() {
                            prop_assert!(matches!(r, Err(StoreError::AlreadyExists { .. })), "expected AlreadyExists");
                        } else {
                            let e = r.expect("create succeeds");
                            m.rev += 1;
                            prop_assert_eq!(e.revision(), m.rev);
                            m.versions.entry(key.clone()).or_default().push((m.rev, Some(value), m.rev));
                            m.events.push((m.rev, EventKind::Create, key));
                        }
                    }
                    Op::Update(k, cas) | Op::Delete(k, cas) => {
                        let key = format!("/k/{k}");
                        let current = m.live(&key, m.rev);
                        // With `cas`, expect a revision that is stale half of the time.
                        let expected = if *cas { Some(current.as_ref().map(|c| c.0).unwrap_or(1) + (i as u64 % 2)) } else { None };
                        let is_delete = matches!(op, Op::Delete(..));
                        let r = if is_delete {
                            s.delete(&key, expected).await
                        } else {
                            s.update(&key, Bytes::from(value.clone()), expected).await
                        };
                        match current {
                            None => { prop_assert!(matches!(r, Err(StoreError::NotFound { .. })), "expected NotFound"); }
                            Some((mod_rev, _, create)) if expected.is_none_or(|e| e == mod_rev) => {
                                let e = r.expect("write succeeds");
                                m.rev += 1;
                                prop_assert_eq!(e.revision(), m.rev);
                                prop_assert_eq!(e.kv.create_revision, create);
                                let stored = if is_delete { None } else { Some(value) };
                                m.versions.entry(key.clone()).or_default().push((m.rev, stored, create));
                                m.events.push((m.rev, if is_delete { EventKind::Delete } else { EventKind::Update }, key));
                            }
                            Some(_) => { prop_assert!(matches!(r, Err(StoreError::Conflict { .. })), "expected Conflict"); }
                        }
                    }
                    Op::Compact => {
                        let target = m.rev / 2;
                        s.compact(target).await.expect("compact");
                        compacted = compacted.max(target);
                    }
                }
            }
            // Reads at every retained revision match the model.
            for at in compacted..=m.rev {
                let got = s.range(RangeRequest { prefix: "/k/".into(), revision: Some(at), ..Default::default() }).await.expect("range");
                let want: Vec<(String, String)> = m.versions.keys().filter_map(|k| m.live(k, at).map(|(_, v, _)| (k.clone(), v))).collect();
                let have: Vec<(String, String)> = got.kvs.iter().map(|kv| (kv.key.clone(), String::from_utf8_lossy(&kv.value).into_owned())).collect();
                prop_assert_eq!(have, want, "range at {}", at);
            }
            // The watch saw exactly the committed events, in order.
            let mut seen = Vec::new();
            while seen.len() < m.events.len() {
                let batch = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next()).await
                    .expect("watch delivers").expect("open").expect("events");
                seen.extend(batch.into_iter().map(|e| (e.revision(), e.kind, e.kv.key)));
            }
            prop_assert_eq!(&seen, &m.events);
            // A watch from any retained revision replays exactly what followed it.
            if m.rev > compacted {
                let from = compacted + (m.rev - compacted) / 2;
                let mut w = s.watch("/k/", from).await.expect("watch from revision");
                let want: Vec<_> = m.events.iter().filter(|e| e.0 > from).cloned().collect();
                let mut got = Vec::new();
                while got.len() < want.len() {
                    let batch = tokio::time::timeout(std::time::Duration::from_secs(5), w.next()).await
                        .expect("replay delivers").expect("open").expect("events");
                    got.extend(batch.into_iter().map(|e| (e.revision(), e.kind, e.kv.key)));
                }
                prop_assert_eq!(got, want);
            }
            s.close().await;
            Ok(())
        })?;
    }
}
