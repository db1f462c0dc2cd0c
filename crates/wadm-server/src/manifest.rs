//! The server's use of the manifest model: parsing request bodies and stored manifests.

use wadm_model::Application;
use wadm_model::{Format, Limits, Parsed, parse_manifest};

/// The manifest format announced by a `Content-Type` header (`None`: try YAML, then JSON).
pub fn format_of(content_type: Option<&str>) -> Format {
    match content_type.map(|c| c.to_ascii_lowercase()) {
        Some(c) if c.contains("json") => Format::Json,
        Some(c) if c.contains("yaml") || c.contains("yml") => Format::Yaml,
        _ => Format::Auto,
    }
}

/// Parse and validate a manifest sent by a client.
pub fn parse_request(body: &[u8], format: Format, max_bytes: usize) -> Result<Parsed, String> {
    let limits = Limits { max_bytes, ..Limits::default() };
    parse_manifest(body, format, &limits).map_err(|invalid| invalid.to_string())
}

/// Re-read a stored manifest (stored as JSON after validation).
pub fn parse_stored(manifest: &serde_json::Value) -> Result<Application, String> {
    let bytes = serde_json::to_vec(manifest).map_err(|e| e.to_string())?;
    let limits = Limits { max_bytes: bytes.len().max(1), ..Limits::default() };
    parse_manifest(&bytes, Format::Json, &limits).map(|p| p.app).map_err(|e| e.to_string())
}
