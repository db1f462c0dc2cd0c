//! In-memory implementations of the runtime's I/O, for deterministic tests in virtual time:
//! a stream with durable consumers ([`MemoryLog`]: ack, redelivery after the ack wait or a nak
//! delay, `max_ack_pending`, msg-id dedupe window, per-message TTL), a status store ([`MemoryStatus`]) and a lattice of model hosts that
//! answers control requests and emits host events ([`MemoryLattice`]), with switchable real-host
//! quirks ([`HostBehaviour`]), seeded faults ([`Faults`]: events dropped, duplicated, delayed;
//! requests lost or answered late), host crashes and graceful stops, and a log of every control
//! request received ([`ReceivedRequest`]).

mod lattice;
mod log;
mod stores;

pub use lattice::{FaultCounts, Faults, HostBehaviour, MemoryLattice, ReceivedRequest, Reply};
pub use log::{LogConfig, MemoryConsumer, MemoryDelivery, MemoryLog};
pub use stores::MemoryStatus;
