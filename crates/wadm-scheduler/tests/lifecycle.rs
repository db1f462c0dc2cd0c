//! Workload scalers: spread arithmetic, placement rules, daemons, updates, moves and statuses;
//! custom scalers.

mod common;

use common::*;
use wadm_model::{APP_SPEC_ANNOTATION, StatusType};
use wadm_scheduler::{Command, Desired, UndeployedApp, reconcile};

fn status_of(plan: &wadm_scheduler::Plan, app: &str) -> (StatusType, String) {
    let s = &plan.statuses[app].status;
    (s.status_type, s.message.to_string())
}

#[test]
fn configs_are_put_before_workloads_and_external_ones_are_awaited() {
    let mut c = component("c", "img", vec![spreadscaler(1, vec![])]);
    c.config = vec![owned_config("settings", &[("k", "v")]), external_config("shared-cfg")];
    let apps = [deployed(app("a", vec![c]), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    let plan = reconcile(&apps, &lat, 0);
    // The external config is missing: the owned one is put, the component waits.
    assert_eq!(plan.commands.len(), 1);
    assert!(
        matches!(&plan.commands[0].command, Command::PutConfig { name, .. } if name == "a-settings")
    );
    let (t, msg) = status_of(&plan, "a");
    assert_eq!(t, StatusType::Waiting);
    assert!(msg.contains("shared-cfg"), "{msg}");
    // Once it exists, the component starts, with both config names.
    lat.configs.insert("shared-cfg".into(), Default::default());
    let plan = reconcile(&apps, &lat, 0);
    let kinds: Vec<&str> = plan.commands.iter().map(|c| c.command.kind()).collect();
    assert_eq!(kinds, vec!["put_config", "scale_component"]);
    match &plan.commands[1].command {
        Command::ScaleComponent(r) => assert_eq!(r.config, vec!["a-settings", "shared-cfg"]),
        _ => unreachable!(),
    }
    converge(deploy(&apps), &mut lat);
    // A value change is a put, never a delete.
    let mut c2 = apps[0].app.components[0].clone();
    c2.config[0] = owned_config("settings", &[("k", "v2")]);
    let apps2 = [deployed(app("a", vec![c2]), 2)];
    let plan = reconcile(&apps2, &lat, 0);
    let kinds: Vec<&str> = plan.commands.iter().map(|c| c.command.kind()).collect();
    assert_eq!(kinds, vec!["put_config"]);
}

#[test]
fn secrets_are_delivered_as_configs() {
    let mut c = component("c", "img", vec![spreadscaler(1, vec![])]);
    c.secrets = vec![wadm_model::SecretRef {
        name: "db".into(),
        lattice_name: "SECRET_a-db".into(),
        policy: "vault".into(),
        key: "db/pass".into(),
        field: Some("password".into()),
        version: None,
    }];
    let mut a = app("a", vec![c]);
    a.policies = vec![wadm_model::Policy {
        name: "vault".into(),
        policy_type: wadm_model::SECRET_POLICY_TYPE.into(),
        properties: map(&[("backend", "vault-backend"), ("role", "r")]),
    }];
    let apps = [deployed(a, 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&apps), &mut lat);
    let values = lat.configs["SECRET_a-db"].values.clone().unwrap();
    assert_eq!(values["backend"], "vault-backend");
    assert_eq!(values["key"], "db/pass");
    assert_eq!(values["field"], "password");
    assert!(values["policy_properties"].contains("\"role\":\"r\""));
    assert_eq!(lat.hosts["h1"].components["a-c"].annotations[APP_SPEC_ANNOTATION], "a");
}

#[test]
fn links_are_put_replaced_and_removed() {
    let mut src = component("api", "img", vec![spreadscaler(1, vec![])]);
    src.links = vec![link("kv", "wasi", "keyvalue", &["store"])];
    let kv = provider("kv", "kv:1", vec![]);
    let apps = [deployed(app("a", vec![src.clone(), kv.clone()]), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&apps), &mut lat);
    let l = lat.links.values().next().unwrap();
    assert_eq!((l.source_id.as_str(), l.target.as_str()), ("a-api", "a-kv"));
    // Retarget: delete before put.
    let kv2 = provider("kv2", "kv:2", vec![]);
    src.links = vec![link("kv2", "wasi", "keyvalue", &["store"])];
    let apps2 = [deployed(app("a", vec![src.clone(), kv2]), 2)];
    let plan = reconcile(&apps2, &lat, 0);
    let kinds: Vec<&str> = plan.commands.iter().map(|c| c.command.kind()).collect();
    let del = kinds.iter().position(|k| *k == "delete_link").unwrap();
    let put = kinds.iter().position(|k| *k == "put_link").unwrap();
    assert!(del < put, "{kinds:?}");
    converge(deploy(&apps2), &mut lat);
    assert_eq!(lat.links.values().next().unwrap().target, "a-kv2");
    // Drop the link in a new version: it is removed.
    src.links.clear();
    let apps3 = [deployed(app("a", vec![src]), 3)];
    converge(deploy(&apps3), &mut lat);
    assert!(lat.links.is_empty());
}

#[test]
fn shared_providers_live_until_the_last_app_goes() {
    let p = || with_id(provider("http", "ghcr.io/http:1", vec![]), "http-server");
    let a = app("a", vec![p(), component("c", "img", vec![spreadscaler(1, vec![])])]);
    let b = app("b", vec![p()]);
    let both = [deployed(a.clone(), 1), deployed(b.clone(), 1)];
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    let plans = converge(deploy(&both), &mut lat);
    let starts = plans
        .iter()
        .flat_map(|p| &p.commands)
        .filter(|c| c.command.kind() == "start_provider")
        .count();
    assert_eq!(starts, 1, "started once");
    // Undeploy a: b still needs the provider.
    let only_b = [deployed(b.clone(), 1)];
    let gone_a = [UndeployedApp { name: "a".into(), generation: 2, last_spec: Some(a.clone()) }];
    converge(Desired { deployed: &only_b, undeployed: &gone_a }, &mut lat);
    assert_eq!(provider_hosts(&lat, "http-server").len(), 1);
    assert!(counts(&lat, "a-c").is_empty());
    // Undeploy b too: now it goes.
    let gone_both =
        [gone_a[0].clone(), UndeployedApp { name: "b".into(), generation: 2, last_spec: Some(b) }];
    let plans = converge(Desired { deployed: &[], undeployed: &gone_both }, &mut lat);
    assert!(provider_hosts(&lat, "http-server").is_empty());
    assert_eq!(&*plans[0].statuses["a"].status.message, "Manifest has been undeployed");
}

#[test]
fn foreign_and_orphaned_resources_are_never_touched() {
    let mut h1 = host("h1", &[]);
    run_component(&mut h1, "a-c", "img", 4, &[]); // unmanaged, same id as ours
    run_component(
        &mut h1,
        "x",
        "img",
        1,
        &[("wasmcloud.dev/managed-by", "wadm"), ("wasmcloud.dev/appspec", "ghost")],
    );
    run_provider(&mut h1, "manual", "p", &[]);
    let mut lat = lattice(vec![h1, host("h2", &[])]);
    lat.configs.insert("ghost-cfg".into(), Default::default());
    lat.links.insert(
        wadm_protocol::LinkKey {
            source_id: "x".into(),
            wit_namespace: "n".into(),
            wit_package: "p".into(),
            name: "default".into(),
        },
        wadm_protocol::Link {
            source_id: "x".into(),
            target: "y".into(),
            name: "default".into(),
            wit_namespace: "n".into(),
            wit_package: "p".into(),
            interfaces: vec![],
            source_config: vec![],
            target_config: vec![],
        },
    );
    let before = lat.clone();
    let apps = [deployed(app("a", vec![component("c", "img", vec![spreadscaler(2, vec![])])]), 1)];
    converge(deploy(&apps), &mut lat);
    assert_eq!(lat.hosts["h1"].components, before.hosts["h1"].components, "h1 untouched");
    assert_eq!(lat.hosts["h1"].providers, before.hosts["h1"].providers);
    assert_eq!(counts(&lat, "a-c")["h2"], 2);
    assert_eq!(lat.links, before.links);
    assert!(lat.configs.contains_key("ghost-cfg"));
    // Undeploying a removes only its own instance.
    let gone = [UndeployedApp { name: "a".into(), generation: 2, last_spec: None }];
    converge(Desired { deployed: &[], undeployed: &gone }, &mut lat);
    assert_eq!(lat.hosts["h1"].components, before.hosts["h1"].components);
    assert!(lat.hosts["h2"].components.is_empty());
}

#[test]
fn version_change_removes_dropped_configs_and_components() {
    let mut c = component("c", "img", vec![spreadscaler(1, vec![])]);
    c.config = vec![owned_config("old", &[("k", "v")])];
    let extra = component("extra", "img", vec![spreadscaler(1, vec![])]);
    let v1 = [deployed(app("a", vec![c.clone(), extra]), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&v1), &mut lat);
    assert!(lat.configs.contains_key("a-old"));
    c.config = vec![owned_config("new", &[("k", "v")])];
    let v2 = [deployed(app("a", vec![c]), 2)];
    let plan = reconcile(&v2, &lat, 0);
    let kinds: Vec<&str> = plan.commands.iter().map(|c| c.command.kind()).collect();
    assert_eq!(kinds, vec!["put_config", "scale_component", "delete_config"]);
    converge(deploy(&v2), &mut lat);
    assert!(lat.configs.contains_key("a-new") && !lat.configs.contains_key("a-old"));
    assert!(counts(&lat, "a-extra").is_empty());
}

#[test]
fn shared_references_resolve_to_the_shared_component() {
    let mut shared = app("lib", vec![component("kv", "kv-img", vec![spreadscaler(1, vec![])])]);
    shared.shared = true;
    let mut user = component("api", "img", vec![spreadscaler(1, vec![])]);
    user.links = vec![link("kvref", "wasi", "keyvalue", &["store"])];
    let kvref = wadm_model::Component {
        source: wadm_model::Source::Shared { application: "lib".into(), component: "kv".into() },
        scalers: vec![],
        ..component("kvref", "", vec![])
    };
    let consumer = app("b", vec![user, kvref]);
    let apps = [deployed(shared, 1), deployed(consumer.clone(), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&apps), &mut lat);
    assert_eq!(lat.links.values().next().unwrap().target, "lib-kv");
    // Without the shared app deployed the link scaler waits for it, naming it, and wants no link.
    let alone = [deployed(consumer.clone(), 1)];
    let plan = reconcile(&alone, &lattice(vec![host("h1", &[])]), 0);
    let (t, msg) = status_of(&plan, "b");
    assert_eq!(t, StatusType::Waiting);
    assert_eq!(msg, "shared application lib not deployed");
    assert!(plan.commands.iter().all(|c| c.command.kind() != "put_link"), "{:?}", plan.commands);
    // An application that is deployed but not shared is a failure, not a wait.
    let mut unshared = app("lib", vec![component("kv", "kv-img", vec![spreadscaler(1, vec![])])]);
    unshared.shared = false;
    let apps = [deployed(unshared, 1), deployed(consumer, 1)];
    let plan = reconcile(&apps, &lattice(vec![host("h1", &[])]), 0);
    let (t, msg) = status_of(&plan, "b");
    assert_eq!(t, StatusType::Failed);
    assert_eq!(msg, "application lib is not shared");
}

#[test]
fn command_ids_are_deterministic_and_generation_scoped() {
    let apps = [deployed(app("a", vec![component("c", "img", vec![spreadscaler(1, vec![])])]), 1)];
    let lat = lattice(vec![host("h1", &[])]);
    let p1 = reconcile(&apps, &lat, 0);
    let p2 = reconcile(&apps, &lat, 99);
    assert_eq!(p1.commands, p2.commands);
    let apps2 = [deployed(apps[0].app.clone(), 2)];
    let p3 = reconcile(&apps2, &lat, 0);
    assert_ne!(p1.commands[0].id, p3.commands[0].id);
    assert_eq!(p1.commands[0].command, p3.commands[0].command);
}

#[test]
fn undeploy_removes_explicitly_named_links_only_when_the_spec_is_known() {
    let mut src = with_id(component("api", "img", vec![spreadscaler(1, vec![])]), "custom-api");
    src.links = vec![link("kv", "wasi", "keyvalue", &["store"])];
    let kv = with_id(provider("kv", "kv:1", vec![]), "custom-kv");
    let a = app("a", vec![src, kv]);
    let apps = [deployed(a.clone(), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&apps), &mut lat);
    assert_eq!(lat.links.len(), 1);
    // Without the last spec, an explicitly named link cannot be attributed: it stays.
    let blind = [UndeployedApp { name: "a".into(), generation: 2, last_spec: None }];
    let mut l1 = lat.clone();
    converge(Desired { deployed: &[], undeployed: &blind }, &mut l1);
    assert_eq!(l1.links.len(), 1);
    assert!(l1.hosts["h1"].components.is_empty() && l1.hosts["h1"].providers.is_empty());
    // With it, the link goes too.
    let known = [UndeployedApp { name: "a".into(), generation: 2, last_spec: Some(a) }];
    converge(Desired { deployed: &[], undeployed: &known }, &mut lat);
    assert!(lat.links.is_empty());
}

#[test]
fn version_change_with_the_previous_spec_removes_explicitly_named_leftovers() {
    let mut src = with_id(component("api", "img", vec![spreadscaler(1, vec![])]), "api-x");
    src.links = vec![link("kv", "wasi", "keyvalue", &["store"])];
    let kv = with_id(provider("kv", "kv:1", vec![]), "kv-x");
    let v1 = app("a", vec![src.clone(), kv.clone()]);
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&[deployed(v1.clone(), 1)]), &mut lat);
    assert_eq!(lat.links.len(), 1);
    // v2 drops the linking component; its explicit id carries no derived prefix.
    let v2 = [deployed(app("a", vec![kv]), 2)];
    let mut without = lat.clone();
    converge(deploy(&v2), &mut without);
    assert_eq!(without.links.len(), 1, "not attributable without the previous spec");
    let previous = [UndeployedApp { name: "a".into(), generation: 2, last_spec: Some(v1) }];
    let plans = converge(Desired { deployed: &v2, undeployed: &previous }, &mut lat);
    assert!(lat.links.is_empty());
    assert!(lat.hosts["h1"].components.is_empty(), "annotated instances go either way");
    assert!(lat.hosts["h1"].providers.contains_key("kv-x"));
    let status = &plans.last().unwrap().statuses["a"];
    assert_eq!(status.status.status_type, StatusType::Deployed);
}

#[test]
fn duplicate_and_foreign_lattice_entries_resolve_the_same_in_any_order() {
    let v1 = deployed(app("a", vec![component("c", "img:1", vec![spreadscaler(1, vec![])])]), 1);
    let v2 = deployed(app("a", vec![component("c", "img:2", vec![spreadscaler(1, vec![])])]), 2);
    let mut elsewhere =
        deployed(app("b", vec![component("c", "img", vec![spreadscaler(1, vec![])])]), 1);
    elsewhere.lattice = "other".into();
    let lat = lattice(vec![host("h1", &[])]);
    let forward = reconcile(&[v1.clone(), v2.clone(), elsewhere.clone()], &lat, 0);
    let backward = reconcile(&[elsewhere, v2, v1], &lat, 0);
    assert_eq!(forward, backward);
    assert_eq!(
        forward.statuses.keys().collect::<Vec<_>>(),
        vec!["a"],
        "other lattices are ignored"
    );
    match &forward.commands[0].command {
        Command::ScaleComponent(r) => assert_eq!(&*r.component_ref, "img:2"),
        other => panic!("{other:?}"),
    }
}
