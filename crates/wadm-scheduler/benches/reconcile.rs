//! Reconcile throughput: 1,000 apps × 5 components onto 1,000 hosts, from an empty lattice
//! (placements per second) and again once converged: with a [`Reconciler`] that keeps its scalers
//! (the steady state of a running manager: what `wadm-runtime` does while the desired state does
//! not change) and cold, building every scaler from the manifests first; and converged for one
//! affected application ([`Reconciler::reconcile_apps`], what `wadm-runtime` runs for a batch that
//! touched one application) next to all of them.
//!
//! Run: `cargo bench -p wadm-scheduler --bench reconcile -- --quick` (or without `--quick`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::{Reconciler, reconcile};

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
    // The same placements with the scalers already built (what the runtime keeps between
    // reconciles): the placement core alone, without building 5,000 scalers from manifests.
    let kept = Reconciler::new(&empty.lattice, apps.clone(), Vec::new());
    assert_eq!(kept.reconcile(&empty, 0).commands, first.commands);
    group.bench_function("from_empty_reconciler_1000_apps_x5_on_1000_hosts", |b| {
        b.iter(|| black_box(kept.reconcile(black_box(&empty), 0)))
    });
    group.throughput(Throughput::Elements(1));
    let reconciler = Reconciler::new(&converged.lattice, apps.clone(), Vec::new());
    assert!(reconciler.reconcile(&converged, 0).is_empty());
    group.bench_function("converged_reconciler_1000_apps_x5_on_1000_hosts", |b| {
        b.iter(|| black_box(reconciler.reconcile(black_box(&converged), 0)))
    });
    let one = reconciler.reconcile_apps(&converged, 0, ["app500"]);
    assert!(one.plan.is_empty() && one.apps.len() == 1);
    group.bench_function("converged_reconciler_1_affected_app_of_1000", |b| {
        b.iter(|| black_box(reconciler.reconcile_apps(black_box(&converged), 0, ["app500"])))
    });
    group.bench_function("converged_cold_1000_apps_x5_on_1000_hosts", |b| {
        b.iter(|| black_box(reconcile(black_box(&apps), black_box(&converged), 0)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
