//! Application status: the seam between whoever decides status (the scheduler via the runtime,
//! later; the API server's deploy/undeploy today) and whoever reads it (`model.status`,
//! `model.get`, subscribers of `wadm.status.{lattice}.{app}`).
//!
//! [`StatusStore`] is that seam. [`NatsStatusStore`] keeps the last status of every application
//! in a JetStream stream that retains one message per subject, so a status is published exactly
//! when it is written with a different value, and readable later by anyone.

use std::collections::BTreeMap;
use std::future::Future;

use async_nats::jetstream::{self, stream};
use wadm_model::Status;

/// `wadm.status.{lattice}.{app}`.
pub fn status_subject(lattice: &str, app: &str) -> String {
    format!("wadm.status.{lattice}.{app}")
}

/// Why reading or writing status failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("status store error for {subject}: {reason}")]
pub struct StatusError {
    pub subject: String,
    pub reason: String,
}

/// Where application status lives.
pub trait StatusStore: Send + Sync + 'static {
    /// The last status written for the application.
    fn get(
        &self,
        lattice: &str,
        app: &str,
    ) -> impl Future<Output = Result<Option<Status>, StatusError>> + Send;
    /// The last status of every application of a lattice that has one, by application name.
    fn list(
        &self,
        lattice: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, Status>, StatusError>> + Send;
    /// Write (and publish) the status if it differs from the last one. Returns whether it changed.
    fn set(
        &self,
        lattice: &str,
        app: &str,
        status: &Status,
    ) -> impl Future<Output = Result<bool, StatusError>> + Send;
    /// Forget the application's status (it was deleted).
    fn remove(
        &self,
        lattice: &str,
        app: &str,
    ) -> impl Future<Output = Result<(), StatusError>> + Send;
}

/// Status kept in the status stream (`max_msgs_per_subject: 1`).
#[derive(Clone)]
pub struct NatsStatusStore {
    js: jetstream::Context,
    stream: stream::Stream,
}

impl NatsStatusStore {
    /// Use the (already created) status stream.
    pub fn new(js: jetstream::Context, stream: stream::Stream) -> Self {
        Self { js, stream }
    }

    /// The stream configuration this store expects, for stream `name`
    /// ([`crate::StoreNames::status_stream`]).
    pub fn stream_config(name: &str, replicas: usize) -> stream::Config {
        stream::Config {
            name: name.into(),
            num_replicas: replicas,
            description: Some("wadm: last status of every application".into()),
            subjects: vec!["wadm.status.>".into()],
            max_messages_per_subject: 1,
            allow_direct: true,
            ..Default::default()
        }
    }
}

fn err(subject: &str, e: impl std::error::Error) -> StatusError {
    StatusError { subject: subject.to_string(), reason: wadm_protocol::one_line(&e) }
}

impl StatusStore for NatsStatusStore {
    async fn get(&self, lattice: &str, app: &str) -> Result<Option<Status>, StatusError> {
        let subject = status_subject(lattice, app);
        match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(message) => {
                serde_json::from_slice(&message.payload).map(Some).map_err(|e| err(&subject, e))
            }
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(err(&subject, e)),
        }
    }

    /// Consumer-free (see [`crate::kv_list`]); unreadable statuses are left out.
    async fn list(&self, lattice: &str) -> Result<BTreeMap<String, Status>, StatusError> {
        let filter = status_subject(lattice, "*");
        let messages = crate::kv_list::last_per_subject(&self.stream, &filter)
            .await
            .map_err(|e| StatusError { subject: e.pattern, reason: e.reason })?;
        Ok(messages
            .into_iter()
            .filter_map(|message| {
                let app = message.subject.rsplit('.').next().unwrap_or_default().to_string();
                serde_json::from_slice::<Status>(&message.payload).ok().map(|s| (app, s))
            })
            .collect())
    }

    async fn set(&self, lattice: &str, app: &str, status: &Status) -> Result<bool, StatusError> {
        if self.get(lattice, app).await?.as_ref() == Some(status) {
            return Ok(false);
        }
        let subject = status_subject(lattice, app);
        let payload = serde_json::to_vec(status).map_err(|e| err(&subject, e))?;
        self.js
            .publish(subject.clone(), payload.into())
            .await
            .map_err(|e| err(&subject, e))?
            .await
            .map_err(|e| err(&subject, e))?;
        Ok(true)
    }

    async fn remove(&self, lattice: &str, app: &str) -> Result<(), StatusError> {
        let subject = status_subject(lattice, app);
        self.stream.purge().filter(subject.clone()).await.map_err(|e| err(&subject, e))?;
        Ok(())
    }
}
