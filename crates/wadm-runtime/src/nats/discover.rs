//! Discovery rounds over NATS, by `wadm_store::discover` (host ping, inventories, links).

use async_nats::Client;
use wadm_lattice::{Discovery, Timestamp};
use wadm_store::DiscoveryConfig;

use crate::io::{Discoverer, IoError};

/// Asks the lattice on one connection.
#[derive(Clone)]
pub struct NatsDiscoverer {
    client: Client,
    config: DiscoveryConfig,
}

impl NatsDiscoverer {
    pub fn new(client: Client, config: DiscoveryConfig) -> Self {
        Self { client, config }
    }
}

impl Discoverer for NatsDiscoverer {
    async fn discover(&self, lattice: &str, started_at: Timestamp) -> Result<Discovery, IoError> {
        wadm_store::discover(&self.client, lattice, &self.config, started_at)
            .await
            .map_err(|e| IoError::failed(format!("discover lattice {lattice}"), e))
    }
}
