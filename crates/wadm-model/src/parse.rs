//! The entry point for untrusted manifests: bytes in, a validated [`Application`] (or every
//! problem found) out.

use serde::de::DeserializeSeed;

use crate::app::Application;
use crate::diag::{Diagnostic, Diagnostics, Invalid};
use crate::node::{Node, NodeSeed};
use crate::wire;

/// The document format of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// YAML (a superset of JSON, but with YAML's error messages).
    Yaml,
    /// JSON only.
    Json,
    /// Try YAML, then JSON.
    #[default]
    Auto,
}

/// Bounds on what a manifest may cost to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest document accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of lists and maps accepted.
    pub max_depth: usize,
}

impl Default for Limits {
    /// 1 MiB, 64 levels.
    fn default() -> Self {
        Self { max_bytes: 1024 * 1024, max_depth: 64 }
    }
}

/// A valid manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// The validated application.
    pub app: Application,
    /// The application in wire form (canonical: `app.to_wire()`), ready to store and serve.
    pub manifest: wire::Manifest,
    /// Warnings found (the manifest is accepted nevertheless).
    pub warnings: Vec<Diagnostic>,
}

/// Parses and validates a manifest. On success the warnings are in [`Parsed::warnings`]; on
/// failure [`Invalid::diagnostics`] holds every error and warning, each with its field path.
pub fn parse_manifest(bytes: &[u8], format: Format, limits: &Limits) -> Result<Parsed, Invalid> {
    let root = read_document(bytes, format, limits)?;
    let mut d = Diagnostics::default();
    let app = crate::validate::walk(&root, &mut d);
    if d.has_errors() {
        return Err(Invalid { diagnostics: d.list });
    }
    let manifest = app.to_wire();
    Ok(Parsed { app, manifest, warnings: d.list })
}

/// Reads a document (a manifest as a client sent it) into JSON, without validating it: the same
/// reader as [`parse_manifest`] (a duplicate key keeps its last value).
pub fn document_value(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<serde_json::Value, Invalid> {
    read_document(bytes, format, limits).map(|node| node.to_json())
}

/// Checks size and encoding, then parses the syntax into a [`Node`] tree.
pub(crate) fn read_document(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> Result<Node, Invalid> {
    if bytes.len() > limits.max_bytes {
        return Err(Invalid::single(
            "document-too-large",
            format!(
                "the document is {} bytes, more than the limit of {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Invalid::single(
            "invalid-utf8",
            format!("the document is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(Invalid::single("empty-document", "the document is empty"));
    }
    match format {
        Format::Yaml => yaml(text, limits),
        Format::Json => json(text, limits),
        Format::Auto => {
            yaml(text, limits).or_else(|yaml_err| json(text, limits).map_err(|_| yaml_err))
        }
    }
}

fn yaml(text: &str, limits: &Limits) -> Result<Node, Invalid> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_depth: limits.max_depth + 1 },
        duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::PassThrough,
        // Manifests rarely use aliases; this bounds the work an alias bomb can cause.
        alias_limits: serde_saphyr::alias_limits! { max_total_replayed_events: 100_000 },
    };
    let seed = NodeSeed::root(limits.max_depth);
    serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| seed.deserialize(de))
        .map_err(|e| syntax_error("YAML", &e.to_string()))
}

fn json(text: &str, limits: &Limits) -> Result<Node, Invalid> {
    let mut de = serde_json::Deserializer::from_str(text);
    let node = NodeSeed::root(limits.max_depth)
        .deserialize(&mut de)
        .map_err(|e| syntax_error("JSON", &e.to_string()))?;
    de.end().map_err(|e| syntax_error("JSON", &e.to_string()))?;
    Ok(node)
}

fn syntax_error(format: &str, message: &str) -> Invalid {
    // Keep messages to one line: parser errors may include multi-line snippets.
    let first_line = message.lines().next().unwrap_or(message);
    Invalid::single("syntax", format!("the document is not valid {format}: {first_line}"))
}
