//! The orphan pass ([`wadm_scheduler::orphans::orphan_pass`]): examples for each rule, and
//! properties over random lattices — never anything without wadm's full marks, never anything of
//! a managed application or with another application's order in flight, never before the grace
//! period, and the same result whatever order the input was built in.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use proptest::prelude::*;
use wadm_lattice::{ConfigState, LatticeState};
use wadm_protocol::Link as LatticeLink;
use wadm_scheduler::orphans::{Orphan, OrphanInput, OrphanMarks, OrphanPass, orphan_pass};
use wadm_scheduler::{Catalog, Command, Desired};

const GRACE: u64 = 1_000;

fn marks_of(app: &str) -> Vec<(&'static str, String)> {
    vec![
        ("wasmcloud.dev/managed-by", "wadm".to_string()),
        ("wasmcloud.dev/appspec", app.to_string()),
        ("wasmcloud.dev/scaler", format!("{app}-scaler")),
    ]
}

fn ann<'a>(pairs: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn lattice_link(source: &str, target: &str, config: &[&str]) -> LatticeLink {
    LatticeLink {
        source_id: source.into(),
        target: target.into(),
        name: "default".into(),
        wit_namespace: "wasi".into(),
        wit_package: "keyvalue".into(),
        interfaces: vec!["store".into()],
        source_config: config.iter().map(|c| c.to_string()).collect(),
        target_config: vec![],
    }
}

fn add_link(state: &mut LatticeState, link: LatticeLink) {
    state.links.insert(link.key(), link);
}

fn add_config(state: &mut LatticeState, name: &str) {
    state.configs.insert(name.into(), ConfigState { name: name.into(), values: None });
}

struct World {
    state: LatticeState,
    known: BTreeSet<String>,
    busy: BTreeMap<String, String>,
}

impl World {
    fn pass(&self, catalog: Option<&Catalog<'_>>, marks: &OrphanMarks, now: u64) -> OrphanPass {
        orphan_pass(OrphanInput {
            state: &self.state,
            known: &self.known,
            catalog,
            busy: &self.busy,
            marks,
            now,
            grace_ms: GRACE,
        })
    }
}

/// wadm's ownership marks naming `app`, read independently of the code under test.
fn fully_marked(annotations: &BTreeMap<String, String>, app: &str) -> bool {
    let get = |k: &str| annotations.get(k).map(String::as_str);
    get("wasmcloud.dev/managed-by") == Some("wadm") && get("wasmcloud.dev/appspec") == Some(app)
}

fn keys(items: &[(Orphan, String)]) -> Vec<String> {
    items.iter().map(|(o, _)| o.key()).collect()
}

fn described(items: &[(Orphan, String)]) -> Vec<String> {
    items.iter().map(|(o, app)| format!("{app}: {}", o.describe())).collect()
}

/// `keep` is deployed (component, provider, link and config of its own); `ghost` is not managed
/// and has a component on A, a provider on B, a link between them and a derived config; foreign
/// objects beside them.
fn world() -> World {
    let mut a = host("A", &[]);
    let mut b = host("B", &[]);
    run_component(&mut a, "keep-web", "img:keep", 1, &ann(&marks_of("keep")));
    run_provider(&mut b, "keep-http", "prov:keep", &ann(&marks_of("keep")));
    run_component(&mut a, "ghost-web", "img:ghost", 2, &ann(&marks_of("ghost")));
    run_provider(&mut b, "ghost-kv", "prov:ghost", &ann(&marks_of("ghost")));
    run_component(&mut a, "foreign", "img:f", 1, &[]);
    let rival = [
        ("wasmcloud.dev/managed-by", "other"),
        ("wasmcloud.dev/appspec", "ghost"),
        ("wasmcloud.dev/scaler", "s"),
    ];
    run_component(&mut b, "rival", "img:r", 1, &rival);
    // Half the marks: an application without `managed-by: wadm`.
    let half = [("wasmcloud.dev/appspec", "ghost"), ("wasmcloud.dev/scaler", "s")];
    run_component(&mut b, "half", "img:h", 1, &half);
    // And the other half: managed by wadm, for no application.
    run_component(&mut b, "nameless", "img:n", 1, &[("wasmcloud.dev/managed-by", "wadm")]);
    let mut state = lattice(vec![a, b]);
    add_link(&mut state, lattice_link("keep-http", "keep-web", &["keep-listen"]));
    add_link(&mut state, lattice_link("ghost-web", "ghost-kv", &["ghost-settings"]));
    add_link(&mut state, lattice_link("foreign", "ghost-kv", &["ghost-shared"]));
    for name in ["keep-listen", "ghost-settings", "ghost-shared", "ghost-Upper", "other-cfg"] {
        add_config(&mut state, name);
    }
    World { state, known: BTreeSet::from(["keep".to_string()]), busy: BTreeMap::new() }
}

fn keep_app() -> Vec<wadm_scheduler::DeployedApp> {
    let mut http = provider("http", "prov:keep", vec![]);
    let mut l = link("web", "wasi", "keyvalue", &["store"]);
    l.source_config = vec![owned_config("listen", &[("k", "v")])];
    http.links = vec![l];
    let web = component("web", "img:keep", vec![spreadscaler(1, vec![])]);
    vec![deployed(app("keep", vec![http, web]), 1)]
}

#[test]
fn marks_then_sweeps_only_the_unmanaged_applications_objects_after_the_grace_period() {
    let w = world();
    let apps = keep_app();
    let catalog = Catalog::new(LATTICE, deploy(&apps));
    let first = w.pass(Some(&catalog), &OrphanMarks::new(), 10_000);
    let mut found = described(&first.found);
    found.sort();
    assert_eq!(
        found,
        [
            "ghost: component ghost-web on host A",
            "ghost: config ghost-settings",
            "ghost: link default from ghost-web (wasi:keyvalue)",
            "ghost: provider ghost-kv on host B",
        ],
        "not foreign, rival, half, nameless, keep's, a config a foreign link names, ghost-Upper"
    );
    assert!(first.due.is_empty(), "nothing before the grace period");
    assert_eq!(first.next_due, Some(10_000 + GRACE));
    // Just before the grace period ends: still nothing; then all four, links first, configs last.
    let before = w.pass(Some(&catalog), &first.marks, 10_000 + GRACE - 1);
    assert!(before.due.is_empty() && before.found.is_empty());
    assert_eq!(before.marks, first.marks, "first-seen times are kept");
    let due = w.pass(Some(&catalog), &before.marks, 10_000 + GRACE);
    let kinds: Vec<&str> = due.due.iter().map(|(o, _)| o.kind()).collect();
    assert_eq!(kinds, ["link", "component", "provider", "config"]);
    // The removals are what undeploy sends for the same objects.
    let commands: Vec<&str> = due.due.iter().map(|(o, _)| o.removal().kind()).collect();
    assert_eq!(commands, ["delete_link", "scale_component", "stop_provider", "delete_config"]);
    match due.due[1].0.removal() {
        Command::ScaleComponent(r) => {
            assert_eq!((r.count, &*r.host_id, &*r.component_ref), (0, "A", "img:ghost"));
            assert_eq!(r.annotations.get("wasmcloud.dev/appspec").unwrap(), "ghost");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_object_that_stops_being_orphaned_loses_its_mark() {
    let mut w = world();
    let apps = keep_app();
    let catalog = Catalog::new(LATTICE, deploy(&apps));
    let first = w.pass(Some(&catalog), &OrphanMarks::new(), 0);
    assert_eq!(first.marks.len(), 4);
    // `ghost` is deployed again (known): nothing of it is orphaned any more.
    w.known.insert("ghost".into());
    let managed = w.pass(Some(&catalog), &first.marks, GRACE * 5);
    assert!(managed.marks.is_empty() && managed.due.is_empty(), "{managed:?}");
    assert_eq!(managed.cleared.len(), 4);
    // Unmanaged again later: marked afresh, due a full grace period after that.
    w.known.remove("ghost");
    let again = w.pass(Some(&catalog), &managed.marks, GRACE * 6);
    assert!(again.due.is_empty());
    assert!(again.marks.values().all(|m| m.since == GRACE * 6));
}

#[test]
fn orders_in_flight_of_a_managed_application_protect_the_object() {
    let mut w = world();
    let apps = keep_app();
    let catalog = Catalog::new(LATTICE, deploy(&apps));
    let ghost_web = Orphan::Component {
        host: "A".into(),
        id: "ghost-web".into(),
        image_ref: String::new(),
        annotations: Default::default(),
    }
    .key();
    w.busy.insert(ghost_web.clone(), "keep".into());
    let pass = w.pass(Some(&catalog), &OrphanMarks::new(), 0);
    assert!(!pass.marks.contains_key(&ghost_web), "keep acts on that slot");
    // An order of the orphan's own application (its removal in flight) keeps the mark.
    w.busy.insert(ghost_web.clone(), "ghost".into());
    let pass = w.pass(Some(&catalog), &OrphanMarks::new(), 0);
    assert!(pass.marks.contains_key(&ghost_web));
}

#[test]
fn without_declarations_links_and_configs_are_left_as_they_are() {
    let w = world();
    let apps = keep_app();
    let catalog = Catalog::new(LATTICE, deploy(&apps));
    let first = w.pass(Some(&catalog), &OrphanMarks::new(), 0);
    let blind = w.pass(None, &first.marks, GRACE);
    let due = keys(&blind.due);
    assert_eq!(blind.due.len(), 2, "only the workloads: {due:?}");
    assert!(
        blind
            .due
            .iter()
            .all(|(o, _)| matches!(o, Orphan::Component { .. } | Orphan::Provider { .. }))
    );
    assert_eq!(blind.marks, first.marks, "link and config marks are kept unjudged");
}

#[test]
fn a_managed_applications_declared_workloads_links_and_configs_are_never_orphans() {
    let mut w = world();
    // A deployed application declares a link from `ghost-web` (say it adopted that id).
    let mut web = with_id(component("web", "img:x", vec![spreadscaler(1, vec![])]), "ghost-web");
    web.links = vec![link("kv", "wasi", "keyvalue", &["store"])];
    let mut named = owned_config("settings", &[("k", "v")]);
    named.lattice_name = "ghost-settings".into();
    web.config = vec![named];
    let apps = vec![deployed(app("adopter", vec![web]), 1)];
    w.known.insert("adopter".into());
    let catalog = Catalog::new(LATTICE, Desired { deployed: &apps, undeployed: &[] });
    let pass = w.pass(Some(&catalog), &OrphanMarks::new(), 0);
    let kinds: BTreeSet<&str> = pass.found.iter().map(|(o, _)| o.kind()).collect();
    // `ghost-web` is declared by `adopter` (its scaler may count that instance as its own),
    // so neither it nor its link is an orphan; the config is declared too.
    assert_eq!(kinds, BTreeSet::from(["provider"]), "{:?}", described(&pass.found));
    // A provider two applications declare keeps the annotations of the one that started it:
    // while the other is managed, it is not an orphan either.
    let kv = with_id(provider("kv", "prov:ghost", vec![]), "ghost-kv");
    let apps = vec![apps[0].clone(), deployed(app("sharer", vec![kv]), 1)];
    w.known.insert("sharer".into());
    let catalog = Catalog::new(LATTICE, Desired { deployed: &apps, undeployed: &[] });
    let pass = w.pass(Some(&catalog), &OrphanMarks::new(), 0);
    assert!(pass.found.is_empty(), "{:?}", described(&pass.found));
}

// Properties over random lattices.

const APPS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Marks {
    None,
    Wadm(usize),
    Partial(usize),
    Other(usize),
}

fn marks_strategy() -> impl Strategy<Value = Marks> {
    prop_oneof![
        Just(Marks::None),
        (0..APPS.len()).prop_map(Marks::Wadm),
        (0..APPS.len()).prop_map(Marks::Wadm),
        (0..APPS.len()).prop_map(Marks::Partial),
        (0..APPS.len()).prop_map(Marks::Other),
    ]
}

fn annotations(m: &Marks) -> Vec<(&'static str, String)> {
    match m {
        Marks::None => vec![],
        Marks::Wadm(i) => marks_of(APPS[*i]),
        Marks::Partial(i) => marks_of(APPS[*i]).into_iter().skip(1).collect(),
        Marks::Other(i) => {
            let mut m = marks_of(APPS[*i]);
            m[0].1 = "someone-else".into();
            m
        }
    }
}

/// (host, id index, is provider, marks)
type Workload = (usize, usize, bool, Marks);

fn workload_id(id: usize) -> String {
    // Ids that look derived (`{app}-x`) and ids that do not.
    match id % 3 {
        0 => format!("{}-w{id}", APPS[id % APPS.len()]),
        1 => format!("free{id}"),
        _ => format!("{}-p{id}", APPS[(id / 3) % APPS.len()]),
    }
}

fn build(workloads: &[Workload], links: &[(usize, usize)], configs: &[usize]) -> LatticeState {
    let mut hosts: Vec<_> = (0..3).map(|h| host(&format!("H{h}"), &[])).collect();
    for (h, id, is_provider, m) in workloads {
        let id = workload_id(*id);
        let a = annotations(m);
        if *is_provider {
            run_provider(&mut hosts[*h], &id, "prov", &ann(&a));
        } else {
            run_component(&mut hosts[*h], &id, "img", 1, &ann(&a));
        }
    }
    let mut state = lattice(hosts);
    for (source, target) in links {
        add_link(&mut state, lattice_link(&workload_id(*source), &workload_id(*target), &[]));
    }
    for c in configs {
        add_config(&mut state, &format!("{}-cfg{c}", APPS[c % APPS.len()]));
    }
    state
}

/// Workloads, links (source, target ids), configs, managed applications.
type Generated = (Vec<Workload>, Vec<(usize, usize)>, Vec<usize>, BTreeSet<String>);

fn world_strategy() -> impl Strategy<Value = Generated> {
    (
        prop::collection::vec((0..3usize, 0..12usize, any::<bool>(), marks_strategy()), 0..16),
        prop::collection::vec((0..12usize, 0..12usize), 0..6),
        prop::collection::vec(0..8usize, 0..6),
        prop::collection::btree_set(
            prop::sample::select(APPS.to_vec()).prop_map(str::to_string),
            0..3,
        ),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn only_wadm_marked_workloads_of_unmanaged_apps_after_the_grace_period(
        (workloads, links, configs, known) in world_strategy(),
        start in 0u64..1_000_000,
        steps in prop::collection::vec(0u64..(2 * GRACE), 1..6),
    ) {
        let state = build(&workloads, &links, &configs);
        let catalog = Catalog::new(LATTICE, Desired { deployed: &[], undeployed: &[] });
        let busy = BTreeMap::new();
        let mut marks = OrphanMarks::new();
        let mut now = start;
        for step in steps {
            let pass = orphan_pass(OrphanInput {
                state: &state, known: &known, catalog: Some(&catalog), busy: &busy,
                marks: &marks, now, grace_ms: GRACE,
            });
            for (orphan, app) in pass.due.iter().chain(&pass.found) {
                prop_assert!(!known.contains(app), "{app} is managed");
                let mark = &pass.marks[&orphan.key()];
                prop_assert_eq!(&mark.app, app);
                match orphan {
                    Orphan::Component { host, id, .. } => {
                        let c = &state.hosts[host].components[id];
                        prop_assert!(fully_marked(&c.annotations, app));
                    }
                    Orphan::Provider { host, id } => {
                        let p = &state.hosts[host].providers[id];
                        prop_assert!(fully_marked(&p.annotations, app));
                    }
                    Orphan::Link(key) => {
                        // Its source runs nowhere without the orphan's marks.
                        for h in state.hosts.values() {
                            let anns = h.components.get(&key.source_id).map(|c| &c.annotations)
                                .or(h.providers.get(&key.source_id).map(|p| &p.annotations));
                            if let Some(anns) = anns {
                                prop_assert!(fully_marked(anns, app));
                            }
                        }
                    }
                    Orphan::Config(name) => {
                        let prefix = format!("{app}-");
                        prop_assert!(name.starts_with(&prefix));
                    }
                }
            }
            for (orphan, _) in &pass.due {
                let mark = &pass.marks[&orphan.key()];
                prop_assert!(mark.since + GRACE <= now, "due before its grace period");
            }
            marks = pass.marks;
            now += step;
        }
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_of_the_input(
        (workloads, links, configs, known) in world_strategy(),
        seed in any::<u64>(),
    ) {
        let catalog = Catalog::new(LATTICE, Desired { deployed: &[], undeployed: &[] });
        let busy = BTreeMap::new();
        let run = |w: &[Workload], l: &[(usize, usize)], c: &[usize], marks: &OrphanMarks, now| {
            let state = build(w, l, c);
            orphan_pass(OrphanInput {
                state: &state, known: &known, catalog: Some(&catalog), busy: &busy,
                marks, now, grace_ms: GRACE,
            })
        };
        let first = run(&workloads, &links, &configs, &OrphanMarks::new(), 0);
        let second = run(&workloads, &links, &configs, &first.marks, GRACE);
        // The same input in another order (a later duplicate of a slot wins in both builds, so
        // permute only distinct slots).
        let mut distinct: BTreeMap<(usize, usize, bool), Workload> = BTreeMap::new();
        for w in &workloads {
            distinct.insert((w.0, w.1, w.2), w.clone());
        }
        let mut shuffled: Vec<Workload> = distinct.into_values().collect();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let (mut l2, mut c2) = (links.clone(), configs.clone());
        l2.reverse();
        c2.reverse();
        let first2 = run(&shuffled, &l2, &c2, &OrphanMarks::new(), 0);
        let second2 = run(&shuffled, &l2, &c2, &first2.marks, GRACE);
        prop_assert_eq!(first, first2);
        prop_assert_eq!(second, second2);
    }
}
