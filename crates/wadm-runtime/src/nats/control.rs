//! Lattice control requests over core NATS request/reply, each sent only once the server has
//! just relayed a message of ours (see [`NatsControl`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::{Client, RequestErrorKind, Subscriber};
use futures::StreamExt;

use crate::io::{ControlClient, IoError};

/// How long a proof that the server relays our messages is trusted before a request.
const PROOF_FRESH: Duration = Duration::from_millis(20);

/// Sends control requests on one connection.
///
/// A request written to a server that froze (SIGSTOP, a stalled VM) sits in its socket until
/// it thaws — seconds or minutes later, long after wadm gave up on it and another replica sent
/// the same command — and then reaches the host: a repeat, or an outdated order. The client
/// notices the freeze only after missed pings. So before a request, a message to our own
/// subscription must have come back through the server within the last 20 ms; when
/// it does not come back, the request is not sent (a timeout, retried like an unanswered one).
#[derive(Clone)]
pub struct NatsControl {
    client: Client,
    proof: Arc<tokio::sync::Mutex<Proof>>,
}

/// The echo round trip that proves the server is relaying: our own inbox subscription and the
/// last outcome.
#[derive(Default)]
struct Proof {
    echo: Option<(String, Subscriber)>,
    sequence: u64,
    last: Option<(Instant, bool)>,
}

impl NatsControl {
    /// Sends control requests over `client`.
    pub fn new(client: Client) -> Self {
        Self { client, proof: Arc::default() }
    }

    /// Whether the server relayed a message of ours just now, asking it if the last answer is
    /// older than [`PROOF_FRESH`]. Callers that waited for another caller's round trip take
    /// its outcome.
    async fn relaying(&self, timeout: Duration) -> Result<bool, IoError> {
        let mut proof = self.proof.lock().await;
        if let Some((at, ok)) = proof.last
            && at.elapsed() < PROOF_FRESH
        {
            return Ok(ok);
        }
        proof.sequence += 1;
        let sequence = proof.sequence.to_string();
        let (subject, sub) = match &mut proof.echo {
            Some(echo) => echo,
            empty => {
                let subject = self.client.new_inbox();
                let sub = self
                    .client
                    .subscribe(subject.clone())
                    .await
                    .map_err(|e| IoError::failed("control connection probe", e))?;
                empty.insert((subject, sub))
            }
        };
        self.client
            .publish(subject.clone(), sequence.clone().into())
            .await
            .map_err(|e| IoError::failed("control connection probe", e))?;
        // Echoes of earlier probes that timed out may come first: only ours counts.
        let echoed = async {
            while let Some(msg) = sub.next().await {
                if msg.payload.as_ref() == sequence.as_bytes() {
                    return true;
                }
            }
            false
        };
        let ok = tokio::time::timeout(timeout, echoed).await.unwrap_or(false);
        proof.last = Some((Instant::now(), ok));
        Ok(ok)
    }
}

impl ControlClient for NatsControl {
    async fn request(
        &self,
        subject: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, IoError> {
        if !self.relaying(timeout).await? {
            return Err(IoError::Timeout {
                what: format!("{subject}: not sent, the NATS server relays nothing of ours"),
            });
        }
        let request = async_nats::Request::new().payload(body.into()).timeout(Some(timeout));
        match self.client.send_request(subject.to_string(), request).await {
            Ok(reply) => Ok(reply.payload.to_vec()),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::TimedOut => IoError::Timeout { what: subject.to_string() },
                RequestErrorKind::NoResponders => {
                    IoError::NoResponders { what: subject.to_string() }
                }
                _ => IoError::failed(subject, e),
            }),
        }
    }

    async fn notify(&self, subject: &str, payload: Vec<u8>) -> Result<(), IoError> {
        self.client
            .publish(subject.to_string(), payload.into())
            .await
            .map_err(|e| IoError::failed(subject, e))
    }
}
