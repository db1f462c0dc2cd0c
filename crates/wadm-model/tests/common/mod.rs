//! Helpers shared by the validation tests: a valid base manifest to mutate, and assertions on
//! the reported rule and path.
#![allow(dead_code)]

use serde_json::{Value, json};
use wadm_model::{Diagnostic, Format, Limits, Parsed, Severity, parse_manifest};

/// A valid manifest exercising most features; tests mutate a copy.
pub fn base() -> Value {
    json!({
        "apiVersion": "core.oam.dev/v1beta1",
        "kind": "Application",
        "metadata": {"name": "rules-app", "annotations": {"version": "v1"}},
        "spec": {
            "policies": [{
                "name": "vault",
                "type": "policy.secret.wasmcloud.dev/v1alpha1",
                "properties": {"backend": "vault"}
            }],
            "components": [
                {
                    "name": "web",
                    "type": "component",
                    "properties": {
                        "image": "ghcr.io/x/web:1",
                        "config": [{"name": "settings", "properties": {"lang": "en"}}],
                        "secrets": [{"name": "db-pass", "properties": {"policy": "vault", "key": "db"}}]
                    },
                    "traits": [
                        {"type": "spreadscaler", "properties": {"instances": 2}},
                        {"type": "link", "properties": {
                            "namespace": "wasi", "package": "keyvalue", "interfaces": ["store"],
                            "target": {"name": "kv", "config": [{"name": "kv-conn", "properties": {"url": "redis://x"}}]}
                        }}
                    ]
                },
                {"name": "kv", "type": "capability", "properties": {"image": "ghcr.io/x/kv:1"}}
            ]
        }
    })
}

pub fn parse(doc: &Value) -> Result<Parsed, Vec<Diagnostic>> {
    let bytes = serde_json::to_vec(doc).unwrap();
    parse_manifest(&bytes, Format::Json, &Limits::default()).map_err(|e| e.diagnostics)
}

/// Mutates the base manifest and returns every diagnostic of the rejection.
pub fn rejected(mutate: impl FnOnce(&mut Value)) -> Vec<Diagnostic> {
    let mut doc = base();
    mutate(&mut doc);
    match parse(&doc) {
        Ok(p) => {
            panic!("expected a rejection, got a valid manifest with warnings {:#?}", p.warnings)
        }
        Err(d) => d,
    }
}

pub fn at<'a>(v: &'a mut Value, pointer: &str) -> &'a mut Value {
    v.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in the base manifest"))
}

#[track_caller]
pub fn assert_reported(diags: &[Diagnostic], severity: Severity, rule: &str, path: &str) {
    assert!(
        diags.iter().any(|d| d.severity == severity && d.rule == rule && d.path == path),
        "expected {severity} {rule} at `{path}`, got:\n{}",
        diags
            .iter()
            .map(|d| format!("  {} {} {}", d.severity, d.rule, d))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[track_caller]
pub fn assert_error(diags: &[Diagnostic], rule: &str, path: &str) {
    assert_reported(diags, Severity::Error, rule, path);
}
