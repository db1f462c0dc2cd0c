//! Host events are evidence, not truth: a host's claimed time is clamped to when the event was
//! heard, so one event stamped far in the future (a skewed clock, a spoofed 2099) cannot make
//! every later event of that host look stale; a `host_stopped` is checked with the host before
//! its work moves, and a spoofed one does not hide a host that keeps sending heartbeats.

use wadm_lattice::{EventContext, HostState, LatticeState};
use wadm_protocol::{ComponentDescription, HostEvent, HostInventory};
use wadm_runtime::RuntimeConfig;
use wadm_runtime::record::LatticeRecord;
use wadm_runtime::step::{self, Event, Fetched, Input};

const HOST: &str = "NHOST";
const YEAR_2099: u64 = 4_070_908_800_000;

fn heartbeat(count: u32, id: &str, time: u64, stored_at: u64, sequence: u64) -> Event {
    let inventory = HostInventory {
        host_id: HOST.into(),
        components: vec![ComponentDescription {
            id: "echo".into(),
            image_ref: "img:1".into(),
            name: None,
            annotations: Default::default(),
            revision: 0,
            max_instances: count,
            limits: None,
        }],
        ..Default::default()
    };
    let ctx = EventContext { source: HOST.into(), id: id.into(), time: Some(time) };
    let input = Input::Host { ctx, event: HostEvent::HostHeartbeat(inventory) };
    Event { input, sequence, delivered: 1, stored_at: Some(stored_at) }
}

fn stopped(id: &str, time: u64, stored_at: u64, sequence: u64) -> Event {
    let ctx = EventContext { source: HOST.into(), id: id.into(), time: Some(time) };
    let input = Input::Host { ctx, event: HostEvent::HostStopped(Default::default()) };
    Event { input, sequence, delivered: 1, stored_at: Some(stored_at) }
}

fn record() -> LatticeRecord {
    LatticeRecord {
        state: LatticeState { lattice: "default".into(), ..Default::default() },
        ..Default::default()
    }
}

fn count(record: &LatticeRecord) -> Option<u32> {
    let host: &HostState = record.state.hosts.get(HOST)?;
    host.components.get("echo").map(|c| c.count)
}

#[test]
fn a_heartbeat_from_the_future_does_not_freeze_its_host() {
    let config = RuntimeConfig::default();
    let mut r = record();
    let t0 = 1_765_000_000_000;
    let batch = [heartbeat(1, "hb-2099", YEAR_2099, t0, 1)];
    step::apply(&mut r, &batch, &Fetched::default(), t0, false, 0, &config);
    assert_eq!(count(&r), Some(1));
    // The next real heartbeat, 30 s later, says 3: it is newer than the clamped 2099 one.
    let batch = [heartbeat(3, "hb-real", t0 + 30_000, t0 + 30_000, 2)];
    step::apply(&mut r, &batch, &Fetched::default(), t0 + 30_000, false, 0, &config);
    assert_eq!(count(&r), Some(3), "the real heartbeat was taken as stale");
}

#[test]
fn a_spoofed_host_stopped_is_asked_about_and_the_live_host_keeps_its_work() {
    let config = RuntimeConfig::default();
    let mut r = record();
    let t0 = 1_765_000_000_000;
    let batch = [heartbeat(2, "hb1", t0, t0, 1)];
    step::apply(&mut r, &batch, &Fetched::default(), t0, false, 0, &config);
    let batch = [stopped("spoof", YEAR_2099, t0 + 1_000, 2)];
    let mut applied =
        step::apply(&mut r, &batch, &Fetched::default(), t0 + 1_000, false, 0, &config);
    assert_eq!(count(&r), Some(2), "a reported stop removes nothing yet");
    assert!(applied.verify_hosts.contains(HOST), "the host is to be asked");
    assert!(applied.affected.apps.is_empty() && !applied.affected.every_app, "nothing to re-plan");
    // The host answers with its inventory: alive, the report is dropped, its work stays.
    let inventory = match &heartbeat(2, "x", t0, t0, 0).input {
        Input::Host { event: HostEvent::HostHeartbeat(inv), .. } => inv.clone(),
        _ => unreachable!(),
    };
    step::host_answer(&mut r, &mut applied, HOST, Some(inventory), t0 + 1_000, t0 + 1_010);
    assert_eq!(count(&r), Some(2));
    assert!(r.state.hosts[HOST].stop_reported.is_none());
    // Its deadline passes: nothing is removed.
    let batch = [timer(t0 + 10_000, 3)];
    step::apply(&mut r, &batch, &Fetched::default(), t0 + 10_000, false, 0, &config);
    assert_eq!(count(&r), Some(2));
}

#[test]
fn a_stopped_host_that_is_silent_when_asked_is_removed_at_once() {
    let config = RuntimeConfig::default();
    let mut r = record();
    let t0 = 1_765_000_000_000;
    let batch = [heartbeat(2, "hb1", t0, t0, 1), stopped("stop", t0 + 900, t0 + 1_000, 2)];
    let mut applied =
        step::apply(&mut r, &batch, &Fetched::default(), t0 + 1_000, false, 0, &config);
    step::host_answer(&mut r, &mut applied, HOST, None, t0 + 1_000, t0 + 1_005);
    assert_eq!(count(&r), None, "confirmed: removed");
    assert!(applied.affected.every_app, "its work is re-planned");
    // Had it been spoofed after all, the host's next heartbeat proves it alive.
    let batch = [heartbeat(2, "hb2", t0 + 30_000, t0 + 30_000, 3)];
    step::apply(&mut r, &batch, &Fetched::default(), t0 + 30_000, false, 0, &config);
    assert_eq!(count(&r), Some(2), "the host's next heartbeat proves it alive");
}

#[test]
fn a_stop_report_nobody_asked_about_is_taken_as_true_at_its_deadline() {
    let config = RuntimeConfig::default();
    let mut r = record();
    let t0 = 1_765_000_000_000;
    let batch = [heartbeat(2, "hb1", t0, t0, 1), stopped("stop", t0 + 900, t0 + 1_000, 2)];
    step::apply(&mut r, &batch, &Fetched::default(), t0 + 1_000, false, 0, &config);
    let due = t0 + 1_000 + wadm_lattice::STOP_CONFIRM_MS;
    let batch = [timer(due, 3)];
    step::apply(&mut r, &batch, &Fetched::default(), due, false, 0, &config);
    assert_eq!(count(&r), None);
}

fn timer(at: u64, sequence: u64) -> Event {
    Event { input: Input::Timer { at }, sequence, delivered: 1, stored_at: Some(at) }
}

#[test]
fn an_unknown_hosts_claims_count_only_once_it_answers() {
    let config = RuntimeConfig::default();
    let mut r = record();
    let t0 = 1_765_000_000_000;
    let mut claim = heartbeat(3, "hb1", t0, t0, 1);
    if let Input::Host { event: HostEvent::HostHeartbeat(inv), .. } = &mut claim.input {
        inv.components[0].annotations.insert("wasmcloud.dev/appspec".into(), "shop".into());
    }
    let inventory = match &claim.input {
        Input::Host { event: HostEvent::HostHeartbeat(inv), .. } => inv.clone(),
        _ => unreachable!(),
    };
    let mut applied = step::apply(
        &mut r,
        std::slice::from_ref(&claim),
        &Fetched::default(),
        t0,
        false,
        0,
        &config,
    );
    assert_eq!(count(&r), None, "not applied on its word");
    assert!(applied.verify_hosts.contains(HOST), "the host is to be asked");
    // Nobody answers: a phantom; nothing is learnt.
    step::host_answer(&mut r, &mut applied, HOST, None, t0, t0 + 5);
    assert_eq!(count(&r), None);
    // Asked again on its next claim, it answers: now it is known, with what it said it runs.
    let mut applied =
        step::apply(&mut r, &[claim], &Fetched::default(), t0 + 10, false, 0, &config);
    step::host_answer(&mut r, &mut applied, HOST, Some(inventory), t0 + 10, t0 + 12);
    assert_eq!(count(&r), Some(3));
    assert!(applied.affected.every_app, "a new host: everything is planned again");
}
