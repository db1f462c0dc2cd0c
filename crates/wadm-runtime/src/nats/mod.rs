//! JetStream implementations of the runtime's I/O (the streams and consumers themselves are
//! [`wadm_store::streams`]): a pull consumer as an [`Inbox`](crate::io::Inbox) ([`JsInbox`]), publishing
//! with `Nats-Msg-Id` and `Nats-TTL` ([`JsOutbox`]), and control requests ([`NatsControl`]). Discovery over NATS: [`crate::discovery::ask`].

mod control;
mod inbox;
mod outbox;

pub use control::NatsControl;
pub use inbox::{JsDelivery, JsInbox};
pub use outbox::JsOutbox;
