//! The model lattice's switchable behaviours and faults, one by one (what the simulation relies
//! on): the 1.9.2 host quirks, crashes and graceful stops, event and request faults, and the
//! request log.

use std::sync::Arc;
use std::time::Duration;

use wadm_protocol::ctl::{ScaleComponentRequest, StartProviderRequest, UpdateComponentRequest};
use wadm_runtime::intents::Slot;
use wadm_runtime::io::ControlClient;
use wadm_runtime::memory::{Faults, HostBehaviour, LogConfig, MemoryLattice, MemoryLog, Reply};
use wadm_runtime::{Clock, VirtualClock};

const T: Duration = Duration::from_secs(2);

fn setup() -> (VirtualClock, MemoryLog, MemoryLattice) {
    let clock = VirtualClock::new(1_000_000);
    let shared: Arc<dyn Clock> = Arc::new(clock.clone());
    let events = MemoryLog::new(shared.clone(), LogConfig::default());
    let lattice = MemoryLattice::new("default", events.clone(), shared);
    lattice.set_behaviour(HostBehaviour::real_1_9_2());
    (clock, events, lattice)
}

fn scale(host: &str, image: &str, count: u32) -> (String, Vec<u8>) {
    let r = ScaleComponentRequest {
        component_ref: image.into(),
        component_id: "c".into(),
        count,
        host_id: host.into(),
        annotations: Default::default(),
        config: vec![],
        allow_update: false,
        component_limits: None,
    };
    (format!("wasmbus.ctl.v1.default.component.scale.{host}"), serde_json::to_vec(&r).unwrap())
}

/// `(short, max_instances)` of every host event published so far.
fn published(events: &MemoryLog) -> Vec<(String, Option<u64>)> {
    events
        .messages("wasmbus.evt.>")
        .into_iter()
        .map(|(_, subject, payload)| {
            let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            let short = subject.rsplit('.').next().unwrap().to_string();
            (short, v["data"]["max_instances"].as_u64())
        })
        .collect()
}

fn short(s: &str, n: Option<u64>) -> (String, Option<u64>) {
    (s.to_string(), n)
}

#[tokio::test]
async fn real_hosts_confirm_with_events_and_their_quirks() {
    let (_, events, lattice) = setup();
    lattice.add_host("H", Default::default()).await;
    let (subject, body) = scale("H", "img:1", 2);
    lattice.request(&subject, body.clone(), T).await.unwrap();
    // The first start is reported twice.
    let tail = published(&events).split_off(2);
    assert_eq!(tail, vec![short("component_scaled", Some(2)); 2]);
    // A scale of a running component once.
    let (subject, body) = scale("H", "img:1", 3);
    lattice.request(&subject, body, T).await.unwrap();
    assert_eq!(published(&events).last().unwrap(), &short("component_scaled", Some(3)));
    // An update: scaled(new, n), then the spurious scaled(new, 0); still running n.
    let update = UpdateComponentRequest {
        component_id: "c".into(),
        new_component_ref: "img:2".into(),
        host_id: "H".into(),
        annotations: None,
    };
    let subject = "wasmbus.ctl.v1.default.component.update.H";
    lattice.request(subject, serde_json::to_vec(&update).unwrap(), T).await.unwrap();
    let all = published(&events);
    assert_eq!(
        all[all.len() - 2..],
        [short("component_scaled", Some(3)), short("component_scaled", Some(0))]
    );
    assert_eq!(lattice.truth().hosts["H"].components["c"].count, 3);
    assert_eq!(lattice.truth().hosts["H"].components["c"].image_ref, "img:2");

    // Provider start of a running id and stop of a stopped one: refused in the hosts' words.
    let start = StartProviderRequest {
        provider_id: "p".into(),
        provider_ref: "ghcr.io/p:1".into(),
        host_id: "H".into(),
        config: vec![],
        annotations: Default::default(),
    };
    let subject = "wasmbus.ctl.v1.default.provider.start.H";
    let body = serde_json::to_vec(&start).unwrap();
    lattice.request(subject, body.clone(), T).await.unwrap();
    assert_eq!(published(&events).last().unwrap().0, "provider_started");
    lattice.request(subject, body, T).await.unwrap();
    let stop = serde_json::json!({"provider_id": "p", "host_id": "H"});
    let subject = "wasmbus.ctl.v1.default.provider.stop.H";
    let body = serde_json::to_vec(&stop).unwrap();
    lattice.request(subject, body.clone(), T).await.unwrap();
    assert_eq!(published(&events).last().unwrap().0, "provider_stopped");
    lattice.request(subject, body, T).await.unwrap();
    let log = lattice.requests_on("H");
    let replies: Vec<&Reply> = log.iter().map(|r| &r.reply).collect();
    assert!(matches!(replies[4], Reply::Refused(m) if m.contains("already running")));
    assert!(matches!(replies[6], Reply::Refused(m) if m.contains("not running")));
    assert_eq!(log.iter().filter(|r| r.applied.is_some()).count(), 5);
}

#[tokio::test]
async fn crashed_hosts_are_silent_and_stopped_ones_say_so() {
    let (_, events, lattice) = setup();
    lattice.add_host("A", Default::default()).await;
    lattice.add_host("B", Default::default()).await;
    let (subject, body) = scale("A", "img:1", 1);
    lattice.request(&subject, body.clone(), T).await.unwrap();
    let before = lattice.op();
    let published_before = events.stored();
    assert!(lattice.crash_host("A"));
    assert_eq!(events.stored(), published_before, "a crash publishes nothing");
    let slot = Slot::Component { host: "A".into(), component: "c".into() };
    assert!(lattice.changed_between(&slot, before, lattice.op() + 1));
    let gone = lattice.request(&subject, body, T).await;
    assert!(matches!(gone, Err(wadm_runtime::IoError::NoResponders { .. })), "{gone:?}");
    assert!(lattice.stop_host("B").await);
    assert_eq!(published(&events).last().unwrap().0, "host_stopped");
    assert!(lattice.hosts().is_empty());
}

#[tokio::test]
async fn requests_lost_or_answered_late_are_logged_with_their_fate() {
    let (clock, _, lattice) = setup();
    lattice.add_host("H", Default::default()).await;
    lattice.set_seed(3);
    lattice.set_faults(Faults { lose_request: 1_000_000, ..Faults::none() });
    let (subject, body) = scale("H", "img:1", 1);
    assert!(lattice.request(&subject, body.clone(), T).await.is_err());
    assert!(lattice.truth().hosts["H"].components.is_empty(), "a lost request does nothing");
    // A late reply: executed up to 1 s later (or before the host's next request).
    let late = Faults { late_reply: 1_000_000, max_late_execution: T / 2, ..Faults::none() };
    lattice.set_faults(late);
    assert!(lattice.request(&subject, body.clone(), T).await.is_err());
    clock.advance(1_000);
    lattice.release_due().await;
    assert_eq!(lattice.truth().hosts["H"].components["c"].count, 1, "executed late");
    let log = lattice.request_log();
    assert_eq!(log.len(), 2);
    assert_eq!((log[0].reply.clone(), log[0].applied, log[0].late), (Reply::TimedOut, None, false));
    assert_eq!((log[1].reply.clone(), log[1].late), (Reply::TimedOut, true));
    assert!(log[1].applied.is_some());
    assert_eq!(lattice.fault_counts().requests_lost, 1);
    assert_eq!(lattice.fault_counts().late_replies, 1);
}

#[tokio::test]
async fn events_are_dropped_duplicated_and_delayed_but_heartbeats_never_twice_in_a_row() {
    let (clock, events, lattice) = setup();
    lattice.add_host("H", Default::default()).await;
    lattice.set_seed(11);
    lattice.set_faults(Faults { drop_event: 1_000_000, ..Faults::none() });
    let stored = events.stored();
    for _ in 0..4 {
        lattice.heartbeat("H").await;
    }
    assert_eq!(events.stored(), stored + 2, "every other heartbeat gets through");
    lattice.set_faults(Faults { duplicate_event: 1_000_000, ..Faults::none() });
    lattice.heartbeat("H").await;
    let ids: Vec<String> = events
        .messages("wasmbus.evt.>")
        .iter()
        .rev()
        .take(2)
        .map(|(_, _, p)| serde_json::from_slice::<serde_json::Value>(p).unwrap()["id"].to_string())
        .collect();
    assert_eq!(ids[0], ids[1], "the same event twice");
    let delay = Faults {
        delay_event: 1_000_000,
        max_event_delay: Duration::from_millis(500),
        ..Faults::none()
    };
    lattice.set_faults(delay);
    let stored = events.stored();
    lattice.heartbeat("H").await;
    assert_eq!(events.stored(), stored, "held back");
    let due = lattice.next_due().unwrap();
    clock.set(due);
    assert_eq!(lattice.release_due().await, 1);
    assert_eq!(events.stored(), stored + 1);
}
