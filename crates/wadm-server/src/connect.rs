//! NATS connection options: a re-export of [`wadm_nats::connect`], the one implementation every
//! wadm process shares (kept here so `wadm_server::{NatsOptions, connect, ConnectError}` and
//! `wadm_server::connect::DEFAULT_NATS_URL` keep working).

pub use wadm_nats::connect::*;
