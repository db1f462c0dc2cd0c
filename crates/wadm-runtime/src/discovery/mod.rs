//! Discovery: *asking* the lattice what it runs instead of waiting for heartbeats, all of it here
//! but the merge. [`ask`]: one round over NATS (host ping, inventories, links, configs);
//! [`rounds`]: when a replica runs rounds and how their answers enter the event stream;
//! [`parts`]: a round cut into bounded messages, each merged on its own; [`first_round`]:
//! reconciles held until a lattice's first complete round. Merging answers into observed state
//! is [`wadm_lattice::merge_discovery`] (pure, beside the state it changes); hosts asked one by
//! one (reported stopped, unknown claimants) are the pipeline's (`step::host_answer`).

pub mod ask;
pub mod first_round;
pub mod parts;
pub mod rounds;

pub use ask::{DiscoveryConfig, NatsDiscoverer, discover};
pub(crate) use rounds::DiscoveryRounds;
pub use rounds::{discover_into, discover_with_id, periodic_discovery_id, publish_round};
