//! Builders for applications and lattices used by the scheduler tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use wadm_lattice::{ComponentInstance, HostState, LatticeState, ProviderInstance};
use wadm_model::names::{component_id, owned_config_name};
use wadm_model::{
    Application, Component, ComponentKind, ConfigRef, Link, Scaler, ScalerSpec, Source, Spread,
};
use wadm_scheduler::apply::apply_plan;
use wadm_scheduler::{DeployedApp, Desired, Plan, reconcile_with};

pub const LATTICE: &str = "default";

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

pub fn app(name: &str, components: Vec<Component>) -> Application {
    let mut components = components;
    for c in &mut components {
        if !c.explicit_id {
            c.id = component_id(name, &c.name);
        }
        for cfg in c.config.iter_mut().chain(
            c.links
                .iter_mut()
                .flat_map(|l| l.source_config.iter_mut().chain(l.target_config.iter_mut())),
        ) {
            if cfg.properties.is_some() {
                cfg.lattice_name = owned_config_name(name, &cfg.name);
            }
        }
    }
    Application {
        name: name.to_string(),
        version: Some("v1".into()),
        description: None,
        shared: false,
        annotations: BTreeMap::new(),
        labels: BTreeMap::new(),
        components,
        policies: vec![],
    }
}

pub fn spread(name: &str, req: &[(&str, &str)], weight: u32) -> Spread {
    Spread { name: name.into(), requirements: map(req), weight }
}

pub fn spreadscaler(instances: u32, spreads: Vec<Spread>) -> Scaler {
    let spreads = if spreads.is_empty() { vec![spread("default", &[], 100)] } else { spreads };
    Scaler::Spread(ScalerSpec::new(instances, spreads))
}

pub fn daemonscaler(instances: u32, spreads: Vec<Spread>) -> Scaler {
    let spreads = if spreads.is_empty() { vec![spread("default", &[], 100)] } else { spreads };
    Scaler::Daemon(ScalerSpec::new(instances, spreads))
}

pub fn component(name: &str, image: &str, scalers: Vec<Scaler>) -> Component {
    Component {
        name: name.into(),
        kind: ComponentKind::Component,
        source: Source::Image(image.into()),
        id: String::new(),
        explicit_id: false,
        config: vec![],
        secrets: vec![],
        scalers,
        links: vec![],
        other_traits: vec![],
        rollout: None,
        needs: Default::default(),
        avoid: vec![],
    }
}

pub fn provider(name: &str, image: &str, scalers: Vec<Scaler>) -> Component {
    let scalers = if scalers.is_empty() { vec![spreadscaler(1, vec![])] } else { scalers };
    Component { kind: ComponentKind::Capability, ..component(name, image, scalers) }
}

pub fn with_id(mut c: Component, id: &str) -> Component {
    c.id = id.into();
    c.explicit_id = true;
    c
}

pub fn owned_config(name: &str, values: &[(&str, &str)]) -> ConfigRef {
    ConfigRef { name: name.into(), lattice_name: String::new(), properties: Some(map(values)) }
}

pub fn external_config(name: &str) -> ConfigRef {
    ConfigRef { name: name.into(), lattice_name: name.into(), properties: None }
}

pub fn link(target: &str, namespace: &str, package: &str, interfaces: &[&str]) -> Link {
    Link {
        name: "default".into(),
        namespace: namespace.into(),
        package: package.into(),
        interfaces: interfaces.iter().map(|s| s.to_string()).collect(),
        target: target.into(),
        source_config: vec![],
        source_secrets: vec![],
        target_config: vec![],
        target_secrets: vec![],
    }
}

pub fn deployed(app: Application, generation: u64) -> DeployedApp {
    DeployedApp { lattice: LATTICE.into(), version: "v1".into(), app, generation, promoted: false }
}

pub fn host(id: &str, labels: &[(&str, &str)]) -> HostState {
    HostState { id: id.into(), labels: map(labels), ..Default::default() }
}

pub fn lattice(hosts: Vec<HostState>) -> LatticeState {
    LatticeState {
        lattice: LATTICE.into(),
        hosts: hosts.into_iter().map(|h| (h.id.clone(), h)).collect(),
        ..Default::default()
    }
}

pub fn run_component(
    host: &mut HostState,
    id: &str,
    image: &str,
    count: u32,
    ann: &[(&str, &str)],
) {
    host.components.insert(
        id.into(),
        ComponentInstance {
            id: id.into(),
            image_ref: image.into(),
            count,
            annotations: map(ann),
            since: 0,
        },
    );
}

pub fn run_provider(host: &mut HostState, id: &str, image: &str, ann: &[(&str, &str)]) {
    host.providers.insert(
        id.into(),
        ProviderInstance {
            id: id.into(),
            image_ref: image.into(),
            annotations: map(ann),
            health: Default::default(),
            since: 0,
        },
    );
}

/// Reconcile and apply until the plan is empty; returns the plans issued (the last is empty).
pub fn converge(desired: Desired<'_>, lattice: &mut LatticeState) -> Vec<Plan> {
    let mut plans = Vec::new();
    for _ in 0..8 {
        let plan = reconcile_with(desired, lattice, 1);
        let done = plan.is_empty();
        apply_plan(lattice, &plan);
        plans.push(plan);
        if done {
            return plans;
        }
    }
    panic!("no fixed point after 8 rounds: last plan {:#?}", plans.last());
}

/// Component counts per host for one id.
pub fn counts(lattice: &LatticeState, id: &str) -> BTreeMap<String, u32> {
    lattice
        .hosts
        .values()
        .filter_map(|h| h.components.get(id).map(|c| (h.id.clone(), c.count)))
        .collect()
}

/// Hosts running a provider id.
pub fn provider_hosts(lattice: &LatticeState, id: &str) -> Vec<String> {
    lattice.hosts.values().filter(|h| h.providers.contains_key(id)).map(|h| h.id.clone()).collect()
}

pub fn deploy(apps: &[DeployedApp]) -> Desired<'_> {
    Desired { deployed: apps, undeployed: &[] }
}

/// Hosts in [`bench_world`].
pub const BENCH_HOSTS: usize = 1_000;
/// Applications in [`bench_world`].
pub const BENCH_APPS: usize = 1_000;
const BENCH_ZONES: [&str; 4] = ["a", "b", "c", "d"];

/// The benchmark world: 1,000 apps × 5 components (one zone-pinned) onto 1,000 hosts in 4 zones,
/// shared by `benches/reconcile.rs` and `examples/converged_profile.rs` so they measure the same.
pub fn bench_world() -> (Vec<DeployedApp>, LatticeState) {
    let hosts = (0..BENCH_HOSTS)
        .map(|i| {
            host(
                &format!("N{i:05}"),
                &[("zone", BENCH_ZONES[i % BENCH_ZONES.len()]), ("tier", "std")],
            )
        })
        .collect();
    let apps = (0..BENCH_APPS)
        .map(|a| {
            let comps = (0..5)
                .map(|c| {
                    let spreads = if c == 4 {
                        vec![spread("z", &[("zone", BENCH_ZONES[a % BENCH_ZONES.len()])], 100)]
                    } else {
                        vec![]
                    };
                    component(
                        &format!("c{c}"),
                        &format!("ghcr.io/app{a}/c{c}:1"),
                        vec![spreadscaler(1, spreads)],
                    )
                })
                .collect();
            deployed(app(&format!("app{a}"), comps), 1)
        })
        .collect();
    (apps, lattice(hosts))
}
