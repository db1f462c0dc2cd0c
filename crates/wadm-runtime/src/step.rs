//! The pure step: a batch of one lattice's event-stream messages, the time and what the shell
//! fetched for them go in; the record's next state, the commands to publish, the statuses to
//! write, the entities to persist and the next deadline come out. No I/O, no clock, no
//! randomness: `now` and a random sample are arguments, so a step replays exactly.
//!
//! A step runs in two pure halves around the one thing the shell must fetch in between (the
//! reconciler of the desired state the first half produced): [`apply`] folds every message into
//! the record, [`crate::decide`] plans, admits orders ([`crate::intents`]) and derives statuses.

use std::collections::{BTreeMap, BTreeSet};

use wadm_lattice::{Change, Changes, EventContext, Timestamp};
use wadm_model::Status;
use wadm_protocol::{HostEvent, HostInventory, StringMap};
use wadm_scheduler::{Command, Plan, Reconciler};

use crate::config::RuntimeConfig;
use crate::decide::{self, Affected, HostFailure};
use crate::desired::Deployment;
use crate::discovery::parts::merge_report;
use crate::intents::{Intent, Settlement};
use crate::messages::{CommandDropped, CommandFailure, CommandMessage, DiscoveryReport, Incoming};
use crate::record::LatticeRecord;

/// One decoded event-stream message.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A host CloudEvent.
    Host {
        /// The CloudEvent envelope's source host, id and time.
        ctx: EventContext,
        /// The decoded event.
        event: HostEvent,
    },
    /// A deploy or undeploy of an application: its deployment is in [`Fetched::deployments`].
    Manifest {
        /// The application's name.
        name: String,
    },
    /// A periodic resync: every deployment is in [`Fetched::all_deployments`].
    Tick,
    /// A deadline was reached.
    Timer {
        /// The deadline (ms since the epoch).
        at: Timestamp,
    },
    /// A command the lattice refused, or gave up on unanswered.
    CommandFailed(CommandFailure),
    /// A command the executor dropped unsent.
    CommandDropped(CommandDropped),
    /// The answers of a discovery round (or of one part of it).
    Discovered(DiscoveryReport),
}

/// One message of a batch, as the step sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The decoded message.
    pub input: Input,
    /// Its stream sequence.
    pub sequence: u64,
    /// How many times it was delivered (1: the first time).
    pub delivered: u64,
    /// When the stream stored it (the server's clock), when known.
    pub stored_at: Option<Timestamp>,
}

/// Decode one event-stream message: its lattice and input, or why it is skipped.
pub fn decode(subject: &str, payload: &[u8]) -> Result<(String, Input), String> {
    let Some((lattice, incoming)) = crate::messages::classify(subject, payload) else {
        return Err(format!("{subject}: not ours"));
    };
    let input = match incoming {
        Incoming::Host => match HostEvent::decode_bytes(payload) {
            Ok((envelope, event)) => {
                Input::Host { ctx: EventContext::from_cloud_event(&envelope), event }
            }
            Err(e) => return Err(format!("{subject}: {e}")),
        },
        Incoming::ManifestPublished { name } | Incoming::ManifestUnpublished { name } => {
            Input::Manifest { name }
        }
        Incoming::Tick => Input::Tick,
        Incoming::Timer { at } => Input::Timer { at },
        Incoming::CommandFailed(f) => Input::CommandFailed(f),
        Incoming::CommandDropped(d) => Input::CommandDropped(d),
        Incoming::Discovered(d) => Input::Discovered(d),
        Incoming::Ignored(reason) => return Err(reason),
    };
    Ok((lattice, input))
}

/// What the shell read for a batch before the step: the deployments its manifest events name,
/// and every deployment when it holds a tick.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fetched {
    /// The deployment of each application a manifest event names; `None` when it is gone from
    /// the store.
    pub deployments: BTreeMap<String, Option<Deployment>>,
    /// Every deployment of the lattice, by name, when the batch holds a tick; `None` otherwise.
    pub all_deployments: Option<BTreeMap<String, Deployment>>,
}

impl Fetched {
    /// What to fetch for `events`: application names, and whether every deployment is needed.
    pub fn wanted(events: &[Event]) -> (BTreeSet<String>, bool) {
        let mut names = BTreeSet::new();
        let mut all = false;
        for e in events {
            match &e.input {
                Input::Manifest { name } => {
                    names.insert(name.clone());
                }
                Input::Tick => all = true,
                _ => {}
            }
        }
        (names, all)
    }
}

/// What [`apply`] found: input to [`decide()`] and to the shell.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// The applications to reconcile.
    pub affected: Affected,
    /// The entities to write: what changed, plus hosts whose bookkeeping must survive.
    pub persist: Changes,
    /// Failures hosts reported, with the application of the order each answered (if known).
    pub host_failures: Vec<(HostFailure, Option<String>)>,
    /// Observed state is in doubt: a discovery round would confirm it.
    pub in_doubt: bool,
    /// Some message was a redelivery of one the head records as applied.
    pub replayed: bool,
    /// A command failure was reported (never put off).
    pub command_failed: bool,
    /// Configs whose values the lattice should be asked for (events say a config changed, not
    /// what it holds).
    pub configs_to_read: BTreeSet<String>,
    /// Refused commands of an application's current generation, `(app, reason)`: failures of a
    /// rollout (see [`crate::revert`]), like hosts' `*_failed` events.
    pub rollout_failures: Vec<(String, String)>,
    /// Providers' failed health checks, `(app, reason)`: a failure while the application rolls
    /// out a version that has not become stable.
    pub health_failures: Vec<(String, String)>,
    /// What the manifest store said about the applications of orphans due (see
    /// [`crate::orphans::apps_to_check`]); `None`: not asked.
    pub orphan_check: Option<BTreeMap<String, Option<Deployment>>>,
    /// Hosts reported stopped: the shell asks each one (`host.get`) and tells [`host_answer`].
    pub verify_hosts: BTreeSet<String>,
}

/// Fold `events` into `record` at `now` (`fresh`: the record was read back with nothing kept,
/// a takeover). `sample` seeds the failure backoff's jitter.
pub fn apply(
    record: &mut LatticeRecord,
    events: &[Event],
    fetched: &Fetched,
    now: Timestamp,
    fresh: bool,
    sample: u64,
    config: &RuntimeConfig,
) -> Applied {
    let mut out = Applied { in_doubt: fresh, ..Applied::default() };
    let lattice = record.state.lattice.clone();
    let quiet = crate::recording::longest_quiet_ms(
        config.lease.heartbeat_interval_ms,
        config.tick_every.as_millis() as u64,
    );
    for (i, e) in events.iter().enumerate() {
        let sample = sample.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if e.delivered > 1 {
            out.affected = Affected::all();
        }
        // A redelivery of an event the head records as applied: reconcile only.
        let replay = e.delivered > 1 && e.sequence > 0 && e.sequence <= record.last_sequence;
        if let Some(stored_at) = e.stored_at
            && let Some(resumed_at) = record.recording.note_stored(stored_at, quiet)
        {
            // The stream was not recording: the silence is not held against the hosts,
            // whichever event (a tick, a timer, one host's heartbeat) ends it.
            crate::recording::restart_leases(&mut record.state, resumed_at, &mut out.persist);
        }
        out.replayed |= replay;
        match &e.input {
            Input::Host { .. }
            | Input::CommandFailed(_)
            | Input::CommandDropped(_)
            | Input::Discovered(_)
                if replay => {}
            Input::Host { ctx, event } => {
                apply_host(record, ctx, event, e, now, config, &mut out);
            }
            Input::Manifest { name } => {
                let deployment = fetched.deployments.get(name).cloned().flatten();
                decide::apply_deployment(record, name, deployment.as_ref());
                // Shared resources may change hands: reconcile everything.
                out.affected = Affected::all();
            }
            Input::Timer { at } => {
                // Leases that ran out and backoffs that ended; orders past their deadline are
                // settled below, as in every step. The deadline counts as reached even when
                // this replica's clock is a little behind the publisher's.
                // Leases are judged at when the stream recorded this timer, not at `now`: in
                // a backlog (a step that stalled on storage), hosts' heartbeats recorded after
                // it are still to come and must not be taken for silence.
                let recorded = e.stored_at.map_or(now, |s| s.min(now));
                let due = recorded.max((*at).min(recorded.saturating_add(1_000)));
                let expired = wadm_lattice::expire(&mut record.state, due, &config.lease);
                if expired.changes.iter().any(|c| matches!(c, Change::HostRemoved { .. })) {
                    out.affected = Affected::all();
                }
                out.affected.apps.extend(decide::retries_due(record, now));
                if crate::orphans::due(record, now, config) {
                    out.affected = Affected::all();
                }
                out.persist.merge(expired);
            }
            Input::Tick => {
                // Leases run from when the stream stored each host's latest event, so they
                // survive wadm being down: a host that died meanwhile gets no fresh lease.
                // Judged at when the stream recorded the tick (as a timer is, above).
                let recorded = e.stored_at.map_or(now, |s| s.min(now));
                out.persist.merge(wadm_lattice::expire(&mut record.state, recorded, &config.lease));
                if let Some(all) = &fetched.all_deployments {
                    let known: Vec<String> = record.apps.keys().cloned().collect();
                    for name in known {
                        decide::apply_deployment(record, &name, all.get(&name));
                    }
                    for (name, d) in all {
                        decide::apply_deployment(record, name, Some(d));
                        if d.deployed_version.is_none()
                            && !record.apps.contains_key(name)
                            && leaves_traces(&record.state, name)
                        {
                            // Forgotten once nothing of it was left, and a link of it showed up
                            // since (its `linkdef_set` was lost, a discovery round found it):
                            // undeployed again, so the plan removes it.
                            let app = crate::head::AppRecord {
                                store_generation: d.store_generation,
                                ..Default::default()
                            };
                            record.apps.insert(name.clone(), app);
                        }
                    }
                }
                // A config put in flight is confirmed by the values a read tells; when that read
                // went unanswered, ask again (at most once a tick) rather than wait for the
                // order's deadline.
                out.configs_to_read.extend(unread_puts(record));
                // A put or delete that should have shown by now: its event may be lost, and wadm
                // would believe for good what it believed before. Ask.
                let overdue = now.saturating_sub(config.request_timeout.as_millis() as u64 * 2);
                out.configs_to_read.extend(overdue_config_orders(record, overdue));
                out.affected = Affected::all();
            }
            Input::CommandDropped(dropped)
                if dropped.unsure && in_flight(record, &dropped.msg_id) =>
            {
                // An earlier attempt may still be executed (a request answered late): the order
                // keeps counting as in flight — nothing is placed beside what it may start, and
                // what it may have removed is not ordered away again — until the host confirms
                // it or its deadline passes; the lattice is asked.
                tracing::debug!(
                    lattice = %lattice, command = %dropped.msg_id, reason = %dropped.reason,
                    "command dropped after an unanswered attempt: still in flight"
                );
                out.in_doubt = true;
            }
            Input::CommandDropped(dropped) => {
                if let Some(order) = record.intents.fail_msg(&dropped.msg_id) {
                    tracing::debug!(
                        lattice = %lattice, app = %order.app, command = %dropped.msg_id,
                        reason = %dropped.reason, "command dropped unsent"
                    );
                    // Nobody received it: re-planning at once would ask the same gone host
                    // again; the next event or tick of the application does (its host's lease
                    // runs out meanwhile).
                    if dropped.reason != crate::executor::NO_RESPONDERS {
                        out.affected.apps.insert(order.app);
                    }
                }
            }
            Input::CommandFailed(failure) => {
                out.command_failed = true;
                if let Some(order) = record.intents.fail_msg(&failure.msg_id) {
                    // Refused, unreadable or unanswered: a strike against its host.
                    strike(record, &order, &failure.message, now, config);
                    crate::orphans::removal_failed(record, &order, now);
                    out.affected.apps.insert(order.app);
                }
                let current = record.apps.get(&failure.app).map(|a| a.generation());
                if current == Some(failure.generation) {
                    let reason = failure.message.clone();
                    out.rollout_failures.push((failure.app.clone(), reason));
                    let backoff = &config.failure_backoff;
                    decide::note_failure(
                        record,
                        &failure.app,
                        &failure.message,
                        now,
                        backoff,
                        sample,
                    );
                    out.affected.apps.insert(failure.app.clone());
                }
            }
            Input::Discovered(report)
                if crate::discovery::first_round::round_outdated(
                    &record.observing,
                    report.started_at,
                ) =>
            {
                tracing::debug!(
                    lattice = %lattice, started_at = report.started_at, sequence = e.sequence,
                    "discovery round older than the last one merged: skipped"
                );
            }
            Input::Discovered(report) => {
                let changes = merge_discovered(record, report, now, &mut out);
                if report.completes_round() {
                    record.observing.discovered = true;
                    record.observing.round_merged_at = now;
                    out.affected = Affected::all();
                } else {
                    // A part of a round: what it changed now, everything after the last.
                    out.affected.every_app |= changes.every_app;
                    out.affected.apps.extend(changes.apps.iter().cloned());
                }
                out.persist.merge(changes);
            }
        }
        record.last_sequence = record.last_sequence.max(e.sequence);
        // Orders whose effect the lattice now shows (or that can no longer take effect) are
        // settled after every message, not once per batch: a confirmed update's echo must be
        // known before the host's next event in the same batch is applied.
        settle(record, now, config, &mut out);
    }
    if events.is_empty() {
        settle(record, now, config, &mut out);
    }
    // Avoidances that ended: the share may come back. Strikes of applications no longer
    // deployed, or of hosts that left, are forgotten.
    let (apps, hosts) = (&record.apps, &record.state.hosts);
    let ended = record.bad_hosts.expire(now, |s| {
        apps.get(&s.app).is_some_and(|a| a.deployed_version.is_some())
            && hosts.contains_key(&s.host)
    });
    out.affected.apps.extend(ended);
    record.updated_at = now;
    note_host_writes(record, &out.persist);
    out
}

/// Settle the orders in flight against the record's observed state; their applications are
/// reconciled (an order held behind them may go now).
fn settle(record: &mut LatticeRecord, now: Timestamp, config: &RuntimeConfig, out: &mut Applied) {
    if record.intents.is_idle() {
        return;
    }
    let echo_ms = config.update_echo.as_millis() as u64;
    let settled = record.intents.settle(&record.state, now, echo_ms);
    for (order, how) in &settled.removed {
        tracing::debug!(
            lattice = %record.state.lattice, app = %order.app, command = %order.msg_id(),
            kind = order.command.kind(), settled = ?how, "order settled"
        );
        match how {
            // Accepted (or not), never ran: a strike against its host.
            Settlement::Expired => {
                let why = "not running by the order's deadline";
                strike(record, order, why, now, config);
            }
            Settlement::Confirmed => {
                if let Some((host, resource)) = crate::bad_hosts::placement_of(&order.command) {
                    record.bad_hosts.placed(&order.app, resource, host);
                }
            }
            Settlement::HostGone | Settlement::Failed => {}
        }
    }
    out.affected.every_app |= settled.touches_configs();
    out.affected.apps.extend(settled.apps());
}

/// Remember the `last_seen` of every host record the step writes.
fn note_host_writes(record: &mut LatticeRecord, persist: &Changes) {
    for change in &persist.changes {
        let host = match change {
            Change::HostAdded { host }
            | Change::HostUpdated { host }
            | Change::HostLabelsChanged { host } => host,
            Change::HostRemoved { host, .. } => {
                record.host_written.remove(host);
                continue;
            }
            _ => continue,
        };
        if let Some(h) = record.state.hosts.get(host) {
            record.host_written.insert(host.clone(), h.last_seen);
        }
    }
}

fn apply_host(
    record: &mut LatticeRecord,
    ctx: &EventContext,
    event: &HostEvent,
    e: &Event,
    now: Timestamp,
    config: &RuntimeConfig,
    out: &mut Applied,
) {
    let lease_ms = config.lease.lease_ms();
    let as_echo;
    let event = match update_echo(record, ctx, event, now) {
        None => event,
        Some(echo) => {
            tracing::debug!(
                lattice = %record.state.lattice, id = %ctx.id, sequence = e.sequence,
                "component_scaled to 0 after an update: the host's echo, not a loss"
            );
            let Some(echo) = echo else { return };
            as_echo = echo;
            &as_echo
        }
    };
    if let Some(host) = unknown_claimant(record, ctx, event) {
        // An unknown host claims to run applications' work: on its word wadm would remove
        // instances elsewhere. It is asked first (`host_answer`): its inventory replaces this
        // event; a phantom that does not answer changes nothing.
        out.verify_hosts.insert(host);
        return;
    }
    let hosts_before = record.state.hosts.len();
    let snapshot_of = snapshot_host(ctx, event);
    let before = snapshot_of.and_then(|h| snapshot_stamp(record, h));
    // Heard when the stream stored it: a backlog applied late (after wadm was down, say) does
    // not renew leases it should not.
    let heard = e.stored_at.map_or(now, |at| at.min(now));
    // The host's own clock orders its events, within reason: never ahead of when it was heard.
    let ctx = &ctx.clamped(heard.saturating_add(MAX_CLOCK_AHEAD_MS));
    let changes = wadm_lattice::apply(&mut record.state, ctx, event, heard);
    if let HostEvent::ComponentScaled(c) = event {
        tracing::debug!(
            lattice = %record.state.lattice, host = %c.host_id, component = %c.component_id,
            count = c.max_instances, id = %ctx.id, time = ?ctx.time, outcome = ?changes.outcome,
            changes = ?changes.changes, sequence = e.sequence, "component scaled"
        );
    }
    if let Some(host) = snapshot_of
        && let Some(seen) = record.state.hosts.get(host).map(|h| h.last_seen)
        && snapshot_stamp(record, host) != before
    {
        // A newer heartbeat: its stamp and the host's lease are persisted. When it changed
        // nothing (no entity, no mark) they are persisted at most once per quarter lease: a
        // replica that reads the state back then sees a lease at most a quarter lease short,
        // and a stale snapshot it might accept differs from the stored state in nothing.
        let written = record.host_written.get(host).copied().unwrap_or(0);
        let changed = !changes.changes.is_empty() || !changes.marked.is_empty();
        if changed || seen.saturating_sub(written) >= lease_ms / 4 {
            out.persist.changes.push(Change::HostUpdated { host: host.to_string() });
        }
    }
    out.in_doubt |= !changes.needs_inventory.is_empty();
    out.verify_hosts.extend(changes.needs_verification.iter().cloned());
    // A host learnt from anything but its `host_started` ran before wadm saw it start: others
    // may still be running unseen.
    let learnt = record.state.hosts.len() > hosts_before;
    if learnt && !matches!(event, HostEvent::HostStarted(_)) {
        record.observing.unannounced_hosts = true;
    }
    for change in &changes.changes {
        if let Change::ConfigSet { name } = change {
            // Its values are unknown until this read answers (unanswered, they stay unknown:
            // the read is asked again, and a put that should hold is not taken for done).
            out.configs_to_read.insert(name.clone());
        }
    }
    out.affected.every_app |= changes.every_app;
    out.affected.apps.extend(changes.apps.iter().cloned());
    out.persist.merge(changes);
    if let Some(failure) = crate::revert::health_failure(&record.state, &ctx.source, event) {
        out.affected.apps.insert(failure.0.clone());
        out.health_failures.push(failure);
    }
    if let Some(failure) = decide::host_failure(&ctx.source, event) {
        // The order it answers is settled: failed, a strike against its host.
        let order = record.intents.fail_slot(&failure.slot());
        if let Some(order) = &order {
            strike(record, order, failure.message(), now, config);
        }
        out.host_failures.push((failure, order.map(|i| i.app)));
    }
}

/// Note a failed `order` as a strike against its host, when it placed something there (see
/// [`crate::bad_hosts`]): enough strikes in a row and the host is avoided for that resource.
fn strike(
    record: &mut LatticeRecord,
    order: &Intent,
    error: &str,
    now: Timestamp,
    config: &RuntimeConfig,
) {
    let Some((host, resource)) = crate::bad_hosts::placement_of(&order.command) else { return };
    let key = (order.app.as_str(), resource, host);
    if record.bad_hosts.failed(key, error, now, &config.bad_hosts) {
        tracing::info!(
            lattice = %record.state.lattice, app = %order.app, resource, host,
            error, avoid_for = ?config.bad_hosts.avoid_for,
            "host keeps failing this placement: avoided while other hosts can take it"
        );
    }
}

/// Whether the lattice holds a link of application `name` (from or to a component id derived
/// from its name) while nothing runs with its marks. Links carry no marks, so orphan collection
/// cannot find them; instances with its appspec are orphan collection's, after its grace period.
fn leaves_traces(state: &wadm_lattice::LatticeState, name: &str) -> bool {
    let prefix = format!("{}-", wadm_model::names::sanitize(name));
    let ours = |id: &str| id.starts_with(&prefix);
    let owned = |a: &StringMap| wadm_lattice::app_of(a) == Some(name);
    let runs = state.hosts.values().any(|h| {
        h.components.values().any(|c| owned(&c.annotations))
            || h.providers.values().any(|p| owned(&p.annotations))
    });
    !runs && state.links.values().any(|l| ours(&l.source_id) || ours(&l.target))
}

/// The host of `event` when wadm does not know it and the event says it runs work of some
/// application (instances wadm counts toward targets).
fn unknown_claimant(
    record: &LatticeRecord,
    ctx: &EventContext,
    event: &HostEvent,
) -> Option<String> {
    use wadm_lattice::app_of;
    let (host, claims) = match event {
        HostEvent::HostHeartbeat(inv) => {
            let claims = inv
                .components
                .iter()
                .any(|c| c.max_instances > 0 && app_of(&c.annotations).is_some())
                || inv.providers.iter().any(|p| app_of(&p.annotations).is_some());
            (Some(inv.host_id.as_str()), claims)
        }
        HostEvent::ComponentScaled(c) => {
            (Some(c.host_id.as_str()), c.max_instances > 0 && app_of(&c.annotations).is_some())
        }
        HostEvent::ProviderStarted(p) => {
            (Some(p.host_id.as_str()), app_of(&p.annotations).is_some())
        }
        _ => (None, false),
    };
    // The host is the event's source, as the reducer takes it; else the one its body names.
    let host = if ctx.source.is_empty() { host.unwrap_or_default() } else { &ctx.source };
    (claims && !host.is_empty() && !record.state.hosts.contains_key(host)).then(|| host.to_string())
}

/// Merge a discovery round (or one part of it): observed state, and the renewed leases of the
/// hosts that answered.
fn merge_discovered(
    record: &mut LatticeRecord,
    report: &DiscoveryReport,
    now: Timestamp,
    out: &mut Applied,
) -> Changes {
    let mut changes = merge_report(&mut record.state, report, now);
    tracing::debug!(
        lattice = %record.state.lattice, started_at = report.started_at,
        hosts = report.hosts.len(), changes = ?changes.changes, "discovery merged"
    );
    // Discovery renewed every answering host's lease: persist it.
    for (host, inventory) in &report.hosts {
        let inventory = inventory.as_ref().map(|i| i.host_id.as_str());
        let id = Some(host.id.as_str()).filter(|id| !id.is_empty());
        if let Some(host) = id.or(inventory)
            && record.state.hosts.contains_key(host)
        {
            changes.changes.push(Change::HostUpdated { host: host.to_string() });
        }
    }
    for change in &changes.changes {
        if let Change::ConfigSet { name } = change
            && record.state.configs.get(name).is_some_and(|c| c.values.is_none())
        {
            out.configs_to_read.insert(name.clone());
        }
    }
    changes
}

/// Record what a host wadm asked about (`host.get`, sent at `asked_at`) answered: a host
/// reported stopped, or an unknown one that claimed to run applications' work.
///
/// An inventory is a fresh fact, merged as a discovery answer: it contradicts a reported stop
/// (the host is alive; the event was spoofed or mistaken) and makes an unknown host known.
/// Anything else — no responders, no answer, a refusal — confirms a reported stop (the host
/// and its work are removed now) and leaves an unknown host unknown (a phantom's claims change
/// nothing; a real host's next event asks again). A host whose report a heartbeat already
/// contradicted is left as it is.
pub fn host_answer(
    record: &mut LatticeRecord,
    applied: &mut Applied,
    host: &str,
    answer: Option<HostInventory>,
    asked_at: Timestamp,
    now: Timestamp,
) {
    let lattice = record.state.lattice.clone();
    let known = record.state.hosts.get(host).map(|h| h.stop_reported.is_some());
    let changes = match (known, answer) {
        (Some(false), _) => return,
        (None, None) => {
            tracing::warn!(
                %lattice, %host,
                "an unknown host claims to run applications' work but does not answer: ignored"
            );
            return;
        }
        (Some(true), None) => wadm_lattice::confirm_stop(&mut record.state, host, now),
        (_, Some(mut inventory)) => {
            if let Some(state) = record.state.hosts.get_mut(host) {
                tracing::warn!(
                    %lattice, %host,
                    "host_stopped contradicted: the host answers with its inventory; it stays"
                );
                state.stop_reported = None;
            } else {
                // Learnt from anything but its `host_started`: others may run unseen too.
                record.observing.unannounced_hosts = true;
            }
            inventory.host_id = host.to_string();
            let round = wadm_lattice::Discovery::of_inventory(asked_at, inventory);
            let mut changes = wadm_lattice::merge_discovery(&mut record.state, &round, now);
            changes.changes.push(Change::HostUpdated { host: host.to_string() });
            changes
        }
    };
    applied.affected.every_app |= changes.every_app;
    applied.affected.apps.extend(changes.apps.iter().cloned());
    if changes.changes.iter().any(|c| matches!(c, Change::HostRemoved { .. })) {
        applied.affected = Affected::all();
    }
    applied.persist.merge(changes);
}

/// What the lattice answered when asked for a config (`config.get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigRead {
    /// It holds these values.
    Values(StringMap),
    /// It does not exist.
    Missing,
    /// No answer (or one that could not be read): nothing is learnt.
    Unanswered,
}

/// Record what the lattice answered when asked for a config: values that changed are persisted
/// with the step; a config the lattice does not have is removed from the observed state (its
/// `config_deleted` was lost or is late), so a config an application needs is put again.
pub fn config_values(
    record: &mut LatticeRecord,
    applied: &mut Applied,
    name: &str,
    read: ConfigRead,
) {
    match read {
        ConfigRead::Values(values) => {
            let config = record.state.configs.entry(name.to_string()).or_insert_with(|| {
                // Its `config_set` was lost or is late.
                applied.affected.every_app = true;
                wadm_lattice::ConfigState { name: name.to_string(), values: None }
            });
            if config.values.as_ref() != Some(&values) {
                config.values = Some(values);
                applied.persist.changes.push(Change::ConfigSet { name: name.to_string() });
            }
        }
        ConfigRead::Missing => {
            if record.state.configs.remove(name).is_some() {
                applied.persist.changes.push(Change::ConfigRemoved { name: name.to_string() });
                applied.affected.every_app = true;
            }
        }
        ConfigRead::Unanswered => {}
    }
}

/// Settle the orders in flight again once the shell has read the values of configs (a put is
/// confirmed by the values it stored, which only a read tells).
pub fn settle_after_reads(
    record: &mut LatticeRecord,
    applied: &mut Applied,
    now: Timestamp,
    config: &RuntimeConfig,
) {
    settle(record, now, config, applied);
}

/// Whether the step must reconcile (the shell then fetches the reconciler): reconciles are put
/// off while `queued` events wait (within bounds), held until the first discovery round, and
/// skipped when nothing any application depends on changed (the common heartbeat).
pub fn wants_plan(
    record: &mut LatticeRecord,
    applied: &mut Applied,
    queued: u64,
    now: Timestamp,
    config: &RuntimeConfig,
) -> Planning {
    let may_defer = queued > 0 && applied.host_failures.is_empty() && !applied.command_failed;
    decide::defer_or_collect(record, &mut applied.affected, may_defer, now, config);
    let wait = config.first_round_wait;
    let held = record.observing.holds_reconciles(now, wait, record.state.hosts.len());
    if held {
        crate::decide::hold(&mut record.deferred, &mut applied.affected);
        return Planning::HeldForDiscovery;
    }
    let affected = &applied.affected;
    if !affected.every_app && affected.apps.is_empty() && applied.host_failures.is_empty() {
        return Planning::Quiet;
    }
    Planning::Plan
}

/// What [`wants_plan`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planning {
    /// Reconcile now: fetch the reconciler and plan.
    Plan,
    /// Nothing to reconcile now: nothing an application depends on changed, or the reconcile is
    /// put off while events are queued.
    Quiet,
    /// Reconciles wait for the first discovery round (what they affect is kept for later).
    HeldForDiscovery,
}

/// What a step decided.
#[derive(Debug, Clone, Default)]
pub struct Decided {
    /// The command messages to publish, in order.
    pub commands: Vec<CommandMessage>,
    /// The statuses to write, by application.
    pub statuses: Vec<(String, Status)>,
    /// Planned commands held back, per application.
    pub held: BTreeMap<String, usize>,
    /// When the lattice next has something due.
    pub next_deadline: Option<Timestamp>,
    /// Writes to the manifest store (reverts, stable versions, history notes), for the shell.
    pub store_actions: Vec<crate::revert::StoreAction>,
    /// What orphan collection did (see [`crate::orphans`]).
    pub orphans: crate::orphans::OrphanReport,
}

/// The applications a step must plan for, when not every one: the affected applications and
/// those of the host failures (a failure's application gets its status written). `None` (plan
/// everything) when every application is affected, or a failure's application is only known from
/// the plan.
fn planned_apps(applied: &Applied) -> Option<BTreeSet<&str>> {
    if applied.affected.every_app {
        return None;
    }
    let mut apps: BTreeSet<&str> = applied.affected.apps.iter().map(String::as_str).collect();
    for (_, app) in &applied.host_failures {
        apps.insert(app.as_deref()?);
    }
    Some(apps)
}

/// Plan with `reconciler` (`None`: no reconcile this step) on the observed state with the orders
/// in flight applied, record failures, admit orders, derive statuses.
pub fn decide(
    record: &mut LatticeRecord,
    applied: &mut Applied,
    reconciler: Option<&Reconciler>,
    now: Timestamp,
    sample: u64,
    config: &RuntimeConfig,
) -> Decided {
    let lattice = record.state.lattice.clone();
    // A batch that touched some applications reconciles those (and what is coupled to them):
    // every consumer below looks only at affected applications and at the failures' own, and
    // pruning only at the applications the plan covers (`scope`).
    // Hosts that keep failing a placement are passed over where others can take the share.
    let avoid = record.bad_hosts.avoid(now);
    let (plan, scope) = match (reconciler, planned_apps(applied)) {
        (Some(r), None) => {
            (r.reconcile_avoiding(&record.intents.project(&record.state), now, &avoid), None)
        }
        (Some(r), Some(apps)) => {
            let projected = record.intents.project(&record.state);
            let scoped = r.reconcile_apps_avoiding(&projected, now, apps, &avoid);
            (scoped.plan, Some(scoped.apps))
        }
        (None, _) => (Plan { lattice: lattice.clone(), computed_at: now, ..Plan::default() }, None),
    };
    if let Some(r) = reconciler {
        crate::revert::note_policies(record, r);
    }
    let mut store_actions = Vec::new();
    for (i, (failure, app)) in applied.host_failures.iter().enumerate() {
        let Some(app) = app.clone().or_else(|| failure.app(&plan)) else { continue };
        let sample = sample.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let backoff = &config.failure_backoff;
        if decide::note_failure(record, &app, failure.message(), now, backoff, sample) {
            let reason = crate::revert::failure_reason(failure);
            store_actions.extend(crate::revert::on_failure(record, &app, &reason));
            applied.affected.apps.insert(app);
        }
    }
    let mut late_or_unhealthy = crate::revert::track_deadlines(record, now);
    let unhealthy = applied.health_failures.iter();
    let unhealthy = unhealthy.filter(|(app, _)| crate::revert::rolling_out_app(record, app));
    late_or_unhealthy.extend(unhealthy.cloned());
    for (app, reason) in &late_or_unhealthy {
        let backoff = &config.failure_backoff;
        decide::note_failure(record, app, reason, now, backoff, sample);
        applied.affected.apps.insert(app.clone());
    }
    for (app, reason) in applied.rollout_failures.iter().chain(&late_or_unhealthy) {
        store_actions.extend(crate::revert::on_failure(record, app, reason));
    }
    let ttl_ms = config.command_ttl.as_millis() as u64;
    let lifetime_ms = config.order_lifetime.as_millis() as u64;
    crate::allocation::note_left(&mut record.replacing, &applied.persist.changes, now);
    let (mut commands, held, replaced) =
        decide::select_commands(record, &plan, &applied.affected, now, ttl_ms, lifetime_ms);
    if applied.replayed {
        // The step that applied a redelivered event may have committed its orders and stopped
        // before publishing them: publish every order in flight again (same ids, so what was
        // published is deduplicated by the stream).
        let issued: BTreeSet<String> = commands.iter().map(|c| c.msg_id()).collect();
        let again = record.intents.pending().map(|(_, i)| i);
        let again = again.filter(|i| !issued.contains(&i.msg_id()) && now < i.expires_at);
        let again: Vec<_> = again
            .map(|i| {
                let mut message = decide::message_of(&lattice, i);
                let why = decide::why(&i.command, &record.state);
                message.reason = format!("published again after a redelivery: {why}");
                let undeploying =
                    record.apps.get(&i.app).is_none_or(|a| a.deployed_version.is_none());
                let mut allocation = crate::allocation::classify(
                    &i.command,
                    &record.state,
                    undeploying,
                    &record.replacing,
                );
                if !record.apps.contains_key(&i.app) {
                    // Only orphan collection orders for an application the record does not know.
                    allocation.reason_class = crate::allocation::ReasonClass::Gc;
                }
                message.allocation = Some(allocation);
                message
            })
            .collect();
        commands.extend(again);
    }
    crate::revert::note_orders_in_flight(record);
    let (swept, orphans) = crate::orphans::collect(
        record,
        reconciler,
        applied.in_doubt,
        applied.orphan_check.as_ref(),
        now,
        config,
    );
    commands.extend(swept);
    store_actions.extend(crate::revert::host_lost_notes(&replaced));
    store_actions.extend(crate::revert::batch_notes(record, &plan.rollouts));
    let mut statuses = decide::statuses(record, &plan, &applied.affected, now);
    store_actions.extend(crate::revert::on_statuses(record, &mut statuses));
    // Reverts decided earlier whose deployment the record does not show yet: again (idempotent).
    let decided_now: BTreeSet<String> = store_actions.iter().map(|a| a.app().to_string()).collect();
    let again =
        crate::revert::pending(record).into_iter().filter(|a| !decided_now.contains(a.app()));
    store_actions.extend(again);
    if reconciler.is_some() {
        decide::note_wakes(record, &plan, scope.as_ref());
        decide::prune_undeployed(record, &plan, scope.as_ref());
    }
    let next_deadline = decide::next_deadline(record, &config.lease, now);
    let next_deadline = [next_deadline, crate::orphans::next_due(record, now, config)];
    let next_deadline = next_deadline.into_iter().flatten().min();
    applied.persist.changes.sort();
    applied.persist.changes.dedup();
    Decided { commands, statuses, held, next_deadline, store_actions, orphans }
}

/// The configs with a put in flight whose values wadm does not know (their read went unanswered).
fn unread_puts(record: &LatticeRecord) -> Vec<String> {
    let puts = record.intents.pending().filter_map(|(_, i)| match &i.command {
        Command::PutConfig { name, .. } => Some(name),
        _ => None,
    });
    let unread =
        |name: &&String| record.state.configs.get(*name).is_some_and(|c| c.values.is_none());
    puts.filter(unread).cloned().collect()
}

/// Configs with a put or delete in flight issued before `before` whose effect does not show yet.
fn overdue_config_orders(record: &LatticeRecord, before: Timestamp) -> Vec<String> {
    let configs = &record.state.configs;
    record
        .intents
        .pending()
        .filter_map(|(_, i)| match &i.command {
            Command::DeleteConfig { name }
                if i.issued_at < before && configs.contains_key(name) =>
            {
                Some(name.clone())
            }
            Command::PutConfig { name, .. }
                if i.issued_at < before && !configs.contains_key(name) =>
            {
                Some(name.clone())
            }
            _ => None,
        })
        .collect()
}

/// Whether the order with `msg_id` is in flight.
fn in_flight(record: &LatticeRecord, msg_id: &str) -> bool {
    record.intents.pending().any(|(_, i)| i.msg_id() == msg_id)
}

/// How far ahead of wadm's (the stream's) clock a host's event time may be; later times are
/// taken as when the event was heard.
pub const MAX_CLOCK_AHEAD_MS: u64 = 5_000;

/// Whether `event` is the `component_scaled(new ref, 0)` a 1.9.2 host sends after a
/// `component.update` (the component keeps running): `Some` when it is, with what to apply in
/// its place — the component as wadm knows it on that host, at the new ref (the update keeps
/// the count), under the echo's own stamp, so that a duplicate of the echo is stale and a late
/// `component_scaled(new ref, n)` confirms nothing new — or `None` when wadm knows no instance
/// there (the echo is then only consumed).
fn update_echo(
    record: &LatticeRecord,
    ctx: &EventContext,
    event: &HostEvent,
    now: Timestamp,
) -> Option<Option<HostEvent>> {
    let HostEvent::ComponentScaled(c) = event else { return None };
    if c.max_instances != 0 {
        return None;
    }
    let host = if ctx.source.is_empty() { c.host_id.as_str() } else { ctx.source.as_str() };
    if !record.intents.is_update_echo(host, &c.component_id, &c.image_ref, now) {
        return None;
    }
    let known = record.state.hosts.get(host).and_then(|h| h.components.get(&c.component_id));
    let count = known.map_or(0, |k| k.count);
    Some((count > 0).then(|| {
        let mut running = c.clone();
        running.max_instances = count;
        HostEvent::ComponentScaled(running)
    }))
}

/// The host whose snapshot stamp a heartbeat or `host_started` event moves.
fn snapshot_host<'a>(ctx: &'a EventContext, event: &'a HostEvent) -> Option<&'a str> {
    match event {
        HostEvent::HostHeartbeat(_) | HostEvent::HostStarted(_) if !ctx.source.is_empty() => {
            Some(&ctx.source)
        }
        HostEvent::HostHeartbeat(inventory) if !inventory.host_id.is_empty() => {
            Some(&inventory.host_id)
        }
        _ => None,
    }
}

/// The stamp of the newest snapshot applied for `host`.
fn snapshot_stamp(record: &LatticeRecord, host: &str) -> Option<wadm_lattice::EventStamp> {
    record.state.bookkeeping.hosts.get(host).and_then(|c| c.snapshot.clone())
}

#[cfg(test)]
mod tests {
    use wadm_lattice::{ComponentInstance, HostState};
    use wadm_protocol::ctl::UpdateComponentRequest;
    use wadm_protocol::event::ComponentScaled;
    use wadm_scheduler::{Command, PlannedCommand};

    use super::*;

    fn scaled(image: &str, count: u32, id: &str, time: u64) -> Event {
        let event = HostEvent::ComponentScaled(ComponentScaled {
            component_id: "c".into(),
            host_id: "A".into(),
            image_ref: image.into(),
            max_instances: count,
            ..Default::default()
        });
        let ctx = EventContext { source: "A".into(), id: id.into(), time: Some(time) };
        Event { input: Input::Host { ctx, event }, sequence: time, delivered: 1, stored_at: None }
    }

    /// A lattice record where host A runs `c` (img:1) x3 and wadm ordered its update to img:2.
    fn updating() -> LatticeRecord {
        let mut record = LatticeRecord::default();
        record.state.lattice = "l".into();
        let mut host = HostState { id: "A".into(), last_seen: 1, ..Default::default() };
        let running = ComponentInstance {
            id: "c".into(),
            image_ref: "img:1".into(),
            count: 3,
            ..Default::default()
        };
        host.components.insert("c".into(), running);
        record.state.hosts.insert("A".into(), host);
        let update = Command::UpdateComponent(UpdateComponentRequest {
            component_id: "c".into(),
            new_component_ref: "img:2".into(),
            host_id: "A".into(),
            annotations: None,
        });
        let planned = PlannedCommand::new("l", "app", 2, update);
        record.intents.admit(&planned, &record.state, 10, 60_000, 70_000);
        record
    }

    fn dropped(msg_id: &str, unsure: bool, sequence: u64) -> Event {
        let dropped = CommandDropped {
            app: "app".into(),
            msg_id: msg_id.into(),
            kind: "scale_component".into(),
            reason: "expired".into(),
            unsure,
        };
        Event { input: Input::CommandDropped(dropped), sequence, delivered: 1, stored_at: None }
    }

    /// Leases of 2.5 s: 1 s heartbeats, 0.5 s slack.
    fn short_leases() -> RuntimeConfig {
        let mut config = RuntimeConfig::default();
        config.lease.heartbeat_interval_ms = 1_000;
        config.lease.slack_ms = 500;
        config.tick_every = std::time::Duration::from_millis(500);
        config
    }

    /// An event first delivered, recorded by the stream at `stored_at`.
    fn stamped(input: Input, sequence: u64, stored_at: Timestamp) -> Event {
        Event { input, sequence, delivered: 1, stored_at: Some(stored_at) }
    }

    #[test]
    fn a_silence_of_the_stream_does_not_expire_hosts_whatever_ends_it() {
        let config = short_leases();
        let at = stamped;
        let none = Fetched::default();
        let two_hosts = || {
            let mut record = LatticeRecord::default();
            record.state.lattice = "l".into();
            for id in ["A", "B"] {
                let host = HostState { id: id.into(), last_seen: 2_000, ..Default::default() };
                record.state.hosts.insert(id.into(), host);
            }
            apply(&mut record, &[at(Input::Tick, 1, 2_000)], &none, 2_000, false, 0, &config);
            record
        };
        // Nothing is stored for 4.6 s (no stream leader), then a tick or a timer (whichever
        // replica publishes first; no replica need have noticed the outage).
        for first in [Input::Tick, Input::Timer { at: 4_500 }] {
            let mut record = two_hosts();
            let applied =
                apply(&mut record, &[at(first.clone(), 2, 6_600)], &none, 6_700, false, 0, &config);
            assert_eq!(
                record.state.hosts.len(),
                2,
                "{first:?}: the silence is not held against them"
            );
            assert!(applied.persist.changes.contains(&Change::HostUpdated { host: "A".into() }));
            // Still silent one lease (2.5 s) after the stream came back, with ticks recorded
            // all along: lost then, not before.
            let ticks: Vec<Event> =
                (0..5).map(|i| at(Input::Tick, 3 + i, 7_100 + i * 500)).collect();
            apply(&mut record, &ticks[..4], &none, 8_600, false, 0, &config);
            assert_eq!(record.state.hosts.len(), 2, "{first:?}: lease runs until 9.1 s");
            apply(&mut record, &ticks[4..], &none, 9_100, false, 0, &config);
            assert!(record.state.hosts.is_empty(), "{first:?}: lost one lease after the silence");
        }
        // While the stream records (ticks every 0.5 s), a silent host is lost at its lease.
        let mut record = two_hosts();
        let busy: Vec<Event> = (0..6).map(|i| at(Input::Tick, i + 2, 2_500 + i * 500)).collect();
        apply(&mut record, &busy[..4], &none, 4_000, false, 0, &config);
        assert_eq!(record.state.hosts.len(), 2, "the leases run until 4.5 s");
        apply(&mut record, &busy[4..], &none, 5_000, false, 0, &config);
        assert!(record.state.hosts.is_empty(), "silent hosts are lost as usual");
    }

    #[test]
    fn a_tick_or_timer_handled_late_judges_leases_when_it_was_recorded() {
        let config = short_leases();
        let at = stamped;
        let none = Fetched::default();
        for late in [Input::Tick, Input::Timer { at: 3_000 }] {
            let mut record = LatticeRecord::default();
            record.state.lattice = "l".into();
            let host = HostState { id: "A".into(), last_seen: 2_000, ..Default::default() };
            record.state.hosts.insert("A".into(), host);
            // Recorded at 3 s, handled at 20 s (the step stalled on storage meanwhile): the
            // host's lease (2.5 s) had not run out when the stream recorded it.
            apply(&mut record, &[at(late.clone(), 1, 3_000)], &none, 20_000, false, 0, &config);
            assert_eq!(record.state.hosts.len(), 1, "{late:?}: not lost in a backlog");
            // Ticks recorded every 0.5 s from then on find the host silent since 2 s: lost.
            let ticks: Vec<Event> =
                (0..4).map(|i| at(Input::Tick, 2 + i, 3_500 + i * 500)).collect();
            apply(&mut record, &ticks, &none, 20_000, false, 0, &config);
            assert!(record.state.hosts.is_empty(), "{late:?}: lost once the stream says so");
        }
    }

    #[test]
    fn a_removal_dropped_after_an_unanswered_attempt_stays_in_flight() {
        let mut record = updating();
        let config = RuntimeConfig::default();
        let slot = crate::intents::Slot::Component { host: "A".into(), component: "c".into() };
        record.intents.fail_slot(&slot);
        let stop =
            Command::ScaleComponent(crate::test_fixtures::scale_request("A", "c", "img:1", 0));
        let planned = PlannedCommand::new("l", "app", 2, stop);
        record.intents.admit(&planned, &record.state, 20, 60_000, 70_000);
        let msg_id = record.intents.get(&slot).unwrap().msg_id();
        // Its retry expired unsent, but the first attempt went unanswered: the host may have
        // stopped the component. Forgotten, the stop would be planned and sent again while the
        // first may be in flight; it stays in flight and the lattice is asked.
        let applied = apply(
            &mut record,
            &[dropped(&msg_id, true, 30)],
            &Fetched::default(),
            40,
            false,
            0,
            &config,
        );
        assert!(applied.in_doubt);
        assert_eq!(record.intents.get(&slot).map(|i| i.msg_id()), Some(msg_id.clone()));
        assert!(record.intents.project(&record.state).hosts["A"].components.is_empty());
        // Confirmed by the host (or forgotten at its deadline), as any other order.
        let stopped = [scaled("img:1", 0, "e1", 50)];
        apply(&mut record, &stopped, &Fetched::default(), 50, false, 0, &config);
        assert!(record.intents.is_empty());

        // A drop at the first delivery: nobody got it, the order is forgotten.
        record.state = updating().state;
        record.intents.admit(&planned, &record.state, 60, 60_000, 70_000);
        let msg_id = record.intents.get(&slot).unwrap().msg_id();
        apply(
            &mut record,
            &[dropped(&msg_id, false, 60)],
            &Fetched::default(),
            61,
            false,
            0,
            &config,
        );
        assert!(record.intents.is_empty());
    }

    #[test]
    fn a_forgotten_undeployed_app_whose_link_shows_up_is_undeployed_again() {
        let mut record = LatticeRecord::default();
        record.state.lattice = "l".into();
        let config = RuntimeConfig::default();
        let undeployed = Deployment { store_generation: 3, ..Deployment::default() };
        let fetched = Fetched {
            all_deployments: Some(BTreeMap::from([("my-app".to_string(), undeployed)])),
            ..Fetched::default()
        };
        let tick = |sequence| Event { input: Input::Tick, sequence, delivered: 1, stored_at: None };
        apply(&mut record, &[tick(1)], &fetched, 1, false, 0, &config);
        assert!(record.apps.is_empty(), "nothing of it runs: nothing to undeploy");
        // A link of it shows up (its `linkdef_set` was lost; a discovery round found it).
        let link = crate::test_fixtures::http_link("my_app-front", "my_app-back");
        record.state.links.insert(link.key(), link.clone());
        let applied = apply(&mut record, &[tick(2)], &fetched, 2, false, 0, &config);
        assert!(record.apps.get("my-app").is_some_and(|a| a.deployed_version.is_none()));
        assert!(applied.affected.every_app);
        // While an instance with its marks runs, it is orphan collection's (after its grace).
        record.apps.clear();
        let instance = wadm_lattice::ComponentInstance {
            id: "my_app-front".into(),
            annotations: StringMap::from([(
                wadm_lattice::APPSPEC_ANNOTATION.to_string(),
                "my-app".to_string(),
            )]),
            ..Default::default()
        };
        let mut host = wadm_lattice::HostState { id: "H".into(), ..Default::default() };
        host.components.insert(instance.id.clone(), instance);
        record.state.hosts.insert("H".into(), host);
        apply(&mut record, &[tick(3)], &fetched, 3, false, 0, &config);
        assert!(record.apps.is_empty(), "an orphan's: not undeployed again");
        record.state.hosts.clear();
        // Another application's link brings nothing back.
        record.apps.clear();
        record.state.links.clear();
        let other =
            wadm_protocol::Link { source_id: "my_app_2-front".into(), target: "x".into(), ..link };
        record.state.links.insert(other.key(), other);
        apply(&mut record, &[tick(4)], &fetched, 4, false, 0, &config);
        assert!(record.apps.is_empty());
    }

    #[test]
    fn a_config_put_whose_read_went_unanswered_is_read_again_on_a_tick() {
        let mut record = LatticeRecord::default();
        record.state.lattice = "l".into();
        let config = RuntimeConfig::default();
        let values = StringMap::from([("k".to_string(), "v".to_string())]);
        let put = Command::PutConfig { name: "cfg".into(), values: values.clone() };
        record.intents.admit(&PlannedCommand::new("l", "app", 2, put), &record.state, 0, 60, 70);
        let tick = |sequence| Event { input: Input::Tick, sequence, delivered: 1, stored_at: None };
        let applied = apply(&mut record, &[tick(1)], &Fetched::default(), 1, false, 0, &config);
        assert!(applied.configs_to_read.is_empty(), "nothing stored yet: nothing to read");
        // Its `config_set` is read at once; that read goes unanswered.
        let event =
            HostEvent::ConfigSet(wadm_protocol::event::ConfigEvent { config_name: "cfg".into() });
        let ctx = EventContext { source: "A".into(), id: "e1".into(), time: Some(2) };
        let set =
            Event { input: Input::Host { ctx, event }, sequence: 2, delivered: 1, stored_at: None };
        let applied = apply(&mut record, &[set], &Fetched::default(), 2, false, 0, &config);
        assert_eq!(applied.configs_to_read, BTreeSet::from(["cfg".to_string()]));
        let mut applied = applied;
        config_values(&mut record, &mut applied, "cfg", ConfigRead::Unanswered);
        assert_eq!(record.intents.len(), 1, "unknown values confirm nothing");
        // The next tick asks again; the answer confirms the put.
        let mut applied = apply(&mut record, &[tick(3)], &Fetched::default(), 3, false, 0, &config);
        assert_eq!(applied.configs_to_read, BTreeSet::from(["cfg".to_string()]));
        config_values(&mut record, &mut applied, "cfg", ConfigRead::Values(values));
        // What a read told is persisted (a replica that reads the record back must not see
        // unknown values and put the config again).
        assert!(applied.persist.changes.contains(&Change::ConfigSet { name: "cfg".into() }));
        settle_after_reads(&mut record, &mut applied, 3, &config);
        assert!(record.intents.is_empty());
        assert!(applied.affected.every_app, "a settled config order may free any application");
    }

    #[test]
    fn a_config_set_unread_leaves_no_old_values_behind() {
        let mut record = LatticeRecord::default();
        record.state.lattice = "l".into();
        let config = RuntimeConfig::default();
        let old = StringMap::from([("k".to_string(), "old".to_string())]);
        let new = StringMap::from([("k".to_string(), "new".to_string())]);
        let known = wadm_lattice::ConfigState { name: "cfg".into(), values: Some(old.clone()) };
        record.state.configs.insert("cfg".into(), known);
        let put = Command::PutConfig { name: "cfg".into(), values: new.clone() };
        record.intents.admit(&PlannedCommand::new("l", "app", 2, put), &record.state, 0, 60, 70);
        // Its `config_set` arrives; the read that follows goes unanswered.
        let event =
            HostEvent::ConfigSet(wadm_protocol::event::ConfigEvent { config_name: "cfg".into() });
        let ctx = EventContext { source: "A".into(), id: "e1".into(), time: Some(2) };
        let set =
            Event { input: Input::Host { ctx, event }, sequence: 1, delivered: 1, stored_at: None };
        let mut applied = apply(&mut record, &[set], &Fetched::default(), 2, false, 0, &config);
        config_values(&mut record, &mut applied, "cfg", ConfigRead::Unanswered);
        // The old values are not kept as if nothing had changed: a later manifest wanting them
        // back would otherwise find them "there" and put nothing.
        assert_eq!(record.state.configs["cfg"].values, None);
        let tick = Event { input: Input::Tick, sequence: 2, delivered: 1, stored_at: None };
        let applied = apply(&mut record, &[tick], &Fetched::default(), 3, false, 0, &config);
        assert_eq!(applied.configs_to_read, BTreeSet::from(["cfg".to_string()]), "asked again");
    }

    #[test]
    fn an_updates_echo_in_the_same_batch_as_its_answer_is_not_applied() {
        let mut record = updating();
        // A 1.9.2 host answers the update with (img:2, 3) then (img:2, 0); both in one batch.
        let batch = [scaled("img:2", 3, "e1", 11), scaled("img:2", 0, "e2", 12)];
        let config = RuntimeConfig::default();
        let applied = apply(&mut record, &batch, &Fetched::default(), 20, false, 0, &config);
        let c = &record.state.hosts["A"].components["c"];
        assert_eq!((c.image_ref.as_str(), c.count), ("img:2", 3), "the echo was not applied");
        assert!(record.intents.is_empty(), "the update is confirmed");
        assert!(applied.affected.apps.contains("app"));
    }

    #[test]
    fn an_echo_ahead_of_the_updates_answer_is_not_a_loss() {
        let mut record = updating();
        let config = RuntimeConfig::default();
        // The update's (img:2, 3) is delayed: its echo (and a duplicate of it) comes first.
        let echo = scaled("img:2", 0, "e2", 12);
        let batch = [echo.clone(), Event { sequence: 13, ..echo }];
        apply(&mut record, &batch, &Fetched::default(), 20, false, 0, &config);
        let c = &record.state.hosts["A"].components["c"];
        assert_eq!((c.image_ref.as_str(), c.count), ("img:2", 3), "still running, updated");
        assert!(record.intents.is_empty(), "the update is confirmed");
        // The late answer changes nothing; a second echo (the update executed twice: a late
        // answer, then the retry) is no loss either; a stop after the echo window is applied.
        let late = [scaled("img:2", 3, "e1", 11), scaled("img:2", 0, "e4", 14)];
        apply(&mut record, &late, &Fetched::default(), 21, false, 0, &config);
        assert_eq!(record.state.hosts["A"].components["c"].count, 3);
        let stop = [scaled("img:2", 0, "e5", 10_050)];
        apply(&mut record, &stop, &Fetched::default(), 10_100, false, 0, &config);
        assert!(record.state.hosts["A"].components.is_empty());
    }
}
