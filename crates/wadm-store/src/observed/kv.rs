//! The JetStream KV [`StateStore`]: one key per entity, every write a compare-and-set.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_nats::jetstream::{self, kv};
use wadm_lattice::{Changes, LatticeState};

use super::keys::lattice_filter;
use super::records::{Write, rebuild, writes_for};
use super::{StateError, StateStore, StoredRecord};
use crate::availability::Reads;

/// Writes of one step in flight at once.
const WRITES_IN_FLIGHT: usize = 32;

/// The description of the observed-state bucket.
pub const OBSERVED_DESCRIPTION: &str = "wadm: observed lattice state, one key per entity";
/// Followers of the observed-state bucket answer direct gets, for the API's possibly stale
/// reads while no leader answers (`lattice.hosts`, `model.plan`); this store reads leaders only.
pub const BUCKET_DIRECT_GETS: crate::provision::DirectGets = crate::provision::DirectGets::On;

/// Observed state in a KV bucket. Remembers the revision of every key it read or wrote, and
/// writes with that revision as the expected one: a write racing another writer fails with
/// [`StateError::Conflict`] instead of overwriting.
pub struct KvStateStore {
    kv: kv::Store,
    revisions: Mutex<BTreeMap<String, u64>>,
}

fn io(key: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Io { key: key.to_string(), reason: e.to_string() }
}

impl KvStateStore {
    /// Open (creating if needed) the bucket. Keeps one revision per key: old values are useless.
    pub async fn open(js: &jetstream::Context, bucket: &str) -> Result<Self, StateError> {
        let config = crate::provision::bucket_config(bucket, OBSERVED_DESCRIPTION, 1);
        let kv = crate::provision::open_or_create(js, &config, BUCKET_DIRECT_GETS)
            .await
            .map_err(|e| io(bucket, e))?;
        Ok(Self::new(kv))
    }

    /// Use `kv`, a bucket already set up (see [`crate::Provisioner::bucket`]).
    pub fn new(kv: kv::Store) -> Self {
        Self { kv, revisions: Mutex::new(BTreeMap::new()) }
    }

    /// The underlying bucket (for tests and diagnostics).
    pub fn bucket(&self) -> &kv::Store {
        &self.kv
    }

    fn revision(&self, key: &str) -> Option<u64> {
        self.revisions.lock().expect("revision lock").get(key).copied()
    }

    fn set_revision(&self, key: &str, revision: Option<u64>) {
        let mut revisions = self.revisions.lock().expect("revision lock");
        match revision {
            Some(r) => revisions.insert(key.to_string(), r),
            None => revisions.remove(key),
        };
    }

    /// Forget what we know of `key` and read its current revision (after a conflict).
    pub async fn refresh_revision(&self, key: &str) -> Result<(), StateError> {
        let live = self.current(key).await?;
        self.set_revision(key, live.map(|(revision, _)| revision));
        Ok(())
    }

    /// `key`'s live value and revision, read from the stream leader: the bucket allows direct
    /// gets, which a lagging follower may answer.
    async fn current(&self, key: &str) -> Result<Option<(u64, bytes::Bytes)>, StateError> {
        let subject = format!("{}{key}", self.kv.prefix);
        let message = crate::kv_list::last_message(&self.kv.stream, Reads::Leader, subject)
            .await
            .map_err(|reason| io(key, reason))?;
        let live = message.filter(|m| !crate::kv_list::is_removal(m));
        Ok(live.map(|m| (m.sequence, m.payload)))
    }

    async fn write(&self, write: Write) -> Result<(), StateError> {
        let key = write.key().to_string();
        match write {
            Write::Put { value, .. } => {
                let result = match self.revision(&key) {
                    Some(rev) => self.kv.update(&key, value.into(), rev).await.map_err(|e| {
                        if e.kind() == kv::UpdateErrorKind::WrongLastRevision {
                            StateError::Conflict { key: key.clone() }
                        } else {
                            io(&key, e)
                        }
                    }),
                    None => self.kv.create(&key, value.into()).await.map_err(|e| {
                        if e.kind() == kv::CreateErrorKind::AlreadyExists {
                            StateError::Conflict { key: key.clone() }
                        } else {
                            io(&key, e)
                        }
                    }),
                };
                self.set_revision(&key, Some(result?));
            }
            Write::Delete { .. } => {
                let Some(rev) = self.revision(&key) else { return Ok(()) };
                self.kv.delete_expect_revision(&key, Some(rev)).await.map_err(|e| {
                    if e.kind() == kv::DeleteErrorKind::WrongLastRevision {
                        StateError::Conflict { key: key.clone() }
                    } else {
                        io(&key, e)
                    }
                })?;
                self.set_revision(&key, None);
            }
        }
        Ok(())
    }
}

impl StateStore for KvStateStore {
    async fn load(&self, lattice: &str) -> Result<LatticeState, StateError> {
        // Consumer-free: a load per start-up or restart must not leave consumers behind.
        let entries =
            crate::kv_list::live_entries(&self.kv, &lattice_filter(lattice), Reads::Leader)
                .await
                .map_err(|e| io(&e.pattern, e.reason))?;
        let records: BTreeMap<String, (u64, Vec<u8>)> =
            entries.into_iter().map(|e| (e.key, (e.revision, e.value.to_vec()))).collect();
        let state = rebuild(lattice, records.iter().map(|(k, (_, v))| (k.as_str(), v.as_slice())))?;
        let mut revisions = self.revisions.lock().expect("revision lock");
        for (key, (revision, _)) in records {
            revisions.insert(key, revision);
        }
        Ok(state)
    }

    /// One get per key (a bounded number in flight); remembers each key's revision.
    async fn read(&self, _lattice: &str, keys: &[String]) -> Result<Vec<StoredRecord>, StateError> {
        use futures::{StreamExt, TryStreamExt};
        let reads = futures::stream::iter(keys.iter().cloned())
            .map(|key| async move {
                let live = self.current(&key).await?;
                self.set_revision(&key, live.as_ref().map(|(revision, _)| *revision));
                Ok::<_, StateError>((key, live.map(|(_, value)| value.to_vec())))
            })
            .buffered(32);
        reads.try_collect().await
    }

    /// Observed state is a cache of what the lattice reported: on a conflict the key's revision
    /// is re-read and the value this step computed is written once more against it; a second
    /// conflict is returned to the caller.
    ///
    /// Writes of distinct keys go out concurrently (a bounded number in flight): a step writes
    /// each key at most once, and a reader never relies on the order of two keys' writes.
    async fn persist(&self, state: &LatticeState, changes: &Changes) -> Result<(), StateError> {
        use futures::StreamExt;
        let writes = futures::stream::iter(writes_for(state, changes))
            .map(|write| async move {
                match self.write(write.clone()).await {
                    Err(StateError::Conflict { key }) => match self.refresh_revision(&key).await {
                        Ok(()) => self.write(write).await,
                        Err(e) => Err(e),
                    },
                    other => other,
                }
            })
            .buffer_unordered(WRITES_IN_FLIGHT);
        let results: Vec<Result<(), StateError>> = writes.collect().await;
        results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
    }
}
