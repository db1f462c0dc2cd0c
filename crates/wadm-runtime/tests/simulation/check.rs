//! The invariants, checked from the world's truth (what the model hosts run, the request log,
//! the statuses written) — never from wadm's own opinion (its record). See the doc comment of
//! `tests/simulation.rs` for their precise definitions.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use wadm_lattice::Timestamp;
use wadm_model::StatusType;
use wadm_model::names::component_id;
use wadm_protocol::{Link, LinkKey};
use wadm_runtime::intents::Slot;
use wadm_runtime::memory::{MemoryLattice, ReceivedRequest, Reply};

use super::scenario::Scenario;
use super::world::{Applied, LATTICE, World};

/// An invariant that failed.
#[derive(Debug, Clone)]
pub struct Violation {
    pub invariant: &'static str,
    pub message: String,
}

fn violation(invariant: &'static str, message: String) -> Violation {
    Violation { invariant, message }
}

/// What a command starts: the component or provider id and how many instances.
fn started_by(command: &wadm_scheduler::Command) -> Option<(String, u32)> {
    match command {
        wadm_scheduler::Command::ScaleComponent(r) => Some((r.component_id.to_string(), r.count)),
        wadm_scheduler::Command::StartProvider(r) => Some((r.provider_id.to_string(), 1)),
        _ => None,
    }
}

/// Allowances for known bugs of wadm, one per failing check, each as narrow as the bug (see
/// the test's doc comment and `docs/simulation.md`). `WADM_SIM_STRICT=1` turns them all off.
#[derive(Debug, Clone, Copy)]
pub struct Switches {
    /// (a), moves: wadm moves instances (a spread rebalanced onto a host that joined, a
    /// provider whose image changed) make-before-break: the start on one host and the stop on
    /// another are independent orders executed in any order, and the stop may be held behind
    /// another order on its slot, or an order made obsolete by the new placement is still
    /// retried and executed. Excess up to what the move's targets run — hosts that joined the
    /// lattice in the last [`OVERSHOOT_LIMIT`], and for a provider running several images all
    /// but its largest image group — is let pass for [`OVERSHOOT_LIMIT`].
    pub allow_make_before_break_moves: bool,
    /// (a), update echoes: the `component.update` echo (`component_scaled(new, 0)`) is applied
    /// as a loss when it comes in the same batch as the update's `component_scaled(new, n)`
    /// (the update's order is confirmed only after the whole batch, and an order on the slot
    /// disables echo detection) or after that event was lost or delayed; the component is
    /// placed again while it still runs. Excess up to what wadm was told had stopped while it
    /// ran (a `component_scaled(.., 0)` applied while the host ran it) is let pass for
    /// [`OVERSHOOT_LIMIT`].
    pub allow_echo_taken_for_loss: bool,
    /// (a), stale orders: a command whose replica died after sending it is redelivered after
    /// the ack wait and sent again although a later order changed its slot since (the executor
    /// checks only TTL and generation), or a start answered late is executed by its host after
    /// a newer deploy superseded it and wadm, planning around the pending order, kept another
    /// instance instead of stopping it. Excess up to what such an order started is let pass
    /// for [`OVERSHOOT_LIMIT`].
    pub allow_stale_redelivery: bool,
    /// (c): a request to a host that crashed (before its lease ran out) gets "no responders";
    /// the executor retries it as if unanswered, gives up and reports the application failed.
    /// An application may show `failed` when a request of its orders got "no responders" and
    /// the status names it.
    pub allow_failed_after_no_responders: bool,
    /// (d), configs: a later unanswered `config.get` keeps the config's *previous* values
    /// (`step::config_values` ignores `None`), so wadm believes the lattice holds values it no
    /// longer does, and a rollback to those values is never put. Let pass at convergence: a
    /// config whose values differ when no `config.get` of it was answered since its last put.
    pub allow_stale_config_values: bool,
    /// (c) and (d), links and configs: wadm learns configs only from `config_set` /
    /// `config_deleted` events (discovery rounds read no configs), so a lost event is never
    /// corrected; and a link or config of an application undeployed before wadm saw its put is
    /// not removed (a discovery round may find the link later, but the application is
    /// forgotten by then). Let pass at convergence: a link or config nobody wants when no event
    /// about it was applied between its last put and the undeploy, or (configs) since its last
    /// put. A lost or late `config_deleted` (undeploy, then deploy again): wadm believes a
    /// deleted config exists, so a redeploy does not put it back first (a lost event: never),
    /// and the scale or link naming it is refused (`failed`). An application using a config the
    /// lattice lost to a `config.del` may be `failed`, and is left out of the convergence check
    /// when wadm never saw that deletion.
    pub allow_lost_link_and_config_events: bool,
}

/// How long an overshoot may last under the (a) allowances of [`Switches`]: an order's
/// lifetime (70 s) plus a heartbeat interval (30 s).
pub const OVERSHOOT_LIMIT: u64 = 100_000;

impl Switches {
    /// Every invariant at full strength.
    pub fn strict() -> Self {
        Self {
            allow_make_before_break_moves: false,
            allow_echo_taken_for_loss: false,
            allow_stale_redelivery: false,
            allow_failed_after_no_responders: false,
            allow_stale_config_values: false,
            allow_lost_link_and_config_events: false,
        }
    }
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            // Fixed: a step admits its removals first, and an addition of a component or
            // provider waits while a removal of it in flight has not shown (intents.rs).
            allow_make_before_break_moves: false,
            // Fixed: a zero with the image of an update in flight, or within the echo window
            // of a confirmed one (however often the host echoes), is the echo (intents.rs).
            allow_echo_taken_for_loss: false,
            // Fixed: the executor drops a command whose order is no longer in the lattice head's
            // orders in flight, and a scale down / stop takes back a start in flight on its slot.
            allow_stale_redelivery: false,
            // Fixed: a command nobody receives is dropped, not a failure (executor.rs).
            allow_failed_after_no_responders: false,
            allow_stale_config_values: true,
            allow_lost_link_and_config_events: true,
        }
    }
}

/// An overshoot let pass: since when.
#[derive(Debug, Clone)]
struct Overshoot {
    since: Timestamp,
}

/// A control request with an effect that the hosts executed (or will: a late reply).
#[derive(Debug, Clone)]
struct Sent {
    index: usize,
    msg_id: Option<String>,
    issued_at: Option<Timestamp>,
    applied: Option<u64>,
    late: bool,
    slot: Slot,
}

/// Counts for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub requests: u64,
    /// Requests with the same effect as an earlier executed one (all allowed ones).
    pub repeats: u64,
    /// ... of which redeliveries of the same order.
    pub redeliveries: u64,
    pub statuses_failed_injected: u64,
    /// Checks passed only thanks to a known-bug allowance ([`Switches`]); overshoots by what
    /// they were attributed to (one check may count for several).
    pub allowed_overshoots: u64,
    pub overshoots_moves: u64,
    pub overshoots_echoes: u64,
    pub overshoots_stale: u64,
    /// The longest allowed overshoot (ms).
    pub longest_overshoot: u64,
    pub allowed_failed_no_responders: u64,
    pub allowed_failed_unobserved_config: u64,
    /// Configs at convergence whose values differ or that nobody wants, let pass.
    pub allowed_config_drift: u64,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    data: serde_json::Value,
}

#[derive(Deserialize)]
struct HeartbeatEnvelope {
    id: String,
    #[serde(default)]
    source: String,
}

pub struct Checker {
    pub switches: Switches,
    order_lifetime: u64,
    /// The version of each application deployed now (`None`: not deployed).
    pub deployed: Vec<Option<usize>>,
    /// When each application's deployment last changed.
    changed_at: Vec<Timestamp>,
    /// Requests answered late whose execution is still to come: (log index, id it starts,
    /// instances).
    late_starts: Vec<(usize, String, u32)>,
    /// Per component or provider id, the most instances allowed to run now.
    allowed: BTreeMap<String, u32>,
    /// Per component or provider id, its application.
    owner: BTreeMap<String, usize>,
    /// Per application and version: per id, the instances and the image (as hosts report it).
    wants: Vec<Vec<BTreeMap<String, (u32, String)>>>,
    /// Applications a real failure was injected into.
    pub failing: BTreeSet<usize>,
    /// Links and configs of applications undeployed before wadm applied an event about them
    /// since their last put.
    unseen_at_undeploy: BTreeSet<Slot>,
    /// Per application, the failure (message without the backoff note) excused because a
    /// config it uses was deleted under it.
    excused_failures: BTreeMap<usize, String>,
    /// Applications an order of which got "no responders".
    no_responders: BTreeSet<String>,
    /// Hosts that joined the lattice during the scenario, and when.
    joined: BTreeMap<String, Timestamp>,
    overshoots: BTreeMap<String, Overshoot>,
    /// Per component id and host: when wadm last applied a `component_scaled(.., 0)` from the
    /// host while it ran the component, and how many it ran.
    phantom_losses: BTreeMap<(String, String), (Timestamp, u32)>,
    /// Per component or provider id: when a redelivered order was last sent again after its
    /// slot changed, and how many it starts.
    stale_replays: BTreeMap<String, (Timestamp, u32)>,
    cursor: usize,
    sent: BTreeMap<(String, Vec<u8>), Vec<Sent>>,
    observed_slot: BTreeMap<Slot, u64>,
    observed_host: BTreeMap<String, u64>,
    observed_all: u64,
    failed_orders: BTreeSet<String>,
    /// Discovery rounds by start time: the lattice's operation number when taken.
    rounds: BTreeMap<Timestamp, u64>,
    pub stats: Stats,
}

impl Checker {
    pub fn new(scenario: &Scenario, order_lifetime: u64, switches: Switches) -> Self {
        let mut owner = BTreeMap::new();
        let mut wants = Vec::new();
        for (i, app) in scenario.apps.iter().enumerate() {
            let mut versions = Vec::new();
            for v in &app.versions {
                let mut want = BTreeMap::new();
                for w in &v.workloads {
                    let id = component_id(&app.name, &w.name);
                    owner.insert(id.clone(), i);
                    let image = wadm_protocol::normalize_provider_ref(&w.image).to_string();
                    want.insert(id, (w.instances, image));
                }
                versions.push(want);
            }
            wants.push(versions);
        }
        Self {
            switches,
            order_lifetime,
            deployed: vec![None; scenario.apps.len()],
            changed_at: vec![0; scenario.apps.len()],
            late_starts: Vec::new(),
            allowed: BTreeMap::new(),
            owner,
            wants,
            failing: BTreeSet::new(),
            no_responders: BTreeSet::new(),
            excused_failures: BTreeMap::new(),
            unseen_at_undeploy: BTreeSet::new(),
            joined: BTreeMap::new(),
            overshoots: BTreeMap::new(),
            phantom_losses: BTreeMap::new(),
            stale_replays: BTreeMap::new(),
            cursor: 0,
            sent: BTreeMap::new(),
            observed_slot: BTreeMap::new(),
            observed_host: BTreeMap::new(),
            observed_all: 0,
            failed_orders: BTreeSet::new(),
            rounds: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    /// Application `app` is now deployed at `version` (`None`: undeployed). While a change
    /// rolls out, up to the old and the new target may run.
    pub fn note_deployed(
        &mut self,
        scenario: &Scenario,
        app: usize,
        version: Option<usize>,
        now: Timestamp,
    ) {
        self.deployed[app] = version;
        self.changed_at[app] = now;
        let spec = &scenario.apps[app];
        if let Some(v) = version {
            for (id, n) in spec.versions[v].targets(&spec.name) {
                let allowed = self.allowed.entry(id).or_default();
                *allowed = (*allowed).max(n);
            }
        }
    }

    /// Application `app` is being undeployed now: note its links and configs wadm has not seen
    /// (no event applied about them since their last put).
    pub fn note_undeploying(&mut self, scenario: &Scenario, app: usize, world: &World) {
        let Some(v) = self.deployed[app] else { return };
        let spec = &scenario.apps[app];
        let version = &spec.versions[v];
        let mut slots: Vec<(Slot, String, Option<LinkKey>)> = Vec::new();
        for link in version.lattice_links(&spec.name) {
            let put = format!("wasmbus.ctl.v1.{LATTICE}.link.put");
            slots.push((Slot::Link(link.key()), put, Some(link.key())));
        }
        for name in version.owned_configs(&spec.name).into_keys() {
            let put = format!("wasmbus.ctl.v1.{LATTICE}.config.put.{name}");
            slots.push((Slot::Config(name), put, None));
        }
        for (slot, put, key) in slots {
            let last_put = world.lattice.inspect_requests(|log| {
                let is_put = |r: &ReceivedRequest| {
                    r.subject == put
                        && r.applied.is_some()
                        && key.as_ref().is_none_or(|k| {
                            serde_json::from_slice::<Link>(&r.body).is_ok_and(|l| l.key() == *k)
                        })
                };
                log.iter().rev().find(|r| is_put(r)).and_then(|r| r.applied)
            });
            let Some(op) = last_put else { continue };
            if self.observed_slot.get(&slot).is_none_or(|o| *o < op) {
                self.unseen_at_undeploy.insert(slot);
            }
        }
    }

    /// Host `id` joined the lattice now (after the scenario began).
    pub fn note_joined(&mut self, id: &str, now: Timestamp) {
        self.joined.insert(id.to_string(), now);
    }

    /// A discovery round is taken now, at the lattice's operation `op`.
    pub fn note_round(&mut self, started_at: Timestamp, op: u64) {
        let known = self.rounds.entry(started_at).or_insert(op);
        *known = (*known).min(op);
    }

    /// The instances of `id` wanted now (`None`: no application has it).
    fn target(&self, id: &str) -> Option<u32> {
        let app = *self.owner.get(id)?;
        let Some(v) = self.deployed[app] else { return Some(0) };
        Some(self.wants[app][v].get(id).map_or(0, |w| w.0))
    }

    /// (a) Per component and provider, the instances running across hosts never exceed the
    /// target (during a change: the old or the new target, whichever is higher, until the
    /// running count first reaches the new target).
    pub fn check_counts(&mut self, world: &World) -> Result<(), Violation> {
        let now = world.now();
        // Per id: per host, the instances it runs.
        let running = world.lattice.inspect(|truth| {
            let mut running: BTreeMap<String, BTreeMap<String, (u32, String)>> = BTreeMap::new();
            for host in truth.hosts.values() {
                for c in host.components.values() {
                    let on = running.entry(c.id.clone()).or_default();
                    on.insert(host.id.clone(), (c.count, c.image_ref.clone()));
                }
                for p in host.providers.values() {
                    let on = running.entry(p.id.clone()).or_default();
                    on.insert(host.id.clone(), (1, p.image_ref.clone()));
                }
            }
            running
        });
        let mut result = Ok(());
        for (id, on) in &running {
            let count: u32 = on.values().map(|(n, _)| n).sum();
            let Some(target) = self.target(id) else {
                result =
                    Err(violation("a: never above target", format!("{id} runs and no app has it")));
                break;
            };
            let allowed = self.allowed.get(id).copied().unwrap_or(0).max(target);
            if count <= allowed {
                self.overshoots.remove(id);
                continue;
            }
            let recent = |m: &BTreeMap<String, (Timestamp, u32)>, on: bool| {
                let found = m.get(id).filter(|(at, _)| on && now - at <= OVERSHOOT_LIMIT);
                found.map_or(0, |(_, n)| *n)
            };
            let phantom: u32 = if self.switches.allow_echo_taken_for_loss {
                let of_id = self.phantom_losses.range((id.clone(), String::new())..);
                of_id
                    .take_while(|((c, _), _)| c == id)
                    .filter(|(_, (at, _))| now - at <= OVERSHOOT_LIMIT)
                    .map(|(_, (_, n))| n)
                    .sum()
            } else {
                0
            };
            let stale = recent(&self.stale_replays, self.switches.allow_stale_redelivery);
            let fresh: u32 = if self.switches.allow_make_before_break_moves {
                let joined =
                    |h: &String| self.joined.get(h).is_some_and(|at| now - at <= OVERSHOOT_LIMIT);
                let to_new_hosts: u32 =
                    on.iter().filter(|(h, _)| joined(h)).map(|(_, (n, _))| n).sum();
                // A provider running several images is being replaced (maybe for the second
                // time, an update during an update): all but the largest image group may be
                // the move's overlap.
                let mut by_image: BTreeMap<&String, u32> = BTreeMap::new();
                for (n, image) in on.values() {
                    *by_image.entry(image).or_default() += n;
                }
                let largest = by_image.values().copied().max().unwrap_or(0);
                let replacing = if by_image.len() > 1 { count - largest } else { 0 };
                to_new_hosts + replacing
            } else {
                0
            };
            let attributable = fresh + phantom + stale;
            let known = self.overshoots.contains_key(id);
            if known || attributable > 0 {
                let o = self.overshoots.entry(id.clone()).or_insert(Overshoot { since: now });
                let on_fresh = fresh;
                let lasted = now - o.since;
                if count - allowed <= on_fresh + phantom + stale && lasted <= OVERSHOOT_LIMIT {
                    self.stats.allowed_overshoots += 1;
                    self.stats.overshoots_moves += u64::from(on_fresh > 0);
                    self.stats.overshoots_echoes += u64::from(phantom > 0);
                    self.stats.overshoots_stale += u64::from(stale > 0);
                    self.stats.longest_overshoot = self.stats.longest_overshoot.max(lasted);
                    continue;
                }
            }
            let where_: Vec<String> =
                on.iter().map(|(h, (n, image))| format!("{n}x{image} on {h}")).collect();
            let since = self.overshoots.get(id).map(|o| format!(" (over since {})", o.since));
            let message = format!(
                "{id}: {count} running, at most {allowed} allowed (target {target}){}: {}",
                since.unwrap_or_default(),
                where_.join(", ")
            );
            result = Err(violation("a: never above target", message));
            break;
        }
        self.overshoots.retain(|id, _| running.contains_key(id));
        result?;
        let ids: Vec<String> = self.allowed.keys().cloned().collect();
        for id in ids {
            let count = running.get(&id).map_or(0, |on| on.values().map(|(n, _)| n).sum());
            let target = self.target(&id).unwrap_or(0);
            if count <= target {
                self.allowed.insert(id, target);
            }
        }
        Ok(())
    }

    /// (c) No application is `failed` unless a real failure was injected into it.
    pub fn check_statuses(&mut self, scenario: &Scenario, world: &World) -> Result<(), Violation> {
        for (i, app) in scenario.apps.iter().enumerate() {
            let Some(status) = world.status.current(LATTICE, &app.name) else { continue };
            if status.status.status_type != StatusType::Failed {
                continue;
            }
            if self.failing.contains(&i) {
                self.stats.statuses_failed_injected += 1;
                continue;
            }
            if self.switches.allow_failed_after_no_responders
                && self.no_responders.contains(&app.name)
                && status.status.message.contains("no responders")
            {
                self.stats.allowed_failed_no_responders += 1;
                continue;
            }
            // The same failure, still shown while the application backs off, stays excused.
            let core = status.status.message.split(" (retrying").next().unwrap_or_default();
            let excused_before = self.excused_failures.get(&i).is_some_and(|m| m == core);
            if self.switches.allow_lost_link_and_config_events
                && (excused_before || self.uses_deleted_config(scenario, i, world, false))
            {
                self.stats.allowed_failed_unobserved_config += 1;
                self.excused_failures.insert(i, core.to_string());
                continue;
            }
            let message = format!("{} is failed: {}", app.name, status.status.message);
            return Err(violation("c: no transient shown as failed", message));
        }
        Ok(())
    }

    /// Note what the pipeline steps applied since the last call: what wadm has observed.
    /// Returns a line per message for the trace.
    pub fn note_applied(&mut self, applied: Vec<Applied>, world: &World) -> Vec<String> {
        applied.iter().filter_map(|m| self.observe(m, world)).collect()
    }

    fn observe(&mut self, m: &Applied, world: &World) -> Option<String> {
        if let Some(short) = m.subject.strip_prefix(&format!("wasmbus.evt.{LATTICE}.")) {
            if matches!(short, "host_heartbeat" | "host_started" | "host_stopped") {
                let e = serde_json::from_slice::<HeartbeatEnvelope>(&m.payload).ok()?;
                let op = MemoryLattice::op_of_event(&e.id)?;
                let line = format!("  <- {short} {} ({})", e.source, e.id);
                let seen = self.observed_host.entry(e.source).or_default();
                *seen = (*seen).max(op);
                return Some(line);
            }
            let e = serde_json::from_slice::<Envelope>(&m.payload).ok()?;
            let op = MemoryLattice::op_of_event(&e.id)?;
            let text = |field: &str| e.data.get(field).and_then(|v| v.as_str()).unwrap_or("");
            let host =
                if e.source.is_empty() { text("host_id").to_string() } else { e.source.clone() };
            let slot = match short {
                "component_scaled" | "component_scale_failed" => {
                    Slot::Component { host, component: text("component_id").into() }
                }
                "provider_started" | "provider_stopped" | "provider_start_failed" => {
                    Slot::Provider { host, provider: text("provider_id").into() }
                }
                "linkdef_set" | "linkdef_set_failed" | "linkdef_deleted" => Slot::Link(LinkKey {
                    source_id: text("source_id").into(),
                    wit_namespace: text("wit_namespace").into(),
                    wit_package: text("wit_package").into(),
                    name: match text("name") {
                        "" => "default".into(),
                        name => name.into(),
                    },
                }),
                "config_set" | "config_deleted" => Slot::Config(text("config_name").into()),
                _ => return None,
            };
            let what = ["component_id", "provider_id", "source_id", "config_name"]
                .iter()
                .map(|f| text(f))
                .find(|t| !t.is_empty())
                .unwrap_or_default();
            let n = e.data.get("max_instances").map(|n| format!(" x{n}")).unwrap_or_default();
            let line = format!("  <- {short} {} {what}{n} ({})", e.source, e.id);
            if let (Slot::Component { host, component }, Some(0)) =
                (&slot, e.data.get("max_instances").and_then(|n| n.as_u64()))
            {
                let runs = world.lattice.inspect(|t| {
                    t.hosts.get(host).and_then(|h| h.components.get(component)).map(|c| c.count)
                });
                if let Some(n) = runs {
                    let key = (component.clone(), host.clone());
                    self.phantom_losses.insert(key, (world.now(), n));
                }
            }
            let seen = self.observed_slot.entry(slot).or_default();
            *seen = (*seen).max(op);
            return Some(line);
        } else if m.subject == format!("wadm.internal.{LATTICE}.discovered") {
            #[derive(Deserialize)]
            struct Round {
                started_at: Timestamp,
            }
            let r = serde_json::from_slice::<Round>(&m.payload).ok()?;
            if let Some(op) = self.rounds.get(&r.started_at) {
                self.observed_all = self.observed_all.max(*op);
            }
            return Some(format!("  <- discovery round of {}", r.started_at));
        } else if m.subject == format!("wadm.internal.{LATTICE}.command_failed") {
            #[derive(Deserialize)]
            struct Failed {
                #[serde(default)]
                msg_id: String,
            }
            let f = serde_json::from_slice::<Failed>(&m.payload).ok()?;
            let line = format!("  <- command_failed {}", f.msg_id);
            self.failed_orders.insert(f.msg_id);
            return Some(line);
        } else if let Some(kind) = m.subject.strip_prefix(&format!("wadm.internal.{LATTICE}.")) {
            return Some(format!("  <- {kind}"));
        } else if let Some(kind) = m.subject.strip_prefix(&format!("wadm.evt.{LATTICE}.")) {
            return Some(format!("  <- {kind}"));
        }
        None
    }

    fn observed(&self, slot: &Slot, op: u64) -> bool {
        let by_slot = self.observed_slot.get(slot).copied().unwrap_or(0);
        let by_host = slot.host().and_then(|h| self.observed_host.get(h)).copied().unwrap_or(0);
        by_slot.max(by_host).max(self.observed_all) > op
    }

    /// (b) No control request with the same effect (subject and body) as an earlier one while
    /// that one is in flight.
    pub fn check_requests(&mut self, world: &World) -> Result<(), Violation> {
        self.note_late_executions(world);
        let new = world.lattice.request_log_from(self.cursor);
        let first = self.cursor;
        self.cursor += new.len();
        if new.is_empty() {
            return Ok(());
        }
        for (offset, request) in new.into_iter().enumerate() {
            let index = first + offset;
            let Some(command) = request.command() else { continue };
            self.stats.requests += 1;
            let order = world.orders.lock().unwrap_or_else(|p| p.into_inner()).get(&index).cloned();
            let order = order.as_ref();
            if let (Reply::NoResponders, Some(o)) = (&request.reply, order) {
                self.no_responders.insert(o.app.clone());
            }
            let key = (request.subject.clone(), request.body.clone());
            let mut earlier = self.sent.remove(&key).unwrap_or_default();
            for r1 in &mut earlier {
                if r1.late && r1.applied.is_none() {
                    r1.applied = world.lattice.request_at(r1.index).and_then(|r| r.applied);
                }
            }
            if !earlier.is_empty() {
                self.stats.repeats += 1;
            }
            for r1 in &earlier {
                let same_order =
                    r1.msg_id.is_some() && r1.msg_id.as_ref() == order.map(|o| &o.msg_id);
                if same_order {
                    self.stats.redeliveries += 1;
                    let changed = r1
                        .applied
                        .is_some_and(|op| world.lattice.changed_between(&r1.slot, op, request.op));
                    let starts = started_by(&command);
                    if let (true, Some((id, n))) = (changed, starts) {
                        self.stale_replays.insert(id, (world.now(), n));
                    }
                    continue;
                }
                let Some(applied) = r1.applied.filter(|op| *op < request.op) else { continue };
                if self.observed(&r1.slot, applied)
                    || world.lattice.changed_between(&r1.slot, applied, request.op)
                    || r1.msg_id.as_ref().is_some_and(|m| self.failed_orders.contains(m))
                    || r1.issued_at.is_some_and(|at| request.at >= at + self.order_lifetime)
                {
                    continue;
                }
                let first = world.lattice.request_at(r1.index).expect("logged");
                let message = format!(
                    "{} {} sent again at {} (order {}) while the first (at {}, order {}, \
                     applied at op {applied}) was in flight: its effect unobserved and not undone",
                    request.subject,
                    String::from_utf8_lossy(&request.body),
                    request.at,
                    order.map_or("?", |o| o.msg_id.as_str()),
                    first.at,
                    r1.msg_id.as_deref().unwrap_or("?"),
                );
                return Err(violation("b: no effect sent twice while in flight", message));
            }
            // Keep only those that may still be in flight, and this one if it had an effect.
            earlier.retain(|r1| r1.applied.is_some() || r1.late);
            if request.late {
                let starts = started_by(&command);
                if let Some((id, n)) = starts {
                    self.late_starts.push((index, id, n));
                }
            }
            if request.applied.is_some() || request.late {
                earlier.push(Sent {
                    index,
                    msg_id: order.map(|o| o.msg_id.clone()),
                    issued_at: order.map(|o| o.issued_at),
                    applied: request.applied,
                    late: request.late,
                    slot: Slot::of(&command),
                });
            }
            if !earlier.is_empty() {
                self.sent.insert(key, earlier);
            }
        }
        Ok(())
    }

    /// Late executions that took place since the last call: one that starts instances of an
    /// application whose deployment changed after the request was sent is a superseded order
    /// executed late (the `stale` allowance).
    fn note_late_executions(&mut self, world: &World) {
        let now = world.now();
        let late = std::mem::take(&mut self.late_starts);
        for (index, id, n) in late {
            let Some(r) = world.lattice.request_at(index) else { continue };
            if r.applied.is_none() {
                if now.saturating_sub(r.at) < self.order_lifetime {
                    self.late_starts.push((index, id, n));
                }
                continue;
            }
            let superseded = self.owner.get(&id).is_some_and(|a| self.changed_at[*a] > r.at);
            if superseded {
                self.stale_replays.insert(id, (now, n));
            }
        }
    }

    /// The config `name` was put (its last applied `config.put`, at operation `op`) and since
    /// then: `(answered read, event applied)`.
    fn config_news_since_put(&self, world: &World, name: &str) -> (bool, bool) {
        let put = format!("wasmbus.ctl.v1.{LATTICE}.config.put.{name}");
        let get = format!("wasmbus.ctl.v1.{LATTICE}.config.get.{name}");
        let found = world.lattice.inspect_requests(|log| {
            let last = log.iter().rposition(|r| r.subject == put && r.applied.is_some())?;
            let op = log[last].applied.unwrap_or(0);
            let read = log[last..].iter().any(|r| r.subject == get && r.reply == Reply::Success);
            Some((op, read))
        });
        let Some((op, read)) = found else { return (true, true) };
        let seen = self.observed_slot.get(&Slot::Config(name.to_string())).is_some_and(|o| *o > op);
        (read, seen)
    }

    /// Whether application `app` (its deployed version) uses a config that was deleted while
    /// wadm never applied an event about it since.
    fn uses_config_deleted_unobserved(
        &self,
        scenario: &Scenario,
        app: usize,
        world: &World,
    ) -> bool {
        self.uses_deleted_config(scenario, app, world, true)
    }

    /// Whether application `app` (its deployed version) uses a config the lattice lost to a
    /// `config.del` (and, when `unobserved`, wadm applied no event about it since).
    fn uses_deleted_config(
        &self,
        scenario: &Scenario,
        app: usize,
        world: &World,
        unobserved: bool,
    ) -> bool {
        let Some(v) = self.deployed[app] else { return false };
        let spec = &scenario.apps[app];
        let names = spec.versions[v].owned_configs(&spec.name).into_keys();
        let missing: Vec<String> = world
            .lattice
            .inspect(|truth| names.filter(|n| !truth.configs.contains_key(n)).collect());
        missing.into_iter().any(|name| {
            let del = format!("wasmbus.ctl.v1.{LATTICE}.config.del.{name}");
            let deleted = world.lattice.inspect_requests(|log| {
                log.iter().rev().find(|r| r.subject == del && r.applied.is_some())?.applied
            });
            deleted.is_some_and(|op| {
                !unobserved
                    || self.observed_slot.get(&Slot::Config(name.clone())).is_none_or(|o| *o < op)
            })
        })
    }

    /// (d) The hosts run exactly the desired state and every status says so. `Err`: what differs.
    pub fn converged(&mut self, scenario: &Scenario, world: &World) -> Result<(), String> {
        let truth = world.lattice.truth();
        let mut want: BTreeMap<String, (u32, String)> = BTreeMap::new();
        let mut links: BTreeMap<LinkKey, Link> = BTreeMap::new();
        let mut configs = BTreeMap::new();
        let excused: BTreeSet<usize> = (0..scenario.apps.len())
            .filter(|i| {
                self.switches.allow_lost_link_and_config_events
                    && self.uses_config_deleted_unobserved(scenario, *i, world)
            })
            .collect();
        for (i, app) in scenario.apps.iter().enumerate() {
            let Some(v) = self.deployed[i] else { continue };
            if excused.contains(&i) {
                continue;
            }
            let version = &app.versions[v];
            for w in &version.workloads {
                let image = wadm_protocol::normalize_provider_ref(&w.image).to_string();
                want.insert(component_id(&app.name, &w.name), (w.instances, image));
            }
            links.extend(version.lattice_links(&app.name).into_iter().map(|l| (l.key(), l)));
            configs.extend(version.owned_configs(&app.name));
        }
        let mut have: BTreeMap<String, (u32, BTreeSet<String>)> = BTreeMap::new();
        for host in truth.hosts.values() {
            for c in host.components.values() {
                let e = have.entry(c.id.clone()).or_default();
                e.0 += c.count;
                e.1.insert(c.image_ref.clone());
            }
            for p in host.providers.values() {
                let e = have.entry(p.id.clone()).or_default();
                e.0 += 1;
                e.1.insert(p.image_ref.clone());
            }
        }
        let mut wrong = Vec::new();
        let ids: BTreeSet<&String> = want.keys().chain(have.keys()).collect();
        for id in ids {
            if self.owner.get(id.as_str()).is_some_and(|a| excused.contains(a)) {
                continue;
            }
            let (n, image) = want.get(id).cloned().unwrap_or_default();
            let (m, images) = have.get(id).cloned().unwrap_or_default();
            let right_images = m == 0 || images == BTreeSet::from([image.clone()]);
            if n != m || !right_images {
                wrong.push(format!("{id}: {m} running {images:?}, want {n} of {image}"));
            }
        }
        for (key, link) in &links {
            if truth.links.get(key) != Some(link) {
                wrong.push(format!("link {key:?}: {:?}, want {link:?}", truth.links.get(key)));
            }
        }
        let excused_link =
            |k: &LinkKey| self.owner.get(&k.source_id).is_some_and(|a| excused.contains(a));
        let lost = |slot: Slot| {
            self.switches.allow_lost_link_and_config_events
                && self.unseen_at_undeploy.contains(&slot)
        };
        let mut lost_links = 0;
        for key in truth.links.keys().filter(|k| !links.contains_key(*k) && !excused_link(k)) {
            if lost(Slot::Link(key.clone())) {
                lost_links += 1;
                continue;
            }
            wrong.push(format!("link {key:?} is not wanted"));
        }
        self.stats.allowed_config_drift += lost_links;
        for (name, values) in &configs {
            let got = truth.configs.get(name).map(|c| c.values.clone());
            if got != Some(Some(values.clone())) {
                let (read, _) = self.config_news_since_put(world, name);
                if got.is_some() && !read && self.switches.allow_stale_config_values {
                    self.stats.allowed_config_drift += 1;
                    continue;
                }
                wrong.push(format!("config {name}: {got:?}, want {values:?}"));
            }
        }
        let excused_configs: BTreeSet<String> = excused
            .iter()
            .filter_map(|i| {
                let spec = &scenario.apps[*i];
                self.deployed[*i].map(|v| spec.versions[v].owned_configs(&spec.name))
            })
            .flat_map(|c| c.into_keys())
            .collect();
        for name in truth
            .configs
            .keys()
            .filter(|n| !configs.contains_key(*n) && !excused_configs.contains(*n))
        {
            let (_, seen) = self.config_news_since_put(world, name);
            if (!seen && self.switches.allow_lost_link_and_config_events)
                || lost(Slot::Config(name.clone()))
            {
                self.stats.allowed_config_drift += 1;
                continue;
            }
            wrong.push(format!("config {name} is not wanted"));
        }
        for (i, app) in scenario.apps.iter().enumerate() {
            if excused.contains(&i) {
                continue;
            }
            let status = world.status.current(LATTICE, &app.name).map(|s| s.status);
            let ok = match (self.deployed[i], &status) {
                (Some(_), Some(s)) => s.status_type == StatusType::Deployed,
                (Some(_), None) => false,
                (None, s) => s.as_ref().is_none_or(|s| s.status_type == StatusType::Undeployed),
            };
            if !ok {
                wrong.push(format!("{}: status {status:?}", app.name));
            }
        }
        if wrong.is_empty() { Ok(()) } else { Err(wrong.join("; ")) }
    }
}
