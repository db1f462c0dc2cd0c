//! Runtime tests in virtual time over the in-memory I/O (deterministic, seeded).

mod first_round;
mod marks;
mod persistence;
mod repeat;
mod scale;
mod steady;
mod world;

use std::time::Duration;

use wadm_model::StatusType;
use wadm_runtime::io::{Delivery, Inbox};
use wadm_runtime::{Clock, Executed};
use world::{ACK_WAIT, LATTICE, World, running_per_state};

const V1: &str = "ghcr.io/example/echo:0.1.0";
const V2: &str = "ghcr.io/example/echo:0.2.0";

#[tokio::test]
async fn deploy_converges_and_reports_deployed() {
    for seed in [1, 2, 3] {
        let mut w = World::new(2, seed);
        w.add_hosts(3).await;
        w.deploy("app", "v1", V1, 4).await;
        w.settle().await;
        assert_eq!(w.running("app"), (4, vec![V1.to_string()]), "seed {seed}");
        let status = w.status("app").expect("status written");
        assert_eq!(status.status.status_type, StatusType::Deployed, "seed {seed}: {status:?}");
        // A fixed point: a resync issues nothing new.
        let requests = w.lattice.requests();
        w.clock.advance(10_000);
        w.tick().await;
        w.settle().await;
        assert_eq!(w.lattice.requests(), requests);
    }
}

/// An event whose step fails every time (here: its application's deployment cannot be read) is
/// retried with backoff, then parked; the events behind it are handled and the lattice goes on.
#[tokio::test]
async fn a_poison_event_is_parked_and_the_lattice_goes_on() {
    let mut w = World::new(1, 5);
    w.add_hosts(2).await;
    w.settle().await;
    *w.replicas[0].desired.unreadable.lock().unwrap() = Some("poison".into());
    w.deploy("poison", "v1", V1, 1).await;
    w.deploy("app", "v1", V2, 3).await;
    let events = w.replicas[0].events.clone();
    let (parked, failures) = step_past_the_poison(&mut w, &events).await;
    assert_eq!(parked, 1, "the poison event was parked once");
    assert!(failures >= 1, "it failed before it was parked");
    w.settle().await;
    assert_eq!(w.running("app"), (3, vec![V2.to_string()]));
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);
}

/// Replica 0's pipeline steps on `inbox` (its commands executed after each step, then time past
/// the redelivery backoff) until "app" runs 3 instances, 100 steps at most: the steps that parked
/// an event, and those that failed.
async fn step_past_the_poison(w: &mut World, inbox: &impl Inbox<Delivery: Sync>) -> (u32, u32) {
    let (mut parked, mut failures) = (0, 0);
    for _ in 0..100 {
        match w.replicas[0].pipeline.step(inbox, Duration::ZERO).await {
            Ok(Some(p)) if p.skipped.as_deref().is_some_and(|s| s.contains("parked")) => {
                parked += 1
            }
            Ok(_) => {}
            Err(_) => failures += 1,
        }
        w.settle_with(false, true).await;
        if w.running("app").0 == 3 {
            break;
        }
        // Past the redelivery backoff.
        w.clock.advance(60_000);
        w.lattice.heartbeat_all().await;
    }
    (parked, failures)
}

/// Batches of up to `max` from a memory consumer (which hands out one message at a time).
struct Batching(wadm_runtime::memory::MemoryConsumer);

impl Inbox for Batching {
    type Delivery = <wadm_runtime::memory::MemoryConsumer as Inbox>::Delivery;

    async fn next(&self, wait: Duration) -> Result<Option<Self::Delivery>, wadm_runtime::IoError> {
        self.0.next(wait).await
    }

    async fn next_batch(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Self::Delivery>, wadm_runtime::IoError> {
        let mut batch = Vec::new();
        while batch.len() < max {
            match self.0.next(wait).await? {
                Some(d) => batch.push(d),
                None => break,
            }
        }
        Ok(batch)
    }
}

/// In a batch, the poison event is isolated (the batch is retried one message at a time) and
/// parked; the events after it in the same batch are handled.
#[tokio::test]
async fn a_poison_event_in_a_batch_is_isolated_and_parked() {
    let mut w = World::new(1, 6);
    let batched = Batching(w.events.consumer(
        "batched",
        wadm_store::streams::subjects::event_filters(LATTICE),
        256,
        ACK_WAIT,
    ));
    w.add_hosts(2).await;
    *w.replicas[0].desired.unreadable.lock().unwrap() = Some("poison".into());
    w.deploy("poison", "v1", V1, 1).await;
    w.deploy("app", "v1", V2, 3).await;
    let (parked, failures) = step_past_the_poison(&mut w, &batched).await;
    assert_eq!(parked, 1, "the poison event was parked once");
    assert!(failures >= 2, "whole batches failed first ({failures})");
    assert_eq!(w.running("app"), (3, vec![V2.to_string()]));
}

#[tokio::test]
async fn same_seed_same_history() {
    async fn run(seed: u64) -> (u64, u64, Vec<String>) {
        let mut w = World::new(3, seed);
        w.add_hosts(2).await;
        w.deploy("app", "v1", V1, 3).await;
        w.settle().await;
        w.deploy("app", "v2", V2, 2).await;
        w.settle().await;
        let trace = w.executed.iter().map(|e| format!("{e:?}")).collect();
        (w.lattice.requests(), w.commands.stored(), trace)
    }
    assert_eq!(run(42).await, run(42).await);
}

#[tokio::test]
async fn crash_between_publish_and_ack_redelivers_without_duplicate_commands() {
    let mut w = World::new(2, 7);
    w.add_hosts(2).await;
    // Let the replicas learn the hosts.
    w.settle().await;
    w.deploy("app", "v1", V1, 2).await;

    // Replica 0 takes the deploy event, publishes its commands, and crashes before the ack.
    let (delivery, first) = w.take_and_process(0).await;
    assert!(delivery.subject().ends_with("manifest_published"));
    assert!(first.published > 0);
    let stored = w.commands.stored();
    drop(delivery);

    // Nothing else is delivered while the crashed delivery is pending (max_ack_pending = 1).
    assert!(w.replicas[1].events.next(Duration::ZERO).await.unwrap().is_none());
    w.clock.advance(ACK_WAIT.as_millis() as u64 + 1);

    // Replica 1 gets it again and redoes the work: the same command ids, all deduplicated.
    let (again, redo) = w.take_and_process(1).await;
    assert_eq!(again.delivered(), 2);
    again.ack().await.unwrap();
    assert_eq!((redo.published, redo.duplicates), (0, first.published));
    assert_eq!(w.commands.stored(), stored);

    w.settle().await;
    assert_eq!(w.running("app"), (2, vec![V1.to_string()]));
    let sent = w.executed.iter().filter(|e| **e == Executed::Sent).count();
    assert_eq!(sent as u64, w.lattice.requests(), "every request sent exactly once");
    assert_eq!(sent, first.published);
}

#[tokio::test]
async fn duplicate_and_out_of_order_host_events_change_nothing() {
    let mut w = World::new(2, 11);
    w.add_hosts(1).await;
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    assert_eq!(w.running("app").0, 2);
    let requests = w.lattice.requests();
    let stored = w.commands.stored();

    // Replay every host event published so far (duplicates, and old heartbeats that say the
    // component is not running yet arriving after newer ones).
    let old: Vec<_> = w.events.messages("wasmbus.evt.>");
    assert!(old.len() >= 3);
    for (i, (_, subject, payload)) in old.iter().rev().enumerate() {
        w.replay(subject, payload.clone(), &format!("replay-{i}")).await;
    }
    w.settle().await;
    assert_eq!(w.lattice.requests(), requests, "stale events trigger no commands");
    assert_eq!(w.commands.stored(), stored);
    let (record, _) = w.replicas[0].pipeline.records().load(LATTICE).await.unwrap();
    assert_eq!(
        running_per_state(&record.state),
        2,
        "observed state still shows the running component"
    );
    assert!(record.state.bookkeeping.stale_events > 0);
}

#[tokio::test]
async fn update_during_update_drops_the_older_generation() {
    let mut w = World::new(2, 5);
    w.add_hosts(2).await;
    w.settle().await;
    w.deploy("app", "v1", V1, 3).await;
    // Decide v1's commands but do not execute them yet.
    w.settle_with(true, false).await;
    let v1_commands = w.commands.messages("wadm.cmd.>").len();
    assert!(v1_commands > 0);
    // v2 is deployed before v1's commands ran.
    w.deploy("app", "v2", V2, 1).await;
    w.settle().await;

    let superseded = w.executed.iter().filter(|e| matches!(e, Executed::Superseded { .. })).count();
    assert_eq!(superseded, v1_commands, "every v1 command was dropped unsent");
    assert_eq!(w.running("app"), (1, vec![V2.to_string()]));
    // v2 took v1's starts back with scale downs that match what the hosts were last seen
    // running: only news heard after them confirms them (a start answered late could still run).
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Reconciling);
    w.clock.advance(1);
    w.lattice.heartbeat_all().await;
    w.settle().await;
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);
}

/// A start whose first attempt went unanswered may still be executed late: when its retry is
/// superseded by a new version, it keeps counting as in flight (so nothing is placed beside
/// what it may start) until its deadline, instead of being forgotten at once.
#[tokio::test]
async fn a_superseded_retry_of_an_unanswered_start_keeps_its_order() {
    let mut w = World::new(2, 23);
    w.add_hosts(2).await;
    w.settle().await;
    w.lattice.set_unreachable(true);
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;
    assert!(matches!(w.executed.last(), Some(Executed::Retry { .. })), "{:?}", w.executed);
    w.lattice.set_unreachable(false);
    w.deploy("app", "v2", V2, 1).await;
    w.settle().await;
    let retry = w.executed.iter().filter_map(|e| match e {
        Executed::Retry { delay } => Some(*delay),
        _ => None,
    });
    w.clock.advance(retry.max().unwrap().as_millis() as u64 + 1);
    let requests = w.lattice.requests();
    w.settle().await;
    assert!(matches!(w.executed.last(), Some(Executed::Superseded { .. })), "{:?}", w.executed);
    w.tick().await;
    w.settle().await;
    assert_eq!(w.lattice.requests(), requests, "nothing sent while the start may still run");

    // Its deadline passed unconfirmed: forgotten, and v2 is placed.
    w.clock.advance(w.config.order_lifetime.as_millis() as u64 + 1);
    w.lattice.heartbeat_all().await;
    w.tick().await;
    w.settle().await;
    assert_eq!(w.running("app"), (1, vec![V2.to_string()]));
}

#[tokio::test]
async fn host_failure_sets_status_and_backs_off_across_replicas() {
    let mut w = World::new(2, 9);
    w.add_hosts(1).await;
    w.settle().await;
    let component = "app-echo";
    w.lattice.fail_component(component, Some("out of memory"));
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;

    let status = w.status("app").unwrap();
    assert_eq!(status.status.status_type, StatusType::Failed, "{status:?}");
    assert!(status.status.message.contains("out of memory"), "{status:?}");
    let (record, _) = w.replicas[0].pipeline.records().load(LATTICE).await.unwrap();
    let failure = record.apps["app"].failure.clone().expect("failure persisted");
    assert_eq!(failure.attempts, 1);
    assert!(failure.retry_at > w.clock.now());

    // During the backoff nothing is retried, even on a resync.
    let requests = w.lattice.requests();
    w.tick().await;
    w.settle().await;
    assert_eq!(w.lattice.requests(), requests, "no retry during backoff");

    // The host heals; after the backoff a tick (handled by whichever replica) retries.
    w.lattice.fail_component(component, None);
    w.clock.set(failure.retry_at.max(w.clock.now() + w.config.tick_every.as_millis() as u64));
    w.tick().await;
    w.settle().await;
    assert_eq!(w.running("app").0, 1);
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);
    let (record, _) = w.replicas[1].pipeline.records().load(LATTICE).await.unwrap();
    assert_eq!(record.apps["app"].failure, None, "failure forgotten once deployed");
}

#[tokio::test]
async fn repeated_failures_back_off_exponentially() {
    let mut w = World::new(1, 3);
    w.add_hosts(1).await;
    w.settle().await;
    w.lattice.fail_component("app-echo", Some("no"));
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;
    let mut waits = Vec::new();
    for _ in 0..4 {
        let (record, _) = w.replicas[0].pipeline.records().load(LATTICE).await.unwrap();
        let f = record.apps["app"].failure.clone().unwrap();
        waits.push(f.retry_at - w.clock.now());
        // Past the backoff, and in a new tick period (ticks of one period deduplicate).
        w.clock.set(f.retry_at.max(w.clock.now() + w.config.tick_every.as_millis() as u64));
        w.tick().await;
        w.settle().await;
    }
    let (record, _) = w.replicas[0].pipeline.records().load(LATTICE).await.unwrap();
    assert_eq!(record.apps["app"].failure.as_ref().unwrap().attempts, 5);
    let base = w.config.failure_backoff.base.as_millis() as u64;
    for (i, wait) in waits.iter().enumerate() {
        let ceiling = base << i;
        assert!(*wait >= ceiling / 2 && *wait <= ceiling, "attempt {}: {wait} vs {ceiling}", i + 1);
    }
}

#[tokio::test]
async fn commands_past_their_ttl_are_not_executed() {
    let mut w = World::new(2, 13);
    w.add_hosts(1).await;
    w.settle().await;
    w.deploy("app", "v1", V1, 2).await;
    w.settle_with(true, false).await;
    let (_, _, payload) = w.commands.messages("wadm.cmd.>").into_iter().next().expect("a command");
    let requests = w.lattice.requests();

    w.clock.advance(w.config.command_ttl.as_millis() as u64);
    // The executor's own check (a stream that has not dropped it yet).
    let outcome = w.replicas[0].executor.process(&payload, 1).await.unwrap();
    assert_eq!(outcome, Executed::Expired);
    // The stream's TTL: nothing is delivered any more.
    w.settle_with(false, true).await;
    assert_eq!(w.lattice.requests(), requests, "no expired command reached a host");

    // The next resync re-observes and issues fresh commands, which do run.
    w.tick().await;
    w.settle().await;
    assert_eq!(w.running("app").0, 2);
}

#[tokio::test]
async fn a_command_delivered_again_after_its_order_settled_is_not_executed() {
    let mut w = World::new(2, 19);
    w.add_hosts(2).await;
    w.settle().await;
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;
    assert_eq!(w.running("app").0, 1);
    let (_, _, payload) = w.commands.messages("wadm.cmd.>").into_iter().next().expect("a command");
    let requests = w.lattice.requests();
    // Its replica died after sending it: delivered again once its order is confirmed (and a
    // later order may have changed its slot since), it is dropped unsent.
    let outcome = w.replicas[1].executor.process(&payload, 2).await.unwrap();
    assert_eq!(outcome, Executed::Settled);
    assert_eq!(w.lattice.requests(), requests, "nothing reached a host");
}

#[tokio::test]
async fn unanswered_requests_retry_with_backoff_then_fail_the_app() {
    let mut w = World::new(2, 17);
    w.add_hosts(1).await;
    w.settle().await;
    w.lattice.set_unreachable(true);
    w.deploy("app", "v1", V1, 1).await;
    w.settle().await;
    let mut delays = Vec::new();
    for _ in 0..10 {
        if let Some(Executed::Retry { delay }) = w.executed.last().cloned() {
            delays.push(delay);
            w.clock.advance(delay.as_millis() as u64);
            w.settle().await;
        }
    }
    let max = w.config.max_request_attempts as usize;
    assert_eq!(delays.len(), max - 1, "{:?}", w.executed);
    assert!(matches!(w.executed.last(), Some(Executed::GaveUp { .. })));
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Failed);
    assert!(delays.windows(2).all(|d| d[1].as_millis() * 2 >= d[0].as_millis()));
}

#[tokio::test]
async fn undeploy_removes_what_the_app_runs() {
    let mut w = World::new(2, 19);
    w.add_hosts(2).await;
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    assert_eq!(w.running("app").0, 2);
    w.undeploy("app").await;
    w.settle().await;
    assert_eq!(w.running("app").0, 0);
    let (record, _) = w.replicas[0].pipeline.records().load(LATTICE).await.unwrap();
    assert!(!record.apps.contains_key("app"), "nothing left to remove: forgotten");
}

#[tokio::test]
async fn lost_hosts_are_replaced_after_their_lease() {
    let mut w = World::new(2, 23);
    w.add_hosts(2).await;
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    // Host N000 goes silent (crash); N001 keeps sending heartbeats.
    let lease = w.config.lease.lease_ms();
    let step = w.config.lease.heartbeat_interval_ms;
    let mut elapsed = 0;
    while elapsed <= lease + step {
        w.clock.advance(step);
        elapsed += step;
        w.lattice.heartbeat("N001").await;
        w.tick().await;
        w.settle().await;
    }
    let (record, _) = w.replicas[0].pipeline.records().load(LATTICE).await.unwrap();
    assert!(!record.state.hosts.contains_key("N000"));
    let on_live: u32 = record.state.hosts["N001"].components.values().map(|c| c.count).sum();
    assert_eq!(on_live, 2, "the lost host's instance was re-placed");
    // Its allocation events: the first placements were deploys, the re-placement is host_lost.
    let classes: Vec<(String, String)> = w
        .lattice
        .notified()
        .iter()
        .map(|(_, e)| (e["data"]["kind"].to_string(), e["data"]["reason_class"].to_string()))
        .collect();
    let scale = "\"scale_component\"".to_string();
    assert_eq!(classes.first(), Some(&(scale.clone(), "\"deploy\"".into())), "{classes:?}");
    assert_eq!(classes.last(), Some(&(scale, "\"host_lost\"".into())), "{classes:?}");
}

#[tokio::test]
async fn discovery_finds_hosts_whose_announcements_were_lost() {
    let mut w = World::new(2, 29);
    w.lattice.add_host_quietly("Q1", Default::default());
    w.deploy("app", "v1", V1, 2).await;
    w.settle().await;
    assert_eq!(w.running("app").0, 0, "no known host: nothing placed");
    // Held until the first discovery round (see `first_round.rs`): no deployed status either.
    assert!(w.status("app").is_none_or(|s| s.status.status_type != StatusType::Deployed));
    assert!(w.processed.iter().any(|p| p.held_for_discovery));

    let found = wadm_runtime::discover_into(&w.lattice, &w.events, LATTICE, w.clock.now(), "r0")
        .await
        .unwrap();
    assert_eq!(found, 1);
    w.settle().await;
    assert_eq!(w.running("app"), (2, vec![V1.to_string()]));
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Deployed);
}

mod properties {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use wadm_model::StatusType;
    use wadm_runtime::CommandMessage;

    use super::{V1, V2, world::World};

    fn scenario(
        seed: u64,
        replicas: usize,
        hosts: usize,
        crashes: u32,
        instances: u32,
        update: bool,
    ) -> u32 {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let mut w = World::new(replicas, seed);
            w.crashes_left = crashes;
            w.add_hosts(hosts).await;
            w.deploy("app", "v1", V1, instances).await;
            w.settle().await;
            let image = if update {
                w.deploy("app", "v2", V2, instances).await;
                w.settle().await;
                V2
            } else {
                V1
            };
            // Crashes may leave the last word to a resync.
            w.crashes_left = 0;
            w.resync().await;
            w.settle().await;
            assert_eq!(w.running("app"), (instances, vec![image.to_string()]));
            let status = w.status("app").unwrap();
            assert_eq!(status.status.status_type, StatusType::Deployed, "{status:?}");
            // No decision was published twice, however often events were redone.
            let stored = w.commands.messages("wadm.cmd.>");
            let ids: BTreeSet<String> = stored
                .iter()
                .map(|(_, _, p)| serde_json::from_slice::<CommandMessage>(p).unwrap().id)
                .collect();
            assert_eq!(ids.len(), stored.len());
            w.crashed
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn converges_under_crashes_and_redelivery(
            seed: u64,
            replicas in 1usize..4,
            hosts in 1usize..4,
            crashes in 0u32..6,
            instances in 1u32..5,
            update: bool,
        ) {
            scenario(seed, replicas, hosts, crashes, instances, update);
        }
    }

    #[test]
    fn crashes_are_really_injected() {
        let injected: u32 = (0..16).map(|seed| scenario(seed, 2, 2, 5, 3, true)).sum();
        assert!(injected >= 16 * 3, "only {injected} crashes injected");
    }
}
