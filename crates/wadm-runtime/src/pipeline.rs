//! The event pipeline's shell: one step per batch of a lattice's event-stream messages. It only
//! moves bytes — decode, fetch deployments, check out the lattice record, [`step::apply`], ask
//! the lattice what the step doubts (config values, reported-stopped or unknown hosts),
//! [`step::decide`] with the kept [`wadm_scheduler::Reconciler`] ([`reconcilers`]), write the
//! entities then the head with compare-and-set (a conflict starts over), publish the commands,
//! write statuses; the caller acks last. Every decision is in [`crate::step`]; the order of the
//! effects and why it is crash-safe: `docs/runtime.md` ("Pipeline", "Guarantees").

use std::sync::Arc;
use std::time::Duration;
use wadm_store::availability::Availability;

use tracing::Instrument;
use wadm_store::kv::{Kv, KvError};
use wadm_store::observed::StateStore;
use wadm_store::status::{StatusError, StatusStore};

use crate::clock::{Clock, Random};
use crate::config::RuntimeConfig;
use crate::desired::DesiredSource;
use crate::io::{ControlClient, Delivery, Inbox, IoError, Outbox, Outgoing, with_progress};
use crate::record::{Loaded, RecordError, RecordStore};
use crate::step;
use crate::trace;
use reconcilers::ReconcilerCache;

mod inputs;
pub mod reconcilers;

/// Why a step failed (the event is redelivered).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The lattice's record could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The manifest store, the command stream or a control request failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// An application status could not be written.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The record kept changing under this step (compare-and-set lost
    /// `RuntimeConfig::max_cas_attempts` times in a row); names the lattice.
    #[error("lattice {0}: too many concurrent writers, will retry")]
    Contended(String),
}

impl PipelineError {
    /// What the error says about wadm's streams and buckets (the runtime asks JetStream and
    /// recreates what is missing when it is not [`Availability::Other`]).
    pub fn availability(&self) -> Availability {
        match self {
            PipelineError::Io(e) => e.availability(),
            PipelineError::Record(RecordError::Kv(e)) => e.availability(),
            PipelineError::Record(RecordError::State(e)) => e.availability(),
            PipelineError::Status(e) => e.availability(),
            PipelineError::Record(RecordError::Corrupt { .. }) | PipelineError::Contended(_) => {
                Availability::Other
            }
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processed {
    /// The lattice of the event.
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
    /// before wadm saw them start, see [`crate::discovery::first_round`]).
    pub held_for_discovery: bool,
    /// Planned commands held back: another order on their slot is in flight, or a config they
    /// name is not observed yet (see [`crate::intents`]).
    pub held: usize,
    /// Orders in flight after the step.
    pub in_flight: usize,
    /// Messages of the lattice the step handled.
    pub events: usize,
    /// When the lattice next has something due (a lease, an order's deadline, a retry): the
    /// replica publishes a timer for then.
    pub next_deadline: Option<wadm_lattice::Timestamp>,
}

impl Processed {
    /// Fold a later step of the same lattice into this one (the latest state wins).
    fn absorb(&mut self, later: Processed) {
        if !later.lattice.is_empty() {
            self.lattice = later.lattice;
        }
        self.published += later.published;
        self.duplicates += later.duplicates;
        self.statuses += later.statuses;
        self.conflicts += later.conflicts;
        self.skipped = match (self.skipped.take(), later.skipped) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        self.state_in_doubt |= later.state_in_doubt;
        self.held_for_discovery = later.held_for_discovery;
        self.held = later.held;
        self.in_flight = later.in_flight;
        self.events += later.events;
        self.next_deadline = later.next_deadline;
    }
}

/// A batch whose first message was delivered this often is handled one message at a time.
pub const SUSPECT_DELIVERIES: u64 = 3;

/// A message that fails alone on this delivery is parked instead of redelivered again (with the
/// failure backoff in between, that is about a minute of retries).
pub const PARK_AFTER_DELIVERIES: u64 = 8;

/// One event-stream message as a step sees it.
#[derive(Debug, Clone, Copy)]
pub struct EventMessage<'a> {
    /// The subject it was published on.
    pub subject: &'a str,
    /// Its body.
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

impl<'a> EventMessage<'a> {
    /// A delivered message as the step sees it.
    pub fn of(d: &'a impl Delivery) -> Self {
        EventMessage {
            subject: d.subject(),
            payload: d.payload(),
            sequence: d.stream_sequence(),
            delivered: d.delivered(),
            queued: d.pending(),
            stored_at: d.stored_at(),
        }
    }
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
    /// A pipeline over `io` that reads time from `clock` and jitter from `random`.
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

    /// Take the next batch of events from `inbox` (up to `RuntimeConfig::batch_size`), handle
    /// it as one step, ack it (nak every message with backoff on failure). `Ok(None)`: nothing
    /// was deliverable within `wait`.
    ///
    /// A batch whose first message already failed [`SUSPECT_DELIVERIES`] times is handled one
    /// message at a time, so one poison event cannot hold back the others; a message that
    /// fails alone on its [`PARK_AFTER_DELIVERIES`]th delivery is parked: terminated (the
    /// server announces it on `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream}.{consumer}`
    /// with its stream sequence; the event stays in the stream), logged and counted in
    /// `wadm_events_parked_total{lattice}`, and the lattice goes on.
    pub async fn step<I: Inbox>(
        &self,
        inbox: &I,
        wait: Duration,
    ) -> Result<Option<Processed>, PipelineError>
    where
        I::Delivery: Sync,
    {
        let batch = inbox.next_batch(self.config.batch_size.max(1), wait).await?;
        if batch.len() > 1 && batch[0].delivered() >= SUSPECT_DELIVERIES {
            return self.step_one_by_one(batch).await;
        }
        self.step_batch(batch).await
    }

    /// Handle `batch` as one step and ack it, or nak it all with backoff.
    async fn step_batch<M: Delivery + Sync>(
        &self,
        batch: Vec<M>,
    ) -> Result<Option<Processed>, PipelineError> {
        let Some(last) = batch.last() else { return Ok(None) };
        // Everything the step logs (the commands it issues included) carries the events it
        // handles: decisions are traceable from the events to the commands.
        let span = tracing::debug_span!(
            "events",
            first = batch[0].stream_sequence(),
            last = last.stream_sequence(),
            count = batch.len()
        );
        let messages: Vec<EventMessage<'_>> = batch.iter().map(EventMessage::of).collect();
        let work = self.process_batch(&messages).instrument(span);
        let result = with_progress(last, self.config.progress_every, work).await;
        match result {
            Ok(done) => {
                let mut batch = batch;
                let last = batch.pop();
                for delivery in batch {
                    delivery.ack_unconfirmed().await?;
                }
                if let Some(last) = last {
                    last.ack().await?;
                }
                Ok(Some(done))
            }
            Err(e) if batch.len() == 1 && batch[0].delivered() >= PARK_AFTER_DELIVERIES => {
                let delivery = batch.into_iter().next().expect("one message");
                let lattice = crate::messages::classify(delivery.subject(), delivery.payload())
                    .map(|(l, _)| l)
                    .unwrap_or_default();
                tracing::error!(
                    %lattice, subject = delivery.subject(), sequence = delivery.stream_sequence(),
                    deliveries = delivery.delivered(), error = %e,
                    "event parked: it failed every time; the lattice goes on without it"
                );
                metrics::counter!("wadm_events_parked_total", "lattice" => lattice).increment(1);
                delivery.term().await?;
                Ok(Some(Processed { skipped: Some(format!("parked: {e}")), ..Default::default() }))
            }
            Err(e) => {
                // The loop that runs the step logs the failure (once per run of failures).
                tracing::debug!(error = %e, "event step failed; redelivering");
                for delivery in batch {
                    let attempt = u32::try_from(delivery.delivered()).unwrap_or(u32::MAX);
                    let sample = self.random.next_u64();
                    let delay = self.config.request_backoff.delay_ms(attempt, sample);
                    delivery.nak(Duration::from_millis(delay)).await?;
                }
                Err(e)
            }
        }
    }

    /// Handle a suspect batch one message at a time, in order; on the first failure, the
    /// message (unless parked) and everything after it are redelivered.
    async fn step_one_by_one<M: Delivery + Sync>(
        &self,
        batch: Vec<M>,
    ) -> Result<Option<Processed>, PipelineError> {
        let mut total = Processed::default();
        let mut rest = batch.into_iter();
        while let Some(delivery) = rest.next() {
            match self.step_batch(vec![delivery]).await {
                Ok(Some(done)) => total.absorb(done),
                Ok(None) => {}
                Err(e) => {
                    for later in rest {
                        later.nak(Duration::ZERO).await?;
                    }
                    return Err(e);
                }
            }
        }
        Ok(Some(total))
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
        self.process_batch(&[message]).await
    }

    /// Handle one batch of event-stream messages of one lattice, in order, as one step (without
    /// acking them): one read of the record, one reconcile, one write.
    pub async fn process_batch(
        &self,
        messages: &[EventMessage<'_>],
    ) -> Result<Processed, PipelineError> {
        // The trace of this batch (exported only if it leads to commands).
        let mut step_span = trace::Span::root("wadm.step");
        let mut lattice: Option<String> = None;
        let mut events = Vec::with_capacity(messages.len());
        let mut skipped = Vec::new();
        for m in messages {
            match step::decode(m.subject, m.payload) {
                Ok((l, input)) if lattice.as_ref().is_none_or(|known| *known == l) => {
                    lattice = Some(l);
                    let (sequence, delivered, stored_at) = (m.sequence, m.delivered, m.stored_at);
                    events.push(step::Event { input, sequence, delivered, stored_at });
                }
                Ok((l, _)) => {
                    skipped.push(format!("{}: lattice {l} in a batch of another", m.subject))
                }
                Err(reason) => skipped.push(reason),
            }
        }
        let queued = messages.last().map_or(0, |m| m.queued);
        let Some(lattice) = lattice else {
            return Ok(Processed { skipped: Some(skipped.join("; ")), ..Default::default() });
        };
        if let Some(span) = step_span.as_mut() {
            span.set("wadm.lattice", &lattice);
            span.set("wadm.events", events.len());
            span.set("wadm.event_kinds", event_kinds(messages));
        }
        let (names, all) = step::Fetched::wanted(&events);
        let mut fetched = step::Fetched::default();
        for name in names {
            let deployment = self.desired.deployment(&lattice, &name).await?;
            fetched.deployments.insert(name, deployment);
        }
        if all {
            fetched.all_deployments = Some(self.desired.deployments(&lattice).await?);
        }
        let mut conflicts = 0;
        loop {
            let Loaded { mut record, base, fresh, .. } = self.records.checkout(&lattice).await?;
            let now = self.clock.now();
            if base.revision == 0 && record.observing.since == 0 {
                // The first step of this lattice's state.
                record.observing.since = now;
            }
            let (sample_apply, sample_decide) = (self.random.next_u64(), self.random.next_u64());
            let config = &self.config;
            let mut applied =
                step::apply(&mut record, &events, &fetched, now, fresh, sample_apply, config);
            let reads = std::mem::take(&mut applied.configs_to_read);
            for name in &reads {
                let values = self.read_config(&lattice, name).await;
                step::config_values(&mut record, &mut applied, name, values);
            }
            let asks = std::mem::take(&mut applied.verify_hosts);
            let answers =
                futures::future::join_all(asks.iter().map(|host| self.ask_host(&lattice, host)))
                    .await;
            for (host, answer) in asks.iter().zip(answers) {
                step::host_answer(&mut record, &mut applied, host, answer, now, self.clock.now());
            }
            if !reads.is_empty() || !asks.is_empty() {
                step::settle_after_reads(&mut record, &mut applied, now, config);
            }
            applied.orphan_check = self.check_orphan_apps(&lattice, &record, now).await;
            let planning = step::wants_plan(&mut record, &mut applied, queued, now, config);
            let reconciler = match planning {
                step::Planning::Plan => Some(self.reconciler(&lattice, &record).await?),
                step::Planning::Quiet | step::Planning::HeldForDiscovery => None,
            };
            let decided = step::decide(
                &mut record,
                &mut applied,
                reconciler.as_deref(),
                now,
                sample_decide,
                config,
            );
            let in_flight = record.intents.len();
            let gone = hosts_gone(&record, &applied.persist, now);
            match self.records.save(&lattice, record, base, &applied.persist).await {
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
            for gone in gone {
                let HostGone { host, reason, components, providers, silent_ms } = gone;
                tracing::info!(
                    %lattice, %host, %reason, components, providers, silent_ms, "host gone"
                );
            }

            let mut done = Processed {
                lattice: lattice.clone(),
                events: events.len(),
                held: decided.held.values().sum(),
                in_flight,
                next_deadline: decided.next_deadline,
                conflicts,
                state_in_doubt: applied.in_doubt,
                held_for_discovery: planning == step::Planning::HeldForDiscovery,
                skipped: (!skipped.is_empty()).then(|| skipped.join("; ")),
                ..Default::default()
            };
            for c in &decided.commands {
                tracing::debug!(
                    lattice = %lattice, app = %c.app, generation = c.generation, command = %c.id,
                    kind = %c.kind, seq = c.seq, body = %c.body, "issuing command"
                );
            }
            for mut command in decided.commands {
                let kind = command.kind.clone();
                let decision = step_span.as_ref().and_then(|step| {
                    let mut span =
                        trace::Span::child(&step.context(), format!("wadm.decide {kind}"))?;
                    span.set("wadm.app", &command.app);
                    span.set("wadm.command", command.msg_id());
                    span.set("wadm.host", command.target_host.as_deref().unwrap_or(""));
                    span.set("wadm.why", &command.reason);
                    command.trace = span.context().traceparent();
                    Some(span)
                });
                let payload = serde_json::to_vec(&command).unwrap_or_default();
                let outgoing = Outgoing {
                    subject: wadm_store::streams::subjects::command_subject(&lattice, &command.app),
                    payload,
                    msg_id: command.msg_id(),
                    ttl: Some(self.config.command_ttl),
                };
                let published = self.commands.publish(outgoing).await?;
                if let Some(mut span) = decision {
                    span.set("wadm.duplicate", published.duplicate);
                    span.end();
                }
                if published.duplicate {
                    done.duplicates += 1;
                } else {
                    done.published += 1;
                    metrics::counter!("wadm_commands_published_total", "kind" => kind).increment(1);
                }
            }
            self.report_orphans(&lattice, &decided.orphans).await;
            let statuses = decided.statuses.len();
            for (app, status) in decided.statuses {
                if self.status.set(&lattice, &app, &status).await? {
                    done.statuses += 1;
                }
            }
            for action in &decided.store_actions {
                self.act(&lattice, action).await;
            }
            tracing::debug!(
                lattice = %lattice, events = done.events, planning = ?planning,
                published = done.published, duplicates = done.duplicates, held = done.held,
                in_flight = done.in_flight, statuses, statuses_changed = done.statuses,
                writes = applied.persist.changes.len(), conflicts, "step"
            );
            if let Some(mut span) =
                step_span.take().filter(|_| done.published + done.duplicates > 0)
            {
                span.set("wadm.commands", done.published + done.duplicates);
                span.set("wadm.statuses_changed", done.statuses);
                span.end();
            }
            return Ok(done);
        }
    }
}

impl<K, T, D, S, O, C> Pipeline<K, T, D, S, O, C>
where
    D: DesiredSource,
    O: Outbox,
{
    /// Carry out a write to the manifest store a step decided (see [`crate::revert`]); a revert
    /// that was written is announced as `manifest_published` on the event stream (deduplicated
    /// per reverted generation), so the runtime reads the deployment again. Failures are
    /// logged: a revert is carried out again by later steps until the record shows it.
    async fn act(&self, lattice: &str, action: &crate::revert::StoreAction) {
        let manifest = match self.desired.act(lattice, action).await {
            Ok(manifest) => manifest,
            Err(e) => {
                tracing::warn!(%lattice, app = action.app(), error = %e, ?action, "store write failed");
                return;
            }
        };
        let crate::revert::StoreAction::Revert { app, from_generation, to, reason } = action else {
            return;
        };
        let Some(manifest) = manifest else { return };
        tracing::info!(%lattice, %app, version = %to, %reason, "rollout failed: reverted");
        let id = format!("revert.{app}.{from_generation}");
        let at = i64::try_from(self.clock.now()).unwrap_or_default();
        let time = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default();
        let event = wadm_store::events::CloudEvent::manifest_published(manifest, id.clone(), time);
        let outgoing = Outgoing {
            subject: event.subject(lattice),
            payload: serde_json::to_vec(&event).unwrap_or_default(),
            msg_id: id,
            ttl: None,
        };
        if let Err(e) = self.commands.publish(outgoing).await {
            // The next tick reads every deployment anyway.
            tracing::warn!(%lattice, %app, error = %e, "cannot announce the revert");
        }
    }
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
    /// Ask the manifest store about the applications whose orphans are due (see
    /// [`crate::orphans::apps_to_check`]). A name the store cannot hold is absent without
    /// asking; when the store does not answer, nothing is removed this step (`None`).
    async fn check_orphan_apps(
        &self,
        lattice: &str,
        record: &crate::record::LatticeRecord,
        now: wadm_lattice::Timestamp,
    ) -> Option<std::collections::BTreeMap<String, Option<crate::desired::Deployment>>> {
        let apps = crate::orphans::apps_to_check(record, now, &self.config);
        if apps.is_empty() {
            return None;
        }
        let mut found = std::collections::BTreeMap::new();
        for app in apps {
            if !wadm_store::manifest::keys::is_valid_app_name(&app) {
                found.insert(app, None);
                continue;
            }
            match self.desired.deployment(lattice, &app).await {
                Ok(deployment) => {
                    found.insert(app, deployment);
                }
                Err(e) => {
                    tracing::warn!(%lattice, %app, error = %e, "orphans: manifest store unavailable; nothing removed this time");
                    return None;
                }
            }
        }
        Some(found)
    }

    /// Log, count and record in the owning application's history what orphan collection did.
    async fn report_orphans(&self, lattice: &str, report: &crate::orphans::OrphanReport) {
        if report.ran {
            metrics::gauge!("wadm_orphans_marked", "lattice" => lattice.to_string())
                .set(report.marked as f64);
        }
        for o in &report.found {
            tracing::info!(
                %lattice, app = %o.app, kind = o.kind, what = %o.what,
                grace_s = self.config.orphans.grace.as_secs_f64(),
                "orphan marked: wadm's marks for an application nobody manages here"
            );
            metrics::counter!("wadm_orphans_found_total", "lattice" => lattice.to_string(), "kind" => o.kind)
                .increment(1);
        }
        for o in &report.reported {
            tracing::warn!(
                %lattice, app = %o.app, kind = o.kind, what = %o.what,
                "orphan past its grace period (report only: not removed)"
            );
            metrics::counter!("wadm_orphans_reported_total", "lattice" => lattice.to_string(), "kind" => o.kind)
                .increment(1);
        }
        let mut apps: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for o in &report.swept {
            tracing::info!(
                %lattice, app = %o.app, kind = o.kind, what = %o.what,
                command = o.command.as_deref().unwrap_or(""), "orphan swept"
            );
            metrics::counter!("wadm_orphans_swept_total", "lattice" => lattice.to_string(), "kind" => o.kind)
                .increment(1);
            apps.entry(o.app.as_str()).or_default().push(o.kind);
        }
        for (app, kinds) in apps {
            if !wadm_store::manifest::keys::is_valid_app_name(app) {
                continue;
            }
            let actor = format!("wadm orphan collection ({} removed)", kinds.len());
            if let Err(e) = self.desired.note_history(lattice, app, "gc", &actor).await {
                tracing::warn!(%lattice, %app, error = %e, "orphans: could not record the sweep in the history");
            }
        }
    }
}

/// A host the step removed from observed state, for the `host gone` log line.
struct HostGone {
    host: String,
    /// `lease expired` (silent past its lease) or `stopped` (`host_stopped`).
    reason: &'static str,
    /// Components and providers it ran (now to be placed elsewhere).
    components: usize,
    providers: usize,
    /// How long wadm had not heard from it when it was removed (ms).
    silent_ms: u64,
}

/// The hosts `persist` removes, with what they ran.
fn hosts_gone(
    record: &crate::record::LatticeRecord,
    persist: &wadm_lattice::Changes,
    now: u64,
) -> Vec<HostGone> {
    use wadm_lattice::{Change, RemovalReason};
    let mut gone = Vec::new();
    for change in &persist.changes {
        let Change::HostRemoved { host, reason } = change else { continue };
        let on_host = |c: &&Change| match c {
            Change::ComponentRemoved { host: h, .. } | Change::ProviderRemoved { host: h, .. } => {
                h == host
            }
            _ => false,
        };
        let removed: Vec<&Change> = persist.changes.iter().filter(on_host).collect();
        let components =
            removed.iter().filter(|c| matches!(c, Change::ComponentRemoved { .. })).count();
        let last_seen = record.state.bookkeeping.tombstones.get(host).map_or(now, |t| t.last_seen);
        gone.push(HostGone {
            host: host.clone(),
            reason: match reason {
                RemovalReason::Lost => "lease expired",
                RemovalReason::Stopped => "stopped",
            },
            components,
            providers: removed.len() - components,
            silent_ms: now.saturating_sub(last_seen),
        });
    }
    gone
}

/// The kinds of events in a batch (the last token of each subject), each once, in order, at
/// most ten: a step span's `wadm.event_kinds`.
fn event_kinds(messages: &[EventMessage<'_>]) -> String {
    let mut kinds: Vec<&str> = Vec::new();
    for m in messages {
        let kind = m.subject.rsplit('.').next().unwrap_or_default();
        if !kinds.contains(&kind) && kinds.len() < 10 {
            kinds.push(kind);
        }
    }
    kinds.join(",")
}
