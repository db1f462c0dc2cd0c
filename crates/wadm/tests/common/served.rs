//! `wadm serve --http-addr 127.0.0.1:0` as a process on a fresh NATS, with simulated hosts that
//! start once wadm captures their events: the set-up of the HTTP tests.

use std::time::Duration;

use wadm_sim::{HostSpec, SimConfig, SimLattice};
use wadm_test_support::{NatsServer, wait_for};

use super::child::Wadm;

pub const LATTICE: &str = "default";
const DEADLINE: Duration = Duration::from_secs(60);

/// A running `wadm serve` with its NATS and hosts.
pub struct Served {
    pub nats_server: NatsServer,
    pub wadm: Wadm,
    /// The HTTP listener's `ip:port`.
    pub addr: String,
    pub sim: SimLattice,
}

/// The HTTP address wadm reports once it serves (`… http://ADDR/…`).
pub fn http_addr(wadm: &Wadm) -> Option<String> {
    wadm.find_line(|line| {
        let rest = line.split("http://").nth(1)?;
        Some(rest.split('/').next()?.to_string())
    })
}

/// Wait (60 s at most) until `wadm` reports its HTTP address; panics with `what` and its output
/// otherwise.
pub async fn wait_http_addr(wadm: &Wadm, what: &str) -> String {
    wait_for(DEADLINE, || {
        let found = http_addr(wadm);
        async move { found }
    })
    .await
    .unwrap_or_else(|| panic!("{what}: {}", wadm.output()))
}

/// Start NATS, `wadm serve … extra` (1 s heartbeats, 500 ms resync) and `hosts` simulated hosts.
pub async fn serve_with_hosts(extra: &[&str], hosts: usize) -> Served {
    let nats_server = NatsServer::start();
    let url = nats_server.url();
    let mut args = vec![
        "serve",
        "--nats-url",
        &url,
        "--lattice",
        LATTICE,
        "--http-addr",
        "127.0.0.1:0",
        "--resync-every",
        "500ms",
        "--host-heartbeat",
        "1s",
    ];
    args.extend_from_slice(extra);
    let wadm = Wadm::start(&args);
    let addr = wait_http_addr(&wadm, "wadm reports its HTTP address").await;
    // Hosts start once the event stream exists, so their `host_started` is captured.
    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let stream = wait_for(DEADLINE, || async {
        js.get_stream(wadm_store::StoreNames::default().events_stream()).await.ok()
    })
    .await;
    assert!(stream.is_some(), "the runtime creates its event stream: {}", wadm.output());
    let mut sim_config = SimConfig::new(&url, LATTICE);
    sim_config.heartbeat_interval = Duration::from_secs(1);
    let sim = SimLattice::connect(sim_config).await.expect("sim connects");
    for _ in 0..hosts {
        sim.add_host(HostSpec::default()).await;
    }
    Served { nats_server, wadm, addr, sim }
}
