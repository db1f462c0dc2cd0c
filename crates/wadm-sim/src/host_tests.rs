//! Unit tests of the host state machine: the quirks of a real 1.9.2 host, without NATS.

use serde_json::json;

use crate::faults::FaultSwitches;
use crate::host::HostState;
use crate::outcome::Outcome;
use crate::store::LatticeStore;

fn host() -> HostState {
    HostState::new("NHOST".into(), "calm-river-0001".into(), Default::default())
}

fn body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn scale(h: &mut HostState, r: &str, count: u32, ann: serde_json::Value) -> Outcome {
    let b = body(json!({"component_ref": r, "component_id": "c", "count": count,
        "host_id": "NHOST", "annotations": ann}));
    h.scale(&b, &LatticeStore::default(), &FaultSwitches::default())
}

fn shorts(o: &Outcome) -> Vec<&str> {
    o.events.iter().map(|e| e.short).collect()
}

#[test]
fn first_start_reports_twice_then_once() {
    let mut h = host();
    let o = scale(&mut h, "r:1", 2, json!({"a": "1"}));
    assert_eq!(shorts(&o), ["component_scaled", "component_scaled"]);
    assert_eq!(o.events[0].data["max_instances"], 2);
    let o = scale(&mut h, "r:1", 2, json!({}));
    assert_eq!(shorts(&o), ["component_scaled"]);
    assert!(h.components["c"].annotations.is_empty(), "annotations are replaced");
}

#[test]
fn misspelt_count_stops_and_zero_for_absent_still_reports() {
    let mut h = host();
    scale(&mut h, "r:1", 3, json!({}));
    let b = body(json!({"component_ref": "r:1", "component_id": "c", "max_instances": 3,
        "host_id": "NHOST"}));
    let o = h.scale(&b, &LatticeStore::default(), &FaultSwitches::default());
    assert!(o.reply.unwrap().success);
    assert!(h.components.is_empty());
    let o = scale(&mut h, "r:1", 0, json!({}));
    assert_eq!(o.events[0].data["max_instances"], 0);
}

#[test]
fn other_ref_without_update_keeps_the_image_and_warns() {
    let mut h = host();
    scale(&mut h, "r:1", 1, json!({}));
    let o = scale(&mut h, "r:2", 4, json!({}));
    let reply = o.reply.unwrap();
    assert!(reply.success && !reply.message.is_empty());
    assert_eq!(h.components["c"].image_ref, "r:1");
    assert_eq!(h.components["c"].count, 4);
}

#[test]
fn update_emits_a_spurious_zero() {
    let mut h = host();
    scale(&mut h, "r:1", 2, json!({}));
    let b = body(json!({"component_id": "c", "new_component_ref": "r:2", "host_id": "NHOST"}));
    let o = h.update(&b, &FaultSwitches::default());
    assert_eq!(shorts(&o), ["component_scaled", "component_scaled"]);
    assert_eq!(o.events[0].data["max_instances"], 2);
    assert_eq!(o.events[1].data["max_instances"], 0);
    assert_eq!(o.events[1].data["image_ref"], "r:2");
    assert_eq!(h.components["c"].count, 2);
}

#[test]
fn providers_normalise_refuse_duplicates_and_missing_stops() {
    let mut h = host();
    let f = FaultSwitches::default();
    let s = LatticeStore::default();
    let b =
        body(json!({"provider_id": "p", "provider_ref": "file:///x.par.gz", "host_id": "NHOST"}));
    let o = h.start_provider(&b, &s, &f);
    assert_eq!(shorts(&o), ["provider_started", "health_check_passed"]);
    assert_eq!(o.events[0].data["image_ref"], "/x.par.gz");
    assert!(!h.start_provider(&b, &s, &f).reply.unwrap().success);
    let stop = body(json!({"provider_id": "p", "host_id": "NHOST"}));
    assert_eq!(shorts(&h.stop_provider(&stop)), ["provider_stopped"]);
    assert!(!h.stop_provider(&stop).reply.unwrap().success);
}

#[test]
fn faults_turn_accepted_work_into_failure_events() {
    let mut h = host();
    let f = FaultSwitches::default();
    f.set_reject_scales(true);
    f.set_reject_provider_starts(true);
    let b = body(json!({"component_ref": "r", "component_id": "c", "count": 1, "host_id": "N"}));
    let o = h.scale(&b, &LatticeStore::default(), &f);
    assert!(o.reply.as_ref().unwrap().success);
    assert_eq!(shorts(&o), ["component_scale_failed"]);
    let b = body(json!({"provider_id": "p", "provider_ref": "x", "host_id": "N"}));
    let o = h.start_provider(&b, &LatticeStore::default(), &f);
    assert_eq!(shorts(&o), ["provider_start_failed"]);
    assert!(h.components.is_empty() && h.providers.is_empty());
}

#[test]
fn bad_bodies_are_refused_not_panics() {
    let mut h = host();
    let s = LatticeStore::default();
    let f = FaultSwitches::default();
    for o in [
        h.scale(b"{", &s, &f),
        h.update(b"[]", &FaultSwitches::default()),
        h.start_provider(b"null", &s, &f),
        h.put_label(b"{}"),
        h.component_auction(b"x"),
    ] {
        let r = o.reply.unwrap();
        assert!(!r.success && r.message.contains("deserialize"), "{}", r.message);
    }
}

#[test]
fn auctions_answer_only_when_labels_match() {
    let mut h = host();
    h.put_label(&body(json!({"key": "zone", "value": "east"})));
    let want = |z: &str| {
        body(json!({"component_ref": "r", "component_id": "c",
        "constraints": {"zone": z}}))
    };
    let ack = h.component_auction(&want("east")).reply.unwrap();
    assert_eq!(ack.response.unwrap()["host_id"], "NHOST");
    assert!(h.component_auction(&want("west")).reply.is_none());
    assert!(
        !h.put_label(&body(json!({"key": "hostcore.os", "value": "x"}))).reply.unwrap().success
    );
}

#[test]
fn event_host_id_is_copied_from_the_request() {
    let mut h = host();
    let b = body(json!({"component_ref": "r", "component_id": "c", "count": 1,
        "host_id": "NSOMEONE_ELSE"}));
    let o = h.scale(&b, &LatticeStore::default(), &FaultSwitches::default());
    assert!(o.events.iter().all(|e| e.data["host_id"] == "NSOMEONE_ELSE"));
    let b = body(json!({"provider_id": "p", "provider_ref": "x"}));
    let o = h.start_provider(&b, &LatticeStore::default(), &FaultSwitches::default());
    assert_eq!(o.events[0].data["host_id"], "", "absent host_id stays empty");
}

#[test]
fn the_lattice_handle_can_be_shared_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<crate::SimLattice>();
    send_sync::<crate::FaultSwitches>();
}

#[test]
fn a_failing_image_is_accepted_then_fails_and_the_old_one_keeps_running() {
    let mut h = host();
    let faults = FaultSwitches::default();
    faults.set_fail_images(["r:bad".to_string()]);
    scale(&mut h, "r:1", 2, json!({}));
    let b = body(json!({"component_id": "c", "new_component_ref": "r:bad", "host_id": "NHOST"}));
    let o = h.update(&b, &faults);
    assert!(o.reply.as_ref().unwrap().success);
    assert_eq!(shorts(&o), ["component_scale_failed"]);
    assert!(o.events[0].data["error"].as_str().unwrap().contains("r:bad fails to start"));
    assert_eq!(h.components["c"].image_ref, "r:1");
    let s = LatticeStore::default();
    let scale_bad = body(json!({"component_ref": "r:bad", "component_id": "d", "count": 1,
        "host_id": "NHOST"}));
    let o = h.scale(&scale_bad, &s, &faults);
    assert_eq!(shorts(&o), ["component_scale_failed"]);
    assert!(!h.components.contains_key("d"));
}

#[test]
fn an_unhealthy_provider_image_starts_then_fails_its_health_check() {
    let mut h = host();
    let faults = FaultSwitches::default();
    faults.set_unhealthy_images(["ghcr.io/x/kv:2".to_string()]);
    let s = LatticeStore::default();
    let start = |id: &str, image: &str| {
        body(json!({"provider_id": id, "provider_ref": image, "host_id": "NHOST"}))
    };
    let o = h.start_provider(&start("good", "ghcr.io/x/kv:1"), &s, &faults);
    assert_eq!(shorts(&o), ["provider_started", "health_check_passed"]);
    let o = h.start_provider(&start("bad", "ghcr.io/x/kv:2"), &s, &faults);
    assert_eq!(shorts(&o), ["provider_started", "health_check_failed"]);
    assert_eq!(o.events[1].data["provider_id"], "bad");
    assert!(h.providers.contains_key("bad"), "it keeps running, unhealthy");
}
