//! Cost of one pipeline step in memory as the lattice grows: a heartbeat step on the replica
//! that wrote the head last (kept state: apply, persist the host record and the head), and the
//! same step after the state was forgotten (a takeover: every entity is read back), and two
//! replicas taking turns (each catches up over the head's journal).
//! Run: `cargo bench -p wadm-runtime -- --quick`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use wadm_nats::store::MemoryStateStore;
use wadm_runtime::memory::{LogConfig, MemoryLattice, MemoryLog, MemoryStatus, SharedKv};
use wadm_runtime::messages::{command_filter, event_filters};
use wadm_runtime::{
    Clock, Executor, Pipeline, PipelineIo, Random, RuntimeConfig, SeededRandom, VirtualClock,
};
use wadm_server::store::ManifestStore;

type Store = Arc<ManifestStore<SharedKv>>;

type MemoryPipeline =
    Pipeline<SharedKv, Arc<MemoryStateStore>, Store, MemoryStatus, MemoryLog, MemoryLattice>;

struct Setup {
    rt: tokio::runtime::Runtime,
    lattice: MemoryLattice,
    pipeline: MemoryPipeline,
    /// A second replica over the same stores.
    other: MemoryPipeline,
    executor: Executor<Store, MemoryLattice, MemoryLog>,
    event_inbox: wadm_runtime::memory::MemoryConsumer,
    command_inbox: wadm_runtime::memory::MemoryConsumer,
}

fn manifest(instances: u32) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
        "metadata": {"name": "app", "annotations": {"version": "v1"}},
        "spec": {"components": [{"name": "echo", "type": "component",
            "properties": {"image": "ghcr.io/example/echo:0.1.0"},
            "traits": [{"type": "spreadscaler", "properties": {"instances": instances}}]}]}
    })
}

fn setup(hosts: usize) -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new(1_700_000_000_000));
    let random: Arc<dyn Random> = Arc::new(SeededRandom::new(1));
    let events = MemoryLog::new(clock.clone(), LogConfig::default());
    let commands = MemoryLog::new(clock.clone(), LogConfig::default());
    let store: Store = Arc::new(ManifestStore::new(SharedKv::default()));
    let lattice = MemoryLattice::new("default", events.clone(), clock.clone());
    let config = RuntimeConfig::default();
    let (heads, state, status) =
        (SharedKv::default(), Arc::new(MemoryStateStore::new()), MemoryStatus::default());
    let replica = || {
        let io = PipelineIo {
            records: heads.clone(),
            state: state.clone(),
            desired: store.clone(),
            status: status.clone(),
            commands: commands.clone(),
            control: lattice.clone(),
        };
        Pipeline::new(io, clock.clone(), random.clone(), config.clone())
    };
    let (pipeline, other) = (replica(), replica());
    let executor =
        Executor::new(store.clone(), lattice.clone(), events.clone(), clock, random, config);
    let ack_wait = Duration::from_secs(30);
    let event_inbox = events.consumer("e", event_filters("default"), 1, ack_wait);
    let command_inbox = commands.consumer("c", vec![command_filter("default")], 1024, ack_wait);
    let s = Setup { rt, lattice, pipeline, other, executor, event_inbox, command_inbox };
    s.rt.block_on(async {
        for i in 0..hosts {
            s.lattice.add_host(&format!("N{i:05}"), Default::default()).await;
        }
        store.put("default", "app", "v1", manifest(hosts as u32), "b").await.unwrap();
        store.deploy("default", "app", Some("v1"), "b").await.unwrap();
        s.drain().await;
    });
    s
}

impl Setup {
    async fn drain(&self) {
        loop {
            let mut progressed = false;
            while self.pipeline.step(&self.event_inbox, Duration::ZERO).await.unwrap().is_some() {
                progressed = true;
            }
            while self.executor.step(&self.command_inbox, Duration::ZERO).await.unwrap().is_some() {
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }
}

const SIZES: [usize; 3] = [10, 100, 1_000];

fn heartbeat_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_heartbeat_step");
    for hosts in SIZES {
        let s = setup(hosts);
        group.bench_with_input(BenchmarkId::from_parameter(hosts), &hosts, |b, _| {
            b.iter(|| {
                s.rt.block_on(async {
                    s.lattice.heartbeat("N00000").await;
                    let d = s.pipeline.step(&s.event_inbox, Duration::ZERO).await.unwrap();
                    assert!(d.is_some());
                })
            })
        });
    }
    group.finish();
}

fn takeover_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_takeover_step");
    for hosts in SIZES {
        let s = setup(hosts);
        group.bench_with_input(BenchmarkId::from_parameter(hosts), &hosts, |b, _| {
            b.iter(|| {
                s.rt.block_on(async {
                    s.pipeline.records().forget("default");
                    s.lattice.heartbeat("N00000").await;
                    let d = s.pipeline.step(&s.event_inbox, Duration::ZERO).await.unwrap();
                    assert!(d.is_some_and(|p| p.state_in_doubt));
                })
            })
        });
    }
    group.finish();
}

/// Two replicas take turns: each step first catches up over the head's journal (one host key).
fn alternating_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_alternating_two_steps");
    for hosts in SIZES {
        let s = setup(hosts);
        // The second replica's first step reads everything back; later ones catch up.
        s.rt.block_on(async {
            s.lattice.heartbeat("N00000").await;
            s.other.step(&s.event_inbox, Duration::ZERO).await.unwrap();
        });
        group.bench_with_input(BenchmarkId::from_parameter(hosts), &hosts, |b, _| {
            b.iter(|| {
                s.rt.block_on(async {
                    for replica in [&s.other, &s.pipeline] {
                        s.lattice.heartbeat("N00000").await;
                        let d = replica.step(&s.event_inbox, Duration::ZERO).await.unwrap();
                        assert!(d.is_some_and(|p| !p.state_in_doubt));
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, heartbeat_step, takeover_step, alternating_steps);
criterion_main!(benches);
