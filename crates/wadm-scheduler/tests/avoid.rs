//! Soft avoidance (`Avoid`, placement rule 6): a host the runtime saw fail a resource is passed
//! over by fresh placement while another eligible host can take its share (what already runs
//! there stays), and used again once it is no longer avoided; with no other eligible host it is
//! used as before.

mod common;

use common::*;
use proptest::prelude::*;
use wadm_lattice::LatticeState;
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::{Avoid, Reconciler};

/// Reconcile (avoiding `avoid`) and apply until the plan is empty; after every plan the total
/// of `id`'s instances is checked against `target` (never above it).
fn converge(r: &Reconciler, lat: &mut LatticeState, avoid: &Avoid, id: &str, target: u32) {
    for _ in 0..8 {
        let plan = r.reconcile_avoiding(lat, 1, avoid);
        if plan.commands.is_empty() {
            return;
        }
        apply_plan(lat, &plan);
        let total: u32 = counts(lat, id).values().sum();
        assert!(total <= target, "{total} instances of {id}, target {target}: {plan:#?}");
    }
    panic!("no fixed point after 8 rounds");
}

fn reconciler(instances: u32, is_provider: bool, req: &[(&str, &str)]) -> Reconciler {
    let scaler = spreadscaler(instances, vec![spread("s", req, 1)]);
    let c = if is_provider {
        provider("p", "ghcr.io/p:1", vec![scaler])
    } else {
        component("c", "img:1", vec![scaler])
    };
    Reconciler::new(LATTICE, vec![deployed(app("a", vec![c]), 1)], vec![])
}

fn avoiding(id: &str, hosts: &[&str]) -> Avoid {
    let mut avoid = Avoid::default();
    for h in hosts {
        avoid.insert("a", id, h);
    }
    avoid
}

#[test]
fn fresh_placement_passes_over_an_avoided_host_until_the_avoidance_ends() {
    let r = reconciler(6, false, &[]);
    let mut lat = lattice(vec![host("h0", &[]), host("h1", &[]), host("h2", &[])]);
    // h1 avoided: its share goes to the others, and nothing more moves while it stays avoided.
    let avoid = avoiding("a-c", &["h1"]);
    converge(&r, &mut lat, &avoid, "a-c", 6);
    assert_eq!(counts(&lat, "a-c"), [("h0".to_string(), 3), ("h2".to_string(), 3)].into());
    assert!(r.reconcile_avoiding(&lat, 2, &avoid).commands.is_empty(), "stable while avoided");

    // Avoidance over: h1 may be tried again, and takes its share (never above 6 on the way).
    converge(&r, &mut lat, &Avoid::default(), "a-c", 6);
    let even = [("h0".to_string(), 2), ("h1".to_string(), 2), ("h2".to_string(), 2)];
    assert_eq!(counts(&lat, "a-c"), even.into());
}

#[test]
fn what_runs_on_an_avoided_host_stays() {
    let r = reconciler(6, false, &[]);
    let mut lat = lattice(vec![host("h0", &[]), host("h1", &[]), host("h2", &[])]);
    converge(&r, &mut lat, &Avoid::default(), "a-c", 6);
    assert!(r.reconcile_avoiding(&lat, 2, &avoiding("a-c", &["h1"])).commands.is_empty());
}

#[test]
fn an_avoided_host_is_used_when_no_other_eligible_host_exists() {
    let r = reconciler(4, false, &[("zone", "x")]);
    let mut lat = lattice(vec![host("h0", &[("zone", "x")]), host("h1", &[("zone", "y")])]);
    converge(&r, &mut lat, &avoiding("a-c", &["h0"]), "a-c", 4);
    assert_eq!(counts(&lat, "a-c"), [("h0".to_string(), 4)].into());
}

#[test]
fn a_provider_takes_avoided_hosts_last() {
    let hosts = || lattice(vec![host("h0", &[]), host("h1", &[]), host("h2", &[])]);
    let id = "a-p";
    // Two of three: the two others.
    let mut lat = hosts();
    converge(&reconciler(2, true, &[]), &mut lat, &avoiding(id, &["h1"]), id, u32::MAX);
    assert_eq!(provider_hosts(&lat, id), vec!["h0", "h2"]);
    // Three of three: the avoided one too (never fewer than possible).
    let mut lat = hosts();
    converge(&reconciler(3, true, &[]), &mut lat, &avoiding(id, &["h1"]), id, u32::MAX);
    assert_eq!(provider_hosts(&lat, id), vec!["h0", "h1", "h2"]);
}

#[test]
fn avoidance_is_per_resource_and_per_application() {
    let r = reconciler(4, false, &[]);
    let mut lat = lattice(vec![host("h0", &[]), host("h1", &[])]);
    let mut avoid = avoiding("other-id", &["h1"]);
    avoid.insert("other-app", "a-c", "h1");
    converge(&r, &mut lat, &avoid, "a-c", 4);
    assert_eq!(counts(&lat, "a-c"), [("h0".to_string(), 2), ("h1".to_string(), 2)].into());
}

proptest! {
    /// Whatever is avoided, a component spread places exactly its instances (never above): from
    /// nothing, on no avoided host while an eligible host is not avoided, spread over the others;
    /// from a converged lattice, nothing moves.
    #[test]
    fn avoided_hosts_get_nothing_new_while_others_can(
        hosts in 1usize..6,
        instances in 1u32..10,
        avoided_mask in 0u32..64,
        start_even in any::<bool>(),
    ) {
        let r = reconciler(instances, false, &[]);
        let ids: Vec<String> = (0..hosts).map(|i| format!("h{i}")).collect();
        let mut lat = lattice(ids.iter().map(|h| host(h, &[])).collect());
        if start_even {
            converge(&r, &mut lat, &Avoid::default(), "a-c", instances);
        }
        let before = counts(&lat, "a-c");
        let avoided: Vec<&str> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| avoided_mask & (1 << i) != 0)
            .map(|(_, h)| h.as_str())
            .collect();
        let avoid = avoiding("a-c", &avoided);
        converge(&r, &mut lat, &avoid, "a-c", instances);
        let c = counts(&lat, "a-c");
        prop_assert_eq!(c.values().sum::<u32>(), instances);
        let others = hosts - avoided.len();
        if start_even {
            prop_assert_eq!(&c, &before, "nothing moves");
        } else if others > 0 {
            prop_assert!(avoided.iter().all(|h| !c.contains_key(*h)), "{:?} on {:?}", c, avoided);
            prop_assert_eq!(c.len(), (instances as usize).min(others));
            let (lo, hi) = (c.values().min().unwrap(), c.values().max().unwrap());
            prop_assert!(hi - lo <= 1, "{:?}", c);
        }
        prop_assert!(r.reconcile_avoiding(&lat, 2, &avoid).commands.is_empty());
    }
}
