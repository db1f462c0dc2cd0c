//! JetStream implementations of the runtime's I/O: the two streams and their durable consumers
//! ([`streams`]), a pull consumer as an [`Inbox`](crate::io::Inbox) ([`JsInbox`]), publishing
//! with `Nats-Msg-Id` and `Nats-TTL` ([`JsOutbox`]), and control requests ([`NatsControl`]). Discovery over NATS: [`crate::discovery::ask`].

mod control;
mod inbox;
mod outbox;
pub mod streams;

pub use control::NatsControl;
pub use inbox::{JsDelivery, JsInbox};
pub use outbox::JsOutbox;
pub use streams::{
    StreamSettings, command_stream_name, ensure_command_consumer, ensure_event_consumer,
    ensure_streams, event_stream_name,
};
