//! A provider id declared by several applications (same image): it runs once per host, annotated
//! with the first application, and records the other applications' scalers that wanted it there,
//! so every co-owner recognises what it placed and converges in one round.

mod common;

use common::*;
use wadm_model::APP_SPEC_ANNOTATION;
use wadm_scheduler::scaler::{CO_OWNER_ANNOTATION_PREFIX, co_owner_key};
use wadm_scheduler::{Command, reconcile};

const ID: &str = "shared-p";

/// `a` wants the provider on every `tier=y` host; `b` has a `tier=y` spread (fewer usable hosts,
/// so it chooses first) and a `zone=c` spread that can use the same host. When `a` wins the
/// annotation of the host `b`'s `tier=y` spread chose, `b` must still see it as its own, or that
/// spread takes the `zone=c` host next round and the other spread starts a new one.
fn world(
    hosts: &[(&str, &[(&str, &str)])],
) -> (Vec<wadm_scheduler::DeployedApp>, wadm_lattice::LatticeState) {
    let a = app(
        "a",
        vec![with_id(
            provider(
                "p",
                "prov:1",
                vec![spreadscaler(2, vec![spread("all", &[("tier", "y")], 1)])],
            ),
            ID,
        )],
    );
    let b = app(
        "b",
        vec![with_id(
            provider(
                "p",
                "prov:1",
                vec![spreadscaler(
                    3,
                    vec![spread("s0", &[("zone", "c")], 2), spread("s1", &[("tier", "y")], 1)],
                )],
            ),
            ID,
        )],
    );
    let hosts = hosts.iter().map(|(id, labels)| host(id, labels)).collect();
    (vec![deployed(a, 1), deployed(b, 1)], lattice(hosts))
}

#[test]
fn co_owners_of_a_provider_converge_in_one_round() {
    // Host names vary the placement tie-breaks (host hashes), so in some of these worlds `b`'s
    // `tier=y` spread first picks the host only it and `a` share.
    let names = ["h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8"];
    for rotate in 0..names.len() {
        let n = |i: usize| names[(i + rotate) % names.len()];
        let (apps, mut lat) = world(&[
            (n(0), &[("zone", "c"), ("tier", "y")]),
            (n(1), &[("zone", "a"), ("tier", "y")]),
            (n(2), &[("zone", "c")]),
            (n(3), &[("zone", "c")]),
        ]);
        let plans = converge(deploy(&apps), &mut lat);
        assert_eq!(plans.len(), 2, "rotation {rotate}: {:#?}", plans);
        // Started once per host; `b`'s scaler is recorded where `a` owns the instance.
        let starts: Vec<&Command> = plans[0].commands.iter().map(|c| &c.command).collect();
        let mut hosts: Vec<&str> = starts.iter().filter_map(|c| c.target_host()).collect();
        hosts.dedup();
        assert_eq!(hosts.len(), starts.len(), "one start per host");
        let b_scaler = co_owner_key("b", "ProviderSpreadScaler-b-p");
        for h in lat.hosts.values() {
            let Some(p) = h.providers.get(ID) else { continue };
            let owner = p.annotations[APP_SPEC_ANNOTATION].as_str();
            if owner == "b" {
                assert!(p.annotations.keys().all(|k| !k.starts_with(CO_OWNER_ANNOTATION_PREFIX)));
            }
        }
        let recorded = lat
            .hosts
            .values()
            .filter_map(|h| h.providers.get(ID))
            .filter(|p| p.annotations.contains_key(&b_scaler))
            .count();
        assert!(recorded >= 1, "rotation {rotate}: a and b share at least the tier=y host");
        let again = reconcile(&apps, &lat, 2);
        assert!(again.is_empty());
        assert_eq!(again.statuses["b"].status.status_type, wadm_model::StatusType::Deployed);
    }
}

#[test]
fn undeploying_one_co_owner_keeps_what_the_other_uses() {
    let (apps, mut lat) = world(&[
        ("h1", &[("zone", "c"), ("tier", "y")]),
        ("h2", &[("zone", "a"), ("tier", "y")]),
        ("h3", &[("zone", "c")]),
        ("h4", &[("zone", "c")]),
    ]);
    converge(deploy(&apps), &mut lat);
    let before = provider_hosts(&lat, ID);
    let b_only = [apps[1].clone()];
    let undeployed = [wadm_scheduler::UndeployedApp {
        name: "a".into(),
        generation: 2,
        last_spec: Some(apps[0].app.clone()),
    }];
    let desired = wadm_scheduler::Desired { deployed: &b_only, undeployed: &undeployed };
    let plans = converge(desired, &mut lat);
    // `b` wants three hosts: the ones only `a` wanted go, the shared ones stay (no restart).
    let after = provider_hosts(&lat, ID);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|h| before.contains(h)), "{before:?} -> {after:?}");
    for plan in &plans {
        assert!(plan.commands.iter().all(|c| !matches!(c.command, Command::StartProvider(_))));
    }
}
