//! The per-event step a runtime calls for each host event: decode, reduce, persist.

use wadm_lattice::{Changes, EventContext, LatticeState, Timestamp, apply};
use wadm_protocol::{EventDecodeError, HostEvent};

use crate::store::{StateStore, StoreError};

/// Why an event could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The payload is not a host event wadm can read: skip it (and count it).
    #[error(transparent)]
    Decode(#[from] EventDecodeError),
    /// The state changed in memory but could not be stored.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Decode one event payload and apply it to `state` at `now` (pure apart from decoding).
pub fn decode_and_apply(
    state: &mut LatticeState,
    payload: &[u8],
    now: Timestamp,
) -> Result<Changes, EventDecodeError> {
    let (envelope, event) = HostEvent::decode_bytes(payload)?;
    Ok(apply(state, &EventContext::from_cloud_event(&envelope), &event, now))
}

/// Decode, apply and persist one event.
pub async fn observe_event<S: StateStore>(
    state: &mut LatticeState,
    store: &S,
    payload: &[u8],
    now: Timestamp,
) -> Result<Changes, ObserveError> {
    let changes = decode_and_apply(state, payload, now)?;
    if !changes.changes.is_empty() {
        store.persist(state, &changes).await?;
    }
    Ok(changes)
}
