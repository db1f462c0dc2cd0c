//! Each fault mode, observed from outside over NATS.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use wadm_sim::{FaultSettings, HostSpec};

#[tokio::test]
async fn rejected_scales_are_accepted_then_fail_and_run_nothing() {
    let f = fixture(|_| {}).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    f.sim.faults(&id).unwrap().set_reject_scales(true);
    let scale = json!({"component_ref": "r:1", "component_id": "c", "count": 1, "host_id": id});
    let reply = request(&f.client, &format!("component.scale.{id}"), scale).await;
    assert_eq!(reply["success"], true);
    let failed = f.events.wait("component_scale_failed", 1).await;
    assert!(failed[0].data["error"].as_str().unwrap().contains("rejected"));
    assert!(f.sim.inventory(&id).unwrap().components.is_empty());
    assert!(f.events.of("component_scaled").is_empty());
}

#[tokio::test]
async fn broken_workload_hosts_refuse_garble_or_swallow_and_run_nothing() {
    let f = fixture(|_| {}).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let faults = f.sim.faults(&id).unwrap();
    let scale = json!({"component_ref": "r:1", "component_id": "c", "count": 1, "host_id": id});
    let subject = format!("component.scale.{id}");

    faults.set_refuse_workloads(true);
    let reply = request(&f.client, &subject, scale.clone()).await;
    assert_eq!(reply["success"], false, "{reply}");
    faults.set_refuse_workloads(false);

    faults.set_garble_workloads(true);
    let payload = serde_json::to_vec(&scale).unwrap();
    let raw = f.client.request(ctl(&subject), payload.into()).await.expect("an answer");
    assert!(serde_json::from_slice::<Value>(&raw.payload).is_err(), "not a control reply");
    faults.set_garble_workloads(false);

    faults.set_swallow_workloads(true);
    let reply = request(&f.client, &subject, scale).await;
    assert_eq!(reply["success"], true);
    // Other requests are answered as usual.
    let inventory = request(&f.client, &format!("host.get.{id}"), Value::Null).await;
    assert_eq!(inventory["success"], true);
    assert!(f.sim.inventory(&id).unwrap().components.is_empty(), "nothing runs");
    assert!(f.events.of("component_scaled").is_empty());
    assert_eq!(f.sim.requests(&id).get("component.scale"), 3);
}

#[tokio::test]
async fn reply_delay_holds_the_reply_back() {
    let f = fixture(|c| {
        c.faults = FaultSettings { reply_delay: Duration::from_millis(300), ..Default::default() }
    })
    .await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let t0 = Instant::now();
    let reply = request(&f.client, &format!("host.get.{id}"), Value::Null).await;
    assert_eq!(reply["success"], true);
    assert!(t0.elapsed() >= Duration::from_millis(300), "{:?}", t0.elapsed());
    f.sim.faults(&id).unwrap().set_reply_delay(Duration::ZERO);
    assert_eq!(f.sim.faults(&id).unwrap().reply_delay(), Duration::ZERO);
}

#[tokio::test]
async fn a_fraction_of_events_is_dropped_reproducibly() {
    let f = fixture(|c| c.seed = 7).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    f.events.wait("host_started", 1).await;
    f.sim.faults(&id).unwrap().set_drop_events(0.5);
    for i in 0..40 {
        let reply = request(&f.client, &format!("config.put.c{i}"), json!({"k": "v"})).await;
        assert_eq!(reply["success"], true, "replies are never dropped");
    }
    // Barrier: the host handles requests in order, so every config_set is counted by now.
    request(&f.client, &format!("host.get.{id}"), Value::Null).await;
    let counts = f.sim.event_counts(&id);
    assert_eq!(counts.published + counts.dropped, 41, "host_started + 40 config_set");
    assert!(counts.dropped > 5 && counts.dropped < 35, "{counts:?}");
    let seen = f.events.wait("config_set", (counts.published - 1) as usize).await;
    assert_eq!(seen.len() as u64, counts.published - 1);
    assert_eq!(f.sim.configs().len(), 40, "the work happens; only the events are lost");
}

#[tokio::test]
async fn paused_heartbeats_stop_and_resume() {
    let f = fixture(|c| c.heartbeat_interval = Duration::from_millis(50)).await;
    let quiet = f.sim.add_host(HostSpec::default()).await;
    let loud = f.sim.add_host(HostSpec::default()).await;
    let beats_of =
        |id: &str| f.events.of("host_heartbeat").iter().filter(|e| e.source == id).count();
    f.events.wait("host_heartbeat", 2).await;

    f.sim.faults(&quiet).unwrap().set_pause_heartbeats(true);
    // Counted by the simulator: at most one beat was already past the pause check.
    let at_pause = f.sim.event_counts(&quiet).published;
    let loud_at_pause = beats_of(&loud);
    wait_for_beats(&f, &loud, loud_at_pause + 5).await;
    assert!(f.sim.event_counts(&quiet).published <= at_pause + 1, "beats while paused");
    let paused = beats_of(&quiet);

    f.sim.faults(&quiet).unwrap().set_pause_heartbeats(false);
    wait_for_beats(&f, &quiet, paused + 2).await;
}

async fn wait_for_beats(f: &Fixture, host: &str, n: usize) {
    let got = wadm_test_support::wait_for(WAIT, || async {
        let count = f.events.of("host_heartbeat").iter().filter(|e| e.source == host).count();
        (count >= n).then_some(())
    })
    .await;
    assert!(got.is_some(), "{host} did not beat {n} times");
}

#[tokio::test]
async fn host_stop_request_and_crash_differ() {
    let f = fixture(|_| {}).await;
    let graceful = f.sim.add_host(HostSpec::default()).await;
    let crashed = f.sim.add_host(HostSpec::default()).await;
    let reply = request(&f.client, &format!("host.stop.{graceful}"), Value::Null).await;
    assert_eq!(reply["success"], true);
    let stopped = f.events.wait("host_stopped", 1).await;
    assert_eq!(stopped[0].source, graceful);

    assert!(f.sim.crash_host(&crashed).await);
    assert!(!f.sim.crash_host(&crashed).await, "already gone");
    let window = Duration::from_millis(300);
    let answers = wadm_sim::ping_hosts(&f.client, LATTICE, 1, window).await.unwrap();
    assert!(answers.is_empty(), "nobody is left to answer: {answers:?}");
    assert_eq!(f.events.of("host_stopped").len(), 1);
}

#[tokio::test]
async fn a_host_ignoring_requests_stays_silent_but_alive() {
    let f = fixture(|c| c.heartbeat_interval = Duration::from_millis(50)).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    f.sim.faults(&id).unwrap().set_ignore_requests(true);
    let req = f.client.request(ctl(&format!("host.get.{id}")), "".into());
    let answered = tokio::time::timeout(Duration::from_millis(300), req).await;
    assert!(!matches!(answered, Ok(Ok(_))), "an ignoring host must not answer");
    assert_eq!(f.sim.requests(&id).get("host.get"), 1, "received and counted");
    f.events.wait("host_heartbeat", 2).await;
    f.sim.faults(&id).unwrap().set_ignore_requests(false);
    assert_eq!(request(&f.client, &format!("host.get.{id}"), Value::Null).await["success"], true);
}

#[tokio::test]
async fn provider_health_can_fail_and_recover() {
    let f = fixture(|c| c.heartbeat_interval = Duration::from_millis(100)).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let start = json!({"provider_id": "p", "provider_ref": "ghcr.io/p:1", "host_id": id});
    request(&f.client, &format!("provider.start.{id}"), start).await;
    f.events.wait("health_check_passed", 1).await;
    // Unchanged health is reported with the heartbeats.
    let status = f.events.wait("health_check_status", 1).await;
    assert_eq!(status[0].data["provider_id"], "p");

    assert!(f.sim.set_provider_health(&id, "p", false).await);
    let failed = f.events.wait("health_check_failed", 1).await;
    assert_eq!((failed[0].data["host_id"].as_str(), failed[0].source.as_str()), (Some(&*id), &*id));
    assert!(!f.sim.host_state(&id).unwrap().providers["p"].healthy);
    assert!(f.sim.set_provider_health(&id, "p", true).await);
    f.events.wait("health_check_passed", 2).await;
    assert!(!f.sim.set_provider_health(&id, "nope", false).await);
}
