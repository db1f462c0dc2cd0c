//! Orphan collection in the runtime: objects that carry wadm's marks for an application this
//! lattice's record does not manage are marked (first-seen time in the lattice record, so any
//! replica carries on) and, once still orphaned after the grace period, removed with the same
//! control commands undeploy sends, as orders in flight on the durable command stream. The
//! decision is [`wadm_scheduler::orphans::orphan_pass`] plus [`collect`] here (pure); the
//! pipeline only checks the manifest store for the applications due and logs, counts and records
//! what was swept. Reasoning and limits: `docs/orphans.md`.

use std::collections::{BTreeMap, BTreeSet};

use wadm_lattice::Timestamp;
use wadm_scheduler::orphans::{Orphan, OrphanInput, orphan_pass};
use wadm_scheduler::{PlannedCommand, Reconciler};

use crate::allocation::{self, Allocation, ReasonClass};
use crate::config::RuntimeConfig;
pub use crate::config::{DEFAULT_GRACE, OrphanConfig, OrphanMode};
use crate::decide;
use crate::desired::Deployment;
use crate::intents::{Admission, Slot};
use crate::messages::CommandMessage;
use crate::record::LatticeRecord;

/// One orphan found, reported or removed in a step (for logs, metrics and history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Noted {
    /// The application wadm marked it for, which nobody manages here any more.
    pub app: String,
    /// `component`, `provider`, `link` or `config`.
    pub kind: &'static str,
    /// What it is, in words (`component web on host A`, …).
    pub what: String,
    /// Orphaned since (wadm's clock).
    pub since: Timestamp,
    /// The removal's command message id (sweeps only).
    pub command: Option<String>,
}

/// What one step's orphan collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Orphans first marked in this step.
    pub found: Vec<Noted>,
    /// Past the grace period, reported only (`report` mode), each once.
    pub reported: Vec<Noted>,
    /// Removal commands issued.
    pub swept: Vec<Noted>,
    /// Marks dropped (the object went away or is managed again).
    pub cleared: usize,
    /// Marks standing after the step.
    pub marked: usize,
    /// The pass ran (complete knowledge, a reconcile this step).
    pub ran: bool,
}

/// The applications whose marks are due at `now` in `sweep` mode: the pipeline asks the manifest
/// store about them before the step decides (an application the store has deployed is not
/// orphaned, whatever the record says).
pub fn apps_to_check(
    record: &LatticeRecord,
    now: Timestamp,
    config: &RuntimeConfig,
) -> Vec<String> {
    let settings = &config.orphans;
    if settings.mode != OrphanMode::Sweep {
        return Vec::new();
    }
    let due =
        record.orphans.values().filter(|m| m.since.saturating_add(settings.grace_ms()) <= now);
    let apps: BTreeSet<&str> = due.map(|m| m.app.as_str()).collect();
    apps.into_iter().map(str::to_string).collect()
}

/// Whether some mark is due at `now` and not yet dealt with (a timer step then reconciles).
pub fn due(record: &LatticeRecord, now: Timestamp, config: &RuntimeConfig) -> bool {
    let settings = &config.orphans;
    settings.mode != OrphanMode::Off
        && record
            .orphans
            .values()
            .any(|m| !m.reported && m.since.saturating_add(settings.grace_ms()) <= now)
}

/// When the next mark becomes due after `now`.
pub fn next_due(
    record: &LatticeRecord,
    now: Timestamp,
    config: &RuntimeConfig,
) -> Option<Timestamp> {
    let settings = &config.orphans;
    if settings.mode == OrphanMode::Off {
        return None;
    }
    let grace = settings.grace_ms();
    record.orphans.values().map(|m| m.since.saturating_add(grace)).filter(|at| *at > now).min()
}

/// A removal the hosts refused (or never answered): its orphan waits another grace period
/// before it is tried again (applications nobody manages have no failure backoff of their own).
pub fn removal_failed(record: &mut LatticeRecord, order: &crate::intents::Intent, now: Timestamp) {
    if record.apps.contains_key(&order.app) {
        return;
    }
    if let Some(mark) = record.orphans.get_mut(&slot_key(&Slot::of(&order.command))) {
        mark.since = now;
    }
}

/// The [`Orphan::key`] of the object an order's slot acts on.
fn slot_key(slot: &Slot) -> String {
    match slot {
        Slot::Component { host, component } => Orphan::Component {
            host: host.clone(),
            id: component.clone(),
            image_ref: String::new(),
            annotations: Default::default(),
        }
        .key(),
        Slot::Provider { host, provider } => {
            Orphan::Provider { host: host.clone(), id: provider.clone() }.key()
        }
        Slot::Link(key) => Orphan::Link(key.clone()).key(),
        Slot::Config(name) => Orphan::Config(name.clone()).key(),
    }
}

/// One step's orphan collection (pure): mark, unmark, and — in `sweep` mode — admit the removal
/// of what is due as orders in flight, returned as command messages of reason class `gc`.
///
/// Runs only with complete knowledge: a reconcile this step (`reconciler`: the desired state's
/// declarations, after the first discovery round) and observed state not in doubt; otherwise the
/// marks stay as they are. `checked`: what the manifest store said this step about the
/// applications [`apps_to_check`] named (`None`: not asked, or it did not answer); nothing of an
/// application it was not asked about is removed.
pub fn collect(
    record: &mut LatticeRecord,
    reconciler: Option<&Reconciler>,
    in_doubt: bool,
    checked: Option<&BTreeMap<String, Option<Deployment>>>,
    now: Timestamp,
    config: &RuntimeConfig,
) -> (Vec<CommandMessage>, OrphanReport) {
    let settings = &config.orphans;
    let mut report = OrphanReport::default();
    if settings.mode == OrphanMode::Off {
        report.cleared = record.orphans.len();
        record.orphans.clear();
        record.orphans_held = None;
        return (Vec::new(), report);
    }
    if in_doubt {
        // Observed state is in doubt: no marks change now, and nothing is removed before a
        // complete discovery round merged after this confirms what the hosts run.
        record.orphans_held.get_or_insert(now);
    }
    if record.orphans_held.is_some_and(|since| record.observing.round_merged_at >= since) {
        record.orphans_held = None;
    }
    let Some(reconciler) = reconciler.filter(|_| !in_doubt) else {
        report.marked = record.orphans.len();
        return (Vec::new(), report);
    };
    report.ran = true;
    let lattice = record.state.lattice.clone();
    // Managed: every application of the record (deployed, being undeployed, or with orders in
    // flight: pruning keeps those) and whatever the store has deployed.
    let mut known: BTreeSet<String> = record.apps.keys().cloned().collect();
    let deployed_in_store = checked.into_iter().flatten();
    let deployed_in_store =
        deployed_in_store.filter(|(_, d)| d.as_ref().is_some_and(|d| d.deployed_version.is_some()));
    known.extend(deployed_in_store.map(|(app, _)| app.clone()));
    let busy: BTreeMap<String, String> =
        record.intents.pending().map(|(slot, i)| (slot_key(slot), i.app.clone())).collect();
    let pass = orphan_pass(OrphanInput {
        state: &record.state,
        known: &known,
        catalog: Some(reconciler.catalog()),
        busy: &busy,
        marks: &record.orphans,
        now,
        grace_ms: settings.grace_ms(),
    });
    record.orphans = pass.marks;
    report.cleared = pass.cleared.len();
    let noted = |orphan: &Orphan, app: &str, since: Timestamp| Noted {
        app: app.to_string(),
        kind: orphan.kind(),
        what: orphan.describe(),
        since,
        command: None,
    };
    for (orphan, app) in &pass.found {
        report.found.push(noted(orphan, app, now));
    }
    let ttl_ms = config.command_ttl.as_millis() as u64;
    let lifetime_ms = config.order_lifetime.as_millis() as u64;
    let mut commands = Vec::new();
    for (orphan, app) in &pass.due {
        let key = orphan.key();
        if busy.contains_key(&key) {
            // Its removal is in flight already.
            continue;
        }
        let Some(mark) = record.orphans.get_mut(&key) else { continue };
        let since = mark.since;
        if settings.mode == OrphanMode::Report {
            if !mark.reported {
                mark.reported = true;
                report.reported.push(noted(orphan, app, since));
            }
            continue;
        }
        if record.orphans_held.is_some() {
            continue;
        }
        // Only applications the store was asked about this step (and does not have deployed).
        let Some(store) = checked.and_then(|c| c.get(app)) else { continue };
        let generation = store.as_ref().map_or(0, Deployment::generation);
        let command = orphan.removal();
        let planned = PlannedCommand::new(&lattice, app, generation, command);
        let admission = record.intents.admit(&planned, &record.state, now, ttl_ms, lifetime_ms);
        let Admission::Issue(intent) = admission else { continue };
        let mut message = decide::message_of(&lattice, &intent);
        let secs = now.saturating_sub(since) / 1000;
        message.reason = format!(
            "orphan: marked by wadm for application {app}, which nobody manages here; \
             orphaned for {secs}s"
        );
        let change = allocation::classify(&intent.command, &record.state, false, &BTreeMap::new());
        message.allocation =
            Some(Allocation { change: change.change, reason_class: ReasonClass::Gc });
        let mut swept = noted(orphan, app, since);
        swept.command = Some(message.msg_id());
        report.swept.push(swept);
        commands.push(message);
    }
    report.marked = record.orphans.len();
    (commands, report)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wadm_lattice::{ComponentInstance, HostState};

    use super::*;
    use crate::record::AppRecord;

    const GRACE_MS: u64 = 1_000;

    fn config(mode: OrphanMode) -> RuntimeConfig {
        let orphans = OrphanConfig { mode, grace: Duration::from_millis(GRACE_MS) };
        RuntimeConfig { orphans, ..RuntimeConfig::default() }
    }

    /// Host A runs `ghost-web` with wadm's marks for `ghost`, and `keep-web` of `keep` (managed).
    fn record() -> LatticeRecord {
        let mut record = LatticeRecord::default();
        record.state.lattice = "l".into();
        let mut host = HostState { id: "A".into(), ..Default::default() };
        for (id, app) in [("ghost-web", "ghost"), ("keep-web", "keep")] {
            let annotations = [
                ("wasmcloud.dev/managed-by", "wadm"),
                ("wasmcloud.dev/appspec", app),
                ("wasmcloud.dev/scaler", "s"),
            ];
            let annotations = annotations.iter().map(|(k, v)| (k.to_string(), v.to_string()));
            let c = ComponentInstance {
                id: id.into(),
                image_ref: "img".into(),
                count: 1,
                annotations: annotations.collect(),
                since: 0,
            };
            host.components.insert(id.into(), c);
        }
        record.state.hosts.insert("A".into(), host);
        let keep = AppRecord {
            store_generation: 1,
            deployed_version: Some("v1".into()),
            ..Default::default()
        };
        record.apps.insert("keep".into(), keep);
        record
    }

    fn reconciler() -> Reconciler {
        Reconciler::new("l", Vec::new(), Vec::new())
    }

    fn absent(app: &str) -> BTreeMap<String, Option<Deployment>> {
        BTreeMap::from([(app.to_string(), None)])
    }

    #[test]
    fn sweeps_once_after_the_grace_period_with_the_store_asked() {
        let config = config(OrphanMode::Sweep);
        let mut r = record();
        let rec = reconciler();
        let (sent, report) = collect(&mut r, Some(&rec), false, None, 10_000, &config);
        assert!(sent.is_empty() && report.ran);
        assert_eq!(report.found.len(), 1, "only the ghost: {report:?}");
        assert_eq!(next_due(&r, 10_000, &config), Some(10_000 + GRACE_MS));
        let due_at = 10_000 + GRACE_MS;
        assert!(!due(&r, due_at - 1, &config) && due(&r, due_at, &config));
        assert_eq!(apps_to_check(&r, due_at, &config), ["ghost"]);
        // Due, but the store was not asked this step: nothing.
        let (sent, _) = collect(&mut r, Some(&rec), false, None, due_at, &config);
        assert!(sent.is_empty());
        // Asked and absent: one stop of class gc, an order in flight.
        let store = absent("ghost");
        let (sent, report) = collect(&mut r, Some(&rec), false, Some(&store), due_at, &config);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].app, "ghost");
        assert_eq!(sent[0].kind, "scale_component");
        assert_eq!(sent[0].allocation.map(|a| a.reason_class), Some(ReasonClass::Gc));
        assert_eq!(report.swept.len(), 1);
        assert_eq!(r.intents.pending_for("ghost"), 1);
        // The next step sends nothing more while it is in flight.
        let (sent, _) = collect(&mut r, Some(&rec), false, Some(&store), due_at + 5, &config);
        assert!(sent.is_empty());
        // Refused: tried again only a full grace period later.
        let slot = r.intents.pending().next().map(|(s, _)| s.clone()).expect("in flight");
        let order = r.intents.fail_slot(&slot).expect("the order");
        removal_failed(&mut r, &order, due_at + 10);
        let (sent, _) = collect(&mut r, Some(&rec), false, Some(&store), due_at + 20, &config);
        assert!(sent.is_empty(), "not before another grace period");
        let later = due_at + 10 + GRACE_MS;
        let (sent, _) = collect(&mut r, Some(&rec), false, Some(&store), later, &config);
        assert_eq!(sent.len(), 1, "tried again");
    }

    #[test]
    fn nothing_on_incomplete_knowledge_or_for_an_app_the_store_has_deployed() {
        let config = config(OrphanMode::Sweep);
        let mut r = record();
        let rec = reconciler();
        collect(&mut r, Some(&rec), false, None, 0, &config);
        let marks = r.orphans.clone();
        let store = absent("ghost");
        // In doubt (a takeover) or no reconcile this step: marks untouched, nothing sent.
        let (sent, report) = collect(&mut r, Some(&rec), true, Some(&store), GRACE_MS, &config);
        assert!(sent.is_empty() && !report.ran);
        let (sent, _) = collect(&mut r, None, false, Some(&store), GRACE_MS, &config);
        assert!(sent.is_empty());
        assert_eq!(r.orphans, marks);
        // Nor later, until a complete discovery round merged after the doubt confirms it.
        let later = GRACE_MS * 3;
        let (sent, report) = collect(&mut r, Some(&rec), false, Some(&store), later, &config);
        assert!(sent.is_empty() && report.ran, "held for discovery");
        assert_eq!(r.orphans_held, Some(GRACE_MS));
        r.observing.round_merged_at = GRACE_MS - 1;
        let (sent, _) = collect(&mut r, Some(&rec), false, Some(&store), later, &config);
        assert!(sent.is_empty(), "a round merged before the doubt confirms nothing");
        r.observing.round_merged_at = GRACE_MS + 500;
        let (sent, _) = collect(&mut r, Some(&rec), false, Some(&store), later, &config);
        assert_eq!(sent.len(), 1, "confirmed: swept");
        assert_eq!(r.orphans_held, None);
        let mut r = record();
        collect(&mut r, Some(&rec), false, None, 0, &config);
        // The store has it deployed (the record has not caught up): not an orphan.
        let deployed = Deployment {
            store_generation: 3,
            deployed_version: Some("v1".into()),
            ..Deployment::default()
        };
        let store = BTreeMap::from([("ghost".to_string(), Some(deployed))]);
        let (sent, report) = collect(&mut r, Some(&rec), false, Some(&store), GRACE_MS, &config);
        assert!(sent.is_empty());
        assert_eq!(report.cleared, 1);
        assert!(r.orphans.is_empty());
    }

    #[test]
    fn an_undeployed_store_entry_stamps_its_generation() {
        let config = config(OrphanMode::Sweep);
        let mut r = record();
        let rec = reconciler();
        collect(&mut r, Some(&rec), false, None, 0, &config);
        let undeployed =
            Deployment { store_generation: 4, deployed_version: None, ..Deployment::default() };
        let store = BTreeMap::from([("ghost".to_string(), Some(undeployed.clone()))]);
        let (sent, _) = collect(&mut r, Some(&rec), false, Some(&store), GRACE_MS, &config);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].generation, undeployed.generation(), "not superseded by the executor");
    }

    #[test]
    fn report_reports_once_and_off_forgets() {
        let config = config(OrphanMode::Report);
        let mut r = record();
        let rec = reconciler();
        collect(&mut r, Some(&rec), false, None, 0, &config);
        assert!(apps_to_check(&r, GRACE_MS, &config).is_empty(), "report never asks the store");
        let (sent, report) = collect(&mut r, Some(&rec), false, None, GRACE_MS, &config);
        assert!(sent.is_empty());
        assert_eq!(report.reported.len(), 1);
        let (sent, report) = collect(&mut r, Some(&rec), false, None, GRACE_MS * 2, &config);
        assert!(sent.is_empty() && report.reported.is_empty(), "reported once");
        assert!(!due(&r, GRACE_MS * 3, &config), "no wake-ups for what was reported");
        let off = self::config(OrphanMode::Off);
        let (sent, report) = collect(&mut r, Some(&rec), false, None, GRACE_MS * 3, &off);
        assert!(sent.is_empty() && r.orphans.is_empty());
        assert_eq!(report.cleared, 1);
    }

    #[test]
    fn a_deadline_wakes_the_lattice_when_a_mark_is_due() {
        use crate::step::{self, Applied, Event, Fetched, Input};
        let config = config(OrphanMode::Sweep);
        let mut r = record();
        let rec = reconciler();
        let mut applied = Applied::default();
        let decided = step::decide(&mut r, &mut applied, Some(&rec), 10_000, 0, &config);
        assert_eq!(r.orphans.len(), 1);
        assert_eq!(decided.orphans.found.len(), 1);
        assert_eq!(decided.next_deadline, Some(10_000 + GRACE_MS), "woken at mark + grace");
        // The timer at that deadline reconciles every application (the pass runs again).
        let at = 10_000 + GRACE_MS;
        let timer =
            Event { input: Input::Timer { at }, sequence: 1, delivered: 1, stored_at: None };
        let applied = step::apply(&mut r, &[timer], &Fetched::default(), at, false, 0, &config);
        assert!(applied.affected.every_app);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("Sweep".parse::<OrphanMode>(), Ok(OrphanMode::Sweep));
        assert_eq!("report".parse::<OrphanMode>(), Ok(OrphanMode::Report));
        assert_eq!("off".parse::<OrphanMode>(), Ok(OrphanMode::Off));
        assert!("maybe".parse::<OrphanMode>().is_err());
    }
}
