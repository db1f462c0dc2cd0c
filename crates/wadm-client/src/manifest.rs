//! Reading a manifest before sending it: its format (for `Content-Type`), its name and version.
//!
//! This is deliberately shallow: validation is the server's job; here we only need
//! `metadata.name` and `metadata.annotations.version` to address follow-up requests.

use crate::error::ClientError;

/// `Content-Type` of a JSON manifest.
pub const JSON: &str = "application/json";
/// `Content-Type` of a YAML manifest.
pub const YAML: &str = "application/yaml";

/// What the client needs to know about a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.annotations.version`, when set.
    pub version: Option<String>,
    /// [`JSON`] or [`YAML`].
    pub content_type: &'static str,
}

/// Parse a manifest (JSON when it parses as JSON, else YAML) into a JSON value, with its format.
pub fn parse(bytes: &[u8]) -> Result<(serde_json::Value, &'static str), ClientError> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        return Ok((value, JSON));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ClientError::Manifest("the file is not UTF-8 text".to_string()))?;
    let value = serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| {
        ClientError::Manifest(format!("neither JSON nor YAML: {}", first_line(&e.to_string())))
    })?;
    Ok((value, YAML))
}

/// Read the name, version and format of a manifest (JSON when it parses as JSON, else YAML).
pub fn inspect(bytes: &[u8]) -> Result<ManifestInfo, ClientError> {
    let (value, content_type) = parse(bytes)?;
    let metadata = value
        .get("metadata")
        .ok_or_else(|| ClientError::Manifest("metadata: missing".to_string()))?;
    let name = match metadata.get("name") {
        Some(serde_json::Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => {
            return Err(ClientError::Manifest("metadata.name: not a non-empty string".into()));
        }
        None => return Err(ClientError::Manifest("metadata.name: missing".to_string())),
    };
    let version = metadata
        .get("annotations")
        .and_then(|a| a.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    Ok(ManifestInfo { name, version, content_type })
}

/// Render a stored manifest (as `model.get` returns it) as YAML.
pub fn to_yaml(manifest: &serde_json::Value) -> Result<String, ClientError> {
    serde_saphyr::to_string(manifest).map_err(|e| ClientError::Manifest(e.to_string()))
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_manifest() {
        let yaml = b"apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: hello\n  annotations:\n    version: v1\nspec:\n  components: []\n";
        let info = inspect(yaml).unwrap();
        assert_eq!(
            info,
            ManifestInfo { name: "hello".into(), version: Some("v1".into()), content_type: YAML }
        );
    }

    #[test]
    fn json_manifest_without_version() {
        let json = br#"{"apiVersion":"core.oam.dev/v1beta1","metadata":{"name":"x"},"spec":{}}"#;
        let info = inspect(json).unwrap();
        assert_eq!(info.name, "x");
        assert_eq!(info.version, None);
        assert_eq!(info.content_type, JSON);
    }

    #[test]
    fn bad_manifests_name_the_field() {
        let err = inspect(b"kind: Application\n").unwrap_err().to_string();
        assert!(err.contains("metadata"), "{err}");
        let err = inspect(b"metadata:\n  name: 3\n").unwrap_err().to_string();
        assert!(err.contains("metadata.name"), "{err}");
        assert!(inspect(b"\xff\xfe").is_err());
        assert!(inspect(b"a: [unclosed").is_err());
    }

    #[test]
    fn yaml_round_trip() {
        let value = serde_json::json!({"metadata": {"name": "x"}});
        let yaml = to_yaml(&value).unwrap();
        assert!(yaml.contains("name: x"), "{yaml}");
    }
}
