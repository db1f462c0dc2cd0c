//! `wadm serve` as a process: it serves the API against a real NATS server, exits cleanly on
//! SIGTERM, and reports a bad NATS URL in one line without a backtrace.

use std::process::{Command, Stdio};
use std::time::Duration;

use wadm_test_support::{NatsServer, wait_for, wait_until};

const WADM: &str = env!("CARGO_BIN_EXE_wadm");

#[tokio::test]
async fn serves_then_exits_cleanly_on_sigterm() {
    let nats = NatsServer::start();
    let mut child = Command::new(WADM)
        .args(["serve", "--nats-url", &nats.url(), "--api-prefix", "test.api"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wadm runs");
    let client = async_nats::connect(nats.url()).await.unwrap();
    let reply = wait_for(Duration::from_secs(30), || async {
        let request = client.request("test.api.default.model.get", "".into());
        match tokio::time::timeout(Duration::from_secs(1), request).await {
            Ok(Ok(reply)) => Some(reply),
            _ => None,
        }
    })
    .await
    .expect("wadm serve answers");
    let list: wadm_model::api::ListModelsResponse = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(list.result, wadm_model::api::GetResult::Success);

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "wadm serve exits after SIGTERM"
    );
    assert!(status.unwrap().success(), "{status:?}");
}

#[test]
fn bad_nats_url_is_one_line_without_backtrace() {
    for url in ["nats://127.0.0.1:1", "http://example:4222", "nats://127.0.0.1:99999"] {
        let output = Command::new(WADM)
            .args(["serve", "--nats-url", url])
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LOG", "off")
            .output()
            .expect("wadm runs");
        assert!(!output.status.success(), "{url}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{url}: {stderr}");
        assert!(stderr.starts_with("wadm serve: "), "{url}: {stderr}");
        assert!(!stderr.contains("backtrace") && !stderr.contains("panicked"), "{url}: {stderr}");
    }
}
