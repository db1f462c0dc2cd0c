//! The README's "run" flow: `wadm up` starts NATS, wadm and simulated hosts; in another process,
//! `wadm app deploy hello.yaml --wait` reaches `deployed`; SIGTERM stops `up` cleanly, leaving
//! no nats-server behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wadm_test_support::{wait_for, wait_until};

const WADM: &str = env!("CARGO_BIN_EXE_wadm");
const HELLO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/manifests/hello.yaml");

/// `wadm up` as a child, with its default log filter; its stdout and stderr lines are collected
/// as they come. Killed on drop.
struct Up {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    logs: Arc<Mutex<Vec<String>>>,
}

fn collect(from: impl std::io::Read + Send + 'static, into: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            into.lock().unwrap().push(line);
        }
    });
}

impl Up {
    fn start(data_dir: &Path, port: u16) -> Up {
        let mut child = Command::new(WADM)
            .args(["up", "--data-dir"])
            .arg(data_dir)
            .args(["--port", &port.to_string(), "--heartbeat-interval", "2s"])
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wadm runs");
        let (lines, logs) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        collect(child.stdout.take().unwrap(), lines.clone());
        collect(child.stderr.take().unwrap(), logs.clone());
        Up { child, lines, logs }
    }

    fn output(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The nats-server pid from the banner line `NATS: … (nats-server pid N)`.
    fn nats_pid(&self) -> Option<u32> {
        self.output().iter().find_map(|line| {
            let rest = line.split("nats-server pid ").nth(1)?;
            rest.trim_end_matches(')').trim().parse().ok()
        })
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // A zombie has exited; only its parent has not collected it yet.
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test]
async fn up_then_deploy_hello_reaches_deployed_and_sigterm_stops_everything() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut up = Up::start(data.path(), port);

    let nats_pid = wait_for(Duration::from_secs(60), || {
        let pid = up.nats_pid();
        async move { pid }
    })
    .await;
    let nats_pid = nats_pid.unwrap_or_else(|| panic!("banner printed: {:?}", up.output()));
    let banner = up.output().join("\n");
    for expected in [url.as_str(), "lattice:   default (3 simulated hosts)", "wadm.api.default"] {
        assert!(banner.contains(expected), "banner names {expected}: {banner}");
    }
    assert!(banner.contains(&data.path().display().to_string()), "{banner}");
    assert!(banner.contains("wadm app deploy <file> --wait"), "{banner}");
    assert!(data.path().join("nats").is_dir(), "the NATS store lives in the data dir");

    let client = async_nats::connect(&url).await.expect("up's NATS answers");
    let answered = wait_for(Duration::from_secs(30), || async {
        let request = client.request("wadm.api.default.model.get", "".into());
        tokio::time::timeout(Duration::from_secs(1), request).await.ok()?.ok()
    })
    .await;
    assert!(answered.is_some(), "wadm's API answers");

    let deploy = Command::new(WADM)
        .args(["app", "deploy", HELLO, "--wait", "--timeout", "60s", "--nats-url", &url])
        .output()
        .expect("wadm app runs");
    assert!(
        deploy.status.success(),
        "deploy --wait succeeds: {}\n{}",
        String::from_utf8_lossy(&deploy.stdout),
        String::from_utf8_lossy(&deploy.stderr)
    );

    // By default `up` logs what it does to the lattice, one line per command, and little else.
    let logs = up.logs.lock().unwrap().clone();
    let sent = logs.iter().filter(|l| l.contains("command sent")).count();
    assert!(sent >= 3, "a line per command sent (a component, a provider, a link…): {logs:#?}");
    assert!(
        logs.iter()
            .all(|l| l.contains("command sent") || l.contains("WARN") || l.contains("ERROR")),
        "nothing but command lines and warnings: {logs:#?}"
    );

    let killed = Command::new("kill").args(["-TERM", &up.child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(30), || {
            status = up.child.try_wait().unwrap();
            status.is_some()
        }),
        "wadm up exits after SIGTERM"
    );
    assert!(status.unwrap().success(), "{status:?}");
    assert!(!process_alive(nats_pid), "nats-server {nats_pid} stopped with wadm up");
}

#[test]
fn a_taken_port_is_one_clear_line() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(WADM)
        .args(["up", "--port", &port.to_string(), "--data-dir"])
        .arg(data.path())
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("wadm runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("wadm up: ") && stderr.contains("in use"), "{stderr}");
}

#[test]
fn a_missing_nats_server_names_the_install_hint() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(WADM)
        .args(["up", "--data-dir"])
        .arg(data.path())
        .env("NATS_SERVER_BIN", data.path().join("no-such-nats-server"))
        .output()
        .expect("wadm runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("nats-server not found") && stderr.contains("pip install"), "{stderr}");
}
