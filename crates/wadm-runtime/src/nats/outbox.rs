//! Publishing to a stream with `Nats-Msg-Id` and `Nats-TTL`, waiting for the stream's ack.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};

use crate::io::{IoError, Outbox, Outgoing, Published};

/// Publishes with acknowledgement.
#[derive(Clone)]
pub struct JsOutbox {
    js: jetstream::Context,
}

impl JsOutbox {
    /// Publishes through the JetStream context `js`.
    pub fn new(js: jetstream::Context) -> Self {
        Self { js }
    }
}

impl Outbox for JsOutbox {
    async fn publish(&self, message: Outgoing) -> Result<Published, IoError> {
        let what = format!("publish to {}", message.subject);
        let mut publish =
            PublishMessage::build().payload(message.payload.into()).message_id(&message.msg_id);
        if let Some(ttl) = message.ttl {
            // `Nats-TTL` has whole seconds: round up, at least one.
            let secs = ttl.as_millis().div_ceil(1000).max(1) as u64;
            publish = publish.ttl(Duration::from_secs(secs));
        }
        let ack = self
            .js
            .send_publish(message.subject, publish)
            .await
            .map_err(|e| IoError::storage(&what, e))?
            .await
            .map_err(|e| IoError::storage(&what, e))?;
        Ok(Published { sequence: ack.sequence, duplicate: ack.duplicate })
    }
}
