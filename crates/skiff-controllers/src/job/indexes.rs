//! Completion-index bookkeeping of Indexed Jobs: the `completedIndexes`/`failedIndexes` interval
//! strings (`"1,3-5,7"`) as upstream formats and parses them, and which indexes still need a pod.
//!
//! What does not live here: creating the pods (the Job controller).

use std::collections::BTreeSet;

/// Parses an interval list such as `"1,3-5"`, ignoring indexes at or above `completions` and
/// malformed parts (as upstream does when reading a status it did not write).
pub fn parse(s: Option<&str>, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(a), Ok(b)) = (a, b) {
            out.extend((a.max(0)..=b.min(completions - 1)).filter(|_| a <= b));
        }
    }
    out
}

/// Formats indexes as upstream's interval list: runs of three or more as `a-b`, shorter runs
/// comma separated; `None` when empty.
pub fn format(set: &BTreeSet<i32>) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        match last - first {
            0 => parts.push(first.to_string()),
            1 => {
                parts.push(first.to_string());
                parts.push(last.to_string());
            }
            _ => parts.push(format!("{first}-{last}")),
        }
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The indexes below `completions` that are neither done (completed or failed) nor running,
/// lowest first, at most `n`.
pub fn missing(completions: i32, done: &BTreeSet<i32>, running: &BTreeSet<i32>, n: usize) -> Vec<i32> {
    (0..completions).filter(|i| !done.contains(i) && !running.contains(i)).take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_interval_lists() {
        let set: BTreeSet<i32> = [0, 1, 3, 4, 5, 7, 9, 10].into();
        assert_eq!(format(&set).as_deref(), Some("0,1,3-5,7,9,10"));
        assert_eq!(parse(Some("0,1,3-5,7,9,10"), 20), set);
        assert_eq!(format(&BTreeSet::new()), None);
        assert_eq!(parse(Some("1-3,x,8"), 3), [1, 2].into());
        assert_eq!(parse(None, 3), BTreeSet::new());
    }

    #[test]
    fn missing_skips_done_and_running() {
        let done: BTreeSet<i32> = [0, 2].into();
        let running: BTreeSet<i32> = [1].into();
        assert_eq!(missing(6, &done, &running, 2), vec![3, 4]);
        assert_eq!(missing(3, &done, &running, 5), Vec::<i32>::new());
    }
}
