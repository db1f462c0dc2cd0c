//! The event pipeline: one step per event-stream message.
//!
//! A step checks out the lattice's [`LatticeRecord`] (with its head revision, see [`crate::record`]),
//! applies the event at `now` (host event → reducer; deploy/undeploy → re-read the deployment from
//! the manifest store; tick → leases, deployments re-read, everything reconciled; command failure
//! → backoff; discovery answers → merged), reconciles, writes the entities the step changed and
//! then the head with compare-and-set. A conflict means another replica committed first: the step
//! starts over from the state read back from the store. A redelivered event whose stream sequence
//! the head already records as applied is not applied again, only reconciled (its commands are
//! re-published and deduplicated). Only after the write are the
//! chosen commands published (deduplicated by id) and the statuses written; the caller acks last.
//! A crash anywhere before the ack makes the event come back; a redelivered event reconciles
//! every application, so commands lost with the crash are re-published (or deduplicated).
//!
//! The reconcile uses the [`wadm_scheduler::Reconciler`] this replica keeps for the lattice when
//! the record's desired state is the one it was built from ([`reconcilers`]): steady-state steps
//! read no manifest and build no scaler; a changed desired state is loaded and built at once.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;
use wadm_lattice::{Change, Changes, EventContext};
use wadm_nats::store::StateStore;
use wadm_protocol::HostEvent;
use wadm_scheduler::Plan;
use wadm_server::kv::{Kv, KvError};
use wadm_server::status::{StatusError, StatusStore};

use crate::clock::{Clock, Random};
use crate::config::RuntimeConfig;
use crate::decide::{self, Affected};
use crate::desired::DesiredSource;
use crate::io::{ControlClient, Delivery, Inbox, IoError, Outbox, Outgoing, with_progress};
use crate::messages::{Incoming, classify};
use crate::record::{LatticeRecord, Loaded, RecordError, RecordStore};
use reconcilers::ReconcilerCache;

mod discovered;
mod inputs;
pub mod reconcilers;
mod tick;
use inputs::{snapshot_host, snapshot_stamp};

/// Why a step failed (the event is redelivered).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("lattice {0}: too many concurrent writers, will retry")]
    Contended(String),
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    pub lattice: String,
    /// Commands newly stored in the command stream.
    pub published: usize,
    /// Commands the stream already had (same id within the dedupe window).
    pub duplicates: usize,
    /// Statuses that changed.
    pub statuses: usize,
    /// Compare-and-set conflicts overcome.
    pub conflicts: u32,
    /// Why the message was skipped, if it was.
    pub skipped: Option<String>,
    /// Observed state is in doubt (this replica took the lattice over and read it back from the
    /// store, or an event came from a host wadm did not know): a discovery round would confirm it.
    pub state_in_doubt: bool,
    /// The reconcile was held until the lattice's first complete discovery round (hosts ran
    /// before wadm saw them start, see [`crate::first_round`]).
    pub held_for_discovery: bool,
    /// Planned commands held back: another order on their slot is in flight, or a config they
    /// name is not observed yet (see [`crate::intents`]).
    pub held: usize,
    /// Orders in flight after the step.
    pub in_flight: usize,
    /// When the lattice next has something due (a lease, an order's deadline, a retry): the
    /// replica publishes a timer for then.
    pub next_deadline: Option<wadm_lattice::Timestamp>,
}

/// One event-stream message as a step sees it.
#[derive(Debug, Clone, Copy)]
pub struct EventMessage<'a> {
    pub subject: &'a str,
    pub payload: &'a [u8],
    /// Its stream sequence.
    pub sequence: u64,
    /// How many times it was delivered (1: the first time).
    pub delivered: u64,
    /// Events of the lattice queued behind it.
    pub queued: u64,
    /// When the stream stored it (the server's clock), when known.
    pub stored_at: Option<wadm_lattice::Timestamp>,
}

/// The I/O a pipeline uses.
pub struct PipelineIo<K, T, D, S, O, C> {
    /// The bucket of lattice heads (compare-and-set).
    pub records: K,
    /// Observed state, one key per entity.
    pub state: T,
    /// Desired state (the manifest store).
    pub desired: D,
    /// Where application statuses go.
    pub status: S,
    /// The command stream.
    pub commands: O,
    /// Control requests (to read config values).
    pub control: C,
}

/// The event pipeline of one replica.
pub struct Pipeline<K, T, D, S, O, C> {
    records: RecordStore<K, T>,
    desired: D,
    status: S,
    commands: O,
    control: C,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    config: RuntimeConfig,
    reconcilers: ReconcilerCache,
}

impl<K, T, D, S, O, C> Pipeline<K, T, D, S, O, C>
where
    K: Kv,
    T: StateStore,
    D: DesiredSource,
    S: StatusStore,
    O: Outbox,
    C: ControlClient,
{
    pub fn new(
        io: PipelineIo<K, T, D, S, O, C>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        config: RuntimeConfig,
    ) -> Self {
        Self {
            records: RecordStore::new(io.records, io.state),
            desired: io.desired,
            status: io.status,
            commands: io.commands,
            control: io.control,
            clock,
            random,
            config,
            reconcilers: ReconcilerCache::default(),
        }
    }

    /// The record store (for diagnostics and tests).
    pub fn records(&self) -> &RecordStore<K, T> {
        &self.records
    }

    /// The reconcilers this replica keeps per lattice (for diagnostics and tests).
    pub fn reconcilers(&self) -> &ReconcilerCache {
        &self.reconcilers
    }

    /// Take the next event from `inbox`, handle it, ack it (nak with backoff on failure).
    /// `Ok(None)`: nothing was deliverable within `wait`.
    pub async fn step<I: Inbox>(
        &self,
        inbox: &I,
        wait: Duration,
    ) -> Result<Option<Processed>, PipelineError>
    where
        I::Delivery: Sync,
    {
        let Some(delivery) = inbox.next(wait).await? else { return Ok(None) };
        // Everything the step logs (the commands it issues included) carries the event it
        // handles: decisions are traceable from the event to the commands.
        let span = tracing::debug_span!(
            "event",
            subject = delivery.subject(),
            sequence = delivery.stream_sequence(),
            delivered = delivery.delivered()
        );
        let message = EventMessage {
            subject: delivery.subject(),
            payload: delivery.payload(),
            sequence: delivery.stream_sequence(),
            delivered: delivery.delivered(),
            queued: delivery.pending(),
            stored_at: delivery.stored_at(),
        };
        let work = self.process_message(message).instrument(span);
        let result = with_progress(&delivery, self.config.progress_every, work).await;
        match result {
            Ok(done) => {
                delivery.ack().await?;
                Ok(Some(done))
            }
            Err(e) => {
                let attempt = u32::try_from(delivery.delivered()).unwrap_or(u32::MAX);
                let delay = self.config.request_backoff.delay_ms(attempt, self.random.next_u64());
                tracing::warn!(error = %e, "event step failed; redelivering");
                delivery.nak(Duration::from_millis(delay)).await?;
                Err(e)
            }
        }
    }

    /// Handle one event-stream message (without acking it), as if no other event were queued.
    pub async fn process(
        &self,
        subject: &str,
        payload: &[u8],
        sequence: u64,
        delivered: u64,
    ) -> Result<Processed, PipelineError> {
        self.process_queued(subject, payload, sequence, delivered, 0).await
    }

    /// Handle one event-stream message (without acking it) with `queued` more events of the
    /// lattice waiting behind it: while some wait, the reconcile may be put off (see
    /// [`crate::record::Deferred`]).
    pub async fn process_queued(
        &self,
        subject: &str,
        payload: &[u8],
        sequence: u64,
        delivered: u64,
        queued: u64,
    ) -> Result<Processed, PipelineError> {
        let message =
            EventMessage { subject, payload, sequence, delivered, queued, stored_at: None };
        self.process_message(message).await
    }

    /// Handle one event-stream message (without acking it).
    pub async fn process_message(
        &self,
        message: EventMessage<'_>,
    ) -> Result<Processed, PipelineError> {
        let EventMessage { subject, payload, sequence, delivered, queued, stored_at } = message;
        let Some((lattice, incoming)) = classify(subject, payload) else {
            return Ok(Processed {
                skipped: Some(format!("{subject}: not ours")),
                ..Default::default()
            });
        };
        if let Incoming::Ignored(reason) = incoming {
            return Ok(Processed { lattice, skipped: Some(reason), ..Default::default() });
        }
        let mut conflicts = 0;
        loop {
            let Loaded { mut record, base, fresh, .. } = self.records.checkout(&lattice).await?;
            let now = self.clock.now();
            if base.revision == 0 && record.observing.since == 0 {
                // The first step of this lattice's state.
                record.observing.since = now;
            }
            let mut affected = if delivered > 1 { Affected::all() } else { Affected::default() };
            let mut host_failure = None;
            let mut failed_app: Option<String> = None;
            // The entities to write: what changed, plus hosts whose bookkeeping must survive.
            let mut persist = Changes::default();
            let mut in_doubt = fresh;
            // A redelivery of an event the head records as applied: reconcile only.
            let replay = delivered > 1 && sequence > 0 && sequence <= record.last_sequence;
            match &incoming {
                Incoming::Host if replay => {}
                Incoming::CommandFailed(_)
                | Incoming::CommandDropped(_)
                | Incoming::Discovered(_)
                    if replay => {}
                Incoming::Host => match HostEvent::decode_bytes(payload) {
                    Ok((envelope, event)) => {
                        let ctx = EventContext::from_cloud_event(&envelope);
                        if update_echo(&mut record, &ctx, &event, now) {
                            tracing::debug!(
                                lattice = %lattice, id = %ctx.id, sequence,
                                "component_scaled to 0 right after a confirmed update: the \
                                 host's echo, not applied"
                            );
                        } else {
                            let hosts_before = record.state.hosts.len();
                            let snapshot_of = snapshot_host(&ctx, &event);
                            let before = snapshot_of.and_then(|h| snapshot_stamp(&record, h));
                            // Heard when the stream stored it: a backlog applied late (after
                            // wadm was down, say) does not renew leases it should not.
                            let heard = stored_at.map_or(now, |at| at.min(now));
                            let changes =
                                wadm_lattice::apply(&mut record.state, &ctx, &event, heard);
                            if let HostEvent::ComponentScaled(c) = &event {
                                tracing::debug!(
                                    lattice = %lattice, host = %c.host_id,
                                    component = %c.component_id, count = c.max_instances,
                                    id = %ctx.id, time = ?ctx.time, outcome = ?changes.outcome,
                                    changes = ?changes.changes, sequence, "component scaled"
                                );
                            }
                            if let Some(host) = snapshot_of
                                && record.state.hosts.contains_key(host)
                                && snapshot_stamp(&record, host) != before
                            {
                                // A newer heartbeat: its stamp and the host's lease are persisted.
                                persist
                                    .changes
                                    .push(Change::HostUpdated { host: host.to_string() });
                            }
                            in_doubt |= !changes.needs_inventory.is_empty();
                            // A host learnt from anything but its `host_started` ran before wadm
                            // saw it start: others may still be running unseen.
                            let learnt = record.state.hosts.len() > hosts_before;
                            if learnt && !matches!(event, HostEvent::HostStarted(_)) {
                                record.observing.unannounced_hosts = true;
                            }
                            for change in &changes.changes {
                                if let wadm_lattice::Change::ConfigSet { name } = change {
                                    self.read_config(&mut record, name).await;
                                }
                            }
                            affected.every_app |= changes.every_app;
                            affected.apps.extend(changes.apps.iter().cloned());
                            persist.merge(changes);
                            host_failure = decide::host_failure(&ctx.source, &event);
                            if let Some(failure) = &host_failure {
                                // The order it answers is settled: failed.
                                failed_app =
                                    record.intents.fail_slot(&failure.slot()).map(|i| i.app);
                            }
                        }
                    }
                    Err(e) => {
                        let skipped = Some(format!("{subject}: {e}"));
                        return Ok(Processed { lattice, skipped, ..Default::default() });
                    }
                },
                Incoming::ManifestPublished { name } | Incoming::ManifestUnpublished { name } => {
                    let deployment = self.desired.deployment(&lattice, name).await?;
                    decide::apply_deployment(&mut record, name, deployment.as_ref());
                    // Shared resources may change hands: reconcile everything.
                    affected = Affected::all();
                }
                Incoming::Timer { at } => {
                    // Leases that ran out and backoffs that ended; orders past their deadline
                    // are settled below, as in every step. The deadline counts as reached
                    // even when this replica's clock is a little behind the publisher's.
                    let due = now.max((*at).min(now.saturating_add(1_000)));
                    let expired = wadm_lattice::expire(&mut record.state, due, &self.config.lease);
                    if expired.changes.iter().any(|c| matches!(c, Change::HostRemoved { .. })) {
                        affected = Affected::all();
                    }
                    affected.apps.extend(decide::retries_due(&record, now));
                    persist.merge(expired);
                }
                Incoming::Tick => {
                    persist.merge(self.apply_tick(&lattice, &mut record, now).await?);
                    affected = Affected::all();
                }
                Incoming::CommandDropped(dropped) => {
                    if let Some(order) = record.intents.fail_msg(&dropped.msg_id) {
                        tracing::debug!(
                            lattice = %lattice, app = %order.app, command = %dropped.msg_id,
                            reason = %dropped.reason, "command dropped unsent"
                        );
                        affected.apps.insert(order.app);
                    }
                }
                Incoming::CommandFailed(failure) => {
                    if let Some(order) = record.intents.fail_msg(&failure.msg_id) {
                        affected.apps.insert(order.app);
                    }
                    let current = record.apps.get(&failure.app).map(|a| a.generation());
                    if current == Some(failure.generation) {
                        let sample = self.random.next_u64();
                        let backoff = &self.config.failure_backoff;
                        decide::note_failure(
                            &mut record,
                            &failure.app,
                            &failure.message,
                            now,
                            backoff,
                            sample,
                        );
                        affected.apps.insert(failure.app.clone());
                    }
                }
                Incoming::Discovered(report)
                    if crate::first_round::round_outdated(&record.observing, report.started_at) =>
                {
                    tracing::debug!(
                        lattice = %lattice, started_at = report.started_at, sequence,
                        "discovery round older than the last one merged: skipped"
                    );
                }
                Incoming::Discovered(report) => {
                    let changes = self.merge_discovered(&mut record, report, now, sequence).await;
                    if report.completes_round() {
                        record.observing.discovered = true;
                        record.observing.round_merged_at = now;
                        affected = Affected::all();
                    } else {
                        // A part of a round: what it changed now, everything after the last.
                        affected.every_app = changes.every_app;
                        affected.apps.extend(changes.apps.iter().cloned());
                    }
                    persist.merge(changes);
                }
                Incoming::Ignored(_) => unreachable!("returned above"),
            }
            // Orders whose effect the lattice now shows (or that can no longer take effect) are
            // settled; their applications are reconciled (an order held behind them may go).
            let echo_ms = self.config.update_echo.as_millis() as u64;
            let settled = record.intents.settle(&record.state, now, echo_ms);
            for (order, how) in &settled.removed {
                tracing::debug!(
                    lattice = %lattice, app = %order.app, command = %order.msg_id(),
                    kind = order.command.kind(), settled = ?how, sequence, "order settled"
                );
            }
            affected.every_app |= settled.touches_configs();
            affected.apps.extend(settled.apps());
            record.last_sequence = record.last_sequence.max(sequence);
            record.updated_at = now;

            let may_defer = queued > 0
                && host_failure.is_none()
                && !matches!(incoming, Incoming::CommandFailed(_));
            decide::defer_or_collect(&mut record, &mut affected, may_defer, now, &self.config);
            let wait = self.config.first_round_wait;
            let held = record.observing.holds_reconciles(now, wait, record.state.hosts.len());
            if held {
                crate::first_round::hold(&mut record.deferred, &mut affected);
            }

            // Nothing any application depends on changed: no reconcile (the common heartbeat).
            let quiet =
                held || (!affected.every_app && affected.apps.is_empty() && host_failure.is_none());
            let plan = if quiet {
                Plan { lattice: lattice.clone(), computed_at: now, ..Plan::default() }
            } else {
                let projected = record.intents.project(&record.state);
                self.reconciler(&lattice, &record).await?.reconcile(&projected, now)
            };
            if let Some(failure) = &host_failure
                && let Some(app) = failed_app.clone().or_else(|| failure.app(&plan))
            {
                let sample = self.random.next_u64();
                let backoff = &self.config.failure_backoff;
                if decide::note_failure(&mut record, &app, failure.message(), now, backoff, sample)
                {
                    affected.apps.insert(app);
                }
            }
            let ttl_ms = self.config.command_ttl.as_millis() as u64;
            let lifetime_ms = self.config.order_lifetime.as_millis() as u64;
            let (mut commands, held_back) =
                decide::select_commands(&mut record, &plan, &affected, now, ttl_ms, lifetime_ms);
            if replay {
                // The step that applied this event may have committed its orders and stopped
                // before publishing them: publish every order in flight again (same ids, so
                // what was published is deduplicated by the stream).
                let issued: std::collections::BTreeSet<String> =
                    commands.iter().map(|c| c.msg_id()).collect();
                let again = record.intents.pending().map(|(_, i)| i);
                let again = again.filter(|i| !issued.contains(&i.msg_id()) && now < i.expires_at);
                commands.extend(again.map(|i| decide::message_of(&lattice, i)).collect::<Vec<_>>());
            }
            let statuses = decide::statuses(&mut record, &plan, &affected, now);
            if !quiet {
                decide::prune_undeployed(&mut record, &plan);
            }

            let record_in_flight = record.intents.len();
            let next_deadline = decide::next_deadline(&record, &self.config.lease, now);
            persist.changes.sort();
            persist.changes.dedup();
            match self.records.save(&lattice, record, base, &persist).await {
                Ok(_) => {}
                Err(RecordError::Kv(KvError::Conflict(_))) => {
                    conflicts += 1;
                    if conflicts >= self.config.max_cas_attempts {
                        return Err(PipelineError::Contended(lattice));
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            }

            let mut done = Processed {
                lattice: lattice.clone(),
                held: held_back.values().sum(),
                in_flight: record_in_flight,
                next_deadline,
                conflicts,
                state_in_doubt: in_doubt,
                held_for_discovery: held,
                ..Default::default()
            };
            for c in &commands {
                tracing::debug!(
                    lattice = %lattice, app = %c.app, generation = c.generation, command = %c.id,
                    kind = %c.kind, seq = c.seq, body = %c.body, sequence, "issuing command"
                );
            }
            for command in commands {
                let kind = command.kind.clone();
                let payload = serde_json::to_vec(&command).unwrap_or_default();
                let outgoing = Outgoing {
                    subject: crate::messages::command_subject(&lattice, &command.app),
                    payload,
                    msg_id: command.msg_id(),
                    ttl: Some(self.config.command_ttl),
                };
                let published = self.commands.publish(outgoing).await?;
                if published.duplicate {
                    done.duplicates += 1;
                } else {
                    done.published += 1;
                    metrics::counter!("wadm_commands_published_total", "kind" => kind).increment(1);
                }
            }
            for (app, status) in statuses {
                if self.status.set(&lattice, &app, &status).await? {
                    done.statuses += 1;
                }
            }
            return Ok(done);
        }
    }
}

/// Whether `event` is the `component_scaled(new ref, 0)` a 1.9.2 host sends right after a
/// confirmed `component.update` (the component keeps running): consumed, not applied.
fn update_echo(
    record: &mut LatticeRecord,
    ctx: &EventContext,
    event: &HostEvent,
    now: wadm_lattice::Timestamp,
) -> bool {
    let HostEvent::ComponentScaled(c) = event else { return false };
    if c.max_instances != 0 {
        return false;
    }
    let host = if ctx.source.is_empty() { c.host_id.as_str() } else { ctx.source.as_str() };
    record.intents.take_update_echo(host, &c.component_id, &c.image_ref, now)
}
