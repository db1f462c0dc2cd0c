//! JetStream implementations of the runtime's I/O: the two streams and their durable consumers
//! ([`streams`]), a pull consumer as an [`Inbox`](crate::io::Inbox) ([`JsInbox`]), publishing
//! with `Nats-Msg-Id` and `Nats-TTL` ([`JsOutbox`]) control requests ([`NatsControl`]) and discovery rounds ([`NatsDiscoverer`]).

mod control;
mod discover;
mod inbox;
mod outbox;
pub mod streams;

pub use control::NatsControl;
pub use discover::NatsDiscoverer;
pub use inbox::{JsDelivery, JsInbox};
pub use outbox::JsOutbox;
pub use streams::{
    StreamSettings, command_stream_name, ensure_command_consumer, ensure_event_consumer,
    ensure_streams, event_stream_name,
};
