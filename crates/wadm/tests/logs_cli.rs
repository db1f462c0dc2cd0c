//! `wadm serve --log-format json` as a process, on a NATS server that wants a password given in
//! the URL: every line on stderr is one JSON object, none carries an ANSI escape (stderr is a
//! pipe), a deploy logs one `command sent` line per send attempt with the application, what it
//! acts on, the host, the kind and why, a stopped host logs `host gone`, and the password shows
//! nowhere.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::child::Wadm;
use serde_json::Value;
use wadm_test_support::{NatsServer, wait_until};

const WADM: &str = env!("CARGO_BIN_EXE_wadm");
const PASSWORD: &str = "Logs-pw-5531";

/// A child whose stdout and stderr are collected apart.
struct Process {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

impl Process {
    fn start(args: &[&str]) -> Process {
        let mut child = Command::new(WADM)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env_remove("WADM_NATS_URL")
            .env_remove("WADM_HTTP_ADDR")
            .env_remove("WADM_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wadm runs");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Process { child, stdout, stderr }
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn all_output(&self) -> String {
        let mut lines = self.stdout.lock().unwrap().clone();
        lines.extend(self.stderr());
        lines.join("\n")
    }

    /// The stderr lines parsed as JSON; panics naming a line that is not.
    fn json_lines(&self) -> Vec<Value> {
        self.stderr()
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let exited =
            wait_until(Duration::from_secs(15), || self.child.try_wait().ok().flatten().is_some());
        if !exited {
            let _ = self.child.kill();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_with(process: &Process, message: &str) -> Vec<Value> {
    process.json_lines().into_iter().filter(|l| l["message"] == message).collect()
}

#[test]
fn json_logs_name_each_command_and_lost_host_without_secrets_or_colour() {
    let nats = NatsServer::start_with(vec![
        "--user".into(),
        "wadm".into(),
        "--pass".into(),
        PASSWORD.into(),
    ]);
    let url = format!("nats://wadm:{PASSWORD}@127.0.0.1:{}", nats.port());
    let mut serve = Process::start(&[
        "serve",
        "--log-format",
        "json",
        "--nats-url",
        &url,
        "--lattice",
        "default",
        "--host-heartbeat",
        "1s",
        "--lease-slack",
        "500ms",
        "--resync-every",
        "500ms",
    ]);
    let ready = wait_until(Duration::from_secs(60), || {
        !lines_with(&serve, "serving the wadm API").is_empty()
    });
    assert!(ready, "serve never started: {}", serve.all_output());

    let mut sim =
        Wadm::start(&["sim", "--nats-url", &url, "--hosts", "2", "--heartbeat-interval", "1s"]);
    let hosts_up =
        wait_until(Duration::from_secs(30), || sim.output().contains("hosts on lattice"));
    assert!(hosts_up, "{}", sim.output());
    // One more host, in a process of its own that will die without a word.
    let mut doomed =
        Wadm::start(&["sim", "--nats-url", &url, "--hosts", "1", "--heartbeat-interval", "1s"]);
    let up = wait_until(Duration::from_secs(30), || doomed.output().contains("hosts on lattice"));
    assert!(up, "{}", doomed.output());
    let doomed_host = doomed
        .find_line(|l| l.starts_with('N').then(|| l.split_whitespace().next().unwrap().to_string()))
        .expect("the sim names its host");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logged.yaml");
    std::fs::write(&file, common::web_http_app("logged", 3)).unwrap();
    let deploy = Command::new(WADM)
        .args(["app", "deploy", file.to_str().unwrap(), "--wait", "--timeout", "60s"])
        .args(["--nats-url", &url])
        .env_remove("RUST_LOG")
        .output()
        .expect("wadm app runs");
    let deploy_text = format!(
        "{}{}",
        String::from_utf8_lossy(&deploy.stdout),
        String::from_utf8_lossy(&deploy.stderr)
    );
    assert!(deploy.status.success(), "{deploy_text}");
    assert!(!deploy_text.contains(PASSWORD), "{deploy_text}");

    // Every send attempt of the deploy is logged once, with what it did and why.
    let logged = wait_until(Duration::from_secs(30), || {
        let sent = lines_with(&serve, "command sent");
        let kinds: BTreeSet<&str> = sent.iter().filter_map(|l| l["kind"].as_str()).collect();
        kinds.contains("scale_component") && kinds.contains("start_provider")
    });
    assert!(logged, "no command sent lines: {}", serve.all_output());
    let sent = lines_with(&serve, "command sent");
    let mut attempts = BTreeSet::new();
    for line in &sent {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["app"], "logged", "{line}");
        assert!(
            line["why"].as_str().is_some_and(|w| !w.is_empty() && w != "(not recorded)"),
            "{line}"
        );
        assert!(line["outcome"].is_string(), "{line}");
        let id = (line["command"].as_str().unwrap().to_string(), line["attempt"].as_u64().unwrap());
        assert!(attempts.insert(id), "one line per send attempt: {line}");
        match line["kind"].as_str().unwrap() {
            "scale_component" | "update_component" => {
                assert_eq!(line["component"], "logged-web", "{line}");
                assert!(line["host"].as_str().is_some_and(|h| h.starts_with('N')), "{line}");
            }
            "start_provider" | "stop_provider" => {
                assert_eq!(line["provider"], "logged-http", "{line}");
                assert!(line["host"].as_str().is_some_and(|h| h.starts_with('N')), "{line}");
            }
            other => panic!("unexpected command {other}: {line}"),
        }
    }
    let first_starts: Vec<&Value> =
        sent.iter().filter(|l| l["kind"] == "scale_component" && l["attempt"] == 1).collect();
    assert!(!first_starts.is_empty());
    assert!(first_starts.iter().any(|l| l["why"].as_str().unwrap().contains("the host runs none")));

    // A host that dies silently is gone when its lease runs out (2 × 1 s + 0.5 s).
    let _ = doomed.child.kill();
    let lost = wait_until(Duration::from_secs(30), || !lines_with(&serve, "host gone").is_empty());
    assert!(lost, "no host gone line: {}", serve.all_output());
    let line = &lines_with(&serve, "host gone")[0];
    assert_eq!(
        (line["host"].as_str(), line["reason"].as_str()),
        (Some(&*doomed_host), Some("lease expired"))
    );
    assert!(line["silent_ms"].as_u64().is_some_and(|ms| ms >= 2_000), "{line}");

    // The others stop gracefully: each is logged gone once, as stopped.
    sim.terminate(Duration::from_secs(15));
    let gone = wait_until(Duration::from_secs(30), || lines_with(&serve, "host gone").len() >= 3);
    assert!(gone, "no host gone lines: {}", serve.all_output());
    for line in &lines_with(&serve, "host gone")[1..] {
        assert_eq!(line["reason"], "stopped", "{line}");
        assert!(line["host"].as_str().is_some_and(|h| h.starts_with('N')), "{line}");
        assert!(line["components"].is_u64() && line["providers"].is_u64(), "{line}");
    }
    let hosts: BTreeSet<String> = lines_with(&serve, "host gone")
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), lines_with(&serve, "host gone").len(), "one line per host");

    serve.terminate();
    // Every stderr line is JSON (checked by json_lines), with no colour and no secret anywhere.
    let lines = serve.json_lines();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["level"].is_string()));
    let everything = serve.all_output();
    assert!(!everything.contains('\u{1b}'), "ANSI escapes in a pipe: {everything}");
    assert!(!everything.contains(PASSWORD), "the password leaked: {everything}");
    assert!(!sim.output().contains(PASSWORD), "{}", sim.output());
    assert!(!doomed.output().contains(PASSWORD), "{}", doomed.output());
}

#[test]
fn text_logs_are_plain_in_a_pipe_and_a_bad_format_is_refused() {
    let output = Command::new(WADM)
        .args(["serve", "--log-format", "xml"])
        .env_remove("WADM_LOG_FORMAT")
        .output()
        .expect("wadm runs");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(text.contains("--log-format") && text.contains("xml"), "{text}");
    assert!(!text.contains("panicked") && !text.contains("RUST_BACKTRACE"), "{text}");

    // Text logs through a pipe: no colour (a wrong URL fails fast, after logging).
    let output = Command::new(WADM)
        .args(["serve", "--nats-url", "nats://127.0.0.1:1", "--log-format", "text"])
        .env("RUST_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .expect("wadm runs");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && !text.is_empty(), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
}
