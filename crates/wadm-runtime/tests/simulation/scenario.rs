//! The seeded scenario generator: applications (spreadscaler components, providers, links with
//! owned config) in up to three versions, a lattice of hosts, replicas, and a timeline of
//! deploys, updates, undeploys and faults. Everything follows from the seed.

use std::collections::BTreeMap;
use std::time::Duration;

use wadm_model::names::{component_id, owned_config_name};
use wadm_protocol::Link;
use wadm_runtime::memory::Faults;
use wadm_runtime::{Random, SeededRandom};

/// A seeded generator with the few draws the scenarios need.
pub struct Rng(SeededRandom);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(SeededRandom::new(seed))
    }

    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    /// lo..=hi.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with odds per million.
    pub fn odds(&mut self, per_million: u32) -> bool {
        per_million > 0 && self.below(1_000_000) < u64::from(per_million)
    }

    /// True `percent` times out of 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub type Values = BTreeMap<String, String>;

/// A config an application owns (it carries `properties`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedConfig {
    pub name: String,
    pub values: Values,
}

/// A component or provider of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub provider: bool,
    pub image: String,
    pub instances: u32,
    pub config: Option<OwnedConfig>,
}

/// A `link` trait: from component `source` to `target` (both in the same manifest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    pub source: String,
    pub target: String,
    pub namespace: String,
    pub package: String,
    pub interfaces: Vec<String>,
    pub source_config: Option<OwnedConfig>,
    pub target_config: Option<OwnedConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub version: String,
    pub workloads: Vec<Workload>,
    pub links: Vec<LinkSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
    pub name: String,
    pub versions: Vec<Version>,
}

fn config_json(c: &OwnedConfig) -> serde_json::Value {
    serde_json::json!({ "name": c.name, "properties": c.values })
}

impl Version {
    /// The manifest (JSON) of this version of application `app`.
    pub fn manifest(&self, app: &str) -> serde_json::Value {
        let components: Vec<serde_json::Value> = self
            .workloads
            .iter()
            .map(|w| {
                let mut properties = serde_json::json!({ "image": w.image });
                if let Some(c) = &w.config {
                    properties["config"] = serde_json::json!([config_json(c)]);
                }
                let mut traits = vec![serde_json::json!({
                    "type": "spreadscaler", "properties": { "instances": w.instances }
                })];
                for l in self.links.iter().filter(|l| l.source == w.name) {
                    let mut target = serde_json::json!({ "name": l.target });
                    if let Some(c) = &l.target_config {
                        target["config"] = serde_json::json!([config_json(c)]);
                    }
                    let mut link = serde_json::json!({
                        "namespace": l.namespace, "package": l.package,
                        "interfaces": l.interfaces, "target": target,
                    });
                    if let Some(c) = &l.source_config {
                        link["source"] = serde_json::json!({ "config": [config_json(c)] });
                    }
                    traits.push(serde_json::json!({ "type": "link", "properties": link }));
                }
                serde_json::json!({
                    "name": w.name,
                    "type": if w.provider { "capability" } else { "component" },
                    "properties": properties,
                    "traits": traits,
                })
            })
            .collect();
        serde_json::json!({
            "apiVersion": "core.oam.dev/v1beta1",
            "kind": "Application",
            "metadata": { "name": app, "annotations": { "version": self.version } },
            "spec": { "components": components },
        })
    }

    /// The configs this version owns, by lattice name.
    pub fn owned_configs(&self, app: &str) -> BTreeMap<String, Values> {
        let workloads = self.workloads.iter().filter_map(|w| w.config.as_ref());
        let links = self.links.iter().flat_map(|l| [&l.source_config, &l.target_config]);
        workloads
            .chain(links.flatten())
            .map(|c| (owned_config_name(app, &c.name), c.values.clone()))
            .collect()
    }

    /// The links as the lattice should hold them.
    pub fn lattice_links(&self, app: &str) -> Vec<Link> {
        let names = |c: &Option<OwnedConfig>| {
            c.iter().map(|c| owned_config_name(app, &c.name)).collect::<Vec<_>>()
        };
        self.links
            .iter()
            .map(|l| Link {
                source_id: component_id(app, &l.source),
                target: component_id(app, &l.target),
                name: "default".into(),
                wit_namespace: l.namespace.clone(),
                wit_package: l.package.clone(),
                interfaces: l.interfaces.clone(),
                source_config: names(&l.source_config),
                target_config: names(&l.target_config),
            })
            .collect()
    }

    /// Instances wanted per component or provider id.
    pub fn targets(&self, app: &str) -> BTreeMap<String, u32> {
        self.workloads.iter().map(|w| (component_id(app, &w.name), w.instances)).collect()
    }
}

/// Something that happens to the world at a moment of the scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deploy {
        app: usize,
        version: usize,
    },
    Undeploy {
        app: usize,
    },
    /// Undeploy and deploy again at the same instant.
    UndeployDeploy {
        app: usize,
        version: usize,
    },
    /// A host dies silently.
    CrashHost,
    /// A host stops gracefully (`host_stopped`).
    StopHost,
    AddHost,
    /// The component (by id) cannot scale from now on: a real failure.
    FailComponent {
        app: usize,
        id: String,
    },
    HealComponent {
        id: String,
    },
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub seed: u64,
    pub replicas: usize,
    pub hosts: usize,
    pub apps: Vec<AppSpec>,
    /// Sorted by time (ms after the start).
    pub actions: Vec<(u64, Action)>,
    /// Lattice faults while the fault phase lasts.
    pub faults: Faults,
    /// Odds per million that a replica step is a crash (the delivery is dropped unacked).
    pub replica_crash: u32,
    /// When the fault phase ends (ms after the start).
    pub faults_end: u64,
}

/// The most instances of a provider: the scenario never runs fewer hosts than this.
pub const MAX_PROVIDER_INSTANCES: u32 = 2;

fn image(name: &str, tag: u64) -> String {
    format!("ghcr.io/sim/{name}:0.{tag}.0")
}

fn values(rng: &mut Rng, key: &str) -> Values {
    [(key.to_string(), format!("v{}", rng.below(1000)))].into_iter().collect()
}

fn first_version(rng: &mut Rng, hosts: usize) -> Version {
    let provider_cap = u64::from(MAX_PROVIDER_INSTANCES).min(hosts as u64);
    let component = |rng: &mut Rng, name: &str, max: u64| Workload {
        name: name.into(),
        provider: false,
        image: image(name, 1),
        instances: rng.between(1, max) as u32,
        config: None,
    };
    match rng.below(3) {
        // Components only, maybe with an owned config.
        0 => {
            let n = rng.between(1, 2);
            let workloads = (0..n)
                .map(|i| {
                    let mut w = component(rng, &format!("c{i}"), 4);
                    if rng.percent(50) {
                        let values = values(rng, "greeting");
                        w.config = Some(OwnedConfig { name: format!("cfg{i}"), values });
                    }
                    w
                })
                .collect();
            Version { version: "v1".into(), workloads, links: vec![] }
        }
        // A component linked to a provider, with the link's target config owned.
        1 => {
            let web = component(rng, "web", 3);
            let kv = Workload {
                name: "kv".into(),
                provider: true,
                image: image("kv", 1),
                instances: rng.between(1, provider_cap) as u32,
                config: None,
            };
            let link = LinkSpec {
                source: "web".into(),
                target: "kv".into(),
                namespace: "wasi".into(),
                package: "keyvalue".into(),
                interfaces: vec!["store".into()],
                source_config: None,
                target_config: Some(OwnedConfig {
                    name: "kvconn".into(),
                    values: values(rng, "url"),
                }),
            };
            Version { version: "v1".into(), workloads: vec![web, kv], links: vec![link] }
        }
        // Two components linked, with the link's source config owned.
        _ => {
            let front = component(rng, "front", 3);
            let back = component(rng, "back", 3);
            let link = LinkSpec {
                source: "front".into(),
                target: "back".into(),
                namespace: "wasi".into(),
                package: "http".into(),
                interfaces: vec!["outgoing-handler".into()],
                source_config: Some(OwnedConfig {
                    name: "out".into(),
                    values: values(rng, "host"),
                }),
                target_config: None,
            };
            Version { version: "v1".into(), workloads: vec![front, back], links: vec![link] }
        }
    }
}

/// The next version: a new image, another instance count, new config values, or several.
fn next_version(rng: &mut Rng, previous: &Version, n: usize, hosts: usize) -> Version {
    let mut v = previous.clone();
    v.version = format!("v{n}");
    let provider_cap = u64::from(MAX_PROVIDER_INSTANCES).min(hosts as u64);
    let mut changed = false;
    while !changed {
        for w in &mut v.workloads {
            if rng.percent(40) {
                let tag = rng.between(2, 9);
                w.image = image(&w.name, tag);
                changed = true;
            }
            if rng.percent(40) {
                let max = if w.provider { provider_cap } else { 5 };
                w.instances = rng.between(1, max) as u32;
                changed = true;
            }
            if let Some(c) = &mut w.config
                && rng.percent(30)
            {
                c.values = values(rng, "greeting");
                changed = true;
            }
        }
        for l in &mut v.links {
            for c in [&mut l.source_config, &mut l.target_config].into_iter().flatten() {
                if rng.percent(30) {
                    c.values = values(rng, "k");
                    changed = true;
                }
            }
        }
    }
    v
}

/// The scenario of `seed`.
pub fn generate(seed: u64) -> Scenario {
    let mut rng = Rng::new(seed ^ 0x5eed_5eed_5eed_5eed);
    let replicas = rng.between(1, 5) as usize;
    let hosts = rng.between(1, 20) as usize;
    let app_count = 20;
    let apps: Vec<AppSpec> = (0..app_count)
        .map(|i| {
            let v1 = first_version(&mut rng, hosts);
            let v2 = next_version(&mut rng, &v1, 2, hosts);
            let v3 = next_version(&mut rng, &v2, 3, hosts);
            AppSpec { name: format!("app{i:02}"), versions: vec![v1, v2, v3] }
        })
        .collect();
    let faults_end = rng.between(20_000, 60_000);
    let mut actions = Vec::new();
    let at = |rng: &mut Rng, from: u64| rng.between(from, faults_end);
    for (i, app) in apps.iter().enumerate() {
        actions.push((rng.below(8_000), Action::Deploy { app: i, version: 0 }));
        let roll = rng.below(100);
        if roll < 25 {
            // An update.
            let t = at(&mut rng, 5_000);
            actions.push((t, Action::Deploy { app: i, version: 1 }));
            if rng.percent(40) {
                // An update during the update.
                let again = t + rng.below(3_000);
                actions.push((again, Action::Deploy { app: i, version: 2 }));
            }
        } else if roll < 40 {
            // Undeploy and deploy at once.
            let version = rng.below(app.versions.len() as u64) as usize;
            actions.push((at(&mut rng, 10_000), Action::UndeployDeploy { app: i, version }));
        } else if roll < 50 {
            let t = at(&mut rng, 10_000);
            actions.push((t, Action::Undeploy { app: i }));
            if rng.percent(50) {
                let version = rng.below(app.versions.len() as u64) as usize;
                let back = t + rng.below(20_000);
                actions.push((back, Action::Deploy { app: i, version }));
            }
        }
    }
    for _ in 0..rng.below(4) {
        actions.push((at(&mut rng, 5_000), Action::CrashHost));
        actions.push((at(&mut rng, 5_000), Action::AddHost));
    }
    for _ in 0..rng.below(3) {
        actions.push((at(&mut rng, 5_000), Action::StopHost));
        actions.push((at(&mut rng, 5_000), Action::AddHost));
    }
    if rng.percent(30) {
        let i = rng.below(apps.len() as u64) as usize;
        let name = apps[i].versions[0].workloads.iter().find(|w| !w.provider).map(|w| &w.name);
        if let Some(name) = name {
            let id = component_id(&apps[i].name, name);
            let from = at(&mut rng, 0);
            let to = rng.between(from, faults_end);
            actions.push((from, Action::FailComponent { app: i, id: id.clone() }));
            actions.push((to, Action::HealComponent { id }));
        }
    }
    actions.sort_by_key(|(t, _)| *t);
    let level = |rng: &mut Rng, levels: [u32; 3]| levels[rng.below(3) as usize];
    let faults = Faults {
        drop_event: level(&mut rng, [0, 5_000, 20_000]),
        duplicate_event: level(&mut rng, [0, 10_000, 50_000]),
        delay_event: level(&mut rng, [0, 20_000, 100_000]),
        max_event_delay: Duration::from_millis(rng.between(1, 4_000)),
        lose_request: level(&mut rng, [0, 10_000, 30_000]),
        late_reply: level(&mut rng, [0, 10_000, 40_000]),
        max_late_execution: Duration::from_millis(rng.below(3_000)),
    };
    let replica_crash = level(&mut rng, [0, 5_000, 20_000]);
    Scenario { seed, replicas, hosts, apps, actions, faults, replica_crash, faults_end }
}

impl Scenario {
    /// A one-line summary.
    pub fn summary(&self) -> String {
        let f = &self.faults;
        format!(
            "seed {}: {} replicas, {} hosts, {} apps, {} actions, faults for {} s \
             (events drop/dup/delay {}/{}/{} ppm up to {} ms, requests lost/late {}/{} ppm \
             up to {} ms, replica crash {} ppm)",
            self.seed,
            self.replicas,
            self.hosts,
            self.apps.len(),
            self.actions.len(),
            self.faults_end / 1000,
            f.drop_event,
            f.duplicate_event,
            f.delay_event,
            f.max_event_delay.as_millis(),
            f.lose_request,
            f.late_reply,
            f.max_late_execution.as_millis(),
            self.replica_crash,
        )
    }
}
