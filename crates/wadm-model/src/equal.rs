//! Semantic equality of manifests: two manifests are the same application when their normal
//! forms are equal, the version annotation aside.
//!
//! The normal form is the validated [`Application`] (as [`Application::to_wire`] writes it):
//! defaults are filled (spread weight 100, link name `default`, a provider's implicit single
//! instance, the `default` spread), aliases resolved (`type: actor` is `component`, `replicas` is
//! `instances`, the legacy `target`/`source_config`/`target_config` forms), maps compared as maps
//! (key order never matters). Lists keep their order: components, traits, spreads, configs,
//! interfaces are ordered in a manifest.

use crate::app::{Application, VERSION_ANNOTATION};
use crate::wire;

/// Whether `a` and `b` describe the same application, whatever their versions.
pub fn same_content(a: &Application, b: &Application) -> bool {
    versionless(a) == versionless(b)
}

/// The normal form of `app` without its version annotation: what [`same_content`] compares.
pub fn normal_form(app: &Application) -> wire::Manifest {
    versionless(app).to_wire()
}

fn versionless(app: &Application) -> Application {
    let mut app = app.clone();
    app.version = None;
    app.annotations.remove(VERSION_ANNOTATION);
    app
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, Limits, parse_manifest};

    fn app(yaml: &str) -> Application {
        parse_manifest(yaml.as_bytes(), Format::Yaml, &Limits::default()).unwrap().app
    }

    const BASE: &str = "apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: demo
  annotations:
    version: v1
spec:
  components:
    - name: web
      type: component
      properties:
        image: ghcr.io/example/web:1
      traits:
        - type: spreadscaler
          properties:
            instances: 2
            spread:
              - name: east
                requirements:
                  zone: east
        - type: link
          properties:
            namespace: wasi
            package: keyvalue
            interfaces: [atomics]
            target:
              name: kv
    - name: kv
      type: capability
      properties:
        image: ghcr.io/example/kv:1
";

    #[test]
    fn defaults_aliases_and_versions_do_not_matter() {
        let base = app(BASE);
        let explicit = BASE
            .replace("version: v1", "version: v2")
            .replace("type: component", "type: actor")
            .replace("instances: 2", "replicas: 2")
            .replace("  zone: east\n", "  zone: east\n                weight: 100\n")
            .replace("target:\n              name: kv", "target: kv\n            name: default")
            + "      traits:\n        - type: spreadscaler\n          properties:\n            instances: 1\n";
        assert!(same_content(&base, &app(&explicit)), "{explicit}");
        assert_eq!(normal_form(&base), normal_form(&app(&explicit)));
    }

    #[test]
    fn real_changes_matter() {
        let base = app(BASE);
        for changed in [
            BASE.replace("web:1", "web:2"),
            BASE.replace("instances: 2", "instances: 3"),
            BASE.replace("zone: east", "zone: west"),
            BASE.replace("[atomics]", "[atomics, store]"),
            BASE.replace("    version: v1\n", "    version: v1\n    description: x\n"),
        ] {
            assert!(!same_content(&base, &app(&changed)), "{changed}");
        }
    }
}
