//! End to end, 3 wadm replicas on real NATS with simulated hosts: the life of an application.
//! Upgrade (images, counts, links, config) and rollback; undeploy removes exactly what the
//! application owned; two applications sharing a provider. Assertions read the simulated lattice.

mod common;

use common::Cluster;
use wadm_model::StatusType;
use wadm_protocol::ctl::ScaleComponentRequest;
use wadm_protocol::subject::{self, suffix};

/// The worker that [`web_app`] adds: linked from `web`, on one instance.
const WORKER: &str = r#"        - type: link
          properties:
            target: {name: worker}
            namespace: wasmcloud
            package: messaging
            interfaces: [consumer]
    - name: worker
      type: component
      properties:
        image: ghcr.io/example/worker:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#;

/// Application `shop`: [`common::linked_web_app_at`] with `web_count` web instances, and a
/// [`WORKER`] when `worker`.
fn web_app(version: &str, web_image: &str, web_count: u32, address: &str, worker: bool) -> String {
    let scaler = format!("instances: {web_count}");
    let app = common::linked_web_app_at("shop", version, web_image, address, &scaler);
    if worker { app + WORKER } else { app }
}

fn listen_address(cluster: &Cluster) -> Option<String> {
    cluster.view().configs.get("shop-listen").and_then(|c| c.get("ADDRESS")).cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_changes_images_counts_links_and_config_and_rollback_restores_v1() {
    let cluster = Cluster::start(3, Cluster::zone_hosts(&[("a", 3)])).await;
    let v1 = web_app("v1", "ghcr.io/example/web:1.0.0", 2, "0.0.0.0:8080", false);
    let v2 = web_app("v2", "ghcr.io/example/web:2.0.0", 4, "0.0.0.0:9090", true);

    cluster.put_and_deploy(&v1).await;
    cluster
        .wait_lattice("v1 runs", |v| {
            v.count("shop-web") == 2
                && v.images("shop-web") == ["ghcr.io/example/web:1.0.0"]
                && v.linked("shop-http", "shop-web")
                && v.provider_hosts("shop-http").len() == 1
        })
        .await;
    assert_eq!(listen_address(&cluster).as_deref(), Some("0.0.0.0:8080"));
    cluster.wait_status("shop", StatusType::Deployed).await.unwrap();

    cluster.put_and_deploy(&v2).await;
    cluster
        .wait_lattice("v2 runs: new image, 4 web, a worker linked, new address", |v| {
            v.count("shop-web") == 4
                && v.images("shop-web") == ["ghcr.io/example/web:2.0.0"]
                && v.count("shop-worker") == 1
                && v.linked("shop-web", "shop-worker")
                && v.linked("shop-http", "shop-web")
                && v.configs.get("shop-listen").and_then(|c| c.get("ADDRESS")).map(String::as_str)
                    == Some("0.0.0.0:9090")
        })
        .await;
    cluster.wait_status("shop", StatusType::Deployed).await.unwrap();

    cluster.client.deploy("shop", Some("v1")).await.expect("rollback deploy");
    cluster
        .wait_lattice("rolled back to v1: old image, 2 web, no worker, old address", |v| {
            v.count("shop-web") == 2
                && v.images("shop-web") == ["ghcr.io/example/web:1.0.0"]
                && v.count("shop-worker") == 0
                && !v.linked("shop-web", "shop-worker")
                && v.linked("shop-http", "shop-web")
                && v.configs.get("shop-listen").and_then(|c| c.get("ADDRESS")).map(String::as_str)
                    == Some("0.0.0.0:8080")
        })
        .await;
    cluster.wait_status("shop", StatusType::Deployed).await.unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeploy_removes_what_the_app_owned_and_nothing_else() {
    let cluster = Cluster::start(3, Cluster::zone_hosts(&[("a", 2)])).await;
    let host = cluster.sim.hosts()[0].clone();
    // A component somebody started by hand: wadm does not own it.
    let foreign = ScaleComponentRequest {
        component_ref: "ghcr.io/example/foreign:1.0.0".into(),
        component_id: "foreign".into(),
        count: 1,
        host_id: host.as_str().into(),
        annotations: Default::default(),
        config: Vec::new(),
        allow_update: false,
        component_limits: None,
    };
    let subject = subject::ctl_host(common::LATTICE, suffix::COMPONENT_SCALE, &host);
    let nats = cluster.client.nats().clone();
    nats.request(subject, serde_json::to_vec(&foreign).unwrap().into()).await.expect("scaled");
    cluster.wait_lattice("the foreign component runs", |v| v.count("foreign") == 1).await;

    let v1 = web_app("v1", "ghcr.io/example/web:1.0.0", 2, "0.0.0.0:8080", true);
    cluster.put_and_deploy(&v1).await;
    cluster
        .wait_lattice("the app runs", |v| {
            v.count("shop-web") == 2
                && v.count("shop-worker") == 1
                && v.provider_hosts("shop-http").len() == 1
                && v.linked("shop-web", "shop-worker")
        })
        .await;
    cluster.wait_status("shop", StatusType::Deployed).await.unwrap();

    cluster.client.undeploy("shop").await.expect("undeploy");
    cluster
        .wait_lattice("the app's components, provider, links and config are gone", |v| {
            v.count("shop-web") == 0
                && v.count("shop-worker") == 0
                && v.provider_hosts("shop-http").is_empty()
                && !v.links.iter().any(|l| l.source_id.starts_with("shop-"))
                && !v.configs.contains_key("shop-listen")
        })
        .await;
    let view = cluster.view();
    assert_eq!(view.count("foreign"), 1, "the foreign component survives: {view:#?}");
    assert_eq!(view.component_hosts("foreign"), [host]);
    cluster.wait_status("shop", StatusType::Undeployed).await.unwrap();
    cluster.shutdown().await;
}

/// The shared application both users link from.
const SHARED: &str = "shared-http";

/// A user of [`SHARED`]'s provider.
fn user_app(name: &str) -> String {
    common::shared_user_app(name, SHARED)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_share_a_provider_and_undeploying_one_keeps_it() {
    let cluster = Cluster::start(3, Cluster::zone_hosts(&[("a", 2)])).await;
    cluster.put_and_deploy(&common::shared_http_app(SHARED)).await;
    cluster
        .wait_lattice("the shared provider runs", |v| {
            v.provider_hosts("shared_http-httpserver").len() == 1
        })
        .await;
    cluster.wait_status("shared-http", StatusType::Deployed).await.unwrap();
    for app in ["left", "right"] {
        cluster.put_and_deploy(&user_app(app)).await;
    }
    cluster
        .wait_lattice("both apps link the one shared provider", |v| {
            v.linked("shared_http-httpserver", "left-handler")
                && v.linked("shared_http-httpserver", "right-handler")
                && v.provider_hosts("shared_http-httpserver").len() == 1
                && v.providers.len() == 1
        })
        .await;
    cluster.wait_status("left", StatusType::Deployed).await.unwrap();
    cluster.wait_status("right", StatusType::Deployed).await.unwrap();

    cluster.client.undeploy("left").await.expect("undeploy left");
    cluster
        .wait_lattice("left is gone, the provider and right's link stay", |v| {
            v.count("left-handler") == 0
                && !v.linked("shared_http-httpserver", "left-handler")
                && v.linked("shared_http-httpserver", "right-handler")
                && v.provider_hosts("shared_http-httpserver").len() == 1
                && v.count("right-handler") == 1
        })
        .await;
    cluster.wait_status("right", StatusType::Deployed).await.unwrap();
    cluster.shutdown().await;
}
