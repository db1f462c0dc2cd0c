//! Progress in statuses: while reconciling, component and provider scalers report
//! `N/M instances running` (what `wadm app deploy --wait` shows); deployed scalers say nothing.

mod common;

use common::*;
use wadm_model::{
    APP_SPEC_ANNOTATION, MANAGED_BY_ANNOTATION, MANAGED_BY_WADM, SCALER_ANNOTATION,
    SPREAD_NAME_ANNOTATION, StatusInfo, StatusType,
};
use wadm_scheduler::reconcile;

/// The status of the scaler of `app` whose kind is `kind`.
fn scaler_status(plan: &wadm_scheduler::Plan, app: &str, kind: &str) -> StatusInfo {
    let status = &plan.statuses[app];
    status.scalers.iter().find(|s| *s.kind == *kind).map(|s| s.status.clone()).unwrap()
}

fn reconciling(message: &str) -> StatusInfo {
    StatusInfo::new(StatusType::Reconciling, message)
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
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling("0/3 instances running"));

    // Two of the three run where they are wanted.
    let mut lat = empty.clone();
    run_ours(lat.hosts.get_mut("h1").unwrap(), "img:2", 2);
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling("2/3 instances running"));
    // The application's message carries the scaler's.
    assert_eq!(plan.statuses["a"].status, reconciling("2/3 instances running"));

    // Instances with another image are not running what is wanted.
    let mut lat = empty.clone();
    run_ours(lat.hosts.get_mut("h1").unwrap(), "img:1", 2);
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling("0/3 instances running"));
}

#[test]
fn component_progress_is_capped_at_the_wanted_count_per_host() {
    let apps = three_of_c();
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    // Five on h1, where two are wanted (3 over 2 hosts): counts as two, not five.
    run_ours(lat.hosts.get_mut("h1").unwrap(), "img:2", 5);
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling("2/3 instances running"));
}

#[test]
fn deployed_scalers_report_their_full_count() {
    let apps = three_of_c();
    let mut lat = lattice(vec![host("h1", &[]), host("h2", &[])]);
    converge(deploy(&apps), &mut lat);
    let plan = reconcile(&apps, &lat, 0);
    assert!(plan.is_empty());
    assert_eq!(
        scaler_status(&plan, "a", "SpreadScaler"),
        StatusInfo::new(StatusType::Deployed, "3/3 instances running")
    );
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
    assert_eq!(scaler_status(&plan, "a", "SpreadScaler"), reconciling("3/3 instances running"));
}

#[test]
fn provider_progress_counts_hosts_running_the_wanted_image() {
    let p = provider("p", "ghcr.io/p:2", vec![spreadscaler(2, vec![])]);
    let apps = [deployed(app("a", vec![p]), 1)];
    let empty = lattice(vec![host("h1", &[]), host("h2", &[]), host("h3", &[])]);
    let plan = reconcile(&apps, &empty, 0);
    let kind = "ProviderSpreadScaler";
    assert_eq!(scaler_status(&plan, "a", kind), reconciling("0/2 instances running"));

    let mut lat = empty.clone();
    converge(deploy(&apps), &mut lat);
    let plan = reconcile(&apps, &lat, 0);
    let deployed = StatusInfo::new(StatusType::Deployed, "2/2 instances running");
    assert_eq!(scaler_status(&plan, "a", kind), deployed);

    // One host loses it: one of two runs.
    let gone = provider_hosts(&lat, "a-p")[0].clone();
    lat.hosts.get_mut(&gone).unwrap().providers.clear();
    let plan = reconcile(&apps, &lat, 0);
    assert_eq!(scaler_status(&plan, "a", kind), reconciling("1/2 instances running"));
}
