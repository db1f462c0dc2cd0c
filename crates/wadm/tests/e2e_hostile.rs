//! End to end, hostile lattice input: events whose ids are too long to be stored are refused
//! where they are decoded, so they never wedge their lattice (before, the storage key passed
//! NATS's protocol-line limit, the connection dropped and the event was redelivered without
//! end, holding back every event behind it). Assertions read the simulated lattice.

mod common;

use common::{Cluster, LATTICE};
use serde_json::json;
use wadm_model::StatusType;

const APP: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: after-garbage
  annotations:
    version: v1
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/example/web:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 2
"#;

fn cloud_event(short: &str, source: &str, data: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0",
        "id": format!("hostile-{short}-{}", source.len()),
        "type": format!("com.wasmcloud.lattice.{short}"),
        "source": source,
        "datacontenttype": "application/json",
        "time": "2026-01-01T00:00:00Z",
        "data": data,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_with_overlong_ids_do_not_wedge_the_lattice() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("a", 2)])).await;
    let nats = async_nats::connect(cluster.nats.url()).await.unwrap();
    let huge = "N".repeat(5_000);
    let events = [
        ("host_heartbeat", cloud_event("host_heartbeat", &huge, json!({"host_id": huge}))),
        (
            "component_scaled",
            cloud_event(
                "component_scaled",
                "NHOST",
                json!({"component_id": huge, "host_id": "NHOST", "image_ref": "x", "max_instances": 1}),
            ),
        ),
        ("config_set", cloud_event("config_set", "NHOST", json!({"config_name": huge}))),
    ];
    for (short, body) in events {
        nats.publish(format!("wasmbus.evt.{LATTICE}.{short}"), body.into()).await.unwrap();
    }
    nats.flush().await.unwrap();

    // Events behind the garbage are worked off: a deploy right after it converges.
    cluster.put_and_deploy(APP).await;
    cluster
        .wait_lattice("the app behind the garbage runs", |v| v.count("after_garbage-web") == 2)
        .await;
    cluster.wait_status("after-garbage", StatusType::Deployed).await.unwrap();
    // Nothing was ever handed out twice: the garbage was skipped, not retried.
    let js = async_nats::jetstream::new(nats);
    let stream = js.get_stream(wadm_store::StoreNames::default().events_stream()).await.unwrap();
    let info = stream.consumer_info(format!("wadm_events_{LATTICE}")).await.unwrap();
    assert_eq!(info.num_redelivered, 0, "events were redelivered: {info:?}");
}
