//! Control-interface request and reply bodies (`wasmbus.ctl.v1.{lattice}.…`).
//!
//! Scale, update and provider start are acknowledged before the work happens: `success: true`
//! means *accepted*, the outcome arrives later as an event.
//!
//! The requests wadm sends share their strings and annotation maps (`Arc`): a plan places the
//! same image with the same annotations on many hosts without copying them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::{StringMap, default_link_name};

/// Every control reply: `{"success", "message", "response"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CtlReply<T = serde_json::Value> {
    /// Whether the host accepted the request.
    pub success: bool,
    /// Why it refused, or a note on success (often empty).
    #[serde(default)]
    pub message: String,
    /// The body of replies that carry one (inventories, link lists, configs).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub response: Option<T>,
}

impl<T> CtlReply<T> {
    /// An accepted request with no response body.
    pub fn ok() -> Self {
        Self { success: true, message: String::new(), response: None }
    }
    /// An accepted request with a response body.
    pub fn with(response: T) -> Self {
        Self { success: true, message: String::new(), response: Some(response) }
    }
    /// A refused request.
    pub fn error(message: impl Into<String>) -> Self {
        Self { success: false, message: message.into(), response: None }
    }
}

/// `component.scale.{host}`. The count's wire name is `count` (heartbeats call it `max_instances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleComponentRequest {
    /// The image to run (OCI reference or file path).
    pub component_ref: Arc<str>,
    /// The component id the host runs it under.
    pub component_id: Arc<str>,
    /// The maximum concurrent instances wanted on the host (`0` stops it).
    pub count: u32,
    /// The host that should run it.
    pub host_id: Arc<str>,
    /// Replaces the component's annotations on the host: always send the full set.
    #[serde(default)]
    pub annotations: Arc<StringMap>,
    /// Names of the configs the component reads.
    #[serde(default)]
    pub config: Vec<String>,
    /// Whether a different image already running under the id may be replaced.
    #[serde(default)]
    pub allow_update: bool,
    /// Resource limits passed through to the host as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_limits: Option<serde_json::Value>,
}

/// `component.update.{host}`: change a running component's image without a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateComponentRequest {
    /// The running component to change.
    pub component_id: Arc<str>,
    /// The image it should run from now on.
    pub new_component_ref: Arc<str>,
    /// The host it runs on.
    pub host_id: Arc<str>,
    /// Replaces the annotations when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Arc<StringMap>>,
}

/// `provider.start.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartProviderRequest {
    /// The provider id the host runs it under.
    pub provider_id: Arc<str>,
    /// The provider image to start (OCI reference or file path).
    pub provider_ref: Arc<str>,
    /// The host that should run it.
    pub host_id: Arc<str>,
    /// Names of the configs the provider reads.
    #[serde(default)]
    pub config: Vec<String>,
    /// Annotations the provider carries (wadm's ownership marks).
    #[serde(default)]
    pub annotations: Arc<StringMap>,
}

/// `provider.stop.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopProviderRequest {
    /// The provider to stop.
    pub provider_id: Arc<str>,
    /// The host it runs on.
    pub host_id: Arc<str>,
}

/// `host.stop.{host}` (the body may also be empty).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StopHostRequest {
    /// The host to stop (the subject names it too).
    #[serde(default)]
    pub host_id: String,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `link.del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLinkRequest {
    /// The component the link goes out from.
    pub source_id: String,
    /// The link name (`default` unless set).
    #[serde(default = "default_link_name")]
    pub name: String,
    /// WIT namespace of the linked interfaces.
    pub wit_namespace: String,
    /// WIT package of the linked interfaces.
    pub wit_package: String,
}

/// `label.put.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutLabelRequest {
    /// The label to set.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// `label.del.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLabelRequest {
    /// The label to remove.
    pub key: String,
}

/// `component.auction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentAuctionRequest {
    /// The image a bidder would run.
    pub component_ref: String,
    /// The component id it would run under.
    pub component_id: String,
    /// Labels a bidding host must carry.
    #[serde(default)]
    pub constraints: StringMap,
}

/// `provider.auction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAuctionRequest {
    /// The provider image a bidder would run.
    pub provider_ref: String,
    /// The provider id it would run under.
    pub provider_id: String,
    /// Labels a bidding host must carry.
    #[serde(default)]
    pub constraints: StringMap,
}

/// The message a host puts in a successful `config.get` of a missing name.
pub const CONFIG_NOT_FOUND: &str = "Configuration not found";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_without_response_omits_it() {
        let r: CtlReply = CtlReply::ok();
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"success":true,"message":""}"#);
        let back: CtlReply<StringMap> =
            serde_json::from_str(r#"{"success":true,"message":"Configuration not found"}"#)
                .unwrap();
        assert!(back.response.is_none());
    }

    #[test]
    fn scale_uses_count_on_the_wire() {
        let req = ScaleComponentRequest {
            component_ref: "r".into(),
            component_id: "c".into(),
            count: 3,
            host_id: "N".into(),
            annotations: Default::default(),
            config: vec![],
            allow_update: false,
            component_limits: None,
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(v["count"], 3);
    }
}
