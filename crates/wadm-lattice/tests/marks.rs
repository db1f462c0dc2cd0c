//! Every set or dropped mark is reported in `Changes::marked`, so a store that keeps marks with
//! their entities can rewrite exactly those entities.

mod common;

use common::*;
use wadm_lattice::bookkeeping::HostEntity;
use wadm_lattice::{
    DiscoveredHost, Discovery, LatticeState, LeaseConfig, Marked, expire, merge_discovery,
};
use wadm_protocol::{Host, HostEvent};

fn fresh() -> LatticeState {
    LatticeState { lattice: "default".into(), ..LatticeState::default() }
}

fn comp(host: &str, id: &str) -> Marked {
    Marked::Host { host: host.into(), entity: HostEntity::Component(id.into()) }
}

#[test]
fn applied_events_report_the_marks_they_set() {
    let mut s = fresh();
    let c = apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    assert!(c.marked.is_empty(), "a snapshot sets no entity mark");
    let c = apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img", 1, "demo"), 10);
    assert_eq!(c.marked.iter().collect::<Vec<_>>(), vec![&comp(H1, "echo")]);
    // The same count again changes nothing visible, but the mark moved: it must be stored.
    let c = apply(&mut s, &ctx(H1, "b", 3), &scaled("echo", "img", 1, "demo"), 11);
    assert!(c.is_empty() && c.marked.contains(&comp(H1, "echo")));
    let l = link("echo", "http");
    let c = apply(&mut s, &ctx(H2, "l", 4), &HostEvent::LinkSet(l.clone()), 12);
    assert!(c.marked.contains(&Marked::Link { link: l.key() }));
    let c = apply(&mut s, &ctx(H2, "c", 5), &config_deleted("cfg"), 12);
    assert!(c.marked.contains(&Marked::Config { name: "cfg".into() }), "a removal mark too");
    let stale = apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img", 1, "demo"), 13);
    assert!(stale.marked.is_empty(), "a stale event sets nothing");
}

#[test]
fn snapshots_rounds_leases_and_stops_report_the_marks_they_drop() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img", 1, "demo"), 10);
    apply(&mut s, &ctx(H1, "b", 5), &scaled("late", "img", 1, "demo"), 10);
    // A heartbeat taken at 3 supersedes the mark at 2 but not the one at 5.
    let c = apply(&mut s, &ctx(H1, "hb", 3), &heartbeat(H1, &[], &[("echo", "img", 1)]), 20);
    assert_eq!(c.marked.iter().collect::<Vec<_>>(), vec![&comp(H1, "echo")]);
    assert_eq!(s.bookkeeping.hosts[H1].entities.len(), 1);

    // A round started after the mark was applied replaces what the mark described but keeps
    // the mark: the answer carries no host time, and an event stamped before the mark is older
    // than the answer as well.
    let inv = inventory(H1, &[], &[("late", "img", 1)]);
    let host = Host { id: H1.into(), ..Host::default() };
    let round = Discovery {
        started_at: 25,
        hosts: vec![DiscoveredHost { host, inventory: Some(inv) }],
        ..Discovery::default()
    };
    let c = merge_discovery(&mut s, &round, 30);
    assert!(c.marked.is_empty(), "{c:?}");
    assert_eq!(s.bookkeeping.hosts[H1].entities.len(), 1);
    let late = apply(&mut s, &ctx(H1, "old", 4), &scaled("late", "img", 0, "demo"), 31);
    assert!(late.is_empty() && late.marked.is_empty(), "older than the kept mark: {late:?}");
    assert_eq!(s.hosts[H1].components["late"].count, 1);

    // Removal marks outlive their entity until retention runs out.
    apply(&mut s, &ctx(H1, "c", 40), &scaled("late", "img", 0, "demo"), 40);
    let l = link("echo", "http");
    apply(&mut s, &ctx(H1, "d", 41), &link_deleted(&l.source_id), 40);
    let config =
        LeaseConfig { retention_ms: 100, heartbeat_interval_ms: 1_000, ..Default::default() };
    let c = expire(&mut s, 139, &config);
    assert!(c.marked.is_empty());
    let c = expire(&mut s, 140, &config);
    assert!(c.marked.contains(&comp(H1, "late")), "{c:?}");
    assert!(c.marked.contains(&Marked::Link { link: l.key() }), "{c:?}");

    // A host that stops takes every mark with it.
    apply(&mut s, &ctx(H1, "e", 150), &scaled("gone", "img", 0, "demo"), 150);
    let c = apply(&mut s, &ctx(H1, "stop", 151), &stopped(), 151);
    assert!(c.marked.contains(&comp(H1, "gone")), "{c:?}");
    assert!(s.bookkeeping.hosts.is_empty());
}
