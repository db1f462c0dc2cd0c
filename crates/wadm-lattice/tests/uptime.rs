//! When a host started: taken from `host_started`, heartbeats and discovery answers, the
//! earliest estimate winning whatever the order, written only when it moves.

mod common;

use common::*;
use wadm_lattice::{Change, DiscoveredHost, Discovery, LatticeState, merge_discovery};
use wadm_protocol::{Host, HostEvent, HostInventory};

fn fresh() -> LatticeState {
    LatticeState { lattice: "default".into(), ..LatticeState::default() }
}

fn beat(uptime_seconds: u64) -> HostEvent {
    let inv = HostInventory { uptime_seconds, ..inventory(H1, &[], &[]) };
    HostEvent::HostHeartbeat(inv)
}

#[test]
fn host_started_gives_the_start_and_uptime_follows_the_clock() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 10_000), &started(&[]), 10_050);
    assert_eq!(s.hosts[H1].started_at, Some(10_000));
    assert_eq!(s.hosts[H1].uptime_ms(70_000), Some(60_000));
    // A heartbeat 30 s later saying 30 s of uptime agrees: nothing to write.
    let c = apply(&mut s, &ctx(H1, "h", 40_000), &beat(30), 40_010);
    assert!(c.changes.is_empty(), "{:?}", c.changes);
    assert_eq!(s.hosts[H1].started_at, Some(10_000));
}

#[test]
fn a_heartbeat_of_a_host_that_ran_before_wadm_tells_its_start() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "h1", 1_000_000), &beat(600), 1_000_100);
    assert_eq!(s.hosts[H1].started_at, Some(400_000));
    // A later heartbeat rounding its uptime down estimates a later start: the earlier stays.
    let c = apply(&mut s, &ctx(H1, "h2", 1_030_999), &beat(630), 1_031_000);
    assert!(c.changes.is_empty(), "{:?}", c.changes);
    assert_eq!(s.hosts[H1].started_at, Some(400_000));
}

#[test]
fn an_earlier_estimate_is_a_host_change_even_from_a_stale_heartbeat() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "h2", 2_000_000), &beat(100), 2_000_000);
    assert_eq!(s.hosts[H1].started_at, Some(1_900_000));
    // Late and stale as a picture of the host, but better evidence of its start.
    let c = apply(&mut s, &ctx(H1, "h1", 1_950_000), &beat(52), 2_000_100);
    assert_eq!(c.changes, vec![Change::HostUpdated { host: H1.into() }]);
    assert_eq!(s.hosts[H1].started_at, Some(1_898_000));
    // Delivered again: nothing.
    let again = apply(&mut s, &ctx(H1, "h1", 1_950_000), &beat(52), 2_000_200);
    assert!(again.changes.is_empty());
}

#[test]
fn incremental_events_leave_the_start_unknown_until_a_snapshot() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "a", 5_000), &scaled("echo", "img:1", 1, "demo"), 5_000);
    assert_eq!(s.hosts[H1].started_at, None);
    assert_eq!(s.hosts[H1].uptime_ms(9_000), None);
    let c = apply(&mut s, &ctx(H1, "h", 6_000), &beat(3), 6_000);
    assert!(c.changes.contains(&Change::HostUpdated { host: H1.into() }), "{:?}", c.changes);
    assert_eq!(s.hosts[H1].started_at, Some(3_000));
}

#[test]
fn discovery_answers_tell_the_start_from_their_uptime() {
    let mut s = fresh();
    let host = Host { id: H1.into(), uptime_seconds: 20, ..Host::default() };
    let round = Discovery {
        started_at: 50_000,
        hosts: vec![DiscoveredHost { host, inventory: None }],
        ..Discovery::default()
    };
    merge_discovery(&mut s, &round, 60_000);
    assert_eq!(s.hosts[H1].started_at, Some(40_000));
}

#[test]
fn the_start_does_not_depend_on_the_order_of_snapshots() {
    let events = [
        (ctx(H1, "s", 10_000), started(&[])),
        (ctx(H1, "h1", 40_500), beat(30)),
        (ctx(H1, "h2", 70_900), beat(60)),
    ];
    let mut results = Vec::new();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]] {
        let mut s = fresh();
        for i in order {
            apply(&mut s, &events[i].0, &events[i].1, 80_000);
        }
        results.push(s.hosts[H1].started_at);
    }
    assert!(results.iter().all(|r| *r == Some(10_000)), "{results:?}");
}
