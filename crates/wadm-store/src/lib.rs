//! Everything wadm keeps in JetStream.
//!
//! - [`names`]: every stream, bucket and durable consumer name, from one prefix ([`StoreNames`]);
//! - [`provision`]: JetStream contexts, creating streams and buckets (one bucket configuration);
//! - [`availability`]: leader or any-replica reads, "gone" versus "briefly unavailable";
//! - [`kv`], [`kv_key`], [`kv_list`]: the compare-and-set KV seam, key tokens, consumer-free lists;
//! - [`manifest`]: the versioned manifest store; [`status`]: the application status store;
//! - [`observed`]: observed lattice state, one key per entity; [`events`]: manifest CloudEvents;
//! - [`streams`]: the runtime's event and command streams, their subjects and consumers;
//! - [`health`], [`clock`].
//!
//! Decisions are made by the pure crates; this crate only moves bytes and reads the clock.

#![warn(missing_docs, unreachable_pub)]

pub mod account;
pub mod availability;
pub mod clock;
pub mod events;
pub mod health;
pub mod kv;
pub mod kv_key;
pub mod kv_list;
pub mod manifest;
pub mod names;
pub mod observed;
pub mod provision;
pub mod status;
pub mod streams;

pub use availability::{Availability, Reads};
pub use kv::{Kv, KvEntry, KvError, MemoryKv, NatsKv};
pub use manifest::{ManifestError, ManifestStore};
pub use names::{InvalidPrefix, StoreNames};
pub use observed::{KvStateStore, MemoryStateStore, StateError, StateStore};
pub use provision::{ProvisionError, Provisioner, Refusals, jetstream};
pub use status::{NatsStatusStore, StatusError, StatusStore};
