//! Deploy-time checks that need the other applications of the lattice. Pure.
//!
//! - An explicit component or provider id must not be used by another deployed application.
//! - A shared reference (`properties.application`) must name a deployed application that is
//!   marked shared and has that component.

use wadm_model::{Application, Source};

/// Every reason `app` cannot be deployed next to `deployed` (the other deployed applications of
/// the lattice, `app` itself excluded). Empty: it can.
pub fn deploy_conflicts(app: &Application, deployed: &[Application]) -> Vec<String> {
    let mut problems = Vec::new();
    for component in &app.components {
        match &component.source {
            Source::Image(_) if component.explicit_id => {
                for other in deployed.iter().filter(|o| o.name != app.name) {
                    let clash = other
                        .components
                        .iter()
                        .any(|c| matches!(c.source, Source::Image(_)) && c.id == component.id);
                    if clash {
                        problems.push(format!(
                            "spec.components[{}].properties.id: id {:?} is already used by deployed application {:?}",
                            component.name, component.id, other.name
                        ));
                    }
                }
            }
            Source::Image(_) => {}
            Source::Shared { application, component: target } => {
                let path = format!("spec.components[{}].properties.application", component.name);
                match deployed.iter().find(|o| &o.name == application) {
                    None => problems.push(format!(
                        "{path}: shared application {application:?} is not deployed"
                    )),
                    Some(shared) if !shared.shared => problems.push(format!(
                        "{path}: application {application:?} is not marked shared (annotation experimental.wasmcloud.dev/shared: \"true\")"
                    )),
                    Some(shared) if shared.component(target).is_none() => problems.push(format!(
                        "{path}: shared application {application:?} has no component {target:?}"
                    )),
                    Some(_) => {}
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use wadm_model::{Component, ComponentKind};

    fn component(name: &str, source: Source, id: Option<&str>) -> Component {
        Component {
            name: name.into(),
            kind: ComponentKind::Component,
            id: id.map(str::to_string).unwrap_or_else(|| format!("x-{name}")),
            explicit_id: id.is_some(),
            source,
            config: vec![],
            secrets: vec![],
            scalers: vec![],
            links: vec![],
            other_traits: vec![],
        }
    }

    fn app(name: &str, shared: bool, components: Vec<Component>) -> Application {
        Application {
            name: name.into(),
            version: Some("v1".into()),
            description: None,
            shared,
            annotations: Default::default(),
            labels: Default::default(),
            components,
            policies: vec![],
        }
    }

    fn image() -> Source {
        Source::Image("ghcr.io/x:1".into())
    }

    fn shared_ref(app: &str, component: &str) -> Source {
        Source::Shared { application: app.into(), component: component.into() }
    }

    #[test]
    fn explicit_id_clash_with_another_app() {
        let mine = app("a", false, vec![component("c", image(), Some("fixed"))]);
        let other = app("b", false, vec![component("d", image(), Some("fixed"))]);
        let problems = deploy_conflicts(&mine, std::slice::from_ref(&other));
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("\"fixed\"") && problems[0].contains("\"b\""), "{problems:?}");
        // Redeploying the same application is not a clash.
        assert!(deploy_conflicts(&mine, &[app("a", false, other.components.clone())]).is_empty());
        // A derived id is never checked.
        let derived = app("a", false, vec![component("c", image(), None)]);
        assert!(deploy_conflicts(&derived, &[other]).is_empty());
    }

    #[test]
    fn shared_references() {
        let mine = app("a", false, vec![component("r", shared_ref("lib", "comp"), None)]);
        let msg = |d: &[Application]| deploy_conflicts(&mine, d).join(" ");
        assert!(msg(&[]).contains("is not deployed"));
        assert!(
            msg(&[app("lib", false, vec![component("comp", image(), None)])])
                .contains("not marked shared")
        );
        assert!(
            msg(&[app("lib", true, vec![component("zzz", image(), None)])])
                .contains("no component")
        );
        assert_eq!(msg(&[app("lib", true, vec![component("comp", image(), None)])]), "");
    }
}
