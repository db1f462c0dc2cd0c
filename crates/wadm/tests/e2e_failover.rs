//! End to end, 3 wadm replicas on real NATS with simulated hosts: failures. Hosts stop or crash
//! (instances re-placed once the lease ends), a replica dies in the middle of a 50-application
//! deploy (everything converges, no host ever over its target), and NATS restarts on the same
//! store (wadm reconnects and keeps working). Assertions read the simulated lattice.

mod common;

use std::time::Duration;

use common::Cluster;
use wadm_model::StatusType;
use wadm_sim::HostSpec;
use wadm_test_support::wait_for;

/// [`common::web_http_app`] `resilient` on 4 instances, the provider linked to them.
fn spread() -> String {
    common::web_http_app("resilient", 4)
        + r#"      traits:
        - type: link
          properties:
            target: {name: web}
            namespace: wasi
            package: http
            interfaces: [incoming-handler]
"#
}

/// Lease (2 × 1 s heartbeats + 0.5 s slack), plus resync and scheduling slack on a busy machine.
const RECOVERY: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_and_crashed_hosts_have_their_instances_replaced() {
    let cluster = Cluster::start(3, Cluster::zone_hosts(&[("a", 4)])).await;
    cluster.put_and_deploy(&spread()).await;
    let running = |v: &common::LatticeView| {
        v.count("resilient-web") == 4
            && v.provider_hosts("resilient-http").len() == 1
            && v.linked("resilient-http", "resilient-web")
    };
    cluster.wait_lattice("the app runs", running).await;
    cluster.wait_status("resilient", StatusType::Deployed).await.unwrap();

    // A graceful stop: the host says so (host_stopped).
    let provider_host = cluster.view().provider_hosts("resilient-http")[0].clone();
    assert!(cluster.sim.stop_host(&provider_host).await);
    recovered(&cluster, &provider_host, running).await;

    // A crash: the host just goes silent; only its lease tells.
    let victim = cluster.view().component_hosts("resilient-web")[0].clone();
    assert!(cluster.sim.crash_host(&victim).await);
    recovered(&cluster, &victim, running).await;
    cluster.shutdown().await;
}

async fn recovered(cluster: &Cluster, gone: &str, running: impl Fn(&common::LatticeView) -> bool) {
    let ok = wait_for(RECOVERY, || {
        let view = cluster.view();
        let ok = running(&view) && !view.labels.contains_key(gone);
        async move { ok.then_some(()) }
    })
    .await;
    assert!(ok.is_some(), "re-placed after {gone} left: {:#?}", cluster.view());
}

fn many_app(i: usize) -> String {
    let trait_yaml = if i.is_multiple_of(2) {
        "- type: daemonscaler\n          properties:\n            instances: 2".to_string()
    } else {
        common::spread_trait(3)
    };
    common::numbered_app(i, &trait_yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_dies_during_a_fifty_app_deploy_and_everything_converges() {
    let hosts: Vec<HostSpec> = Cluster::zone_hosts(&[("a", 3)]);
    let mut cluster = Cluster::start(3, hosts).await;
    for i in 0..50usize {
        if i == 25 {
            cluster.replicas[0].take().expect("replica 0 runs").kill().await;
        }
        cluster.put_and_deploy(&many_app(i)).await;
    }
    let host_ids = cluster.sim.hosts();
    cluster
        .wait_lattice("all 50 apps run: daemons 2 per host, spreads 3 in total", |v| {
            (0..50usize).all(|i| {
                let id = format!("app{i}-c");
                if i.is_multiple_of(2) {
                    host_ids.iter().all(|h| {
                        v.components.get(&(h.clone(), id.clone())).map(|(_, n)| *n) == Some(2)
                    })
                } else {
                    v.count(&id) == 3
                }
            })
        })
        .await;
    for i in 0..50usize {
        cluster.wait_status(&format!("app{i}"), StatusType::Deployed).await.unwrap();
    }
    for i in 0..50usize {
        let id = format!("app{i}-c");
        let target = if i.is_multiple_of(2) { 2 } else { 3 };
        for host in &host_ids {
            let max = cluster.sim.max_count_seen(host, &id);
            assert!(max <= target, "{id} reached {max} > {target} on {host}");
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wadm_reconnects_after_nats_restarts_on_the_same_store() {
    let mut cluster = Cluster::start(3, Cluster::zone_hosts(&[("a", 2)])).await;
    cluster.put_and_deploy(&many_app(1)).await;
    cluster.wait_lattice("app1 runs", |v| v.count("app1-c") == 3).await;
    cluster.wait_status("app1", StatusType::Deployed).await.unwrap();

    cluster.nats.restart().expect("nats-server restarts");
    // The API answers again once the replicas have reconnected.
    let answered = wait_for(common::DEADLINE, || async { cluster.client.list().await.ok() }).await;
    let apps = answered.expect("the API answers after the restart");
    assert!(apps.iter().any(|a| a.name == "app1"), "the stored app survived: {apps:?}");

    cluster.put_and_deploy(&many_app(3)).await;
    cluster
        .wait_lattice("an app deployed after the restart runs, the old one still does", |v| {
            v.count("app3-c") == 3 && v.count("app1-c") == 3
        })
        .await;
    cluster.wait_status("app3", StatusType::Deployed).await.unwrap();
    cluster.shutdown().await;
}

/// A replica killed mid-burst costs its lattice seconds, not the old 30 s ack wait: the event
/// consumer's pin moves to a live replica once the dead one's events are due again (ack wait
/// + 0.5 s; the tests' ack wait is 2 s). Prints the gap; asserts only a generous liveness bound
/// (speed is measured by benchmarks, not timed tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_replica_is_killed_the_next_deploy_runs_within_seconds() {
    let mut cluster = Cluster::start(2, Cluster::zone_hosts(&[("a", 2)])).await;
    cluster.put_and_deploy(&many_app(1)).await;
    cluster.wait_lattice("the first app runs", |v| v.count("app1-c") == 3).await;
    // Whichever replica holds the pin, killing both in turn covers it: kill the first now.
    let killed = std::time::Instant::now();
    cluster.replicas[0].take().expect("replica 0 runs").kill().await;
    cluster.put_and_deploy(&many_app(3)).await;
    let ok = wait_for(RECOVERY, || {
        let running = cluster.view().count("app3-c") == 3;
        async move { running.then_some(()) }
    })
    .await;
    assert!(ok.is_some(), "the lattice never continued: {:#?}", cluster.view());
    eprintln!("deploy after a replica was killed ran in {:?}", killed.elapsed());
    cluster.shutdown().await;
}
