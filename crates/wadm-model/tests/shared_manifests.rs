//! Every shared sample manifest validates, and survives model → JSON → model unchanged.

use std::path::PathBuf;

use wadm_model::{Format, Limits, Severity, parse_manifest, wire};

fn shared_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests"))
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(shared_dir())
        .expect("the shared manifests directory exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "json")))
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(out.len() >= 9, "expected the shared samples, found {}", out.len());
    out
}

#[test]
fn every_shared_manifest_is_valid() {
    for (name, bytes) in samples() {
        let parsed = parse_manifest(&bytes, Format::Auto, &Limits::default())
            .unwrap_or_else(|e| panic!("{name} is rejected: {:#?}", e.diagnostics));
        assert!(parsed.warnings.iter().all(|w| w.severity == Severity::Warning));
        if name == "custom.yaml" {
            let w = parsed
                .warnings
                .iter()
                .find(|w| w.rule == "unknown-trait-type")
                .expect("custom trait warned");
            assert_eq!(w.path, "spec.components[0].traits[0].type");
            assert!(
                w.message.contains("customscaler") && w.message.contains("userinfo"),
                "{}",
                w.message
            );
        } else {
            assert!(
                parsed.warnings.is_empty(),
                "{name}: unexpected warnings {:#?}",
                parsed.warnings
            );
        }
    }
}

#[test]
fn every_shared_manifest_round_trips_through_json_and_yaml() {
    for (name, bytes) in samples() {
        let parsed = parse_manifest(&bytes, Format::Auto, &Limits::default()).unwrap();
        let json = serde_json::to_vec(&parsed.app.to_wire()).unwrap();
        let again = parse_manifest(&json, Format::Json, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: canonical JSON rejected: {:#?}", e.diagnostics));
        assert_eq!(again.app, parsed.app, "{name}: model changed through JSON");
        let back: wire::Manifest =
            serde_json::from_slice(&json).expect("wire types read their own JSON");
        assert_eq!(back, parsed.manifest, "{name}: wire serde round trip");
        let yaml = serde_saphyr::to_string(&parsed.manifest).unwrap();
        let again = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap();
        assert_eq!(again.app, parsed.app, "{name}: model changed through YAML");
    }
}

#[test]
fn yaml_and_json_samples_of_one_app_agree() {
    let dir = shared_dir();
    let yaml = parse_manifest(
        &std::fs::read(dir.join("simple1.yaml")).unwrap(),
        Format::Yaml,
        &Limits::default(),
    );
    let json = parse_manifest(
        &std::fs::read(dir.join("simple1.json")).unwrap(),
        Format::Json,
        &Limits::default(),
    );
    assert_eq!(yaml.unwrap().app, json.unwrap().app);
}
