//! An in-memory [`StateStore`] with the same per-key records and revision checks as the KV one.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wadm_lattice::{Changes, LatticeState};

use super::keys::lattice_filter;
use super::records::{Write, rebuild, writes_for};
use super::{StateError, StateStore, StoredRecord};

/// Records by key, with a revision per key. Cloning shares nothing: wrap it in an `Arc` to share.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    records: Mutex<BTreeMap<String, (u64, Vec<u8>)>>,
    /// The newest revision written (written under the `records` lock).
    revision: AtomicU64,
}

impl MemoryStateStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored keys (for tests).
    pub fn keys(&self) -> Vec<String> {
        self.records.lock().expect("store lock").keys().cloned().collect()
    }
}

impl StateStore for MemoryStateStore {
    async fn load(&self, lattice: &str) -> Result<LatticeState, StateError> {
        let records = self.records.lock().expect("store lock");
        let prefix = lattice_filter(lattice);
        let prefix = prefix.trim_end_matches('>');
        let in_lattice = records
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, (_, v))| (k.as_str(), v.as_slice()));
        rebuild(lattice, in_lattice)
    }

    async fn read(&self, _lattice: &str, keys: &[String]) -> Result<Vec<StoredRecord>, StateError> {
        let records = self.records.lock().expect("store lock");
        Ok(keys.iter().map(|k| (k.clone(), records.get(k).map(|(_, v)| v.clone()))).collect())
    }

    async fn persist(&self, state: &LatticeState, changes: &Changes) -> Result<(), StateError> {
        let mut records = self.records.lock().expect("store lock");
        let mut next = self.revision.load(Ordering::Relaxed);
        for write in writes_for(state, changes) {
            match write {
                Write::Put { key, value } => {
                    next += 1;
                    records.insert(key, (next, value));
                }
                Write::Delete { key } => {
                    records.remove(&key);
                }
            }
        }
        self.revision.store(next, Ordering::Relaxed);
        Ok(())
    }
}
