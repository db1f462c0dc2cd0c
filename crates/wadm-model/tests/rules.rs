//! One invalid manifest per cross-field rule (names, ids, links, configs, secrets, shared
//! references, warnings): each asserts the exact rule and path reported.

mod common;

use common::*;
use serde_json::json;
use wadm_model::{Severity, Source};

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
fn an_overlong_application_name_is_refused_without_being_echoed() {
    let huge = "a".repeat(900 * 1024);
    let d = rejected(|v| *at(v, "/metadata/name") = json!(huge.clone()));
    assert_error(&d, "bad-name", "metadata.name");
    let text = d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("at most 128 bytes") && text.len() < 1_000, "{}", &text[..200]);
    let mut doc = base();
    *at(&mut doc, "/metadata/name") = json!("a".repeat(wadm_model::names::MAX_APP_NAME_LEN));
    assert!(parse(&doc).is_ok(), "128 bytes is fine");
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

/// Every name a manifest introduces that becomes a subject token or part of a storage key is
/// bounded: `(pointer, path)` for each, set to 5,000 bytes, is refused at its path, and the name
/// is not echoed.
#[test]
fn overlong_names_are_refused_at_their_paths() {
    let huge = "n".repeat(5_000);
    let cases = [
        ("/spec/components/0/name", "spec.components[0].name"),
        (
            "/spec/components/0/properties/config/0/name",
            "spec.components[0].properties.config[0].name",
        ),
        (
            "/spec/components/0/properties/secrets/0/name",
            "spec.components[0].properties.secrets[0].name",
        ),
        (
            "/spec/components/0/traits/1/properties/namespace",
            "spec.components[0].traits[1].properties.namespace",
        ),
        (
            "/spec/components/0/traits/1/properties/package",
            "spec.components[0].traits[1].properties.package",
        ),
        (
            "/spec/components/0/traits/1/properties/interfaces/0",
            "spec.components[0].traits[1].properties.interfaces[0]",
        ),
        (
            "/spec/components/0/traits/1/properties/target/name",
            "spec.components[0].traits[1].properties.target.name",
        ),
        (
            "/spec/components/0/traits/1/properties/target/config/0/name",
            "spec.components[0].traits[1].properties.target.config[0].name",
        ),
        ("/spec/components/1/name", "spec.components[1].name"),
    ];
    for (pointer, path) in cases {
        let d = rejected(|v| *at(v, pointer) = json!(huge.clone()));
        assert_error(&d, "name-too-long", path);
        let text = d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n");
        assert!(!text.contains(&huge), "{pointer}: the name is echoed");
        assert!(text.contains("at most 256 bytes (this one has 5000)"), "{pointer}: {text:.300}");
    }
    let d = rejected(|v| {
        let link = at(v, "/spec/components/0/traits/1/properties").as_object_mut().unwrap();
        link.insert("name".into(), json!(huge.clone()));
    });
    assert_error(&d, "name-too-long", "spec.components[0].traits[1].properties.name");
    let d = rejected(|v| {
        let props = at(v, "/spec/components/1/properties").as_object_mut().unwrap();
        props.insert("id".into(), json!(huge.clone()));
    });
    assert_error(&d, "name-too-long", "spec.components[1].properties.id");
    let d = rejected(|v| {
        let config = at(v, "/spec/components/0/properties/config").as_array_mut().unwrap();
        config.push(json!({"name": huge.clone()}));
    });
    assert_error(&d, "name-too-long", "spec.components[0].properties.config[1].name");
    let d = rejected(|v| {
        *at(v, "/spec/components/1/properties") =
            json!({"application": {"name": huge.clone(), "component": huge.clone()}});
    });
    assert_error(&d, "name-too-long", "spec.components[1].properties.application.name");
    assert_error(&d, "name-too-long", "spec.components[1].properties.application.component");
}

/// A name within the bound whose derived lattice name (application name, `-`, name) is past it
/// is refused too: the derived name is what reaches subjects and keys.
#[test]
fn derived_names_past_the_bound_are_refused() {
    let app = "a".repeat(wadm_model::names::MAX_APP_NAME_LEN);
    let name = "n".repeat(200);
    let cases = [
        ("/spec/components/1/name", "spec.components[1].name", "the component id"),
        (
            "/spec/components/0/properties/config/0/name",
            "spec.components[0].properties.config[0].name",
            "the config's lattice name",
        ),
        (
            "/spec/components/0/properties/secrets/0/name",
            "spec.components[0].properties.secrets[0].name",
            "the secret's config name",
        ),
    ];
    for (pointer, path, what) in cases {
        let d = rejected(|v| {
            *at(v, "/metadata/name") = json!(app.clone());
            *at(v, pointer) = json!(name.clone());
        });
        assert_error(&d, "name-too-long", path);
        assert!(d.iter().any(|x| x.to_string().contains(what)), "{d:#?}");
    }
    // At the bound exactly: a 128-byte application and a 127-byte name derive 256 bytes.
    let mut doc = base();
    *at(&mut doc, "/metadata/name") = json!(app.clone());
    *at(&mut doc, "/spec/components/1/name") = json!("k".repeat(127));
    *at(&mut doc, "/spec/components/0/traits/1/properties/target/name") = json!("k".repeat(127));
    let parsed = parse(&doc).unwrap();
    assert_eq!(parsed.app.components[1].id.len(), wadm_model::names::MAX_NAME_LEN);
}
