//! Lattice-wide events (links, configs) hold whichever host reports them: a host wadm does not
//! know yet, or one that has since stopped. They are ordered by their own stamps only.

mod common;

use common::*;
use wadm_lattice::{Change, LatticeState, Outcome, RemovalReason};
use wadm_protocol::HostEvent;

const STRANGER: &str = "NSTRANGER";

fn fresh() -> LatticeState {
    LatticeState { lattice: "default".into(), ..LatticeState::default() }
}

#[test]
fn links_from_a_host_wadm_does_not_know_are_applied_in_stamp_order() {
    let mut s = fresh();
    let l = link("echo", "http");
    let c = apply(&mut s, &ctx(STRANGER, "l1", 3), &HostEvent::LinkSet(l.clone()), 10);
    assert_eq!(c.outcome, Outcome::Applied);
    assert_eq!(c.changes, vec![Change::LinkSet { link: l.key() }]);
    assert_eq!(s.links.get(&l.key()), Some(&l));
    assert!(s.hosts.is_empty(), "a lattice-wide event does not invent its source host");
    assert!(s.bookkeeping.hosts.is_empty());

    // An older delete from another unknown host is stale; a newer one applies.
    let old = apply(&mut s, &ctx("NOTHER", "l0", 2), &link_deleted("echo"), 11);
    assert_eq!(old.outcome, Outcome::Stale);
    assert!(s.links.contains_key(&l.key()));
    let c = apply(&mut s, &ctx("NOTHER", "l2", 4), &link_deleted("echo"), 12);
    assert_eq!(c.changes, vec![Change::LinkRemoved { link: l.key() }]);
    assert!(s.links.is_empty());
}

#[test]
fn configs_from_a_host_wadm_does_not_know_are_applied_in_stamp_order() {
    let mut s = fresh();
    let c = apply(&mut s, &ctx(STRANGER, "c1", 5), &config_set("cfg"), 10);
    assert_eq!(c.changes, vec![Change::ConfigSet { name: "cfg".into() }]);
    assert!(c.every_app, "a config change may matter to any application");
    assert!(s.configs.contains_key("cfg") && s.hosts.is_empty());
    let late = apply(&mut s, &ctx(STRANGER, "c0", 4), &config_deleted("cfg"), 11);
    assert_eq!(late.outcome, Outcome::Stale);
    assert!(s.configs.contains_key("cfg"));
    let c = apply(&mut s, &ctx(STRANGER, "c2", 6), &config_deleted("cfg"), 12);
    assert_eq!(c.changes, vec![Change::ConfigRemoved { name: "cfg".into() }]);
}

#[test]
fn a_stopped_hosts_late_link_event_still_holds_for_the_lattice() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "stop", 10), &stopped(), 20);
    assert_eq!(s.bookkeeping.tombstones[H1].reason, RemovalReason::Stopped);
    // Links live in the lattice's own store, not on the host that answered the put.
    let l = link("echo", "http");
    let c = apply(&mut s, &ctx(H1, "l1", 9), &HostEvent::LinkSet(l.clone()), 30);
    assert_eq!(c.changes, vec![Change::LinkSet { link: l.key() }]);
    let c = apply(&mut s, &ctx(H1, "c1", 9), &config_set("cfg"), 30);
    assert_eq!(c.changes, vec![Change::ConfigSet { name: "cfg".into() }]);
    assert!(s.hosts.is_empty(), "the stopped host stays gone");
}

#[test]
fn a_known_host_asks_for_its_inventory_only_after_a_scale_to_zero() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    let c = apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img:1", 2, "demo"), 10);
    assert!(c.needs_inventory.is_empty(), "{c:?}");
    let c = apply(&mut s, &ctx(H1, "b", 3), &scaled("echo", "img:2", 2, "demo"), 10);
    assert!(c.needs_inventory.is_empty(), "{c:?}");
    // `component.update` ends with a spurious scale to 0: the host is asked to confirm.
    let c = apply(&mut s, &ctx(H1, "u", 4), &scaled("echo", "img:2", 0, "demo"), 10);
    assert!(c.needs_inventory.contains(H1), "{c:?}");
    // A scale to 0 of what is not running confirms nothing new.
    let c = apply(&mut s, &ctx(H1, "v", 5), &scaled("echo", "img:2", 0, "demo"), 10);
    assert!(c.needs_inventory.is_empty(), "{c:?}");
}
