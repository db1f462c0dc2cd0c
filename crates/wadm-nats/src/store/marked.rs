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

#[derive(Deserialize)]
struct PresentOwned<T> {
    #[serde(flatten)]
    value: T,
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

/// Decode a record written by [`encode`] (or before marks were stored).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Stored<T>, serde_json::Error> {
    if let Ok(Removal { removed }) = serde_json::from_slice::<Removal>(bytes) {
        return Ok(Stored::Removed(removed));
    }
    let PresentOwned { value, mark } = serde_json::from_slice(bytes)?;
    Ok(Stored::Present(value, mark))
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
        let err = decode::<ComponentInstance>(b"{\"count\": 1}").unwrap_err();
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
