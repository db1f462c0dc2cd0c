//! The runtime's two streams and their durable consumers, created idempotently (replicas
//! starting together all end up on the same ones). Names come from [`StreamSettings::names`],
//! subjects from [`subjects`].
//! - `wadm_events`: host, manifest and runtime events of every lattice, kept while no wadm runs,
//!   for at most `event_max_age` and `event_max_bytes` (applied to an existing stream in place).
//! - `wadm_commands`: per-message TTL; dedupe window = the command TTL, so an order re-issued
//!   after its predecessor expired is not taken for a duplicate.
//! - Per lattice `L`: `wadm_events_L` (pinned to one replica, in-order batches of up to
//!   `event_batch`) and `wadm_commands_L` (many in flight, any replica).

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::StoreNames;
use crate::provision::{ProvisionError, Provisioner};

pub mod subjects;

use subjects::{command_filter, event_filters};

/// The priority group of a pinned event consumer: the one pull client the server delivers a
/// lattice's events to.
pub const PIN_GROUP: &str = "wadm";

/// How long the event stream keeps events unless told otherwise. Enough for any replica to
/// work off a backlog (events are applied within seconds); what is lost beyond it, a discovery
/// round rebuilds.
pub const DEFAULT_EVENT_MAX_AGE: Duration = Duration::from_secs(3600);
/// How many bytes the event stream keeps unless told otherwise.
pub const DEFAULT_EVENT_MAX_BYTES: u64 = 1 << 30;

/// Names, sizes and timings of the streams and consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    /// The names of every stream, bucket and consumer (default prefix `wadm`).
    pub names: StoreNames,
    /// How long events are kept (default 1 h; zero: no limit). Applied to an existing stream.
    pub event_max_age: Duration,
    /// How many bytes of events are kept, the oldest dropped first (default 1 GiB; zero: no
    /// limit). Applied to an existing stream.
    pub event_max_bytes: u64,
    /// Dedupe window of the event stream (ticks of one period collapse within it).
    pub event_dedupe_window: Duration,
    /// The command TTL: the command stream's dedupe window and each message's `Nats-TTL`.
    pub command_ttl: Duration,
    /// How long a delivered, unacked message waits before redelivery: what a replica that dies
    /// mid-step costs its lattice (replicas at work report progress well within it).
    pub ack_wait: Duration,
    /// Commands in flight per lattice across replicas.
    pub max_commands_in_flight: i64,
    /// The most events of one lattice a replica takes as one step.
    pub event_batch: usize,
    /// Stream and bucket replicas (1 for a single server).
    pub replicas: usize,
    /// The NATS account whose lattices (`{account}.{lattice}`: see
    /// [`wadm_protocol::subject::split_account`]) the streams hold, in account-scoped mode: the
    /// streams are then that account's own ([`crate::account`]).
    pub account: Option<String>,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            names: StoreNames::default(),
            event_max_age: DEFAULT_EVENT_MAX_AGE,
            event_max_bytes: DEFAULT_EVENT_MAX_BYTES,
            event_dedupe_window: Duration::from_secs(120),
            command_ttl: Duration::from_secs(60),
            ack_wait: Duration::from_secs(3),
            max_commands_in_flight: 256,
            event_batch: 256,
            replicas: 1,
            account: None,
        }
    }
}

/// `subject` as the streams capture it: behind the account's token in account-scoped mode.
fn account_subject(settings: &StreamSettings, subject: String) -> String {
    crate::account::stream_subject(&subject, settings.account.as_deref())
}

/// The name of the event stream (`wadm_events`, or `wadm_events_{account}`).
pub fn event_stream_name(settings: &StreamSettings) -> String {
    crate::account::stream_name(&settings.names.events_stream(), settings.account.as_deref())
}

/// The name of the command stream (`wadm_commands`, or `wadm_commands_{account}`).
pub fn command_stream_name(settings: &StreamSettings) -> String {
    let commands = settings.names.commands_stream();
    crate::account::stream_name(&commands, settings.account.as_deref())
}

fn setup(what: impl std::fmt::Display, e: impl std::fmt::Display) -> ProvisionError {
    ProvisionError { what: what.to_string(), reason: e.to_string() }
}

/// Create (or find) both streams.
pub async fn ensure_streams(
    provision: &Provisioner,
    settings: &StreamSettings,
) -> Result<(stream::Stream, stream::Stream), ProvisionError> {
    let events = stream::Config {
        name: event_stream_name(settings),
        description: Some("wadm: host, manifest and runtime events of every lattice".into()),
        subjects: subjects::all_events()
            .into_iter()
            .map(|s| account_subject(settings, s))
            .collect(),
        max_age: settings.event_max_age,
        max_bytes: event_max_bytes(settings),
        duplicate_window: settings.event_dedupe_window,
        num_replicas: settings.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let commands = stream::Config {
        name: command_stream_name(settings),
        description: Some("wadm: control commands to execute".into()),
        subjects: vec![account_subject(settings, subjects::all_commands())],
        max_age: settings.command_ttl.max(Duration::from_secs(1)) * 10,
        duplicate_window: settings.command_ttl.max(Duration::from_secs(1)),
        allow_message_ttl: true,
        num_replicas: settings.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    let (event_subjects, command_subjects) = (events.subjects.clone(), commands.subjects.clone());
    let events = provision.stream(events).await?;
    let js = provision.context();
    let (age, bytes) = (settings.event_max_age, event_max_bytes(settings));
    let events = bring_in_line(js, events, |c| stream::Config {
        max_age: age,
        max_bytes: bytes,
        subjects: event_subjects,
        ..c
    })
    .await?;
    let commands = provision.stream(commands).await?;
    let commands =
        bring_in_line(js, commands, |c| stream::Config { subjects: command_subjects, ..c }).await?;
    Ok((events, commands))
}

/// The stream's `max_bytes` for the setting (NATS says "no limit" with -1).
fn event_max_bytes(settings: &StreamSettings) -> i64 {
    match settings.event_max_bytes {
        0 => -1,
        n => i64::try_from(n).unwrap_or(i64::MAX),
    }
}

/// Bring an existing stream's settable limits and subjects (the event stream's age and size, the
/// subjects of the account mode) in line with `settings`, in place: its messages stay; with lower
/// limits the server drops the oldest beyond them at once.
async fn bring_in_line(
    js: &jetstream::Context,
    mut existing: stream::Stream,
    wanted: impl FnOnce(stream::Config) -> stream::Config,
) -> Result<stream::Stream, ProvisionError> {
    let current = existing.cached_info().config.clone();
    let updated = wanted(current.clone());
    if updated == current {
        return Ok(existing);
    }
    let name = current.name.clone();
    js.update_stream(updated.clone()).await.map_err(|e| setup(format_args!("stream {name}"), e))?;
    tracing::info!(
        stream = %name,
        max_age_from = ?current.max_age, max_age = ?updated.max_age,
        max_bytes_from = current.max_bytes, max_bytes = updated.max_bytes,
        subjects_from = ?current.subjects, subjects = ?updated.subjects,
        "stream settings updated in place"
    );
    existing.info().await.map_err(|e| setup(format_args!("stream {name}"), e))?;
    Ok(existing)
}

async fn ensure_consumer(
    stream: &stream::Stream,
    config: consumer::pull::Config,
) -> Result<consumer::PullConsumer, ProvisionError> {
    let name = config.durable_name.clone().unwrap_or_default();
    let mut last = None;
    for _ in 0..5 {
        if let Ok(found) = stream.get_consumer::<consumer::pull::Config>(&name).await {
            // get_consumer just fetched its info: no second round trip.
            let current = &found.cached_info().config;
            if current.ack_wait == config.ack_wait
                && current.max_ack_pending == config.max_ack_pending
                && current.priority_policy == config.priority_policy
                && current.priority_timeout == config.priority_timeout
            {
                return Ok(found);
            }
            // Made by an older wadm with other settings: bring it in line, or keep it as it is
            // (an event consumer without a pin is pulled one message at a time, still in order).
            match stream.update_consumer(config.clone()).await {
                Ok(updated) => return Ok(updated),
                Err(e) => {
                    tracing::warn!(consumer = %name, error = %e, "cannot update consumer; used as it is");
                    return Ok(found);
                }
            }
        }
        match stream.create_consumer(config.clone()).await {
            Ok(created) => return Ok(created),
            Err(e) => last = Some(e.to_string()),
        }
    }
    Err(setup(format_args!("consumer {name}"), last.unwrap_or_default()))
}

/// The ordered event consumer of `lattice`.
pub async fn ensure_event_consumer(
    events: &stream::Stream,
    lattice: &str,
    settings: &StreamSettings,
) -> Result<consumer::PullConsumer, ProvisionError> {
    let config = consumer::pull::Config {
        durable_name: Some(settings.names.event_consumer(lattice)),
        description: Some(format!("wadm: events of lattice {lattice}, in order, to one replica")),
        filter_subjects: event_filters(lattice),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        // One replica at a time (the pinned pull client) takes batches in order; the pin moves
        // after the pinned client stops pulling for longer than the ack wait, so the messages a
        // dead replica held are due for redelivery before its successor pulls anything new.
        max_ack_pending: settings.event_batch.max(1) as i64,
        priority_policy: consumer::PriorityPolicy::PinnedClient,
        priority_groups: vec![PIN_GROUP.to_string()],
        priority_timeout: settings.ack_wait + Duration::from_millis(500),
        ..Default::default()
    };
    ensure_consumer(events, config).await
}

/// The command consumer of `lattice`.
pub async fn ensure_command_consumer(
    commands: &stream::Stream,
    lattice: &str,
    settings: &StreamSettings,
) -> Result<consumer::PullConsumer, ProvisionError> {
    let config = consumer::pull::Config {
        durable_name: Some(settings.names.command_consumer(lattice)),
        description: Some(format!("wadm: commands for lattice {lattice}")),
        filter_subject: command_filter(lattice),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: settings.ack_wait,
        max_ack_pending: settings.max_commands_in_flight,
        ..Default::default()
    };
    ensure_consumer(commands, config).await
}
