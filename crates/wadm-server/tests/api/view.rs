//! The lattice view on a real nats-server: `lattice.hosts` from what is stored as observed
//! state (here written directly, as the runtime would), one application's placement, bad bodies
//! named by field, and `lattices` from the lattices this process observes.

use wadm_lattice::{ComponentInstance, HostState, LatticeState};
use wadm_model::api::*;
use wadm_store::StoreNames;
use wadm_store::observed::records::{Write, writes_for_all};

use crate::common::{Env, manifest, test_config};

/// Store `state` in the observed-state bucket, key by key.
async fn store(env: &Env, state: &LatticeState) {
    let js = async_nats::jetstream::new(env.client.clone());
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: StoreNames::default().observed_bucket(),
            ..Default::default()
        })
        .await
        .unwrap();
    for write in writes_for_all(state) {
        let Write::Put { key, value } = write else { continue };
        kv.put(key, value.into()).await.unwrap();
    }
}

fn lattice_with(app: &str) -> LatticeState {
    let mut state = LatticeState { lattice: "default".into(), ..LatticeState::default() };
    for (id, runs) in [("NHOST1", true), ("NHOST2", false)] {
        let mut host = HostState {
            id: id.into(),
            friendly_name: format!("{id}-name"),
            version: "1.9.2".into(),
            last_seen: 1_000,
            started_at: Some(500),
            labels: [("zone".to_string(), "a".to_string())].into(),
            ..HostState::default()
        };
        if runs {
            let component = ComponentInstance {
                id: format!("{app}-web"),
                image_ref: "img:1".into(),
                count: 3,
                annotations: [("wasmcloud.dev/appspec".to_string(), app.to_string())].into(),
                since: 0,
            };
            host.components.insert(component.id.clone(), component);
        }
        state.hosts.insert(id.into(), host);
    }
    state
}

#[tokio::test]
async fn hosts_come_from_stored_observed_state() {
    let env = Env::start().await;
    // Before any runtime made the bucket: no hosts, not an error.
    let empty: LatticeHostsResponse = env.req("default.lattice.hosts", "").await;
    assert_eq!((empty.result, empty.hosts.len()), (GetResult::Success, 0), "{}", empty.message);

    store(&env, &lattice_with("shop")).await;
    let all: LatticeHostsResponse = env.req("default.lattice.hosts", "").await;
    assert_eq!(all.result, GetResult::Success, "{}", all.message);
    let ids: Vec<&str> = all.hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, ["NHOST1", "NHOST2"]);
    assert_eq!(all.hosts[0].components[0].instances, 3);
    assert_eq!(all.hosts[0].components[0].app.as_deref(), Some("shop"));
    assert_eq!(all.hosts[0].started_at.as_deref(), Some("1970-01-01T00:00:00Z"));
    assert!(all.hosts[0].uptime_seconds.is_some_and(|s| s > 1_000_000));
    assert_eq!(all.hosts[1].labels["zone"], "a");

    // One application's placement, once the application is stored.
    let missing: LatticeHostsResponse = env.req("default.lattice.hosts", r#"{"app":"shop"}"#).await;
    assert_eq!(missing.result, GetResult::NotFound, "{}", missing.message);
    assert!(missing.message.contains("shop"), "{}", missing.message);
    let _: PutModelResponse = env.req("default.model.put", &manifest("shop", Some("v1"))).await;
    let placed: LatticeHostsResponse = env.req("default.lattice.hosts", r#"{"app":"shop"}"#).await;
    assert_eq!(placed.result, GetResult::Success, "{}", placed.message);
    assert_eq!(placed.app.as_deref(), Some("shop"));
    assert_eq!(placed.hosts.len(), 1);
    assert_eq!(placed.hosts[0].id, "NHOST1");

    // Another lattice's state is not this one's.
    let other: LatticeHostsResponse = env.req("other.lattice.hosts", "").await;
    assert_eq!((other.result, other.hosts.len()), (GetResult::Success, 0));
}

#[tokio::test]
async fn bad_view_requests_name_the_field_or_the_subject() {
    let env = Env::start().await;
    let cases = [
        (r#"{"app":"a.b"}"#, "app: "),
        (r#"{"app":""}"#, "app: must not be empty"),
        (r#"{"apps":"x"}"#, "unknown field `apps`"),
        ("not json", "invalid request body"),
    ];
    for (body, expected) in cases {
        let reply: LatticeHostsResponse = env.req("default.lattice.hosts", body).await;
        assert_eq!(reply.result, GetResult::Error, "{body}");
        assert!(reply.message.contains(expected), "{body}: {}", reply.message);
        assert!(!reply.message.contains('\n'), "{}", reply.message);
    }
    let reply: ErrorResponse = env.req("default.lattice.hosts.x", "").await;
    assert!(reply.message.starts_with("Invalid subject"), "{}", reply.message);
    let reply: ErrorResponse = env.req("default.lattice.links", "").await;
    assert!(reply.message.starts_with("Unsupported subject"), "{}", reply.message);
}

#[tokio::test]
async fn lattices_are_those_this_process_observes_with_their_hosts() {
    let config = test_config();
    config.known_lattices.insert("default");
    config.known_lattices.insert("edge");
    let env = Env::with_config(config.clone()).await;
    store(&env, &lattice_with("shop")).await;
    let reply: LatticesResponse = env.req("lattices", "").await;
    assert_eq!(reply.result, GetResult::Success, "{}", reply.message);
    let found: Vec<(&str, Option<usize>)> =
        reply.lattices.iter().map(|l| (l.name.as_str(), l.hosts)).collect();
    assert_eq!(found, [("default", Some(2)), ("edge", Some(0))]);
    // The set is shared with whoever runs the runtimes: a lattice they stop leaves the list.
    config.known_lattices.remove("edge");
    let reply: LatticesResponse = env.req("lattices", "").await;
    assert_eq!(reply.lattices.len(), 1);
}
