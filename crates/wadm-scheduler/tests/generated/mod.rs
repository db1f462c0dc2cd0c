//! Seeded generation of random worlds for the property tests: up to N hosts with random labels,
//! up to M applications, and random pre-existing instances (foreign, orphaned, stale ours, and
//! leftovers of undeployed applications).
#![allow(dead_code)]

use wadm_lattice::LatticeState;
use wadm_model::{Application, Component, ComponentKind, Scaler};
use wadm_scheduler::{DeployedApp, Desired, UndeployedApp};

use crate::common::*;

/// SplitMix64: the generated world is a pure function of the proptest-chosen seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const ZONES: [&str; 3] = ["a", "b", "c"];
const TIERS: [&str; 2] = ["x", "y"];
const WADM: (&str, &str) = ("wasmcloud.dev/managed-by", "wadm");

pub struct World {
    pub deployed: Vec<DeployedApp>,
    pub undeployed: Vec<UndeployedApp>,
    pub lattice: LatticeState,
}

fn requirements(rng: &mut Rng) -> Vec<(&'static str, &'static str)> {
    let mut req = Vec::new();
    if rng.chance(50) {
        req.push(("zone", *rng.pick(&ZONES)));
    }
    if rng.chance(25) {
        req.push(("tier", *rng.pick(&TIERS)));
    }
    req
}

fn scaler(rng: &mut Rng, daemon: bool) -> Scaler {
    let spreads = (0..rng.below(3))
        .map(|i| spread(&format!("s{i}"), &requirements(rng), 1 + rng.below(100) as u32))
        .collect();
    let instances = rng.below(7) as u32;
    if daemon { daemonscaler(instances.min(3), spreads) } else { spreadscaler(instances, spreads) }
}

fn gen_app(rng: &mut Rng, name: &str) -> Application {
    let mut comps = Vec::new();
    for i in 0..1 + rng.below(4) {
        let daemon = rng.chance(25);
        if rng.chance(30) {
            let p = provider(
                &format!("p{i}"),
                &format!("prov:{}", rng.below(2)),
                vec![scaler(rng, daemon)],
            );
            comps.push(if rng.chance(20) {
                with_id(provider(&format!("p{i}"), "shared:1", p.scalers.clone()), "shared-p")
            } else {
                p
            });
        } else {
            let mut c = component(
                &format!("c{i}"),
                &format!("img:{}", rng.below(2)),
                vec![scaler(rng, daemon)],
            );
            if rng.chance(20) {
                c.config.push(owned_config("cfg", &[("v", &rng.below(3).to_string())]));
            }
            if rng.chance(10) {
                c.config.push(external_config(if rng.chance(50) {
                    "ext-present"
                } else {
                    "ext-missing"
                }));
            }
            comps.push(c);
        }
    }
    // Sometimes a second scaler trait on a workload (they share the hosts).
    for c in comps.iter_mut() {
        if rng.chance(8) {
            let daemon = rng.chance(50);
            c.scalers.push(scaler(rng, daemon));
        }
    }
    // Links from components to later entries.
    let names: Vec<String> = comps.iter().map(|c| c.name.clone()).collect();
    for (i, c) in comps.iter_mut().enumerate() {
        if c.kind == ComponentKind::Component && i + 1 < names.len() && rng.chance(50) {
            c.links.push(link(&names[i + 1], "wasi", "keyvalue", &["store"]));
        }
    }
    app(name, comps)
}

pub fn gen_world(seed: u64, max_hosts: u64, max_apps: u64) -> World {
    let mut rng = Rng(seed);
    let n_hosts = rng.below(max_hosts + 1);
    let n_apps = 1 + rng.below(max_apps);
    let deployed: Vec<DeployedApp> = (0..n_apps)
        .map(|i| deployed(gen_app(&mut rng, &format!("app{i}")), 1 + rng.below(3)))
        .collect();
    let undeployed_specs: Vec<Application> =
        (0..rng.below(3)).map(|i| gen_app(&mut rng, &format!("gone{i}"))).collect();
    let mut hosts = Vec::new();
    for h in 0..n_hosts {
        let mut labels = Vec::new();
        if rng.chance(90) {
            labels.push(("zone", *rng.pick(&ZONES)));
        }
        if rng.chance(60) {
            labels.push(("tier", *rng.pick(&TIERS)));
        }
        let mut host = host(&format!("h{h:03}"), &labels);
        // Pre-existing instances: foreign, orphaned, ours (stale or not), leftovers of gone apps.
        for _ in 0..rng.below(3) {
            let d = &rng.pick(&deployed).app;
            let comp = rng.pick(&d.components);
            let owner = match rng.below(4) {
                0 => None,
                1 => Some("ghost".to_string()),
                _ => Some(d.name.clone()),
            };
            let ann: Vec<(&str, &str)> = match &owner {
                None => vec![],
                Some(o) => vec![WADM, ("wasmcloud.dev/appspec", o.as_str())],
            };
            match comp.kind {
                ComponentKind::Component => {
                    run_component(&mut host, &comp.id, "img:old", 1 + rng.below(5) as u32, &ann)
                }
                ComponentKind::Capability => run_provider(
                    &mut host,
                    &comp.id,
                    if rng.chance(50) { "prov:0" } else { "prov:old" },
                    &ann,
                ),
            }
        }
        if let Some(g) = undeployed_specs.first().filter(|_| rng.chance(30)) {
            let comp: &Component = rng.pick(&g.components);
            let ann = [WADM, ("wasmcloud.dev/appspec", g.name.as_str())];
            match comp.kind {
                ComponentKind::Component => run_component(&mut host, &comp.id, "img:0", 2, &ann),
                ComponentKind::Capability => run_provider(&mut host, &comp.id, "prov:0", &ann),
            }
        }
        hosts.push(host);
    }
    let mut lattice = lattice(hosts);
    lattice.configs.insert("ext-present".into(), Default::default());
    lattice.configs.insert("foreign-cfg".into(), Default::default());
    let undeployed = undeployed_specs
        .into_iter()
        .map(|s| UndeployedApp { name: s.name.clone(), generation: 9, last_spec: Some(s) })
        .collect();
    World { deployed, undeployed, lattice }
}

pub fn desired(w: &World) -> Desired<'_> {
    Desired { deployed: &w.deployed, undeployed: &w.undeployed }
}

pub fn shuffle<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut rng = Rng(seed);
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}
