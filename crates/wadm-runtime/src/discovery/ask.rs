//! One discovery round over NATS: *asking* the lattice what it runs.
//!
//! One round pings every host (`host.ping`, gathering answers until the gather window passes),
//! fetches each answering host's inventory (`host.get.{host}`) as soon as its ping answer arrives,
//! and asks for every link (`link.get`) and the configs wadm manages (`config.get.{name}`). The
//! answers are merged into the state by the pure [`wadm_lattice::merge_discovery`].
//! [`NatsDiscoverer`] is the runtime's [`Discoverer`] over one connection.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::de::DeserializeOwned;
use wadm_lattice::{DiscoveredHost, Discovery, Timestamp};
use wadm_protocol::ctl::CtlReply;
use wadm_protocol::subject::{self, suffix};
use wadm_protocol::{Host, HostInventory, Link, StringMap};

use crate::io::{ControlClient, Discoverer, IoError};

/// Discovery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// How long to gather `host.ping` answers (the ecosystem's default is 5 s).
    pub gather_window: Duration,
    /// Timeout of each single-answer request (`host.get`, `link.get`, `config.get`).
    pub request_timeout: Duration,
    /// Configs whose values wadm reads (the ones it manages).
    pub managed_configs: BTreeSet<String>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            gather_window: Duration::from_secs(5),
            request_timeout: Duration::from_secs(2),
            managed_configs: BTreeSet::new(),
        }
    }
}

/// Send one request and decode the reply's `response`. `Ok(None)`: the host answered with no
/// response body. `Err`: no answer, a refusal, or an unreadable answer (the reason, for logs).
pub async fn request<T: DeserializeOwned>(
    client: &Client,
    subject: String,
    timeout: Duration,
) -> Result<Option<T>, String> {
    let reply = tokio::time::timeout(timeout, client.request(subject.clone(), Vec::new().into()))
        .await
        .map_err(|_| format!("{subject}: no answer within {timeout:?}"))?
        .map_err(|e| format!("{subject}: {e}"))?;
    let reply: CtlReply<T> = serde_json::from_slice(&reply.payload)
        .map_err(|e| format!("{subject}: unreadable reply: {e}"))?;
    if !reply.success {
        return Err(format!("{subject}: refused: {}", reply.message));
    }
    Ok(reply.response)
}

/// A host's inventory, or `None` when it did not answer in time.
pub async fn fetch_inventory(
    client: &Client,
    lattice: &str,
    host_id: &str,
    timeout: Duration,
) -> Option<HostInventory> {
    let subject = subject::ctl_host(lattice, suffix::HOST_GET, host_id);
    match request::<HostInventory>(client, subject, timeout).await {
        Ok(Some(mut inv)) => {
            if inv.host_id.is_empty() {
                inv.host_id = host_id.to_string();
            }
            if let Some(reason) = inv.bounds_error() {
                tracing::warn!(host_id, %reason, "inventory refused");
                return None;
            }
            Some(inv)
        }
        Ok(None) => None,
        Err(reason) => {
            tracing::debug!(%reason, "inventory not fetched");
            None
        }
    }
}

/// One host's inventory through the runtime's control client (a host reported stopped, a
/// command's host before it is sent again): `Some` only when it answers with one within
/// `timeout` (at most 2 s: a host that has left gets "no responders" at once).
pub async fn ask_inventory<C: ControlClient>(
    control: &C,
    lattice: &str,
    host: &str,
    timeout: Duration,
) -> Option<HostInventory> {
    let subject = subject::ctl_host(lattice, suffix::HOST_GET, host);
    let timeout = timeout.min(Duration::from_secs(2));
    let bytes = control.request(&subject, Vec::new(), timeout).await.ok()?;
    match serde_json::from_slice::<CtlReply<HostInventory>>(&bytes) {
        Ok(CtlReply { success: true, response: Some(inventory), .. })
            if inventory.bounds_error().is_none() =>
        {
            Some(inventory)
        }
        _ => None,
    }
}

/// The values of the named configs: `Some` exists, `None` not found; unanswered names are absent.
pub async fn fetch_configs(
    client: &Client,
    lattice: &str,
    names: &BTreeSet<String>,
    timeout: Duration,
) -> BTreeMap<String, Option<StringMap>> {
    let asks = names.iter().map(|name| async move {
        let subject = subject::ctl_host(lattice, suffix::CONFIG_GET, name);
        (name.clone(), request::<StringMap>(client, subject, timeout).await)
    });
    let answers = futures::future::join_all(asks).await;
    answers
        .into_iter()
        .filter_map(|(name, answer)| match answer {
            Ok(values) => Some((name, values)),
            Err(reason) => {
                tracing::debug!(%reason, "config not fetched");
                None
            }
        })
        .collect()
}

/// Run one discovery round. `started_at` is wadm's clock when the round begins.
pub async fn discover(
    client: &Client,
    lattice: &str,
    config: &DiscoveryConfig,
    started_at: Timestamp,
) -> Result<Discovery, async_nats::Error> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    let ping = subject::ctl(lattice, suffix::HOST_PING);
    client.publish_with_reply(ping, inbox, Vec::new().into()).await?;
    client.flush().await?;

    let links = async {
        let subject = subject::ctl(lattice, suffix::LINK_GET);
        match request::<Vec<Link>>(client, subject, config.request_timeout).await {
            Ok(links) => {
                let (links, refused): (Vec<Link>, Vec<Link>) =
                    links.unwrap_or_default().into_iter().partition(|l| l.bounds_error().is_none());
                if let Some(reason) = refused.first().and_then(Link::bounds_error) {
                    tracing::warn!(refused = refused.len(), %reason, "links refused");
                }
                Some(links)
            }
            Err(reason) => {
                tracing::debug!(%reason, "links not fetched");
                None
            }
        }
    };
    let configs = fetch_configs(client, lattice, &config.managed_configs, config.request_timeout);
    let hosts = gather_hosts(client, lattice, config, &mut answers);
    let (links, configs, hosts) = tokio::join!(links, configs, hosts);
    let _ = answers.unsubscribe().await;
    Ok(Discovery { started_at, hosts, links, configs })
}

/// Gather ping answers until the window passes, fetching each host's inventory as it answers.
async fn gather_hosts(
    client: &Client,
    lattice: &str,
    config: &DiscoveryConfig,
    answers: &mut async_nats::Subscriber,
) -> Vec<DiscoveredHost> {
    let window = tokio::time::sleep(config.gather_window);
    tokio::pin!(window);
    let mut inventories = FuturesUnordered::new();
    let mut found: BTreeMap<String, DiscoveredHost> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = &mut window => break,
            Some(msg) = answers.next() => {
                let Ok(reply) = serde_json::from_slice::<CtlReply<Host>>(&msg.payload) else {
                    continue;
                };
                let Some(host) = reply.response.filter(|h| !h.id.is_empty()) else { continue };
                if let Some(reason) = wadm_protocol::names::id_error("host id", &host.id) {
                    tracing::warn!(%reason, "ping answer refused");
                    continue;
                }
                if found.contains_key(&host.id) {
                    continue;
                }
                let id = host.id.clone();
                found.insert(id.clone(), DiscoveredHost { host, inventory: None });
                inventories.push(async move {
                    let inv = fetch_inventory(client, lattice, &id, config.request_timeout).await;
                    (id, inv)
                });
            }
            Some((id, inv)) = inventories.next() => {
                if let Some(found) = found.get_mut(&id) {
                    found.inventory = inv;
                }
            }
        }
    }
    while let Some((id, inv)) = inventories.next().await {
        if let Some(found) = found.get_mut(&id) {
            found.inventory = inv;
        }
    }
    found.into_values().collect()
}

/// Asks the lattice on one connection.
#[derive(Clone)]
pub struct NatsDiscoverer {
    client: Client,
    config: DiscoveryConfig,
}

impl NatsDiscoverer {
    /// Rounds on `client` with these settings.
    pub fn new(client: Client, config: DiscoveryConfig) -> Self {
        Self { client, config }
    }
}

impl Discoverer for NatsDiscoverer {
    async fn discover(&self, lattice: &str, started_at: Timestamp) -> Result<Discovery, IoError> {
        discover(&self.client, lattice, &self.config, started_at)
            .await
            .map_err(|e| IoError::failed(format!("discover lattice {lattice}"), e))
    }
}
