//! The driver: runs one scenario in virtual time, the way `wadm_runtime::run` runs the loops of
//! each replica (event loop, command loop, ticks, timers at the deadline a step reports,
//! discovery rounds at start-up, when a step reports state in doubt and periodically), with the
//! hosts heartbeating, the scenario's actions and faults, and every invariant checked after
//! every step and every world action.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use wadm_lattice::Timestamp;
use wadm_runtime::memory::{FaultCounts, Faults, HostBehaviour};
use wadm_runtime::{periodic_discovery_id, tick_message, timer_message};

use super::check::{Checker, Stats, Switches, Violation};
use super::scenario::{Action, MAX_PROVIDER_INSTANCES, Rng, Scenario};
use super::world::{LATTICE, START, World};

/// After the faults stop, the hosts must run exactly the desired state, and every status say
/// `deployed`, within this much virtual time: a crashed host's lease (70 s), plus the longest
/// failure backoff (`RuntimeConfig::failure_backoff.max`, 300 s: an application that failed
/// during the faults retries at the end of its backoff), plus 50 s for the retry's orders, ticks
/// and timers.
pub const SETTLE_BOUND: u64 = 420_000;
/// Once converged, the world must still be converged this much later (no flapping).
pub const STABLE: u64 = 10_000;
/// How often an idle world looks again for redeliveries (ack waits, nak delays).
const POLL: u64 = 250;
/// How long an event step takes (a record read, a reconcile, KV writes and publishes on NATS):
/// the pinned replica pulls its next batch no sooner, so events that arrive meanwhile (command
/// answers, heartbeats) form a batch as they do in production.
const EVENT_STEP: u64 = 5;
/// The hosts' heartbeat interval (wasmCloud's default, and the runtime's lease setting).
const HEARTBEAT: u64 = 30_000;
/// The least time between two rounds a replica runs because state is in doubt (`run`'s default).
const DOUBT_GAP: u64 = 30_000;
/// How often each replica runs a periodic round (`run`'s default).
const DISCOVERY_EVERY: Duration = Duration::from_secs(300);
/// Lines of trace kept for a failure report.
const TRACE_LINES: usize = 400;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub switches: Switches,
    /// Print every trace line as it happens (replays).
    pub print_trace: bool,
    /// Print wadm's record (observed state, orders in flight, applications) once the clock
    /// passes this many ms after the start (replays, for diagnosis).
    pub dump_at: Option<u64>,
}

/// What a scenario that passed did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub steps: u64,
    pub crashes: u64,
    /// Virtual time from the start to the end of the stable window.
    pub virtual_ms: u64,
    /// Virtual time from the end of the faults to convergence.
    pub settle_ms: u64,
    pub stats: Stats,
    pub faults: FaultCounts,
}

/// An invariant that failed, when, and what led to it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub violation: Violation,
    /// Virtual ms since the start.
    pub at: u64,
    pub trace: Vec<String>,
}

/// Run `scenario` to the end.
pub fn run(scenario: &Scenario, options: Options) -> Result<Report, Failure> {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let mut sim = Sim::new(scenario, options);
        let result = sim.run().await;
        result.map_err(|violation| Failure {
            violation,
            at: sim.world.now() - START,
            trace: sim.trace.into_iter().collect(),
        })
    })
}

#[derive(Clone, Copy)]
enum Loop {
    Events,
    Commands,
}

struct Sim<'s> {
    s: &'s Scenario,
    options: Options,
    world: World,
    checker: Checker,
    rng: Rng,
    trace: VecDeque<String>,
    next_action: usize,
    heartbeats: BTreeMap<String, Timestamp>,
    hosts_started: usize,
    faults_on: bool,
    faults_ended_at: Timestamp,
    stable_since: Option<Timestamp>,
    settled_at: Option<Timestamp>,
    checked_op: u64,
    /// Requests of the lattice's log already in the trace.
    traced: usize,
    /// When deliveries dropped or nak'd come back (the idle clock wakes up for them).
    redeliveries: Vec<Timestamp>,
    /// Until then an idle world looks again every [`POLL`] (a failed step's nak delay is not
    /// known here).
    poll_until: Timestamp,
    /// The replica the event consumer delivers to (it moves when that replica dies, and now
    /// and then on its own: another replica takes over).
    pinned: usize,
    /// The pin moves once the pinned replica has not pulled for the ack wait + 1 s: until then
    /// nobody takes events (so what a dead replica held is redelivered first).
    pin_free_at: Timestamp,
    /// The pinned replica is busy with its last event step until then.
    events_busy_until: Timestamp,
    /// The convergence verdict of the last idle moment and whether anything it depends on has
    /// changed since (what the hosts run, statuses, deployments).
    verdict: Option<Result<(), String>>,
    verdict_on: (u64, u64),
    report: Report,
}

impl<'s> Sim<'s> {
    fn new(s: &'s Scenario, options: Options) -> Self {
        let config = wadm_runtime::RuntimeConfig::default();
        let lifetime = config.order_lifetime.as_millis() as u64;
        let world = World::new(s.seed, s.replicas, config);
        Self {
            s,
            options,
            world,
            checker: Checker::new(s, lifetime, options.switches),
            rng: Rng::new(s.seed ^ 0x0dd5_7e95),
            trace: VecDeque::new(),
            next_action: 0,
            heartbeats: BTreeMap::new(),
            hosts_started: 0,
            faults_on: false,
            faults_ended_at: 0,
            stable_since: None,
            settled_at: None,
            checked_op: u64::MAX,
            traced: 0,
            redeliveries: Vec::new(),
            poll_until: 0,
            pinned: 0,
            pin_free_at: 0,
            events_busy_until: 0,
            verdict: None,
            verdict_on: (u64::MAX, 0),
            report: Report::default(),
        }
    }

    fn note(&mut self, line: String) {
        let line = format!("{:>9} {line}", self.world.now() - START);
        if self.options.print_trace {
            eprintln!("{line}");
        }
        if self.trace.len() == TRACE_LINES {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    async fn run(&mut self) -> Result<Report, Violation> {
        let s = self.s;
        self.note(s.summary());
        self.world.lattice.set_behaviour(HostBehaviour::real_1_9_2());
        self.world.lattice.set_seed(s.seed ^ 0x1a77_1ce5);
        for app in &s.apps {
            for v in &app.versions {
                self.world.put(&app.name, &v.version, v.manifest(&app.name)).await;
            }
        }
        for _ in 0..s.hosts {
            self.add_host().await;
        }
        let tick = self.world.config.tick_every.as_millis() as u64;
        for r in 0..s.replicas {
            let id = self.world.own_round_id(r);
            self.round(r, id, "start-up").await;
            let now = self.world.now();
            let replica = &mut self.world.replicas[r];
            replica.next_tick = now + self.rng.below(tick);
            replica.next_periodic_round = now + DISCOVERY_EVERY.as_millis() as u64;
        }
        self.world.lattice.set_faults(s.faults);
        self.faults_on = true;
        loop {
            if let Some(at) = self.options.dump_at
                && self.world.now() >= START + at
            {
                self.options.dump_at = None;
                self.dump().await;
            }
            self.due().await?;
            if self.work().await? {
                self.report.steps += 1;
                self.world.clock.advance(self.rng.between(1, 3));
                continue;
            }
            if let Some(done) = self.idle()? {
                return Ok(done);
            }
            let next = self.next_time();
            self.world.clock.set(next);
        }
    }

    /// Print wadm's committed record.
    async fn dump(&self) {
        let (record, _) =
            self.world.replicas[0].pipeline.records().load(LATTICE).await.expect("record");
        let now = self.world.now() - START;
        eprintln!("=== wadm's record at {now} ms ===");
        eprintln!("configs: {:#?}", record.state.configs);
        eprintln!("links: {:#?}", record.state.links.values().collect::<Vec<_>>());
        eprintln!("apps: {:#?}", record.apps);
        for (slot, intent) in record.intents.pending() {
            eprintln!("in flight: {slot:?}: {:?} (deadline {})", intent.command, intent.deadline);
        }
        eprintln!("deferred: {:?}", record.deferred);
        eprintln!("truth configs: {:?}", self.world.lattice.truth().configs);
    }

    /// At an idle moment after the faults: converged (and stable)? `Some`: done.
    fn idle(&mut self) -> Result<Option<Report>, Violation> {
        if self.faults_on {
            return Ok(None);
        }
        let now = self.world.now();
        let statuses: u64 =
            self.s.apps.iter().map(|a| self.world.status.changes(LATTICE, &a.name)).sum();
        let on = (self.world.lattice.truth_version(), statuses);
        if self.verdict_on != on || self.verdict.is_none() {
            self.verdict = Some(self.checker.converged(self.s, &self.world));
            self.verdict_on = on;
        }
        match self.verdict.clone().expect("just computed") {
            Ok(()) => {
                let since = *self.stable_since.get_or_insert(now);
                self.settled_at.get_or_insert(now);
                if now - since >= STABLE {
                    let mut report = self.report.clone();
                    report.virtual_ms = now - START;
                    report.settle_ms = self.settled_at.unwrap_or(now) - self.faults_ended_at;
                    report.stats = self.checker.stats;
                    report.faults = self.world.lattice.fault_counts();
                    return Ok(Some(report));
                }
            }
            Err(why) => {
                if self.stable_since.take().is_some() {
                    self.note(format!("converged, then not any more: {why}"));
                }
                self.settled_at = None;
                if now > self.faults_ended_at + SETTLE_BOUND {
                    let message = format!(
                        "not converged {} s after the faults stopped: {why}",
                        SETTLE_BOUND / 1000
                    );
                    return Err(Violation { invariant: "d: convergence", message });
                }
            }
        }
        Ok(None)
    }

    /// The next instant something is scheduled.
    fn next_time(&self) -> Timestamp {
        let now = self.world.now();
        let mut next = Timestamp::MAX;
        if let Some((t, _)) = self.s.actions.get(self.next_action) {
            next = next.min(START + t);
        }
        if self.faults_on {
            next = next.min(START + self.s.faults_end);
        }
        next = next.min(self.heartbeats.values().copied().min().unwrap_or(Timestamp::MAX));
        for r in &self.world.replicas {
            next = next.min(r.next_tick).min(r.next_periodic_round);
            if let (Some(d), false) = (r.deadline, r.fired) {
                next = next.min(d);
            }
        }
        if let Some(due) = self.world.lattice.next_due() {
            next = next.min(due);
        }
        if let Some(at) = self.redeliveries.iter().filter(|at| **at > now).min() {
            next = next.min(*at);
        }
        if now < self.poll_until {
            next = next.min(now + POLL);
        }
        if self.events_busy_until > now {
            next = next.min(self.events_busy_until);
        }
        next.max(now + 1)
    }

    /// Everything scheduled for now: the end of the faults, the scenario's actions, heartbeats,
    /// ticks, timers, periodic rounds, held-back events and late executions.
    async fn due(&mut self) -> Result<(), Violation> {
        let now = self.world.now();
        if self.faults_on && now >= START + self.s.faults_end {
            self.end_faults().await;
        }
        while let Some((t, action)) = self.s.actions.get(self.next_action).cloned() {
            if START + t > now {
                break;
            }
            self.next_action += 1;
            if !self.faults_on {
                continue;
            }
            self.act(action).await;
            self.check_world()?;
        }
        let due: Vec<String> =
            self.heartbeats.iter().filter(|(_, at)| **at <= now).map(|(h, _)| h.clone()).collect();
        for host in due {
            self.world.lattice.heartbeat(&host).await;
            if let Some(at) = self.heartbeats.get_mut(&host) {
                *at += HEARTBEAT;
            }
        }
        let tick_every = self.world.config.tick_every;
        for r in 0..self.world.replicas.len() {
            let replica = &mut self.world.replicas[r];
            if replica.next_tick <= now {
                replica.next_tick += tick_every.as_millis() as u64;
                self.world.publish_event(tick_message(LATTICE, now, tick_every)).await;
            }
            let replica = &mut self.world.replicas[r];
            if let (Some(at), false) = (replica.deadline, replica.fired)
                && at <= now
            {
                replica.fired = true;
                self.world.publish_event(timer_message(LATTICE, at)).await;
            }
            let replica = &mut self.world.replicas[r];
            if replica.next_periodic_round <= now {
                replica.next_periodic_round += DISCOVERY_EVERY.as_millis() as u64;
                let id = periodic_discovery_id(LATTICE, now, DISCOVERY_EVERY);
                self.round(r, id, "periodic").await;
            }
        }
        if self.world.lattice.release_due().await > 0 {
            self.check_world()?;
        }
        Ok(())
    }

    async fn end_faults(&mut self) {
        self.faults_on = false;
        self.faults_ended_at = self.world.now();
        self.world.lattice.set_faults(Faults::none());
        for (_, action) in &self.s.actions {
            if let Action::FailComponent { id, .. } = action {
                self.world.lattice.fail_component(id, None);
            }
        }
        while self.world.lattice.hosts().len() < self.s.hosts {
            self.add_host().await;
        }
        self.note("faults stop; failing components healed, hosts topped up".into());
    }

    async fn add_host(&mut self) -> String {
        let id = format!("N{:03}", self.hosts_started);
        self.hosts_started += 1;
        self.world.lattice.add_host(&id, Default::default()).await;
        self.heartbeats.insert(id.clone(), self.world.now() + HEARTBEAT);
        if self.faults_on || self.faults_ended_at > 0 {
            self.checker.note_joined(&id, self.world.now());
        }
        self.note(format!("host {id} starts"));
        id
    }

    /// A running host to take away, keeping enough for every provider (a new one is started
    /// first when needed).
    async fn victim(&mut self) -> String {
        let keep = (MAX_PROVIDER_INSTANCES as usize).min(self.s.hosts).max(1);
        if self.world.lattice.hosts().len() <= keep {
            self.add_host().await;
        }
        let hosts = self.world.lattice.hosts();
        hosts[self.rng.below(hosts.len() as u64) as usize].clone()
    }

    async fn act(&mut self, action: Action) {
        let s = self.s;
        match action {
            Action::Deploy { app, version } => {
                let (name, v) = (&s.apps[app].name, &s.apps[app].versions[version].version);
                self.note(format!("deploy {name} {v}"));
                self.world.deploy(name, v).await;
                self.checker.note_deployed(s, app, Some(version), self.world.now());
            }
            Action::Undeploy { app } => {
                if self.checker.deployed[app].is_none() {
                    return;
                }
                let name = &s.apps[app].name;
                self.note(format!("undeploy {name}"));
                self.checker.note_undeploying(s, app, &self.world);
                self.world.undeploy(name).await;
                self.checker.note_deployed(s, app, None, self.world.now());
            }
            Action::UndeployDeploy { app, version } => {
                let (name, v) = (&s.apps[app].name, &s.apps[app].versions[version].version);
                self.note(format!("undeploy {name} and deploy {v} at once"));
                if self.checker.deployed[app].is_some() {
                    self.checker.note_undeploying(s, app, &self.world);
                    self.world.undeploy(name).await;
                    self.checker.note_deployed(s, app, None, self.world.now());
                }
                self.world.deploy(name, v).await;
                self.checker.note_deployed(s, app, Some(version), self.world.now());
            }
            Action::CrashHost => {
                let host = self.victim().await;
                self.note(format!("host {host} crashes"));
                self.world.lattice.crash_host(&host);
                self.heartbeats.remove(&host);
            }
            Action::StopHost => {
                let host = self.victim().await;
                self.note(format!("host {host} stops"));
                self.world.lattice.stop_host(&host).await;
                self.heartbeats.remove(&host);
            }
            Action::AddHost => {
                self.add_host().await;
            }
            Action::FailComponent { app, id } => {
                self.note(format!("{id} cannot scale from now on"));
                self.world.lattice.fail_component(&id, Some("simulated: image fetch failed"));
                self.checker.failing.insert(app);
            }
            Action::HealComponent { id } => {
                self.note(format!("{id} scales again"));
                self.world.lattice.fail_component(&id, None);
            }
        }
    }

    /// Replica `r` runs a discovery round now.
    async fn round(&mut self, r: usize, id: String, why: &str) {
        let (now, op) = (self.world.now(), self.world.lattice.op());
        self.checker.note_round(now, op);
        self.world.discover(r, id).await;
        self.note(format!("r{r}: discovery round ({why})"));
    }

    /// One step of some replica's event or command loop (or a crash in it), in a seeded order.
    /// `false`: nothing was deliverable.
    async fn work(&mut self) -> Result<bool, Violation> {
        let replicas = self.world.replicas.len();
        if self.rng.below(1000) < 5 {
            // The pinned replica pauses: another one takes the event consumer over.
            self.unpin();
        }
        let pinned = (self.world.now() >= self.pin_free_at.max(self.events_busy_until))
            .then_some(self.pinned);
        let mut candidates: Vec<(usize, Loop)> = (0..replicas)
            .flat_map(|r| [(r, Loop::Events), (r, Loop::Commands)])
            .filter(|(r, l)| matches!(l, Loop::Commands) || Some(*r) == pinned)
            .collect();
        // Seeded shuffle.
        for i in (1..candidates.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            candidates.swap(i, j);
        }
        // One consumer per loop: when it has nothing for one replica, it has nothing for any.
        let (mut events_empty, mut commands_empty) = (false, false);
        for (r, which) in candidates {
            match which {
                Loop::Events if events_empty => continue,
                Loop::Commands if commands_empty => continue,
                _ => {}
            }
            let crash = self.faults_on && self.rng.odds(self.s.replica_crash);
            match (which, crash) {
                (Loop::Events, true) => {
                    let handle = self.rng.percent(50);
                    let Some(taken) = self.world.crash_in_event_step(r, handle).await else {
                        events_empty = true;
                        continue;
                    };
                    let how = if handle { "after handling" } else { "before handling" };
                    self.note(format!("r{r}: crashes {how} a batch of {taken} events"));
                    self.redelivery_after(self.world.streams.ack_wait.as_millis() as u64);
                    self.unpin();
                    self.restarted(r).await;
                    self.check_step(true)?;
                }
                (Loop::Commands, true) => {
                    let handle = self.rng.percent(50);
                    let Some(order) = self.world.crash_in_command_step(r, handle).await else {
                        commands_empty = true;
                        continue;
                    };
                    let how = if handle { "after executing" } else { "before executing" };
                    self.note(format!("r{r}: crashes {how} order {order}"));
                    self.redelivery_after(self.world.streams.ack_wait.as_millis() as u64);
                    if self.pinned == r {
                        self.unpin();
                    }
                    self.restarted(r).await;
                    self.check_step(false)?;
                }
                (Loop::Events, false) => {
                    let Some(done) = self.world.step_events(r).await else {
                        events_empty = true;
                        continue;
                    };
                    self.events_busy_until = self.world.now() + EVENT_STEP;
                    match done {
                        Ok(p) => {
                            let line = format!(
                                "r{r}: event step ({} events): published {} (+{} dup), held {}, \
                                 in flight {}, statuses {}{}{}",
                                p.events,
                                p.published,
                                p.duplicates,
                                p.held,
                                p.in_flight,
                                p.statuses,
                                if p.state_in_doubt { ", state in doubt" } else { "" },
                                p.skipped
                                    .as_deref()
                                    .map(|s| format!(", skipped {s}"))
                                    .unwrap_or_default(),
                            );
                            self.note(line);
                            let now = self.world.now();
                            if p.state_in_doubt
                                && now >= self.world.replicas[r].last_round + DOUBT_GAP
                            {
                                let id = self.world.own_round_id(r);
                                self.round(r, id, "state in doubt").await;
                            }
                        }
                        Err(e) => {
                            self.note(format!("r{r}: event step failed: {e}"));
                            self.poll_until = self.world.now() + 31_000;
                        }
                    }
                    self.check_step(true)?;
                }
                (Loop::Commands, false) => {
                    let Some(done) = self.world.step_commands(r).await else {
                        commands_empty = true;
                        continue;
                    };
                    self.note(format!("r{r}: command step: {done:?}"));
                    match &done {
                        Ok(wadm_runtime::Executed::Retry { delay }) => {
                            self.redelivery_after(delay.as_millis() as u64)
                        }
                        Ok(_) => {}
                        Err(_) => self.poll_until = self.world.now() + 31_000,
                    }
                    self.check_step(false)?;
                }
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// The pinned replica stops pulling (dies, pauses): after the ack wait + 1 s another one
    /// (drawn, maybe the same after a restart) is pinned.
    fn unpin(&mut self) {
        let replicas = self.world.replicas.len() as u64;
        self.pinned = self.rng.below(replicas) as usize;
        let wait = self.world.streams.ack_wait.as_millis() as u64 + 1_000;
        self.pin_free_at = self.world.now() + wait;
        self.redelivery_after(wait);
    }

    fn redelivery_after(&mut self, ms: u64) {
        let now = self.world.now();
        self.redeliveries.retain(|at| *at > now);
        self.redeliveries.push(now + ms + 1);
    }

    /// A replica process that just (re)started runs its start-up round.
    async fn restarted(&mut self, r: usize) {
        self.report.crashes += 1;
        let id = self.world.own_round_id(r);
        self.round(r, id, "start-up after a crash").await;
        let now = self.world.now();
        let replica = &mut self.world.replicas[r];
        replica.next_tick = now;
        replica.next_periodic_round = now + DISCOVERY_EVERY.as_millis() as u64;
    }

    fn check_step(&mut self, statuses: bool) -> Result<(), Violation> {
        let applied = self.world.applied.drain();
        for line in self.checker.note_applied(applied, &self.world) {
            self.note(line);
        }
        self.check_world()?;
        if statuses {
            self.checker.check_statuses(self.s, &self.world)?;
        }
        Ok(())
    }

    /// (a) and (b) after anything that may have changed what the hosts run or received.
    fn check_world(&mut self) -> Result<(), Violation> {
        for r in self.world.lattice.request_log_from(self.traced) {
            self.traced += 1;
            let body = String::from_utf8_lossy(&r.body[..r.body.len().min(120)]);
            let late = if r.late { " (late)" } else { "" };
            let subject = r.subject.strip_prefix("wasmbus.ctl.v1.").unwrap_or(&r.subject);
            let line = format!("  -> {subject} {body}: {:?}{late}", r.reply);
            self.note(line);
        }
        self.checker.check_requests(&self.world)?;
        let op = self.world.lattice.truth_version();
        if op != self.checked_op {
            self.checked_op = op;
            self.checker.check_counts(&self.world)?;
        }
        Ok(())
    }
}
