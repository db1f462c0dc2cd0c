//! [`StatusStream`]: the statuses an application publishes, as they arrive.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use wadm_model::status::Status;

use crate::error::ClientError;
use crate::reply::decode;

/// Statuses published on `wadm.status.{lattice}.{name}`. A message that does not decode is yielded
/// as an error and the stream goes on; the stream ends when the connection closes.
pub struct StatusStream {
    subject: String,
    subscriber: async_nats::Subscriber,
}

impl StatusStream {
    pub(crate) fn new(subject: String, subscriber: async_nats::Subscriber) -> Self {
        Self { subject, subscriber }
    }

    /// The subject followed.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The next status (`None` once the subscription has ended).
    pub async fn next_status(&mut self) -> Option<Result<Status, ClientError>> {
        self.next().await
    }
}

impl Stream for StatusStream {
    type Item = Result<Status, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.subscriber.poll_next_unpin(cx) {
            Poll::Ready(Some(message)) => {
                Poll::Ready(Some(decode::<Status>(&this.subject, &message.payload)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
