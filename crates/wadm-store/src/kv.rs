//! The key-value seam of the manifest store and the runtime's heads: a small [`Kv`] trait with
//! compare-and-set writes, its JetStream implementation ([`NatsKv`]) and an in-process one
//! ([`MemoryKv`]) for tests. [`KvError`] is the one error of every KV operation. Keys use NATS subject syntax (`.`-separated tokens) and [`Kv::scan`]
//! accepts `*`/`>` wildcards as NATS does (on JetStream without creating a consumer).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv;

use crate::availability::Reads;
use crate::kv_list::is_removal;
use bytes::Bytes;

/// A stored value and the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvEntry {
    /// The stored bytes.
    pub value: Bytes,
    /// The revision that wrote them (a compare-and-set writes against it).
    pub revision: u64,
}

/// Why a key-value operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The expected revision did not match (or the key already existed on create): re-read.
    #[error("concurrent write to {0}")]
    Conflict(String),
    /// The store failed on `key` for `reason` (one line).
    #[error("key-value store error on {key}: {reason}")]
    Backend {
        /// The key the operation was on.
        key: String,
        /// What the store said.
        reason: String,
    },
    /// Nobody could serve it for now (a leader election, a node restarting): ask again.
    #[error("{note} (on {key}: {reason})", note = crate::availability::RETRY_NOTE)]
    Unavailable {
        /// The key the operation was on.
        key: String,
        /// What the store said.
        reason: String,
    },
}

impl KvError {
    fn backend(key: &str, error: impl std::error::Error) -> Self {
        Self::from_reason(key, wadm_protocol::one_line(&error))
    }

    /// [`KvError::Unavailable`] when `reason` says so ([`crate::availability::classify`]), else
    /// [`KvError::Backend`].
    pub fn from_reason(key: &str, reason: String) -> Self {
        match crate::availability::is_unavailable(&reason) {
            true => KvError::Unavailable { key: key.to_string(), reason },
            false => KvError::Backend { key: key.to_string(), reason },
        }
    }

    /// Whether asking again shortly may succeed (nothing was refused).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, KvError::Unavailable { .. })
    }

    /// What the error says about the bucket ([`crate::availability::classify`]).
    pub fn availability(&self) -> crate::availability::Availability {
        match self {
            KvError::Conflict(_) => crate::availability::Availability::Other,
            KvError::Unavailable { .. } => crate::availability::Availability::Unavailable,
            KvError::Backend { reason, .. } => crate::availability::classify(reason),
        }
    }
}

/// A key-value bucket with compare-and-set. Every method is one round trip.
pub trait Kv: Send + Sync + 'static {
    /// The live value of `key`, if any.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KvEntry>, KvError>> + Send;
    /// Write `key` only if it has no live value ([`KvError::Conflict`] otherwise).
    fn create(&self, key: &str, value: Bytes) -> impl Future<Output = Result<u64, KvError>> + Send;
    /// Write `key` only if its live value has `revision` ([`KvError::Conflict`] otherwise).
    fn update(
        &self,
        key: &str,
        value: Bytes,
        revision: u64,
    ) -> impl Future<Output = Result<u64, KvError>> + Send;
    /// Write `key` unconditionally.
    fn put(&self, key: &str, value: Bytes) -> impl Future<Output = Result<u64, KvError>> + Send;
    /// Remove `key` (no error if it is absent).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), KvError>> + Send;
    /// Every live entry whose key matches `pattern` (NATS wildcards), sorted by key.
    fn scan(
        &self,
        pattern: &str,
    ) -> impl Future<Output = Result<Vec<(String, KvEntry)>, KvError>> + Send;
}

/// A JetStream key-value bucket. Reads go to the stream leader ([`Reads::Leader`]) whatever the
/// bucket allows; [`NatsKv::any_replica`] is the same bucket read from any replica.
#[derive(Clone)]
pub struct NatsKv {
    store: kv::Store,
    reads: Reads,
}

impl NatsKv {
    /// The bucket `store` (listing creates no consumer, so no connection is needed beside it).
    pub fn new(store: kv::Store) -> Self {
        Self { store, reads: Reads::Leader }
    }

    /// The same bucket, read from any replica (direct gets, which followers answer during a
    /// leader election too): possibly stale. Needs a bucket made with direct gets
    /// ([`crate::provision::DirectGets::On`]); writes are unchanged.
    pub fn any_replica(&self) -> Self {
        Self { store: self.store.clone(), reads: Reads::AnyReplica }
    }

    /// Where this handle's reads go.
    pub fn reads(&self) -> Reads {
        self.reads
    }
}

impl Kv for NatsKv {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        let subject = format!("{}{key}", self.store.prefix);
        let message = crate::kv_list::last_message(&self.store.stream, self.reads, subject)
            .await
            .map_err(|reason| KvError::from_reason(key, reason))?;
        Ok(message
            .filter(|m| !is_removal(m))
            .map(|m| KvEntry { value: m.payload, revision: m.sequence }))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.store.create(key, value).await.map_err(|e| match e.kind() {
            kv::CreateErrorKind::AlreadyExists => KvError::Conflict(key.to_string()),
            _ if refused_sequence(&e) => KvError::Conflict(key.to_string()),
            _ => KvError::backend(key, e),
        })
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, KvError> {
        self.store.update(key, value, revision).await.map_err(|e| match e.kind() {
            kv::UpdateErrorKind::WrongLastRevision => KvError::Conflict(key.to_string()),
            _ if refused_sequence(&e) => KvError::Conflict(key.to_string()),
            _ => KvError::backend(key, e),
        })
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        self.store.put(key, value).await.map_err(|e| KvError::backend(key, e))
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.store.purge(key).await.map_err(|e| KvError::backend(key, e))
    }

    /// Consumer-free (see [`crate::kv_list`]): listing as often as clients ask leaves nothing
    /// behind on the server.
    async fn scan(&self, pattern: &str) -> Result<Vec<(String, KvEntry)>, KvError> {
        let entries = crate::kv_list::live_entries(&self.store, pattern, self.reads)
            .await
            .map_err(|e| KvError::from_reason(&e.pattern, e.reason))?;
        Ok(entries
            .into_iter()
            .map(|e| (e.key, KvEntry { value: e.value, revision: e.revision }))
            .collect())
    }
}

/// Whether JetStream refused a compare-and-set write because the key's last sequence differs:
/// besides 10071 (which async-nats reports as a wrong revision), a clustered stream answers
/// 10164 ("wrong last sequence", without the sequence) around a leader change, which async-nats
/// reports as another error. Either is a conflict: re-read and decide again.
fn refused_sequence(error: &dyn std::error::Error) -> bool {
    let text = wadm_protocol::one_line(error).to_ascii_lowercase();
    text.contains("10164") || text.contains("10071") || text.contains("wrong last sequence")
}

/// An in-process bucket with the same semantics, for tests; clones share the bucket (every
/// replica of a test sees the same one).
#[derive(Clone, Default)]
pub struct MemoryKv {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Default)]
struct MemoryInner {
    entries: BTreeMap<String, KvEntry>,
    last_revision: u64,
}

impl MemoryInner {
    fn write(&mut self, key: &str, value: Bytes) -> u64 {
        self.last_revision += 1;
        let revision = self.last_revision;
        self.entries.insert(key.to_string(), KvEntry { value, revision });
        revision
    }
}

impl MemoryKv {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Kv for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<KvEntry>, KvError> {
        Ok(self.lock().entries.get(key).cloned())
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        let mut inner = self.lock();
        if inner.entries.contains_key(key) {
            return Err(KvError::Conflict(key.to_string()));
        }
        Ok(inner.write(key, value))
    }

    async fn update(&self, key: &str, value: Bytes, revision: u64) -> Result<u64, KvError> {
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(e) if e.revision == revision => Ok(inner.write(key, value)),
            _ => Err(KvError::Conflict(key.to_string())),
        }
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64, KvError> {
        Ok(self.lock().write(key, value))
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.lock().entries.remove(key);
        Ok(())
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<(String, KvEntry)>, KvError> {
        Ok(self
            .lock()
            .entries
            .iter()
            .filter(|(k, _)| subject_matches(pattern, k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// NATS subject matching: `*` matches one token, a final `>` one or more.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_nats() {
        assert!(subject_matches("a.*.index", "a.app.index"));
        assert!(!subject_matches("a.*.index", "a.app.v.x"));
        assert!(subject_matches("a.>", "a.b.c"));
        assert!(!subject_matches("a.>", "a"));
        assert!(!subject_matches("a.b", "a.b.c"));
    }

    #[test]
    fn wrong_last_sequence_is_a_conflict_whatever_its_code() {
        #[derive(Debug)]
        struct Text(&'static str);
        impl std::fmt::Display for Text {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Text {}
        // As a deploy met it while a frozen leader was replaced (fault suite).
        let seen = "failed getting entry: publish failed: wrong last sequence (code 400, error \
                    code 10164)";
        assert!(refused_sequence(&Text(seen)));
        assert!(refused_sequence(&Text("wrong last sequence: 4 (code 400, error code 10071)")));
        assert!(!refused_sequence(&Text("failed getting entry: timed out")));
    }

    #[tokio::test]
    async fn memory_kv_compare_and_set() {
        let kv = MemoryKv::default();
        let r1 = kv.create("k", Bytes::from_static(b"1")).await.unwrap();
        assert!(matches!(kv.create("k", Bytes::new()).await, Err(KvError::Conflict(_))));
        let r2 = kv.update("k", Bytes::from_static(b"2"), r1).await.unwrap();
        assert!(matches!(kv.update("k", Bytes::new(), r1).await, Err(KvError::Conflict(_))));
        assert_eq!(kv.get("k").await.unwrap().unwrap().revision, r2);
        kv.delete("k").await.unwrap();
        assert_eq!(kv.get("k").await.unwrap(), None);
        kv.create("k", Bytes::new()).await.unwrap();
    }
}
