//! Application statuses of a plan: each scaler's status grouped by application and aggregated,
//! `undeployed` for undeployed applications.

use std::collections::BTreeMap;

use wadm_model::{ScalerStatus, Status};

use crate::catalog::Catalog;

/// Consecutive statuses of one application, grouped (the input is in application order). Each
/// group is allocated once, at its final size.
pub(super) fn group_by_app<A: PartialEq>(
    statuses: impl Iterator<Item = (A, ScalerStatus)>,
) -> Vec<(A, Vec<ScalerStatus>)> {
    let statuses: Vec<(A, ScalerStatus)> = statuses.collect();
    let runs = statuses.chunk_by(|a, b| a.0 == b.0).map(<[_]>::len).collect::<Vec<_>>();
    let mut rest = statuses.into_iter();
    let mut groups = Vec::with_capacity(runs.len());
    for len in runs {
        let Some((app, first)) = rest.next() else { break };
        let mut group = Vec::with_capacity(len);
        group.push(first);
        group.extend(rest.by_ref().take(len - 1).map(|(_, status)| status));
        groups.push((app, group));
    }
    groups
}

/// `undeployed` for every undeployed application, then the aggregate of its scalers (none:
/// deployed) for every deployed one, and for any other application scalers reported on; of the
/// applications `keep` accepts.
pub(super) fn app_statuses<A: AsRef<str>>(
    catalog: &Catalog<'_>,
    groups: Vec<(A, Vec<ScalerStatus>)>,
    keep: impl Fn(&str) -> bool,
) -> BTreeMap<String, Status> {
    // Built as a list in name order (one tree built in bulk at the end, no search per insert).
    // Undeployed names come first: a later entry with the same name replaces them.
    let mut out: Vec<(String, Status)> =
        Vec::with_capacity(catalog.undeployed.len() + groups.len());
    for name in catalog.undeployed.keys().filter(|name| keep(name)) {
        out.push((name.to_string(), Status::undeployed()));
    }
    let mut groups = groups.into_iter().peekable();
    for name in catalog.deployed.keys().filter(|name| keep(name)) {
        // Both are in name order: apps without scalers (or not deployed) are passed over.
        while let Some((app, scalers)) = groups.next_if(|(app, _)| app.as_ref() < *name) {
            out.push((app.as_ref().to_string(), Status::aggregate(scalers)));
        }
        match groups.next_if(|(app, _)| app.as_ref() == *name) {
            Some((app, scalers)) => {
                out.push((app.as_ref().to_string(), Status::aggregate(scalers)))
            }
            None => out.push((name.to_string(), Status::aggregate(Vec::new()))),
        };
    }
    for (app, scalers) in groups {
        out.push((app.as_ref().to_string(), Status::aggregate(scalers)));
    }
    // A stable sort keeps the later of equal names last, and collecting keeps the last.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().collect()
}
