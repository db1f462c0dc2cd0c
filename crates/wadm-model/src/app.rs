//! Validated application values: what the rest of wadm schedules, stores and compares.
//!
//! A value of these types has passed every validation rule of the manifest format, and every name
//! in it is already resolved: component ids are derived, owned config names are prefixed with the
//! application, link targets name components that exist. Collections keep manifest order (which is
//! meaningful for status and for stable plans); maps are `BTreeMap` so iteration never depends on
//! hashing.

use std::collections::BTreeMap;

/// Annotation key: who manages a lattice resource (`wadm`).
pub const MANAGED_BY_ANNOTATION: &str = "wasmcloud.dev/managed-by";
/// The value of [`MANAGED_BY_ANNOTATION`] for everything wadm starts.
pub const MANAGED_BY_WADM: &str = "wadm";
/// Annotation key: the application that owns a lattice resource.
pub const APP_SPEC_ANNOTATION: &str = "wasmcloud.dev/appspec";
/// Annotation key: the scaler that placed an instance (upstream compatibility).
pub const SCALER_ANNOTATION: &str = "wasmcloud.dev/scaler";
/// Annotation key: the spread an instance was placed for (upstream compatibility).
pub const SPREAD_NAME_ANNOTATION: &str = "wasmcloud.dev/spread_name";
/// Manifest annotation: the version of the application.
pub const VERSION_ANNOTATION: &str = "version";
/// Manifest annotation: a free-text description.
pub const DESCRIPTION_ANNOTATION: &str = "description";
/// Manifest annotation: `"true"` marks an application whose components others may reference.
pub const SHARED_ANNOTATION: &str = "experimental.wasmcloud.dev/shared";
/// The only defined policy type.
pub const SECRET_POLICY_TYPE: &str = "policy.secret.wasmcloud.dev/v1alpha1";
/// The default link name.
pub const DEFAULT_LINK_NAME: &str = "default";
/// The default spread weight.
pub const DEFAULT_SPREAD_WEIGHT: u32 = 100;
/// Host label prefix declaring capacity: `capacity_{resource}` = a whole number. The resource
/// `instances` counts component instances plus providers; any other resource is what
/// components declare in `properties.needs` (e.g. `capacity_memory_mib` for `memory_mib`).
pub const CAPACITY_LABEL_PREFIX: &str = "capacity_";
/// The resource every instance needs one of (not declarable in `needs`).
pub const INSTANCES_RESOURCE: &str = "instances";

/// What one instance needs of a host's declared capacity: resource name → amount.
pub type Needs = BTreeMap<String, u64>;

/// A validated application manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    /// `metadata.name`: letters, digits, `-`, `_`.
    pub name: String,
    /// `metadata.annotations.version`; `None` until the server assigns one.
    pub version: Option<String>,
    /// `metadata.annotations.description`.
    pub description: Option<String>,
    /// `metadata.annotations["experimental.wasmcloud.dev/shared"] == "true"`.
    pub shared: bool,
    /// Every annotation as written (including the well-known ones above).
    pub annotations: BTreeMap<String, String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `spec.components`, in manifest order.
    pub components: Vec<Component>,
    /// `spec.policies`, in manifest order.
    pub policies: Vec<Policy>,
}

impl Application {
    /// The component with this manifest name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

/// What a manifest entry runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ComponentKind {
    /// `type: component` (alias `actor`): a WebAssembly component.
    Component,
    /// `type: capability`: a capability provider.
    Capability,
}

/// Where a component's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `properties.image`: an OCI reference or a `file://` path.
    Image(String),
    /// `properties.application`: a component of a deployed shared application. wadm does not run
    /// anything for it; links may point at it.
    Shared {
        /// The shared application's name.
        application: String,
        /// The component's name inside that application.
        component: String,
    },
}

/// One entry of `spec.components`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// Unique within the manifest.
    pub name: String,
    /// A wasm component, or a capability provider.
    pub kind: ComponentKind,
    /// Where its image comes from: its own, or a shared application's component.
    pub source: Source,
    /// The lattice id: the explicit `properties.id`, else derived (see [`crate::names`]). For a
    /// shared reference this is the derived id and is replaced at deploy time by the referenced
    /// component's id.
    pub id: String,
    /// Whether `id` was written in the manifest.
    pub explicit_id: bool,
    /// `properties.config`, in manifest order.
    pub config: Vec<ConfigRef>,
    /// `properties.secrets`, in manifest order.
    pub secrets: Vec<SecretRef>,
    /// The `spreadscaler` / `daemonscaler` traits, in manifest order. A capability with an image and
    /// no scaler trait gets an implicit spread of one instance (already present here).
    pub scalers: Vec<Scaler>,
    /// The `link` traits: this component is each link's source.
    pub links: Vec<Link>,
    /// Traits of a type wadm does not know, kept so they round-trip (a warning was reported).
    pub other_traits: Vec<OtherTrait>,
    /// The `rollout` trait: how a new image replaces the old one on the hosts (`None`: on every
    /// host at once).
    pub rollout: Option<Rollout>,
    /// `properties.needs`: what one instance needs of a host's declared capacity.
    pub needs: Needs,
    /// The `anti-affinity` trait's `components`: manifest names of components of the same
    /// application this one never shares a host with (the relation holds both ways).
    pub avoid: Vec<String>,
}

/// `type: rollout` on a component: how an image change rolls over the hosts that run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rollout {
    /// At most this many hosts change image at once (at least 1).
    pub max_parallel: u32,
    /// A host counts as changed once it has run the new image this long (ms) since the host
    /// confirmed it; until then it is one of the `max_parallel`.
    pub min_healthy_time_ms: u64,
    /// Change this many hosts, then stop until the deployment is promoted
    /// (`wadm app promote`). `None`: no canary stage.
    pub canary: Option<u32>,
    /// A host ordered the new image must have become healthy (confirmed it and run it for
    /// `min_healthy_time`) within this long (ms) of the order, or the rollout fails.
    /// `None`: no deadline.
    pub healthy_deadline_ms: Option<u64>,
    /// When the rollout fails, deploy the application's last stable version again.
    pub auto_revert: bool,
    /// At most this many hosts without a serving instance during the rollout. A component's
    /// image changes in place (nothing stops), so for components it always holds; a provider is
    /// replaced by a stop and a start, so it caps the provider hosts changing at once together
    /// with `max_parallel`. `None`: `max_parallel`.
    pub max_unavailable: Option<u32>,
}

/// A duration of `ms` milliseconds as manifests write it: `30s` when whole seconds, else
/// `1500ms`.
pub fn duration_text(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

impl Rollout {
    /// How many hosts may be replaced by a stop and a start at once.
    pub fn max_replacing(&self) -> u32 {
        self.max_unavailable.map_or(self.max_parallel, |m| m.min(self.max_parallel))
    }
}

/// A reference to a named config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigRef {
    /// The name as written in the manifest.
    pub name: String,
    /// The name in the lattice: owned configs are prefixed with the sanitised application name,
    /// external ones keep their name.
    pub lattice_name: String,
    /// `Some` when the manifest carries `properties`: wadm owns the config and keeps it equal to
    /// these values. `None`: the config must already exist in the lattice.
    pub properties: Option<BTreeMap<String, String>>,
}

/// A secret made available to a component or link end, delivered as a config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    /// The name as written.
    pub name: String,
    /// `SECRET_{app}-{name}`.
    pub lattice_name: String,
    /// Name of a `spec.policies` entry of the secret policy type.
    pub policy: String,
    /// The key of the secret in the backend.
    pub key: String,
    /// A field within the secret, when the backend stores structured values.
    pub field: Option<String>,
    /// A version of the secret, when the backend keeps several.
    pub version: Option<String>,
}

/// `spec.policies[]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Referenced by name from secrets (`properties.policy`).
    pub name: String,
    /// The policy's `type` (e.g. the secret policy type).
    pub policy_type: String,
    /// The policy's properties, passed to whatever reads the policy.
    pub properties: BTreeMap<String, String>,
}

/// A scaler trait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scaler {
    /// `spreadscaler`: `instances` split over the spreads by weight.
    Spread(ScalerSpec),
    /// `daemonscaler`: `instances` (component) or one (provider) on every matching host.
    Daemon(ScalerSpec),
}

impl Scaler {
    /// The scaler's properties.
    pub fn spec(&self) -> &ScalerSpec {
        match self {
            Scaler::Spread(s) | Scaler::Daemon(s) => s,
        }
    }
}

/// Properties shared by both scaler traits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalerSpec {
    /// `instances` (alias `replicas`).
    pub instances: u32,
    /// The spreads. Never empty: no spreads in the manifest means one spread named `default` with
    /// no requirements.
    pub spreads: Vec<Spread>,
    /// How fresh instances choose hosts.
    pub placement: PlacementPolicy,
    /// At most this many instances of this scaler on one host.
    pub max_per_host: Option<u32>,
    /// The instances run on at least this many distinct hosts.
    pub min_hosts: Option<u32>,
}

impl ScalerSpec {
    /// A spec with these instances and spreads and default placement settings.
    pub fn new(instances: u32, spreads: Vec<Spread>) -> Self {
        Self {
            instances,
            spreads,
            placement: PlacementPolicy::Spread,
            max_per_host: None,
            min_hosts: None,
        }
    }
}

/// A scaler's `placement`: which hosts fresh instances go to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PlacementPolicy {
    /// `spread` (default): the least loaded hosts, instances split evenly.
    #[default]
    Spread,
    /// `binpack`: the fullest hosts that fit, each filled before the next is used.
    Binpack,
}

impl PlacementPolicy {
    /// The name written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementPolicy::Spread => "spread",
            PlacementPolicy::Binpack => "binpack",
        }
    }
}

/// One entry of a scaler's `spread`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    /// Named in status and placement annotations; unique within the scaler.
    pub name: String,
    /// A host matches when it carries every label with exactly this value.
    pub requirements: BTreeMap<String, String>,
    /// Default [`DEFAULT_SPREAD_WEIGHT`].
    pub weight: u32,
}

/// A `link` trait. Its source is the component that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Link name, default `default`.
    pub name: String,
    /// WIT namespace of the linked interfaces.
    pub namespace: String,
    /// WIT package of the linked interfaces.
    pub package: String,
    /// The linked interfaces of the package.
    pub interfaces: Vec<String>,
    /// The manifest name of the target component (validated to exist in the manifest).
    pub target: String,
    /// Configs the source reads for this link.
    pub source_config: Vec<ConfigRef>,
    /// Secrets the source reads for this link.
    pub source_secrets: Vec<SecretRef>,
    /// Configs the target reads for this link.
    pub target_config: Vec<ConfigRef>,
    /// Secrets the target reads for this link.
    pub target_secrets: Vec<SecretRef>,
}

/// A trait of a type wadm does not implement, preserved as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherTrait {
    /// The trait's `type` as written.
    pub trait_type: String,
    /// The trait's `properties`, untouched.
    pub properties: serde_json::Value,
}
