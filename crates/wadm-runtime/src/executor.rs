//! The command executor: one step per command-stream message.
//!
//! Why it works this way: `docs/runtime.md`, “Module notes”, `executor`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use wadm_protocol::ctl::{
    CtlReply, ScaleComponentRequest, StartProviderRequest, StopProviderRequest,
    UpdateComponentRequest,
};
use wadm_protocol::types::HostInventory;
use wadm_store::kv::Kv;

use crate::allocation::{self, Outcome};
use crate::allocation_event::event_data;
use crate::clock::{Clock, Random};
use crate::config::RuntimeConfig;
use crate::desired::DesiredSource;
use crate::discovery::ask::ask_inventory;
use crate::intents::Intents;
use crate::io::{ControlClient, Delivery, Inbox, IoError, Outbox, Outgoing, with_progress};
use wadm_store::streams::subjects::internal_subject;

use crate::messages::{CommandDropped, CommandFailure, CommandMessage};
use crate::record::head_key;
use crate::trace::{Span, SpanContext};

/// What happened to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Executed {
    /// Sent and accepted by the lattice.
    Sent,
    /// Sent; the host refused only because what it asks for is already so (a provider start
    /// for an id the host already runs, a stop for one it does not run): done, not a failure.
    AlreadyDone {
        /// What the host answered.
        message: String,
    },
    /// Past its TTL: dropped unsent.
    Expired,
    /// Its application moved to a newer generation: dropped unsent.
    Superseded {
        /// The application's current runtime generation (0: the application is gone).
        current: u64,
    },
    /// Its order is no longer in flight (confirmed by an earlier delivery, failed, expired, its
    /// host gone, taken back by a later order): dropped unsent.
    Settled,
    /// The lattice refused it; the failure was fed back.
    Refused {
        /// The failure fed back: the command kind and what the host said.
        message: String,
    },
    /// Nobody answered; deliver again after the delay.
    Retry {
        /// How long to wait before the next delivery (with backoff and jitter).
        delay: Duration,
    },
    /// Nobody answered, too many times; the failure was fed back.
    GaveUp {
        /// The failure fed back: the command, its subject and the last error.
        message: String,
    },
    /// Not a command message: dropped.
    Unreadable {
        /// Why it could not be parsed.
        reason: String,
    },
    /// Nobody serves its subject (the host is gone): dropped, reported, not a failure.
    NoResponders,
}

/// The `command_dropped` reason of a command nobody could receive.
pub const NO_RESPONDERS: &str = "no responders";

/// Where the executor looks up whether an order is still in flight.
pub trait OrderBook: Send + Sync {
    /// Whether the order with message id `msg_id` is in flight in `lattice` (`None`: unknown).
    fn in_flight(
        &self,
        lattice: &str,
        msg_id: &str,
    ) -> impl Future<Output = Result<Option<bool>, IoError>> + Send;
}

/// No order book: every order counts as in flight (TTL and generation checks only).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoOrderBook;

impl OrderBook for NoOrderBook {
    async fn in_flight(&self, _lattice: &str, _msg_id: &str) -> Result<Option<bool>, IoError> {
        Ok(None)
    }
}

/// The orders in flight as the lattices' heads (the records bucket) hold them.
#[derive(Debug, Clone)]
pub struct HeadOrders<K>(pub K);

impl<K: Kv> OrderBook for HeadOrders<K> {
    async fn in_flight(&self, lattice: &str, msg_id: &str) -> Result<Option<bool>, IoError> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            intents: Intents,
        }
        let key = head_key(lattice);
        let entry = self.0.get(&key).await.map_err(|e| IoError::failed(&key, e))?;
        let Some(entry) = entry else { return Ok(Some(false)) };
        let head: Head =
            serde_json::from_slice(&entry.value).map_err(|e| IoError::failed(&key, e))?;
        Ok(Some(head.intents.pending().any(|(_, i)| i.msg_id() == msg_id)))
    }
}

/// The executor of one replica.
pub struct Executor<D, C, O, B = NoOrderBook> {
    desired: D,
    control: C,
    events: O,
    orders: B,
    clock: Arc<dyn Clock>,
    random: Arc<dyn Random>,
    config: RuntimeConfig,
    /// The CloudEvent `source` of allocation events: this wadm instance.
    source: String,
}

/// Commands that only remove things: safe to run even when the application is gone.
fn removes_only(message: &CommandMessage) -> bool {
    match message.kind.as_str() {
        "stop_provider" | "delete_link" | "delete_config" => true,
        "scale_component" => {
            serde_json::from_str::<serde_json::Value>(&message.body)
                .ok()
                .and_then(|b| b.get("count").and_then(serde_json::Value::as_u64))
                == Some(0)
        }
        _ => false,
    }
}

/// Whether a refusal only says the command's effect is already there (protocol gotcha 8: a
/// provider start for an id already running on the host, or a stop of one not running, answers
/// `success: false`). A duplicate start after a re-issued command is then not a failure.
pub fn already_done(kind: &str, reply: &str) -> bool {
    let reply = reply.to_ascii_lowercase();
    match kind {
        "start_provider" => reply.contains("already running"),
        "stop_provider" => reply.contains("not running"),
        _ => false,
    }
}

impl<D, C, O> Executor<D, C, O>
where
    D: DesiredSource,
    C: ControlClient,
    O: Outbox,
{
    /// An executor that sends commands over `control`, reads the deployments they are checked
    /// against from `desired` and reports failures and drops on `events`; it checks no order book
    /// (see [`Executor::with_orders`]) and names itself `wadm` in allocation events.
    pub fn new(
        desired: D,
        control: C,
        events: O,
        clock: Arc<dyn Clock>,
        random: Arc<dyn Random>,
        config: RuntimeConfig,
    ) -> Self {
        let source = "wadm".to_string();
        Self { desired, control, events, orders: NoOrderBook, clock, random, config, source }
    }
}

impl<D, C, O, B> Executor<D, C, O, B>
where
    D: DesiredSource,
    C: ControlClient,
    O: Outbox,
    B: OrderBook,
{
    /// Look every command up in `orders` before sending it: one whose order is no longer in
    /// flight is dropped.
    pub fn with_orders<B2: OrderBook>(self, orders: B2) -> Executor<D, C, O, B2> {
        let Executor { desired, control, events, clock, random, config, source, .. } = self;
        Executor { desired, control, events, orders, clock, random, config, source }
    }

    /// Name this wadm instance as the `source` of its allocation events.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Take the next command from `inbox`, execute it, then ack it (or nak it for a retry).
    pub async fn step<I: Inbox>(
        &self,
        inbox: &I,
        wait: Duration,
    ) -> Result<Option<Executed>, IoError>
    where
        I::Delivery: Sync,
    {
        let Some(delivery) = inbox.next(wait).await? else { return Ok(None) };
        let work = self.process(delivery.payload(), delivery.delivered());
        let processed = with_progress(&delivery, self.config.progress_every, work).await;
        count_sent(delivery.payload(), &processed);
        match processed {
            Ok(Executed::Retry { delay }) => {
                delivery.nak(delay).await?;
                Ok(Some(Executed::Retry { delay }))
            }
            Ok(done) => {
                delivery.ack().await?;
                Ok(Some(done))
            }
            Err(e) => {
                let attempt = u32::try_from(delivery.delivered()).unwrap_or(u32::MAX);
                let delay = self.config.request_backoff.delay_ms(attempt, self.random.next_u64());
                delivery.nak(Duration::from_millis(delay)).await?;
                Err(e)
            }
        }
    }

    /// Execute one command message delivered for the `delivered`-th time (without acking it).
    pub async fn process(&self, payload: &[u8], delivered: u64) -> Result<Executed, IoError> {
        let message: CommandMessage = match serde_json::from_slice(payload) {
            Ok(m) => m,
            Err(e) => return Ok(Executed::Unreadable { reason: e.to_string() }),
        };
        if self.clock.now() >= message.expires_at {
            self.dropped(&message, "expired", delivered > 1).await?;
            return Ok(Executed::Expired);
        }
        let current = match self.desired.deployment(&message.lattice, &message.app).await? {
            Some(d) if d.generation() > message.generation => Some(d.generation()),
            None if !removes_only(&message) => Some(0),
            _ => None,
        };
        if let Some(current) = current {
            self.dropped(&message, "superseded", delivered > 1).await?;
            return Ok(Executed::Superseded { current });
        }
        // Its order may have settled meanwhile (a first delivery that was sent and confirmed,
        // or the order failed, expired, or a later order took it back), and a later order may
        // have changed its slot since. The head is written before an order is published, so an
        // order not in it is not in flight.
        if self.orders.in_flight(&message.lattice, &message.msg_id()).await? == Some(false) {
            tracing::debug!(
                lattice = %message.lattice, command = %message.msg_id(), delivered,
                "delivered again after its order settled: dropped"
            );
            return Ok(Executed::Settled);
        }
        // Delivered again while its order is in flight: the earlier attempt was unanswered, or
        // sent by a replica that died before acking. Its host tells whether it took effect;
        // sending it again would be a repeat.
        if delivered > 1 && self.verified_in_effect(&message).await {
            tracing::debug!(
                lattice = %message.lattice, command = %message.msg_id(), delivered,
                "delivered again; its host already shows it done: not sent again"
            );
            let message_text = "already in effect on the host (checked before sending again)";
            let executed = Ok(Executed::AlreadyDone { message: message_text.to_string() });
            self.announce(&message, &executed).await;
            return executed;
        }
        let body = message.body.clone().into_bytes();
        tracing::debug!(
            lattice = %message.lattice, app = %message.app, generation = message.generation,
            command = %message.id, kind = %message.kind, delivered, "sending command"
        );
        let mut span = SpanContext::parse(&message.trace)
            .and_then(|decision| Span::child(&decision, format!("wadm.send {}", message.kind)))
            .map(Span::client);
        if let Some(span) = span.as_mut() {
            span.set("wadm.app", &message.app);
            span.set("wadm.command", message.msg_id());
            span.set("wadm.host", message.target_host.as_deref().unwrap_or(""));
            span.set("messaging.destination.name", &message.subject);
            span.set("wadm.attempt", delivered);
        }
        let started = std::time::Instant::now();
        let reply = self.control.request(&message.subject, body, self.config.request_timeout).await;
        if reply.is_ok() {
            metrics::histogram!("wadm_command_seconds", "kind" => message.kind.clone())
                .record(started.elapsed().as_secs_f64());
        }
        let executed = self.settle(&message, reply, delivered).await;
        let outcome = outcome(&executed);
        if let Some(mut span) = span {
            span.set("wadm.outcome", &outcome);
            if !matches!(executed, Ok(Executed::Sent | Executed::AlreadyDone { .. })) {
                span.fail(&outcome);
            }
            span.end();
        }
        log_sent(&message, delivered, &outcome);
        self.announce(&message, &executed).await;
        executed
    }

    /// Whether `message`'s host answers `host.get` with an inventory that already shows the
    /// message's effect (see [`in_effect`]). Any doubt (no host, no answer, an unreadable
    /// one) is `false`: the command is sent.
    async fn verified_in_effect(&self, message: &CommandMessage) -> bool {
        let Some(host) = message.target_host.as_deref() else { return false };
        if !matches!(
            message.kind.as_str(),
            "scale_component" | "update_component" | "start_provider" | "stop_provider"
        ) {
            return false;
        }
        let timeout = self.config.request_timeout;
        let inventory = ask_inventory(&self.control, &message.lattice, host, timeout).await;
        inventory.is_some_and(|inventory| in_effect(message, &inventory))
    }

    /// Publish the allocation event of a command the hosts answered, and count it. Never fails
    /// the command: an event that cannot be published is logged at debug and lost.
    async fn announce(&self, message: &CommandMessage, executed: &Result<Executed, IoError>) {
        let (outcome, answer) = match executed {
            Ok(Executed::Sent) => (Outcome::Accepted, ""),
            Ok(Executed::AlreadyDone { message }) => (Outcome::Accepted, message.as_str()),
            Ok(Executed::Refused { message }) => (Outcome::Refused, message.as_str()),
            _ => return,
        };
        let data = event_data(message, outcome, answer);
        metrics::counter!(
            "wadm_allocations_total",
            "lattice" => message.lattice.clone(),
            "change" => data.change.as_str(),
            "reason_class" => data.reason_class.as_str(),
            "outcome" => outcome.as_str()
        )
        .increment(1);
        let event = allocation::cloud_event(&data, &self.source, self.clock.now());
        let subject = allocation::allocation_subject(&message.lattice, &message.app);
        let payload = serde_json::to_vec(&event).unwrap_or_default();
        if let Err(e) = self.control.notify(&subject, payload).await {
            tracing::debug!(%subject, command = %data.command, error = %e, "allocation event lost");
        }
    }

    /// What a control request's answer (or its absence) means for the command.
    async fn settle(
        &self,
        message: &CommandMessage,
        reply: Result<Vec<u8>, IoError>,
        delivered: u64,
    ) -> Result<Executed, IoError> {
        match reply {
            Ok(bytes) => match serde_json::from_slice::<CtlReply>(&bytes) {
                Ok(r) if r.success => Ok(Executed::Sent),
                Ok(r) if already_done(&message.kind, &r.message) => {
                    tracing::debug!(command = %message.id, reply = %r.message, "already done");
                    Ok(Executed::AlreadyDone { message: r.message })
                }
                Ok(r) => {
                    let text = format!("{} refused: {}", message.kind, r.message);
                    self.report(message, &text).await?;
                    Ok(Executed::Refused { message: text })
                }
                Err(e) => {
                    let text = format!("{}: unreadable reply: {e}", message.kind);
                    self.report(message, &text).await?;
                    Ok(Executed::Refused { message: text })
                }
            },
            Err(IoError::NoResponders { .. }) => {
                // Nobody serves the subject: the host is gone (its lease will say so) or the
                // lattice has no host. Not the application's failure: the order is dropped
                // and the situation planned again from what is observed.
                self.dropped(message, NO_RESPONDERS, false).await?;
                Ok(Executed::NoResponders)
            }
            Err(e) if delivered < self.config.max_request_attempts => {
                tracing::debug!(command = %message.id, error = %e, "control request unanswered");
                let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
                let delay = self.config.request_backoff.delay_ms(attempt, self.random.next_u64());
                Ok(Executed::Retry { delay: Duration::from_millis(delay) })
            }
            Err(e) => {
                let text = format!("{} to {}: {e}", message.kind, message.subject);
                self.report(message, &text).await?;
                Ok(Executed::GaveUp { message: text })
            }
        }
    }

    async fn report(&self, message: &CommandMessage, text: &str) -> Result<(), IoError> {
        let failure = CommandFailure {
            app: message.app.clone(),
            generation: message.generation,
            command_id: message.id.clone(),
            kind: message.kind.clone(),
            message: text.to_string(),
            msg_id: message.msg_id(),
        };
        self.publish_internal(message, "command_failed", "failed", &failure).await
    }

    /// Tell the pipeline a command was dropped unsent, so its order stops counting as in flight
    /// (an order on the same slot may go at once instead of at the order's deadline). `unsure`:
    /// this was a redelivery, so an earlier attempt (unanswered, or sent by a replica that died
    /// before acking) may still reach or have reached the host.
    async fn dropped(
        &self,
        message: &CommandMessage,
        reason: &str,
        unsure: bool,
    ) -> Result<(), IoError> {
        let dropped = CommandDropped {
            app: message.app.clone(),
            msg_id: message.msg_id(),
            kind: message.kind.clone(),
            reason: reason.to_string(),
            unsure,
        };
        self.publish_internal(message, "command_dropped", "dropped", &dropped).await
    }

    /// Publish `body` as the internal event `kind` about `message`, deduplicated per message
    /// by the id `{prefix}.{msg_id}`.
    async fn publish_internal(
        &self,
        message: &CommandMessage,
        kind: &str,
        prefix: &str,
        body: &impl serde::Serialize,
    ) -> Result<(), IoError> {
        let outgoing = Outgoing {
            subject: internal_subject(&message.lattice, kind),
            payload: serde_json::to_vec(body).unwrap_or_default(),
            msg_id: format!("{prefix}.{}", message.msg_id()),
            ttl: None,
        };
        self.events.publish(outgoing).await.map(|_| ())
    }
}

/// Whether `inventory` (of the command's host) already shows what `message` asks for: a scale
/// to `count` of that image (`0`: not running), an update to that image, a provider running, a
/// provider gone. Unknown kinds and unreadable bodies are `false`.
pub fn in_effect(message: &CommandMessage, inventory: &HostInventory) -> bool {
    let body = message.body.as_bytes();
    let component = |id: &str| inventory.components.iter().find(|c| c.id == id);
    let provider = |id: &str| inventory.providers.iter().any(|p| p.id == id);
    match message.kind.as_str() {
        "scale_component" => match serde_json::from_slice::<ScaleComponentRequest>(body) {
            Ok(r) if r.count == 0 => component(&r.component_id).is_none(),
            Ok(r) => component(&r.component_id)
                .is_some_and(|c| c.max_instances == r.count && c.image_ref == *r.component_ref),
            Err(_) => false,
        },
        "update_component" => {
            serde_json::from_slice::<UpdateComponentRequest>(body).is_ok_and(|r| {
                component(&r.component_id).is_some_and(|c| c.image_ref == *r.new_component_ref)
            })
        }
        "start_provider" => serde_json::from_slice::<StartProviderRequest>(body)
            .is_ok_and(|r| provider(&r.provider_id)),
        "stop_provider" => serde_json::from_slice::<StopProviderRequest>(body)
            .is_ok_and(|r| !provider(&r.provider_id)),
        _ => false,
    }
}

/// What a command acts on, read from its body: a component, a provider, a link (by source) or a
/// config (by name). Never the body itself: a config's values may be secrets.
enum Acted {
    Component(String),
    Provider(String),
    Link(String),
    Config(String),
    Unknown,
}

fn acted_on(message: &CommandMessage) -> Acted {
    let body: serde_json::Value = serde_json::from_str(&message.body).unwrap_or_default();
    let field = |name: &str| body.get(name).and_then(serde_json::Value::as_str).map(str::to_string);
    let last_token = || message.subject.rsplit('.').next().unwrap_or_default().to_string();
    match message.kind.as_str() {
        "scale_component" | "update_component" => {
            field("component_id").map_or(Acted::Unknown, Acted::Component)
        }
        "start_provider" | "stop_provider" => {
            field("provider_id").map_or(Acted::Unknown, Acted::Provider)
        }
        "put_link" | "delete_link" => field("source_id").map_or(Acted::Unknown, Acted::Link),
        "put_config" | "delete_config" => Acted::Config(last_token()),
        _ => Acted::Unknown,
    }
}

/// The one `command sent` line (info) of a send attempt: the application, what the command acts
/// on, the host (for host-addressed commands; links and configs are lattice-wide), its kind,
/// why it was decided and how the attempt ended.
/// What became of a send attempt, in words (log lines and trace spans).
fn outcome(executed: &Result<Executed, IoError>) -> String {
    match executed {
        Ok(Executed::Sent) => "accepted".to_string(),
        Ok(Executed::AlreadyDone { .. }) => "already done".to_string(),
        Ok(Executed::Refused { message }) => format!("refused: {message}"),
        Ok(Executed::Retry { delay }) => format!("unanswered; again in {} ms", delay.as_millis()),
        Ok(Executed::GaveUp { message }) => format!("unanswered; gave up: {message}"),
        Ok(Executed::NoResponders) => "nobody serves its subject".to_string(),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("failed: {e}"),
    }
}

fn log_sent(message: &CommandMessage, delivered: u64, outcome: &str) {
    let (lattice, app, kind) = (&message.lattice, &message.app, &message.kind);
    let command = message.msg_id();
    let why = if message.reason.is_empty() { "(not recorded)" } else { message.reason.as_str() };
    let host = message.target_host.as_deref().unwrap_or_default();
    match acted_on(message) {
        Acted::Component(component) => tracing::info!(
            %lattice, %app, %component, %host, %kind, %why, %outcome, attempt = delivered,
            %command, "command sent"
        ),
        Acted::Provider(provider) => tracing::info!(
            %lattice, %app, %provider, %host, %kind, %why, %outcome, attempt = delivered,
            %command, "command sent"
        ),
        Acted::Link(source) => tracing::info!(
            %lattice, %app, link_source = %source, %kind, %why, %outcome, attempt = delivered,
            %command, "command sent"
        ),
        Acted::Config(config) => tracing::info!(
            %lattice, %app, %config, %kind, %why, %outcome, attempt = delivered,
            %command, "command sent"
        ),
        Acted::Unknown => tracing::info!(
            %lattice, %app, %kind, %why, %outcome, attempt = delivered, %command, "command sent"
        ),
    }
}

/// Counts an executed command in `wadm_commands_sent_total{kind, result}` (a no-op unless the
/// binary installed a metrics recorder).
fn count_sent(payload: &[u8], processed: &Result<Executed, IoError>) {
    #[derive(serde::Deserialize)]
    struct Kind {
        kind: String,
    }
    let result = match processed {
        Ok(Executed::Sent | Executed::AlreadyDone { .. }) => "ok",
        Ok(Executed::Refused { .. }) => "refused",
        Ok(Executed::Expired) => "expired",
        Ok(Executed::NoResponders) => "no_responders",
        Ok(Executed::Superseded { .. }) => "superseded",
        Ok(Executed::Settled) => "settled",
        Ok(Executed::Unreadable { .. }) => "unreadable",
        Ok(Executed::Retry { .. } | Executed::GaveUp { .. }) | Err(_) => "error",
    };
    let kind =
        serde_json::from_slice::<Kind>(payload).map_or_else(|_| "unknown".into(), |k| k.kind);
    metrics::counter!("wadm_commands_sent_total", "kind" => kind, "result" => result).increment(1);
}
