//! An in-memory stream with durable consumers, modelled on JetStream's semantics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use wadm_lattice::Timestamp;
use wadm_store::kv::subject_matches;

use crate::clock::Clock;
use crate::io::{Delivery, Inbox, IoError, Outbox, Outgoing, Published};

/// Stream settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Publishes with an id seen this recently are duplicates.
    pub dedupe_window: Duration,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { dedupe_window: Duration::from_secs(60) }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    sequence: u64,
    subject: String,
    payload: Vec<u8>,
    expires_at: Option<Timestamp>,
    stored_at: Timestamp,
}

#[derive(Debug, Default)]
struct ConsumerState {
    filters: Vec<String>,
    max_ack_pending: usize,
    ack_wait_ms: u64,
    acked: BTreeSet<u64>,
    /// Every sequence below it is done (acked, filtered out or expired): scans start here.
    floor: u64,
    delivered: BTreeMap<u64, u64>,
    /// Delivered and not acked: redeliverable at the given instant.
    pending: BTreeMap<u64, Timestamp>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: Vec<Entry>,
    dedupe: BTreeMap<String, (Timestamp, u64)>,
    consumers: BTreeMap<String, ConsumerState>,
    published: u64,
}

/// A stream. Clones share it.
#[derive(Clone)]
pub struct MemoryLog {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
    config: LogConfig,
}

impl MemoryLog {
    /// An empty stream that reads time from `clock`.
    pub fn new(clock: Arc<dyn Clock>, config: LogConfig) -> Self {
        Self { inner: Arc::default(), clock, config }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A durable consumer (created on first use; later calls share its state, as replicas
    /// binding the same durable consumer do).
    pub fn consumer(
        &self,
        name: &str,
        filters: Vec<String>,
        max_ack_pending: usize,
        ack_wait: Duration,
    ) -> MemoryConsumer {
        self.lock().consumers.entry(name.to_string()).or_insert_with(|| ConsumerState {
            filters,
            max_ack_pending: max_ack_pending.max(1),
            ack_wait_ms: ack_wait.as_millis() as u64,
            ..ConsumerState::default()
        });
        MemoryConsumer { log: self.clone(), name: name.to_string() }
    }

    /// Live (not expired) messages matching `pattern`: `(sequence, subject, payload)`.
    pub fn messages(&self, pattern: &str) -> Vec<(u64, String, Vec<u8>)> {
        let now = self.clock.now();
        self.lock()
            .entries
            .iter()
            .filter(|e| e.expires_at.is_none_or(|t| now < t))
            .filter(|e| subject_matches(pattern, &e.subject))
            .map(|e| (e.sequence, e.subject.clone(), e.payload.clone()))
            .collect()
    }

    /// How many publishes were stored (duplicates excluded).
    pub fn stored(&self) -> u64 {
        self.lock().published
    }

    /// Messages of `consumer` not yet acked (expired ones excluded).
    pub fn unacked(&self, consumer: &str) -> usize {
        let now = self.clock.now();
        let inner = self.lock();
        let Some(c) = inner.consumers.get(consumer) else { return 0 };
        inner
            .entries
            .iter()
            .filter(|e| e.expires_at.is_none_or(|t| now < t))
            .filter(|e| c.filters.iter().any(|f| subject_matches(f, &e.subject)))
            .filter(|e| e.sequence >= c.floor && !c.acked.contains(&e.sequence))
            .count()
    }
}

impl Outbox for MemoryLog {
    async fn publish(&self, message: Outgoing) -> Result<Published, IoError> {
        let now = self.clock.now();
        let window = self.config.dedupe_window.as_millis() as u64;
        let mut inner = self.lock();
        if let Some((at, sequence)) = inner.dedupe.get(&message.msg_id)
            && now < at.saturating_add(window)
        {
            return Ok(Published { sequence: *sequence, duplicate: true });
        }
        let sequence = inner.entries.last().map_or(1, |e| e.sequence + 1);
        let expires_at = message.ttl.map(|t| now.saturating_add(t.as_millis() as u64));
        inner.entries.push(Entry {
            sequence,
            subject: message.subject,
            payload: message.payload,
            expires_at,
            stored_at: now,
        });
        inner.dedupe.insert(message.msg_id, (now, sequence));
        inner.published += 1;
        Ok(Published { sequence, duplicate: false })
    }
}

/// A handle on a durable consumer of a [`MemoryLog`].
#[derive(Clone)]
pub struct MemoryConsumer {
    log: MemoryLog,
    name: String,
}

impl Inbox for MemoryConsumer {
    type Delivery = MemoryDelivery;

    /// Never waits: in virtual time, "nothing now" is the answer.
    async fn next(&self, _wait: Duration) -> Result<Option<MemoryDelivery>, IoError> {
        let now = self.log.clock.now();
        let mut inner = self.log.lock();
        let Inner { entries, consumers, .. } = &mut *inner;
        let c = consumers.get_mut(&self.name).expect("consumer exists");
        let live = |e: &Entry| e.expires_at.is_none_or(|t| now < t);
        // Expired messages are gone from the stream: they stop counting as pending.
        c.pending.retain(|seq, _| entries.iter().any(|e| e.sequence == *seq && live(e)));
        let waiting = c.pending.values().filter(|at| now < **at).count();
        if waiting >= c.max_ack_pending {
            return Ok(None);
        }
        let start = entries.partition_point(|e| e.sequence < c.floor);
        let mut skip = start;
        while let Some(e) = entries.get(skip) {
            let done = !live(e)
                || c.acked.contains(&e.sequence)
                || !c.filters.iter().any(|f| subject_matches(f, &e.subject));
            if !done {
                break;
            }
            c.acked.remove(&e.sequence);
            c.floor = e.sequence + 1;
            skip += 1;
        }
        let found = entries[skip..].iter().find(|e| {
            live(e)
                && !c.acked.contains(&e.sequence)
                && c.filters.iter().any(|f| subject_matches(f, &e.subject))
                && c.pending.get(&e.sequence).is_none_or(|at| *at <= now)
        });
        let Some(entry) = found else { return Ok(None) };
        let pending = entries[skip..]
            .iter()
            .filter(|e| {
                e.sequence > entry.sequence
                    && live(e)
                    && !c.acked.contains(&e.sequence)
                    && c.filters.iter().any(|f| subject_matches(f, &e.subject))
            })
            .count() as u64;
        let delivered = c.delivered.entry(entry.sequence).or_default();
        *delivered += 1;
        c.pending.insert(entry.sequence, now.saturating_add(c.ack_wait_ms));
        Ok(Some(MemoryDelivery {
            log: self.log.clone(),
            consumer: self.name.clone(),
            sequence: entry.sequence,
            subject: entry.subject.clone(),
            payload: entry.payload.clone(),
            delivered: *delivered,
            pending,
            stored_at: entry.stored_at,
        }))
    }
}

/// One delivered message. Dropping it without ack or nak is a crash: it is redelivered after
/// the consumer's ack wait.
pub struct MemoryDelivery {
    log: MemoryLog,
    consumer: String,
    sequence: u64,
    subject: String,
    payload: Vec<u8>,
    delivered: u64,
    pending: u64,
    stored_at: Timestamp,
}

impl Delivery for MemoryDelivery {
    fn subject(&self) -> &str {
        &self.subject
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn stream_sequence(&self) -> u64 {
        self.sequence
    }

    fn delivered(&self) -> u64 {
        self.delivered
    }

    fn pending(&self) -> u64 {
        self.pending
    }

    fn stored_at(&self) -> Option<Timestamp> {
        Some(self.stored_at)
    }

    async fn ack(self) -> Result<(), IoError> {
        let mut inner = self.log.lock();
        if let Some(c) = inner.consumers.get_mut(&self.consumer) {
            c.pending.remove(&self.sequence);
            c.acked.insert(self.sequence);
        }
        Ok(())
    }

    async fn nak(self, delay: Duration) -> Result<(), IoError> {
        let at = self.log.clock.now().saturating_add(delay.as_millis() as u64);
        let mut inner = self.log.lock();
        if let Some(c) = inner.consumers.get_mut(&self.consumer) {
            c.pending.insert(self.sequence, at);
        }
        Ok(())
    }
}
