//! Reconciling some applications only ([`Reconciler::reconcile_apps`]): for random worlds (with
//! shared ids, shared link keys and config names, shared applications, instances annotated with
//! another application, undeploys) and random sets of applications, the scoped plan equals the
//! full plan restricted to the closure it reports.

mod common;
mod generated;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use generated::*;
use proptest::prelude::*;
use wadm_lattice::LatticeState;
use wadm_model::{ComponentKind, Source};
use wadm_scheduler::apply::{apply_command, apply_plan};
use wadm_scheduler::{DeployedApp, Reconciler, UndeployedApp};

/// A generated world with more coupling between applications than [`gen_world`] makes.
fn coupled_world(seed: u64, hosts: u64, apps: u64) -> World {
    let mut w = gen_world(seed, hosts, apps);
    let mut rng = Rng(seed ^ 0x5eed);
    let names: Vec<String> = w.deployed.iter().map(|d| d.app.name.clone()).collect();
    for d in w.deployed.iter_mut() {
        for c in d.app.components.iter_mut() {
            // Explicit ids shared across applications (their links then share keys too).
            if c.kind == ComponentKind::Component && rng.chance(15) {
                c.id = format!("shared-c{}", rng.below(2));
                c.explicit_id = true;
            }
            // Owned config names shared across applications.
            for cfg in c.config.iter_mut().filter(|cfg| cfg.properties.is_some()) {
                if rng.chance(30) {
                    cfg.lattice_name = "shared-cfg".into();
                }
            }
        }
    }
    // Shared applications: the first one is shared; others link from a reference to it.
    if let Some(first) = w.deployed.first_mut() {
        first.app.shared = rng.chance(70);
    }
    let shared = w.deployed.first().map(|d| (d.app.name.clone(), d.app.components[0].name.clone()));
    if let Some((application, component)) = shared {
        for d in w.deployed.iter_mut().skip(1) {
            if rng.chance(30) {
                let target = d.app.components[0].name.clone();
                let mut reference = common::component("ref", "unused", vec![]);
                reference.source = Source::Shared {
                    application: application.clone(),
                    component: component.clone(),
                };
                reference.id = String::new();
                reference.links.push(link(&target, "wasi", "blobstore", &["blob"]));
                d.app.components.push(reference);
            }
        }
    }
    // Instances annotated with another known application than the one declaring their id.
    for h in w.lattice.hosts.values_mut() {
        for c in h.components.values_mut() {
            if c.annotations.contains_key("wasmcloud.dev/appspec") && rng.chance(25) {
                let other = rng.pick(&names).clone();
                c.annotations.insert("wasmcloud.dev/appspec".into(), other);
            }
        }
    }
    w
}

fn known(r: &Reconciler) -> BTreeSet<String> {
    let d = r.desired();
    let deployed = d.deployed.iter().map(|d| d.app.name.clone());
    deployed.chain(d.undeployed.iter().map(|u| u.name.clone())).collect()
}

/// The scoped plan of `seeds` is the full plan restricted to its closure.
fn check(r: &Reconciler, lat: &LatticeState, seeds: &[String]) -> Result<usize, TestCaseError> {
    let full = r.reconcile(lat, 5);
    let part = r.reconcile_apps(lat, 5, seeds);
    let known = known(r);
    for s in seeds.iter().filter(|s| known.contains(*s)) {
        prop_assert!(part.apps.contains(s), "{s} missing from its own closure");
    }
    prop_assert!(part.apps.is_subset(&known), "unknown apps in the closure: {:?}", part.apps);
    let commands: Vec<_> =
        full.commands.iter().filter(|c| part.apps.contains(&*c.app)).cloned().collect();
    prop_assert_eq!(&part.plan.commands, &commands, "commands of {:?}", part.apps);
    let statuses: BTreeMap<_, _> = full
        .statuses
        .iter()
        .filter(|(app, _)| part.apps.contains(*app))
        .map(|(a, s)| (a.clone(), s.clone()))
        .collect();
    prop_assert_eq!(&part.plan.statuses, &statuses, "statuses of {:?}", part.apps);
    prop_assert_eq!((&part.plan.lattice, part.plan.computed_at), (&full.lattice, 5));
    Ok(part.apps.len())
}

fn check_world(w: &World, seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng(seed);
    let mut deployed: Vec<DeployedApp> = w.deployed.clone();
    let mut undeployed: Vec<UndeployedApp> = w.undeployed.clone();
    let mut lat = w.lattice.clone();
    for round in 0..4 {
        if round == 2 && deployed.len() > 1 && rng.chance(70) {
            // Undeploy one: its leftovers must go, unless someone else wants them.
            let gone = deployed.remove(rng.below(deployed.len() as u64) as usize);
            let (name, spec) = (gone.app.name.clone(), Some(gone.app));
            undeployed.push(UndeployedApp { name, generation: 20, last_spec: spec });
        }
        let r = Reconciler::new(LATTICE, deployed.clone(), undeployed.clone());
        let names: Vec<String> = known(&r).into_iter().chain(["nobody".to_string()]).collect();
        for _ in 0..4 {
            let seeds: Vec<String> =
                names.iter().filter(|_| rng.chance(20)).cloned().collect::<Vec<_>>();
            check(&r, &lat, &seeds)?;
        }
        for name in &names {
            check(&r, &lat, std::slice::from_ref(name))?;
        }
        check(&r, &lat, &[])?;
        // Apply all of the plan, or part of it (intermediate states).
        let plan = r.reconcile(&lat, 5);
        if rng.chance(50) {
            apply_plan(&mut lat, &plan);
        } else {
            for c in plan.commands.iter().filter(|_| rng.chance(60)) {
                apply_command(&mut lat, &c.command);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_scoped_plan_is_the_full_plan_restricted_to_its_closure(seed in any::<u64>()) {
        let w = coupled_world(seed, 12, 6);
        check_world(&w, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn a_scoped_plan_is_the_full_plan_restricted_to_its_closure_large(seed in any::<u64>()) {
        let w = coupled_world(seed, 60, 20);
        check_world(&w, seed)?;
    }
}

#[test]
fn independent_applications_are_reconciled_alone() {
    let (apps, empty) = bench_world();
    let apps: Vec<DeployedApp> = apps.into_iter().take(50).collect();
    let r = Reconciler::new(LATTICE, apps, Vec::new());
    let part = r.reconcile_apps(&empty, 0, ["app7"]);
    assert_eq!(part.apps, BTreeSet::from(["app7".to_string()]));
    assert_eq!(part.plan.commands.len(), 5);
    assert!(part.plan.commands.iter().all(|c| &*c.app == "app7"));
    assert_eq!(part.plan.statuses.keys().collect::<Vec<_>>(), ["app7"]);
    let none = r.reconcile_apps(&empty, 0, ["unknown"]);
    assert!(none.apps.is_empty() && none.plan.commands.is_empty() && none.plan.statuses.is_empty());
}

#[test]
fn a_shared_provider_couples_its_applications() {
    let p = |app_name: &str| {
        let comps = vec![with_id(provider("p", "shared:1", vec![]), "shared-p")];
        deployed(app(app_name, comps), 1)
    };
    let solo = deployed(app("c", vec![component("x", "img", vec![spreadscaler(1, vec![])])]), 1);
    let r = Reconciler::new(LATTICE, vec![p("a"), p("b"), solo], Vec::new());
    let lat = lattice(vec![host("h1", &[])]);
    let part = r.reconcile_apps(&lat, 0, ["b"]);
    assert_eq!(part.apps, BTreeSet::from(["a".to_string(), "b".to_string()]));
    // The smallest owner starts it, recording the other as co-owner.
    assert_eq!(part.plan.commands.len(), 1);
    assert_eq!(&*part.plan.commands[0].app, "a");
}

#[test]
fn an_instance_annotated_for_an_undeployed_app_couples_it_with_the_app_wanting_its_id() {
    // `gone` left an instance of `a`'s component id: `a`'s want covers it (it is kept and
    // re-annotated), so reconciling `gone` alone must not stop it.
    let a = deployed(app("a", vec![component("c", "img", vec![spreadscaler(1, vec![])])]), 1);
    let gone = UndeployedApp { name: "gone".into(), generation: 3, last_spec: None };
    let mut h = host("h1", &[]);
    let ann = [("wasmcloud.dev/managed-by", "wadm"), ("wasmcloud.dev/appspec", "gone")];
    run_component(&mut h, "a-c", "img", 1, &ann);
    let lat = lattice(vec![h]);
    let r = Reconciler::new(LATTICE, vec![a], vec![gone]);
    let part = r.reconcile_apps(&lat, 0, ["gone"]);
    assert!(part.apps.contains("a"), "{:?}", part.apps);
    let full = r.reconcile(&lat, 0);
    assert_eq!(part.plan.commands, full.commands);
}
