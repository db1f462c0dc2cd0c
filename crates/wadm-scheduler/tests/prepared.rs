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

#[test]
fn the_builtin_factory_is_reconciler_new() {
    use wadm_scheduler::ScalerFactory;
    for seed in 0..16u64 {
        let w = gen_world(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 30, 10);
        let lattice = &w.lattice.lattice;
        let new = Reconciler::new(lattice, w.deployed.clone(), w.undeployed.clone());
        let custom_builtins = ScalerFactory::new(builtin_scalers);
        for factory in [ScalerFactory::builtin(), custom_builtins] {
            let with = Reconciler::with_scalers(
                lattice,
                w.deployed.clone(),
                w.undeployed.clone(),
                &factory,
            );
            assert_eq!(with.reconcile(&w.lattice, 1), new.reconcile(&w.lattice, 1), "seed {seed}");
        }
    }
}

#[test]
fn a_factory_adds_custom_scalers_to_the_builtins() {
    use std::sync::Arc;
    use wadm_model::{StatusInfo, StatusType};
    use wadm_scheduler::{Context, Evaluation, Scaler, ScalerFactory, ScalerInfo};

    /// Reports `failed` for its application and wants nothing.
    struct Veto(ScalerInfo);
    impl Scaler for Veto {
        fn info(&self) -> &ScalerInfo {
            &self.0
        }
        fn evaluate(&self, _ctx: &Context<'_>) -> Evaluation {
            let status = StatusInfo::new(StatusType::Failed, "vetoed");
            Evaluation { status, ..Evaluation::default() }
        }
    }
    let factory = ScalerFactory::with_builtins(|catalog| {
        let veto = |app: &str| -> Box<dyn Scaler> {
            Box::new(Veto(ScalerInfo {
                app: Arc::from(app),
                rank: u32::MAX,
                id: Arc::from("Veto"),
                kind: Arc::from("Veto"),
                name: Arc::from("veto"),
            }))
        };
        catalog.deployed.keys().map(|app| veto(app)).collect()
    });
    assert!(!factory.is_builtin() && factory == factory.clone());
    assert_ne!(factory, ScalerFactory::builtin());
    let w = gen_world(7, 20, 8);
    let lattice = &w.lattice.lattice;
    let builtin = Reconciler::new(lattice, w.deployed.clone(), w.undeployed.clone());
    let vetoed =
        Reconciler::with_scalers(lattice, w.deployed.clone(), w.undeployed.clone(), &factory);
    let (plain, plan) = (builtin.reconcile(&w.lattice, 1), vetoed.reconcile(&w.lattice, 1));
    // The built-ins still plan the same commands; every deployed application is failed now.
    assert_eq!(plan.commands, plain.commands);
    let deployed: Vec<&str> =
        w.deployed.iter().filter(|d| d.lattice == *lattice).map(|d| d.name()).collect();
    assert!(!deployed.is_empty());
    for app in deployed {
        let status = &plan.statuses[app];
        assert_eq!(status.status.status_type, StatusType::Failed, "{app}");
        assert!(status.scalers.iter().any(|s| &*s.id == "Veto" && &*s.status.message == "vetoed"));
    }
}
