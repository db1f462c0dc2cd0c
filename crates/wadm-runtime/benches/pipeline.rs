//! Cost of one pipeline step in memory as the lattice grows: a heartbeat step on the replica
//! that wrote the head last (kept state: apply, persist the host record and the head), and the
//! same step after the state was forgotten (a takeover: every entity is read back), and two
//! replicas taking turns (each catches up over the head's journal); and a reconciling step (a
//! tick) with the replica's kept reconciler against one that builds it again (as every
//! reconciling step did before reconcilers were kept); and the decoding of one stored entity
//! record with and without its event mark.
//! Run: `cargo bench -p wadm-runtime -- --quick`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use wadm_runtime::memory::{LogConfig, MemoryLattice, MemoryLog, MemoryStatus};
use wadm_runtime::{
    Clock, Executor, Pipeline, PipelineIo, Random, RuntimeConfig, SeededRandom, VirtualClock,
};
use wadm_store::kv::MemoryKv;
use wadm_store::manifest::ManifestStore;
use wadm_store::observed::MemoryStateStore;
use wadm_store::streams::subjects::{command_filter, event_filters};

type Store = Arc<ManifestStore<MemoryKv>>;

type MemoryPipeline =
    Pipeline<MemoryKv, Arc<MemoryStateStore>, Store, MemoryStatus, MemoryLog, MemoryLattice>;

struct Setup {
    rt: tokio::runtime::Runtime,
    lattice: MemoryLattice,
    pipeline: MemoryPipeline,
    /// A second replica over the same stores.
    other: MemoryPipeline,
    executor: Executor<Store, MemoryLattice, MemoryLog>,
    event_inbox: wadm_runtime::memory::MemoryConsumer,
    command_inbox: wadm_runtime::memory::MemoryConsumer,
    events: MemoryLog,
    /// Ticks published so far (each tick names a new period).
    ticks: std::sync::atomic::AtomicU64,
}

fn manifest(instances: u32) -> serde_json::Value {
    named_manifest("app", instances)
}

fn named_manifest(name: &str, instances: u32) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "core.oam.dev/v1beta1", "kind": "Application",
        "metadata": {"name": name, "annotations": {"version": "v1"}},
        "spec": {"components": [{"name": "echo", "type": "component",
            "properties": {"image": "ghcr.io/example/echo:0.1.0"},
            "traits": [{"type": "spreadscaler", "properties": {"instances": instances}}]}]}
    })
}

fn setup(hosts: usize) -> Setup {
    setup_apps(hosts, 1)
}

/// `hosts` hosts; one app of `hosts` instances, or `apps` apps of 2 instances each.
fn setup_apps(hosts: usize, apps: usize) -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new(1_700_000_000_000));
    let random: Arc<dyn Random> = Arc::new(SeededRandom::new(1));
    let events = MemoryLog::new(clock.clone(), LogConfig::default());
    let commands = MemoryLog::new(clock.clone(), LogConfig::default());
    let store: Store = Arc::new(ManifestStore::new(MemoryKv::default()));
    let lattice = MemoryLattice::new("default", events.clone(), clock.clone());
    let config = RuntimeConfig::default();
    let (heads, state, status) =
        (MemoryKv::default(), Arc::new(MemoryStateStore::new()), MemoryStatus::default());
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
    let s = Setup {
        rt,
        lattice,
        pipeline,
        other,
        executor,
        event_inbox,
        command_inbox,
        events: events.clone(),
        ticks: std::sync::atomic::AtomicU64::new(1),
    };
    s.rt.block_on(async {
        for i in 0..hosts {
            s.lattice.add_host(&format!("N{i:05}"), Default::default()).await;
        }
        if apps == 1 {
            store.put("default", "app", "v1", manifest(hosts as u32), "b").await.unwrap();
            store.deploy("default", "app", Some("v1"), "b").await.unwrap();
        } else {
            for i in 0..apps {
                let name = format!("app{i:04}");
                store.put("default", &name, "v1", named_manifest(&name, 2), "b").await.unwrap();
                store.deploy("default", &name, Some("v1"), "b").await.unwrap();
            }
        }
        // A first tick folds the deployments in.
        let tick = wadm_runtime::tick_message("default", 0, Duration::from_secs(5));
        wadm_runtime::Outbox::publish(&s.events, tick).await.unwrap();
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

/// A tick (every application reconciled) on a converged lattice of 100 hosts: with the kept
/// reconciler, and building it again first.
fn reconciling_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_tick_step_100_hosts");
    for apps in [10usize, 100] {
        let s = setup_apps(100, apps);
        for rebuild in [false, true] {
            let id = format!("{apps}_apps_{}", if rebuild { "rebuilt" } else { "kept" });
            group.bench_function(id, |b| {
                b.iter(|| {
                    s.rt.block_on(async {
                        if rebuild {
                            s.pipeline.reconcilers().invalidate("default");
                        }
                        let n = s.ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let tick = wadm_runtime::tick_message("default", n * 5_000, TICK);
                        wadm_runtime::Outbox::publish(&s.events, tick).await.unwrap();
                        let d = s.pipeline.step(&s.event_inbox, Duration::ZERO).await.unwrap();
                        assert!(d.is_some_and(|p| p.published == 0));
                    })
                })
            });
        }
    }
    group.finish();
}

const TICK: Duration = Duration::from_secs(5);

/// Decoding one stored component record as a takeover does: plain serde (the record shape and
/// decoder before marks were stored) against the marked decoder on a record without a mark (an
/// old record), with a mark, and a removal record.
fn record_decode(c: &mut Criterion) {
    use wadm_lattice::ComponentInstance;
    use wadm_lattice::bookkeeping::{EventStamp, Mark};
    use wadm_store::observed::marked;
    let instance = ComponentInstance {
        id: "echo-component".into(),
        image_ref: "ghcr.io/example/echo:0.1.0".into(),
        count: 3,
        annotations: [
            ("wasmcloud.dev/appspec".to_string(), "app-00042".to_string()),
            ("wasmcloud.dev/managed-by".to_string(), "wadm".to_string()),
        ]
        .into(),
        since: 0,
    };
    let stamp = EventStamp { time: 1_763_846_400_000, id: "0b6c2b9e-6d3f-4c7e-9a51".into() };
    let mark = Mark { stamp, applied_at: 1_763_846_400_015 };
    let plain = serde_json::to_vec(&instance).unwrap();
    let with_mark = marked::encode(Some(&instance), Some(&mark)).unwrap();
    let removal = marked::encode::<ComponentInstance>(None, Some(&mark)).unwrap();
    let mut group = c.benchmark_group("store_record_decode");
    group.bench_function("plain_serde", |b| {
        b.iter(|| serde_json::from_slice::<ComponentInstance>(&plain).unwrap())
    });
    group.bench_function("marked_decode_unmarked", |b| {
        b.iter(|| marked::decode::<ComponentInstance>(&plain).unwrap())
    });
    group.bench_function("marked_decode_with_mark", |b| {
        b.iter(|| marked::decode::<ComponentInstance>(&with_mark).unwrap())
    });
    group.bench_function("marked_decode_removal", |b| {
        b.iter(|| marked::decode::<ComponentInstance>(&removal).unwrap())
    });
    group.finish();
}

criterion_group!(
    benches,
    heartbeat_step,
    takeover_step,
    alternating_steps,
    reconciling_step,
    record_decode
);
criterion_main!(benches);
