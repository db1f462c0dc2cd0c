//! Persistence of observed lattice state, one key per entity, behind the [`StateStore`] trait.
//!
//! [`KvStateStore`] keeps it in a JetStream KV bucket (`wadm_runtime_state` by default) and writes every key
//! with compare-and-set on its revision; [`MemoryStateStore`] keeps the same records in memory for
//! runtimes and tests that need no NATS. The key scheme is in [`keys`], the record translation in
//! [`records`].

pub mod keys;
mod kv;
pub mod marked;
mod memory;
pub mod records;

use std::future::Future;

use wadm_lattice::{Changes, LatticeState};

pub use kv::{BUCKET_DIRECT_GETS, KvStateStore, OBSERVED_DESCRIPTION};
pub use memory::MemoryStateStore;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Someone else wrote the key since we read it: re-read and re-decide.
    #[error("key {key} changed since it was read (compare-and-set conflict)")]
    Conflict {
        /// The key written.
        key: String,
    },
    /// A stored record does not decode.
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
    /// The store failed.
    #[error("storage failed on {key}: {reason}")]
    Io {
        /// The key the operation was on.
        key: String,
        /// What the store said.
        reason: String,
    },
}

impl StateError {
    /// What the error says about the state bucket ([`crate::availability::classify`]).
    pub fn availability(&self) -> crate::availability::Availability {
        match self {
            StateError::Io { reason, .. } => crate::availability::classify(reason),
            StateError::Conflict { .. } | StateError::Corrupt { .. } => {
                crate::availability::Availability::Other
            }
        }
    }
}

/// One stored record as read back: its key and value (`None`: the key is absent).
pub type StoredRecord = (String, Option<Vec<u8>>);

/// Where observed state lives between runs and replicas.
pub trait StateStore: Send + Sync {
    /// Read every record of `lattice` back into a state, with the reducer's tombstones, snapshot
    /// stamps and event marks (its counters start at zero).
    fn load(&self, lattice: &str) -> impl Future<Output = Result<LatticeState, StateError>> + Send;

    /// Write the entities named in `changes` as they are in `state` (deleting absent ones).
    fn persist(
        &self,
        state: &LatticeState,
        changes: &Changes,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// The stored records of `keys` in `lattice` (`None`: absent), in the order asked, for
    /// catching a kept state up with [`records::patch`]. The default reads the whole lattice;
    /// stores override it with per-key reads.
    fn read(
        &self,
        lattice: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StateError>> + Send {
        async move {
            let state = self.load(lattice).await?;
            let value = |key: &str| {
                keys::parse_key(key).and_then(|(_, entity)| records::value_of(&state, &entity))
            };
            Ok(keys.iter().map(|key| (key.clone(), value(key))).collect())
        }
    }
}

impl<T: StateStore> StateStore for std::sync::Arc<T> {
    fn load(&self, lattice: &str) -> impl Future<Output = Result<LatticeState, StateError>> + Send {
        (**self).load(lattice)
    }

    fn persist(
        &self,
        state: &LatticeState,
        changes: &Changes,
    ) -> impl Future<Output = Result<(), StateError>> + Send {
        (**self).persist(state, changes)
    }

    fn read(
        &self,
        lattice: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<StoredRecord>, StateError>> + Send {
        (**self).read(lattice, keys)
    }
}
