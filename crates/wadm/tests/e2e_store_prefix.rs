//! `wadm serve --store-prefix acme`: every stream, bucket and durable consumer wadm makes is
//! `acme_…` (none is `wadm_…`), and an application deploys on them. A prefix that cannot name a
//! stream is refused at start, naming the flag.

mod common;

use std::time::Duration;

use common::child::Wadm;
use futures::TryStreamExt;
use wadm_client::{Client, StatusType};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

const HELLO: &str = include_str!("../../../fixtures/manifests/hello.yaml");
const DEADLINE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_prefix_renames_every_stream_bucket_and_consumer() {
    let nats = NatsServer::start();
    let url = nats.url();
    let wadm = Wadm::start(&[
        "serve",
        "--nats-url",
        &url,
        "--lattice",
        "default",
        "--store-prefix",
        "acme",
        "--resync-every",
        "500ms",
        "--host-heartbeat",
        "1s",
    ]);
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let events = wait_for(DEADLINE, || async { js.get_stream("acme_events").await.ok() }).await;
    assert!(events.is_some(), "the runtime creates acme_events: {}", wadm.output());

    let mut sim_config = SimConfig::new(&url, "default");
    sim_config.heartbeat_interval = Duration::from_secs(1);
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    sim.add_host(HostSpec::default()).await;
    let api = Client::new(client.clone(), "default", None);
    let put = wait_for(DEADLINE, || async { api.put_manifest(HELLO, None).await.ok() }).await;
    let put = put.unwrap_or_else(|| panic!("the API answers: {}", wadm.output()));
    let (_, status) =
        api.deploy_and_wait(&put.name, None, DEADLINE, |_| {}).await.unwrap_or_else(|e| {
            panic!("deploys: {e}: {}", wadm.output());
        });
    assert_eq!(status.status.status_type, StatusType::Deployed);

    let streams: Vec<String> = js.stream_names().try_collect().await.unwrap();
    for wanted in [
        "acme_events",
        "acme_commands",
        "acme_status",
        "KV_acme_manifests",
        "KV_acme_runtime",
        "KV_acme_runtime_state",
    ] {
        assert!(streams.iter().any(|s| s == wanted), "{wanted} in {streams:?}");
    }
    assert!(
        !streams.iter().any(|s| s.starts_with("wadm_") || s.starts_with("KV_wadm_")),
        "no wadm_* stream or bucket: {streams:?}"
    );
    let events = js.get_stream("acme_events").await.unwrap();
    let consumers: Vec<String> = events.consumer_names().try_collect().await.unwrap();
    assert_eq!(consumers, ["acme_events_default"], "the durable event consumer");
    drop(sim);
}

#[test]
fn a_prefix_that_cannot_name_a_stream_is_refused() {
    let mut wadm =
        Wadm::start(&["serve", "--nats-url", "nats://127.0.0.1:1", "--store-prefix", "a.b"]);
    let status = wadm.exited(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()), "wadm refuses to start: {}", wadm.output());
    let output = wadm.output();
    assert!(output.contains("--store-prefix") && output.contains("a.b"), "{output}");
}
