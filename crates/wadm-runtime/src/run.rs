//! The real loops on NATS: [`run`] sets up the streams, buckets and consumers, then runs, per
//! lattice, one event loop, a pool of command loops and a ticker, until `shutdown` resolves.
//! Every replica runs exactly this; there is no leader.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use wadm_nats::store::KvStateStore;
use wadm_server::kv::NatsKv;
use wadm_server::server::{MANIFEST_BUCKET, ensure_bucket, ensure_stream};
use wadm_server::status::NatsStatusStore;
use wadm_server::store::ManifestStore;

use crate::announce::{discover_with_id, periodic_discovery_id, tick_message, timer_message};
use crate::clock::{Clock, Random, SeededRandom, SystemClock};
use crate::config::RuntimeConfig;
use crate::executor::{Executor, HeadOrders};
use crate::io::Outbox;
use crate::nats::{
    JsInbox, JsOutbox, NatsControl, NatsDiscoverer, RECORD_BUCKET, STATE_BUCKET, StreamSettings,
    ensure_command_consumer, ensure_event_consumer, ensure_streams,
};
use crate::pipeline::{Pipeline, PipelineIo};

/// What [`run`] needs to know.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The lattices this wadm manages.
    pub lattices: Vec<String>,
    pub runtime: RuntimeConfig,
    pub streams: StreamSettings,
    /// The API server's manifest bucket (desired state).
    pub manifest_bucket: String,
    /// Concurrent command loops per lattice in this replica.
    pub command_workers: usize,
    /// How long one pull waits for a message.
    pub poll_wait: Duration,
    /// How a discovery round asks the lattice (each replica runs one per lattice at start-up).
    pub discovery: wadm_nats::DiscoveryConfig,
    /// How often a discovery round runs per lattice (replicas' rounds of one period are stored
    /// once). Default 5 minutes.
    pub discovery_every: Duration,
    /// The least time between two rounds this replica runs because observed state is in doubt
    /// (state read back from the store, an event from an unknown host). Default 30 s.
    pub discovery_min_gap: Duration,
    /// This replica's name (in logs and discovery message ids).
    pub replica: String,
}

impl RunConfig {
    pub fn new(lattices: Vec<String>) -> Self {
        let runtime = RuntimeConfig::default();
        // The event consumer lets one replica hold as many events as a step takes.
        let streams = StreamSettings {
            command_ttl: runtime.command_ttl,
            event_batch: runtime.batch_size,
            ..StreamSettings::default()
        };
        Self {
            lattices,
            runtime,
            streams,
            manifest_bucket: MANIFEST_BUCKET.into(),
            command_workers: 8,
            poll_wait: Duration::from_secs(1),
            discovery: wadm_nats::DiscoveryConfig::default(),
            discovery_every: Duration::from_secs(300),
            discovery_min_gap: Duration::from_secs(30),
            replica: format!("{}-{}", std::process::id(), SystemClock.now()),
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot set up the runtime: {0}")]
    Setup(String),
}

fn setup(e: impl std::fmt::Display) -> RunError {
    RunError::Setup(e.to_string())
}

type NatsPipeline = Pipeline<
    NatsKv,
    KvStateStore,
    Arc<ManifestStore<NatsKv>>,
    NatsStatusStore,
    JsOutbox,
    NatsControl,
>;
type NatsExecutor = Executor<Arc<ManifestStore<NatsKv>>, NatsControl, JsOutbox, HeadOrders<NatsKv>>;

/// Run the runtime on `client` until `shutdown` resolves; in-flight steps finish first (an
/// interrupted step is redone by another replica anyway).
pub async fn run(
    config: RunConfig,
    client: async_nats::Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let js = jetstream::new(client.clone());
    let (events, commands) = ensure_streams(&js, &config.streams).await.map_err(setup)?;
    let records = ensure_bucket(
        &js,
        kv::Config {
            bucket: RECORD_BUCKET.into(),
            description: "wadm: per-lattice runtime heads (applications, last applied event)"
                .into(),
            history: 1,
            num_replicas: config.streams.replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(setup)?;
    ensure_bucket(
        &js,
        kv::Config {
            bucket: STATE_BUCKET.into(),
            description: "wadm: observed lattice state, one key per entity".into(),
            history: 1,
            num_replicas: config.streams.replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(setup)?;
    let state = KvStateStore::open(&js, STATE_BUCKET).await.map_err(setup)?;
    let manifests = ensure_bucket(
        &js,
        kv::Config {
            bucket: config.manifest_bucket.clone(),
            description: "wadm: application manifests, versions and history".into(),
            history: 1,
            num_replicas: config.streams.replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(setup)?;
    let status_stream =
        ensure_stream(&js, NatsStatusStore::stream_config()).await.map_err(setup)?;

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let random: Arc<dyn Random> = Arc::new(SeededRandom::from_entropy());
    let store = Arc::new(ManifestStore::new(NatsKv::new(manifests)));
    let outbox = JsOutbox::new(js.clone());
    let io = PipelineIo {
        records: NatsKv::new(records.clone()),
        state,
        desired: store.clone(),
        status: NatsStatusStore::new(js.clone(), status_stream),
        commands: outbox.clone(),
        control: NatsControl::new(client.clone()),
    };
    let pipeline: Arc<NatsPipeline> =
        Arc::new(Pipeline::new(io, clock.clone(), random.clone(), config.runtime.clone()));
    let executor: Arc<NatsExecutor> = Arc::new(
        Executor::new(
            store,
            NatsControl::new(client.clone()),
            outbox.clone(),
            clock.clone(),
            random,
            config.runtime.clone(),
        )
        .with_orders(HeadOrders(NatsKv::new(records))),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for lattice in &config.lattices {
        let settings = &config.streams;
        let event_inbox = MeteredInbox::new(
            JsInbox::new(ensure_event_consumer(&events, lattice, settings).await.map_err(setup)?),
            lattice,
        );
        let command_inbox = JsInbox::new(
            ensure_command_consumer(&commands, lattice, settings).await.map_err(setup)?,
        );
        // Capacity 1: a request while one is pending is the same request.
        let (doubt_tx, doubt_rx) = mpsc::channel::<()>(1);
        let (deadline_tx, deadline_rx) = watch::channel::<Option<u64>>(None);
        let (p, stop, wait) = (pipeline.clone(), stop_rx.clone(), config.poll_wait);
        tasks.spawn(async move {
            while !*stop.borrow() {
                let result = p.step(&event_inbox, wait).await;
                let handled = result.as_ref().ok().and_then(Option::as_ref).map_or(0, |d| d.events);
                event_inbox.record_step(handled);
                if let Ok(Some(done)) = &result {
                    let next = done.next_deadline;
                    deadline_tx.send_if_modified(|d| std::mem::replace(d, next) != next);
                }
                match result {
                    Ok(Some(done)) if done.state_in_doubt => {
                        let _ = doubt_tx.try_send(());
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "event step failed");
                        pause_after_error(wait).await;
                    }
                }
            }
        });
        for _ in 0..config.command_workers.max(1) {
            let (x, inbox, stop) = (executor.clone(), command_inbox.clone(), stop_rx.clone());
            tasks.spawn(async move {
                while !*stop.borrow() {
                    match x.step(&inbox, wait).await {
                        Ok(Some(done)) => tracing::debug!(?done, "command step"),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "command step failed");
                            pause_after_error(wait).await;
                        }
                    }
                }
            });
        }
        let discoverer = NatsDiscoverer::new(client.clone(), config.discovery.clone());
        let rounds = DiscoveryRounds {
            lattice: lattice.clone(),
            replica: config.replica.clone(),
            every: config.discovery_every,
            min_gap: config.discovery_min_gap,
        };
        let (events_out, clock_d, stop) = (outbox.clone(), clock.clone(), stop_rx.clone());
        tasks.spawn(rounds.run(discoverer, events_out, clock_d, doubt_rx, stop));
        let timer = (lattice.clone(), outbox.clone(), clock.clone(), stop_rx.clone());
        tasks.spawn(run_timer(timer.0, timer.1, timer.2, deadline_rx, timer.3));
        let (outbox, clock, mut stop) = (outbox.clone(), clock.clone(), stop_rx.clone());
        let (lattice, every) = (lattice.clone(), config.runtime.tick_every);
        tasks.spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = interval.tick() => {
                        let tick = tick_message(&lattice, clock.now(), every);
                        if let Err(e) = outbox.publish(tick).await {
                            tracing::warn!(error = %e, "cannot publish tick");
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
        });
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The timer of one lattice in this replica: when the next deadline the last step reported
/// (a host lease, an order's deadline, a failure backoff) is reached, publish a timer event for
/// it (its id names the deadline: the replicas' timers for one deadline are one message). So a
/// silent host is lost at its lease, not at the next tick.
async fn run_timer(
    lattice: String,
    events: JsOutbox,
    clock: Arc<dyn Clock>,
    mut deadline: watch::Receiver<Option<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = *deadline.borrow_and_update();
        let Some(at) = next else {
            tokio::select! {
                changed = deadline.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
            continue;
        };
        let wait = Duration::from_millis(at.saturating_sub(clock.now()));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                if let Err(e) = events.publish(timer_message(&lattice, at)).await {
                    tracing::warn!(error = %e, "cannot publish timer");
                }
                // Fired: wait for the next deadline a step reports.
                tokio::select! {
                    changed = deadline.changed() => if changed.is_err() { return },
                    _ = stop.changed() => return,
                }
            }
            changed = deadline.changed() => if changed.is_err() { return },
            _ = stop.changed() => return,
        }
    }
}

/// The discovery rounds of one lattice in this replica: one at start-up, one per period
/// (deduplicated across replicas by the period's message id), and one when the event loop
/// reports observed state in doubt (at most one per `min_gap`). Every round's answers go into
/// the event stream as a `discovered` message, merged in order by the pipeline.
struct DiscoveryRounds {
    lattice: String,
    replica: String,
    every: Duration,
    min_gap: Duration,
}

impl DiscoveryRounds {
    async fn run(
        self,
        discoverer: NatsDiscoverer,
        events: JsOutbox,
        clock: Arc<dyn Clock>,
        mut doubt: mpsc::Receiver<()>,
        mut stop: watch::Receiver<bool>,
    ) {
        let started = clock.now();
        let own_id = |at: u64| format!("discovered.{}.{}.{at}", self.lattice, self.replica);
        self.round(&discoverer, &events, started, own_id(started), "start-up").await;
        let mut last = started;
        let every = self.every.max(Duration::from_millis(1));
        let mut periodic = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let gap = self.min_gap.as_millis() as u64;
        loop {
            tokio::select! {
                _ = periodic.tick() => {
                    let now = clock.now();
                    let id = periodic_discovery_id(&self.lattice, now, every);
                    self.round(&discoverer, &events, now, id, "periodic").await;
                    last = now;
                }
                Some(()) = doubt.recv() => {
                    let now = clock.now();
                    if now.saturating_sub(last) >= gap {
                        self.round(&discoverer, &events, now, own_id(now), "state in doubt").await;
                        last = now;
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }

    async fn round(
        &self,
        discoverer: &NatsDiscoverer,
        events: &JsOutbox,
        at: u64,
        msg_id: String,
        why: &str,
    ) {
        match discover_with_id(discoverer, events, &self.lattice, at, msg_id).await {
            Ok(hosts) => tracing::info!(lattice = %self.lattice, hosts, why, "discovery round"),
            Err(e) => tracing::warn!(lattice = %self.lattice, error = %e, why, "discovery failed"),
        }
    }
}

/// The event consumer of one lattice, metered for the real-clock loop in [`run`]: it notes when
/// a delivery arrived (so a step's time excludes waiting for the message) and publishes the
/// consumer's pending count as `wadm_event_queue_pending{lattice}`. Metrics are a no-op unless
/// the binary installed a recorder; virtual-time tests drive the pipeline without this wrapper.
struct MeteredInbox {
    inner: JsInbox,
    lattice: String,
    received_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl MeteredInbox {
    fn new(inner: JsInbox, lattice: &str) -> Self {
        Self { inner, lattice: lattice.to_string(), received_at: std::sync::Mutex::new(None) }
    }

    /// After a step: its events count in `wadm_events_handled_total` and its time, from
    /// delivery to ack, in `wadm_reconcile_seconds`.
    fn record_step(&self, handled: usize) {
        let received = self.received_at.lock().ok().and_then(|mut at| at.take());
        if handled == 0 {
            return;
        }
        let lattice = self.lattice.clone();
        metrics::counter!("wadm_events_handled_total", "lattice" => lattice.clone())
            .increment(handled as u64);
        if let Some(at) = received {
            metrics::histogram!("wadm_reconcile_seconds", "lattice" => lattice)
                .record(at.elapsed().as_secs_f64());
        }
    }
}

impl crate::io::Inbox for MeteredInbox {
    type Delivery = <JsInbox as crate::io::Inbox>::Delivery;

    async fn next(&self, wait: Duration) -> Result<Option<Self::Delivery>, crate::io::IoError> {
        Ok(self.next_batch(1, wait).await?.into_iter().next())
    }

    async fn next_batch(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Self::Delivery>, crate::io::IoError> {
        use crate::io::Delivery;
        let batch = self.inner.next_batch(max, wait).await?;
        let pending = batch.last().map_or(0, |d| d.pending());
        metrics::gauge!("wadm_event_queue_pending", "lattice" => self.lattice.clone())
            .set(pending as f64);
        if !batch.is_empty()
            && let Ok(mut at) = self.received_at.lock()
        {
            *at = Some(std::time::Instant::now());
        }
        Ok(batch)
    }
}

/// After an I/O error, wait before the next attempt (not a hot loop while NATS is away).
async fn pause_after_error(wait: Duration) {
    tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
}
