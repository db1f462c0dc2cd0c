//! Host events are evidence, not truth: a host's claimed time is clamped to when the event was
//! heard, so one event stamped far in the future (a skewed clock, a spoofed 2099) cannot make
//! every later event of that host look stale; a spoofed `host_stopped` does not hide a host
//! that keeps sending heartbeats.

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
fn a_spoofed_host_stopped_is_undone_by_the_hosts_next_heartbeat() {
    let config = RuntimeConfig::default();
    let mut r = record();
    let t0 = 1_765_000_000_000;
    let batch = [heartbeat(2, "hb1", t0, t0, 1), stopped("spoof", YEAR_2099, t0 + 1_000, 2)];
    step::apply(&mut r, &batch, &Fetched::default(), t0 + 1_000, false, 0, &config);
    assert_eq!(count(&r), None, "a host_stopped removes the host");
    let batch = [heartbeat(2, "hb2", t0 + 30_000, t0 + 30_000, 3)];
    step::apply(&mut r, &batch, &Fetched::default(), t0 + 30_000, false, 0, &config);
    assert_eq!(count(&r), Some(2), "the host's next heartbeat proves it alive");
}
