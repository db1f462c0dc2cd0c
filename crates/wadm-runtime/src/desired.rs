//! Where desired state comes from: the deployment of each application (the manifest store's
//! generation and deployed version) and the manifests of its versions, behind [`DesiredSource`].
//! Implemented here for the API server's [`ManifestStore`] over any [`Kv`], so the in-memory and
//! the NATS runtime read deployments exactly as the server writes them. The writes steps decide
//! ([`StoreAction`]) go back through the same source.

use std::collections::BTreeMap;
use std::future::Future;

use wadm_model::Application;
use wadm_store::kv::Kv;
use wadm_store::manifest::ManifestStore;
use wadm_store::manifest::parse_stored;

use crate::io::IoError;
use crate::record::runtime_generation;

/// The actor wadm's own store writes are recorded under.
pub const ACTOR: &str = "wadm";

/// A write to the manifest store a step decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreAction {
    /// Deploy `to` again, if `from_generation` is still the deployed generation.
    Revert {
        /// The application to revert.
        app: String,
        /// The store generation being reverted; nothing is written if another deploy came since.
        from_generation: u64,
        /// The version to deploy again.
        to: String,
        /// Why, in words (recorded in the history).
        reason: String,
    },
    /// `version` of deploy generation `generation` became stable.
    Stable {
        /// The application.
        app: String,
        /// The version that became stable.
        version: String,
        /// The store generation that deployed it.
        generation: u64,
    },
    /// The rollout of `generation` started (a history entry).
    RolloutStarted {
        /// The application.
        app: String,
        /// The store generation being rolled out.
        generation: u64,
        /// What it replaces and under which safety policy, in words (recorded in the history).
        reason: String,
    },
    /// Something else wadm did, for the history (e.g. `host_lost`: work of a host that left
    /// placed elsewhere).
    Note {
        /// The application.
        app: String,
        /// What was done, in one word (the history entry's action: `host_lost`, `rollout_batch`).
        action: String,
        /// The details, in words.
        reason: String,
    },
}

impl StoreAction {
    /// The application the write is about.
    pub fn app(&self) -> &str {
        match self {
            StoreAction::Revert { app, .. }
            | StoreAction::Stable { app, .. }
            | StoreAction::RolloutStarted { app, .. }
            | StoreAction::Note { app, .. } => app,
        }
    }
}

/// One application's deployment as the store has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    /// The store's deploy generation (bumped by every deploy).
    pub store_generation: u64,
    /// The version deployed; `None` when the application is undeployed.
    pub deployed_version: Option<String>,
    /// Promoted past its rollouts' canary stage (`wadm app promote`).
    pub promoted: bool,
    /// The last version that became stable, as the store records it.
    pub stable: Option<String>,
    /// The automatic revert that made this deployment, if one did.
    pub reverted: Option<wadm_store::manifest::Reverted>,
}

impl Deployment {
    /// See [`runtime_generation`].
    pub fn generation(&self) -> u64 {
        runtime_generation(self.store_generation, self.deployed_version.is_some())
    }
}

/// Read access to desired state.
pub trait DesiredSource: Send + Sync {
    /// The deployment of one application (`None`: no such application).
    fn deployment(
        &self,
        lattice: &str,
        app: &str,
    ) -> impl Future<Output = Result<Option<Deployment>, IoError>> + Send;
    /// Every application of the lattice, by name.
    fn deployments(
        &self,
        lattice: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, Deployment>, IoError>> + Send;
    /// One version's validated manifest (`None`: gone). Versions are immutable: cacheable.
    fn manifest(
        &self,
        lattice: &str,
        app: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<Application>, IoError>> + Send;
    /// Carry out what a step decided about the store (see [`StoreAction`]). `Ok(Some(manifest))`:
    /// a revert was written, the runtime must hear of it (`manifest_published` with this
    /// manifest). Sources that cannot write do nothing.
    fn act(
        &self,
        _lattice: &str,
        _action: &StoreAction,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, IoError>> + Send {
        async { Ok(None) }
    }
    /// Add `action` by `actor` to an application's history (orphan collection records its
    /// removals there). Sources without a history record nothing.
    fn note_history(
        &self,
        lattice: &str,
        app: &str,
        action: &str,
        actor: &str,
    ) -> impl Future<Output = Result<(), IoError>> + Send {
        let _ = (lattice, app, action, actor);
        async { Ok(()) }
    }
}

/// The deployment an index describes.
fn deployment_of(i: wadm_store::manifest::AppIndex) -> Deployment {
    Deployment {
        promoted: i.is_promoted(),
        reverted: i.current_revert().cloned(),
        store_generation: i.generation,
        deployed_version: i.deployed,
        stable: i.stable,
    }
}

fn store_err(what: &str, e: impl std::fmt::Display) -> IoError {
    IoError::failed(format!("manifest store ({what})"), e)
}

impl<K: Kv> DesiredSource for ManifestStore<K> {
    async fn deployment(&self, lattice: &str, app: &str) -> Result<Option<Deployment>, IoError> {
        let index = self.index(lattice, app).await.map_err(|e| store_err(app, e))?;
        Ok(index.map(deployment_of))
    }

    async fn deployments(&self, lattice: &str) -> Result<BTreeMap<String, Deployment>, IoError> {
        let list = self.list(lattice).await.map_err(|e| store_err(lattice, e))?;
        Ok(list.into_iter().map(|i| (i.name.clone(), deployment_of(i))).collect())
    }

    async fn note_history(
        &self,
        lattice: &str,
        app: &str,
        action: &str,
        actor: &str,
    ) -> Result<(), IoError> {
        self.note(lattice, app, action, actor).await.map_err(|e| store_err(app, e))
    }

    async fn manifest(
        &self,
        lattice: &str,
        app: &str,
        version: &str,
    ) -> Result<Option<Application>, IoError> {
        let stored = self.get(lattice, app, Some(version)).await.map_err(|e| store_err(app, e))?;
        match stored {
            None => Ok(None),
            Some(s) => parse_stored(&s.manifest).map(Some).map_err(|e| store_err(app, e)),
        }
    }

    async fn act(
        &self,
        lattice: &str,
        action: &StoreAction,
    ) -> Result<Option<serde_json::Value>, IoError> {
        match action {
            StoreAction::Revert { app, from_generation, to, reason } => {
                let done = self.revert(lattice, app, *from_generation, to, reason, ACTOR).await;
                if done.map_err(|e| store_err(app, e))?.is_none() {
                    // Done by another replica, or a newer deploy came first: that one's
                    // `manifest_published` is on its way (or was heard).
                    return Ok(None);
                }
                let stored =
                    self.get(lattice, app, Some(to)).await.map_err(|e| store_err(app, e))?;
                Ok(stored.map(|s| s.manifest))
            }
            StoreAction::Stable { app, version, generation } => {
                let marked = self.mark_stable(lattice, app, version, *generation, ACTOR).await;
                marked.map_err(|e| store_err(app, e))?;
                Ok(None)
            }
            StoreAction::Note { app, action, reason } => {
                let noted = self.note_because(lattice, app, action, Some(reason), ACTOR).await;
                noted.map_err(|e| store_err(app, e))?;
                Ok(None)
            }
            StoreAction::RolloutStarted { app, generation, reason } => {
                let noted = self.note_rollout(lattice, app, *generation, reason, ACTOR).await;
                noted.map_err(|e| store_err(app, e))?;
                Ok(None)
            }
        }
    }
}
