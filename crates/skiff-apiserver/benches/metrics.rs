//! The resource metrics scraper's in-process cost per round: `cargo bench -p skiff-apiserver
//! --bench metrics`.
//!
//! For 100, 1,000 and 10,000 pods of one container on one node, renders the `/metrics/resource`
//! document an agent would send, then times what the API server does with one scrape of it:
//! decoding the Prometheus text, storing the points (moving the last ones to "previous"), and
//! computing every pod's usage as a PodMetrics list would. The network round trip and the agent's
//! cgroup reads are not included. Prints milliseconds per round as JSON lines.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use skiff_apiserver::metrics::decode;
use skiff_apiserver::metrics::storage::Storage;

fn document(pods: usize, round: u64) -> String {
    let ts = 1_700_000_000_000 + round * 15_000;
    let mut out = String::new();
    writeln!(out, "# TYPE container_cpu_usage_seconds_total counter").unwrap();
    for i in 0..pods {
        let cpu = (round + 1) as f64 * 1.5 + i as f64 * 1e-3;
        writeln!(
            out,
            "container_cpu_usage_seconds_total{{container=\"main\",namespace=\"ns{}\",pod=\"pod-{i}\"}} {cpu} {ts}",
            i % 50
        )
        .unwrap();
    }
    writeln!(out, "# TYPE container_memory_working_set_bytes gauge").unwrap();
    for i in 0..pods {
        writeln!(
            out,
            "container_memory_working_set_bytes{{container=\"main\",namespace=\"ns{}\",pod=\"pod-{i}\"}} {} {ts}",
            i % 50,
            1_048_576 + i
        )
        .unwrap();
    }
    writeln!(out, "node_cpu_usage_seconds_total {} {ts}", 100.0 + round as f64 * 15.0).unwrap();
    writeln!(out, "node_memory_working_set_bytes 1073741824 {ts}").unwrap();
    out
}

fn main() {
    for pods in [100usize, 1_000, 10_000] {
        let mut storage = Storage::default();
        let resolution = Duration::from_secs(15);
        let rounds = if pods >= 10_000 { 10 } else { 50 };
        let docs: Vec<String> = (0..=rounds).map(|r| document(pods, r)).collect();
        storage.store(decode::decode(&docs[0], "n1", 0), resolution);
        let (mut decode_t, mut store_t, mut usage_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for doc in &docs[1..] {
            let t = Instant::now();
            let batch = decode::decode(doc, "n1", 0);
            decode_t += t.elapsed();
            let keys: Vec<(String, String)> = batch.pods.keys().cloned().collect();
            let t = Instant::now();
            storage.store(batch, resolution);
            store_t += t.elapsed();
            let t = Instant::now();
            let served = keys.iter().filter(|k| storage.pod(k).is_some()).count();
            usage_t += t.elapsed();
            assert_eq!(served, pods);
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / rounds as f64;
        println!(
            "{{\"pods\": {pods}, \"document_bytes\": {}, \"decode_ms\": {:.3}, \"store_ms\": {:.3}, \"usage_all_pods_ms\": {:.3}}}",
            docs[1].len(),
            ms(decode_t),
            ms(store_t),
            ms(usage_t)
        );
    }
}
