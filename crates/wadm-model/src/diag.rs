//! Diagnostics: the errors and warnings that validation reports, each with the path of the field
//! it is about, and the path builder the validator uses to name fields.

use std::fmt;

use serde::Serialize;

/// How bad a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The manifest is rejected.
    Error,
    /// The manifest is accepted, but something looks wrong.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// An error rejects the manifest; a warning does not.
    pub severity: Severity,
    /// The offending field, e.g. `spec.components[2].traits[0].properties.target.name`. Empty
    /// only for problems with the document as a whole (size, encoding, syntax).
    pub path: String,
    /// A stable kebab-case code naming the rule, e.g. `duplicate-component-name`.
    pub rule: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

impl Diagnostic {
    /// A problem that rejects the manifest.
    pub fn error(path: impl Into<String>, rule: &'static str, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, path: path.into(), rule, message: message.into() }
    }

    /// A problem worth reporting that does not reject the manifest.
    pub fn warning(
        path: impl Into<String>,
        rule: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self { severity: Severity::Warning, path: path.into(), rule, message: message.into() }
    }

    /// Whether it rejects the manifest.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A rejected manifest: every error and every warning found, in document order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Invalid {
    /// Every problem found, errors and warnings, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Invalid {
    /// A rejection with a single document-level error.
    pub fn single(rule: &'static str, message: impl Into<String>) -> Self {
        Self { diagnostics: vec![Diagnostic::error("", rule, message)] }
    }

    /// Only the errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors: Vec<&Diagnostic> = self.errors().collect();
        match errors.as_slice() {
            [] => f.write_str("invalid manifest"),
            [one] => write!(f, "invalid manifest: {one}"),
            many => {
                write!(f, "invalid manifest ({} errors): ", many.len())?;
                for (i, d) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{d}")?;
                }
                Ok(())
            }
        }
    }
}

/// A field path under construction: `spec.components[2].name`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Path(String);

impl Path {
    pub(crate) fn root() -> Self {
        Self(String::new())
    }

    /// The path of a map entry. Keys that are not plain identifiers are quoted:
    /// `metadata.annotations["wasmcloud.dev/authors"]`.
    pub(crate) fn key(&self, key: &str) -> Self {
        let plain = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if plain {
            if self.0.is_empty() {
                Self(key.to_string())
            } else {
                Self(format!("{}.{key}", self.0))
            }
        } else {
            let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\""));
            Self(format!("{}[{quoted}]", self.0))
        }
    }

    /// The path of a sequence element.
    pub(crate) fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Collects diagnostics while walking a manifest.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn error(&mut self, path: &Path, rule: &'static str, message: impl Into<String>) {
        self.list.push(Diagnostic::error(path.as_str(), rule, message));
    }

    pub(crate) fn warning(&mut self, path: &Path, rule: &'static str, message: impl Into<String>) {
        self.list.push(Diagnostic::warning(path.as_str(), rule, message));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.list.iter().any(Diagnostic::is_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_field_accessors() {
        let p = Path::root().key("spec").key("components").index(2).key("name");
        assert_eq!(p.as_str(), "spec.components[2].name");
        let a = Path::root().key("metadata").key("annotations").key("wasmcloud.dev/authors");
        assert_eq!(a.as_str(), "metadata.annotations[\"wasmcloud.dev/authors\"]");
    }

    #[test]
    fn display_is_path_then_message() {
        let d = Diagnostic::error("metadata.name", "bad-name", "is empty");
        assert_eq!(d.to_string(), "metadata.name: is empty");
    }
}
