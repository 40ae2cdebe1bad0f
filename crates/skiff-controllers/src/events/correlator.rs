//! client-go's event correlator, minus the counting of repeats (which [`super::Events`] does):
//! the aggregation of similar events and the per-object spam filter. Pure bookkeeping, no I/O.
//!
//! - **Aggregation**: events about one object with the same type and reason but different
//!   messages are *similar*. Within ten minutes, the first nine distinct messages are recorded
//!   as they are; from the tenth on they are recorded as one event, `(combined from similar
//!   events): <latest message>`, whose count grows.
//! - **Spam filter**: each object gets a token bucket of 25 events, refilled at one event per
//!   five minutes; an event finding the bucket empty is dropped. So a 1,000-replica ReplicaSet
//!   records 25 `SuccessfulCreate` events, not 1,000, as upstream's controllers do.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Distinct messages of similar events recorded as they are before they are combined (upstream's
/// `defaultAggregateMaxEvents`, counted as upstream does: the tenth is combined).
const AGGREGATE_MAX_EVENTS: usize = 10;
/// How long similar messages are remembered (upstream's `defaultAggregateIntervalInSeconds`).
const AGGREGATE_INTERVAL: Duration = Duration::from_secs(600);
/// Events an object may get in a burst (upstream's `defaultSpamBurst`).
const SPAM_BURST: f64 = 25.0;
/// Seconds to earn one more event (upstream's `defaultSpamQPS` is 1/300).
const SPAM_REFILL_SECS: f64 = 300.0;
/// Entries kept before old ones are pruned (upstream's LRU size).
const MAX_ENTRIES: usize = 4096;

/// The message prefix of a combined event.
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// The object an event is about: kind, namespace, name, uid, apiVersion.
pub type Object = (String, String, String, String, String);

/// What to record for an event that passed the correlator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlated {
    /// The message to record.
    pub message: String,
    /// Whether it is the combined event of similar ones (counted as one event).
    pub combined: bool,
}

#[derive(Debug)]
struct Similar {
    messages: HashSet<String>,
    last: Instant,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The correlator's memory, one per recorder.
#[derive(Debug, Default)]
pub struct Correlator {
    similar: HashMap<(Object, String, String), Similar>,
    spam: HashMap<Object, Bucket>,
}

impl Correlator {
    /// Decides what becomes of an event of `type_` and `reason` with `message` about `object`
    /// at `now`: `None` when the spam filter drops it.
    pub fn correlate(
        &mut self,
        object: &Object,
        type_: &str,
        reason: &str,
        message: &str,
        now: Instant,
    ) -> Option<Correlated> {
        self.prune(now);
        let correlated = self.aggregate(object, type_, reason, message, now);
        self.admit(object, now).then_some(correlated)
    }

    fn aggregate(&mut self, object: &Object, type_: &str, reason: &str, message: &str, now: Instant) -> Correlated {
        let key = (object.clone(), type_.to_string(), reason.to_string());
        let similar = self.similar.entry(key).or_insert_with(|| Similar { messages: HashSet::new(), last: now });
        if now.duration_since(similar.last) > AGGREGATE_INTERVAL {
            similar.messages.clear();
        }
        similar.last = now;
        similar.messages.insert(message.to_string());
        if similar.messages.len() < AGGREGATE_MAX_EVENTS {
            return Correlated { message: message.to_string(), combined: false };
        }
        // Keep the set from growing past the limit (upstream pops any one).
        if let Some(any) = similar.messages.iter().next().cloned() {
            similar.messages.remove(&any);
        }
        Correlated { message: format!("{COMBINED_PREFIX}{message}"), combined: true }
    }

    /// Takes a token from `object`'s bucket, if it has one.
    fn admit(&mut self, object: &Object, now: Instant) -> bool {
        let bucket = self.spam.entry(object.clone()).or_insert(Bucket { tokens: SPAM_BURST, last: now });
        let earned = now.duration_since(bucket.last).as_secs_f64() / SPAM_REFILL_SECS;
        bucket.tokens = (bucket.tokens + earned).min(SPAM_BURST);
        bucket.last = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }

    /// Forgets what no longer matters once the maps are large: similar messages older than the
    /// interval, buckets that have refilled completely.
    fn prune(&mut self, now: Instant) {
        if self.similar.len() > MAX_ENTRIES {
            self.similar.retain(|_, s| now.duration_since(s.last) <= AGGREGATE_INTERVAL);
        }
        if self.spam.len() > MAX_ENTRIES {
            let full = Duration::from_secs_f64(SPAM_BURST * SPAM_REFILL_SECS);
            self.spam.retain(|_, b| now.duration_since(b.last) < full);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str) -> Object {
        ("ReplicaSet".into(), "ns".into(), name.into(), format!("uid-{name}"), "apps/v1".into())
    }

    #[test]
    fn the_tenth_similar_message_is_combined() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let rs = object("web");
        for i in 0..9 {
            let got = c.correlate(&rs, "Normal", "SuccessfulCreate", &format!("Created pod: p{i}"), now);
            assert_eq!(got, Some(Correlated { message: format!("Created pod: p{i}"), combined: false }));
        }
        let got = c.correlate(&rs, "Normal", "SuccessfulCreate", "Created pod: p9", now);
        assert_eq!(
            got,
            Some(Correlated { message: "(combined from similar events): Created pod: p9".into(), combined: true })
        );
        // Another reason, or another object, is not similar.
        let other = c.correlate(&rs, "Normal", "SuccessfulDelete", "Deleted pod: p0", now);
        assert_eq!(other.map(|c| c.combined), Some(false));
        let sibling = c.correlate(&object("api"), "Normal", "SuccessfulCreate", "Created pod: q", now);
        assert_eq!(sibling.map(|c| c.combined), Some(false));
        // Ten minutes later the messages are forgotten.
        let later = now + AGGREGATE_INTERVAL + Duration::from_secs(1);
        let got = c.correlate(&rs, "Normal", "SuccessfulCreate", "Created pod: p10", later);
        assert_eq!(got.map(|c| c.combined), Some(false));
    }

    #[test]
    fn an_object_gets_25_events_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        let now = Instant::now();
        let rs = object("web");
        let recorded = (0..1000)
            .filter(|i| c.correlate(&rs, "Normal", "SuccessfulCreate", &format!("Created pod: p{i}"), now).is_some())
            .count();
        assert_eq!(recorded, 25);
        // Repeats of one message count against the same bucket.
        assert!(c.correlate(&rs, "Warning", "FailedCreate", "quota", now).is_none());
        // Other objects have their own bucket.
        assert!(c.correlate(&object("api"), "Normal", "SuccessfulCreate", "Created pod: q", now).is_some());
        let soon = now + Duration::from_secs(299);
        assert!(c.correlate(&rs, "Normal", "ScalingReplicaSet", "x", soon).is_none());
        let later = now + Duration::from_secs(301);
        assert!(c.correlate(&rs, "Normal", "ScalingReplicaSet", "x", later).is_some());
        assert!(c.correlate(&rs, "Normal", "ScalingReplicaSet", "x", later).is_none());
    }
}
