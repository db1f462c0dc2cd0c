//! What flows through the runtime's two streams, and their subjects.
//!
//! The **event stream** captures, per lattice `L`, host CloudEvents (`wasmbus.evt.L.>`), the API
//! server's deploy/undeploy events (`wadm.evt.L.>`) and what replicas publish themselves
//! (`wadm.internal.L.{tick,timer,command_failed,command_dropped,discovered}`): one stream, so its
//! sequence is the single order in which one lattice's events are applied (`docs/runtime.md`,
//! "Pipeline"). The **command stream** holds [`CommandMessage`]s on `wadm.cmd.L.{app}`. The
//! subjects are built by [`wadm_store::streams::subjects`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wadm_lattice::{DiscoveredHost, Discovery, Timestamp};
use wadm_protocol::subject::{qualify, unscope};
use wadm_protocol::{Host, HostInventory, Link, StringMap};

/// One event-stream message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A host CloudEvent (decoded later by the pipeline).
    Host,
    /// A deploy of application `name`.
    ManifestPublished {
        /// The application's name.
        name: String,
    },
    /// An undeploy of application `name`.
    ManifestUnpublished {
        /// The application's name.
        name: String,
    },
    /// A periodic resync.
    Tick,
    /// A deadline was reached (a host lease, an order in flight, a failure backoff).
    Timer {
        /// The deadline (ms since the epoch).
        at: Timestamp,
    },
    /// A command that failed.
    CommandFailed(CommandFailure),
    /// A command the executor dropped unsent.
    CommandDropped(CommandDropped),
    /// The answers of a discovery round.
    Discovered(DiscoveryReport),
    /// Something the runtime does not handle (skipped and acked), with the reason.
    Ignored(String),
}

/// The lattice of an event-stream subject and what the message is.
pub fn classify(subject: &str, payload: &[u8]) -> Option<(String, Incoming)> {
    let (account, unscoped) = unscope(subject);
    let mut tokens = unscoped.split('.');
    let (first, second, lattice) = (tokens.next()?, tokens.next()?, tokens.next()?);
    let rest: Vec<&str> = tokens.collect();
    let kind = rest.join(".");
    let incoming = match (first, second) {
        ("wasmbus", "evt") => Incoming::Host,
        ("wadm", "evt") => {
            let name = manifest_name(payload);
            match (kind.as_str(), name) {
                ("manifest_published", Some(name)) => Incoming::ManifestPublished { name },
                ("manifest_unpublished", Some(name)) => Incoming::ManifestUnpublished { name },
                (_, None) => Incoming::Ignored(format!("{subject}: no application name")),
                _ => Incoming::Ignored(format!("{subject}: not a manifest event")),
            }
        }
        ("wadm", "internal") => match kind.as_str() {
            "tick" => Incoming::Tick,
            "timer" => match serde_json::from_slice::<Tick>(payload) {
                Ok(t) => Incoming::Timer { at: t.at },
                Err(e) => Incoming::Ignored(format!("{subject}: {e}")),
            },
            "command_failed" => match serde_json::from_slice(payload) {
                Ok(f) => Incoming::CommandFailed(f),
                Err(e) => Incoming::Ignored(format!("{subject}: {e}")),
            },
            "command_dropped" => match serde_json::from_slice(payload) {
                Ok(d) => Incoming::CommandDropped(d),
                Err(e) => Incoming::Ignored(format!("{subject}: {e}")),
            },
            // Said by earlier wadm versions when their publishes had failed; a silence of the
            // stream now restarts leases by itself (see `crate::recording`).
            "unrecorded" => Incoming::Ignored(format!("{subject}: no longer used")),
            "discovered" => match serde_json::from_slice(payload) {
                Ok(d) => Incoming::Discovered(d),
                Err(e) => Incoming::Ignored(format!("{subject}: {e}")),
            },
            _ => Incoming::Ignored(format!("{subject}: unknown internal event")),
        },
        _ => return None,
    };
    Some((qualify(account, lattice), incoming))
}

/// The application named by a manifest event: `data.metadata.name` (published) or `data.name`.
fn manifest_name(payload: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let data = value.get("data")?;
    data.pointer("/metadata/name")
        .or_else(|| data.get("name"))
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A control request to send, as stored in the command stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandMessage {
    /// The plan's deterministic command id (a function of lattice, application, generation
    /// and command content).
    pub id: String,
    /// The lattice's order sequence number when it was issued (see [`crate::intents`]).
    #[serde(default)]
    pub seq: u64,
    /// The lattice it is sent to.
    pub lattice: String,
    /// The application it was decided for.
    pub app: String,
    /// The application's runtime generation when the command was decided.
    pub generation: u64,
    /// `scale_component`, `put_link`, …
    pub kind: String,
    /// The full control subject.
    pub subject: String,
    /// The host it is addressed to; `None` for lattice-wide requests (links, configs).
    pub target_host: Option<String>,
    /// The JSON request body (empty for bodiless requests).
    pub body: String,
    /// The deciding replica's clock when it was issued.
    pub issued_at: Timestamp,
    /// Not executed at or after this instant: the situation is re-observed instead.
    pub expires_at: Timestamp,
    /// Why it was decided, in words (for the executor's `command sent` log line; absent in
    /// messages of older wadm versions).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The W3C `traceparent` of the decision, when traces are recorded (see [`crate::trace`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace: String,
    /// What it changes and why in one word, for its allocation event (see
    /// [`crate::allocation`]; absent in messages of older wadm versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<crate::allocation::Allocation>,
}

impl CommandMessage {
    /// The `Nats-Msg-Id`: the plan id plus the order's sequence number. A redone step starts
    /// from the same committed sequence and re-publishes the same ids (deduplicated); an order
    /// needed again after the first one settled gets a new number.
    pub fn msg_id(&self) -> String {
        format!("{}.{}", self.id, self.seq)
    }
}

/// Why a command did not take effect, fed back into the event stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandFailure {
    /// The application the command was decided for.
    pub app: String,
    /// The application's runtime generation when the command was decided.
    pub generation: u64,
    /// The plan's command id (see [`CommandMessage::id`]).
    pub command_id: String,
    /// The command's kind (`scale_component`, `put_link`, …).
    pub kind: String,
    /// What went wrong, in words (the host's refusal or the last error).
    pub message: String,
    /// The failed command message's `Nats-Msg-Id` (which order to forget).
    #[serde(default)]
    pub msg_id: String,
}

/// A command the executor dropped unsent (past its TTL, or superseded by a newer generation),
/// fed back into the event stream so its order stops counting as in flight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandDropped {
    /// The application the command was decided for.
    pub app: String,
    /// The dropped command message's `Nats-Msg-Id` (which order stops counting as in flight).
    pub msg_id: String,
    /// The command's kind (`scale_component`, `put_link`, …).
    pub kind: String,
    /// Why it was dropped (`expired`, `superseded`, `no responders`).
    pub reason: String,
    /// Dropped at a redelivery: an earlier attempt may have been executed all the same (its
    /// answer was lost or late), so the order is not forgotten at once (see `step`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unsure: bool,
}

/// A discovery round, as carried in the event stream (see `wadm_lattice::Discovery`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiscoveryReport {
    /// wadm's clock when the round began.
    pub started_at: Timestamp,
    /// Hosts that answered the ping, with their inventory when `host.get` answered.
    pub hosts: Vec<(Host, Option<HostInventory>)>,
    /// Every link in the lattice, or `None` when nobody answered the link query.
    pub links: Option<Vec<Link>>,
    /// Configs asked for: `Some(values)` when it exists, `None` when not found (unanswered names
    /// are absent).
    pub configs: BTreeMap<String, Option<StringMap>>,
    /// Which part of a round cut into several messages this is, from 1 (`0`: the whole round;
    /// see [`crate::discovery::parts`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub part: u32,
    /// How many parts the round was cut into (`0`: not cut).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parts: u32,
    /// `links` holds only some of the lattice's links: add or update them, remove none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub links_partial: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl From<Discovery> for DiscoveryReport {
    fn from(d: Discovery) -> Self {
        Self {
            started_at: d.started_at,
            hosts: d.hosts.into_iter().map(|h| (h.host, h.inventory)).collect(),
            links: d.links,
            configs: d.configs,
            ..Self::default()
        }
    }
}

impl From<DiscoveryReport> for Discovery {
    fn from(r: DiscoveryReport) -> Self {
        Self {
            started_at: r.started_at,
            hosts: r
                .hosts
                .into_iter()
                .map(|(host, inventory)| DiscoveredHost { host, inventory })
                .collect(),
            links: r.links,
            configs: r.configs,
        }
    }
}

/// A tick's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The instant it is about (ms since the epoch): when a tick was published, a timer's
    /// deadline.
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_kind() {
        let host = classify("wasmbus.evt.default.host_heartbeat", b"{}").unwrap();
        assert_eq!(host, ("default".into(), Incoming::Host));
        let published = br#"{"data":{"metadata":{"name":"hello"}}}"#;
        assert_eq!(
            classify("wadm.evt.l.manifest_published", published).unwrap().1,
            Incoming::ManifestPublished { name: "hello".into() }
        );
        assert_eq!(
            classify("wadm.evt.l.manifest_unpublished", br#"{"data":{"name":"x"}}"#).unwrap().1,
            Incoming::ManifestUnpublished { name: "x".into() }
        );
        assert_eq!(classify("wadm.internal.l.tick", b"{}").unwrap().1, Incoming::Tick);
        assert!(matches!(
            classify("wadm.internal.l.unrecorded", br#"{"at":5}"#).unwrap().1,
            Incoming::Ignored(_)
        ));
        assert!(matches!(
            classify("wadm.internal.l.command_failed", b"nope").unwrap().1,
            Incoming::Ignored(_)
        ));
        assert!(matches!(
            classify("wadm.evt.l.manifest_published", b"{}").unwrap().1,
            Incoming::Ignored(_)
        ));
        assert_eq!(classify("other.thing.l.x", b""), None);
        let (lattice, incoming) = classify("ACC.wadm.internal.l.tick", b"{}").unwrap();
        assert_eq!((lattice.as_str(), incoming), ("ACC.l", Incoming::Tick));
        assert_eq!(classify("ACC.wasmbus.evt.l.host_started", b"{}").unwrap().0, "ACC.l");
        let subject = wadm_store::streams::subjects::internal_subject("ACC.l", "tick");
        assert_eq!(classify(&subject, b"{}").unwrap(), ("ACC.l".to_string(), Incoming::Tick));
        assert_eq!(classify("short", b""), None);
    }
}
