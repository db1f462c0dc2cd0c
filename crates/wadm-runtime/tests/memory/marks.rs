//! Event marks survive a read-back: a replica that reads a lattice's state back (takeover) and
//! merges a discovery round keeps what another replica learnt from events during that round.

use wadm_lattice::LatticeState;
use wadm_protocol::Link;
use wadm_runtime::Clock;
use wadm_runtime::io::Discoverer;

use super::V1;
use super::world::{LATTICE, World};

const OUTSIDE: &str = "ghcr.io/example/outside:1.0.0";

fn link() -> Link {
    Link {
        source_id: "outside-src".into(),
        target: "outside-dst".into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["incoming-handler".into()],
        source_config: vec![],
        target_config: vec![],
    }
}

fn component_on(state: &LatticeState, host: &str, component: &str) -> Option<u32> {
    state.hosts.get(host)?.components.get(component).map(|c| c.count)
}

async fn steps_on(w: &mut World, replica: usize) -> usize {
    let mut steps = 0;
    while w.step_events(replica).await {
        steps += 1;
    }
    steps
}

#[tokio::test]
async fn a_round_merged_after_a_read_back_takes_back_nothing_learnt_during_it() {
    let mut w = World::new(2, 31);
    w.add_hosts(2).await;
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    w.lattice.run_outside_wadm("N000", "legacy", OUTSIDE, 1).await;
    w.settle().await;
    assert_eq!(w.running("app").0, 2);

    // A discovery round starts: its answers are taken now (legacy runs, no fresh, no link).
    let round = w.lattice.discover(LATTICE, w.clock.now()).await.unwrap();
    w.clock.advance(50);

    // While it runs, replica A applies what the hosts report: a component started and one
    // stopped outside wadm, and a link put answered by a host wadm has never heard of.
    w.lattice.run_outside_wadm("N001", "fresh", OUTSIDE, 2).await;
    w.lattice.stop_component("N000", "legacy").await;
    w.lattice.put_link_answered_by("NUNANNOUNCED", link()).await;
    assert!(steps_on(&mut w, 0).await >= 3);
    let (by_a, _) = w.replicas[0].pipeline.records().load(LATTICE).await.unwrap();
    assert_eq!(component_on(&by_a.state, "N001", "fresh"), Some(2));
    assert_eq!(component_on(&by_a.state, "N000", "legacy"), None);
    assert!(by_a.state.links.contains_key(&link().key()));

    // Replica B takes the lattice over: it reads the state back, then merges the round.
    w.clock.advance(50);
    w.replicas[1].pipeline.records().forget(LATTICE);
    let report = wadm_runtime::messages::DiscoveryReport::from(round);
    wadm_runtime::publish_round(&w.events, LATTICE, report, "round", usize::MAX).await.unwrap();
    assert!(steps_on(&mut w, 1).await >= 1);
    let (by_b, _) = w.replicas[1].pipeline.records().load(LATTICE).await.unwrap();
    assert!(by_b.state.hosts.len() == 2, "{:?}", by_b.state.hosts.keys());
    assert_eq!(component_on(&by_b.state, "N001", "fresh"), Some(2), "the start is kept");
    assert_eq!(component_on(&by_b.state, "N000", "legacy"), None, "the stop is kept");
    assert!(by_b.state.links.contains_key(&link().key()), "the link is kept");

    // And what B now believes is what the lattice runs; wadm's own app is untouched.
    let truth = w.lattice.truth();
    // (`since` is when wadm saw each image, not something the host runs.)
    let running =
        |components: &std::collections::BTreeMap<String, wadm_lattice::ComponentInstance>| {
            let mut components = components.clone();
            components.values_mut().for_each(|c| c.since = 0);
            components
        };
    for (id, host) in &truth.hosts {
        assert_eq!(
            running(&by_b.state.hosts[id].components),
            running(&host.components),
            "host {id}"
        );
    }
    assert_eq!(by_b.state.links, truth.links);
    w.settle().await;
    assert_eq!(w.running("app").0, 2);
}
