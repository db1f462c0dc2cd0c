//! The pure decisions of one pipeline step, over a [`LatticeRecord`]: folding deployments in,
//! recording failures with backoff, choosing which planned commands to publish and which statuses
//! to write. No I/O, no clock reads: `now` and the random sample are arguments.

use std::collections::{BTreeMap, BTreeSet};

use wadm_lattice::{LeaseConfig, Timestamp, app_of};
use wadm_model::{Status, StatusType};
use wadm_protocol::{HostEvent, LinkKey};
use wadm_scheduler::{Command, Plan, PlannedCommand};

use crate::allocation;
use crate::backoff::Backoff;
use crate::config::RuntimeConfig;
use crate::desired::Deployment;
use crate::intents::{Admission, Intent, Slot};
use crate::messages::CommandMessage;
use crate::record::{AppRecord, Deferred, Failure, LatticeRecord};

/// Which applications a step must reconcile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// Every application is affected, whatever `apps` holds.
    pub every_app: bool,
    /// The applications to reconcile when `every_app` is false.
    pub apps: BTreeSet<String>,
}

impl Affected {
    /// Every application affected.
    pub fn all() -> Self {
        Self { every_app: true, apps: BTreeSet::new() }
    }

    /// Whether `app` is to be reconciled.
    pub fn contains(&self, app: &str) -> bool {
        self.every_app || self.apps.contains(app)
    }
}

/// Fold the store's view of one application into the record. Returns whether it changed.
/// Generations only move forward; a new generation clears the failure backoff.
pub fn apply_deployment(
    record: &mut LatticeRecord,
    name: &str,
    deployment: Option<&Deployment>,
) -> bool {
    match deployment {
        Some(d) if d.deployed_version.is_some() => {
            // Every deploy bumps the store generation: only a higher one is news.
            let app = record.apps.entry(name.to_string()).or_default();
            if app.safety.stable.is_none() {
                // What the store recorded (the record may be new to this lattice head).
                app.safety.stable = d.stable.clone();
            }
            if d.store_generation == app.store_generation && d.promoted && !app.promoted {
                // Promoted past the canary stage: the same deployment goes on.
                app.promoted = true;
                return true;
            }
            if d.store_generation <= app.store_generation {
                return false;
            }
            // The version being replaced: what was deployed, or (when redeploying after an
            // undeploy) nothing. Redeploying the same version keeps the one before it.
            let previous_version = match &app.deployed_version {
                Some(current) if Some(current) != d.deployed_version.as_ref() => {
                    Some(current.clone())
                }
                Some(_) => app.previous_version.clone(),
                None => None,
            };
            *app = AppRecord {
                store_generation: d.store_generation,
                deployed_version: d.deployed_version.clone(),
                last_version: d.deployed_version.clone(),
                previous_version,
                failure: None,
                wake_at: None,
                promoted: d.promoted,
                safety: app.safety.next_generation(d.reverted.clone()),
                short_of_capacity: app.short_of_capacity,
                rollout_batches: 0,
            };
            true
        }
        other => {
            let Some(app) = record.apps.get_mut(name) else { return false };
            let generation = other.map_or(app.store_generation, |d| d.store_generation);
            if app.deployed_version.is_none() || generation < app.store_generation {
                return false;
            }
            app.store_generation = generation;
            app.deployed_version = None;
            app.failure = None;
            true
        }
    }
}

/// A failure a host reported about something wadm asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFailure {
    /// A component failed to scale on a host.
    Component {
        /// The host that reported it (the event's source when known).
        host: String,
        /// The component id.
        component: String,
        /// The application the component belongs to, per its annotations; `None` when it is
        /// not marked as one of wadm's.
        app: Option<String>,
        /// What the host said.
        message: String,
    },
    /// A provider failed to start on a host.
    Provider {
        /// The host that reported it (the event's source when known).
        host: String,
        /// The provider id.
        provider: String,
        /// What the host said.
        message: String,
    },
    /// A link could not be put.
    Link {
        /// The link's identity.
        key: LinkKey,
        /// What the host said.
        message: String,
    },
}

/// The failure an event reports, if it is a `*_failed` event.
pub fn host_failure(source: &str, event: &HostEvent) -> Option<HostFailure> {
    let host = |id: &str| if source.is_empty() { id.to_string() } else { source.to_string() };
    match event {
        HostEvent::ComponentScaleFailed(c) => Some(HostFailure::Component {
            host: host(&c.host_id),
            component: c.component_id.clone(),
            app: app_of(&c.annotations).map(str::to_string),
            message: c.error.clone().unwrap_or_else(|| "component scale failed".into()),
        }),
        HostEvent::ProviderStartFailed(p) => Some(HostFailure::Provider {
            host: host(&p.host_id),
            provider: p.provider_id.clone(),
            message: if p.error.is_empty() {
                "provider start failed".into()
            } else {
                p.error.clone()
            },
        }),
        HostEvent::LinkSetFailed(l) => Some(HostFailure::Link {
            key: l.link.key(),
            message: if l.error.is_empty() { "link put failed".into() } else { l.error.clone() },
        }),
        _ => None,
    }
}

impl HostFailure {
    /// What the host said about it.
    pub fn message(&self) -> &str {
        match self {
            HostFailure::Component { message, .. }
            | HostFailure::Provider { message, .. }
            | HostFailure::Link { message, .. } => message,
        }
    }

    /// The slot of the order that failed.
    pub fn slot(&self) -> Slot {
        match self {
            HostFailure::Component { host, component, .. } => {
                Slot::Component { host: host.clone(), component: component.clone() }
            }
            HostFailure::Provider { host, provider, .. } => {
                Slot::Provider { host: host.clone(), provider: provider.clone() }
            }
            HostFailure::Link { key, .. } => Slot::Link(key.clone()),
        }
    }

    /// The application the failed request was for: the planned command that asks for the same
    /// thing, else the component's annotations.
    pub fn app(&self, plan: &Plan) -> Option<String> {
        let matches = |c: &PlannedCommand| match (self, &c.command) {
            (HostFailure::Component { host, component, .. }, Command::ScaleComponent(r)) => {
                *r.host_id == **host && *r.component_id == **component
            }
            (HostFailure::Component { host, component, .. }, Command::UpdateComponent(r)) => {
                *r.host_id == **host && *r.component_id == **component
            }
            (HostFailure::Provider { host, provider, .. }, Command::StartProvider(r)) => {
                *r.host_id == **host && *r.provider_id == **provider
            }
            (HostFailure::Link { key, .. }, Command::PutLink(l)) => &l.key() == key,
            _ => false,
        };
        plan.commands.iter().find(|c| matches(c)).map(|c| c.app.to_string()).or_else(
            || match self {
                HostFailure::Component { app, .. } => app.clone(),
                _ => None,
            },
        )
    }
}

/// Record a failure of `app` at `now`: one more attempt, and no commands until the backoff ends.
pub fn note_failure(
    record: &mut LatticeRecord,
    app: &str,
    message: &str,
    now: Timestamp,
    backoff: &Backoff,
    sample: u64,
) -> bool {
    let Some(entry) = record.apps.get_mut(app) else { return false };
    let attempts = entry.failure.as_ref().map_or(0, |f| f.attempts).saturating_add(1);
    let retry_at = now.saturating_add(backoff.delay_ms(attempts, sample));
    entry.failure = Some(Failure { attempts, retry_at, message: message.to_string() });
    true
}

/// Note `affected` in `deferred` instead of reconciling it now; it is reconciled by the first
/// step that does not hold (see [`defer_or_collect`]).
pub fn hold(deferred: &mut Deferred, affected: &mut Affected) {
    let held = std::mem::take(affected);
    deferred.every_app |= held.every_app;
    deferred.apps.extend(held.apps);
}

/// Put this step's reconcile off (when `may_defer`: more events are queued, and the put-off
/// work is within the configured bounds), or fold everything put off so far into `affected`.
/// Returns whether the step put its reconcile off.
pub fn defer_or_collect(
    record: &mut LatticeRecord,
    affected: &mut Affected,
    may_defer: bool,
    now: Timestamp,
    config: &RuntimeConfig,
) -> bool {
    let wants = affected.every_app || !affected.apps.is_empty();
    if !wants && record.deferred.is_empty() {
        return false;
    }
    let deferred = &mut record.deferred;
    let max_age = config.max_deferred.as_millis() as u64;
    let within_bounds = deferred.is_empty()
        || (deferred.steps < config.max_deferred_steps
            && now.saturating_sub(deferred.since) < max_age);
    if may_defer && config.max_deferred_steps > 0 && within_bounds {
        if deferred.is_empty() {
            deferred.since = now;
            deferred.steps = 0;
        }
        deferred.every_app |= affected.every_app;
        deferred.apps.append(&mut affected.apps);
        deferred.steps = deferred.steps.saturating_add(1);
        *affected = Affected::default();
        return true;
    }
    let put_off = std::mem::take(deferred);
    affected.every_app |= put_off.every_app;
    affected.apps.extend(put_off.apps);
    false
}

/// The commands of `plan` to publish: those of affected applications that are not backing off
/// and that [`crate::intents::Intents::admit`] lets go now (no other order in flight on their slot, every config
/// they name observed, no removal it may replace still to show). Removals (stops, deletes, scale
/// downs) are admitted and published before the other commands. Each one published becomes an
/// order in flight (its message expires `ttl_ms` after `now`, the order `lifetime_ms` after).
/// Returns the messages, per application how many planned commands were held back, and the
/// placements that replace work of a host that left.
pub fn select_commands(
    record: &mut LatticeRecord,
    plan: &Plan,
    affected: &Affected,
    now: Timestamp,
    ttl_ms: u64,
    lifetime_ms: u64,
) -> (Vec<CommandMessage>, BTreeMap<String, usize>, Vec<Replacement>) {
    let mut out = Vec::new();
    let mut held: BTreeMap<String, usize> = BTreeMap::new();
    let wanted = plan.commands.iter().filter(|c| affected.contains(&c.app));
    let wanted = wanted.filter(|c| !record.apps.get(&*c.app).is_some_and(|a| a.backing_off(now)));
    let admitted = record.intents.admit_all(wanted, &record.state, now, ttl_ms, lifetime_ms);
    let mut replaced = Vec::new();
    for (c, admission) in admitted {
        match admission {
            Admission::Issue(intent) => {
                let mut message = message_of(&plan.lattice, &intent);
                let undeploying =
                    record.apps.get(&*c.app).is_none_or(|a| a.deployed_version.is_none());
                let why = why(&c.command, &record.state);
                message.reason =
                    if undeploying { format!("{} is undeployed: {why}", c.app) } else { why };
                let mut allocation =
                    allocation::classify(&c.command, &record.state, undeploying, &record.replacing);
                if record.apps.get(&*c.app).is_some_and(|a| a.short_of_capacity) {
                    let state = &record.state;
                    allocation =
                        allocation::after_capacity_shortfall(allocation, &c.command, state);
                }
                if allocation.reason_class == allocation::ReasonClass::HostLost
                    && let Some(id) = allocation::workload_id(&c.command)
                {
                    replaced.push(Replacement {
                        app: c.app.to_string(),
                        id: id.to_string(),
                        host: c.command.target_host().unwrap_or_default().to_string(),
                    });
                }
                message.allocation = Some(allocation);
                out.push(message);
            }
            Admission::Busy | Admission::Waiting { .. } | Admission::AfterRemoval { .. } => {
                *held.entry(c.app.to_string()).or_default() += 1;
            }
        }
    }
    // Replaced: later placements of the same workload are classified as usual.
    for r in &replaced {
        record.replacing.remove(&r.id);
    }
    (out, held, replaced)
}

/// A placement that replaces work of a host that left: `id` of `app`, now on `host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The application the workload belongs to.
    pub app: String,
    /// The component or provider id.
    pub id: String,
    /// The host it is placed on now.
    pub host: String,
}

/// The command message of an order.
pub fn message_of(lattice: &str, intent: &Intent) -> CommandMessage {
    let c = &intent.command;
    CommandMessage {
        id: intent.id.clone(),
        seq: intent.seq,
        lattice: lattice.to_string(),
        app: intent.app.clone(),
        generation: intent.generation,
        kind: c.kind().to_string(),
        subject: c.subject(lattice),
        target_host: c.target_host().map(str::to_string),
        body: String::from_utf8(c.body_bytes()).unwrap_or_default(),
        issued_at: intent.issued_at,
        expires_at: intent.expires_at,
        reason: String::new(),
        trace: String::new(),
        allocation: None,
    }
}

/// Why a planned command is needed, in words, from what `state` observes of its target when it
/// is admitted (placement plans on observed state plus orders in flight, and an order is only
/// admitted on a slot with no other order in flight: the observed state is the base it
/// changes). For the `command sent` log line; never part of what is sent.
pub use wadm_scheduler::command::reason as why;

/// The next instant something in `record` is due after `now`: a host lease running out, an order
/// in flight reaching its deadline, a failure backoff ending. A timer then wakes the lattice.
pub fn next_deadline(
    record: &LatticeRecord,
    lease: &LeaseConfig,
    now: Timestamp,
) -> Option<Timestamp> {
    let leases = wadm_lattice::next_expiry(&record.state, lease);
    let orders = record.intents.next_deadline();
    let retries = record.apps.values().filter_map(|a| a.failure.as_ref().map(|f| f.retry_at));
    let retries = retries.filter(|at| *at > now).min();
    let wakes = record.apps.values().filter_map(|a| a.wake_at).filter(|at| *at > now).min();
    let healthy_deadlines = record.apps.values().filter_map(|a| a.safety.due_at());
    let healthy_deadlines = healthy_deadlines.filter(|at| *at > now).min();
    let avoidances = record.bad_hosts.next_deadline(now);
    [leases, orders, retries, wakes, healthy_deadlines, avoidances].into_iter().flatten().min()
}

/// Note when each planned application's scalers want to be evaluated again (see
/// [`AppRecord::wake_at`]): applications the plan covers (`scope`; all when `None`).
pub fn note_wakes(record: &mut LatticeRecord, plan: &Plan, scope: Option<&BTreeSet<String>>) {
    for (name, app) in record.apps.iter_mut() {
        if scope.is_none_or(|s| s.contains(name)) {
            app.wake_at = plan.wakes.get(name).copied();
        }
    }
}

/// The applications whose failure backoff is over, or whose wake time came, at `now` (a timer
/// step reconciles them).
pub fn retries_due(record: &LatticeRecord, now: Timestamp) -> BTreeSet<String> {
    let due = record.apps.iter().filter(|(_, a)| {
        a.failure.as_ref().is_some_and(|f| f.retry_at <= now)
            || a.wake_at.is_some_and(|at| at <= now)
            || a.safety.due_at().is_some_and(|at| at <= now)
    });
    due.map(|(name, _)| name.clone()).collect()
}

/// The statuses to write for affected applications. An application that reached `deployed`
/// forgets its failure; one backing off is `failed` with the host's reason; an undeployed one is
/// `undeployed` — written here too, because a step that ran before the undeploy reached the
/// runtime may have overwritten the API server's `undeployed` with a status of the old deployment.
pub fn statuses(
    record: &mut LatticeRecord,
    plan: &Plan,
    affected: &Affected,
    now: Timestamp,
) -> Vec<(String, Status)> {
    let mut out = Vec::new();
    let intents = &record.intents;
    for (name, app) in record.apps.iter_mut() {
        if !affected.contains(name) {
            continue;
        }
        let Some(status) = plan.statuses.get(name) else { continue };
        app.short_of_capacity = plan.short_of_capacity.contains(name);
        if app.deployed_version.is_none() {
            // Undeployed: "removing" while stops are planned or unconfirmed, so that
            // `undeploy --wait` can tell when the hosts are clear.
            let planned = plan.commands.iter().filter(|c| *c.app == **name);
            let unissued = planned.filter(|c| intents.get(&Slot::of(&c.command)).is_none());
            let to_go = unissued.count() + intents.pending_for(name);
            let status = if to_go > 0 { Status::removing(to_go) } else { status.clone() };
            out.push((name.clone(), status));
            continue;
        }
        let in_flight = intents.pending_for(name);
        let status = match &app.failure {
            Some(f) if status.status.status_type != StatusType::Deployed => {
                let when = if now < f.retry_at { "retrying later" } else { "retrying" };
                let mut message = format!("{} ({when})", f.message);
                if let Some(hosts) = record.bad_hosts.describe(name) {
                    // Which host keeps failing, and what it said last.
                    message = format!("{message}; {hosts}");
                }
                let mut failed = Status::new(StatusType::Failed, message);
                failed.status.instances = status.status.instances;
                failed
            }
            // Planned on the lattice as it will be once the orders in flight take effect: not
            // deployed before the hosts confirm them.
            _ if in_flight > 0 && status.status.status_type == StatusType::Deployed => {
                let s = if in_flight == 1 { "" } else { "s" };
                let message = format!("{in_flight} command{s} awaiting confirmation");
                let mut pending = status.clone();
                pending.status = wadm_model::StatusInfo {
                    instances: status.status.instances,
                    ..Status::new(StatusType::Reconciling, message).status
                };
                pending
            }
            _ => {
                app.failure = None;
                status.clone()
            }
        };
        out.push((name.clone(), status));
    }
    out
}

/// Forget undeployed applications the plan no longer removes anything for and that have no
/// order in flight. A plan for some applications only (`scope`) decides only about those.
pub fn prune_undeployed(record: &mut LatticeRecord, plan: &Plan, scope: Option<&BTreeSet<String>>) {
    let mut busy: BTreeSet<&str> = plan.commands.iter().map(|c| &*c.app).collect();
    busy.extend(record.intents.pending().map(|(_, i)| i.app.as_str()));
    let planned = |name: &str| scope.is_none_or(|apps| apps.contains(name));
    record.apps.retain(|name, app| {
        app.deployed_version.is_some() || busy.contains(name.as_str()) || !planned(name)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployed(g: u64, v: &str) -> Deployment {
        Deployment {
            store_generation: g,
            deployed_version: Some(v.into()),
            promoted: false,
            ..Deployment::default()
        }
    }

    /// The failure backoff of these tests: 100 ms doubling up to 10 s.
    fn backoff() -> Backoff {
        Backoff {
            base: std::time::Duration::from_millis(100),
            max: std::time::Duration::from_secs(10),
        }
    }

    #[test]
    fn deployments_only_move_forward() {
        let mut r = LatticeRecord::default();
        assert!(apply_deployment(&mut r, "a", Some(&deployed(1, "v1"))));
        assert!(!apply_deployment(&mut r, "a", Some(&deployed(1, "v1"))));
        assert!(apply_deployment(&mut r, "a", Some(&deployed(2, "v2"))));
        assert!(!apply_deployment(&mut r, "a", Some(&deployed(1, "v1"))));
        assert_eq!(r.apps["a"].generation(), 4);
        let undeployed = Deployment {
            store_generation: 2,
            deployed_version: None,
            promoted: false,
            ..Deployment::default()
        };
        assert!(apply_deployment(&mut r, "a", Some(&undeployed)));
        assert_eq!(r.apps["a"].generation(), 5);
        assert!(!apply_deployment(&mut r, "a", None));
        assert!(apply_deployment(&mut r, "a", Some(&deployed(3, "v2"))));
        assert_eq!(r.apps["a"].generation(), 6);
        assert!(!apply_deployment(&mut r, "unknown", None));
    }

    #[test]
    fn the_replaced_version_is_remembered_until_the_next_change() {
        let mut r = LatticeRecord::default();
        apply_deployment(&mut r, "a", Some(&deployed(1, "v1")));
        assert_eq!(r.apps["a"].previous_version, None);
        apply_deployment(&mut r, "a", Some(&deployed(2, "v2")));
        assert_eq!(r.apps["a"].previous_version.as_deref(), Some("v1"));
        // Redeploying the same version keeps what it replaced.
        apply_deployment(&mut r, "a", Some(&deployed(3, "v2")));
        assert_eq!(r.apps["a"].previous_version.as_deref(), Some("v1"));
        // Rollback: the version rolled back from is the previous one now.
        apply_deployment(&mut r, "a", Some(&deployed(4, "v1")));
        assert_eq!(r.apps["a"].previous_version.as_deref(), Some("v2"));
        // After an undeploy, a deploy replaces nothing that still runs.
        apply_deployment(
            &mut r,
            "a",
            Some(&Deployment {
                store_generation: 4,
                deployed_version: None,
                promoted: false,
                ..Deployment::default()
            }),
        );
        apply_deployment(&mut r, "a", Some(&deployed(5, "v3")));
        assert_eq!(r.apps["a"].previous_version, None);
    }

    #[test]
    fn reconciles_are_put_off_within_bounds_then_collected() {
        let config = RuntimeConfig { max_deferred_steps: 3, ..RuntimeConfig::default() };
        let mut r = LatticeRecord::default();
        let one = |app: &str| Affected { every_app: false, apps: [app.to_string()].into() };
        // Queued events: put off, up to three steps.
        for (i, app) in ["a", "b", "c"].iter().enumerate() {
            let mut affected = one(app);
            assert!(defer_or_collect(&mut r, &mut affected, true, 1000 + i as u64, &config));
            assert_eq!(affected, Affected::default());
        }
        assert_eq!(r.deferred.since, 1000);
        let mut affected = one("d");
        assert!(!defer_or_collect(&mut r, &mut affected, true, 1003, &config), "step bound");
        assert_eq!(affected.apps.len(), 4);
        assert!(r.deferred.is_empty());
        // Too old: collected even though events are queued.
        let mut affected = one("a");
        assert!(defer_or_collect(&mut r, &mut affected, true, 2000, &config));
        let mut affected = Affected::default();
        assert!(!defer_or_collect(&mut r, &mut affected, true, 3000, &config), "age bound");
        assert_eq!(affected, one("a"));
        // Nothing queued: everything put off is reconciled now, with this step's apps.
        let mut affected = Affected::all();
        assert!(defer_or_collect(&mut r, &mut affected, true, 3000, &config));
        let mut affected = one("x");
        assert!(!defer_or_collect(&mut r, &mut affected, false, 3001, &config));
        assert!(affected.every_app && affected.apps.contains("x"));
        // Never put off when disabled.
        let off = RuntimeConfig { max_deferred_steps: 0, ..RuntimeConfig::default() };
        let mut affected = one("y");
        assert!(!defer_or_collect(&mut r, &mut affected, true, 3002, &off));
        assert_eq!(affected, one("y"));
    }

    #[test]
    fn a_plan_for_some_apps_prunes_only_those() {
        let mut r = LatticeRecord::default();
        let gone = Deployment {
            store_generation: 2,
            deployed_version: None,
            promoted: false,
            ..Deployment::default()
        };
        for name in ["a", "b"] {
            apply_deployment(&mut r, name, Some(&deployed(1, "v1")));
            apply_deployment(&mut r, name, Some(&gone));
        }
        let plan = Plan::default();
        prune_undeployed(&mut r, &plan, Some(&["a".to_string()].into()));
        assert_eq!(r.apps.keys().collect::<Vec<_>>(), ["b"], "b was not planned for");
        prune_undeployed(&mut r, &plan, None);
        assert!(r.apps.is_empty());
    }

    #[test]
    fn removals_are_admitted_before_additions() {
        use wadm_lattice::{ComponentInstance, HostState};

        let scale = |host: &str, count: u32| {
            Command::ScaleComponent(crate::test_fixtures::scale_request(host, "c", "img:1", count))
        };
        let mut r = LatticeRecord::default();
        r.state.lattice = "l".into();
        for h in ["A", "B"] {
            r.state.hosts.insert(h.into(), HostState { id: h.into(), ..Default::default() });
        }
        let running = ComponentInstance {
            id: "c".into(),
            image_ref: "img:1".into(),
            count: 2,
            ..Default::default()
        };
        r.state.hosts.get_mut("A").unwrap().components.insert("c".into(), running);
        // A move from A to B, in the plan's (make-before-break) order.
        let plan = Plan {
            lattice: "l".into(),
            commands: vec![
                PlannedCommand::new("l", "app", 1, scale("B", 2)),
                PlannedCommand::new("l", "app", 1, scale("A", 0)),
            ],
            ..Plan::default()
        };
        let (out, held, _) = select_commands(&mut r, &plan, &Affected::all(), 0, 60, 70);
        let hosts: Vec<_> = out.iter().map(|m| m.target_host.as_deref()).collect();
        assert_eq!(hosts, [Some("A")], "the stop goes; the start waits for it to show");
        assert_eq!(held.get("app"), Some(&1));
        // Once the stop shows, the start goes.
        r.state.hosts.get_mut("A").unwrap().components.clear();
        let (out, _, _) = select_commands(&mut r, &plan, &Affected::all(), 1, 60, 70);
        let hosts: Vec<_> = out.iter().map(|m| m.target_host.as_deref()).collect();
        assert_eq!(hosts, [Some("B")]);
    }

    #[test]
    fn failures_back_off_and_count() {
        let mut r = LatticeRecord::default();
        apply_deployment(&mut r, "a", Some(&deployed(1, "v1")));
        let b = backoff();
        assert!(note_failure(&mut r, "a", "boom", 1000, &b, 0));
        assert!(r.apps["a"].backing_off(1049));
        assert!(note_failure(&mut r, "a", "boom", 1000, &b, 0));
        assert_eq!(r.apps["a"].attempt(), 2);
        assert_eq!(r.apps["a"].failure.as_ref().unwrap().retry_at, 1100);
        assert!(!note_failure(&mut r, "nope", "boom", 1000, &b, 0));
    }

    #[test]
    fn a_failed_application_keeps_its_instance_counts() {
        let mut r = LatticeRecord::default();
        apply_deployment(&mut r, "a", Some(&deployed(1, "v1")));
        let b = backoff();
        assert!(note_failure(&mut r, "a", "boom", 1000, &b, 0));
        let counts = wadm_model::Instances::new(1, 3);
        let mut planned = Status::new(StatusType::Reconciling, "1/3 instances running");
        planned.status.instances = Some(counts);
        let mut plan = Plan::default();
        plan.statuses.insert("a".into(), planned);
        let out = statuses(&mut r, &plan, &Affected::all(), 1001);
        let (name, status) = &out[0];
        assert_eq!((name.as_str(), status.status.status_type), ("a", StatusType::Failed));
        assert_eq!(status.status.instances, Some(counts));
    }

    #[test]
    fn held_work_moves_into_the_deferred_set() {
        let mut deferred = Deferred::default();
        let mut affected = Affected::default();
        affected.apps.insert("a".into());
        hold(&mut deferred, &mut affected);
        assert_eq!(affected, Affected::default());
        assert!(deferred.apps.contains("a") && !deferred.every_app);
        let mut all = Affected::all();
        hold(&mut deferred, &mut all);
        assert!(deferred.every_app);
    }
}

#[cfg(test)]
mod why_tests {
    use wadm_lattice::{ComponentInstance, HostState, LatticeState};
    use wadm_protocol::ctl::StopProviderRequest;

    use super::*;

    fn scale(count: u32) -> Command {
        Command::ScaleComponent(crate::test_fixtures::scale_request("N1", "web", "img:1", count))
    }

    fn running(count: u32) -> LatticeState {
        let mut state = LatticeState::default();
        let mut host = HostState { id: "N1".into(), ..HostState::default() };
        let c = ComponentInstance {
            id: "web".into(),
            image_ref: "img:1".into(),
            count,
            ..Default::default()
        };
        if count > 0 {
            host.components.insert("web".into(), c);
        }
        state.hosts.insert("N1".into(), host);
        state
    }

    #[test]
    fn reasons_compare_the_command_with_what_the_host_runs() {
        assert_eq!(why(&scale(2), &running(0)), "wanted 2 here, the host runs none");
        assert_eq!(why(&scale(3), &running(1)), "scale up: wanted 3 here, runs 1");
        assert_eq!(why(&scale(1), &running(3)), "scale down: wanted 1 here, runs 3");
        assert_eq!(why(&scale(0), &running(2)), "not wanted on this host any more (it runs 2)");
        assert!(why(&scale(2), &LatticeState::default()).contains("not observed yet"));
        let stop = Command::StopProvider(StopProviderRequest {
            provider_id: "p".into(),
            host_id: "N1".into(),
        });
        assert_eq!(why(&stop, &running(0)), "not wanted on this host any more");
        let put = Command::PutConfig { name: "c".into(), values: Default::default() };
        assert_eq!(why(&put, &running(0)), "config missing");
    }
}
