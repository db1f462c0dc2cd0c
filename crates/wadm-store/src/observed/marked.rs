//! How an entity's record carries the reducer's mark ([`Mark`]: the stamp of the newest event
//! applied to it and when it was applied), so that a replica reading state back orders events and
//! merges discovery rounds exactly as the replica that wrote it.
//!
//! - A present entity: its own fields plus `"mark": {...}` when it has one. Records written before
//!   marks were stored have no `mark` and read back without one.
//! - An entity that is gone but whose removal mark still counts (a late event or an older
//!   discovery answer must not bring it back): `{"removed": {...}}` under the entity's key. The
//!   key is deleted once the reducer drops the mark (retention, a newer snapshot, host removal).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wadm_lattice::bookkeeping::Mark;

/// A stored entity record, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored<T> {
    /// The entity exists, with the mark of the newest event applied to it, if any.
    Present(T, Option<Mark>),
    /// The entity is gone; the mark of the event that removed it is kept.
    Removed(Mark),
}

#[derive(Serialize)]
struct PresentRef<'a, T> {
    #[serde(flatten)]
    value: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    mark: Option<&'a Mark>,
}

/// The mark of a present record; its other fields are skipped.
#[derive(Deserialize)]
struct MarkOnly {
    #[serde(default)]
    mark: Option<Mark>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Removal {
    removed: Mark,
}

fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("observed-state records always serialise")
}

/// The record of an entity (`value`: `None` when it is gone) with its `mark`; `None` when there
/// is nothing to keep (gone and unmarked: the key is deleted).
pub fn encode<T: Serialize>(value: Option<&T>, mark: Option<&Mark>) -> Option<Vec<u8>> {
    match (value, mark) {
        (Some(value), mark) => Some(json(&PresentRef { value, mark })),
        (None, Some(mark)) => Some(json(&Removal { removed: mark.clone() })),
        (None, None) => None,
    }
}

/// Decode a record written by [`encode`] (or before marks were stored). The entity's own fields
/// are decoded directly (entity types ignore the extra `mark` field), and the mark from the
/// record's tail, where [`encode`] puts it; anything else falls back to a full decode. (A
/// flattened decoder buffers every record first: about twice the cost of a plain one.)
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Stored<T>, serde_json::Error> {
    if bytes.starts_with(REMOVED_HEAD)
        && let Ok(Removal { removed }) = serde_json::from_slice::<Removal>(bytes)
    {
        return Ok(Stored::Removed(removed));
    }
    match serde_json::from_slice::<T>(bytes) {
        Ok(value) => Ok(Stored::Present(value, mark_of(bytes)?)),
        Err(e) => match serde_json::from_slice::<Removal>(bytes) {
            Ok(Removal { removed }) => Ok(Stored::Removed(removed)),
            Err(_) => Err(e),
        },
    }
}

/// How [`encode`] starts a removal record.
const REMOVED_HEAD: &[u8] = b"{\"removed\":";
/// How [`encode`] names the mark, after every field of the entity. Entity fields hold strings,
/// string maps and lists and numbers, so this text (a key followed by an object) appears nowhere
/// else unescaped.
const MARK_TAIL: &[u8] = b",\"mark\":{";

/// The record's top-level `mark`, if any: read from the tail when the record names `"mark"`
/// last, as [`encode`] writes it, else (a hand-written record) by a full decode.
fn mark_of(bytes: &[u8]) -> Result<Option<Mark>, serde_json::Error> {
    const NAME: &[u8] = b"\"mark\"";
    let last = (0..bytes.len().saturating_sub(NAME.len() - 1))
        .rev()
        .find(|&i| bytes[i] == b'"' && bytes[i..].starts_with(NAME));
    let Some(at) = last else { return Ok(None) };
    let written_by_encode = at > 0 && bytes[at - 1..].starts_with(MARK_TAIL);
    if written_by_encode {
        let tail = &bytes[at - 1 + MARK_TAIL.len() - 1..];
        let tail = tail.trim_ascii_end().strip_suffix(b"}").unwrap_or(tail);
        if let Ok(mark) = serde_json::from_slice::<Mark>(tail) {
            return Ok(Some(mark));
        }
    }
    Ok(serde_json::from_slice::<MarkOnly>(bytes)?.mark)
}

#[cfg(test)]
mod tests {
    use wadm_lattice::ComponentInstance;
    use wadm_lattice::bookkeeping::EventStamp;

    use super::*;

    fn mark() -> Mark {
        Mark { stamp: EventStamp { time: 7, id: "e7".into() }, applied_at: 9 }
    }

    fn instance() -> ComponentInstance {
        ComponentInstance {
            id: "echo".into(),
            image_ref: "img".into(),
            count: 2,
            ..Default::default()
        }
    }

    #[test]
    fn present_and_removed_records_round_trip() {
        let both = encode(Some(&instance()), Some(&mark())).unwrap();
        assert_eq!(
            decode::<ComponentInstance>(&both).unwrap(),
            Stored::Present(instance(), Some(mark()))
        );
        let unmarked = encode(Some(&instance()), None).unwrap();
        assert_eq!(
            decode::<ComponentInstance>(&unmarked).unwrap(),
            Stored::Present(instance(), None)
        );
        let removed = encode::<ComponentInstance>(None, Some(&mark())).unwrap();
        assert_eq!(decode::<ComponentInstance>(&removed).unwrap(), Stored::Removed(mark()));
        assert_eq!(encode::<ComponentInstance>(None, None), None);
    }

    #[test]
    fn records_written_before_marks_were_stored_still_read() {
        let old = serde_json::to_vec(&instance()).unwrap();
        assert_eq!(decode::<ComponentInstance>(&old).unwrap(), Stored::Present(instance(), None));
        // What an older reader sees of a new record: the same instance (it ignores `mark`).
        let new = encode(Some(&instance()), Some(&mark())).unwrap();
        assert_eq!(serde_json::from_slice::<ComponentInstance>(&new).unwrap(), instance());
        // An annotation that reads like the field is no mark.
        let mut noted = instance();
        noted.annotations.insert("mark".into(), "mark".into());
        let record = encode(Some(&noted), None).unwrap();
        assert_eq!(decode::<ComponentInstance>(&record).unwrap(), Stored::Present(noted, None));
        // Hand-written records (other spacing, other field order) decode too.
        let spaced =
            br#"{ "mark": {"stamp": {"time": 7, "id": "e7"}, "applied_at": 9}, "id": "echo",
            "image_ref": "img", "count": 2, "annotations": {} }"#;
        let decoded = decode::<ComponentInstance>(spaced).unwrap();
        assert_eq!(decoded, Stored::Present(instance(), Some(mark())));
        let removed = br#" { "removed": {"stamp": {"time": 7, "id": "e7"}, "applied_at": 9} }"#;
        assert_eq!(decode::<ComponentInstance>(removed).unwrap(), Stored::Removed(mark()));
        let err = decode::<ComponentInstance>(b"{\"count\": 1}").unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
