//! Small client-side helpers for tests and tools that look at a lattice from outside, the way a
//! manager does: gather `host.ping` answers.

use std::time::Duration;

use futures::StreamExt;
use wadm_protocol::ctl::CtlReply;
use wadm_protocol::{Host, subject};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("NATS: {0}")]
    Nats(String),
}

/// Publish `host.ping` on `lattice` and collect answers until `want` arrived or `window` passed.
/// Answers that do not decode are skipped.
pub async fn ping_hosts(
    client: &async_nats::Client,
    lattice: &str,
    want: usize,
    window: Duration,
) -> Result<Vec<Host>, ProbeError> {
    let nats = |e: &dyn std::fmt::Display| ProbeError::Nats(e.to_string());
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await.map_err(|e| nats(&e))?;
    let ping = subject::ctl(lattice, subject::suffix::HOST_PING);
    client.publish_with_reply(ping, inbox, Vec::new().into()).await.map_err(|e| nats(&e))?;
    let deadline = tokio::time::Instant::now() + window;
    let mut hosts = Vec::new();
    while hosts.len() < want {
        let Ok(Some(msg)) = tokio::time::timeout_at(deadline, answers.next()).await else { break };
        if let Ok(CtlReply { response: Some(host), .. }) =
            serde_json::from_slice::<CtlReply<Host>>(&msg.payload)
        {
            hosts.push(host);
        }
    }
    Ok(hosts)
}
