//! Property tests of the reducer: order tolerance, idempotence of duplicate delivery.
//!
//! A generator simulates a small lattice (two hosts, a few components, providers, links, configs)
//! and emits the events a real lattice would, each with its own strictly increasing time. Applying
//! any permutation of those events, with any events delivered twice, must end in the state reached
//! by applying them in order. Health checks are left out: they describe a provider that must
//! already be running, which only in-order delivery from the host guarantees.

mod common;

use std::collections::BTreeMap;

use common::*;
use proptest::prelude::*;
use wadm_lattice::{DiscoveredHost, Discovery, EventContext, LatticeState, merge_discovery};
use wadm_protocol::{Host, HostEvent, HostInventory, ProviderDescription, StringMap};

const HOSTS: [&str; 2] = [H1, H2];
/// Who answers a link or config request: either host (possibly stopped by then, or not yet
/// started in a shuffled delivery) or a host that never announces itself.
const LATTICE_WIDE_SOURCES: [&str; 3] = [H1, H2, "NSTRANGER"];

type Events = Vec<(EventContext, HostEvent)>;

#[derive(Debug, Clone)]
enum Op {
    Scale { host: usize, comp: u8, count: u32, image: u8 },
    ProviderStart { host: usize, prov: u8 },
    ProviderStop { host: usize, prov: u8 },
    Labels { host: usize, zone: u8 },
    Heartbeat { host: usize },
    LinkSet { src: u8, target: u8, by: usize },
    LinkDel { src: u8, by: usize },
    ConfigSet { n: u8, by: usize },
    ConfigDel { n: u8, by: usize },
    Stop { host: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..3u8, 0..3u32, 0..2u8)
            .prop_map(|(host, comp, count, image)| Op::Scale { host, comp, count, image }),
        2 => (0..2usize, 0..2u8).prop_map(|(host, prov)| Op::ProviderStart { host, prov }),
        1 => (0..2usize, 0..2u8).prop_map(|(host, prov)| Op::ProviderStop { host, prov }),
        1 => (0..2usize, 0..3u8).prop_map(|(host, zone)| Op::Labels { host, zone }),
        2 => (0..2usize).prop_map(|host| Op::Heartbeat { host }),
        1 => (0..2u8, 0..2u8, 0..3usize)
            .prop_map(|(src, target, by)| Op::LinkSet { src, target, by }),
        1 => (0..2u8, 0..3usize).prop_map(|(src, by)| Op::LinkDel { src, by }),
        1 => (0..2u8, 0..3usize).prop_map(|(n, by)| Op::ConfigSet { n, by }),
        1 => (0..2u8, 0..3usize).prop_map(|(n, by)| Op::ConfigDel { n, by }),
        1 => (0..2usize).prop_map(|host| Op::Stop { host }),
    ]
}

#[derive(Default, Clone)]
struct SimHost {
    stopped: bool,
    zone: u8,
    comps: BTreeMap<String, (String, u32)>,
    provs: BTreeMap<String, String>,
}

fn sim_inventory(id: &str, h: &SimHost) -> HostInventory {
    let comps: Vec<(&str, &str, u32)> =
        h.comps.iter().map(|(id, (img, n))| (id.as_str(), img.as_str(), *n)).collect();
    let mut inv = inventory(id, &[("zone", &h.zone.to_string())], &comps);
    inv.providers = h
        .provs
        .iter()
        .map(|(id, img)| ProviderDescription {
            id: id.clone(),
            image_ref: img.clone(),
            name: None,
            annotations: app("demo"),
            revision: 0,
        })
        .collect();
    inv
}

/// Turn ops into the events a real lattice would publish, with increasing times.
fn events(ops: &[Op]) -> Events {
    simulate(ops).0
}

/// What the simulated lattice runs at the end: hosts, links (source → target), config names.
struct Truth {
    hosts: Vec<SimHost>,
    links: BTreeMap<u8, u8>,
    configs: BTreeMap<u8, bool>,
}

fn simulate(ops: &[Op]) -> (Events, Truth) {
    let mut hosts = vec![SimHost::default(); 2];
    let mut links = BTreeMap::new();
    let mut configs = BTreeMap::new();
    let mut out = Vec::new();
    let mut time = 1_000u64;
    let mut emit = |source: &str, event: HostEvent, out: &mut Vec<_>| {
        time += 1;
        out.push((ctx(source, &format!("ev{time}"), time), event));
    };
    for (i, host) in HOSTS.iter().enumerate() {
        emit(host, started(&[("zone", &hosts[i].zone.to_string())]), &mut out);
    }
    for op in ops {
        let host_of = |h: usize| HOSTS[h];
        match op.clone() {
            Op::Scale { host, comp, count, image } if !hosts[host].stopped => {
                let id = format!("c{comp}");
                let image = format!("img:{image}");
                if count == 0 {
                    hosts[host].comps.remove(&id);
                } else {
                    hosts[host].comps.insert(id.clone(), (image.clone(), count));
                }
                emit(host_of(host), scaled(&id, &image, count, "demo"), &mut out);
            }
            Op::ProviderStart { host, prov } if !hosts[host].stopped => {
                let id = format!("p{prov}");
                if !hosts[host].provs.contains_key(&id) {
                    hosts[host].provs.insert(id.clone(), "prov-img".into());
                    emit(host_of(host), provider_started(&id, "prov-img", "demo"), &mut out);
                }
            }
            Op::ProviderStop { host, prov } if !hosts[host].stopped => {
                let id = format!("p{prov}");
                if hosts[host].provs.remove(&id).is_some() {
                    emit(host_of(host), provider_stopped(&id), &mut out);
                }
            }
            Op::Labels { host, zone } if !hosts[host].stopped => {
                hosts[host].zone = zone;
                emit(host_of(host), labels(&[("zone", &zone.to_string())]), &mut out);
            }
            Op::Heartbeat { host } if !hosts[host].stopped => {
                let inv = sim_inventory(host_of(host), &hosts[host]);
                emit(host_of(host), HostEvent::HostHeartbeat(inv), &mut out);
            }
            Op::Stop { host } if !hosts[host].stopped => {
                hosts[host].stopped = true;
                emit(host_of(host), stopped(), &mut out);
            }
            Op::LinkSet { src, target, by } => {
                links.insert(src, target);
                let l = link(&format!("c{src}"), &format!("p{target}"));
                emit(LATTICE_WIDE_SOURCES[by], HostEvent::LinkSet(l), &mut out);
            }
            Op::LinkDel { src, by } => {
                links.remove(&src);
                emit(LATTICE_WIDE_SOURCES[by], link_deleted(&format!("c{src}")), &mut out);
            }
            Op::ConfigSet { n, by } => {
                configs.insert(n, true);
                emit(LATTICE_WIDE_SOURCES[by], config_set(&format!("cfg{n}")), &mut out);
            }
            Op::ConfigDel { n, by } => {
                configs.insert(n, false);
                emit(LATTICE_WIDE_SOURCES[by], config_deleted(&format!("cfg{n}")), &mut out);
            }
            _ => {}
        }
    }
    (out, Truth { hosts, links, configs })
}

/// A discovery round answering with the truth, as every live host would.
fn truthful_round(truth: &Truth, started_at: u64) -> Discovery {
    let hosts = truth
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.stopped)
        .map(|(i, h)| {
            let inv = sim_inventory(HOSTS[i], h);
            let host = Host { id: HOSTS[i].into(), labels: inv.labels.clone(), ..Host::default() };
            DiscoveredHost { host, inventory: Some(inv) }
        })
        .collect();
    let links = truth.links.iter().map(|(s, t)| link(&format!("c{s}"), &format!("p{t}"))).collect();
    let configs = (0..2u8)
        .map(|n| {
            let exists = truth.configs.get(&n).copied().unwrap_or(false);
            (format!("cfg{n}"), exists.then(StringMap::new))
        })
        .collect();
    Discovery { started_at, hosts, links: Some(links), configs }
}

/// What the lattice runs, without the reducer's bookkeeping (nor since when wadm has seen each
/// component's image: that depends on when it heard, not on what runs).
fn observable(s: &LatticeState) -> LatticeState {
    let mut s = LatticeState { bookkeeping: Default::default(), ..s.clone() };
    for host in s.hosts.values_mut() {
        for c in host.components.values_mut() {
            c.since = 0;
        }
    }
    s
}

fn run(events: &[(EventContext, HostEvent)]) -> LatticeState {
    let mut s = LatticeState { lattice: "default".into(), ..LatticeState::default() };
    for (ctx, ev) in events {
        apply(&mut s, ctx, ev, 5_000);
    }
    s
}

fn sequence_and_permutation() -> impl Strategy<Value = (Events, Events)> {
    prop::collection::vec(op(), 0..40).prop_flat_map(|ops| {
        let evs = events(&ops);
        (Just(evs.clone()), Just(evs).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_order_ends_in_the_same_state((ordered, shuffled) in sequence_and_permutation()) {
        let expected = observable(&run(&ordered));
        prop_assert_eq!(observable(&run(&shuffled)), expected);
    }

    #[test]
    fn links_and_configs_hold_whichever_host_reported_them(
        ops in prop::collection::vec(op(), 0..40),
        shuffle_seed in any::<u64>(),
    ) {
        let (mut evs, truth) = simulate(&ops);
        // Any delivery order: a host's link answer may come before its start, after its stop,
        // or from a host that never announces itself.
        let n = evs.len();
        for i in (1..n).rev() {
            let j = (shuffle_seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            evs.swap(i, j);
        }
        let s = run(&evs);
        let links: BTreeMap<String, String> =
            s.links.values().map(|l| (l.source_id.clone(), l.target.clone())).collect();
        let expected: BTreeMap<String, String> =
            truth.links.iter().map(|(src, t)| (format!("c{src}"), format!("p{t}"))).collect();
        prop_assert_eq!(links, expected);
        let names: Vec<String> = s.configs.keys().cloned().collect();
        let expected: Vec<String> =
            truth.configs.iter().filter(|(_, on)| **on).map(|(n, _)| format!("cfg{n}")).collect();
        prop_assert_eq!(names, expected);
        prop_assert!(!s.hosts.contains_key("NSTRANGER"));
    }

    #[test]
    fn duplicates_in_any_order_end_in_the_same_state(
        (ordered, shuffled) in sequence_and_permutation(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
    ) {
        let expected = observable(&run(&ordered));
        let mut with_dups = shuffled.clone();
        if !shuffled.is_empty() {
            for d in dups {
                with_dups.push(shuffled[d.index(shuffled.len())].clone());
            }
        }
        prop_assert_eq!(observable(&run(&with_dups)), expected);
    }

    #[test]
    fn a_truthful_discovery_round_repairs_any_partial_view(
        ops in prop::collection::vec(op(), 0..40),
        seen in prop::collection::vec(any::<bool>(), 0..80),
    ) {
        let (evs, truth) = simulate(&ops);
        // wadm saw only some of the events (lost messages), in order.
        let partial: Events = evs
            .iter()
            .zip(seen.iter().chain(std::iter::repeat(&false)))
            .filter(|(_, seen)| **seen)
            .map(|(e, _)| e.clone())
            .collect();
        let mut from_events = run(&partial);
        merge_discovery(&mut from_events, &truthful_round(&truth, 6_000), 6_000);
        let from_events = observable(&from_events);
        // The reference: everything applied, then the same round.
        let mut from_all = run(&evs);
        merge_discovery(&mut from_all, &truthful_round(&truth, 6_000), 6_000);
        let from_all = observable(&from_all);
        let live: Vec<&str> = truth.hosts.iter().enumerate()
            .filter(|(_, h)| !h.stopped).map(|(i, _)| HOSTS[i]).collect();
        for id in &live {
            let a = &from_events.hosts[*id];
            let b = &from_all.hosts[*id];
            prop_assert_eq!(&a.components, &b.components);
            prop_assert_eq!(&a.labels, &b.labels);
            let ids = |h: &wadm_lattice::HostState| h.providers.keys().cloned().collect::<Vec<_>>();
            prop_assert_eq!(ids(a), ids(b));
        }
        prop_assert_eq!(&from_events.links, &from_all.links);
        let names = |s: &LatticeState| s.configs.keys().cloned().collect::<Vec<_>>();
        prop_assert_eq!(names(&from_events), names(&from_all));
        // And the round's answers are what the lattice runs.
        prop_assert_eq!(from_all.links.len(), truth.links.len());
        for id in live {
            let expected = truthful_round(&truth, 0).hosts.into_iter()
                .find(|d| d.host.id == id).unwrap().inventory.unwrap();
            prop_assert_eq!(from_all.hosts[id].components.len(), expected.components.len());
            prop_assert_eq!(from_all.hosts[id].providers.len(), expected.providers.len());
        }
    }

    #[test]
    fn redelivering_an_applied_event_is_a_no_op(
        ordered in prop::collection::vec(op(), 0..40).prop_map(|ops| events(&ops)),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut s = run(&ordered);
        let (ctx, ev) = &ordered[pick.index(ordered.len())];
        let before = s.clone();
        let changes = apply(&mut s, ctx, ev, 9_000);
        prop_assert!(changes.is_empty(), "{:?}", changes);
        let mut expected = before;
        expected.bookkeeping.stale_events = s.bookkeeping.stale_events;
        prop_assert_eq!(s, expected);
    }
}
