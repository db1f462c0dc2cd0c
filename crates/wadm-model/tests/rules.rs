//! One invalid manifest per validation rule: each asserts the exact rule and path reported.

use serde_json::{Value, json};
use wadm_model::{Diagnostic, Format, Limits, Parsed, Scaler, Severity, Source, parse_manifest};

/// A valid manifest exercising most features; tests mutate a copy.
fn base() -> Value {
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

fn parse(doc: &Value) -> Result<Parsed, Vec<Diagnostic>> {
    let bytes = serde_json::to_vec(doc).unwrap();
    parse_manifest(&bytes, Format::Json, &Limits::default()).map_err(|e| e.diagnostics)
}

/// Mutates the base manifest and returns every diagnostic of the rejection.
fn rejected(mutate: impl FnOnce(&mut Value)) -> Vec<Diagnostic> {
    let mut doc = base();
    mutate(&mut doc);
    match parse(&doc) {
        Ok(p) => {
            panic!("expected a rejection, got a valid manifest with warnings {:#?}", p.warnings)
        }
        Err(d) => d,
    }
}

fn at<'a>(v: &'a mut Value, pointer: &str) -> &'a mut Value {
    v.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in the base manifest"))
}

#[track_caller]
fn assert_reported(diags: &[Diagnostic], severity: Severity, rule: &str, path: &str) {
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
fn assert_error(diags: &[Diagnostic], rule: &str, path: &str) {
    assert_reported(diags, Severity::Error, rule, path);
}

#[test]
fn the_base_manifest_is_valid_with_derived_names() {
    let parsed = parse(&base()).unwrap();
    assert!(parsed.warnings.is_empty(), "{:#?}", parsed.warnings);
    let web = parsed.app.component("web").unwrap();
    assert_eq!(web.id, "rules_app-web");
    assert_eq!(web.config[0].lattice_name, "rules_app-settings");
    assert_eq!(web.secrets[0].lattice_name, "SECRET_rules_app-db_pass");
    assert_eq!(web.links[0].target_config[0].lattice_name, "rules_app-kv_conn");
    assert_eq!(web.links[0].name, "default");
    let kv = parsed.app.component("kv").unwrap();
    assert_eq!(kv.scalers.len(), 1, "a capability without a scaler gets an implicit spread");
    assert_eq!(kv.scalers[0].spec().instances, 1);
    assert_eq!(parsed.app.version.as_deref(), Some("v1"));
    assert_eq!(parsed.manifest.version(), Some("v1"));
}

#[test]
fn external_config_keeps_its_name_and_explicit_ids_are_used() {
    let mut doc = base();
    *at(&mut doc, "/spec/components/0/properties/config/0") = json!({"name": "Shared-Config"});
    at(&mut doc, "/spec/components/1/properties")
        .as_object_mut()
        .unwrap()
        .insert("id".into(), json!("KV_ID"));
    let app = parse(&doc).unwrap().app;
    assert_eq!(app.components[0].config[0].lattice_name, "Shared-Config");
    assert_eq!(app.components[0].config[0].properties, None);
    assert_eq!(app.components[1].id, "KV_ID");
    assert!(app.components[1].explicit_id);
}

#[test]
fn bad_application_name() {
    let d = rejected(|v| *at(v, "/metadata/name") = json!("my app!"));
    assert_error(&d, "bad-name", "metadata.name");
}

#[test]
fn version_latest_is_reserved() {
    let d = rejected(|v| *at(v, "/metadata/annotations/version") = json!("latest"));
    assert_error(&d, "reserved-version", "metadata.annotations.version");
}

#[test]
fn bad_label_and_annotation_keys() {
    let d = rejected(|v| {
        at(v, "/metadata").as_object_mut().unwrap().insert("labels".into(), json!({"-bad": "x"}));
        at(v, "/metadata/annotations")
            .as_object_mut()
            .unwrap()
            .insert("Example.com/ok".into(), json!("x"));
    });
    assert_error(&d, "bad-label-key", "metadata.labels[\"-bad\"]");
    assert_error(&d, "bad-label-key", "metadata.annotations[\"Example.com/ok\"]");
}

#[test]
fn duplicate_component_names() {
    let d = rejected(|v| *at(v, "/spec/components/1/name") = json!("web"));
    assert_error(&d, "duplicate-component-name", "spec.components[1].name");
}

#[test]
fn duplicate_explicit_ids_across_components_and_capabilities() {
    let d = rejected(|v| {
        at(v, "/spec/components/0/properties")
            .as_object_mut()
            .unwrap()
            .insert("id".into(), json!("same"));
        at(v, "/spec/components/1/properties")
            .as_object_mut()
            .unwrap()
            .insert("id".into(), json!("same"));
    });
    assert_error(&d, "duplicate-component-id", "spec.components[1].properties.id");
}

#[test]
fn link_target_not_in_the_manifest() {
    let d = rejected(|v| {
        *at(v, "/spec/components/0/traits/1/properties/target/name") = json!("nowhere")
    });
    assert_error(&d, "link-target-missing", "spec.components[0].traits[1].properties.target.name");
}

#[test]
fn legacy_string_target_not_in_the_manifest() {
    let d =
        rejected(|v| *at(v, "/spec/components/0/traits/1/properties/target") = json!("nowhere"));
    assert_error(&d, "link-target-missing", "spec.components[0].traits[1].properties.target");
}

#[test]
fn duplicate_links_from_one_source() {
    let d = rejected(|v| {
        let mut link = at(v, "/spec/components/0/traits/1").clone();
        link["properties"]["target"] = json!({"name": "kv"});
        link["properties"]["interfaces"] = json!(["atomics", "store"]);
        at(v, "/spec/components/0/traits").as_array_mut().unwrap().push(link);
    });
    assert_error(&d, "duplicate-link", "spec.components[0].traits[2].properties.interfaces[1]");
    assert_eq!(d.iter().filter(|d| d.rule == "duplicate-link").count(), 1);
}

#[test]
fn links_with_different_names_are_not_duplicates() {
    let mut doc = base();
    let mut link = at(&mut doc, "/spec/components/0/traits/1").clone();
    link["properties"]["target"] = json!({"name": "kv"});
    link["properties"]["name"] = json!("second");
    at(&mut doc, "/spec/components/0/traits").as_array_mut().unwrap().push(link);
    let parsed = parse(&doc).unwrap();
    assert_eq!(parsed.app.components[0].links[1].name, "second");
}

#[test]
fn owned_link_config_names_reused_across_links() {
    let d = rejected(|v| {
        at(v, "/spec/components/1").as_object_mut().unwrap().insert(
            "traits".into(),
            json!([{"type": "link", "properties": {
                "namespace": "wasi", "package": "http", "interfaces": ["incoming-handler"],
                "target": "web",
                "source": {"config": [{"name": "kv-conn", "properties": {"url": "redis://x"}}]}
            }}]),
        );
    });
    assert_error(
        &d,
        "duplicate-link-config-name",
        "spec.components[1].traits[0].properties.source.config[0].name",
    );
}

#[test]
fn owned_config_defined_twice_with_different_values() {
    let d = rejected(|v| {
        at(v, "/spec/components/1/properties")
            .as_object_mut()
            .unwrap()
            .insert("config".into(), json!([{"name": "settings", "properties": {"lang": "fr"}}]));
    });
    assert_error(&d, "conflicting-config", "spec.components[1].properties.config[0].name");
}

#[test]
fn secret_mapped_to_a_missing_policy() {
    let d = rejected(|v| {
        *at(v, "/spec/components/0/properties/secrets/0/properties/policy") = json!("nope")
    });
    assert_error(
        &d,
        "secret-policy-missing",
        "spec.components[0].properties.secrets[0].properties.policy",
    );
}

#[test]
fn secret_mapped_to_a_non_secret_policy() {
    let d = rejected(|v| *at(v, "/spec/policies/0/type") = json!("policy.other/v1"));
    assert_error(
        &d,
        "secret-policy-wrong-type",
        "spec.components[0].properties.secrets[0].properties.policy",
    );
}

#[test]
fn secret_mapped_to_a_policy_without_backend() {
    let d = rejected(|v| *at(v, "/spec/policies/0/properties") = json!({"role": "x"}));
    assert_error(
        &d,
        "secret-policy-without-backend",
        "spec.components[0].properties.secrets[0].properties.policy",
    );
}

#[test]
fn both_image_and_application() {
    let d = rejected(|v| {
        at(v, "/spec/components/1/properties")
            .as_object_mut()
            .unwrap()
            .insert("application".into(), json!({"name": "shared", "component": "kv"}));
    });
    assert_error(&d, "image-xor-application", "spec.components[1].properties");
}

#[test]
fn neither_image_nor_application() {
    let d = rejected(|v| {
        at(v, "/spec/components/1/properties").as_object_mut().unwrap().remove("image");
    });
    assert_error(&d, "image-xor-application", "spec.components[1].properties");
}

#[test]
fn shared_reference_with_config_secrets_or_scaler() {
    let d = rejected(|v| {
        let props = at(v, "/spec/components/0/properties").as_object_mut().unwrap();
        props.remove("image");
        props.insert("application".into(), json!({"name": "shared", "component": "web"}));
    });
    assert_error(&d, "shared-reference-with-settings", "spec.components[0].properties.config");
    assert_error(&d, "shared-reference-with-settings", "spec.components[0].properties.secrets");
    assert_error(&d, "shared-reference-with-settings", "spec.components[0].traits[0].type");
}

#[test]
fn shared_reference_alone_is_valid_and_may_be_a_link_target() {
    let mut doc = base();
    *at(&mut doc, "/spec/components/1/properties") =
        json!({"application": {"name": "infra", "component": "kv"}});
    let parsed = parse(&doc).unwrap();
    let kv = parsed.app.component("kv").unwrap();
    assert_eq!(kv.source, Source::Shared { application: "infra".into(), component: "kv".into() });
    assert!(kv.scalers.is_empty(), "a shared reference runs nothing");
}

#[test]
fn scaler_properties_that_do_not_fit() {
    let d = rejected(|v| *at(v, "/spec/components/0/traits/0/properties") = json!({"instance": 2}));
    assert_error(&d, "unknown-field", "spec.components[0].traits[0].properties.instance");
    assert_error(&d, "missing-field", "spec.components[0].traits[0].properties.instances");
}

#[test]
fn instances_at_and_beyond_the_integer_limits() {
    let path = "spec.components[0].traits[0].properties.instances";
    let too_big = rejected(|v| {
        *at(v, "/spec/components/0/traits/0/properties/instances") = json!(4_294_967_296u64)
    });
    assert_error(&too_big, "number-out-of-range", path);
    let negative =
        rejected(|v| *at(v, "/spec/components/0/traits/0/properties/instances") = json!(-1));
    assert_error(&negative, "number-out-of-range", path);
    let fraction =
        rejected(|v| *at(v, "/spec/components/0/traits/0/properties/instances") = json!(1.5));
    assert_error(&fraction, "not-a-whole-number", path);
    let text =
        rejected(|v| *at(v, "/spec/components/0/traits/0/properties/instances") = json!("two"));
    assert_error(&text, "wrong-type", path);
    let mut doc = base();
    *at(&mut doc, "/spec/components/0/traits/0/properties/instances") = json!(u32::MAX);
    let app = parse(&doc).unwrap().app;
    assert_eq!(app.components[0].scalers[0].spec().instances, u32::MAX);
}

#[test]
fn huge_yaml_numbers_are_rejected_with_a_path() {
    let yaml = include_str!("../../../../shared/manifests/echo.yaml").replacen(
        "instances: 1",
        "instances: 123456789012345678901234567890123456789012",
        1,
    );
    let err = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap_err();
    assert!(
        err.diagnostics
            .iter()
            .any(|d| d.path == "spec.components[0].traits[0].properties.instances"),
        "{:#?}",
        err.diagnostics
    );
}

#[test]
fn replicas_is_an_alias_of_instances() {
    let mut doc = base();
    *at(&mut doc, "/spec/components/0/traits/0/properties") = json!({"replicas": 3});
    let app = parse(&doc).unwrap().app;
    assert_eq!(app.components[0].scalers[0].spec().instances, 3);
    let d = rejected(|v| {
        *at(v, "/spec/components/0/traits/0/properties") = json!({"replicas": 3, "instances": 3})
    });
    assert_error(&d, "instances-and-replicas", "spec.components[0].traits[0].properties.replicas");
}

#[test]
fn spreads_with_duplicate_names_or_only_zero_weights() {
    let dup = rejected(|v| {
        at(v, "/spec/components/0/traits/0/properties")
            .as_object_mut()
            .unwrap()
            .insert("spread".into(), json!([{"name": "a"}, {"name": "a"}]));
    });
    assert_error(
        &dup,
        "duplicate-spread-name",
        "spec.components[0].traits[0].properties.spread[1].name",
    );
    let zero = rejected(|v| {
        at(v, "/spec/components/0/traits/0/properties").as_object_mut().unwrap().insert(
            "spread".into(),
            json!([{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]),
        );
    });
    assert_error(&zero, "zero-spread-weights", "spec.components[0].traits[0].properties.spread");
}

#[test]
fn daemonscaler_and_spread_weights_are_read() {
    let mut doc = base();
    *at(&mut doc, "/spec/components/0/traits/0") = json!({"type": "daemonscaler", "properties": {
        "instances": 2, "spread": [{"name": "east", "requirements": {"zone": "east"}, "weight": 7}]
    }});
    let app = parse(&doc).unwrap().app;
    let Scaler::Daemon(spec) = &app.components[0].scalers[0] else { panic!("not a daemonscaler") };
    assert_eq!(spec.spreads[0].weight, 7);
    assert_eq!(spec.spreads[0].requirements.get("zone").map(String::as_str), Some("east"));
}

#[test]
fn link_properties_that_do_not_fit() {
    let d = rejected(|v| {
        let props = at(v, "/spec/components/0/traits/1/properties").as_object_mut().unwrap();
        props.remove("namespace");
        props.insert("interfaces".into(), json!([]));
        props.insert("colour".into(), json!("red"));
    });
    assert_error(&d, "missing-field", "spec.components[0].traits[1].properties.namespace");
    assert_error(&d, "empty-interfaces", "spec.components[0].traits[1].properties.interfaces");
    assert_error(&d, "unknown-field", "spec.components[0].traits[1].properties.colour");
}

#[test]
fn unknown_top_level_and_property_keys() {
    let d = rejected(|v| {
        v.as_object_mut().unwrap().insert("status".into(), json!({}));
        at(v, "/spec/components/1/properties")
            .as_object_mut()
            .unwrap()
            .insert("imagee".into(), json!("x"));
    });
    assert_error(&d, "unknown-field", "status");
    assert_error(&d, "unknown-field", "spec.components[1].properties.imagee");
}

#[test]
fn wrong_api_version_kind_and_component_type() {
    let d = rejected(|v| {
        *at(v, "/apiVersion") = json!("v2");
        *at(v, "/kind") = json!("Deployment");
        *at(v, "/spec/components/1/type") = json!("provider");
    });
    assert_error(&d, "bad-api-version", "apiVersion");
    assert_error(&d, "bad-kind", "kind");
    assert_error(&d, "bad-component-type", "spec.components[1].type");
}

#[test]
fn warnings_are_reported_on_valid_manifests() {
    let mut doc = base();
    *at(&mut doc, "/spec/components/0/traits/1/properties/interfaces") = json!(["stor"]);
    let props = at(&mut doc, "/spec/components/0/traits/1/properties").as_object_mut().unwrap();
    props.insert("target".into(), json!("kv"));
    props.insert(
        "target_config".into(),
        json!([{"name": "kv-conn", "properties": {"url": "redis://x"}}]),
    );
    at(&mut doc, "/spec/components/0/traits")
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "autoscaler", "properties": {"max": 3}}));
    let parsed = parse(&doc).unwrap();
    let w = &parsed.warnings;
    assert_reported(
        w,
        Severity::Warning,
        "unknown-interface",
        "spec.components[0].traits[1].properties.interfaces[0]",
    );
    assert_reported(
        w,
        Severity::Warning,
        "deprecated-link-config",
        "spec.components[0].traits[1].properties.target_config",
    );
    assert_reported(
        w,
        Severity::Warning,
        "unknown-trait-type",
        "spec.components[0].traits[2].type",
    );
    let link = &parsed.app.components[0].links[0];
    assert_eq!(link.target, "kv");
    assert_eq!(link.target_config[0].lattice_name, "rules_app-kv_conn");
    assert_eq!(parsed.app.components[0].other_traits[0].trait_type, "autoscaler");
}

#[test]
fn every_error_is_reported_at_once() {
    let d = rejected(|v| {
        *at(v, "/metadata/name") = json!("bad name");
        *at(v, "/spec/components/1/name") = json!("web");
        *at(v, "/spec/components/0/traits/0/properties/instances") = json!(-5);
        *at(v, "/spec/policies/0/properties") = json!({});
    });
    for rule in [
        "bad-name",
        "duplicate-component-name",
        "number-out-of-range",
        "secret-policy-without-backend",
    ] {
        assert!(d.iter().any(|x| x.rule == rule), "{rule} missing from {d:#?}");
    }
}

#[test]
fn duplicate_keys_are_errors_with_their_path() {
    let yaml = "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: a\n  name: b\nspec:\n  components: []\n";
    let err = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap_err();
    assert_error(&err.diagnostics, "duplicate-key", "metadata.name");
    let json = r#"{"apiVersion":"core.oam.dev/v1beta1","kind":"Application","kind":"Application","metadata":{"name":"a"},"spec":{"components":[]}}"#;
    let err = parse_manifest(json.as_bytes(), Format::Json, &Limits::default()).unwrap_err();
    assert_error(&err.diagnostics, "duplicate-key", "kind");
}

#[test]
fn documents_over_the_size_limit_are_refused_before_parsing() {
    let big = vec![b' '; 2 * 1024 * 1024];
    let err = parse_manifest(&big, Format::Auto, &Limits::default()).unwrap_err();
    assert_error(&err.diagnostics, "document-too-large", "");
    assert!(err.diagnostics[0].message.contains("1048576"), "{}", err.diagnostics[0].message);
}

#[test]
fn invalid_utf8_syntax_errors_and_deep_nesting_are_clear_errors() {
    let err = parse_manifest(b"metadata:\n  name: \xff\xfe\n", Format::Auto, &Limits::default())
        .unwrap_err();
    assert_error(&err.diagnostics, "invalid-utf8", "");
    let err = parse_manifest(b"{ not: [valid", Format::Auto, &Limits::default()).unwrap_err();
    assert_error(&err.diagnostics, "syntax", "");
    for deep in ["[".repeat(100_000), "a:\n".to_string() + &"- ".repeat(5000) + "x"] {
        let err = parse_manifest(deep.as_bytes(), Format::Auto, &Limits::default()).unwrap_err();
        assert!(err.diagnostics.iter().all(|d| d.is_error()), "{:#?}", err.diagnostics);
        let err = parse_manifest(deep.as_bytes(), Format::Json, &Limits::default()).unwrap_err();
        assert!(!err.diagnostics.is_empty());
    }
}

#[test]
fn wrong_types_are_reported_not_panicked_on() {
    let d = rejected(|v| {
        *at(v, "/metadata") = json!([1, 2]);
        *at(v, "/spec/components/0/traits") = json!("none");
        *at(v, "/spec/components/1/properties/image") = json!({"a": 1});
    });
    assert_error(&d, "wrong-type", "metadata");
    assert_error(&d, "wrong-type", "spec.components[0].traits");
    assert_error(&d, "wrong-type", "spec.components[1].properties.image");
}

#[test]
fn duplicate_keys_inside_unknown_traits_are_reported() {
    let yaml = include_str!("../../../../shared/manifests/custom.yaml").replacen(
        "scale_profile: mini",
        "scale_profile: mini\n            scale_profile: maxi",
        1,
    );
    let err = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap_err();
    assert_error(
        &err.diagnostics,
        "duplicate-key",
        "spec.components[0].traits[0].properties.scale_profile",
    );
}

#[test]
fn alias_bombs_are_refused() {
    let mut yaml = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 0..12 {
        let prev = if i == 0 { "a".to_string() } else { format!("l{}", i - 1) };
        yaml.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
    }
    let err = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap_err();
    assert!(err.diagnostics.iter().any(|d| d.rule == "syntax"), "{:#?}", err.diagnostics);
}
