//! Pins what the scheduler decides: digests of the serialised plans (commands with their ids, in
//! order, and statuses) of generated worlds and of the benchmark world, recorded from the code
//! before the placement core was optimised. A change that alters any plan fails here; one that
//! only makes planning cheaper does not.

mod common;
mod generated;

use common::*;
use generated::gen_world;
use wadm_lattice::LatticeState;
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::hash::Fnv128;
use wadm_scheduler::{Desired, Plan, Reconciler, reconcile, reconcile_with};

/// Adds everything a plan decides to `digest`, through its serialised (wire) forms.
fn digest_plan(digest: Fnv128, plan: &Plan) -> Fnv128 {
    let mut digest = digest.field(plan.lattice.as_bytes());
    for planned in &plan.commands {
        let json = serde_json::to_string(planned).expect("a planned command serialises");
        digest = digest
            .field(json.as_bytes())
            .field(planned.command.subject(&plan.lattice).as_bytes())
            .field(&planned.command.body_bytes());
    }
    let statuses = serde_json::to_string(&plan.statuses).expect("statuses serialise");
    digest
        .field(statuses.as_bytes())
        .field(format!("{:?}", plan.wakes).as_bytes())
        .field(format!("{:?}", plan.rollouts).as_bytes())
        .field(format!("{:?}", plan.short_of_capacity).as_bytes())
}

/// Four reconcile-and-apply rounds of generated worlds, cold and with kept scalers (which must
/// agree), digested together.
fn generated_worlds_digest(seeds: u64) -> String {
    let mut digest = Fnv128::default();
    for seed in 0..seeds {
        let (hosts, apps) = [(12, 6), (40, 12), (200, 50)][(seed % 3) as usize];
        let w = gen_world(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), hosts, apps);
        let desired = Desired { deployed: &w.deployed, undeployed: &w.undeployed };
        let kept = Reconciler::new(&w.lattice.lattice, w.deployed.clone(), w.undeployed.clone());
        let mut lattice: LatticeState = w.lattice.clone();
        for round in 0..4 {
            let plan = reconcile_with(desired, &lattice, round);
            assert_eq!(kept.reconcile(&lattice, round), plan, "seed {seed} round {round}");
            digest = digest_plan(digest, &plan);
            apply_plan(&mut lattice, &plan);
        }
    }
    digest.hex()
}

#[test]
fn generated_worlds_plan_as_recorded() {
    assert_eq!(generated_worlds_digest(60), "ec5c4862e4c6287d6a1e0e3b5b1aa510");
}

#[test]
fn bench_world_plans_as_recorded() {
    let (apps, empty) = bench_world();
    let first = reconcile(&apps, &empty, 7);
    let kept = Reconciler::new(&empty.lattice, apps.clone(), Vec::new());
    assert_eq!(kept.reconcile(&empty, 7), first);
    let mut converged = empty.clone();
    apply_plan(&mut converged, &first);
    let again = kept.reconcile(&converged, 8);
    assert!(again.is_empty());
    let digest = digest_plan(digest_plan(Fnv128::default(), &first), &again);
    assert_eq!(digest.hex(), "c8435aa7b01908b7ed59e39ee7d8c27b");
}
