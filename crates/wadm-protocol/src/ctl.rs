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
    pub success: bool,
    #[serde(default)]
    pub message: String,
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
    pub component_ref: Arc<str>,
    pub component_id: Arc<str>,
    pub count: u32,
    pub host_id: Arc<str>,
    /// Replaces the component's annotations on the host: always send the full set.
    #[serde(default)]
    pub annotations: Arc<StringMap>,
    #[serde(default)]
    pub config: Vec<String>,
    #[serde(default)]
    pub allow_update: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_limits: Option<serde_json::Value>,
}

/// `component.update.{host}`: change a running component's image without a gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateComponentRequest {
    pub component_id: Arc<str>,
    pub new_component_ref: Arc<str>,
    pub host_id: Arc<str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Arc<StringMap>>,
}

/// `provider.start.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartProviderRequest {
    pub provider_id: Arc<str>,
    pub provider_ref: Arc<str>,
    pub host_id: Arc<str>,
    #[serde(default)]
    pub config: Vec<String>,
    #[serde(default)]
    pub annotations: Arc<StringMap>,
}

/// `provider.stop.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopProviderRequest {
    pub provider_id: Arc<str>,
    pub host_id: Arc<str>,
}

/// `host.stop.{host}` (the body may also be empty).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StopHostRequest {
    #[serde(default)]
    pub host_id: String,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// `link.del`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLinkRequest {
    pub source_id: String,
    #[serde(default = "default_link_name")]
    pub name: String,
    pub wit_namespace: String,
    pub wit_package: String,
}

/// `label.put.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutLabelRequest {
    pub key: String,
    pub value: String,
}

/// `label.del.{host}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteLabelRequest {
    pub key: String,
}

/// `component.auction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentAuctionRequest {
    pub component_ref: String,
    pub component_id: String,
    #[serde(default)]
    pub constraints: StringMap,
}

/// `provider.auction`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderAuctionRequest {
    pub provider_ref: String,
    pub provider_id: String,
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
