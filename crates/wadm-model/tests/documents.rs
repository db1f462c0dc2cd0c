//! Shape of the document: sizes, encodings, syntax, duplicate keys, unknown keys, wrong types
//! and numbers at the integer limits; each asserts the exact rule and path reported.

mod common;

use common::*;
use serde_json::json;
use wadm_model::{Format, Limits, Scaler, parse_manifest};

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
    let yaml = include_str!("../../../fixtures/manifests/echo.yaml").replacen(
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
    let yaml = include_str!("../../../fixtures/manifests/custom.yaml").replacen(
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

#[test]
fn numbers_and_booleans_where_text_is_expected_are_errors_at_their_path() {
    let hello = include_str!("../../../fixtures/manifests/hello.yaml");
    // `version: 1.10` would silently become "1.1"; upstream's schema refuses it.
    let yaml = hello.replacen("description: 'HTTP hello world demo'", "version: 1.10", 1);
    let err = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap_err();
    assert_error(&err.diagnostics, "wrong-type", "metadata.annotations.version");
    let text = err.diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
    assert!(text.contains("quote it (\"1.1\")"), "{text}");
    // A link namespace of 5 is not "5".
    let yaml = hello.replacen("namespace: wasi", "namespace: 5", 1);
    assert_ne!(yaml, hello, "the manifest has a link namespace");
    let err = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap_err();
    assert!(
        err.diagnostics.iter().any(|d| d.rule == "wrong-type" && d.path.ends_with(".namespace")),
        "{:#?}",
        err.diagnostics
    );
}

#[test]
fn empty_entries_and_missing_objects_are_reported_once() {
    let yaml = "apiVersion: core.oam.dev/v1beta1\nkind: Application\nmetadata:\n  name: x\nspec:\n  components:\n    - name: a\n      type: component\n    - null\n";
    let err = parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap_err();
    let d = &err.diagnostics;
    assert_error(d, "missing-field", "spec.components[0].properties");
    assert_error(d, "empty-entry", "spec.components[1]");
    assert_eq!(d.len(), 2, "{d:#?}");
}

#[test]
fn rollout_trait_is_read_validated_and_written_back_canonically() {
    let with = |props: serde_json::Value| {
        move |v: &mut serde_json::Value| {
            at(v, "/spec/components/0/traits")
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "rollout", "properties": props}));
        }
    };
    let mut doc = base();
    with(json!({"max_parallel": 2, "min_healthy_time": "1500ms"}))(&mut doc);
    let parsed = parse(&doc).unwrap();
    let rollout = parsed.app.components[0].rollout.expect("read");
    assert_eq!((rollout.max_parallel, rollout.min_healthy_time_ms), (2, 1500));
    let wire = serde_json::to_value(&parsed.manifest).unwrap();
    let written = &wire["spec"]["components"][0]["traits"][2];
    assert_eq!(
        written,
        &json!({"type": "rollout", "properties": {"max_parallel": 2, "min_healthy_time": "1500ms"}})
    );
    // Whole seconds, given as a number, are written as "Ns"; the default is one host at a time.
    let mut doc = base();
    with(json!({"min_healthy_time": 30}))(&mut doc);
    let parsed = parse(&doc).unwrap();
    let rollout = parsed.app.components[0].rollout.unwrap();
    assert_eq!((rollout.max_parallel, rollout.min_healthy_time_ms), (1, 30_000));

    let path = "spec.components[0].traits[2].properties";
    let d = rejected(with(json!({"max_parallel": 0})));
    assert_error(&d, "number-out-of-range", &format!("{path}.max_parallel"));
    let d = rejected(with(json!({"min_healthy_time": "soon"})));
    assert_error(&d, "invalid-duration", &format!("{path}.min_healthy_time"));
    let d = rejected(with(json!({"min_healthy_time": "48h"})));
    assert_error(&d, "number-out-of-range", &format!("{path}.min_healthy_time"));
    let d = rejected(with(json!({"canary": 0})));
    assert_error(&d, "number-out-of-range", &format!("{path}.canary"));
    // A deadline and auto-revert: read, written back, validated by path.
    let mut doc = base();
    with(json!({"min_healthy_time": "2s", "healthy_deadline": "1m", "auto_revert": true}))(
        &mut doc,
    );
    let parsed = parse(&doc).unwrap();
    let rollout = parsed.app.components[0].rollout.unwrap();
    assert_eq!((rollout.healthy_deadline_ms, rollout.auto_revert), (Some(60_000), true));
    let wire = serde_json::to_value(&parsed.manifest).unwrap();
    let written = &wire["spec"]["components"][0]["traits"][2]["properties"];
    assert_eq!(
        (&written["healthy_deadline"], &written["auto_revert"]),
        (&json!("60s"), &json!(true))
    );
    let d = rejected(with(json!({"auto_revert": "yes"})));
    assert_error(&d, "wrong-type", &format!("{path}.auto_revert"));
    let d = rejected(with(json!({"healthy_deadline": 0})));
    assert_error(&d, "number-out-of-range", &format!("{path}.healthy_deadline"));
    let d = rejected(with(json!({"min_healthy_time": "30s", "healthy_deadline": "10s"})));
    assert_error(&d, "number-out-of-range", &format!("{path}.healthy_deadline"));
    let d = rejected(with(json!({"healthy_deadline": "later"})));
    assert_error(&d, "invalid-duration", &format!("{path}.healthy_deadline"));
    let d = rejected(with(json!({"max_unavailable": -1})));
    assert_error(&d, "number-out-of-range", &format!("{path}.max_unavailable"));
    let d = rejected(with(json!({"max_unavailable_hosts": 1})));
    assert_error(&d, "unknown-field", &format!("{path}.max_unavailable_hosts"));
    let mut doc = base();
    with(json!({"max_parallel": 3, "max_unavailable": 1}))(&mut doc);
    let parsed = parse(&doc).unwrap();
    assert_eq!(parsed.app.components[0].rollout.unwrap().max_replacing(), 1);
    let wire = serde_json::to_value(&parsed.manifest).unwrap();
    assert_eq!(wire["spec"]["components"][0]["traits"][2]["properties"]["max_unavailable"], 1);
    let d = rejected(|v| {
        at(v, "/spec/components/1")["traits"] =
            json!([{"type": "rollout", "properties": {"max_unavailable": 0}}]);
    });
    assert_error(
        &d,
        "unsatisfiable-rollout",
        "spec.components[1].traits[0].properties.max_unavailable",
    );
    // On a provider too (its image changes host by host as well); only once per entry.
    let mut doc = base();
    at(&mut doc, "/spec/components/1")["traits"] =
        json!([{"type": "rollout", "properties": {"max_parallel": 2}}]);
    let parsed = parse(&doc).unwrap();
    assert_eq!(parsed.app.components[1].rollout.map(|r| r.max_parallel), Some(2));
    let d = rejected(|v| {
        with(json!({}))(v);
        with(json!({}))(v);
    });
    assert_error(&d, "duplicate-rollout", "spec.components[0].traits[3].type");
}

#[test]
fn placement_settings_needs_and_anti_affinity_are_read_validated_and_written_back() {
    let mut doc = base();
    *at(&mut doc, "/spec/components/0/traits/0/properties") =
        json!({"instances": 4, "placement": "binpack", "max_per_host": 2, "min_hosts": 2});
    at(&mut doc, "/spec/components/0/properties")["needs"] = json!({"memory_mib": 64});
    at(&mut doc, "/spec/components/0/traits")
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "anti-affinity", "properties": {"components": ["kv"]}}));
    let parsed = parse(&doc).unwrap();
    let web = &parsed.app.components[0];
    let spec = web.scalers[0].spec();
    assert_eq!(spec.placement, wadm_model::PlacementPolicy::Binpack);
    assert_eq!((spec.max_per_host, spec.min_hosts), (Some(2), Some(2)));
    assert_eq!(web.needs.get("memory_mib"), Some(&64));
    assert_eq!(web.avoid, vec!["kv".to_string()]);
    // Written back as read, and read again to the same value.
    let wire = serde_json::to_value(&parsed.manifest).unwrap();
    let again = parse(&wire).unwrap();
    assert_eq!(again.app.components[0], parsed.app.components[0]);

    let scaler = "spec.components[0].traits[0].properties";
    let set = |props: serde_json::Value| {
        move |v: &mut serde_json::Value| *at(v, "/spec/components/0/traits/0/properties") = props
    };
    let d = rejected(set(json!({"instances": 2, "placement": "random"})));
    assert_error(&d, "bad-placement", &format!("{scaler}.placement"));
    let d = rejected(set(json!({"instances": 2, "max_per_host": 0})));
    assert_error(&d, "number-out-of-range", &format!("{scaler}.max_per_host"));
    let d = rejected(set(json!({"instances": 2, "min_hosts": 3})));
    assert_error(&d, "unsatisfiable-placement", &format!("{scaler}.min_hosts"));
    let d = rejected(|v| {
        at(v, "/spec/components/0/traits/0")["type"] = json!("daemonscaler");
        at(v, "/spec/components/0/traits/0/properties")["max_per_host"] = json!(1);
    });
    assert_error(&d, "unsatisfiable-placement", &format!("{scaler}.max_per_host"));
    let d = rejected(|v| {
        at(v, "/spec/components/1")["traits"] =
            json!([{"type": "spreadscaler", "properties": {"instances": 1, "max_per_host": 1}}]);
    });
    assert_error(
        &d,
        "max-per-host-on-capability",
        "spec.components[1].traits[0].properties.max_per_host",
    );

    let needs = "spec.components[0].properties.needs";
    let with_needs = |n: serde_json::Value| {
        move |v: &mut serde_json::Value| at(v, "/spec/components/0/properties")["needs"] = n
    };
    let d = rejected(with_needs(json!({"Memory": 1})));
    assert_error(&d, "bad-resource-name", &format!("{needs}.Memory"));
    let d = rejected(with_needs(json!({"instances": 1})));
    assert_error(&d, "reserved-resource", &format!("{needs}.instances"));
    let d = rejected(with_needs(json!({"memory_mib": 0})));
    assert_error(&d, "number-out-of-range", &format!("{needs}.memory_mib"));
    let d = rejected(with_needs(json!({"memory_mib": "64Mi"})));
    assert_error(&d, "wrong-type", &format!("{needs}.memory_mib"));
    let d = rejected(with_needs(json!(["memory_mib"])));
    assert_error(&d, "wrong-type", needs);

    let traits = "spec.components[0].traits[2].properties.components";
    let with_apart = |names: serde_json::Value| {
        move |v: &mut serde_json::Value| {
            at(v, "/spec/components/0/traits")
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "anti-affinity", "properties": {"components": names}}));
        }
    };
    let d = rejected(with_apart(json!(["nope"])));
    assert_error(&d, "anti-affinity-unknown", &format!("{traits}[0]"));
    let d = rejected(with_apart(json!(["web"])));
    assert_error(&d, "anti-affinity-self", &format!("{traits}[0]"));
    let d = rejected(with_apart(json!([])));
    assert_error(&d, "empty-value", traits);
}
