//! The manifest as it appears on the wire: serde + JSON Schema types mirroring the OAM format.
//!
//! These types are for serialising a validated application ([`crate::Application::to_wire`]),
//! for reading back manifests wadm stored itself, and for generating the JSON Schema
//! (`wadm schema`; a few parts are written by hand in `schema.rs`). Untrusted input goes through
//! [`crate::parse_manifest`], which reports every problem with its path; deserializing these
//! types directly stops at the first one.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod schema;

/// The `apiVersion` of every manifest.
pub const API_VERSION: &str = "core.oam.dev/v1beta1";
/// The `kind` of every manifest.
pub const KIND: &str = "Application";

/// A wadm application manifest (OAM `Application`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "wadm application manifest")]
pub struct Manifest {
    /// Always `core.oam.dev/v1beta1`.
    pub api_version: String,
    /// Always `Application`.
    pub kind: String,
    /// The application's name, version and annotations.
    pub metadata: Metadata,
    /// What the application runs.
    pub spec: Specification,
}

impl Manifest {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `metadata.annotations.version`, if set.
    pub fn version(&self) -> Option<&str> {
        self.metadata.annotations.get(crate::VERSION_ANNOTATION).map(String::as_str)
    }

    /// Sets `metadata.annotations.version` (the server writes an assigned version back).
    pub fn set_version(&mut self, v: &str) {
        self.metadata.annotations.insert(crate::VERSION_ANNOTATION.to_string(), v.to_string());
    }

    /// Validates this manifest as [`crate::parse_manifest`] would (e.g. one read back from
    /// storage), without a size limit.
    pub fn validate(&self) -> Result<crate::Parsed, crate::Invalid> {
        let json = serde_json::to_vec(self).map_err(|e| {
            crate::Invalid::single("syntax", format!("cannot encode the manifest: {e}"))
        })?;
        let limits = crate::Limits { max_bytes: usize::MAX, ..crate::Limits::default() };
        crate::parse_manifest(&json, crate::Format::Json, &limits)
    }

    /// `metadata.annotations.description`, if set.
    pub fn description(&self) -> Option<&str> {
        self.metadata.annotations.get(crate::DESCRIPTION_ANNOTATION).map(String::as_str)
    }
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Letters, digits, `-` and `_` only: it appears verbatim in NATS subjects.
    pub name: String,
    /// Well-known keys: `version`, `description`, `experimental.wasmcloud.dev/shared`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Free-form labels, kept but not interpreted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Specification {
    /// The components and capability providers the application runs.
    pub components: Vec<Component>,
    /// Policies its secrets refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<Policy>,
}

/// One entry of `spec.components`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Unique within the manifest.
    pub name: String,
    /// A wasm component or a capability provider.
    #[serde(rename = "type")]
    pub component_type: ComponentType,
    /// Its image (or shared component), id, config, secrets and needs.
    pub properties: Properties,
    /// How it is scaled and linked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traits: Vec<Trait>,
}

/// `component` (alias `actor`) or `capability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentType {
    /// A wasm component (`component`, alias `actor`).
    #[serde(alias = "actor")]
    Component,
    /// A capability provider (`capability`).
    Capability,
}

/// A component's `properties`: exactly one of `image` and `application`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// An OCI reference or a `file://` path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A component of a deployed shared application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<SharedApplicationRef>,
    /// An explicit component or provider id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Configs the component reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Secrets the component reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretProperty>,
    /// What one instance needs of a host's declared capacity (`capacity_{resource}` host labels):
    /// resource name → amount, e.g. `memory_mib: 64`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub needs: BTreeMap<String, u64>,
}

/// `properties.application`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedApplicationRef {
    /// The shared application.
    pub name: String,
    /// The component inside it.
    pub component: String,
}

/// A named config; with `properties` the application owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigProperty {
    /// The config's name (the lattice name is derived when the application owns it).
    pub name: String,
    /// Values the application owns; without them the config must exist already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, String>>,
}

/// A secret delivered to a component or link end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretProperty {
    /// The name the component asks for the secret by.
    pub name: String,
    /// Which policy, key, field and version.
    pub properties: SecretSourceProperties,
}

/// Where a secret comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSourceProperties {
    /// The name of a `spec.policies` entry of type `policy.secret.wasmcloud.dev/v1alpha1`.
    pub policy: String,
    /// The key of the secret in the backend.
    pub key: String,
    /// A field within the secret, when the backend stores structured values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// A version of the secret, when the backend keeps several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// `spec.policies[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Referenced by name from secrets (`properties.policy`).
    pub name: String,
    /// The policy's `type`.
    #[serde(rename = "type")]
    pub policy_type: String,
    /// The policy's properties, passed to whatever reads the policy.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// A trait: `spreadscaler`, `daemonscaler`, `link`, or a type wadm does not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trait {
    /// `spreadscaler`, `daemonscaler`, `link`, or another type kept as written.
    #[serde(rename = "type")]
    pub trait_type: String,
    /// The trait's properties.
    pub properties: TraitProperties,
}

/// The properties of a trait, by shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TraitProperties {
    /// A `link` trait's properties.
    Link(LinkProperties),
    /// A `spreadscaler` or `daemonscaler` trait's properties.
    Scaler(ScalerProperties),
    /// Any other trait, kept as written.
    Custom(serde_json::Value),
}

/// `spreadscaler` / `daemonscaler` properties.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalerProperties {
    /// Instances in total (`spreadscaler`) or per matching host (`daemonscaler`).
    #[serde(alias = "replicas")]
    pub instances: u32,
    /// How the instances split over hosts by label; none: anywhere.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<Spread>,
    /// `spread` (default) or `binpack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// At most this many instances on one host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_host: Option<u32>,
    /// The instances run on at least this many distinct hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_hosts: Option<u32>,
}

/// One spread of a scaler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// Named in status and placement annotations; unique within the scaler.
    pub name: String,
    /// Host labels that must all match exactly.
    #[serde(default)]
    pub requirements: BTreeMap<String, String>,
    /// Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// `link` properties. The component carrying the trait is the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkProperties {
    /// Link name, default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// WIT namespace of the linked interfaces.
    pub namespace: String,
    /// WIT package of the linked interfaces.
    pub package: String,
    /// The linked interfaces of the package.
    pub interfaces: Vec<String>,
    /// Config and secrets the source reads for this link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ConfigDefinition>,
    /// The component the link calls, with the config and secrets it reads for it.
    pub target: LinkTarget,
    /// Deprecated: use `source.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_config: Option<Vec<ConfigProperty>>,
    /// Deprecated: use `target.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_config: Option<Vec<ConfigProperty>>,
}

/// Config and secrets of a link end.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigDefinition {
    /// Configs the link end reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Secrets the link end reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretProperty>,
}

/// A link's target: a component of the same manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum LinkTarget {
    /// Legacy form: just the component name.
    Name(String),
    /// The component name with the config and secrets it reads for the link.
    Target(TargetConfig),
}

/// `target: {name, config?, secrets?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The manifest name of the target component.
    pub name: String,
    /// Configs the target reads for the link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<ConfigProperty>,
    /// Secrets the target reads for the link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretProperty>,
}

/// The JSON Schema of the manifest, as pretty JSON (what `wadm schema` prints).
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Manifest);
    let mut out = serde_json::to_string_pretty(&schema).unwrap_or_default();
    out.push('\n');
    out
}
