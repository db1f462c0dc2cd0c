//! The records and results of the manifest store.

use serde::{Deserialize, Serialize};

use crate::kv::KvError;

/// Per-application index: the one key every write compares-and-sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppIndex {
    /// The application's name.
    pub name: String,
    /// Stored versions in insertion order (the last one is the current version).
    pub versions: Vec<VersionRef>,
    /// The deployed version, if any.
    pub deployed: Option<String>,
    /// Bumped on every deploy.
    pub generation: u64,
    /// Sequence number of the next history entry.
    pub history_next: u64,
    /// Sequence number of the oldest history entry kept.
    pub history_first: u64,
    /// Bumped by every write of this index (a put that stores a version, a deploy, an undeploy,
    /// a delete, a rollback, wadm's revert); requests that change nothing leave it, and so do
    /// wadm's own notes (a version became stable, a rollout started). Clients send it back as
    /// the expected revision of a put or deploy (optimistic concurrency). Absent in records
    /// written before it existed: 0.
    #[serde(default)]
    pub revision: u64,
    /// The deploy generation that was promoted past its rollouts' canary stage (`wadm app
    /// promote`); a later deploy is not promoted until promoted itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted: Option<u64>,
    /// The last version that became stable (the runtime saw it fully deployed, every rollout
    /// done): what a failed rollout with `auto_revert` and `wadm app rollback` go back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<String>,
    /// The stable version before `stable` (what `wadm app rollback` deploys when the deployed
    /// version is the stable one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_before: Option<String>,
    /// The last automatic revert: the generation it deployed, from which version and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted: Option<Reverted>,
    /// The last deploy generation whose rollout start the runtime recorded in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_noted: Option<u64>,
}

/// An automatic revert, as the index records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reverted {
    /// The deploy generation the revert made.
    pub generation: u64,
    /// The version that failed.
    pub from: String,
    /// The version deployed again.
    pub to: String,
    /// What failed, where.
    pub reason: String,
}

impl AppIndex {
    /// The revert that made the current deployment, if one did.
    pub fn current_revert(&self) -> Option<&Reverted> {
        self.reverted
            .as_ref()
            .filter(|r| self.deployed.is_some() && r.generation == self.generation)
    }

    /// What `wadm app rollback` deploys: the last stable version, or the one stable before it
    /// when that is what is deployed.
    pub fn rollback_target(&self) -> Option<&str> {
        match (&self.stable, &self.deployed) {
            (Some(stable), Some(deployed)) if stable == deployed => self.stable_before.as_deref(),
            (stable, _) => stable.as_deref(),
        }
        .filter(|v| self.has(v))
    }

    /// Whether the current deployment was promoted past its canary stage.
    pub fn is_promoted(&self) -> bool {
        self.deployed.is_some() && self.promoted == Some(self.generation)
    }
}

impl AppIndex {
    pub(super) fn new(name: &str) -> Self {
        Self { name: name.to_string(), ..Self::default() }
    }

    /// Whether any version is stored (an index without versions is a tombstone keeping history).
    pub fn has_versions(&self) -> bool {
        !self.versions.is_empty()
    }

    /// The current version (last put).
    pub fn current(&self) -> Option<&str> {
        self.versions.last().map(|v| v.version.as_str())
    }

    /// The current version's description.
    pub fn description(&self) -> Option<&str> {
        self.versions.last().and_then(|v| v.description.as_deref())
    }

    /// Whether this version is stored.
    pub fn has(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v.version == version)
    }

    pub(super) fn id_of(&self, version: &str) -> Option<&str> {
        self.versions.iter().find(|v| v.version == version).map(|v| v.id.as_str())
    }
}

/// A version name and the unique id of its data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRef {
    /// The version's name.
    pub version: String,
    /// The unique id in its data key (a re-put version gets a new one).
    pub id: String,
    /// `metadata.annotations.description` of that version (so listings need not read manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// History entries are stored exactly as the `model.history` reply carries them.
pub use wadm_model::api::{HistoryAction, HistoryEntry};

/// One stored version: the manifest in normal form as a JSON value (with its version written
/// in), what the runtime reads; and the document as the client sent it, what `model.get` serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredVersion {
    /// The version's name.
    pub version: String,
    /// The manifest in normal form, its version written in.
    pub manifest: serde_json::Value,
    /// Absent in records stored before wadm kept it (readers fall back to `manifest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted: Option<SubmittedManifest>,
}

pub use wadm_model::api::{ManifestFormat, SubmittedManifest};

/// A version to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    /// Its version: the document's, or one the server assigned (see `assigned`).
    pub version: String,
    /// Whether the document had no version: then a stored version of the same content (the
    /// current one, else the deployed one) is reused instead of storing a new one.
    pub assigned: bool,
    /// The normal form.
    pub manifest: serde_json::Value,
    /// The document as sent.
    pub submitted: Option<SubmittedManifest>,
}

/// Result of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// Whether this was the first version of the application.
    pub created: bool,
    /// How many versions are stored now.
    pub total_versions: usize,
    /// The current version (the one put, or the one holding its content already).
    pub current_version: String,
    /// Versions pruned because of the version cap.
    pub pruned: Vec<String>,
    /// Nothing was stored: `current_version` already holds this content.
    pub unchanged: bool,
    /// The application's revision after the put.
    pub revision: u64,
}

/// How a deploy goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeployOptions {
    /// Refuse unless the application is at this revision.
    pub expect: Option<u64>,
    /// Bump the generation even when the version is deployed already (the runtime then takes
    /// the deployment up afresh, e.g. retries a failed one at once).
    pub redeploy: bool,
}

/// Result of a deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOutcome {
    /// The version now deployed.
    pub version: String,
    /// The deployment's generation (bumped by every deploy that changes something).
    pub generation: u64,
    /// The version deployed before, if any.
    pub previous: Option<String>,
    /// That version was deployed already: nothing changed (no generation bump, no history).
    pub unchanged: bool,
    /// The application's revision after the deploy.
    pub revision: u64,
}

/// Result of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Nothing matched.
    Noop,
    /// Removed. `undeployed`: the deployed version was removed. `app_removed`: no version is left.
    Deleted {
        /// The deployed version was among those removed.
        undeployed: bool,
        /// No version is left: the application is gone.
        app_removed: bool,
    },
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// A put of an existing version with other content (versions are immutable).
    #[error(
        "version {version} of application {name} already exists with different content \
         (change the version annotation)"
    )]
    VersionExists {
        /// The application.
        name: String,
        /// The version put.
        version: String,
    },
    /// A deploy expected another revision of the application (it changed meanwhile).
    #[error(
        "application {name} is at revision {current}, not the expected revision {expected}: \
         it changed meanwhile; nothing was done"
    )]
    RevisionMoved {
        /// The application.
        name: String,
        /// The revision the caller expected.
        expected: u64,
        /// The revision it is at.
        current: u64,
    },
    /// No such application.
    #[error("application {0} not found")]
    AppNotFound(String),
    /// The application has no such version.
    #[error("version {version} of application {name} not found")]
    VersionNotFound {
        /// The application.
        name: String,
        /// The version asked for.
        version: String,
    },
    /// Every compare-and-set attempt lost to another writer.
    #[error("too many concurrent writes to application {0}, try again")]
    Contended(String),
    /// A stored record does not decode.
    #[error("stored data under {key} is unreadable: {reason}")]
    Corrupt {
        /// The record's key.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
    /// The key-value store failed.
    #[error(transparent)]
    Kv(#[from] KvError),
}
