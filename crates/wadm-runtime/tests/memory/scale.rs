//! Many applications on many hosts (the shape of `wadm bench`): every application reaches
//! `deployed` with about one command per instance (steps put their reconcile off while events
//! are queued, so placement does not chase a state the queue already outdated) and stays there
//! while heartbeats and resyncs go on.

use serde_json::json;
use wadm_model::StatusType;

use super::world::World;

fn manifest(app: usize, components: usize) -> serde_json::Value {
    let components: Vec<serde_json::Value> = (0..components)
        .map(|c| {
            let mut scaler = json!({ "instances": 1 + (app + c) % 3 });
            if c % 2 == 0 {
                scaler["spread"] = json!([
                    { "name": "east", "requirements": { "zone": "east" }, "weight": 50 },
                    { "name": "west", "requirements": { "zone": "west" }, "weight": 50 },
                ]);
            } else if c % 3 == 1 {
                scaler["spread"] =
                    json!([{ "name": "east-only", "requirements": { "zone": "east" } }]);
            }
            json!({
                "name": format!("c{c}"),
                "type": "component",
                "properties": { "image": format!("ghcr.io/bench/component-{c}:0.1.0") },
                "traits": [{ "type": "spreadscaler", "properties": scaler }],
            })
        })
        .collect();
    json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": { "name": format!("bench-{app:03}"), "annotations": { "version": "v1" } },
        "spec": { "components": components },
    })
}

fn not_deployed(w: &World, apps: usize) -> Vec<String> {
    (0..apps)
        .filter_map(|a| {
            let name = format!("bench-{a:03}");
            let status = w.status(&name);
            match status {
                Some(s) if s.status.status_type == StatusType::Deployed => None,
                other => Some(format!("{name}: {:?}", other.map(|s| s.status))),
            }
        })
        .collect()
}

#[tokio::test]
async fn many_apps_stay_deployed() {
    let (apps, components, hosts) = (30, 5, 30);
    let mut w = World::new(2, 41);
    for h in 0..hosts {
        let zone = if h % 2 == 0 { "east" } else { "west" };
        let labels = [("zone".to_string(), zone.to_string())].into_iter().collect();
        w.lattice.add_host(&format!("N{h:03}"), labels).await;
    }
    w.settle().await;
    for a in 0..apps {
        w.deploy_value(&format!("bench-{a:03}"), "v1", manifest(a, components)).await;
    }
    w.settle().await;
    assert_eq!(not_deployed(&w, apps), Vec::<String>::new());
    let stored = w.commands.stored();
    // While events queue up (30 deploys at once, then the hosts' answers), steps put their
    // reconcile off: commands are not re-published once per queued event.
    // Planning on a state the queue has already outdated moved instances between hosts: about
    // five commands per instance, and five publications per command.
    let instances: u64 =
        (0..apps).flat_map(|a| (0..components).map(move |c| 1 + ((a + c) % 3) as u64)).sum();
    let publications: usize = w.processed.iter().map(|p| p.published + p.duplicates).sum();
    assert!(stored <= instances * 5 / 4, "{stored} commands for {instances} instances");
    assert!(publications as u64 <= 4 * stored, "{publications} publications, {stored} commands");
    for round in 0..5 {
        w.clock.advance(w.config.lease.heartbeat_interval_ms);
        w.lattice.heartbeat_all().await;
        w.tick().await;
        w.settle().await;
        assert_eq!(not_deployed(&w, apps), Vec::<String>::new(), "round {round}");
    }
    assert_eq!(w.commands.stored(), stored, "a fixed point: nothing new issued");
}
