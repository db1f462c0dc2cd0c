//! The event reducer: how one host event changes the observed state.
//!
//! [`apply`] is idempotent (a duplicate delivery changes nothing) and tolerant of reordering: every
//! fact carries the [`EventStamp`] of the event that established it, an event older than what is
//! already known is skipped, and a host that stopped (or was declared lost) leaves a tombstone so a
//! late event cannot resurrect it. Heartbeats and `host_started` are full snapshots of a host;
//! everything else changes one entity. Links, configs and the `component.update` quirk:
//! `docs/runtime.md`, "Module notes", `reducer`.

use std::collections::BTreeSet;

use wadm_protocol::{HostEvent, Link, LinkKey};

use crate::bookkeeping::{EventStamp, HostEntity, Mark, RemovalReason, Tombstone};
use crate::changes::{Change, Changes, Marked, Outcome};
use crate::context::EventContext;
use crate::snapshot::{Snapshot, apply_snapshot, ensure_host, note_started};
use crate::state::{
    ComponentInstance, ConfigState, LatticeState, ProviderHealth, ProviderInstance, StopReport,
    Timestamp,
};

/// Apply one host event observed at `now` (wadm's clock) and report what changed.
pub fn apply(
    state: &mut LatticeState,
    ctx: &EventContext,
    event: &HostEvent,
    now: Timestamp,
) -> Changes {
    let stamp = ctx.stamp(now);
    let changes = match event {
        HostEvent::Unknown(_) => {
            state.bookkeeping.unknown_events += 1;
            return Changes::with_outcome(Outcome::Unknown);
        }
        HostEvent::LinkSet(link) => link_set(state, link, &stamp, now),
        HostEvent::LinkDeleted(deleted) => {
            let key = LinkKey {
                source_id: deleted.source_id.clone(),
                wit_namespace: deleted.wit_namespace.clone(),
                wit_package: deleted.wit_package.clone(),
                name: deleted.name.clone(),
            };
            link_deleted(state, key, &stamp, now)
        }
        HostEvent::ConfigSet(config) => config_event(state, &config.config_name, true, &stamp, now),
        HostEvent::ConfigDeleted(config) => {
            config_event(state, &config.config_name, false, &stamp, now)
        }
        HostEvent::LinkSetFailed(failed) => {
            let mut changes = Changes::default();
            touch_apps_of_ids(state, &[&failed.link.source_id, &failed.link.target], &mut changes);
            changes
        }
        _ => return host_event(state, ctx, event, stamp, now),
    };
    if changes.outcome == Outcome::Stale {
        state.bookkeeping.stale_events += 1;
    } else if let Some(host) = state.hosts.get_mut(&ctx.source) {
        // Any event a host sourced shows it alive.
        host.last_seen = host.last_seen.max(now);
    }
    changes
}

/// The host an event is about: the CloudEvent `source`, else the payload's `host_id`.
fn host_of<'a>(ctx: &'a EventContext, event: &'a HostEvent) -> &'a str {
    if !ctx.source.is_empty() {
        return &ctx.source;
    }
    match event {
        HostEvent::HostHeartbeat(inv) => &inv.host_id,
        HostEvent::ComponentScaled(c) | HostEvent::ComponentScaleFailed(c) => &c.host_id,
        HostEvent::ProviderStarted(p) => &p.host_id,
        HostEvent::ProviderStartFailed(p) => &p.host_id,
        HostEvent::ProviderStopped(p) => &p.host_id,
        HostEvent::HealthCheckPassed(h)
        | HostEvent::HealthCheckFailed(h)
        | HostEvent::HealthCheckStatus(h) => &h.host_id,
        HostEvent::LabelsChanged(l) => &l.host_id,
        _ => "",
    }
}

fn stale(state: &mut LatticeState) -> Changes {
    state.bookkeeping.stale_events += 1;
    Changes::with_outcome(Outcome::Stale)
}

fn host_event(
    state: &mut LatticeState,
    ctx: &EventContext,
    event: &HostEvent,
    stamp: EventStamp,
    now: Timestamp,
) -> Changes {
    let host_id = host_of(ctx, event).to_string();
    if host_id.is_empty() {
        return Changes::with_outcome(Outcome::Unattributed);
    }
    if let Some(tomb) = state.bookkeeping.tombstones.get(&host_id) {
        let newer = tomb.as_of.as_ref().is_none_or(|as_of| stamp > *as_of);
        let is_stale = match tomb.reason {
            // Only a full snapshot stamped after the stop proves a stopped host alive (a real
            // host sends none after `host_stopped`; a spoofed `host_stopped` must not hide a
            // live host for good). Its late component or provider events stay stale.
            RemovalReason::Stopped => {
                !(newer && matches!(event, HostEvent::HostHeartbeat(_) | HostEvent::HostStarted(_)))
            }
            RemovalReason::Lost => !newer,
        };
        if is_stale {
            return stale(state);
        }
        // A newer event from a host that was removed: it is alive after all.
        state.bookkeeping.tombstones.remove(&host_id);
    }
    let mut changes = Changes::default();
    match event {
        HostEvent::HostStopped(_) => {
            // Evidence, not truth: a known host's stop is reported and the host asked; it is
            // removed when it falls silent (or nothing contradicts it in time, see `lease`).
            match state.hosts.get_mut(&host_id) {
                Some(host) if host.stop_reported.is_none() => {
                    host.stop_reported = Some(StopReport { at: now, stamp });
                    changes.push(Change::HostUpdated { host: host_id.clone() });
                    changes.needs_verification.insert(host_id);
                }
                Some(_) => {}
                None => remove_host(
                    state,
                    &host_id,
                    RemovalReason::Stopped,
                    Some(stamp),
                    now,
                    &mut changes,
                ),
            }
            return changes;
        }
        HostEvent::HostStarted(s) => {
            let snap = Snapshot::started(&s.friendly_name, &s.labels, &s.version)
                .up_since(stamp.time, s.uptime_seconds);
            return snapshot_event(state, &host_id, snap, stamp, now);
        }
        HostEvent::HostHeartbeat(inv) => {
            let snap = Snapshot::from_inventory(inv).up_since(stamp.time, inv.uptime_seconds);
            return snapshot_event(state, &host_id, snap, stamp, now);
        }
        _ => {}
    }

    let (entity, creates_host) = match event {
        HostEvent::ComponentScaled(c) => {
            (Some(HostEntity::Component(c.component_id.clone())), true)
        }
        HostEvent::ProviderStarted(p) => (Some(HostEntity::Provider(p.provider_id.clone())), true),
        HostEvent::ProviderStopped(p) => (Some(HostEntity::Provider(p.provider_id.clone())), true),
        HostEvent::LabelsChanged(_) => (Some(HostEntity::Labels), true),
        _ => (None, false),
    };
    if let Some(clock) = state.bookkeeping.hosts.get(&host_id) {
        let newer_snapshot = clock.snapshot.as_ref().is_some_and(|s| *s >= stamp);
        let newer_mark =
            entity.as_ref().and_then(|e| clock.entities.get(e)).is_some_and(|m| m.stamp >= stamp);
        if newer_snapshot || newer_mark {
            return stale(state);
        }
    }
    if !creates_host && !state.hosts.contains_key(&host_id) {
        // Nothing to record about a host wadm does not know; its inventory will tell.
        changes.needs_inventory.insert(host_id);
        return changes;
    }
    if !state.hosts.contains_key(&host_id) {
        changes.needs_inventory.insert(host_id.clone());
    }
    if let Some(entity) = entity {
        let mark = Mark { stamp, applied_at: now };
        changes.mark_host_entity(&host_id, entity.clone());
        state.bookkeeping.hosts.entry(host_id.clone()).or_default().entities.insert(entity, mark);
    }
    let host = ensure_host(state, &host_id, now, &mut changes);
    host.last_seen = host.last_seen.max(now);
    let host_key = host_id.clone();
    match event {
        HostEvent::ComponentScaled(c) => {
            let old = host.components.get(&c.component_id).cloned();
            if c.max_instances == 0 {
                if let Some(old) = &old {
                    changes.touch_app(&old.annotations);
                    changes.touch_app(&c.annotations);
                    host.components.remove(&c.component_id);
                    let component = c.component_id.clone();
                    changes.push(Change::ComponentRemoved { host: host_key.clone(), component });
                    // A `component.update` ends with a spurious scale to 0: confirm with the host.
                    changes.needs_inventory.insert(host_key);
                }
            } else {
                let mut new = ComponentInstance {
                    id: c.component_id.clone(),
                    image_ref: c.image_ref.clone(),
                    count: c.max_instances,
                    annotations: c.annotations.clone(),
                    since: 0,
                };
                new.since = new.since_after(old.as_ref(), now);
                if old.as_ref() != Some(&new) {
                    if let Some(old) = &old {
                        changes.touch_app(&old.annotations);
                    }
                    changes.touch_app(&new.annotations);
                    host.components.insert(c.component_id.clone(), new);
                    let component = c.component_id.clone();
                    changes.push(Change::ComponentSet { host: host_key, component });
                }
            }
        }
        HostEvent::ComponentScaleFailed(c) => changes.touch_app(&c.annotations),
        HostEvent::ProviderStarted(p) => {
            let old = host.providers.get(&p.provider_id);
            let mut new = ProviderInstance {
                id: p.provider_id.clone(),
                image_ref: wadm_protocol::normalize_provider_ref(&p.image_ref).to_string(),
                annotations: p.annotations.clone(),
                health: old.map_or(ProviderHealth::Pending, |o| o.health),
                since: 0,
            };
            new.since = new.since_after(old, now);
            if old != Some(&new) {
                if let Some(old) = old {
                    changes.touch_app(&old.annotations);
                }
                changes.touch_app(&new.annotations);
                host.providers.insert(p.provider_id.clone(), new);
                let provider = p.provider_id.clone();
                changes.push(Change::ProviderSet { host: host_key, provider });
            }
        }
        HostEvent::ProviderStopped(p) => {
            if let Some(old) = host.providers.remove(&p.provider_id) {
                changes.touch_app(&old.annotations);
                changes.touch_app(&p.annotations);
                let provider = p.provider_id.clone();
                changes.push(Change::ProviderRemoved { host: host_key, provider });
            }
        }
        HostEvent::HealthCheckPassed(h) | HostEvent::HealthCheckFailed(h) => {
            let health = if matches!(event, HostEvent::HealthCheckPassed(_)) {
                ProviderHealth::Healthy
            } else {
                ProviderHealth::Unhealthy
            };
            if let Some(provider) = host.providers.get_mut(&h.provider_id)
                && provider.health != health
            {
                provider.health = health;
                changes.touch_app(&provider.annotations);
                let provider = h.provider_id.clone();
                changes.push(Change::ProviderSet { host: host_key, provider });
            }
        }
        HostEvent::LabelsChanged(l) if host.labels != l.labels => {
            host.labels = l.labels.clone();
            changes.push(Change::HostLabelsChanged { host: host_key });
        }
        // Start failures, unchanged health: nothing to record beyond liveness.
        _ => {}
    }
    changes
}

fn snapshot_event(
    state: &mut LatticeState,
    host_id: &str,
    snap: Snapshot,
    stamp: EventStamp,
    now: Timestamp,
) -> Changes {
    let clock = state.bookkeeping.hosts.entry(host_id.to_string()).or_default();
    if clock.snapshot.as_ref().is_some_and(|s| *s >= stamp) {
        // Older than what is known, except as evidence of when the host started.
        let mut changes = stale(state);
        if let Some(started_at) = snap.started_at {
            note_started(state, host_id, started_at, &mut changes);
        }
        return changes;
    }
    let mut changes = Changes::default();
    // Marks the snapshot supersedes are dropped (stores rewrite those entities without them).
    for (entity, _) in clock.entities.iter().filter(|(_, m)| m.stamp <= stamp) {
        changes.mark_host_entity(host_id, entity.clone());
    }
    let kept: BTreeSet<HostEntity> =
        clock.entities.iter().filter(|(_, m)| m.stamp > stamp).map(|(e, _)| e.clone()).collect();
    clock.entities.retain(|_, m| m.stamp > stamp);
    clock.snapshot = Some(stamp.clone());
    clock.snapshot_at = clock.snapshot_at.max(now);
    if let Some(host) = state.hosts.get_mut(host_id)
        && host.stop_reported.as_ref().is_some_and(|r| r.stamp < stamp)
    {
        // A full snapshot after its reported stop: the host is alive (the stop was spoofed).
        host.stop_reported = None;
        changes.push(Change::HostUpdated { host: host_id.to_string() });
    }
    apply_snapshot(state, host_id, snap, &kept, now, &mut changes);
    changes
}

/// Remove a host and everything on it, leaving a tombstone.
pub(crate) fn remove_host(
    state: &mut LatticeState,
    host_id: &str,
    reason: RemovalReason,
    stamp: Option<EventStamp>,
    now: Timestamp,
    changes: &mut Changes,
) {
    let clock = state.bookkeeping.hosts.remove(host_id);
    let newest = clock.as_ref().and_then(|c| c.newest().cloned());
    for entity in clock.iter().flat_map(|c| c.entities.keys()) {
        changes.mark_host_entity(host_id, entity.clone());
    }
    let as_of = stamp.into_iter().chain(newest).max();
    let host = state.hosts.remove(host_id);
    let last_seen = host.as_ref().map_or(0, |h| h.last_seen);
    let tombstone = Tombstone { reason, as_of, removed_at: now, last_seen };
    state.bookkeeping.tombstones.insert(host_id.to_string(), tombstone);
    let Some(host) = host else { return };
    for (component, instance) in host.components {
        changes.touch_app(&instance.annotations);
        changes.push(Change::ComponentRemoved { host: host_id.to_string(), component });
    }
    for (provider, instance) in host.providers {
        changes.touch_app(&instance.annotations);
        changes.push(Change::ProviderRemoved { host: host_id.to_string(), provider });
    }
    changes.push(Change::HostRemoved { host: host_id.to_string(), reason });
}

/// Apps of every component or provider (on any host) whose id is one of `ids`.
pub(crate) fn touch_apps_of_ids(state: &LatticeState, ids: &[&str], changes: &mut Changes) {
    for host in state.hosts.values() {
        for id in ids {
            if let Some(c) = host.components.get(*id) {
                changes.touch_app(&c.annotations);
            }
            if let Some(p) = host.providers.get(*id) {
                changes.touch_app(&p.annotations);
            }
        }
    }
}

fn is_newer(mark: Option<&Mark>, stamp: &EventStamp) -> bool {
    mark.is_none_or(|m| m.stamp < *stamp)
}

/// Mark link `key` as established by `stamp` and start the changes of its event; `None` when
/// the event is stale (one as new is already known).
fn mark_link(
    state: &mut LatticeState,
    key: &LinkKey,
    stamp: &EventStamp,
    now: Timestamp,
) -> Option<Changes> {
    if !is_newer(state.bookkeeping.links.get(key), stamp) {
        return None;
    }
    let mark = Mark { stamp: stamp.clone(), applied_at: now };
    state.bookkeeping.links.insert(key.clone(), mark);
    let mut changes = Changes::default();
    changes.marked.insert(Marked::Link { link: key.clone() });
    Some(changes)
}

fn link_set(state: &mut LatticeState, link: &Link, stamp: &EventStamp, now: Timestamp) -> Changes {
    let key = link.key();
    let Some(mut changes) = mark_link(state, &key, stamp, now) else {
        return Changes::with_outcome(Outcome::Stale);
    };
    if state.links.get(&key) != Some(link) {
        let mut ids = vec![link.source_id.as_str(), link.target.as_str()];
        let old_target = state.links.get(&key).map(|old| old.target.clone());
        if let Some(old_target) = &old_target {
            ids.push(old_target);
        }
        touch_apps_of_ids(state, &ids, &mut changes);
        state.links.insert(key.clone(), link.clone());
        changes.push(Change::LinkSet { link: key });
    }
    changes
}

fn link_deleted(
    state: &mut LatticeState,
    key: LinkKey,
    stamp: &EventStamp,
    now: Timestamp,
) -> Changes {
    let Some(mut changes) = mark_link(state, &key, stamp, now) else {
        return Changes::with_outcome(Outcome::Stale);
    };
    if let Some(old) = state.links.remove(&key) {
        touch_apps_of_ids(state, &[&old.source_id, &old.target], &mut changes);
        changes.push(Change::LinkRemoved { link: key });
    }
    changes
}

fn config_event(
    state: &mut LatticeState,
    name: &str,
    set: bool,
    stamp: &EventStamp,
    now: Timestamp,
) -> Changes {
    if !is_newer(state.bookkeeping.configs.get(name), stamp) {
        return Changes::with_outcome(Outcome::Stale);
    }
    let mark = Mark { stamp: stamp.clone(), applied_at: now };
    state.bookkeeping.configs.insert(name.to_string(), mark);
    let mut changes = Changes::default();
    changes.marked.insert(Marked::Config { name: name.to_string() });
    if set {
        // The event says the values changed, not to what: what was known of them no longer
        // holds (unknown until the observer reads them again), and the change is reported even
        // when the name was known.
        let config = ConfigState { name: name.to_string(), values: None };
        state.configs.insert(name.to_string(), config);
        changes.push(Change::ConfigSet { name: name.to_string() });
    } else if state.configs.remove(name).is_some() {
        changes.push(Change::ConfigRemoved { name: name.to_string() });
    }
    changes
}
