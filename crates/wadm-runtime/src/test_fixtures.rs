//! Fixtures for the unit tests: a link and a scale request.

use wadm_protocol::Link;
use wadm_protocol::ctl::ScaleComponentRequest;

/// A link `source` → `target` on `wasi:http/incoming-handler`.
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

/// Scale `component` (running `image`) to `count` on `host`: no annotations, config or limits.
pub(crate) fn scale_request(
    host: &str,
    component: &str,
    image: &str,
    count: u32,
) -> ScaleComponentRequest {
    ScaleComponentRequest {
        component_ref: image.into(),
        component_id: component.into(),
        count,
        host_id: host.into(),
        annotations: Default::default(),
        config: vec![],
        allow_update: false,
        component_limits: None,
    }
}
