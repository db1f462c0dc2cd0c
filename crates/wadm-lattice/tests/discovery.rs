//! Merging discovery answers into the observed state.

mod common;

use std::collections::BTreeMap;

use common::*;
use wadm_lattice::{Change, DiscoveredHost, Discovery, LatticeState, merge_discovery};
use wadm_protocol::Host;

fn ping(id: &str) -> Host {
    Host {
        id: id.into(),
        friendly_name: format!("{id}-name"),
        labels: map(&[("zone", "a")]),
        version: "1.9.2".into(),
        ..Host::default()
    }
}

fn found(id: &str, comps: &[(&str, &str, u32)]) -> DiscoveredHost {
    DiscoveredHost { host: ping(id), inventory: Some(inventory(id, &[("zone", "a")], comps)) }
}

#[test]
fn a_running_lattice_is_fully_known_from_one_round() {
    let mut s = LatticeState::default();
    let mut configs = BTreeMap::new();
    configs.insert("owned".to_string(), Some(map(&[("k", "v")])));
    configs.insert("gone".to_string(), None);
    let round = Discovery {
        started_at: 100,
        hosts: vec![found(H1, &[("echo", "img", 2)]), found(H2, &[])],
        links: Some(vec![link("echo", "http")]),
        configs,
    };
    let c = merge_discovery(&mut s, &round, 200);
    assert_eq!(s.hosts.len(), 2);
    assert_eq!(s.hosts[H1].components["echo"].count, 2);
    assert_eq!(s.hosts[H1].last_seen, 200);
    assert_eq!(s.links.len(), 1);
    assert_eq!(s.configs["owned"].values, Some(map(&[("k", "v")])));
    assert!(!s.configs.contains_key("gone"));
    assert!(c.changes.contains(&Change::HostAdded { host: H2.into() }));
    assert!(c.apps.contains("demo"));
    // The same answers again change nothing.
    let again = merge_discovery(&mut s, &round, 300);
    assert!(again.changes.is_empty(), "{again:?}");
}

#[test]
fn hosts_that_did_not_answer_are_left_to_their_lease() {
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    let round = Discovery { started_at: 50, hosts: vec![found(H2, &[])], ..Discovery::default() };
    merge_discovery(&mut s, &round, 60);
    assert!(s.hosts.contains_key(H1));
    assert_eq!(s.hosts[H1].last_seen, 10);
}

#[test]
fn a_ping_without_inventory_adds_the_host_and_asks_for_it() {
    let mut s = LatticeState::default();
    let round = Discovery {
        started_at: 50,
        hosts: vec![DiscoveredHost { host: ping(H1), inventory: None }],
        ..Discovery::default()
    };
    let c = merge_discovery(&mut s, &round, 60);
    assert!(c.needs_inventory.contains(H1));
    assert_eq!(s.hosts[H1].labels["zone"], "a");
    assert_eq!(s.hosts[H1].friendly_name, format!("{H1}-name"));
}

#[test]
fn facts_learnt_during_the_round_win_over_its_answers() {
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    // While the round (started at 50) gathers, a scale event arrives at 55.
    apply(&mut s, &ctx(H1, "a", 2), &scaled("late", "img", 1, "demo"), 55);
    // A host that stopped during the round is not brought back by its earlier answer.
    apply(&mut s, &ctx(H2, "s2", 1), &started(&[]), 10);
    wadm_lattice::apply(&mut s, &ctx(H2, "x", 3), &stopped(), 56);
    let round = Discovery {
        started_at: 50,
        hosts: vec![found(H1, &[("echo", "img", 1)]), found(H2, &[])],
        ..Discovery::default()
    };
    merge_discovery(&mut s, &round, 60);
    let comps: Vec<_> = s.hosts[H1].components.keys().cloned().collect();
    assert_eq!(comps, vec!["echo".to_string(), "late".to_string()]);
    // Its stop waits for confirmation; the older answer does not contradict it.
    assert!(s.hosts[H2].stop_reported.is_some());
    wadm_lattice::confirm_stop(&mut s, H2, 61);
    assert!(!s.hosts.contains_key(H2));
}

#[test]
fn a_host_that_answers_after_its_stop_was_reported_is_alive() {
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    wadm_lattice::apply(&mut s, &ctx(H1, "x", 2), &stopped(), 20);
    assert!(s.hosts[H1].stop_reported.is_some(), "reported, not removed");
    let round = Discovery {
        started_at: 30,
        hosts: vec![found(H1, &[("echo", "img", 1)])],
        ..Discovery::default()
    };
    merge_discovery(&mut s, &round, 40);
    assert!(s.hosts[H1].stop_reported.is_none());
    assert_eq!(s.hosts[H1].components["echo"].count, 1);
    // Nothing left to confirm: the host stays.
    let c = wadm_lattice::confirm_stop(&mut s, H1, 50);
    assert!(c.changes.is_empty() && s.hosts.contains_key(H1));
}

#[test]
fn link_answer_replaces_links_known_before_the_round() {
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "l", 1), &wadm_protocol::HostEvent::LinkSet(link("a", "b")), 10);
    let round =
        Discovery { started_at: 50, links: Some(vec![link("c", "d")]), ..Discovery::default() };
    let c = merge_discovery(&mut s, &round, 60);
    assert_eq!(s.links.len(), 1);
    assert!(s.links.values().all(|l| l.source_id == "c"));
    assert_eq!(c.changes.len(), 2);
}

#[test]
fn an_answer_never_replaces_a_heartbeat_applied_after_the_round_began() {
    // The host answered `host.get` (echo ×1), then scaled to 3 and heartbeated; the heartbeat
    // reached the state before the round's answers did.
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[("zone", "a")]), 10);
    apply(&mut s, &ctx(H1, "hb", 2), &heartbeat(H1, &[("zone", "a")], &[("echo", "img", 3)]), 120);
    let stale = Discovery {
        started_at: 100,
        hosts: vec![found(H1, &[("echo", "img", 1)]), found(H2, &[("other", "img", 1)])],
        ..Discovery::default()
    };
    let c = merge_discovery(&mut s, &stale, 130);
    assert_eq!(s.hosts[H1].components["echo"].count, 3, "the newer heartbeat stands");
    assert!(
        !c.changes.iter().any(|c| matches!(c, Change::ComponentSet { host, .. } if host == H1))
    );
    assert_eq!(s.hosts[H2].components["other"].count, 1, "gaps are still filled");
    // A round that began after the heartbeat is newer: its answer is merged.
    let newer = Discovery { started_at: 125, hosts: vec![found(H1, &[])], ..Discovery::default() };
    merge_discovery(&mut s, &newer, 140);
    assert!(s.hosts[H1].components.is_empty());
}
