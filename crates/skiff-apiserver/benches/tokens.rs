//! ServiceAccount token verification rate: one pod-bound token verified over and over through the
//! full authenticator (signature, time window, audiences, ServiceAccount and pod lookups) on one
//! thread, then on every core. Upstream's threshold is 5,000 verifications per second.
//!
//! `cargo bench -p skiff-apiserver --bench tokens` (add `-- <seconds>` to change the 3 s run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_apiserver::authn::jwt::SigningKey;
use skiff_apiserver::authn::serviceaccount::{ObjectRef, ObjectSource, ServiceAccountTokens, TokenSpec};

struct Objects;

impl ObjectSource for Objects {
    fn core_object(&self, resource: &str, _namespace: Option<&str>, name: &str) -> Option<Value> {
        let uid = format!("{resource}-uid");
        Some(
            json!({"metadata": {"name": name, "namespace": "bench", "uid": uid}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
    }
}

fn rate(tokens: &ServiceAccountTokens, token: &str, run: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < run {
        let now = jiff::Timestamp::now().as_second();
        match tokens.authenticate(token, now) {
            Some(Ok(_)) => n += 1,
            other => panic!("verification failed: {other:?}"),
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let seconds: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3);
    let run = Duration::from_secs(seconds);
    let key = SigningKey::generate().expect("key");
    let tokens = Arc::new(ServiceAccountTokens::new(key, "cluster.local", Arc::new(Objects)));
    let spec = TokenSpec {
        namespace: "bench".into(),
        service_account: ObjectRef { name: "sa".into(), uid: "serviceaccounts-uid".into() },
        audiences: tokens.api_audiences().to_vec(),
        expiration_seconds: 3600,
        pod: Some(ObjectRef { name: "p".into(), uid: "pods-uid".into() }),
        node: Some(ObjectRef { name: "n".into(), uid: "nodes-uid".into() }),
        ..Default::default()
    };
    let now = jiff::Timestamp::now().as_second();
    let (token, _) = tokens.issue(&spec, now).expect("token");
    let single = rate(&tokens, &token, run);
    println!("token verification, 1 thread: {single:.0}/s (upstream threshold 5000/s)");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (tokens, token) = (tokens.clone(), token.clone());
            std::thread::spawn(move || rate(&tokens, &token, run))
        })
        .collect();
    let total: f64 = handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum();
    println!("token verification, {threads} threads: {total:.0}/s");
}
