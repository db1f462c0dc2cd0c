//! The server's use of the manifest model: parsing request bodies (stored manifests are
//! re-read by `wadm_store::manifest::parse_stored`).

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
