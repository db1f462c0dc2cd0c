//! A discovery round cut into bounded messages, and how each part is merged.
//!
//! Why it works this way: `docs/runtime.md`, “Module notes”, `parts`.

use wadm_lattice::{Changes, Discovery, LatticeState, Timestamp, merge_discovery};

use crate::messages::DiscoveryReport;

/// The default bound of one part's payload: a quarter of the NATS default maximum payload,
/// leaving room for headers and for servers configured lower.
pub const DISCOVERY_PART_BYTES: usize = 256 * 1024;

fn size_of<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).map_or(0, |v| v.len()).saturating_add(1)
}

/// Cut `report` into parts whose payloads are each at most about `max_bytes` (one host's
/// inventory or one link larger than that still travels, alone). A report that fits is
/// returned whole.
pub fn split_report(report: DiscoveryReport, max_bytes: usize) -> Vec<DiscoveryReport> {
    if size_of(&report) <= max_bytes {
        return vec![report];
    }
    let empty = DiscoveryReport { started_at: report.started_at, ..DiscoveryReport::default() };
    let overhead = size_of(&empty) + 64;
    let budget = max_bytes.saturating_sub(overhead).max(1);

    let mut parts = Vec::new();
    let mut current = empty.clone();
    let mut used = 0;
    for entry in report.hosts {
        let size = size_of(&entry);
        if !current.hosts.is_empty() && used + size > budget {
            parts.push(std::mem::replace(&mut current, empty.clone()));
            used = 0;
        }
        used += size;
        current.hosts.push(entry);
    }

    let configs_size = size_of(&report.configs);
    let links = report.links;
    let links_size = links.as_ref().map_or(0, size_of);
    if used + links_size + configs_size <= budget {
        current.links = links;
        current.configs = report.configs;
        parts.push(current);
    } else {
        if !current.hosts.is_empty() {
            parts.push(std::mem::replace(&mut current, empty.clone()));
        }
        match links {
            Some(links) if links_size + configs_size > budget => {
                let mut chunk = Vec::new();
                let mut used = configs_size;
                for link in links {
                    let size = size_of(&link);
                    if !chunk.is_empty() && used + size > budget {
                        let links = Some(std::mem::take(&mut chunk));
                        parts.push(DiscoveryReport { links, links_partial: true, ..empty.clone() });
                        used = configs_size;
                    }
                    used += size;
                    chunk.push(link);
                }
                let links = Some(chunk);
                parts.push(DiscoveryReport {
                    links,
                    links_partial: true,
                    configs: report.configs,
                    ..empty.clone()
                });
            }
            links => parts.push(DiscoveryReport { links, configs: report.configs, ..empty }),
        }
    }
    let count = u32::try_from(parts.len()).unwrap_or(u32::MAX);
    for (i, part) in parts.iter_mut().enumerate() {
        part.part = u32::try_from(i + 1).unwrap_or(u32::MAX);
        part.parts = count;
    }
    parts
}

/// Merge one part (or a whole round) into `state` at `now`.
pub fn merge_report(state: &mut LatticeState, report: &DiscoveryReport, now: Timestamp) -> Changes {
    let mut discovery = Discovery::from(report.clone());
    if report.links_partial
        && let Some(links) = discovery.links.as_mut()
    {
        // Only what this part carries is news: the other links are passed back as they are.
        let carried: std::collections::BTreeSet<_> = links.iter().map(|l| l.key()).collect();
        let others = state.links.iter().filter(|(k, _)| !carried.contains(*k));
        links.extend(others.map(|(_, l)| l.clone()));
    }
    merge_discovery(state, &discovery, now)
}

impl DiscoveryReport {
    /// Whether this is a whole round or its last part (after which everything is reconciled).
    pub fn completes_round(&self) -> bool {
        self.part == 0 || self.part >= self.parts
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use wadm_protocol::{ComponentDescription, Host, HostInventory, Link, StringMap};

    use super::*;

    fn inventory(host: &str, components: usize, pad: usize) -> HostInventory {
        let annotations: StringMap =
            [("wasmcloud.dev/appspec".to_string(), "x".repeat(pad))].into_iter().collect();
        HostInventory {
            host_id: host.into(),
            components: (0..components)
                .map(|i| ComponentDescription {
                    id: format!("{host}-c{i}"),
                    image_ref: "ghcr.io/example/c:1".into(),
                    annotations: annotations.clone(),
                    max_instances: 1,
                    name: None,
                    revision: 0,
                    limits: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn link(i: usize, pad: usize) -> Link {
        crate::test_fixtures::http_link(&format!("s{i}"), &"t".repeat(pad.max(1)))
    }

    fn report(hosts: usize, components: usize, pad: usize, links: usize) -> DiscoveryReport {
        DiscoveryReport {
            started_at: 100,
            hosts: (0..hosts)
                .map(|h| {
                    let id = format!("H{h:03}");
                    (
                        Host { id: id.clone(), ..Host::default() },
                        Some(inventory(&id, components, pad)),
                    )
                })
                .collect(),
            links: Some((0..links).map(|i| link(i, pad)).collect()),
            configs: BTreeMap::from([("cfg".to_string(), Some(StringMap::new()))]),
            ..Default::default()
        }
    }

    fn merged(parts: &[DiscoveryReport], mut state: LatticeState) -> LatticeState {
        for part in parts {
            merge_report(&mut state, part, 200);
        }
        state
    }

    #[test]
    fn a_round_that_fits_is_sent_whole() {
        let r = report(3, 2, 10, 2);
        assert_eq!(split_report(r.clone(), 1 << 20), vec![r]);
    }

    #[test]
    fn a_host_absent_from_the_parts_is_not_deleted() {
        let mut before = LatticeState::default();
        let old = report(1, 1, 1, 0);
        let mut old = old.clone();
        old.hosts[0].0.id = "OLD".into();
        old.hosts[0].1.as_mut().unwrap().host_id = "OLD".into();
        merge_report(&mut before, &old, 50);
        let parts = split_report(report(20, 5, 200, 0), 8 * 1024);
        assert!(parts.len() > 2);
        let after = merged(&parts, before);
        assert!(after.hosts.contains_key("OLD"));
        assert_eq!(after.hosts.len(), 21);
    }

    proptest! {
        #[test]
        fn parts_are_bounded_and_merge_like_the_whole_round(
            hosts in 0usize..30, components in 0usize..6, pad in 1usize..300,
            links in 0usize..60, max in 2_000usize..40_000, stale_links in 0usize..5,
        ) {
            let whole = report(hosts, components, pad, links);
            let parts = split_report(whole.clone(), max);
            // Bounded: every part fits unless it holds a single host or link.
            for p in &parts {
                let single = p.hosts.len() + p.links.as_ref().map_or(0, Vec::len) <= 1;
                prop_assert!(size_of(p) <= max || single, "{} > {max}", size_of(p));
            }
            // Nothing lost, nothing doubled, in order.
            let hosts_sent: Vec<_> = parts.iter().flat_map(|p| p.hosts.clone()).collect();
            prop_assert_eq!(&hosts_sent, &whole.hosts);
            let links_sent: Vec<_> =
                parts.iter().flat_map(|p| p.links.clone().unwrap_or_default()).collect();
            prop_assert_eq!(&links_sent, whole.links.as_ref().unwrap());
            prop_assert!(parts.last().unwrap().completes_round());
            prop_assert_eq!(parts.iter().filter(|p| p.completes_round()).count(), 1);
            // Same state as the whole round, from a state with links the round no longer has
            // (removed when the links travelled complete; kept, at worst, when cut up).
            let mut start = LatticeState::default();
            let stale = DiscoveryReport {
                started_at: 10,
                links: Some((1000..1000 + stale_links).map(|i| link(i, 1)).collect()),
                ..Default::default()
            };
            merge_report(&mut start, &stale, 20);
            let expected = merged(std::slice::from_ref(&whole), start.clone());
            let got = merged(&parts, start);
            prop_assert_eq!(&got.hosts, &expected.hosts);
            prop_assert_eq!(&got.configs, &expected.configs);
            let cut_links = parts.iter().any(|p| p.links_partial);
            if cut_links {
                for (k, l) in &expected.links {
                    prop_assert_eq!(got.links.get(k), Some(l));
                }
            } else {
                prop_assert_eq!(&got.links, &expected.links);
            }
        }
    }
}
