//! Shared helpers of the simulator's integration tests: a NATS server, a simulated lattice, and
//! a recorder of every event the lattice publishes.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use wadm_protocol::CloudEvent;
use wadm_sim::{SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

pub const LATTICE: &str = "simtest";
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Fixture {
    pub server: NatsServer,
    pub client: async_nats::Client,
    pub sim: SimLattice,
    pub events: Events,
}

/// A server, a plain client, a recorder subscribed before any host starts, and a sim lattice.
pub async fn fixture(tune: impl FnOnce(&mut SimConfig)) -> Fixture {
    let (server, client) = server_and_client().await;
    let events = Events::record(&client).await;
    let mut config = SimConfig::new(server.url(), LATTICE);
    tune(&mut config);
    let sim = SimLattice::connect(config).await.unwrap();
    Fixture { server, client, sim, events }
}

/// A harness server and a client of it. The harness picks a free port and then waits for it
/// to accept TCP; if another process took the port in between, the "server" does not speak
/// NATS: start another one.
async fn server_and_client() -> (NatsServer, async_nats::Client) {
    for _ in 0..3 {
        let server = NatsServer::start();
        let url = server.url();
        let connect = || async {
            let attempt = async_nats::connect(url.clone());
            tokio::time::timeout(Duration::from_secs(1), attempt).await.ok()?.ok()
        };
        if let Some(client) = wait_for(Duration::from_secs(3), connect).await {
            return (server, client);
        }
    }
    panic!("no harness nats-server accepted a NATS connection in 3 attempts");
}

/// Every event published on the lattice, in arrival order (checked to arrive on the subject
/// that matches its type).
#[derive(Clone)]
pub struct Events(Arc<wadm_sim::EventTap>);

impl Events {
    pub async fn record(client: &async_nats::Client) -> Events {
        Events(Arc::new(wadm_sim::EventTap::start(client, LATTICE).await.unwrap()))
    }

    pub fn all(&self) -> Vec<CloudEvent> {
        assert_eq!(self.0.misrouted(), 0, "events on a subject that does not match their type");
        self.0.events()
    }

    /// Events of one short type, in order.
    pub fn of(&self, short: &str) -> Vec<CloudEvent> {
        self.all().into_iter().filter(|e| e.short_type() == Some(short)).collect()
    }

    /// Wait until at least `n` events of `short` arrived; return them all.
    pub async fn wait(&self, short: &str, n: usize) -> Vec<CloudEvent> {
        wait_for(WAIT, || async {
            let got = self.of(short);
            (got.len() >= n).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("expected {n} `{short}` events; got {:#?}", self.all()))
    }
}

/// A control subject of the test lattice.
pub fn ctl(suffix: &str) -> String {
    format!("wasmbus.ctl.v1.{LATTICE}.{suffix}")
}

/// One request/reply; the reply as JSON.
pub async fn request(
    client: &async_nats::Client,
    suffix: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let payload = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).unwrap() };
    let msg = tokio::time::timeout(WAIT, client.request(ctl(suffix), payload.into()))
        .await
        .expect("reply in time")
        .expect("a responder");
    serde_json::from_slice(&msg.payload).unwrap()
}

/// Scatter/gather: publish with an inbox, collect every answer until `n` arrived (or WAIT).
pub async fn gather(
    client: &async_nats::Client,
    suffix: &str,
    body: &[u8],
    n: usize,
) -> Vec<serde_json::Value> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.unwrap();
    wadm_sim::server_round_trip(client, WAIT).await.unwrap();
    client.publish_with_reply(ctl(suffix), inbox, body.to_vec().into()).await.unwrap();
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(WAIT, sub.next()).await {
            Ok(Some(msg)) => got.push(serde_json::from_slice(&msg.payload).unwrap_or_else(|e| {
                panic!(
                    "{e}: status {:?} desc {:?} subject {}",
                    msg.status, msg.description, msg.subject
                )
            })),
            _ => break,
        }
    }
    got
}
