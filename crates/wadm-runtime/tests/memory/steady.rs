//! Steady state: each replica keeps the reconciler of a lattice's desired state between steps.
//! While the desired state does not change no manifest is read and no scaler built; a deploy,
//! an upgrade or an undeploy is planned from its first step on, whichever replica built what.

use wadm_model::StatusType;

use super::world::{LATTICE, World};
use super::{V1, V2};

/// Replica `r`'s manifest reads and reconciler builds so far.
fn reads_and_builds(w: &World, r: usize) -> (u64, u64) {
    (w.replicas[r].desired.manifest_reads(), w.replicas[r].pipeline.reconcilers().built())
}

#[tokio::test]
async fn an_unchanged_desired_state_reads_no_manifest_and_builds_no_scaler() {
    let mut w = World::new(1, 3);
    w.add_hosts(3).await;
    w.deploy("app", "v1", V1, 4).await;
    w.settle().await;
    assert_eq!(w.running("app"), (4, vec![V1.to_string()]));
    let (reads, builds) = reads_and_builds(&w, 0);
    assert_eq!(reads, 1, "v1 read once");
    assert!(builds >= 1);

    for _ in 0..5 {
        w.resync().await;
        w.settle().await;
    }
    assert_eq!(reads_and_builds(&w, 0), (reads, builds), "ticks and heartbeats reuse it");
    assert_eq!(w.running("app"), (4, vec![V1.to_string()]));

    // An upgrade reads the new version only (v1, now the previous version, is reused) once.
    w.deploy("app", "v2", V2, 2).await;
    w.settle().await;
    w.resync().await;
    w.settle().await;
    assert_eq!(w.running("app"), (2, vec![V2.to_string()]));
    assert_eq!(reads_and_builds(&w, 0), (reads + 1, builds + 1));
    assert_eq!(w.replicas[0].pipeline.reconcilers().lattices(), vec![LATTICE.to_string()]);
}

#[tokio::test]
async fn deploy_upgrade_and_undeploy_are_planned_at_their_first_step() {
    let mut w = World::new(1, 5);
    w.add_hosts(2).await;
    w.settle().await;
    w.deploy("app", "v1", V1, 3).await;
    // The deploy event alone: its commands, executed, place v1.
    assert!(w.step_events(0).await);
    w.settle_with(false, true).await;
    assert_eq!(w.running("app"), (3, vec![V1.to_string()]));
    w.settle().await;

    w.deploy("app", "v2", V2, 2).await;
    assert!(w.step_events(0).await);
    let upgrade = w.processed.last().unwrap().clone();
    assert!(upgrade.published > 0, "{upgrade:?}");
    w.settle_with(false, true).await;
    let (_, images) = w.running("app");
    assert!(images.contains(&V2.to_string()), "v2 started by the upgrade's own step: {images:?}");
    w.settle().await;
    assert_eq!(w.running("app"), (2, vec![V2.to_string()]));

    w.undeploy("app").await;
    assert!(w.step_events(0).await);
    w.settle_with(false, true).await;
    assert_eq!(w.running("app").0, 0, "the undeploy's own step removed everything");
    w.settle().await;
    assert_eq!(w.status("app").unwrap().status.status_type, StatusType::Undeployed);
}

#[tokio::test]
async fn a_replica_whose_reconciler_is_outdated_plans_the_new_desired_state() {
    let mut w = World::new(2, 9);
    w.add_hosts(2).await;
    // Replica 0 alone: it builds and keeps v1's reconciler.
    w.deploy("app", "v1", V1, 2).await;
    while w.step_events(0).await || w.step_commands(0).await {}
    assert_eq!(w.running("app"), (2, vec![V1.to_string()]));
    let (_, kept) = reads_and_builds(&w, 0);

    // Replica 1 takes the upgrade's event and publishes its commands (not executed yet).
    w.deploy("app", "v2", V2, 3).await;
    assert!(w.step_events(1).await);
    let upgrade = w.processed.last().unwrap().clone();
    assert!(upgrade.published > 0, "{upgrade:?}");

    // Replica 0 handles the next resync: v1's reconciler no longer matches the record, so it
    // plans v2 as replica 1 did, on the lattice as it will be once replica 1's orders (read
    // back from the head) take effect: nothing is sent again.
    w.clock.advance(w.config.tick_every.as_millis() as u64);
    w.tick().await;
    assert!(w.step_events(0).await);
    let resync = w.processed.last().unwrap().clone();
    assert_eq!((resync.published, resync.duplicates), (0, 0), "{resync:?}");
    assert_eq!(resync.in_flight, upgrade.in_flight, "{resync:?}");
    assert!(resync.in_flight > 0, "{resync:?}");
    assert_eq!(reads_and_builds(&w, 0).1, kept + 1, "rebuilt for v2");
    w.settle().await;
    assert_eq!(w.running("app"), (3, vec![V2.to_string()]));
}
