//! What handling one control request produces: an optional reply and the events that follow.
//!
//! Handlers are plain functions over simulator state that return an [`Outcome`]; the NATS shell
//! ([`crate::runtime`]) publishes it. Keeping the decision separate from the I/O makes every quirk
//! testable without a server.

use serde::Serialize;
use wadm_protocol::ctl::CtlReply;

/// One event to publish: its short type (`component_scaled`, …) and its `data`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimEvent {
    pub(crate) short: &'static str,
    pub(crate) data: serde_json::Value,
}

impl SimEvent {
    /// An event whose data is the JSON form of `data`.
    pub(crate) fn new(short: &'static str, data: impl Serialize) -> Self {
        let data = serde_json::to_value(data).unwrap_or(serde_json::Value::Null);
        Self { short, data }
    }
}

/// The result of one control request.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Outcome {
    /// `None`: the host stays silent (e.g. a host that does not qualify for an auction).
    pub(crate) reply: Option<CtlReply>,
    /// Published after the reply, in order.
    pub(crate) events: Vec<SimEvent>,
    /// The host exits after replying (`host.stop`).
    pub(crate) stop_host: bool,
}

impl Outcome {
    /// A reply and no events.
    pub(crate) fn reply(reply: CtlReply) -> Self {
        Self { reply: Some(reply), ..Self::default() }
    }
    /// An accepted request with a response body.
    pub(crate) fn with(response: impl Serialize) -> Self {
        match serde_json::to_value(response) {
            Ok(v) => Self::reply(CtlReply::with(v)),
            Err(e) => Self::reply(CtlReply::error(format!("failed to encode response: {e}"))),
        }
    }
    /// An accepted request.
    pub(crate) fn ok() -> Self {
        Self::reply(CtlReply::ok())
    }
    /// A refused request.
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self::reply(CtlReply::error(message))
    }
    /// No reply at all.
    pub(crate) fn silent() -> Self {
        Self::default()
    }
    /// Add an event.
    pub(crate) fn event(mut self, short: &'static str, data: impl Serialize) -> Self {
        self.events.push(SimEvent::new(short, data));
        self
    }
}

/// Decode a request body, or produce the `success:false` reply a host gives when it cannot.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, Box<Outcome>> {
    serde_json::from_slice(body)
        .map_err(|e| Box::new(Outcome::error(format!("failed to deserialize {what} request: {e}"))))
}
