//! Types that appear in both control replies and events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// String-to-string map (labels, annotations, config values), ordered for determinism.
pub type StringMap = BTreeMap<String, String>;

/// A link between a source component and a target, as the lattice stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The component the link goes out from.
    pub source_id: String,
    /// What it calls: a component id, or a provider id.
    pub target: String,
    /// The link name (`default` unless set): several links of one interface tell apart by it.
    #[serde(default = "default_link_name")]
    pub name: String,
    /// WIT namespace of the linked interfaces.
    pub wit_namespace: String,
    /// WIT package of the linked interfaces.
    pub wit_package: String,
    /// The linked interfaces of the package.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// Configs the source reads for this link.
    #[serde(default)]
    pub source_config: Vec<String>,
    /// Configs the target reads for this link.
    #[serde(default)]
    pub target_config: Vec<String>,
}

impl Link {
    /// The identity of a link in the lattice: (source, namespace, package, name).
    pub fn key(&self) -> LinkKey {
        LinkKey {
            source_id: self.source_id.clone(),
            wit_namespace: self.wit_namespace.clone(),
            wit_package: self.wit_package.clone(),
            name: self.name.clone(),
        }
    }
}

/// What identifies a link in the lattice: at most one link per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LinkKey {
    /// The component the link goes out from.
    pub source_id: String,
    /// WIT namespace of the linked interfaces.
    pub wit_namespace: String,
    /// WIT package of the linked interfaces.
    pub wit_package: String,
    /// The link name.
    pub name: String,
}

pub(crate) fn default_link_name() -> String {
    "default".to_string()
}

/// A component in a host inventory or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentDescription {
    /// The component id.
    pub id: String,
    /// The image it runs.
    pub image_ref: String,
    /// The name from its claims, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Annotations it carries (wadm's ownership marks).
    #[serde(default)]
    pub annotations: StringMap,
    /// The host's revision counter for it (informational).
    #[serde(default)]
    pub revision: i64,
    /// Its maximum concurrent instances on the host.
    #[serde(default)]
    pub max_instances: u32,
    /// Resource limits as the host reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<serde_json::Value>,
}

/// A provider in a host inventory or heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderDescription {
    /// The provider id.
    pub id: String,
    /// The image it runs, as the host reports it (see [`normalize_provider_ref`]).
    #[serde(default)]
    pub image_ref: String,
    /// The name from its claims, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Annotations it carries (wadm's ownership marks).
    #[serde(default)]
    pub annotations: StringMap,
    /// The host's revision counter for it (informational).
    #[serde(default)]
    pub revision: i64,
}

impl HostInventory {
    /// Why this inventory is refused, if it is: an id past [`crate::names::MAX_ID_LEN`].
    pub fn bounds_error(&self) -> Option<String> {
        let components = self
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("components[{i}].id"), &*c.id));
        let providers =
            self.providers.iter().enumerate().map(|(i, p)| (format!("providers[{i}].id"), &*p.id));
        let host = std::iter::once(("host_id".to_string(), self.host_id.as_str()));
        crate::names::first_id_error(host.chain(components).chain(providers))
    }
}

impl Link {
    /// Why this link is refused, if it is: a name or id past [`crate::names::MAX_ID_LEN`].
    pub fn bounds_error(&self) -> Option<String> {
        let fields = [
            ("source_id", &self.source_id),
            ("target", &self.target),
            ("name", &self.name),
            ("wit_namespace", &self.wit_namespace),
            ("wit_package", &self.wit_package),
        ];
        let fields = fields.into_iter().map(|(f, v)| (f.to_string(), v.as_str()));
        let lists = [
            ("interfaces", &self.interfaces),
            ("source_config", &self.source_config),
            ("target_config", &self.target_config),
        ];
        let lists = lists.into_iter().flat_map(|(f, values)| {
            values.iter().enumerate().map(move |(i, v)| (format!("{f}[{i}]"), v.as_str()))
        });
        crate::names::first_id_error(fields.chain(lists))
    }
}

/// A host's full inventory: the reply of `host.get.{host}` and the payload of `host_heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HostInventory {
    /// Absent in some heartbeats of old hosts: use the CloudEvent `source`.
    #[serde(default)]
    pub host_id: String,
    /// The human-readable name the host chose.
    #[serde(default)]
    pub friendly_name: String,
    /// Labels placement requirements match against.
    #[serde(default)]
    pub labels: StringMap,
    /// The wasmCloud version the host runs.
    #[serde(default)]
    pub version: String,
    /// How long the host has been up.
    #[serde(default)]
    pub uptime_seconds: u64,
    /// The same uptime in words, for people.
    #[serde(default)]
    pub uptime_human: String,
    /// Every component the host runs.
    #[serde(default)]
    pub components: Vec<ComponentDescription>,
    /// Every provider the host runs.
    #[serde(default)]
    pub providers: Vec<ProviderDescription>,
}

/// A host's answer to `host.ping`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Host {
    /// The host id (its public key).
    pub id: String,
    /// The human-readable name the host chose.
    #[serde(default)]
    pub friendly_name: String,
    /// Labels placement requirements match against.
    #[serde(default)]
    pub labels: StringMap,
    /// The lattice the host belongs to.
    #[serde(default)]
    pub lattice: String,
    /// The wasmCloud version the host runs.
    #[serde(default)]
    pub version: String,
    /// How long the host has been up.
    #[serde(default)]
    pub uptime_seconds: u64,
    /// The same uptime in words, for people.
    #[serde(default)]
    pub uptime_human: String,
    /// The NATS server the host's control connection uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctl_host: Option<String>,
    /// The NATS server the host's RPC connection uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_host: Option<String>,
}

/// Normalise a provider image reference the way hosts report it back: `file:///x` → `/x`,
/// `wasmcloud+builtin://name` → `name`. Component references are not normalised by hosts.
pub fn normalize_provider_ref(image_ref: &str) -> &str {
    if let Some(path) = image_ref.strip_prefix("file://") {
        path
    } else if let Some(name) = image_ref.strip_prefix("wasmcloud+builtin://") {
        name
    } else {
        image_ref
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_refs_normalise_like_hosts() {
        assert_eq!(normalize_provider_ref("file:///x.par.gz"), "/x.par.gz");
        assert_eq!(normalize_provider_ref("wasmcloud+builtin://http-server"), "http-server");
        assert_eq!(normalize_provider_ref("ghcr.io/a/b:1"), "ghcr.io/a/b:1");
    }
}
