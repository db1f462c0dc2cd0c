//! Observed state persisted per entity: a replica that reads it back (takeover) carries on as
//! the previous one would have, and doubt about observed state is reported.

use crate::V1;
use crate::world::{LATTICE, World, running_per_state};

fn host_events(w: &World, kind: &str) -> Vec<(String, Vec<u8>)> {
    let suffix = format!(".{kind}");
    let all = w.events.messages("wasmbus.evt.>");
    all.into_iter().filter(|(_, s, _)| s.ends_with(&suffix)).map(|(_, s, p)| (s, p)).collect()
}

#[tokio::test]
async fn a_replica_that_reads_state_back_still_rejects_stale_heartbeats() {
    let mut w = World::new(2, 5);
    w.add_hosts(1).await;
    w.settle().await;
    // The host's first heartbeat: nothing running yet.
    let (subject, old) = host_events(&w, "host_heartbeat").remove(0);
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    w.clock.advance(1_000);
    w.lattice.heartbeat_all().await;
    w.settle().await;
    assert_eq!(w.running("app").0, 2);
    let keys = w.state.keys();
    assert!(keys.iter().any(|k| k.starts_with("default.host.")), "{keys:?}");
    assert!(keys.iter().any(|k| k.starts_with("default.comp.")), "{keys:?}");
    let requests = w.lattice.requests();

    // Both replicas forget what they kept: the next step reads everything back.
    for r in &w.replicas {
        r.pipeline.records().forget(LATTICE);
    }
    let before = w.processed.len();
    w.replay(&subject, old, "late-heartbeat").await;
    w.settle().await;

    assert!(w.processed[before..].iter().any(|p| p.state_in_doubt), "read back: in doubt");
    assert_eq!(w.lattice.requests(), requests, "the stale heartbeat changed nothing");
    let (record, _) = w.replicas[1].pipeline.records().load(LATTICE).await.unwrap();
    assert_eq!(running_per_state(&record.state), 2, "observed state still shows the instances");
    assert!(record.state.bookkeeping.stale_events > 0, "the heartbeat was recognised as stale");
}

#[tokio::test]
async fn an_event_from_an_unknown_host_puts_state_in_doubt() {
    let mut w = World::new(1, 9);
    w.add_hosts(1).await;
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;
    // One replica: only its first step read state back; it kept the record ever after.
    assert!(w.processed[0].state_in_doubt);
    assert!(w.processed[1..].iter().all(|p| !p.state_in_doubt), "{:?}", w.processed);

    // A component scaled on a host wadm never heard of (its start was lost).
    let (subject, payload) = host_events(&w, "host_heartbeat").remove(0);
    let mut event: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    event["source"] = "NSTRANGER".into();
    event["id"] = "stranger-1".into();
    event["type"] = "com.wasmcloud.lattice.component_scaled".into();
    event["data"] = serde_json::json!({
        "host_id": "NSTRANGER", "component_id": "other", "image_ref": V1, "max_instances": 1,
        "annotations": {}, "claims": null
    });
    let subject = subject.replace("host_heartbeat", "component_scaled");
    w.replay(&subject, serde_json::to_vec(&event).unwrap(), "stranger").await;
    let before = w.processed.len();
    w.settle().await;
    assert!(w.processed[before..].iter().any(|p| p.state_in_doubt), "{:?}", w.processed);
}

#[tokio::test]
async fn replicas_taking_turns_catch_up_instead_of_reading_everything_back() {
    let mut w = World::new(3, 21);
    w.add_hosts(3).await;
    w.deploy("app", "v1", V1, 3).await;
    w.settle().await;
    w.clock.advance(1_000);
    w.lattice.heartbeat_all().await;
    w.settle().await;
    assert_eq!(w.running("app").0, 3);
    assert!(w.processed.len() > 10, "{}", w.processed.len());
    // Only each replica's first step reads everything back; later turns read the journal.
    let read_back = w.processed.iter().filter(|p| p.state_in_doubt).count();
    assert!(read_back <= w.replicas.len(), "{read_back} of {} steps", w.processed.len());
}
