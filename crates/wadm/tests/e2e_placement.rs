//! End to end, 3 wadm replicas on real NATS with simulated hosts: where things are placed.
//! Weighted spreads with a provider and a link; daemons on every matching host; an application
//! that cannot be placed fails with the reason. Assertions read the simulated lattice.

mod common;

use common::{Cluster, LatticeView};
use wadm_model::StatusType;
use wadm_sim::HostSpec;

/// [`common::weighted_api_app`] `weighted`, its store only on a west host.
fn weighted() -> String {
    common::weighted_api_app("weighted")
        + r#"      traits:
        - type: spreadscaler
          properties:
            instances: 1
            spread:
              - name: west-only
                requirements: {zone: west}
"#
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_spreads_with_provider_and_link_on_five_labelled_hosts() {
    let cluster = Cluster::start(3, Cluster::zone_hosts(&[("east", 3), ("west", 2)])).await;
    let name = cluster.put_and_deploy(&weighted()).await;

    cluster
        .wait_lattice("4 east + 2 west api instances, store on a west host, linked", |v| {
            v.count_where("weighted-api", "zone", "east") == 4
                && v.count_where("weighted-api", "zone", "west") == 2
                && v.count("weighted-api") == 6
                && provider_zones(v, "weighted-store") == ["west"]
                && v.linked("weighted-api", "weighted-store")
        })
        .await;
    cluster.wait_status(&name, StatusType::Deployed).await.unwrap();
    let view = cluster.view();
    assert_eq!(view.images("weighted-api"), ["ghcr.io/example/api:1.0.0"]);
    cluster.shutdown().await;
}

fn provider_zones(view: &LatticeView, provider: &str) -> Vec<String> {
    view.provider_hosts(provider)
        .iter()
        .filter_map(|h| view.labels.get(h).and_then(|l| l.get("zone")).cloned())
        .collect()
}

const DAEMONS: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: daemons
  annotations:
    version: v1
spec:
  components:
    - name: agent
      type: component
      properties:
        image: ghcr.io/example/agent:1.0.0
      traits:
        - type: daemonscaler
          properties:
            instances: 2
            spread:
              - name: gpu
                requirements: {gpu: "yes"}
    - name: metrics
      type: capability
      properties:
        image: ghcr.io/example/metrics:1.0.0
      traits:
        - type: daemonscaler
          properties:
            instances: 1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_run_on_every_matching_host_including_new_ones() {
    let gpu = || HostSpec::default().label("gpu", "yes");
    let hosts = vec![gpu(), gpu(), HostSpec::default(), HostSpec::default()];
    let cluster = Cluster::start(3, hosts).await;
    let name = cluster.put_and_deploy(DAEMONS).await;

    cluster
        .wait_lattice("2 agents on each gpu host, metrics on all 4 hosts", |v| {
            v.count_where("daemons-agent", "gpu", "yes") == 4
                && v.count("daemons-agent") == 4
                && v.component_hosts("daemons-agent").len() == 2
                && v.provider_hosts("daemons-metrics").len() == 4
        })
        .await;
    cluster.wait_status(&name, StatusType::Deployed).await.unwrap();

    cluster.sim.add_host(gpu()).await;
    cluster
        .wait_lattice("a new gpu host gets its agents and metrics", |v| {
            v.count("daemons-agent") == 6 && v.provider_hosts("daemons-metrics").len() == 5
        })
        .await;
    cluster.shutdown().await;
}

const UNPLACEABLE: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: nowhere
  annotations:
    version: v1
spec:
  components:
    - name: rover
      type: component
      properties:
        image: ghcr.io/example/rover:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
            spread:
              - name: mars
                requirements: {zone: mars}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_cannot_be_placed_fails_with_the_reason() {
    let cluster = Cluster::start(3, Cluster::zone_hosts(&[("east", 2)])).await;
    let name = cluster.put_and_deploy(UNPLACEABLE).await;
    let status = cluster.wait_status(&name, StatusType::Failed).await.unwrap();
    let message = format!(
        "{} {}",
        status.status.message,
        status.scalers.iter().map(|s| s.status.message.clone()).collect::<Vec<_>>().join(" ")
    );
    assert!(
        message.contains("zone") || message.contains("mars"),
        "names the requirement: {message}"
    );
    assert_eq!(cluster.view().count("nowhere-rover"), 0);
    cluster.shutdown().await;
}
