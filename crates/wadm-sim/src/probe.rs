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
    /// NATS failed a subscribe or publish, or the round trip timed out (the message says which).
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

/// Records every host event of one lattice (`wasmbus.evt.{lattice}.>`) from the moment
/// [`EventTap::start`] returns, in arrival order. Stops recording when dropped.
pub struct EventTap {
    seen: std::sync::Arc<std::sync::Mutex<Tapped>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Tapped {
    events: Vec<wadm_protocol::CloudEvent>,
    misrouted: usize,
}

impl EventTap {
    /// Subscribe (and make sure the server knows it) before returning. Messages that are not
    /// CloudEvents are skipped.
    pub async fn start(client: &async_nats::Client, lattice: &str) -> Result<Self, ProbeError> {
        let mut events = client
            .subscribe(subject::events_of(lattice))
            .await
            .map_err(|e| ProbeError::Nats(e.to_string()))?;
        server_round_trip(client, Duration::from_secs(10)).await?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Tapped::default()));
        let sink = seen.clone();
        let task = tokio::spawn(async move {
            while let Some(msg) = events.next().await {
                let Ok(event) = serde_json::from_slice::<wadm_protocol::CloudEvent>(&msg.payload)
                else {
                    continue;
                };
                let short = event.short_type().unwrap_or_default();
                let routed = msg.subject.as_str().rsplit('.').next() == Some(short);
                let mut tapped = sink.lock().unwrap_or_else(|p| p.into_inner());
                tapped.misrouted += usize::from(!routed);
                tapped.events.push(event);
            }
        });
        Ok(Self { seen, task })
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<wadm_protocol::CloudEvent> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).events.clone()
    }

    /// Events whose subject's last token is not their short type (a conforming host: 0).
    pub fn misrouted(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).misrouted
    }

    /// The events of one short type (`component_scaled`) so far.
    pub fn of(&self, short: &str) -> Vec<wadm_protocol::CloudEvent> {
        self.events().into_iter().filter(|e| e.short_type() == Some(short)).collect()
    }
}

impl Drop for EventTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}
