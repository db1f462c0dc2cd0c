//! The simulated deployment: a manifest store, the event and command streams, the model
//! lattice, and N runtime replicas whose event and command loops the driver steps one at a time
//! in virtual time. The replicas' consumers and control client are thin wrappers that note, for
//! the invariants, which event-stream messages a step applied and which order each control
//! request carried.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wadm_lattice::Timestamp;
use wadm_runtime::io::{ControlClient, Delivery, Inbox};
use wadm_runtime::memory::{
    LogConfig, MemoryConsumer, MemoryDelivery, MemoryLattice, MemoryLog, MemoryStatus,
};
use wadm_runtime::pipeline::EventMessage;
use wadm_runtime::{
    Clock, CommandMessage, Executed, Executor, HeadOrders, IoError, Outbox, Outgoing, Pipeline,
    PipelineError, PipelineIo, Processed, Random, RuntimeConfig, SeededRandom, VirtualClock,
};
use wadm_store::kv::MemoryKv;
use wadm_store::manifest::ManifestStore;
use wadm_store::observed::MemoryStateStore;
use wadm_store::streams::StreamSettings;
use wadm_store::streams::subjects::{command_filter, event_filters};

pub const LATTICE: &str = "default";
/// Virtual time when the simulation starts.
pub const START: Timestamp = 1_700_000_000_000;

pub type Store = Arc<ManifestStore<MemoryKv>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An event-stream message a pipeline step applied (acked, or handled by a step whose replica
/// then died before the ack).
#[derive(Debug, Clone)]
pub struct Applied {
    pub subject: String,
    pub payload: Vec<u8>,
}

/// The messages steps applied, in order (shared by every replica's inbox).
#[derive(Clone, Default)]
pub struct AppliedLog(Arc<Mutex<Vec<Applied>>>);

impl AppliedLog {
    pub fn push(&self, subject: &str, payload: &[u8]) {
        let applied = Applied { subject: subject.to_string(), payload: payload.to_vec() };
        lock(&self.0).push(applied);
    }

    /// Everything noted since the last call.
    pub fn drain(&self) -> Vec<Applied> {
        std::mem::take(&mut *lock(&self.0))
    }
}

/// A replica's handle on the event consumer: a step's ack is noted in the [`AppliedLog`].
pub struct EventInbox {
    inner: MemoryConsumer,
    applied: AppliedLog,
}

pub struct EventDelivery {
    inner: MemoryDelivery,
    applied: AppliedLog,
}

impl Inbox for EventInbox {
    type Delivery = EventDelivery;

    async fn next(&self, wait: Duration) -> Result<Option<EventDelivery>, IoError> {
        let next = self.inner.next(wait).await?;
        Ok(next.map(|inner| EventDelivery { inner, applied: self.applied.clone() }))
    }

    /// What a pinned pull takes: up to `max` deliverable messages in stream order.
    async fn next_batch(&self, max: usize, wait: Duration) -> Result<Vec<EventDelivery>, IoError> {
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(d) = self.next(wait).await? else { break };
            batch.push(d);
        }
        Ok(batch)
    }
}

impl Delivery for EventDelivery {
    fn subject(&self) -> &str {
        self.inner.subject()
    }
    fn payload(&self) -> &[u8] {
        self.inner.payload()
    }
    fn stream_sequence(&self) -> u64 {
        self.inner.stream_sequence()
    }
    fn delivered(&self) -> u64 {
        self.inner.delivered()
    }
    fn pending(&self) -> u64 {
        self.inner.pending()
    }
    fn stored_at(&self) -> Option<Timestamp> {
        self.inner.stored_at()
    }
    async fn ack(self) -> Result<(), IoError> {
        self.applied.push(self.inner.subject(), self.inner.payload());
        self.inner.ack().await
    }
    async fn nak(self, delay: Duration) -> Result<(), IoError> {
        self.inner.nak(delay).await
    }
}

/// The order a control request carried: the command message being executed when it was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub msg_id: String,
    pub app: String,
    pub issued_at: Timestamp,
}

type Current = Arc<Mutex<Option<Order>>>;

/// A replica's handle on the command consumer: notes the order it hands out.
pub struct CommandInbox {
    inner: MemoryConsumer,
    current: Current,
}

impl Inbox for CommandInbox {
    type Delivery = MemoryDelivery;

    async fn next(&self, wait: Duration) -> Result<Option<MemoryDelivery>, IoError> {
        let next = self.inner.next(wait).await?;
        *lock(&self.current) = next.as_ref().and_then(|d| order_of(d.payload()));
        Ok(next)
    }
}

fn order_of(payload: &[u8]) -> Option<Order> {
    let m: CommandMessage = serde_json::from_slice(payload).ok()?;
    Some(Order { msg_id: m.msg_id(), app: m.app, issued_at: m.issued_at })
}

/// A replica executor's control client: the model lattice, noting which order each request
/// (by its index in the lattice's request log) carried.
pub struct SimControl {
    lattice: MemoryLattice,
    current: Current,
    orders: Arc<Mutex<BTreeMap<usize, Order>>>,
}

impl ControlClient for SimControl {
    async fn request(
        &self,
        subject: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, IoError> {
        let index = self.lattice.request_log_len();
        if let Some(order) = lock(&self.current).clone() {
            lock(&self.orders).insert(index, order);
        }
        self.lattice.request(subject, body, timeout).await
    }
}

pub type SimPipeline =
    Pipeline<MemoryKv, Arc<MemoryStateStore>, Store, MemoryStatus, MemoryLog, MemoryLattice>;
pub type SimExecutor = Executor<Store, SimControl, MemoryLog, HeadOrders<MemoryKv>>;

/// One wadm replica: its event loop, its command loop and the timers `run` would keep.
pub struct Replica {
    pub pipeline: SimPipeline,
    pub executor: SimExecutor,
    pub events: EventInbox,
    pub commands: CommandInbox,
    current: Current,
    /// The deadline the last step reported (a timer is published when it is reached, once).
    pub deadline: Option<Timestamp>,
    pub fired: bool,
    pub next_tick: Timestamp,
    /// The last discovery round this replica ran.
    pub last_round: Timestamp,
    pub next_periodic_round: Timestamp,
    /// Incremented at every restart (names its discovery rounds).
    pub incarnation: u32,
}

pub struct World {
    pub clock: VirtualClock,
    shared: Arc<dyn Clock>,
    pub events: MemoryLog,
    pub commands: MemoryLog,
    records: MemoryKv,
    state: Arc<MemoryStateStore>,
    pub store: Store,
    pub status: MemoryStatus,
    pub lattice: MemoryLattice,
    pub config: RuntimeConfig,
    pub streams: StreamSettings,
    pub applied: AppliedLog,
    /// Per request-log index, the order that request carried.
    pub orders: Arc<Mutex<BTreeMap<usize, Order>>>,
    pub replicas: Vec<Replica>,
    seed: u64,
    announced: u64,
}

impl World {
    pub fn new(seed: u64, replicas: usize, config: RuntimeConfig) -> Self {
        let clock = VirtualClock::new(START);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let streams = StreamSettings::default();
        let events = MemoryLog::new(
            shared.clone(),
            LogConfig { dedupe_window: streams.event_dedupe_window },
        );
        // The dedupe window of commands is their TTL: an order re-issued after it expired is new.
        let commands =
            MemoryLog::new(shared.clone(), LogConfig { dedupe_window: config.command_ttl });
        let lattice = MemoryLattice::new(LATTICE, events.clone(), shared.clone());
        let mut world = Self {
            clock,
            shared,
            events,
            commands,
            records: MemoryKv::default(),
            state: Arc::new(MemoryStateStore::new()),
            store: Arc::new(ManifestStore::new(MemoryKv::default())),
            status: MemoryStatus::default(),
            lattice,
            config,
            streams,
            applied: AppliedLog::default(),
            orders: Arc::default(),
            replicas: Vec::new(),
            seed,
            announced: 0,
        };
        world.replicas = (0..replicas).map(|i| world.replica(i, 0)).collect();
        world
    }

    /// A replica process as it starts: nothing kept in memory.
    fn replica(&self, index: usize, incarnation: u32) -> Replica {
        let salt = (index as u64 + 1) << 32 | u64::from(incarnation);
        let random: Arc<dyn Random> = Arc::new(SeededRandom::new(self.seed ^ salt));
        let current = Current::default();
        let pipeline = Pipeline::new(
            PipelineIo {
                records: self.records.clone(),
                state: self.state.clone(),
                desired: self.store.clone(),
                status: self.status.clone(),
                commands: self.commands.clone(),
                control: self.lattice.clone(),
            },
            self.shared.clone(),
            random.clone(),
            self.config.clone(),
        );
        let control = SimControl {
            lattice: self.lattice.clone(),
            current: current.clone(),
            orders: self.orders.clone(),
        };
        let executor = Executor::new(
            self.store.clone(),
            control,
            self.events.clone(),
            self.shared.clone(),
            random,
            self.config.clone(),
        )
        .with_orders(HeadOrders(self.records.clone()));
        let ack_wait = self.streams.ack_wait;
        // One replica at a time pulls (the driver keeps the pin), up to a batch in flight.
        let batch = self.streams.event_batch;
        let events = EventInbox {
            inner: self.events.consumer("events", event_filters(LATTICE), batch, ack_wait),
            applied: self.applied.clone(),
        };
        let max = self.streams.max_commands_in_flight as usize;
        let commands = CommandInbox {
            inner: self.commands.consumer("commands", vec![command_filter(LATTICE)], max, ack_wait),
            current: current.clone(),
        };
        let now = self.clock.now();
        Replica {
            pipeline,
            executor,
            events,
            commands,
            current,
            deadline: None,
            fired: false,
            next_tick: now,
            last_round: 0,
            next_periodic_round: now,
            incarnation,
        }
    }

    /// Replica `index` dies and a new process takes its place (nothing kept in memory).
    pub fn restart(&mut self, index: usize) {
        let incarnation = self.replicas[index].incarnation + 1;
        self.replicas[index] = self.replica(index, incarnation);
    }

    /// Store every version of an application (not deployed).
    pub async fn put(&self, app: &str, version: &str, manifest: serde_json::Value) {
        self.store.put(LATTICE, app, version, manifest, "sim").await.expect("put manifest");
    }

    /// Deploy a stored version the way the API server does, then announce it.
    pub async fn deploy(&mut self, app: &str, version: &str) {
        self.store.deploy(LATTICE, app, Some(version), "sim").await.expect("deploy");
        let manifest = serde_json::json!({"metadata": {"name": app}});
        self.announce("manifest_published", manifest).await;
    }

    pub async fn undeploy(&mut self, app: &str) {
        self.store.undeploy(LATTICE, app, "sim").await.expect("undeploy");
        self.announce("manifest_unpublished", serde_json::json!({ "name": app })).await;
    }

    async fn announce(&mut self, kind: &str, data: serde_json::Value) {
        self.announced += 1;
        let id = format!("m-{}", self.announced);
        let event = serde_json::json!({
            "specversion": "1.0", "id": id, "type": format!("com.wadm.{kind}"),
            "source": "wadm", "time": "", "data": data
        });
        let outgoing = Outgoing {
            subject: format!("wadm.evt.{LATTICE}.{kind}"),
            payload: serde_json::to_vec(&event).expect("json"),
            msg_id: id,
            ttl: None,
        };
        self.events.publish(outgoing).await.expect("publish");
    }

    /// Publish a message to the event stream (ticks, timers).
    pub async fn publish_event(&self, outgoing: Outgoing) {
        self.events.publish(outgoing).await.expect("publish");
    }

    /// One event-loop step on replica `r`: `None` when nothing was deliverable.
    pub async fn step_events(&mut self, r: usize) -> Option<Result<Processed, PipelineError>> {
        let replica = &mut self.replicas[r];
        let done = replica.pipeline.step(&replica.events, Duration::ZERO).await;
        match done {
            Ok(None) => None,
            Ok(Some(p)) => {
                if p.next_deadline != replica.deadline {
                    replica.deadline = p.next_deadline;
                    replica.fired = false;
                }
                Some(Ok(p))
            }
            Err(e) => Some(Err(e)),
        }
    }

    /// One command-loop step on replica `r`: `None` when nothing was deliverable.
    pub async fn step_commands(&mut self, r: usize) -> Option<Result<Executed, IoError>> {
        let replica = &self.replicas[r];
        replica.executor.step(&replica.commands, Duration::ZERO).await.transpose()
    }

    /// Replica `r` takes the next batch of events, handles it when `handle` (its step commits
    /// and publishes), and dies before the ack: the batch comes back after the ack wait.
    /// Returns how many events it took.
    pub async fn crash_in_event_step(&mut self, r: usize, handle: bool) -> Option<usize> {
        let replica = &self.replicas[r];
        let max = self.config.batch_size.max(1);
        let batch = replica.events.next_batch(max, Duration::ZERO).await.expect("memory inbox");
        if batch.is_empty() {
            return None;
        }
        if handle {
            let messages: Vec<EventMessage<'_>> = batch.iter().map(EventMessage::of).collect();
            if replica.pipeline.process_batch(&messages).await.is_ok() {
                for d in &batch {
                    self.applied.push(d.subject(), d.payload());
                }
            }
        }
        let taken = batch.len();
        drop(batch);
        self.restart(r);
        Some(taken)
    }

    /// Replica `r` takes the next command, executes it when `handle` (the request goes out),
    /// and dies before the ack: the command comes back after the ack wait.
    pub async fn crash_in_command_step(&mut self, r: usize, handle: bool) -> Option<String> {
        let replica = &self.replicas[r];
        let d = replica.commands.next(Duration::ZERO).await.expect("memory inbox")?;
        let what = lock(&replica.current).as_ref().map(|o| o.msg_id.clone()).unwrap_or_default();
        if handle {
            let _ = replica.executor.process(d.payload(), d.delivered()).await;
        }
        drop(d);
        self.restart(r);
        Some(what)
    }

    /// Replica `r` runs a discovery round now, stored as message `msg_id`.
    pub async fn discover(&mut self, r: usize, msg_id: String) {
        let now = self.clock.now();
        self.replicas[r].last_round = now;
        let found =
            wadm_runtime::discover_with_id(&self.lattice, &self.events, LATTICE, now, msg_id).await;
        found.expect("memory discovery");
    }

    /// The id replica `r` gives a round of its own (start-up, state in doubt).
    pub fn own_round_id(&self, r: usize) -> String {
        let replica = &self.replicas[r];
        format!("discovered.{LATTICE}.r{r}i{}.{}", replica.incarnation, self.clock.now())
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}
