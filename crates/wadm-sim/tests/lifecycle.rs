//! Host lifecycle on a real NATS: `host_started`, ping, inventory, heartbeats, stop and crash.

mod common;

use std::time::Duration;

use common::*;
use wadm_protocol::event::{HostStarted, HostStopped};
use wadm_protocol::{HostEvent, HostInventory};
use wadm_sim::HostSpec;

#[tokio::test]
async fn a_started_host_announces_itself_and_answers_at_once() {
    let f = fixture(|_| {}).await;
    let id = f.sim.add_host(HostSpec::default().label("zone", "east")).await;
    assert_eq!(id.len(), 56);
    assert!(id.starts_with('N'));

    let started = f.events.wait("host_started", 1).await;
    assert_eq!(started[0].source, id);
    let HostEvent::HostStarted(HostStarted { labels, friendly_name, .. }) =
        HostEvent::decode(&started[0]).unwrap()
    else {
        panic!("not host_started")
    };
    assert_eq!(labels["zone"], "east");
    for key in ["hostcore.arch", "hostcore.os", "hostcore.osfamily"] {
        assert!(labels.contains_key(key), "{key}");
    }
    assert!(!friendly_name.is_empty());

    let inv = request(&f.client, &format!("host.get.{id}"), serde_json::Value::Null).await;
    assert_eq!(inv["success"], true);
    let inv: HostInventory = serde_json::from_value(inv["response"].clone()).unwrap();
    assert_eq!(inv.host_id, id);
    assert_eq!(Some(inv.labels.clone()), f.sim.inventory(&id).map(|i| i.labels));
}

#[tokio::test]
async fn heartbeats_carry_the_inventory_at_the_interval() {
    let f = fixture(|c| c.heartbeat_interval = Duration::from_millis(200)).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let beats = f.events.wait("host_heartbeat", 2).await;
    let HostEvent::HostHeartbeat(inv) = HostEvent::decode(&beats[0]).unwrap() else { panic!() };
    assert_eq!(inv.host_id, id);
    assert_eq!(beats[0].source, id);
    assert!(!inv.uptime_human.is_empty());
}

#[tokio::test]
async fn stopped_hosts_say_so_and_crashed_hosts_go_silent() {
    let f = fixture(|c| c.heartbeat_interval = Duration::from_millis(100)).await;
    let a = f.sim.add_host(HostSpec::default().label("k", "a")).await;
    let b = f.sim.add_host(HostSpec::default()).await;
    f.events.wait("host_heartbeat", 2).await;

    assert!(f.sim.stop_host(&a).await);
    let stopped = f.events.wait("host_stopped", 1).await;
    assert_eq!(stopped[0].source, a);
    let HostEvent::HostStopped(HostStopped { labels }) = HostEvent::decode(&stopped[0]).unwrap()
    else {
        panic!()
    };
    assert_eq!(labels["k"], "a");

    assert!(f.sim.crash_host(&b).await);
    assert!(f.sim.hosts().is_empty());
    // Gone, as a crashed process is: its subjects have no responders, and no host_stopped.
    for gone in [&a, &b] {
        let err = f.client.request(ctl(&format!("host.get.{gone}")), "".into()).await.unwrap_err();
        assert_eq!(err.kind(), async_nats::client::RequestErrorKind::NoResponders);
    }
    // One connection carries every simulated event in order: once an event published after the
    // crash has arrived, everything the crashed host sent before has arrived too.
    let c = f.sim.add_host(HostSpec::default()).await;
    let started = f.events.wait("host_started", 3).await;
    assert_eq!(started[2].source, c);
    assert_eq!(f.events.of("host_stopped").len(), 1, "no host_stopped for a crash");
    let from_b = || f.events.all().iter().filter(|e| e.source == b).count();
    let before = from_b();
    let beats_of_c = || f.events.of("host_heartbeat").iter().filter(|e| e.source == c).count();
    let heard = wadm_test_support::wait_for(WAIT, || async { (beats_of_c() >= 3).then_some(()) });
    assert!(heard.await.is_some(), "the other host keeps beating");
    assert_eq!(from_b(), before, "a crashed host stays silent");
}

#[tokio::test]
async fn a_host_nobody_runs_has_no_responders() {
    let f = fixture(|_| {}).await;
    f.sim.add_host(HostSpec::default()).await;
    let stranger = wadm_sim::host_id::new_host_id();
    let scale = serde_json::json!({"component_ref": "r", "component_id": "c", "count": 1,
        "host_id": stranger});
    let body = serde_json::to_vec(&scale).unwrap();
    let subject = ctl(&format!("component.scale.{stranger}"));
    let err = f.client.request(subject, body.into()).await.unwrap_err();
    assert_eq!(err.kind(), async_nats::client::RequestErrorKind::NoResponders);
}
