//! A lattice of model hosts in memory: answers control requests the way wasmCloud hosts do (the
//! pure model of `wadm_scheduler::apply`) and reports what happened as host CloudEvents on the
//! event log, with switchable behaviours and seeded faults.
//!
//! Why it works this way: `docs/runtime.md`, “Module notes”, `memory::lattice`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use wadm_lattice::{HostState, LatticeState, Timestamp};
use wadm_protocol::ctl::{
    CtlReply, DeleteLinkRequest, ScaleComponentRequest, StartProviderRequest, StopProviderRequest,
    UpdateComponentRequest,
};
use wadm_protocol::{
    CloudEvent, ComponentDescription, HostInventory, Link, ProviderDescription, StringMap,
};
use wadm_scheduler::Command;
use wadm_scheduler::apply::apply_command;

use super::log::MemoryLog;
use crate::clock::{Clock, Random, SeededRandom};
use crate::intents::Slot;
use crate::io::{ControlClient, IoError, Outbox, Outgoing};

/// How the model hosts answer beyond the pure model. The default is the simple model (every
/// switch off); [`HostBehaviour::real_1_9_2`] switches on everything a wasmCloud 1.9.2 host does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostBehaviour {
    /// Confirm a scale, update, provider start or stop with the events a real host publishes
    /// (`component_scaled`, `provider_started`, `provider_stopped`) instead of the target host's
    /// heartbeat.
    pub confirm_with_events: bool,
    /// A `component.update` is followed by `component_scaled(new ref, n)` **and then** a
    /// spurious `component_scaled(new ref, 0)`; the component keeps running `n` (realhost 1).
    pub update_echo: bool,
    /// The first start of a component emits `component_scaled` twice (realhost 2).
    pub double_first_start: bool,
    /// A request addressed to a host that is not running (crashed, stopped, never existed),
    /// or a lattice-wide request while no host runs, gets NATS "no responders" (otherwise the
    /// model refuses it).
    pub no_responders: bool,
    /// Link and config events are sourced by the host that answered the request (one of the
    /// running hosts, drawn from the seeded generator) instead of an empty source.
    pub lattice_events_from_hosts: bool,
}

impl HostBehaviour {
    /// Everything a real wasmCloud 1.9.2 host does.
    pub fn real_1_9_2() -> Self {
        Self {
            confirm_with_events: true,
            update_echo: true,
            double_first_start: true,
            no_responders: true,
            lattice_events_from_hosts: true,
        }
    }
}

/// Seeded faults, as odds per million (0: never). The default injects nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// A host event is not published at all. A host's heartbeat is never dropped twice in a
    /// row (so a host that runs is never taken for lost by its lease because of drops alone).
    pub drop_event: u32,
    /// A host event is published twice (the copy under another message id, as a second
    /// plain-NATS publish is stored twice).
    pub duplicate_event: u32,
    /// A host event is held back for 1..=`max_event_delay` ms, then published (after newer
    /// events: reordered).
    pub delay_event: u32,
    /// The longest a `delay_event` fault holds an event back.
    pub max_event_delay: Duration,
    /// A control request is lost: never executed, never answered (the requester times out).
    pub lose_request: u32,
    /// A control request is executed but its reply does not arrive in time (the requester
    /// times out): executed at once or up to `max_late_execution` later (before the next
    /// request to the same host, which handles requests in order).
    pub late_reply: u32,
    /// The latest a `late_reply` fault executes the request after it was received.
    pub max_late_execution: Duration,
}

impl Faults {
    /// No fault at all.
    pub fn none() -> Self {
        Self::default()
    }
}

/// What the requester of one control request got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `success: true`.
    Success,
    /// `success: false` with the host's message.
    Refused(String),
    /// Nothing in time (lost, or a late reply).
    TimedOut,
    /// NATS "no responders".
    NoResponders,
}

/// One control request as the lattice received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// The host it was addressed to; for lattice-wide requests (links, configs) the host that
    /// answered (empty when none did or sources are not modelled).
    pub host: String,
    /// The full control subject.
    pub subject: String,
    /// The request body.
    pub body: Vec<u8>,
    /// Virtual time when it was received.
    pub at: Timestamp,
    /// The lattice's operation number when it was received.
    pub op: u64,
    /// What the requester got back.
    pub reply: Reply,
    /// The operation number at which the hosts applied it, if they did (`None`: lost, refused,
    /// reported failed, a read, or a late execution still to come).
    pub applied: Option<u64>,
    /// Its reply was lost although it was (or will be) executed.
    pub late: bool,
}

impl ReceivedRequest {
    /// The command it carries (`None` for reads and unknown requests).
    pub fn command(&self) -> Option<Command> {
        let tokens: Vec<&str> = self.subject.split('.').collect();
        MemoryLattice::decode(tokens.get(4..)?, &self.body)
    }
}

/// Counts of the faults injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Host events not published (`drop_event`).
    pub events_dropped: u64,
    /// Host events published twice (`duplicate_event`).
    pub events_duplicated: u64,
    /// Host events held back and published late (`delay_event`).
    pub events_delayed: u64,
    /// Control requests lost (`lose_request`).
    pub requests_lost: u64,
    /// Control requests whose reply did not arrive in time (`late_reply`).
    pub late_replies: u64,
    /// Control requests answered with "no responders" (nobody ran to answer them).
    pub no_responders: u64,
}

/// An event held back by the `delay_event` fault.
struct Held {
    at: Timestamp,
    order: u64,
    outgoing: Outgoing,
}

/// A request whose reply was lost, to be executed at `at`.
struct LateExecution {
    at: Timestamp,
    order: u64,
    /// Index in the request log.
    index: usize,
    /// The target host, or "" for lattice-wide requests (the hosts' shared KV).
    queue: String,
}

#[derive(Default)]
struct Inner {
    truth: LatticeState,
    /// Every operation of the model (request received or applied, event emitted, host
    /// change) gets the next number.
    op: u64,
    failing_components: BTreeMap<String, String>,
    unreachable: bool,
    requests: u64,
    behaviour: HostBehaviour,
    faults: Faults,
    rng: SeededRandom,
    log: Vec<ReceivedRequest>,
    held: Vec<Held>,
    late: Vec<LateExecution>,
    /// Per slot, the operations that changed what it runs.
    changes: BTreeMap<Slot, Vec<u64>>,
    /// Per host, the operations that removed it (crash, stop).
    removals: BTreeMap<String, Vec<u64>>,
    /// Hosts whose last heartbeat was dropped (the next one is not).
    heartbeat_dropped: BTreeSet<String>,
    counts: FaultCounts,
    /// Bumped whenever what the hosts run changes.
    version: u64,
    /// What was published on core NATS (allocation events), by subject.
    notified: Vec<(String, serde_json::Value)>,
}

impl Inner {
    fn next_op(&mut self) -> u64 {
        self.op += 1;
        self.op
    }

    /// A draw against odds per million (no draw at all when the odds are 0).
    fn roll(&mut self, per_million: u32) -> bool {
        per_million > 0 && self.rng.next_u64() % 1_000_000 < u64::from(per_million)
    }

    /// 1..=max ms.
    fn delay(&mut self, max: Duration) -> u64 {
        let max = (max.as_millis() as u64).max(1);
        1 + self.rng.next_u64() % max
    }

    /// The host answering a lattice-wide request: `Some("")` when sources are not modelled,
    /// a running host (seeded draw) when they are, `None` when no host runs.
    fn responder(&mut self) -> Option<String> {
        if !self.behaviour.lattice_events_from_hosts {
            return Some(String::new());
        }
        let hosts: Vec<&String> = self.truth.hosts.keys().collect();
        if hosts.is_empty() {
            return None;
        }
        let pick = (self.rng.next_u64() % hosts.len() as u64) as usize;
        Some(hosts[pick].clone())
    }

    fn record_change(&mut self, slot: Slot, op: u64) {
        self.version += 1;
        self.changes.entry(slot).or_default().push(op);
    }
}

/// What a slot runs, for change tracking.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SlotValue {
    Component(Option<wadm_lattice::ComponentInstance>),
    Provider(Option<wadm_lattice::ProviderInstance>),
    Link(Option<Link>),
    Config(Option<wadm_lattice::ConfigState>),
}

fn slot_value(truth: &LatticeState, slot: &Slot) -> SlotValue {
    match slot {
        Slot::Component { host, component } => SlotValue::Component(
            truth.hosts.get(host).and_then(|h| h.components.get(component)).cloned(),
        ),
        Slot::Provider { host, provider } => SlotValue::Provider(
            truth.hosts.get(host).and_then(|h| h.providers.get(provider)).cloned(),
        ),
        Slot::Link(key) => SlotValue::Link(truth.links.get(key).cloned()),
        Slot::Config(name) => SlotValue::Config(truth.configs.get(name).cloned()),
    }
}

/// Model hosts of one lattice. Clones share them.
#[derive(Clone)]
pub struct MemoryLattice {
    inner: Arc<Mutex<Inner>>,
    events: MemoryLog,
    clock: Arc<dyn Clock>,
}

fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

impl MemoryLattice {
    /// A lattice named `lattice` with no host yet, publishing its events to `events` and reading
    /// time from `clock`.
    pub fn new(lattice: &str, events: MemoryLog, clock: Arc<dyn Clock>) -> Self {
        let truth = LatticeState { lattice: lattice.to_string(), ..LatticeState::default() };
        let inner = Inner { truth, ..Inner::default() };
        Self { inner: Arc::new(Mutex::new(inner)), events, clock }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The allocation events published so far, with their subjects.
    pub fn notified(&self) -> Vec<(String, serde_json::Value)> {
        self.lock().notified.clone()
    }

    /// What the hosts run.
    pub fn truth(&self) -> LatticeState {
        self.lock().truth.clone()
    }

    /// Look at what the hosts run without copying it.
    pub fn inspect<R>(&self, f: impl FnOnce(&LatticeState) -> R) -> R {
        f(&self.lock().truth)
    }

    /// The ids of the running hosts.
    pub fn hosts(&self) -> Vec<String> {
        self.lock().truth.hosts.keys().cloned().collect()
    }

    /// Control requests received.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    /// The number of the model's latest operation.
    pub fn op(&self) -> u64 {
        self.lock().op
    }

    /// A number that changes whenever what the hosts run changes (hosts, components, providers,
    /// links, configs).
    pub fn truth_version(&self) -> u64 {
        self.lock().version
    }

    /// The operation number carried by a host event's CloudEvent id (`ev-{op}`).
    pub fn op_of_event(id: &str) -> Option<u64> {
        id.strip_prefix("ev-")?.parse().ok()
    }

    /// Every control request received, in order.
    pub fn request_log(&self) -> Vec<ReceivedRequest> {
        self.lock().log.clone()
    }

    /// Look at the request log without copying it.
    pub fn inspect_requests<R>(&self, f: impl FnOnce(&[ReceivedRequest]) -> R) -> R {
        f(&self.lock().log)
    }

    /// The control requests received from index `from` of the log on.
    pub fn request_log_from(&self, from: usize) -> Vec<ReceivedRequest> {
        let inner = self.lock();
        inner.log.get(from..).map(<[_]>::to_vec).unwrap_or_default()
    }

    /// Entry `index` of the request log (a late execution fills in `applied` afterwards).
    pub fn request_at(&self, index: usize) -> Option<ReceivedRequest> {
        self.lock().log.get(index).cloned()
    }

    /// How many control requests the log holds.
    pub fn request_log_len(&self) -> usize {
        self.lock().log.len()
    }

    /// The control requests host `host` received (for lattice-wide ones: answered), in order.
    pub fn requests_on(&self, host: &str) -> Vec<ReceivedRequest> {
        self.lock().log.iter().filter(|r| r.host == host).cloned().collect()
    }

    /// Whether what `slot` runs changed (or its host went away) at an operation strictly
    /// between `after` and `before`.
    pub fn changed_between(&self, slot: &Slot, after: u64, before: u64) -> bool {
        let inner = self.lock();
        let within = |ops: Option<&Vec<u64>>| {
            ops.is_some_and(|ops| ops.iter().any(|op| *op > after && *op < before))
        };
        within(inner.changes.get(slot))
            || slot.host().is_some_and(|h| within(inner.removals.get(h)))
    }

    /// Counts of the faults injected so far.
    pub fn fault_counts(&self) -> FaultCounts {
        self.lock().counts
    }

    /// Total instances of `component` across hosts.
    pub fn instances(&self, component: &str) -> u32 {
        let inner = self.lock();
        inner
            .truth
            .hosts
            .values()
            .filter_map(|h| h.components.get(component))
            .map(|c| c.count)
            .sum()
    }

    /// From now on, scaling `component` fails with `message` (reported as
    /// `component_scale_failed`); `None` heals it.
    pub fn fail_component(&self, component: &str, message: Option<&str>) {
        let mut inner = self.lock();
        match message {
            Some(m) => inner.failing_components.insert(component.to_string(), m.to_string()),
            None => inner.failing_components.remove(component),
        };
    }

    /// While set, every control request times out.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.lock().unreachable = unreachable;
    }

    /// How the hosts answer from now on.
    pub fn set_behaviour(&self, behaviour: HostBehaviour) {
        self.lock().behaviour = behaviour;
    }

    /// The faults injected from now on (events and requests already held back still come).
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Seed the generator of faults and responders.
    pub fn set_seed(&self, seed: u64) {
        self.lock().rng = SeededRandom::new(seed);
    }

    /// Start a host: it announces itself with `host_started` and a heartbeat.
    pub async fn add_host(&self, id: &str, labels: StringMap) {
        self.add_host_quietly(id, labels.clone());
        let started = serde_json::json!({"friendly_name": format!("host-{id}"), "labels": labels, "version": "1.9.2"});
        self.emit(id, "host_started", started).await;
        self.heartbeat(id).await;
    }

    /// A host that runs but whose announcements were lost (only discovery finds it).
    pub fn add_host_quietly(&self, id: &str, labels: StringMap) {
        let mut inner = self.lock();
        let host = HostState {
            id: id.to_string(),
            friendly_name: format!("host-{id}"),
            labels: labels.clone(),
            version: "1.9.2".into(),
            ..HostState::default()
        };
        inner.next_op();
        inner.version += 1;
        inner.heartbeat_dropped.remove(id);
        inner.truth.hosts.insert(id.to_string(), host);
    }

    /// Host `id` dies silently (a killed process publishes nothing): what it ran is gone.
    /// Returns whether it was running.
    pub fn crash_host(&self, id: &str) -> bool {
        let mut inner = self.lock();
        if inner.truth.hosts.remove(id).is_none() {
            return false;
        }
        let op = inner.next_op();
        inner.version += 1;
        inner.removals.entry(id.to_string()).or_default().push(op);
        true
    }

    /// Host `id` stops gracefully: it publishes `host_stopped`, then exits. Returns whether it
    /// was running.
    pub async fn stop_host(&self, id: &str) -> bool {
        let Some(labels) = self.lock().truth.hosts.get(id).map(|h| h.labels.clone()) else {
            return false;
        };
        self.emit(id, "host_stopped", serde_json::json!({ "labels": labels })).await;
        self.crash_host(id)
    }

    /// Something outside wadm stops `component` on host `id` (the host reports it scaled to 0).
    pub async fn stop_component(&self, id: &str, component: &str) {
        let removed = {
            let mut inner = self.lock();
            let removed =
                inner.truth.hosts.get_mut(id).and_then(|h| h.components.remove(component));
            if removed.is_some() {
                let op = inner.next_op();
                let slot = Slot::Component { host: id.into(), component: component.into() };
                inner.record_change(slot, op);
            }
            removed
        };
        let Some(removed) = removed else { return };
        let data = serde_json::json!({
            "component_id": component, "host_id": id, "image_ref": removed.image_ref,
            "max_instances": 0, "annotations": removed.annotations,
        });
        self.emit(id, "component_scaled", data).await;
    }

    /// Something outside wadm runs `count` instances of `component` (no wadm annotations) on
    /// host `id`, which reports it scaled.
    pub async fn run_outside_wadm(&self, id: &str, component: &str, image: &str, count: u32) {
        let instance = wadm_lattice::ComponentInstance {
            id: component.to_string(),
            image_ref: image.to_string(),
            count,
            annotations: StringMap::new(),
            since: 0,
        };
        {
            let mut inner = self.lock();
            let Some(host) = inner.truth.hosts.get_mut(id) else { return };
            host.components.insert(component.to_string(), instance);
            let op = inner.next_op();
            let slot = Slot::Component { host: id.into(), component: component.into() };
            inner.record_change(slot, op);
        }
        let data = serde_json::json!({
            "component_id": component, "host_id": id, "image_ref": image,
            "max_instances": count, "annotations": {},
        });
        self.emit(id, "component_scaled", data).await;
    }

    /// Something outside wadm puts `link`, and host `source` (any id, known or not) answers.
    pub async fn put_link_answered_by(&self, source: &str, link: Link) {
        {
            let mut inner = self.lock();
            inner.truth.links.insert(link.key(), link.clone());
            let op = inner.next_op();
            inner.record_change(Slot::Link(link.key()), op);
        }
        self.emit(source, "linkdef_set", to_json(&link)).await;
    }

    /// Every host sends a heartbeat.
    pub async fn heartbeat_all(&self) {
        let hosts: Vec<String> = self.lock().truth.hosts.keys().cloned().collect();
        for host in hosts {
            self.heartbeat(&host).await;
        }
    }

    /// One host sends a heartbeat (its full inventory).
    pub async fn heartbeat(&self, id: &str) {
        let Some(host) = self.lock().truth.hosts.get(id).cloned() else { return };
        let inventory = inventory_of(&host);
        self.emit(id, "host_heartbeat", to_json(&inventory)).await;
    }

    /// The earliest instant a held-back event or a late execution is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        let inner = self.lock();
        let held = inner.held.iter().map(|h| h.at);
        held.chain(inner.late.iter().map(|l| l.at)).min()
    }

    /// Publish the held-back events and run the late executions that are due now, in order of
    /// their due time. Returns how many there were.
    pub async fn release_due(&self) -> usize {
        let mut done = 0;
        loop {
            let now = self.clock.now();
            enum Due {
                Event(Outgoing),
                Execute(usize),
            }
            let due = {
                let mut inner = self.lock();
                let event = inner
                    .held
                    .iter()
                    .enumerate()
                    .filter(|(_, h)| h.at <= now)
                    .min_by_key(|(_, h)| (h.at, h.order))
                    .map(|(i, h)| (h.at, h.order, i));
                let late = inner
                    .late
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.at <= now)
                    .min_by_key(|(_, l)| (l.at, l.order))
                    .map(|(i, l)| (l.at, l.order, i));
                match (event, late) {
                    (Some(e), Some(l)) if (l.0, l.1) < (e.0, e.1) => {
                        Some(Due::Execute(inner.late.remove(l.2).index))
                    }
                    (Some(e), _) => Some(Due::Event(inner.held.remove(e.2).outgoing)),
                    (None, Some(l)) => Some(Due::Execute(inner.late.remove(l.2).index)),
                    (None, None) => None,
                }
            };
            match due {
                None => return done,
                Some(Due::Event(outgoing)) => {
                    // The in-memory log never fails.
                    let _ = self.events.publish(outgoing).await;
                }
                Some(Due::Execute(index)) => self.execute_logged(index).await,
            }
            done += 1;
        }
    }

    async fn emit(&self, source: &str, short: &str, data: serde_json::Value) {
        enum Fate {
            Drop,
            Publish { delay: Option<u64>, copy: Option<Option<u64>> },
        }
        let (lattice, n, fate) = {
            let mut inner = self.lock();
            let n = inner.next_op();
            let faults = inner.faults;
            let heartbeat = short == "host_heartbeat";
            let spared = heartbeat && inner.heartbeat_dropped.contains(source);
            let fate = if inner.roll(faults.drop_event) && !spared {
                inner.counts.events_dropped += 1;
                if heartbeat {
                    inner.heartbeat_dropped.insert(source.to_string());
                }
                Fate::Drop
            } else {
                if heartbeat {
                    inner.heartbeat_dropped.remove(source);
                }
                let mut delay = || {
                    inner.roll(faults.delay_event).then(|| {
                        inner.counts.events_delayed += 1;
                        inner.delay(faults.max_event_delay)
                    })
                };
                let first = delay();
                let copy = if inner.roll(faults.duplicate_event) {
                    inner.counts.events_duplicated += 1;
                    let mut delay = || {
                        inner.roll(faults.delay_event).then(|| inner.delay(faults.max_event_delay))
                    };
                    Some(delay())
                } else {
                    None
                };
                Fate::Publish { delay: first, copy }
            };
            (inner.truth.lattice.clone(), n, fate)
        };
        let Fate::Publish { delay, copy } = fate else { return };
        let now = self.clock.now();
        let time = DateTime::from_timestamp_millis(now as i64)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default();
        let id = format!("ev-{n:012}");
        let event = CloudEvent::host_event(short, id.clone(), source, time, data);
        let outgoing = Outgoing {
            subject: wadm_protocol::subject::event(&lattice, short),
            payload: serde_json::to_vec(&event).unwrap_or_default(),
            msg_id: id.clone(),
            ttl: None,
        };
        let copy = copy.map(|d| (Outgoing { msg_id: format!("{id}.copy"), ..outgoing.clone() }, d));
        for (outgoing, delay) in std::iter::once((outgoing, delay)).chain(copy) {
            match delay {
                None => {
                    // The in-memory log never fails.
                    let _ = self.events.publish(outgoing).await;
                }
                Some(ms) => {
                    let mut inner = self.lock();
                    let order = inner.next_op();
                    inner.held.push(Held { at: now.saturating_add(ms), order, outgoing });
                }
            }
        }
    }

    fn decode(suffix: &[&str], body: &[u8]) -> Option<Command> {
        fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
            serde_json::from_slice(body).ok()
        }
        Some(match suffix {
            ["component", "scale", _] => {
                Command::ScaleComponent(json::<ScaleComponentRequest>(body)?)
            }
            ["component", "update", _] => {
                Command::UpdateComponent(json::<UpdateComponentRequest>(body)?)
            }
            ["provider", "start", _] => Command::StartProvider(json::<StartProviderRequest>(body)?),
            ["provider", "stop", _] => Command::StopProvider(json::<StopProviderRequest>(body)?),
            ["link", "put"] => Command::PutLink(json::<Link>(body)?),
            ["link", "del"] => Command::DeleteLink(json::<DeleteLinkRequest>(body)?),
            ["config", "put", name] => {
                Command::PutConfig { name: name.to_string(), values: json(body)? }
            }
            ["config", "del", name] => Command::DeleteConfig { name: name.to_string() },
            _ => return None,
        })
    }

    /// Run the late executions queued for `queue` (a host handles requests in order: what it
    /// received before is done before the next one).
    async fn run_queued(&self, queue: &str) {
        loop {
            let next = {
                let mut inner = self.lock();
                let found = inner
                    .late
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.queue == queue)
                    .min_by_key(|(_, l)| l.order)
                    .map(|(i, _)| i);
                found.map(|i| inner.late.remove(i).index)
            };
            let Some(index) = next else { return };
            self.execute_logged(index).await;
        }
    }

    /// Execute the logged request `index` (a late reply's execution).
    async fn execute_logged(&self, index: usize) {
        let Some(request) = self.request_at(index) else { return };
        let responder = {
            let mut inner = self.lock();
            let target = request.command().and_then(|c| c.target_host().map(str::to_string));
            match target {
                Some(host) => inner.truth.hosts.contains_key(&host).then_some(host),
                None => inner.responder(),
            }
        };
        // A host that is gone does nothing; a lattice-wide request with nobody to run it is lost.
        let Some(responder) = responder else { return };
        let tokens: Vec<&str> = request.subject.split('.').collect();
        self.execute(index, &tokens, &request.body, &responder).await;
    }

    /// Do what request `index` asks (the subject `tokens`, `body`), answered by `responder`
    /// for lattice-wide requests; record when its effect was applied. Returns the reply.
    async fn execute(
        &self,
        index: usize,
        tokens: &[&str],
        body: &[u8],
        responder: &str,
    ) -> CtlReply {
        if let [_, _, _, _, "config", "get", name] = tokens {
            let values = self.lock().truth.configs.get(*name).and_then(|c| c.values.clone());
            return match values {
                Some(values) => CtlReply::with(to_json(&values)),
                None => CtlReply { message: "Configuration not found".into(), ..CtlReply::ok() },
            };
        }
        if let [_, _, _, _, "host", "get", host] = tokens {
            return match self.lock().truth.hosts.get(*host) {
                Some(h) => CtlReply::with(to_json(&inventory_of(h))),
                None => CtlReply::error(format!("no host {host}")),
            };
        }
        let Some(command) = tokens.get(4..).and_then(|suffix| Self::decode(suffix, body)) else {
            return CtlReply::error(format!("unknown request {}", tokens.join(".")));
        };
        if let Command::ScaleComponent(r) = &command {
            let failing = self.lock().failing_components.get(&*r.component_id).cloned();
            if let Some(error) = failing {
                let mut data = to_json(r);
                data["max_instances"] = r.count.into();
                data["image_ref"] = r.component_ref.to_string().into();
                data["error"] = error.into();
                self.emit(&r.host_id, "component_scale_failed", data).await;
                return CtlReply::ok();
            }
        }
        let slot = Slot::of(&command);
        let (accepted, behaviour, before) = {
            let mut inner = self.lock();
            let before = slot_value(&inner.truth, &slot);
            let accepted = apply_command(&mut inner.truth, &command);
            let op = inner.next_op();
            if accepted {
                if slot_value(&inner.truth, &slot) != before {
                    inner.record_change(slot.clone(), op);
                }
                if let Some(entry) = inner.log.get_mut(index) {
                    entry.applied = Some(op);
                }
            }
            (accepted, inner.behaviour, before)
        };
        if !accepted {
            // The hosts' own words for the refusals of protocol gotcha 8.
            let message = match &command {
                Command::StartProvider(r) => {
                    format!("provider {} is already running on host {}", r.provider_id, r.host_id)
                }
                Command::StopProvider(r) => {
                    format!("provider {} is not running on host {}", r.provider_id, r.host_id)
                }
                other => format!("{} refused", other.kind()),
            };
            return CtlReply::error(message);
        }
        match &command {
            Command::PutLink(link) => self.emit(responder, "linkdef_set", to_json(link)).await,
            Command::DeleteLink(r) => self.emit(responder, "linkdef_deleted", to_json(r)).await,
            Command::PutConfig { name, .. } | Command::DeleteConfig { name } => {
                let short = if matches!(command, Command::PutConfig { .. }) {
                    "config_set"
                } else {
                    "config_deleted"
                };
                self.emit(responder, short, serde_json::json!({ "config_name": name })).await;
            }
            other if behaviour.confirm_with_events => {
                self.confirm(other, &slot, before, behaviour).await;
            }
            other => {
                if let Some(host) = other.target_host() {
                    self.heartbeat(host).await;
                }
            }
        }
        CtlReply::ok()
    }

    /// The events a real host publishes once it did what `command` asked (`before`: what the
    /// slot ran before).
    async fn confirm(
        &self,
        command: &Command,
        slot: &Slot,
        before: SlotValue,
        behaviour: HostBehaviour,
    ) {
        let after = {
            let inner = self.lock();
            slot_value(&inner.truth, slot)
        };
        match (command, after) {
            (Command::ScaleComponent(r), SlotValue::Component(now)) => {
                let (image, annotations) = match &now {
                    Some(c) => (c.image_ref.clone(), c.annotations.clone()),
                    None => (r.component_ref.to_string(), (*r.annotations).clone()),
                };
                let data = serde_json::json!({
                    "component_id": r.component_id, "host_id": r.host_id, "image_ref": image,
                    "max_instances": now.as_ref().map_or(0, |c| c.count),
                    "annotations": annotations,
                });
                let first_start = matches!(before, SlotValue::Component(None)) && now.is_some();
                let times = if first_start && behaviour.double_first_start { 2 } else { 1 };
                for _ in 0..times {
                    self.emit(&r.host_id, "component_scaled", data.clone()).await;
                }
            }
            (Command::UpdateComponent(r), SlotValue::Component(Some(c))) => {
                let mut data = serde_json::json!({
                    "component_id": r.component_id, "host_id": r.host_id,
                    "image_ref": c.image_ref, "max_instances": c.count,
                    "annotations": c.annotations,
                });
                self.emit(&r.host_id, "component_scaled", data.clone()).await;
                if behaviour.update_echo {
                    data["max_instances"] = 0.into();
                    self.emit(&r.host_id, "component_scaled", data).await;
                }
            }
            (Command::StartProvider(r), SlotValue::Provider(Some(p))) => {
                let data = serde_json::json!({
                    "provider_id": r.provider_id, "host_id": r.host_id,
                    "image_ref": p.image_ref, "annotations": p.annotations,
                });
                self.emit(&r.host_id, "provider_started", data).await;
            }
            (Command::StopProvider(r), _) => {
                let annotations = match before {
                    SlotValue::Provider(Some(p)) => p.annotations,
                    _ => StringMap::new(),
                };
                let data = serde_json::json!({
                    "provider_id": r.provider_id, "host_id": r.host_id,
                    "annotations": annotations, "reason": "stop requested",
                });
                self.emit(&r.host_id, "provider_stopped", data).await;
            }
            (other, _) => {
                if let Some(host) = other.target_host() {
                    self.heartbeat(host).await;
                }
            }
        }
    }
}

impl ControlClient for MemoryLattice {
    async fn notify(&self, subject: &str, payload: Vec<u8>) -> Result<(), IoError> {
        let value = serde_json::from_slice(&payload).unwrap_or_default();
        self.lock().notified.push((subject.to_string(), value));
        Ok(())
    }

    async fn request(
        &self,
        subject: &str,
        body: Vec<u8>,
        _timeout: Duration,
    ) -> Result<Vec<u8>, IoError> {
        let reply = |r: CtlReply| serde_json::to_vec(&r).unwrap_or_default();
        let tokens: Vec<&str> = subject.split('.').collect();
        let command = tokens.get(4..).and_then(|suffix| Self::decode(suffix, &body));
        enum Fate {
            Lost,
            NoResponders,
            Late(u64),
            Now(String),
        }
        let (index, fate, queue) = {
            let mut inner = self.lock();
            inner.requests += 1;
            let op = inner.next_op();
            let asked_host = match tokens.get(4..) {
                Some(["host", "get", host]) => Some(host.to_string()),
                _ => None,
            };
            let target = command.as_ref().and_then(|c| c.target_host().map(str::to_string));
            let target = target.or(asked_host);
            let responder = match &target {
                Some(host) => inner.truth.hosts.contains_key(host).then(|| host.clone()),
                None => inner.responder(),
            };
            let faults = inner.faults;
            let fate = if inner.unreachable {
                Fate::Lost
            } else if responder.is_none() && inner.behaviour.no_responders {
                inner.counts.no_responders += 1;
                Fate::NoResponders
            } else if inner.roll(faults.lose_request) {
                inner.counts.requests_lost += 1;
                Fate::Lost
            } else if inner.roll(faults.late_reply) {
                inner.counts.late_replies += 1;
                // 0 ms: executed at once, only the reply is lost.
                let max = faults.max_late_execution.as_millis() as u64;
                Fate::Late(if max == 0 { 0 } else { inner.rng.next_u64() % (max + 1) })
            } else {
                Fate::Now(responder.clone().unwrap_or_default())
            };
            let host = target.clone().or(responder).unwrap_or_default();
            let (reply, late) = match fate {
                Fate::Lost => (Reply::TimedOut, false),
                Fate::NoResponders => (Reply::NoResponders, false),
                Fate::Late(_) => (Reply::TimedOut, true),
                Fate::Now(_) => (Reply::Success, false),
            };
            inner.log.push(ReceivedRequest {
                host,
                subject: subject.to_string(),
                body: body.clone(),
                at: self.clock.now(),
                op,
                reply,
                applied: None,
                late,
            });
            (inner.log.len() - 1, fate, target.unwrap_or_default())
        };
        match fate {
            Fate::Lost => Err(IoError::Timeout { what: subject.to_string() }),
            Fate::NoResponders => Err(IoError::NoResponders { what: subject.to_string() }),
            Fate::Late(0) => {
                self.run_queued(&queue).await;
                self.execute_logged(index).await;
                Err(IoError::Timeout { what: subject.to_string() })
            }
            Fate::Late(ms) => {
                let mut inner = self.lock();
                let order = inner.next_op();
                // In order: never before what the same host received earlier.
                let queued = inner.late.iter().filter(|l| l.queue == queue).map(|l| l.at).max();
                let at = self.clock.now().saturating_add(ms).max(queued.unwrap_or(0));
                inner.late.push(LateExecution { at, order, index, queue });
                Err(IoError::Timeout { what: subject.to_string() })
            }
            Fate::Now(responder) => {
                self.run_queued(&queue).await;
                let answer = self.execute(index, &tokens, &body, &responder).await;
                if !answer.success
                    && let Some(entry) = self.lock().log.get_mut(index)
                {
                    entry.reply = Reply::Refused(answer.message.clone());
                }
                Ok(reply(answer))
            }
        }
    }
}

impl crate::io::Discoverer for MemoryLattice {
    async fn discover(
        &self,
        _lattice: &str,
        started_at: wadm_lattice::Timestamp,
    ) -> Result<wadm_lattice::Discovery, IoError> {
        let truth = self.truth();
        let hosts = truth
            .hosts
            .values()
            .map(|h| wadm_lattice::DiscoveredHost {
                host: wadm_protocol::Host {
                    id: h.id.clone(),
                    friendly_name: h.friendly_name.clone(),
                    labels: h.labels.clone(),
                    lattice: truth.lattice.clone(),
                    version: h.version.clone(),
                    ..Default::default()
                },
                inventory: Some(inventory_of(h)),
            })
            .collect();
        Ok(wadm_lattice::Discovery {
            started_at,
            hosts,
            links: Some(truth.links.values().cloned().collect()),
            configs: Default::default(),
        })
    }
}

/// A host's inventory (heartbeat payload) from the model.
fn inventory_of(host: &HostState) -> HostInventory {
    HostInventory {
        host_id: host.id.clone(),
        friendly_name: host.friendly_name.clone(),
        labels: host.labels.clone(),
        version: host.version.clone(),
        uptime_seconds: 0,
        uptime_human: String::new(),
        components: host
            .components
            .values()
            .map(|c| ComponentDescription {
                id: c.id.clone(),
                image_ref: c.image_ref.clone(),
                name: None,
                annotations: c.annotations.clone(),
                revision: 0,
                max_instances: c.count,
                limits: None,
            })
            .collect(),
        providers: host
            .providers
            .values()
            .map(|p| ProviderDescription {
                id: p.id.clone(),
                image_ref: p.image_ref.clone(),
                name: None,
                annotations: p.annotations.clone(),
                revision: 0,
            })
            .collect(),
    }
}
