//! The per-lattice record a pipeline step works on, and how it is persisted.
//!
//! A step works on a [`LatticeRecord`]: the observed [`LatticeState`] (with the reducer's
//! bookkeeping), what the runtime knows of every application's deployment (store generation,
//! deployed version) and each application's failure backoff. It is stored in two parts:
//!
//! - **Entities** — observed state, one key per host, component on a host, provider on a host,
//!   link, config and host tombstone, through a [`StateStore`] (`wadm_nats::store`). A step
//!   writes only the entities its [`Changes`] touched, so its cost does not grow with the lattice.
//! - **Head** — a small [`LatticeHead`] per lattice (applications, last applied stream sequence,
//!   when it was written), whose size does not depend on the number of hosts. Every step writes
//!   it with compare-and-set on its revision: that is what serialises steps across replicas.
//!
//! [`RecordStore`] keeps the record of each lattice decoded in memory together with the head
//! revision it wrote. While the head is still at that revision nobody else advanced the lattice,
//! so the kept record is used as is; otherwise (another replica took a step, or at start) the
//! entities are read back from the store ([`Loaded::reloaded`] says so: the state is then in
//! doubt and worth a discovery round).

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wadm_lattice::{Changes, LatticeState, Timestamp};
use wadm_nats::store::{StateStore, StoreError};
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

/// The per-lattice head: everything but observed state. Its size depends on the number of
/// applications, never on the number of hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeHead {
    #[serde(default)]
    pub apps: BTreeMap<String, AppRecord>,
    #[serde(default)]
    pub last_sequence: u64,
    #[serde(default)]
    pub updated_at: Timestamp,
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record of lattice {lattice} is unreadable: {reason}")]
    Corrupt { lattice: String, reason: String },
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error(transparent)]
    State(#[from] StoreError),
}

/// The key of a lattice's head in the records bucket.
pub fn head_key(lattice: &str) -> String {
    format!("head.{}", escape_token(lattice))
}

/// A record checked out for one step.
#[derive(Debug)]
pub struct Loaded {
    pub record: LatticeRecord,
    /// The head's revision (`0`: none stored yet): the step's write expects it.
    pub revision: u64,
    /// Whether observed state was read back from the store (not this replica's own last write).
    pub reloaded: bool,
}

/// Records over a compare-and-set [`Kv`] bucket of heads and a per-entity [`StateStore`].
pub struct RecordStore<K, T> {
    heads: K,
    entities: T,
    kept: Mutex<BTreeMap<String, (u64, LatticeRecord)>>,
}

impl<K: Kv, T: StateStore> RecordStore<K, T> {
    pub fn new(heads: K, entities: T) -> Self {
        Self { heads, entities, kept: Mutex::new(BTreeMap::new()) }
    }

    pub fn kv(&self) -> &K {
        &self.heads
    }

    pub fn entities(&self) -> &T {
        &self.entities
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (u64, LatticeRecord)>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget the record kept for `lattice` (the next load reads everything back).
    pub fn forget(&self, lattice: &str) {
        self.kept().remove(lattice);
    }

    /// The record and its head revision, for inspection (the kept record stays kept).
    pub async fn load(&self, lattice: &str) -> Result<(LatticeRecord, u64), RecordError> {
        let loaded = self.checkout(lattice).await?;
        let copy = loaded.record.clone();
        self.kept().insert(lattice.to_string(), (loaded.revision, loaded.record));
        Ok((copy, loaded.revision))
    }

    /// Take the record for a step. The kept record is moved out, not copied: a step that fails
    /// leaves nothing kept, and the next one reads everything back.
    pub async fn checkout(&self, lattice: &str) -> Result<Loaded, RecordError> {
        let entry = self.heads.get(&head_key(lattice)).await?;
        let revision = entry.as_ref().map_or(0, |e| e.revision);
        let kept = self.kept().remove(lattice);
        if let Some((kept_revision, record)) = kept
            && kept_revision == revision
        {
            return Ok(Loaded { record, revision, reloaded: false });
        }
        let head: LatticeHead = match &entry {
            Some(e) => serde_json::from_slice(&e.value).map_err(|e| RecordError::Corrupt {
                lattice: lattice.to_string(),
                reason: e.to_string(),
            })?,
            None => LatticeHead::default(),
        };
        let state = self.entities.load(lattice).await?;
        let record = LatticeRecord {
            state,
            apps: head.apps,
            last_sequence: head.last_sequence,
            updated_at: head.updated_at,
        };
        Ok(Loaded { record, revision, reloaded: true })
    }

    /// Write the entities `changes` touched, then the head if it is still at `revision`
    /// ([`KvError::Conflict`] otherwise); on success the record is kept for the next step.
    pub async fn save(
        &self,
        lattice: &str,
        record: LatticeRecord,
        revision: u64,
        changes: &Changes,
    ) -> Result<u64, RecordError> {
        if !changes.changes.is_empty() || !changes.forgotten_tombstones.is_empty() {
            self.entities.persist(&record.state, changes).await?;
        }
        let head = LatticeHead {
            apps: record.apps.clone(),
            last_sequence: record.last_sequence,
            updated_at: record.updated_at,
        };
        let bytes = serde_json::to_vec(&head).map_err(|e| RecordError::Corrupt {
            lattice: lattice.to_string(),
            reason: e.to_string(),
        })?;
        let key = head_key(lattice);
        let written = if revision == 0 {
            self.heads.create(&key, Bytes::from(bytes)).await?
        } else {
            self.heads.update(&key, Bytes::from(bytes), revision).await?
        };
        self.kept().insert(lattice.to_string(), (written, record));
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::memory::SharedKv;
    use wadm_lattice::Change;
    use wadm_nats::store::MemoryStateStore;
    use wadm_protocol::Link;

    fn link() -> Link {
        Link {
            source_id: "a".into(),
            target: "b".into(),
            name: "default".into(),
            wit_namespace: "wasi".into(),
            wit_package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            source_config: vec![],
            target_config: vec![],
        }
    }

    fn link_set(link: &Link) -> Changes {
        Changes { changes: vec![Change::LinkSet { link: link.key() }], ..Changes::default() }
    }

    #[tokio::test]
    async fn round_trips_per_entity_and_rejects_stale_head_writes() {
        let entities = Arc::new(MemoryStateStore::new());
        let store = RecordStore::new(SharedKv::default(), entities.clone());
        let (mut record, rev) = store.load("l").await.unwrap();
        assert_eq!((rev, record.state.lattice.as_str()), (0, "l"));
        let link = link();
        record.state.links.insert(link.key(), link.clone());
        record.apps.insert("app".into(), AppRecord { store_generation: 3, ..Default::default() });
        let rev1 = store.save("l", record.clone(), 0, &link_set(&link)).await.unwrap();
        assert_eq!(entities.keys(), vec!["l.link.a.wasi.http.default".to_string()]);

        // Another replica (nothing kept) reads the same record back from the entities and head.
        let other = RecordStore::new(store.kv().clone(), entities.clone());
        let loaded = other.checkout("l").await.unwrap();
        assert!(loaded.reloaded);
        assert_eq!((&loaded.record, loaded.revision), (&record, rev1));

        // The replica that wrote last keeps its record while the head is at its revision.
        let again = store.checkout("l").await.unwrap();
        assert!(!again.reloaded);
        // A write against an old revision is refused; the writer that lost reads back.
        let rev2 = other.save("l", loaded.record, rev1, &Changes::default()).await.unwrap();
        assert!(matches!(
            store.save("l", again.record, rev1, &Changes::default()).await,
            Err(RecordError::Kv(KvError::Conflict(_)))
        ));
        let after = store.checkout("l").await.unwrap();
        assert!(after.reloaded);
        assert_eq!(after.revision, rev2);
        assert!(matches!(
            store.save("l", record, 0, &Changes::default()).await,
            Err(RecordError::Kv(KvError::Conflict(_)))
        ));
    }

    #[tokio::test]
    async fn the_head_does_not_grow_with_hosts() {
        let entities = Arc::new(MemoryStateStore::new());
        let store = RecordStore::new(SharedKv::default(), entities.clone());
        let mut record = store.checkout("l").await.unwrap().record;
        let mut changes = Changes::default();
        for h in 0..1_000 {
            let id = format!("N{h}");
            let host = wadm_lattice::HostState { id: id.clone(), ..Default::default() };
            record.state.hosts.insert(id.clone(), host);
            changes.changes.push(Change::HostAdded { host: id });
        }
        record.apps.insert("app".into(), AppRecord { store_generation: 1, ..Default::default() });
        store.save("l", record, 0, &changes).await.unwrap();
        let head = store.kv().get(&head_key("l")).await.unwrap().unwrap();
        assert!(head.value.len() < 200, "{} bytes", head.value.len());
        let fresh = RecordStore::new(store.kv().clone(), entities);
        assert_eq!(fresh.checkout("l").await.unwrap().record.state.hosts.len(), 1_000);
    }

    #[test]
    fn generations_order_deploys_and_undeploys() {
        let deployed = |g| runtime_generation(g, true);
        let undeployed = |g| runtime_generation(g, false);
        assert!(deployed(1) < undeployed(1) && undeployed(1) < deployed(2));
    }
}
