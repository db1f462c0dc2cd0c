//! The web dashboard in a real headless Chromium (over chromedriver) against `wadm serve` with
//! simulated hosts: the page shows the applications and hosts the NATS API reports, a manifest
//! pasted into the page and deployed from it converges on the hosts, a manifest with a mistake
//! shows the error at its field path, a version diff shows what changed, and a host stopped in
//! the simulator leaves the page — all without reloading it. Skips, saying why, where no
//! browser is installed.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::served::{LATTICE, serve_with_hosts};
use common::webdriver::Browser;
use serde_json::{Value, json};
use wadm_test_support::{hello_manifest, wait_for};

const TOKEN: &str = "dashboard-token";
const DEADLINE: Duration = Duration::from_secs(60);
const HELLO: &str = include_str!("../../../examples/hello.yaml");

/// Run `script` in the page until it returns something other than null (or time runs out).
async fn until(browser: &Browser, what: &str, script: &str, args: Value) -> Value {
    let found = wait_for(DEADLINE, || async {
        let v = browser.eval(script, args.clone()).await;
        (!v.is_null()).then_some(v)
    })
    .await;
    match found {
        Some(found) => found,
        None => {
            let page =
                browser.eval("return document.querySelector('main').innerText;", json!([])).await;
            panic!("the page never showed {what}; it shows:\n{}", page.as_str().unwrap_or(""))
        }
    }
}

/// The names in the page's applications table, once they equal `names`.
const APPS_ARE: &str = "const rows = [...document.querySelectorAll('#apps tbody tr')];
    const shown = rows.map(r => r.dataset.app + '=' + r.dataset.status).sort();
    return JSON.stringify(shown) === JSON.stringify(arguments[0]) ? shown : null;";

/// The hosts in the page's hosts table, once they equal `ids`.
const HOSTS_ARE: &str = "const rows = [...document.querySelectorAll('#hosts tbody tr')];
    const shown = rows.map(r => r.dataset.host).sort();
    return JSON.stringify(shown) === JSON.stringify(arguments[0]) ? shown : null;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_lattice_deploys_and_follows_changes() {
    let browser = match Browser::start().await {
        Ok(browser) => browser,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let served = serve_with_hosts(&["--http-token", TOKEN], 3).await;
    let nats = async_nats::connect(served.nats_server.url()).await.unwrap();
    let client = wadm_client::Client::new(nats.clone(), LATTICE, None);

    // One application deployed through the NATS API before the page opens.
    let put = client.put_manifest(HELLO.as_bytes().to_vec(), None).await.expect("put");
    client.deploy(&put.name, None).await.expect("deploy");
    let hello = put.name.clone();
    let converged = wait_for(DEADLINE, || async {
        let s = client.status(&hello).await.ok()?;
        (s.status.status_type == wadm_model::StatusType::Deployed).then_some(())
    })
    .await;
    assert!(converged.is_some(), "{}", served.wadm.output());

    browser.goto(&format!("http://{}/", served.addr)).await;

    // The applications and hosts the NATS API reports.
    let listed: Vec<String> =
        client.list().await.unwrap().iter().map(|m| format!("{}={}", m.name, m.status)).collect();
    until(&browser, "the stored applications", APPS_ARE, json!([listed])).await;
    let mut hosts: Vec<String> =
        client.lattice_hosts().await.unwrap().into_iter().map(|h| h.id).collect();
    hosts.sort();
    assert_eq!(hosts.len(), 3);
    until(&browser, "the lattice's hosts", HOSTS_ARE, json!([hosts])).await;

    // The application's placement, as the hosts report it.
    browser.click(&format!("#apps tbody tr[data-app='{hello}']")).await;
    let placed = until(
        &browser,
        "the placement of the selected application",
        "const rows = [...document.querySelectorAll('#placement tbody tr')];
         return rows.length ? rows.map(r => r.dataset.host + ' ' + r.dataset.workload) : null;",
        json!([]),
    )
    .await;
    let running: BTreeSet<String> = served
        .sim
        .hosts()
        .into_iter()
        .filter(|h| {
            served.sim.host_state(h).is_some_and(|s| {
                s.components.values().any(|c| c.count > 0) || !s.providers.is_empty()
            })
        })
        .collect();
    let shown: BTreeSet<String> = placed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(shown, running, "placement rows: {placed}");

    // A manifest with a mistake: the error names the field, nothing is stored.
    browser.type_into("#token", TOKEN).await;
    let bad = hello_manifest("page-app", "v1", 2).replace("instances: 2", "instances: two");
    assert_ne!(bad, hello_manifest("page-app", "v1", 2), "the mistake is in the manifest");
    browser.eval("document.getElementById('manifest').value = arguments[0];", json!([bad])).await;
    browser.click("#deploy").await;
    let error = until(
        &browser,
        "the validation error",
        "const e = document.querySelector('#deploy-result .error');
         return e ? e.textContent : null;",
        json!([]),
    )
    .await;
    assert!(error.as_str().unwrap().contains("instances"), "the error names the field: {error}");
    assert!(client.versions("page-app").await.is_err(), "nothing stored");

    // Pasted and deployed from the page: the hosts run it, the page shows it deployed.
    for version in ["v1", "v2"] {
        let manifest = hello_manifest("page-app", version, 2);
        browser
            .eval("document.getElementById('manifest').value = arguments[0];", json!([manifest]))
            .await;
        browser.click("#deploy").await;
        until(
            &browser,
            "the deploy's confirmation",
            "const e = document.querySelector('#deploy-result .ok');
             return e && e.textContent.includes(arguments[0]) ? e.textContent : null;",
            json!([version]),
        )
        .await;
    }
    let deployed = wait_for(DEADLINE, || async {
        let s = client.status("page-app").await.ok()?;
        (s.status.status_type == wadm_model::StatusType::Deployed).then_some(())
    })
    .await;
    assert!(deployed.is_some(), "the page's deploy converges: {}", served.wadm.output());
    let listed: Vec<String> =
        client.list().await.unwrap().iter().map(|m| format!("{}={}", m.name, m.status)).collect();
    assert_eq!(listed.len(), 2);
    until(&browser, "both applications deployed", APPS_ARE, json!([listed])).await;
    let versions = client.versions("page-app").await.unwrap();
    assert_eq!(versions.iter().filter(|v| v.deployed).count(), 1);
    assert_eq!(versions.len(), 2, "two versions stored");

    // The diff between the two versions shows the change.
    browser.click("#apps tbody tr[data-app='page-app']").await;
    until(
        &browser,
        "the version list",
        "return document.querySelectorAll('#versions tbody tr button').length === 1 ? true : null;",
        json!([]),
    )
    .await;
    browser.click("#versions tbody tr button").await;
    let diff = until(
        &browser,
        "the version diff",
        "const d = document.getElementById('diff');
         return d.hidden ? null : [...d.querySelectorAll('.add, .del')].map(l => l.textContent);",
        json!([]),
    )
    .await;
    let changed = diff.to_string();
    assert!(changed.contains("v1") && changed.contains("v2"), "diff: {changed}");

    // A host stopped in the simulator leaves the page.
    let gone = hosts[0].clone();
    served.sim.stop_host(&gone).await;
    let remaining: Vec<String> = hosts[1..].to_vec();
    until(&browser, "the lattice without the stopped host", HOSTS_ARE, json!([remaining])).await;
    drop(browser);
    served.sim.shutdown().await;
}
