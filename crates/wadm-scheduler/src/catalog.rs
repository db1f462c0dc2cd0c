//! Facts derived from the desired state alone (no lattice): which application owns which id, which
//! names wadm derived or declared (so ownership of links and configs, which carry no annotations,
//! can be recomputed), shared references, generations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use wadm_model::names::sanitize;
use wadm_model::{Application, ComponentKind, Source, StatusInfo, StatusType};
use wadm_protocol::LinkKey;

use crate::hash::FnvMap;
use crate::input::{DeployedApp, Desired, UndeployedApp};

/// Who declared what, across every deployed and undeployed application of one lattice.
#[derive(Debug, Default)]
pub struct Catalog<'a> {
    /// Deployed applications by name (one per name: the highest generation, then version, wins).
    pub deployed: BTreeMap<&'a str, &'a DeployedApp>,
    /// Undeployed applications by name.
    pub undeployed: BTreeMap<&'a str, &'a UndeployedApp>,
    /// Config names deployed applications own (will be put by this reconcile if missing).
    pub desired_owned_configs: BTreeSet<String>,
    /// Deployed and undeployed applications → the generation commands acting for them carry
    /// (a deployed application's when both), and the name those commands share. Lookup only.
    known: FnvMap<&'a str, (u64, Arc<str>)>,
    /// Built on first use: only removals of links and configs need it.
    declared: OnceLock<Declarations>,
    /// Whether a deployed application keeps components apart (`anti-affinity`).
    pub anti_affinity: bool,
}

/// Ids of the deployed applications' workloads. Lookup only (never iterated, so hash order cannot
/// leak into results).
#[derive(Debug, Default)]
pub struct Owners<'a> {
    /// Component id → the deployed application that runs it (first by name when several claim it).
    pub component: FnvMap<&'a str, &'a str>,
    /// Provider id → (first deployed application by name declaring it, its image).
    pub provider: FnvMap<&'a str, (&'a str, &'a str)>,
}

/// What every known spec (deployed or undeployed) declares, for attributing links and configs.
#[derive(Debug, Default)]
struct Declarations {
    /// Owned config names → first declarer.
    owned_configs: BTreeMap<String, String>,
    /// Link keys → first declarer.
    links: BTreeMap<LinkKey, String>,
    /// Component and provider ids → first declarer.
    ids: BTreeMap<String, String>,
    /// Config names some known spec references without properties (never deleted).
    external_configs: BTreeSet<String>,
    /// `{sanitised app}-` for every known application → the application.
    prefixes: BTreeMap<String, String>,
}

impl<'a> Catalog<'a> {
    /// Index the desired state of `lattice`; applications of other lattices are ignored.
    pub fn new(lattice: &str, desired: Desired<'a>) -> Self {
        let mut c = Catalog::default();
        // In name order (the tree is then built in bulk, without a search per application).
        let mut deployed: Vec<&'a DeployedApp> =
            desired.deployed.iter().filter(|d| d.lattice == lattice).collect();
        deployed.sort_by(|a, b| a.name().cmp(b.name()));
        c.deployed = deployed
            .chunk_by(|a, b| a.name() == b.name())
            .map(|same_name| {
                // Duplicates: the highest (generation, version) wins (the first of equals).
                let best = same_name.iter().copied().reduce(|best, d| {
                    if (d.generation, &d.version) > (best.generation, &best.version) {
                        d
                    } else {
                        best
                    }
                });
                let best = best.expect("chunks are never empty");
                (best.name(), best)
            })
            .collect();
        for u in desired.undeployed {
            let keep = match c.undeployed.get(u.name.as_str()) {
                Some(prev) => u.generation > prev.generation,
                None => true,
            };
            if keep {
                c.undeployed.insert(&u.name, u);
            }
        }
        let stamp = |name: &'a str, generation| (name, (generation, Arc::from(name)));
        let undeployed = c.undeployed.iter().map(|(name, u)| stamp(name, u.generation));
        let deployed = c.deployed.iter().map(|(name, d)| stamp(name, d.generation));
        // Deployed last: its generation wins.
        c.known = undeployed.chain(deployed).collect();
        for d in c.deployed.values() {
            for name in owned_config_names(&d.app) {
                c.desired_owned_configs.insert(name);
            }
            c.anti_affinity |= d.app.components.iter().any(|comp| !comp.avoid.is_empty());
        }
        c
    }

    /// Which deployed application runs each workload id (first by application name). Built on
    /// demand: only building scalers needs it, not a reconcile with kept scalers.
    pub fn owners(&self) -> Owners<'a> {
        let mut owners = Owners::default();
        let workloads = self.deployed.values().map(|d| d.app.components.len()).sum();
        owners.component.reserve(workloads);
        for d in self.deployed.values() {
            for comp in &d.app.components {
                let Source::Image(image) = &comp.source else { continue };
                match comp.kind {
                    ComponentKind::Component => {
                        owners.component.entry(&comp.id).or_insert(d.name());
                    }
                    ComponentKind::Capability => {
                        owners.provider.entry(&comp.id).or_insert((d.name(), image));
                    }
                }
            }
        }
        owners
    }

    fn declarations(&self) -> &Declarations {
        self.declared.get_or_init(|| {
            let mut decl = Declarations::default();
            for (name, d) in &self.deployed {
                decl.declare(name, &d.app);
            }
            for (name, u) in &self.undeployed {
                decl.prefixes.entry(format!("{}-", sanitize(name))).or_insert(name.to_string());
                if let Some(spec) = &u.last_spec {
                    decl.declare(name, spec);
                }
            }
            decl
        })
    }

    /// Whether `app` is deployed or being undeployed here.
    pub fn is_known_app(&self, app: &str) -> bool {
        self.known.contains_key(app)
    }

    /// The generation to stamp on commands acting for `app`.
    pub fn generation(&self, app: &str) -> u64 {
        self.known.get(app).map_or(0, |(generation, _)| *generation)
    }

    /// [`Catalog::generation`] with the application's name as commands share it (copied for an
    /// unknown application).
    pub(crate) fn stamp(&self, app: &str) -> (u64, Arc<str>) {
        match self.known.get(app) {
            Some((generation, name)) => (*generation, Arc::clone(name)),
            None => (0, Arc::from(app)),
        }
    }

    /// The known application whose derived-name prefix `name` carries. Sanitised application
    /// names contain no `-`, so the prefix is everything up to the first `-`.
    fn derived_owner(&self, name: &str) -> Option<&str> {
        let bare = name.strip_prefix("SECRET_").unwrap_or(name);
        let (head, _) = bare.split_once('-')?;
        self.declarations().prefixes.get(&format!("{head}-")).map(String::as_str)
    }

    /// Whether some known application (deployed or undeployed spec) declares a component or
    /// provider with this id: its scalers may count an instance of it as theirs whatever its
    /// annotations say (a provider several applications declare keeps the annotations of the one
    /// that started it).
    pub fn declares_workload(&self, id: &str) -> bool {
        self.declarations().ids.contains_key(id)
    }

    /// The known application that may have put this lattice link: the one that declared its key,
    /// else declared its source id, else whose derived prefix the source id carries.
    pub fn link_owner(&self, key: &LinkKey) -> Option<&str> {
        let decl = self.declarations();
        decl.links
            .get(key)
            .or_else(|| decl.ids.get(&key.source_id))
            .map(String::as_str)
            .or_else(|| self.derived_owner(&key.source_id))
    }

    /// The known application that may have put this lattice config (owned or secret configs only;
    /// a config some known spec uses as external is never anyone's). A derived name must also have
    /// the shape wadm derives: `[SECRET_]{app}-{[a-z0-9_]+}`.
    pub fn config_owner(&self, name: &str) -> Option<&str> {
        let decl = self.declarations();
        if decl.external_configs.contains(name) {
            return None;
        }
        if let Some(owner) = decl.owned_configs.get(name) {
            return Some(owner.as_str());
        }
        let bare = name.strip_prefix("SECRET_").unwrap_or(name);
        let (_, rest) = bare.split_once('-')?;
        let derived_shape = !rest.is_empty()
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if derived_shape { self.derived_owner(name) } else { None }
    }

    /// The lattice id of a component of a deployed shared application.
    pub fn resolve_shared(&self, application: &str, component: &str) -> Result<String, Unresolved> {
        let Some(d) = self.deployed.get(application) else {
            return Err(Unresolved::SharedNotDeployed(application.to_string()));
        };
        if !d.app.shared {
            return Err(Unresolved::Invalid(format!("application {application} is not shared")));
        }
        d.app.component(component).map(|c| c.id.clone()).ok_or_else(|| {
            Unresolved::Invalid(format!(
                "shared application {application} has no component {component}"
            ))
        })
    }

    /// The lattice id a component of `app` stands for (resolving shared references).
    pub fn lattice_id(&self, comp: &wadm_model::Component) -> Result<String, Unresolved> {
        match &comp.source {
            Source::Image(_) => Ok(comp.id.clone()),
            Source::Shared { application, component } => {
                self.resolve_shared(application, component)
            }
        }
    }
}

/// Why a component reference does not resolve to a lattice id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unresolved {
    /// The shared application it references is not deployed (not yet, or no longer): whatever
    /// needs it waits for it.
    SharedNotDeployed(String),
    /// It cannot resolve as deployed (not shared, no such component, ...): a failure.
    Invalid(String),
}

impl Unresolved {
    /// The status of a scaler that needs the reference.
    pub fn status(&self) -> StatusInfo {
        match self {
            Unresolved::SharedNotDeployed(app) => StatusInfo::new(
                StatusType::Waiting,
                format!("shared application {app} not deployed"),
            ),
            Unresolved::Invalid(reason) => StatusInfo::new(StatusType::Failed, reason.clone()),
        }
    }
}

impl Declarations {
    fn declare(&mut self, owner: &str, app: &Application) {
        self.prefixes.entry(format!("{}-", sanitize(owner))).or_insert_with(|| owner.to_string());
        for name in owned_config_names(app) {
            self.owned_configs.entry(name).or_insert_with(|| owner.to_string());
        }
        for comp in &app.components {
            let refs = comp.config.iter().chain(
                comp.links.iter().flat_map(|l| l.source_config.iter().chain(&l.target_config)),
            );
            for r in refs.filter(|r| r.properties.is_none()) {
                self.external_configs.insert(r.lattice_name.clone());
            }
            self.ids.entry(comp.id.clone()).or_insert_with(|| owner.to_string());
            for link in &comp.links {
                let key = LinkKey {
                    source_id: comp.id.clone(),
                    wit_namespace: link.namespace.clone(),
                    wit_package: link.package.clone(),
                    name: link.name.clone(),
                };
                self.links.entry(key).or_insert_with(|| owner.to_string());
            }
        }
    }
}

/// Every config name an application owns: configs with properties and secret configs, on
/// components and on both ends of links.
pub(crate) fn owned_config_names(app: &Application) -> impl Iterator<Item = String> + '_ {
    app.components.iter().flat_map(|comp| {
        let refs = comp.config.iter().chain(
            comp.links.iter().flat_map(|l| l.source_config.iter().chain(l.target_config.iter())),
        );
        let secrets = comp.secrets.iter().chain(
            comp.links.iter().flat_map(|l| l.source_secrets.iter().chain(l.target_secrets.iter())),
        );
        refs.filter(|r| r.properties.is_some())
            .map(|r| r.lattice_name.clone())
            .chain(secrets.map(|s| s.lattice_name.clone()))
    })
}
