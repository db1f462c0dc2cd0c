//! Property tests of the host state machine: whatever sequence of scales and updates arrives,
//! the inventory follows the documented 1.9.2 rules and every accepted command is reported.
//! Sequences are generated from fixed seeds (this I/O crate does not take proptest on; a failure
//! prints the seed and the sequence).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::faults::FaultSwitches;
use crate::host::HostState;
use crate::store::LatticeStore;

#[derive(Debug, Clone)]
enum Op {
    Scale { image: u8, count: u32, allow_update: bool, note: u8 },
    Update { image: u8 },
}

fn op(rng: &mut StdRng) -> Op {
    if rng.random_bool(0.7) {
        Op::Scale {
            image: rng.random_range(0..2),
            count: rng.random_range(0..4),
            allow_update: rng.random(),
            note: rng.random_range(0..3),
        }
    } else {
        Op::Update { image: rng.random_range(0..2) }
    }
}

fn image(i: u8) -> String {
    format!("ghcr.io/x/c:{i}")
}

#[test]
fn scales_and_updates_follow_the_host_rules() {
    for seed in 0..500u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let len = rng.random_range(1..25);
        let ops: Vec<Op> = (0..len).map(|_| op(&mut rng)).collect();
        let run = std::panic::catch_unwind(|| check(ops.clone()));
        assert!(run.is_ok(), "seed {seed} failed with {ops:#?}");
    }
}

fn check(ops: Vec<Op>) {
    let mut host = HostState::new("NHOST".into(), "h".into(), Default::default());
    let (store, faults) = (LatticeStore::default(), FaultSwitches::default());
    // The model: (image, count) of component `c`, if running.
    let mut model: Option<(String, u32)> = None;
    for op in ops {
        match op {
            Op::Scale { image: i, count, allow_update, note } => {
                let body = json!({"component_ref": image(i), "component_id": "c",
                        "count": count, "host_id": "NHOST", "allow_update": allow_update,
                        "annotations": {"note": note.to_string()}});
                let out = host.scale(&serde_json::to_vec(&body).unwrap(), &store, &faults);
                assert!(out.reply.as_ref().unwrap().success);
                let first_start = model.is_none() && count > 0;
                assert_eq!(out.events.len(), if first_start { 2 } else { 1 });
                assert!(out.events.iter().all(|e| e.short == "component_scaled"));
                assert_eq!(&out.events[0].data["max_instances"], &json!(count));
                model = match (model.take(), count) {
                    (_, 0) => None,
                    (Some((old, _)), n) if old != image(i) && !allow_update => Some((old, n)),
                    (_, n) => Some((image(i), n)),
                };
                if let Some(c) = host.components.get("c") {
                    assert_eq!(c.annotations.get("note"), Some(&note.to_string()));
                }
            }
            Op::Update { image: i } => {
                let body = json!({"component_id": "c", "new_component_ref": image(i),
                        "host_id": "NHOST"});
                let out =
                    host.update(&serde_json::to_vec(&body).unwrap(), &FaultSwitches::default());
                let reply = out.reply.as_ref().unwrap();
                match &mut model {
                    None => assert!(!reply.success),
                    Some((current, _)) if *current == image(i) => {
                        assert!(reply.success && out.events.is_empty());
                    }
                    Some((current, _)) => {
                        assert_eq!(out.events.len(), 2);
                        assert_eq!(&out.events[1].data["max_instances"], &json!(0));
                        *current = image(i);
                    }
                }
            }
        }
        let actual = host.components.get("c").map(|c| (c.image_ref.clone(), c.count));
        assert_eq!(&actual, &model);
        let inv = host.inventory(std::time::Duration::ZERO);
        assert_eq!(inv.components.len(), usize::from(model.is_some()));
    }
}
