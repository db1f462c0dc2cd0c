//! Host leases with an injected clock.

mod common;

use common::*;
use proptest::prelude::*;
use wadm_lattice::{
    Change, LatticeState, LeaseConfig, Outcome, RemovalReason, expire, next_expiry, refresh_leases,
};

fn config() -> LeaseConfig {
    LeaseConfig { heartbeat_interval_ms: 1_000, slack_ms: 500, retention_ms: 60_000 }
}

#[test]
fn default_lease_is_two_intervals_plus_ten_seconds() {
    assert_eq!(LeaseConfig::default().lease_ms(), 70_000);
}

#[test]
fn lost_exactly_at_the_bound_like_a_stop() {
    let cfg = config();
    let lease = cfg.lease_ms();
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10_000);
    apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img", 1, "demo"), 10_000);
    assert_eq!(next_expiry(&s, &cfg), Some(10_000 + lease));

    let alive = expire(&mut s, 10_000 + lease - 1, &cfg);
    assert!(alive.is_empty());
    assert!(s.hosts.contains_key(H1));

    let lost = expire(&mut s, 10_000 + lease, &cfg);
    assert_eq!(
        lost.changes,
        vec![
            Change::HostRemoved { host: H1.into(), reason: RemovalReason::Lost },
            Change::ComponentRemoved { host: H1.into(), component: "echo".into() },
        ]
    );
    assert!(lost.apps.contains("demo"));
    assert!(s.hosts.is_empty());
    assert_eq!(next_expiry(&s, &cfg), None);
}

#[test]
fn a_late_old_event_does_not_resurrect_a_lost_host_but_a_newer_one_does() {
    let cfg = config();
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "hb", 500), &heartbeat(H1, &[], &[]), 10_000);
    expire(&mut s, 10_000 + cfg.lease_ms(), &cfg);
    let old = apply(&mut s, &ctx(H1, "old", 400), &scaled("x", "i", 1, "demo"), 20_000);
    assert_eq!(old.outcome, Outcome::Stale);
    assert!(s.hosts.is_empty());
    // The host was only partitioned: it speaks again.
    let back = apply(&mut s, &ctx(H1, "hb2", 9_000), &heartbeat(H1, &[], &[]), 20_000);
    assert!(back.changes.contains(&Change::HostAdded { host: H1.into() }));
    assert_eq!(s.hosts[H1].last_seen, 20_000);
}

#[test]
fn tombstones_are_forgotten_after_retention() {
    let cfg = config();
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 0);
    apply(&mut s, &ctx(H1, "x", 2), &stopped(), 0);
    assert!(s.bookkeeping.tombstones.contains_key(H1));
    expire(&mut s, cfg.retention_ms - 1, &cfg);
    assert!(s.bookkeeping.tombstones.contains_key(H1));
    let c = expire(&mut s, cfg.retention_ms, &cfg);
    assert!(s.bookkeeping.tombstones.is_empty());
    assert_eq!(c.forgotten_tombstones.into_iter().collect::<Vec<_>>(), vec![H1.to_string()]);
}

#[test]
fn refreshed_leases_start_at_the_given_time() {
    let cfg = config();
    let mut s = LatticeState::default();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 100);
    refresh_leases(&mut s, 5_000);
    assert_eq!(next_expiry(&s, &cfg), Some(5_000 + cfg.lease_ms()));
}

proptest! {
    #[test]
    fn alive_before_the_bound_lost_at_it(seen in 0u64..1_000_000, interval in 1u64..100_000, slack in 0u64..100_000) {
        let cfg = LeaseConfig { heartbeat_interval_ms: interval, slack_ms: slack, retention_ms: 1 };
        let mut s = LatticeState::default();
        apply(&mut s, &ctx(H1, "hb", 1), &heartbeat(H1, &[], &[]), seen);
        let bound = seen + cfg.lease_ms();
        prop_assert!(expire(&mut s, bound - 1, &cfg).changes.is_empty());
        prop_assert!(s.hosts.contains_key(H1));
        let lost = expire(&mut s, bound, &cfg);
        prop_assert_eq!(lost.changes, vec![Change::HostRemoved { host: H1.into(), reason: RemovalReason::Lost }]);
    }
}
