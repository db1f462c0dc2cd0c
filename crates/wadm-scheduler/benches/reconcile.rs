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
use wadm_scheduler::{Catalog, Desired, builtin_scalers, plan_with, reconcile};

fn bench(c: &mut Criterion) {
    let (apps, empty) = bench_world();
    let first = reconcile(&apps, &empty, 0);
    let placements = first.commands.len() as u64;
    assert_eq!(placements, (BENCH_APPS * 5) as u64);
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
