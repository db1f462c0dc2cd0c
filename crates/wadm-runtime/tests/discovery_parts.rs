//! A discovery round bigger than the NATS maximum payload (1 MiB) on a real server: 100
//! simulated hosts × 10 components with large annotations. As one message the round is refused
//! ("maximum payload exceeded"); the runtime sends it in bounded parts through the event stream,
//! and merging the parts in stream order yields every host and component.

use std::time::Duration;

use futures::StreamExt;
use wadm_lattice::LatticeState;
use wadm_protocol::ctl::ScaleComponentRequest;
use wadm_protocol::subject::{ctl_host, suffix};
use wadm_runtime::discovery::parts::{DISCOVERY_PART_BYTES, merge_report};
use wadm_runtime::discovery::{DiscoveryConfig, NatsDiscoverer};
use wadm_runtime::messages::DiscoveryReport;
use wadm_runtime::nats::JsOutbox;
use wadm_runtime::{Discoverer, discover_with_id, publish_round};
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_store::streams::{StreamSettings, ensure_streams};
use wadm_test_support::{NatsServer, wait_for};

const LATTICE: &str = "default";
const HOSTS: usize = 100;
const COMPONENTS: usize = 10;
const MAX_PAYLOAD: usize = 1024 * 1024;

async fn big_lattice(nats: &NatsServer, client: &async_nats::Client) -> SimLattice {
    let sim = SimLattice::connect(SimConfig::new(nats.url(), LATTICE)).await.unwrap();
    let pad = "x".repeat(1200);
    for _ in 0..HOSTS {
        let host = sim.add_host(HostSpec::default()).await;
        for c in 0..COMPONENTS {
            let request = ScaleComponentRequest {
                component_ref: "ghcr.io/example/echo:0.1.0".into(),
                component_id: format!("{host}-c{c}").into(),
                count: 1,
                host_id: host.as_str().into(),
                annotations: std::sync::Arc::new([("padding".to_string(), pad.clone())].into()),
                config: vec![],
                allow_update: false,
                component_limits: None,
            };
            let subject = ctl_host(LATTICE, suffix::COMPONENT_SCALE, &host);
            let body = serde_json::to_vec(&request).unwrap();
            client.request(subject, body.into()).await.unwrap();
        }
    }
    sim
}

#[tokio::test]
async fn a_round_larger_than_the_max_payload_arrives_in_bounded_parts() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let sim = big_lattice(&nats, &client).await;
    let js = async_nats::jetstream::new(client.clone());
    ensure_streams(&wadm_store::Provisioner::new(js.clone()), &StreamSettings::default())
        .await
        .unwrap();
    let events = JsOutbox::new(js);
    let config = DiscoveryConfig {
        gather_window: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        ..DiscoveryConfig::default()
    };
    let discoverer = NatsDiscoverer::new(client.clone(), config);

    // The round, as one message, is what NATS refuses.
    let round = discoverer.discover(LATTICE, 1).await.unwrap();
    assert_eq!(round.hosts.len(), HOSTS);
    let whole = DiscoveryReport::from(round);
    assert!(serde_json::to_vec(&whole).unwrap().len() > MAX_PAYLOAD);
    let refused = publish_round(&events, LATTICE, whole, "whole", usize::MAX).await;
    let error = refused.expect_err("one message over the max payload").to_string();
    assert!(error.contains("payload"), "{error}");

    // The runtime's way: bounded parts, in order, all stored.
    let mut sub = client.subscribe(format!("wadm.internal.{LATTICE}.discovered")).await.unwrap();
    client.flush().await.unwrap();
    let found = discover_with_id(&discoverer, &events, LATTICE, 2, "round".into()).await.unwrap();
    assert_eq!(found, HOSTS);
    let mut parts: Vec<DiscoveryReport> = Vec::new();
    let complete = wait_for(Duration::from_secs(20), || {
        let next = futures::FutureExt::now_or_never(sub.next());
        if let Some(Some(m)) = next {
            assert!(m.payload.len() <= DISCOVERY_PART_BYTES + 64 * 1024, "{}", m.payload.len());
            parts.push(serde_json::from_slice(&m.payload).unwrap());
        }
        let done = parts.last().is_some_and(DiscoveryReport::completes_round);
        async move { done.then_some(()) }
    })
    .await;
    assert!(complete.is_some(), "the last part arrived ({} parts so far)", parts.len());
    assert!(parts.len() > 4, "{} parts", parts.len());
    assert!(parts.iter().enumerate().all(|(i, p)| p.part as usize == i + 1));

    let mut state = LatticeState::default();
    for part in &parts {
        merge_report(&mut state, part, 3);
    }
    assert_eq!(state.hosts.len(), HOSTS);
    let components: usize = state.hosts.values().map(|h| h.components.len()).sum();
    assert_eq!(components, HOSTS * COMPONENTS);
    sim.shutdown().await;
}
