//! The [`Observer`]: one task that keeps a lattice's observed state current and stored.
//!
//! At start it reads the stored state back (every host gets a fresh lease), subscribes to
//! `wasmbus.evt.{lattice}.>`, and runs a discovery round. Then it applies events as they come,
//! merges discovery answers, fetches the inventory of hosts it hears of before knowing them,
//! re-reads managed configs when they change, declares hosts lost when their lease runs out, and
//! re-discovers periodically. Every step's changes are persisted per key.
//! (The HA runtime will pull events from a durable stream and call
//! [`observe_event`](crate::events::observe_event) itself.)

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use futures::StreamExt;
use tokio::sync::{Mutex, broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use wadm_lattice::{
    Change, Changes, Discovery, LatticeState, LeaseConfig, expire, merge_discovery, next_expiry,
    refresh_leases,
};
use wadm_protocol::subject;

use crate::clock::now_ms;
use crate::discovery::{
    DiscoveryConfig, discover, fetch_configs, fetch_inventory, inventory_round,
};
use crate::events::decode_and_apply;
use crate::store::{StateStore, StoreError};

/// How many steps' changes the feed buffers per receiver.
const CHANGE_FEED_CAPACITY: usize = 4096;

/// Observer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObserverConfig {
    pub lattice: String,
    pub lease: LeaseConfig,
    pub discovery: DiscoveryConfig,
    /// Run a discovery round this often (besides the one at start); `None`: only at start.
    pub rediscover_every: Option<Duration>,
}

impl ObserverConfig {
    /// Defaults: 30 s heartbeats (70 s lease), 5 s gather window, re-discovery every 5 minutes.
    pub fn new(lattice: impl Into<String>) -> Self {
        Self {
            lattice: lattice.into(),
            lease: LeaseConfig::default(),
            discovery: DiscoveryConfig::default(),
            rediscover_every: Some(Duration::from_secs(300)),
        }
    }
}

/// Why the observer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ObserverError {
    #[error("cannot read stored state: {0}")]
    Load(#[from] StoreError),
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe { subject: String, reason: String },
}

/// Counters of what the observer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ObserverStats {
    /// Event messages received.
    pub events: u64,
    /// Event messages that did not decode (skipped).
    pub undecodable: u64,
    /// Complete discovery rounds merged.
    pub discovery_rounds: u64,
    /// Persist calls that failed.
    pub store_errors: u64,
}

struct Shared {
    state: Mutex<LatticeState>,
    feed: broadcast::Sender<Changes>,
    stats: std::sync::Mutex<ObserverStats>,
}

/// A running observer. Dropping it without [`Observer::stop`] aborts the task.
pub struct Observer {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

enum Answer {
    /// A complete discovery round.
    Round(Discovery),
    /// Answers to follow-up requests (one host's inventory, some configs).
    Partial(Discovery),
    /// A round that could not be run (the connection failed).
    Failed,
}

impl Observer {
    /// Load the stored state, subscribe to the lattice's events and start the task.
    pub async fn start<S: StateStore + 'static>(
        client: Client,
        store: S,
        config: ObserverConfig,
    ) -> Result<Observer, ObserverError> {
        let mut state = store.load(&config.lattice).await?;
        state.lattice = config.lattice.clone();
        refresh_leases(&mut state, now_ms());
        let events_subject = subject::events_of(&config.lattice);
        let sub_err = |e: &dyn std::fmt::Display| ObserverError::Subscribe {
            subject: events_subject.clone(),
            reason: e.to_string(),
        };
        let events = client.subscribe(events_subject.clone()).await.map_err(|e| sub_err(&e))?;
        client.flush().await.map_err(|e| sub_err(&e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            feed: broadcast::channel(CHANGE_FEED_CAPACITY).0,
            stats: std::sync::Mutex::new(ObserverStats::default()),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task =
            Run { client, store, config, shared: shared.clone(), unstored: Default::default() };
        let task = tokio::spawn(task.run(events, stop_rx));
        Ok(Observer { shared, stop: Some(stop_tx), task })
    }

    /// A copy of the observed state now.
    pub async fn state(&self) -> LatticeState {
        self.shared.state.lock().await.clone()
    }

    /// Every later step's [`Changes`] (entity changes, affected apps), in order. A receiver that
    /// falls more than a few thousand steps behind gets `Lagged` and should re-read the state.
    pub fn changes(&self) -> broadcast::Receiver<Changes> {
        self.shared.feed.subscribe()
    }

    /// What the observer did so far.
    pub fn stats(&self) -> ObserverStats {
        *self.shared.stats.lock().expect("stats lock")
    }

    /// Stop the task after the step in progress, and wait for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Run<S> {
    client: Client,
    store: S,
    config: ObserverConfig,
    shared: Arc<Shared>,
    /// Changes not yet stored because a write failed: retried with the next step.
    unstored: std::sync::Mutex<Changes>,
}

impl<S: StateStore + 'static> Run<S> {
    async fn run(self, mut events: async_nats::Subscriber, mut stop: oneshot::Receiver<()>) {
        let (tx, mut answers) = mpsc::unbounded_channel::<Answer>();
        let mut round_running = true;
        self.spawn_round(tx.clone());
        let mut rediscover = self.config.rediscover_every.map(|every| {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        });
        loop {
            let expiry = self.until_next_expiry().await;
            tokio::select! {
                _ = &mut stop => break,
                message = events.next() => {
                    let Some(message) = message else { break };
                    self.on_event(&message.payload, &tx).await;
                }
                Some(answer) = answers.recv() => {
                    let (discovery, complete) = match answer {
                        Answer::Round(d) => (d, true),
                        Answer::Partial(d) => (d, false),
                        Answer::Failed => {
                            round_running = false;
                            continue;
                        }
                    };
                    round_running &= !complete;
                    self.on_answer(discovery, complete, &tx).await;
                }
                _ = tokio::time::sleep(expiry) => {
                    let mut state = self.shared.state.lock().await;
                    let changes = expire(&mut state, now_ms(), &self.config.lease);
                    for change in &changes.changes {
                        if let Change::HostRemoved { host, .. } = change {
                            tracing::info!(lattice = %self.config.lattice, %host, "host lost");
                        }
                    }
                    self.persist(&state, &changes).await;
                }
                _ = tick(&mut rediscover) => {
                    if !round_running {
                        round_running = true;
                        self.spawn_round(tx.clone());
                    }
                }
            }
        }
    }

    async fn until_next_expiry(&self) -> Duration {
        let state = self.shared.state.lock().await;
        match next_expiry(&state, &self.config.lease) {
            Some(at) => Duration::from_millis(at.saturating_sub(now_ms()).max(1)),
            None => Duration::from_secs(3600),
        }
    }

    async fn on_event(&self, payload: &[u8], tx: &mpsc::UnboundedSender<Answer>) {
        let mut state = self.shared.state.lock().await;
        let result = decode_and_apply(&mut state, payload, now_ms());
        {
            let mut stats = self.shared.stats.lock().expect("stats lock");
            stats.events += 1;
            stats.undecodable += u64::from(result.is_err());
        }
        let changes = match result {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(lattice = %self.config.lattice, error = %e, "undecodable event skipped");
                return;
            }
        };
        self.persist(&state, &changes).await;
        drop(state);
        self.follow_up(&changes, tx);
    }

    async fn on_answer(
        &self,
        discovery: Discovery,
        complete: bool,
        tx: &mpsc::UnboundedSender<Answer>,
    ) {
        let mut state = self.shared.state.lock().await;
        let changes = merge_discovery(&mut state, &discovery, now_ms());
        self.persist(&state, &changes).await;
        drop(state);
        if complete {
            self.shared.stats.lock().expect("stats lock").discovery_rounds += 1;
        }
        self.follow_up(&changes, tx);
    }

    /// Ask for what a step showed we do not know: inventories of new hosts, managed configs.
    fn follow_up(&self, changes: &Changes, tx: &mpsc::UnboundedSender<Answer>) {
        let managed = &self.config.discovery.managed_configs;
        let configs: std::collections::BTreeSet<String> = changes
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::ConfigSet { name } if managed.contains(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        if changes.needs_inventory.is_empty() && configs.is_empty() {
            return;
        }
        let client = self.client.clone();
        let lattice = self.config.lattice.clone();
        let timeout = self.config.discovery.request_timeout;
        let hosts = changes.needs_inventory.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let started_at = now_ms();
            for host in hosts {
                if let Some(inv) = fetch_inventory(&client, &lattice, &host, timeout).await {
                    let _ = tx.send(Answer::Partial(inventory_round(started_at, inv)));
                }
            }
            if !configs.is_empty() {
                let configs = fetch_configs(&client, &lattice, &configs, timeout).await;
                let _ = tx.send(Answer::Partial(Discovery {
                    started_at,
                    configs,
                    ..Discovery::default()
                }));
            }
        });
    }

    fn spawn_round(&self, tx: mpsc::UnboundedSender<Answer>) {
        let client = self.client.clone();
        let lattice = self.config.lattice.clone();
        let config = self.config.discovery.clone();
        tokio::spawn(async move {
            let started_at = now_ms();
            match discover(&client, &lattice, &config, started_at).await {
                Ok(round) => {
                    let _ = tx.send(Answer::Round(round));
                }
                Err(e) => {
                    tracing::warn!(%lattice, error = %e, "discovery round failed");
                    let _ = tx.send(Answer::Failed);
                }
            }
        });
    }

    async fn persist(&self, state: &LatticeState, changes: &Changes) {
        if !changes.is_empty() {
            // Nobody listening is fine.
            let _ = self.shared.feed.send(changes.clone());
        }
        // Entities whose write failed earlier are written again with this step: the writes are
        // computed from the current state, so a retry can never store an outdated value.
        let mut writes = std::mem::take(&mut *self.unstored.lock().expect("unstored lock"));
        writes.merge(changes.clone());
        if writes.changes.is_empty() && writes.forgotten_tombstones.is_empty() {
            return;
        }
        if let Err(e) = self.store.persist(state, &writes).await {
            tracing::warn!(lattice = %self.config.lattice, error = %e, "observed state not stored");
            self.shared.stats.lock().expect("stats lock").store_errors += 1;
            *self.unstored.lock().expect("unstored lock") = writes;
        }
    }
}

async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
