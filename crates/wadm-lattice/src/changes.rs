//! What one step of the reducer changed: entity-level changes and the applications they touch.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use wadm_protocol::{LinkKey, StringMap};

use crate::bookkeeping::{HostEntity, RemovalReason};

/// The annotation naming the application that owns a component or provider.
pub const APPSPEC_ANNOTATION: &str = "wasmcloud.dev/appspec";

/// The application named by a set of annotations, if any.
pub fn app_of(annotations: &StringMap) -> Option<&str> {
    annotations.get(APPSPEC_ANNOTATION).map(String::as_str).filter(|s| !s.is_empty())
}

/// One entity that changed. The derived order sorts hosts first, then per-host entities, then
/// lattice-wide ones, so a writer applying the list in order writes a host before its children.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A host became known.
    HostAdded {
        /// The host id.
        host: String,
    },
    /// Friendly name, version or start time changed.
    HostUpdated {
        /// The host id.
        host: String,
    },
    /// A host's labels changed.
    HostLabelsChanged {
        /// The host id.
        host: String,
    },
    /// A host left the observed state.
    HostRemoved {
        /// The host id.
        host: String,
        /// Stopped or lost.
        reason: RemovalReason,
    },
    /// A component appeared or changed on a host.
    ComponentSet {
        /// The host id.
        host: String,
        /// The component id.
        component: String,
    },
    /// A component stopped on a host.
    ComponentRemoved {
        /// The host id.
        host: String,
        /// The component id.
        component: String,
    },
    /// A provider appeared or changed on a host.
    ProviderSet {
        /// The host id.
        host: String,
        /// The provider id.
        provider: String,
    },
    /// A provider stopped on a host.
    ProviderRemoved {
        /// The host id.
        host: String,
        /// The provider id.
        provider: String,
    },
    /// A link was put or changed.
    LinkSet {
        /// The link's lattice identity.
        link: LinkKey,
    },
    /// A link was deleted.
    LinkRemoved {
        /// The link's lattice identity.
        link: LinkKey,
    },
    /// A config was put or changed.
    ConfigSet {
        /// The config name.
        name: String,
    },
    /// A config was deleted.
    ConfigRemoved {
        /// The config name.
        name: String,
    },
}

/// An entity whose reducer mark ([`crate::bookkeeping::Mark`]) was set or dropped, whether or
/// not the entity itself changed. Marks are part of what a store keeps with each entity (so a
/// replica that reads state back orders events and merges discovery rounds as the writer would):
/// a store rewrites these entities too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Marked {
    /// A component, a provider or the labels of a host.
    Host {
        /// The host id.
        host: String,
        /// Which of the host's entities.
        entity: HostEntity,
    },
    /// A link.
    Link {
        /// The link's lattice identity.
        link: LinkKey,
    },
    /// A config.
    Config {
        /// The config name.
        name: String,
    },
}

/// How the reducer treated an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Applied (possibly changing nothing, e.g. a scale to the count already observed).
    #[default]
    Applied,
    /// Older than what is already known, or a duplicate: skipped.
    Stale,
    /// An event type wadm does not know: skipped and counted.
    Unknown,
    /// A host event naming no host (no `source`, no `host_id`): skipped.
    Unattributed,
}

/// The result of one reducer step (or several, merged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Entity-level changes, sorted and without duplicates.
    pub changes: Vec<Change>,
    /// Applications (by `wasmcloud.dev/appspec`) whose entities changed.
    pub apps: BTreeSet<String>,
    /// Whether every application should be reconciled (a host appeared or its labels changed,
    /// a config changed): placement may differ for any of them.
    pub every_app: bool,
    /// Hosts that sent events before wadm knew them: ask for their inventory.
    pub needs_inventory: BTreeSet<String>,
    /// Hosts reported stopped: ask each directly; silence confirms the stop.
    #[serde(default)]
    pub needs_verification: BTreeSet<String>,
    /// Hosts whose tombstone was forgotten (retention ran out): storage may drop it.
    #[serde(default)]
    pub forgotten_tombstones: BTreeSet<String>,
    /// Entities whose marks were set or dropped (not part of [`Changes::is_empty`]: nothing the
    /// lattice runs changed because of them alone).
    #[serde(default)]
    pub marked: BTreeSet<Marked>,
    /// How the reducer treated the event(s).
    pub outcome: Outcome,
}

impl Changes {
    pub(crate) fn with_outcome(outcome: Outcome) -> Self {
        Self { outcome, ..Self::default() }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.apps.is_empty() && !self.every_app
    }

    /// Fold another step's changes into these (the outcome stays this one's).
    pub fn merge(&mut self, other: Changes) {
        self.changes.extend(other.changes);
        self.changes.sort();
        self.changes.dedup();
        self.apps.extend(other.apps);
        self.every_app |= other.every_app;
        self.needs_inventory.extend(other.needs_inventory);
        self.needs_verification.extend(other.needs_verification);
        self.forgotten_tombstones.extend(other.forgotten_tombstones);
        self.marked.extend(other.marked);
    }

    pub(crate) fn push(&mut self, change: Change) {
        if matches!(
            change,
            Change::HostAdded { .. }
                | Change::HostLabelsChanged { .. }
                | Change::ConfigSet { .. }
                | Change::ConfigRemoved { .. }
        ) {
            self.every_app = true;
        }
        if let Err(at) = self.changes.binary_search(&change) {
            self.changes.insert(at, change);
        }
    }

    /// Note that the mark of `entity` on `host` was set or dropped.
    pub(crate) fn mark_host_entity(&mut self, host: &str, entity: HostEntity) {
        self.marked.insert(Marked::Host { host: host.to_string(), entity });
    }

    pub(crate) fn touch_app(&mut self, annotations: &StringMap) {
        if let Some(app) = app_of(annotations) {
            self.apps.insert(app.to_string());
        }
    }
}
