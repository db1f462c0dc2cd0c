//! The real loops on NATS: [`run`] sets up the streams, buckets and consumers, then runs, per
//! lattice, one event loop, a pool of command loops and a ticker, until `shutdown` resolves.
//! Every replica runs exactly this; there is no leader.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use wadm_store::availability::{Availability, Checked};
use wadm_store::kv::NatsKv;
use wadm_store::manifest::ManifestStore;
use wadm_store::observed::{KvStateStore, OBSERVED_DESCRIPTION};
use wadm_store::provision::{DirectGets, ProvisionError, Provisioner, Refusals, bucket_config};
use wadm_store::status::NatsStatusStore;
use wadm_store::streams::{
    StreamSettings, command_stream_name, ensure_command_consumer, ensure_event_consumer,
    ensure_streams, event_stream_name,
};

use crate::announce::Announcer;
use crate::clock::{Clock, Random, SeededRandom, SystemClock};
use crate::config::RuntimeConfig;
use crate::discovery::{DiscoveryConfig, DiscoveryRounds, NatsDiscoverer};
use crate::executor::{Executor, HeadOrders};
use crate::membership::{Membership, PRESENCE_EVERY, PRESENCE_TTL, Presence};
use crate::nats::{JsInbox, JsOutbox, NatsControl};
use crate::pipeline::{Pipeline, PipelineIo};
use wadm_store::health::Health;

/// What [`run`] needs to know.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The lattices this wadm manages.
    pub lattices: Vec<String>,
    /// The runtime's behaviour: batching, timeouts, retries, backoff, orphans.
    pub runtime: RuntimeConfig,
    /// The streams' names (every bucket's too: [`StreamSettings::names`]), sizes and timings.
    pub streams: StreamSettings,
    /// Concurrent command loops per lattice in this replica.
    pub command_workers: usize,
    /// How long one pull waits for a message.
    pub poll_wait: Duration,
    /// How a discovery round asks the lattice (each replica runs one per lattice at start-up).
    pub discovery: DiscoveryConfig,
    /// How often a discovery round runs per lattice (replicas' rounds of one period are stored
    /// once). Default 5 minutes.
    pub discovery_every: Duration,
    /// The least time between two rounds this replica runs because observed state is in doubt
    /// (state read back from the store, an event from an unknown host). Default 30 s.
    pub discovery_min_gap: Duration,
    /// This replica's name (in logs, discovery message ids and its presence); unique.
    pub replica: String,
    /// Told the lattices whose events this replica works off, whenever that changes (for
    /// embedders and tests; operators see `wadm_lattice_owned{lattice}` and the logs).
    pub owned: Option<watch::Sender<BTreeSet<String>>>,
    /// Where each lattice's pipeline (`pipeline.{lattice}`) and executor
    /// (`commands.{lattice}`) report whether they work (for the readiness check).
    pub health: Health,
    /// The JetStream domain of the streams and buckets (`None`: the account's own JetStream).
    pub js_domain: Option<String>,
    /// The JetStream refusals of the connection the runtime runs on (noted by whoever connected
    /// it): provisioning fails at once on one instead of retrying.
    pub refusals: Refusals,
}

impl RunConfig {
    /// The defaults for `lattices`, with a replica name made from the process id, the time and a
    /// random number.
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
            command_workers: 8,
            poll_wait: Duration::from_secs(1),
            discovery: DiscoveryConfig::default(),
            discovery_every: Duration::from_secs(300),
            discovery_min_gap: Duration::from_secs(30),
            replica: format!(
                "{}-{}-{:04x}",
                std::process::id(),
                SystemClock.now(),
                SeededRandom::from_entropy().next_u64() & 0xffff
            ),
            owned: None,
            health: Health::default(),
            js_domain: None,
            refusals: Refusals::default(),
        }
    }
}

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A stream, bucket or consumer could not be set up.
    #[error("cannot set up the runtime: {0}")]
    Storage(#[from] ProvisionError),
    /// The lattices belong to more than one NATS account.
    #[error(
        "cannot set up the runtime: one runtime runs the lattices of one account; these are of \
         {accounts}"
    )]
    MixedAccounts {
        /// The accounts the lattices belong to, comma-separated (`wadm's own` for lattices
        /// without one).
        accounts: String,
    },
}

/// The NATS account of `lattices` (see [`wadm_protocol::subject::split_account`]): one runtime
/// keeps the lattices of one account, in that account's streams.
fn lattices_account(lattices: &[String]) -> Result<Option<String>, RunError> {
    let accounts: std::collections::BTreeSet<Option<&str>> =
        lattices.iter().map(|l| wadm_protocol::subject::split_account(l).0).collect();
    match accounts.len() {
        0 | 1 => Ok(accounts.into_iter().next().flatten().map(str::to_string)),
        _ => Err(RunError::MixedAccounts {
            accounts: accounts
                .iter()
                .map(|a| a.unwrap_or("wadm's own"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

impl RunError {
    /// What the error says about JetStream storage.
    pub fn availability(&self) -> Availability {
        match self {
            RunError::Storage(e) => e.availability(),
            RunError::MixedAccounts { .. } => Availability::Other,
        }
    }
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

/// The streams and buckets the runtime uses.
struct Storage {
    events: jetstream::stream::Stream,
    commands: jetstream::stream::Stream,
    records: kv::Store,
    state: KvStateStore,
    manifests: kv::Store,
    status_stream: jetstream::stream::Stream,
}

/// Create (or find) every stream and bucket the runtime uses. Run at start-up, and again when
/// they turn out to be gone (a wiped JetStream store): existing handles address them by name,
/// so they work again once recreated.
async fn ensure_storage(js: &jetstream::Context, config: &RunConfig) -> Result<Storage, RunError> {
    let provision = Provisioner::new(js.clone()).reporting(config.refusals.clone());
    let (events, commands) = ensure_streams(&provision, &config.streams).await?;
    let (names, replicas) = (&config.streams.names, config.streams.replicas);
    let records = "wadm: per-lattice runtime heads (applications, last applied event)";
    let records = bucket_config(&names.runtime_bucket(), records, replicas);
    let records = provision.bucket(records, DirectGets::Off).await?;
    let state = bucket_config(&names.observed_bucket(), OBSERVED_DESCRIPTION, replicas);
    let state = provision.bucket(state, wadm_store::observed::BUCKET_DIRECT_GETS).await?;
    let state = KvStateStore::new(state);
    let manifests = wadm_store::manifest::BUCKET_DESCRIPTION;
    let manifests_config = bucket_config(&names.manifest_bucket(), manifests, replicas);
    let manifests = wadm_store::manifest::BUCKET_DIRECT_GETS;
    let manifests = provision.bucket(manifests_config, manifests).await?;
    // The plain status stream: the store opens an account's own on first use (as the server's).
    let status = NatsStatusStore::stream_config(&names.status_stream(), None, replicas);
    let status_stream = provision.stream(status).await?;
    Ok(Storage { events, commands, records, state, manifests, status_stream })
}

/// Recreate the streams, buckets and consumers when a loop finds them gone (at most one repair
/// at a time; the loops keep retrying meanwhile and work again once it is done).
async fn repair_storage(
    js: jetstream::Context,
    config: RunConfig,
    mut asked: mpsc::Receiver<()>,
    mut stop: watch::Receiver<bool>,
) {
    let mut unavailable_logged: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            Some(()) = asked.recv() => {}
            _ = stop.changed() => return,
        }
        // A loop's error may as well be an election (no leader: no answer, 503, "no stream
        // found"): recreate only what JetStream says does not exist.
        let missing = tokio::select! {
            checked = check_storage(&js, &config) => match checked {
                Checked::Missing(missing) => missing,
                Checked::Present => {
                    tracing::debug!("storage errors, but every stream and consumer is there");
                    continue;
                }
                Checked::Unavailable(reason) => {
                    if unavailable_logged.is_none_or(|at| at.elapsed() > UNAVAILABLE_LOG_EVERY) {
                        tracing::info!(
                            %reason,
                            "JetStream is temporarily unavailable (electing a leader?), not \
                             wiped: nothing to recreate, retrying"
                        );
                        unavailable_logged = Some(tokio::time::Instant::now());
                    }
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let missing = missing.join(", ");
        tracing::warn!(%missing, "JetStream storage is gone (a wiped store?): recreating it");
        let repaired = async {
            let storage = ensure_storage(&js, &config).await?;
            for lattice in &config.lattices {
                ensure_event_consumer(&storage.events, lattice, &config.streams).await?;
                ensure_command_consumer(&storage.commands, lattice, &config.streams).await?;
            }
            Ok::<_, RunError>(())
        };
        tokio::select! {
            done = repaired => match done {
                Ok(()) => tracing::warn!("JetStream storage recreated; what it held is lost"),
                Err(e) => tracing::error!(error = %e, "cannot recreate JetStream storage"),
            },
            _ = stop.changed() => return,
        }
    }
}

/// How often "JetStream is temporarily unavailable" is logged while it lasts.
const UNAVAILABLE_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long JetStream is given to say whether a stream or consumer exists.
const CHECK_WAIT: Duration = Duration::from_secs(2);

/// Whether the streams, buckets and consumers of the runtime exist, as JetStream says.
async fn check_storage(js: &jetstream::Context, config: &RunConfig) -> Checked {
    let settings = &config.streams;
    let names = &settings.names;
    let (events, commands) = (event_stream_name(settings), command_stream_name(settings));
    let streams = [
        events.clone(),
        commands.clone(),
        format!("KV_{}", names.runtime_bucket()),
        format!("KV_{}", names.observed_bucket()),
        format!("KV_{}", names.manifest_bucket()),
        names.status_stream(),
    ];
    let consumers: Vec<(String, String)> = config
        .lattices
        .iter()
        .flat_map(|lattice| {
            [
                (events.clone(), names.event_consumer(lattice)),
                (commands.clone(), names.command_consumer(lattice)),
            ]
        })
        .collect();
    wadm_store::availability::check_exist(js, &streams, &consumers, CHECK_WAIT).await
}

type Consumers =
    BTreeMap<String, (jetstream::consumer::PullConsumer, jetstream::consumer::PullConsumer)>;

/// Every stream, bucket and consumer, made again from the start when one vanishes meanwhile
/// (a store wiped during start-up), for up to a minute.
async fn setup_everything(
    js: &jetstream::Context,
    config: &RunConfig,
) -> Result<(Storage, Consumers), RunError> {
    let started = tokio::time::Instant::now();
    loop {
        let attempt = async {
            let storage = ensure_storage(js, config).await?;
            let mut consumers = Consumers::new();
            for lattice in &config.lattices {
                let settings = &config.streams;
                let events = ensure_event_consumer(&storage.events, lattice, settings);
                let events = events.await?;
                let commands = ensure_command_consumer(&storage.commands, lattice, settings);
                let commands = commands.await?;
                consumers.insert(lattice.clone(), (events, commands));
            }
            Ok::<_, RunError>((storage, consumers))
        };
        match attempt.await {
            Ok(done) => return Ok(done),
            Err(e)
                if e.availability() == Availability::Gone
                    && started.elapsed() < SETUP_RETRY_FOR =>
            {
                tracing::warn!(error = %e, "storage vanished while setting up; again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long setting up starts over while storage keeps vanishing.
const SETUP_RETRY_FOR: Duration = Duration::from_secs(60);

/// Run the runtime on `client` until `shutdown` resolves; in-flight steps finish first (an
/// interrupted step is redone by another replica anyway).
pub async fn run(
    mut config: RunConfig,
    client: async_nats::Client,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    config.streams.account = lattices_account(&config.lattices)?;
    let js = wadm_store::jetstream(client.clone(), config.js_domain.as_deref());
    let starting = format!("runtime.{}", config.replica);
    config.health.starting(&starting);
    let (Storage { events, commands: _, records, state, manifests, status_stream }, mut consumers) =
        setup_everything(&js, &config).await?;
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
        .with_orders(HeadOrders(NatsKv::new(records)))
        .with_source(format!("wadm/{}", config.replica)),
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    // Capacity 1: a repair asked for while one is pending is the same repair.
    let (repair_tx, repair_rx) = mpsc::channel::<()>(1);
    tasks.spawn(repair_storage(js.clone(), config.clone(), repair_rx, stop_rx.clone()));
    let health = config.health.clone();
    let membership = Arc::new(Mutex::new(Membership::new(
        config.replica.clone(),
        config.lattices.iter().cloned(),
        PRESENCE_TTL,
    )));
    // 0 until this replica has heard who else is there; then bumped on every change.
    let (members_tx, members_rx) = watch::channel(0u64);
    let presence = Presences { client: client.clone(), membership: membership.clone() };
    tasks.spawn(presence.run(members_tx, clock.clone(), stop_rx.clone()));
    let owned = Arc::new(Mutex::new(OwnedLattices { now: BTreeSet::new(), tell: config.owned }));
    config.health.forget(&starting);
    for lattice in &config.lattices {
        let (event_consumer, command_consumer) =
            consumers.remove(lattice).expect("set up for every lattice");
        let event_inbox = MeteredInbox::new(JsInbox::new(event_consumer), lattice);
        let command_inbox = JsInbox::new(command_consumer);
        // Capacity 1: a request while one is pending is the same request.
        let (doubt_tx, doubt_rx) = mpsc::channel::<()>(1);
        let (deadline_tx, deadline_rx) = watch::channel::<Option<u64>>(None);
        let (p, mut stop, wait) = (pipeline.clone(), stop_rx.clone(), config.poll_wait);
        let (membership, mut members, owned) =
            (membership.clone(), members_rx.clone(), owned.clone());
        let (events, lattice_name) = (events.clone(), lattice.clone());
        let (step_health, repair) = (health.clone(), repair_tx.clone());
        tasks.spawn(async move {
            let lattice = lattice_name;
            let part = format!("pipeline.{lattice}");
            let mut report = StepReport::new("event step", part, step_health, repair);
            // Pull nothing before knowing who else is there (or stopping meanwhile).
            tokio::select! {
                _ = members.wait_for(|v| *v > 0) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            while !*stop.borrow() {
                let elsewhere = {
                    let m = lock(&membership);
                    (!m.owns(&lattice)).then(|| m.owner(&lattice).to_string())
                };
                if let Some(owner) = elsewhere {
                    // Standing by is not failing.
                    report.forget();
                    if lock(&owned).set(&lattice, false) {
                        let given_back = event_inbox.inner.release(&events).await;
                        tracing::info!(%lattice, to = %owner, given_back, "lattice handed over");
                    }
                    tokio::select! {
                        _ = members.changed() => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                if lock(&owned).set(&lattice, true) {
                    tracing::info!(%lattice, "working off the lattice's events");
                }
                let result = p.step(&event_inbox, wait).await;
                let handled = result.as_ref().ok().and_then(Option::as_ref).map_or(0, |d| d.events);
                event_inbox.record_step(handled);
                if let Ok(Some(done)) = &result {
                    let next = done.next_deadline;
                    deadline_tx.send_if_modified(|d| std::mem::replace(d, next) != next);
                }
                match result {
                    Ok(done) => {
                        report.ok(&lattice);
                        if done.is_some_and(|d| d.state_in_doubt) {
                            let _ = doubt_tx.try_send(());
                        }
                    }
                    Err(e) => report.failed(&lattice, e.availability(), &e.to_string(), wait).await,
                }
            }
            report.forget();
            // Stopping: the successor gets the pin now, not after its timeout.
            if lock(&owned).set(&lattice, false) {
                event_inbox.inner.release(&events).await;
            }
        });
        for _ in 0..config.command_workers.max(1) {
            let (x, inbox, stop) = (executor.clone(), command_inbox.clone(), stop_rx.clone());
            let (worker_health, repair) = (health.clone(), repair_tx.clone());
            let part = format!("commands.{lattice}");
            let lattice = lattice.clone();
            tasks.spawn(async move {
                let mut report = StepReport::new("command step", part, worker_health, repair);
                while !*stop.borrow() {
                    match x.step(&inbox, wait).await {
                        Ok(done) => {
                            report.ok(&lattice);
                            if let Some(done) = done {
                                tracing::debug!(?done, "command step");
                            }
                        }
                        Err(e) => {
                            report.failed(&lattice, e.availability(), &e.to_string(), wait).await
                        }
                    }
                }
                report.forget();
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
        let ours = Announcer::new(lattice.clone(), outbox.clone());
        tasks.spawn(ours.clone().run_timer(clock.clone(), deadline_rx, stop_rx.clone()));
        tasks.spawn(ours.run_ticks(clock.clone(), config.runtime.tick_every, stop_rx.clone()));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Lock a mutex that no holder can poison (their critical sections do not panic).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The lattices this replica works off: logged, published as `wadm_lattice_owned{lattice}` and
/// told to [`RunConfig::owned`].
struct OwnedLattices {
    now: BTreeSet<String>,
    tell: Option<watch::Sender<BTreeSet<String>>>,
}

impl OwnedLattices {
    /// Record whether `lattice` is worked off here; returns whether that changed.
    fn set(&mut self, lattice: &str, owned: bool) -> bool {
        let changed =
            if owned { self.now.insert(lattice.to_string()) } else { self.now.remove(lattice) };
        if changed {
            metrics::gauge!("wadm_lattice_owned", "lattice" => lattice.to_string()).set(if owned {
                1.0
            } else {
                0.0
            });
            if let Some(tell) = &self.tell {
                tell.send_replace(self.now.clone());
            }
        }
        changed
    }
}

/// The subject replicas announce themselves on (core NATS: nothing is stored).
pub const PRESENCE_SUBJECT: &str = "wadm.replicas.presence";

/// How long a starting replica listens for the others before it pulls any lattice's events.
const JOIN_WAIT: Duration = Duration::from_millis(150);

/// This replica's presence: announce it every [`PRESENCE_EVERY`] (at once to a replica that
/// joins; a last time, leaving, when stopping), hear the others', and bump `members` whenever
/// the owners of lattices may have changed (first after [`JOIN_WAIT`]).
struct Presences {
    client: async_nats::Client,
    membership: Arc<Mutex<Membership>>,
}

impl Presences {
    async fn run(
        self,
        members: watch::Sender<u64>,
        clock: Arc<dyn Clock>,
        mut stop: watch::Receiver<bool>,
    ) {
        let bump = || members.send_modify(|v| *v += 1);
        let mut heard = match self.client.subscribe(PRESENCE_SUBJECT).await {
            Ok(s) => s,
            Err(e) => {
                // Alone, then: every lattice is this replica's (the pin still keeps one puller).
                tracing::warn!(error = %e, "cannot hear other replicas");
                bump();
                let _ = stop.wait_for(|s| *s).await;
                return;
            }
        };
        let mine = lock(&self.membership).presence();
        self.announce(&Presence { joining: true, ..mine.clone() }).await;
        let joined = tokio::time::sleep(JOIN_WAIT);
        tokio::pin!(joined);
        let mut joining = true;
        let mut every = tokio::time::interval(PRESENCE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut joined, if joining => {
                    joining = false;
                    bump();
                }
                Some(message) = heard.next() => {
                    let Ok(presence) = serde_json::from_slice::<Presence>(&message.payload) else {
                        tracing::debug!("unreadable replica presence ignored");
                        continue;
                    };
                    if presence.joining && presence.replica != mine.replica {
                        self.announce(&mine).await;
                    }
                    let changed = lock(&self.membership).observe(&presence, clock.now());
                    if changed && !joining {
                        tracing::info!(replica = %presence.replica, leaving = presence.leaving, "replicas changed");
                        bump();
                    }
                }
                _ = every.tick() => {
                    self.announce(&mine).await;
                    if lock(&self.membership).expire(clock.now()) && !joining {
                        tracing::info!("a replica went silent");
                        bump();
                    }
                }
                _ = stop.changed() => {
                    self.announce(&Presence { leaving: true, ..mine }).await;
                    return;
                }
            }
        }
    }

    async fn announce(&self, presence: &Presence) {
        let Ok(body) = serde_json::to_vec(presence) else { return };
        if let Err(e) = self.client.publish(PRESENCE_SUBJECT, body.into()).await {
            tracing::debug!(error = %e, "cannot announce this replica");
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
/// A loop whose steps fail in a row (storage electing a leader, NATS gone): the first failure
/// is logged at warn, then at most one line per [`Failing::LOG_EVERY`] with how many were left
/// unlogged, and one line when it works again; the pause between attempts doubles from the
/// poll wait up to 1 s.
struct Failing {
    what: &'static str,
    in_a_row: u32,
    logged_at: Option<tokio::time::Instant>,
    unlogged: u64,
}

impl Failing {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn new(what: &'static str) -> Self {
        Self { what, in_a_row: 0, logged_at: None, unlogged: 0 }
    }

    fn failed(&mut self, lattice: &str, error: &str) {
        self.in_a_row = self.in_a_row.saturating_add(1);
        let due = self.logged_at.is_none_or(|at| at.elapsed() >= Self::LOG_EVERY);
        if due {
            let (what, unlogged) = (self.what, self.unlogged);
            tracing::warn!(%lattice, error, failed_unlogged = unlogged, "{what} failed");
            self.logged_at = Some(tokio::time::Instant::now());
            self.unlogged = 0;
        } else {
            tracing::debug!(%lattice, error, "{} failed", self.what);
            self.unlogged += 1;
        }
    }

    fn recovered(&mut self, lattice: &str) {
        if self.in_a_row > 1 {
            let (what, failures) = (self.what, self.in_a_row);
            tracing::info!(%lattice, failures, "{what} works again");
        }
        self.in_a_row = 0;
        self.logged_at = None;
        self.unlogged = 0;
    }

    fn pause(&self, wait: Duration) -> Duration {
        let max = Duration::from_secs(1);
        let base = wait.max(Duration::from_millis(50)).min(max);
        Duration::from_millis(crate::backoff::Backoff { base, max }.ceiling_ms(self.in_a_row))
    }
}

/// Where a step loop's outcomes go: its failures (see [`Failing`]), its health part, and a
/// storage repair when an error is about storage.
struct StepReport {
    failing: Failing,
    part: String,
    health: Health,
    repair: mpsc::Sender<()>,
}

impl StepReport {
    fn new(what: &'static str, part: String, health: Health, repair: mpsc::Sender<()>) -> Self {
        Self { failing: Failing::new(what), part, health, repair }
    }

    /// A step worked.
    fn ok(&mut self, lattice: &str) {
        self.health.ok(&self.part);
        self.failing.recovered(lattice);
    }

    /// A step failed: the repair asked for, the failure logged and reported, then the pause.
    async fn failed(&mut self, lattice: &str, about: Availability, error: &str, wait: Duration) {
        if about != Availability::Other {
            let _ = self.repair.try_send(());
        }
        self.failing.failed(lattice, error);
        self.health.failed(&self.part, error);
        tokio::time::sleep(self.failing.pause(wait)).await;
    }

    /// The loop stands by or stops: its part is neither working nor failing.
    fn forget(&self) {
        self.health.forget(&self.part);
    }
}

#[cfg(test)]
mod tests {
    use super::{Availability, Failing, ProvisionError, RunError};
    use std::time::Duration;

    #[test]
    fn failures_in_a_row_back_off_to_a_second_and_reset_when_it_works() {
        let mut f = Failing::new("step");
        let wait = Duration::from_millis(100);
        let mut pauses = vec![];
        for _ in 0..6 {
            f.failed("l", "503");
            pauses.push(f.pause(wait).as_millis());
        }
        assert_eq!(pauses, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(f.unlogged, 5, "one line logged, five left for later");
        f.recovered("l");
        f.failed("l", "503");
        assert_eq!((f.pause(wait).as_millis(), f.unlogged), (100, 0), "a new run of failures");
    }

    #[test]
    fn the_ways_a_wiped_store_shows_up_ask_for_a_repair() {
        use crate::io::IoError;
        for (what, reason) in [
            ("pull", "no responders"),
            ("fetch", "error while processing messages from the stream: 503, None"),
            ("publish to wadm.internal.default.tick", "no stream found for given subject"),
            ("pull", "get stream: stream not found (10059)"),
            ("fetch", "consumer not found"),
        ] {
            let e = IoError::storage(what, reason);
            assert_ne!(e.availability(), Availability::Other, "{e}");
        }
        let gone = IoError::storage("fetch", "consumer not found (10014)");
        assert_eq!(gone.availability(), Availability::Gone);
        // Not a stream's answer: a host's, or a refusal.
        let other = [
            IoError::failed("request to wasmbus.ctl", "no responders"),
            IoError::NoResponders { what: "wasmbus.ctl.v1.l.host.get.N".into() },
            IoError::storage("publish", "maximum messages exceeded"),
        ];
        for e in other {
            assert_eq!(e.availability(), Availability::Other, "{e}");
        }
        let setup = |reason: &str| {
            let what = "stream wadm_events".to_string();
            RunError::from(ProvisionError { what, reason: reason.into() })
        };
        assert_eq!(setup("stream not found (10059)").availability(), Availability::Gone);
        assert_eq!(setup("permissions violation").availability(), Availability::Other);
    }
}
