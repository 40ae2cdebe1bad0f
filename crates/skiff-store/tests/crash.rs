//! No acknowledged write is lost across `kill -9` and restart.
//!
//! The test re-executes its own binary as a child that writes keys from many tasks and prints
//! each key once its write is acknowledged. The parent SIGKILLs the child mid-stream, reopens
//! the database, and checks that every acknowledged key is present with its value.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use skiff_store::{RangeRequest, RedbConfig, RedbStore, Store, StoreExt};

const CHILD_ENV: &str = "SKIFF_STORE_CRASH_CHILD_DB";

/// Runs only as the child: writes until killed.
#[test]
fn crash_child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let store = std::sync::Arc::new(RedbStore::open(RedbConfig::new(path)).expect("open"));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for w in 0..8 {
            let (store, tx) = (store.clone(), tx.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("/crash/{w}/{i:08}");
                    if store.create(&key, Bytes::from(key.clone())).await.is_ok() && tx.send(key).is_err() {
                        return;
                    }
                }
            });
        }
        let mut out = std::io::stdout();
        while let Some(key) = rx.recv().await {
            let _ = writeln!(out, "ack {key}");
            let _ = out.flush();
        }
    });
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let exe = std::env::current_exe().expect("test binary");
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("child.err")).expect("stderr file")))
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        let mut acked = Vec::new();
        let mut other = Vec::new();
        // The window starts at the first acknowledgement, so a slow reopen (redb repairs the
        // file after a crash) does not eat into it. The harness may print its "test ... " prefix
        // on the same line as the first ack.
        let mut start: Option<Instant> = None;
        let mut lines = BufReader::new(stdout).lines();
        while start.is_none_or(|s| s.elapsed() < Duration::from_millis(700 + 300 * round)) {
            match lines.next() {
                Some(Ok(line)) => match line.find("ack ") {
                    Some(at) => {
                        acked.push(line[at + 4..].to_string());
                        start.get_or_insert_with(Instant::now);
                    }
                    None => other.push(line),
                },
                _ => break,
            }
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let child_err = std::fs::read_to_string(dir.path().join("child.err")).unwrap_or_default();
        assert!(
            !acked.is_empty(),
            "child acknowledged no writes in round {round}; its output:\n{other:?}\nits stderr:\n{child_err}"
        );

        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let store = RedbStore::open(RedbConfig::new(&db)).expect("reopen after kill -9");
            let all =
                store.range(RangeRequest { prefix: "/crash/".into(), ..Default::default() }).await.expect("range");
            let present: std::collections::HashSet<&str> = all.kvs.iter().map(|kv| kv.key.as_str()).collect();
            for k in &acked {
                assert!(present.contains(k.as_str()), "acknowledged key {k} lost in round {round}");
            }
            for kv in &all.kvs {
                assert_eq!(kv.value.as_ref(), kv.key.as_bytes(), "value intact");
            }
            store.close().await;
        });
    }
}
