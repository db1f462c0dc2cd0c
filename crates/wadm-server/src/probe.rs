//! Asking a lattice whether it has any hosts, behind the [`LatticeProbe`] trait so the API logic
//! does not depend on NATS. [`NatsProbe`] sends a `host.ping` to every host of the lattice and
//! waits a short window for the first answer; a lattice that answered is not asked again for
//! [`PROBE_MEMORY`].

use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;

/// Default window to wait for ping answers.
pub const DEFAULT_PROBE_WINDOW: Duration = Duration::from_secs(2);

/// Why a probe could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot probe lattice {lattice}: {reason}")]
pub struct ProbeError {
    /// The lattice that was to be probed.
    pub lattice: String,
    /// What NATS said, on one line.
    pub reason: String,
}

/// Answers "does this lattice have at least one host right now?".
pub trait LatticeProbe: Send + Sync + 'static {
    /// Whether `lattice` has a host now; an error when the question could not be asked.
    fn has_hosts(&self, lattice: &str) -> impl Future<Output = Result<bool, ProbeError>> + Send;
}

/// How long a lattice that answered a probe is taken to still have hosts without asking again:
/// every host answers a ping, so a burst of deploys must not ping the whole lattice each.
pub const PROBE_MEMORY: Duration = Duration::from_secs(30);

/// Ping on `wasmbus.ctl.v1.{lattice}.host.ping`; any answer within the window means yes. A yes
/// is remembered for [`PROBE_MEMORY`].
#[derive(Clone)]
pub struct NatsProbe {
    client: async_nats::Client,
    window: Duration,
    answered: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, Instant>>>,
}

impl NatsProbe {
    /// A probe over `client` that waits up to `window` for the first answer.
    pub fn new(client: async_nats::Client, window: Duration) -> Self {
        Self { client, window, answered: Default::default() }
    }

    fn answered(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Instant>> {
        self.answered.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LatticeProbe for NatsProbe {
    async fn has_hosts(&self, lattice: &str) -> Result<bool, ProbeError> {
        let recent = self.answered().get(lattice).is_some_and(|at| at.elapsed() < PROBE_MEMORY);
        if recent {
            return Ok(true);
        }
        let found = self.ping(lattice).await?;
        if found {
            self.answered().insert(lattice.to_string(), Instant::now());
        }
        Ok(found)
    }
}

impl NatsProbe {
    async fn ping(&self, lattice: &str) -> Result<bool, ProbeError> {
        let fail = |e: &dyn std::error::Error| ProbeError {
            lattice: lattice.to_string(),
            reason: wadm_protocol::one_line(e),
        };
        let inbox = self.client.new_inbox();
        let mut answers = self.client.subscribe(inbox.clone()).await.map_err(|e| fail(&e))?;
        let subject =
            wadm_protocol::subject::ctl(lattice, wadm_protocol::subject::suffix::HOST_PING);
        self.client
            .publish_with_reply(subject, inbox, bytes::Bytes::new())
            .await
            .map_err(|e| fail(&e))?;
        let first = tokio::time::timeout(self.window, async {
            while let Some(message) = answers.next().await {
                // "No responders" status messages carry no payload: not a host.
                if message.status.is_none() {
                    return true;
                }
            }
            false
        })
        .await;
        let _ = answers.unsubscribe().await;
        Ok(first.unwrap_or(false))
    }
}
