//! A link for the unit tests: `source` → `target` on `wasi:http/incoming-handler`.

use wadm_protocol::Link;

pub(crate) fn http_link(source: &str, target: &str) -> Link {
    Link {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "http".into(),
        interfaces: vec!["incoming-handler".into()],
        source_config: vec![],
        target_config: vec![],
    }
}
