//! Hosts running before wadm saw them start: reconciles wait for the first complete discovery
//! round (bounded), so placement never works from the few hosts heard from so far.

use std::collections::BTreeMap;

use wadm_model::StatusType;
use wadm_runtime::Clock;

use super::V1;
use super::world::{LATTICE, World};

/// Three hosts that ran before wadm; two of them heartbeat before the deploy.
async fn preexisting_hosts_two_heard_from(w: &mut World) {
    for host in ["N000", "N001", "N002"] {
        w.lattice.add_host_quietly(host, Default::default());
    }
    w.lattice.heartbeat("N000").await;
    w.lattice.heartbeat("N001").await;
    w.settle().await;
}

/// Instances of `app`'s component per host.
fn per_host(w: &World, app: &str) -> BTreeMap<String, u32> {
    let truth = w.lattice.truth();
    truth
        .hosts
        .values()
        .map(|h| {
            let count = h
                .components
                .values()
                .filter(|c| wadm_lattice::app_of(&c.annotations) == Some(app))
                .map(|c| c.count)
                .sum();
            (h.id.clone(), count)
        })
        .collect()
}

async fn discovery_round(w: &World) {
    let found = wadm_runtime::discover_into(&w.lattice, &w.events, LATTICE, w.clock.now(), "r0")
        .await
        .unwrap();
    assert_eq!(found, w.lattice.truth().hosts.len());
}

#[tokio::test]
async fn reconciles_wait_for_the_first_round_then_place_on_every_host() {
    for seed in [1, 2] {
        let mut w = World::new(2, seed);
        preexisting_hosts_two_heard_from(&mut w).await;
        w.deploy("app", "v1", V1, 3).await;
        w.settle().await;
        assert_eq!(w.running("app").0, 0, "seed {seed}: nothing placed on 2 of 3 hosts");
        assert_eq!(w.commands.stored(), 0, "seed {seed}");
        assert!(w.processed.iter().any(|p| p.held_for_discovery), "seed {seed}");

        discovery_round(&w).await;
        w.settle().await;
        let expected: BTreeMap<String, u32> =
            ["N000", "N001", "N002"].iter().map(|h| (h.to_string(), 1)).collect();
        assert_eq!(per_host(&w, "app"), expected, "seed {seed}: one per host at once");
        assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);

        // A host that starts later announces itself and is used as usual.
        w.lattice.add_host("N003", Default::default()).await;
        w.deploy("more", "v1", V1, 4).await;
        w.settle().await;
        assert_eq!(per_host(&w, "more").get("N003"), Some(&1), "seed {seed}");
        assert!(!w.processed.last().unwrap().held_for_discovery);
    }
}

#[tokio::test]
async fn without_a_round_the_hold_ends_after_the_wait() {
    let mut w = World::new(1, 4);
    preexisting_hosts_two_heard_from(&mut w).await;
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    assert_eq!(w.running("app").0, 0);

    // Time passes without any round: once the wait is over the next tick acts on what is known.
    let wait = w.config.first_round_wait.as_millis() as u64;
    w.clock.advance(wait / 2);
    w.lattice.heartbeat("N000").await;
    w.lattice.heartbeat("N001").await;
    w.tick().await;
    w.settle().await;
    assert_eq!(w.running("app").0, 0, "still within the wait");
    w.clock.advance(wait / 2 + 1);
    w.lattice.heartbeat("N000").await;
    w.lattice.heartbeat("N001").await;
    w.tick().await;
    w.settle().await;
    assert_eq!(w.running("app"), (2, vec![V1.to_string()]));
    assert_eq!(w.per_host_sum(&["N000", "N001"], "app"), 2, "on the hosts heard from");
}

#[tokio::test]
async fn hosts_seen_starting_are_never_held() {
    let mut w = World::new(1, 6);
    w.add_hosts(2).await;
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    assert_eq!(w.running("app"), (2, vec![V1.to_string()]));
    assert!(w.processed.iter().all(|p| !p.held_for_discovery));
}

impl World {
    fn per_host_sum(&self, hosts: &[&str], app: &str) -> u32 {
        let counts = per_host(self, app);
        hosts.iter().filter_map(|h| counts.get(*h)).sum()
    }
}

#[tokio::test]
async fn a_start_up_round_older_than_the_merged_one_takes_nothing_back() {
    use wadm_runtime::io::Discoverer;
    let mut w = World::new(2, 8);
    preexisting_hosts_two_heard_from(&mut w).await;
    w.deploy("app", "v1", V1, 3).await;
    w.settle().await;
    // Another replica's start-up round: its answers are taken now, published later.
    let late = w.lattice.discover(LATTICE, w.clock.now()).await.unwrap();
    w.clock.advance(10);
    discovery_round(&w).await;
    w.settle().await;
    let placed: BTreeMap<String, u32> =
        ["N000", "N001", "N002"].iter().map(|h| (h.to_string(), 1)).collect();
    assert_eq!(per_host(&w, "app"), placed);
    let stored = w.commands.stored();

    // The late round reaches replicas that read the state back.
    let report = wadm_runtime::messages::DiscoveryReport::from(late);
    wadm_runtime::publish_round(&w.events, LATTICE, report, "late-round", usize::MAX)
        .await
        .unwrap();
    w.replicas[0].pipeline.records().forget(LATTICE);
    w.replicas[1].pipeline.records().forget(LATTICE);
    w.settle().await;
    assert_eq!(w.commands.stored(), stored, "nothing taken back, nothing re-issued");
    assert_eq!(per_host(&w, "app"), placed);
}
