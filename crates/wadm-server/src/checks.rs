//! Deploy-time checks that need the other applications of the lattice. Pure.
//!
//! - An explicit component or provider id must not be used by another deployed application.
//! - A shared reference (`properties.application`) to a deployed application must name one that is
//!   marked shared and has that component. A reference to an application that is not deployed is
//!   no error: the dependent waits for it (its status says so).
//! - A link must not have the lattice identity (source id, namespace, package, link name) of a link
//!   another deployed application declares: the lattice keeps one link per identity, so the second
//!   would silently replace the first. Only links from shared components can collide (derived ids
//!   are unique per application and explicit ids are checked above).

use wadm_model::{Application, Component, Source};

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
                    None => {}
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
    problems.extend(link_conflicts(app, deployed));
    problems
}

/// The shared applications `app` references that are not deployed (sorted, once each): deployed
/// now, it waits for them.
pub fn awaited_shared(app: &Application, deployed: &[Application]) -> Vec<String> {
    let mut awaited: Vec<String> = app
        .components
        .iter()
        .filter_map(|c| match &c.source {
            Source::Shared { application, .. } => Some(application),
            Source::Image(_) => None,
        })
        .filter(|a| !deployed.iter().any(|o| &o.name == *a))
        .cloned()
        .collect();
    awaited.sort();
    awaited.dedup();
    awaited
}

/// The deployed applications (other than `shared` itself) with a component referencing `shared`,
/// sorted, once each.
pub fn dependents(shared: &str, deployed: &[Application]) -> Vec<String> {
    let mut names: Vec<String> = deployed
        .iter()
        .filter(|o| o.name != shared)
        .filter(|o| {
            o.components.iter().any(
                |c| matches!(&c.source, Source::Shared { application, .. } if application == shared),
            )
        })
        .map(|o| o.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether a request that would undeploy the shared application `shared` may proceed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// No deployed application references it.
    Free,
    /// Deployed applications reference it and the request forces: proceed (they will wait).
    Forced(Vec<String>),
    /// Refused, with the message naming the dependents.
    Refused(String),
}

/// Decide an undeploy (or a delete that undeploys) of the shared application `shared`, given the
/// other deployed applications of the lattice.
pub fn removal(shared: &str, deployed: &[Application], force: bool) -> Removal {
    let users = dependents(shared, deployed);
    if users.is_empty() {
        Removal::Free
    } else if force {
        Removal::Forced(users)
    } else {
        Removal::Refused(format!(
            "shared application {shared} is used by deployed applications: {}; undeploy them first or pass force",
            users.join(", ")
        ))
    }
}

/// The lattice id of a link source: its own id, or the id of the shared component it references.
fn source_id<'a>(component: &'a Component, deployed: &'a [Application]) -> Option<&'a str> {
    match &component.source {
        Source::Image(_) => Some(&component.id),
        Source::Shared { application, component: target } => deployed
            .iter()
            .find(|o| &o.name == application)
            .and_then(|shared| shared.component(target))
            .map(|c| c.id.as_str()),
    }
}

/// Links of `app` whose lattice identity another deployed application already declares.
fn link_conflicts(app: &Application, deployed: &[Application]) -> Vec<String> {
    let identities = |a: &'_ Application| {
        a.components
            .iter()
            .flat_map(|c| c.links.iter().map(move |l| (c, l)))
            .filter_map(|(c, l)| {
                let source = source_id(c, deployed)?.to_string();
                Some((
                    c.name.clone(),
                    (source, l.namespace.clone(), l.package.clone(), l.name.clone()),
                ))
            })
            .collect::<Vec<_>>()
    };
    let ours = identities(app);
    let mut problems = Vec::new();
    for other in deployed.iter().filter(|o| o.name != app.name) {
        let theirs = identities(other);
        for (component, key) in &ours {
            if theirs.iter().any(|(_, k)| k == key) {
                let (source, namespace, package, name) = key;
                problems.push(format!(
                    "spec.components[{component}].traits: link {namespace}:{package} named {name:?} from {source:?} is already declared by deployed application {:?} (the lattice keeps one such link: give this one another name)",
                    other.name
                ));
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
            rollout: None,
            needs: Default::default(),
            avoid: vec![],
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
        // Not deployed: no conflict, the dependent waits for it.
        assert_eq!(msg(&[]), "");
        assert_eq!(awaited_shared(&mine, &[]), ["lib"]);
        assert!(awaited_shared(&mine, &[app("lib", true, vec![])]).is_empty());
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

    fn with_link(mut c: Component, name: &str, target: &str) -> Component {
        c.links.push(wadm_model::Link {
            name: name.into(),
            namespace: "wasi".into(),
            package: "http".into(),
            interfaces: vec!["incoming-handler".into()],
            target: target.into(),
            source_config: vec![],
            source_secrets: vec![],
            target_config: vec![],
            target_secrets: vec![],
        });
        c
    }

    #[test]
    fn links_from_a_shared_component_must_not_collide() {
        let lib = app("lib", true, vec![component("http", image(), Some("httpserver"))]);
        let user = |name: &str, link: &str| {
            app(
                name,
                false,
                vec![
                    component("h", image(), None),
                    with_link(component("p", shared_ref("lib", "http"), None), link, "h"),
                ],
            )
        };
        let first = user("one", "default");
        assert!(deploy_conflicts(&first, std::slice::from_ref(&lib)).is_empty());
        // A second user with the same link identity from the shared provider collides.
        let problems = deploy_conflicts(&user("two", "default"), &[lib.clone(), first.clone()]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("\"one\"") && problems[0].contains("httpserver"),
            "{problems:?}"
        );
        // Another link name is another link; redeploying the same app is no conflict.
        assert!(deploy_conflicts(&user("two", "two"), &[lib.clone(), first.clone()]).is_empty());
        assert!(deploy_conflicts(&user("one", "default"), &[lib, first]).is_empty());
    }

    #[test]
    fn removing_a_shared_app_is_refused_while_deployed_apps_use_it() {
        let lib = app("lib", true, vec![component("comp", image(), None)]);
        let user =
            |name: &str| app(name, false, vec![component("r", shared_ref("lib", "comp"), None)]);
        let other = app("other", false, vec![component("c", image(), None)]);
        // Nothing references it (a reference to another app does not count).
        let elsewhere = app("x", false, vec![component("r", shared_ref("lib2", "comp"), None)]);
        let alone = [lib.clone(), other.clone(), elsewhere];
        assert_eq!(removal("lib", &alone, false), Removal::Free);
        // Dependents are named, sorted, once each (two references from one app).
        let mut twice = user("app-b");
        twice.components.push(component("r2", shared_ref("lib", "comp"), None));
        let used = [user("app-c"), lib, twice, other, user("app-a")];
        assert_eq!(dependents("lib", &used), ["app-a", "app-b", "app-c"]);
        match removal("lib", &used, false) {
            Removal::Refused(message) => assert_eq!(
                message,
                "shared application lib is used by deployed applications: app-a, app-b, app-c; \
                 undeploy them first or pass force"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            removal("lib", &used, true),
            Removal::Forced(vec!["app-a".into(), "app-b".into(), "app-c".into()])
        );
        // An application referencing itself is not its own dependent.
        let selfish = app("lib", true, vec![component("r", shared_ref("lib", "comp"), None)]);
        assert_eq!(removal("lib", &[selfish], false), Removal::Free);
    }
}
