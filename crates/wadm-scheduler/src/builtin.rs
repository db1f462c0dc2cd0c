//! Building the built-in scalers from deployed manifests.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use wadm_model::{
    Component, ComponentKind, ConfigRef, Link as LinkTrait, Scaler as ScalerTrait, SecretRef,
    Source, StatusInfo, StatusType,
};
use wadm_protocol::Link;

use crate::catalog::{Catalog, Owners, Unresolved};
use crate::context::Context;
use crate::input::DeployedApp;
use crate::scaler::component::ComponentScaler;
use crate::scaler::config::{ConfigScaler, secret_config_values};
use crate::scaler::link::LinkScaler;
use crate::scaler::placement::Mode;
use crate::scaler::placement::PriorTrait;
use crate::scaler::provider::ProviderScaler;
use crate::scaler::{Evaluation, Scaler, ScalerInfo, Wants, WorkloadTrait};

/// A scaler that cannot run (e.g. its id is claimed by another application): wants nothing and
/// reports `failed` with the reason.
#[derive(Debug, Clone)]
pub(crate) struct FailedScaler {
    pub info: ScalerInfo,
    pub reason: String,
}

impl Scaler for FailedScaler {
    fn info(&self) -> &ScalerInfo {
        &self.info
    }

    fn into_info(self: Box<Self>) -> ScalerInfo {
        self.info
    }

    fn evaluate(&self, _ctx: &Context<'_>) -> Evaluation {
        Evaluation {
            wants: Wants::new(),
            status: StatusInfo::new(StatusType::Failed, self.reason.clone()),
            wake_at: None,
            rollout: None,
            short_of_capacity: false,
        }
    }
}

/// The built-in scalers of every deployed application in the catalog, in (application, manifest)
/// order.
pub fn builtin_scalers(catalog: &Catalog<'_>) -> Vec<Box<dyn Scaler>> {
    let mut out: Vec<Box<dyn Scaler>> = Vec::new();
    let owners = catalog.owners();
    for d in catalog.deployed.values() {
        let seen_configs = BTreeSet::new();
        let app = Arc::from(d.name());
        let id_buffer = String::new();
        let out = &mut out;
        AppBuilder { catalog, owners: &owners, d, app, id_buffer, rank: 0, seen_configs, out }
            .build();
    }
    out
}

struct AppBuilder<'b, 'c> {
    catalog: &'b Catalog<'c>,
    owners: &'b Owners<'c>,
    d: &'b DeployedApp,
    /// The application's name, shared by its scalers.
    app: Arc<str>,
    /// Where scaler ids are assembled before being shared (one allocation per id).
    id_buffer: String,
    rank: u32,
    seen_configs: BTreeSet<String>,
    out: &'b mut Vec<Box<dyn Scaler>>,
}

impl AppBuilder<'_, '_> {
    /// The next scaler's info; its id is what `id_buffer` holds.
    fn info(&mut self, kind: &'static str, name: &str) -> ScalerInfo {
        self.rank += 1;
        ScalerInfo {
            app: self.app.clone(),
            rank: self.rank,
            id: Arc::from(self.id_buffer.as_str()),
            kind: kind_name(kind),
            name: name.into(),
        }
    }

    fn build(mut self) {
        for comp in &self.d.app.components {
            self.configs(&comp.config, &comp.secrets);
            for link in &comp.links {
                self.configs(&link.source_config, &link.source_secrets);
                self.configs(&link.target_config, &link.target_secrets);
            }
            for (i, scaler) in comp.scalers.iter().enumerate() {
                self.workload(comp, i, scaler);
            }
            for link in &comp.links {
                self.link(comp, link);
            }
        }
    }

    fn configs(&mut self, configs: &[ConfigRef], secrets: &[SecretRef]) {
        let d = self.d;
        let app = &d.app.name;
        for c in configs {
            if self.seen_configs.insert(c.lattice_name.clone()) {
                concat(&mut self.id_buffer, &["ConfigScaler-", app, "-", &c.lattice_name]);
                let info = self.info("ConfigScaler", &c.name);
                let scaler = ConfigScaler {
                    info,
                    name: c.lattice_name.clone(),
                    values: c.properties.clone(),
                };
                self.out.push(Box::new(scaler));
            }
        }
        for s in secrets {
            if self.seen_configs.insert(s.lattice_name.clone()) {
                concat(&mut self.id_buffer, &["SecretScaler-", app, "-", &s.lattice_name]);
                let info = self.info("SecretScaler", &s.name);
                let policy = d.app.policies.iter().find(|p| p.name == s.policy);
                let values = secret_config_values(s, policy);
                let scaler =
                    ConfigScaler { info, name: s.lattice_name.clone(), values: Some(values) };
                self.out.push(Box::new(scaler));
            }
        }
    }

    fn workload(&mut self, comp: &Component, index: usize, trait_: &ScalerTrait) {
        let Source::Image(image) = &comp.source else { return };
        let d = self.d;
        let app = d.app.name.as_str();
        let (mode, kind) = workload_kind(comp, trait_);
        let id_of = |i: usize, t: &ScalerTrait| {
            let mut id = String::new();
            write_workload_id(&mut id, workload_kind(comp, t).1, app, comp, i);
            id
        };
        let priors = comp.scalers[..index]
            .iter()
            .enumerate()
            .map(|(i, t)| PriorTrait {
                id: id_of(i, t),
                mode: workload_kind(comp, t).0,
                spec: t.spec().clone(),
            })
            .collect::<Vec<_>>();
        let siblings = (0..comp.scalers.len())
            .filter(|i| *i != index)
            .map(|i| id_of(i, &comp.scalers[i]))
            .collect();
        write_workload_id(&mut self.id_buffer, kind, app, comp, index);
        let info = self.info(kind, &comp.name);
        let (config, external_config) = config_names(&comp.config, &comp.secrets);
        let conflict = match comp.kind {
            ComponentKind::Component => self
                .owners
                .component
                .get(comp.id.as_str())
                .filter(|owner| **owner != app)
                .map(|owner| format!("component id {} is already deployed by application {owner}", comp.id)),
            ComponentKind::Capability => self
                .owners
                .provider
                .get(comp.id.as_str())
                .filter(|(owner, img)| *owner != app && *img != image)
                .map(|(owner, img)| {
                    format!("provider id {} is already deployed by application {owner} with image {img}", comp.id)
                }),
        };
        let workload = WorkloadTrait {
            info,
            mode,
            id: &comp.id,
            image_ref: image,
            config,
            external_config,
            spec: trait_.spec().clone(),
            priors,
        };
        let scaler: Box<dyn Scaler> = match (conflict, comp.kind) {
            (Some(reason), _) => Box::new(FailedScaler { info: workload.info, reason }),
            (None, ComponentKind::Component) => {
                let scaler = ComponentScaler::new(workload, siblings).with_rollout(comp.rollout);
                Box::new(scaler.promoted(self.d.promoted))
            }
            (None, ComponentKind::Capability) => {
                Box::new(ProviderScaler::new(workload).with_rollout(comp.rollout, self.d.promoted))
            }
        };
        self.out.push(scaler);
    }

    fn link(&mut self, comp: &Component, link: &LinkTrait) {
        let app = &self.d.app.name;
        let (ns, package, name) = (&link.namespace, &link.package, &link.name);
        let parts = ["LinkScaler-", app, "-", &comp.name, "-", ns, ":", package, "-", name];
        concat(&mut self.id_buffer, &parts);
        let info = self.info("LinkScaler", &link.name);
        let target = self
            .d
            .app
            .component(&link.target)
            .ok_or_else(|| {
                Unresolved::Invalid(format!("link target {} is not in the manifest", link.target))
            })
            .and_then(|t| self.catalog.lattice_id(t));
        let built = self.catalog.lattice_id(comp).and_then(|source_id| {
            let (source_config, mut external) =
                config_names(&link.source_config, &link.source_secrets);
            let (target_config, target_external) =
                config_names(&link.target_config, &link.target_secrets);
            external.extend(target_external);
            Ok((
                Link {
                    source_id,
                    target: target?,
                    name: link.name.clone(),
                    wit_namespace: link.namespace.clone(),
                    wit_package: link.package.clone(),
                    interfaces: link.interfaces.clone(),
                    source_config,
                    target_config,
                },
                external,
            ))
        });
        let scaler = match built {
            Ok((link, external_config)) => LinkScaler { info, link: Ok(link), external_config },
            Err(reason) => LinkScaler { info, link: Err(reason), external_config: Vec::new() },
        };
        self.out.push(Box::new(scaler));
    }
}

/// The kinds of the built-in scalers.
const KINDS: [&str; 7] = [
    "SpreadScaler",
    "DaemonScaler",
    "ProviderSpreadScaler",
    "ProviderDaemonScaler",
    "LinkScaler",
    "ConfigScaler",
    "SecretScaler",
];

/// A built-in kind's name, shared by every scaler of that kind.
fn kind_name(kind: &'static str) -> Arc<str> {
    static NAMES: OnceLock<[Arc<str>; KINDS.len()]> = OnceLock::new();
    let names = NAMES.get_or_init(|| KINDS.map(Arc::from));
    match KINDS.iter().position(|k| *k == kind) {
        Some(i) => names[i].clone(),
        None => Arc::from(kind),
    }
}

/// (mode, kind) of a workload's scaler trait.
fn workload_kind(comp: &Component, trait_: &ScalerTrait) -> (Mode, &'static str) {
    let mode = match trait_ {
        ScalerTrait::Spread(_) => Mode::Spread,
        ScalerTrait::Daemon(_) => Mode::Daemon,
    };
    let kind = match (comp.kind, mode) {
        (ComponentKind::Component, Mode::Spread) => "SpreadScaler",
        (ComponentKind::Component, Mode::Daemon) => "DaemonScaler",
        (ComponentKind::Capability, Mode::Spread) => "ProviderSpreadScaler",
        (ComponentKind::Capability, Mode::Daemon) => "ProviderDaemonScaler",
    };
    (mode, kind)
}

/// Write the id of a workload's `index`-th scaler trait (of this kind) into `out`.
fn write_workload_id(out: &mut String, kind: &str, app: &str, comp: &Component, index: usize) {
    concat(out, &[kind, "-", app, "-", &comp.name]);
    if index > 0 {
        out.push('-');
        out.push_str(&index.to_string());
    }
}

/// Replace `out` with the parts joined (ids are built for every scaler on every cold reconcile).
fn concat(out: &mut String, parts: &[&str]) {
    out.clear();
    for p in parts {
        out.push_str(p);
    }
}

/// (names passed to the host: configs then secrets, names that must already exist).
fn config_names(configs: &[ConfigRef], secrets: &[SecretRef]) -> (Vec<String>, Vec<String>) {
    let names = configs
        .iter()
        .map(|c| c.lattice_name.clone())
        .chain(secrets.iter().map(|s| s.lattice_name.clone()))
        .collect();
    let external =
        configs.iter().filter(|c| c.properties.is_none()).map(|c| c.lattice_name.clone()).collect();
    (names, external)
}
