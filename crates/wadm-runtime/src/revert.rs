//! Rollout safety, pure: which version of an application last became **stable**, when a rollout
//! **fails** (a host cannot start the new image, a provider of the new version fails its health
//! checks, or a host ordered the new image is not healthy within `healthy_deadline`) and, with
//! `auto_revert`, the decision to deploy the last stable version again.
//!
//! Why it works this way: `docs/runtime.md`, “Module notes”, `revert`.

use std::collections::BTreeMap;

use wadm_lattice::{LatticeState, NOT_CONFIRMED, Timestamp};
use wadm_model::{Status, StatusType};
use wadm_scheduler::{Command, Reconciler};

pub use crate::desired::{ACTOR, StoreAction};
use crate::intents::Intents;
use crate::record::{AppRecord, LatticeRecord};
pub use crate::safety::{Decision, Ordered, Policy, Safety};

/// How the status of a reverted deployment begins (`wadm app deploy --wait` of the version that
/// was reverted recognises it).
pub use wadm_model::status::REVERTED_PREFIX;

/// History notes for the placements of one step that replace work of a host that left
/// (allocation reason `host_lost`): one per application, naming what went where.
pub fn host_lost_notes(replaced: &[crate::decide::Replacement]) -> Vec<StoreAction> {
    let mut per_app: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in replaced {
        per_app.entry(r.app.as_str()).or_default().push(format!("{} on {}", r.id, r.host));
    }
    per_app
        .into_iter()
        .map(|(app, placed)| StoreAction::Note {
            app: app.to_string(),
            action: "host_lost".to_string(),
            reason: format!("a host left; re-placed {}", placed.join(", ")),
        })
        .collect()
}

/// History notes for rollouts that completed a batch since the last note: `rollout_batch` with
/// `batch K of N done (D/T hosts)`, once per batch and deployment (the last batch is the
/// `stable` entry), while a version that has not become stable replaces a stable one.
pub fn batch_notes(
    record: &mut LatticeRecord,
    rollouts: &BTreeMap<String, wadm_scheduler::RolloutProgress>,
) -> Vec<StoreAction> {
    let mut out = Vec::new();
    for (name, progress) in rollouts {
        let Some(app) = record.apps.get_mut(name) else { continue };
        let done = progress.batches_done();
        // A first deploy (nothing stable yet) replaces nothing: no batches to tell.
        if rolling_out(app).is_none()
            || done <= app.rollout_batches
            || progress.done >= progress.total
        {
            continue;
        }
        app.rollout_batches = done;
        out.push(StoreAction::Note {
            app: name.clone(),
            action: "rollout_batch".to_string(),
            reason: format!(
                "batch {done} of {} done ({}/{} hosts)",
                progress.batches(),
                progress.done,
                progress.total
            ),
        });
    }
    out
}

/// Whether `app` is rolling out a version that has not become stable, over a stable one.
fn rolling_out(app: &AppRecord) -> Option<(&str, &str)> {
    let deployed = app.deployed_version.as_deref()?;
    let stable = app.safety.stable.as_deref()?;
    (deployed != stable && app.safety.reverted.is_none()).then_some((deployed, stable))
}

/// Whether application `name` is rolling out a version that has not become stable (a provider
/// failing its health checks then fails the rollout).
pub fn rolling_out_app(record: &LatticeRecord, name: &str) -> bool {
    record.apps.get(name).is_some_and(|a| rolling_out(a).is_some() && a.safety.revert.is_none())
}

/// Note the rollout policy of every deployed version the reconciler was built from.
pub fn note_policies(record: &mut LatticeRecord, reconciler: &Reconciler) {
    for deployed in reconciler.desired().deployed {
        if let Some(app) = record.apps.get_mut(deployed.name())
            && app.deployed_version.as_deref() == Some(deployed.version.as_str())
        {
            app.safety.policy = Policy::of(&deployed.app);
        }
    }
}

/// A failure of `name`'s commands (`reason`: what failed, where). With `auto_revert`, during the
/// rollout of a version that has not become stable, and no revert decided yet in this
/// generation: the decision to deploy the stable version again.
pub fn on_failure(record: &mut LatticeRecord, name: &str, reason: &str) -> Option<StoreAction> {
    let app = record.apps.get_mut(name)?;
    if !app.safety.policy.auto_revert || app.safety.revert.is_some() {
        return None;
    }
    let (_, stable) = rolling_out(app)?;
    let to = stable.to_string();
    app.safety.revert = Some(Decision { to: to.clone(), reason: reason.to_string() });
    Some(StoreAction::Revert {
        app: name.to_string(),
        from_generation: app.store_generation,
        to,
        reason: reason.to_string(),
    })
}

/// The reverts decided and not yet seen done (the record still has the failed generation): to
/// be carried out again (idempotent) until the new generation is read.
pub fn pending(record: &LatticeRecord) -> Vec<StoreAction> {
    let decided = record.apps.iter().filter_map(|(name, app)| {
        let d = app.safety.revert.as_ref()?;
        app.deployed_version.as_ref()?;
        Some(StoreAction::Revert {
            app: name.clone(),
            from_generation: app.store_generation,
            to: d.to.clone(),
            reason: d.reason.clone(),
        })
    });
    decided.collect()
}

/// Follow the hosts ordered the new image (from the orders in flight) until they are healthy;
/// return the failures of those whose `healthy_deadline` ran out at `now`, as
/// `(application, reason)`.
pub fn track_deadlines(record: &mut LatticeRecord, now: Timestamp) -> Vec<(String, String)> {
    let LatticeRecord { apps, intents, state, .. } = record;
    let mut failed = Vec::new();
    for (name, app) in apps.iter_mut() {
        let Some(deadline) = app.safety.policy.healthy_deadline_ms else { continue };
        if rolling_out(app).is_none() || app.safety.revert.is_some() {
            app.safety.ordered.clear();
            continue;
        }
        note_orders(&mut app.safety.ordered, intents, name);
        let min_healthy = app.safety.policy.min_healthy_time_ms;
        app.safety
            .ordered
            .retain(|_, o| !healthy(state, o, min_healthy, now) && !given_up(state, intents, o));
        let late = app
            .safety
            .ordered
            .values_mut()
            .find(|o| !o.late && now >= o.at.saturating_add(deadline));
        if let Some(o) = late {
            o.late = true;
            let reason = format!(
                "{} not healthy within healthy_deadline {} on host {}",
                o.image,
                duration(deadline),
                o.host
            );
            failed.push((name.clone(), reason));
        }
    }
    failed
}

fn note_orders(ordered: &mut BTreeMap<String, Ordered>, intents: &Intents, app: &str) {
    for (_, intent) in intents.pending().filter(|(_, i)| i.app == app) {
        let (host, component, image) = match &intent.command {
            Command::UpdateComponent(r) => (&r.host_id, &r.component_id, &r.new_component_ref),
            Command::ScaleComponent(r) if r.count > 0 => {
                (&r.host_id, &r.component_id, &r.component_ref)
            }
            _ => continue,
        };
        let key = format!("{host}/{component}");
        let entry = ordered.entry(key).or_insert_with(|| Ordered {
            host: host.to_string(),
            component: component.to_string(),
            image: image.to_string(),
            at: intent.issued_at,
            late: false,
        });
        if *entry.image != **image {
            entry.image = image.to_string();
            entry.at = intent.issued_at;
            entry.late = false;
        }
    }
}

/// Whether the host has run the ordered image for `min_healthy` at `now`.
fn healthy(state: &LatticeState, o: &Ordered, min_healthy: u64, now: Timestamp) -> bool {
    let running = state.hosts.get(&o.host).and_then(|h| h.components.get(&o.component));
    running.is_some_and(|c| {
        c.image_ref == o.image
            && c.since != NOT_CONFIRMED
            && c.since.saturating_add(min_healthy) <= now
    })
}

/// Whether the order is over without the image running: no order in flight and the host runs
/// something else (a failure the host reported, counted as such), or the host is gone.
fn given_up(state: &LatticeState, intents: &Intents, o: &Ordered) -> bool {
    let Some(host) = state.hosts.get(&o.host) else { return true };
    let slot =
        crate::intents::Slot::Component { host: o.host.clone(), component: o.component.clone() };
    intents.get(&slot).is_none()
        && host.components.get(&o.component).is_none_or(|c| c.image_ref != o.image)
}

/// Note the orders in flight of applications with a `healthy_deadline` (those issued in this
/// step included), so their deadline is known and a timer wakes the lattice for it.
pub fn note_orders_in_flight(record: &mut LatticeRecord) {
    let LatticeRecord { apps, intents, .. } = record;
    for (name, app) in apps.iter_mut() {
        if app.safety.policy.healthy_deadline_ms.is_some()
            && rolling_out(app).is_some()
            && app.safety.revert.is_none()
        {
            note_orders(&mut app.safety.ordered, intents, name);
        }
    }
}

/// What a host's failure says, with where.
pub fn failure_reason(failure: &crate::decide::HostFailure) -> String {
    use crate::decide::HostFailure;
    match failure {
        HostFailure::Component { host, .. } | HostFailure::Provider { host, .. } => {
            format!("{} on host {host}", failure.message())
        }
        HostFailure::Link { .. } => failure.message().to_string(),
    }
}

use wadm_model::duration_text as duration;

/// After statuses are derived: a deployment whose status is `deployed` makes its version the
/// stable one ([`StoreAction::Stable`]) — unless, while it rolls out, a provider of the
/// application fails its health checks (status `unhealthy` then); a rollout that has not been recorded yet is
/// ([`StoreAction::RolloutStarted`]); a reverted or reverting deployment says so in its status.
pub fn on_statuses(
    record: &mut LatticeRecord,
    statuses: &mut [(String, Status)],
) -> Vec<StoreAction> {
    let mut actions = Vec::new();
    let LatticeRecord { apps, state, .. } = record;
    for (name, status) in statuses.iter_mut() {
        let Some(app) = apps.get_mut(name.as_str()) else { continue };
        let Some(deployed) = app.deployed_version.clone() else { continue };
        if let Some(d) = &app.safety.revert {
            status.status.status_type = StatusType::Failed;
            status.status.message =
                format!("reverting to {} from {deployed}: {}", d.to, d.reason).into();
            continue;
        }
        if let Some(r) = &app.safety.reverted {
            let mut message = format!("{REVERTED_PREFIX}{} from {}: {}", r.to, r.from, r.reason);
            if status.status.status_type != StatusType::Deployed
                && !status.status.message.is_empty()
            {
                message = format!("{message}; {}", status.status.message);
            }
            status.status.message = message.into();
            status.version = deployed.clone();
        }
        if app.safety.policy.rollout
            && !app.safety.noted
            && let Some((_, from)) = rolling_out(app)
        {
            let mut reason = format!("from {from}");
            app.safety.noted = true;
            let p = app.safety.policy;
            if p.auto_revert {
                reason.push_str(", auto_revert");
            }
            if let Some(d) = p.healthy_deadline_ms {
                reason.push_str(&format!(", healthy_deadline {}", duration(d)));
            }
            actions.push(StoreAction::RolloutStarted {
                app: name.clone(),
                generation: app.store_generation,
                reason,
            });
        }
        let failed = app.failure.is_some();
        if status.status.status_type == StatusType::Deployed
            && rolling_out(app).is_some()
            && let Some((provider, host)) = unhealthy_provider(state, name)
        {
            // Not stable while a provider of the new version fails its health checks.
            status.status.status_type = StatusType::Unhealthy;
            status.status.message =
                format!("provider {provider} fails its health checks on host {host}").into();
            continue;
        }
        if status.status.status_type == StatusType::Deployed
            && !failed
            && app.safety.stable.as_deref() != Some(deployed.as_str())
        {
            app.safety.stable = Some(deployed.clone());
            app.safety.ordered.clear();
            actions.push(StoreAction::Stable {
                app: name.clone(),
                version: deployed,
                generation: app.store_generation,
            });
        }
    }
    actions
}

/// A provider of application `app` whose last health check failed, with its host.
fn unhealthy_provider<'s>(state: &'s LatticeState, app: &str) -> Option<(&'s str, &'s str)> {
    state.hosts.values().find_map(|h| {
        let p = h.providers.values().find(|p| {
            p.health == wadm_lattice::ProviderHealth::Unhealthy
                && wadm_lattice::app_of(&p.annotations) == Some(app)
        })?;
        Some((p.id.as_str(), h.id.as_str()))
    })
}

/// A provider health check failure: the application of the provider (from what the host runs)
/// and the reason, when the provider is wadm's.
pub fn health_failure(
    state: &LatticeState,
    source: &str,
    event: &wadm_protocol::HostEvent,
) -> Option<(String, String)> {
    let wadm_protocol::HostEvent::HealthCheckFailed(check) = event else { return None };
    let host = if source.is_empty() { check.host_id.as_str() } else { source };
    let provider = state.hosts.get(host)?.providers.get(&check.provider_id)?;
    let app = wadm_lattice::app_of(&provider.annotations)?;
    let reason = format!(
        "provider {} ({}) failed its health check on host {host}",
        check.provider_id, provider.image_ref
    );
    Some((app.to_string(), reason))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::apply_deployment;
    use crate::desired::Deployment;

    fn deployed(generation: u64, version: &str) -> Deployment {
        Deployment {
            store_generation: generation,
            deployed_version: Some(version.into()),
            ..Deployment::default()
        }
    }

    fn rolling_out_v3(auto_revert: bool) -> LatticeRecord {
        let mut r = LatticeRecord::default();
        apply_deployment(&mut r, "a", Some(&deployed(1, "v2")));
        let app = r.apps.get_mut("a").unwrap();
        app.safety.stable = Some("v2".into());
        apply_deployment(&mut r, "a", Some(&deployed(2, "v3")));
        let policy = Policy { rollout: true, auto_revert, ..Policy::default() };
        r.apps.get_mut("a").unwrap().safety.policy = policy;
        r
    }

    #[test]
    fn a_failure_decides_one_revert_and_a_new_deploy_supersedes_it() {
        assert_eq!(on_failure(&mut rolling_out_v3(false), "a", "boom"), None);
        let mut r = rolling_out_v3(true);
        let revert = on_failure(&mut r, "a", "boom on host h");
        let expected = StoreAction::Revert {
            app: "a".into(),
            from_generation: 2,
            to: "v2".into(),
            reason: "boom on host h".into(),
        };
        assert_eq!(revert.as_ref(), Some(&expected));
        assert_eq!(on_failure(&mut r, "a", "again"), None, "decided once");
        assert_eq!(pending(&r), [expected], "carried out until the new generation shows");
        // A user deploy came first: the decision is gone, the stable version stays.
        apply_deployment(&mut r, "a", Some(&deployed(3, "v4")));
        assert!(pending(&r).is_empty());
        assert_eq!(r.apps["a"].safety.stable.as_deref(), Some("v2"));
        // The revert's own generation is not reverted again.
        let reverted = wadm_store::manifest::Reverted {
            generation: 4,
            from: "v4".into(),
            to: "v2".into(),
            reason: "x".into(),
        };
        let d = Deployment { reverted: Some(reverted), ..deployed(4, "v2") };
        apply_deployment(&mut r, "a", Some(&d));
        r.apps.get_mut("a").unwrap().safety.policy.auto_revert = true;
        assert_eq!(on_failure(&mut r, "a", "boom"), None);
        // Nothing stable yet (a first deploy): nothing to go back to.
        let mut first = LatticeRecord::default();
        apply_deployment(&mut first, "b", Some(&deployed(1, "v1")));
        first.apps.get_mut("b").unwrap().safety.policy.auto_revert = true;
        assert_eq!(on_failure(&mut first, "b", "boom"), None);
    }

    #[test]
    fn an_unhealthy_provider_keeps_a_rollout_from_becoming_stable() {
        let mut r = rolling_out_v3(false);
        let provider = wadm_lattice::ProviderInstance {
            id: "kv".into(),
            image_ref: "kv:2".into(),
            annotations: [("wasmcloud.dev/appspec".to_string(), "a".to_string())].into(),
            health: wadm_lattice::ProviderHealth::Unhealthy,
            since: 0,
        };
        let mut host = wadm_lattice::HostState { id: "h".into(), ..Default::default() };
        host.providers.insert("kv".into(), provider);
        r.state.hosts.insert("h".into(), host);
        let mut statuses = vec![("a".to_string(), Status::new(StatusType::Deployed, ""))];
        let actions = on_statuses(&mut r, &mut statuses);
        assert!(!actions.iter().any(|a| matches!(a, StoreAction::Stable { .. })), "{actions:?}");
        assert_eq!(statuses[0].1.status.status_type, StatusType::Unhealthy);
        assert!(statuses[0].1.status.message.contains("provider kv"), "{statuses:?}");
        assert_eq!(r.apps["a"].safety.stable.as_deref(), Some("v2"));
    }

    #[test]
    fn a_deployed_status_makes_the_version_stable_once_and_a_revert_says_so() {
        let mut r = rolling_out_v3(true);
        let mut statuses = vec![("a".to_string(), Status::new(StatusType::Deployed, ""))];
        let actions = on_statuses(&mut r, &mut statuses);
        assert!(
            matches!(&actions[..], [
            StoreAction::RolloutStarted { generation: 2, .. },
            StoreAction::Stable { version, generation: 2, .. },
        ] if version == "v3"),
            "{actions:?}"
        );
        assert!(on_statuses(&mut r, &mut statuses).is_empty());
        let reverted = wadm_store::manifest::Reverted {
            generation: 3,
            from: "v4".into(),
            to: "v3".into(),
            reason: "boom on host h".into(),
        };
        let d = Deployment { reverted: Some(reverted), ..deployed(3, "v3") };
        apply_deployment(&mut r, "a", Some(&d));
        let mut statuses =
            vec![("a".to_string(), Status::new(StatusType::Reconciling, "1/2 instances running"))];
        on_statuses(&mut r, &mut statuses);
        let s = &statuses[0].1;
        assert_eq!(
            &*s.status.message,
            "reverted to v3 from v4: boom on host h; 1/2 instances running"
        );
        assert_eq!(s.version, "v3");
    }
}
