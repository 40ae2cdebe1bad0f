//! The request counters: per [`RequestLabels`], the responses by status code, the duration
//! histogram, and the long-running requests in progress.
//!
//! Kept in shards, one per thread that records (tokio's workers), each behind its own mutex:
//! recording locks only the calling thread's shard, which no other thread touches except a
//! scrape, so the request path never waits on a lock shared by all requests. A scrape merges
//! the shards. Writing the text is [`super::exposition`]'s job.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::labels::RequestLabels;

/// Upper bounds (seconds) of `apiserver_request_duration_seconds`'s buckets, as upstream.
pub const DURATION_BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0,
    45.0, 60.0,
];

/// Shards: more than the threads that usually record, few enough to merge quickly.
const SHARDS: usize = 16;

/// What is known about the requests of one label set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSeries {
    /// Responses by status code.
    pub codes: BTreeMap<u16, u64>,
    /// Observations per bucket (not cumulative), the last for `+Inf`; all zero for
    /// long-running requests, which are not observed.
    pub buckets: [u64; DURATION_BUCKETS.len() + 1],
    /// Sum of the observed durations in seconds.
    pub sum: f64,
}

impl RequestSeries {
    /// How many durations were observed.
    pub fn observed(&self) -> u64 {
        self.buckets.iter().sum()
    }

    fn merge(&mut self, other: &RequestSeries) {
        for (code, n) in &other.codes {
            *self.codes.entry(*code).or_default() += n;
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
        self.sum += other.sum;
    }
}

#[derive(Debug, Default)]
struct Shard {
    requests: HashMap<RequestLabels, RequestSeries>,
    /// Long-running requests started minus ended through this shard (may be negative: a
    /// request may end on another thread than it started on; the sum over shards is right).
    long_running: HashMap<RequestLabels, i64>,
}

/// Everything recorded, merged.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Finished requests by labels.
    pub requests: BTreeMap<RequestLabels, RequestSeries>,
    /// Long-running requests in progress by labels.
    pub long_running: BTreeMap<RequestLabels, i64>,
}

/// The sharded counters.
#[derive(Debug)]
pub struct Registry {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The shard this thread records into, handed out round-robin.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    fn local(&self) -> MutexGuard<'_, Shard> {
        let i = SHARD.with(|i| *i);
        lock(&self.shards[i % self.shards.len()])
    }

    /// Counts a finished request with status `code`; `duration` is observed in the histogram
    /// when given.
    pub fn record(&self, labels: RequestLabels, code: u16, duration: Option<Duration>) {
        let mut shard = self.local();
        let series = shard.requests.entry(labels).or_default();
        *series.codes.entry(code).or_default() += 1;
        if let Some(d) = duration {
            let seconds = d.as_secs_f64();
            let bucket = DURATION_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(DURATION_BUCKETS.len());
            series.buckets[bucket] += 1;
            series.sum += seconds;
        }
    }

    /// Adds `delta` to the long-running requests in progress with `labels`.
    pub fn long_running(&self, labels: &RequestLabels, delta: i64) {
        let mut shard = self.local();
        match shard.long_running.get_mut(labels) {
            Some(n) => *n += delta,
            None => {
                shard.long_running.insert(labels.clone(), delta);
            }
        }
    }

    /// Everything recorded so far, merged over the shards.
    pub fn snapshot(&self) -> Snapshot {
        let mut out = Snapshot::default();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            for (labels, series) in &shard.requests {
                out.requests.entry(labels.clone()).or_default().merge(series);
            }
            for (labels, n) in &shard.long_running {
                *out.long_running.entry(labels.clone()).or_default() += n;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(verb: &'static str, resource: &str) -> RequestLabels {
        RequestLabels {
            verb,
            dry_run: "",
            group: String::new(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: String::new(),
            scope: "namespace",
        }
    }

    #[test]
    fn counts_codes_and_buckets() {
        let r = Registry::default();
        r.record(labels("LIST", "pods"), 200, Some(Duration::from_millis(3)));
        r.record(labels("LIST", "pods"), 200, Some(Duration::from_millis(30)));
        r.record(labels("LIST", "pods"), 403, Some(Duration::from_secs(100)));
        r.record(labels("WATCH", "pods"), 200, None);
        let s = r.snapshot();
        let list = &s.requests[&labels("LIST", "pods")];
        assert_eq!(list.codes, BTreeMap::from([(200, 2), (403, 1)]));
        assert_eq!((list.buckets[0], list.buckets[2], list.buckets[23]), (1, 1, 1), "{:?}", list.buckets);
        assert_eq!(list.observed(), 3);
        assert!((list.sum - 100.033).abs() < 1e-9);
        let watch = &s.requests[&labels("WATCH", "pods")];
        assert_eq!((watch.codes[&200], watch.observed()), (1, 0));
    }

    #[test]
    fn shards_merge_across_threads() {
        let r = std::sync::Arc::new(Registry::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        r.record(labels("GET", "pods"), 200, Some(Duration::from_micros(100)));
                    }
                    r.long_running(&labels("WATCH", "pods"), 1);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        // Ended on this thread, started on others: the sum is what counts.
        r.long_running(&labels("WATCH", "pods"), -1);
        let s = r.snapshot();
        assert_eq!(s.requests[&labels("GET", "pods")].codes[&200], 4000);
        assert_eq!(s.requests[&labels("GET", "pods")].buckets[0], 4000);
        assert_eq!(s.long_running[&labels("WATCH", "pods")], 3);
    }
}
