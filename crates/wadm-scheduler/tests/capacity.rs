//! Placement by declared host capacity, `binpack`, `max_per_host`, `min_hosts` and
//! anti-affinity: what the hosts end up running, what the status says, and (property-tested)
//! that no host goes over its capacity after any step, kept-apart components never share a host,
//! and the plan does not depend on the order of hosts or applications.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use wadm_lattice::LatticeState;
use wadm_model::{Component, PlacementPolicy, Scaler, ScalerSpec, StatusType};
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::{DeployedApp, Plan, reconcile_with};

const IMAGE: &str = "ghcr.io/x/c:1";

fn needs(mut c: Component, pairs: &[(&str, u64)]) -> Component {
    c.needs = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    c
}

fn scaler(instances: u32, policy: PlacementPolicy, max: Option<u32>, min: Option<u32>) -> Scaler {
    let mut spec = ScalerSpec::new(instances, vec![spread("default", &[], 100)]);
    spec.placement = policy;
    spec.max_per_host = max;
    spec.min_hosts = min;
    Scaler::Spread(spec)
}

/// Application `name` of the one component `c`, deployed.
fn single(name: &str, c: Component) -> DeployedApp {
    deployed(app(name, vec![c]), 1)
}

/// `app`'s status in `plan` is `failed` and says `text`.
fn assert_failed_with(plan: &Plan, app: &str, text: &str) {
    let (kind, message) = status_of(plan, app);
    assert_eq!(kind, StatusType::Failed, "{message}");
    assert!(message.contains(text), "{message}");
}

fn hosts_with(n: usize, labels: &[(&str, &str)]) -> LatticeState {
    lattice((0..n).map(|i| host(&format!("h{i}"), labels)).collect())
}

fn status_of(plan: &Plan, app: &str) -> (StatusType, String) {
    let s = &plan.statuses[app];
    (s.status.status_type, s.status.message.to_string())
}

/// Reconcile and apply until nothing is sent; every step is checked by `check`.
fn converge_checked(
    apps: &[DeployedApp],
    lattice: &mut LatticeState,
    mut check: impl FnMut(&LatticeState),
) -> Plan {
    for _ in 0..10 {
        let plan = reconcile_with(deploy(apps), lattice, 1);
        apply_plan(lattice, &plan);
        check(lattice);
        if plan.is_empty() {
            return plan;
        }
    }
    panic!("no fixed point after 10 rounds");
}

#[test]
fn two_apps_compete_for_memory_and_the_second_says_what_ran_out() {
    let mut world = hosts_with(3, &[("capacity_memory_mib", "256")]);
    let a = single(
        "a",
        needs(component("c", IMAGE, vec![spreadscaler(4, vec![])]), &[("memory_mib", 128)]),
    );
    let b = single(
        "b",
        needs(component("c", IMAGE, vec![spreadscaler(4, vec![])]), &[("memory_mib", 128)]),
    );
    let apps = [a, b];
    let last = converge_checked(&apps, &mut world, |_| {});
    let a_counts = counts(&world, "a-c");
    let b_counts = counts(&world, "b-c");
    assert_eq!(a_counts.values().sum::<u32>(), 4, "{a_counts:?}");
    assert_eq!(b_counts.values().sum::<u32>(), 2, "{b_counts:?}");
    for h in world.hosts.keys() {
        let used = a_counts.get(h).unwrap_or(&0) + b_counts.get(h).unwrap_or(&0);
        assert!(used <= 2, "host {h} runs {used} × 128 MiB of 256");
    }
    assert_eq!(status_of(&last, "a").0, StatusType::Deployed);
    assert_failed_with(&last, "b", "needs 4 instances, 2 fit: host capacity memory_mib");
    // The plan says which applications ran short of capacity (allocation events classify their
    // next placements `capacity`).
    assert_eq!(last.short_of_capacity, ["b".to_string()].into());
}

#[test]
fn hosts_without_declarations_behave_as_before() {
    let mut world = hosts_with(3, &[]);
    let a = single(
        "a",
        needs(component("c", IMAGE, vec![spreadscaler(4, vec![])]), &[("memory_mib", 128)]),
    );
    converge(deploy(std::slice::from_ref(&a)), &mut world);
    let mut per_host: Vec<u32> = counts(&world, "a-c").into_values().collect();
    per_host.sort();
    assert_eq!(per_host, vec![1, 1, 2]);
}

#[test]
fn instances_capacity_counts_every_apps_instances_and_providers() {
    let mut world = hosts_with(2, &[("capacity_instances", "2")]);
    // Someone else's component takes one slot on h0.
    run_component(world.hosts.get_mut("h0").unwrap(), "foreign", IMAGE, 1, &[]);
    let a = single("a", provider("p", "ghcr.io/x/p:1", vec![spreadscaler(2, vec![])]));
    let b = single("b", component("c", IMAGE, vec![spreadscaler(3, vec![])]));
    let apps = [a, b];
    let last = converge_checked(&apps, &mut world, |_| {});
    assert_eq!(provider_hosts(&world, "a-p").len(), 2);
    // 4 slots, 1 foreign, 2 providers: one instance of b fits.
    assert_eq!(counts(&world, "b-c").values().sum::<u32>(), 1);
    assert_failed_with(&last, "b", "host capacity instances");
}

#[test]
fn binpack_fills_the_fullest_host_spread_uses_the_least_loaded() {
    let mut world = hosts_with(3, &[("capacity_instances", "4")]);
    run_component(world.hosts.get_mut("h1").unwrap(), "foreign", IMAGE, 1, &[]);
    let packed = single(
        "packed",
        component("c", IMAGE, vec![scaler(5, PlacementPolicy::Binpack, None, None)]),
    );
    converge(deploy(std::slice::from_ref(&packed)), &mut world);
    // h1 (fullest) takes 3 (its 4th slot is the foreign one), the next host the other 2.
    let c = counts(&world, "packed-c");
    assert_eq!(c.get("h1"), Some(&3), "{c:?}");
    assert_eq!(c.len(), 2, "{c:?}");

    let mut world = hosts_with(3, &[("capacity_instances", "4")]);
    let spread_app = single(
        "spreadapp",
        component("c", IMAGE, vec![scaler(3, PlacementPolicy::Spread, None, None)]),
    );
    converge(deploy(std::slice::from_ref(&spread_app)), &mut world);
    assert_eq!(counts(&world, "spreadapp-c").values().copied().collect::<Vec<_>>(), vec![1, 1, 1]);
}

#[test]
fn binpack_without_capacity_uses_min_hosts_and_max_per_host() {
    let mut world = hosts_with(4, &[]);
    let a = single(
        "a",
        component("c", IMAGE, vec![scaler(6, PlacementPolicy::Binpack, Some(4), Some(2))]),
    );
    let plans = converge(deploy(std::slice::from_ref(&a)), &mut world);
    let mut per_host: Vec<u32> = counts(&world, "a-c").into_values().collect();
    per_host.sort();
    assert_eq!(per_host, vec![2, 4]);
    assert_eq!(plans.last().unwrap().statuses["a"].status.status_type, StatusType::Deployed);
}

#[test]
fn max_per_host_with_fewer_hosts_than_instances_is_reported() {
    let mut world = hosts_with(2, &[]);
    let a =
        single("a", component("c", IMAGE, vec![scaler(3, PlacementPolicy::Spread, Some(1), None)]));
    let plans = converge(deploy(std::slice::from_ref(&a)), &mut world);
    assert_eq!(counts(&world, "a-c").values().copied().collect::<Vec<_>>(), vec![1, 1]);
    assert_failed_with(plans.last().unwrap(), "a", "needs 3 instances, 2 fit: at most 1 per host");
    assert!(plans.last().unwrap().short_of_capacity.is_empty(), "not short of capacity");
}

#[test]
fn min_hosts_beyond_the_hosts_there_are_is_reported() {
    let mut world = hosts_with(2, &[]);
    let a = single(
        "a",
        component("c", IMAGE, vec![scaler(4, PlacementPolicy::Binpack, None, Some(3))]),
    );
    let plans = converge(deploy(std::slice::from_ref(&a)), &mut world);
    assert_failed_with(plans.last().unwrap(), "a", "needs 3 distinct hosts, 2 usable");
}

#[test]
fn kept_apart_components_never_share_a_host_and_too_few_hosts_is_reported() {
    let mut api = component("api", IMAGE, vec![spreadscaler(2, vec![])]);
    api.avoid = vec!["cache".into()];
    let cache = component("cache", "ghcr.io/x/cache:1", vec![spreadscaler(1, vec![])]);
    let a = deployed(app("a", vec![api, cache]), 1);
    let mut world = hosts_with(3, &[]);
    converge(deploy(std::slice::from_ref(&a)), &mut world);
    let api_hosts = counts(&world, "a-api");
    let cache_hosts = counts(&world, "a-cache");
    assert_eq!(api_hosts.values().sum::<u32>(), 2);
    assert_eq!(cache_hosts.len(), 1);
    assert!(
        api_hosts.keys().all(|h| !cache_hosts.contains_key(h)),
        "{api_hosts:?} {cache_hosts:?}"
    );

    let mut world = hosts_with(1, &[]);
    let plans = converge(deploy(std::slice::from_ref(&a)), &mut world);
    let status = &plans.last().unwrap().statuses["a"];
    assert_eq!(status.status.status_type, StatusType::Failed);
    let messages: Vec<&str> = status.scalers.iter().map(|s| &*s.status.message).collect();
    assert!(messages.iter().any(|m| m.contains("kept apart from a-api")), "{messages:?}");
}

#[test]
fn placement_is_stable_once_converged_under_capacity() {
    let mut world = hosts_with(3, &[("capacity_memory_mib", "300")]);
    let apps: Vec<DeployedApp> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let c =
                needs(component("w", IMAGE, vec![spreadscaler(2, vec![])]), &[("memory_mib", 100)]);
            deployed(app(n, vec![c]), 1)
        })
        .collect();
    converge_checked(&apps, &mut world, |_| {});
    // A host event (a new, empty host) changes nothing that runs.
    world.hosts.insert("h9".into(), host("h9", &[("capacity_memory_mib", "300")]));
    let plan = reconcile_with(deploy(&apps), &world, 2);
    assert!(plan.is_empty(), "{:#?}", plan.commands);
}

// ---- properties ----

#[derive(Debug, Clone)]
struct World {
    /// Per host: (capacity_instances, capacity_memory_mib), each optional.
    hosts: Vec<(Option<u64>, Option<u64>)>,
    /// Per app: (instances, memory need, binpack, max_per_host, keep the two components apart).
    apps: Vec<(u32, u64, bool, Option<u32>, bool)>,
}

fn world() -> impl Strategy<Value = World> {
    let host = (proptest::option::of(0u64..6), proptest::option::of(0u64..600));
    let app = (0u32..6, 0u64..250, any::<bool>(), proptest::option::of(1u32..3), any::<bool>());
    (proptest::collection::vec(host, 1..6), proptest::collection::vec(app, 1..4))
        .prop_map(|(hosts, apps)| World { hosts, apps })
}

fn build(w: &World, reverse: bool) -> (Vec<DeployedApp>, LatticeState) {
    let mut hosts: Vec<_> = w
        .hosts
        .iter()
        .enumerate()
        .map(|(i, (n, m))| {
            let mut labels = Vec::new();
            let (n, m) = (n.map(|v| v.to_string()), m.map(|v| v.to_string()));
            if let Some(n) = &n {
                labels.push(("capacity_instances", n.as_str()));
            }
            if let Some(m) = &m {
                labels.push(("capacity_memory_mib", m.as_str()));
            }
            host(&format!("h{i}"), &labels)
        })
        .collect();
    let mut apps: Vec<DeployedApp> = w
        .apps
        .iter()
        .enumerate()
        .map(|(i, (instances, mem, binpack, max, apart))| {
            let policy = if *binpack { PlacementPolicy::Binpack } else { PlacementPolicy::Spread };
            let mut web = component("web", IMAGE, vec![scaler(*instances, policy, *max, None)]);
            if *mem > 0 {
                web = needs(web, &[("memory_mib", *mem)]);
            }
            if *apart {
                web.avoid = vec!["db".into()];
            }
            let db = component("db", "ghcr.io/x/db:1", vec![spreadscaler(1, vec![])]);
            deployed(app(&format!("app{i}"), vec![web, db]), 1)
        })
        .collect();
    if reverse {
        hosts.reverse();
        apps.reverse();
    }
    (apps, lattice(hosts))
}

/// Every declared capacity holds on every host.
fn within_capacity(w: &World, apps: &[DeployedApp], lattice: &LatticeState) -> Result<(), String> {
    let need: BTreeMap<String, u64> = apps
        .iter()
        .flat_map(|d| {
            d.app
                .components
                .iter()
                .map(|c| (c.id.clone(), c.needs.get("memory_mib").copied().unwrap_or(0)))
        })
        .collect();
    for (i, (n, m)) in w.hosts.iter().enumerate() {
        let Some(h) = lattice.hosts.get(&format!("h{i}")) else { continue };
        let units: u64 = h.components.values().map(|c| u64::from(c.count)).sum::<u64>()
            + h.providers.len() as u64;
        let memory: u64 = h
            .components
            .values()
            .map(|c| u64::from(c.count) * need.get(&c.id).copied().unwrap_or(0))
            .sum();
        if n.is_some_and(|n| units > n) {
            return Err(format!("h{i} runs {units} instances, capacity {n:?}"));
        }
        if m.is_some_and(|m| memory > m) {
            return Err(format!("h{i} uses {memory} MiB, capacity {m:?}"));
        }
    }
    Ok(())
}

fn apart(w: &World, apps: &[DeployedApp], lattice: &LatticeState) -> Result<(), String> {
    for d in apps {
        let i: usize = d.app.name.trim_start_matches("app").parse().unwrap();
        if !w.apps[i].4 {
            continue;
        }
        for h in lattice.hosts.values() {
            let web = h.components.contains_key(&format!("{}-web", d.app.name));
            let db = h.components.contains_key(&format!("{}-db", d.app.name));
            if web && db {
                return Err(format!("{} runs web and db together on {}", d.app.name, h.id));
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn capacity_and_anti_affinity_hold_after_every_step(w in world()) {
        let (apps, mut lattice) = build(&w, false);
        for step in 0..10 {
            let plan = reconcile_with(deploy(&apps), &lattice, 1);
            apply_plan(&mut lattice, &plan);
            within_capacity(&w, &apps, &lattice).map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
            apart(&w, &apps, &lattice).map_err(|e| TestCaseError::fail(format!("step {step}: {e}")))?;
            if plan.is_empty() {
                return Ok(());
            }
        }
        prop_assert!(false, "no fixed point after 10 steps");
    }

    #[test]
    fn capacity_that_never_binds_changes_nothing(w in world(), rounds in 0usize..3) {
        // Spread placement without limits: the constrained path must place as the plain one.
        let mut w = w;
        for a in &mut w.apps {
            (a.2, a.3, a.4) = (false, None, false);
        }
        let plain = World { hosts: w.hosts.iter().map(|_| (None, None)).collect(), ..w.clone() };
        let roomy = World { hosts: w.hosts.iter().map(|_| (Some(1_000), Some(1_000_000))).collect(), ..w };
        let (apps, mut a) = build(&plain, false);
        let (_, mut b) = build(&roomy, false);
        for _ in 0..=rounds {
            let plan_a = reconcile_with(deploy(&apps), &a, 1);
            let plan_b = reconcile_with(deploy(&apps), &b, 1);
            prop_assert_eq!(&plan_a.commands, &plan_b.commands);
            apply_plan(&mut a, &plan_a);
            apply_plan(&mut b, &plan_b);
        }
    }

    #[test]
    fn the_plan_does_not_depend_on_input_order(w in world()) {
        let (apps, lattice) = build(&w, false);
        let (apps_rev, lattice_rev) = build(&w, true);
        let plan = reconcile_with(deploy(&apps), &lattice, 1);
        let plan_rev = reconcile_with(deploy(&apps_rev), &lattice_rev, 1);
        prop_assert_eq!(plan, plan_rev);
    }
}
