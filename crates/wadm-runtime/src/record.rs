//! The per-lattice record: everything a replica needs to handle the lattice's next event, kept
//! under one key and written with compare-and-set, so whichever replica handles the next event
//! starts from exactly what the previous one committed.
//!
//! It holds the observed [`LatticeState`] (with the reducer's bookkeeping), what the runtime
//! knows of every application's deployment (store generation, deployed version) and each
//! application's failure backoff. Encoded as CBOR (observed state has maps keyed by structs).

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wadm_lattice::{LatticeState, Timestamp};
use wadm_server::keys::escape_token;
use wadm_server::kv::{Kv, KvError};

/// One lattice's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeRecord {
    pub state: LatticeState,
    /// Applications the runtime manages (deployed, or undeployed with leftovers to remove).
    pub apps: BTreeMap<String, AppRecord>,
    /// Stream sequence of the newest event applied.
    pub last_sequence: u64,
    /// The handling replica's clock when the record was last written.
    #[serde(default)]
    pub updated_at: Timestamp,
}

/// What the runtime knows of one application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The manifest store's deploy generation.
    pub store_generation: u64,
    /// The deployed version (`None`: undeployed).
    pub deployed_version: Option<String>,
    /// The last version that was deployed (to recognise what an undeployed app owned).
    pub last_version: Option<String>,
    /// Failure backoff of the current generation.
    pub failure: Option<Failure>,
}

impl AppRecord {
    /// The runtime generation: `2 × store generation`, plus one once undeployed. It increases
    /// with every deploy and undeploy, so commands decided before either are recognisably old.
    pub fn generation(&self) -> u64 {
        runtime_generation(self.store_generation, self.deployed_version.is_some())
    }

    /// Whether commands are held back at `now` because of a recent failure.
    pub fn backing_off(&self, now: Timestamp) -> bool {
        self.failure.as_ref().is_some_and(|f| now < f.retry_at)
    }

    /// The retry round commands are issued in (part of their message ids).
    pub fn attempt(&self) -> u32 {
        self.failure.as_ref().map_or(0, |f| f.attempts)
    }
}

/// `2 × store generation + (1 if undeployed)`.
pub fn runtime_generation(store_generation: u64, deployed: bool) -> u64 {
    store_generation.saturating_mul(2).saturating_add(u64::from(!deployed))
}

/// A failure of an application's commands and when to retry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Consecutive failures in this generation.
    pub attempts: u32,
    /// No commands for the application before this instant.
    pub retry_at: Timestamp,
    /// What went wrong (shown in the status).
    pub message: String,
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record of lattice {lattice} is unreadable: {reason}")]
    Corrupt { lattice: String, reason: String },
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// The key of a lattice's record.
pub fn record_key(lattice: &str) -> String {
    format!("lattice.{}", escape_token(lattice))
}

/// Records over a compare-and-set [`Kv`] bucket. The last record this replica read or wrote
/// is kept decoded: when the bucket still holds that revision, it is not decoded again (a
/// revision names exactly one write, so equal revisions mean equal records).
pub struct RecordStore<K> {
    kv: K,
    cache: Mutex<BTreeMap<String, (u64, LatticeRecord)>>,
}

impl<K: Kv> RecordStore<K> {
    pub fn new(kv: K) -> Self {
        Self { kv, cache: Mutex::new(BTreeMap::new()) }
    }

    fn cached(&self, lattice: &str, revision: u64) -> Option<LatticeRecord> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(lattice).filter(|(r, _)| *r == revision).map(|(_, record)| record.clone())
    }

    fn remember(&self, lattice: &str, revision: u64, record: &LatticeRecord) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(lattice.to_string(), (revision, record.clone()));
    }

    pub fn kv(&self) -> &K {
        &self.kv
    }

    /// The record and its revision (`0`: none stored yet).
    pub async fn load(&self, lattice: &str) -> Result<(LatticeRecord, u64), RecordError> {
        let Some(entry) = self.kv.get(&record_key(lattice)).await? else {
            let state = LatticeState { lattice: lattice.to_string(), ..LatticeState::default() };
            return Ok((LatticeRecord { state, ..LatticeRecord::default() }, 0));
        };
        if let Some(record) = self.cached(lattice, entry.revision) {
            return Ok((record, entry.revision));
        }
        let record: LatticeRecord = ciborium::from_reader(entry.value.as_ref()).map_err(|e| {
            RecordError::Corrupt { lattice: lattice.to_string(), reason: e.to_string() }
        })?;
        self.remember(lattice, entry.revision, &record);
        Ok((record, entry.revision))
    }

    /// Write the record if it is still at `revision`; [`KvError::Conflict`] otherwise.
    pub async fn save(
        &self,
        lattice: &str,
        record: &LatticeRecord,
        revision: u64,
    ) -> Result<u64, RecordError> {
        let mut bytes = Vec::new();
        ciborium::into_writer(record, &mut bytes).map_err(|e| RecordError::Corrupt {
            lattice: lattice.to_string(),
            reason: e.to_string(),
        })?;
        let key = record_key(lattice);
        let written = if revision == 0 {
            self.kv.create(&key, Bytes::from(bytes)).await?
        } else {
            self.kv.update(&key, Bytes::from(bytes), revision).await?
        };
        self.remember(lattice, written, record);
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wadm_protocol::Link;
    use wadm_server::kv::MemoryKv;

    #[tokio::test]
    async fn round_trips_with_links_and_rejects_stale_writes() {
        let store = RecordStore::new(MemoryKv::default());
        let (mut record, rev) = store.load("l").await.unwrap();
        assert_eq!((rev, record.state.lattice.as_str()), (0, "l"));
        let link = Link {
            source_id: "a".into(),
            target: "b".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec![],
            target_config: vec![],
        };
        record.state.links.insert(link.key(), link);
        record.apps.insert("app".into(), AppRecord { store_generation: 3, ..Default::default() });
        let rev1 = store.save("l", &record, 0).await.unwrap();
        let (back, rev) = store.load("l").await.unwrap();
        assert_eq!((&back, rev), (&record, rev1));
        assert!(matches!(
            store.save("l", &record, 0).await,
            Err(RecordError::Kv(KvError::Conflict(_)))
        ));
        store.save("l", &record, rev1).await.unwrap();
        assert!(store.save("l", &record, rev1).await.is_err());
    }

    #[test]
    fn generations_order_deploys_and_undeploys() {
        let deployed = |g| runtime_generation(g, true);
        let undeployed = |g| runtime_generation(g, false);
        assert!(deployed(1) < undeployed(1) && undeployed(1) < deployed(2));
    }
}
