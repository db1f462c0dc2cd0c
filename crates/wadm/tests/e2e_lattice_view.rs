//! End to end, wadm on real NATS with simulated hosts: the lattice view (`lattice.hosts`,
//! `lattices`, `wadm lattice …`, `wadm app status --hosts`) agrees with what the hosts
//! themselves report running (their own inventories), limits itself to one application when
//! asked, drops a host that stopped, and lists the lattice.

mod common;

use std::collections::BTreeMap;

use common::{Cluster, DEADLINE, LATTICE};
use serde_json::Value;
use wadm_client::{ClientError, HostSummary};
use wadm_model::StatusType;
use wadm_test_support::wait_for;

fn app_a() -> String {
    common::web_http_app("view-a", 4)
}

fn app_b() -> &'static str {
    r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: view-b
  annotations:
    version: v1
spec:
  components:
    - name: worker
      type: component
      properties:
        image: ghcr.io/example/worker:1.0.0
      traits:
        - type: spreadscaler
          properties:
            instances: 1
"#
}

/// host → (component → instances, providers), the picture both sides are compared on.
type Picture = BTreeMap<String, (BTreeMap<String, u32>, Vec<String>)>;

/// What the simulated hosts say they run (their own inventories), optionally only `app`'s.
fn hosts_say(cluster: &Cluster, app: Option<&str>) -> Picture {
    let owned = |annotations: &BTreeMap<String, String>| {
        app.is_none_or(|a| annotations.get("wasmcloud.dev/appspec").map(String::as_str) == Some(a))
    };
    let mut picture = Picture::new();
    for host in cluster.sim.hosts() {
        let Some(inv) = cluster.sim.inventory(&host) else { continue };
        let comps: BTreeMap<String, u32> = inv
            .components
            .iter()
            .filter(|c| c.max_instances > 0 && owned(&c.annotations))
            .map(|c| (c.id.clone(), c.max_instances))
            .collect();
        let provs: Vec<String> =
            inv.providers.iter().filter(|p| owned(&p.annotations)).map(|p| p.id.clone()).collect();
        if app.is_some() && comps.is_empty() && provs.is_empty() {
            continue;
        }
        picture.insert(host, (comps, provs));
    }
    picture
}

/// The same picture from the view.
fn view_says(hosts: &[HostSummary]) -> Picture {
    hosts
        .iter()
        .map(|h| {
            let comps = h.components.iter().map(|c| (c.id.clone(), c.instances)).collect();
            let provs = h.providers.iter().map(|p| p.id.clone()).collect();
            (h.id.clone(), (comps, provs))
        })
        .collect()
}

/// Wait until the view (all hosts, or `app`'s) agrees with the hosts; the last of both if never.
async fn wait_agreement(cluster: &Cluster, app: Option<&str>) -> Vec<HostSummary> {
    wait_agreement_until(cluster, app, |_| true).await
}

/// [`wait_agreement`] on a view that also satisfies `settled` (e.g. work placed again after a
/// host left: until then both agree on nothing).
async fn wait_agreement_until(
    cluster: &Cluster,
    app: Option<&str>,
    settled: impl Fn(&[HostSummary]) -> bool,
) -> Vec<HostSummary> {
    let last = std::sync::Mutex::new(None);
    let agreed = wait_for(DEADLINE, || async {
        let hosts = match app {
            None => cluster.client.lattice_hosts().await.ok()?,
            Some(app) => cluster.client.app_hosts(app).await.ok()?,
        };
        let (view, truth) = (view_says(&hosts), hosts_say(cluster, app));
        let same = view == truth && settled(&hosts);
        *last.lock().unwrap() = Some((view, truth));
        same.then_some(hosts)
    })
    .await;
    agreed.unwrap_or_else(|| panic!("view never agreed with the hosts: {:#?}", last.lock()))
}

/// `wadm <args…>` against the cluster; stdout when it succeeds.
async fn wadm(cluster: &Cluster, args: &[&str]) -> String {
    let output = cluster.wadm(args).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    );
    assert!(output.status.success(), "wadm {args:?}: {stdout}{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_agrees_with_the_hosts_filters_by_app_and_follows_a_stopped_host() {
    let cluster = Cluster::start(1, Cluster::zone_hosts(&[("a", 2), ("b", 1)])).await;
    let a = cluster.put_and_deploy(&app_a()).await;
    let b = cluster.put_and_deploy(app_b()).await;
    cluster.wait_status(&a, StatusType::Deployed).await.unwrap();
    cluster.wait_status(&b, StatusType::Deployed).await.unwrap();

    // Every host, as the hosts themselves report it.
    let hosts = wait_agreement(&cluster, None).await;
    assert_eq!(hosts.len(), 3);
    for host in &hosts {
        let inv = cluster.sim.inventory(&host.id).expect("a simulated host");
        assert_eq!(host.friendly_name, inv.friendly_name);
        assert_eq!(host.labels, inv.labels, "every label, hostcore.* included");
        assert_eq!(host.version, inv.version);
        // The uptime the host itself reports, within the second it rounds to and the moments
        // between the two reads.
        let uptime = host.uptime_seconds.expect("uptime known");
        assert!(uptime.abs_diff(inv.uptime_seconds) <= 3, "{uptime} vs {}", inv.uptime_seconds);
        assert!(host.started_at.is_some());
        for w in host.components.iter().chain(&host.providers) {
            assert!(w.app.as_deref() == Some("view-a") || w.app.as_deref() == Some("view-b"));
        }
    }
    let total: u32 = hosts
        .iter()
        .flat_map(|h| &h.components)
        .filter(|c| c.id == "view_a-web")
        .map(|c| c.instances)
        .sum();
    assert_eq!(total, 4);

    // One application's placement: only its hosts, only its workloads.
    let placed = wait_agreement(&cluster, Some("view-b")).await;
    assert_eq!(placed.len(), 1, "{placed:#?}");
    assert_eq!(placed[0].components.len(), 1);
    assert_eq!(placed[0].components[0].id, "view_b-worker");
    assert!(placed[0].providers.is_empty());
    let missing = cluster.client.app_hosts("nope").await.unwrap_err();
    assert!(matches!(missing, ClientError::NotFound { .. }), "{missing}");

    // The CLI: `app status --hosts` names each workload's hosts and counts.
    let json: Value = serde_json::from_str(
        &wadm(&cluster, &["app", "status", &a, "--hosts", "-o", "json"]).await,
    )
    .unwrap();
    let placement = json["placement"].as_array().unwrap();
    let web = placement.iter().find(|p| p["id"] == "view_a-web").expect("web placed");
    assert_eq!(web["kind"], "component");
    assert_eq!(web["instances"], 4);
    let web_hosts: u64 =
        web["hosts"].as_array().unwrap().iter().map(|h| h["instances"].as_u64().unwrap()).sum();
    assert_eq!(web_hosts, 4);
    let http = placement.iter().find(|p| p["id"] == "view_a-http").expect("http placed");
    assert_eq!((http["kind"].as_str(), http["instances"].as_u64()), (Some("provider"), Some(1)));
    assert!(placement.iter().all(|p| p["id"] != "view_b-worker"), "only view-a's: {placement:?}");
    let table = wadm(&cluster, &["app", "status", &a, "--hosts"]).await;
    assert!(table.contains("view_a-web") && table.contains("INSTANCES"), "{table}");

    // `lattice hosts`: the table hides the hosts' own labels, JSON keeps them.
    let table = wadm(&cluster, &["lattice", "hosts"]).await;
    assert!(table.contains("zone=a") && table.contains("zone=b"), "{table}");
    assert!(!table.contains("hostcore."), "{table}");
    // Each workload names the application that owns it: where an application runs, at a glance.
    let row = |host: &str| table.lines().find(|l| l.starts_with(host)).unwrap_or("").to_string();
    let b_row = row(&placed[0].id);
    assert!(b_row.contains("view-b/view_b-worker×1"), "{table}");
    let a_rows: Vec<String> = hosts
        .iter()
        .filter(|h| h.components.iter().any(|c| c.id == "view_a-web"))
        .map(|h| row(&h.id))
        .collect();
    assert!(
        !a_rows.is_empty() && a_rows.iter().all(|r| r.contains("view-a/view_a-web×")),
        "{table}"
    );
    assert!(!table.contains(" view_a-web×") && !table.contains(" view_b-worker×"), "{table}");
    let json: Value =
        serde_json::from_str(&wadm(&cluster, &["lattice", "hosts", "-o", "json"]).await).unwrap();
    assert_eq!(json["hosts"].as_array().unwrap().len(), 3);
    assert!(json["hosts"][0]["labels"]["hostcore.os"].is_string(), "{json}");
    let json: Value = serde_json::from_str(
        &wadm(&cluster, &["lattice", "hosts", "--app", &b, "-o", "json"]).await,
    )
    .unwrap();
    assert_eq!(json["hosts"].as_array().unwrap().len(), 1, "{json}");

    // `lattice list` shows the lattice with its hosts.
    let lattices = cluster.client.lattices().await.unwrap();
    assert_eq!(lattices.len(), 1);
    assert_eq!((lattices[0].name.as_str(), lattices[0].hosts), (LATTICE, Some(3)));
    let table = wadm(&cluster, &["lattice", "list"]).await;
    assert!(
        table.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == [LATTICE, "3"]),
        "{table}"
    );

    // A host that stops leaves the view (and its work is placed again on the others).
    let gone = placed[0].id.clone();
    assert!(cluster.sim.stop_host(&gone).await);
    let left = wait_for(DEADLINE, || async {
        let hosts = cluster.client.lattice_hosts().await.ok()?;
        hosts.iter().all(|h| h.id != gone).then_some(hosts)
    })
    .await
    .expect("the stopped host leaves the view");
    assert_eq!(left.len(), 2);
    let after = wait_agreement_until(&cluster, Some("view-b"), |h| h.len() == 1).await;
    assert!(after.iter().all(|h| h.id != gone) && after.len() == 1, "{after:#?}");
    let counted = wait_for(DEADLINE, || async {
        let lattices = cluster.client.lattices().await.ok()?;
        (lattices.first()?.hosts == Some(2)).then_some(())
    })
    .await;
    assert!(counted.is_some(), "lattice list counts 2 hosts");
    cluster.shutdown().await;
}
