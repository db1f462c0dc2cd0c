//! The real sample manifests, parsed by `wadm-model`, deployed onto a simulated lattice: each one
//! converges to a fixed point with fully annotated instances, and its undeploy removes everything
//! it owns.

mod common;

use std::path::PathBuf;

use common::*;
use wadm_lattice::LatticeState;
use wadm_model::{
    APP_SPEC_ANNOTATION, Application, Format, Limits, MANAGED_BY_ANNOTATION, SCALER_ANNOTATION,
    SPREAD_NAME_ANNOTATION, StatusType, parse_manifest,
};
use wadm_scheduler::{Desired, UndeployedApp};

fn manifests() -> Vec<(String, Application)> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("shared manifests directory")
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let bytes = std::fs::read(&path).ok()?;
            let parsed = parse_manifest(&bytes, Format::Auto, &Limits::default()).ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), parsed.app))
        })
        .collect()
}

fn hosts() -> LatticeState {
    lattice(vec![
        host("NEAST", &[("zone", "us-east-1"), ("ledenabled", "true")]),
        host("NWEST", &[("zone", "us-west-1")]),
        host("NPLAIN", &[]),
    ])
}

#[test]
fn every_sample_manifest_converges_and_undeploys_cleanly() {
    let all = manifests();
    assert!(all.len() >= 6, "expected the shared sample manifests, parsed {}", all.len());
    let mut fully_deployed = 0;
    for (file, app) in all {
        let mut lat = hosts();
        let apps = [deployed(app.clone(), 1)];
        let plans = converge(deploy(&apps), &mut lat);
        let last = plans.last().unwrap();
        let status = &last.statuses[&app.name];
        for s in &status.scalers {
            assert!(
                matches!(s.status.status_type, StatusType::Deployed | StatusType::Waiting),
                "{file}: scaler {} is {:?}: {}",
                s.id,
                s.status.status_type,
                s.status.message
            );
        }
        fully_deployed += usize::from(status.status.status_type == StatusType::Deployed);
        let placed =
            lat.hosts.values().map(|h| h.components.len() + h.providers.len()).sum::<usize>();
        assert!(
            placed > 0 || status.status.status_type == StatusType::Waiting,
            "{file}: nothing placed"
        );
        for h in lat.hosts.values() {
            let annotations = h
                .components
                .values()
                .map(|c| &c.annotations)
                .chain(h.providers.values().map(|p| &p.annotations));
            for a in annotations {
                assert_eq!(a[MANAGED_BY_ANNOTATION], "wadm", "{file}");
                assert_eq!(a[APP_SPEC_ANNOTATION], app.name, "{file}");
                assert!(
                    a.contains_key(SCALER_ANNOTATION) && a.contains_key(SPREAD_NAME_ANNOTATION)
                );
            }
        }
        // Undeploy: nothing of it remains (external configs were never ours).
        let gone = [UndeployedApp { name: app.name.clone(), generation: 2, last_spec: Some(app) }];
        let plans = converge(Desired { deployed: &[], undeployed: &gone }, &mut lat);
        assert!(
            plans.last().unwrap().statuses[&gone[0].name].status.status_type
                == StatusType::Undeployed
        );
        assert!(
            lat.hosts.values().all(|h| h.components.is_empty() && h.providers.is_empty()),
            "{file}"
        );
        assert!(lat.links.is_empty(), "{file}: {:?}", lat.links);
        assert!(lat.configs.is_empty(), "{file}: {:?}", lat.configs.keys());
    }
    assert!(fully_deployed >= 5, "only {fully_deployed} sample apps reached deployed");
}

#[test]
fn weighted_sample_spreads_land_where_their_labels_are() {
    let (_, app) =
        manifests().into_iter().find(|(f, _)| f == "simple1.yaml").expect("simple1.yaml");
    let mut lat = hosts();
    let apps = [deployed(app, 1)];
    converge(deploy(&apps), &mut lat);
    // instances 4 over eastcoast 80 / westcoast 20: floors 3 and 0, the remainder goes to the
    // heaviest spread → 4 east, 0 west.
    let per_host = |host: &str| lat.hosts[host].components.values().map(|c| c.count).sum::<u32>();
    assert_eq!((per_host("NEAST"), per_host("NWEST"), per_host("NPLAIN")), (4, 0, 0));
}
