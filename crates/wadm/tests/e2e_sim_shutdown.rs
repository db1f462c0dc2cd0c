//! Found while testing `wadm serve`/`wadm up`: `SimLattice::shutdown` must return once its NATS
//! server is gone (it used to flush with no deadline while the client reconnected forever).

use std::time::Duration;

use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::NatsServer;

#[tokio::test]
async fn sim_shutdown_returns_when_nats_is_gone() {
    let mut nats = NatsServer::start();
    let sim = SimLattice::connect(SimConfig::new(nats.url(), "default")).await.unwrap();
    sim.add_host(HostSpec::default()).await;
    nats.stop();
    let stopped = tokio::time::timeout(Duration::from_secs(20), sim.shutdown()).await;
    assert!(stopped.is_ok(), "SimLattice::shutdown did not return within 20 s without NATS");
}
