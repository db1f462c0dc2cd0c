//! Prints one line per generated world: a digest of every plan (commands and statuses) of a few
//! reconcile-and-apply rounds. Two builds of the scheduler that print the same lines decide the
//! same (used to check that optimisations keep results identical).
//!
//! `cargo run -p wadm-scheduler --release --example plan_digest -- 300`

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/generated/mod.rs"]
mod generated;

use generated::gen_world;
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::hash::Fnv128;
use wadm_scheduler::{Desired, reconcile_with};

fn main() {
    let worlds: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    for seed in 0..worlds {
        let (hosts, apps) = [(12, 6), (40, 12), (200, 50)][(seed % 3) as usize];
        let w = gen_world(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), hosts, apps);
        let desired = Desired { deployed: &w.deployed, undeployed: &w.undeployed };
        let mut lattice = w.lattice.clone();
        let mut digest = Fnv128::default();
        for round in 0..4 {
            let plan = reconcile_with(desired, &lattice, round);
            digest = digest.field(format!("{:?}", plan.commands).as_bytes());
            digest = digest.field(format!("{:?}", plan.statuses).as_bytes());
            apply_plan(&mut lattice, &plan);
        }
        println!("{seed} {}", digest.hex());
    }
}
