//! Runs the converged re-reconcile of the bench lattice (1,000 apps × 5 components on 1,000 hosts)
//! a few times, for profiling with a deterministic instruction counter:
//!
//! ```text
//! cargo build -p wadm-scheduler --profile bench --example converged_profile
//! valgrind --tool=callgrind --zero-before=converged_profile::converged_rounds \
//!     target/release/examples/converged_profile 3
//! ```
//!
//! (`--zero-before` leaves the setup, including the from-empty reconcile, out of the counts.)
//!
//! The first argument is the number of converged reconciles (default 3); `prepared` as the second
//! argument re-runs only `plan_with` with kept scalers. Prints the mean wall time per round
//! (for A/B runs of two builds, interleaved; instruction counts from callgrind are steadier).

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use common::*;
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

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let prepared = args.next().as_deref() == Some("prepared");
    let (apps, empty) = world();
    let first = reconcile(&apps, &empty, 0);
    let mut converged = empty.clone();
    apply_plan(&mut converged, &first);
    let started = std::time::Instant::now();
    converged_rounds(&apps, &converged, rounds, prepared);
    let per_round = started.elapsed().as_secs_f64() * 1e3 / rounds.max(1) as f64;
    println!("{per_round:.2} ms per converged reconcile");
}

#[inline(never)]
fn converged_rounds(
    apps: &[DeployedApp],
    converged: &wadm_lattice::LatticeState,
    rounds: usize,
    prepared: bool,
) {
    if prepared {
        let desired = Desired { deployed: apps, undeployed: &[] };
        let catalog = Catalog::new(&converged.lattice, desired);
        let scalers = builtin_scalers(&catalog);
        for _ in 0..rounds {
            assert!(black_box(plan_with(converged, &catalog, &scalers, 0)).is_empty());
        }
    } else {
        for _ in 0..rounds {
            assert!(black_box(reconcile(apps, converged, 0)).is_empty());
        }
    }
}
