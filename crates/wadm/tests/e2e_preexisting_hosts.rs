//! Hosts that were running before wadm started (their `host_started` was never captured): wadm
//! learns them from heartbeats and discovery, places a weighted app, and reports `deployed`.
//! 3 replicas on real NATS; assertions read the simulated lattice.

mod common;

use common::Cluster;
use wadm_model::StatusType;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_running_before_wadm_get_the_app_and_it_reports_deployed() {
    let cluster = deployed_on_preexisting_hosts().await;
    cluster.shutdown().await;
}

/// Placement never works from the hosts heard from so far: the runtime holds a lattice whose
/// hosts ran before wadm until its first complete discovery round (it once ran 2 `early-api` on
/// an east host, then moved one away as the other hosts appeared; see `wadm_runtime::first_round`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_running_before_wadm_never_run_more_than_their_share() {
    let cluster = deployed_on_preexisting_hosts().await;
    for host in cluster.sim.hosts() {
        let max = cluster.sim.max_count_seen(&host, "early-api");
        let view = cluster.view();
        let now = view.components.get(&(host.clone(), "early-api".into())).map_or(0, |c| c.1);
        assert!(max <= now, "{host} once ran {max} early-api, more than its {now}");
    }
    cluster.shutdown().await;
}

async fn deployed_on_preexisting_hosts() -> Cluster {
    let hosts = Cluster::zone_hosts(&[("east", 3), ("west", 2)]);
    let cluster = Cluster::start_hosts_first(3, hosts).await;
    let name = cluster.put_and_deploy(&common::weighted_api_app("early")).await;
    cluster
        .wait_lattice("4 east + 2 west, the store runs, linked", |v| {
            v.count_where("early-api", "zone", "east") == 4
                && v.count_where("early-api", "zone", "west") == 2
                && v.provider_hosts("early-store").len() == 1
                && v.linked("early-api", "early-store")
        })
        .await;
    cluster.wait_status(&name, StatusType::Deployed).await.unwrap();
    cluster
}
