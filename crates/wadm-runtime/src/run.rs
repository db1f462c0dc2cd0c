//! The real loops on NATS: [`run`] sets up the streams, buckets and consumers, then runs, per
//! lattice, one event loop, a pool of command loops and a ticker, until `shutdown` resolves.
//! Every replica runs exactly this; there is no leader.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use tokio::sync::watch;
use tokio::task::JoinSet;
use wadm_server::kv::NatsKv;
use wadm_server::server::{MANIFEST_BUCKET, ensure_bucket, ensure_stream};
use wadm_server::status::NatsStatusStore;
use wadm_server::store::ManifestStore;

use crate::announce::{discover_into, tick_message};
use crate::clock::{Clock, Random, SeededRandom, SystemClock};
use crate::config::RuntimeConfig;
use crate::executor::Executor;
use crate::io::Outbox;
use crate::nats::{
    JsInbox, JsOutbox, NatsControl, NatsDiscoverer, RECORD_BUCKET, StreamSettings,
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
    /// The discovery round each replica runs per lattice at start-up.
    pub discovery: wadm_nats::DiscoveryConfig,
    /// This replica's name (in logs and discovery message ids).
    pub replica: String,
}

impl RunConfig {
    pub fn new(lattices: Vec<String>) -> Self {
        let runtime = RuntimeConfig::default();
        let streams =
            StreamSettings { command_ttl: runtime.command_ttl, ..StreamSettings::default() };
        Self {
            lattices,
            runtime,
            streams,
            manifest_bucket: MANIFEST_BUCKET.into(),
            command_workers: 8,
            poll_wait: Duration::from_secs(1),
            discovery: wadm_nats::DiscoveryConfig::default(),
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

type NatsPipeline =
    Pipeline<NatsKv, Arc<ManifestStore<NatsKv>>, NatsStatusStore, JsOutbox, NatsControl>;
type NatsExecutor = Executor<Arc<ManifestStore<NatsKv>>, NatsControl, JsOutbox>;

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
            description: "wadm: per-lattice runtime records".into(),
            history: 1,
            num_replicas: config.streams.replicas,
            ..Default::default()
        },
    )
    .await
    .map_err(setup)?;
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
    let store = Arc::new(ManifestStore::new(NatsKv::new(manifests, client.clone())));
    let outbox = JsOutbox::new(js.clone());
    let io = PipelineIo {
        records: NatsKv::new(records, client.clone()),
        desired: store.clone(),
        status: NatsStatusStore::new(js.clone(), status_stream, client.clone()),
        commands: outbox.clone(),
        control: NatsControl::new(client.clone()),
    };
    let pipeline: Arc<NatsPipeline> =
        Arc::new(Pipeline::new(io, clock.clone(), random.clone(), config.runtime.clone()));
    let executor: Arc<NatsExecutor> = Arc::new(Executor::new(
        store,
        NatsControl::new(client.clone()),
        outbox.clone(),
        clock.clone(),
        random,
        config.runtime.clone(),
    ));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for lattice in &config.lattices {
        let settings = &config.streams;
        let event_inbox =
            JsInbox::new(ensure_event_consumer(&events, lattice, settings).await.map_err(setup)?);
        let command_inbox = JsInbox::new(
            ensure_command_consumer(&commands, lattice, settings).await.map_err(setup)?,
        );
        let (p, stop, wait) = (pipeline.clone(), stop_rx.clone(), config.poll_wait);
        tasks.spawn(async move {
            while !*stop.borrow() {
                if let Err(e) = p.step(&event_inbox, wait).await {
                    tracing::warn!(error = %e, "event step failed");
                    pause_after_error(wait).await;
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
        let (events_out, started, replica) = (outbox.clone(), clock.now(), config.replica.clone());
        let discovering = lattice.clone();
        tasks.spawn(async move {
            let found =
                discover_into(&discoverer, &events_out, &discovering, started, &replica).await;
            match found {
                Ok(hosts) => tracing::info!(lattice = %discovering, hosts, "discovery round"),
                Err(e) => tracing::warn!(lattice = %discovering, error = %e, "discovery failed"),
            }
        });
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

/// After an I/O error, wait before the next attempt (not a hot loop while NATS is away).
async fn pause_after_error(wait: Duration) {
    tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
}
