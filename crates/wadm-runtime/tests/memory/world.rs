//! A whole wadm deployment in memory and virtual time: a manifest store, the event and command
//! logs, model hosts, and N runtime replicas stepped in a seeded order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wadm_model::Status;
use wadm_runtime::io::{Delivery, Inbox};
use wadm_runtime::memory::{
    LogConfig, MemoryConsumer, MemoryDelivery, MemoryLattice, MemoryLog, MemoryStatus,
};
use wadm_runtime::{
    Clock, Deployment, DesiredSource, Executed, Executor, HeadOrders, IoError, Outbox, Outgoing,
    Pipeline, PipelineIo, Processed, Random, RuntimeConfig, SeededRandom, VirtualClock,
    tick_message,
};
use wadm_store::kv::MemoryKv;
use wadm_store::manifest::ManifestStore;
use wadm_store::observed::MemoryStateStore;
use wadm_store::streams::subjects::{command_filter, event_filters};

pub const LATTICE: &str = "default";
pub const ACK_WAIT: Duration = Duration::from_secs(5);

pub type Store = Arc<ManifestStore<MemoryKv>>;

/// The manifest store as one replica's pipeline reads it, counting manifest reads.
pub struct CountingStore {
    store: Store,
    manifest_reads: AtomicU64,
    /// An application whose deployment cannot be read (every read fails): a poison event.
    pub unreadable: std::sync::Mutex<Option<String>>,
}

impl CountingStore {
    /// Manifests this replica's pipeline read from the store so far.
    pub fn manifest_reads(&self) -> u64 {
        self.manifest_reads.load(Ordering::SeqCst)
    }
}

impl DesiredSource for CountingStore {
    async fn deployment(&self, l: &str, a: &str) -> Result<Option<Deployment>, IoError> {
        if self.unreadable.lock().unwrap().as_deref() == Some(a) {
            return Err(IoError::failed("read deployment", "unreadable (test)"));
        }
        self.store.deployment(l, a).await
    }
    async fn deployments(&self, l: &str) -> Result<BTreeMap<String, Deployment>, IoError> {
        self.store.deployments(l).await
    }
    async fn manifest(
        &self,
        l: &str,
        a: &str,
        v: &str,
    ) -> Result<Option<wadm_model::Application>, IoError> {
        self.manifest_reads.fetch_add(1, Ordering::SeqCst);
        self.store.manifest(l, a, v).await
    }
    async fn act(
        &self,
        l: &str,
        action: &wadm_runtime::revert::StoreAction,
    ) -> Result<Option<serde_json::Value>, IoError> {
        self.store.act(l, action).await
    }
}

pub type Counted = Arc<CountingStore>;

pub struct Replica {
    pub pipeline:
        Pipeline<MemoryKv, Arc<MemoryStateStore>, Counted, MemoryStatus, MemoryLog, MemoryLattice>,
    /// What the pipeline read from the manifest store.
    pub desired: Counted,
    pub executor: Executor<Store, MemoryLattice, MemoryLog, HeadOrders<MemoryKv>>,
    pub events: MemoryConsumer,
    pub commands: MemoryConsumer,
}

pub struct World {
    pub clock: VirtualClock,
    pub events: MemoryLog,
    pub commands: MemoryLog,
    pub store: Store,
    pub status: MemoryStatus,
    pub lattice: MemoryLattice,
    /// Observed state, one key per entity, shared by the replicas.
    pub state: Arc<MemoryStateStore>,
    pub replicas: Vec<Replica>,
    pub config: RuntimeConfig,
    order: SeededRandom,
    /// Every command outcome, in order.
    pub executed: Vec<Executed>,
    /// Every pipeline result, in order.
    pub processed: Vec<Processed>,
    /// Crashes still to inject while settling, and their odds (one step in `crash_one_in`).
    pub crashes_left: u32,
    pub crash_one_in: u64,
    /// Crashes injected so far.
    pub crashed: u32,
}

/// Instances of every component in an observed state.
pub fn running_per_state(state: &wadm_lattice::LatticeState) -> u32 {
    state.hosts.values().flat_map(|h| h.components.values()).map(|c| c.count).sum()
}

pub fn manifest(name: &str, version: &str, image: &str, instances: u32) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": version}},
        "spec": {"components": [{
            "name": "echo",
            "type": "component",
            "properties": {"image": image},
            "traits": [{"type": "spreadscaler", "properties": {"instances": instances}}]
        }]}
    })
}

impl World {
    pub fn new(replicas: usize, seed: u64) -> Self {
        Self::with_config(replicas, seed, RuntimeConfig::default())
    }

    pub fn with_config(replicas: usize, seed: u64, config: RuntimeConfig) -> Self {
        let clock = VirtualClock::new(1_700_000_000_000);
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let events = MemoryLog::new(shared.clone(), LogConfig::default());
        // The dedupe window of commands is their TTL: an order re-issued after it expired is new.
        let commands =
            MemoryLog::new(shared.clone(), LogConfig { dedupe_window: config.command_ttl });
        let records = MemoryKv::default();
        let state = Arc::new(MemoryStateStore::new());
        let store = Arc::new(ManifestStore::new(MemoryKv::default()));
        let status = MemoryStatus::default();
        let lattice = MemoryLattice::new(LATTICE, events.clone(), shared.clone());
        let replicas = (0..replicas)
            .map(|i| {
                let random: Arc<dyn Random> = Arc::new(SeededRandom::new(seed ^ (i as u64 + 1)));
                let desired = Arc::new(CountingStore {
                    store: store.clone(),
                    manifest_reads: AtomicU64::new(0),
                    unreadable: std::sync::Mutex::new(None),
                });
                Replica {
                    desired: desired.clone(),
                    pipeline: Pipeline::new(
                        PipelineIo {
                            records: records.clone(),
                            state: state.clone(),
                            desired,
                            status: status.clone(),
                            commands: commands.clone(),
                            control: lattice.clone(),
                        },
                        shared.clone(),
                        random.clone(),
                        config.clone(),
                    ),
                    executor: Executor::new(
                        store.clone(),
                        lattice.clone(),
                        events.clone(),
                        shared.clone(),
                        random,
                        config.clone(),
                    )
                    .with_orders(HeadOrders(records.clone())),
                    events: events.consumer("events", event_filters(LATTICE), 1, ACK_WAIT),
                    commands: commands.consumer(
                        "commands",
                        vec![command_filter(LATTICE)],
                        256,
                        ACK_WAIT,
                    ),
                }
            })
            .collect();
        Self {
            clock,
            events,
            commands,
            store,
            status,
            lattice,
            state,
            replicas,
            config,
            order: SeededRandom::new(seed),
            executed: Vec::new(),
            processed: Vec::new(),
            crashes_left: 0,
            crash_one_in: 4,
            crashed: 0,
        }
    }

    /// Store and deploy a manifest the way the API server does, then announce it.
    pub async fn deploy(&self, name: &str, version: &str, image: &str, instances: u32) -> u64 {
        let m = manifest(name, version, image, instances);
        self.store.put(LATTICE, name, version, m.clone(), "test").await.unwrap();
        let outcome = self.store.deploy(LATTICE, name, Some(version), "test").await.unwrap();
        self.announce("manifest_published", m).await;
        outcome.generation
    }

    /// Store and deploy a whole manifest, then announce it.
    pub async fn deploy_value(&self, name: &str, version: &str, m: serde_json::Value) -> u64 {
        self.store.put(LATTICE, name, version, m.clone(), "test").await.unwrap();
        let outcome = self.store.deploy(LATTICE, name, Some(version), "test").await.unwrap();
        self.announce("manifest_published", m).await;
        outcome.generation
    }

    pub async fn undeploy(&self, name: &str) {
        self.store.undeploy(LATTICE, name, "test").await.unwrap();
        self.announce("manifest_unpublished", serde_json::json!({ "name": name })).await;
    }

    async fn announce(&self, kind: &str, data: serde_json::Value) {
        let n = self.events.stored();
        let event = serde_json::json!({
            "specversion": "1.0", "id": format!("m-{n}"), "type": format!("com.wadm.{kind}"),
            "source": "wadm", "time": "", "data": data
        });
        let outgoing = Outgoing {
            subject: format!("wadm.evt.{LATTICE}.{kind}"),
            payload: serde_json::to_vec(&event).unwrap(),
            msg_id: format!("m-{n}"),
            ttl: None,
        };
        self.events.publish(outgoing).await.unwrap();
    }

    /// Every replica publishes its tick for the current period.
    pub async fn tick(&self) {
        for _ in &self.replicas {
            let tick = tick_message(LATTICE, self.clock.now(), self.config.tick_every);
            self.events.publish(tick).await.unwrap();
        }
    }

    /// A tick of a new period, and every host heartbeats.
    pub async fn resync(&self) {
        self.clock.advance(self.config.tick_every.as_millis() as u64);
        self.lattice.heartbeat_all().await;
        self.tick().await;
    }

    /// Publish a copy of a stored event under a new message id (a late or duplicated delivery).
    pub async fn replay(&self, subject: &str, payload: Vec<u8>, id: &str) {
        let out =
            Outgoing { subject: subject.to_string(), payload, msg_id: id.to_string(), ttl: None };
        self.events.publish(out).await.unwrap();
    }

    /// Replica `r` takes the next event and handles it, unacked: the delivery and the result.
    pub async fn take_and_process(&self, r: usize) -> (MemoryDelivery, Processed) {
        let replica = &self.replicas[r];
        let d = replica.events.next(Duration::ZERO).await.unwrap().unwrap();
        let (seq, n) = (d.stream_sequence(), d.delivered());
        let done = replica.pipeline.process(d.subject(), d.payload(), seq, n).await.unwrap();
        (d, done)
    }

    /// One pipeline step on replica `r`.
    pub async fn step_events(&mut self, r: usize) -> bool {
        let done = self.replicas[r].pipeline.step(&self.replicas[r].events, Duration::ZERO).await;
        match done.expect("pipeline step") {
            Some(p) => {
                self.processed.push(p);
                true
            }
            None => false,
        }
    }

    /// One executor step on replica `r`.
    pub async fn step_commands(&mut self, r: usize) -> bool {
        let replica = &self.replicas[r];
        match replica.executor.step(&replica.commands, Duration::ZERO).await.expect("executor") {
            Some(e) => {
                self.executed.push(e);
                true
            }
            None => false,
        }
    }

    /// Step random replicas (seeded) until nothing is deliverable now.
    pub async fn settle(&mut self) {
        self.settle_with(true, true).await
    }

    pub async fn settle_with(&mut self, events: bool, commands: bool) {
        loop {
            // Seeded random interleaving of replicas and loops...
            for _ in 0..8 {
                let r = (self.order.next_u64() % self.replicas.len() as u64) as usize;
                if self.crashes_left > 0 && self.order.next_u64().is_multiple_of(self.crash_one_in)
                {
                    self.crash(r, events && (!commands || self.order.next_u64().is_multiple_of(2)))
                        .await;
                } else if events && (self.order.next_u64().is_multiple_of(2) || !commands) {
                    self.step_events(r).await;
                } else if commands {
                    self.step_commands(r).await;
                }
            }
            // ...until a full sweep finds nothing deliverable.
            let mut progressed = false;
            for r in 0..self.replicas.len() {
                if events {
                    progressed |= self.step_events(r).await;
                }
                if commands {
                    progressed |= self.step_commands(r).await;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Replica `r` takes a message, maybe handles it, and dies before acking; time passes until
    /// the message is redeliverable (hosts keep sending heartbeats meanwhile).
    async fn crash(&mut self, r: usize, event: bool) {
        self.crashes_left -= 1;
        self.crashed += 1;
        let handle = self.order.next_u64().is_multiple_of(2);
        let replica = &self.replicas[r];
        if event {
            if let Some(d) = replica.events.next(Duration::ZERO).await.unwrap() {
                if handle {
                    let (subject, payload) = (d.subject(), d.payload());
                    let (seq, n) = (d.stream_sequence(), d.delivered());
                    let _ = replica.pipeline.process(subject, payload, seq, n).await;
                }
                drop(d);
            }
        } else if let Some(d) = replica.commands.next(Duration::ZERO).await.unwrap() {
            if handle {
                let _ = replica.executor.process(d.payload(), d.delivered()).await;
            }
            drop(d);
        }
        self.clock.advance(ACK_WAIT.as_millis() as u64 + 1);
        self.lattice.heartbeat_all().await;
    }

    pub fn status(&self, app: &str) -> Option<Status> {
        self.status.current(LATTICE, app)
    }

    /// Instances of `app`'s components across hosts, and the images they run.
    pub fn running(&self, app: &str) -> (u32, Vec<String>) {
        let truth = self.lattice.truth();
        let mut images = Vec::new();
        let mut count = 0;
        for host in truth.hosts.values() {
            for c in host.components.values() {
                if wadm_lattice::app_of(&c.annotations) == Some(app) {
                    count += c.count;
                    images.push(c.image_ref.clone());
                }
            }
        }
        images.sort();
        images.dedup();
        (count, images)
    }

    pub async fn add_hosts(&self, n: usize) {
        for i in 0..n {
            self.lattice.add_host(&format!("N{i:03}"), Default::default()).await;
        }
    }
}
