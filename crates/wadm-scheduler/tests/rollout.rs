//! Rollouts: an image change under a `rollout` policy, run step by step against hosts that
//! confirm orders late or in any order. After **every** step: at most `max_parallel` hosts are
//! changing (ordered and not confirmed, or confirmed less than `min_healthy_time` ago), nothing
//! that runs is stopped (the floor: the running count never drops), and before promotion no more
//! hosts run the new image than the canary allows. Once promoted and hosts keep confirming,
//! every host runs the new image and the app is `deployed`.

mod common;

use common::*;
use proptest::prelude::*;
use wadm_lattice::{LatticeState, NOT_CONFIRMED, Timestamp};
use wadm_model::{Instances, Rollout, StatusType};
use wadm_scheduler::{Command, DeployedApp, Reconciler};

const OLD: &str = "ghcr.io/x/web:1";
const NEW: &str = "ghcr.io/x/web:2";

/// A rollout of `max_parallel` hosts at once, each done after `min_healthy_time_ms`, with an
/// optional canary stage (no deadline, no revert).
fn policy(max_parallel: u32, min_healthy_time_ms: u64, canary: Option<u32>) -> Rollout {
    Rollout {
        max_parallel,
        min_healthy_time_ms,
        canary,
        healthy_deadline_ms: None,
        auto_revert: false,
        max_unavailable: None,
    }
}

fn web(image: &str, instances: u32, rollout: Option<Rollout>) -> DeployedApp {
    let mut c = component("web", image, vec![spreadscaler(instances, vec![])]);
    c.rollout = rollout;
    deployed(app("demo", vec![c]), 1)
}

/// The hosts changing at `now` under `policy`: running the new image, not yet healthy.
fn changing(state: &LatticeState, policy: Rollout, now: Timestamp) -> usize {
    let instances = state.hosts.values().flat_map(|h| h.components.values());
    instances
        .filter(|c| c.image_ref == NEW)
        .filter(|c| {
            c.since == NOT_CONFIRMED
                || (c.since != 0 && now < c.since.saturating_add(policy.min_healthy_time_ms))
        })
        .count()
}

fn running(state: &LatticeState) -> u32 {
    state.hosts.values().flat_map(|h| h.components.values()).map(|c| c.count).sum()
}

/// Apply a plan as hosts would accept it, an update or start showing as not confirmed yet.
fn send(state: &mut LatticeState, commands: &[Command]) {
    for command in commands {
        wadm_scheduler::apply::apply_command(state, command);
        let (host, id) = match command {
            Command::UpdateComponent(r) => (&r.host_id, &r.component_id),
            Command::ScaleComponent(r) if r.count > 0 => (&r.host_id, &r.component_id),
            _ => continue,
        };
        if let Some(c) = state.hosts.get_mut(&**host).and_then(|h| h.components.get_mut(&**id)) {
            c.since = NOT_CONFIRMED;
        }
    }
}

/// A starting lattice of `hosts` hosts, each running one instance of the old image, long ago.
fn converged_on_old(hosts: usize) -> LatticeState {
    let mut state = lattice((0..hosts).map(|i| host(&format!("h{i}"), &[])).collect());
    let v1 = web(OLD, hosts as u32, None);
    let reconciler = Reconciler::new("default", vec![v1], vec![]);
    for _ in 0..3 {
        let plan = reconciler.reconcile(&state, 0);
        wadm_scheduler::apply::apply_plan(&mut state, &plan);
    }
    assert_eq!(running(&state), hosts as u32);
    state
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn at_most_max_parallel_hosts_change_at_once_and_nothing_running_stops(
        hosts in 1usize..10,
        max_parallel in 1u32..4,
        min_healthy_ms in prop_oneof![Just(0u64), 1u64..5_000],
        canary in prop::option::of(1u32..4),
        // Per step: which unconfirmed hosts confirm (bit i: the i-th of them), and the time that passes.
        steps in prop::collection::vec((any::<u16>(), 0u64..3_000), 1..40),
    ) {
        let policy = policy(max_parallel, min_healthy_ms, canary);
        let mut state = converged_on_old(hosts);
        let v2 = web(NEW, hosts as u32, Some(policy));
        let held = Reconciler::new("default", vec![v2.clone()], vec![]);
        let promoted = Reconciler::new("default", vec![DeployedApp { promoted: true, ..v2 }], vec![]);
        let mut now: Timestamp = 1_000_000;
        let floor = running(&state);
        let drive = |reconciler: &Reconciler, state: &mut LatticeState, now: Timestamp, confirm: u16| -> Result<(), TestCaseError> {
            let plan = reconciler.reconcile(state, now);
            for c in &plan.commands {
                let stops = matches!(&c.command, Command::ScaleComponent(r) if r.count == 0);
                prop_assert!(!stops, "a rollout stops nothing: {:?}", c.command);
            }
            let commands: Vec<Command> = plan.commands.iter().map(|c| c.command.clone()).collect();
            send(state, &commands);
            prop_assert!(
                changing(state, policy, now) <= max_parallel as usize,
                "{} hosts changing, max_parallel {max_parallel}", changing(state, policy, now)
            );
            prop_assert!(running(state) >= floor, "running {} < {floor}", running(state));
            // Some hosts confirm what they were told (at wadm's clock now).
            let mut unconfirmed: Vec<_> = state
                .hosts
                .values_mut()
                .flat_map(|h| h.components.values_mut())
                .filter(|c| c.since == NOT_CONFIRMED)
                .collect();
            for (i, c) in unconfirmed.iter_mut().enumerate() {
                if confirm & (1 << (i % 16)) != 0 {
                    c.since = now;
                }
            }
            Ok(())
        };
        let on_new = |state: &LatticeState| {
            state.hosts.values().flat_map(|h| h.components.values()).filter(|c| c.image_ref == NEW).count()
        };
        for (confirm, dt) in steps {
            drive(&held, &mut state, now, confirm)?;
            if let Some(canary) = canary {
                prop_assert!(on_new(&state) <= canary as usize, "{} hosts past a canary of {canary}", on_new(&state));
            }
            now += dt;
        }
        // Then it is promoted, every host confirms at once and time passes: the rollout completes.
        for _ in 0..(hosts + 2) {
            drive(&promoted, &mut state, now, u16::MAX)?;
            now += min_healthy_ms + 1;
        }
        let plan = promoted.reconcile(&state, now);
        prop_assert!(plan.commands.is_empty(), "{:?}", plan.commands);
        prop_assert_eq!(plan.statuses["demo"].status.status_type, StatusType::Deployed);
        prop_assert_eq!(on_new(&state), hosts);
        prop_assert!(plan.wakes.is_empty());
    }
}

#[test]
fn batches_follow_placement_order_and_wait_for_min_healthy_time() {
    let policy = policy(2, 1_000, None);
    let mut state = converged_on_old(5);
    let v2 = web(NEW, 5, Some(policy));
    let reconciler = Reconciler::new("default", vec![v2], vec![]);
    let updates = |plan: &wadm_scheduler::Plan| -> Vec<String> {
        plan.commands
            .iter()
            .filter_map(|c| match &c.command {
                Command::UpdateComponent(r) => Some(r.host_id.to_string()),
                _ => None,
            })
            .collect()
    };
    // Batch 1: two hosts.
    let first = reconciler.reconcile(&state, 10_000);
    assert_eq!(updates(&first).len(), 2, "{:?}", first.commands);
    let message = &first.statuses["demo"].scalers[0].status.message;
    assert!(message.starts_with("rolling out ghcr.io/x/web:2: 0/5 hosts done"), "{message}");
    // The counts are instances, not hosts: the three hosts kept on the old image still run what
    // is wanted of them for now; the two being changed do not yet.
    let counts = first.statuses["demo"].scalers[0].status.instances;
    assert_eq!(counts, Some(Instances::new(3, 5)));
    assert_eq!(first.statuses["demo"].status.instances, counts);
    let commands: Vec<Command> = first.commands.iter().map(|c| c.command.clone()).collect();
    send(&mut state, &commands);
    // Unconfirmed: nothing more.
    assert!(updates(&reconciler.reconcile(&state, 10_500)).is_empty());
    // Confirmed at 11,000: still nothing until 12,000, and the plan asks to be woken then.
    for c in state.hosts.values_mut().flat_map(|h| h.components.values_mut()) {
        if c.since == NOT_CONFIRMED {
            c.since = 11_000;
        }
    }
    let waiting = reconciler.reconcile(&state, 11_500);
    assert!(updates(&waiting).is_empty());
    assert_eq!(waiting.wakes.get("demo"), Some(&12_000));
    assert_eq!(waiting.statuses["demo"].status.status_type, StatusType::Reconciling);
    // At 12,000 the next two go.
    let second = reconciler.reconcile(&state, 12_000);
    let batch = updates(&second);
    assert_eq!(batch.len(), 2);
    assert!(batch.iter().all(|h| !updates(&first).contains(h)), "other hosts: {batch:?}");
}

#[test]
fn a_canary_stops_after_its_hosts_until_promoted() {
    let policy = policy(2, 0, Some(1));
    let mut state = converged_on_old(4);
    let updates = |plan: &wadm_scheduler::Plan| {
        plan.commands.iter().filter(|c| matches!(c.command, Command::UpdateComponent(_))).count()
    };
    let v2 = web(NEW, 4, Some(policy));
    let held = Reconciler::new("default", vec![v2.clone()], vec![]);
    let first = held.reconcile(&state, 10_000);
    assert_eq!(updates(&first), 1, "the canary host only: {:?}", first.commands);
    let commands: Vec<Command> = first.commands.iter().map(|c| c.command.clone()).collect();
    send(&mut state, &commands);
    for c in state.hosts.values_mut().flat_map(|h| h.components.values_mut()) {
        if c.since == NOT_CONFIRMED {
            c.since = 10_100;
        }
    }
    // Confirmed and healthy: still nothing more, and the status says what it waits for.
    let waiting = held.reconcile(&state, 60_000);
    assert_eq!(updates(&waiting), 0);
    let message = &waiting.statuses["demo"].scalers[0].status.message;
    assert!(message.starts_with("canary: 1 of 4 hosts run ghcr.io/x/web:2"), "{message}");
    assert!(message.contains("wadm app promote"), "{message}");
    assert_eq!(waiting.statuses["demo"].status.status_type, StatusType::Reconciling);
    // Promoted: the rest, max_parallel at a time.
    let promoted = Reconciler::new("default", vec![DeployedApp { promoted: true, ..v2 }], vec![]);
    assert_eq!(updates(&promoted.reconcile(&state, 60_000)), 2);
}

// ---- providers ----

const P_OLD: &str = "ghcr.io/x/kv:1";
const P_NEW: &str = "ghcr.io/x/kv:2";

fn kv(image: &str, hosts: usize, rollout: Option<Rollout>) -> DeployedApp {
    let mut c = provider("kv", image, vec![daemonscaler(1, vec![])]);
    c.rollout = rollout;
    let _ = hosts;
    deployed(app("store", vec![c]), 1)
}

/// Apply a plan as the runtime and hosts would: a start on a host the same plan stops a provider
/// on waits for the stop to show (the runtime admits one order per host and provider), so it is
/// left for a later plan; a provider started shows as not confirmed yet.
fn send_providers(state: &mut LatticeState, commands: &[Command]) {
    let stopped: Vec<String> = commands
        .iter()
        .filter_map(|c| match c {
            Command::StopProvider(r) => Some(r.host_id.to_string()),
            _ => None,
        })
        .collect();
    for command in commands {
        if let Command::StartProvider(r) = command
            && stopped.iter().any(|h| **h == *r.host_id)
        {
            continue;
        }
        wadm_scheduler::apply::apply_command(state, command);
        if let Command::StartProvider(r) = command
            && let Some(p) =
                state.hosts.get_mut(&*r.host_id).and_then(|h| h.providers.get_mut(&*r.provider_id))
        {
            p.since = NOT_CONFIRMED;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A provider's image change under a rollout: after every step, the hosts without the old
    /// provider or a healthy new one (stopped, starting, or run less than `min_healthy_time`) are
    /// at most `max_parallel`; a host reporting the new one unhealthy holds the rollout; at the
    /// end every host runs the new image.
    #[test]
    fn a_provider_rollout_changes_at_most_max_parallel_hosts_at_once(
        hosts in 1usize..8,
        max_parallel in 1u32..4,
        min_healthy_ms in prop_oneof![Just(0u64), 1u64..5_000],
        steps in prop::collection::vec((any::<u16>(), 0u64..3_000), 1..40),
    ) {
        let policy = policy(max_parallel, min_healthy_ms, None);
        let mut state = lattice((0..hosts).map(|i| host(&format!("h{i}"), &[])).collect());
        let v1 = Reconciler::new("default", vec![kv(P_OLD, hosts, None)], vec![]);
        for _ in 0..3 {
            let plan = v1.reconcile(&state, 0);
            wadm_scheduler::apply::apply_plan(&mut state, &plan);
        }
        let v2 = Reconciler::new("default", vec![kv(P_NEW, hosts, Some(policy))], vec![]);
        let not_serving = |state: &LatticeState, now: Timestamp| {
            state.hosts.values().filter(|h| match h.providers.get("store-kv") {
                None => true,
                Some(p) if p.image_ref == P_OLD => false,
                Some(p) => p.since == NOT_CONFIRMED
                    || (p.since != 0 && now < p.since.saturating_add(min_healthy_ms)),
            }).count()
        };
        let mut now: Timestamp = 1_000_000;
        let drive = |state: &mut LatticeState, now: Timestamp, confirm: u16| -> Result<(), TestCaseError> {
            let plan = v2.reconcile(state, now);
            let commands: Vec<Command> = plan.commands.iter().map(|c| c.command.clone()).collect();
            send_providers(state, &commands);
            prop_assert!(
                not_serving(state, now) <= max_parallel as usize,
                "{} hosts changing, max_parallel {max_parallel}: {:?}", not_serving(state, now), plan.commands
            );
            let mut unconfirmed: Vec<_> = state.hosts.values_mut()
                .flat_map(|h| h.providers.values_mut())
                .filter(|p| p.since == NOT_CONFIRMED)
                .collect();
            for (i, p) in unconfirmed.iter_mut().enumerate() {
                if confirm & (1 << (i % 16)) != 0 {
                    p.since = now;
                }
            }
            Ok(())
        };
        for (confirm, dt) in steps {
            drive(&mut state, now, confirm)?;
            now += dt;
        }
        // (A replacement takes two plans: the stop, then the start.)
        for _ in 0..(2 * hosts + 4) {
            drive(&mut state, now, u16::MAX)?;
            now += min_healthy_ms + 1;
        }
        let plan = v2.reconcile(&state, now);
        prop_assert!(plan.commands.is_empty(), "{:?}", plan.commands);
        prop_assert_eq!(plan.statuses["store"].status.status_type, StatusType::Deployed);
        let on_new = state.hosts.values().filter(|h| h.providers.get("store-kv").is_some_and(|p| p.image_ref == P_NEW)).count();
        prop_assert_eq!(on_new, hosts);
    }
}

#[test]
fn an_unhealthy_new_provider_holds_the_rollout() {
    let policy = policy(1, 0, None);
    let mut state = lattice((0..3).map(|i| host(&format!("h{i}"), &[])).collect());
    let v1 = Reconciler::new("default", vec![kv(P_OLD, 3, None)], vec![]);
    for _ in 0..3 {
        let plan = v1.reconcile(&state, 0);
        wadm_scheduler::apply::apply_plan(&mut state, &plan);
    }
    let v2 = Reconciler::new("default", vec![kv(P_NEW, 3, Some(policy))], vec![]);
    let plan = v2.reconcile(&state, 1_000);
    let starts = |plan: &wadm_scheduler::Plan| {
        plan.commands.iter().filter(|c| matches!(c.command, Command::StartProvider(_))).count()
    };
    assert_eq!(starts(&plan), 1, "{:?}", plan.commands);
    wadm_scheduler::apply::apply_plan(&mut state, &plan);
    // The new one reports unhealthy: nothing more changes.
    for p in state.hosts.values_mut().flat_map(|h| h.providers.values_mut()) {
        if p.image_ref == P_NEW {
            p.since = 1_000;
            p.health = wadm_lattice::ProviderHealth::Unhealthy;
        }
    }
    let held = v2.reconcile(&state, 2_000);
    assert_eq!(starts(&held), 0, "{:?}", held.commands);
    let message = &held.statuses["store"].scalers[0].status.message;
    assert!(message.contains("1 changing (at most 1 at once), 2 waiting"), "{message}");
}

#[test]
fn a_provider_rollout_replaces_in_place_rather_than_moving() {
    let policy = policy(1, 0, None);
    let spread = |image: &str, rollout| {
        let mut c = provider("kv", image, vec![spreadscaler(2, vec![])]);
        c.rollout = rollout;
        deployed(app("store", vec![c]), 1)
    };
    let mut state = lattice((0..4).map(|i| host(&format!("h{i}"), &[])).collect());
    let v1 = Reconciler::new("default", vec![spread(P_OLD, None)], vec![]);
    for _ in 0..3 {
        let plan = v1.reconcile(&state, 0);
        wadm_scheduler::apply::apply_plan(&mut state, &plan);
    }
    let old_hosts: Vec<String> = state
        .hosts
        .values()
        .filter(|h| h.providers.contains_key("store-kv"))
        .map(|h| h.id.clone())
        .collect();
    assert_eq!(old_hosts.len(), 2);
    let v2 = Reconciler::new("default", vec![spread(P_NEW, Some(policy))], vec![]);
    let plan = v2.reconcile(&state, 1_000);
    let hosts_of = |pred: fn(&Command) -> bool| -> Vec<String> {
        plan.commands
            .iter()
            .filter(|c| pred(&c.command))
            .filter_map(|c| c.command.target_host().map(str::to_string))
            .collect()
    };
    let starts = hosts_of(|c| matches!(c, Command::StartProvider(_)));
    let stops = hosts_of(|c| matches!(c, Command::StopProvider(_)));
    assert_eq!(starts.len(), 1, "{:?}", plan.commands);
    assert_eq!(starts, stops, "replaced where it ran: {:?}", plan.commands);
    assert!(old_hosts.contains(&starts[0]), "{starts:?} not on {old_hosts:?}");
}

#[test]
fn max_unavailable_caps_how_many_providers_are_replaced_at_once() {
    let policy = Rollout { max_unavailable: Some(1), ..policy(3, 0, None) };
    let mut state = lattice((0..4).map(|i| host(&format!("h{i}"), &[])).collect());
    let v1 = Reconciler::new("default", vec![kv(P_OLD, 4, None)], vec![]);
    for _ in 0..3 {
        let plan = v1.reconcile(&state, 0);
        wadm_scheduler::apply::apply_plan(&mut state, &plan);
    }
    let v2 = Reconciler::new("default", vec![kv(P_NEW, 4, Some(policy))], vec![]);
    let plan = v2.reconcile(&state, 1_000);
    let stops =
        plan.commands.iter().filter(|c| matches!(c.command, Command::StopProvider(_))).count();
    assert_eq!(stops, 1, "{:?}", plan.commands);
    // Without it, max_parallel decides.
    let v2 = Reconciler::new(
        "default",
        vec![kv(P_NEW, 4, Some(Rollout { max_unavailable: None, ..policy }))],
        vec![],
    );
    let plan = v2.reconcile(&state, 1_000);
    let stops =
        plan.commands.iter().filter(|c| matches!(c.command, Command::StopProvider(_))).count();
    assert_eq!(stops, 3, "{:?}", plan.commands);
}
