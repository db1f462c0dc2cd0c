//! `docs/deploy/nats-permissions.conf`, as shipped, on a real nats-server: `wadm serve` as the
//! restricted `wadm` user and `wadm sim` as the `host` user converge a deployment made by the
//! `wadm-cli` user, with no permission violation anywhere (a permission missing from the file
//! shows up as a violation in the server's log, or as a deployment that never converges);
//! the CLI user can use the API but cannot control hosts or touch wadm's storage.

mod common;

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::child::Wadm;
use wadm_test_support::{NatsServer, hello_manifest, wait_for, wait_until};

const WADM: &str = env!("CARGO_BIN_EXE_wadm");
const PERMISSIONS: &str = include_str!("../../../docs/deploy/nats-permissions.conf");

fn cli(args: &[&str], url: &str) -> Output {
    Command::new(WADM)
        .args(args)
        .args(["--nats-url", url, "--nats-user", "wadm-cli", "--nats-password", "cli-pw"])
        .env_remove("WADM_NATS_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("wadm runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn violations(log: &std::path::Path) -> Vec<String> {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    log.lines().filter(|l| l.contains("Violation")).map(str::to_string).collect()
}

#[test]
fn the_shipped_permissions_are_enough_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("nats.log");
    let config = dir.path().join("nats.conf");
    // The file verbatim, after the password variables it reads.
    let prelude = format!(
        "WADM_PASSWORD: \"wadm-pw\"\nWADM_CLI_PASSWORD: \"cli-pw\"\nHOST_PASSWORD: \"host-pw\"\n\
         log_file: {:?}\n",
        log.display().to_string()
    );
    std::fs::write(&config, format!("{prelude}{PERMISSIONS}")).unwrap();
    let nats = NatsServer::start_with(vec!["-c".into(), config.display().to_string()]);
    let url = nats.url();

    let mut serve = Wadm::start(&[
        "serve",
        "--nats-url",
        &url,
        "--nats-user",
        "wadm",
        "--nats-password",
        "wadm-pw",
        "--host-heartbeat",
        "1s",
        "--lease-slack",
        "500ms",
        "--resync-every",
        "500ms",
    ]);
    let mut sim = Wadm::start(&[
        "sim",
        "--nats-url",
        &url,
        "--nats-user",
        "host",
        "--nats-password",
        "host-pw",
        "--hosts",
        "3",
        "--heartbeat-interval",
        "1s",
    ]);
    assert!(
        wait_until(Duration::from_secs(30), || sim.output().contains("hosts on lattice")),
        "{}",
        sim.output()
    );
    // wadm answers the CLI user.
    let mut last = String::new();
    let answered = wait_until(Duration::from_secs(60), || {
        let output = cli(&["app", "list", "--timeout", "2s"], &url);
        last = text(&output);
        output.status.success()
    });
    assert!(answered, "list: {last}\nserve: {}", serve.output());

    let manifest = dir.path().join("hello.yaml");
    std::fs::write(&manifest, hello_manifest("hello", "v1", 3)).unwrap();
    let manifest = manifest.display().to_string();
    let deployed = cli(&["app", "deploy", &manifest, "--wait", "--timeout", "60s"], &url);
    assert!(deployed.status.success(), "{}\nserve: {}", text(&deployed), serve.output());
    for args in [&["app", "status", "hello"][..], &["app", "history", "hello"], &["app", "list"]] {
        let output = cli(args, &url);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
    }
    let undeployed = cli(&["app", "undeploy", "hello"], &url);
    assert!(undeployed.status.success(), "{}", text(&undeployed));
    // Let the undeploy reach the hosts (all instances stopped) before reading the log.
    let status_says = wait_until(Duration::from_secs(30), || {
        text(&cli(&["app", "status", "hello"], &url)).contains("undeployed")
    });
    assert!(status_says, "{}", text(&cli(&["app", "status", "hello"], &url)));

    let found = violations(&log);
    assert!(found.is_empty(), "the shipped permissions were not enough:\n{}", found.join("\n"));

    // The CLI user may not act on hosts, read events or touch wadm's storage.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = errors.clone();
        let client =
            async_nats::ConnectOptions::with_user_and_password("wadm-cli".into(), "cli-pw".into())
                .event_callback(move |event| {
                    let sink = sink.clone();
                    async move {
                        if let async_nats::Event::ServerError(e) = event {
                            sink.lock().unwrap().push(e.to_string());
                        }
                    }
                })
                .connect(&url)
                .await
                .unwrap();
        client.publish("wasmbus.ctl.v1.default.host.ping", "".into()).await.unwrap();
        client.publish("$JS.API.STREAM.DELETE.wadm_events", "".into()).await.unwrap();
        let _events = client.subscribe("wasmbus.evt.default.>").await.unwrap();
        client.flush().await.unwrap();
        let all_refused = wait_for(Duration::from_secs(10), || async {
            let seen = errors.lock().unwrap().join("\n");
            (seen.contains("Publish to \"wasmbus.ctl.v1.default.host.ping\"")
                && seen.contains("Publish to \"$JS.API.STREAM.DELETE.wadm_events\"")
                && seen.contains("Subscription to \"wasmbus.evt.default.>\""))
            .then_some(())
        })
        .await;
        assert!(all_refused.is_some(), "refused: {:?}", errors.lock().unwrap());
    });
    let _ = sim.terminate(Duration::from_secs(10));
    let _ = serve.terminate(Duration::from_secs(10));
}
