//! The per-lattice record a pipeline step works on, and how it is persisted.
//!
//! Why it works this way: `docs/runtime.md`, “Module notes”, `record`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wadm_lattice::{Changes, LatticeState, Timestamp};
use wadm_store::observed::keys::{EntityKey, key_of, parse_key};
use wadm_store::observed::records::{entities_of, patch};
use wadm_store::observed::{StateError as StoreError, StateStore};

use crate::discovery::first_round::Observing;
pub use crate::head::{AppRecord, Deferred, Failure, runtime_generation};
use crate::head::{LatticeHead, Written, journal_after};
use crate::intents::Intents;
use wadm_store::kv::{Kv, KvError};
use wadm_store::kv_key::encode_token as escape_token;

/// One lattice's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatticeRecord {
    /// The lattice as observed: hosts, what they run, links and configs.
    pub state: LatticeState,
    /// Applications the runtime manages (deployed, or undeployed with leftovers to remove).
    pub apps: BTreeMap<String, AppRecord>,
    /// Stream sequence of the newest event applied.
    pub last_sequence: u64,
    /// The handling replica's clock when the record was last written.
    #[serde(default)]
    pub updated_at: Timestamp,
    /// Applications whose reconcile waits for the event backlog to drain.
    #[serde(default)]
    pub deferred: Deferred,
    /// How complete observed state is (reconciles wait for a first discovery round).
    #[serde(default)]
    pub observing: Observing,
    /// The orders in flight (see [`crate::intents`]).
    #[serde(default)]
    pub intents: Intents,
    /// What the stream recorded lately: when it last stored an event (leases over a silence).
    #[serde(default)]
    pub recording: crate::recording::Recording,
    /// Components and providers of hosts that left, waiting for their replacement, by id, with
    /// when the host left (see [`crate::allocation::note_left`]): classifies allocation events.
    #[serde(default)]
    pub replacing: BTreeMap<String, Timestamp>,
    /// Objects with wadm's marks that no managed application owns, with when each was first
    /// seen so (see [`crate::orphans`]).
    #[serde(default)]
    pub orphans: wadm_scheduler::orphans::OrphanMarks,
    /// Since when observed state was in doubt (a takeover, an unknown host): orphans are not
    /// removed until a complete discovery round has been merged after it.
    #[serde(default)]
    pub orphans_held: Option<Timestamp>,
    /// Failed placements per (application, resource, host), and the hosts avoided for them (see
    /// [`crate::bad_hosts`]).
    #[serde(default)]
    pub bad_hosts: crate::bad_hosts::BadHosts,
    /// Per host, the `last_seen` its stored record holds (not stored itself: known from what
    /// was read back and written). A heartbeat that changes nothing but the lease rewrites the
    /// host record only once the stored lease is a quarter lease old.
    #[serde(skip)]
    pub host_written: BTreeMap<String, Timestamp>,
}

/// Why the record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The stored head does not parse.
    #[error("record of lattice {lattice} is unreadable: {reason}")]
    Corrupt {
        /// The lattice whose head it is.
        lattice: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The bucket of heads failed (a lost compare-and-set is [`KvError::Conflict`]).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// The per-entity state store failed.
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
    /// The lattice's record as of the last committed step.
    pub record: LatticeRecord,
    /// What the step's write builds on.
    pub base: Base,
    /// Whether all of observed state was read back from the store (not kept, not caught up).
    pub reloaded: bool,
    /// Whether this replica had nothing kept for the lattice (its first step, or the one after a
    /// failed step): a takeover, where observed state is in doubt. A replica that merely fell
    /// behind the journal reads back exactly what others committed.
    pub fresh: bool,
}

/// The head a step builds on: its revision (`0`: none stored yet), step count and journal.
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// The head's revision in the bucket (the compare-and-set base).
    pub revision: u64,
    step: u64,
    journal: Vec<Written>,
}

struct Kept {
    base: Base,
    record: LatticeRecord,
}

/// Records over a compare-and-set [`Kv`] bucket of heads and a per-entity [`StateStore`].
pub struct RecordStore<K, T> {
    heads: K,
    entities: T,
    kept: Mutex<BTreeMap<String, Kept>>,
}

impl<K: Kv, T: StateStore> RecordStore<K, T> {
    /// Records with heads in `heads` and observed state in `entities`.
    pub fn new(heads: K, entities: T) -> Self {
        Self { heads, entities, kept: Mutex::new(BTreeMap::new()) }
    }

    /// The bucket of heads.
    pub fn kv(&self) -> &K {
        &self.heads
    }

    /// The per-entity store of observed state.
    pub fn entities(&self) -> &T {
        &self.entities
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forget the record kept for `lattice` (the next load reads everything back).
    pub fn forget(&self, lattice: &str) {
        self.kept().remove(lattice);
    }

    /// The record and its head revision, for inspection (the record stays kept).
    pub async fn load(&self, lattice: &str) -> Result<(LatticeRecord, u64), RecordError> {
        let Loaded { record, base, .. } = self.checkout(lattice).await?;
        let revision = base.revision;
        self.kept().insert(lattice.to_string(), Kept { base, record: record.clone() });
        Ok((record, revision))
    }

    /// Take the record for a step. The kept record is moved out, not copied: a step that fails
    /// leaves nothing kept, and the next one reads everything back. A kept record that is a few
    /// steps behind the head is caught up by reading only the keys those steps wrote.
    pub async fn checkout(&self, lattice: &str) -> Result<Loaded, RecordError> {
        let entry = self.heads.get(&head_key(lattice)).await?;
        let revision = entry.as_ref().map_or(0, |e| e.revision);
        let kept = self.kept().remove(lattice);
        let kept = match kept {
            Some(k) if k.base.revision == revision => {
                let (record, base) = (k.record, k.base);
                return Ok(Loaded { record, base, reloaded: false, fresh: false });
            }
            other => other,
        };
        let fresh = kept.is_none();
        let head: LatticeHead = match &entry {
            Some(e) => serde_json::from_slice(&e.value).map_err(|e| RecordError::Corrupt {
                lattice: lattice.to_string(),
                reason: e.to_string(),
            })?,
            None => LatticeHead::default(),
        };
        let base = Base { revision, step: head.step, journal: head.journal.clone() };
        let behind = kept.and_then(|k| head.written_since(k.base.step).map(|keys| (k, keys)));
        let (state, reloaded, host_written) = match behind {
            Some((kept, keys)) => {
                let mut state = kept.record.state;
                let mut written = kept.record.host_written;
                for (key, value) in self.entities.read(lattice, &keys).await? {
                    patch(&mut state, &key, value.as_deref())?;
                    if let Some((_, EntityKey::Host { host })) = parse_key(&key) {
                        match state.hosts.get(&host) {
                            Some(h) => written.insert(host, h.last_seen),
                            None => written.remove(&host),
                        };
                    }
                }
                (state, false, written)
            }
            None => {
                let state = self.entities.load(lattice).await?;
                let written = state.hosts.iter().map(|(id, h)| (id.clone(), h.last_seen)).collect();
                (state, true, written)
            }
        };
        let record = LatticeRecord {
            state,
            apps: head.apps,
            last_sequence: head.last_sequence,
            updated_at: head.updated_at,
            deferred: head.deferred,
            observing: head.observing,
            intents: head.intents,
            recording: head.recording,
            replacing: head.replacing,
            orphans: head.orphans,
            orphans_held: head.orphans_held,
            bad_hosts: head.bad_hosts,
            host_written,
        };
        Ok(Loaded { record, base, reloaded, fresh })
    }

    /// Write the entities `changes` touched, then the head if it is still at the base's
    /// revision ([`KvError::Conflict`] otherwise); on success the record is kept for the next
    /// step. Returns the head's new revision.
    pub async fn save(
        &self,
        lattice: &str,
        record: LatticeRecord,
        base: Base,
        changes: &Changes,
    ) -> Result<u64, RecordError> {
        let keys: Vec<String> =
            entities_of(changes).iter().map(|entity| key_of(lattice, entity)).collect();
        if !keys.is_empty() {
            self.entities.persist(&record.state, changes).await?;
        }
        let step = base.step + 1;
        let head = LatticeHead {
            apps: record.apps.clone(),
            last_sequence: record.last_sequence,
            updated_at: record.updated_at,
            deferred: record.deferred.clone(),
            observing: record.observing.clone(),
            intents: record.intents.clone(),
            recording: record.recording.clone(),
            replacing: record.replacing.clone(),
            orphans: record.orphans.clone(),
            orphans_held: record.orphans_held,
            bad_hosts: record.bad_hosts.clone(),
            step,
            journal: journal_after(&base.journal, step, keys),
        };
        let bytes = serde_json::to_vec(&head).map_err(|e| RecordError::Corrupt {
            lattice: lattice.to_string(),
            reason: e.to_string(),
        })?;
        let key = head_key(lattice);
        let written = if base.revision == 0 {
            self.heads.create(&key, Bytes::from(bytes)).await?
        } else {
            self.heads.update(&key, Bytes::from(bytes), base.revision).await?
        };
        let base = Base { revision: written, step, journal: head.journal };
        self.kept().insert(lattice.to_string(), Kept { base, record });
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use wadm_lattice::Change;
    use wadm_protocol::Link;
    use wadm_store::kv::MemoryKv as SharedKv;
    use wadm_store::observed::MemoryStateStore;

    fn link() -> Link {
        crate::test_fixtures::http_link("a", "b")
    }

    fn link_set(link: &Link) -> Changes {
        Changes { changes: vec![Change::LinkSet { link: link.key() }], ..Changes::default() }
    }

    fn host_added(record: &mut LatticeRecord, id: &str) -> Changes {
        let host = wadm_lattice::HostState { id: id.into(), ..Default::default() };
        record.state.hosts.insert(id.into(), host);
        Changes { changes: vec![Change::HostAdded { host: id.into() }], ..Changes::default() }
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
        let mark =
            wadm_scheduler::orphans::OrphanMark { app: "gone".into(), since: 7, reported: false };
        record.orphans.insert("[\"config\",\"gone-x\"]".into(), mark);
        let rev1 =
            store.save("l", record.clone(), Base::default(), &link_set(&link)).await.unwrap();
        assert_eq!(entities.keys(), vec!["l.link.a.wasi.http.default".to_string()]);

        // Another replica (nothing kept) reads the same record back from the entities and head.
        let other = RecordStore::new(store.kv().clone(), entities.clone());
        let loaded = other.checkout("l").await.unwrap();
        assert!(loaded.reloaded);
        assert_eq!((&loaded.record, loaded.base.revision), (&record, rev1));

        // The replica that wrote last keeps its record while the head is at its revision.
        let again = store.checkout("l").await.unwrap();
        assert!(!again.reloaded);
        // A write against an old revision is refused.
        let none = Changes::default();
        let rev2 = other.save("l", loaded.record, loaded.base, &none).await.unwrap();
        let stale = store.save("l", again.record, again.base, &none).await;
        assert!(matches!(stale, Err(RecordError::Kv(KvError::Conflict(_)))), "{stale:?}");
        let after = store.checkout("l").await.unwrap();
        assert!(after.reloaded && after.fresh, "the failed step kept nothing: all read back");
        assert_eq!(after.base.revision, rev2);
        let create = store.save("l", record, Base::default(), &none).await;
        assert!(matches!(create, Err(RecordError::Kv(KvError::Conflict(_)))), "{create:?}");
    }

    #[tokio::test]
    async fn a_replica_a_few_steps_behind_reads_back_only_what_changed() {
        let entities = Arc::new(MemoryStateStore::new());
        let a = RecordStore::new(SharedKv::default(), entities.clone());
        let b = RecordStore::new(a.kv().clone(), entities.clone());
        let Loaded { mut record, base, .. } = a.checkout("l").await.unwrap();
        let changes = host_added(&mut record, "A");
        a.save("l", record, base, &changes).await.unwrap();

        // B takes two steps: a host appears, a link is set, an application is deployed.
        let Loaded { mut record, base, reloaded, .. } = b.checkout("l").await.unwrap();
        assert!(reloaded);
        let changes = host_added(&mut record, "B");
        b.save("l", record, base, &changes).await.unwrap();
        let Loaded { mut record, base, reloaded, .. } = b.checkout("l").await.unwrap();
        assert!(!reloaded);
        record.state.links.insert(link().key(), link());
        record.apps.insert("app".into(), AppRecord { store_generation: 1, ..Default::default() });
        b.save("l", record, base, &link_set(&link())).await.unwrap();

        // A catches up over the journal and sees what B sees.
        let caught_up = a.checkout("l").await.unwrap();
        assert!(!caught_up.reloaded);
        let (by_b, revision) = b.load("l").await.unwrap();
        assert_eq!(caught_up.base.revision, revision);
        assert_eq!(caught_up.record.state.hosts, by_b.state.hosts);
        assert_eq!(caught_up.record.state.links, by_b.state.links);
        assert_eq!(caught_up.record.apps, by_b.apps);
        assert_eq!(caught_up.record.state.hosts.len(), 2);
    }

    #[tokio::test]
    async fn behind_a_bulk_step_everything_is_read_back_without_doubt() {
        let entities = Arc::new(MemoryStateStore::new());
        let a = RecordStore::new(SharedKv::default(), entities.clone());
        let b = RecordStore::new(a.kv().clone(), entities.clone());
        let Loaded { mut record, base, fresh, .. } = a.checkout("l").await.unwrap();
        assert!(fresh);
        let changes = host_added(&mut record, "A");
        a.save("l", record, base, &changes).await.unwrap();
        let Loaded { mut record, base, .. } = b.checkout("l").await.unwrap();
        let mut bulk = Changes::default();
        for h in 0..100 {
            bulk.merge(host_added(&mut record, &format!("N{h}")));
        }
        b.save("l", record, base, &bulk).await.unwrap();

        let behind = a.checkout("l").await.unwrap();
        assert!(behind.reloaded, "the journal does not name a bulk step's keys");
        assert!(!behind.fresh, "not a takeover: what was read back is what B committed");
        assert_eq!(behind.record.state.hosts.len(), 101);
    }

    #[tokio::test]
    async fn the_head_does_not_grow_with_hosts() {
        let entities = Arc::new(MemoryStateStore::new());
        let store = RecordStore::new(SharedKv::default(), entities.clone());
        let Loaded { mut record, base, .. } = store.checkout("l").await.unwrap();
        let mut changes = Changes::default();
        for h in 0..1_000 {
            changes.merge(host_added(&mut record, &format!("N{h}")));
        }
        record.apps.insert("app".into(), AppRecord { store_generation: 1, ..Default::default() });
        store.save("l", record, base, &changes).await.unwrap();
        let head = store.kv().get(&head_key("l")).await.unwrap().unwrap();
        assert!(head.value.len() < 300, "{} bytes", head.value.len());
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
