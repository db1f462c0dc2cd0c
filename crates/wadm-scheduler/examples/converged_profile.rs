//! Runs the converged re-reconcile of the bench lattice (1,000 apps × 5 components on 1,000 hosts)
//! a few times, for profiling with a deterministic instruction counter:
//!
//! ```text
//! cargo build -p wadm-scheduler --profile bench --example converged_profile
//! valgrind --tool=callgrind --toggle-collect='converged_profile::*_rounds' \
//!     target/release/examples/converged_profile 3
//! ```
//!
//! (`--toggle-collect` leaves the setup, including the from-empty reconcile and building the kept
//! scalers, out of the counts. A kept scaler's first round also builds its spreads' annotations:
//! a steady round is the count of 3 rounds less that of 1, halved.)
//!
//! The first argument is the number of converged reconciles (default 3); `prepared` as the second
//! argument runs a [`Reconciler`] (kept scalers) instead, `empty` the from-empty reconcile (5,000
//! placements: `--toggle-collect='converged_profile::empty_rounds'`), `empty-kept` the same with
//! kept scalers (`converged_profile::empty_kept_rounds`), `scoped` a converged
//! reconcile of one affected application with kept scalers. Prints the mean wall time and allocations
//! per round (for A/B runs of two builds, interleaved; instruction counts from callgrind are steadier).

#[path = "../tests/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use wadm_lattice::LatticeState;
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::{DeployedApp, Reconciler, reconcile};

/// Counts allocations, so a change's effect on them shows without a profiler.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let mode = args.next();
    let prepared = mode.as_deref() == Some("prepared");
    let from_empty = mode.as_deref() == Some("empty");
    let scoped = mode.as_deref() == Some("scoped");
    let empty_kept = mode.as_deref() == Some("empty-kept");
    let (apps, empty) = bench_world();
    let first = reconcile(&apps, &empty, 0);
    let mut converged = empty.clone();
    apply_plan(&mut converged, &first);
    let reconciler = (prepared || scoped || empty_kept)
        .then(|| Reconciler::new(&converged.lattice, apps.clone(), Vec::new()));
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    if let Some(reconciler) = reconciler.as_ref().filter(|_| empty_kept) {
        empty_kept_rounds(reconciler, &empty, rounds);
    } else if from_empty {
        empty_rounds(&apps, &empty, rounds);
    } else if let Some(reconciler) = reconciler.as_ref().filter(|_| scoped) {
        scoped_rounds(reconciler, &converged, rounds);
    } else if let Some(reconciler) = &reconciler {
        prepared_rounds(reconciler, &converged, rounds);
    } else {
        converged_rounds(&apps, &converged, rounds);
    }
    let per_round = started.elapsed().as_secs_f64() * 1e3 / rounds.max(1) as f64;
    let allocations = (ALLOCATIONS.load(Ordering::Relaxed) - allocations) / rounds.max(1) as u64;
    let what = if from_empty || empty_kept { "from-empty" } else { "converged" };
    println!("{per_round:.2} ms and {allocations} allocations per {what} reconcile");
}

/// Full reconciles: catalog, scalers and plan each round.
#[inline(never)]
fn converged_rounds(apps: &[DeployedApp], converged: &LatticeState, rounds: usize) {
    for _ in 0..rounds {
        assert!(black_box(reconcile(apps, converged, 0)).is_empty());
    }
}

/// From-empty reconciles: 5,000 placements each.
#[inline(never)]
fn empty_rounds(apps: &[DeployedApp], empty: &LatticeState, rounds: usize) {
    for _ in 0..rounds {
        assert_eq!(black_box(reconcile(apps, empty, 0)).commands.len(), apps.len() * 5);
    }
}

/// From-empty reconciles with kept scalers: the placement core alone, 5,000 placements each.
#[inline(never)]
fn empty_kept_rounds(reconciler: &Reconciler, empty: &LatticeState, rounds: usize) {
    for _ in 0..rounds {
        assert_eq!(black_box(reconciler.reconcile(empty, 0)).commands.len(), 5_000);
    }
}

/// Reconciles of one affected application with kept scalers ([`Reconciler::reconcile_apps`]).
#[inline(never)]
fn scoped_rounds(reconciler: &Reconciler, converged: &LatticeState, rounds: usize) {
    for _ in 0..rounds {
        assert!(black_box(reconciler.reconcile_apps(converged, 0, ["app500"])).plan.is_empty());
    }
}

/// Reconciles with kept scalers (a [`Reconciler`]): catalog and plan each round.
#[inline(never)]
fn prepared_rounds(reconciler: &Reconciler, converged: &LatticeState, rounds: usize) {
    for _ in 0..rounds {
        assert!(black_box(reconciler.reconcile(converged, 0)).is_empty());
    }
}
