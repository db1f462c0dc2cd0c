//! Wire conformance: every reply and event a simulated host produces, driven by plain NATS
//! requests, checked against protocol.md and the field names of the upstream event samples.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{Value, json};
use wadm_protocol::CloudEvent;
use wadm_sim::HostSpec;

const SAMPLES: &str = include_str!("../../../fixtures/events/upstream-event-samples.json");

/// The data field names of the upstream sample of `short`, minus fields a simulated (unsigned,
/// current) host never sends: claims of signed artifacts, the old `public_key` and `issuer`.
fn sample_keys(short: &str) -> BTreeSet<String> {
    let samples: Vec<Value> = serde_json::from_str(SAMPLES).unwrap();
    let sample = samples
        .iter()
        .find(|s| s["type"] == format!("com.wasmcloud.lattice.{short}"))
        .unwrap_or_else(|| panic!("no sample of {short}"));
    keys(&sample["data"])
        .into_iter()
        .filter(|k| !["claims", "public_key", "issuer"].contains(&k.as_str()))
        .collect()
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// Our event carries every field the upstream sample has.
fn assert_has_sample_fields(event: &CloudEvent, short: &str) {
    let ours = keys(&event.data);
    let missing: Vec<_> = sample_keys(short).difference(&ours).cloned().collect();
    assert!(missing.is_empty(), "{short} lacks {missing:?}: {}", event.data);
}

fn assert_envelope(event: &CloudEvent, host: &str) {
    let v = serde_json::to_value(event).unwrap();
    let samples: Vec<Value> = serde_json::from_str(SAMPLES).unwrap();
    assert_eq!(keys(&v), keys(&samples[0]), "envelope fields");
    assert_eq!(event.specversion, "1.0");
    assert_eq!(event.datacontenttype, "application/json");
    assert_eq!(event.source, host);
    assert!(!event.id.is_empty());
    assert!(chrono::DateTime::parse_from_rfc3339(&event.time).is_ok(), "{}", event.time);
}

fn assert_ack(reply: &Value) {
    assert_eq!(reply["success"], true, "{reply}");
    assert!(reply.get("response").is_none(), "{reply}");
    assert!(reply["message"].is_string());
}

#[tokio::test]
async fn ping_and_inventory_have_every_documented_field() {
    let f = fixture(|_| {}).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let started = f.events.wait("host_started", 1).await;
    assert_envelope(&started[0], &id);
    assert_has_sample_fields(&started[0], "host_started");
    assert!(started[0].data.get("version").is_some() && started[0].data["uptime_seconds"] == 0);

    let ping = gather(&f.client, "host.ping", b"", 1).await;
    assert_eq!(ping[0]["success"], true);
    let host = &ping[0]["response"];
    for field in [
        "id",
        "friendly_name",
        "labels",
        "lattice",
        "version",
        "uptime_seconds",
        "uptime_human",
        "ctl_host",
        "rpc_host",
    ] {
        assert!(host.get(field).is_some(), "ping lacks {field}: {host}");
    }
    assert_eq!(host["id"], id.as_str());
    assert_eq!(host["lattice"], LATTICE);

    let inv = request(&f.client, &format!("host.get.{id}"), Value::Null).await;
    let inv = &inv["response"];
    for field in [
        "host_id",
        "friendly_name",
        "labels",
        "version",
        "uptime_seconds",
        "uptime_human",
        "components",
        "providers",
    ] {
        assert!(inv.get(field).is_some(), "inventory lacks {field}: {inv}");
    }
}

#[tokio::test]
async fn component_scale_update_and_stop_events() {
    let f = fixture(|c| c.heartbeat_interval = std::time::Duration::from_millis(300)).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let scale = |count: Value, r: &str, ann: Value| {
        json!({"component_ref": r, "component_id": "echo", "count": count, "host_id": id,
            "annotations": ann})
    };
    let subject = format!("component.scale.{id}");
    assert_ack(&request(&f.client, &subject, scale(json!(2), "r:1", json!({"a": "1"}))).await);
    let scaled = f.events.wait("component_scaled", 2).await;
    assert_envelope(&scaled[0], &id);
    assert_has_sample_fields(&scaled[0], "component_scaled");
    assert_eq!(scaled[0].data, scaled[1].data, "first start reports twice");
    assert_eq!(scaled[0].data["max_instances"], 2);
    assert_eq!(scaled[0].data["host_id"], id.as_str());

    // Heartbeats carry the inventory, in the upstream shape.
    let beat = f.events.wait("host_heartbeat", 1).await.remove(0);
    assert_has_sample_fields(&beat, "host_heartbeat");
    let component = &beat.data["components"][0];
    for field in ["annotations", "id", "image_ref", "max_instances", "revision"] {
        assert!(component.get(field).is_some(), "heartbeat component lacks {field}");
    }

    // A scale without annotations replaces them with nothing.
    assert_ack(&request(&f.client, &subject, scale(json!(3), "r:1", json!({}))).await);
    let scaled = f.events.wait("component_scaled", 3).await;
    assert_eq!(scaled[2].data["annotations"], json!({}));
    assert!(f.sim.inventory(&id).unwrap().components[0].annotations.is_empty());

    // update: new ref with n, then a spurious 0; the component keeps running.
    let update = json!({"component_id": "echo", "new_component_ref": "r:2", "host_id": id});
    assert_ack(&request(&f.client, &format!("component.update.{id}"), update).await);
    let scaled = f.events.wait("component_scaled", 5).await;
    assert_eq!(
        (&scaled[3].data["image_ref"], &scaled[3].data["max_instances"]),
        (&json!("r:2"), &json!(3))
    );
    assert_eq!(scaled[4].data["max_instances"], 0);
    assert_eq!(f.sim.inventory(&id).unwrap().components[0].max_instances, 3);

    // A misspelt count is a stop.
    let typo = json!({"component_ref": "r:2", "component_id": "echo", "max_instances": 3,
        "host_id": id});
    assert_ack(&request(&f.client, &subject, typo).await);
    let scaled = f.events.wait("component_scaled", 6).await;
    assert_eq!(scaled[5].data["max_instances"], 0);
    assert!(f.sim.inventory(&id).unwrap().components.is_empty());
    assert_eq!(f.sim.max_count_seen(&id, "echo"), 3);

    // Unparsable: refused with the reason, no event.
    let bad = request(&f.client, &subject, json!({"count": 1})).await;
    assert_eq!(bad["success"], false);
    assert!(bad["message"].as_str().unwrap().contains("component_ref"), "{bad}");
}

#[tokio::test]
async fn provider_lifecycle_events() {
    let f = fixture(|_| {}).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let start = json!({"provider_id": "http", "provider_ref": "wasmcloud+builtin://http-server",
        "host_id": id, "annotations": {"x": "y"}});
    let subject = format!("provider.start.{id}");
    assert_ack(&request(&f.client, &subject, start.clone()).await);
    let started = f.events.wait("provider_started", 1).await;
    assert_has_sample_fields(&started[0], "provider_started");
    assert_eq!(started[0].data["image_ref"], "http-server");
    let health = f.events.wait("health_check_passed", 1).await;
    assert_has_sample_fields(&health[0], "health_check_passed");

    let again = request(&f.client, &subject, start).await;
    assert_eq!(again["success"], false, "starting a running provider is refused");

    let stop = json!({"provider_id": "http", "host_id": id});
    assert_ack(&request(&f.client, &format!("provider.stop.{id}"), stop.clone()).await);
    let stopped = f.events.wait("provider_stopped", 1).await;
    assert_has_sample_fields(&stopped[0], "provider_stopped");
    assert_eq!(stopped[0].data["annotations"], json!({"x": "y"}));
    let again = request(&f.client, &format!("provider.stop.{id}"), stop).await;
    assert_eq!(again["success"], false, "stopping a provider that is not running is refused");

    f.sim.faults(&id).unwrap().set_reject_provider_starts(true);
    let start = json!({"provider_id": "p2", "provider_ref": "ghcr.io/x:1", "host_id": id});
    assert_ack(&request(&f.client, &subject, start).await);
    let failed = f.events.wait("provider_start_failed", 1).await;
    assert_has_sample_fields(&failed[0], "provider_start_failed");
    assert_eq!(failed[0].data["provider_ref"], "ghcr.io/x:1");
}

#[tokio::test]
async fn links_config_claims_and_labels() {
    let f = fixture(|_| {}).await;
    let id = f.sim.add_host(HostSpec::default()).await;
    let link = json!({"source_id": "echo", "target": "http", "name": "default",
        "wit_namespace": "wasi", "wit_package": "http", "interfaces": ["incoming-handler"],
        "source_config": ["cfg"], "target_config": []});

    let refused = request(&f.client, "link.put", link.clone()).await;
    assert_eq!(refused["success"], false, "config `cfg` does not exist yet");
    let failed = f.events.wait("linkdef_set_failed", 1).await;
    assert!(failed[0].data["error"].is_string());

    let missing = request(&f.client, "config.get.cfg", Value::Null).await;
    assert_eq!(missing, json!({"success": true, "message": "Configuration not found"}));
    assert_ack(&request(&f.client, "config.put.cfg", json!({"k": "v"})).await);
    let set = f.events.wait("config_set", 1).await;
    assert_eq!(keys(&set[0].data), sample_keys("config_set"));
    assert_eq!(set[0].data["config_name"], "cfg");
    let got = request(&f.client, "config.get.cfg", Value::Null).await;
    assert_eq!(got["response"], json!({"k": "v"}));

    assert_ack(&request(&f.client, "link.put", link.clone()).await);
    let set = f.events.wait("linkdef_set", 1).await;
    assert_eq!(keys(&set[0].data), sample_keys("linkdef_set"));
    let links = request(&f.client, "link.get", Value::Null).await;
    assert_eq!(links["response"], json!([link]));
    assert_eq!(f.sim.links().len(), 1);

    let del = json!({"source_id": "echo", "wit_namespace": "wasi", "wit_package": "http"});
    assert_ack(&request(&f.client, "link.del", del.clone()).await);
    assert_ack(&request(&f.client, "link.del", del).await);
    let deleted = f.events.wait("linkdef_deleted", 2).await;
    assert_eq!(deleted[0].data["target"], "http");
    assert_eq!(keys(&deleted[1].data), sample_keys("linkdef_deleted"), "absent link");

    assert_ack(&request(&f.client, "config.del.cfg", Value::Null).await);
    assert_ack(&request(&f.client, "config.del.cfg", Value::Null).await);
    let deleted = f.events.wait("config_deleted", 2).await;
    assert_eq!(keys(&deleted[1].data), sample_keys("config_deleted"));
    assert!(f.sim.configs().is_empty());

    let claims = request(&f.client, "claims.get", Value::Null).await;
    assert_eq!(claims["response"], json!([]));

    let label = json!({"key": "zone", "value": "east"});
    assert_ack(&request(&f.client, &format!("label.put.{id}"), label).await);
    let changed = f.events.wait("labels_changed", 1).await;
    assert_eq!(changed[0].data["labels"]["zone"], "east");
    assert_eq!(changed[0].data["host_id"], id.as_str());
    assert_ack(&request(&f.client, &format!("label.del.{id}"), json!({"key": "zone"})).await);
    let changed = f.events.wait("labels_changed", 2).await;
    assert!(changed[1].data["labels"].get("zone").is_none());

    let stop = request(&f.client, &format!("host.stop.{id}"), json!({"host_id": id})).await;
    assert_ack(&stop);
    let stopped = f.events.wait("host_stopped", 1).await;
    assert_eq!(keys(&stopped[0].data), sample_keys("host_stopped"));
    assert!(f.sim.hosts().is_empty());
}
