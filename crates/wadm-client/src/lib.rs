//! A client library for the wadm NATS API: [`Client`] sends its request/reply operations
//! (`{prefix}.{lattice}.model.{operation}[.{name}]`) and decodes the replies into the wire types
//! of [`wadm_model::api`], with typed failures ([`ClientError`]); it also follows statuses
//! ([`Client::watch_status`], [`Client::deploy_and_wait`]) and reads the lattice view
//! ([`Client::lattice_hosts`]). [`ConnectOptions`] opens NATS the way every wadm process does;
//! [`manifest`] reads a manifest file's name, version and format before it is sent.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wadm_client::ClientError> {
//! use wadm_client::{Client, ConnectOptions};
//! let nats = ConnectOptions::from_env().connect().await?;
//! let client = Client::new(nats, "default", None);
//! let put = client.put_manifest(std::fs::read("app.yaml").unwrap(), None).await?;
//! client.deploy(&put.name, Some(&put.current_version)).await?;
//! let status = client.status(&put.name).await?;
//! println!("{}", status.status.status_type);
//! # Ok(()) }
//! ```

#![warn(missing_docs, unreachable_pub)]

mod client;
pub mod connect;
mod error;
pub mod manifest;
mod reply;
mod wait;
mod watch;

pub use client::{ACTOR_HEADER, Client, DEFAULT_TIMEOUT};
pub use connect::{
    ConnectError, DEFAULT_NATS_URL, NATS_CREDS_ENV, NATS_TLS_CA_ENV, NATS_URL_ENV,
    NatsOptions as ConnectOptions,
};
pub use error::ClientError;
pub use wadm_model::api;
pub use wadm_model::api::{
    HistoryAction, HistoryEntry, HistoryResponse, HostSummary, LatticeSummary, RunningWorkload,
};
pub use wadm_model::status::{Instances, ScalerStatus, Status, StatusInfo, StatusType};
pub use wait::POLL_EVERY;
pub use watch::StatusStream;
