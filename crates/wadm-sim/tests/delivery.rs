//! Delivery kinds with three hosts: "all" subjects are answered by every host, "one" subjects by
//! exactly one, host subjects only by the addressed host.

mod common;

use common::*;
use serde_json::{Value, json};
use wadm_sim::{HostSpec, SimConfig, SimLattice};

/// Total requests of `kind` handled by any of `hosts`.
fn handled(sim: &SimLattice, hosts: &[String], kind: &str) -> u64 {
    hosts.iter().map(|h| sim.requests(h).get(kind)).sum()
}

#[tokio::test]
async fn ping_is_answered_by_all_link_get_by_one_scale_by_the_addressed_host() {
    let f = fixture(|_| {}).await;
    let mut hosts = Vec::new();
    for zone in ["east", "east", "west"] {
        hosts.push(f.sim.add_host(HostSpec::default().label("zone", zone)).await);
    }

    let answers = gather(&f.client, "host.ping", b"", 3).await;
    let mut ids: Vec<&str> =
        answers.iter().map(|a| a["response"]["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected: Vec<&str> = hosts.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(ids, expected);

    let links = request(&f.client, "link.get", Value::Null).await;
    assert_eq!(links["response"], json!([]));
    // A later request is a barrier: requests are handled in order, so any duplicate handling of
    // link.get would be counted by now.
    request(&f.client, &format!("host.get.{}", hosts[0]), Value::Null).await;
    assert_eq!(handled(&f.sim, &hosts, "link.get"), 1);
    assert_eq!(handled(&f.sim, &hosts, "host.ping"), 3);

    let b = &hosts[1];
    let scale = json!({"component_ref": "r:1", "component_id": "c", "count": 2, "host_id": b});
    request(&f.client, &format!("component.scale.{b}"), scale).await;
    for h in &hosts {
        let runs = !f.sim.inventory(h).unwrap().components.is_empty();
        assert_eq!(runs, h == b, "only the addressed host runs the component");
        assert_eq!(f.sim.requests(h).get("component.scale"), u64::from(h == b));
    }
    assert_eq!(f.sim.max_count_seen(b, "c"), 2);

    // Auctions: only hosts whose labels match answer.
    let auction = serde_json::to_vec(
        &json!({"component_ref": "r:1", "component_id": "c", "constraints": {"zone": "east"}}),
    )
    .unwrap();
    let acks = gather(&f.client, "component.auction", &auction, 2).await;
    assert_eq!(acks.len(), 2);
    request(&f.client, &format!("host.get.{}", hosts[0]), Value::Null).await;
    assert_eq!(handled(&f.sim, &hosts, "component.auction"), 3, "every host considered it");
    let acked: Vec<&str> =
        acks.iter().map(|a| a["response"]["host_id"].as_str().unwrap()).collect();
    assert!(acked.iter().all(|h| *h == hosts[0] || *h == hosts[1]), "{acked:?}");
}

#[tokio::test]
async fn two_simulators_on_one_lattice_answer_one_subjects_once() {
    let f = fixture(|_| {}).await;
    let a = f.sim.add_host(HostSpec::default()).await;
    let other = SimLattice::connect(SimConfig::new(f.server.url(), LATTICE)).await.unwrap();
    let b = other.add_host(HostSpec::default()).await;

    assert_eq!(gather(&f.client, "host.ping", b"", 2).await.len(), 2);
    for _ in 0..4 {
        request(&f.client, "claims.get", Value::Null).await;
    }
    request(&f.client, &format!("host.get.{a}"), Value::Null).await;
    request(&f.client, &format!("host.get.{b}"), Value::Null).await;
    let total = f.sim.requests(&a).get("claims.get") + other.requests(&b).get("claims.get");
    assert_eq!(total, 4);
}

#[tokio::test]
async fn two_hundred_hosts_on_one_connection_all_answer() {
    let f = fixture(|_| {}).await;
    for i in 0..200 {
        f.sim.add_host(HostSpec::default().label("n", i.to_string())).await;
    }
    let answers = gather(&f.client, "host.ping", b"", 200).await;
    let mut ids: Vec<&str> =
        answers.iter().map(|a| a["response"]["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    assert_eq!(f.sim.hosts().len(), 200);
}
