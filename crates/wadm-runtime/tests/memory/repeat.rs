//! Commands needed again: after the lattice lost what an identical command had done, the
//! command is issued anew (not absorbed by the command stream's dedupe window), while re-plans
//! with nothing lost keep their ids; duplicate provider starts are not failures.

use wadm_model::StatusType;
use wadm_runtime::{Clock, CommandMessage, Executed, Executor, Random, SeededRandom};

use super::V1;
use super::world::{LATTICE, World};

#[tokio::test]
async fn an_instance_lost_is_restored_at_once_not_after_the_dedupe_window() {
    for seed in [1, 2, 3] {
        let mut w = World::new(2, seed);
        // One host: the replacement is exactly the command that placed the instance.
        w.add_hosts(1).await;
        w.settle().await;
        w.deploy("app", "v1", V1, 1).await;
        w.settle().await;
        assert_eq!(w.running("app").0, 1, "seed {seed}");
        let stored = w.commands.stored();

        // Something outside wadm stops it; no time passes.
        w.lattice.stop_component("N000", "app-echo").await;
        w.settle().await;
        assert_eq!(w.running("app"), (1, vec![V1.to_string()]), "seed {seed}: restored");
        assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);
        assert_eq!(w.commands.stored(), stored + 1, "seed {seed}: exactly one new command");

        // A second loss is a second new need.
        w.lattice.stop_component("N000", "app-echo").await;
        w.settle().await;
        assert_eq!(w.running("app").0, 1, "seed {seed}: restored again");

        // Re-plans with nothing lost (heartbeats, resync) publish nothing new.
        let stored = w.commands.stored();
        let requests = w.lattice.requests();
        w.clock.advance(10_000);
        w.lattice.heartbeat_all().await;
        w.tick().await;
        w.settle().await;
        assert_eq!(w.commands.stored(), stored, "seed {seed}");
        assert_eq!(w.lattice.requests(), requests, "seed {seed}");
    }
}

#[tokio::test]
async fn a_redone_step_after_a_loss_reuses_its_ids() {
    let mut w = World::new(2, 11);
    w.add_hosts(1).await;
    w.settle().await;
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;
    w.lattice.stop_component("N000", "app-echo").await;

    // Replica 0 handles the loss, publishes the replacement, and dies before acking.
    use wadm_runtime::io::Delivery;
    let (d, first) = w.take_and_process(0).await;
    assert_eq!(first.published, 1);
    drop(d);
    w.clock.advance(super::world::ACK_WAIT.as_millis() as u64 + 1);
    let (again, redo) = w.take_and_process(1).await;
    again.ack().await.unwrap();
    assert_eq!((redo.published, redo.duplicates), (0, 1), "the redo deduplicates");
    w.settle().await;
    assert_eq!(w.running("app").0, 1);
}

fn provider_manifest() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "app", "annotations": {"version": "v1"}},
        "spec": {"components": [{
            "name": "http",
            "type": "capability",
            "properties": {"image": "ghcr.io/example/http:0.1.0"},
            "traits": [{"type": "spreadscaler", "properties": {"instances": 1}}]
        }]}
    })
}

#[tokio::test]
async fn a_duplicate_provider_start_is_already_done_not_a_failure() {
    assert!(wadm_runtime::executor::already_done(
        "start_provider",
        "provider p is already running on host N000"
    ));
    assert!(!wadm_runtime::executor::already_done("start_provider", "no such image"));
    assert!(!wadm_runtime::executor::already_done("scale_component", "already running"));

    let mut w = World::new(2, 5);
    w.add_hosts(1).await;
    w.settle().await;
    w.deploy_value("app", "v1", provider_manifest()).await;
    w.settle().await;
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);
    let start = issued(&w, "start_provider");

    // The same start again (as after a re-issue): the host refuses, the app stays deployed.
    let again = CommandMessage {
        issued_at: w.clock.now(),
        expires_at: w.clock.now() + 60_000,
        seq: start.seq + 1_000,
        ..start
    };
    // Executed as such (the replicas' executors would drop it: no order of the head has its id).
    let executor = lone_executor(&w, 5);
    let outcome = executor.process(&serde_json::to_vec(&again).unwrap(), 1).await.unwrap();
    assert!(matches!(outcome, Executed::AlreadyDone { .. }), "{outcome:?}");
    // Announced as accepted, with the host's answer.
    let (_, event) = w.lattice.notified().pop().expect("an allocation event");
    assert_eq!(event["id"], again.msg_id().as_str());
    assert_eq!(event["data"]["outcome"], "accepted");
    assert!(event["data"]["message"].as_str().unwrap().contains("already"), "{event}");
    w.settle().await;
    assert!(w.events.messages(&format!("wadm.internal.{LATTICE}.command_failed")).is_empty());
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);
}

#[tokio::test]
async fn a_redelivered_command_its_host_already_shows_done_is_not_sent_again() {
    let mut w = World::new(2, 7);
    w.add_hosts(1).await;
    w.settle().await;
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;
    assert_eq!(w.running("app").0, 1);
    let scale = issued(&w, "scale_component");
    let again = CommandMessage { expires_at: w.clock.now() + 60_000, ..scale };
    let payload = serde_json::to_vec(&again).unwrap();
    // No order book: only the host can tell whether the first attempt took effect.
    let executor = lone_executor(&w, 7);
    let scales = |w: &World| {
        let log = w.lattice.request_log();
        log.iter().filter(|r| r.subject.contains("component.scale")).count()
    };
    let before = scales(&w);

    // A second delivery of a scale the host already shows: verified, not sent.
    let outcome = executor.process(&payload, 2).await.unwrap();
    assert!(matches!(outcome, Executed::AlreadyDone { .. }), "{outcome:?}");
    assert_eq!(scales(&w), before, "no second scale request");
    let asked = w.lattice.request_log().last().map(|r| r.subject.clone()).unwrap_or_default();
    assert!(asked.ends_with("host.get.N000"), "the host was asked: {asked}");

    // Once the host no longer shows it, the redelivery is sent.
    w.lattice.stop_component("N000", "app-echo").await;
    let outcome = executor.process(&payload, 2).await.unwrap();
    assert_eq!(outcome, Executed::Sent);
    assert_eq!(scales(&w), before + 1);
    assert_eq!(w.lattice.instances("app-echo"), 1);
}

/// The first command of `kind` the replicas issued.
fn issued(w: &World, kind: &str) -> CommandMessage {
    w.commands
        .messages(&format!("wadm.cmd.{LATTICE}.>"))
        .into_iter()
        .map(|(_, _, payload)| serde_json::from_slice::<CommandMessage>(&payload).unwrap())
        .find(|c| c.kind == kind)
        .unwrap_or_else(|| panic!("a {kind} was issued"))
}

/// An executor outside the replicas, with no order book: it executes what it is handed (TTL
/// and generation checks only).
fn lone_executor(
    w: &World,
    seed: u64,
) -> Executor<
    impl wadm_runtime::desired::DesiredSource + use<>,
    impl wadm_runtime::io::ControlClient + use<>,
    impl wadm_runtime::io::Outbox + use<>,
> {
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(w.clock.clone());
    let random: std::sync::Arc<dyn Random> = std::sync::Arc::new(SeededRandom::new(seed));
    Executor::new(
        w.store.clone(),
        w.lattice.clone(),
        w.events.clone(),
        clock,
        random,
        w.config.clone(),
    )
}
