//! One bench environment: its own `nats-server -js` on a temporary store, `replicas` in-process
//! wadm instances (API server + runtime, each on its own connection, on the wadm tokio runtime)
//! and simulated lattices (on the simulator's tokio runtime), plus the readings the phases take
//! from JetStream (how far each lattice's event consumer has got).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use async_nats::jetstream::{self, consumer};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wadm_client::connect::NatsOptions;
use wadm_nats_server::NatsServerProcess;
use wadm_server::ServerConfig;
use wadm_sim::{SimConfig, SimLattice};
use wadm_store::StoreNames;

use super::manifests;
use crate::stack::{self, RuntimeArgs, WadmSettings};

/// The two runtimes the measured parts run on (named so their CPU can be told apart).
pub struct Runtimes {
    pub wadm: tokio::runtime::Runtime,
    pub sim: tokio::runtime::Runtime,
}

impl Runtimes {
    pub fn new() -> anyhow::Result<Runtimes> {
        let build = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name(name)
                // Idle blocking threads would exit and take their CPU time out of the per-thread sums.
                .thread_keep_alive(Duration::from_secs(3600))
                .enable_all()
                .build()
                .with_context(|| format!("cannot start the {name} runtime"))
        };
        Ok(Runtimes {
            wadm: build(super::usage::WADM_THREADS)?,
            sim: build(super::usage::SIM_THREADS)?,
        })
    }
}

/// How the runtime's event consumer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Last sequence stored in the event stream (everything offered so far).
    pub offered: u64,
    /// Stream sequence up to which every event has been handled (acked).
    pub handled: u64,
    /// Events not yet delivered plus delivered but unacked.
    pub backlog: u64,
}

/// A running bench environment: one nats-server, its wadm replicas and simulated lattices.
/// `lattice` is the one the single-lattice helpers use.
pub struct Rig {
    pub lattice: String,
    pub client: async_nats::Client,
    js: jetstream::Context,
    nats: Option<NatsServerProcess>,
    wadm: Vec<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
    sims: Vec<Arc<SimLattice>>,
    /// The names of wadm's streams, buckets and consumers.
    names: StoreNames,
    _store: tempfile::TempDir,
}

impl Rig {
    /// Start a nats-server on a fresh temporary store and connect the driver to it.
    pub async fn start(lattice: &str, names: &StoreNames) -> anyhow::Result<Rig> {
        let store = tempfile::tempdir().context("cannot create a temporary NATS store")?;
        let binary = wadm_nats_server::find_binary()?;
        let nats =
            wadm_nats_server::launch_on_free_port(&binary, store.path(), Duration::from_secs(15))?;
        let options =
            NatsOptions { url: nats.url(), name: "wadm bench".into(), ..Default::default() };
        let client = wadm_client::connect::connect(&options).await?;
        Ok(Rig {
            lattice: lattice.to_string(),
            js: jetstream::new(client.clone()),
            client,
            nats: Some(nats),
            wadm: Vec::new(),
            sims: Vec::new(),
            names: names.clone(),
            _store: store,
        })
    }

    pub fn nats_pid(&self) -> Option<u32> {
        self.nats.as_ref().map(|n| n.pid())
    }

    fn url(&self) -> String {
        self.nats.as_ref().map(|n| n.url()).unwrap_or_default()
    }

    /// The driver's JetStream context.
    pub fn js(&self) -> &jetstream::Context {
        &self.js
    }

    /// Start `replicas` wadm instances on `on`, then wait until the event consumer of every
    /// lattice they manage exists (from then on every host event is kept for it).
    pub async fn start_wadm(
        &mut self,
        on: &Handle,
        replicas: usize,
        runtime: RuntimeArgs,
    ) -> anyhow::Result<()> {
        for replica in 0..replicas.max(1) {
            let options = NatsOptions {
                url: self.url(),
                name: format!("wadm bench replica {replica}"),
                ..Default::default()
            };
            let server = ServerConfig { names: self.names.clone(), ..ServerConfig::default() };
            let settings = WadmSettings { server, runtime: runtime.clone() };
            let (stop, stopped) = oneshot::channel::<()>();
            let task = on.spawn(async move {
                let client = wadm_client::connect::connect(&options).await?;
                stack::run_wadm(client, settings, async move {
                    let _ = stopped.await;
                })
                .await
            });
            self.wadm.push((stop, task));
        }
        let lattices =
            if runtime.lattices.is_empty() { vec![self.lattice.clone()] } else { runtime.lattices };
        for lattice in &lattices {
            let consumer = self.names.event_consumer(lattice);
            wait_for(Duration::from_secs(30), "the runtime's event consumer", || async {
                let stream = self.js.get_stream(self.names.events_stream()).await.ok()?;
                stream.consumer_info(&consumer).await.ok().map(|_| ())
            })
            .await?;
        }
        Ok(())
    }

    /// Start `hosts` simulated hosts (zones alternate) on `on`; returns when all have started.
    pub async fn start_sim(
        &mut self,
        on: &Handle,
        hosts: usize,
        heartbeat: Duration,
    ) -> anyhow::Result<Arc<SimLattice>> {
        let lattice = self.lattice.clone();
        self.start_sim_on(on, &lattice, hosts, heartbeat).await
    }

    /// [`Rig::start_sim`] on the lattice `lattice`.
    pub async fn start_sim_on(
        &mut self,
        on: &Handle,
        lattice: &str,
        hosts: usize,
        heartbeat: Duration,
    ) -> anyhow::Result<Arc<SimLattice>> {
        let mut config = SimConfig::new(self.url(), lattice);
        config.heartbeat_interval = heartbeat;
        config.heartbeat_stagger = heartbeat;
        let sim = on
            .spawn(async move {
                let sim = SimLattice::connect(config).await?;
                for index in 0..hosts {
                    sim.add_host(manifests::host_spec(index)).await;
                }
                Ok::<_, wadm_sim::SimError>(sim)
            })
            .await
            .context("simulator task")?
            .context("starting the simulated hosts")?;
        let sim = Arc::new(sim);
        self.sims.push(sim.clone());
        Ok(sim)
    }

    /// Where the runtime's event consumer stands now.
    pub async fn progress(&self) -> anyhow::Result<Progress> {
        self.progress_of(&self.lattice).await
    }

    /// The event consumer of `lattice` as the server reports it now.
    pub async fn consumer_info(&self, lattice: &str) -> anyhow::Result<consumer::Info> {
        let stream =
            self.js.get_stream(self.names.events_stream()).await.context("event stream")?;
        let name = self.names.event_consumer(lattice);
        stream.consumer_info(&name).await.with_context(|| format!("event consumer {name}"))
    }

    /// Release the pin of `lattice`'s event consumer (after its replicas stopped, so the next
    /// ones need not wait out the pin's timeout), then wait until the server shows none.
    pub async fn unpin(&self, lattice: &str) -> anyhow::Result<()> {
        let stream =
            self.js.get_stream(self.names.events_stream()).await.context("event stream")?;
        // Fails when nothing is pinned, which is what is wanted anyway.
        let _ = stream
            .unpin_consumer(&self.names.event_consumer(lattice), wadm_store::streams::PIN_GROUP)
            .await;
        wait_for(Duration::from_secs(30), "the event consumer's pin to be released", || async {
            let info = self.consumer_info(lattice).await.ok()?;
            info.priority_groups.iter().all(|g| g.pinned_client_id.is_none()).then_some(())
        })
        .await
    }

    /// Where the runtime's event consumer of `lattice` stands now.
    pub async fn progress_of(&self, lattice: &str) -> anyhow::Result<Progress> {
        let info = self.consumer_info(lattice).await?;
        let stream =
            self.js.get_stream(self.names.events_stream()).await.context("event stream")?;
        let stream_info = stream.get_info().await.context("event stream info")?;
        Ok(Progress {
            offered: stream_info.state.last_sequence,
            handled: info.ack_floor.stream_sequence,
            backlog: info.num_pending + info.num_ack_pending as u64,
        })
    }

    /// Wait until the runtime has handled every event stored so far.
    pub async fn wait_caught_up(&self, timeout: Duration) -> anyhow::Result<()> {
        self.wait_caught_up_on(&self.lattice, timeout).await
    }

    /// [`Rig::wait_caught_up`] for the lattice `lattice`.
    pub async fn wait_caught_up_on(&self, lattice: &str, timeout: Duration) -> anyhow::Result<()> {
        wait_for(timeout, "the runtime to handle every pending event", || async {
            self.progress_of(lattice).await.ok().filter(|p| p.backlog == 0).map(|_| ())
        })
        .await
    }

    /// Stop the hosts (silently), wadm and the nats-server.
    pub async fn stop(mut self) {
        self.sims.clear();
        self.stop_wadm().await;
        if let Some(nats) = self.nats.take() {
            nats.kill();
        }
    }

    /// Tear everything down without waiting for the replicas: their tasks are aborted (what
    /// they were doing is lost; a replica stopping gracefully first finishes its start-up
    /// discovery round, seconds) and the nats-server killed. For when nothing more is measured.
    pub fn kill(mut self) {
        self.sims.clear();
        for (_, task) in std::mem::take(&mut self.wadm) {
            task.abort();
        }
        if let Some(nats) = self.nats.take() {
            nats.kill();
        }
    }

    /// Abort every wadm replica, as if its process died (a graceful stop first finishes the
    /// replica's start-up discovery round, seconds); NATS and the hosts keep running. What a
    /// replica held unacknowledged is redelivered after the ack wait.
    pub async fn abort_wadm(&mut self) {
        for (_, task) in std::mem::take(&mut self.wadm) {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stop every wadm replica (and wait for each, bounded); NATS and the hosts keep running.
    pub async fn stop_wadm(&mut self) {
        let mut tasks = Vec::new();
        for (stop, task) in std::mem::take(&mut self.wadm) {
            let _ = stop.send(());
            tasks.push(task);
        }
        for task in tasks {
            match tokio::time::timeout(Duration::from_secs(15), task).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "wadm replica stopped with an error"),
                Err(_) => tracing::warn!("a wadm replica did not stop in time"),
                _ => {}
            }
        }
    }
}

/// Poll `probe` every 20 ms until it yields a value, or fail naming `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await {
            return Ok(found);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
