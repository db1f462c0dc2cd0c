//! Rollout safety in the pure step (`step::apply` + `step::decide` with a real reconciler): v2
//! runs on every host and is stable; v3 rolls out under a random policy while hosts confirm the
//! new image, fail to start it, or say nothing, and time passes. After **every** step:
//! - at most `max_parallel` hosts are changing (running the wanted image, not yet healthy);
//! - nothing that runs is stopped (the running count never drops below the start);
//! - a revert is decided exactly at the first step where a host failed or a host ordered the
//!   new image is not healthy within `healthy_deadline` — and only with `auto_revert` — once;
//! - after the decision, v3 is not ordered anywhere again.
//!
//! The decided revert is then carried out as the store would (a new generation deploying v2,
//! marked reverted): every host ends on v2, the status says `reverted to v2 from v3: …`; without
//! a failure the rollout completes and v3 becomes the stable version.

use std::collections::BTreeMap;

use proptest::prelude::*;
use wadm_lattice::{EventContext, LatticeState, NOT_CONFIRMED, Timestamp};
use wadm_model::{Application, Format, Limits, StatusType};
use wadm_protocol::HostEvent;
use wadm_protocol::event::ComponentScaled;
use wadm_runtime::decide::{Affected, apply_deployment};
use wadm_runtime::desired::Deployment;
use wadm_runtime::revert::StoreAction;
use wadm_runtime::step::{self, Event, Fetched, Input};
use wadm_runtime::{LatticeRecord, RuntimeConfig};
use wadm_scheduler::{Command, DeployedApp, Reconciler};

const OLD: &str = "ghcr.io/x/web:2";
const NEW: &str = "ghcr.io/x/web:3";
const ID: &str = "demo-web";

#[derive(Debug, Clone, Copy)]
struct Policy {
    max_parallel: u32,
    min_healthy_ms: u64,
    deadline_ms: Option<u64>,
    auto_revert: bool,
}

fn manifest(version: &str, image: &str, hosts: usize, p: Policy) -> Application {
    let mut rollout = format!(
        "max_parallel: {}\n            min_healthy_time: {}ms\n            auto_revert: {}",
        p.max_parallel, p.min_healthy_ms, p.auto_revert
    );
    if let Some(d) = p.deadline_ms {
        rollout.push_str(&format!("\n            healthy_deadline: {d}ms"));
    }
    let yaml = format!(
        r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: demo
  annotations:
    version: {version}
spec:
  components:
    - name: web
      type: component
      properties:
        image: {image}
      traits:
        - type: spreadscaler
          properties:
            instances: {hosts}
        - type: rollout
          properties:
            {rollout}
"#
    );
    wadm_model::parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default())
        .expect("valid manifest")
        .app
}

fn reconciler(app: Application, version: &str, generation: u64) -> Reconciler {
    let deployed = DeployedApp {
        lattice: "default".into(),
        app,
        version: version.into(),
        generation,
        promoted: false,
    };
    Reconciler::new("default", vec![deployed], vec![])
}

fn deployment(generation: u64, version: &str) -> Deployment {
    Deployment {
        store_generation: generation,
        deployed_version: Some(version.into()),
        ..Deployment::default()
    }
}

/// `hosts` hosts each running v2 (long ago), the app deployed at v2 and stable.
fn converged_on_v2(hosts: usize, p: Policy) -> LatticeRecord {
    let mut record = LatticeRecord::default();
    record.state.lattice = "default".into();
    for i in 0..hosts {
        let id = format!("h{i}");
        let host = wadm_lattice::HostState { id: id.clone(), last_seen: 1, ..Default::default() };
        record.state.hosts.insert(id, host);
    }
    let v2 = reconciler(manifest("v2", OLD, hosts, p), "v2", 2);
    for _ in 0..3 {
        let plan = v2.reconcile(&record.state, 0);
        wadm_scheduler::apply::apply_plan(&mut record.state, &plan);
    }
    for h in record.state.hosts.values_mut() {
        for c in h.components.values_mut() {
            c.since = 0;
        }
    }
    apply_deployment(&mut record, "demo", Some(&deployment(1, "v2")));
    record.apps.get_mut("demo").unwrap().safety.stable = Some("v2".into());
    record
}

fn running(state: &LatticeState) -> u32 {
    state.hosts.values().flat_map(|h| h.components.values()).map(|c| c.count).sum()
}

/// Hosts running `image` (orders in flight included) that are not healthy at `now`.
fn changing(record: &LatticeRecord, image: &str, min_healthy: u64, now: Timestamp) -> usize {
    let projected = record.intents.project(&record.state);
    let instances = projected.hosts.values().flat_map(|h| h.components.values());
    instances
        .filter(|c| c.image_ref == image)
        .filter(|c| {
            c.since == NOT_CONFIRMED || (c.since != 0 && now < c.since.saturating_add(min_healthy))
        })
        .count()
}

/// The host's answer to an update: the new image runs (`ok`) or it failed to start.
fn answer(record: &LatticeRecord, host: &str, image: &str, ok: bool, n: u64) -> Event {
    let known = &record.state.hosts[host].components[ID];
    let c = ComponentScaled {
        component_id: ID.into(),
        host_id: host.into(),
        image_ref: image.into(),
        max_instances: known.count,
        annotations: known.annotations.clone(),
        error: (!ok).then(|| format!("{image} fails to start")),
        ..ComponentScaled::default()
    };
    let event = if ok { HostEvent::ComponentScaled(c) } else { HostEvent::ComponentScaleFailed(c) };
    let ctx = EventContext { source: host.into(), id: format!("e{n}"), time: Some(n) };
    Event { input: Input::Host { ctx, event }, sequence: n, delivered: 1, stored_at: None }
}

/// The updates to `image` in flight, by host.
fn updates_in_flight(record: &LatticeRecord, image: &str) -> Vec<String> {
    let updates = record.intents.pending().filter_map(|(_, i)| match &i.command {
        Command::UpdateComponent(r) if *r.new_component_ref == *image => {
            Some(r.host_id.to_string())
        }
        _ => None,
    });
    updates.collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn a_revert_is_decided_exactly_when_a_rollout_with_auto_revert_fails(
        hosts in 1usize..8,
        max_parallel in 1u32..4,
        min_healthy_ms in prop_oneof![Just(0u64), 1u64..3_000],
        deadline_extra in prop::option::of(0u64..6_000),
        auto_revert in any::<bool>(),
        // Per step: per host in flight (bit i), whether it answers, whether that answer is a
        // failure, and the time that passes.
        steps in prop::collection::vec((any::<u8>(), any::<u8>(), 1u64..2_500), 1..30),
    ) {
        let p = Policy {
            max_parallel,
            min_healthy_ms,
            deadline_ms: deadline_extra.map(|x| min_healthy_ms.max(1) + x),
            auto_revert,
        };
        let config = RuntimeConfig::default();
        let mut record = converged_on_v2(hosts, p);
        let floor = running(&record.state);
        apply_deployment(&mut record, "demo", Some(&deployment(2, "v3")));
        let mut current = reconciler(manifest("v3", NEW, hosts, p), "v3", 4);
        let mut target = NEW;
        let mut now: Timestamp = 1_000_000;
        let mut n = 1;
        // The oracle: when each host was first ordered v3, when it confirmed it, any failure.
        let mut ordered: BTreeMap<String, Timestamp> = BTreeMap::new();
        let mut confirmed: BTreeMap<String, Timestamp> = BTreeMap::new();
        let mut failed = false;
        let mut decided_at: Option<usize> = None;
        let mut events: Vec<Event> = Vec::new();
        for (i, (answers, failures, dt)) in steps.iter().copied().enumerate() {
            let mut applied = step::apply(&mut record, &events, &Fetched::default(), now, false, 7, &config);
            // Every step reconciles the app (as after a timer or tick).
            applied.affected = Affected::all();
            let decided = step::decide(&mut record, &mut applied, Some(&current), now, 7, &config);
            // The oracle's verdict for this step.
            let late = p.deadline_ms.is_some_and(|d| {
                ordered.iter().any(|(h, at)| {
                    let healthy = confirmed.get(h).is_some_and(|c| c + min_healthy_ms <= now);
                    now >= at + d && !healthy
                })
            });
            let reverts: Vec<&StoreAction> =
                decided.store_actions.iter().filter(|a| matches!(a, StoreAction::Revert { .. })).collect();
            let decision = record.apps["demo"].safety.revert.clone();
            if target == NEW {
                let should = auto_revert && (failed || late);
                match decided_at {
                    None if should => {
                        prop_assert!(decision.is_some(), "step {i}: failed {failed}, late {late}: no revert");
                        prop_assert_eq!(reverts.len(), 1);
                        decided_at = Some(i);
                    }
                    None => {
                        prop_assert!(decision.is_none(), "step {i}: a revert not called for (auto_revert {auto_revert}, failed {failed}, late {late}): {decision:?}");
                        prop_assert!(reverts.is_empty());
                    }
                    Some(_) => prop_assert!(decision.is_some(), "the decision stays"),
                }
            }
            if let Some(StoreAction::Revert { to, from_generation, reason, .. }) = reverts.first().copied() {
                prop_assert_eq!(to.as_str(), "v2");
                prop_assert_eq!(*from_generation, 2);
                if target == NEW {
                    // Carried out as the store does: generation 3 deploys v2, marked reverted.
                    let reverted = wadm_store::manifest::Reverted {
                        generation: 3,
                        from: "v3".into(),
                        to: "v2".into(),
                        reason: reason.clone(),
                    };
                    let d = Deployment { reverted: Some(reverted), ..deployment(3, "v2") };
                    apply_deployment(&mut record, "demo", Some(&d));
                    current = reconciler(manifest("v2", OLD, hosts, p), "v2", 6);
                    target = OLD;
                }
            }
            if decided_at.is_some() {
                let v3_sent = decided.commands.iter().any(|c| c.body.contains(NEW));
                prop_assert!(!v3_sent, "v3 ordered after the revert decision");
            }
            prop_assert!(
                changing(&record, target, min_healthy_ms, now) <= max_parallel as usize,
                "{} hosts changing, max_parallel {max_parallel}",
                changing(&record, target, min_healthy_ms, now)
            );
            prop_assert!(running(&record.state) >= floor, "running {} < {floor}", running(&record.state));
            // Orders of v3 issued now; some hosts answer before the next step.
            for host in updates_in_flight(&record, NEW) {
                ordered.entry(host).or_insert(now);
            }
            now += dt;
            events.clear();
            for (b, host) in updates_in_flight(&record, target).into_iter().enumerate() {
                if answers & (1 << (b % 8)) == 0 {
                    continue;
                }
                let ok = target == OLD || failures & (1 << (b % 8)) == 0;
                n += 1;
                events.push(answer(&record, &host, target, ok, n));
                if target == NEW {
                    if ok {
                        confirmed.insert(host, now);
                    } else {
                        failed = true;
                    }
                }
            }
        }
        if !auto_revert {
            prop_assert!(decided_at.is_none());
            return Ok(());
        }
        // To the end: every host answers yes, time passes.
        let mut last = None;
        for _ in 0..(2 * hosts + 4) {
            let mut applied = step::apply(&mut record, &events, &Fetched::default(), now, false, 7, &config);
            // Every step reconciles the app (as after a timer or tick).
            applied.affected = Affected::all();
            let decided = step::decide(&mut record, &mut applied, Some(&current), now, 7, &config);
            prop_assert!(
                changing(&record, target, min_healthy_ms, now) <= max_parallel as usize
            );
            if decided.store_actions.iter().any(|a| matches!(a, StoreAction::Revert { .. })) && target == NEW {
                // Decided only now (a deadline reached in these steps): carried out as above.
                let reverted = wadm_store::manifest::Reverted {
                    generation: 3, from: "v3".into(), to: "v2".into(), reason: "late".into(),
                };
                let d = Deployment { reverted: Some(reverted), ..deployment(3, "v2") };
                apply_deployment(&mut record, "demo", Some(&d));
                current = reconciler(manifest("v2", OLD, hosts, p), "v2", 6);
                target = OLD;
            }
            last = decided.statuses.iter().find(|(a, _)| a == "demo").map(|(_, s)| s.clone()).or(last);
            now += min_healthy_ms + 1_000;
            events.clear();
            // Every order in flight is answered, a late v3 one too (the host got it).
            for image in [NEW, OLD] {
                for host in updates_in_flight(&record, image) {
                    n += 1;
                    events.push(answer(&record, &host, image, true, n));
                }
            }
        }
        let images: Vec<&str> = record
            .state
            .hosts
            .values()
            .flat_map(|h| h.components.values())
            .map(|c| c.image_ref.as_str())
            .collect();
        prop_assert!(images.iter().all(|i| *i == target), "{images:?} (target {target})");
        prop_assert_eq!(images.len(), hosts);
        let status = last.expect("a status");
        prop_assert_eq!(status.status.status_type, StatusType::Deployed, "{:?}", status);
        if target == OLD {
            prop_assert!(status.status.message.starts_with("reverted to v2 from v3: "), "{:?}", status);
            prop_assert_eq!(record.apps["demo"].safety.stable.as_deref(), Some("v2"));
        } else {
            prop_assert_eq!(record.apps["demo"].safety.stable.as_deref(), Some("v3"));
        }
    }
}
