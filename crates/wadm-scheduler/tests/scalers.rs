//! Workload scalers: spread arithmetic, placement rules, daemons, updates, moves and statuses;
//! custom scalers.

mod common;

use common::*;
use wadm_model::{
    APP_SPEC_ANNOTATION, MANAGED_BY_ANNOTATION, SCALER_ANNOTATION, SPREAD_NAME_ANNOTATION,
    StatusType,
};
use wadm_scheduler::{Command, reconcile};

fn status_of(plan: &wadm_scheduler::Plan, app: &str) -> (StatusType, String) {
    let s = &plan.statuses[app].status;
    (s.status_type, s.message.to_string())
}

#[test]
fn weighted_spreads_follow_api_arithmetic() {
    let hosts = (0..4)
        .map(|i| host(&format!("h{i}"), &[("zone", if i < 2 { "east" } else { "west" })]))
        .collect();
    let mut lat = lattice(hosts);
    let a = app(
        "web",
        vec![component(
            "api",
            "img:1",
            vec![spreadscaler(
                7,
                vec![
                    spread("east", &[("zone", "east")], 30),
                    spread("west", &[("zone", "west")], 40),
                ],
            )],
        )],
    );
    let apps = [deployed(a, 1)];
    converge(deploy(&apps), &mut lat);
    let c = counts(&lat, "web-api");
    let east: u32 = c.iter().filter(|(h, _)| *h == "h0" || *h == "h1").map(|(_, n)| n).sum();
    let west: u32 = c.iter().filter(|(h, _)| *h == "h2" || *h == "h3").map(|(_, n)| n).sum();
    assert_eq!((east, west), (3, 4));
    // Spread over both hosts of each zone, counts differing by at most one.
    assert_eq!(c.len(), 4, "{c:?}");
    let final_plan = reconcile(&apps, &lat, 2);
    assert_eq!(status_of(&final_plan, "web").0, StatusType::Deployed);
}

#[test]
fn component_spreads_across_hosts_and_counts_per_host() {
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    let apps = [deployed(app("a", vec![component("c", "img", vec![spreadscaler(3, vec![])])]), 1)];
    let plans = converge(deploy(&apps), &mut lat);
    let mut c: Vec<u32> = counts(&lat, "a-c").into_values().collect();
    c.sort();
    assert_eq!(c, vec![1, 2]);
    // Annotations carry ownership.
    let inst = lat.hosts.values().find_map(|h| h.components.get("a-c")).unwrap();
    assert_eq!(inst.annotations[MANAGED_BY_ANNOTATION], "wadm");
    assert_eq!(inst.annotations[APP_SPEC_ANNOTATION], "a");
    assert_eq!(inst.annotations[SPREAD_NAME_ANNOTATION], "default");
    assert!(inst.annotations[SCALER_ANNOTATION].starts_with("SpreadScaler-a-c"));
    // Status reconciling while commands are outstanding, deployed at the fixed point.
    assert_eq!(status_of(&plans[0], "a").0, StatusType::Reconciling);
    assert_eq!(status_of(plans.last().unwrap(), "a").0, StatusType::Deployed);
}

#[test]
fn keeps_what_runs_instead_of_moving_it() {
    let mut h3 = host("h3", &[]);
    let ann = [("wasmcloud.dev/managed-by", "wadm"), ("wasmcloud.dev/appspec", "a")];
    run_component(&mut h3, "a-c", "img", 1, &ann);
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[]), h3]);
    let apps = [deployed(app("a", vec![component("c", "img", vec![spreadscaler(1, vec![])])]), 1)];
    let plan = reconcile(&apps, &lat, 0);
    // Only the annotations are completed, on the same host.
    assert_eq!(plan.commands.len(), 1);
    match &plan.commands[0].command {
        Command::ScaleComponent(r) => assert_eq!((&*r.host_id, r.count), ("h3", 1)),
        other => panic!("unexpected {other:?}"),
    }
    converge(deploy(&apps), &mut lat);
    assert_eq!(counts(&lat, "a-c").keys().collect::<Vec<_>>(), vec!["h3"]);
}

#[test]
fn unsatisfiable_spread_fails_naming_spread_and_shortfall() {
    let lat = lattice(vec![host("h1", &[("zone", "west")])]);
    let apps = [deployed(
        app(
            "a",
            vec![component(
                "c",
                "img",
                vec![spreadscaler(3, vec![spread("east", &[("zone", "east")], 100)])],
            )],
        ),
        1,
    )];
    let plan = reconcile(&apps, &lat, 0);
    assert!(plan.commands.is_empty());
    let (t, msg) = status_of(&plan, "a");
    assert_eq!(t, StatusType::Failed);
    assert_eq!(msg, "spread east needs 3 instances, 0 eligible hosts");
}

#[test]
fn a_lattice_without_hosts_is_waiting_not_failed() {
    let lat = lattice(vec![]);
    let apps = [deployed(app("a", vec![component("c", "img", vec![spreadscaler(3, vec![])])]), 1)];
    let plan = reconcile(&apps, &lat, 0);
    assert!(plan.commands.is_empty());
    let (t, msg) = status_of(&plan, "a");
    assert_eq!(t, StatusType::Waiting);
    assert_eq!(msg, format!("no hosts in lattice {}", lat.lattice));
}

#[test]
fn provider_spread_needs_one_host_per_instance() {
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    let apps =
        [deployed(app("a", vec![provider("p", "ghcr.io/p:1", vec![spreadscaler(3, vec![])])]), 1)];
    let plans = converge(deploy(&apps), &mut lat);
    assert_eq!(provider_hosts(&lat, "a-p"), vec!["h1", "h2"]);
    let (t, msg) = status_of(plans.last().unwrap(), "a");
    assert_eq!(t, StatusType::Failed);
    assert_eq!(msg, "spread default needs 3 instances, 2 eligible hosts");
}

#[test]
fn overlapping_spreads_are_solved() {
    // "east" can only use h1/h2; "any" must not take them first.
    let mut lat = lattice(vec![
        host("h1", &[("zone", "east")]),
        host("h2", &[("zone", "east")]),
        host("h3", &[("zone", "west")]),
    ]);
    let apps = [deployed(
        app(
            "a",
            vec![provider(
                "p",
                "p:1",
                vec![spreadscaler(
                    3,
                    vec![spread("any", &[], 100), spread("east", &[("zone", "east")], 200)],
                )],
            )],
        ),
        1,
    )];
    let plans = converge(deploy(&apps), &mut lat);
    assert_eq!(provider_hosts(&lat, "a-p"), vec!["h1", "h2", "h3"]);
    assert_eq!(status_of(plans.last().unwrap(), "a").0, StatusType::Deployed);
    assert_eq!(lat.hosts["h3"].providers["a-p"].annotations[SPREAD_NAME_ANNOTATION], "any");
}

#[test]
fn daemons_run_on_exactly_the_matching_hosts() {
    let mut lat = lattice(vec![
        host("h1", &[("gpu", "yes")]),
        host("h2", &[("gpu", "no")]),
        host("h3", &[("gpu", "yes")]),
    ]);
    let gpu = || vec![spread("gpu", &[("gpu", "yes")], 100)];
    let apps = [deployed(
        app(
            "a",
            vec![
                component("c", "img", vec![daemonscaler(2, gpu())]),
                provider("p", "p:1", vec![daemonscaler(5, gpu())]),
            ],
        ),
        1,
    )];
    converge(deploy(&apps), &mut lat);
    assert_eq!(
        counts(&lat, "a-c"),
        [("h1".to_string(), 2), ("h3".to_string(), 2)].into_iter().collect()
    );
    assert_eq!(provider_hosts(&lat, "a-p"), vec!["h1", "h3"]);
    // A new matching host gets one too.
    lat.hosts.insert("h4".into(), host("h4", &[("gpu", "yes")]));
    converge(deploy(&apps), &mut lat);
    assert_eq!(provider_hosts(&lat, "a-p"), vec!["h1", "h3", "h4"]);
}

#[test]
fn image_change_updates_in_place() {
    let apps =
        [deployed(app("a", vec![component("c", "img:1", vec![spreadscaler(2, vec![])])]), 1)];
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    converge(deploy(&apps), &mut lat);
    let apps2 =
        [deployed(app("a", vec![component("c", "img:2", vec![spreadscaler(2, vec![])])]), 2)];
    let plan = reconcile(&apps2, &lat, 0);
    assert!(plan.commands.iter().all(|c| matches!(c.command, Command::UpdateComponent(_))));
    assert_eq!(plan.commands.len(), 2);
    converge(deploy(&apps2), &mut lat);
    assert!(lat.hosts.values().all(|h| h.components["a-c"].image_ref == "img:2"));
}

#[test]
fn provider_image_change_moves_or_restarts() {
    let apps = [deployed(app("a", vec![provider("p", "file:///p1.par.gz", vec![])]), 1)];
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    converge(deploy(&apps), &mut lat);
    let before = provider_hosts(&lat, "a-p");
    assert_eq!(lat.hosts[&before[0]].providers["a-p"].image_ref, "/p1.par.gz");
    // Normalised refs compare equal: nothing to do.
    assert!(reconcile(&apps, &lat, 0).is_empty());
    let apps2 = [deployed(app("a", vec![provider("p", "file:///p2.par.gz", vec![])]), 2)];
    let plan = reconcile(&apps2, &lat, 0);
    let kinds: Vec<&str> = plan.commands.iter().map(|c| c.command.kind()).collect();
    // The replacement starts on the free host before the old one stops.
    assert_eq!(kinds, vec!["start_provider", "stop_provider"]);
    converge(deploy(&apps2), &mut lat);
    let hosts = provider_hosts(&lat, "a-p");
    assert_eq!(hosts.len(), 1);
    assert_eq!(lat.hosts[&hosts[0]].providers["a-p"].image_ref, "/p2.par.gz");
}

#[test]
fn moves_start_the_replacement_before_stopping() {
    let apps = [deployed(
        app(
            "a",
            vec![component(
                "c",
                "img",
                vec![spreadscaler(1, vec![spread("e", &[("zone", "east")], 100)])],
            )],
        ),
        1,
    )];
    let mut lat = lattice(vec![host("h1", &[("zone", "east")]), host("h2", &[("zone", "west")])]);
    converge(deploy(&apps), &mut lat);
    assert!(lat.hosts["h1"].components.contains_key("a-c"));
    // h1 leaves the zone, h2 joins it.
    lat.hosts.get_mut("h1").unwrap().labels = map(&[("zone", "west")]);
    lat.hosts.get_mut("h2").unwrap().labels = map(&[("zone", "east")]);
    let plan = reconcile(&apps, &lat, 0);
    let steps: Vec<(String, u32)> = plan
        .commands
        .iter()
        .map(|c| match &c.command {
            Command::ScaleComponent(r) => (r.host_id.to_string(), r.count),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(steps, vec![("h2".to_string(), 1), ("h1".to_string(), 0)]);
}

#[test]
fn duplicate_component_id_fails_the_later_app() {
    let c = || with_id(component("c", "img", vec![spreadscaler(1, vec![])]), "same");
    let apps = [deployed(app("b", vec![c()]), 1), deployed(app("a", vec![c()]), 1)];
    let plan = reconcile(&apps, &lattice(vec![host("h1", &[])]), 0);
    assert_eq!(plan.statuses["a"].status.status_type, StatusType::Reconciling);
    let (t, msg) = status_of(&plan, "b");
    assert_eq!(t, StatusType::Failed);
    assert!(msg.contains("already deployed by application a"), "{msg}");
}

#[test]
fn status_lists_scalers_in_manifest_order_and_aggregates() {
    let mut c = component("c", "img", vec![spreadscaler(1, vec![])]);
    c.config = vec![external_config("missing")];
    let apps = [deployed(
        app(
            "a",
            vec![
                c,
                component(
                    "d",
                    "img",
                    vec![spreadscaler(1, vec![spread("x", &[("no", "host")], 100)])],
                ),
            ],
        ),
        1,
    )];
    let plan = reconcile(&apps, &lattice(vec![host("h1", &[])]), 0);
    let s = &plan.statuses["a"];
    let kinds: Vec<&str> = s.scalers.iter().map(|s| &*s.kind).collect();
    assert_eq!(kinds, vec!["ConfigScaler", "SpreadScaler", "SpreadScaler"]);
    // failed beats waiting.
    assert_eq!(s.status.status_type, StatusType::Failed);
    assert_eq!(s.scalers[0].status.status_type, StatusType::Waiting);
    assert_eq!(s.scalers[1].status.status_type, StatusType::Waiting);
}

/// A custom scaler plugs in beside the built-in ones and is merged like them.
struct MarkerConfig(wadm_scheduler::ScalerInfo);

impl wadm_scheduler::Scaler for MarkerConfig {
    fn info(&self) -> &wadm_scheduler::ScalerInfo {
        &self.0
    }

    fn evaluate(&self, ctx: &wadm_scheduler::Context<'_>) -> wadm_scheduler::Evaluation {
        let hosts = ctx.hosts().len().to_string();
        wadm_scheduler::Evaluation {
            wants: smallvec::smallvec![wadm_scheduler::Want::Config {
                name: "a-marker".into(),
                values: map(&[("hosts", &hosts)]),
            }],
            status: wadm_model::StatusInfo::new(StatusType::Deployed, ""),
            wake_at: None,
            rollout: None,
            short_of_capacity: false,
        }
    }
}

#[test]
fn custom_scalers_extend_the_plan() {
    let apps = [deployed(app("a", vec![component("c", "img", vec![spreadscaler(1, vec![])])]), 1)];
    let lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    let desired = deploy(&apps);
    let catalog = wadm_scheduler::Catalog::new(&lat.lattice, desired);
    let mut scalers = wadm_scheduler::builtin_scalers(&catalog);
    scalers.push(Box::new(MarkerConfig(wadm_scheduler::ScalerInfo {
        app: "a".into(),
        rank: 100,
        id: "Marker-a".into(),
        kind: "MarkerScaler".into(),
        name: "marker".into(),
    })));
    let plan = wadm_scheduler::plan_with(&lat, &catalog, &scalers, 0);
    assert!(matches!(
        &plan.commands[0].command,
        Command::PutConfig { name, values } if name == "a-marker" && values["hosts"] == "2"
    ));
    let kinds: Vec<&str> = plan.statuses["a"].scalers.iter().map(|s| &*s.kind).collect();
    assert_eq!(kinds, vec!["SpreadScaler", "MarkerScaler"]);
}

#[test]
fn unhealthy_providers_make_the_app_unhealthy() {
    let apps = [deployed(app("a", vec![provider("p", "p:1", vec![])]), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&apps), &mut lat);
    lat.hosts.get_mut("h1").unwrap().providers.get_mut("a-p").unwrap().health =
        wadm_lattice::ProviderHealth::Unhealthy;
    let plan = reconcile(&apps, &lat, 0);
    assert!(plan.is_empty());
    let (t, msg) = status_of(&plan, "a");
    assert_eq!(t, StatusType::Unhealthy);
    assert_eq!(msg, "provider a-p reports unhealthy");
}

#[test]
fn an_update_carries_the_annotations_without_an_extra_scale() {
    let mut h1 = host("h1", &[]);
    let ann = [("wasmcloud.dev/managed-by", "wadm"), ("wasmcloud.dev/appspec", "a")];
    run_component(&mut h1, "a-c", "img:1", 1, &ann);
    let mut lat = lattice(vec![h1]);
    let apps =
        [deployed(app("a", vec![component("c", "img:2", vec![spreadscaler(1, vec![])])]), 1)];
    let plan = reconcile(&apps, &lat, 0);
    let kinds: Vec<&str> = plan.commands.iter().map(|c| c.command.kind()).collect();
    assert_eq!(kinds, vec!["update_component"]);
    let plans = converge(deploy(&apps), &mut lat);
    assert_eq!(plans.len(), 2, "one round of commands, then the fixed point");
    let inst = &lat.hosts["h1"].components["a-c"];
    assert_eq!((inst.image_ref.as_str(), inst.count), ("img:2", 1));
    assert_eq!(inst.annotations[SPREAD_NAME_ANNOTATION], "default");
}

#[test]
fn provider_image_change_on_the_only_host_restarts_in_one_plan() {
    let apps = [deployed(app("a", vec![provider("p", "p:1", vec![])]), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&apps), &mut lat);
    let apps2 = [deployed(app("a", vec![provider("p", "p:2", vec![])]), 2)];
    let plan = reconcile(&apps2, &lat, 0);
    let kinds: Vec<&str> = plan.commands.iter().map(|c| c.command.kind()).collect();
    assert_eq!(kinds, vec!["stop_provider", "start_provider"]);
    assert_eq!(plan.statuses["a"].status.status_type, StatusType::Reconciling);
    let plans = converge(deploy(&apps2), &mut lat);
    assert_eq!(plans.len(), 2, "fixed point right after the plan took effect");
    assert_eq!(lat.hosts["h1"].providers["a-p"].image_ref, "p:2");
}

#[test]
fn several_scaler_traits_on_one_workload_share_hosts_instead_of_fighting() {
    let mut lat = lattice(vec![
        host("h1", &[("gpu", "yes")]),
        host("h2", &[("gpu", "yes")]),
        host("h3", &[]),
        host("h4", &[]),
    ]);
    let traits =
        vec![daemonscaler(3, vec![spread("gpu", &[("gpu", "yes")], 100)]), spreadscaler(2, vec![])];
    let apps = [deployed(
        app(
            "a",
            vec![
                component("c", "img", traits),
                provider(
                    "p",
                    "p:1",
                    vec![
                        daemonscaler(1, vec![spread("gpu", &[("gpu", "yes")], 100)]),
                        spreadscaler(2, vec![]),
                    ],
                ),
            ],
        ),
        1,
    )];
    let plans = converge(deploy(&apps), &mut lat);
    assert_eq!(plans.len(), 2, "one plan, then the fixed point");
    let c = counts(&lat, "a-c");
    assert_eq!((c["h1"], c["h2"]), (3, 3), "the daemon keeps the gpu hosts");
    assert_eq!(c.get("h3").copied().unwrap_or(0) + c.get("h4").copied().unwrap_or(0), 2);
    assert_eq!(provider_hosts(&lat, "a-p"), vec!["h1", "h2", "h3", "h4"]);
    let status = &plans.last().unwrap().statuses["a"];
    assert!(
        status.scalers.iter().all(|s| s.status.status_type == StatusType::Deployed),
        "{status:?}"
    );
}

#[test]
fn two_traits_of_one_provider_keep_their_hosts_apart() {
    // A spread of two (spreads `s0`, `s1`) and a daemon on zone b whose spread is also `s0`.
    let traits = vec![
        spreadscaler(2, vec![spread("s0", &[], 50), spread("s1", &[], 50)]),
        daemonscaler(1, vec![spread("s0", &[("zone", "b")], 100)]),
    ];
    let apps = [deployed(app("a", vec![provider("p", "prov:1", traits)]), 1)];
    let mut hosts: Vec<_> = (0..6)
        .map(|i| host(&format!("h{i}"), &[("zone", if i < 2 { "a" } else { "b" })]))
        .collect();
    // Two of ours from before scaler annotations, on zone a: the spread keeps them.
    let ann = [(MANAGED_BY_ANNOTATION, "wadm"), (APP_SPEC_ANNOTATION, "a")];
    for h in &mut hosts[..2] {
        run_provider(h, "a-p", "prov:1", &ann);
    }
    let mut lat = lattice(hosts);
    let plans = converge(deploy(&apps), &mut lat);
    // One round of commands, then nothing: the spread does not take over the daemon's hosts.
    assert_eq!(plans.len(), 2, "{:#?}", plans.iter().map(|p| &p.commands).collect::<Vec<_>>());
    assert_eq!(provider_hosts(&lat, "a-p"), vec!["h0", "h1", "h2", "h3", "h4", "h5"]);
}

#[test]
fn independent_scalers_spread_over_equally_loaded_hosts() {
    // 400 single-instance components (one per app) on 40 empty hosts: placed in one reconcile
    // (load is as observed, so all hosts tie), they land evenly, not on the first host.
    let mut lat = lattice((0..40).map(|i| host(&format!("h{i:02}"), &[])).collect());
    let apps: Vec<_> = (0..400)
        .map(|a| {
            deployed(
                app(&format!("a{a}"), vec![component("c", "img", vec![spreadscaler(1, vec![])])]),
                1,
            )
        })
        .collect();
    converge(deploy(&apps), &mut lat);
    let per_host: Vec<usize> = lat.hosts.values().map(|h| h.components.len()).collect();
    assert_eq!(per_host.iter().sum::<usize>(), 400);
    let (min, max) = (per_host.iter().min().unwrap(), per_host.iter().max().unwrap());
    assert!(*min >= 1 && *max <= 30, "uneven: {per_host:?}");
    // A spread of 5 over 40 tied hosts uses 5 hosts.
    let wide = [deployed(app("w", vec![component("c", "img", vec![spreadscaler(5, vec![])])]), 1)];
    let mut empty = lattice((0..40).map(|i| host(&format!("h{i:02}"), &[])).collect());
    converge(deploy(&wide), &mut empty);
    assert_eq!(counts(&empty, "w-c").len(), 5);
}

#[test]
fn fresh_placements_prefer_the_least_loaded_hosts() {
    let mut hosts: Vec<_> = (0..10).map(|i| host(&format!("h{i}"), &[])).collect();
    for h in hosts.iter_mut().take(8) {
        run_component(h, "foreign", "img", 1, &[]);
    }
    let mut lat = lattice(hosts);
    let apps = [deployed(app("a", vec![component("c", "img", vec![spreadscaler(3, vec![])])]), 1)];
    converge(deploy(&apps), &mut lat);
    let c = counts(&lat, "a-c");
    // The two empty hosts first, then one of the loaded ones.
    assert!(c.contains_key("h8") && c.contains_key("h9"), "{c:?}");
    assert_eq!(c.len(), 3, "{c:?}");
}
