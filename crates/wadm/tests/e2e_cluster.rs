//! End to end on a 3-node JetStream cluster: every stream, bucket and consumer has 3 copies
//! (`--stream-replicas 3`), one wadm replica per node. Reads must be current even when a
//! follower lags: a `deploy` right after its `put` (through another node) is never "not found",
//! and a burst of deploys places exactly what is asked — never above a target, and one scale
//! request per placement (no repeats, no oscillation). Assertions read the simulated hosts.

mod common;

use std::time::Duration;

use common::{LATTICE, Replica};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsCluster, wait_for};

const APPS: usize = 30;
const INSTANCES: u32 = 4;
const HOSTS: usize = 4;

fn app(i: usize) -> String {
    common::numbered_app(i, &common::spread_trait(INSTANCES))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_deploy_burst_is_exact_and_put_then_deploy_is_never_not_found() {
    let cluster = NatsCluster::start(3);
    assert!(cluster.wait_ready(Duration::from_secs(60)).await, "JetStream cluster ready");
    let mut replicas = Vec::new();
    for node in 0..3 {
        replicas.push(Replica::start_replicated(&cluster.url(node), 3).await);
    }
    let mut sim_config = SimConfig::new(cluster.url(0), LATTICE);
    sim_config.heartbeat_interval = common::HEARTBEAT;
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    for _ in 0..HOSTS {
        sim.add_host(HostSpec::default()).await;
    }
    // The client talks to another node than the one the hosts use.
    let client =
        wadm_client::Client::new(async_nats::connect(cluster.url(2)).await.unwrap(), LATTICE, None);
    common::wait_hosts_known(&client, HOSTS).await;

    let started = std::time::Instant::now();
    for i in 0..APPS {
        let yaml = app(i);
        let put = client.put_manifest(yaml.into_bytes(), None).await.expect("put");
        // At once, no retry: a stale read would answer "not found".
        client.deploy(&put.name, Some(&put.current_version)).await.expect("deploy right after put");
    }

    eprintln!("{APPS} puts and deploys answered in {:?}", started.elapsed());
    let hosts = sim.hosts();
    let converged = wait_for(Duration::from_secs(120), || {
        let done = (0..APPS).all(|i| {
            let id = format!("app{i}-c");
            let total: u32 = hosts
                .iter()
                .filter_map(|h| sim.host_state(h))
                .filter_map(|s| s.components.get(&id).map(|c| c.count))
                .sum();
            total == INSTANCES
        });
        async move { done.then_some(()) }
    })
    .await;
    assert!(converged.is_some(), "every app runs {INSTANCES} instances");
    eprintln!("converged {:?} after the first put", started.elapsed());

    // Never above target, counting every host at once.
    let peaks = sim.peak_totals();
    for i in 0..APPS {
        let peak = peaks.get(&format!("app{i}-c")).copied().unwrap_or(0);
        assert!(peak <= u64::from(INSTANCES), "app{i} peaked at {peak}");
    }
    // One scale request per placement: (host, component) pairs running now.
    let placements: usize = hosts
        .iter()
        .filter_map(|h| sim.host_state(h))
        .map(|s| s.components.values().filter(|c| c.count > 0).count())
        .sum();
    let scales: u64 = hosts.iter().map(|h| sim.requests(h).get("component.scale")).sum();
    assert_eq!(scales, placements as u64, "scale requests beyond what was needed");

    for (node, replica) in replicas.iter().enumerate() {
        assert!(replica.alive(), "the replica on node {node} stopped");
    }
    for replica in replicas {
        replica.stop().await;
    }
    sim.shutdown().await;
}
