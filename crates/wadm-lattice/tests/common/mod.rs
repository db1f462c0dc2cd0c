//! Builders for host events used by the reducer tests.
#![allow(dead_code)]

use wadm_lattice::{Changes, EventContext, LatticeState, Timestamp};
use wadm_protocol::event::{
    ComponentScaled, ConfigEvent, HealthCheck, HostStarted, HostStopped, LabelsChanged,
    LinkDeleted, ProviderStarted, ProviderStopped,
};
use wadm_protocol::{ComponentDescription, HostEvent, HostInventory, Link, StringMap};

pub const H1: &str = "NHOSTONE";
pub const H2: &str = "NHOSTTWO";

pub fn ctx(source: &str, id: &str, time: Timestamp) -> EventContext {
    EventContext { source: source.to_string(), id: id.to_string(), time: Some(time) }
}

pub fn map(pairs: &[(&str, &str)]) -> StringMap {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn app(name: &str) -> StringMap {
    map(&[("wasmcloud.dev/appspec", name), ("wasmcloud.dev/managed-by", "wadm")])
}

pub fn started(labels: &[(&str, &str)]) -> HostEvent {
    HostEvent::HostStarted(HostStarted {
        friendly_name: "friendly".into(),
        labels: map(labels),
        uptime_seconds: 0,
        version: "1.9.2".into(),
    })
}

pub fn stopped() -> HostEvent {
    HostEvent::HostStopped(HostStopped::default())
}

pub fn scaled(component: &str, image: &str, count: u32, app_name: &str) -> HostEvent {
    HostEvent::ComponentScaled(ComponentScaled {
        component_id: component.into(),
        image_ref: image.into(),
        max_instances: count,
        annotations: app(app_name),
        ..ComponentScaled::default()
    })
}

pub fn provider_started(provider: &str, image: &str, app_name: &str) -> HostEvent {
    HostEvent::ProviderStarted(ProviderStarted {
        provider_id: provider.into(),
        image_ref: image.into(),
        annotations: app(app_name),
        ..ProviderStarted::default()
    })
}

pub fn provider_stopped(provider: &str) -> HostEvent {
    HostEvent::ProviderStopped(ProviderStopped {
        provider_id: provider.into(),
        ..ProviderStopped::default()
    })
}

pub fn health_passed(provider: &str) -> HostEvent {
    HostEvent::HealthCheckPassed(HealthCheck {
        provider_id: provider.into(),
        host_id: String::new(),
    })
}

pub fn labels(pairs: &[(&str, &str)]) -> HostEvent {
    HostEvent::LabelsChanged(LabelsChanged { host_id: String::new(), labels: map(pairs) })
}

pub fn heartbeat(host: &str, labels: &[(&str, &str)], comps: &[(&str, &str, u32)]) -> HostEvent {
    HostEvent::HostHeartbeat(inventory(host, labels, comps))
}

pub fn inventory(
    host: &str,
    labels: &[(&str, &str)],
    comps: &[(&str, &str, u32)],
) -> HostInventory {
    HostInventory {
        host_id: host.into(),
        friendly_name: "friendly".into(),
        labels: map(labels),
        version: "1.9.2".into(),
        components: comps
            .iter()
            .map(|(id, image, count)| ComponentDescription {
                id: id.to_string(),
                image_ref: image.to_string(),
                name: None,
                annotations: app("demo"),
                revision: 0,
                max_instances: *count,
                limits: None,
            })
            .collect(),
        ..HostInventory::default()
    }
}

pub fn link(source: &str, target: &str) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["incoming-handler".into()],
        source_config: vec![],
        target_config: vec![],
    }
}

pub fn link_deleted(source: &str) -> HostEvent {
    HostEvent::LinkDeleted(LinkDeleted {
        source_id: source.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        target: None,
        interfaces: None,
    })
}

pub fn config_set(name: &str) -> HostEvent {
    HostEvent::ConfigSet(ConfigEvent { config_name: name.into() })
}

pub fn config_deleted(name: &str) -> HostEvent {
    HostEvent::ConfigDeleted(ConfigEvent { config_name: name.into() })
}

/// Apply one event as the runtime does for hosts that really stopped: a reported stop is
/// confirmed at once (the host, asked, falls silent). Tests of the report itself call
/// `wadm_lattice::apply`.
pub fn apply(
    state: &mut LatticeState,
    ctx: &EventContext,
    event: &HostEvent,
    now: Timestamp,
) -> Changes {
    let mut changes = wadm_lattice::apply(state, ctx, event, now);
    for host in std::mem::take(&mut changes.needs_verification) {
        changes.merge(wadm_lattice::confirm_stop(state, &host, now));
    }
    changes
}
