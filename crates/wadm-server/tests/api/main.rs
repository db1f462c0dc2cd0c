//! Integration tests of the wadm API server on a real `nats-server`, driven with plain
//! async-nats requests and the wire types of `wadm_model::api`.

mod apply;
mod common;
mod errors;
mod listing;
mod ops;
mod replicas;
mod status;
mod view;
