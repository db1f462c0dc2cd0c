//! What a reconcile is asked to achieve: the applications deployed in a lattice and the ones being
//! undeployed whose leftovers must go.

use wadm_model::Application;

/// One application deployed in a lattice, at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedApp {
    /// The lattice it is deployed to.
    pub lattice: String,
    /// The validated manifest of the deployed version.
    pub app: Application,
    /// The deployed version (the manifest's `version` annotation, or the one the server assigned).
    pub version: String,
    /// Increases with every deploy, undeploy or rollback of this application. Part of every command
    /// id, so a command re-issued for the same generation deduplicates, and one for a newer
    /// generation does not.
    pub generation: u64,
    /// Whether this deployment was promoted past its rollouts' canary stage.
    pub promoted: bool,
}

impl DeployedApp {
    /// The application's name.
    pub fn name(&self) -> &str {
        &self.app.name
    }
}

/// An application that is no longer deployed: everything it owns in the lattice is removed unless
/// a deployed application still needs it.
///
/// Without an entry here, instances annotated with an unknown application are *orphans* and are
/// left alone (they may belong to another wadm, or to a manifest this one has not loaded yet).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UndeployedApp {
    /// The application's name.
    pub name: String,
    /// The generation of the undeploy (part of the command ids).
    pub generation: u64,
    /// The last deployed manifest, when known. It lets links and configs declared with explicit
    /// names be recognised as this application's; without it only derived names are recognised.
    pub last_spec: Option<Application>,
}

/// Everything one reconcile of one lattice takes as desired state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Desired<'a> {
    /// Deployed applications (order does not matter: the plan is the same for any order).
    pub deployed: &'a [DeployedApp],
    /// Applications being undeployed (order does not matter).
    pub undeployed: &'a [UndeployedApp],
}

/// Hosts to avoid for one resource: `(application, component or provider id)` → host ids.
///
/// The runtime fills it from its record of failed placements (a host that failed the same
/// resource several times in a row is avoided for a while). It is soft: fresh placement of a
/// spreadscaler passes over an avoided host only while another eligible host can take its
/// share (a component spread keeps at least one host, a provider spread its `n` hosts); with no
/// other host the avoided one is used as before. Daemonscalers and constrained placements
/// (capacity, `max_per_host`/`min_hosts`, anti-affinity) ignore it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Avoid {
    hosts: std::collections::BTreeMap<(String, String), std::collections::BTreeSet<String>>,
}

impl Avoid {
    /// Avoid `host` for resource `id` of application `app`.
    pub fn insert(&mut self, app: &str, id: &str, host: &str) {
        let key = (app.to_string(), id.to_string());
        self.hosts.entry(key).or_default().insert(host.to_string());
    }

    /// The hosts avoided for resource `id` of application `app`, in id order.
    pub fn hosts(&self, app: &str, id: &str) -> impl Iterator<Item = &str> {
        let key = (app.to_string(), id.to_string());
        self.hosts.get(&key).into_iter().flatten().map(String::as_str)
    }

    /// Whether nothing is avoided.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}
