//! wadm embedded as a library with a custom scaler (`examples/custom_scaler.rs`, the very same
//! embedding) on a real NATS server with simulated hosts: the custom scaler's canary starts on
//! the labelled host, the built-in scalers still place what the manifests say, an application
//! without the annotation gets no canary, the canary is part of the status and of `app plan`,
//! and an undeploy removes the canary with the rest. Assertions read the SIMULATED hosts.

#[allow(dead_code)]
#[path = "../examples/custom_scaler.rs"]
mod example;

use std::collections::BTreeMap;
use std::time::Duration;

use wadm_model::StatusType;
use wadm_runtime::RunConfig;
use wadm_server::ServerConfig;
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

const LATTICE: &str = "default";
const DEADLINE: Duration = Duration::from_secs(60);

fn manifest(name: &str, canary: Option<&str>, instances: u32) -> String {
    let annotation =
        canary.map(|label| format!("\n    {}: {label}", example::CANARY_HOST)).unwrap_or_default();
    format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: {name}
  annotations:
    version: v1{annotation}
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/example/{name}-web:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: {instances}
            spread:
              - name: plain
                requirements:
                  tier: plain
"#
    )
}

/// Every host's component counts: host id → component id → count.
fn host_counts(sim: &SimLattice) -> BTreeMap<String, BTreeMap<String, u32>> {
    sim.hosts()
        .into_iter()
        .filter_map(|host| {
            let state = sim.host_state(&host)?;
            let counts = state.components.iter().map(|(id, c)| (id.clone(), c.count)).collect();
            Some((host, counts))
        })
        .collect()
}

/// Total count of `id` over `hosts`.
fn total(counts: &BTreeMap<String, BTreeMap<String, u32>>, id: &str) -> u32 {
    counts.values().filter_map(|c| c.get(id)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_scaler_runs_beside_the_builtins_in_an_embedded_wadm() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    // Test timings: 1 s heartbeats, 500 ms resync.
    let mut runtime = RunConfig::new(Vec::new());
    runtime.runtime.lease.heartbeat_interval_ms = 1_000;
    runtime.runtime.lease.slack_ms = 500;
    runtime.runtime.tick_every = Duration::from_millis(500);
    runtime.runtime.request_timeout = Duration::from_secs(2);
    runtime.streams.ack_wait = Duration::from_secs(2);
    runtime.poll_wait = Duration::from_millis(200);
    // A small event stream: JetStream reserves it on disk.
    runtime.streams.event_max_bytes = 64 << 20;
    let server = ServerConfig { probe_window: Duration::from_millis(300), ..Default::default() };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let wadm = example::wadm(client.clone(), &[LATTICE]).server(server).runtime(runtime);
    let wadm = tokio::spawn(wadm.run(async move {
        let _ = stopped.await;
    }));

    // Hosts start once the event stream exists, so their `host_started` is captured.
    let js = async_nats::jetstream::new(client.clone());
    let events = wadm_store::StoreNames::default().events_stream();
    let stream = wait_for(DEADLINE, || async { js.get_stream(&events).await.ok() }).await;
    assert!(stream.is_some(), "the embedded runtime creates its event stream");
    let mut sim_config = SimConfig::new(nats.url(), LATTICE);
    sim_config.heartbeat_interval = Duration::from_secs(1);
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    let mut plain = Vec::new();
    for _ in 0..2 {
        plain.push(sim.add_host(HostSpec::default().label("tier", "plain")).await);
    }
    let canary_host = sim
        .add_host(HostSpec::default().label("tier", "canary").label(example::CANARY_HOST, "blue"))
        .await;

    let api = wadm_client::Client::new(client.clone(), LATTICE, None);
    // `app plan` plans with the embedder's scalers too: the canary's start is in the plan.
    let shop = manifest("shop", Some("blue"), 4);
    let planned = wait_for(DEADLINE, || async {
        let plan = api.plan_manifest(shop.clone().into_bytes(), None).await.ok()?;
        let canary_start = |r: &wadm_model::api::PlannedRequest| {
            r.kind == "scale_component"
                && r.host_id.as_deref() == Some(canary_host.as_str())
                && r.body["component_id"].as_str().is_some_and(|id| id.ends_with("-canary"))
        };
        plan.requests.iter().any(canary_start).then_some(())
    })
    .await;
    assert!(planned.is_some(), "the plan starts the canary on its host");
    for (name, canary) in [("shop", Some("blue")), ("plain", None)] {
        let yaml = manifest(name, canary, 4);
        let put = api.put_manifest(yaml.into_bytes(), None).await.expect("put");
        api.deploy(name, Some(&put.current_version)).await.expect("deploy");
    }

    // The web components' ids are what the built-in scalers run on the plain hosts.
    let converged = wait_for(DEADLINE, || async {
        let counts = host_counts(&sim);
        let web = |app: &str| {
            counts
                .values()
                .flat_map(|c| c.keys())
                .find(|id| id.contains(app) && !id.ends_with("-canary"))
                .cloned()
        };
        let (shop, other) = (web("shop")?, web("plain")?);
        let canary = example::canary_id(&shop);
        let done = total(&counts, &shop) == 4
            && total(&counts, &other) == 4
            && total(&counts, &canary) == 1
            && counts[&canary_host].get(&canary) == Some(&1);
        done.then_some((counts, shop, other))
    })
    .await;
    let Some((counts, shop, other)) = converged else {
        panic!("never converged: {:#?}", host_counts(&sim));
    };
    let canary = example::canary_id(&shop);
    // Built-in behaviour intact: the spread's requirement keeps the web components off the
    // canary host; only the custom scaler put something there.
    assert_eq!(counts[&canary_host].keys().collect::<Vec<_>>(), vec![&canary], "{counts:#?}");
    for host in &plain {
        assert!(!counts[host].contains_key(&canary), "{counts:#?}");
    }
    assert_eq!(total(&counts, &example::canary_id(&other)), 0, "no canary without annotation");
    let annotations = sim.host_state(&canary_host).unwrap().components[&canary].annotations.clone();
    assert_eq!(annotations.get(wadm_model::APP_SPEC_ANNOTATION).map(String::as_str), Some("shop"));

    // The canary is part of the application's status, which is deployed.
    let status = wait_for(DEADLINE, || async {
        let status = api.status("shop").await.ok()?;
        (status.status.status_type == StatusType::Deployed).then_some(status)
    })
    .await
    .expect("shop deployed");
    let canary_status = status.scalers.iter().find(|s| &*s.kind == example::CANARY_KIND);
    let canary_status = canary_status.expect("the canary scaler reports");
    assert_eq!(canary_status.status.status_type, StatusType::Deployed);
    assert!(canary_status.status.message.contains(&canary_host), "{canary_status:?}");

    // Undeploy: the canary goes with the built-in scalers' instances; the other app stays.
    api.undeploy("shop").await.expect("undeploy");
    let gone = wait_for(DEADLINE, || async {
        let counts = host_counts(&sim);
        let done = total(&counts, &shop) == 0
            && total(&counts, &canary) == 0
            && total(&counts, &other) == 4;
        done.then_some(())
    })
    .await;
    assert!(gone.is_some(), "undeploy leaves {:#?}", host_counts(&sim));

    let _ = stop.send(());
    wadm.await.expect("wadm task").expect("wadm stops cleanly");
    sim.shutdown().await;
}
