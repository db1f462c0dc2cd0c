//! The event stream's size limits, against a real nats-server: `--event-max-age` and
//! `--event-max-bytes` (or their environment variables) change an existing `wadm_events` stream
//! in place, its events kept; and what one host costs the stream per heartbeat, measured from
//! simulated hosts idle and running a deployed application (the README's sizing figures).

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::child::Wadm;
use common::{Cluster, DEADLINE};
use futures::StreamExt;
use wadm_model::StatusType;
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_store::StoreNames;
use wadm_store::streams::{StreamSettings, ensure_streams};
use wadm_test_support::{NatsServer, wait_for};

const HEARTBEAT_SUBJECT: &str = "wasmbus.evt.default.host_heartbeat";

/// Wait until the event stream has `max_age` and `max_bytes`; its config when it never does.
async fn wait_limits(js: &jetstream::Context, max_age: Duration, max_bytes: i64) {
    let last = std::sync::Mutex::new(None);
    let reached = wait_for(DEADLINE, || async {
        let mut stream = js.get_stream(StoreNames::default().events_stream()).await.ok()?;
        let config = stream.info().await.ok()?.config.clone();
        let ok = config.max_age == max_age && config.max_bytes == max_bytes;
        *last.lock().unwrap() = Some((config.max_age, config.max_bytes));
        ok.then_some(())
    })
    .await;
    assert!(reached.is_some(), "limits never applied; last (age, bytes): {:?}", last.lock());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_and_variables_change_an_existing_stream_in_place() {
    let nats = NatsServer::start();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    // The stream as an older wadm made it: 24 h, no size limit, with an event in it.
    let old = StreamSettings {
        event_max_age: Duration::from_secs(24 * 3600),
        event_max_bytes: 0,
        ..StreamSettings::default()
    };
    ensure_streams(&wadm_store::Provisioner::new(js.clone()), &old).await.unwrap();
    let info = js
        .get_stream(StoreNames::default().events_stream())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!((info.config.max_age, info.config.max_bytes), (old.event_max_age, -1));
    js.publish("wasmbus.evt.marker.host_heartbeat", "kept".into()).await.unwrap().await.unwrap();

    // Flag and variable.
    let url = nats.url();
    let mut serve = Wadm::start_with_env(
        &["serve", "--nats-url", &url, "--lattice", "default", "--event-max-age", "2h"],
        &[("WADM_EVENT_MAX_BYTES", "256MiB")],
    );
    wait_limits(&js, Duration::from_secs(7200), 256 << 20).await;
    serve.terminate(Duration::from_secs(15));

    // Nothing given: the defaults, 1 h and 1 GiB.
    let mut serve = Wadm::start(&["serve", "--nats-url", &url, "--lattice", "default"]);
    wait_limits(&js, Duration::from_secs(3600), 1 << 30).await;
    serve.terminate(Duration::from_secs(15));
    assert!(!serve.output().contains("wadm serve:"), "{}", serve.output());

    // Changed in place: the same stream, its event still there.
    let stream = js.get_stream(StoreNames::default().events_stream()).await.unwrap();
    let kept = stream.get_last_raw_message_by_subject("wasmbus.evt.marker.host_heartbeat").await;
    assert_eq!(kept.expect("the event survives").payload.as_ref(), b"kept");

    // A size that is no size is refused, naming the flag.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_wadm"))
        .args(["serve", "--nats-url", &url, "--event-max-bytes", "lots"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && text.contains("--event-max-bytes"), "{text}");
}

/// The stream's bytes and stored heartbeats now, read together.
async fn bytes_and_heartbeats(stream: &stream::Stream) -> (u64, u64) {
    let mut info = stream.info_with_subjects(HEARTBEAT_SUBJECT).await.unwrap();
    let bytes = info.info.state.bytes;
    let mut beats = 0;
    while let Some(Ok((_, count))) = info.next().await {
        beats += count as u64;
    }
    (bytes, beats)
}

/// Bytes the stream grows by per heartbeat while only hosts publish (every host event in the
/// window, health checks included, over the heartbeats in it), over at least `beats` heartbeats.
async fn bytes_per_heartbeat(js: &jetstream::Context, beats: u64) -> f64 {
    let stream = js.get_stream(StoreNames::default().events_stream()).await.unwrap();
    let (bytes0, beats0) = bytes_and_heartbeats(&stream).await;
    let grown = wait_for(DEADLINE, || async {
        let (bytes, count) = bytes_and_heartbeats(&stream).await;
        (count >= beats0 + beats).then_some((bytes - bytes0, count - beats0))
    })
    .await
    .expect("hosts heartbeat");
    grown.0 as f64 / grown.1 as f64
}

/// Per host and hour at the default 30 s heartbeat, in KB.
fn kb_per_host_hour(per_heartbeat: f64) -> f64 {
    per_heartbeat * 120.0 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_host_costs_the_stream_well_under_a_kilobyte_per_heartbeat() {
    let nats = NatsServer::start();
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    ensure_streams(&wadm_store::Provisioner::new(js.clone()), &StreamSettings::default())
        .await
        .unwrap();
    let mut config = SimConfig::new(nats.url(), "default");
    config.heartbeat_interval = Duration::from_millis(200);
    let sim = SimLattice::connect(config).await.unwrap();
    for _ in 0..3 {
        sim.add_host(HostSpec::default().label("zone", "a")).await;
    }
    let per_beat = bytes_per_heartbeat(&js, 60).await;
    eprintln!(
        "idle host: {per_beat:.0} bytes stored per heartbeat, {:.1} KB per host-hour at 30 s",
        kb_per_host_hour(per_beat)
    );
    assert!((300.0..1_000.0).contains(&per_beat), "{per_beat}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_running_an_application_costs_more_per_heartbeat() {
    let cluster = Cluster::start(1, vec![HostSpec::default(); 3]).await;
    let mut manifest = String::from(
        "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: sized\n  \
         annotations:\n    version: v1\nspec:\n  components:\n",
    );
    for i in 0..5 {
        manifest.push_str(&format!(
            "    - name: component-{i}\n      type: component\n      properties:\n        \
             image: ghcr.io/example/component-{i}:1.0.0\n      traits:\n        - type: \
             daemonscaler\n          properties:\n            instances: 2\n"
        ));
    }
    manifest.push_str(
        "    - name: http\n      type: capability\n      properties:\n        image: \
         ghcr.io/example/http-server:1.0.0\n      traits:\n        - type: daemonscaler\n          \
         properties:\n            instances: 1\n",
    );
    let name = cluster.put_and_deploy(&manifest).await;
    cluster.wait_status(&name, StatusType::Deployed).await.unwrap();
    cluster
        .wait_lattice("5 components and a provider on each host", |view| {
            view.components.len() == 15 && view.providers.len() == 3
        })
        .await;
    let js = jetstream::new(async_nats::connect(cluster.nats.url()).await.unwrap());
    let client = cluster.client.clone();
    let mut cluster = cluster;
    // Only the hosts publish from now on (no ticks, no commands).
    for replica in cluster.replicas.iter_mut().filter_map(Option::take) {
        replica.stop().await;
    }
    let per_beat = bytes_per_heartbeat(&js, 30).await;
    eprintln!(
        "host with 5 components and 1 provider: {per_beat:.0} bytes stored per heartbeat \
         (with its provider's health check), {:.1} KB per host-hour at 30 s",
        kb_per_host_hour(per_beat)
    );
    assert!((1_000.0..8_000.0).contains(&per_beat), "{per_beat}");
    drop(client);
    cluster.sim.shutdown().await;
}
