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
/// deployed) for every deployed one, and for any other application scalers reported on.
pub(super) fn app_statuses<A: AsRef<str> + Into<String>>(
    catalog: &Catalog<'_>,
    groups: Vec<(A, Vec<ScalerStatus>)>,
) -> BTreeMap<String, Status> {
    let mut out: BTreeMap<String, Status> = BTreeMap::new();
    for name in catalog.undeployed.keys() {
        out.insert(name.to_string(), Status::undeployed());
    }
    let mut groups = groups.into_iter().peekable();
    for name in catalog.deployed.keys() {
        // Both are in name order: apps without scalers (or not deployed) are passed over.
        while let Some((app, scalers)) = groups.next_if(|(app, _)| app.as_ref() < *name) {
            out.insert(app.into(), Status::aggregate(scalers));
        }
        match groups.next_if(|(app, _)| app.as_ref() == *name) {
            Some((app, scalers)) => out.insert(app.into(), Status::aggregate(scalers)),
            None => out.insert(name.to_string(), Status::aggregate(Vec::new())),
        };
    }
    for (app, scalers) in groups {
        out.insert(app.into(), Status::aggregate(scalers));
    }
    out
}
