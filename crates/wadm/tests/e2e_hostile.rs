//! End to end, hostile lattice input: events whose ids are too long to be stored are refused
//! where they are decoded, so they never wedge their lattice (before, the storage key passed
//! NATS's protocol-line limit, the connection dropped and the event was redelivered without
//! end, holding back every event behind it). Assertions read the simulated lattice.

mod common;

use common::{Cluster, LATTICE};
use serde_json::json;
use wadm_model::StatusType;

/// The application deployed behind the garbage.
fn app() -> String {
    common::web_app("after-garbage", 2)
}

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
    cluster.put_and_deploy(&app()).await;
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

/// `app()` deployed and converged on `hosts` simulated hosts; the hosts, and the effect requests
/// they received so far.
async fn deployed_on(hosts: usize) -> (Cluster, Vec<String>, u64) {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("a", hosts)])).await;
    cluster.put_and_deploy(&app()).await;
    cluster.wait_lattice("the app runs", |v| v.count("after_garbage-web") == 2).await;
    cluster.wait_status("after-garbage", StatusType::Deployed).await.unwrap();
    let hosts = cluster.sim.hosts();
    let before = effect_requests(&cluster, &hosts);
    (cluster, hosts, before)
}

/// Control requests of every kind that change what a host runs, summed over the hosts.
fn effect_requests(cluster: &Cluster, hosts: &[String]) -> u64 {
    let kinds = ["component.scale", "component.update", "provider.start", "provider.stop"];
    let counts = hosts.iter().map(|h| cluster.sim.requests(h));
    counts.map(|c| kinds.iter().map(|k| c.get(k)).sum::<u64>()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofed_host_stopped_moves_nothing_and_a_real_stop_still_does() {
    let (cluster, hosts, before) = deployed_on(3).await;
    let victim = cluster.view().component_hosts("after_garbage-web")[0].clone();

    // Someone else says the host stopped; it did not.
    let body = cloud_event("host_stopped", &victim, json!({"labels": {}}));
    publish_and_wait_handled(&cluster, "host_stopped", body).await;
    assert_eq!(effect_requests(&cluster, &hosts), before, "a spoofed stop made wadm move work");
    assert_eq!(cluster.view().count("after_garbage-web"), 2);
    assert!(cluster.view().component_hosts("after_garbage-web").contains(&victim));
    assert!(cluster.sim.peak_totals().get("after_garbage-web").is_none_or(|p| *p <= 2));

    // The host really stops: its instance is placed again, once.
    assert!(cluster.sim.stop_host(&victim).await);
    cluster
        .wait_lattice("the stopped host's share runs elsewhere", |v| {
            v.count("after_garbage-web") == 2
                && !v.component_hosts("after_garbage-web").contains(&victim)
        })
        .await;
    assert_eq!(effect_requests(&cluster, &hosts), before + 1, "one placement for one stop");
    assert!(cluster.sim.peak_totals().get("after_garbage-web").is_none_or(|p| *p <= 2));
}

/// Publish a host event into the lattice, then wait until wadm has worked it off (acknowledged
/// it) and executed every command it issued meanwhile.
async fn publish_and_wait_handled(cluster: &Cluster, short: &str, body: Vec<u8>) {
    let js = async_nats::jetstream::new(async_nats::connect(cluster.nats.url()).await.unwrap());
    let ack = js.publish(format!("wasmbus.evt.{LATTICE}.{short}"), body.into()).await;
    let seq = ack.unwrap().await.unwrap().sequence;
    let names = wadm_store::StoreNames::default();
    let events = js.get_stream(names.events_stream()).await.unwrap();
    let commands = js.get_stream(names.commands_stream()).await.unwrap();
    let (event_consumer, command_consumer) =
        (format!("wadm_events_{LATTICE}"), names.command_consumer(LATTICE));
    let handled = wadm_test_support::wait_for(common::DEADLINE, || async {
        let e = events.consumer_info(&event_consumer).await.ok()?;
        let c = commands.consumer_info(&command_consumer).await.ok()?;
        let idle = c.num_pending == 0 && c.num_ack_pending == 0;
        (e.ack_floor.stream_sequence >= seq && idle).then_some(())
    })
    .await;
    assert!(handled.is_some(), "wadm never handled the {short} event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phantom_hosts_claims_stop_no_real_instance() {
    let (cluster, hosts, before) = deployed_on(2).await;

    // A host nobody runs says it runs more instances of the application's component.
    let phantom = "NPHANTOMHOSTTHATNOBODYRUNS";
    let annotations =
        json!({"wasmcloud.dev/appspec": "after-garbage", "wasmcloud.dev/managed-by": "wadm"});
    let inventory = json!({
        "host_id": phantom,
        "components": [{
            "id": "after_garbage-web",
            "image_ref": "ghcr.io/example/web:1.0.0",
            "annotations": annotations,
            "max_instances": 3,
        }],
    });
    let heartbeat = cloud_event("host_heartbeat", phantom, inventory);
    publish_and_wait_handled(&cluster, "host_heartbeat", heartbeat).await;
    let scaled = json!({
        "host_id": phantom, "component_id": "after_garbage-web",
        "image_ref": "ghcr.io/example/web:1.0.0", "max_instances": 2, "annotations": annotations,
    });
    let scaled = cloud_event("component_scaled", phantom, scaled);
    publish_and_wait_handled(&cluster, "component_scaled", scaled).await;
    assert_eq!(effect_requests(&cluster, &hosts), before, "a phantom's claims made wadm act");
    assert_eq!(cluster.view().count("after_garbage-web"), 2);
    // wadm does not list the phantom either.
    let seen = cluster.client.lattice_hosts().await.unwrap();
    assert!(seen.iter().all(|h| h.id != phantom), "the phantom is listed: {seen:?}");
    assert_eq!(seen.len(), 2);
}
