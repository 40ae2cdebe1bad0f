//! Byte layouts of the redb tables.
//!
//! - `history`: `key ++ 0x00 ++ revision(be u64)` → `create_revision(be u64) ++ flags(u8) ++ value`;
//!   one entry per write of a key, `flags & 1` marking a deletion (tombstone). Keys never contain
//!   0x00, so all versions of a key are contiguous and ordered by revision.
//! - `log`: `revision` → `kind(u8) ++ unix_millis(be u64) ++ key`; one entry per revision, used
//!   for watch replay and age-based compaction.

use crate::{EventKind, Revision, StoreError};

const TOMBSTONE: u8 = 1;

/// Builds the history key of `key` at `rev`.
pub(crate) fn history_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 9);
    k.extend_from_slice(key);
    k.push(0);
    k.extend_from_slice(&rev.to_be_bytes());
    k
}

/// Splits a history key into the object key and the revision.
pub(crate) fn split_history_key(k: &[u8]) -> Result<(&[u8], Revision), StoreError> {
    if k.len() < 9 || k[k.len() - 9] != 0 {
        return Err(corrupt("history key", "missing revision suffix"));
    }
    let (key, rest) = k.split_at(k.len() - 9);
    let mut rev = [0u8; 8];
    rev.copy_from_slice(&rest[1..]);
    Ok((key, Revision::from_be_bytes(rev)))
}

/// A decoded history record.
pub(crate) struct HistoryRecord<'a> {
    pub create_revision: Revision,
    pub tombstone: bool,
    pub value: &'a [u8],
}

pub(crate) fn encode_history(create_revision: Revision, tombstone: bool, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 9);
    v.extend_from_slice(&create_revision.to_be_bytes());
    v.push(if tombstone { TOMBSTONE } else { 0 });
    v.extend_from_slice(value);
    v
}

pub(crate) fn decode_history(v: &[u8]) -> Result<HistoryRecord<'_>, StoreError> {
    if v.len() < 9 {
        return Err(corrupt("history record", "too short"));
    }
    let mut create = [0u8; 8];
    create.copy_from_slice(&v[..8]);
    Ok(HistoryRecord {
        create_revision: Revision::from_be_bytes(create),
        tombstone: v[8] & TOMBSTONE != 0,
        value: &v[9..],
    })
}

/// A decoded log record.
pub(crate) struct LogRecord<'a> {
    pub kind: EventKind,
    pub unix_millis: u64,
    pub key: &'a [u8],
}

pub(crate) fn encode_log(kind: EventKind, unix_millis: u64, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 9);
    v.push(match kind {
        EventKind::Create => 0,
        EventKind::Update => 1,
        EventKind::Delete => 2,
    });
    v.extend_from_slice(&unix_millis.to_be_bytes());
    v.extend_from_slice(key);
    v
}

pub(crate) fn decode_log(v: &[u8]) -> Result<LogRecord<'_>, StoreError> {
    if v.len() < 9 {
        return Err(corrupt("log record", "too short"));
    }
    let kind = match v[0] {
        0 => EventKind::Create,
        1 => EventKind::Update,
        2 => EventKind::Delete,
        other => return Err(corrupt("log record", &format!("unknown kind {other}"))),
    };
    let mut ts = [0u8; 8];
    ts.copy_from_slice(&v[1..9]);
    Ok(LogRecord { kind, unix_millis: u64::from_be_bytes(ts), key: &v[9..] })
}

fn corrupt(what: &str, detail: &str) -> StoreError {
    StoreError::Corrupt { what: what.to_string(), detail: detail.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keys_sort_by_key_then_revision() {
        let a1 = history_key(b"/a", 1);
        let a2 = history_key(b"/a", 2);
        let ab = history_key(b"/ab", 0);
        assert!(a1 < a2 && a2 < ab);
        let (k, r) = split_history_key(&a2).expect("valid");
        assert_eq!((k, r), (&b"/a"[..], 2));
    }

    #[test]
    fn records_round_trip() {
        let h = encode_history(7, true, b"{}");
        let d = decode_history(&h).expect("valid");
        assert_eq!((d.create_revision, d.tombstone, d.value), (7, true, &b"{}"[..]));
        let l = encode_log(EventKind::Delete, 42, b"/k");
        let d = decode_log(&l).expect("valid");
        assert_eq!((d.kind, d.unix_millis, d.key), (EventKind::Delete, 42, &b"/k"[..]));
        assert!(decode_log(b"x").is_err());
        assert!(decode_history(b"").is_err());
    }
}
