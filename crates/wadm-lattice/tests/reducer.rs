//! Unit tests of the event reducer: each protocol event, idempotence, reordering, gotchas.

mod common;

use common::*;
use wadm_lattice::{Change, EventContext, LatticeState, Outcome, ProviderHealth, RemovalReason};
use wadm_protocol::{CloudEvent, HostEvent};

fn fresh() -> LatticeState {
    LatticeState { lattice: "default".into(), ..LatticeState::default() }
}

#[test]
fn host_started_adds_an_empty_host_and_every_app_is_affected() {
    let mut s = fresh();
    let c = apply(&mut s, &ctx(H1, "e1", 100), &started(&[("zone", "a")]), 1_000);
    assert_eq!(c.changes, vec![Change::HostAdded { host: H1.into() }]);
    assert!(c.every_app);
    let host = &s.hosts[H1];
    assert_eq!(host.labels["zone"], "a");
    assert_eq!(host.version, "1.9.2");
    assert_eq!(host.last_seen, 1_000);
    assert!(host.components.is_empty());
}

#[test]
fn heartbeat_is_authoritative_and_a_repeat_changes_nothing() {
    let mut s = fresh();
    let hb = heartbeat(H1, &[("zone", "a")], &[("echo", "img:1", 3)]);
    let c = apply(&mut s, &ctx(H1, "hb1", 100), &hb, 1_000);
    assert!(
        c.changes.contains(&Change::ComponentSet { host: H1.into(), component: "echo".into() })
    );
    assert_eq!(c.apps.iter().collect::<Vec<_>>(), vec!["demo"]);
    assert_eq!(s.hosts[H1].components["echo"].count, 3);

    let before = s.clone();
    let again = apply(&mut s, &ctx(H1, "hb1", 100), &hb, 2_000);
    assert_eq!(again.outcome, Outcome::Stale);
    assert!(again.is_empty());
    let mut expected = before.clone();
    expected.bookkeeping.stale_events += 1;
    assert_eq!(s, expected, "a duplicate delivery must not even refresh last_seen");

    // A newer heartbeat with the same content changes no entity but refreshes the lease.
    let c = apply(&mut s, &ctx(H1, "hb2", 200), &hb, 3_000);
    assert!(c.changes.is_empty() && c.apps.is_empty() && !c.every_app);
    assert_eq!(s.hosts[H1].last_seen, 3_000);
}

#[test]
fn double_component_scaled_is_one_change() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    let first = apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img:1", 2, "demo"), 10);
    assert_eq!(
        first.changes,
        vec![Change::ComponentSet { host: H1.into(), component: "echo".into() }]
    );
    assert!(first.apps.contains("demo"));
    let second = apply(&mut s, &ctx(H1, "b", 3), &scaled("echo", "img:1", 2, "demo"), 11);
    assert_eq!(second.outcome, Outcome::Applied);
    assert!(second.is_empty(), "{second:?}");
}

#[test]
fn count_zero_removes_the_component_and_asks_for_the_inventory() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img:1", 2, "demo"), 10);
    let c = apply(&mut s, &ctx(H1, "b", 3), &scaled("echo", "img:1", 0, "demo"), 10);
    assert_eq!(
        c.changes,
        vec![Change::ComponentRemoved { host: H1.into(), component: "echo".into() }]
    );
    assert!(c.needs_inventory.contains(H1));
    assert!(s.hosts[H1].components.is_empty());
    // Scaling a component that is not running to 0 is a no-op.
    let c = apply(&mut s, &ctx(H1, "c", 4), &scaled("echo", "img:1", 0, "demo"), 10);
    assert!(c.is_empty());
}

#[test]
fn spurious_zero_after_update_is_repaired_by_the_next_heartbeat() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img:1", 2, "demo"), 10);
    apply(&mut s, &ctx(H1, "u1", 3), &scaled("echo", "img:2", 2, "demo"), 10);
    apply(&mut s, &ctx(H1, "u2", 4), &scaled("echo", "img:2", 0, "demo"), 10);
    assert!(s.hosts[H1].components.is_empty());
    let hb = heartbeat(H1, &[], &[("echo", "img:2", 2)]);
    let c = apply(&mut s, &ctx(H1, "hb", 5), &hb, 20);
    assert!(
        c.changes.contains(&Change::ComponentSet { host: H1.into(), component: "echo".into() })
    );
    assert_eq!(s.hosts[H1].components["echo"].image_ref, "img:2");
}

#[test]
fn cloud_event_source_wins_over_payload_host_id() {
    let mut s = fresh();
    let ev = CloudEvent::host_event(
        "component_scaled",
        "id1",
        H2,
        "2024-01-22T20:13:22.611283Z",
        serde_json::json!({"component_id": "echo", "host_id": H1, "image_ref": "i", "max_instances": 1}),
    );
    let decoded = HostEvent::decode(&ev).unwrap();
    let c = apply(&mut s, &EventContext::from_cloud_event(&ev), &decoded, 5);
    assert!(s.hosts.contains_key(H2) && !s.hosts.contains_key(H1));
    assert!(c.needs_inventory.contains(H2), "an unknown host's inventory is wanted");
}

#[test]
fn unknown_events_are_counted_not_errors() {
    let mut s = fresh();
    let c = apply(&mut s, &ctx(H1, "x", 1), &HostEvent::Unknown("com.x.y".into()), 1);
    assert_eq!(c.outcome, Outcome::Unknown);
    assert_eq!(s.bookkeeping.unknown_events, 1);
    assert!(s.hosts.is_empty());
}

#[test]
fn events_without_a_host_are_skipped() {
    let mut s = fresh();
    let c = apply(&mut s, &ctx("", "x", 1), &scaled("echo", "i", 1, "demo"), 1);
    assert_eq!(c.outcome, Outcome::Unattributed);
    assert!(s.hosts.is_empty());
}

#[test]
fn host_stopped_removes_everything_and_late_events_never_resurrect_it() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img:1", 2, "demo"), 10);
    apply(&mut s, &ctx(H1, "p", 3), &provider_started("http", "file:///p.par.gz", "demo"), 10);
    assert_eq!(s.hosts[H1].providers["http"].image_ref, "/p.par.gz");
    let mut c = apply(&mut s, &ctx(H1, "stop", 10), &stopped(), 20);
    c.changes.retain(|c| !matches!(c, Change::HostUpdated { .. })); // the report, then confirmed
    assert_eq!(
        c.changes,
        vec![
            Change::HostRemoved { host: H1.into(), reason: RemovalReason::Stopped },
            Change::ComponentRemoved { host: H1.into(), component: "echo".into() },
            Change::ProviderRemoved { host: H1.into(), provider: "http".into() },
        ]
    );
    assert!(c.apps.contains("demo"));
    assert!(s.hosts.is_empty());
    // A heartbeat sent before the stop, delivered late.
    let late = apply(&mut s, &ctx(H1, "hb", 9), &heartbeat(H1, &[], &[("echo", "i", 1)]), 30);
    assert_eq!(late.outcome, Outcome::Stale);
    assert!(s.hosts.is_empty());
}

#[test]
fn a_heartbeat_after_a_stop_proves_the_host_alive_but_its_other_events_do_not() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "stop", 10), &stopped(), 20);
    assert!(s.hosts.is_empty());
    // Events stamped after the stop other than a full snapshot do not bring it back...
    let scaled_late = apply(&mut s, &ctx(H1, "a", 11), &scaled("echo", "img:1", 2, "demo"), 25);
    assert_eq!(scaled_late.outcome, Outcome::Stale);
    assert!(s.hosts.is_empty());
    // ...a heartbeat does: the stop was not the host's last word (a spoofed `host_stopped`).
    let alive = apply(&mut s, &ctx(H1, "hb", 12), &heartbeat(H1, &[], &[("echo", "i", 1)]), 30);
    assert_eq!(alive.outcome, Outcome::Applied);
    assert_eq!(s.hosts[H1].components["echo"].count, 1);
}

#[test]
fn a_stale_heartbeat_does_not_undo_a_newer_one() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "hb2", 200), &heartbeat(H1, &[("v", "2")], &[("echo", "i:2", 5)]), 10);
    let old = heartbeat(H1, &[("v", "1")], &[("echo", "i:1", 1), ("old", "o", 1)]);
    let c = apply(&mut s, &ctx(H1, "hb1", 100), &old, 20);
    assert_eq!(c.outcome, Outcome::Stale);
    assert_eq!(s.hosts[H1].labels["v"], "2");
    assert_eq!(s.hosts[H1].components.len(), 1);
    assert_eq!(s.hosts[H1].components["echo"].count, 5);
}

#[test]
fn an_older_heartbeat_keeps_newer_incremental_facts() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "a", 50), &scaled("echo", "img:1", 4, "demo"), 10);
    // Heartbeat taken at 40, before the scale, arrives after it.
    apply(&mut s, &ctx(H1, "hb", 40), &heartbeat(H1, &[], &[]), 11);
    assert_eq!(s.hosts[H1].components["echo"].count, 4);
    // A later heartbeat is authoritative again.
    apply(&mut s, &ctx(H1, "hb2", 60), &heartbeat(H1, &[], &[]), 12);
    assert!(s.hosts[H1].components.is_empty());
}

#[test]
fn provider_health_follows_checks_and_survives_heartbeats() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "p", 2), &provider_started("http", "img", "demo"), 10);
    assert_eq!(s.hosts[H1].providers["http"].health, ProviderHealth::Pending);
    let c = apply(&mut s, &ctx(H1, "h", 3), &health_passed("http"), 10);
    assert_eq!(c.changes, vec![Change::ProviderSet { host: H1.into(), provider: "http".into() }]);
    let mut inv = inventory(H1, &[], &[]);
    inv.providers.push(wadm_protocol::ProviderDescription {
        id: "http".into(),
        image_ref: "img".into(),
        name: None,
        annotations: app("demo"),
        revision: 0,
    });
    let c = apply(&mut s, &ctx(H1, "hb", 4), &HostEvent::HostHeartbeat(inv), 11);
    assert!(c.changes.is_empty(), "{c:?}");
    assert_eq!(s.hosts[H1].providers["http"].health, ProviderHealth::Healthy);
    let c = apply(&mut s, &ctx(H1, "ps", 5), &provider_stopped("http"), 12);
    assert_eq!(
        c.changes,
        vec![Change::ProviderRemoved { host: H1.into(), provider: "http".into() }]
    );
}

#[test]
fn labels_changed_is_reported() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[("zone", "a")]), 10);
    let c = apply(&mut s, &ctx(H1, "l", 2), &labels(&[("zone", "b")]), 10);
    assert_eq!(c.changes, vec![Change::HostLabelsChanged { host: H1.into() }]);
    assert!(c.every_app);
    assert_eq!(s.hosts[H1].labels["zone"], "b");
}

#[test]
fn links_and_configs_follow_their_events() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img:1", 1, "demo"), 10);
    let l = link("echo", "http");
    let c = apply(&mut s, &ctx(H1, "l1", 3), &HostEvent::LinkSet(l.clone()), 10);
    assert_eq!(c.changes, vec![Change::LinkSet { link: l.key() }]);
    assert!(c.apps.contains("demo"), "the link's source belongs to demo");
    let dup = apply(&mut s, &ctx(H1, "l1", 3), &HostEvent::LinkSet(l.clone()), 11);
    assert_eq!(dup.outcome, Outcome::Stale);
    let c = apply(&mut s, &ctx(H1, "l2", 4), &link_deleted("echo"), 10);
    assert_eq!(c.changes, vec![Change::LinkRemoved { link: l.key() }]);
    assert!(s.links.is_empty());
    // The set, delivered again late, must not bring the link back.
    let late = apply(&mut s, &ctx(H1, "l0", 2), &HostEvent::LinkSet(l), 12);
    assert_eq!(late.outcome, Outcome::Stale);
    assert!(s.links.is_empty());

    let c = apply(&mut s, &ctx(H1, "c1", 5), &config_set("cfg"), 10);
    assert_eq!(c.changes, vec![Change::ConfigSet { name: "cfg".into() }]);
    assert_eq!(s.configs["cfg"].values, None);
    let c = apply(&mut s, &ctx(H1, "c2", 6), &config_deleted("cfg"), 10);
    assert_eq!(c.changes, vec![Change::ConfigRemoved { name: "cfg".into() }]);
    assert!(s.configs.is_empty());
}

#[test]
fn upstream_samples_apply_without_panicking() {
    let samples: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../../../fixtures/events/upstream-event-samples.json"))
            .unwrap();
    let mut s = fresh();
    for (n, sample) in samples.iter().enumerate() {
        let bytes = serde_json::to_vec(sample).unwrap();
        let (envelope, event) = HostEvent::decode_bytes(&bytes).unwrap();
        apply(&mut s, &EventContext::from_cloud_event(&envelope), &event, n as u64);
    }
    assert_eq!(s.bookkeeping.unknown_events, 2, "the two wadm manifest events");
}

#[test]
fn a_stop_is_reported_until_confirmed_and_a_later_heartbeat_contradicts_it() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    apply(&mut s, &ctx(H1, "a", 2), &scaled("echo", "img:1", 2, "demo"), 10);
    let c = wadm_lattice::apply(&mut s, &ctx(H1, "stop", 10), &stopped(), 20);
    assert!(c.needs_verification.contains(H1), "the host is to be asked");
    assert_eq!(s.hosts[H1].components["echo"].count, 2, "its work stays until confirmed");
    // A duplicate report asks nothing more.
    let again = wadm_lattice::apply(&mut s, &ctx(H1, "stop", 10), &stopped(), 21);
    assert!(again.needs_verification.is_empty());
    // A heartbeat stamped after the stop: the host is alive, the report is dropped.
    apply(&mut s, &ctx(H1, "hb", 11), &heartbeat(H1, &[], &[("echo", "img:1", 2)]), 22);
    assert!(s.hosts[H1].stop_reported.is_none());
    let lease = wadm_lattice::LeaseConfig::default();
    wadm_lattice::expire(&mut s, 22 + wadm_lattice::STOP_CONFIRM_MS, &lease);
    assert!(s.hosts.contains_key(H1), "nothing left to confirm");
}

#[test]
fn an_unanswered_stop_report_is_taken_as_true_at_its_deadline() {
    let mut s = fresh();
    apply(&mut s, &ctx(H1, "s", 1), &started(&[]), 10);
    wadm_lattice::apply(&mut s, &ctx(H1, "stop", 10), &stopped(), 20);
    // An older heartbeat, delivered late, does not contradict it.
    apply(&mut s, &ctx(H1, "hb", 9), &heartbeat(H1, &[], &[]), 21);
    assert!(s.hosts[H1].stop_reported.is_some());
    let lease = wadm_lattice::LeaseConfig::default();
    let due = 20 + wadm_lattice::STOP_CONFIRM_MS;
    assert_eq!(wadm_lattice::next_expiry(&s, &lease), Some(due));
    wadm_lattice::expire(&mut s, due - 1, &lease);
    assert!(s.hosts.contains_key(H1));
    let c = wadm_lattice::expire(&mut s, due, &lease);
    assert!(
        c.changes
            .contains(&Change::HostRemoved { host: H1.into(), reason: RemovalReason::Stopped })
    );
    assert_eq!(s.bookkeeping.tombstones[H1].reason, RemovalReason::Stopped);
}
