//! Keeping scalers across reconciles (the cheap steady state): scalers built once from a desired
//! state, run with a catalog rebuilt for each reconcile, plan exactly what a full reconcile plans
//! while the lattice changes underneath.

mod common;
mod generated;

use generated::gen_world;
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::{Catalog, Desired, Reconciler, builtin_scalers, plan_with, reconcile_with};

#[test]
fn kept_scalers_plan_like_a_full_reconcile() {
    for seed in 0..48u64 {
        let w = gen_world(seed.wrapping_mul(0x2545_f491_4f6c_dd1d), 40, 12);
        let desired = Desired { deployed: &w.deployed, undeployed: &w.undeployed };
        let scalers = builtin_scalers(&Catalog::new(&w.lattice.lattice, desired));
        let reconciler =
            Reconciler::new(&w.lattice.lattice, w.deployed.clone(), w.undeployed.clone());
        let mut lattice = w.lattice.clone();
        for round in 0..4 {
            let full = reconcile_with(desired, &lattice, round);
            let catalog = Catalog::new(&lattice.lattice, desired);
            let kept = plan_with(&lattice, &catalog, &scalers, round);
            assert_eq!(kept, full, "seed {seed} round {round}");
            assert_eq!(reconciler.reconcile(&lattice, round), full, "seed {seed} round {round}");
            apply_plan(&mut lattice, &full);
        }
    }
}

#[test]
fn a_reconciler_can_be_kept_by_an_async_manager() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<Reconciler>();
}
