//! Cost of applying heartbeats: 10,000 heartbeats over a 1,000-host lattice (10 per host), each
//! host running 5 components and 2 providers. Run with
//! `cargo bench -p wadm-lattice --bench heartbeats -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wadm_lattice::{EventContext, LatticeState, apply};
use wadm_protocol::{
    ComponentDescription, HostEvent, HostInventory, ProviderDescription, StringMap,
};

const HOSTS: usize = 1_000;
const HEARTBEATS: usize = 10_000;

fn host_id(i: usize) -> String {
    format!("N{i:055}")
}

fn inventory(i: usize) -> HostInventory {
    let annotations: StringMap =
        [("wasmcloud.dev/appspec".to_string(), format!("app{}", i % 50))].into();
    let mut labels: StringMap = [("zone".to_string(), format!("z{}", i % 3))].into();
    labels.insert("hostcore.os".into(), "linux".into());
    HostInventory {
        host_id: host_id(i),
        friendly_name: format!("host-{i}"),
        labels,
        version: "1.9.2".into(),
        components: (0..5)
            .map(|c| ComponentDescription {
                id: format!("app{}-comp{c}", i % 50),
                image_ref: format!("ghcr.io/x/comp{c}:1"),
                name: None,
                annotations: annotations.clone(),
                revision: 0,
                max_instances: 4,
                limits: None,
            })
            .collect(),
        providers: (0..2)
            .map(|p| ProviderDescription {
                id: format!("prov{p}"),
                image_ref: format!("ghcr.io/x/prov{p}:1"),
                name: None,
                annotations: annotations.clone(),
                revision: 0,
            })
            .collect(),
        ..HostInventory::default()
    }
}

fn heartbeat(i: usize, round: usize) -> (EventContext, HostEvent) {
    let ctx = EventContext {
        source: host_id(i),
        id: format!("hb-{round}-{i}"),
        time: Some(1_000 + (round * HOSTS + i) as u64),
    };
    (ctx, HostEvent::HostHeartbeat(inventory(i)))
}

fn bench(c: &mut Criterion) {
    let mut lattice = LatticeState { lattice: "bench".into(), ..LatticeState::default() };
    for i in 0..HOSTS {
        let (ctx, ev) = heartbeat(i, 0);
        apply(&mut lattice, &ctx, &ev, 0);
    }
    let events: Vec<_> = (0..HEARTBEATS).map(|n| heartbeat(n % HOSTS, 1 + n / HOSTS)).collect();
    let mut group = c.benchmark_group("reducer");
    group.throughput(Throughput::Elements(HEARTBEATS as u64));
    group.sample_size(10);
    group.bench_function("10k_heartbeats_1k_hosts", |b| {
        b.iter_batched(
            || lattice.clone(),
            |mut state| {
                for (n, (ctx, ev)) in events.iter().enumerate() {
                    black_box(apply(&mut state, ctx, ev, n as u64));
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
