//! Account-scoped mode (`wadm serve --account-scoped`) on a real `nats-server` with three
//! accounts: `WADM` runs wadm; tenants `TA` and `TB` each run simulated hosts on a lattice named
//! `default` and deploy an application of the same name through the unchanged client. The
//! accounts' exports and imports (`tenant_config`) map each tenant's `wadm.api.>` to
//! `{tenant}.wadm.api.>`, its events to `{tenant}.wasmbus.evt.>`, wadm's control requests on
//! `{tenant}.wasmbus.ctl.>` back to the tenant's hosts, and `{tenant}.wadm.status.>` to the
//! tenant's `wadm.status.>`. Assertions read the tenants' simulated hosts: each runs only its
//! own application, at its own count; one tenant's undeploy leaves the other's running.

mod common;

use std::time::Duration;

use common::child::Wadm;
use wadm_model::StatusType;
use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, hello_manifest, wait_for};

const DEADLINE: Duration = Duration::from_secs(60);

/// The server configuration: wadm's account and two tenants that export their lattice to it and
/// import its API and statuses, each under its own account token.
fn tenant_config() -> String {
    let tenant = |name: &str| {
        format!(
            r#"
  {name} {{
    users: [{{user: "{lower}", password: "{lower}-pw"}}]
    exports: [
      {{stream: "wasmbus.evt.>", accounts: [WADM]}}
      {{service: "wasmbus.ctl.>", accounts: [WADM], response_type: stream}}
    ]
    imports: [
      {{service: {{account: WADM, subject: "{name}.wadm.api.>"}}, to: "wadm.api.>"}}
      {{stream: {{account: WADM, subject: "{name}.wadm.status.>"}}, to: "wadm.status.>"}}
    ]
  }}"#,
            lower = name.to_lowercase()
        )
    };
    let wadm_side = |name: &str| {
        (
            format!(
                r#"      {{service: "{name}.wadm.api.>", accounts: [{name}]}}
      {{stream: "{name}.wadm.status.>", accounts: [{name}]}}
"#
            ),
            format!(
                r#"      {{stream: {{account: {name}, subject: "wasmbus.evt.>"}}, prefix: "{name}"}}
      {{service: {{account: {name}, subject: "wasmbus.ctl.>"}}, to: "{name}.wasmbus.ctl.>"}}
"#
            ),
        )
    };
    let (exports_a, imports_a) = wadm_side("TA");
    let (exports_b, imports_b) = wadm_side("TB");
    format!(
        r#"accounts {{
  WADM {{
    jetstream: enabled
    users: [{{user: "wadm", password: "wadm-pw"}}]
    exports: [
{exports_a}{exports_b}    ]
    imports: [
{imports_a}{imports_b}    ]
  }}{a}{b}
}}
"#,
        a = tenant("TA"),
        b = tenant("TB"),
    )
}

/// A connection as `user` (password `{user}-pw`).
async fn connect(url: &str, user: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-pw"))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"))
}

/// One tenant: its simulated hosts and its client (which knows nothing of accounts).
struct Tenant {
    sim: SimLattice,
    client: wadm_client::Client,
}

impl Tenant {
    async fn start(url: &str, user: &str, hosts: usize) -> Tenant {
        let mut config = SimConfig::new(url, "default");
        config.heartbeat_interval = Duration::from_secs(1);
        let sim = SimLattice::with_client(connect(url, user).await, config)
            .await
            .expect("tenant's hosts connect");
        for _ in 0..hosts {
            sim.add_host(HostSpec::default()).await;
        }
        let nats = connect(url, user).await;
        let client = wadm_client::Client::new(nats, "default", None);
        Tenant { sim, client }
    }

    /// Instances of `component` its hosts run, in total.
    fn instances(&self, component: &str) -> u32 {
        let mut total = 0;
        for host in self.sim.hosts() {
            let Some(state) = self.sim.host_state(&host) else { continue };
            total += state.components.get(component).map_or(0, |c| c.count);
        }
        total
    }

    async fn deploy(&self, yaml: &str) {
        let put = wait_for(DEADLINE, || async {
            self.client.put_manifest(yaml.as_bytes().to_vec(), None).await.ok()
        })
        .await
        .expect("put answered");
        self.client.deploy(&put.name, None).await.expect("deploy");
    }

    async fn wait_instances(&self, who: &str, component: &str, wanted: u32) {
        let reached =
            wait_for(DEADLINE, || async { (self.instances(component) == wanted).then_some(()) })
                .await;
        assert!(
            reached.is_some(),
            "{who}: {component} never ran {wanted} instances (runs {})",
            self.instances(component)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_with_the_same_lattice_and_app_names_never_meet() {
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), tenant_config()).unwrap();
    let nats = NatsServer::start_with(vec!["-c".into(), config.path().display().to_string()]);
    let url = nats.url();

    let mut wadm = Wadm::start(&[
        "serve",
        "--account-scoped",
        "--nats-url",
        &url,
        "--nats-user",
        "wadm",
        "--nats-password",
        "wadm-pw",
        "--host-heartbeat",
        "1s",
        "--lease-slack",
        "1s",
        "--resync-every",
        "500ms",
    ]);
    let wadm_nats = connect(&url, "wadm").await;
    let a = Tenant::start(&url, "ta", 2).await;
    let b = Tenant::start(&url, "tb", 2).await;
    // Each account's lattice gets streams of its own once its hosts show up.
    let js = async_nats::jetstream::new(wadm_nats.clone());
    for account in ["TA", "TB"] {
        let name = format!("{}_{account}", wadm_store::StoreNames::default().events_stream());
        let stream = wait_for(DEADLINE, || async { js.get_stream(&name).await.ok() }).await;
        let mut stream = stream.unwrap_or_else(|| panic!("no {name}: {}", wadm.output()));
        let subjects = stream.info().await.unwrap().config.subjects.clone();
        assert!(subjects.contains(&format!("{account}.wasmbus.evt.*.>")), "{subjects:?}");
    }
    // Same application name, same lattice name, different instance counts.
    a.deploy(&hello_manifest("shop", "v1", 3)).await;
    b.deploy(&hello_manifest("shop", "v1", 1)).await;
    a.wait_instances("tenant A", "shop-hello", 3).await;
    b.wait_instances("tenant B", "shop-hello", 1).await;

    // Each tenant's API sees only its own lattice and application.
    for (tenant, wanted) in [(&a, 3), (&b, 1)] {
        let lattices = tenant.client.lattices().await.expect("lattices");
        let names: Vec<&str> = lattices.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["default"], "a tenant sees its lattice by its own name");
        let apps = tenant.client.list().await.expect("list");
        assert_eq!(apps.len(), 1, "{apps:?}");
        let status = wait_for(DEADLINE, || async {
            let s = tenant.client.status("shop").await.ok()?;
            (s.status.status_type == StatusType::Deployed).then_some(s)
        })
        .await;
        assert!(
            status.is_some(),
            "shop deployed for the tenant running {wanted}: {:?}",
            tenant.client.status("shop").await
        );
    }
    // Statuses reach the tenant's own `wadm.status.default.shop` through its import.
    let mut watch = a.client.watch_status("shop").await.expect("watch");
    b.client.undeploy("shop").await.expect("B undeploys");
    b.wait_instances("tenant B", "shop-hello", 0).await;
    a.wait_instances("tenant A", "shop-hello", 3).await;
    a.client.undeploy("shop").await.expect("A undeploys");
    let seen = tokio::time::timeout(DEADLINE, async {
        while let Some(status) = watch.next_status().await {
            if status.is_ok_and(|s| s.status.status_type == StatusType::Undeployed) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(seen, Ok(true), "tenant A follows its own status");
    a.wait_instances("tenant A", "shop-hello", 0).await;

    // wadm's own account sees both lattices, qualified with their accounts.
    let operator = wadm_client::Client::new(wadm_nats, "default", None);
    let all = operator.lattices().await.expect("operator lattices");
    let names: Vec<&str> = all.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["TA.default", "TB.default"]);

    let out = wadm.output();
    assert!(!out.contains("panicked") && !out.contains("ERROR"), "{out}");
    assert!(wadm.terminate(Duration::from_secs(10)).is_some_and(|s| s.success()), "{out}");
    a.sim.shutdown().await;
    b.sim.shutdown().await;
}
