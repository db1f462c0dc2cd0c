//! Asking a lattice whether it has any hosts, behind the [`LatticeProbe`] trait so the API logic
//! does not depend on NATS. [`NatsProbe`] sends a `host.ping` to every host of the lattice and
//! waits a short window for the first answer.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

/// Default window to wait for ping answers.
pub const DEFAULT_PROBE_WINDOW: Duration = Duration::from_secs(2);

/// Why a probe could not be made.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot probe lattice {lattice}: {reason}")]
pub struct ProbeError {
    pub lattice: String,
    pub reason: String,
}

/// Answers "does this lattice have at least one host right now?".
pub trait LatticeProbe: Send + Sync + 'static {
    fn has_hosts(&self, lattice: &str) -> impl Future<Output = Result<bool, ProbeError>> + Send;
}

/// Ping on `wasmbus.ctl.v1.{lattice}.host.ping`; any answer within the window means yes.
#[derive(Clone)]
pub struct NatsProbe {
    client: async_nats::Client,
    window: Duration,
}

impl NatsProbe {
    pub fn new(client: async_nats::Client, window: Duration) -> Self {
        Self { client, window }
    }
}

impl LatticeProbe for NatsProbe {
    async fn has_hosts(&self, lattice: &str) -> Result<bool, ProbeError> {
        let fail = |e: &dyn std::error::Error| ProbeError {
            lattice: lattice.to_string(),
            reason: crate::connect::one_line(e),
        };
        let inbox = self.client.new_inbox();
        let mut answers = self.client.subscribe(inbox.clone()).await.map_err(|e| fail(&e))?;
        let subject = format!("wasmbus.ctl.v1.{lattice}.host.ping");
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
