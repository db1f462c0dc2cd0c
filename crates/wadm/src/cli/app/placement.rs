//! Where an application's components and providers run, per workload: what
//! `wadm app status --hosts` shows.

use std::collections::BTreeMap;

use serde::Serialize;
use wadm_client::HostSummary;

/// Where one component or provider runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub id: String,
    /// `component` or `provider`.
    pub kind: &'static str,
    /// Instances over all its hosts.
    pub instances: u32,
    pub hosts: Vec<PlacedOn>,
}

/// One host of a [`Placement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacedOn {
    pub host: String,
    pub friendly_name: String,
    pub instances: u32,
}

/// Each component and provider of `hosts` (an application's view) with the hosts it runs on,
/// components first, each by id; hosts in the order given (by id).
pub fn placement(hosts: &[HostSummary]) -> Vec<Placement> {
    let mut by_workload: BTreeMap<(u8, String), Placement> = BTreeMap::new();
    for host in hosts {
        let kinds = [(0u8, "component", &host.components), (1, "provider", &host.providers)];
        for (order, kind, list) in kinds {
            for w in list.iter() {
                let entry = by_workload.entry((order, w.id.clone())).or_insert_with(|| Placement {
                    id: w.id.clone(),
                    kind,
                    instances: 0,
                    hosts: Vec::new(),
                });
                entry.instances += w.instances;
                entry.hosts.push(PlacedOn {
                    host: host.id.clone(),
                    friendly_name: host.friendly_name.clone(),
                    instances: w.instances,
                });
            }
        }
    }
    by_workload.into_values().collect()
}

/// The placement as a table: one row per component or provider, its hosts as `name (id…)×n`.
pub fn print_placement(placement: &[Placement]) {
    if placement.is_empty() {
        outln!("Nothing of it runs on any host");
        return;
    }
    let mut table = super::Table::new(&["ID", "KIND", "INSTANCES", "HOSTS"]);
    for p in placement {
        let hosts: Vec<String> = p
            .hosts
            .iter()
            .map(|h| {
                let short: String = h.host.chars().take(8).collect();
                let name = if h.friendly_name.is_empty() { "?" } else { &h.friendly_name };
                format!("{name} ({short}…)×{}", h.instances)
            })
            .collect();
        table.row(vec![p.id.clone(), p.kind.into(), p.instances.to_string(), hosts.join(", ")]);
    }
    let text = table.render();
    outln!("{}", text.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;
    use wadm_client::RunningWorkload;

    fn host(id: &str, comps: &[(&str, u32)], provs: &[&str]) -> HostSummary {
        let w = |id: &str, n| RunningWorkload { id: id.into(), instances: n, ..Default::default() };
        HostSummary {
            id: id.into(),
            friendly_name: format!("{id}-name"),
            components: comps.iter().map(|(c, n)| w(c, *n)).collect(),
            providers: provs.iter().map(|p| w(p, 1)).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn placement_sums_each_workload_over_its_hosts() {
        let hosts = [host("N1", &[("web", 2)], &["http"]), host("N2", &[("web", 1)], &[])];
        let p = placement(&hosts);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].id.as_str(), p[0].kind, p[0].instances), ("web", "component", 3));
        assert_eq!(p[0].hosts.len(), 2);
        assert_eq!((p[1].id.as_str(), p[1].kind, p[1].instances), ("http", "provider", 1));
        assert_eq!(p[1].hosts[0].host, "N1");
    }
}
