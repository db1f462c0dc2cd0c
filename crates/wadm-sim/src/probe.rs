//! Small client-side helpers for tests and tools that look at a lattice from outside, the way a
//! manager does: gather `host.ping` answers, and wait until the server has seen a connection's
//! subscriptions.

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

/// Wait until the server has processed everything this connection sent so far (in particular
/// its subscriptions): publish to a subject the connection itself listens on and wait for the
/// message to come back. `Client::flush` alone only empties the local write buffer, so another
/// connection's message may still reach the server before this one's `SUB`.
pub async fn server_round_trip(
    client: &async_nats::Client,
    timeout: Duration,
) -> Result<(), ProbeError> {
    let nats = |e: &dyn std::fmt::Display| ProbeError::Nats(e.to_string());
    let probe = client.new_inbox();
    let mut echo = client.subscribe(probe.clone()).await.map_err(|e| nats(&e))?;
    client.publish(probe, Vec::new().into()).await.map_err(|e| nats(&e))?;
    client.flush().await.map_err(|e| nats(&e))?;
    match tokio::time::timeout(timeout, echo.next()).await {
        Ok(Some(_)) => Ok(()),
        _ => Err(ProbeError::Nats(format!("no round trip to the server within {timeout:?}"))),
    }
}
