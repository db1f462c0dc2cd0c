//! What a step reads besides its events: config values and reported-stopped hosts' inventories
//! (asked of the lattice) and the
//! reconciler of the lattice's desired state (kept between steps, see [`super::reconcilers`];
//! built from the manifests when the desired state changed).

use std::sync::Arc;

use wadm_model::Application;
use wadm_protocol::ctl::CtlReply;
use wadm_protocol::{HostInventory, StringMap};
use wadm_scheduler::{DeployedApp, Reconciler, UndeployedApp};
use wadm_store::kv::Kv;
use wadm_store::observed::StateStore;
use wadm_store::status::StatusStore;

use super::Pipeline;
use super::reconcilers::Specs;
use crate::desired::DesiredSource;
use crate::io::{ControlClient, IoError, Outbox};
use crate::record::LatticeRecord;
use crate::step::ConfigRead;

impl<K, T, D, S, O, C> Pipeline<K, T, D, S, O, C>
where
    K: Kv,
    T: StateStore,
    D: DesiredSource,
    S: StatusStore,
    O: Outbox,
    C: ControlClient,
{
    /// Events say a config changed, not what it holds: ask the lattice (`config.get`), so the
    /// scheduler can compare values. A host answers a missing config with success and no
    /// response.
    pub(super) async fn read_config(&self, lattice: &str, name: &str) -> ConfigRead {
        let subject = wadm_protocol::subject::ctl_host(
            lattice,
            wadm_protocol::subject::suffix::CONFIG_GET,
            name,
        );
        let timeout = self.config.request_timeout;
        let Ok(bytes) = self.control.request(&subject, Vec::new(), timeout).await else {
            return ConfigRead::Unanswered;
        };
        match serde_json::from_slice::<CtlReply<StringMap>>(&bytes) {
            Ok(CtlReply { success: true, response: Some(values), .. }) => {
                ConfigRead::Values(values)
            }
            Ok(CtlReply { success: true, response: None, .. }) => ConfigRead::Missing,
            _ => ConfigRead::Unanswered,
        }
    }

    /// Ask a host reported stopped for its inventory (`host.get.{host}`): `Some` only when it
    /// answers with one. A stopped host has left the control subjects, so it gets "no
    /// responders" at once; the wait is bounded by the request timeout.
    pub(super) async fn ask_host(&self, lattice: &str, host: &str) -> Option<HostInventory> {
        crate::discovery::ask::ask_inventory(
            &self.control,
            lattice,
            host,
            self.config.request_timeout,
        )
        .await
    }

    /// The reconciler of `record`'s desired state: the one kept for `lattice` when it was built
    /// from the same [`super::reconcilers::DesiredKey`]; otherwise the manifests are loaded
    /// (those of versions the previous entry already had are reused) and the scalers built anew
    /// (by the configured [`wadm_scheduler::ScalerFactory`]).
    pub(super) async fn reconciler(
        &self,
        lattice: &str,
        record: &LatticeRecord,
    ) -> Result<Arc<Reconciler>, IoError> {
        if let Some(kept) = self.reconcilers.get(lattice, record) {
            return Ok(kept);
        }
        let known = self.reconcilers.specs(lattice).unwrap_or_default();
        let loaded = self.desired_apps(lattice, record, &known).await?;
        let (deployed, undeployed) = (loaded.deployed, loaded.undeployed);
        let scalers = &self.config.scalers;
        let reconciler = Arc::new(Reconciler::with_scalers(lattice, deployed, undeployed, scalers));
        self.reconcilers.insert(lattice, record, reconciler.clone(), loaded.specs, loaded.complete);
        Ok(reconciler)
    }

    /// The deployed and undeployed applications of the record, with their manifests (taken
    /// from `known` when there, read from the desired source otherwise).
    async fn desired_apps(
        &self,
        lattice: &str,
        record: &LatticeRecord,
        known: &Specs,
    ) -> Result<LoadedDesired, IoError> {
        let mut loaded = LoadedDesired { complete: true, ..LoadedDesired::default() };
        for (name, app) in &record.apps {
            match &app.deployed_version {
                Some(version) => {
                    let Some(spec) =
                        self.manifest(lattice, name, version, known, &mut loaded).await?
                    else {
                        continue;
                    };
                    // Version N's spec beside N+1 (same name): what N declared and N+1 dropped
                    // (links of explicit ids, owned configs) is attributable and removed.
                    if let Some(previous) = app.previous_version.as_deref()
                        && let Some(last_spec) =
                            self.manifest(lattice, name, previous, known, &mut loaded).await?
                    {
                        loaded.undeployed.push(UndeployedApp {
                            name: name.clone(),
                            generation: app.generation(),
                            last_spec: Some(last_spec),
                        });
                    }
                    loaded.deployed.push(DeployedApp {
                        lattice: lattice.to_string(),
                        app: spec,
                        version: version.clone(),
                        generation: app.generation(),
                        promoted: app.promoted,
                    });
                }
                None => {
                    let last_spec = match &app.last_version {
                        Some(v) => self.manifest(lattice, name, v, known, &mut loaded).await?,
                        None => None,
                    };
                    loaded.undeployed.push(UndeployedApp {
                        name: name.clone(),
                        generation: app.generation(),
                        last_spec,
                    });
                }
            }
        }
        Ok(loaded)
    }

    /// One version's manifest, from `known` or the desired source; noted in `loaded`.
    async fn manifest(
        &self,
        lattice: &str,
        app: &str,
        version: &str,
        known: &Specs,
        loaded: &mut LoadedDesired,
    ) -> Result<Option<Application>, IoError> {
        let key = (app.to_string(), version.to_string());
        let found = match known.get(&key) {
            Some(spec) => Some(spec.clone()),
            None => self.desired.manifest(lattice, app, version).await?,
        };
        match &found {
            Some(spec) => {
                loaded.specs.insert(key, spec.clone());
            }
            None => loaded.complete = false,
        }
        Ok(found)
    }
}

/// The desired state of a lattice as loaded for a [`Reconciler`].
#[derive(Default)]
struct LoadedDesired {
    deployed: Vec<DeployedApp>,
    undeployed: Vec<UndeployedApp>,
    /// The manifests it refers to.
    specs: Specs,
    /// Every manifest it refers to was found.
    complete: bool,
}
