//! The NATS shell: one connection for the whole simulated lattice, wildcard subscriptions routed
//! in-process to host state, one cheap heartbeat timer task per host, and the test-facing API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::{Client, Message};
use bytes::Bytes;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use wadm_protocol::event::HostStarted;
use wadm_protocol::{CloudEvent, HostInventory, Link, StringMap, subject};

use crate::config::{HostSpec, RequestCounts, SimConfig, friendly_name, hostcore_labels};
use crate::faults::FaultSwitches;
use crate::host::{HostState, SIM_HOST_VERSION};
use crate::host_sub::{HostSubscription, subscribe_host};
use crate::outcome::SimEvent;
use crate::probe::server_round_trip;
use crate::route::{plain_subscriptions, queue_subscriptions};
use crate::store::LatticeStore;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The NATS connection could not be opened.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect {
        /// The NATS URL tried.
        url: String,
        /// What the client said.
        reason: String,
    },
    /// A subscription to the lattice's control subjects failed.
    #[error("cannot subscribe to {subject}: {reason}")]
    Subscribe {
        /// The subject subscribed to.
        subject: String,
        /// What the client said.
        reason: String,
    },
    /// The lattice name cannot be used in subjects.
    #[error("lattice name `{0}` is not subject-safe (empty, or has `.`, `*`, `>` or whitespace)")]
    BadLattice(String),
}

/// A running host.
pub(crate) struct LiveHost {
    pub(crate) state: HostState,
    pub(crate) started: Instant,
    pub(crate) faults: Arc<FaultSwitches>,
    pub(crate) heartbeat: JoinHandle<()>,
    pub(crate) subscription: Option<HostSubscription>,
}

/// What tests read back about a host, kept after it stops or crashes.
#[derive(Default)]
pub(crate) struct HostRecord {
    pub(crate) requests: RequestCounts,
    pub(crate) max_seen: BTreeMap<String, u32>,
    pub(crate) faults: Arc<FaultSwitches>,
    pub(crate) events: EventCounts,
}

/// How many events a host published and how many its drop-events fault swallowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Events published.
    pub published: u64,
    /// Events the drop-events fault kept from being published.
    pub dropped: u64,
}

/// Everything mutable, behind one lock (critical sections are short and never await).
pub(crate) struct State {
    pub(crate) hosts: BTreeMap<String, LiveHost>,
    pub(crate) store: LatticeStore,
    pub(crate) records: BTreeMap<String, HostRecord>,
    pub(crate) rng: StdRng,
    /// Round-robin cursor for "one"-kind subjects.
    pub(crate) next_one: usize,
    /// Instances of each component running across the live hosts, and the most ever at once.
    pub(crate) totals: Totals,
}

/// Lattice-wide instance counts per component id, now and at their peak.
#[derive(Debug, Default)]
pub(crate) struct Totals {
    now: BTreeMap<String, u64>,
    peak: BTreeMap<String, u64>,
}

impl Totals {
    /// A host's counts of `id` went from `before` to `after`.
    pub(crate) fn change(&mut self, id: &str, before: u32, after: u32) {
        if before == after {
            return;
        }
        let now = self.now.entry(id.to_string()).or_default();
        *now = (*now + u64::from(after)).saturating_sub(u64::from(before));
        let now = *now;
        let peak = self.peak.entry(id.to_string()).or_default();
        *peak = (*peak).max(now);
    }

    /// The host running `components` went away.
    pub(crate) fn host_gone(
        &mut self,
        components: &BTreeMap<String, crate::host::RunningComponent>,
    ) {
        for (id, c) in components {
            self.change(id, c.count, 0);
        }
    }
}

pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) config: SimConfig,
    pub(crate) prefix: String,
    pub(crate) state: Mutex<State>,
    /// Where host subscriptions forward their messages (to the dispatcher).
    pub(crate) host_messages: mpsc::Sender<Message>,
}

fn check_lattice(l: &str) -> Result<(), SimError> {
    if l.is_empty() || l.contains(['.', '*', '>']) || l.contains(char::is_whitespace) {
        return Err(SimError::BadLattice(l.to_string()));
    }
    Ok(())
}

/// A simulated lattice of wasmCloud 1.x hosts on a real NATS server.
pub struct SimLattice {
    inner: Arc<Inner>,
    dispatcher: JoinHandle<()>,
}

impl SimLattice {
    /// Connect, subscribe to the lattice's control subjects and start routing. No hosts yet.
    pub async fn connect(config: SimConfig) -> Result<SimLattice, SimError> {
        check_lattice(&config.lattice)?;
        let client = async_nats::connect(&config.nats_url).await.map_err(|e| {
            SimError::Connect { url: config.nats_url.clone(), reason: e.to_string() }
        })?;
        Self::with_client(client, config).await
    }

    /// As [`SimLattice::connect`], on a connection the caller opened (with whatever
    /// credentials and TLS it needs); `config.nats_url` is then only what hosts report as their
    /// NATS address.
    pub async fn with_client(
        client: async_nats::Client,
        config: SimConfig,
    ) -> Result<SimLattice, SimError> {
        check_lattice(&config.lattice)?;
        let prefix = subject::ctl_prefix(&config.lattice);
        let queue_group = format!("wadm-sim.{}", config.lattice);
        let mut subs = Vec::new();
        let sub_err = |subject: &str, e: &dyn std::fmt::Display| SimError::Subscribe {
            subject: subject.to_string(),
            reason: e.to_string(),
        };
        for s in plain_subscriptions() {
            let s = format!("{prefix}.{s}");
            subs.push(client.subscribe(s.clone()).await.map_err(|e| sub_err(&s, &e))?);
        }
        for s in queue_subscriptions() {
            let s = format!("{prefix}.{s}");
            let sub = client.queue_subscribe(s.clone(), queue_group.clone()).await;
            subs.push(sub.map_err(|e| sub_err(&s, &e))?);
        }
        // Hosts answer at once: the server has processed every subscription after a round trip.
        server_round_trip(&client, ROUND_TRIP).await.map_err(|e| sub_err(&prefix, &e))?;
        let state = State {
            hosts: BTreeMap::new(),
            store: LatticeStore::default(),
            records: BTreeMap::new(),
            rng: StdRng::seed_from_u64(config.seed),
            next_one: 0,
            totals: Totals::default(),
        };
        let (host_messages, mut from_hosts) = mpsc::channel(1024);
        let state = Mutex::new(state);
        let inner = Arc::new(Inner { client, config, prefix, state, host_messages });
        let weak = Arc::downgrade(&inner);
        let dispatcher = tokio::spawn(async move {
            let mut shared = futures::stream::select_all(subs);
            loop {
                let (msg, origin) = tokio::select! {
                    Some(msg) = shared.next() => (msg, Origin::Shared),
                    Some(msg) = from_hosts.recv() => (msg, Origin::HostSubscription),
                    else => break,
                };
                let Some(inner) = weak.upgrade() else { break };
                inner.dispatch(msg, origin).await;
            }
        });
        Ok(SimLattice { inner, dispatcher })
    }

    /// Start a host: it publishes `host_started` and answers requests before this returns.
    pub async fn add_host(&self, spec: HostSpec) -> String {
        let inner = &self.inner;
        let id = crate::host_id::new_host_id();
        let mut labels = hostcore_labels();
        labels.extend(spec.labels);
        let subscription =
            match subscribe_host(&inner.client, &inner.prefix, &id, inner.host_messages.clone())
                .await
            {
                Ok(sub) => Some(sub),
                Err(e) => {
                    tracing::warn!(host_id = %id, error = %e, "host subscription failed");
                    None
                }
            };
        // Addressed requests reach the host as soon as this returns.
        if let Err(e) = server_round_trip(&inner.client, ROUND_TRIP).await {
            tracing::warn!(host_id = %id, error = %e, "no round trip after subscribing");
        }
        let started_event = {
            let mut st = inner.lock();
            let name = spec.friendly_name.unwrap_or_else(|| friendly_name(&mut st.rng));
            let stagger = inner.config.heartbeat_stagger.as_millis() as u64;
            let extra = if stagger > 0 { st.rng.random_range(0..stagger) } else { 0 };
            let faults = Arc::new(FaultSwitches::from_settings(&inner.config.faults));
            let first_delay = inner.config.heartbeat_interval + Duration::from_millis(extra);
            let heartbeat = tokio::spawn(heartbeat_loop(
                Arc::downgrade(inner),
                id.clone(),
                first_delay,
                inner.config.heartbeat_interval,
            ));
            let state = HostState::new(id.clone(), name.clone(), labels.clone());
            let live = LiveHost {
                state,
                started: Instant::now(),
                faults: faults.clone(),
                heartbeat,
                subscription,
            };
            st.hosts.insert(id.clone(), live);
            st.records.insert(id.clone(), HostRecord { faults, ..HostRecord::default() });
            let data = HostStarted {
                friendly_name: name,
                labels,
                uptime_seconds: 0,
                version: SIM_HOST_VERSION.to_string(),
            };
            SimEvent::new("host_started", data)
        };
        inner.publish_event(&id, started_event).await;
        id
    }

    /// Stop a host gracefully: it publishes `host_stopped` and goes away. False if not running.
    pub async fn stop_host(&self, host_id: &str) -> bool {
        let Some(mut live) = self.inner.remove_host(host_id) else { return false };
        self.inner.unsubscribe(&mut live).await;
        let labels = live.state.labels.clone();
        let event = SimEvent::new("host_stopped", wadm_protocol::event::HostStopped { labels });
        self.inner.publish_event(host_id, event).await;
        true
    }

    /// Crash a host: it goes silent (no replies, heartbeats or events). False if not running.
    pub async fn crash_host(&self, host_id: &str) -> bool {
        let Some(mut live) = self.inner.remove_host(host_id) else { return false };
        self.inner.unsubscribe(&mut live).await;
        true
    }

    /// Make a provider's health checks pass or fail; its host publishes the matching event now
    /// (`health_check_passed` / `health_check_failed`, or `health_check_status` if unchanged).
    /// False if the host or provider is not running.
    pub async fn set_provider_health(
        &self,
        host_id: &str,
        provider_id: &str,
        healthy: bool,
    ) -> bool {
        let event = {
            let mut st = self.inner.lock();
            let Some(host) = st.hosts.get_mut(host_id) else { return false };
            host.state.set_provider_health(provider_id, healthy)
        };
        let Some(event) = event else { return false };
        self.inner.publish_event_maybe_dropped(host_id, event).await;
        true
    }

    /// Ids of the running hosts, sorted.
    pub fn hosts(&self) -> Vec<String> {
        self.inner.lock().hosts.keys().cloned().collect()
    }

    /// What a running host runs, as its next heartbeat would say.
    pub fn inventory(&self, host_id: &str) -> Option<HostInventory> {
        let st = self.inner.lock();
        st.hosts.get(host_id).map(|h| h.state.inventory(h.started.elapsed()))
    }

    /// The full state of a running host (components with counts, annotations, refs and config).
    pub fn host_state(&self, host_id: &str) -> Option<HostState> {
        self.inner.lock().hosts.get(host_id).map(|h| h.state.clone())
    }

    /// Every link in the lattice, ordered by key.
    pub fn links(&self) -> Vec<Link> {
        self.inner.lock().store.links.values().cloned().collect()
    }

    /// Every named config in the lattice.
    pub fn configs(&self) -> BTreeMap<String, StringMap> {
        self.inner.lock().store.configs.clone()
    }

    /// The highest instance count `component_id` ever had on `host_id` (0 if never run).
    pub fn max_count_seen(&self, host_id: &str, component_id: &str) -> u32 {
        let st = self.inner.lock();
        st.records.get(host_id).and_then(|r| r.max_seen.get(component_id)).copied().unwrap_or(0)
    }

    /// The most instances of each component that ever ran at once across the lattice (for
    /// overshoot checks: a target of 4 must never be seen as 5, even briefly).
    pub fn peak_totals(&self) -> BTreeMap<String, u64> {
        self.inner.lock().totals.peak.clone()
    }

    /// Control requests a host handled, by kind (kept after the host stops).
    pub fn requests(&self, host_id: &str) -> RequestCounts {
        let st = self.inner.lock();
        st.records.get(host_id).map(|r| r.requests.clone()).unwrap_or_default()
    }

    /// Events a host published or dropped so far (kept after the host stops).
    pub fn event_counts(&self, host_id: &str) -> EventCounts {
        self.inner.lock().records.get(host_id).map(|r| r.events).unwrap_or_default()
    }

    /// The live fault switches of a host (also of a stopped one, harmlessly).
    pub fn faults(&self, host_id: &str) -> Option<Arc<FaultSwitches>> {
        self.inner.lock().records.get(host_id).map(|r| r.faults.clone())
    }

    /// The lattice name.
    pub fn lattice(&self) -> &str {
        &self.inner.config.lattice
    }

    /// Stop every host gracefully, stop routing, and flush what is pending. Stopping talks to the
    /// NATS server; when it is gone, the graceful part gives up after [`SHUTDOWN_GRACE`].
    pub async fn shutdown(self) {
        let graceful = async {
            for id in self.hosts() {
                self.stop_host(&id).await;
            }
            let _ = self.inner.client.flush().await;
        };
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful).await;
        self.dispatcher.abort();
    }
}

/// How long [`SimLattice::shutdown`] waits for the NATS server before it stops without it.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for SimLattice {
    fn drop(&mut self) {
        self.dispatcher.abort();
        for (_, host) in std::mem::take(&mut self.inner.lock().hosts) {
            host.heartbeat.abort();
        }
    }
}

async fn heartbeat_loop(inner: Weak<Inner>, host_id: String, first: Duration, every: Duration) {
    let mut ticks = tokio::time::interval_at(Instant::now() + first, every.max(MIN_INTERVAL));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        // The heartbeat, then each provider's periodic health status (same cadence).
        let events = {
            let st = inner.lock();
            let Some(h) = st.hosts.get(&host_id) else { return };
            if h.faults.heartbeats_paused() {
                Vec::new()
            } else {
                let beat = SimEvent::new("host_heartbeat", h.state.inventory(h.started.elapsed()));
                std::iter::once(beat).chain(h.state.health_statuses()).collect()
            }
        };
        for event in events {
            inner.publish_event_maybe_dropped(&host_id, event).await;
        }
    }
}

const MIN_INTERVAL: Duration = Duration::from_millis(10);
const ROUND_TRIP: Duration = Duration::from_secs(10);

/// Which subscription a control message came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// The lattice-wide plain ("all") and queue ("one") subscriptions.
    Shared,
    /// A host's own subscription (host-addressed subjects only).
    HostSubscription,
}

impl Inner {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remove_host(&self, host_id: &str) -> Option<LiveHost> {
        let mut st = self.lock();
        let live = st.hosts.remove(host_id)?;
        st.totals.host_gone(&live.state.components);
        drop(st);
        live.heartbeat.abort();
        Some(live)
    }

    /// Publish an event unless the host's drop-events fault eats it.
    /// Drop a removed host's subscription and wait until the server has processed that, so the
    /// next request to it gets "no responders".
    async fn unsubscribe(&self, live: &mut LiveHost) {
        if let Some(done) = live.subscription.as_mut().and_then(HostSubscription::close) {
            let _ = done.await;
        }
        let _ = server_round_trip(&self.client, ROUND_TRIP).await;
    }

    pub(crate) async fn publish_event_maybe_dropped(&self, host_id: &str, event: SimEvent) {
        let dropped = {
            let mut st = self.lock();
            let share = st.records.get(host_id).map(|r| r.faults.drop_events()).unwrap_or(0.0);
            let dropped = share > 0.0 && st.rng.random::<f64>() < share;
            if dropped && let Some(record) = st.records.get_mut(host_id) {
                record.events.dropped += 1;
            }
            dropped
        };
        if !dropped {
            self.publish_event(host_id, event).await;
        }
    }

    pub(crate) async fn publish_event(&self, host_id: &str, event: SimEvent) {
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let id = uuid::Uuid::now_v7().to_string();
        let envelope = CloudEvent::host_event(event.short, id, host_id, time, event.data);
        let bytes = serde_json::to_vec(&envelope).unwrap_or_default();
        let subject = subject::event(&self.config.lattice, event.short);
        if let Some(record) = self.lock().records.get_mut(host_id) {
            record.events.published += 1;
        }
        if let Err(e) = self.client.publish(subject, Bytes::from(bytes)).await {
            tracing::warn!(host_id, error = %e, "simulated host could not publish an event");
        }
    }
}

#[cfg(test)]
mod totals_tests {
    use super::Totals;

    #[test]
    fn peaks_count_every_host_at_once() {
        let mut t = Totals::default();
        t.change("c", 0, 2); // host A starts 2
        t.change("c", 0, 2); // host B starts 2: 4 at once
        t.change("c", 2, 1); // A scales down: 3
        t.change("c", 0, 1); // C starts 1: 4 again, never 5
        assert_eq!(t.now["c"], 4);
        assert_eq!(t.peak["c"], 4);
        t.change("c", 0, 1); // one too many
        assert_eq!(t.peak["c"], 5);
        let gone = std::collections::BTreeMap::new();
        t.host_gone(&gone);
        assert_eq!(t.now["c"], 5);
    }
}
