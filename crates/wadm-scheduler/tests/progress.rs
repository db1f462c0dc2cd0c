//! Progress in statuses: while reconciling, component and provider scalers report
//! `N/M instances running` (what `wadm app deploy --wait` shows); deployed scalers say nothing.

mod common;

use common::*;
use wadm_model::{
    APP_SPEC_ANNOTATION, Instances, MANAGED_BY_ANNOTATION, MANAGED_BY_WADM, SCALER_ANNOTATION,
    SPREAD_NAME_ANNOTATION, StatusInfo, StatusType,
};
use wadm_scheduler::reconcile;

/// The status of the scaler of `app` whose kind is `kind`.
fn scaler_status(plan: &wadm_scheduler::Plan, app: &str, kind: &str) -> StatusInfo {
    let status = &plan.statuses[app];
    status.scalers.iter().find(|s| *s.kind == *kind).map(|s| s.status.clone()).unwrap()
}

/// `N/M instances running`, in the message and in the counts.
fn counted(status_type: StatusType, running: u64, target: u64) -> StatusInfo {
    StatusInfo::new(status_type, format!("{running}/{target} instances running"))
        .with_instances(Instances::new(running, target))
}

fn reconciling(running: u64, target: u64) -> StatusInfo {
    counted(StatusType::Reconciling, running, target)
}

fn ours(scaler: &str) -> Vec<(&'static str, String)> {
    vec![
        (MANAGED_BY_ANNOTATION, MANAGED_BY_WADM.to_string()),
        (APP_SPEC_ANNOTATION, "a".to_string()),
        (SCALER_ANNOTATION, scaler.to_string()),
        (SPREAD_NAME_ANNOTATION, "default".to_string()),
    ]
}

fn run_ours(h: &mut wadm_lattice::HostState, image: &str, count: u32) {
    let ann = ours("SpreadScaler-a-c");
    let ann: Vec<(&str, &str)> = ann.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_component(h, "a-c", image, count, &ann);
}

fn three_of_c() -> Vec<wadm_scheduler::DeployedApp> {
    vec![deployed(app("a", vec![component("c", "img:2", vec![spreadscaler(3, vec![])])]), 1)]
}

#[test]
fn component_progress_counts_instances_with_the_wanted_image() {
    let apps = three_of_c();
    let empty = lattice(vec![host("h1", &[]), host("h2", &[])]);
    let plan = reconcile(&apps, &empty, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling(0, 3));

    // Two of the three run where they are wanted.
    let mut lat = empty.clone();
    run_ours(lat.hosts.get_mut("h1").unwrap(), "img:2", 2);
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling(2, 3));
    // The application's message carries the scaler's.
    assert_eq!(plan.statuses["a"].status, reconciling(2, 3));

    // Instances with another image are not running what is wanted.
    let mut lat = empty.clone();
    run_ours(lat.hosts.get_mut("h1").unwrap(), "img:1", 2);
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling(0, 3));
}

#[test]
fn component_progress_is_capped_at_the_wanted_count_per_host() {
    let apps = three_of_c();
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    // Five on h1, where two are wanted (3 over 2 hosts): counts as two, not five.
    run_ours(lat.hosts.get_mut("h1").unwrap(), "img:2", 5);
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling(2, 3));
}

#[test]
fn deployed_scalers_report_their_full_count() {
    let apps = three_of_c();
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    converge(deploy(&apps), &mut lat);
    let plan = reconcile(&apps, &lat, 0);
    assert!(plan.is_empty());
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), counted(StatusType::Deployed, 3, 3));
}

#[test]
fn extra_instances_keep_the_scaler_reconciling_with_full_progress() {
    let apps = three_of_c();
    let hosts = (1..=4).map(|i| host(&format!("h{i}"), &[])).collect();
    let mut lat = lattice(hosts);
    converge(deploy(&apps), &mut lat);
    // One of ours more, on a host the placement does not want.
    let spare = lat.hosts.values().find(|h| !h.components.contains_key("a-c")).unwrap().id.clone();
    run_ours(lat.hosts.get_mut(&spare).unwrap(), "img:2", 1);
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling(3, 3));
}

#[test]
fn provider_progress_counts_hosts_running_the_wanted_image() {
    let p = provider("p", "ghcr.io/p:2", vec![spreadscaler(2, vec![])]);
    let apps = [deployed(app("a", vec![p]), 1)];
    let empty = lattice(vec![host("h1", &[]), host("h2", &[]), host("h3", &[])]);
    let plan = reconcile(&apps, &empty, 0);
    let kind = "ProviderSpreadScaler";
    assert_eq!(scaler_status(&plan, "a", kind), reconciling(0, 2));

    let mut lat = empty.clone();
    converge(deploy(&apps), &mut lat);
    let plan = reconcile(&apps, &lat, 0);
    let deployed = counted(StatusType::Deployed, 2, 2);
    assert_eq!(scaler_status(&plan, "a", kind), deployed);

    // One host loses it: one of two runs.
    let gone = provider_hosts(&lat, "a-p")[0].clone();
    lat.hosts.get_mut(&gone).unwrap().providers.clear();
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", kind), reconciling(1, 2));
}

/// The counts of the scaler of `app` whose kind is `kind`, with its status type.
fn counts_of(
    plan: &wadm_scheduler::Plan,
    app: &str,
    kind: &str,
) -> (StatusType, Option<Instances>) {
    let status = scaler_status(plan, app, kind);
    (status.status_type, status.instances)
}

#[test]
fn waiting_and_failed_scalers_still_count_instances() {
    // No hosts: waiting, none of three running.
    let apps = three_of_c();
    let plan = reconcile(&apps, &lattice(vec![]), 0);
    let waiting = (StatusType::Waiting, Some(Instances::new(0, 3)));
    assert_eq!(counts_of(&plan, "a", "SpreadScaler"), waiting);
    assert_eq!(plan.statuses["a"].status.instances, Some(Instances::new(0, 3)));

    // A spread no host can satisfy: failed, the instances it declares still the target.
    let c =
        component("c", "img:2", vec![spreadscaler(4, vec![spread("gpu", &[("gpu", "yes")], 100)])]);
    let apps = [deployed(app("a", vec![c]), 1)];
    let plan = reconcile(&apps, &lattice(vec![host("h1", &[])]), 0);
    assert_eq!(
        counts_of(&plan, "a", "SpreadScaler"),
        (StatusType::Failed, Some(Instances::new(0, 4)))
    );

    // A provider spread short of hosts: failed, one of two hosts runs it.
    let p = provider("p", "ghcr.io/p:2", vec![spreadscaler(2, vec![])]);
    let apps = [deployed(app("a", vec![p]), 1)];
    let mut lat = lattice(vec![host("h1", &[])]);
    converge(deploy(&apps), &mut lat);
    let plan = reconcile(&apps, &lat, 0);
    let failed = (StatusType::Failed, Some(Instances::new(1, 2)));
    assert_eq!(counts_of(&plan, "a", "ProviderSpreadScaler"), failed);
}

#[test]
fn scalers_waiting_for_config_count_what_they_hold() {
    let apps = three_of_c();
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    converge(deploy(&apps), &mut lat);
    // The same component now needs a config nobody has put: it waits, holding its three.
    let mut c = component("c", "img:2", vec![spreadscaler(3, vec![])]);
    c.config.push(external_config("missing"));
    let apps = [deployed(app("a", vec![c]), 1)];
    let plan = reconcile(&apps, &lat, 0);
    let waiting = (StatusType::Waiting, Some(Instances::new(3, 3)));
    assert_eq!(counts_of(&plan, "a", "SpreadScaler"), waiting);

    let mut p = provider("p", "ghcr.io/p:2", vec![spreadscaler(2, vec![])]);
    p.config.push(external_config("missing"));
    let apps = [deployed(app("a", vec![p]), 1)];
    let plan = reconcile(&apps, &lat, 0);
    let waiting = (StatusType::Waiting, Some(Instances::new(0, 2)));
    assert_eq!(counts_of(&plan, "a", "ProviderSpreadScaler"), waiting);
}

#[test]
fn links_and_configs_count_no_instances() {
    let mut c = component("c", "img:2", vec![spreadscaler(1, vec![])]);
    c.config.push(owned_config("cfg", &[("k", "v")]));
    let apps = [deployed(app("a", vec![c]), 1)];
    let plan = reconcile(&apps, &lattice(vec![host("h1", &[])]), 0);
    let status = &plan.statuses["a"];
    for s in &status.scalers {
        let counted = s.status.instances.is_some();
        assert_eq!(counted, *s.kind == *"SpreadScaler", "{s:?}");
    }
    assert_eq!(status.status.instances, Some(Instances::new(0, 1)));
}
