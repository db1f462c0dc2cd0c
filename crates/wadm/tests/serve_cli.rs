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

/// With NATS gone (stopped after wadm started), SIGTERM still ends wadm at once: in-flight work
/// gets a bounded grace, not a wait for a reconnection. Prints the time; asserts a generous
/// liveness bound only (timings are for benchmarks).
#[tokio::test]
async fn exits_on_sigterm_while_nats_is_gone() {
    let mut nats = NatsServer::start();
    let mut child = Command::new(WADM)
        .args(["serve", "--nats-url", &nats.url(), "--api-prefix", "test.api"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wadm runs");
    let client = async_nats::connect(nats.url()).await.unwrap();
    let answered = wait_for(Duration::from_secs(30), || async {
        let request = client.request("test.api.default.model.get", "".into());
        tokio::time::timeout(Duration::from_secs(1), request).await.ok().and_then(Result::ok)
    })
    .await;
    assert!(answered.is_some(), "wadm serve answers");
    nats.stop();
    let sent = std::time::Instant::now();
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let exited = wait_until(Duration::from_secs(10), || child.try_wait().unwrap().is_some());
    if !exited {
        let _ = child.kill();
    }
    assert!(exited, "wadm serve ignored SIGTERM while NATS was gone");
    eprintln!("exited {:?} after SIGTERM with NATS gone", sent.elapsed());
}

/// Lattice names that cannot be stored (too long once escaped) are refused where they enter —
/// an API subject, a host event in lattice-discovery mode — and the process keeps serving.
#[tokio::test]
async fn overlong_lattice_names_are_refused_and_wadm_keeps_serving() {
    let nats = NatsServer::start();
    let mut child = Command::new(WADM)
        .args(["serve", "--nats-url", &nats.url(), "--api-prefix", "test.api"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wadm runs");
    let client = async_nats::connect(nats.url()).await.unwrap();
    let ask = |subject: String| {
        let client = client.clone();
        async move {
            let request = client.request(subject, "".into());
            tokio::time::timeout(Duration::from_secs(1), request).await.ok().and_then(Result::ok)
        }
    };
    let list = "test.api.default.model.get".to_string();
    assert!(wait_for(Duration::from_secs(30), || ask(list.clone())).await.is_some());

    let plus = "+".repeat(82);
    let heartbeat = format!("wasmbus.evt.{plus}.host_heartbeat");
    client.publish(heartbeat, "{}".into()).await.unwrap();
    let long = format!("test.api.{}.model.put", "l".repeat(250));
    let reply = wait_for(Duration::from_secs(10), || ask(long.clone())).await.expect("a reply");
    let text = String::from_utf8_lossy(&reply.payload).to_string();
    assert!(text.contains("a lattice name is at most 64 bytes"), "{text}");

    // Still serving, still running.
    assert!(wait_for(Duration::from_secs(10), || ask(list.clone())).await.is_some());
    assert!(child.try_wait().unwrap().is_none(), "wadm exited");
    let _ = child.kill();
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

/// A `nats-server -js` requiring a user and password, on a free port; killed on drop.
struct AuthNats {
    child: std::process::Child,
    port: u16,
    _store: tempfile::TempDir,
}

impl AuthNats {
    fn start(user: &str, pass: &str) -> AuthNats {
        let binary = wadm_nats_server::find_binary().expect("nats-server installed");
        let store = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--user",
                user,
                "--pass",
                pass,
            ])
            .arg("-sd")
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        assert!(wait_until(Duration::from_secs(15), || std::net::TcpStream::connect(addr).is_ok()));
        AuthNats { child, port, _store: store }
    }
}

impl Drop for AuthNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn user_and_password_in_the_url() {
    let nats = AuthNats::start("wadm", "s3cret");
    let good = format!("nats://wadm:s3cret@127.0.0.1:{}", nats.port);
    let bad = format!("nats://wadm:wrong@127.0.0.1:{}", nats.port);

    let output = Command::new(WADM)
        .args(["serve", "--nats-url", &bad])
        .env("RUST_LOG", "off")
        .output()
        .expect("wadm runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("wrong"), "the password is not printed: {stderr}");

    let mut child = Command::new(WADM)
        .args(["serve", "--nats-url", &good])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wadm runs");
    let client = async_nats::ConnectOptions::with_user_and_password("wadm".into(), "s3cret".into())
        .connect(format!("127.0.0.1:{}", nats.port))
        .await
        .unwrap();
    let answered = wait_for(Duration::from_secs(30), || async {
        let request = client.request("wadm.api.default.model.get", "".into());
        tokio::time::timeout(Duration::from_secs(1), request).await.ok()?.ok()
    })
    .await;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(wait_until(Duration::from_secs(10), || child.try_wait().unwrap().is_some()));
    assert!(answered.is_some(), "wadm serve answers with user and password from the URL");
}
