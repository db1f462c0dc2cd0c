//! Reconcile throughput: 1,000 apps × 5 components onto 1,000 hosts, from an empty lattice
//! (placements per second) and again once converged (the steady-state cost of a reconcile).
//!
//! Run: `cargo bench -p wadm-scheduler --bench reconcile -- --quick` (or without `--quick`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::{Catalog, DeployedApp, Desired, builtin_scalers, plan_with, reconcile};

const HOSTS: usize = 1_000;
const APPS: usize = 1_000;
const ZONES: [&str; 4] = ["a", "b", "c", "d"];

fn world() -> (Vec<DeployedApp>, wadm_lattice::LatticeState) {
    let hosts = (0..HOSTS)
        .map(|i| host(&format!("N{i:05}"), &[("zone", ZONES[i % ZONES.len()]), ("tier", "std")]))
        .collect();
    let apps = (0..APPS)
        .map(|a| {
            let comps = (0..5)
                .map(|c| {
                    let spreads = if c == 4 {
                        vec![spread("z", &[("zone", ZONES[a % ZONES.len()])], 100)]
                    } else {
                        vec![]
                    };
                    component(
                        &format!("c{c}"),
                        &format!("ghcr.io/app{a}/c{c}:1"),
                        vec![spreadscaler(1, spreads)],
                    )
                })
                .collect();
            deployed(app(&format!("app{a}"), comps), 1)
        })
        .collect();
    (apps, lattice(hosts))
}

fn bench(c: &mut Criterion) {
    let (apps, empty) = world();
    let first = reconcile(&apps, &empty, 0);
    let placements = first.commands.len() as u64;
    assert_eq!(placements, (APPS * 5) as u64);
    let mut converged = empty.clone();
    apply_plan(&mut converged, &first);
    assert!(reconcile(&apps, &converged, 0).is_empty(), "converged in one round");

    let mut group = c.benchmark_group("reconcile");
    group.sample_size(10);
    group.throughput(Throughput::Elements(placements));
    group.bench_function("from_empty_1000_apps_x5_on_1000_hosts", |b| {
        b.iter(|| black_box(reconcile(black_box(&apps), black_box(&empty), 0)))
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("converged_1000_apps_x5_on_1000_hosts", |b| {
        b.iter(|| black_box(reconcile(black_box(&apps), black_box(&converged), 0)))
    });
    // The steady state of a running manager: desired state unchanged, scalers built once, only
    // the observed lattice changes between reconciles.
    let desired = Desired { deployed: &apps, undeployed: &[] };
    let catalog = Catalog::new(&converged.lattice, desired);
    let scalers = builtin_scalers(&catalog);
    group.bench_function("converged_prepared_scalers", |b| {
        b.iter(|| black_box(plan_with(black_box(&converged), &catalog, &scalers, 0)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
