//! The `model.history.{name}` reply: the deploy/undeploy/put/delete actions taken on an
//! application, oldest first.
//!
//! Decoded leniently (every field defaults) so that a server adding fields, or omitting the
//! actor, still decodes.

use serde::{Deserialize, Serialize};

/// One recorded action on an application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// What happened, e.g. `put`, `deploy`, `undeploy`, `delete`.
    #[serde(default)]
    pub action: String,
    /// The version the action applied to, if any.
    #[serde(default)]
    pub version: Option<String>,
    /// Who asked for it (as reported by the server), if known.
    #[serde(default)]
    pub actor: Option<String>,
    /// When, as the server's RFC 3339 timestamp.
    #[serde(default)]
    pub at: String,
}

/// `model.history.{name}` response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryResponse {
    #[serde(default)]
    pub result: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}
