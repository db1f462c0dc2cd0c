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

use crate::availability::Reads;

/// `wadm.status.{lattice}.{app}`.
pub fn status_subject(lattice: &str, app: &str) -> String {
    wadm_protocol::subject::scoped(lattice, |name| format!("wadm.status.{name}.{app}"))
}

/// Why reading or writing status failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("status store error for {subject}: {reason}")]
pub struct StatusError {
    /// The status subject read or written.
    pub subject: String,
    /// Why it failed, one line.
    pub reason: String,
}

impl StatusError {
    /// Whether asking again shortly may succeed ([`crate::availability::classify`]).
    pub fn is_unavailable(&self) -> bool {
        crate::availability::is_unavailable(&self.reason)
    }

    /// What the error says about the status stream ([`crate::availability::classify`]).
    pub fn availability(&self) -> crate::availability::Availability {
        crate::availability::classify(&self.reason)
    }
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

/// Status kept in the status stream (`max_msgs_per_subject: 1`); another account's lattices'
/// in that account's own `{status stream}_{account}` (see [`crate::account`]), opened (and
/// created when missing) on first use. Reads go to the stream leader; [`Self::any_replica`]
/// reads from any replica.
#[derive(Clone)]
pub struct NatsStatusStore {
    js: jetstream::Context,
    stream: stream::Stream,
    accounts: std::sync::Arc<std::sync::Mutex<BTreeMap<String, stream::Stream>>>,
    reads: Reads,
}

impl NatsStatusStore {
    /// Use the (already created) plain status stream (never an account's own: those are found
    /// from its name).
    pub fn new(js: jetstream::Context, stream: stream::Stream) -> Self {
        Self { js, stream, accounts: Default::default(), reads: Reads::Leader }
    }

    /// The same store, its reads answered by any replica (direct gets, served by followers
    /// during a leader election too): possibly stale. Writes are unchanged.
    pub fn any_replica(&self) -> Self {
        Self { reads: Reads::AnyReplica, ..self.clone() }
    }

    /// The configuration of the status stream `name` ([`crate::StoreNames::status_stream`]), or
    /// of `account`'s own one in account-scoped mode.
    pub fn stream_config(name: &str, account: Option<&str>, replicas: usize) -> stream::Config {
        stream::Config {
            name: crate::account::stream_name(name, account),
            num_replicas: replicas,
            description: Some("wadm: last status of every application".into()),
            subjects: vec![crate::account::stream_subject("wadm.status.>", account)],
            max_messages_per_subject: 1,
            // Current reads go to the stream leader all the same (a direct get may be answered
            // by a lagging follower); direct gets serve the possibly stale reads made while no
            // leader answers. A stream made without them is switched when opened.
            allow_direct: true,
            ..Default::default()
        }
    }

    /// The stream holding `lattice`'s statuses.
    async fn stream_of(&self, lattice: &str) -> Result<stream::Stream, StatusError> {
        let (Some(account), _) = wadm_protocol::subject::split_account(lattice) else {
            return Ok(self.stream.clone());
        };
        let known = |accounts: &Self| {
            accounts.accounts.lock().unwrap_or_else(|p| p.into_inner()).get(account).cloned()
        };
        if let Some(stream) = known(self) {
            return Ok(stream);
        }
        let plain = &self.stream.cached_info().config;
        let config = Self::stream_config(&plain.name, Some(account), plain.num_replicas);
        let name = config.name.clone();
        let stream = crate::provision::open_or_create_stream(&self.js, &config)
            .await
            .map_err(|reason| StatusError { subject: name.clone(), reason })?;
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        accounts.insert(account.to_string(), stream.clone());
        Ok(stream)
    }
}

fn err(subject: &str, e: impl std::error::Error) -> StatusError {
    StatusError { subject: subject.to_string(), reason: wadm_protocol::one_line(&e) }
}

impl NatsStatusStore {
    /// The application's last status, read as `reads` says.
    async fn read(
        &self,
        reads: Reads,
        lattice: &str,
        app: &str,
    ) -> Result<Option<Status>, StatusError> {
        let subject = status_subject(lattice, app);
        let stream = self.stream_of(lattice).await?;
        match crate::kv_list::last_message(&stream, reads, subject.clone()).await {
            Ok(Some(message)) => {
                serde_json::from_slice(&message.payload).map(Some).map_err(|e| err(&subject, e))
            }
            Ok(None) => Ok(None),
            Err(reason) => Err(StatusError { subject, reason }),
        }
    }
}

impl StatusStore for NatsStatusStore {
    async fn get(&self, lattice: &str, app: &str) -> Result<Option<Status>, StatusError> {
        self.read(self.reads, lattice, app).await
    }

    /// Consumer-free (see [`crate::kv_list`]); unreadable statuses are left out.
    async fn list(&self, lattice: &str) -> Result<BTreeMap<String, Status>, StatusError> {
        let filter = status_subject(lattice, "*");
        let stream = self.stream_of(lattice).await?;
        let messages = crate::kv_list::last_per_subject(&stream, &filter, self.reads)
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
        // Compared with the current status (the leader's), whatever this handle reads.
        if self.read(Reads::Leader, lattice, app).await?.as_ref() == Some(status) {
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
        let stream = self.stream_of(lattice).await?;
        stream.purge().filter(subject.clone()).await.map_err(|e| err(&subject, e))?;
        Ok(())
    }
}
