//! A durable JetStream pull consumer as an [`Inbox`].

use std::time::Duration;

use async_nats::jetstream::{AckKind, Message, consumer::PullConsumer};
use futures::StreamExt;

use crate::io::{Delivery, Inbox, IoError};

/// Shortest fetch the server is asked to wait (a zero wait would be refused).
const MIN_WAIT: Duration = Duration::from_millis(50);

/// Pulls one message at a time.
#[derive(Clone)]
pub struct JsInbox {
    consumer: PullConsumer,
}

impl JsInbox {
    pub fn new(consumer: PullConsumer) -> Self {
        Self { consumer }
    }
}

fn io(what: &str, e: impl std::fmt::Display) -> IoError {
    IoError::failed(what, e)
}

impl Inbox for JsInbox {
    type Delivery = JsDelivery;

    async fn next(&self, wait: Duration) -> Result<Option<JsDelivery>, IoError> {
        let wait = wait.max(MIN_WAIT);
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| io("fetch", e))?;
        let Some(message) = batch.next().await else { return Ok(None) };
        let message = message.map_err(|e| io("fetch", e))?;
        let info = message.info().map_err(|e| io("message info", e))?;
        let (sequence, delivered) = (info.stream_sequence, info.delivered.max(1) as u64);
        let pending = info.pending;
        let nanos = info.published.unix_timestamp_nanos();
        let stored_at = u64::try_from(nanos / 1_000_000).ok().filter(|ms| *ms > 0);
        Ok(Some(JsDelivery { message, sequence, delivered, pending, stored_at }))
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

    async fn nak(self, delay: Duration) -> Result<(), IoError> {
        self.message.ack_with(AckKind::Nak(Some(delay))).await.map_err(|e| io("nak", e))
    }
}
