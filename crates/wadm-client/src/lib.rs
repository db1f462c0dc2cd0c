//! A client library for the wadm NATS API.
//!
//! [`Client`] sends the request/reply operations of the API
//! (`{prefix}.{lattice}.model.{operation}[.{name}]`) and decodes the replies into the wire types of
//! [`wadm_model::api`]; every failure is a typed [`ClientError`] (timeout, no responders, an error
//! or not-found answer carrying the server's message, an undecodable reply). [`Client::watch_status`]
//! follows the status an application publishes on `wadm.status.{lattice}.{name}`;
//! [`Client::deploy_and_wait`] deploys and waits until the application is deployed or failed.
//! [`Client::lattice_hosts`], [`Client::app_hosts`] and [`Client::lattices`] read the lattice
//! view: the hosts wadm observes and what runs where.
//!
//! [`ConnectOptions`] ([`connect::NatsOptions`]) opens the NATS connection the way every wadm
//! process does (URL with optional user/password, credentials file, nkey seed
//! and JWT, TLS CA); [`manifest`] reads the name, version and format of a manifest file before it
//! is sent.
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
