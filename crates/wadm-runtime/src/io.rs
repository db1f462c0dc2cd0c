//! The narrow I/O traits the runtime is generic over. NATS implementations live in
//! [`crate::nats`], in-memory ones (for virtual-time tests) in `memory` (feature `testing`). Key-value state
//! uses `wadm_store::kv::Kv`, status `wadm_store::status::StatusStore`.

use std::future::Future;
use std::time::Duration;

use wadm_store::availability::Availability;

/// Why an I/O operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IoError {
    /// Nobody answered in time.
    #[error("{what}: timed out")]
    Timeout {
        /// The operation, in words.
        what: String,
    },
    /// Nobody serves the subject (for a control request: the host is gone).
    #[error("{what}: no responders")]
    NoResponders {
        /// The operation, in words.
        what: String,
    },
    /// Any other failure.
    #[error("{what}: {reason}")]
    Failed {
        /// The operation, in words.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// A pull from or a publish to a stream failed in a way that says the stream (or its
    /// consumer) is gone, or cannot be served for now (see [`wadm_store::availability`]).
    #[error("{what}: {reason}")]
    Storage {
        /// The operation, in words.
        what: String,
        /// What went wrong.
        reason: String,
        /// What the failure says about the stream.
        availability: Availability,
    },
}

impl IoError {
    /// An [`IoError::Failed`] of the operation `what`.
    pub fn failed(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        IoError::Failed { what: what.into(), reason: reason.to_string() }
    }

    /// The error of a pull from or a publish to a stream: [`IoError::Storage`] when it says
    /// the stream or consumer is gone or unavailable, [`IoError::Failed`] otherwise.
    pub fn storage(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        let (what, reason) = (what.into(), reason.to_string());
        match wadm_store::availability::classify(&reason) {
            Availability::Other => IoError::Failed { what, reason },
            availability => IoError::Storage { what, reason, availability },
        }
    }

    /// What the error says about wadm's streams ([`Availability::Other`]: nothing).
    pub fn availability(&self) -> Availability {
        match self {
            IoError::Storage { availability, .. } => *availability,
            _ => Availability::Other,
        }
    }
}

/// A message handed out by a durable consumer. Until it is acked it is redelivered (after the
/// consumer's ack wait, or the delay of a [`Delivery::nak`]).
pub trait Delivery: Send {
    /// The subject it was published on.
    fn subject(&self) -> &str;
    /// Its body.
    fn payload(&self) -> &[u8];
    /// The message's sequence in its stream.
    fn stream_sequence(&self) -> u64;
    /// How many times it has been delivered, this time included (1: first delivery).
    fn delivered(&self) -> u64;
    /// Messages of the consumer still queued behind this one (`0` when unknown).
    fn pending(&self) -> u64 {
        0
    }
    /// When the stream stored it (ms since the epoch, the server's clock), when known: the time
    /// the lattice said it, as opposed to when a replica got round to it.
    fn stored_at(&self) -> Option<wadm_lattice::Timestamp> {
        None
    }
    /// Still working on it: restart the consumer's ack wait (a long step is not redelivered to
    /// another replica while this one lives; a dead replica's message is, one ack wait later).
    fn in_progress(&self) -> impl Future<Output = Result<(), IoError>> + Send {
        async { Ok(()) }
    }
    /// Whether its consumer redelivers on a wall-clock ack wait, so a long step must report
    /// progress (not so in virtual time, where a step takes no time).
    fn wants_progress(&self) -> bool {
        false
    }
    /// Done with it: never deliver it again (confirmed by the server).
    fn ack(self) -> impl Future<Output = Result<(), IoError>> + Send;
    /// Done with it, without waiting for the server's confirmation: for all but the last
    /// message of a batch, whose confirmed [`Delivery::ack`] follows on the same connection.
    fn ack_unconfirmed(self) -> impl Future<Output = Result<(), IoError>> + Send
    where
        Self: Sized,
    {
        self.ack()
    }
    /// Deliver it again after `delay`.
    fn nak(self, delay: Duration) -> impl Future<Output = Result<(), IoError>> + Send;
    /// Give up on it: never deliver it again, without calling it handled (a poison message).
    /// Where a consumer has no such notion, the same as [`Delivery::ack`].
    fn term(self) -> impl Future<Output = Result<(), IoError>> + Send
    where
        Self: Sized,
    {
        self.ack()
    }
}

/// A durable pull consumer.
pub trait Inbox: Send + Sync {
    /// What [`Inbox::next`] hands out.
    type Delivery: Delivery;
    /// The next deliverable message, waiting at most `wait` for one.
    fn next(
        &self,
        wait: Duration,
    ) -> impl Future<Output = Result<Option<Self::Delivery>, IoError>> + Send;
    /// Up to `max` deliverable messages in stream order, waiting at most `wait` for the first
    /// (what is deliverable at once after it, without waiting). Empty: nothing came.
    fn next_batch(
        &self,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Delivery>, IoError>> + Send {
        let _ = max;
        async move { Ok(self.next(wait).await?.into_iter().collect()) }
    }
}

/// A message to publish to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The subject to publish on (it selects the stream).
    pub subject: String,
    /// The body.
    pub payload: Vec<u8>,
    /// The deduplication id (`Nats-Msg-Id`).
    pub msg_id: String,
    /// Per-message time-to-live (`Nats-TTL`), if any.
    pub ttl: Option<Duration>,
}

/// What the stream said about a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The stream sequence it is stored at (for a duplicate, that of the copy stored before).
    pub sequence: u64,
    /// The id was seen within the dedupe window: nothing was stored.
    pub duplicate: bool,
}

/// Publishing to a stream, with acknowledgement.
pub trait Outbox: Send + Sync {
    /// Publish `message` and wait for the stream's acknowledgement.
    fn publish(&self, message: Outgoing)
    -> impl Future<Output = Result<Published, IoError>> + Send;
}

/// Lattice control requests.
pub trait ControlClient: Send + Sync {
    /// Send `body` to `subject` and wait at most `timeout` for the reply's payload.
    fn request(
        &self,
        subject: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<u8>, IoError>> + Send;

    /// Publish `payload` on `subject` without waiting for anyone (core NATS; allocation events).
    /// Does nothing unless the implementation has somewhere to publish.
    fn notify(
        &self,
        subject: &str,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        let _ = (subject, payload);
        std::future::ready(Ok(()))
    }
}

/// Asking the lattice what runs (host ping, inventories, links), for a discovery round.
pub trait Discoverer: Send + Sync {
    /// One round started at `started_at` (the caller's clock).
    fn discover(
        &self,
        lattice: &str,
        started_at: wadm_lattice::Timestamp,
    ) -> impl Future<Output = Result<wadm_lattice::Discovery, IoError>> + Send;
}

/// Run `work` on `delivery`, telling the consumer every `every` that the delivery is still in
/// progress (so only a replica that died loses it to another, after one ack wait).
pub async fn with_progress<D: Delivery + Sync, T>(
    delivery: &D,
    every: Duration,
    work: impl Future<Output = T>,
) -> T {
    if !delivery.wants_progress() {
        return work.await;
    }
    let every = every.max(Duration::from_millis(10));
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tokio::time::sleep(every) => {
                if let Err(e) = delivery.in_progress().await {
                    tracing::debug!(error = %e, "cannot extend the ack wait");
                }
            }
        }
    }
}
