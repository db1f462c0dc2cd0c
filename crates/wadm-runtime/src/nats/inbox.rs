//! A durable JetStream pull consumer as an [`Inbox`]: one message at a time, or in-order
//! batches from a consumer pinned to this replica.

use std::time::Duration;

use std::sync::Arc;

use async_nats::jetstream::consumer::PriorityPolicy;
use async_nats::jetstream::consumer::pull::{MessagesErrorKind, Stream};
use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::{FutureExt, StreamExt};

use wadm_store::streams::PIN_GROUP;

use crate::io::{Delivery, Inbox, IoError};

/// Shortest fetch the server is asked to wait (a zero wait would be refused).
const MIN_WAIT: Duration = Duration::from_millis(50);

/// A durable pull consumer. An ordinary one is pulled one message at a time by anyone (the
/// command consumer: executors in every replica). A consumer with the `PinnedClient` priority
/// policy (a lattice's event consumer) delivers only to the one pull stream the server pinned —
/// this replica's, while it keeps pulling — so this replica can take batches in order; the
/// others wait on standby and one of them takes over when the pinned one stops pulling.
#[derive(Clone)]
pub struct JsInbox {
    consumer: PullConsumer,
    pinned: Option<Arc<tokio::sync::Mutex<Option<Stream>>>>,
}

impl JsInbox {
    /// Pulls from `consumer` (in batches from a pinned stream when its priority policy is
    /// `PinnedClient`).
    pub fn new(consumer: PullConsumer) -> Self {
        let pinned = (consumer.cached_info().config.priority_policy
            == PriorityPolicy::PinnedClient)
            .then(|| Arc::new(tokio::sync::Mutex::new(None)));
        Self { consumer, pinned }
    }

    fn delivery(message: Message) -> Result<JsDelivery, IoError> {
        let info = message.info().map_err(|e| io("message info", e))?;
        let (sequence, delivered) = (info.stream_sequence, info.delivered.max(1) as u64);
        let pending = info.pending;
        let nanos = info.published.unix_timestamp_nanos();
        let stored_at = u64::try_from(nanos / 1_000_000).ok().filter(|ms| *ms > 0);
        Ok(JsDelivery { message, sequence, delivered, pending, stored_at })
    }

    /// From the pinned pull stream: the first message within `wait`, then what is ready.
    async fn pinned_batch(
        &self,
        slot: &tokio::sync::Mutex<Option<Stream>>,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<JsDelivery>, IoError> {
        let mut slot = slot.lock().await;
        if slot.is_none() {
            let stream = self
                .consumer
                .stream()
                .group(PIN_GROUP)
                .max_messages_per_batch(max.max(1))
                .expires(PIN_PULL_EXPIRY)
                .heartbeat(PIN_PULL_EXPIRY / 2)
                .messages()
                .await
                .map_err(|e| IoError::storage("pull", e))?;
            *slot = Some(stream);
        }
        let Some(stream) = slot.as_mut() else { return Ok(Vec::new()) };
        let first = match tokio::time::timeout(wait.max(MIN_WAIT), stream.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => {
                *slot = None;
                return Err(io("pull", "the pull stream ended"));
            }
            Ok(Some(Err(e))) if e.kind() == MessagesErrorKind::MissingHeartbeat => {
                // The stream was not read for a while (a long step): it keeps pulling, and
                // keeps its pin; dropping it would stall the lattice for the pin timeout.
                tracing::debug!(error = %e, "pull stream: missed idle heartbeat");
                return Ok(Vec::new());
            }
            Ok(Some(Err(e))) => {
                // A broken stream is made again on the next pull (it loses the pin).
                *slot = None;
                return Err(IoError::storage("pull", e));
            }
            Ok(Some(Ok(message))) => message,
        };
        let mut batch = vec![Self::delivery(first)?];
        // Redeliveries (a dead replica's events) are not always handed out in stream order:
        // give the others that are due a moment to arrive, then order the batch.
        let linger = if batch[0].delivered > 1 { REDELIVERY_LINGER } else { Duration::ZERO };
        while batch.len() < max {
            let next = if linger.is_zero() {
                stream.next().now_or_never()
            } else {
                tokio::time::timeout(linger, stream.next()).await.ok()
            };
            match next {
                Some(Some(Ok(message))) => batch.push(Self::delivery(message)?),
                _ => break,
            }
        }
        batch.sort_by_key(|d| d.sequence);
        Ok(batch)
    }
}

impl JsInbox {
    /// Whether this replica holds a pull stream of the pinned consumer (it may hold the pin).
    pub async fn holds_pin(&self) -> bool {
        match &self.pinned {
            Some(slot) => slot.lock().await.is_some(),
            None => false,
        }
    }

    /// Stop pulling the pinned consumer and hand the pin on at once: the messages already
    /// delivered to this replica but not handed to a step are given back (nak, no delay), the
    /// pull stream is dropped, and the consumer is unpinned on `stream`, so the replica that now
    /// pulls gets the pin without waiting for its timeout. Call between steps (nothing of this
    /// replica's is unacknowledged then). Returns how many messages were given back.
    pub async fn release(&self, stream: &async_nats::jetstream::stream::Stream) -> usize {
        let Some(slot) = &self.pinned else { return 0 };
        let Some(mut pulled) = slot.lock().await.take() else { return 0 };
        let mut given_back = 0;
        while let Some(Some(Ok(message))) = pulled.next().now_or_never() {
            match message.ack_with(AckKind::Nak(None)).await {
                Ok(()) => given_back += 1,
                Err(e) => tracing::debug!(error = %e, "cannot give a message back"),
            }
        }
        drop(pulled);
        let name = self.consumer.cached_info().name.clone();
        if let Err(e) = stream.unpin_consumer(&name, PIN_GROUP).await {
            // The pin then moves after its timeout instead.
            tracing::debug!(consumer = %name, error = %e, "cannot unpin");
        }
        given_back
    }
}

/// After a redelivered message, how long to wait for the other redeliveries due with it.
const REDELIVERY_LINGER: Duration = Duration::from_millis(50);

/// How long one pull request of a pinned stream lasts (well under the pin's timeout, so the
/// pin is renewed while the replica lives).
const PIN_PULL_EXPIRY: Duration = Duration::from_secs(1);

fn io(what: &str, e: impl std::fmt::Display) -> IoError {
    IoError::failed(what, e)
}

impl Inbox for JsInbox {
    type Delivery = JsDelivery;

    async fn next(&self, wait: Duration) -> Result<Option<JsDelivery>, IoError> {
        if let Some(slot) = &self.pinned {
            return Ok(self.pinned_batch(slot, 1, wait).await?.into_iter().next());
        }
        let wait = wait.max(MIN_WAIT);
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| IoError::storage("fetch", e))?;
        let Some(message) = batch.next().await else { return Ok(None) };
        let message = message.map_err(|e| IoError::storage("fetch", e))?;
        Self::delivery(message).map(Some)
    }

    async fn next_batch(&self, max: usize, wait: Duration) -> Result<Vec<JsDelivery>, IoError> {
        match &self.pinned {
            Some(slot) => self.pinned_batch(slot, max, wait).await,
            None => Ok(self.next(wait).await?.into_iter().collect()),
        }
    }
}

/// One delivered JetStream message.
pub struct JsDelivery {
    message: Message,
    sequence: u64,
    delivered: u64,
    pending: u64,
    stored_at: Option<u64>,
}

impl Delivery for JsDelivery {
    fn subject(&self) -> &str {
        self.message.subject.as_str()
    }

    fn payload(&self) -> &[u8] {
        &self.message.payload
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

    fn stored_at(&self) -> Option<u64> {
        self.stored_at
    }

    fn wants_progress(&self) -> bool {
        true
    }

    async fn in_progress(&self) -> Result<(), IoError> {
        self.message.ack_with(AckKind::Progress).await.map_err(|e| io("progress", e))
    }

    /// Acknowledged and confirmed by the server, so "acked" means the server will not redeliver.
    async fn ack(self) -> Result<(), IoError> {
        self.message.double_ack().await.map_err(|e| io("ack", e))
    }

    async fn ack_unconfirmed(self) -> Result<(), IoError> {
        self.message.ack().await.map_err(|e| io("ack", e))
    }

    async fn nak(self, delay: Duration) -> Result<(), IoError> {
        self.message.ack_with(AckKind::Nak(Some(delay))).await.map_err(|e| io("nak", e))
    }

    async fn term(self) -> Result<(), IoError> {
        self.message.ack_with(AckKind::Term).await.map_err(|e| io("term", e))
    }
}
