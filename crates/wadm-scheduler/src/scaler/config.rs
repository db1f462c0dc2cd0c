//! Config and secret scalers: an owned config (or secret reference, delivered as a config) is put
//! and kept equal to the manifest; an external config must already exist.

use std::collections::BTreeMap;

use wadm_model::{Policy, SecretRef, StatusInfo, StatusType};
use wadm_protocol::StringMap;

use smallvec::smallvec;

use super::{Evaluation, Scaler, ScalerInfo, Want, Wants};
use crate::context::Context;

/// The `type` value of a secret reference config.
pub(crate) const SECRET_CONFIG_TYPE: &str = "secret.wasmcloud.dev/v1alpha1";
/// The `type` value of a secret reference's policy properties.
pub(crate) const SECRET_POLICY_PROPERTIES_TYPE: &str = "properties.secret.wasmcloud.dev/v1alpha1";

/// One config an application uses.
#[derive(Debug, Clone)]
pub(crate) struct ConfigScaler {
    pub info: ScalerInfo,
    /// The lattice name.
    pub name: String,
    /// `Some`: owned, keep exactly these values. `None`: external, must exist.
    pub values: Option<StringMap>,
}

impl Scaler for ConfigScaler {
    fn info(&self) -> &ScalerInfo {
        &self.info
    }

    fn into_info(self: Box<Self>) -> ScalerInfo {
        self.info
    }

    fn evaluate(&self, ctx: &Context<'_>) -> Evaluation {
        let observed = ctx.lattice().configs.get(&self.name);
        match &self.values {
            Some(values) => {
                let status = if observed.and_then(|c| c.values.as_ref()) == Some(values) {
                    ctx.silent(StatusType::Deployed)
                } else {
                    ctx.silent(StatusType::Reconciling)
                };
                Evaluation {
                    wants: smallvec![Want::Config {
                        name: self.name.clone(),
                        values: values.clone()
                    }],
                    status,
                    wake_at: None,
                    rollout: None,
                    short_of_capacity: false,
                }
            }
            None => {
                let status = if observed.is_some() {
                    ctx.silent(StatusType::Deployed)
                } else {
                    StatusInfo::new(
                        StatusType::Waiting,
                        format!("config {} does not exist in the lattice", self.name),
                    )
                };
                Evaluation {
                    wants: Wants::new(),
                    status,
                    wake_at: None,
                    rollout: None,
                    short_of_capacity: false,
                }
            }
        }
    }
}

/// The config values that carry a secret reference to the host: which backend to ask, for which
/// key, field and version, with the policy's properties.
pub(crate) fn secret_config_values(secret: &SecretRef, policy: Option<&Policy>) -> StringMap {
    let mut values = BTreeMap::new();
    values.insert("name".to_string(), secret.name.clone());
    values.insert("type".to_string(), SECRET_CONFIG_TYPE.to_string());
    values.insert("key".to_string(), secret.key.clone());
    if let Some(field) = &secret.field {
        values.insert("field".to_string(), field.clone());
    }
    if let Some(version) = &secret.version {
        values.insert("version".to_string(), version.clone());
    }
    let mut properties = policy.map(|p| p.properties.clone()).unwrap_or_default();
    let backend = properties.remove("backend").unwrap_or_default();
    values.insert("backend".to_string(), backend);
    let policy_json = serde_json::json!({
        "type": SECRET_POLICY_PROPERTIES_TYPE,
        "properties": properties,
    });
    values.insert("policy_properties".to_string(), policy_json.to_string());
    values
}
